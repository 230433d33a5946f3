//go:build !pprof

package main

import (
	"strings"
	"testing"
)

// The debugging aids are hidden from --help, and the binary that ships, built without runtime/pprof
// and runtime/trace, refuses them with a clear error before it listens, instead of ignoring them.
func TestDebugFlagsNeedAProfilingBuild(t *testing.T) {
	for _, flag := range []string{debugCPUProfileFlag, debugTraceFlag} {
		code, _, stderr := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--"+flag, t.TempDir()+"/out")
		if code != exitFail || !strings.Contains(stderr, "--"+flag+" needs a binary built with -tags pprof") {
			t.Errorf("serve --%s: exit %d, stderr %q; want exit %d and the refusal", flag, code, stderr, exitFail)
		}
		_, help, _ := runCLI(t, "serve", "--help")
		if strings.Contains(help, flag) {
			t.Errorf("serve --help shows the debugging aid --%s", flag)
		}
	}
}
