package piiscrub

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// The scrubber works on the raw bytes of the events in one pass, without a
// parse tree or re-serialization: every mask replaces bytes inside a JSON
// string with '*' (or keeps them), so the output has the input's length and
// stays valid JSON. Inside the sandbox every loop iteration costs a check of
// the time budget, so strings, most of the bytes, are scanned 8 bytes at a
// time.

// maxDepth bounds nesting (rrweb documents nest deep, adversarial input
// deeper).
const maxDepth = 2000

// frame is one open object or array and what the scrubber knows about it.
type frame struct {
	parent *frame
	obj    bool
	key    string // the key this container is the value of ("" in arrays)
	arrKey string // for an object in an array: the array's key

	under   bool // inside an element matching a selector
	matched bool // this element matches a selector
	isInput bool
	tag     string

	id, parentID       int
	hasID, hasParentID bool

	attrs    bool              // an element's attributes object
	attrVals map[string]string // for selector matching
	// retro: a string that must be masked entirely if the node's id
	// turns out to be masked (ids follow the text in rrweb's output).
	retroFrom, retroTo int
	retro              bool
	valueFrom, valueTo int // the "value" attribute, masked if the element matches
	hasValue           bool
}

type stream struct {
	s      *scrubber
	b      []byte
	depth  int
	frames []*frame // reused by depth: a segment has many small containers
	vals   map[string]string
}

// scrubRaw masks events in place (events is the caller's copy) and reports
// whether anything changed.
func (s *scrubber) scrubRaw(b []byte) (bool, error) {
	st := &stream{s: s, b: b}
	i := st.ws(0)
	if i >= len(b) || b[i] != '[' {
		return false, errors.New("events: not an array")
	}
	i, err := st.value(i, nil, "")
	if err != nil {
		return false, err
	}
	if st.ws(i) != len(b) {
		return false, errors.New("events: trailing data")
	}
	return s.changed, nil
}

func (st *stream) ws(i int) int {
	for i < len(st.b) {
		switch st.b[i] {
		case ' ', '\n', '\r', '\t':
			i++
		default:
			return i
		}
	}
	return i
}

// value reads the value at i, the value of key in f (nil at the top).
func (st *stream) value(i int, f *frame, key string) (int, error) {
	if i >= len(st.b) {
		return i, errors.New("unexpected end of events")
	}
	switch st.b[i] {
	case '{', '[':
		st.depth++
		if st.depth > maxDepth {
			return i, errors.New("events nest too deep")
		}
		c := st.child(f, key, st.b[i] == '{')
		var err error
		if c.obj {
			i, err = st.object(i+1, c)
		} else {
			i, err = st.array(i+1, c)
		}
		st.depth--
		if err == nil && c.obj {
			st.closeObject(c)
		}
		return i, err
	case '"':
		end, esc, err := st.str(i + 1)
		if err != nil {
			return i, err
		}
		if f != nil {
			st.onString(f, key, i+1, end, esc)
		}
		return end + 1, nil
	}
	j := i
	for j < len(st.b) {
		c := st.b[j]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
			break
		}
		j++
	}
	if j == i {
		return i, fmt.Errorf("unexpected %q in events", st.b[i])
	}
	if f != nil && f.obj && (key == "id" || key == "parentId") {
		if n, ok := atoi(st.b[i:j]); ok {
			st.onID(f, key, n)
		}
	}
	return j, nil
}

// child makes the frame of a container that is the value of key in f.
func (st *stream) child(f *frame, key string, obj bool) *frame {
	for len(st.frames) <= st.depth {
		st.frames = append(st.frames, new(frame))
	}
	c := st.frames[st.depth]
	*c = frame{parent: f, obj: obj, key: key}
	if f == nil {
		return c
	}
	c.under = f.under
	if !f.obj {
		c.arrKey = f.key
		return c
	}
	switch {
	case key == "attributes" && obj:
		c.attrs = true
		if len(st.s.selectors) > 0 {
			// Attributes objects do not nest, so one map serves all.
			if st.vals == nil {
				st.vals = map[string]string{}
			}
			clear(st.vals)
			c.attrVals = st.vals
		}
	case key == "childNodes":
		c.under = f.under || f.matched
	case key == "node" && f.hasParentID:
		c.under = st.s.masked[f.parentID]
	}
	return c
}

func (st *stream) object(i int, f *frame) (int, error) {
	b := st.b
	i = st.ws(i)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		i = st.ws(i)
		if i >= len(b) || b[i] != '"' {
			return i, errors.New("events: object key expected")
		}
		end, esc, err := st.str(i + 1)
		if err != nil {
			return i, err
		}
		key := internKey(b[i+1:end], f.attrs)
		if esc {
			key = unescape(b[i+1 : end])
		}
		i = st.ws(end + 1)
		if i >= len(b) || b[i] != ':' {
			return i, errors.New("events: ':' expected")
		}
		if i, err = st.value(st.ws(i+1), f, key); err != nil {
			return i, err
		}
		i = st.ws(i)
		if i >= len(b) {
			return i, errors.New("unexpected end of events")
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, nil
		default:
			return i, errors.New("events: ',' or '}' expected")
		}
	}
}

