package topics

import (
	"regexp"
	"testing"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,128}$`)

// FuzzValidName compares ValidName, which sees every name a client puts in /topics/{name}, with the
// grammar it documents (CONTRACT D4): 1-128 characters of [A-Za-z0-9._-/].
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "sensors/t1", "a b", "", "é", "a\x00", "../x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, name []byte) {
		if got, want := ValidName(name), nameRE.Match(name); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
		}
	})
}
