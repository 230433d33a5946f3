// Command latency times every request of a keep-alive HTTP/1.1 load, one request in flight per
// connection, each connection on a goroutine of its own, and prints the latency distribution: p50,
// p90, p99, p99.9, the maximum, and how many requests took over 1 and 2 ms. wrk -t1 serves all its
// connections from one thread, whose own queueing is part of every figure it gives, and on two cores
// that thread and the server share the processors: a tail of a few requests in a thousand shows here
// first. The last line is for bench/cmd/suite (make bench):
//
//	result rate=<req/s> requests=<n> p50_us=<µs> p99_us=<µs> p999_us=<µs> over1ms=<n>
//
//	latency -addr 127.0.0.1:8080 -c 4 -d 3s          # timed requests for 3 s after the warm-up
//	latency -addr 127.0.0.1:8080 -c 4 -n 30000       # 30,000 timed requests per connection
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	path := flag.String("path", "/healthz", "request path")
	conns := flag.Int("c", 4, "connections, one request in flight on each")
	n := flag.Int("n", 30000, "timed requests per connection (without -d)")
	d := flag.Duration("d", 0, "time requests for this long instead of counting them")
	warm := flag.Int("warmup", 2000, "untimed requests per connection first")
	flag.Parse()
	if err := run(*addr, *path, *conns, *n, *warm, *d); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func run(addr, path string, conns, n, warm int, d time.Duration) error {
	if conns < 1 || n < 1 || warm < 0 || d < 0 {
		return errors.New("-c and -n must be positive, -warmup and -d not negative")
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	lat := make([][]time.Duration, conns)
	errs := make([]error, conns)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if d == 0 {
			lat[i] = make([]time.Duration, 0, n)
		} else {
			lat[i] = make([]time.Duration, 0, 1<<16)
		}
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			lat[i], errs[i] = client(c, req, warm, n, d, lat[i])
		}()
	}
	start.Done()
	done.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return errors.New("no request timed")
	}
	// The rate is over the timed requests: their count over the time a connection spent waiting for
	// responses (the sum of its latencies), averaged over the connections; the client's own time
	// between a response and the next request is left out.
	var busy time.Duration
	for _, l := range lat {
		for _, x := range l {
			busy += x
		}
	}
	rate := float64(len(all)) / (busy.Seconds() / float64(conns))
	slices.Sort(all)
	over := func(d time.Duration) int { return len(all) - countAtMost(all, d) }
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	fmt.Printf("requests %d, %.0f req/s\n", len(all), rate)
	fmt.Printf("p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n", q(0.5), q(0.9), q(0.99), q(0.999), all[len(all)-1])
	fmt.Printf("over 1 ms %d  over 2 ms %d\n", over(time.Millisecond), over(2*time.Millisecond))
	fmt.Printf("result rate=%.0f requests=%d p50_us=%d p99_us=%d p999_us=%d over1ms=%d\n", rate, len(all),
		q(0.5).Microseconds(), q(0.99).Microseconds(), q(0.999).Microseconds(), over(time.Millisecond))
	return nil
}

// countAtMost returns how many of the sorted latencies are d or less.
func countAtMost(sorted []time.Duration, d time.Duration) int {
	i, _ := slices.BinarySearch(sorted, d+1)
	return i
}

// client sends req warm times untimed, then n times timed, or for d when d > 0, each after the
// previous response; it appends the latencies to lat.
func client(c net.Conn, req []byte, warm, n int, d time.Duration, lat []time.Duration) ([]time.Duration, error) {
	r := bufio.NewReaderSize(c, 64<<10)
	var end time.Time
	for i := 0; ; i++ {
		if i == warm {
			end = time.Now().Add(d)
		}
		if i >= warm && (d == 0 && i-warm == n || d > 0 && !time.Now().Before(end)) {
			return lat, nil
		}
		t := time.Now()
		if _, err := c.Write(req); err != nil {
			return lat, err
		}
		if err := readResponse(r); err != nil {
			return lat, err
		}
		if i >= warm {
			lat = append(lat, time.Since(t))
		}
	}
}

// readResponse reads one response with a Content-Length body.
func readResponse(r *bufio.Reader) error {
	length := -1
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
				return fmt.Errorf("unexpected status line %q", line)
			}
			continue
		}
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return err
			}
		}
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	_, err := r.Discard(length)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
