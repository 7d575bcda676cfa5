package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// A minimal JSON byte scanner: it finds where values begin and end without
// building a tree or copying, so Ingest can cut posthog-js batches into
// per-session segments by copying each rrweb event's bytes as sent. It
// checks structure (brackets matched, strings closed, members and elements
// separated) but not what lies between (numbers, literals, escapes): Pack
// validates every segment fully.

// errSyntax is a body whose structure is broken.
var errSyntax = errors.New("not valid JSON")

// maxNesting bounds how deep values may nest (rrweb DOM trees nest deep,
// but not this deep).
const maxNesting = 10_000

// structural marks the bytes a value scan stops at outside strings.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// skipWS returns the index of the first byte at or after i that is not
// JSON white space.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the value starting at b[i] (no
// white space before it).
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		return skipComposite(b, i)
	case ',', ':', '}', ']':
		return 0, errSyntax
	}
	// A number or literal: up to the next delimiter.
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
			if j == i {
				return 0, errSyntax
			}
			return j, nil
		}
		j++
	}
	return j, nil
}

// skipString returns the index just past the string whose opening quote is
// b[i].
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errSyntax
		}
		j += k
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1, nil
		}
		j++
	}
}

// skipComposite returns the index just past the object or array opening at
// b[i]. Brackets must match; separators inside are not checked.
func skipComposite(b []byte, i int) (int, error) {
	var stack [64]byte
	open := stack[:0]
	for j := i; j < len(b); {
		switch c := b[j]; c {
		case '"':
			e, err := skipString(b, j)
			if err != nil {
				return 0, err
			}
			j = e
			continue
		case '{', '[':
			if len(open) == maxNesting {
				return 0, errSyntax
			}
			open = append(open, c)
		case '}', ']':
			if len(open) == 0 || open[len(open)-1] != c-2 { // '{'+2 = '}', '['+2 = ']'
				return 0, errSyntax
			}
			open = open[:len(open)-1]
			if len(open) == 0 {
				return j + 1, nil
			}
		}
		j++
		for j < len(b) && !structural[b[j]] {
			j++
		}
	}
	return 0, errSyntax
}

// elements reads the array opening at b[i]: fn gets each element's start
// (always inside b) and returns its end (skipValue's, or its own when it
// reads the element). It returns the array's end.
func elements(b []byte, i int, fn func(v int) (int, error)) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return 0, errSyntax
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return 0, errSyntax
		}
		e, err := fn(i)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, e)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// members reads the object opening at b[i]: fn gets each member's key (raw
// bytes between the quotes, escapes as sent) and its value's start (always
// inside b), and returns the value's end. It returns the object's end.
func members(b []byte, i int, fn func(key []byte, v int) (int, error)) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, errSyntax
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errSyntax
		}
		ke, err := skipString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : ke-1]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return 0, errSyntax
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return 0, errSyntax
		}
		e, err := fn(key, i)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, e)
		if i >= len(b) {
			return 0, errSyntax
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, errSyntax
		}
	}
}

// eachMember calls fn with each member of the object o: the key's raw
// bytes and the value's, in order. Only white space may surround it.
func eachMember(o []byte, fn func(key, v []byte) error) error {
	e, err := members(o, skipWS(o, 0), func(key []byte, i int) (int, error) {
		e, err := skipValue(o, i)
		if err != nil {
			return 0, err
		}
		return e, fn(key, o[i:e])
	})
	if err != nil {
		return err
	}
	return checkEnd(o, e)
}

// checkEnd accepts only white space after a value's end.
func checkEnd(b []byte, i int) error {
	if skipWS(b, i) != len(b) {
		return errSyntax
	}
	return nil
}

// oneValue checks that b holds exactly one JSON value (white space around
// allowed) and returns it trimmed.
func oneValue(b []byte) ([]byte, error) {
	i := skipWS(b, 0)
	e, err := skipValue(b, i)
	if err != nil {
		return nil, err
	}
	if err := checkEnd(b, e); err != nil {
		return nil, err
	}
	return b[i:e], nil
}

// jsonString returns the string value v (raw, with its quotes); ok is false
// when v is not a string.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonNumber returns the number value v; ok is false when v is not one.
func jsonNumber(v []byte) (float64, bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

// latin1Bytes decodes the JSON string v (raw, with its quotes) whose every
// character stands for one byte (U+0000 to U+00FF), as posthog-js writes
// gzip streams into strings. ok is false for anything else.
func latin1Bytes(v []byte, out []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	s := v[1 : len(v)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, false
			}
			switch s[i+1] {
			case '"', '\\', '/':
				out = append(out, s[i+1])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if i+6 > len(s) {
					return nil, false
				}
				// \u00XX: only the last two digits may be other than 0.
				if s[i+2] != '0' || s[i+3] != '0' {
					return nil, false
				}
				hi, ok1 := unhex(s[i+4])
				lo, ok2 := unhex(s[i+5])
				if !ok1 || !ok2 {
					return nil, false
				}
				out = append(out, hi<<4|lo)
				i += 6
				continue
			default:
				return nil, false
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r > 0xff {
				return nil, false
			}
			out = append(out, byte(r))
			i += size
		}
	}
	return out, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// isNull reports whether v is the literal null, which leaves a field as it
// was (as encoding/json does).
func isNull(v []byte) bool { return string(v) == "null" }

// jsonStr reads the string v into dst; anything but a string or null is
// an error.
func jsonStr(v []byte, dst *string) error {
	if isNull(v) {
		return nil
	}
	s, ok := jsonString(v)
	if !ok {
		return errSyntax
	}
	*dst = s
	return nil
}

// jsonInt reads the integer v into *dst; anything but an integer or null
// is an error.
func jsonInt(v []byte, dst **int64) error {
	if isNull(v) {
		return nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return errSyntax
	}
	*dst = &n
	return nil
}

// jsonStrings reads the array of strings v into dst.
func jsonStrings(v []byte, dst *[]string) error {
	if isNull(v) {
		return nil
	}
	var l []string
	_, err := elements(v, 0, func(i int) (int, error) {
		e, err := skipValue(v, i)
		if err != nil {
			return 0, err
		}
		var s string
		if err := jsonStr(v[i:e], &s); err != nil {
			return 0, err
		}
		l = append(l, s)
		return e, nil
	})
	if err != nil {
		return err
	}
	*dst = l
	return nil
}

// jsonObject calls fn with each member of the object v; null has none.
func jsonObject(v []byte, fn func(k, v []byte) error) error {
	if isNull(v) {
		return nil
	}
	return eachMember(v, fn)
}
