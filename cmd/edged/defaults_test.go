package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// envFile is the EnvironmentFile the package installs as /etc/default/edged.
const envFile = "../../deploy/default/edged"

// daemonFlags returns the flags serve and check share, with their defaults.
func daemonFlags() *pflag.FlagSet {
	s := defaultSettings()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	s.register(fs)
	return fs
}

// TestEnvironmentFileListsEveryFlag: deploy/default/edged has one commented-out line
// "#EDGED_<FLAG>=<default>" per flag, with the flag's default, and no line for a variable that no flag
// reads (CONTRACT D1).
func TestEnvironmentFileListsEveryFlag(t *testing.T) {
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	fs := daemonFlags()
	byEnv := map[string]*pflag.Flag{}
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden { // debugging aids have no environment twin
			byEnv[envName(f.Name)] = f
		}
	})

	line := regexp.MustCompile(`^\s*#?\s*(EDGED_[A-Z0-9_]*)=(.*)$`)
	seen := map[string]int{}
	for i, l := range strings.Split(string(data), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			if strings.Contains(l, "EDGED_") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
				t.Errorf("%s:%d: %q sets an EDGED_ variable in a form the test does not know", envFile, i+1, l)
			}
			continue
		}
		name, value := m[1], m[2]
		seen[name]++
		f := byEnv[name]
		if f == nil {
			t.Errorf("%s:%d: %s names no flag", envFile, i+1, name)
			continue
		}
		if !strings.HasPrefix(l, "#") {
			t.Errorf("%s:%d: %s is set; every line must be commented out so that the defaults apply", envFile, i+1, name)
		}
		// The value shown must be the default: parsed by the flag itself, it prints as the default.
		if value == "" {
			if f.DefValue != "" {
				t.Errorf("%s:%d: %s is empty, the default is %q", envFile, i+1, name, f.DefValue)
			}
			continue
		}
		probe := daemonFlags().Lookup(f.Name)
		if err := probe.Value.Set(value); err != nil {
			t.Errorf("%s:%d: %s=%s is not a valid value: %v", envFile, i+1, name, value, err)
		} else if probe.Value.String() != f.DefValue {
			t.Errorf("%s:%d: %s=%s, the default is %s", envFile, i+1, name, value, f.DefValue)
		}
	}
	for env, f := range byEnv {
		switch seen[env] {
		case 1:
		case 0:
			t.Errorf("%s has no line for --%s (%s)", envFile, f.Name, env)
		default:
			t.Errorf("%s has %d lines for %s", envFile, seen[env], env)
		}
	}
}

// TestHelpShowsEveryDefault: every flag's --help line names its default, zero values included, which
// pflag would leave out.
func TestHelpShowsEveryDefault(t *testing.T) {
	for _, cmd := range []string{"serve", "check"} {
		code, out, _ := runCLI(t, cmd, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		daemonFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "--"+f.Name+" ") {
					want := "(default " + f.DefValue + ")"
					switch f.DefValue {
					case "":
						want = "(default none)"
					case "info", "text":
						want = `(default "` + f.DefValue + `")`
					}
					if !strings.HasSuffix(l, want) {
						t.Errorf("%s --help: --%s: %q does not end with %s", cmd, f.Name, l, want)
					}
					return
				}
			}
			t.Errorf("%s --help does not list --%s", cmd, f.Name)
		})
	}
}

func TestListenOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:9100", "127.0.0.1:9100", true},
		{":8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", ":8080", true},
		{"[::]:8080", "10.0.0.1:8080", true},
		{"0.0.0.0:8080", "localhost:8080", true},
		{"localhost:8080", "127.0.0.1:8080", true},
		{"[::1]:8080", "[::1]:08080", true},
		{"0.0.0.0:8080", "[::1]:8080", false},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{"127.0.0.1:8080", "127.0.0.1:9100", false},
		{":0", ":0", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
	} {
		if got := listenOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("listenOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestMetricsListenOverlapRefused: --metrics-listen on the port of --listen is a usage error (exit 2,
// one line naming the flag), for serve and check, from flags and from the environment.
func TestMetricsListenOverlapRefused(t *testing.T) {
	for _, cmd := range []string{"serve", "check"} {
		code, _, errOut := runCLI(t, cmd, "--listen", "127.0.0.1:9", "--metrics-listen", ":9")
		if code != exitUsage || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "edged: invalid --metrics-listen: ") {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, errOut)
		}
	}
	t.Setenv("EDGED_METRICS_LISTEN", "localhost:8080")
	if code, _, errOut := runCLI(t, "check"); code != exitUsage || !strings.Contains(errOut, "--metrics-listen") {
		t.Errorf("EDGED_METRICS_LISTEN=localhost:8080 with the default --listen :8080: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := runCLI(t, "check", "--metrics-listen", "127.0.0.1:9100"); code != exitOK || !strings.Contains(out, "metrics_listen=127.0.0.1:9100\n") {
		t.Errorf("a flag over the variable: exit %d\n%s", code, out)
	}
}
