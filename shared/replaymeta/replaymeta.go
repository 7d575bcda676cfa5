// Package replaymeta is what an SDK says about a replay beyond its
// segments — where it came from and under which id, its kind, SDK, browser
// family, and the pages, errors and traces it touched — and how that
// travels from Ingest to Pack in Pub/Sub message attributes.
package replaymeta

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Attribute names. They sit beside the segment attributes (project_id,
// replay_id, ...) on a segment message; Pack ignores none of them silently:
// it stores what parses and drops what does not.
const (
	AttrSource          = "source"
	AttrSourceID        = "source_id"
	AttrReplayType      = "replay_type"
	AttrSDK             = "sdk"
	AttrUserAgentFamily = "ua_family"
	AttrURLs            = "urls"      // JSON array of strings
	AttrErrorIDs        = "error_ids" // JSON array of strings
	AttrTraceIDs        = "trace_ids" // JSON array of strings
)

// Sources an Ingest message names.
const (
	SourceSentry  = "sentry"
	SourcePostHog = "posthog"
	SourceRRWeb   = "rrweb"
)

const (
	// maxValue is Pub/Sub's limit on one attribute value, in bytes.
	maxValue = 1024
	// maxScalar caps a single-valued field; ids and SDK names are short.
	maxScalar = 200
	// MaxListLen caps how many entries one list keeps on the replay row.
	MaxListLen = 100
)

// Meta is a replay's metadata. The zero value says nothing.
type Meta struct {
	Source          string   `json:"source,omitempty"`
	SourceID        string   `json:"source_id,omitempty"`
	ReplayType      string   `json:"replay_type,omitempty"`
	SDK             string   `json:"sdk,omitempty"`
	UserAgentFamily string   `json:"user_agent_family,omitempty"`
	URLs            []string `json:"urls,omitempty"`
	ErrorIDs        []string `json:"error_ids,omitempty"`
	TraceIDs        []string `json:"trace_ids,omitempty"`
}

// IsZero reports whether m says nothing.
func (m Meta) IsZero() bool {
	return m.Source == "" && m.SourceID == "" && m.ReplayType == "" && m.SDK == "" &&
		m.UserAgentFamily == "" && len(m.URLs) == 0 && len(m.ErrorIDs) == 0 && len(m.TraceIDs) == 0
}

// AddTo writes m into a message's attributes, leaving out empty fields and
// trimming lists so every value fits Pub/Sub's 1,024-byte limit.
func (m Meta) AddTo(attrs map[string]string) {
	set := func(k, v string) {
		if v = clip(v, maxScalar); v != "" {
			attrs[k] = v
		}
	}
	set(AttrSource, m.Source)
	set(AttrSourceID, m.SourceID)
	set(AttrReplayType, m.ReplayType)
	set(AttrSDK, m.SDK)
	set(AttrUserAgentFamily, m.UserAgentFamily)
	setList := func(k string, l []string) {
		if v := encodeList(l); v != "" {
			attrs[k] = v
		}
	}
	setList(AttrURLs, m.URLs)
	setList(AttrErrorIDs, m.ErrorIDs)
	setList(AttrTraceIDs, m.TraceIDs)
}

// FromAttributes reads what AddTo wrote. It is lenient: a value that does
// not parse is left out, because metadata must never cost a segment.
func FromAttributes(attrs map[string]string) Meta {
	return Meta{
		Source:          clip(attrs[AttrSource], maxScalar),
		SourceID:        clip(attrs[AttrSourceID], maxScalar),
		ReplayType:      clip(attrs[AttrReplayType], maxScalar),
		SDK:             clip(attrs[AttrSDK], maxScalar),
		UserAgentFamily: clip(attrs[AttrUserAgentFamily], maxScalar),
		URLs:            decodeList(attrs[AttrURLs]),
		ErrorIDs:        decodeList(attrs[AttrErrorIDs]),
		TraceIDs:        decodeList(attrs[AttrTraceIDs]),
	}
}

// encodeList encodes the leading entries of l that fit maxValue as a JSON
// array; an entry longer than half the budget is cut.
func encodeList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	var out []string
	size := 2
	for _, s := range l {
		s = clip(s, maxValue/2)
		if s == "" {
			continue
		}
		b, _ := json.Marshal(s)
		if size+len(b)+1 > maxValue || len(out) == MaxListLen {
			break
		}
		size += len(b) + 1
		out = append(out, s)
	}
	if len(out) == 0 {
		return ""
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func decodeList(v string) []string {
	if v == "" || len(v) > maxValue {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(v), &l); err != nil {
		return nil
	}
	out := l[:0]
	for _, s := range l {
		if s = clip(s, maxValue/2); s != "" && len(out) < MaxListLen {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// clip trims s to at most n bytes on a rune boundary, and drops control
// characters so a value is safe to show and to log.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
