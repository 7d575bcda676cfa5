// Package derive takes the console, network and timeline slices out of a
// recording's events, so that a devtools panel can read kilobytes instead
// of the whole recording. The recording itself is stored unchanged; a
// slice holds copies of the events it is made of, in the recording's
// order, byte for byte.
//
// Which events go where:
//
//   - console: rrweb's console plugin (type 6, data.plugin
//     "rrweb/console@1") and custom events (type 5) tagged "breadcrumb"
//     with payload.category "console" (Sentry's console breadcrumbs);
//   - network: rrweb's network plugin ("rrweb/network@1"), breadcrumbs of
//     category "fetch" or "xhr", and performance spans (tag
//     "performanceSpan") whose payload.op starts with "resource.fetch" or
//     "resource.xhr";
//   - timeline: meta events (type 4: page loads and their URL), the other
//     breadcrumbs (clicks, navigations), the other performance spans (web
//     vitals, navigation timing) and every other custom event.
//
// A Slicer takes events one at a time (type, timestamp, raw JSON); Hook
// plugs it into the validator's scan (segment.ValidateEvents), so Pack
// slices a segment in the same pass that validates it. From runs it as a
// pass of its own over a decoded segment.
package derive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/replayvault/replayvault/shared/segment"
)

// Slice types, as segment types.
const (
	Console  = "console"
	Network  = "network"
	Timeline = "timeline"
)

// Slice is one derived slice of a segment: a JSON array of events and the
// metadata the packer stores for any segment.
type Slice struct {
	Type string
	JSON []byte
	Info segment.Info
}

// Slicer collects slice events. The zero value is ready to use.
type Slicer struct {
	bufs  [3]bytes.Buffer
	infos [3]segment.Info
}

var sliceTypes = [3]string{Console, Network, Timeline}

// Event considers one event of the recording: typ and hasType are its rrweb
// type, ts its timestamp in ms (0: none), raw its JSON object. raw is copied
// if kept, so the caller may reuse it.
func (s *Slicer) Event(typ int64, hasType bool, ts int64, raw []byte) {
	if !hasType {
		return
	}
	k := -1
	switch typ {
	case segment.EventTypeMeta:
		k = 2
	case segment.EventTypeCustom, segment.EventTypePlugin:
		k = s.classify(typ, raw)
	}
	if k < 0 {
		return
	}
	b := &s.bufs[k]
	if b.Len() == 0 {
		b.WriteByte('[')
	} else {
		b.WriteByte(',')
	}
	b.Write(raw)
	info := &s.infos[k]
	info.EventCount++
	if ts > 0 {
		if info.FirstTS == 0 || ts < info.FirstTS {
			info.FirstTS = ts
		}
		info.LastTS = max(info.LastTS, ts)
	}
}

// devtoolsEvent holds the fields of a custom or plugin event that decide
// its slice; decoding skips the rest.
type devtoolsEvent struct {
	Data struct {
		Plugin  string `json:"plugin"`
		Tag     string `json:"tag"`
		Payload struct {
			Category string `json:"category"`
			Op       string `json:"op"`
		} `json:"payload"`
	} `json:"data"`
}

// classify returns the slice (index into sliceTypes) of a custom or plugin
// event, or -1. Only these events are decoded, and they are small (the
// packer hands over at most MaxRaw bytes of one).
func (s *Slicer) classify(typ int64, raw []byte) int {
	var ev devtoolsEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		// Fields of unexpected JSON types (a numeric tag, say): not a
		// shape we slice, except that a custom event still belongs on the
		// timeline.
		if typ == segment.EventTypeCustom {
			return 2
		}
		return -1
	}
	d := ev.Data
	if typ == segment.EventTypePlugin {
		switch {
		case strings.HasPrefix(d.Plugin, "rrweb/console@"):
			return 0
		case strings.HasPrefix(d.Plugin, "rrweb/network@"):
			return 1
		}
		return -1
	}
	switch d.Tag {
	case "breadcrumb":
		switch d.Payload.Category {
		case "console":
			return 0
		case "fetch", "xhr":
			return 1
		}
	case "performanceSpan":
		if strings.HasPrefix(d.Payload.Op, "resource.fetch") || strings.HasPrefix(d.Payload.Op, "resource.xhr") {
			return 1
		}
	}
	return 2
}

// Hook returns a validator hook that feeds s during Validate's own scan
// (segment.ValidateEvents): meta, custom and plugin events with their raw
// bytes, up to maxRaw bytes each (a longer one is not sliced).
func (s *Slicer) Hook(maxRaw int) *segment.EventHook {
	return &segment.EventHook{
		OnEvent: func(m segment.EventMeta) {
			if m.Raw != nil {
				s.Event(m.Type, m.HasType, m.Timestamp, m.Raw)
			}
		},
		RawTypes: []int64{segment.EventTypeMeta, segment.EventTypeCustom, segment.EventTypePlugin},
		MaxRaw:   maxRaw,
	}
}

// Slices returns the non-empty slices collected so far and resets s.
func (s *Slicer) Slices() []Slice {
	var out []Slice
	for k := range s.bufs {
		b := &s.bufs[k]
		if b.Len() == 0 {
			continue
		}
		b.WriteByte(']')
		info := s.infos[k]
		info.Encoding = segment.Plain
		info.RawSize = int64(b.Len())
		out = append(out, Slice{Type: sliceTypes[k], JSON: bytes.Clone(b.Bytes()), Info: info})
		b.Reset()
		s.infos[k] = segment.Info{}
	}
	return out
}

// From derives the slices of one decoded recording segment, a JSON array
// of events.
func From(doc []byte) ([]Slice, error) {
	var s Slicer
	err := segment.Events(doc, func(ev segment.Event) error {
		s.Event(ev.Type, ev.HasType, ev.TS, ev.Raw)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("derive slices: %w", err)
	}
	return s.Slices(), nil
}
