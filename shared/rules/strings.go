package rules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"sync"

	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/segment"
)

// A ModeStrings rule (a PII scrub) does not get the events: Pack walks them
// here, natively, and hands the module a Table of only the strings its
// Wants may concern, with their rrweb context (kind, node, attribute, tag)
// and, if asked, the nodes. Inside the sandbox every loop iteration costs
// a check of the time budget, so the structural walk, the bulk of the work,
// is done here, and the module's work is proportional to the few strings
// that may hold personal data. Its edits are spliced into the events, and
// only string contents can change.

// maxWalkDepth bounds the walk's nesting; Pack validated the events against
// a limit at least this strict (segment.DefaultMaxDepth).
const maxWalkDepth = 1000

// strTable is a Table built from one segment's events, with where each of
// its strings is in them.
type strTable struct {
	sdk.Table
	// at[i] is the offset of Strings[i]'s raw content in the events.
	at []int
}

// walker builds a strTable; one is pooled per call.
type walker struct {
	b     []byte
	wants *compiledWants
	recs  []rec // the strings the wants may concern
	t     strTable
	// masks are the [from, to) ranges of strings Pack masks itself
	// (Wants.MaskInputs, MaskAttributes), in order.
	masks []int
	depth int
	pendS []int // recs whose owner object has not closed yet
	pendN []int // nodes whose parent is not known yet
	tagOf map[int64][]byte
	objs  []*object // by depth, reused
	// spans, when set, are where the top-level events are, so that the
	// walk can pass over those eventMayEdit clears.
	spans []Span
	// clear: the spans' Clear holds (the validating pass cleared those
	// events under a ScrubCheck at least as wide as eventMayEdit).
	clear bool
	// tagOnly are the spans of the events passed over that name node
	// tags: walked afterwards, for the tags alone, only if a string of
	// the walk needs a tag (see walkTagEvents).
	tagOnly []int
}

// child returns a cleared object for the next depth (objects nest, so one
// per depth serves the whole walk; none is allocated once the pool is
// warm).
func (wk *walker) child() *object {
	for len(wk.objs) <= wk.depth {
		wk.objs = append(wk.objs, new(object))
	}
	o := wk.objs[wk.depth]
	*o = object{} // not reusing nodeAtt: Nodes keep theirs
	return o
}

// rec is one string the wants may concern, with its context.
type rec struct {
	sdk.String
	from    int
	pattern bool // passes the pattern pre-filter
}

var walkers = sync.Pool{New: func() any { return &walker{tagOf: map[int64][]byte{}} }}

// compiledWants is a module's Wants in the form the walk uses.
type compiledWants struct {
	sdk.Wants
	attrs, maskAttrs map[string]bool
}

func compileWants(w sdk.Wants) *compiledWants {
	c := &compiledWants{Wants: w, attrs: map[string]bool{}, maskAttrs: map[string]bool{}}
	for _, a := range w.Attributes {
		c.attrs[strings.ToLower(a)] = true
	}
	for _, a := range w.MaskAttributes {
		c.maskAttrs[strings.ToLower(a)] = true
	}
	return c
}

// inputTag reports whether an element's value is an input value.
func inputTag(tag []byte) bool {
	switch string(tag) {
	case "input", "textarea", "select", "option":
		return true
	}
	return false
}

// object is one open object of the walk.
type object struct {
	key     string // the key it is the value of ("" in an array)
	arrKey  string // in an array: the array's key
	top     bool   // a top-level event
	attrs   bool   // an element's attributes
	node    bool   // a DOM node (in childNodes, or a mutation's added node)
	id      int64
	hasID   bool
	parent  int64 // a "parentId" member
	hasPar  bool
	tag     []byte
	markS   int
	markN   int
	nodeAtt [][]byte // an element's attributes (name, value) for Nodes
}

// buildTable walks events (a valid JSON array) and returns the table for
// w; the walker must be released with putWalker after the table is used.
func buildTable(events []byte, w *compiledWants, config []byte) (*walker, error) {
	return buildTableSpans(events, w, config, nil, false)
}

