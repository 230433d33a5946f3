package main

// debugCPUProfileFlag names the hidden serve flag that writes a CPU profile of the whole run to a file,
// for `go tool pprof` (bench/cmd/suite uses it). It is a debugging aid, not configuration: hidden from
// --help and without an environment twin; the daemon serves no pprof endpoint. runtime/pprof adds about
// 140 KB to the binary, so only a build with `-tags pprof` can profile (profile_pprof.go); the binary
// that ships refuses the flag (profile_nopprof.go).
const debugCPUProfileFlag = "debug-cpu-profile"

// debugTraceFlag names the hidden serve flag that writes an execution trace of the whole run to a
// file, for `go tool trace`: where each goroutine waited, for what, and for how long (see "Reading a
// trace" in docs/BENCHMARKS.md). Like debugCPUProfileFlag, only a build with `-tags pprof` has it.
const debugTraceFlag = "debug-trace"
