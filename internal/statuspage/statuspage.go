// Package statuspage holds the built-in status page edged serves at / when no web root is configured
// (CONTRACT D3): one HTML file with its script inline, embedded in the binary, no third-party code. It
// draws live charts from the JSON snapshot the daemon publishes every second on the topic
// "edged/status" (see Topic).
package statuspage

import _ "embed"

// HTML is the page.
//
//go:embed index.html
var HTML []byte

// Topic is the topic the daemon publishes its status snapshot on.
const Topic = "edged/status"
