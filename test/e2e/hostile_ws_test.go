//go:build e2e

package e2e

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// auto as rawFrame's length: the payload's own length.
const auto = ^uint64(0)

// rawFrame builds one client frame with full control of every header bit: fin, the RSV bits (rsv is
// 0-7 for RSV1-3), the opcode, masking, and the length field (auto: the payload's own length).
func rawFrame(fin bool, rsv, op byte, masked bool, payload []byte, length uint64) []byte {
	if length == auto {
		length = uint64(len(payload))
	}
	b := []byte{op&0x0F | rsv<<4, 0}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case length <= 125:
		b[1] = byte(length)
	case length <= 0xFFFF:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(length))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, length)
	}
	if !masked {
		return append(b, payload...)
	}
	b[1] |= 0x80
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

func text(fin bool, p string) []byte      { return rawFrame(fin, 0, opText, true, []byte(p), auto) }
func cont(fin bool, p string) []byte      { return rawFrame(fin, 0, opCont, true, []byte(p), auto) }
func closeWith(p []byte) []byte           { return rawFrame(true, 0, opClose, true, p, auto) }
func closeCode(code int, r string) []byte { return closeWith(append(closeFrame(code), r...)) }
func join(frames ...[]byte) []byte        { return []byte(strings.Join(bytesToStrings(frames), "")) }

func bytesToStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

