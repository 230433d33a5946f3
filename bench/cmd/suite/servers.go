package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one running server under test: an edged, a Go peer or nginx.
type server struct {
	name string   // row label: "edged", "edged (defaults)", "net/http", ...
	argv []string // the command line, for the report
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	tail *tailBuffer   // the last lines of its output, for error messages
}

// tailBuffer keeps the last lines written to it.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 20 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// startTimeout bounds the wait for a server's address.
const startTimeout = 10 * time.Second

// start runs argv and waits until addrOf, fed every output line, returns an address (or, for nginx,
// until the address given accepts connections).
func start(ctx context.Context, name string, argv []string, addrOf func(line string) string, fixedAddr string) (*server, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	// The servers must not outlive the suite, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &server{name: name, argv: argv, cmd: cmd, done: make(chan struct{}), tail: &tailBuffer{}}
	found := make(chan string, 2)
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				s.tail.add(line)
				if addrOf != nil {
					if a := addrOf(line); a != "" {
						select {
						case found <- a:
						default:
						}
					}
				}
			}
		}()
	}
	go func() {
		readers.Wait()
		cmd.Wait()
		close(s.done)
	}()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	if fixedAddr != "" {
		for {
			if c, err := net.DialTimeout("tcp", fixedAddr, time.Second); err == nil {
				c.Close()
				s.addr = fixedAddr
				return s, nil
			}
			select {
			case <-s.done:
				return nil, fmt.Errorf("%s exited at start:\n%s", name, s.tail)
			case <-deadline.C:
				s.stop()
				return nil, fmt.Errorf("%s: %s does not accept connections", name, fixedAddr)
			case <-ctx.Done():
				s.stop()
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	select {
	case s.addr = <-found:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited at start:\n%s", name, s.tail)
	case <-deadline.C:
		s.stop()
		return nil, fmt.Errorf("%s printed no address:\n%s", name, s.tail)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// stop ends the server: SIGTERM, then SIGKILL if it has not exited within 5 seconds.
func (s *server) stop() {
	if s == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return
	case <-time.After(5 * time.Second):
	}
	s.cmd.Process.Kill()
	<-s.done
}

// pids returns the server's process and its children (nginx's workers).
func (s *server) pids() []int {
	pid := s.cmd.Process.Pid
	out := []int{pid}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// edgedAddr extracts the address from edged's JSON start-up line.
func edgedAddr(line string) string {
	if !strings.Contains(line, `"edged started"`) {
		return ""
	}
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "edged started" {
		return ""
	}
	return rec.Addr
}

// peerAddr extracts the address from bench/cmd/peer's "listening on ADDR".
func peerAddr(line string) string {
	a, ok := strings.CutPrefix(line, "listening on ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(a)
}

func startEdged(ctx context.Context, bin, name string, flags ...string) (*server, error) {
	argv := append([]string{bin, "serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, flags...)
	return start(ctx, name, argv, edgedAddr, "")
}

// startPeer runs bench/cmd/peer; env (NAME=VALUE) goes through env(1), so that the report's command line
// shows it and the process keeps its pid.
func startPeer(ctx context.Context, bin, name, kind, root string, env ...string) (*server, error) {
	argv := []string{bin, "-kind", kind, "-listen", "127.0.0.1:0", "-root", root}
	if len(env) > 0 {
		argv = append(append([]string{"env"}, env...), argv...)
	}
	return start(ctx, name, argv, peerAddr, "")
}

// nginxConf is the configuration of the nginx reference: two workers (one per core here), no logs,
// sendfile with tcp_nopush for static files (as Debian's own nginx.conf has them: the head and the
// file's first bytes leave in one segment, as edged's MSG_MORE head does), /healthz answered from the
// configuration. keepalive_requests is raised from
// its default of 1000 so that nginx, like the other servers, keeps each wrk connection for the whole
// run instead of reconnecting every 1000 requests.
const nginxConf = `worker_processes 2;
daemon off;
error_log stderr;
pid %[1]s/nginx.pid;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 1000000;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	default_type application/octet-stream;
	server {
		listen %[2]s;
		root %[3]s;
		location = /healthz {
			default_type "text/plain; charset=utf-8";
			return 200 "ok";
		}
	}
}
`

// startNginx writes a configuration into dir and runs nginx on a free loopback port.
func startNginx(ctx context.Context, dir, root string) (*server, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, addr, root), 0o644); err != nil {
		return nil, err
	}
	argv := []string{"nginx", "-e", "stderr", "-c", conf, "-p", dir}
	return start(ctx, "nginx", argv, nil, addr)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
