//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startSlowUpload opens a chunked upload to /echo with Expect: 100-continue and waits for the
// 100 Continue, which proves that the handler is running and reading the body.
func startSlowUpload(t *testing.T, d *daemon) (send func(string), br *bufio.Reader, finish func() rawResponse) {
	t.Helper()
	c := d.dial(t)
	br = bufio.NewReader(c)
	send = func(s string) {
		t.Helper()
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nContent-Type: text/x-slow\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response %q, %v; want 100 Continue", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q, %v", blank, err)
	}
	finish = func() rawResponse {
		t.Helper()
		r := readResponse(t, c, br, "POST", true)
		c.Close() // the server's lingering close (S8) ends at once on the client's FIN
		return r
	}
	return send, br, finish
}

// TestD7_SIGTERMDrainsInFlightRequest: SIGTERM while a chunked upload is still sending lets it
// complete (with Connection: close, S9), and then the daemon exits 0.
func TestD7_SIGTERMDrainsInFlightRequest(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--shutdown-grace", fmt.Sprint(waitLimit))
	send, _, finish := startSlowUpload(t, d)
	var want bytes.Buffer
	part := strings.Repeat("first part ", 100)
	send(fmt.Sprintf("%x\r\n%s\r\n", len(part), part))
	want.WriteString(part)

	d.signal(syscall.SIGTERM)
	d.waitLog("signal received")

	// The daemon is draining: the rest of the upload still arrives and is echoed in full.
	for i := range 20 {
		part := fmt.Sprintf("part %d after SIGTERM;", i)
		send(fmt.Sprintf("%x\r\n%s\r\n", len(part), part))
		want.WriteString(part)
	}
	send("0\r\n\r\n")
	r := finish()
	if r.StatusCode != 200 || !bytes.Equal(r.body, want.Bytes()) {
		t.Errorf("status %d, %d bytes echoed, want 200 and %d bytes", r.StatusCode, len(r.body), want.Len())
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/x-slow" {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(r.head, "\r\nConnection: close\r\n") || !r.closed {
		t.Errorf("a response during the drain must close the connection; closed=%v\n%s", r.closed, r.head)
	}
	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, d.stderrText())
	}
	d.waitLog("edged stopped")
}

// TestD7_SIGINTIdle: SIGINT with no request in flight exits 0 at once.
func TestD7_SIGINTIdle(t *testing.T) {
	d := startDaemon(t, nil)
	d.dial(t) // an idle connection must not hold the shutdown
	start := time.Now()
	d.signal(syscall.SIGINT)
	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0; stderr:\n%s", code, d.stderrText())
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("exiting took %v with only an idle connection open", elapsed)
	}
}

// TestD7_SecondSignalExitsAtOnce: a second signal during a drain ends the process without waiting for
// the request in flight or the rest of a long grace period.
func TestD7_SecondSignalExitsAtOnce(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--shutdown-grace", "10m")
	startSlowUpload(t, d)
	d.signal(syscall.SIGTERM)
	d.waitLog("signal received")
	select {
	case <-d.exited:
		t.Fatalf("the daemon exited on the first signal with a request in flight; stderr:\n%s", d.stderrText())
	default:
	}
	d.signal(syscall.SIGTERM)
	if code := d.wait(); code != 1 {
		t.Errorf("exit status %d after a second signal, want 1", code)
	}
}

// TestD7_LogReaderGoneDoesNotKillDrain: when whatever reads the daemon's stderr has gone (a log pipe
// whose reader exited, a journal stream that broke), a log line fails with EPIPE instead of killing
// the process with SIGPIPE: SIGTERM still drains the request in flight and the daemon exits 0.
func TestD7_LogReaderGoneDoesNotKillDrain(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, exited: make(chan struct{})}
	d.cmd = exec.Command(edgedBin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json",
		"--enable-echo", "--shutdown-grace", fmt.Sprint(waitLimit))
	d.cmd.Env = daemonEnv()
	d.cmd.Stderr = w
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
	_ = r.SetReadDeadline(time.Now().Add(waitLimit))
	line, err := bufio.NewReader(r).ReadString('\n')
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if err != nil || json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "edged started" {
		t.Fatalf("first log line %q, %v; want the start-up line", line, err)
	}
	d.addr = rec.Addr
	send, _, finish := startSlowUpload(t, d)
	r.Close() // the log reader goes away

	d.signal(syscall.SIGTERM) // logs "signal received" into the broken pipe
	send("5\r\nhello\r\n0\r\n\r\n")
	if resp := finish(); resp.StatusCode != 200 || string(resp.body) != "hello" {
		t.Errorf("status %d, body %q during the drain, want 200 hello", resp.StatusCode, resp.body)
	}
	if code := d.wait(); code != 0 { // wait fails the test if a signal killed the daemon
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestD7_SIGHUPDoesNotStopDaemon: SIGHUP (nginx's reload signal, or a closed terminal) neither kills
// edged nor cuts the request in flight; it is logged and ignored, and SIGTERM still drains.
func TestD7_SIGHUPDoesNotStopDaemon(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--shutdown-grace", fmt.Sprint(waitLimit))
	send, br, _ := startSlowUpload(t, d)
	d.signal(syscall.SIGHUP)
	d.waitLog("signal ignored: edged has no configuration to reload; restart it to apply a new one")
	send("5\r\nhello\r\n0\r\n\r\n")
	// The connection stays open (keep-alive): the response is read without waiting for a close.
	if r := readResponse(t, nil, br, "POST", false); r.StatusCode != 200 || string(r.body) != "hello" || r.Close {
		t.Errorf("after SIGHUP: status %d, body %q, Connection: close %v; want 200 hello on a kept-alive connection",
			r.StatusCode, r.body, r.Close)
	}
	d.healthz(t)
	d.signal(syscall.SIGTERM)
	if code := d.wait(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; stderr:\n%s", code, d.stderrText())
	}
}
