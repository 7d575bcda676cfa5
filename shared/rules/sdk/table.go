package sdk

import (
	"encoding/binary"
	"errors"
)

// Modes in which a module sees a segment (Wants.Mode).
const (
	// ModeEvents hands the module the segment's events (the default).
	ModeEvents = "events"
	// ModeHeader hands the module only the header: a rule that decides on
	// the segment's identity and attributes (sampling) skips the copy.
	ModeHeader = "header"
	// ModeStrings hands the module a Table of the strings it may change,
	// with their rrweb context, and takes back Edits (see Table).
	ModeStrings = "strings"
)

// CallDescribe is Header.Call of the describe call: Pack asks a module, once
// per assignment (with its config) when the rules are loaded, what it wants
// to see of each segment. The module answers with Result.Wants; a module
// that answers without Wants (or fails the call) gets ModeEvents.
const CallDescribe = "describe"

// Wants is a module's answer to the describe call.
type Wants struct {
	// Mode is ModeEvents, ModeHeader or ModeStrings.
	Mode string `json:"mode"`

	// The rest applies to ModeStrings. Pack walks the events itself and
	// puts in the Table only the strings that one of these may concern;
	// the module never sees the others.

	// AtSign: strings holding '@' (e-mail addresses).
	AtSign bool `json:"at_sign,omitempty"`
	// MinDigits, when above zero: strings with a run of at least that many
	// digits, counted across the separators " -.()+" (card and phone
	// numbers).
	MinDigits int `json:"min_digits,omitempty"`
	// Inputs: every input value (an event's data.text, and the "value"
	// attribute of any element).
	Inputs bool `json:"inputs,omitempty"`
	// Attributes: every value of these attributes (lower case names).
	Attributes []string `json:"attributes,omitempty"`
	// Nodes: the Table's Nodes (every node's id, parent, tag and, for
	// elements, attributes) and every string owned by a node (text,
	// attribute, input and mutation text values), for rules that select
	// nodes by CSS-like selectors.
	Nodes bool `json:"nodes,omitempty"`

	// Masks Pack applies itself, as OpMask would, to strings it then does
	// not hand over: decisions that need no look at the value.

	// MaskInputs: every input value (an event's data.text) and the "value"
	// attribute of every input, textarea, select and option element.
	MaskInputs bool `json:"mask_inputs,omitempty"`
	// MaskAttributes: every value of these attributes (lower case names).
	MaskAttributes []string `json:"mask_attributes,omitempty"`
}

// StringKind says where a Table string is in the rrweb events.
type StringKind uint8

// String kinds.
const (
	// KindOther is any other string (URLs, custom and plugin payloads,
	// console messages...).
	KindOther StringKind = iota
	// KindText is a text node's textContent (full snapshots and added
	// nodes).
	KindText
	// KindAttr is an attribute value; Name is the attribute's name. In a
	// mutation's attribute change the element's Tag is the one of the node
	// with that id in the same segment, if any.
	KindAttr
	// KindInput is an input event's value (data.text).
	KindInput
	// KindMutationText is a text mutation's new value (data.texts[].value).
	KindMutationText
)

// String is one string of the events that a module may change. Value is the
// string's raw JSON content (between the quotes, escapes as written).
type String struct {
	Kind StringKind
	// Node is the id of the node the string belongs to (the text node, the
	// element of an attribute, the input's target, the mutated node), or
	// -1 when unknown.
	Node int64
	// Name is the attribute's name as written (KindAttr).
	Name []byte
	// Tag is the lower-case tag of the attribute's element (KindAttr), or
	// empty when unknown.
	Tag   []byte
	Value []byte
}

// Node is one node of the segment's DOM (full snapshots and added nodes).
type Node struct {
	ID int64
	// Parent is the parent node's id, or -1 (the document, or a parent
	// outside the segment).
	Parent int64
	// Tag is the lower-case tag of an element, empty for other nodes.
	Tag []byte
	// Attrs are an element's attributes, name then raw JSON content of the
	// value, in pairs.
	Attrs [][]byte
}

// Table is the input of a ModeStrings call: the assignment's config and
// the strings Pack selected by the module's Wants, in the order they appear
// in the events, and the nodes when Wants.Nodes is set.
//
// Its frame starts with a header length of 0 (no JSON header: the module
// decodes it without encoding/json), then little-endian fields:
//
//	u32 0 | u32 len, config | u32 nstrings | nstrings × string | u32 nnodes | nnodes × node
//	string: u8 kind | i64 node | u16 len, name | u16 len, tag | u32 len, value
//	node:   i64 id | i64 parent | u16 len, tag | u16 nattrs | nattrs × (u16 len, name | u32 len, value)
//
// The output frame is likewise u32 0, then u32 nedits and for each edit
// u32 index (into Strings, ascending) | u8 op | for OpReplace, u32 len and
// the new raw JSON content. Pack checks that a replacement is valid JSON
// string content; everything outside the edited strings stays as it was,
// so a ModeStrings rule can only change string contents, never the events'
// structure, types or timestamps.
type Table struct {
	Config  []byte
	Strings []String
	Nodes   []Node
}

// Edit is a ModeStrings rule's change of one string.
type Edit struct {
	// Index is the string's position in Table.Strings.
	Index int
	Op    EditOp
	// Value is the new raw JSON content (OpReplace).
	Value []byte
}

// EditOp is what an Edit does.
type EditOp uint8

// Edit operations.
const (
	// OpMask replaces every byte of the string's raw content but spaces
	// with '*' (an escape sequence becomes stars too), keeping its length.
	OpMask EditOp = 1 + iota
	// OpReplace replaces the raw content with Edit.Value.
	OpReplace
)

