package conn_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/edged/edged/pkg/conn"
)

// memStream is an in-memory conn.Stream driven by a script: the input bytes, the pieces they arrive in,
// and what happens when they run out. It captures what the connection writes and counts the calls.
// It is reusable without allocating (rewind), so that it can serve AllocsPerRun loops.
type memStream struct {
	in  []byte
	pos int

	// How the input arrives. maxRead > 0 caps every Read (1: one byte per Read); split > 0 makes the
	// input two pieces, [0,split) and [split,len): no Read crosses the boundary.
	maxRead int
	split   int
	// gates hold input back: the bytes from gate.at on are readable only once gate.open reports true
	// (for example once the output holds a 100 Continue). A closed gate behaves like a peer that sent
	// everything it will send for now.
	gates []gate

	// holdOpen makes a Read on exhausted input behave like an idle socket: it blocks until the read
	// deadline and returns an error wrapping os.ErrDeadlineExceeded. Without it the Read returns io.EOF.
	// With realTime false the wait is simulated (the clock jumps to the deadline at once); with realTime
	// true the Read really sleeps until the deadline.
	holdOpen bool
	realTime bool
	// readErr, when set, is what a Read on exhausted input returns instead of io.EOF (a peer that
	// reset the connection: syscall.ECONNRESET).
	readErr error

	out []byte
	// writeLimit > 0 makes writes fail with EPIPE once that many bytes were accepted (a peer that left).
	writeLimit int
	discard    bool // count written bytes but keep none (benchmarks)
	outLen     int  // total bytes accepted, also when discarding

	reads, writes int
	// Deadlines as the connection set them, and the one a blocked Read waited for.
	readDeadline, writeDeadline time.Time
	blockedDeadline             time.Time
	blocks                      int         // Reads that waited for a deadline
	blockedForever              bool        // a Read would have blocked with no deadline set
	logDeadlines                bool        // keep every read deadline set, in deadlineLog
	deadlineLog                 []time.Time // with the input position at which each was set in posLog
	posLog                      []int
}

// gate holds the input back from offset at until open reports true.
type gate struct {
	at   int
	open func(s *memStream) bool
}

// errNoDeadline is what a memStream returns instead of blocking forever: a connection must always
// have a deadline when it waits for a peer (CONTRACT S6).
var errNoDeadline = errors.New("memstream: read would block forever: no deadline set")

var _ conn.Stream = (*memStream)(nil)

func newMemStream(in string) *memStream { return &memStream{in: []byte(in)} }

// rewind makes the stream replay its input from the start and forget its output, keeping capacity.
func (s *memStream) rewind() {
	s.pos = 0
	s.out = s.out[:0]
	s.outLen = 0
	s.reads, s.writes = 0, 0
	s.blocks = 0
	s.blockedForever = false
}

// limit is the end of the input readable now.
func (s *memStream) limit() int {
	end := len(s.in)
	if s.split > 0 && s.pos < s.split && s.split < end {
		end = s.split
	}
	for _, g := range s.gates {
		if g.at < end && s.pos <= g.at && !g.open(s) {
			end = g.at
		}
	}
	return end
}

func (s *memStream) Read(p []byte) (int, error) {
	s.reads++
	if len(p) == 0 {
		return 0, nil
	}
	if s.realTime && !s.readDeadline.IsZero() && !time.Now().Before(s.readDeadline) {
		return 0, os.ErrDeadlineExceeded
	}
	end := s.limit()
	if s.pos >= end {
		if s.pos >= len(s.in) && s.readErr != nil {
			return 0, s.readErr
		}
		if s.pos >= len(s.in) && !s.holdOpen {
			return 0, io.EOF
		}
		if s.readDeadline.IsZero() {
			s.blockedForever = true
			return 0, errNoDeadline
		}
		s.blocks++
		s.blockedDeadline = s.readDeadline
		if s.realTime {
			time.Sleep(time.Until(s.readDeadline))
		}
		return 0, os.ErrDeadlineExceeded
	}
	n := end - s.pos
	if s.maxRead > 0 && n > s.maxRead {
		n = s.maxRead
	}
	n = copy(p, s.in[s.pos:s.pos+n])
	s.pos += n
	return n, nil
}

func (s *memStream) Write(p []byte) (int, error) {
	s.writes++
	n := len(p)
	var err error
	if s.writeLimit > 0 && s.outLen+n > s.writeLimit {
		n = s.writeLimit - s.outLen
		err = syscall.EPIPE
	}
	if !s.discard {
		s.out = append(s.out, p[:n]...)
	}
	s.outLen += n
	return n, err
}

func (s *memStream) SetReadDeadline(t time.Time) {
	s.readDeadline = t
	if s.logDeadlines {
		s.deadlineLog = append(s.deadlineLog, t)
		s.posLog = append(s.posLog, s.pos)
	}
}

func (s *memStream) SetWriteDeadline(t time.Time) { s.writeDeadline = t }

// remaining returns the input the connection has not read.
func (s *memStream) remaining() []byte { return s.in[s.pos:] }

// outContains reports whether the output so far holds sub.
func (s *memStream) outContains(sub string) bool { return bytes.Contains(s.out, []byte(sub)) }
