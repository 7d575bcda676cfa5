package segment

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting limit of a payload's JSON when
// Limits.MaxDepth is zero. rrweb serialises the DOM as nested childNodes
// arrays, two JSON levels per DOM level plus about six around the first
// node, so a full snapshot is about 2×(DOM depth)+6 deep: the generated
// recordings of this package and of shared/workload are 8 to 32 deep, and
// real pages rarely have a DOM deeper than 60 (a JSON depth of about 130).
// 1,000 leaves room for pathological but honest pages; the scanner holds
// 8 bytes per level, so the limit costs at most 8 KiB.
const DefaultMaxDepth = 1000

// EventMeta describes one top-level event to an EventHook.
type EventMeta struct {
	// Index is the event's position in the array, from 0.
	Index int
	// Type is the event's rrweb type, valid when HasType is set.
	Type    int64
	HasType bool
	// Timestamp is the event's timestamp in milliseconds since the epoch,
	// normalised as for Info (see Validate), or 0 when it has none.
	Timestamp int64
	// Start and End are the offsets in the decompressed JSON of the
	// event's opening brace and of the byte after its closing brace.
	Start, End int64
	// MayScrub reports that the hook's Scrub check marked the event (see
	// ScrubCheck); always true without one.
	MayScrub bool
	// TagName reports that the event may hold a "tagName" key: false only
	// when the hook's Scrub check cleared the event (!MayScrub), having
	// read all of it, and saw none.
	TagName bool
	// Raw holds the event's JSON when its type is one of the hook's
	// RawTypes and it is no longer than MaxRaw; nil otherwise. It is only
	// valid during the call: copy what must be kept.
	Raw []byte
}

// EventHook lets later stages share the validation pass. It costs nothing
// when unused (a nil *EventHook); OnEvent is called once per top-level
// event, in order, as soon as the event's closing brace has been read. The
// payload may still turn out to be invalid after some calls: a caller must
// discard what it gathered when Validate returns an error.
type EventHook struct {
	// OnEvent receives each event's metadata.
	OnEvent func(EventMeta)
	// RawTypes lists the rrweb event types whose raw bytes OnEvent
	// receives (rrweb's Custom (5) and Plugin (6) events, say, which carry
	// console and network records and are small).
	RawTypes []int64
	// MaxRaw caps the raw bytes handed over per event (and buffered while
	// an event spans decompressed chunks); a longer event gets no Raw.
	// Zero means 64 KiB.
	MaxRaw int
	// Scrub, when set, makes the pass tell each event's MayScrub.
	Scrub *ScrubCheck
}

const defaultMaxRaw = 64 << 10

// Scanner states. Each names what the scanner expects next.
const (
	sValue    uint8 = iota // a value (after '[' of the top, ':' or ',' in an array)
	sArrFirst              // a value or ']'
	sObjFirst              // a key or '}'
	sObjKey                // a key (after ',')
	sColon                 // ':'
	sAfter                 // ',' or the closing bracket; at the top, the end
	sEnd                   // only whitespace
	sStr                   // inside a string
	sEsc                   // after a backslash in a string
	sHex                   // inside \uXXXX (s.hex digits left)
	sNeg                   // after '-'
	sZero                  // after a leading '0'
	sInt                   // in integer digits
	sDot                   // after '.'
	sFrac                  // in fraction digits
	sExpMark               // after 'e' or 'E'
	sExpSign               // after the exponent's sign
	sExp                   // in exponent digits
	sLit                   // inside true, false or null
	sTop                   // the first non-blank byte
	sNum                   // inside a number (s.numSt says where)
	sCapStr                // inside a captured string
)

// Fields of an event object the scanner reads.
const (
	fNone uint8 = iota
	fType
	fTimestamp
	fData
)

var fieldNames = [...]string{fType: "type", fTimestamp: "timestamp", fData: "data"}

// maxLit caps the captured literal of a type or timestamp value, and of an
// event's keys: longer ones cannot be any of ours, or are refused (see
// Validate).
const maxLit = 128

