package static

import (
	"bytes"
	"time"
)

// parseHTTPDate parses an HTTP-date in any of the three formats a recipient must accept (RFC 9110
// 5.6.7), without allocating:
//
//	Sun, 06 Nov 1994 08:49:37 GMT   IMF-fixdate, the one senders use
//	Sunday, 06-Nov-94 08:49:37 GMT  the obsolete RFC 850 format, with a two-digit year
//	Sun Nov  6 08:49:37 1994        the obsolete asctime format
//
// The weekday is not checked against the date. ok is false for anything else.
func parseHTTPDate(b []byte) (time.Time, bool) {
	var (
		day, month, year, hour, min, sec int
		dok, yok, cok                    bool
	)
	switch comma := bytes.IndexByte(b, ','); {
	case comma == 3 && len(b) == 29: // IMF-fixdate
		if b[4] != ' ' || b[7] != ' ' || b[11] != ' ' || b[16] != ' ' || string(b[25:]) != " GMT" {
			return time.Time{}, false
		}
		day, dok = num(b[5:7])
		month = monthOf(b[8:11])
		year, yok = num(b[12:16])
		hour, min, sec, cok = clock(b[17:25])
	case comma > 3: // RFC 850
		r := b[comma+1:]
		if len(r) != 23 || r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' || string(r[19:]) != " GMT" {
			return time.Time{}, false
		}
		day, dok = num(r[1:3])
		month = monthOf(r[4:7])
		var yy int
		if yy, yok = num(r[8:10]); yok {
			// RFC 9110 5.6.7: a two-digit year more than 50 years in the future is the most
			// recent past year with the same last two digits.
			now := time.Now().UTC().Year()
			if year = now - now%100 + yy; year > now+50 {
				year -= 100
			}
		}
		hour, min, sec, cok = clock(r[11:19])
	case comma < 0 && len(b) == 24: // asctime, the day padded with a space
		if b[3] != ' ' || b[7] != ' ' || b[10] != ' ' || b[19] != ' ' {
			return time.Time{}, false
		}
		month = monthOf(b[4:7])
		d := b[8:10]
		if d[0] == ' ' {
			d = d[1:]
		}
		day, dok = num(d)
		hour, min, sec, cok = clock(b[11:19])
		year, yok = num(b[20:24])
	default:
		return time.Time{}, false
	}
	if !dok || !yok || !cok || month == 0 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 {
		return time.Time{}, false
	}
	d := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if d.Day() != day { // 31 Apr and the like
		return time.Time{}, false
	}
	// A leap second (:60) counts as the next second's start, as time.Date would have it.
	return d.Add(time.Duration(hour)*time.Hour + time.Duration(min)*time.Minute + time.Duration(sec)*time.Second), true
}

// num parses decimal digits.
func num(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// clock parses "hh:mm:ss".
func clock(b []byte) (hour, min, sec int, ok bool) {
	if len(b) != 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := num(b[0:2])
	m, ok2 := num(b[3:5])
	s, ok3 := num(b[6:8])
	return h, m, s, ok1 && ok2 && ok3
}

// monthOf returns 1-12 for a three-letter English month name (case as sent: "Nov"), 0 otherwise.
func monthOf(b []byte) int {
	const names = "JanFebMarAprMayJunJulAugSepOctNovDec"
	if len(b) != 3 {
		return 0
	}
	for i := 0; i < 12; i++ {
		if string(b) == names[3*i:3*i+3] {
			return i + 1
		}
	}
	return 0
}
