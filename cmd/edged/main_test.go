package main

import (
	"bytes"
	"context"
	"io/fs"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runCLI executes the command line in process and returns the exit status and both outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	code = execute(context.Background(), root, args)
	return code, out.String(), errOut.String()
}

// allFlags are the daemon flags with the default --help must show (empty: pflag shows none for a
// zero value).
var allFlags = []struct{ name, def string }{
	{"listen", ":8080"},
	{"workers", "4"},
	{"procs", "0"},
	{"socket-queue", "8"},
	{"buffer-size", "2048"},
	{"max-headers", "64"},
	{"backlog", "128"},
	{"park-idle", "true"},
	{"evict-idle", "true"},
	{"max-conns-per-client", ""},
	{"keepalive-timeout", "50s"},
	{"header-timeout", "10s"},
	{"io-timeout", "30s"},
	{"handler-timeout", "1m0s"},
	{"max-body", "1MiB"},
	{"max-drain", "64KiB"},
	{"enable-echo", ""},
	{"shutdown-grace", "10s"},
	{"log-level", `"info"`},
	{"log-format", `"text"`},
}

func TestHelpListsFlagsDefaultsAndEnv(t *testing.T) {
	for _, cmd := range []string{"serve", "check"} {
		code, out, _ := runCLI(t, cmd, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		lines := strings.Split(out, "\n")
		for _, f := range allFlags {
			var line string
			for _, l := range lines {
				if strings.HasPrefix(strings.TrimSpace(l), "--"+f.name+" ") {
					line = l
					break
				}
			}
			if line == "" {
				t.Errorf("%s --help does not list --%s", cmd, f.name)
				continue
			}
			if !strings.Contains(line, "$"+envName(f.name)) {
				t.Errorf("%s --help: --%s does not name %s: %q", cmd, f.name, envName(f.name), line)
			}
			if f.def != "" && !strings.Contains(line, "(default "+f.def+")") {
				t.Errorf("%s --help: --%s does not show default %s: %q", cmd, f.name, f.def, line)
			}
		}
	}
}

func TestCheckDefaults(t *testing.T) {
	code, out, errOut := runCLI(t, "check")
	if code != exitOK || errOut != "" {
		t.Fatalf("check: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"configuration ok\n", "listen=:8080\n", "mode=socket-queue\n", "workers=4\n",
		"max_body=1048576\n", "max_drain=65536\n", "keepalive_timeout=50s\n", "park_idle=true\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckAcceptsValues(t *testing.T) {
	code, out, errOut := runCLI(t, "check", "--listen", "[::1]:0", "--socket-queue", "0", "--max-body", "64KiB",
		"--max-drain", "1000", "--park-idle=false", "--enable-echo", "--log-level", "DEBUG", "--header-timeout", "250ms")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"listen=[::1]:0\n", "mode=accept\n", "max_body=65536\n", "max_drain=1000\n",
		"park_idle=false\n", "enable_echo=true\n", "log_level=debug\n", "header_timeout=250ms\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// TestInvalidValues checks CONTRACT D2: a bad value exits 2 with one line naming the flag.
func TestInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{"--workers", "many"}, "--workers"},
		{[]string{"--workers", "1000000"}, "--workers"},
		{[]string{"--procs", "-1"}, "--procs"},
		{[]string{"--procs", "1025"}, "--procs"},
		{[]string{"--socket-queue", "100000000"}, "--socket-queue"},
		{[]string{"--buffer-size", "255"}, "--buffer-size"},
		{[]string{"--socket-queue", "-1"}, "--socket-queue"},
		{[]string{"--max-headers", "0"}, "--max-headers"},
		{[]string{"--backlog", "0"}, "--backlog"},
		{[]string{"--backlog", "2147483648"}, "--backlog"},
		{[]string{"--max-conns-per-client", "-1"}, "--max-conns-per-client"},
		{[]string{"--keepalive-timeout", "0s"}, "--keepalive-timeout"},
		{[]string{"--header-timeout", "-1s"}, "--header-timeout"},
		{[]string{"--io-timeout", "0"}, "--io-timeout"},
		{[]string{"--handler-timeout", "soon"}, "--handler-timeout"},
		{[]string{"--shutdown-grace", "0s"}, "--shutdown-grace"},
		{[]string{"--max-body", "0"}, "--max-body"},
		{[]string{"--max-body", "1XB"}, "--max-body"},
		{[]string{"--max-drain", "-5"}, "--max-drain"},
		{[]string{"--listen", "nonsense"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:99999"}, "--listen"},
		{[]string{"--listen", "gateway.local:80"}, "--listen"},
		{[]string{"--listen", "[fe80::1%eth0]:80"}, "--listen"},
		{[]string{"--park-idle=maybe"}, "--park-idle"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--log-format", "xml"}, "--log-format"},
	} {
		for _, cmd := range []string{"check", "serve"} {
			code, out, errOut := runCLI(t, append([]string{cmd}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("%s %v: exit %d, want %d", cmd, tc.args, code, exitUsage)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "edged: invalid "+tc.flag+":") {
				t.Errorf("%s %v: stderr %q, want one line naming %s", cmd, tc.args, errOut, tc.flag)
			}
			if out != "" {
				t.Errorf("%s %v: stdout %q, want nothing", cmd, tc.args, out)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--no-such-flag"},
		{"check", "--workers"},
		{"check", "extra-argument"},
		{"no-such-command"},
		{"completion", "bsh"}, // CONTRACT D1: cobra's completion, with an unknown shell
	} {
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "edged: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, errOut)
		}
	}
}

// TestEnvironment checks CONTRACT D1: EDGED_<FLAG> applies, and the command line wins over it.
func TestEnvironment(t *testing.T) {
	t.Setenv("EDGED_WORKERS", "7")
	t.Setenv("EDGED_SOCKET_QUEUE", "0")
	t.Setenv("EDGED_MAX_BODY", "2MiB")
	t.Setenv("EDGED_ENABLE_ECHO", "true")
	t.Setenv("EDGED_LOG_FORMAT", "json")

	code, out, errOut := runCLI(t, "check", "--workers", "3", "--enable-echo=false")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"workers=3\n", "socket_queue=0\n", "mode=accept\n", "max_body=2097152\n",
		"enable_echo=false\n", "log_format=json\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "check")
	if code != exitOK || !strings.Contains(out, "workers=7\n") || !strings.Contains(out, "enable_echo=true\n") {
		t.Errorf("environment not applied: exit %d\n%s", code, out)
	}
}

func TestEnvironmentInvalid(t *testing.T) {
	t.Setenv("EDGED_BUFFER_SIZE", "64")
	code, _, errOut := runCLI(t, "check")
	if code != exitUsage || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "EDGED_BUFFER_SIZE") || !strings.Contains(errOut, "--buffer-size") {
		t.Errorf("exit %d, stderr %q; want 2 and one line naming EDGED_BUFFER_SIZE and --buffer-size", code, errOut)
	}
	// A valid flag on the command line hides a bad twin: the environment is not consulted for it.
	code, _, errOut = runCLI(t, "check", "--buffer-size", "4096")
	if code != exitOK {
		t.Errorf("exit %d, stderr %q; the flag should win over the environment", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"edged " + version + "\n", "commit: " + commit + "\n", runtime.Version(),
		runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

func TestCompletion(t *testing.T) {
	code, out, _ := runCLI(t, "completion", "bash")
	if code != exitOK || !strings.Contains(out, "edged") {
		t.Errorf("completion bash: exit %d, %d bytes", code, len(out))
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true},
		{"1MiB", 1 << 20, true},
		{"64KiB", 64 << 10, true},
		{"64kib", 64 << 10, true},
		{"64k", 64 << 10, true},
		{"2M", 2 << 20, true},
		{"1GiB", 1 << 30, true},
		{"512B", 512, true},
		{" 10 KiB ", 10 << 10, true},
		{"", 0, false},
		{"KiB", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5MiB", 0, false},
		{"1XB", 0, false},
		{"9999999999999GiB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1MiB", 64 << 10: "64KiB", 1000: "1000", 3 << 30: "3GiB", 1536: "1536"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{
		":8080": true, "127.0.0.1:0": true, "0.0.0.0:80": true, "[::1]:8080": true, "[::]:1": true,
		"localhost:80": true, "[::ffff:127.0.0.1]:80": true,
		"8080": false, "gateway.local:80": false, "[127.0.0.1]:80": false, "[]:80": false, "::1:80": false, "127.0.0.1": false, "127.0.0.1:": false, ":-1": false,
		":65536": false, "[fe80::1%eth0]:80": false, "1.2.3:80": false,
	} {
		if err := checkListen(addr); (err == nil) != ok {
			t.Errorf("checkListen(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

// TestD2_HugeDurationsRefused: a duration flag above a year is refused with exit 2, not accepted to
// overflow the server's clock arithmetic later (see pkg/server TestS9_HugeGraceDoesNotWrap).
func TestD2_HugeDurationsRefused(t *testing.T) {
	for _, f := range []string{"--shutdown-grace", "--keepalive-timeout", "--ws-ping-interval"} {
		if code, _, errOut := runCLI(t, "check", f, "2562047h47m16s"); code != exitUsage {
			t.Errorf("%s 2562047h47m16s: exit %d (%s), want %d", f, code, errOut, exitUsage)
		}
	}
}

// TestD1_UnknownEnvironmentVariableWarned: an EDGED_* variable that is no flag's twin (a misspelt name
// in /etc/default/edged) is named in a warning instead of being ignored without a word; the flag it
// meant keeps its default and the configuration is still accepted.
func TestD1_UnknownEnvironmentVariableWarned(t *testing.T) {
	t.Setenv("EDGED_SOCKET_QUEU", "1024")
	t.Setenv("EDGED_WORKERS", "3")
	code, out, errOut := runCLI(t, "check")
	if code != exitOK || !strings.Contains(out, "socket_queue=8\n") || !strings.Contains(out, "workers=3\n") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	if strings.Count(errOut, "EDGED_SOCKET_QUEU ") != 1 || strings.Contains(errOut, "EDGED_WORKERS") {
		t.Errorf("stderr %q; want one warning naming EDGED_SOCKET_QUEU and none for EDGED_WORKERS", errOut)
	}
}

// TestD2_WsAllowedOriginsChecked: an --ws-allowed-origins entry that no browser sends as its Origin
// (no scheme, a path or trailing slash, a default port) would never match, so that page's upgrades get
// 403 without a word: it is a bad value (exit 2, one line naming the flag). The forms browsers send,
// "*" and "null" are accepted.
func TestD2_WsAllowedOriginsChecked(t *testing.T) {
	for _, bad := range []string{"ui.example", "https://ui.example/", "https://ui.example/app", "https://",
		"https://ui.example:443", "http://ui.example:80", "https://ui.example:99999", "http://a.example,ui.example"} {
		code, _, errOut := runCLI(t, "check", "--ws-allowed-origins", bad)
		if code != exitUsage || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "edged: invalid --ws-allowed-origins:") {
			t.Errorf("--ws-allowed-origins %q: exit %d, stderr %q; want 2 and one line naming the flag", bad, code, errOut)
		}
	}
	for _, good := range []string{"*", "null", "https://ui.example", "http://10.0.0.2:8080, https://[fd00::1]:8443",
		"HTTPS://UI.EXAMPLE:8443", ""} {
		if code, _, errOut := runCLI(t, "check", "--ws-allowed-origins", good); code != exitOK {
			t.Errorf("--ws-allowed-origins %q: exit %d, stderr %q; want 0", good, code, errOut)
		}
	}
}

// fullFile fails every write as a file on a full disk does.
type fullFile struct{}

func (fullFile) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}
}

// TestExitStatusOutputFailure: a command whose output cannot be written (edged version > /dev/full)
// fails with status 1, not 2: nothing was wrong with the command line (README "Exit codes").
func TestExitStatusOutputFailure(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"check"}, {"completion", "bash"}} {
		var errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(fullFile{})
		root.SetErr(&errOut)
		if code := execute(context.Background(), root, args); code != exitFail || !strings.Contains(errOut.String(), "no space left") {
			t.Errorf("%v to a full disk: exit %d, stderr %q; want 1 and the write error", args, code, errOut.String())
		}
	}
}

// TestD6_LogTimesInUTC checks that both log formats write a record's time in UTC, ending in Z, whatever
// the local zone: the lines of a fleet's gateways line up, and the zone database is never loaded.
func TestD6_LogTimesInUTC(t *testing.T) {
	local := time.Local
	time.Local = time.FixedZone("UTC+5", 5*3600)
	defer func() { time.Local = local }()
	for _, format := range []string{"text", "json"} {
		s := defaultSettings()
		s.logFormat = format
		var b bytes.Buffer
		before := time.Now()
		newLogger(&s, &b).Info("edged started", "addr", "127.0.0.1:8080")
		m := regexp.MustCompile(`"?time"?[=:]"?([^" ]+)`).FindStringSubmatch(b.String())
		if m == nil {
			t.Fatalf("%s: no time in %q", format, b.String())
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || !strings.HasSuffix(m[1], "Z") {
			t.Fatalf("%s: time %q is not RFC 3339 in UTC (%v)", format, m[1], err)
		}
		if d := at.Sub(before); d < -time.Second || d > time.Minute {
			t.Errorf("%s: time %s is %s away from the clock", format, m[1], d)
		}
		if !strings.Contains(b.String(), "127.0.0.1:8080") {
			t.Errorf("%s: the record's attributes are lost: %q", format, b.String())
		}
	}
}
