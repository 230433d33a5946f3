//go:build e2e

package e2e

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestD5_TraversalHostile complements TestD5_Traversal with the encodings and file types a scanner
// tries: overlong UTF-8 and %u escapes of dots and slashes, double-encoded backslashes, ";" and
// trailing-dot tricks, links chained out of the root, a FIFO (opening it must not block a worker) and a
// socket in the root, links to devices. Each is refused with 404 (400 where the request line itself
// is malformed), the secret never appears, /healthz is answered after each, and no descriptor is left
// open: a file opened for a refused request is closed (CONTRACT D5, H18).
func TestD5_TraversalHostile(t *testing.T) {
	root, _ := webroot(t)
	base := filepath.Dir(root)
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for link, target := range map[string]string{
		"chain1":   "chain2",                         // a chain that ends outside
		"chain2":   "sub/../up",                      // through a directory link that leaves
		"zero":     "/dev/zero",                      // a device outside
		"fifolink": "fifo",                           // a link to the FIFO inside
		"subup":    filepath.Join(base, "www", "up"), // absolute, back in and out again
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, nil, "--webroot", root, "--io-timeout", "2s")
	b := d.baseline(t)
	for _, tc := range []struct {
		target string
		code   int
	}{
		{"/%c0%ae%c0%ae/secret.txt", 404},
		{"/%c0%ae%c0%ae%c0%afsecret.txt", 404},
		{"/%e0%80%ae%e0%80%ae/secret.txt", 404},
		{"/%u002e%u002e/secret.txt", 400},
		{"/%%32%65%%32%65/secret.txt", 400},
		{"/%255c..%255csecret.txt", 404},
		{"/..%255c..%255csecret.txt", 404},
		{"/..;/secret.txt", 404},
		{"/sub/..;/..;/secret.txt", 404},
		{"/secret.txt.", 404},
		{"/secret.txt%20", 404},
		{"/./../secret.txt", 404},
		{"/sub/./../../secret.txt", 404},
		{"/.../secret.txt", 404},
		{"/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404},
		{"/up%2fsecret.txt", 404},
		{"/%2E%2e/%2e%2E/etc/passwd", 404},
		{"/chain1/secret.txt", 404},
		{"/subup/secret.txt", 404},
		{"/zero", 404},
		{"/fifo", 404},
		{"/fifolink", 404},
		{"/sock", 404},
		{"/index.html%00", 400},
		{"/%00", 400},
		{"/index.html%", 400},
		{"/index.html%zz", 400},
		{"/%ff%fe", 404},
		{"*", 400}, // asterisk-form outside OPTIONS (CONTRACT H3)
		{"http://other-host/../../secret.txt", 404},
		{"/" + string(bytes.Repeat([]byte("../"), 500)) + "secret.txt", 404},
	} {
		r := d.exchange(t, "GET "+tc.target+" HTTP/1.1\r\nHost: device\r\n\r\n", "GET")
		if r.StatusCode != tc.code && !(tc.code == 400 && r.StatusCode == 404) {
			t.Errorf("GET %s: %d, want %d", tc.target, r.StatusCode, tc.code)
		}
		if bytes.Contains(r.body, []byte("secret")) || bytes.Contains(r.body, []byte("root:")) {
			t.Errorf("GET %s: leaked %q", tc.target, r.body)
		}
		d.healthz(t)
	}
	// A link that stays inside is still served.
	if r := d.exchange(t, "GET /inside HTTP/1.1\r\nHost: device\r\n\r\n", "GET"); r.StatusCode != 200 {
		t.Errorf("GET /inside: %d", r.StatusCode)
	}
	d.checkLeaks(t, b)
}