// scanner is a single-pass, resumable JSON scanner: feed it the document
// in chunks of any size. It checks exactly the grammar encoding/json.Valid
// checks and collects event metadata on the way; its memory is its stack
// (O(depth)) and a few small buffers.
type scanner struct {
	maxDepth int
	hook     *EventHook
	info     *Info

	state uint8
	hex   uint8    // hex digits left in \u
	lit   string   // the literal being matched in sLit
	litAt int      // bytes of lit matched
	numSt uint8    // number's state inside a number
	esc   bool     // after a backslash in a captured string
	strOf uint8    // what the current string is: capKey, capVal or 0
	seen  bool     // a non-blank byte was seen
	top   byte     // the first non-blank byte
	off   int64    // stream offset of the current chunk's first byte
	chunk []byte   // the chunk being scanned
	depth int      // open arrays and objects
	arr   bool     // whether the innermost one is an array
	kinds []uint64 // bit d: whether the array or object at depth d+1 is an array
	elem  int      // index of the current element of the top-level array
	elems int      // elements of the top-level array so far
	field uint8    // in an event: the field the current member is

	// Capture of a depth-2 key or of a type or timestamp value, which may
	// span chunks.
	capOn   bool
	capLong bool
	capN    int
	capBuf  [maxLit]byte

	// The current event.
	evStart   int64
	evBad     string // why the event is bad, or ""
	evBadF    uint8
	typSet    bool
	typOK     bool
	typFull   bool
	typ       int64
	tsSet     bool
	tsOK      bool
	ts        int64
	rawStart  int    // the event's start in the current chunk
	raw       []byte // the event's bytes from earlier chunks
	rawOver   bool
	wantsRaw  bool
	rawLimit  int
	rawTypes  []int64
	onEvent   func(EventMeta)
	syntaxErr *InvalidError
	semErr    *InvalidError

	scrub   *ScrubCheck // see EventHook.Scrub
	evScrub bool        // the current event is marked (see ScrubCheck)
	evTag   bool        // deepScrub read a "tagName" key in the current event
}

// What the current string is captured as.
const (
	capKey uint8 = 1 + iota
	capVal
	plainKey
)

func (s *scanner) reset(maxDepth int, hook *EventHook, info *Info) {
	// kinds always has its first word, which deep keeps in a register.
	*s = scanner{maxDepth: maxDepth, hook: hook, info: info, kinds: append(s.kinds[:0], 0), raw: s.raw[:0], state: sTop}
	if hook != nil {
		s.onEvent = hook.OnEvent
		s.scrub = hook.Scrub
		s.rawTypes = hook.RawTypes
		s.wantsRaw = hook.OnEvent != nil && len(hook.RawTypes) > 0
		s.rawLimit = hook.MaxRaw
		if s.rawLimit <= 0 {
			s.rawLimit = defaultMaxRaw
		}
	}
}

// release drops references the scanner must not keep in a pool.
func (s *scanner) release() {
	s.hook, s.info, s.onEvent, s.rawTypes, s.scrub = nil, nil, nil, nil, nil
	if cap(s.raw) > defaultMaxRaw {
		s.raw = nil
	}
	if cap(s.kinds) > DefaultMaxDepth/64+1 {
		s.kinds = nil
	}
}

// Masks for 8-bytes-at-a-time string scanning.
const (
	lsb      = 0x0101010101010101
	msb      = 0x8080808080808080
	quotes   = '"' * lsb
	slashes  = '\\' * lsb
	controls = 0x20 * lsb
)

// stringStop returns a word with the high bit set in the byte of w holding
// the first '"', '\\' or control character (< 0x20), and possibly in later
// bytes; zero when there is none. Borrows only spread upwards, so the
// lowest flagged byte is exact.
func stringStop(w uint64) uint64 {
	q := w ^ quotes
	b := w ^ slashes
	return ((q-lsb)&^q | (b-lsb)&^b | (w-controls)&^w) & msb
}

// quoteAt tells whether the lowest flagged byte of m, a non-zero result of
// stringStop(w), is a '"' (and not a backslash or a control character).
func quoteAt(w, m uint64) bool {
	q := w ^ quotes
	return (q-lsb)&^q&(m&-m) != 0
}

// class of a byte where a value or structural character is expected.
const (
	cOther uint8 = iota
	cSpace
	cQuote
	cDigit
	cMinus
	cOpenObj
	cOpenArr
	cCloseObj
	cCloseArr
	cComma
	cColon
	cT
	cF
	cN
)

