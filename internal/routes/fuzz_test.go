package routes

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/edged/edged/internal/topics"
)

// FuzzUnescapeName: any percent-encoded topic name decodes into at most the longest valid name, or is
// refused; never a panic. Decoding what every byte's escape encodes gives the bytes back.
func FuzzUnescapeName(f *testing.F) {
	for _, s := range []string{"sensors%2Ft1", "a%2Db", "%", "%2", "%zz", "plain", "%25%32%46"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, name []byte) {
		buf := make([]byte, 0, topics.MaxNameLen)
		got, ok := unescapeName(buf, name)
		if !ok {
			return
		}
		if len(got) > topics.MaxNameLen || len(got) > len(name) {
			t.Fatalf("%q: decoded to %d bytes", name, len(got))
		}
		var esc bytes.Buffer
		for _, c := range got {
			fmt.Fprintf(&esc, "%%%02X", c)
		}
		if again, ok := unescapeName(make([]byte, 0, topics.MaxNameLen), esc.Bytes()); !ok || !bytes.Equal(again, got) {
			t.Fatalf("%q: %q, and its full escape %q decodes to %q %v", name, got, esc.Bytes(), again, ok)
		}
	})
}
