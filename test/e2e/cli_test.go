//go:build e2e

package e2e

import (
	"net"
	"runtime"
	"strings"
	"testing"
)

// TestD1_Version checks the values set at link time with -X main.version and -X main.commit.
func TestD1_Version(t *testing.T) {
	code, out, _ := runEdged(t, nil, "version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"edged " + testVersion, testCommit, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

// TestD2_HelpListsFlags checks that `serve --help` lists every flag with its default and env twin.
func TestD2_HelpListsFlags(t *testing.T) {
	code, out, _ := runEdged(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []struct{ name, def string }{
		{"listen", "(default :8080)"}, {"workers", "(default 4)"}, {"socket-queue", "(default 8)"},
		{"buffer-size", "(default 2048)"}, {"max-headers", "(default 64)"}, {"backlog", "(default 128)"},
		{"park-idle", "(default true)"}, {"evict-idle", "(default true)"}, {"max-conns-per-client", ""},
		{"keepalive-timeout", "(default 50s)"}, {"header-timeout", "(default 10s)"}, {"io-timeout", "(default 30s)"},
		{"handler-timeout", "(default 1m0s)"}, {"max-body", "(default 1MiB)"}, {"max-drain", "(default 64KiB)"},
		{"enable-echo", ""}, {"shutdown-grace", "(default 10s)"}, {"log-level", `(default "info")`},
		{"log-format", `(default "text")`},
	} {
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "--"+f.name+" ") {
				line = l
			}
		}
		env := "$EDGED_" + strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))
		if line == "" || !strings.Contains(line, f.def) || !strings.Contains(line, env) {
			t.Errorf("--%s: help line %q, want %s and %s", f.name, line, f.def, env)
		}
	}
}

// TestD2_InvalidValues: each bad value exits 2 with one line on stderr naming the flag, for serve and
// check alike, from the command line and from the environment.
func TestD2_InvalidValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		flag string
	}{
		{[]string{"--workers", "0"}, "", "--workers"},
		{[]string{"--buffer-size", "255"}, "", "--buffer-size"},
		{[]string{"--socket-queue", "-1"}, "", "--socket-queue"},
		{[]string{"--keepalive-timeout", "0s"}, "", "--keepalive-timeout"},
		{[]string{"--header-timeout", "-5s"}, "", "--header-timeout"},
		{[]string{"--io-timeout", "0"}, "", "--io-timeout"},
		{[]string{"--handler-timeout", "forever"}, "", "--handler-timeout"},
		{[]string{"--shutdown-grace", "0s"}, "", "--shutdown-grace"},
		{[]string{"--max-body", "lots"}, "", "--max-body"},
		{[]string{"--listen", "8080"}, "", "--listen"},
		{[]string{"--listen", "256.0.0.1:80"}, "", "--listen"},
		{[]string{"--log-level", "verbose"}, "", "--log-level"},
		{[]string{"--log-format", "yaml"}, "", "--log-format"},
		{nil, "EDGED_WORKERS=none", "--workers"},
		{nil, "EDGED_SOCKET_QUEUE=-3", "--socket-queue"},
		{nil, "EDGED_PARK_IDLE=perhaps", "--park-idle"},
	} {
		for _, cmd := range []string{"serve", "check"} {
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			code, _, errOut := runEdged(t, env, append([]string{cmd}, tc.args...)...)
			if code != 2 {
				t.Errorf("%s %v %s: exit %d, want 2", cmd, tc.args, tc.env, code)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "edged: invalid ") || !strings.Contains(errOut, tc.flag) {
				t.Errorf("%s %v %s: stderr %q, want one line naming %s", cmd, tc.args, tc.env, errOut, tc.flag)
			}
		}
	}
}

func TestD2_UnknownFlag(t *testing.T) {
	code, _, errOut := runEdged(t, nil, "serve", "--worker", "2")
	if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--worker") {
		t.Errorf("exit %d, stderr %q; want 2 and one line", code, errOut)
	}
}

// TestD1_Check: check accepts a good configuration (exit 0, effective values printed, environment
// applied, flags winning) and refuses a bad one (exit 2).
func TestD1_Check(t *testing.T) {
	code, out, errOut := runEdged(t, []string{"EDGED_WORKERS=6", "EDGED_MAX_BODY=64KiB"},
		"check", "--listen", "127.0.0.1:9", "--socket-queue", "0", "--max-body", "2MiB")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"listen=127.0.0.1:9\n", "workers=6\n", "mode=accept\n", "max_body=2097152\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runEdged(t, nil, "check", "--buffer-size", "100"); code != 2 {
		t.Errorf("check --buffer-size 100: exit %d, want 2", code)
	}
}

// TestD1_EnvironmentTwin: EDGED_ENABLE_ECHO=true turns /echo on in a running daemon; the flag
// --enable-echo=false overrides it.
func TestD1_EnvironmentTwin(t *testing.T) {
	env := []string{"EDGED_ENABLE_ECHO=true", "EDGED_WORKERS=3"}
	d := startDaemon(t, env)
	if r := d.roundTrip(t, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping", "POST", false); r.StatusCode != 200 || string(r.body) != "ping" {
		t.Errorf("EDGED_ENABLE_ECHO=true: status %d, body %q", r.StatusCode, r.body)
	}
	rec := d.waitLog("edged started")
	if rec["workers"] != float64(3) || rec["enable_echo"] != true {
		t.Errorf("start-up line does not show the environment: %v", rec)
	}

	d = startDaemon(t, env, "--enable-echo=false", "--workers", "2")
	if r := d.roundTrip(t, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nping", "POST", false); r.StatusCode != 404 {
		t.Errorf("--enable-echo=false over EDGED_ENABLE_ECHO=true: status %d, want 404", r.StatusCode)
	}
	if rec := d.waitLog("edged started"); rec["workers"] != float64(2) {
		t.Errorf("--workers 2 over EDGED_WORKERS=3: start-up line %v", rec)
	}
}

// TestD2_BusyPortExits3: a listen address that cannot be bound exits with status 3.
func TestD2_BusyPortExits3(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errOut := runEdged(t, nil, "serve", "--listen", ln.Addr().String())
	if code != 3 {
		t.Errorf("exit %d, want 3; stderr %q", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, ln.Addr().String()) {
		t.Errorf("stderr %q, want one line naming the address", errOut)
	}
}
