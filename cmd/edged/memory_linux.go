package main

import (
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// physicalMemory returns the machine's memory in bytes (sysinfo(2)), or 0 when it cannot be read.
func physicalMemory() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(max(si.Unit, 1))
}

// cgroupMemory returns the memory limit of the control group edged runs in (systemd's MemoryMax=),
// or 0 when there is none or it cannot be read.
var cgroupMemory = func() int64 { return cgroupMemoryAt("/sys/fs/cgroup", "/proc/self/cgroup") }

// cgroupMemoryAt returns the smallest memory limit on the path from the process's control group up to
// the hierarchy's root, below mount: cgroup v2 memory.max ("max": none), else cgroup v1
// memory.limit_in_bytes (a value near 2^63: none). Levels that cannot be read (a container sees only
// part of the tree) are skipped.
func cgroupMemoryAt(mount, self string) int64 {
	b, err := os.ReadFile(self)
	if err != nil {
		return 0
	}
	var dir, file string
	for _, line := range strings.Split(string(b), "\n") {
		id, rest, _ := strings.Cut(line, ":")
		controllers, p, ok := strings.Cut(rest, ":")
		switch {
		case !ok:
		case id == "0" && controllers == "" && dir == "":
			dir, file = mount, "memory.max"
			if _, err := os.Stat(path.Join(mount, "cgroup.controllers")); err != nil {
				dir = path.Join(mount, "unified") // a hybrid hierarchy
			}
			dir = path.Join(dir, p)
		case strings.Contains(","+controllers+",", ",memory,"):
			dir, file = path.Join(mount, "memory", p), "memory.limit_in_bytes"
		}
	}
	if dir == "" {
		return 0
	}
	var limit int64
	for {
		if v, err := os.ReadFile(path.Join(dir, file)); err == nil {
			n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			if err == nil && n > 0 && n < 1<<62 && (limit == 0 || n < limit) {
				limit = n
			}
		}
		if dir == mount || dir == "/" || dir == "." {
			return limit
		}
		parent := path.Dir(dir)
		if !strings.HasPrefix(parent, mount) {
			return limit
		}
		dir = parent
	}
}
