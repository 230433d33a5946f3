// Package topics is edged's small in-memory pub/sub for gateway telemetry (CONTRACT D4): named topics
// with a retained value, published over HTTP or WebSocket and pushed to WebSocket subscribers.
//
// Every bound is finite: the number of topics, the bytes of a value, and the subscribers (each is a
// WebSocket session of a bounded pool, whose queue is bounded too). A subscriber that cannot take a
// publish is dropped by its session (close 1008); publishers never wait for subscribers.
//
// A Hub is safe for concurrent use. Values handed to subscribers and to Get's callback are valid only
// during the call.
package topics

import (
	"errors"
	"strconv"
	"sync"
	"time"
)

// Limits and their defaults.
const (
	DefaultMaxTopics     = 64
	DefaultMaxValueBytes = 64 << 10
	MaxNameLen           = 128
	// MaxContentTypeLen is the longest content type a topic keeps (BufferBytes counts it).
	MaxContentTypeLen = 128
)

// Errors of the Hub.
var (
	ErrBadName            = errors.New("topics: name must be 1-128 characters of A-Z a-z 0-9 . _ - /")
	ErrTooManyTopics      = errors.New("topics: topic limit reached")
	ErrValueTooLarge      = errors.New("topics: value larger than the limit")
	ErrContentTypeTooLong = errors.New("topics: content type longer than 128 bytes")
)

// Subscriber receives the publishes of a topic. Deliver must not block; it returns false when the
// subscriber cannot take the message (it is then unsubscribed).
type Subscriber interface {
	Deliver(binary bool, payload []byte) bool
}

// Config bounds a Hub.
type Config struct {
	MaxTopics     int
	MaxValueBytes int
	// Reserved names the owner's own topic (the daemon's status topic), which does not count against
	// MaxTopics: it can always be published and never takes the place of a client's topic. It is
	// otherwise an ordinary topic, bounded by MaxValueBytes.
	Reserved string
}

func (cfg Config) withDefaults() Config {
	if cfg.MaxTopics <= 0 {
		cfg.MaxTopics = DefaultMaxTopics
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = DefaultMaxValueBytes
	}
	return cfg
}

// BufferBytes returns the most memory the retained values can take (CONTRACT D8).
func (cfg Config) BufferBytes() int {
	cfg = cfg.withDefaults()
	n := cfg.MaxTopics
	if cfg.Reserved != "" {
		n++
	}
	return n * (cfg.MaxValueBytes + MaxNameLen + MaxContentTypeLen)
}

// Hub holds the topics.
type Hub struct {
	cfg    Config
	mu     sync.Mutex
	topics map[string]*topic
	// held counts the topics with a retained value, the reserved one aside: what MaxTopics bounds. A
	// topic that only has subscribers holds no value and is bounded by its subscribers (sessions).
	held int
	// seq numbers every change of every topic, from a start that differs between runs, so that an
	// ETag is never reused: not after DELETE and re-create, not after a restart.
	seq uint64
	// etag holds the ETag Get hands to its callback; guarded by mu.
	etag [24]byte
}

type topic struct {
	value   []byte
	ctype   string
	binary  bool
	version uint64 // bumped at every publish; the ETag
	present bool   // has a retained value (a topic with subscribers may have none)
	subs    []Subscriber
}

// New returns an empty Hub.
func New(cfg Config) *Hub {
	return &Hub{cfg: cfg.withDefaults(), topics: make(map[string]*topic), seq: uint64(time.Now().UnixNano())}
}

// Config returns the effective configuration.
func (h *Hub) Config() Config { return h.cfg }

// ValidName reports whether name is a topic name: 1-128 characters of [A-Za-z0-9._-/].
func ValidName(name []byte) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for _, c := range name {
		ok := ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '.' || c == '_' || c == '-' || c == '/'
		if !ok {
			return false
		}
	}
	return true
}

// Len returns the number of topics with a retained value.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.held
	if t, ok := h.topics[h.cfg.Reserved]; ok && h.cfg.Reserved != "" && t.present {
		n++
	}
	return n
}

// reserved reports whether name is the owner's reserved topic.
func (h *Hub) reserved(name []byte) bool {
	return h.cfg.Reserved != "" && string(name) == h.cfg.Reserved
}

