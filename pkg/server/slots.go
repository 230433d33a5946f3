package server

import "sync/atomic"

// slotState is where a slot (an acceptor, CONTRACT S4) is in its cycle:
//
//	free -> queued -> serving -> parked -> queued -> ... -> lingering -> free
//	                  serving -> free | lingering | unbound -> free
//
// With parking a new socket starts parked; without it, queued.
type slotState uint8

const (
	slotFree      slotState = iota // armed: may take one accepted socket
	slotQueued                     // in the ready queue, waiting for a worker
	slotServing                    // owned by a worker
	slotParked                     // idle keep-alive socket, in the parked list, owned by the poller
	slotLingering                  // shut down for writing, drained by the poller before close (S8)
	slotUnbound                    // taken over from HTTP; owned by whoever holds its release function
)

// noSlot ends a slot list.
const noSlot int32 = -1

// slot is one acceptor and the socket it holds. Slots live in one array allocated at start; a few
// dozen bytes each, so Q may be large (CONTRACT S4). Every field is guarded by the server's slot lock,
// except fd while a worker serves the slot (the worker then owns it), and hup, which is atomic.
type slot struct {
	fd        int32
	gen       uint32 // bumped at every close: events carry it, so a late event for a reused fd is dropped (S8)
	state     slotState
	pendingIn bool  // a readable event arrived while the slot was queued or serving
	counted   bool  // queued while a worker waited on the queue: counted in Server.woken until taken
	worker    int32 // the serving worker
	since     int64 // parked: idle since; lingering: drain deadline (nanoseconds on the server clock)
	drainLeft int32 // lingering: bytes that may still be discarded
	prev      int32 // links of the parked or lingering list
	next      int32
	client    clientKey    // for the per-client limit (S14)
	taken     *TakenStream // unbound: the stream the poller wakes
	// hup: an event said that the peer closed its side or that the socket failed. The stream reading
	// the socket checks it without the lock before it trusts a short read to have drained the socket.
	hup atomic.Bool
}

// slotList is an intrusive doubly linked list of slots, oldest first. The parked list is ordered by
// idle time (its head expires and is evicted first, CONTRACT S6, S13); the lingering list by deadline.
// Every operation is O(1) and allocates nothing.
type slotList struct {
	head, tail int32
	n          int
}

func newSlotList() slotList { return slotList{head: noSlot, tail: noSlot} }

func (l *slotList) pushBack(slots []slot, i int32) {
	s := &slots[i]
	s.prev, s.next = l.tail, noSlot
	if l.tail == noSlot {
		l.head = i
	} else {
		slots[l.tail].next = i
	}
	l.tail = i
	l.n++
}

func (l *slotList) remove(slots []slot, i int32) {
	s := &slots[i]
	if s.prev == noSlot {
		l.head = s.next
	} else {
		slots[s.prev].next = s.next
	}
	if s.next == noSlot {
		l.tail = s.prev
	} else {
		slots[s.next].prev = s.prev
	}
	s.prev, s.next = noSlot, noSlot
	l.n--
}

// clientKey identifies a client for the per-client limit (CONTRACT S14): an IPv4 address, or the /64
// prefix of an IPv6 address. The first byte tells the family apart.
type clientKey [9]byte

func clientKeyFrom4(a [4]byte) clientKey {
	return clientKey{4, a[0], a[1], a[2], a[3]}
}

func clientKeyFrom6(a [16]byte) clientKey {
	if isV4Mapped(a) {
		return clientKeyFrom4([4]byte{a[12], a[13], a[14], a[15]})
	}
	var k clientKey
	k[0] = 6
	copy(k[1:], a[:8])
	return k
}

func isV4Mapped(a [16]byte) bool {
	for _, b := range a[:10] {
		if b != 0 {
			return false
		}
	}
	return a[10] == 0xff && a[11] == 0xff
}
