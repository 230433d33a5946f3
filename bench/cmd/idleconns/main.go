// Command idleconns holds N idle keep-alive connections to an HTTP server, so that the server's memory
// per parked connection can be measured (wrk cannot: its connections are never idle). Each connection
// sends one request and reads the whole response, then sits idle for -hold. It prints
// "holding N" once every connection has had its response, and at the end "alive K/N": K connections
// still answered a second request, so the server did not close idle ones while they were measured.
//
//	idleconns -addr 127.0.0.1:8080 -n 1000 -hold 3s
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type idleConn struct {
	c net.Conn
	r *bufio.Reader
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	n := flag.Int("n", 1000, "connections")
	path := flag.String("path", "/healthz", "request path")
	hold := flag.Duration("hold", 3*time.Second, "how long the connections stay idle")
	par := flag.Int("parallel", 16, "connections opened at once")
	flag.Parse()

	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *addr + "\r\n\r\n")
	conns := make([]idleConn, *n)
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for range *par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				c, err := net.DialTimeout("tcp", *addr, 10*time.Second)
				if err != nil {
					log.Printf("dial: %v", err)
					failed.Add(1)
					continue
				}
				conns[i] = idleConn{c: c, r: bufio.NewReaderSize(c, 512)}
				if err := roundTrip(conns[i], req); err != nil {
					log.Printf("first request: %v", err)
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		log.Fatalf("%d of %d connections failed", f, *n)
	}
	fmt.Printf("holding %d\n", *n)
	os.Stdout.Sync()
	time.Sleep(*hold)

	var alive atomic.Int64
	next.Store(0)
	for range *par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				if roundTrip(conns[i], req) == nil {
					alive.Add(1)
				}
				conns[i].c.Close()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("alive %d/%d\n", alive.Load(), *n)
}

// roundTrip sends req and reads the whole response, leaving the connection ready for the next one.
func roundTrip(ic idleConn, req []byte) error {
	ic.c.SetDeadline(time.Now().Add(10 * time.Second))
	defer ic.c.SetDeadline(time.Time{})
	if _, err := ic.c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(ic.r, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = fmt.Errorf("server closes the connection")
	}
	return err
}