// buildTableSpans is buildTable that passes over the events spans place
// and eventMayEdit clears (or, with clear, whose Clear is set): the table
// is the same.
func buildTableSpans(events []byte, w *compiledWants, config []byte, spans []Span, cleared bool) (*walker, error) {
	wk := walkers.Get().(*walker)
	wk.b, wk.wants, wk.depth, wk.spans, wk.clear = events, w, 0, spans, cleared
	if w.Nodes {
		wk.spans = nil // every node counts
	}
	wk.t.Config = config
	wk.t.Strings, wk.t.Nodes, wk.t.at = wk.t.Strings[:0], wk.t.Nodes[:0], wk.t.at[:0]
	wk.recs, wk.masks = wk.recs[:0], wk.masks[:0]
	wk.pendS, wk.pendN, wk.tagOnly = wk.pendS[:0], wk.pendN[:0], wk.tagOnly[:0]
	clear(wk.tagOf)
	i := wk.ws(0)
	if i >= len(events) || events[i] != '[' {
		putWalker(wk)
		return nil, errors.New("events: not an array")
	}
	end, err := wk.array(i+1, "", true)
	if err == nil && wk.ws(end) != len(events) {
		err = errors.New("events: trailing data")
	}
	if err == nil {
		err = wk.walkTagEvents()
	}
	if err != nil {
		putWalker(wk)
		return nil, err
	}
	wk.decide()
	return wk, nil
}

// walkTagEvents walks the events the walk passed over that name node
// tags, if a string it kept needs one: an attribute a mutation changes
// names its element by id only, and decide gives it the tag the segment
// gives that node. Nothing else in them concerns the rule (eventMayEdit),
// so only their tags are kept.
func (wk *walker) walkTagEvents() error {
	if len(wk.tagOnly) == 0 || !wk.needTags() {
		return nil
	}
	n := len(wk.recs)
	for _, k := range wk.tagOnly {
		c := wk.child()
		c.top = true
		if _, err := wk.object(int(wk.spans[k].Start)+1, c); err != nil {
			return err
		}
		wk.recs = wk.recs[:n]
	}
	return nil
}

// needTags reports whether a kept string is an attribute of an element
// known by id only.
func (wk *walker) needTags() bool {
	for i := range wk.recs {
		if r := &wk.recs[i]; r.Kind == sdk.KindAttr && len(r.Tag) == 0 && r.Node >= 0 {
			return true
		}
	}
	return false
}

// decide sorts the strings the walk kept: masked by Pack, handed to the
// module, or neither.
func (wk *walker) decide() {
	w := wk.wants
	for i := range wk.recs {
		r := &wk.recs[i]
		if r.Kind == sdk.KindAttr && len(r.Tag) == 0 && r.Node >= 0 {
			// A mutation's attribute change names its element only by
			// id: give it the tag of that node if the segment holds it.
			r.Tag = wk.tagOf[r.Node]
		}
		mask := false
		switch r.Kind {
		case sdk.KindInput:
			mask = w.MaskInputs
		case sdk.KindAttr:
			name := strings.ToLower(string(r.Name))
			mask = w.maskAttrs[name] || w.MaskInputs && name == "value" && inputTag(r.Tag)
		}
		if mask {
			wk.masks = append(wk.masks, r.from, r.from+len(r.Value))
			continue
		}
		send := r.pattern
		switch {
		case w.Nodes && r.Kind != sdk.KindOther:
			send = true
		case r.Kind == sdk.KindInput && w.Inputs:
			send = true
		case r.Kind == sdk.KindAttr && (w.attrs[strings.ToLower(string(r.Name))] || w.Inputs && strings.EqualFold(string(r.Name), "value")):
			send = true
		}
		if send {
			wk.t.Strings = append(wk.t.Strings, r.String)
			wk.t.at = append(wk.t.at, r.from)
		}
	}
}

func putWalker(wk *walker) {
	wk.b, wk.wants, wk.t.Config, wk.spans = nil, nil, nil, nil
	if cap(wk.t.Strings) > 1<<16 {
		*wk = walker{tagOf: map[int64][]byte{}}
	}
	if len(wk.tagOf) > 1<<12 {
		wk.tagOf = map[int64][]byte{}
	}
	walkers.Put(wk)
}

func (wk *walker) ws(i int) int {
	for i < len(wk.b) {
		switch wk.b[i] {
		case ' ', '\n', '\r', '\t':
			i++
		default:
			return i
		}
	}
	return i
}

