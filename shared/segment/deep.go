package segment

import (
	"encoding/binary"
	"math/bits"
)

// Where deep stopped: the feed label that continues from there.
const (
	xValue    uint8 = iota // a value starts at b[i] (after blanks), or the chunk ended before it
	xAfter                 // ',' or a closing bracket is expected at b[i]
	xObjFirst              // a key or '}' is expected at b[i]
	xArrFirst              // the chunk ended after '['
	xObjKey                // a key is expected at b[i] (after ',')
	xColon                 // ':' is expected at b[i]
	xKeyStr                // inside a key, at b[i] or before its end
	xValStr                // inside a string value, at b[i] or before its end
)

// deepLimit is the depth deep stays below: the kinds of its arrays and
// objects fit in one word.
const deepLimit = 63

// deep scans the values inside an event's members (depth 2 and more of a
// top-level array), nearly all of a payload's bytes, on a fast path that
// knows no event fields, captures nothing and keeps all its state in
// registers. It starts at b[i] in state start (xValue or xAfter), at depth
// d in an array (arr) or object, with kw holding the kinds of the
// enclosing ones (bit k: whether the one at depth k is an array, as in
// scanner.kinds), and opens nothing at depth lim or deeper (lim ≤
// deepLimit).
//
// feed calls it for a value at depth 2 that is an array or object, and at
// depths 3 to deepLimit. It returns as soon as that value at depth 2 is
// complete (xAfter with d == 2), or at anything it does not handle (the
// end of the chunk inside a token, escapes, numbers with a fraction or
// exponent, the depth limit, and every syntax error): then
// it returns the state in which feed's general code continues, at a
// position where that code reports the same error, at the same offset, as
// it would have without deep. Every return but xAfter at depth 2 is at a
// point where feed's code makes progress without calling deep again.
func deep(b []byte, i, d int, arr bool, kw uint64, lim int, start uint8) (int, int, bool, uint64, uint8) {
	n := len(b)
	var c byte
	if start == xAfter {
		goto after
	}

value:
	if i >= n {
		return i, d, arr, kw, xValue
	}
	c = b[i]
valueC: // c is b[i]
	if c <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
		if i >= n {
			return i, d, arr, kw, xValue
		}
		c = b[i]
	}
	if c == '"' {
		i++
		goto valStr
	}
	if c-'0' <= 9 || c == '-' {
		// Integers without fraction or exponent, the usual case, in
		// place; a leading zero ends the integer part (a digit after it
		// is refused in after). Anything else is left to feed.
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
		return i, d, arr, kw, xValue
	}
	if c == '{' || c == '[' {
		if d >= lim {
			return i, d, arr, kw, xValue
		}
		// Record the kind of the one at depth d, which the new one nests in.
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
	return i, d, arr, kw, xValue

objFirst:
	if i < n {
		if b[i] == '"' {
			i++
			goto keyStr
		}
		if b[i] == '}' {
			i++
			goto pop
		}
	}
	return i, d, arr, kw, xObjFirst

arrFirst:
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i >= n {
		return i, d, arr, kw, xArrFirst
	}
	if b[i] == ']' {
		i++
		goto pop
	}
	c = b[i]
	goto valueC

keyStr: // inside a key: keys are short and repeat, a byte loop predicts well
	for i+1 < n { // two bytes a step: half the loop's overhead
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
	if i+2 < n && b[i] == '"' && b[i+1] == ':' { // the usual `key":v`
		i += 2
		c = b[i]
		goto valueC
	}
	if i < n && b[i] == '"' {
		i++
		if i < n && b[i] == ':' {
			i++
			goto value
		}
		return i, d, arr, kw, xColon
	}
	return i, d, arr, kw, xKeyStr

valStr: // inside a string value
	for i+8 <= n {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := stringStop(w); m != 0 {
			k := bits.TrailingZeros64(m) // bit 7 of the stop's byte
			if !quoteAt(w, m) {
				i += k >> 3
				return i, d, arr, kw, xValStr
			}
			i += k>>3 + 1
			if k < 56 {
				c = byte(w >> (k + 1))
				goto afterC
			}
			goto after
		}
		i += 8
	}
	return i, d, arr, kw, xValStr

after:
	if i >= n {
		return i, d, arr, kw, xAfter
	}
	c = b[i]
afterC: // c is b[i]
	if c <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
		if i >= n {
			return i, d, arr, kw, xAfter
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
			goto keyStr
		}
		return i, d, arr, kw, xObjKey
	}
	if c == ']' && arr || c == '}' && !arr {
		i++
		goto pop
	}
	return i, d, arr, kw, xAfter

pop: // i is past the closing bracket
	d--
	arr = kw>>d&1 != 0
	if d <= 2 {
		return i, d, arr, kw, xAfter
	}
	goto after
}
