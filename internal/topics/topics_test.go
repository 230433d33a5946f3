package topics

import (
	"errors"
	"strings"
	"testing"
)

type recorder struct {
	got  []string
	full bool
}

func (r *recorder) Deliver(binary bool, p []byte) bool {
	if r.full {
		return false
	}
	kind := "t:"
	if binary {
		kind = "b:"
	}
	r.got = append(r.got, kind+string(p))
	return true
}

func TestD4_PublishGetDelete(t *testing.T) {
	h := New(Config{})
	created, err := h.Publish([]byte("sensors/temp"), []byte("text/plain"), false, []byte("21.5"))
	if err != nil || !created {
		t.Fatalf("first publish: created=%v err=%v", created, err)
	}
	created, err = h.Publish([]byte("sensors/temp"), []byte("text/plain"), false, []byte("22"))
	if err != nil || created {
		t.Fatalf("second publish: created=%v err=%v", created, err)
	}
	var val, ctype, etag string
	ok, err := h.Get([]byte("sensors/temp"), func(v []byte, ct string, e []byte) {
		val, ctype, etag = string(v), ct, string(e)
	})
	if !ok || err != nil || val != "22" || ctype != "text/plain" || etag == "" {
		t.Fatalf("get: ok=%v err=%v val=%q ctype=%q etag=%q", ok, err, val, ctype, etag)
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	if ok, _ := h.Delete([]byte("sensors/temp")); !ok {
		t.Fatal("delete of an existing topic reported none")
	}
	if ok, _ := h.Get([]byte("sensors/temp"), func([]byte, string, []byte) {}); ok {
		t.Fatal("deleted topic still has a value")
	}
	if ok, _ := h.Delete([]byte("sensors/temp")); ok {
		t.Fatal("second delete reported a value")
	}
}

func TestD4_ETagChangesOnPublish(t *testing.T) {
	h := New(Config{})
	var tags []string
	for _, v := range []string{"a", "b"} {
		h.Publish([]byte("x"), nil, false, []byte(v))
		h.Get([]byte("x"), func(_ []byte, _ string, e []byte) { tags = append(tags, string(e)) })
	}
	if tags[0] == tags[1] {
		t.Fatalf("ETag unchanged across publishes: %v", tags)
	}
}

func TestD4_Names(t *testing.T) {
	good := []string{"a", "A.b_c-d/e", strings.Repeat("x", 128)}
	bad := []string{"", strings.Repeat("x", 129), "a b", "a%2f", "ä", "a?b", "a\x00"}
	for _, n := range good {
		if !ValidName([]byte(n)) {
			t.Errorf("ValidName(%q) = false", n)
		}
	}
	h := New(Config{})
	for _, n := range bad {
		if ValidName([]byte(n)) {
			t.Errorf("ValidName(%q) = true", n)
		}
		if _, err := h.Publish([]byte(n), nil, false, nil); !errors.Is(err, ErrBadName) {
			t.Errorf("Publish(%q) err = %v, want ErrBadName", n, err)
		}
	}
}

func TestD4_Bounds(t *testing.T) {
	h := New(Config{MaxTopics: 2, MaxValueBytes: 4})
	if _, err := h.Publish([]byte("a"), nil, false, []byte("12345")); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversized value: err = %v", err)
	}
	h.Publish([]byte("a"), nil, false, []byte("1"))
	h.Publish([]byte("b"), nil, false, []byte("1"))
	if _, err := h.Publish([]byte("c"), nil, false, []byte("1")); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("third topic: err = %v", err)
	}
	h.Delete([]byte("a"))
	if _, err := h.Publish([]byte("c"), nil, false, []byte("1")); err != nil {
		t.Fatalf("topic after a delete freed room: %v", err)
	}
}

// TestD4_ReservedTopicOutsideTheLimit: the owner's reserved topic (the status topic) neither counts
// against MaxTopics nor is refused when the clients' topics fill it, and the budget counts it.
func TestD4_ReservedTopicOutsideTheLimit(t *testing.T) {
	cfg := Config{MaxTopics: 1, MaxValueBytes: 4, Reserved: "own/status"}
	h := New(cfg)
	if _, err := h.Publish([]byte("own/status"), nil, false, []byte("1")); err != nil {
		t.Fatalf("reserved topic: %v", err)
	}
	if _, err := h.Publish([]byte("a"), nil, false, []byte("1")); err != nil {
		t.Fatalf("the one client topic --topics-max 1 allows, with the reserved topic present: %v", err)
	}
	if _, err := h.Publish([]byte("b"), nil, false, []byte("1")); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("second client topic: err = %v, want ErrTooManyTopics", err)
	}
	h.Delete([]byte("own/status"))
	if _, err := h.Publish([]byte("b"), nil, false, []byte("1")); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("second client topic after the reserved one was deleted: err = %v, want ErrTooManyTopics", err)
	}
	if _, err := h.Publish([]byte("own/status"), nil, false, []byte("2")); err != nil {
		t.Fatalf("reserved topic with the clients' limit reached: %v", err)
	}
	if _, err := h.Publish([]byte("own/status"), nil, false, []byte("12345")); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("reserved topic above MaxValueBytes: err = %v", err)
	}
	if got, want := cfg.BufferBytes(), 2*(4+MaxNameLen+MaxContentTypeLen); got != want {
		t.Errorf("BufferBytes() = %d, want %d (the reserved topic included)", got, want)
	}
}

