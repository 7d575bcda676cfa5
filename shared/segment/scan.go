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
)

// Fields of an event object the scanner reads.
const (
	fNone uint8 = iota
	fType
	fTimestamp
	fData
)

var fieldNames = [...]string{fType: "type", fTimestamp: "timestamp", fData: "data"}

// level is one open array or object.
type level struct {
	n     uint32 // index of the current element or member
	arr   bool
	field uint8 // in an event object: which field the current member is
}

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
	hex   uint8  // hex digits left in \u
	lit   string // the literal being matched in sLit
	litAt int    // bytes of lit matched
	strOf uint8  // what the current string is: capKey, capVal or 0
	seen  bool   // a non-blank byte was seen
	top   byte   // the first non-blank byte
	off   int64  // stream offset of the current chunk's first byte
	chunk []byte // the chunk being scanned
	stack []level

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
}

// What the current string is captured as.
const (
	capKey uint8 = 1 + iota
	capVal
	plainKey
)

func (s *scanner) reset(maxDepth int, hook *EventHook, info *Info) {
	*s = scanner{maxDepth: maxDepth, hook: hook, info: info, stack: s.stack[:0], raw: s.raw[:0], capBuf: s.capBuf}
	if hook != nil {
		s.onEvent = hook.OnEvent
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
	s.hook, s.info, s.onEvent, s.rawTypes = nil, nil, nil, nil
	if cap(s.raw) > defaultMaxRaw {
		s.raw = nil
	}
	if cap(s.stack) > DefaultMaxDepth {
		s.stack = nil
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

// feed scans the next chunk of the document.
func (s *scanner) feed(b []byte) {
	if s.syntaxErr != nil {
		return
	}
	if s.wantsRaw {
		s.rawStart, s.chunk = 0, b
		defer func() { s.chunk = nil }()
	}
	i, n := 0, len(b)
	st := s.state
	for i < n {
		switch st {
		case sStr:
			j := i
			for j+8 <= n {
				if m := stringStop(binary.LittleEndian.Uint64(b[j:])); m != 0 {
					j += bits.TrailingZeros64(m) >> 3
					goto stop
				}
				j += 8
			}
			for j < n && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
				j++
			}
		stop:
			if s.capOn {
				s.capture(b[i:j])
			}
			i = j
			if i == n {
				continue
			}
			switch c := b[i]; {
			case c == '"':
				i++
				switch s.strOf {
				case 0:
					st = sAfter
				case plainKey:
					st = sColon
				default:
					st = s.endString()
				}
			case c == '\\':
				if s.capOn {
					s.capture(b[i : i+1])
				}
				i++
				st = sEsc
			default:
				s.fail(i, "control character in string")
				return
			}

		case sValue, sArrFirst, sObjFirst, sObjKey, sColon, sAfter, sEnd:
			c := b[i]
			cl := classes[c]
			if cl == cSpace {
				i++
				for i < n && classes[b[i]] == cSpace {
					i++
				}
				continue
			}
			if !s.seen {
				s.seen, s.top = true, c
				if c != '[' {
					s.semantic(ReasonNotArray, i, "payload is not a JSON array")
				}
			}
			switch st {
			case sValue, sArrFirst:
				if cl == cCloseArr && st == sArrFirst {
					i++
					st = s.pop(i)
					continue
				}
				i, st = s.value(b, i, cl)
				if st == sEnd && s.syntaxErr != nil {
					return
				}
			case sObjFirst, sObjKey:
				switch {
				case cl == cQuote:
					i++
					st = sStr
					s.strOf = plainKey
					if len(s.stack) == 2 && s.top == '[' {
						s.strOf = capKey
						s.startCapture()
					}
				case cl == cCloseObj && st == sObjFirst:
					i++
					st = s.pop(i)
				default:
					s.fail(i, "expected a string key")
					return
				}
			case sColon:
				if cl != cColon {
					s.fail(i, "expected ':' after a key")
					return
				}
				i++
				st = sValue
			case sAfter:
				d := len(s.stack)
				if d == 0 {
					st = sEnd
					continue
				}
				top := &s.stack[d-1]
				switch {
				case cl == cComma:
					i++
					top.n++
					if top.arr {
						st = sValue
					} else {
						st = sObjKey
					}
				case cl == cCloseArr && top.arr, cl == cCloseObj && !top.arr:
					i++
					st = s.pop(i)
				default:
					s.fail(i, "expected ',' or a closing bracket")
					return
				}
			case sEnd:
				s.fail(i, "data after the top-level value")
				return
			}

		case sEsc:
			c := b[i]
			if !isEscape[c] {
				s.fail(i, "invalid escape in string")
				return
			}
			if s.capOn {
				s.capture(b[i : i+1])
			}
			i++
			if c == 'u' {
				st, s.hex = sHex, 4
			} else {
				st = sStr
			}

		case sHex:
			for s.hex > 0 && i < n {
				if !isHex[b[i]] {
					s.fail(i, "invalid \\u escape in string")
					return
				}
				if s.capOn {
					s.capture(b[i : i+1])
				}
				i++
				s.hex--
			}
			if s.hex == 0 {
				st = sStr
			}

		case sNeg, sZero, sInt, sDot, sFrac, sExpMark, sExpSign, sExp:
			var j int
			j, st = s.number(b, i, st)
			if s.capOn {
				s.capture(b[i:j])
			}
			if s.syntaxErr != nil {
				return
			}
			i = j
			if st == sAfter && s.strOf == capVal {
				st = s.endNumber()
			}

		case sLit:
			for s.litAt < len(s.lit) && i < n {
				if b[i] != s.lit[s.litAt] {
					s.fail(i, "invalid literal")
					return
				}
				i++
				s.litAt++
			}
			if s.litAt == len(s.lit) {
				st = sAfter
			}
		}
	}
	s.state = st
	if s.wantsRaw && s.rawStart >= 0 && len(s.stack) >= 2 && s.top == '[' {
		// An event continues in the next chunk: keep its bytes so far.
		s.spill(b[s.rawStart:])
	}
	s.off += int64(n)
}

// value starts the value at b[i], of class cl.
func (s *scanner) value(b []byte, i int, cl uint8) (int, uint8) {
	d := len(s.stack)
	inArray := d == 1 && s.top == '['
	if inArray && cl != cOpenObj {
		s.eventError(i, "event is not a JSON object")
	}
	field := fNone
	if d == 2 && s.top == '[' {
		field = s.stack[1].field
	}
	switch cl {
	case cOpenObj, cOpenArr:
		if field == fType || field == fTimestamp {
			s.badField(field, "is not a number")
		}
		if d >= s.maxDepth {
			s.fail(i, "nesting deeper than the limit")
			return i, sEnd
		}
		s.stack = append(s.stack, level{arr: cl == cOpenArr})
		if inArray {
			s.startEvent(b, i)
		}
		if cl == cOpenArr {
			return i + 1, sArrFirst
		}
		return i + 1, sObjFirst
	case cQuote:
		s.strOf = 0
		if field == fType || field == fTimestamp {
			s.strOf = capVal
			s.startCapture()
		}
		return i + 1, sStr
	case cDigit, cMinus:
		s.strOf = 0
		if field == fType || field == fTimestamp {
			s.strOf = capVal
			s.startCapture()
		}
		j, st := s.number(b, i, sValue)
		if s.capOn {
			s.capture(b[i:j])
		}
		if st == sAfter && s.strOf == capVal {
			st = s.endNumber()
		}
		return j, st
	case cT, cF, cN:
		lit := "null"
		if cl == cT {
			lit = "true"
		} else if cl == cF {
			lit = "false"
		}
		if cl != cN && (field == fType || field == fTimestamp) {
			s.badField(field, "is not a number")
		}
		if i+len(lit) <= len(b) {
			if string(b[i:i+len(lit)]) != lit {
				k := 1
				for b[i+k] == lit[k] {
					k++
				}
				s.fail(i+k, "invalid literal")
				return i, sEnd
			}
			return i + len(lit), sAfter
		}
		s.lit, s.litAt = lit, 1
		return i + 1, sLit
	}
	s.fail(i, "expected a value")
	return i, sEnd
}

// number scans number bytes from b[i], starting in state st (sValue for
// the first byte), following encoding/json's grammar. It returns sAfter
// and the index of the byte after the number once it ended, or the state to
// resume in at the end of b.
func (s *scanner) number(b []byte, i int, st uint8) (int, uint8) {
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
				s.fail(i, "invalid number")
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
				s.fail(i, "invalid number")
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
				s.fail(i, "invalid number")
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

// pop closes the innermost array or object; i is just past its bracket.
func (s *scanner) pop(i int) uint8 {
	d := len(s.stack) - 1
	s.stack = s.stack[:d]
	if d == 1 && s.top == '[' {
		s.endEvent(i)
	}
	return sAfter
}

func (s *scanner) startEvent(b []byte, i int) {
	s.evStart = s.off + int64(i)
	s.evBad, s.evBadF = "", fNone
	s.typSet, s.typOK, s.typFull, s.tsSet, s.tsOK = false, false, false, false, false
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
	m := EventMeta{Index: index, Type: s.typ, HasType: s.typSet, Start: s.evStart, End: s.off + int64(i)}
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
		s.stack[1].field = f
		return sColon
	}
	field := s.stack[1].field
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
func (s *scanner) endNumber() uint8 {
	s.capOn = false
	field := s.stack[1].field
	if s.capLong {
		// Refused unless a later duplicate key replaces it.
		s.setField(field, nil)
		return sAfter
	}
	s.setField(field, s.capBuf[:s.capN])
	return sAfter
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
func (s *scanner) eventError(i int, why string) {
	if s.semErr == nil {
		s.semErr = invalid(ReasonBadEvent, errDetail(why))
		s.semErr.Located, s.semErr.Offset = true, s.off+int64(i)
		s.semErr.Path = s.path()
	}
}

func (s *scanner) semantic(reason string, i int, why string) {
	if s.semErr == nil {
		s.semErr = invalid(reason, errDetail(why))
		s.semErr.Located, s.semErr.Offset = true, s.off+int64(i)
	}
}

// fail records a syntax error at b[i]; scanning stops.
func (s *scanner) fail(i int, why string) {
	reason := ReasonNotJSON
	if why == "nesting deeper than the limit" {
		reason = ReasonTooDeep
	}
	e := invalid(reason, errDetail(why))
	e.Located, e.Offset = true, s.off+int64(i)
	e.Path = s.path()
	s.syntaxErr = e
	s.state = sEnd
}

// path renders the scanner's position as a JSON path made of array
// indices and of the names of the event fields it knows; other keys are
// shown by position (.#2 is the third member), so that no payload byte
// ever appears in it.
func (s *scanner) path() string {
	var b []byte
	for d, l := range s.stack {
		switch {
		case l.arr:
			b = append(b, '[')
			b = strconv.AppendUint(b, uint64(l.n), 10)
			b = append(b, ']')
		case d == 1 && s.top == '[' && l.field != fNone:
			b = append(b, '.')
			b = append(b, fieldNames[l.field]...)
		default:
			b = append(b, ".#"...)
			b = strconv.AppendUint(b, uint64(l.n), 10)
		}
	}
	return string(b)
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
	case sZero, sInt, sFrac, sExp: // a top-level number ends at EOF
		if len(s.stack) == 0 {
			s.state = sEnd
		}
	case sAfter:
		if len(s.stack) == 0 {
			s.state = sEnd
		}
	}
	if s.state != sEnd {
		e := invalid(ReasonNotJSON, errDetail("unexpected end of JSON"))
		e.Located, e.Offset = true, s.off
		e.Path = s.path()
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
	switch len(raw) {
	case 4:
		if asciiFold4(raw) == "TYPE" {
			return fType
		}
	case 9:
		if raw[0]|0x20 == 't' && raw[1]|0x20 == 'i' && raw[2]|0x20 == 'm' && raw[3]|0x20 == 'e' &&
			raw[4]|0x20 == 's' && raw[5]|0x20 == 't' && raw[6]|0x20 == 'a' && raw[7]|0x20 == 'm' && raw[8]|0x20 == 'p' {
			return fTimestamp
		}
	}
	if len(raw) == 4 && raw[0]|0x20 == 'd' && raw[1]|0x20 == 'a' && raw[2]|0x20 == 't' && raw[3]|0x20 == 'a' {
		return fData
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

func asciiFold4(b []byte) string {
	var u [4]byte
	for i, c := range b[:4] {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		u[i] = c
	}
	return string(u[:])
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
	if len(b) == 0 {
		return false
	}
	var s scanner
	s.maxDepth = 1
	j, st := s.number(b, 0, sValue)
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
