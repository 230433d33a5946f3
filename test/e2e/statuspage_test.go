//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// browserBin is headless Chromium (Debian package chromium).
const browserBin = "/usr/bin/chromium"

// devtools drives a headless Chromium through the DevTools protocol over --remote-debugging-pipe:
// JSON messages separated by NUL bytes, commands on the browser's fd 3, answers and events on its
// fd 4. Plain --dump-dom and --screenshot cannot wait for the status page's data: virtual time runs
// ahead of the daemon's one-second publications, so the page would be caught before its second sample.
type devtools struct {
	t    *testing.T
	cmd  *exec.Cmd
	in   *os.File // the browser's fd 3
	out  *bufio.Reader
	outF *os.File // the browser's fd 4, for deadlines
	id   int
	log  bytes.Buffer
	mu   sync.Mutex
}

// startBrowser starts headless Chromium; it is stopped at the end of t.
func startBrowser(t *testing.T) *devtools {
	t.Helper()
	requireTool(t, browserBin)
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &devtools{t: t, in: cmdW, out: bufio.NewReader(evR), outF: evR}
	b.cmd = exec.Command(browserBin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--force-color-profile=srgb", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-pipe", "about:blank")
	b.cmd.ExtraFiles = []*os.File{cmdR, evW}
	b.cmd.Stdout, b.cmd.Stderr = &lockedWriter{b: &b.log, mu: &b.mu}, &lockedWriter{b: &b.log, mu: &b.mu}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	evW.Close()
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmdW.Close()
		_ = b.cmd.Process.Kill()
		<-done
		evR.Close()
	})
	return b
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (b *devtools) stderr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// call sends a command (to a page session when session is set) and returns its result; events that
// arrive meanwhile are skipped.
func (b *devtools) call(session, method string, params any, result any) {
	b.t.Helper()
	b.id++
	msg := map[string]any{"id": b.id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		b.t.Fatalf("devtools %s: %v\n%s", method, err, b.stderr())
	}
	_ = b.outF.SetReadDeadline(time.Now().Add(waitLimit))
	for {
		line, err := b.out.ReadBytes(0)
		if err != nil {
			b.t.Fatalf("devtools %s: %v\n%s", method, err, b.stderr())
		}
		var reply struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line[:len(line)-1], &reply); err != nil {
			b.t.Fatalf("devtools %s: %v in %q", method, err, line)
		}
		if reply.ID != b.id {
			continue // an event
		}
		if reply.Error != nil {
			b.t.Fatalf("devtools %s: %s", method, reply.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(reply.Result, result); err != nil {
				b.t.Fatalf("devtools %s: %v in %s", method, err, reply.Result)
			}
		}
		return
	}
}

// open opens url in a new 1280x800 tab and returns the tab's session.
func (b *devtools) open(url string) string {
	b.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	s := attached.SessionID
	b.call(s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}, nil)
	b.call(s, "Page.enable", map[string]any{}, nil)
	b.call(s, "Page.navigate", map[string]any{"url": url}, nil)
	return s
}

