package segment

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// ScrubCheck makes the validating pass note, for each event, whether a
// PII scrub's pre-filter could find anything in it (EventMeta.MayScrub),
// so that the scrub need not read again the events the pass cleared. The
// decision is conservative: an event is cleared only when none of its
// strings is one the checks below name, and anything the pass's fast path
// does not follow to the end (an escape in a string, a number with a
// fraction or exponent, a key of the event other than type, timestamp
// and data, a string as a member of the event, an event that spans
// decompressed chunks, the depth limit) marks the event.
//
// It costs nothing to projects without rules: a pass without a ScrubCheck
// takes the usual fast path.
type ScrubCheck struct {
	// AtSign marks an event holding an '@' (in valid JSON, only strings
	// can).
	AtSign bool
	// Value, when set, is asked about each string value (of a member or
	// an array element, not a key) at least MinValue bytes long, raw as
	// in the JSON; true marks the event.
	Value    func(s []byte) bool
	MinValue int
	// TextKey marks an event with a "text" key.
	TextKey bool
	// AttrName, when set, is asked about each key of an "attributes"
	// object (raw); true marks the event. An "attributes" object holding
	// an object or array marks the event whatever AttrName says.
	AttrName func(name []byte) bool
}

// A pass with a ScrubCheck also tells, of each event it clears, whether a
// "tagName" key is in it (EventMeta.TagName), so that the scrub's walk
// need not search the events it passes over for the tags of their nodes.

// deepScrub's flags.
const (
	scrubMark uint8 = 1 << iota // the value marks the event
	scrubTag                    // the value holds a "tagName" key
)

// scrubEnd marks the event closed at b[i-1] if it is not all in b or
// holds an '@' the check looks for.
func (s *scanner) scrubEnd(b []byte, i int) {
	start := s.evStart - s.off
	if start < 0 {
		s.evScrub = true
		return
	}
	if s.scrub.AtSign && bytes.IndexByte(b[start:i], '@') >= 0 {
		s.evScrub = true
	}
}

// deepScrub is deep for a pass with a ScrubCheck: the same grammar and the
// same returns, and it also reports, in flags, whether what it read marks
// the event (scrubMark) and whether it read a "tagName" key (scrubTag;
// told only of what it read before marking). feed calls it only for a value at depth 2 that is an array or
// object, in state xValue, and marks the event when it returns anything
// but xAfter at depth 2 (the general code then reads what deepScrub did
// not follow). Once the event is marked the rest of the value is left to
// deep.
//
// Besides deep's state it keeps, in registers, the depth of the
// "attributes" object it is in (ad, 0 for none; its keys are attribute
// names) and whether the value being read is that of an "attributes" key
// (pa).
func deepScrub(b []byte, i, d int, arr bool, kw uint64, lim int, sc *ScrubCheck) (int, int, bool, uint64, uint8, uint8) {
	n := len(b)
	var (
		c      byte
		ad     int  // depth of the "attributes" object being read; 0: none
		pa     bool // the key just read is "attributes"
		p      bool
		ks, vs int // where the current key or string value starts
		x      uint8
		tag    uint8 // scrubTag once a "tagName" key was read
	)
	minV := sc.MinValue
	if sc.Value == nil {
		minV = math.MaxInt
	}

value:
	if i >= n {
		return i, d, arr, kw, xValue, tag
	}
	c = b[i]
valueC: // c is b[i]
	if c <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
		if i >= n {
			return i, d, arr, kw, xValue, tag
		}
		c = b[i]
	}
	if c == '"' {
		i++
		vs = i
		goto valStr
	}
	if c-'0' <= 9 || c == '-' {
		j := i
		if c == '-' {
			j++
		}
		if j < n && b[j]-'0' <= 9 {
			if b[j] == '0' {
				j++
			} else {
				for j < n && b[j]-'0' <= 9 {
					j++
				}
			}
			if j < n {
				if e := b[j]; e != '.' && e|0x20 != 'e' {
					i, c = j, e
					goto afterC
				}
			}
		}
		return i, d, arr, kw, xValue, tag
	}
	if c == '{' || c == '[' {
		if d >= lim {
			return i, d, arr, kw, xValue, tag
		}
		if d == ad {
			// An attribute whose value is an object or array: not
			// rrweb's; the scrub's walk decides.
			goto flagValue
		}
		kw &^= 1 << d
		if arr {
			kw |= 1 << d
		}
		d++
		i++
		if c == '{' {
			arr = false
			goto objFirst
		}
		arr = true
		goto arrFirst
	}
	if i+5 <= n {
		switch binary.LittleEndian.Uint32(b[i:]) {
		case 't' | 'r'<<8 | 'u'<<16 | 'e'<<24, 'n' | 'u'<<8 | 'l'<<16 | 'l'<<24:
			i += 4
			goto after
		case 'f' | 'a'<<8 | 'l'<<16 | 's'<<24:
			if b[i+4] == 'e' {
				i += 5
				goto after
			}
		}
	}
	return i, d, arr, kw, xValue, tag