// array walks the array whose first element (or ']') is at i; key is the
// key the array is the value of; top marks the events array.
func (wk *walker) array(i int, key string, top bool) (int, error) {
	b := wk.b
	i = wk.ws(i)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for k := 0; ; k++ {
		i = wk.ws(i)
		if i >= len(b) {
			return i, errUnexpectedEnd
		}
		var err error
		switch b[i] {
		case '{':
			if top && k < len(wk.spans) {
				if sp := wk.spans[k]; sp.Start == int64(i) && sp.End > sp.Start && sp.End <= int64(len(b)) && b[sp.End-1] == '}' {
					if ev := b[sp.Start:sp.End]; wk.clear && sp.Clear || !eventMayEdit(ev, wk.wants) {
						if !(wk.clear && sp.Clear && sp.NoTags) && bytes.Contains(ev, keyTagName) {
							wk.tagOnly = append(wk.tagOnly, k)
						}
						i = int(sp.End)
						break
					}
				}
			}
			c := wk.child()
			c.arrKey, c.top, c.node = key, top, key == "childNodes"
			i, err = wk.object(i+1, c)
		case '[':
			i, err = wk.nested(i+1, "")
		case '"':
			var end int
			if end, err = wk.str(i + 1); err == nil {
				if !top {
					wk.onString(nil, "", nil, i+1, end)
				}
				i = end + 1
			}
		default:
			i, err = wk.scalar(i)
		}
		if err != nil {
			return i, err
		}
		i = wk.ws(i)
		if i >= len(b) {
			return i, errUnexpectedEnd
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

var errUnexpectedEnd = errors.New("unexpected end of events")

func (wk *walker) nested(i int, key string) (int, error) {
	wk.depth++
	if wk.depth > maxWalkDepth {
		return i, errors.New("events nest too deep")
	}
	i, err := wk.array(i, key, false)
	wk.depth--
	return i, err
}

// object walks the members of o, whose first key (or '}') is at i.
func (wk *walker) object(i int, o *object) (int, error) {
	wk.depth++
	if wk.depth > maxWalkDepth {
		return i, errors.New("events nest too deep")
	}
	i, err := wk.members(i, o)
	wk.depth--
	return i, err
}

func (wk *walker) members(i int, o *object) (int, error) {
	o.markS, o.markN = len(wk.pendS), len(wk.pendN)
	b := wk.b
	i = wk.ws(i)
	if i < len(b) && b[i] == '}' {
		wk.closeObject(o)
		return i + 1, nil
	}
	for {
		i = wk.ws(i)
		if i >= len(b) || b[i] != '"' {
			return i, errors.New("events: object key expected")
		}
		kend, err := wk.str(i + 1)
		if err != nil {
			return i, err
		}
		rawKey := b[i+1 : kend]
		key := internKey(rawKey)
		i = wk.ws(kend + 1)
		if i >= len(b) || b[i] != ':' {
			return i, errors.New("events: ':' expected")
		}
		i = wk.ws(i + 1)
		if i >= len(b) {
			return i, errUnexpectedEnd
		}
		switch b[i] {
		case '{':
			c := wk.child()
			c.key, c.node, c.attrs = key, key == "node", key == "attributes"
			i, err = wk.object(i+1, c)
			if err == nil && c.attrs {
				o.nodeAtt = append(o.nodeAtt, c.nodeAtt...)
			}
		case '[':
			i, err = wk.nested(i+1, key)
		case '"':
			var end int
			if end, err = wk.str(i + 1); err == nil {
				wk.member(o, key, rawKey, i+1, end)
				i = end + 1
			}
		default:
			start := i
			if i, err = wk.scalar(i); err == nil && (key == "id" || key == "parentId") {
				if n, ok := atoi(b[start:i]); ok {
					if key == "id" {
						o.id, o.hasID = n, true
					} else {
						o.parent, o.hasPar = n, true
					}
				}
			}
		}
		if err != nil {
			return i, err
		}
		i = wk.ws(i)
		if i >= len(b) {
			return i, errUnexpectedEnd
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			wk.closeObject(o)
			return i + 1, nil
		default:
			return i, errors.New("events: ',' or '}' expected")
		}
	}
}

// member handles the string value b[from:to] of key in o.
func (wk *walker) member(o *object, key string, rawKey []byte, from, to int) {
	switch {
	case o.top && (strings.EqualFold(string(rawKey), "type") || strings.EqualFold(string(rawKey), "timestamp")):
		// An event's type and timestamp are never handed out: what Pack
		// learned from them in validation stays true.
		return
	case key == "tagName":
		o.tag = wk.b[from:to]
		for _, c := range o.tag {
			if c >= 'A' && c <= 'Z' {
				o.tag = bytes.ToLower(o.tag)
				break
			}
		}
		return
	}
	wk.onString(o, key, rawKey, from, to)
	if o.attrs && wk.wants.Nodes {
		o.nodeAtt = append(o.nodeAtt, rawKey, wk.b[from:to])
	}
}

// onString adds the string b[from:to], the value of the key rawKey in o
// (nil in an array), to the table if the module's wants may concern it.
func (wk *walker) onString(o *object, key string, rawKey []byte, from, to int) {
	w := wk.wants
	kind := sdk.KindOther
	var name []byte
	if o != nil {
		switch {
		case o.attrs:
			kind, name = sdk.KindAttr, rawKey
		case key == "textContent":
			kind = sdk.KindText
		case key == "text" && o.key == "data":
			kind = sdk.KindInput
		case key == "value" && o.arrKey == "texts":
			kind = sdk.KindMutationText
		}
	}
	val := wk.b[from:to]
	pattern := w.AtSign && hasAt(val) || w.MinDigits > 0 && len(val) >= w.MinDigits && digitRun(val, w.MinDigits)
	if kind == sdk.KindOther && !pattern {
		return
	}
	if (kind == sdk.KindText || kind == sdk.KindMutationText) && !pattern && !w.Nodes {
		return
	}
	wk.recs = append(wk.recs, rec{String: sdk.String{Kind: kind, Node: -1, Name: name, Value: val}, from: from, pattern: pattern})
	if o != nil {
		wk.pendS = append(wk.pendS, len(wk.recs)-1)
	}
}

// closeObject resolves what only the end of o tells: the node its strings
// belong to, the parent of the nodes inside it, and o as a node itself.
func (wk *walker) closeObject(o *object) {
	if o.attrs {
		return // its strings belong to the element
	}
	for _, s := range wk.pendS[o.markS:] {
		st := &wk.recs[s]
		if o.hasID {
			st.Node = o.id
		}
		if st.Kind == sdk.KindAttr && len(st.Tag) == 0 {
			st.Tag = o.tag
		}
	}
	wk.pendS = wk.pendS[:o.markS]
	parent := int64(-1)
	switch {
	case o.node && o.hasID:
		parent = o.id
	case o.hasPar:
		parent = o.parent
	}
	for _, n := range wk.pendN[o.markN:] {
		wk.t.Nodes[n].Parent = parent
	}
	wk.pendN = wk.pendN[:o.markN]
	if o.node && o.hasID {
		if len(o.tag) > 0 {
			wk.tagOf[o.id] = o.tag
		}
		if wk.wants.Nodes {
			wk.t.Nodes = append(wk.t.Nodes, sdk.Node{ID: o.id, Parent: -1, Tag: o.tag, Attrs: o.nodeAtt})
			wk.pendN = append(wk.pendN, len(wk.t.Nodes)-1)
		}
	}
}

// str returns the index of the closing quote of the string whose content
// starts at i.
func (wk *walker) str(i int) (int, error) {
	if j := strEnd(wk.b, i); j >= 0 {
		return j, nil
	}
	return len(wk.b), errors.New("events: unterminated string")
}

// strEnd returns the index of the quote that closes the string whose
// content starts at b[i], or -1. Most strings (keys, class names) end
// within a few words, which are read a word at a time; the rest of a
// longer one is searched with bytes.IndexByte, which uses vector
// instructions.
func strEnd(b []byte, i int) int {
	for n := 0; n < 4 && i+8 <= len(b); n++ {
		w := binary.LittleEndian.Uint64(b[i:])
		m := hasByte(w, '"') | hasByte(w, '\\')
		if m == 0 {
			i += 8
			continue
		}
		j := i + bits.TrailingZeros64(m)/8 // the lowest mark is a true match
		if b[j] == '"' {
			return j
		}
		i = j + 2 // past the backslash and the byte it escapes
	}
	for i <= len(b) {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			break
		}
		e := bytes.IndexByte(b[i:i+q], '\\')
		if e < 0 {
			return i + q
		}
		i += e + 2 // the escaped byte may be the quote found
	}
	return -1
}

// nextQuote returns the index of the first quote at or after b[i], or -1:
// between strings there are a few bytes of punctuation and numbers, read a
// word at a time.
func nextQuote(b []byte, i int) int {
	for n := 0; n < 4 && i+8 <= len(b); n++ {
		if m := hasByte(binary.LittleEndian.Uint64(b[i:]), '"'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	if i > len(b) {
		return -1
	}
	if q := bytes.IndexByte(b[i:], '"'); q >= 0 {
		return i + q
	}
	return -1
}

func (wk *walker) scalar(i int) (int, error) {
	j := i
	for j < len(wk.b) && !scalarEnd[wk.b[j]] {
		j++
	}
	if j == i {
		return i, fmt.Errorf("events: unexpected byte at %d", i)
	}
	return j, nil
}

// scalarEnd marks the bytes that end a number or literal.
var scalarEnd = func() (t [256]bool) {
	for _, c := range ",}] \n\r\t" {
		t[c] = true
	}
	return t
}()

const lsb, msb = 0x0101010101010101, 0x8080808080808080

// hasByte has the high bit set in the lowest byte of w equal to c (higher
// marks may be false positives).
func hasByte(w uint64, c byte) uint64 {
	x := w ^ (lsb * uint64(c))
	return (x - lsb) &^ x & msb
}

// numClass: 1 for digits, 2 for the separators a number may be written
// with.
var numClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	for _, c := range " -.()+" {
		t[c] = 2
	}
	return t
}()

// digitRun reports whether b holds at least min digits in a row, counting
// across separators: the module's number patterns need no fewer.
func digitRun(b []byte, min int) bool {
	if min > 8 {
		return digitRunWords(b, min)
	}
	return digitRunBytes(b, min, 0)
}

// digitRunBytes is digitRun a byte at a time, after a run of n digits.
func digitRunBytes(b []byte, min, n int) bool {
	for _, c := range b {
		switch numClass[c] {
		case 1:
			if n++; n >= min {
				return true
			}
		case 0:
			n = 0
		}
	}
	return false
}

// digitRunWords is digitRun for min > 8, a word at a time: a word holds
// fewer than min digits, so a run reaching min within it is the one that
// continues from the words before (the digits before its first byte that
// breaks a run), and what carries on to the next word is the digits after
// its last such byte.
func digitRunWords(b []byte, min int) bool {
	n, i := 0, 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		d := digits(w)
		brk := ^(d | separators(w)) & msb // bytes that break a run
		if brk == 0 {
			if n += bits.OnesCount64(d); n >= min {
				return true
			}
			continue
		}
		first := bits.TrailingZeros64(brk) // bit 7 of the first breaking byte
		below := uint64(1)<<(first-7) - 1  // the bytes before it
		if n+bits.OnesCount64(d&below) >= min {
			return true
		}
		last := 63 - bits.LeadingZeros64(brk) // bit 7 of the last one
		n = bits.OnesCount64(d >> (last + 1))
	}
	return digitRunBytes(b[i:], min, n)
}

const low7 = 0x7f7f7f7f7f7f7f7f

// inRange has the high bit set in exactly the bytes of w in [lo, hi]
// (lo ≥ 1, hi < 0x80).
func inRange(w uint64, lo, hi byte) uint64 {
	x := w & low7
	ge := (x + lsb*uint64(0x80-lo)) & msb // x ≥ lo
	gt := (x + lsb*uint64(0x7f-hi)) & msb // x > hi
	return ge &^ gt &^ (w & msb)
}

// equal has the high bit set in exactly the bytes of w equal to c.
func equal(w uint64, c byte) uint64 {
	x := w ^ lsb*uint64(c)
	return ^((x&low7 + low7) | x) & msb
}

// digits marks the ASCII digits of w; separators the bytes numClass calls
// separators (" -.()+"): '(' to '.' but '*' and ',', and the space.
func digits(w uint64) uint64 { return inRange(w, '0', '9') }

func separators(w uint64) uint64 {
	return inRange(w, '(', '.')&^equal(w, '*')&^equal(w, ',') | equal(w, ' ')
}

// internKey returns the keys the walk looks at without allocating.
func internKey(b []byte) string {
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
	return "-"
}

func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// splice applies Pack's own masks and the module's edits to the events
// the table was built from and returns the new events, and whether every
// string kept its length (masks do; a replacement may not), so that every
// other byte is where it was. A replacement must be valid JSON string
// content, so the result is valid JSON with the events' structure. With
// inPlace, edits that keep every length are written into events itself,
// after all are checked; otherwise the result is a new slice.
func (wk *walker) splice(events []byte, edits []sdk.Edit, inPlace bool) ([]byte, bool, error) {
	if inPlace && wk.sameLengths(edits) {
		wk.spliceInPlace(events, edits)
		return events, true, nil
	}
	t := &wk.t
	out := make([]byte, 0, len(events))
	prev, m := 0, 0
	same := true
	mask := func(from, to int) {
		out = append(out, events[prev:from]...)
		for _, c := range events[from:to] {
			if c != ' ' {
				c = '*'
			}
			out = append(out, c)
		}
		prev = to
	}
	for _, e := range edits {
		from := t.at[e.Index]
		to := from + len(t.Strings[e.Index].Value)
		for ; m < len(wk.masks) && wk.masks[m] < from; m += 2 {
			mask(wk.masks[m], wk.masks[m+1])
		}
		switch e.Op {
		case sdk.OpMask:
			mask(from, to)
		case sdk.OpReplace:
			if err := validContent(e.Value); err != nil {
				return nil, false, fmt.Errorf("edit of string %d: %w", e.Index, err)
			}
			same = same && len(e.Value) == to-from
			out = append(out, events[prev:from]...)
			out = append(out, e.Value...)
			prev = to
		}
	}
	for ; m < len(wk.masks); m += 2 {
		mask(wk.masks[m], wk.masks[m+1])
	}
	return append(out, events[prev:]...), same, nil
}

// sameLengths reports whether every edit is a mask or a valid replacement
// of the same length.
func (wk *walker) sameLengths(edits []sdk.Edit) bool {
	for _, e := range edits {
		if e.Op == sdk.OpReplace && (len(e.Value) != len(wk.t.Strings[e.Index].Value) || validContent(e.Value) != nil) {
			return false
		}
	}
	return true
}

// spliceInPlace is splice into events itself, for edits sameLengths
// cleared.
func (wk *walker) spliceInPlace(events []byte, edits []sdk.Edit) {
	mask := func(b []byte) {
		for i, c := range b {
			if c != ' ' {
				b[i] = '*'
			}
		}
	}
	for m := 0; m < len(wk.masks); m += 2 {
		mask(events[wk.masks[m]:wk.masks[m+1]])
	}
	for _, e := range edits {
		from := wk.t.at[e.Index]
		to := from + len(wk.t.Strings[e.Index].Value)
		switch e.Op {
		case sdk.OpMask:
			mask(events[from:to])
		case sdk.OpReplace:
			copy(events[from:to], e.Value)
		}
	}
}

// validContent checks that b may stand between the quotes of a JSON string.
func validContent(b []byte) error {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c < 0x20 || c == '"':
			return errors.New("replacement is not JSON string content")
		case c == '\\':
			if i+1 >= len(b) {
				return errors.New("replacement ends in a backslash")
			}
			i++
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return errors.New("replacement has a short \\u escape")
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h|0x20 >= 'a' && h|0x20 <= 'f') {
						return errors.New("replacement has a bad \\u escape")
					}
				}
				i += 4
			default:
				return errors.New("replacement has a bad escape")
			}
		}
	}
	return nil
}

