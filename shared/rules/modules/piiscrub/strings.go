package piiscrub

import (
	"bytes"
	"strings"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

// The module runs in sdk.ModeStrings: Pack walks the events and hands it
// only the strings that may hold what it masks (see Describe), and it
// answers with edits. The rules are the same as on the events (Func): a
// string is masked entirely when it is an input value (mask_all_inputs),
// a listed attribute, or belongs to a node at or below an element matching
// a selector; otherwise its e-mail addresses and card and phone numbers
// are masked. Nothing here uses encoding/json on a segment's path: the
// config is parsed once per instance (an instance serves one assignment).

// minPhoneDigits and minCardDigits are the shortest numbers maskPatterns
// masks; Pack sends no string with a shorter digit run.
const (
	minPhoneDigits = 9
	minCardDigits  = 13
)

// Describe answers the describe call: what the rule needs to see under
// config. A config it cannot parse gets the events, where Func rejects
// the segments with a reason.
func Describe(config []byte) sdk.Wants {
	s, err := cachedScrubber(config)
	if err != nil {
		return sdk.Wants{Mode: sdk.ModeEvents}
	}
	// Input values and listed attributes are masked whole whatever they
	// hold: Pack does that itself, and the module sees only the strings
	// whose fate depends on their text or on selectors.
	w := sdk.Wants{Mode: sdk.ModeStrings, AtSign: s.email, Nodes: len(s.selectors) > 0, MaskInputs: s.maskAllInputs}
	switch {
	case s.phone:
		w.MinDigits = minPhoneDigits
	case s.card:
		w.MinDigits = minCardDigits
	}
	for a := range s.attrs {
		w.MaskAttributes = append(w.MaskAttributes, a)
	}
	return w
}

// Strings is the rule in sdk.ModeStrings.
func Strings(t *sdk.Table) ([]sdk.Edit, error) {
	s, err := cachedScrubber(t.Config)
	if err != nil {
		return nil, err
	}
	return s.edits(t), nil
}

var (
	lastConfig   []byte
	lastScrubber *scrubber
)

// cachedScrubber returns the scrubber for config, parsing it only when it
// differs from the last call's.
func cachedScrubber(config []byte) (*scrubber, error) {
	if lastScrubber != nil && bytes.Equal(config, lastConfig) {
		return lastScrubber, nil
	}
	s, err := newScrubber(config)
	if err != nil {
		return nil, err
	}
	lastConfig, lastScrubber = append([]byte(nil), config...), s
	return s, nil
}

// edits decides each string of t.
func (s *scrubber) edits(t *sdk.Table) []sdk.Edit {
	var tree *nodeTree
	if len(s.selectors) > 0 {
		tree = s.tree(t.Nodes)
	}
	var edits []sdk.Edit
	for i := range t.Strings {
		str := &t.Strings[i]
		full := false
		switch str.Kind {
		case sdk.KindInput:
			full = s.maskAllInputs || tree.masked(str.Node)
		case sdk.KindAttr:
			name := lower(str.Name)
			full = s.attrs[name] || name == "value" && (tree.masked(str.Node) || s.maskAllInputs && inputTag(str.Tag))
		case sdk.KindText, sdk.KindMutationText:
			full = tree.masked(str.Node)
		}
		if full {
			edits = append(edits, sdk.Edit{Index: i, Op: sdk.OpMask})
			continue
		}
		if v := s.maskPatterns(str.Value); v != nil {
			edits = append(edits, sdk.Edit{Index: i, Op: sdk.OpReplace, Value: v})
		}
	}
	return edits
}

func lower(b []byte) string {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return strings.ToLower(string(b))
		}
	}
	return string(b)
}

func inputTag(tag []byte) bool {
	switch string(tag) {
	case "input", "textarea", "select", "option":
		return true
	}
	return false
}

// nodeTree is the segment's nodes with the ones matching a selector.
type nodeTree struct {
	parent  map[int64]int64
	matched map[int64]bool
	memo    map[int64]bool
}

func (s *scrubber) tree(nodes []sdk.Node) *nodeTree {
	t := &nodeTree{parent: make(map[int64]int64, len(nodes)), matched: map[int64]bool{}, memo: map[int64]bool{}}
	attrs := map[string]string{}
	for _, n := range nodes {
		t.parent[n.ID] = n.Parent
		if len(n.Tag) == 0 {
			continue
		}
		clear(attrs)
		for j := 0; j+1 < len(n.Attrs); j += 2 {
			v := n.Attrs[j+1]
			if bytes.IndexByte(v, '\\') >= 0 {
				attrs[lower(n.Attrs[j])] = unescape(v)
			} else {
				attrs[lower(n.Attrs[j])] = string(v)
			}
		}
		if s.matchesMap(string(n.Tag), attrs) {
			t.matched[n.ID] = true
		}
	}
	return t
}

// masked reports whether node id is at or below a matching element.
func (t *nodeTree) masked(id int64) bool {
	if t == nil || id < 0 {
		return false
	}
	if m, ok := t.memo[id]; ok {
		return m
	}
	// Walk up at most as many steps as there are nodes: ids from a
	// recording may form a cycle.
	m := false
	cur := id
	for steps := 0; steps <= len(t.parent); steps++ {
		if t.matched[cur] {
			m = true
			break
		}
		if known, ok := t.memo[cur]; ok && cur != id {
			m = known
			break
		}
		p, ok := t.parent[cur]
		if !ok || p < 0 {
			break
		}
		cur = p
	}
	t.memo[id] = m
	return m
}
