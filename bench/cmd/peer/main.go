// Command peer runs the reference servers edged is compared with, doing the same work as edged:
// /healthz answers "ok", /echo echoes WebSocket messages, everything else comes from a static
// directory. It exists only for benchmarks.
//
//	peer -kind nethttp|fasthttp|gorilla -listen 127.0.0.1:0 -root DIR
//
// It prints "listening on ADDR" once ready.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/websocket"
	"github.com/valyala/fasthttp"
)

func main() {
	kind := flag.String("kind", "nethttp", "nethttp, fasthttp or gorilla (net/http with gorilla/websocket on /echo)")
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	root := flag.String("root", ".", "static directory")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	switch *kind {
	case "nethttp", "gorilla":
		log.Fatal(http.Serve(ln, netHTTP(*root)))
	case "fasthttp":
		fs := &fasthttp.FS{Root: *root, AcceptByteRange: true, Compress: false}
		static := fs.NewRequestHandler()
		log.Fatal(fasthttp.Serve(ln, func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/healthz" {
				ctx.SetContentType("text/plain; charset=utf-8")
				ctx.WriteString("ok")
				return
			}
			static(ctx)
		}))
	default:
		log.Fatalf("unknown kind %q", *kind)
	}
}

var upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}

func netHTTP(root string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			op, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(op, msg); err != nil {
				return
			}
		}
	})
	mux.Handle("/", http.FileServer(http.Dir(root)))
	return mux
}