// mayEdit reports whether the walk of events (valid JSON: Pack validated
// it) for w could find a string to mask or to hand over, from the strings
// alone: a value that passes the pattern pre-filter, an input value ("text"
// key) when inputs matter, or an attribute w masks or wants. It goes from
// string to string (scanMayEdit) without building any context, so a
// segment with nothing to look at costs a fraction of the walk; when it
// reports true, the walk decides. Attribute names are told apart from other
// keys by their place in an "attributes" object, which in rrweb holds only
// scalars; one that holds an object or array makes it report true. Rules
// that select nodes (Wants.Nodes) need the walk whatever the strings.
func mayEdit(events []byte, w *compiledWants) bool {
	if w.Nodes {
		return true
	}
	return scanMayEdit(events, w)
}

// eventMayEdit is mayEdit for one top-level event, which the walk may pass
// over when it reports false. The walk takes the tags of the whole
// segment's nodes for the attributes mutations change, so an event passed
// over that names an element's tag ("tagName") is walked afterwards for
// its tags if some string needs them (walkTagEvents).
func eventMayEdit(event []byte, w *compiledWants) bool {
	if w.Nodes {
		return true
	}
	return scanMayEdit(event, w)
}

// scrubCheck returns the check for the validating pass that clears an
// event only where every strings-mode rule of bs that reads the strings
// (not Wants.Nodes) would: eventMayEdit for it is false. A rule selecting
// nodes reads every event anyway (mayEdit). nil: no strings-mode rule.
//
// eventMayEdit marks an event for a value with '@' (AtSign), a value
// with a digit run (MinDigits; the union asks for the shortest run), a
// "text" key (inputs), an attribute attrMatters names, or an "attributes"
// object holding an object or array; the check marks each of those, and
// more (see segment.ScrubCheck).
func scrubCheck(bs []*bound) *segment.ScrubCheck {
	var (
		c     segment.ScrubCheck
		any   bool
		attrs []*compiledWants
	)
	for _, b := range bs {
		w := b.wants
		if w == nil || w.Mode != sdk.ModeStrings {
			continue
		}
		any = true
		inputs := w.MaskInputs || w.Inputs
		c.AtSign = c.AtSign || w.AtSign
		c.TextKey = c.TextKey || inputs
		if w.MinDigits > 0 && (c.MinValue == 0 || w.MinDigits < c.MinValue) {
			c.MinValue = w.MinDigits
		}
		if inputs || len(w.maskAttrs) > 0 || len(w.attrs) > 0 {
			attrs = append(attrs, w)
		}
	}
	if !any {
		return nil
	}
	if min := c.MinValue; min > 0 {
		c.Value = func(s []byte) bool { return digitRun(s, min) }
	}
	if len(attrs) > 0 {
		c.AttrName = func(name []byte) bool {
			for _, w := range attrs {
				if w.attrMatters(name, w.MaskInputs || w.Inputs) {
					return true
				}
			}
			return false
		}
	}
	return &c
}

