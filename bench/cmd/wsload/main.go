// Command wsload measures WebSocket echo throughput: C connections each send a message of S bytes,
// wait for its echo and repeat, for D. It prints messages per second (round trips) and the
// connections' p50 and p99 round-trip latency, as one line of key=value pairs, with its own CPU time
// (client_cpu_ms, user + system) and the run's length (secs), which tell whether the client was the
// bottleneck.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/echo", "WebSocket URL")
	conns := flag.Int("c", 16, "connections")
	size := flag.Int("s", 64, "message size in bytes")
	dur := flag.Duration("d", 5*time.Second, "duration")
	flag.Parse()
	msg := bytes.Repeat([]byte("x"), *size)
	var (
		mu    sync.Mutex
		lats  []time.Duration
		total int
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(*dur)
	for i := 0; i < *conns; i++ {
		c, _, err := websocket.DefaultDialer.Dial(*url, nil)
		if err != nil {
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			var local []time.Duration
			got := make([]byte, len(msg))
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					log.Fatal(err)
				}
				// The echo is read into one reused buffer: ReadMessage would allocate a new slice per
				// message, and the client's garbage would take CPU from the server under test.
				_, r, err := c.NextReader()
				if err != nil {
					log.Fatalf("echo: %v", err)
				}
				n, err := io.ReadFull(r, got)
				if err != nil || n != len(msg) {
					log.Fatalf("echo: %v (%d bytes)", err, n)
				}
				if k, _ := r.Read(got[:1]); k != 0 {
					log.Fatalf("echo: longer than %d bytes", len(msg))
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, local...)
			total += len(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	p := func(q float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[int(q*float64(len(lats)-1))]
	}
	secs := time.Since(start).Seconds()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("msgs_per_sec=%.0f p50_us=%d p99_us=%d msgs=%d client_cpu_ms=%d secs=%.3f\n", float64(total)/dur.Seconds(),
		p(0.5).Microseconds(), p(0.99).Microseconds(), total, cpu.Milliseconds(), secs)
}
