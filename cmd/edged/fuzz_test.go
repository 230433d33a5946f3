package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseSize checks the size flags' parser (--max-body, --buffer-size, ... and their EDGED_*
// twins, CONTRACT D1, D2): never a negative size; plain digits agree with strconv.ParseInt; a number
// with a unit is that number shifted by the unit, without overflow; and what a size flag prints
// (formatSize, as `edged check` shows it) parses back to the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1048576", "1MiB", "64KiB", "64k", " 2 g ", "8b", "-1", "+1", "1.5M", "9223372036854775807",
		"8589934592G", "kib", "0x10", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		num := strings.ToLower(strings.TrimSpace(s))
		shift := uint(0)
		for _, u := range sizeUnits {
			if strings.HasSuffix(num, u.suffix) {
				num, shift = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.shift
				break
			}
		}
		ref, rerr := strconv.ParseInt(num, 10, 64)
		if rerr != nil || ref > (1<<63-1)>>shift || ref<<shift != n {
			t.Fatalf("parseSize(%q) = %d; strconv.ParseInt(%q) = %d, %v, unit shift %d", s, n, num, ref, rerr, shift)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Fatalf("parseSize(formatSize(%d) = %q) = %d, %v", n, formatSize(n), back, err)
		}
	})
}

// FuzzDurationFlag checks the duration flags (the timeouts of CONTRACT S6): an accepted value is
// what time.ParseDuration reads, within (0, maxDuration], and what the flag prints is accepted back as
// the same duration.
func FuzzDurationFlag(f *testing.F) {
	for _, s := range []string{"10s", "1m30s", "500ms", " 2h ", "0", "-1s", "8761h", "1.5h", "9223372036854775807ns", "1e3s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d time.Duration
		v := &durationValue{p: &d}
		if err := v.Set(s); err != nil {
			return
		}
		ref, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || ref != d || d <= 0 || d > maxDuration {
			t.Fatalf("duration flag %q = %v; time.ParseDuration: %v, %v", s, d, ref, err)
		}
		var back time.Duration
		if err := (&durationValue{p: &back}).Set(v.String()); err != nil || back != d {
			t.Fatalf("duration flag %q prints %q, which reads back as %v, %v", s, v.String(), back, err)
		}
	})
}