// spansCover reports whether spans place every top-level event of events
// (a valid JSON array): between them, and before the first and after the
// last, there is nothing but the array's brackets, commas and blanks.
func spansCover(events []byte, spans []Span) bool {
	if len(spans) == 0 {
		return false
	}
	at := int64(0)
	for k, sp := range spans {
		if sp.Start < at || sp.End <= sp.Start || sp.End > int64(len(events)) {
			return false
		}
		for _, c := range events[at:sp.Start] {
			switch c {
			case ' ', '\n', '\r', '\t', ',':
			case '[':
				if k > 0 {
					return false
				}
			default:
				return false
			}
		}
		at = sp.End
	}
	for _, c := range events[at:] {
		switch c {
		case ' ', '\n', '\r', '\t', ']':
		default:
			return false
		}
	}
	return true
}

// allClear reports whether every span is Clear.
func allClear(spans []Span) bool {
	for _, sp := range spans {
		if !sp.Clear {
			return false
		}
	}
	return true
}

// keyTagName is how a "tagName" key appears in the events.
var keyTagName = []byte(`"tagName"`)

// scanMayEdit is mayEdit's look at the strings: plainMayEdit where no
// backslash can escape a quote, else hopMayEdit.
func scanMayEdit(events []byte, w *compiledWants) bool {
	if bytes.IndexByte(events, '\\') < 0 {
		return plainMayEdit(events, w)
	}
	return hopMayEdit(events, w)
}

