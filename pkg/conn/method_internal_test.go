package conn

import "testing"

// TestH3_LookupMethod checks the method table: every known method maps to its constant and back to its
// name, and the match is exact and case-sensitive (CONTRACT H3).
func TestH3_LookupMethod(t *testing.T) {
	for m := MethodGet; int(m) < len(methodNames); m++ {
		if got := lookupMethod([]byte(m.String())); got != m {
			t.Errorf("lookupMethod(%q) = %v, want %v", m.String(), got, m)
		}
	}
	for _, other := range []string{"", "get", "Get", "GETS", "GE", "OTHER", "head", "POSt", "M-SEARCH", "PROPFIND", "CONNECTX", "DELET"} {
		if got := lookupMethod([]byte(other)); got != MethodOther {
			t.Errorf("lookupMethod(%q) = %v, want MethodOther", other, got)
		}
	}
	if s := Method(200).String(); s != "OTHER" {
		t.Errorf("Method(200).String() = %q, want OTHER (a bounded label value)", s)
	}
	b := []byte("OPTIONS")
	if n := testing.AllocsPerRun(100, func() { lookupMethod(b) }); n != 0 {
		t.Errorf("lookupMethod allocates %v times", n)
	}
}
