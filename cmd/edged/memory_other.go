//go:build !linux

package main

// physicalMemory is unknown outside Linux: 0, and no configuration is refused for it.
func physicalMemory() int64 { return 0 }

// cgroupMemory is unknown outside Linux: 0, no limit.
var cgroupMemory = func() int64 { return 0 }