// plainMayEdit is scanMayEdit for events without a backslash, where every
// quote opens or closes a string: it reads the quotes a word at a time and
// pairs them, instead of searching for each string's end, and looks for
// '@' once for all the strings.
func plainMayEdit(b []byte, w *compiledWants) bool {
	inputs := w.MaskInputs || w.Inputs
	attrs := inputs || len(w.maskAttrs) > 0 || len(w.attrs) > 0
	at := w.AtSign && bytes.IndexByte(b, '@') >= 0
	minDigits := w.MinDigits
	minLen := math.MaxInt // the shortest value digitRun may pass
	if minDigits > 0 {
		minLen = minDigits
	}
	inAttrs := false // inside an "attributes" object
	i := 0           // where the bytes after the last string start
	open := -1       // the open string's quote
	var tail [8]byte
	for base := 0; base < len(b); base += 8 {
		var word uint64
		if base+8 <= len(b) {
			word = binary.LittleEndian.Uint64(b[base:])
		} else {
			tail = [8]byte{}
			copy(tail[:], b[base:])
			word = binary.LittleEndian.Uint64(tail[:])
		}
		for m := equal(word, '"'); m != 0; m &= m - 1 {
			p := base + bits.TrailingZeros64(m)/8
			if open < 0 {
				open = p
				if inAttrs {
					var nested bool
					if inAttrs, nested = attrsGap(b[i:open]); nested {
						return true
					}
				}
				continue
			}
			str := b[open+1 : p]
			open = -1
			if n := len(str); !inAttrs && n != len("text") && n != len("attributes") && !at && n < minLen {
				continue // neither a key that matters nor a value to look at
			}
			j := skipSpace(b, p+1)
			i = p + 1
			if j < len(b) && b[j] == ':' {
				edit, open, next := w.keyMayEdit(b, str, j, inAttrs, attrs, inputs)
				if edit {
					return true
				}
				if open {
					inAttrs, i = true, next
				}
				continue
			}
			if at && hasAt(str) || minDigits > 0 && len(str) >= minDigits && digitRun(str, minDigits) {
				return true
			}
		}
	}
	return open >= 0 // an unterminated string is not valid JSON: the walk reports it
}

