package piiscrub

import (
	"fmt"
	"strings"
)

// selector is one compound CSS selector: an optional tag, #id, .classes and
// [attr], [attr=value], [attr^=value], [attr*=value] conditions, all of
// which must hold. Descendants of a matching element are masked too, which
// is what a descendant combinator would be used for.
type selector struct {
	tag     string
	id      string
	classes []string
	attrs   []attrCond
}

type attrCond struct {
	name, op, value string
}

func parseSelector(s string) (selector, error) {
	var sel selector
	if s == "" {
		return sel, fmt.Errorf("empty selector")
	}
	i := 0
	ident := func() string {
		j := i
		for j < len(s) && (isAlpha(s[j]) || isDigit(s[j]) || s[j] == '-' || s[j] == '_') {
			j++
		}
		out := s[i:j]
		i = j
		return out
	}
	if s[0] == '*' {
		i = 1
	} else {
		sel.tag = strings.ToLower(ident())
	}
	for i < len(s) {
		switch s[i] {
		case '#':
			i++
			if sel.id = ident(); sel.id == "" {
				return sel, fmt.Errorf("selector %q: empty id", s)
			}
		case '.':
			i++
			c := ident()
			if c == "" {
				return sel, fmt.Errorf("selector %q: empty class", s)
			}
			sel.classes = append(sel.classes, c)
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return sel, fmt.Errorf("selector %q: unclosed [", s)
			}
			body := s[i+1 : i+end]
			i += end + 1
			var c attrCond
			for _, op := range []string{"^=", "*=", "$=", "="} {
				if k := strings.Index(body, op); k > 0 {
					c = attrCond{name: strings.ToLower(strings.TrimSpace(body[:k])), op: op, value: strings.Trim(strings.TrimSpace(body[k+len(op):]), `"'`)}
					break
				}
			}
			if c.op == "" {
				c.name = strings.ToLower(strings.TrimSpace(body))
			}
			if c.name == "" {
				return sel, fmt.Errorf("selector %q: empty attribute", s)
			}
			sel.attrs = append(sel.attrs, c)
		default:
			return sel, fmt.Errorf("selector %q: unsupported at %q (compound selectors only)", s, s[i:])
		}
	}
	return sel, nil
}

func (s *scrubber) matchesMap(tag string, attrs map[string]string) bool {
	for _, sel := range s.selectors {
		if sel.match(tag, attrs) {
			return true
		}
	}
	return false
}

func (sel selector) match(tag string, attrs map[string]string) bool {
	if sel.tag != "" && sel.tag != tag {
		return false
	}
	get := func(name string) (string, bool) {
		v, ok := attrs[name]
		return v, ok
	}
	if sel.id != "" {
		if id, _ := get("id"); id != sel.id {
			return false
		}
	}
	if len(sel.classes) > 0 {
		cls, _ := get("class")
		have := strings.Fields(cls)
		for _, c := range sel.classes {
			found := false
			for _, h := range have {
				if h == c {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
	}
	for _, c := range sel.attrs {
		v, ok := get(c.name)
		if !ok {
			return false
		}
		switch c.op {
		case "=":
			ok = v == c.value
		case "^=":
			ok = strings.HasPrefix(v, c.value)
		case "$=":
			ok = strings.HasSuffix(v, c.value)
		case "*=":
			ok = strings.Contains(v, c.value)
		}
		if !ok {
			return false
		}
	}
	return true
}
