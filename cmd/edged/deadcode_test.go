package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLinkerDropsUnusedMethods guards the binary's size, and with it the daemon's idle RSS (the
// footprint goals of docs/BENCHMARKS.md): once any function reachable from main calls a method of
// reflect by a name or index not known at link time (reflect.Value.Method, MethodByName with a
// variable), the linker keeps every exported method of every type that reaches an interface. For
// edged that was 2.4 MB of the 9.8 MB binary and 1.5 MiB of idle RSS, pulled in by a MethodByName in
// google.golang.org/protobuf before v1.36.12 (through client_golang). The linker marks such functions
// <ReflectMethod> in its -dumpdep graph; none may be reachable.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links the daemon (-short)")
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "edged"), ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v\n%s", err, tail(out.String(), 2000))
	}

	// Each line is "from -> to", in the order the linker reached the symbols; the first "to" is
	// the symbol's reacher. Flags follow a symbol's name in angle brackets.
	flags := regexp.MustCompile(` <[^>]*>`)
	reacher := map[string]string{}
	var reflective []string
	edges := 0
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		edges++
		if strings.Contains(to, "<ReflectMethod>") {
			reflective = append(reflective, flags.ReplaceAllString(to, ""))
		}
		from, to = flags.ReplaceAllString(from, ""), flags.ReplaceAllString(to, "")
		if _, seen := reacher[to]; !seen {
			reacher[to] = from
		}
	}
	if edges < 1000 {
		t.Fatalf("the linker printed %d dependency edges: -dumpdep is not understood any more\n%s", edges, tail(out.String(), 2000))
	}
	for i, sym := range reflective {
		if i == 3 {
			t.Errorf("... and %d more", len(reflective)-i)
			break
		}
		path := []string{sym}
		for s := sym; len(path) < 12; {
			r, ok := reacher[s]
			if !ok || r == "_" {
				break
			}
			path = append(path, r)
			s = r
		}
		t.Errorf("%s uses reflect's methods by index or name, so the linker keeps every exported method; reached through\n  %s\n"+
			"(a method reached from its type, as reflect's own Methods iterators are, was kept by a MethodByName with that "+
			"constant name somewhere: `go build -ldflags=-v=2 2>&1 | grep 'generic iface method'` lists those names)",
			sym, strings.Join(path, "\n  <- "))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