// hopMayEdit is scanMayEdit for any events: it hops from string to
// string, each string's end found past its escapes.
func hopMayEdit(events []byte, w *compiledWants) bool {
	inputs := w.MaskInputs || w.Inputs
	attrs := inputs || len(w.maskAttrs) > 0 || len(w.attrs) > 0
	b := events
	inAttrs := false // inside an "attributes" object
	i := 0
	for {
		q := nextQuote(b, i)
		if q < 0 {
			return false
		}
		if inAttrs {
			var nested bool
			if inAttrs, nested = attrsGap(b[i:q]); nested {
				return true
			}
		}
		from := q + 1
		end := strEnd(b, from)
		if end < 0 {
			return true // not valid JSON: the walk reports it
		}
		j := skipSpace(b, end+1)
		s := b[from:end]
		switch {
		case j < len(b) && b[j] == ':':
			edit, open, next := w.keyMayEdit(b, s, j, inAttrs, attrs, inputs)
			if edit {
				return true
			}
			if open {
				inAttrs, j = true, next
			}
			i = j
			continue
		case w.AtSign && hasAt(s), w.MinDigits > 0 && len(s) >= w.MinDigits && digitRun(s, w.MinDigits):
			return true
		}
		i = end + 1
	}
}

// attrMatters reports whether the attribute named name (raw, as in the
// events) is one the walk would mask or hand over whatever its value.
func (w *compiledWants) attrMatters(name []byte, inputs bool) bool {
	var buf [32]byte
	if len(name) > len(buf) {
		l := strings.ToLower(string(name))
		return w.maskAttrs[l] || w.attrs[l]
	}
	for k, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[k] = c
	}
	l := buf[:len(name)]
	return inputs && string(l) == "value" || w.maskAttrs[string(l)] || w.attrs[string(l)]
}

