// Package piiscrub is the PII scrub rule: it masks personal data in rrweb
// events before Pack stores them, keeping the recording's structure (node
// ids, tags, lengths) so that the replay still plays with masked text.
//
// What is masked:
//   - by pattern, in every text node, text mutation, attribute value and input
//     event: e-mail addresses, card numbers (13 to 19 digits passing the Luhn
//     check) and phone numbers (9 to 11 digits, or up to 15 written with a + or
//     separators);
//   - entirely, the text and input values of elements matching a selector in
//     the config, and everything below them (in full snapshots and added
//     nodes of mutations in the same segment);
//   - entirely, every input value when mask_all_inputs is set (the default),
//     and the attributes named in the config (value and placeholder by
//     default).
//
// Masking replaces each non-space character with '*'.
//
// Config (all optional):
//
//	{"selectors": ["input[type=password]", ".pii", "#card"],
//	 "attributes": ["value", "placeholder", "title"],
//	 "mask_all_inputs": true,
//	 "patterns": ["email", "card", "phone"]}
package piiscrub

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

// Config is the assignment's configuration.
type Config struct {
	Selectors     []string `json:"selectors"`
	Attributes    []string `json:"attributes"`
	MaskAllInputs *bool    `json:"mask_all_inputs"`
	Patterns      []string `json:"patterns"`
}

// rrweb constants.
const (
	eventFullSnapshot = 2
	eventIncremental  = 3
	sourceMutation    = 0
	sourceInput       = 5
	nodeElement       = 2
	nodeText          = 3
)

// Func is the rule function registered by the module.
func Func(in *sdk.Input) (*sdk.Output, error) {
	s, err := newScrubber(in.Config)
	if err != nil {
		return sdk.Reject("piiscrub_bad_config"), nil
	}
	out, changed, err := s.scrub(in.Events)
	if err != nil {
		return nil, err
	}
	if !changed {
		return sdk.Keep(), nil
	}
	return sdk.Keep().Rewrite(out), nil
}

// parsers are reused across calls: a module instance handles one segment
// at a time, and allocating a parser's cache per segment is most of its
// garbage.
var parsers fastjson.ParserPool

type scrubber struct {
	selectors     []selector
	attrs         map[string]bool
	maskAllInputs bool
	email, card   bool
	phone         bool

	arena   fastjson.Arena
	masked  map[int]bool // node ids whose text is masked entirely
	inputs  map[int]bool // node ids of input-like elements
	changed bool
}

func newScrubber(raw []byte) (*scrubber, error) {
	var c Config
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
	}
	s := &scrubber{maskAllInputs: true, attrs: map[string]bool{}, masked: map[int]bool{}, inputs: map[int]bool{}}
	if c.MaskAllInputs != nil {
		s.maskAllInputs = *c.MaskAllInputs
	}
	if c.Attributes == nil {
		c.Attributes = []string{"value", "placeholder"}
	}
	for _, a := range c.Attributes {
		s.attrs[strings.ToLower(a)] = true
	}
	if c.Patterns == nil {
		c.Patterns = []string{"email", "card", "phone"}
	}
	for _, p := range c.Patterns {
		switch p {
		case "email":
			s.email = true
		case "card":
			s.card = true
		case "phone":
			s.phone = true
		default:
			return nil, fmt.Errorf("unknown pattern %q", p)
		}
	}
	for _, list := range c.Selectors {
		for _, one := range strings.Split(list, ",") {
			sel, err := parseSelector(strings.TrimSpace(one))
			if err != nil {
				return nil, err
			}
			s.selectors = append(s.selectors, sel)
		}
	}
	return s, nil
}

// scrub returns the scrubbed events and whether anything changed.
func (s *scrubber) scrub(events []byte) ([]byte, bool, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(events)
	if err != nil {
		return nil, false, fmt.Errorf("parse events: %w", err)
	}
	arr, err := v.Array()
	if err != nil {
		return nil, false, fmt.Errorf("events: %w", err)
	}
	for _, ev := range arr {
		data := ev.Get("data")
		if data == nil {
			continue
		}
		switch ev.GetInt("type") {
		case eventFullSnapshot:
			if node := data.Get("node"); node != nil {
				s.node(node, false)
			}
		case eventIncremental:
			switch data.GetInt("source") {
			case sourceMutation:
				s.mutation(data)
			case sourceInput:
				s.input(data)
			}
		}
	}
	if !s.changed {
		return nil, false, nil
	}
	return v.MarshalTo(make([]byte, 0, len(events))), true, nil
}

// node scrubs a serialized node and its children; under is set when an
// ancestor matched a selector.
func (s *scrubber) node(n *fastjson.Value, under bool) {
	id := n.GetInt("id")
	switch n.GetInt("type") {
	case nodeText:
		if under {
			s.masked[id] = true
		}
		s.setString(n, "textContent", under)
		return
	case nodeElement:
		tag := strings.ToLower(string(n.GetStringBytes("tagName")))
		attrs := n.Get("attributes")
		if !under && len(s.selectors) > 0 && s.matches(tag, attrs) {
			under = true
		}
		if under {
			s.masked[id] = true
		}
		input := tag == "input" || tag == "textarea" || tag == "select" || tag == "option"
		if input {
			s.inputs[id] = true
		}
		if attrs != nil {
			s.attributes(attrs, under || (input && s.maskAllInputs))
		}
	}
	for _, c := range n.GetArray("childNodes") {
		s.node(c, under)
	}
}

