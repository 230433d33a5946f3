package server

import (
	"testing"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// TestS6_HeadDeadlineCountsFromFirstByte: on a connection that waited idle (no parking, so its worker
// waits for the first byte), the whole-head deadline starts at the head's first byte, not at the start
// of the wait.
func TestS6_HeadDeadlineCountsFromFirstByte(t *testing.T) {
	checkLeaks(t)
	headTimeout := scaled(400 * time.Millisecond)
	ts := startServer(t, Config{Workers: 1, SocketQueue: 1, ParkIdle: false,
		Conn: conn.Config{HeaderTimeout: headTimeout, KeepAliveTimeout: scaled(10 * time.Second)}}, echoPath)
	c := dial(t, ts.Addr())
	c.roundTrip("/1", "/1")
	time.Sleep(headTimeout + headTimeout/2) // idle between requests: longer than the head timeout
	c.send("GET /2 HTTP/1.1\r\n")
	time.Sleep(headTimeout / 4)
	c.send("Host: a\r\n\r\n")
	if resp, body := c.response(); resp.StatusCode != 200 || body != "/2" {
		t.Fatalf("got %d %q, want 200 /2 (the head took a quarter of its deadline)", resp.StatusCode, body)
	}
}
