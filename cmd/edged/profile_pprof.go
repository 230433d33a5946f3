//go:build pprof

package main

import (
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startCPUProfile starts profiling into path; stop ends the profile and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	return startWriting(path, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace starts an execution trace into path; stop ends the trace and closes the file.
func startTrace(path string) (stop func(), err error) {
	return startWriting(path, trace.Start, trace.Stop)
}

func startWriting(path string, begin func(io.Writer) error, end func()) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := begin(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		end()
		f.Close()
	}, nil
}