func TestD4_SubscribersGetRetainedThenPublishes(t *testing.T) {
	h := New(Config{})
	h.Publish([]byte("t"), nil, true, []byte("retained"))
	r := &recorder{}
	if err := h.Subscribe([]byte("t"), r); err != nil {
		t.Fatal(err)
	}
	h.Publish([]byte("t"), nil, false, []byte("next"))
	want := []string{"b:retained", "t:next"}
	if strings.Join(r.got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", r.got, want)
	}
	h.Unsubscribe([]byte("t"), r)
	h.Publish([]byte("t"), nil, false, []byte("after"))
	if len(r.got) != 2 {
		t.Fatalf("unsubscribed subscriber still got %v", r.got)
	}
}

func TestD4_FullSubscriberIsDropped(t *testing.T) {
	h := New(Config{})
	slow, fast := &recorder{}, &recorder{}
	h.Subscribe([]byte("t"), slow)
	h.Subscribe([]byte("t"), fast)
	slow.full = true
	h.Publish([]byte("t"), nil, false, []byte("1"))
	slow.full = false
	h.Publish([]byte("t"), nil, false, []byte("2"))
	if len(slow.got) != 0 || len(fast.got) != 2 {
		t.Fatalf("slow got %v (want none after refusing), fast got %v", slow.got, fast.got)
	}
}

// TestD4_ETagNotReusedAfterDeleteRecreate: a value published after DELETE must not carry the ETag of
// the deleted one, or a client revalidating with If-None-Match gets 304 for a different value.
func TestD4_ETagNotReusedAfterDeleteRecreate(t *testing.T) {
	h := New(Config{})
	name := []byte("a")
	etag := func() string {
		var e string
		h.Get(name, func(_ []byte, _ string, b []byte) { e = string(b) })
		return e
	}
	h.Publish(name, []byte("text/plain"), false, []byte("old"))
	old := etag()
	h.Delete(name)
	h.Publish(name, []byte("text/plain"), false, []byte("new"))
	if now := etag(); now == old {
		t.Fatalf("value changed from %q to %q but the ETag stayed %s", "old", "new", now)
	}
}

// TestD4_SubscriptionTakesNoTopicRoom: --topics-max bounds the topics with a retained value (those
// edged_topics counts). A subscription to a topic nobody has published yet holds no value, so it
// neither makes publishers get 507 (ErrTooManyTopics) below the limit nor is refused itself.
func TestD4_SubscriptionTakesNoTopicRoom(t *testing.T) {
	h := New(Config{MaxTopics: 2, MaxValueBytes: 4, Reserved: "own/status"})
	waiting := []*recorder{{}, {}, {}}
	for i, r := range waiting {
		if err := h.Subscribe([]byte("later/"+string(rune('a'+i))), r); err != nil {
			t.Fatalf("subscription %d to a topic without a value: %v", i, err)
		}
	}
	for _, name := range []string{"a", "b"} {
		if _, err := h.Publish([]byte(name), nil, false, []byte("1")); err != nil {
			t.Fatalf("topic %s of the 2 allowed, with subscriptions waiting: %v (Len %d)", name, err, h.Len())
		}
	}
	if _, err := h.Publish([]byte("later/a"), nil, false, []byte("1")); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("a third topic with a value: err = %v, want ErrTooManyTopics", err)
	}
	if len(waiting[0].got) != 0 {
		t.Fatalf("a refused publish was delivered: %v", waiting[0].got)
	}
	if n := h.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
	// A subscription made with the limit reached still waits for its value.
	late := &recorder{}
	if err := h.Subscribe([]byte("later/z"), late); err != nil {
		t.Fatalf("subscription with the limit reached: %v", err)
	}
	h.Delete([]byte("a"))
	if created, err := h.Publish([]byte("later/z"), nil, false, []byte("v")); err != nil || !created {
		t.Fatalf("publish after a delete freed room: created %v, err %v", created, err)
	}
	if strings.Join(late.got, ",") != "t:v" {
		t.Fatalf("subscriber got %v, want the publish", late.got)
	}
	// A refused publish to a topic nobody follows leaves nothing behind; the reserved topic stays
	// outside the count.
	if _, err := h.Publish([]byte("c"), nil, false, []byte("1")); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("third topic: %v", err)
	}
	h.Publish([]byte("own/status"), nil, false, []byte("s"))
	h.Delete([]byte("own/status"))
	h.Delete([]byte("b"))
	if _, err := h.Publish([]byte("c"), nil, false, []byte("1")); err != nil {
		t.Fatalf("topic after a delete freed room: %v", err)
	}
	if n := h.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

// TestD8_RetainedValueWithinBudget: a topic whose value grows keeps no more than MaxValueBytes for it,
// as BufferBytes counts. append's growth would keep 1.25 times the old capacity: 90,000 bytes then
// 100,000 left a 114,688-byte buffer under --topic-max-bytes 100000.
func TestD8_RetainedValueWithinBudget(t *testing.T) {
	const limit = 100000
	h := New(Config{MaxValueBytes: limit})
	for _, n := range []int{1, 300, 90000, 100000, 5, limit} {
		if _, err := h.Publish([]byte("t"), nil, true, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if c := cap(h.topics["t"].value); c > limit {
			t.Fatalf("after a %d-byte value the topic holds a %d-byte buffer, above MaxValueBytes %d", n, c, limit)
		}
	}
}