var classes = func() (t [256]uint8) {
	for _, c := range " \t\r\n" {
		t[c] = cSpace
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	t['"'], t['-'], t['{'], t['['], t['}'], t[']'], t[','], t[':'] = cQuote, cMinus, cOpenObj, cOpenArr, cCloseObj, cCloseArr, cComma, cColon
	t['t'], t['f'], t['n'] = cT, cF, cN
	return t
}()

// stringStops flags the bytes that end a run of plain string bytes: '"',
// '\\' and control characters.
var stringStops = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

var isHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

var isEscape = func() (t [256]bool) {
	for _, c := range `"\/bfnrtu` {
		t[c] = true
	}
	return t
}()

// feed scans the next chunk of the document. It is a state machine written
// with gotos: each label is a state, all state lives in locals while the
// chunk lasts, and it is saved in s only when the chunk ends mid-token.
// Everything below the events' own fields (depth 3 and more, nearly all
// bytes) takes the fast paths; an event's keys and its type and timestamp
// values take slower paths that capture their text.
func (s *scanner) feed(b []byte) {
	if s.syntaxErr != nil {
		return
	}
	if s.wantsRaw {
		s.rawStart, s.chunk = 0, b
		defer func() { s.chunk = nil }()
	}
	var (
		i, n   = 0, len(b)
		c      byte
		st     uint8
		d      = s.depth
		arr    = s.arr
		arrTop = s.top == '['
		j      int
		x      uint8
		lim    = min(s.maxDepth, deepLimit)
	)
	switch s.state {
	case sTop:
		goto top
	case sValue:
		goto value
	case sArrFirst:
		goto arrFirst
	case sObjFirst:
		goto objFirst
	case sObjKey:
		goto objKey
	case sColon:
		goto colon
	case sAfter:
		goto after
	case sEnd:
		goto end
	case sStr:
		goto str
	case sEsc:
		goto esc
	case sHex:
		goto hex
	case sNum:
		goto num
	case sLit:
		goto lit
	case sCapStr:
		goto capStr
	}
	panic("segment: bad scanner state")

top:
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i == n {
		st = sTop
		goto out
	}
	s.seen, s.top = true, b[i]
	arrTop = s.top == '['
	if !arrTop {
		s.semantic(ReasonNotArray, i, "payload is not a JSON array")
	}
	goto value

value:
	if i < n && b[i] <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
	}
	if i == n {
		st = sValue
		goto out
	}
	c = b[i]
	if d <= 2 && arrTop {
		if d == 1 {
			s.elem = s.elems
			s.elems++
			if c != '{' {
				s.eventError(i, d, "event is not a JSON object")
			}
		}
		if d == 2 {
			if s.scrub != nil && (s.field == fNone || c == '"') {
				s.evScrub = true // a member deepScrub does not read
			}
			if f := s.field; f == fType || f == fTimestamp {
				switch classes[c] {
				case cQuote:
					i++
					s.strOf = capVal
					s.startCapture()
					goto capStr
				case cDigit, cMinus:
					if c != '0' && c != '-' {
						// A whole integer in this chunk: read in place.
						for j = i + 1; j < n && b[j]-'0' <= 9; j++ {
						}
						if j < n && b[j] != '.' && b[j]|0x20 != 'e' && j-i <= maxLit {
							s.setInt(f, b[i:j])
							i = j
							goto after
						}
					}
					s.strOf = capVal
					s.startCapture()
					s.numSt = sValue
					goto num
				case cN:
				default:
					s.badField(f, "is not a number")
				}
			}
		}
	}
	if arrTop && d >= 2 && d <= deepLimit && (d > 2 || c == '{' || c == '[') {
		if s.scrub != nil {
			goto scrubDeep
		}
		i, d, arr, s.kinds[0], x = deep(b, i, d, arr, s.kinds[0], lim, xValue)
		goto resume
	}
	goto valueAny
valueSlow: // a value that deep left
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i == n {
		st = sValue
		goto out
	}
	c = b[i]
valueAny:
	// Strings and integers first, by compare, not through the jump table:
	// they are most values, and a two-way branch predicts better.
	if c == '"' {
		i++
		goto valStr
	}
	if c-'1' < 9 {
		for j = i + 1; j < n && b[j]-'0' <= 9; j++ {
		}
		if j < n && b[j] != '.' && b[j]|0x20 != 'e' {
			i = j
			goto after
		}
		s.numSt = sValue
		goto num
	}
	switch classes[c] {
	case cOpenObj:
		if d >= s.maxDepth {
			s.fail(i, d, "nesting deeper than the limit")
			return
		}
		s.push(d, arr)
		d++
		arr = false
		if d == 2 && arrTop {
			s.startEvent(i)
		}
		i++
		goto objFirst
	case cOpenArr:
		if d >= s.maxDepth {
			s.fail(i, d, "nesting deeper than the limit")
			return
		}
		s.push(d, arr)
		d++
		arr = true
		i++
		goto arrFirst
	case cDigit:
		// Integers without fraction or exponent, the usual case. A
		// leading zero ends the integer part: a digit after it is
		// refused by after.
		j = i + 1
		if c != '0' {
			for j < n && b[j]-'0' <= 9 {
				j++
			}
		}
		if j < n && b[j] != '.' && b[j]|0x20 != 'e' {
			i = j
			goto after
		}
		s.numSt = sValue
		goto num
	case cMinus:
		s.numSt = sValue
		goto num
	case cT:
		if i+4 <= n && binary.LittleEndian.Uint32(b[i:]) == 't'|'r'<<8|'u'<<16|'e'<<24 {
			i += 4
			goto after
		}
		s.lit, s.litAt = "true", 0
		goto lit
	case cF:
		if i+5 <= n && binary.LittleEndian.Uint32(b[i:]) == 'f'|'a'<<8|'l'<<16|'s'<<24 && b[i+4] == 'e' {
			i += 5
			goto after
		}
		s.lit, s.litAt = "false", 0
		goto lit
	case cN:
		if i+4 <= n && binary.LittleEndian.Uint32(b[i:]) == 'n'|'u'<<8|'l'<<16|'l'<<24 {
			i += 4
			goto after
		}
		s.lit, s.litAt = "null", 0
		goto lit
	}
	s.fail(i, d, "expected a value")
	return

arrFirst:
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i == n {
		st = sArrFirst
		goto out
	}
	if b[i] == ']' {
		i++
		goto pop
	}
	goto value

objFirst:
	if i < n && b[i] == '"' {
		i++
		goto key
	}
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i == n {
		st = sObjFirst
		goto out
	}
	if b[i] == '}' {
		i++
		goto pop
	}
	goto objKey

objKey:
	if i < n && b[i] <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
	}
	if i == n {
		st = sObjKey
		goto out
	}
	if b[i] != '"' {
		s.fail(i, d, "expected a string key")
		return
	}
	i++