// lookup returns the topic named name, creating it (without a value) if create is set.
func (h *Hub) lookup(name []byte, create bool) (*topic, error) {
	if !ValidName(name) {
		return nil, ErrBadName
	}
	if t, ok := h.topics[string(name)]; ok {
		return t, nil
	}
	if !create {
		return nil, nil
	}
	t := &topic{}
	h.topics[string(name)] = t
	return t, nil
}

// Publish stores value as the topic's retained value and delivers it to its subscribers. created
// reports that the topic had no value before.
func (h *Hub) Publish(name []byte, ctype []byte, binary bool, value []byte) (created bool, err error) {
	if len(value) > h.cfg.MaxValueBytes {
		return false, ErrValueTooLarge
	}
	if len(ctype) > MaxContentTypeLen {
		return false, ErrContentTypeTooLong
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.lookup(name, true)
	if err != nil {
		return false, err
	}
	created = !t.present
	if created && !h.reserved(name) {
		// MaxTopics bounds the retained values: a topic that only has subscribers takes no room.
		if h.held >= h.cfg.MaxTopics {
			if len(t.subs) == 0 {
				delete(h.topics, string(name))
			}
			return false, ErrTooManyTopics
		}
		h.held++
	}
	if cap(t.value) < len(value) {
		// Exactly what the value needs: append's growth (1.25x past 256 bytes, rounded up to a size
		// class) would keep up to a quarter more than MaxValueBytes per topic, beyond the budget
		// BufferBytes states (CONTRACT D8).
		t.value = make([]byte, 0, len(value))
	}
	t.value = append(t.value[:0], value...)
	if string(ctype) != t.ctype {
		t.ctype = string(ctype)
	}
	t.binary, t.present = binary, true
	h.seq++
	t.version = h.seq
	kept := t.subs[:0]
	for _, s := range t.subs {
		if s.Deliver(binary, t.value) {
			kept = append(kept, s)
		}
	}
	clear(t.subs[len(kept):])
	t.subs = kept
	return created, nil
}

// Get calls fn with the topic's retained value, content type and ETag, and reports whether the topic
// has a value.
func (h *Hub) Get(name []byte, fn func(value []byte, ctype string, etag []byte)) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.lookup(name, false)
	if err != nil || t == nil || !t.present {
		return false, err
	}
	// The ETag is built in the Hub's buffer, under the lock: a buffer on the stack would escape to the
	// heap through fn, one allocation for every GET (CONTRACT H22).
	etag := append(h.etag[:0], '"')
	etag = strconv.AppendUint(etag, t.version, 36)
	etag = append(etag, '"')
	fn(t.value, t.ctype, etag)
	return true, nil
}

// Delete removes the topic's retained value and reports whether there was one. Subscribers stay.
func (h *Hub) Delete(name []byte) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.lookup(name, false)
	if err != nil || t == nil || !t.present {
		return false, err
	}
	t.present = false
	t.value = nil
	if !h.reserved(name) {
		h.held--
	}
	h.seq++
	t.version = h.seq
	if len(t.subs) == 0 {
		delete(h.topics, string(name))
	}
	return true, nil
}

// Subscribe adds s to the topic and delivers the retained value first, if any (CONTRACT D4). A topic
// may be subscribed before it has a value, whatever MaxTopics: it gets one when it is published.
func (h *Hub) Subscribe(name []byte, s Subscriber) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, err := h.lookup(name, true)
	if err != nil {
		return err
	}
	if t.present && !s.Deliver(t.binary, t.value) {
		return nil
	}
	t.subs = append(t.subs, s)
	return nil
}

// Unsubscribe removes s from the topic.
func (h *Hub) Unsubscribe(name []byte, s Subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[string(name)]
	if !ok {
		return
	}
	for i, x := range t.subs {
		if x == s {
			last := len(t.subs) - 1
			t.subs[i] = t.subs[last]
			t.subs[last] = nil
			t.subs = t.subs[:last]
			break
		}
	}
	if len(t.subs) == 0 && !t.present {
		delete(h.topics, string(name))
	}
}
