//go:build e2e && race

package e2e

// raceEnabled builds the daemon with the race detector when the tests themselves run with -race.
const raceEnabled = true
