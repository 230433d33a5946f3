//go:build !pprof

package main

import "errors"

// startCPUProfile refuses: this binary was built without runtime/pprof (see debugCPUProfileFlag).
func startCPUProfile(string) (stop func(), err error) {
	return nil, errors.New("--" + debugCPUProfileFlag + " needs a binary built with -tags pprof")
}

// startTrace refuses: this binary was built without runtime/trace (see debugTraceFlag).
func startTrace(string) (stop func(), err error) {
	return nil, errors.New("--" + debugTraceFlag + " needs a binary built with -tags pprof")
}