// TestW3_MalformedFramesGetTheirCloseCode: after a valid upgrade on /echo, each malformed frame (or
// sequence) gets the close code RFC 6455 and the contract name: 1002 for framing violations (unmasked,
// RSV bits, reserved opcodes, long or fragmented control frames, continuation misuse, a 64-bit length
// with the top bit set, bad close payloads and codes), 1007 for invalid UTF-8 in text or a close
// reason, 1009 for a message over --ws-max-message, refused from its header alone; then the daemon
// closes the TCP connection. Valid close codes are echoed. /healthz is answered after each, and once
// all are done no session, descriptor or goroutine is left (CONTRACT W3, W4, W6, W7).
func TestW3_MalformedFramesGetTheirCloseCode(t *testing.T) {
	d := startDaemon(t, nil, "--enable-echo", "--ws-max-conns", "4", "--socket-queue", "16")
	base := d.baseline(t)
	ping126 := make([]byte, 126)
	for _, tc := range []struct {
		name  string
		bytes []byte
		code  int
	}{
		{"W3 unmasked text", rawFrame(true, 0, opText, false, []byte("hi"), auto), 1002},
		{"W3 RSV1", rawFrame(true, 4, opText, true, []byte("hi"), auto), 1002},
		{"W3 RSV2", rawFrame(true, 2, opText, true, []byte("hi"), auto), 1002},
		{"W3 RSV3", rawFrame(true, 1, opBinary, true, []byte("hi"), auto), 1002},
		{"W3 reserved data opcode 3", rawFrame(true, 0, 0x3, true, []byte("hi"), auto), 1002},
		{"W3 reserved data opcode 7", rawFrame(true, 0, 0x7, true, nil, auto), 1002},
		{"W3 reserved control opcode B", rawFrame(true, 0, 0xB, true, nil, auto), 1002},
		{"W3 reserved control opcode F", rawFrame(true, 0, 0xF, true, nil, auto), 1002},
		{"W3 ping of 126 bytes", rawFrame(true, 0, opPing, true, ping126, auto), 1002},
		{"W3 fragmented ping", rawFrame(false, 0, opPing, true, []byte("p"), auto), 1002},
		{"W3 fragmented close", rawFrame(false, 0, opClose, true, closeFrame(1000), auto), 1002},
		{"W3 continuation first", cont(true, "orphan"), 1002},
		{"W3 text inside a fragmented text", join(text(false, "one"), text(true, "two")), 1002},
		{"W3 binary inside a fragmented text", join(text(false, "one"), rawFrame(true, 0, opBinary, true, []byte("2"), auto)), 1002},
		{"W3 64-bit length with the top bit", rawFrame(true, 0, opBinary, true, nil, 1<<63|5), 1002},
		{"W4 invalid UTF-8", text(true, "ok \xff"), 1007},
		{"W4 invalid UTF-8 across fragments", join(text(false, "\xe2\x82"), cont(true, "\x28")), 1007},
		{"W4 text ending inside a sequence", text(true, "euro \xe2\x82"), 1007},
		{"W4 overlong encoding", text(true, "\xc0\xaf"), 1007},
		{"W4 surrogate", text(true, "\xed\xa0\x80"), 1007},
		{"W4 code point above U+10FFFF", text(true, "\xf4\x90\x80\x80"), 1007},
		{"W4 close reason not UTF-8", closeCode(1000, "bye \xff"), 1007},
		{"W6 one-byte close payload", closeWith([]byte{0x03}), 1002},
		{"W6 close code 0", closeCode(0, ""), 1002},
		{"W6 close code 999", closeCode(999, ""), 1002},
		{"W6 close code 1004", closeCode(1004, ""), 1002},
		{"W6 close code 1005", closeCode(1005, ""), 1002},
		{"W6 close code 1006", closeCode(1006, ""), 1002},
		{"W6 close code 1015", closeCode(1015, ""), 1002},
		{"W6 close code 1016", closeCode(1016, ""), 1002},
		{"W6 close code 2999", closeCode(2999, ""), 1002},
		{"W6 close code 5000", closeCode(5000, ""), 1002},
		{"W6 close code 65535", closeCode(65535, ""), 1002},
		{"W7 one message of 1 MiB announced", rawFrame(true, 0, opBinary, true, nil, 1<<20), 1009},
		{"W7 length 2^62 announced", rawFrame(true, 0, opBinary, true, nil, 1<<62), 1009},
		{"W7 fragments adding up past the limit", join(rawFrame(false, 0, opBinary, true, make([]byte, 30000), auto),
			cont(false, strings.Repeat("x", 30000)), rawFrame(false, 0, opCont, true, nil, 30000)), 1009},
		{"W6 close 1000 echoed", closeCode(1000, "bye"), 1000},
		{"W6 close 1001 echoed", closeCode(1001, ""), 1001},
		{"W6 close 3000 echoed", closeCode(3000, "app"), 3000},
		{"W6 close 4999 echoed", closeCode(4999, ""), 4999},
		{"W6 empty close answered 1000", closeWith(nil), 1000},
	} {
		w := d.wsDialRaw(t, "/echo")
		// A valid message first: the session is up and echoing.
		if err := w.writeFrame(true, opText, []byte("warm")); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := w.readMessage(); err != nil || string(msg) != "warm" {
			t.Fatalf("%s: echo before the frame: %q %v", tc.name, msg, err)
		}
		start := time.Now()
		if _, err := w.c.Write(tc.bytes); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		_ = w.c.SetReadDeadline(time.Now().Add(waitLimit))
		code := -1
		for {
			_, op, p, err := w.readFrame()
			if err != nil {
				t.Errorf("%s: no close frame: %v", tc.name, err)
				break
			}
			if op == opClose {
				if len(p) >= 2 {
					code = int(binary.BigEndian.Uint16(p))
				}
				break
			}
		}
		if code != tc.code {
			t.Errorf("%s: close code %d, want %d", tc.name, code, tc.code)
		}
		// The daemon closes the TCP connection without waiting for more (our close is never sent for
		// protocol errors: the session is failed, RFC 6455 7.1.7).
		_, err := io.Copy(io.Discard, w.br)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: the connection stayed open after close %d", tc.name, code)
		}
		if took := time.Since(start); tc.code >= 1002 && tc.code <= 1009 && took > scaledBound(2*time.Second) {
			t.Errorf("%s: failing the session took %v", tc.name, took)
		}
		w.c.Close()
		d.healthz(t)
	}
	d.waitMetric(t, "edged_websocket_sessions_active", 0)
	d.checkLeaks(t, base)
}
