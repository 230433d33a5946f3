package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestD8_CgroupMemoryLimitRead: the service's memory limit is the smallest memory.max (cgroup v2) or
// memory.limit_in_bytes (cgroup v1) from its group up to the root; "max" and v1's near-2^63 are none.
func TestD8_CgroupMemoryLimitRead(t *testing.T) {
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		self  string
		files map[string]string
		want  int64
	}{
		{"v2 service limit", "0::/system.slice/edged.service\n", map[string]string{
			"cgroup.controllers":                         "memory",
			"system.slice/memory.max":                    "max\n",
			"system.slice/edged.service/memory.max":      "67108864\n",
			"system.slice/edged.service/memory.high":     "1\n",
			"system.slice/edged.service/cgroup.procs":    "1\n",
			"system.slice/edged.service/memory.swap.max": "0\n",
		}, 64 << 20},
		{"v2 parent limit smaller", "0::/system.slice/edged.service\n", map[string]string{
			"cgroup.controllers":                    "memory",
			"system.slice/memory.max":               "33554432\n",
			"system.slice/edged.service/memory.max": "max\n",
		}, 32 << 20},
		{"v2 no limit", "0::/system.slice/edged.service\n", map[string]string{
			"cgroup.controllers":                    "memory",
			"system.slice/edged.service/memory.max": "max\n",
		}, 0},
		{"v1 hybrid", "4:memory:/system.slice/edged.service\n1:cpu:/\n0::/system.slice/edged.service\n", map[string]string{
			"unified/cgroup.controllers":                              "",
			"memory/memory.limit_in_bytes":                            "9223372036854771712\n",
			"memory/system.slice/edged.service/memory.limit_in_bytes": "16777216\n",
		}, 16 << 20},
		{"v1 unlimited", "4:memory:/\n", map[string]string{
			"memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0},
		{"unreadable levels skipped", "0::/a/b/c\n", map[string]string{
			"cgroup.controllers": "memory",
			"a/memory.max":       "50000000\n",
		}, 50000000},
	} {
		dir := t.TempDir()
		mount := filepath.Join(dir, "cgroup")
		for name, v := range tc.files {
			write(filepath.Join(mount, name), v)
		}
		write(filepath.Join(dir, "self"), tc.self)
		if got := cgroupMemoryAt(mount, filepath.Join(dir, "self")); got != tc.want {
			t.Errorf("%s: limit %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := cgroupMemoryAt(t.TempDir(), "/nonexistent"); got != 0 {
		t.Errorf("no /proc/self/cgroup: limit %d, want 0", got)
	}
}

// TestD8_BudgetBeyondCgroupLimitRefused: a configuration whose pools, with the runtime's allowance,
// do not fit the service's memory limit (the unit's MemoryMax=64M) is refused with a usage error at
// start, instead of the kernel killing the daemon once load fills the pools; the defaults fit.
func TestD8_BudgetBeyondCgroupLimitRefused(t *testing.T) {
	saved := cgroupMemory
	t.Cleanup(func() { cgroupMemory = saved })
	cgroupMemory = func() int64 { return 64 << 20 }
	s := defaultSettings()
	if err := s.checkBudget(); err != nil {
		t.Fatalf("defaults refused under MemoryMax=64M: %v", err)
	}
	s.topicsMax = 1024 // 1025 topics of 64 KiB: over 64 MiB
	err := s.checkBudget()
	if _, ok := err.(*usageError); !ok || !strings.Contains(err.Error(), "MemoryMax") ||
		!strings.Contains(err.Error(), "--topics-max or --topic-max-bytes") {
		t.Errorf("checkBudget with --topics-max 1024 under MemoryMax=64M: %v; want a usage error naming MemoryMax and the flags", err)
	}
}