objFirst:
	if i < n {
		if b[i] == '"' {
			i++
			ks = i
			goto keyStr
		}
		if b[i] == '}' {
			i++
			goto pop
		}
	}
	return i, d, arr, kw, xObjFirst, tag

arrFirst:
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i >= n {
		return i, d, arr, kw, xArrFirst, tag
	}
	if b[i] == ']' {
		i++
		goto pop
	}
	c = b[i]
	goto valueC

keyStr:
	for i+1 < n {
		if stringStops[b[i]] {
			goto keyEnd
		}
		if stringStops[b[i+1]] {
			i++
			goto keyEnd
		}
		i += 2
	}
	for i < n && !stringStops[b[i]] {
		i++
	}
keyEnd:
	if i < n && b[i] == '"' {
		key := b[ks:i]
		if len(key) == 7 && string(key) == "tagName" {
			tag = scrubTag // in any object, attributes' too
		}
		switch {
		case d == ad:
			if sc.AttrName != nil && sc.AttrName(key) {
				goto flagKey
			}
		case len(key) == 4:
			if sc.TextKey && string(key) == "text" {
				goto flagKey
			}
		case len(key) == 10:
			pa = string(key) == "attributes"
		}
	}
	if i < n && b[i] == '"' {
		i++
		if i < n && b[i] == ':' {
			i++
			goto keyValue
		}
		return i, d, arr, kw, xColon, tag
	}
	return i, d, arr, kw, xKeyStr, tag

keyValue: // after a key's colon: pa must reach the value
	if i >= n {
		return i, d, arr, kw, xValue, tag
	}
	c = b[i]
	p, pa = pa, false
	if c <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
		if i >= n {
			return i, d, arr, kw, xValue, tag
		}
		c = b[i]
	}
	if c == '{' && p && d != ad && d < lim {
		kw &^= 1 << d
		if arr {
			kw |= 1 << d
		}
		d++
		i++
		arr = false
		ad = d
		goto objFirst
	}
	goto valueC

valStr:
	for i+8 <= n {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := stringStop(w); m != 0 {
			k := bits.TrailingZeros64(m)
			if !quoteAt(w, m) {
				i += k >> 3
				return i, d, arr, kw, xValStr, tag
			}
			e := i + k>>3 // the closing quote
			i = e + 1
			if e-vs >= minV && sc.Value(b[vs:e]) {
				goto flagAfter
			}
			if k < 56 {
				c = byte(w >> (k + 1))
				goto afterC
			}
			goto after
		}
		i += 8
	}
	for i < n && !stringStops[b[i]] { // the last bytes of b
		i++
	}
	if i < n && b[i] == '"' {
		i++
		if i-1-vs >= minV && sc.Value(b[vs:i-1]) {
			goto flagAfter
		}
		goto after
	}
	return i, d, arr, kw, xValStr, tag

after:
	if i >= n {
		return i, d, arr, kw, xAfter, tag
	}
	c = b[i]
afterC:
	if c <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
		if i >= n {
			return i, d, arr, kw, xAfter, tag
		}
		c = b[i]
	}
	if c == ',' {
		i++
		if arr {
			goto value
		}
		if i < n && b[i] == '"' {
			i++
			ks = i
			goto keyStr
		}
		return i, d, arr, kw, xObjKey, tag
	}
	if c == ']' && arr || c == '}' && !arr {
		i++
		goto pop
	}
	return i, d, arr, kw, xAfter, tag

pop:
	d--
	arr = kw>>d&1 != 0
	if d < ad {
		ad = 0
	}
	if d <= 2 {
		return i, d, arr, kw, xAfter, tag
	}
	goto after

flagValue: // marked at a value's start (b[i]): deep reads the rest
	i, d, arr, kw, x = deep(b, i, d, arr, kw, lim, xValue)
	return i, d, arr, kw, x, tag | scrubMark

flagKey: // marked at a key's closing quote (b[i])
	i++
	if i < n && b[i] == ':' {
		i++
		goto flagValue
	}
	return i, d, arr, kw, xColon, tag | scrubMark

flagAfter: // marked past a string value
	if d <= 2 {
		return i, d, arr, kw, xAfter, tag | scrubMark
	}
	i, d, arr, kw, x = deep(b, i, d, arr, kw, lim, xAfter)
	return i, d, arr, kw, x, tag | scrubMark
}