key:
	if d == 2 && arrTop {
		// An event's key: rrweb's own three, spelled as rrweb does and
		// followed by the colon, compared 8 bytes at a time; others
		// matched in place when they have no escape and end in this
		// chunk, the usual case.
		if i+12 <= n {
			w := binary.LittleEndian.Uint64(b[i:])
			switch {
			case w&0xffffffffffff == 't'|'y'<<8|'p'<<16|'e'<<24|'"'<<32|':'<<40:
				s.field = fType
				i += 6
				goto value
			case w&0xffffffffffff == 'd'|'a'<<8|'t'<<16|'a'<<24|'"'<<32|':'<<40:
				s.field = fData
				i += 6
				goto value
			case w == 't'|'i'<<8|'m'<<16|'e'<<24|'s'<<32|'t'<<40|'a'<<48|'m'<<56 &&
				binary.LittleEndian.Uint32(b[i+8:])&0xffffff == 'p'|'"'<<8|':'<<16:
				s.field = fTimestamp
				i += 11
				goto value
			}
		}
		for j = i; j < n && !stringStops[b[j]]; j++ {
		}
		if j < n && b[j] == '"' {
			s.field = matchField(b[i:j])
			i = j + 1
			goto colon
		}
		s.strOf = capKey
		s.startCapture()
		goto capStr
	}
	goto keyStr

colon:
	if i < n && b[i] == ':' {
		i++
		goto value
	}
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i == n {
		st = sColon
		goto out
	}
	if b[i] != ':' {
		s.fail(i, d, "expected ':' after a key")
		return
	}
	i++
	goto value

after:
	if arrTop && d > 2 && d <= deepLimit {
		if s.scrub != nil {
			s.evScrub = true // the general code read part of the value
		}
		i, d, arr, s.kinds[0], x = deep(b, i, d, arr, s.kinds[0], lim, xAfter)
		goto resume
	}
afterSlow:
	if i < n && b[i] <= ' ' {
		for i < n && classes[b[i]] == cSpace {
			i++
		}
	}
	if i == n {
		st = sAfter
		goto out
	}
	if d == 0 {
		goto end
	}
	c = b[i]
	if c == ',' {
		i++
		if arr {
			goto value
		}
		if i < n && b[i] == '"' {
			i++
			goto key
		}
		goto objKey
	}
	if (c == ']' && arr) || (c == '}' && !arr) {
		i++
		goto pop
	}
	s.fail(i, d, "expected ',' or a closing bracket")
	return

scrubDeep: // deep with the Scrub check, for a value at depth 2
	if d == 2 && !s.evScrub {
		var flags uint8
		i, d, arr, s.kinds[0], x, flags = deepScrub(b, i, d, arr, s.kinds[0], lim, s.scrub)
		if flags&scrubMark != 0 || x != xAfter || d > 2 {
			s.evScrub = true
		}
		if flags&scrubTag != 0 {
			s.evTag = true
		}
	} else {
		if d > 2 {
			s.evScrub = true // the general code read part of the value
		}
		i, d, arr, s.kinds[0], x = deep(b, i, d, arr, s.kinds[0], lim, xValue)
	}
	goto resume

resume: // where deep stopped
	switch x {
	case xValue:
		goto valueSlow
	case xAfter:
		goto afterSlow
	case xObjFirst:
		goto objFirst
	case xArrFirst:
		goto arrFirst
	case xObjKey:
		goto objKey
	case xColon:
		goto colon
	case xKeyStr:
		s.strOf = plainKey
		goto str
	}
	s.strOf = 0
	goto str

pop: // i is past the closing bracket
	d--
	arr = s.kinds[d>>6]>>(d&63)&1 != 0
	if d == 1 && arrTop {
		if s.scrub != nil && !s.evScrub {
			s.scrubEnd(b, i)
		}
		s.endEvent(i)
	}
	goto after

end:
	for i < n && classes[b[i]] == cSpace {
		i++
	}
	if i == n {
		st = sEnd
		goto out
	}
	s.fail(i, d, "data after the top-level value")
	return