func (st *stream) array(i int, f *frame) (int, error) {
	b := st.b
	i = st.ws(i)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = st.value(st.ws(i), f, ""); err != nil {
			return i, err
		}
		i = st.ws(i)
		if i >= len(b) {
			return i, errors.New("unexpected end of events")
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			return i + 1, nil
		default:
			return i, errors.New("events: ',' or ']' expected")
		}
	}
}

// str scans the string whose content starts at i and returns the index of
// its closing quote and whether it holds escapes.
func (st *stream) str(i int) (int, bool, error) {
	b := st.b
	esc := false
	for {
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			m := hasByte(w, '"') | hasByte(w, '\\')
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		for i < len(b) && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			return i, esc, errors.New("events: unterminated string")
		}
		if b[i] == '"' {
			return i, esc, nil
		}
		esc = true
		i += 2 // the escape and the escaped byte (a \u's digits are plain bytes)
	}
}

const lo, hi = 0x0101010101010101, 0x8080808080808080

// hasByte has the high bit set in every byte of w equal to c (the lowest
// such byte is exact; higher ones may be false positives, which only stop
// a fast scan early).
func hasByte(w uint64, c byte) uint64 {
	x := w ^ (lo * uint64(c))
	return (x - lo) &^ x & hi
}

func (st *stream) onID(f *frame, key string, n int) {
	if key == "parentId" {
		f.parentID, f.hasParentID = n, true
		return
	}
	f.id, f.hasID = n, true
	s := st.s
	if f.under || f.matched {
		s.masked[n] = true
	}
	if f.isInput {
		s.inputs[n] = true
	}
}

// onString scrubs the string b[from:to], the value of key in f.
func (st *stream) onString(f *frame, key string, from, to int, esc bool) {
	s := st.s
	if !f.obj {
		st.patterns(from, to)
		return
	}
	if f.attrs {
		name := strings.ToLower(key)
		elem := f.parent
		var isInput, under bool
		if elem != nil {
			isInput, under = elem.isInput, elem.under
			if elem.hasID && elem.tag == "" { // a mutation's attribute change
				isInput = s.inputs[elem.id]
				under = s.masked[elem.id]
			}
		}
		if f.attrVals != nil {
			v := string(st.b[from:to])
			if esc {
				v = unescape(st.b[from:to])
			}
			f.attrVals[name] = v
		}
		if s.attrs[name] || (name == "value" && (under || (isInput && s.maskAllInputs))) {
			st.full(from, to)
			return
		}
		if name == "value" {
			f.valueFrom, f.valueTo, f.hasValue = from, to, true
		}
		st.patterns(from, to)
		return
	}
	switch {
	case key == "tagName":
		f.tag = strings.ToLower(string(st.b[from:to]))
		switch f.tag {
		case "input", "textarea", "select", "option":
			f.isInput = true
		}
		return
	case key == "textContent":
		if f.under {
			st.full(from, to)
			return
		}
	case key == "text" && f.key == "data":
		if s.maskAllInputs || (f.hasID && s.masked[f.id]) {
			st.full(from, to)
			return
		}
		f.retroFrom, f.retroTo, f.retro = from, to, true
	case key == "value" && f.arrKey == "texts":
		if f.hasID && s.masked[f.id] {
			st.full(from, to)
			return
		}
		f.retroFrom, f.retroTo, f.retro = from, to, true
	}
	st.patterns(from, to)
}

// closeObject applies what only the end of an object tells: whether an
// element matches a selector (its attributes are complete), and whether a
// text whose node id came after it is masked.
func (st *stream) closeObject(f *frame) {
	s := st.s
	if f.attrs && f.attrVals != nil && f.parent != nil && f.parent.tag != "" {
		elem := f.parent
		if !elem.under && s.matchesMap(elem.tag, f.attrVals) {
			elem.matched = true
			if f.hasValue {
				st.full(f.valueFrom, f.valueTo)
			}
		}
	}
	if f.retro && f.hasID && s.masked[f.id] {
		st.full(f.retroFrom, f.retroTo)
	}
}

// full masks a whole string's raw content, keeping spaces.
func (st *stream) full(from, to int) {
	b := st.b[from:to]
	for i, c := range b {
		if c != ' ' && c != '*' {
			b[i] = '*'
			st.s.changed = true
		}
	}
}

// patterns masks e-mail addresses, card and phone numbers in place.
func (st *stream) patterns(from, to int) {
	if st.s.maskPatternsInPlace(st.b[from:to]) {
		st.s.changed = true
	}
}

// internKey returns the keys the scrubber looks at without allocating;
// other keys matter only as attribute names.
func internKey(b []byte, attr bool) string {
	switch string(b) {
	case "id":
		return "id"
	case "parentId":
		return "parentId"
	case "attributes":
		return "attributes"
	case "childNodes":
		return "childNodes"
	case "node":
		return "node"
	case "data":
		return "data"
	case "texts":
		return "texts"
	case "textContent":
		return "textContent"
	case "text":
		return "text"
	case "value":
		return "value"
	case "tagName":
		return "tagName"
	}
	if attr {
		return string(b)
	}
	return "-"
}

func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 15 {
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

func unescape(raw []byte) string {
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err != nil {
		return string(raw)
	}
	return s
}