// eval evaluates a JavaScript expression in the tab and decodes its JSON value into v.
func (b *devtools) eval(session, expr string, v any) {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	b.call(session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	if r.ExceptionDetails != nil {
		b.t.Fatalf("%s: %v", expr, r.ExceptionDetails)
	}
	if err := json.Unmarshal(r.Result.Value, v); err != nil {
		b.t.Fatalf("%s: %v in %s", expr, err, r.Result.Value)
	}
}

// screenshot captures the tab as PNG.
func (b *devtools) screenshot(session string) []byte {
	b.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	b.call(session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	return png
}

// statusDOM is what the status page shows, read from its DOM.
type statusDOM struct {
	Samples int               `json:"samples"`
	State   string            `json:"state"`
	Values  map[string]string `json:"values"`
	Totals  map[string]string `json:"totals"`
	Build   map[string]string `json:"build"`
	Config  map[string]string `json:"config"`
	Canvas  map[string]struct {
		Painted int `json:"painted"` // pixels with any paint
		Width   int `json:"width"`
	} `json:"canvas"`
}

const readStatusDOM = `(() => {
  if (document.readyState !== 'complete' || !document.getElementById('state')) return {samples: 0}; // still loading
  const tbl = id => Object.fromEntries([...document.querySelectorAll('#' + id + ' td[data-key]')].map(td => [td.dataset.key, td.textContent]));
  const values = {}, canvas = {};
  for (const el of document.querySelectorAll('.value[id]')) values[el.id] = el.textContent;
  for (const cv of document.querySelectorAll('canvas')) {
    const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    canvas[cv.id] = {painted: n, width: cv.width};
  }
  return {samples: Number(document.body.dataset.samples || 0), state: document.getElementById('state').textContent,
          values, totals: tbl('totals'), build: tbl('build'), config: tbl('config'), canvas};
})()`

// TestD3_StatusPageInChromium loads the built-in status page (no --webroot) in headless Chromium, waits
// until its charts have several samples from the edged/status topic, and checks that what it shows
// matches /metrics and the configuration; the screenshot must be a real picture of the page.
func TestD3_StatusPageInChromium(t *testing.T) {
	d := startDaemon(t, nil, "--workers", "3", "--topics-max", "20")
	b := startBrowser(t)
	tab := b.open(d.url("/"))

	var dom statusDOM
	if !poll(func() bool {
		b.eval(tab, readStatusDOM, &dom)
		return dom.Samples >= 3
	}, d.exited) {
		t.Fatalf("the page shows %d samples, want 3; DOM state %+v\nbrowser:\n%s", dom.Samples, dom, b.stderr())
	}
	m := scrape(t, d.url("/metrics"))
	shown := func(table map[string]string, key string) float64 {
		t.Helper()
		v, err := strconv.ParseFloat(string(bytes.ReplaceAll([]byte(table[key]), []byte(","), nil)), 64)
		if err != nil {
			t.Fatalf("the page shows %s = %q", key, table[key])
		}
		return v
	}
	if dom.State != "live" {
		t.Errorf("connection state %q, want live", dom.State)
	}
	// The page's own subscription is a WebSocket session, in the snapshots after it subscribed.
	if got := shown(dom.Values, "websocket_sessions"); got != 1 || m["edged_websocket_sessions_active"] != 1 {
		t.Errorf("websocket sessions: page %v, /metrics %v; want 1 (the page itself)", got, m["edged_websocket_sessions_active"])
	}
	if got := shown(dom.Totals, "topics"); got != m["edged_topics"] || got != 1 {
		t.Errorf("topics: page %v, /metrics %v; want 1 (edged/status)", got, m["edged_topics"])
	}
	if got := shown(dom.Config, "workers"); got != m["edged_workers"] || got != 3 {
		t.Errorf("workers: page %v, /metrics %v, want 3", got, m["edged_workers"])
	}
	if got := shown(dom.Config, "memory_budget"); got != m["edged_memory_budget_bytes"] {
		t.Errorf("memory budget: page %v, /metrics %v", got, m["edged_memory_budget_bytes"])
	}
	if got := shown(dom.Totals, "requests"); got < 1 || got > m["edged_http_request_duration_seconds_count"] {
		t.Errorf("requests: page %v, /metrics %v", got, m["edged_http_request_duration_seconds_count"])
	}
	if got := shown(dom.Totals, "connections_accepted"); got < 2 || got > m["edged_connections_accepted_total"] {
		t.Errorf("connections accepted: page %v, /metrics %v; the page alone opened two", got, m["edged_connections_accepted_total"])
	}
	if dom.Config["topics_max"] != "20" || dom.Config["mode"] != "socket-queue" || dom.Build["version"] != testVersion {
		t.Errorf("config/build shown: %v %v", dom.Config, dom.Build)
	}
	// Charts of values above zero show more than their baseline: a line, the area under it, the scale.
	for _, id := range []string{"connections_active", "websocket_sessions"} {
		if cv := dom.Canvas["c-"+id]; cv.Painted < 4*cv.Width {
			t.Errorf("chart %s: %d painted pixels on a %d-pixel-wide canvas: nothing drawn", id, cv.Painted, cv.Width)
		}
	}
	if len(dom.Canvas) != 6 {
		t.Errorf("%d charts, want 6", len(dom.Canvas))
	}

	pngData := b.screenshot(tab)
	shot := filepath.Join(t.TempDir(), "status.png")
	if err := os.WriteFile(shot, pngData, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("E2E_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "status.png"), pngData, 0o644)
	}
	checkScreenshot(t, pngData)
}

// checkScreenshot checks that a PNG is a 1280x800 picture with many colours (text, charts), not a
// blank or single-colour page.
func checkScreenshot(t *testing.T, data []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 800 {
		t.Errorf("screenshot is %dx%d, want 1280x800", b.Dx(), b.Dy())
	}
	colours := map[uint32]int{}
	var dark int
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>11)<<10|(g>>11)<<5|bl>>11]++
			if r+g+bl < 3*0x4000 {
				dark++
			}
		}
	}
	if len(colours) < 30 || dark < 500 {
		t.Errorf("screenshot has %d colours and %d dark pixels: not a rendered page", len(colours), dark)
	}
	t.Logf("screenshot: %d bytes, %d colours, %d dark pixels", len(data), len(colours), dark)
}