keyStr: // inside a key not captured; the common case of str
	for i+8 <= n {
		if m := stringStop(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if b[i] != '"' {
				s.strOf = plainKey
				goto strStop
			}
			i++
			if i < n && b[i] == ':' {
				i++
				goto value
			}
			goto colon
		}
		i += 8
	}
	s.strOf = plainKey
	goto str

valStr: // inside a value string not captured; the common case of str
	for i+8 <= n {
		if m := stringStop(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if b[i] != '"' {
				s.strOf = 0
				goto strStop
			}
			i++
			goto after
		}
		i += 8
	}
	s.strOf = 0
	goto str

str: // inside a string that is not captured; s.strOf tells key or value
	for i+8 <= n {
		if m := stringStop(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			goto strStop
		}
		i += 8
	}
	for i < n && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
		i++
	}
	if i == n {
		st = sStr
		goto out
	}
strStop:
	c = b[i]
	i++
	if c == '"' {
		if s.strOf == plainKey {
			if i < n && b[i] == ':' {
				i++
				goto value
			}
			goto colon
		}
		goto after
	}
	if c == '\\' {
		goto esc
	}
	s.fail(i-1, d, "control character in string")
	return

esc:
	if i == n {
		st = sEsc
		goto out
	}
	if !isEscape[b[i]] {
		s.fail(i, d, "invalid escape in string")
		return
	}
	i++
	if b[i-1] != 'u' {
		goto str
	}
	s.hex = 4
	goto hex

hex:
	for ; s.hex > 0; s.hex-- {
		if i == n {
			st = sHex
			goto out
		}
		if !isHex[b[i]] {
			s.fail(i, d, "invalid \\u escape in string")
			return
		}
		i++
	}
	goto str

capStr: // inside a captured string: an event's key, or its type or timestamp
	for i < n {
		c = b[i]
		switch {
		case s.hex > 0:
			if !isHex[c] {
				s.fail(i, d, "invalid \\u escape in string")
				return
			}
			s.hex--
		case s.esc:
			if !isEscape[c] {
				s.fail(i, d, "invalid escape in string")
				return
			}
			s.esc = false
			if c == 'u' {
				s.hex = 4
			}
		case c == '"':
			i++
			if s.endString() == sColon {
				goto colon
			}
			goto after
		case c == '\\':
			s.esc = true
		case c < 0x20:
			s.fail(i, d, "control character in string")
			return
		}
		s.capture(b[i : i+1])
		i++
	}
	st = sCapStr
	goto out

num: // inside a number; s.numSt is number's state
	j, st = s.number(b, i, s.numSt, d)
	if s.capOn {
		s.capture(b[i:j])
	}
	i = j
	switch st {
	case sAfter:
		if s.capOn {
			s.endNumber()
		}
		goto after
	case sEnd:
		return // failed
	}
	s.numSt, st = st, sNum
	goto out

lit:
	for ; s.litAt < len(s.lit); s.litAt++ {
		if i == n {
			st = sLit
			goto out
		}
		if b[i] != s.lit[s.litAt] {
			s.fail(i, d, "invalid literal")
			return
		}
		i++
	}
	goto after

out:
	s.state, s.depth, s.arr = st, d, arr
	if s.wantsRaw && d >= 2 && arrTop {
		// An event continues in the next chunk: keep its bytes so far.
		s.spill(b[s.rawStart:])
	}
	s.off += int64(n)
}

// number scans number bytes from b[i], starting in state st (sValue for
// the first byte), following encoding/json's grammar. It returns sAfter
// and the index of the byte after the number once it ended, or the state to
// resume in at the end of b.
func (s *scanner) number(b []byte, i int, st uint8, d int) (int, uint8) {
	n := len(b)
	for i < n {
		c := b[i]
		switch st {
		case sValue:
			if c == '-' {
				st = sNeg
			} else if c == '0' {
				st = sZero
			} else {
				st = sInt
			}
			i++
		case sNeg:
			if c == '0' {
				st = sZero
			} else if c >= '1' && c <= '9' {
				st = sInt
			} else {
				s.fail(i, d, "invalid number")
				return i, sEnd
			}
			i++
		case sInt:
			for i < n && b[i]-'0' <= 9 {
				i++
			}
			if i == n {
				return i, sInt
			}
			st = sZero // what may follow the integer part
		case sZero:
			switch c {
			case '.':
				st = sDot
			case 'e', 'E':
				st = sExpMark
			default:
				return i, sAfter
			}
			i++
		case sDot:
			if c-'0' > 9 {
				s.fail(i, d, "invalid number")
				return i, sEnd
			}
			st = sFrac
			i++
		case sFrac:
			for i < n && b[i]-'0' <= 9 {
				i++
			}
			if i == n {
				return i, sFrac
			}
			if b[i] != 'e' && b[i] != 'E' {
				return i, sAfter
			}
			st = sExpMark
			i++
		case sExpMark:
			if c == '+' || c == '-' {
				st = sExpSign
				i++
				continue
			}
			fallthrough
		case sExpSign:
			if c-'0' > 9 {
				s.fail(i, d, "invalid number")
				return i, sEnd
			}
			st = sExp
			i++
		case sExp:
			for i < n && b[i]-'0' <= 9 {
				i++
			}
			if i == n {
				return i, sExp
			}
			return i, sAfter
		}
	}
	return i, st
}