// hasAt reports whether s holds an '@': short strings (most) are read a
// word at a time, long ones with bytes.IndexByte.
func hasAt(s []byte) bool {
	if len(s) > 32 {
		return bytes.IndexByte(s, '@') >= 0
	}
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if hasByte(binary.LittleEndian.Uint64(s[i:]), '@') != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i] == '@' {
			return true
		}
	}
	return false
}

// keyMayEdit is the pre-filters' decision on a key, whose ':' is at
// b[colon]: edit when the event may concern the rule (an attribute name
// it reads, inside an "attributes" object, or a "text" key when it masks
// inputs); open when the key opens an "attributes" object, whose members
// start at b[next].
func (w *compiledWants) keyMayEdit(b, key []byte, colon int, inAttrs, attrs, inputs bool) (edit, open bool, next int) {
	switch {
	case inAttrs:
		return attrs && w.attrMatters(key, inputs), false, 0
	case string(key) == "attributes":
		k := skipSpace(b, colon+1)
		if k < len(b) && b[k] == '{' {
			return false, true, k + 1
		}
	case inputs && string(key) == "text":
		return true, false, 0
	}
	return false, false, 0
}

// skipSpace returns the index of the first byte of b at or after i that is
// not JSON whitespace (len(b) if none).
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// attrsGap reads the bytes between two strings inside an "attributes"
// object (a ':' or ',', a scalar, the object's end): open is false once
// the object has ended, and nested reports an object or array in it,
// which the pre-filters leave to the walk.
func attrsGap(gap []byte) (open, nested bool) {
	for _, c := range gap {
		switch c {
		case '}':
			return false, false
		case '{', '[':
			return true, true
		}
	}
	return true, false
}
