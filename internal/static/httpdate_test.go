package static

import (
	"testing"
	"time"
)

// TestD5_HTTPDateFormats: If-Modified-Since is understood in all three HTTP-date formats a recipient
// must accept (RFC 9110 5.6.7), and anything else is no date at all.
func TestD5_HTTPDateFormats(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
	} {
		got, ok := parseHTTPDate([]byte(s))
		if !ok || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", s, got, ok, want)
		}
	}
	if got, ok := parseHTTPDate([]byte("Thu Feb 29 23:59:60 2024")); !ok || got.Day() != 1 || got.Month() != time.March {
		t.Errorf("a leap second: %v %v, want 1 Mar 2024 00:00:00", got, ok) // time.Date normalises it
	}
	// A two-digit year more than 50 years ahead is in the past century.
	yy := (time.Now().UTC().Year() + 51) % 100
	past := time.Now().UTC().Year() + 51 - 100
	if got, ok := parseHTTPDate([]byte("Monday, 01-Jan-" + twoDigits(yy) + " 00:00:00 GMT")); !ok || got.Year() != past {
		t.Errorf("RFC 850 year %02d: %v %v, want %d", yy, got, ok, past)
	}
	for _, s := range []string{
		"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun, 31 Apr 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Xyz 1994 08:49:37 GMT",
		"Sun, 06 Nov 94x4 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 06 08:49:37 1994 ",
		"Sun Nov  6 08:49:37 19x4", "Sun, 00 Nov 1994 08:49:37 GMT",
	} {
		if got, ok := parseHTTPDate([]byte(s)); ok {
			t.Errorf("%q: parsed as %v, want no date", s, got)
		}
	}
}

func twoDigits(n int) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }
