// Package piiscrub is the PII scrub rule: it masks personal data in rrweb
// events before Pack stores them, keeping the recording's structure (node
// ids, tags, lengths) so that the replay still plays with masked text.
//
// What is masked:
//   - by pattern, in every string of every event (text nodes, attribute
//     values, text and attribute mutations, input events, URLs, plugin and
//     custom payloads): e-mail addresses, card numbers (13 to 19 digits
//     passing the Luhn check) and phone numbers (9 to 11 digits, or up to 15
//     written with a + or separators);
//   - entirely, the text and input values of elements matching a selector in
//     the config, and everything below them (in full snapshots and added
//     nodes of mutations in the same segment);
//   - entirely, every input value when mask_all_inputs is set (the default:
//     the "text" of every event's data, and the value attribute of inputs,
//     textareas, selects and options), and the attributes named in the config
//     (value and placeholder by default).
//
// Masking replaces each byte of a string's JSON text except spaces with '*'
// (a pattern match keeps its separators), so the events keep their length
// and structure. Patterns are found in the JSON text: an escape sequence
// (\n, \u00a0) bounds a match, and characters written as escapes are not
// recognised (browsers' JSON.stringify writes '@' and digits plainly).
//
// The module runs in sdk.ModeStrings (see strings.go): Pack walks the
// events and hands it only the strings that may hold what it masks. Func,
// the same rules over the whole events in one pass, serves configs it
// cannot describe and is the reference the strings mode is tested against.
//
// Config (all optional):
//
//	{"selectors": ["input[type=password]", ".pii", "#card"],
//	 "attributes": ["value", "placeholder", "title"],
//	 "mask_all_inputs": true,
//	 "patterns": ["email", "card", "phone"]}
package piiscrub

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

// Config is the assignment's configuration.
type Config struct {
	Selectors     []string `json:"selectors"`
	Attributes    []string `json:"attributes"`
	MaskAllInputs *bool    `json:"mask_all_inputs"`
	Patterns      []string `json:"patterns"`
}

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

type scrubber struct {
	selectors     []selector
	attrs         map[string]bool
	maskAllInputs bool
	email, card   bool
	phone         bool

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
	out := append(make([]byte, 0, len(events)), events...)
	changed, err := s.scrubRaw(out)
	if err != nil || !changed {
		return nil, false, err
	}
	return out, true, nil
}

// maskPatterns returns b with e-mail addresses, card numbers and phone
// numbers masked, or nil when none is found.
func (s *scrubber) maskPatterns(b []byte) []byte {
	out := append([]byte(nil), b...)
	if !s.maskPatternsInPlace(out) {
		return nil
	}
	return out
}

// maskPatternsInPlace masks e-mail addresses, card numbers and phone numbers
// in b, the raw content of a JSON string, and reports whether it found any.
// A character right after a backslash is part of an escape (\n, \u...), so
// it bounds a match and is never masked.
func (s *scrubber) maskPatternsInPlace(b []byte) bool {
	if !s.email && !s.card && !s.phone {
		return false
	}
	changed := false
	mask := func(from, to int) {
		for i := from; i < to; i++ {
			if b[i] != ' ' && b[i] != '-' && b[i] != '.' && b[i] != '@' {
				b[i] = '*'
				changed = true
			}
		}
	}
	if s.email {
		for i := nextAt(b, 0); i < len(b); i = nextAt(b, i+1) {
			if from, to, ok := emailAt(b, i); ok {
				mask(from, to)
				i = to
			}
		}
	}
	if s.card || s.phone {
		for i := nextNum(b, 0); i < len(b); i = nextNum(b, i+1) {
			if !isDigit(b[i]) && !(b[i] == '+' && i+1 < len(b) && isDigit(b[i+1])) && !(b[i] == '(' && i+1 < len(b) && isDigit(b[i+1])) {
				continue
			}
			if i > 0 && (isDigit(b[i-1]) || isAlpha(b[i-1])) && !(i >= 2 && b[i-2] == '\\') {
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
	return changed
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// nextAt returns the index of the first '@' at or after i, or len(b). Like
// nextNum it looks at 8 bytes per step: in the sandbox each loop iteration
// also checks the time budget.
func nextAt(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := hasByte(binary.LittleEndian.Uint64(b[i:]), '@'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b) && b[i] != '@'; i++ {
	}
	return i
}

// nextNum returns the index of the first digit, '+' or '(' at or after i,
// or len(b).
func nextNum(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if m := hasDigit(w) | hasByte(w, '+') | hasByte(w, '('); m != 0 {
			// hasByte may mark bytes above a true match; the lowest mark
			// of the three is exact.
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b) && !isDigit(b[i]) && b[i] != '+' && b[i] != '('; i++ {
	}
	return i
}

// hasDigit has the high bit set in exactly the bytes of w that are ASCII
// digits.
func hasDigit(w uint64) uint64 {
	const m7 = 0x7f7f7f7f7f7f7f7f
	x := w & m7
	return (lo*(127+':') - x) & ^w & (x + lo*(127-'/')) & hi
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func emailLocal(c byte) bool {
	return isDigit(c) || isAlpha(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func emailDomain(c byte) bool { return isDigit(c) || isAlpha(c) || c == '.' || c == '-' }

// emailAt finds an address around the '@' at at: a local part, and a domain
// with a dot followed by at least two letters.
func emailAt(b []byte, at int) (from, to int, ok bool) {
	from = at
	for from > 0 && emailLocal(b[from-1]) && !(from >= 2 && b[from-2] == '\\') {
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