// IsTable reports whether a frame is a Table (or Edits) frame rather than
// one with a JSON header.
func IsTable(frame []byte) bool {
	return len(frame) >= 4 && binary.LittleEndian.Uint32(frame) == 0
}

// AppendTable frames t (Pack's side).
func AppendTable(dst []byte, t *Table) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, 0)
	dst = le.AppendUint32(dst, uint32(len(t.Config)))
	dst = append(dst, t.Config...)
	dst = le.AppendUint32(dst, uint32(len(t.Strings)))
	for i := range t.Strings {
		s := &t.Strings[i]
		dst = append(dst, byte(s.Kind))
		dst = le.AppendUint64(dst, uint64(s.Node))
		dst = le.AppendUint16(dst, uint16(len(s.Name)))
		dst = append(dst, s.Name...)
		dst = le.AppendUint16(dst, uint16(len(s.Tag)))
		dst = append(dst, s.Tag...)
		dst = le.AppendUint32(dst, uint32(len(s.Value)))
		dst = append(dst, s.Value...)
	}
	dst = le.AppendUint32(dst, uint32(len(t.Nodes)))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		dst = le.AppendUint64(dst, uint64(n.ID))
		dst = le.AppendUint64(dst, uint64(n.Parent))
		dst = le.AppendUint16(dst, uint16(len(n.Tag)))
		dst = append(dst, n.Tag...)
		dst = le.AppendUint16(dst, uint16(len(n.Attrs)/2))
		for j := 0; j+1 < len(n.Attrs); j += 2 {
			dst = le.AppendUint16(dst, uint16(len(n.Attrs[j])))
			dst = append(dst, n.Attrs[j]...)
			dst = le.AppendUint32(dst, uint32(len(n.Attrs[j+1])))
			dst = append(dst, n.Attrs[j+1]...)
		}
	}
	return dst
}

var errShort = errors.New("table frame truncated")

// reader reads a frame's little-endian fields; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) n(k int) []byte {
	if r.err != nil || k < 0 || k > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:k:k]
	r.b = r.b[k:]
	return out
}

func (r *reader) u8() byte {
	if b := r.n(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() int {
	if b := r.n(2); b != nil {
		return int(binary.LittleEndian.Uint16(b))
	}
	return 0
}

func (r *reader) u32() int {
	if b := r.n(4); b != nil {
		return int(binary.LittleEndian.Uint32(b))
	}
	return 0
}

func (r *reader) i64() int64 {
	if b := r.n(8); b != nil {
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// count reads a count of items each at least min bytes long, refusing one
// the rest of the frame cannot hold (so a bad count cannot allocate much).
func (r *reader) count(min int) int {
	c := r.u32()
	if r.err == nil && c > len(r.b)/min {
		r.err = errShort
		return 0
	}
	return c
}

// DecodeTable parses a Table frame (the module's side). The table's byte
// slices alias b.
func DecodeTable(b []byte, t *Table) error {
	if !IsTable(b) {
		return errors.New("not a table frame")
	}
	r := reader{b: b[4:]}
	t.Config = r.n(r.u32())
	ns := r.count(17)
	t.Strings = t.Strings[:0]
	for i := 0; i < ns && r.err == nil; i++ {
		var s String
		s.Kind = StringKind(r.u8())
		s.Node = r.i64()
		s.Name = r.n(r.u16())
		s.Tag = r.n(r.u16())
		s.Value = r.n(r.u32())
		t.Strings = append(t.Strings, s)
	}
	nn := r.count(20)
	t.Nodes = t.Nodes[:0]
	for i := 0; i < nn && r.err == nil; i++ {
		var n Node
		n.ID = r.i64()
		n.Parent = r.i64()
		n.Tag = r.n(r.u16())
		na := r.u16()
		for j := 0; j < na && r.err == nil; j++ {
			n.Attrs = append(n.Attrs, r.n(r.u16()), r.n(r.u32()))
		}
		t.Nodes = append(t.Nodes, n)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("table frame has trailing bytes")
	}
	return r.err
}

// AppendEdits frames a ModeStrings rule's edits (the module's side).
func AppendEdits(dst []byte, edits []Edit) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, 0)
	dst = le.AppendUint32(dst, uint32(len(edits)))
	for _, e := range edits {
		dst = le.AppendUint32(dst, uint32(e.Index))
		dst = append(dst, byte(e.Op))
		if e.Op == OpReplace {
			dst = le.AppendUint32(dst, uint32(len(e.Value)))
			dst = append(dst, e.Value...)
		}
	}
	return dst
}

// DecodeEdits parses an edits frame (Pack's side) for a table of n strings:
// indexes must ascend and stay below n, and ops be known. Values alias b.
func DecodeEdits(b []byte, n int) ([]Edit, error) {
	if !IsTable(b) {
		return nil, errors.New("not an edits frame")
	}
	r := reader{b: b[4:]}
	c := r.count(5)
	edits := make([]Edit, 0, c)
	last := -1
	for i := 0; i < c && r.err == nil; i++ {
		e := Edit{Index: r.u32(), Op: EditOp(r.u8())}
		switch e.Op {
		case OpMask:
		case OpReplace:
			e.Value = r.n(r.u32())
		default:
			return nil, errors.New("edits: unknown op")
		}
		if r.err == nil && (e.Index <= last || e.Index >= n) {
			return nil, errors.New("edits: index out of order or range")
		}
		last = e.Index
		edits = append(edits, e)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("edits frame has trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return edits, nil
}
