// Command edged is an HTTP/1.1 daemon for embedded Linux gateways: fixed workers with preallocated
// buffers, serving in accept mode or socket-queue mode.
//
// Usage:
//
//	edged serve [flags]    serve until SIGTERM or SIGINT
//	edged check [flags]    validate the flags and the environment, print the configuration
//	edged version          print version, commit, Go version and platform
//
// Every flag has an environment twin EDGED_<FLAG> (--socket-queue -> EDGED_SOCKET_QUEUE); a flag on the
// command line wins over its twin. Exit status: 0 success, 1 failure, 2 usage (a bad flag, value or
// variable), 3 the listen address cannot be bound.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run())
}

// run executes the command line and returns the exit status.
func run() int {
	return execute(context.Background(), newRootCmd(), os.Args[1:])
}