// attributes scrubs an element's attribute object. Attributes named in the
// config are masked entirely; with all, value is too.
func (s *scrubber) attributes(attrs *fastjson.Value, all bool) {
	o, err := attrs.Object()
	if err != nil {
		return
	}
	o.Visit(func(key []byte, v *fastjson.Value) {
		if v.Type() != fastjson.TypeString {
			return
		}
		name := strings.ToLower(string(key))
		full := s.attrs[name] || (all && name == "value")
		s.setString(attrs, string(key), full)
	})
}

func (s *scrubber) mutation(data *fastjson.Value) {
	for _, add := range data.GetArray("adds") {
		parent := add.GetInt("parentId")
		if n := add.Get("node"); n != nil {
			s.node(n, s.masked[parent])
		}
	}
	for _, t := range data.GetArray("texts") {
		s.setString(t, "value", s.masked[t.GetInt("id")])
	}
	for _, a := range data.GetArray("attributes") {
		id := a.GetInt("id")
		if attrs := a.Get("attributes"); attrs != nil {
			s.attributes(attrs, s.masked[id] || (s.inputs[id] && s.maskAllInputs))
		}
	}
}

func (s *scrubber) input(data *fastjson.Value) {
	id := data.GetInt("id")
	s.setString(data, "text", s.maskAllInputs || s.masked[id])
}

// setString scrubs the string field key of object o: masks it entirely when
// full is set, else masks the patterns found in it.
func (s *scrubber) setString(o *fastjson.Value, key string, full bool) {
	v := o.Get(key)
	if v == nil || v.Type() != fastjson.TypeString {
		return
	}
	b := v.GetStringBytes()
	var out []byte
	if full {
		out = maskAll(b)
	} else {
		out = s.maskPatterns(b)
	}
	if out == nil {
		return
	}
	o.Set(key, s.arena.NewStringBytes(out))
	s.changed = true
}

// maskAll returns b with every non-space character replaced by '*', or nil
// when there is nothing to mask.
func maskAll(b []byte) []byte {
	var out []byte
	for i, r := range string(b) {
		if r == ' ' || r == '\n' || r == '\t' || r == '\r' || r == '*' {
			if out != nil {
				out = append(out, byte(r))
			}
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(b)), b[:i]...)
		}
		out = append(out, '*')
	}
	return out
}

// maskPatterns returns b with e-mail addresses, card numbers and phone
// numbers masked, or nil when none is found.
func (s *scrubber) maskPatterns(b []byte) []byte {
	var out []byte
	mask := func(from, to int) {
		if out == nil {
			out = append([]byte(nil), b...)
		}
		for i := from; i < to; i++ {
			if out[i] != ' ' && out[i] != '-' && out[i] != '.' && out[i] != '@' {
				out[i] = '*'
			}
		}
	}
	if s.email {
		for i := 0; i < len(b); i++ {
			if b[i] != '@' {
				continue
			}
			if from, to, ok := emailAt(b, i); ok {
				mask(from, to)
				i = to
			}
		}
	}
	if s.card || s.phone {
		for i := 0; i < len(b); i++ {
			if !isDigit(b[i]) && !(b[i] == '+' && i+1 < len(b) && isDigit(b[i+1])) && !(b[i] == '(' && i+1 < len(b) && isDigit(b[i+1])) {
				continue
			}
			if i > 0 && (isDigit(b[i-1]) || isAlpha(b[i-1])) {
				continue
			}
			to, digits := numberRun(b, i)
			switch {
			case s.card && digits >= 13 && digits <= 19 && luhn(b[i:to]):
				mask(i, to)
			case s.phone && digits >= 9 && digits <= 15 && (digits <= 11 || to-i > digits):
				// Longer bare digit runs are timestamps and ids;
				// a phone number that long is written with a + or
				// separators.
				mask(i, to)
			}
			i = to
		}
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func emailLocal(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func emailDomain(c byte) bool { return isDigit(c) || isAlpha(c) || c == '.' || c == '-' }

// emailAt finds an address around the '@' at at: a local part, and a domain
// with a dot followed by at least two letters.
func emailAt(b []byte, at int) (from, to int, ok bool) {
	from = at
	for from > 0 && emailLocal(b[from-1]) {
		from--
	}
	to = at + 1
	for to < len(b) && emailDomain(b[to]) {
		to++
	}
	for to > at+1 && (b[to-1] == '.' || b[to-1] == '-') {
		to--
	}
	dom := b[at+1 : to]
	dot := strings.LastIndexByte(string(dom), '.')
	if from == at || dot <= 0 || len(dom)-dot-1 < 2 {
		return 0, 0, false
	}
	for _, c := range dom[dot+1:] {
		if !isAlpha(c) {
			return 0, 0, false
		}
	}
	return from, to, true
}

// numberRun returns the end of a run of digits joined by single separators
// (space, dash, dot, parentheses) starting at i, and its digit count.
func numberRun(b []byte, i int) (end, digits int) {
	end = i
	for j := i; j < len(b); j++ {
		c := b[j]
		switch {
		case isDigit(c):
			digits++
			end = j + 1
		case c == '+' && j == i, c == '(' || c == ')':
		case (c == ' ' || c == '-' || c == '.') && j+1 < len(b) && (isDigit(b[j+1]) || b[j+1] == '('):
		default:
			return end, digits
		}
		if digits > 19 {
			// Too long for a card or a phone: skip the whole run.
			for end < len(b) && isDigit(b[end]) {
				end++
			}
			return end, 0
		}
	}
	return end, digits
}

// luhn checks the Luhn sum of the digits in b.
func luhn(b []byte) bool {
	sum, double := 0, false
	for i := len(b) - 1; i >= 0; i-- {
		if !isDigit(b[i]) {
			continue
		}
		d := int(b[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