func (s *scanner) startEvent(i int) {
	s.evStart = s.off + int64(i)
	s.evBad, s.evBadF = "", fNone
	s.typSet, s.typOK, s.typFull, s.tsSet, s.tsOK = false, false, false, false, false
	s.typ, s.ts = 0, 0
	s.evScrub, s.evTag = false, false
	if s.wantsRaw {
		s.rawStart, s.raw, s.rawOver = i, s.raw[:0], false
	}
}

// endEvent checks the event just closed (i is past its brace in the
// current chunk) and folds it into the Info.
func (s *scanner) endEvent(i int) {
	index := s.info.EventCount
	s.info.EventCount++
	if s.evBad != "" {
		s.eventFieldError(index, s.evBadF, s.evBad)
		return
	}
	if s.typSet && !s.typFull && !s.typOK {
		s.eventFieldError(index, fType, "is not an integer")
		return
	}
	if s.tsSet && !s.tsOK {
		s.eventFieldError(index, fTimestamp, "is not a positive time in seconds or milliseconds")
		return
	}
	if s.typFull {
		s.info.HasFullSnapshot = true
	}
	if s.tsSet {
		if s.info.FirstTS == 0 || s.ts < s.info.FirstTS {
			s.info.FirstTS = s.ts
		}
		s.info.LastTS = max(s.info.LastTS, s.ts)
	}
	if s.onEvent == nil {
		return
	}
	m := EventMeta{Index: index, Type: s.typ, HasType: s.typSet, Start: s.evStart, End: s.off + int64(i), MayScrub: s.scrub == nil || s.evScrub}
	m.TagName = m.MayScrub || s.evTag
	if s.typFull {
		m.Type = 2
	}
	if s.tsSet {
		m.Timestamp = s.ts
	}
	if s.wantsRaw && m.HasType && !s.rawOver {
		for _, t := range s.rawTypes {
			if t == m.Type {
				m.Raw = s.rawBytes(i)
				break
			}
		}
	}
	s.onEvent(m)
}

// spill keeps the current event's bytes of this chunk, within the cap.
func (s *scanner) spill(p []byte) {
	if s.rawOver || len(s.raw)+len(p) > s.rawLimit {
		s.rawOver, s.raw = true, s.raw[:0]
		return
	}
	s.raw = append(s.raw, p...)
}

// rawBytes returns the event ending at b[i] (exclusive) of the chunk
// being scanned; see feed for where the chunk is.
func (s *scanner) rawBytes(i int) []byte {
	chunk := s.chunk[s.rawStart:i]
	if len(s.raw) == 0 {
		if len(chunk) > s.rawLimit {
			return nil
		}
		return chunk
	}
	s.spill(chunk)
	if s.rawOver {
		return nil
	}
	return s.raw
}

func (s *scanner) startCapture() {
	s.capOn, s.capLong, s.capN = true, false, 0
}

func (s *scanner) capture(p []byte) {
	if s.capN+len(p) > maxLit {
		s.capLong = true
		return
	}
	s.capN += copy(s.capBuf[s.capN:], p)
}

// endString handles the end of a captured string (a depth-2 key or a type
// or timestamp string value) and returns the next state.
func (s *scanner) endString() uint8 {
	s.capOn = false
	if s.strOf == capKey {
		f := fNone
		if !s.capLong {
			f = matchField(s.capBuf[:s.capN])
		}
		s.field = f
		return sColon
	}
	field := s.field
	var lit [maxLit]byte
	num, ok := unescape(lit[:0], s.capBuf[:s.capN])
	if s.capLong || !ok || !validNumber(num) {
		s.badField(field, "is not a number")
		return sAfter
	}
	s.setField(field, num)
	return sAfter
}

// endNumber handles the end of a type or timestamp number.
func (s *scanner) endNumber() {
	s.capOn = false
	field := s.field
	if s.capLong {
		// Refused unless a later duplicate key replaces it.
		s.setField(field, nil)
		return
	}
	s.setField(field, s.capBuf[:s.capN])
}

