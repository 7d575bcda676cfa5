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
// A Slicer takes events one at a time (type, timestamp, raw JSON), the
// shape of a validator's per-event hook, so it can run inside the one scan
// of a segment; From runs it as a pass of its own over a decoded segment.
package derive

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/valyala/fastjson"

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
	parser fastjson.Parser
	bufs   [3]bytes.Buffer
	infos  [3]segment.Info
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
	case segment.EventMeta:
		k = 2
	case segment.EventCustom, segment.EventPlugin:
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

// classify returns the slice (index into sliceTypes) of a custom or plugin
// event, or -1.
func (s *Slicer) classify(typ int64, raw []byte) int {
	v, err := s.parser.ParseBytes(raw)
	if err != nil {
		return -1 // too deep for fastjson: not a shape we slice
	}
	data := v.Get("data")
	if data == nil {
		return -1
	}
	if typ == segment.EventPlugin {
		switch plugin := string(data.GetStringBytes("plugin")); {
		case strings.HasPrefix(plugin, "rrweb/console@"):
			return 0
		case strings.HasPrefix(plugin, "rrweb/network@"):
			return 1
		}
		return -1
	}
	switch string(data.GetStringBytes("tag")) {
	case "breadcrumb":
		switch string(data.GetStringBytes("payload", "category")) {
		case "console":
			return 0
		case "fetch", "xhr":
			return 1
		}
	case "performanceSpan":
		op := string(data.GetStringBytes("payload", "op"))
		if strings.HasPrefix(op, "resource.fetch") || strings.HasPrefix(op, "resource.xhr") {
			return 1
		}
	}
	return 2
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