// setInt is setField for a literal of digits without a leading zero, with
// fast paths for the usual one-digit type and 9 to 16 digit timestamp.
func (s *scanner) setInt(field uint8, lit []byte) {
	switch {
	case field == fType && len(lit) == 1:
		s.typSet, s.typOK, s.typFull, s.typ = true, true, lit[0] == '2', int64(lit[0]-'0')
		return
	case field == fTimestamp && len(lit) >= 9 && len(lit) <= 16:
		hi := parse8(binary.LittleEndian.Uint64(lit))
		lo := parse8(binary.LittleEndian.Uint64(lit[len(lit)-8:]))
		v := int64(hi/pow10[16-len(lit)]*1e8 + lo)
		if v < secondsBelow {
			v *= 1000
		}
		s.tsSet, s.tsOK, s.ts = true, true, v
		return
	}
	s.setField(field, lit)
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// parse8 returns the value of 8 ASCII digits, the first in w's lowest
// byte: pairs, then quads, then all eight are combined in place.
func parse8(w uint64) uint64 {
	w -= '0' * lsb
	w = (w*10 + w>>8) & 0x00ff00ff00ff00ff
	w = (w*100 + w>>16) & 0x0000ffff0000ffff
	return (w*10000 + w>>32) & 0xffffffff
}

func (s *scanner) setField(field uint8, lit []byte) {
	switch field {
	case fType:
		s.typSet = true
		s.typFull = len(lit) == 1 && lit[0] == '2'
		s.typ, s.typOK = parseInt(lit)
	case fTimestamp:
		s.tsSet = true
		s.ts, s.tsOK = millisBytes(lit)
	}
}

// badField marks the current event bad for its field's value. As in
// encoding/json, the first such error stands even if a later duplicate
// key holds a good value.
func (s *scanner) badField(field uint8, why string) {
	if s.evBad == "" {
		s.evBad, s.evBadF = why, field
	}
}

func (s *scanner) eventFieldError(index int, field uint8, why string) {
	if s.semErr != nil {
		return
	}
	e := invalid(ReasonBadEvent, errDetail(fieldNames[field]+" "+why))
	e.Located, e.Offset = true, s.evStart
	e.Path = "[" + strconv.Itoa(index) + "]." + fieldNames[field]
	s.semErr = e
}

// eventError records an element of the top-level array that is not an
// event object.
func (s *scanner) eventError(i, d int, why string) {
	if s.semErr == nil {
		s.semErr = invalid(ReasonBadEvent, errDetail(why))
		s.semErr.Located, s.semErr.Offset = true, s.off+int64(i)
		s.semErr.Path = s.path(d)
	}
}

func (s *scanner) semantic(reason string, i int, why string) {
	if s.semErr == nil {
		s.semErr = invalid(reason, errDetail(why))
		s.semErr.Located, s.semErr.Offset = true, s.off+int64(i)
	}
}

// fail records a syntax error at b[i]; scanning stops.
func (s *scanner) fail(i, d int, why string) {
	reason := ReasonNotJSON
	if why == "nesting deeper than the limit" {
		reason = ReasonTooDeep
	}
	e := invalid(reason, errDetail(why))
	e.Located, e.Offset = true, s.off+int64(i)
	e.Path = s.path(d)
	s.syntaxErr = e
	s.state = sEnd
}

// path renders the position of an element at depth d as a JSON path: the
// event's index, the event field being read if it is one the scanner
// knows, and how much deeper the element is. No payload byte ever
// appears in it.
func (s *scanner) path(d int) string {
	if d == 0 || s.top != '[' {
		return ""
	}
	p := "[" + strconv.Itoa(s.elem) + "]"
	if d >= 2 && s.field != fNone {
		p += "." + fieldNames[s.field]
	}
	if d > 2 {
		p += " (depth " + strconv.Itoa(d) + ")"
	}
	return p
}

// push records the kind of the array or object at depth d, which a new one
// nests in.
func (s *scanner) push(d int, arr bool) {
	w := d >> 6
	if w >= len(s.kinds) {
		s.kinds = append(s.kinds, make([]uint64, w+1-len(s.kinds))...)
	}
	if arr {
		s.kinds[w] |= 1 << (d & 63)
	} else {
		s.kinds[w] &^= 1 << (d & 63)
	}
}

// finish ends the document and returns the first error, if any.
func (s *scanner) finish() error {
	if s.syntaxErr != nil {
		return s.syntaxErr
	}
	if !s.seen {
		e := invalid(ReasonEmptyPayload, errDetail("payload holds only whitespace"))
		return e
	}
	switch s.state {
	case sNum: // a top-level number ends at EOF
		if s.depth == 0 && (s.numSt == sZero || s.numSt == sInt || s.numSt == sFrac || s.numSt == sExp) {
			s.state = sEnd
		}
	case sAfter:
		if s.depth == 0 {
			s.state = sEnd
		}
	}
	if s.state != sEnd {
		e := invalid(ReasonNotJSON, errDetail("unexpected end of JSON"))
		e.Located, e.Offset = true, s.off
		e.Path = s.path(s.depth)
		return e
	}
	if s.semErr != nil {
		return s.semErr
	}
	return nil
}

// errDetail is a fixed description of what is wrong; never payload text.
type errDetail string

func (e errDetail) Error() string { return string(e) }

// matchField tells which event field a raw (still escaped) key names.
// Like encoding/json, it unescapes the key and matches case-insensitively
// with Unicode simple folding (so "TYPE" and "timeſtamp" match).
func matchField(raw []byte) uint8 {
	// Or-ing 0x20 lower-cases ASCII letters and maps no other byte to one.
	switch len(raw) {
	case 4:
		switch binary.LittleEndian.Uint32(raw) | 0x20202020 {
		case 't' | 'y'<<8 | 'p'<<16 | 'e'<<24:
			return fType
		case 'd' | 'a'<<8 | 't'<<16 | 'a'<<24:
			return fData
		}
	case 9:
		if binary.LittleEndian.Uint64(raw)|0x2020202020202020 == 't'|'i'<<8|'m'<<16|'e'<<24|'s'<<32|'t'<<40|'a'<<48|'m'<<56 && raw[8]|0x20 == 'p' {
			return fTimestamp
		}
	}
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return fNone
	}
	var buf [maxLit]byte
	key, _ := unescape(buf[:0], raw)
	switch {
	case foldEqual(key, "TYPE"):
		return fType
	case foldEqual(key, "TIMESTAMP"):
		return fTimestamp
	case foldEqual(key, "DATA"):
		return fData
	}
	return fNone
}

// foldEqual reports whether key folds to upper, an upper-case ASCII name,
// the way encoding/json folds field names.
func foldEqual(key []byte, upper string) bool {
	k := 0
	for i := 0; i < len(upper); i++ {
		if k >= len(key) {
			return false
		}
		r, size := rune(key[k]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(key[k:])
		}
		k += size
		if foldRune(r) != rune(upper[i]) {
			return false
		}
	}
	return k == len(key)
}

// foldRune returns the smallest rune of r's simple case folding orbit, as
// encoding/json does.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// unescape appends the content of a JSON string (without its quotes,
// already checked by the scanner) to dst, decoding escapes as
// encoding/json does (an unpaired surrogate becomes U+FFFD). It reports
// false only for a truncated escape, which the scanner never passes.
func unescape(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return dst, false
		}
		switch e := raw[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw[i+2:])
			if !ok {
				return dst, false
			}
			i += 6
			if utf16IsSurrogate(r) {
				if r2, ok := lowSurrogate(raw[i:]); ok && r < 0xdc00 {
					dst = utf8.AppendRune(dst, 0x10000+(r-0xd800)<<10+(r2-0xdc00))
					i += 6
					continue
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst, true
}

func utf16IsSurrogate(r rune) bool { return 0xd800 <= r && r < 0xe000 }

func lowSurrogate(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	r, ok := hex4(b[2:])
	return r, ok && 0xdc00 <= r && r < 0xe000
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// validNumber reports whether b is a JSON number (as encoding/json requires
// of a string decoded into a json.Number).
func validNumber(b []byte) bool {
	// number expects to start on a number's first byte: check it here.
	if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		return false
	}
	var s scanner
	s.maxDepth = 1
	j, st := s.number(b, 0, sValue, 0)
	if s.syntaxErr != nil || j != len(b) {
		return false
	}
	return st == sZero || st == sInt || st == sFrac || st == sExp || st == sAfter
}

// parseInt parses a decimal int64 without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) > 0 && len(b) <= 18 && (b[0] != '-' || len(b) > 1) {
		neg := b[0] == '-'
		d := b
		if neg {
			d = b[1:]
		}
		var v int64
		for _, c := range d {
			if c-'0' > 9 {
				goto slow
			}
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		return v, true
	}
slow:
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// millisBytes is millis for a literal, without allocating in the common
// case of whole milliseconds.
func millisBytes(b []byte) (int64, bool) {
	if len(b) > 0 && len(b) <= 18 {
		var v int64
		for _, c := range b {
			if c-'0' > 9 {
				return millis(string(b))
			}
			v = v*10 + int64(c-'0')
		}
		switch {
		case v <= 0:
			return 0, false
		case v < secondsBelow:
			return v * 1000, true
		}
		return v, true
	}
	return millis(string(b))
}

// jsonMaxDepth is encoding/json's nesting limit.
const jsonMaxDepth = 10000

// ValidJSON reports whether b is one JSON value, exactly as
// encoding/json.Valid does, at the scanner's speed.
func ValidJSON(b []byte) bool {
	w := works.Get().(*work)
	defer w.release()
	w.sc.reset(jsonMaxDepth, nil, &w.info)
	w.sc.feed(b)
	err := w.sc.finish()
	r, _ := Reason(err)
	return err == nil || r == ReasonNotArray || r == ReasonBadEvent
}
