package ingest

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
)

// Sentry's envelope (https://develop.sentry.dev/sdk/envelopes/): a JSON
// header line, then items, each a JSON header line with "type" and an
// optional "length", then its payload: length bytes if given, else up to
// the next newline.
const (
	// maxEnvelopeItems bounds the items one envelope may hold.
	maxEnvelopeItems = 100
	// maxHeaderLine bounds an envelope or item header line.
	maxHeaderLine = 16 << 10
)

type envelopeHeader struct {
	EventID string `json:"event_id"`
	DSN     string `json:"dsn"`
	SDK     struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"sdk"`
}

type itemHeader struct {
	Type   string `json:"type"`
	Length *int64 `json:"length"`
}

type envelopeItem struct {
	typ     string
	payload []byte
}

// parseEnvelope splits body into its header and items. It copies nothing:
// payloads are slices of body.
func parseEnvelope(body []byte) (envelopeHeader, []envelopeItem, error) {
	var h envelopeHeader
	line, rest, _ := bytes.Cut(body, []byte("\n"))
	if len(line) > maxHeaderLine {
		return h, nil, badRequest("bad_envelope_header", "envelope header line is over %d bytes", maxHeaderLine)
	}
	if err := parseEnvelopeHeader(line, &h); err != nil {
		return h, nil, badRequest("bad_envelope_header", "envelope header is not a JSON object")
	}
	var items []envelopeItem
	for len(rest) > 0 {
		// Blank lines between items (a trailing newline) carry nothing.
		if rest[0] == '\n' || rest[0] == '\r' {
			rest = rest[1:]
			continue
		}
		if len(items) == maxEnvelopeItems {
			return h, nil, badRequest("too_many_items", "envelope has more than %d items", maxEnvelopeItems)
		}
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		if len(line) > maxHeaderLine {
			return h, nil, badRequest("bad_item_header", "item %d header line is over %d bytes", len(items), maxHeaderLine)
		}
		var ih itemHeader
		if err := parseItemHeader(line, &ih); err != nil || ih.Type == "" {
			return h, nil, badRequest("bad_item_header", "item %d header is not a JSON object with a type", len(items))
		}
		var payload []byte
		if ih.Length != nil {
			n := *ih.Length
			if n < 0 || n > int64(len(after)) {
				return h, nil, badRequest("bad_item_length", "item %d length %d is past the end of the body (%d bytes left)", len(items), n, len(after))
			}
			payload, rest = after[:n], after[n:]
			if len(rest) > 0 && rest[0] == '\n' {
				rest = rest[1:]
			}
		} else {
			payload, rest, _ = bytes.Cut(after, []byte("\n"))
		}
		items = append(items, envelopeItem{typ: ih.Type, payload: payload})
	}
	return h, items, nil
}

// The envelope's header lines and the replay_event are read with the JSON
// scanner (jsonscan.go), for only the fields Ingest keeps: a type that
// differs from what is expected there is refused as encoding/json would,
// and the rest of each line is checked for structure only.

// parseEnvelopeHeader reads the envelope header line.
func parseEnvelopeHeader(line []byte, h *envelopeHeader) error {
	return eachMember(line, func(k, v []byte) error {
		switch string(k) {
		case "event_id":
			return jsonStr(v, &h.EventID)
		case "dsn":
			return jsonStr(v, &h.DSN)
		case "sdk":
			return jsonObject(v, func(k, v []byte) error {
				switch string(k) {
				case "name":
					return jsonStr(v, &h.SDK.Name)
				case "version":
					return jsonStr(v, &h.SDK.Version)
				}
				return nil
			})
		}
		return nil
	})
}

// parseItemHeader reads an item header line.
func parseItemHeader(line []byte, ih *itemHeader) error {
	return eachMember(line, func(k, v []byte) error {
		switch string(k) {
		case "type":
			return jsonStr(v, &ih.Type)
		case "length":
			return jsonInt(v, &ih.Length)
		}
		return nil
	})
}

// parseReplayEvent reads the fields Ingest keeps of a replay_event.
func parseReplayEvent(p []byte, ev *replayEvent) error {
	return eachMember(p, func(k, v []byte) error {
		switch string(k) {
		case "replay_id":
			return jsonStr(v, &ev.ReplayID)
		case "segment_id":
			var n *int64
			if err := jsonInt(v, &n); err != nil || n == nil {
				return err
			}
			seg := int(*n)
			ev.SegmentID = &seg
		case "urls":
			return jsonStrings(v, &ev.URLs)
		case "error_ids":
			return jsonStrings(v, &ev.ErrorIDs)
		case "trace_ids":
			return jsonStrings(v, &ev.TraceIDs)
		case "replay_type":
			return jsonStr(v, &ev.ReplayType)
		case "sdk":
			return jsonObject(v, func(k, v []byte) error {
				switch string(k) {
				case "name":
					return jsonStr(v, &ev.SDK.Name)
				case "version":
					return jsonStr(v, &ev.SDK.Version)
				}
				return nil
			})
		case "contexts":
			return jsonObject(v, func(k, v []byte) error {
				if string(k) != "browser" {
					return nil
				}
				return jsonObject(v, func(k, v []byte) error {
					if string(k) == "name" {
						return jsonStr(v, &ev.Browser)
					}
					return nil
				})
			})
		case "request":
			return jsonObject(v, func(k, v []byte) error {
				if string(k) != "headers" {
					return nil
				}
				return jsonObject(v, func(k, v []byte) error {
					if string(k) == "User-Agent" {
						return jsonStr(v, &ev.UserAgent)
					}
					return nil
				})
			})
		}
		return nil
	})
}

// replayEvent is the part of Sentry's replay_event item Ingest keeps.
type replayEvent struct {
	ReplayID   string   `json:"replay_id"`
	SegmentID  *int     `json:"segment_id"`
	URLs       []string `json:"urls"`
	ErrorIDs   []string `json:"error_ids"`
	TraceIDs   []string `json:"trace_ids"`
	ReplayType string   `json:"replay_type"`
	SDK        struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"sdk"`
	// Browser is contexts.browser.name.
	Browser string
	// UserAgent is request.headers["User-Agent"].
	UserAgent string
}

// sentryEnvelope answers POST /api/{project}/envelope/.
func (s *Server) sentryEnvelope(w http.ResponseWriter, r *http.Request) {
	project, err := api.ProjectID(r.PathValue("project"))
	if err != nil {
		writeError(w, r, badRequest("bad_project", "project id in the path must be a positive integer"))
		return
	}
	body, err := s.readBody(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	h, items, perr := parseEnvelope(body)
	public := urlKey(r)
	if public == "" && perr == nil {
		public = dsnKey(h.DSN)
	}
	k, err := s.admit(r.Context(), r, public, project)
	allowOrigin(w, r, k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if perr != nil {
		writeError(w, r, perr)
		return
	}
	msgs, err := s.sentryMessages(r, project, h, items)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.publish(r.Context(), msgs); err != nil {
		writeError(w, r, err)
		return
	}
	writeOK(w, struct{}{})
}

// sentryMessages turns an envelope's replay items into segment messages.
// Items of other types (events, sessions, client reports) are dropped, as
// Relay drops those of a product it does not run.
func (s *Server) sentryMessages(r *http.Request, project int64, h envelopeHeader, items []envelopeItem) ([]message, error) {
	var (
		ev   *replayEvent
		recs [][]byte
	)
	for i, it := range items {
		switch it.typ {
		case "replay_event":
			if ev != nil {
				return nil, badRequest("bad_replay_event", "item %d: more than one replay_event", i)
			}
			ev = &replayEvent{}
			if err := parseReplayEvent(it.payload, ev); err != nil {
				return nil, badRequest("bad_replay_event", "item %d: replay_event is not a JSON object", i)
			}
		case "replay_recording":
			recs = append(recs, it.payload)
		}
	}
	if len(recs) == 0 {
		return nil, nil
	}
	// In replay envelopes the header's event_id is the replay id.
	sentryID := h.EventID
	if ev != nil && ev.ReplayID != "" {
		if sentryID != "" && !strings.EqualFold(sentryID, ev.ReplayID) {
			return nil, badRequest("replay_id_mismatch", "replay_event.replay_id differs from the envelope's event_id")
		}
		sentryID = ev.ReplayID
	}
	replay, err := sentryReplayID(sentryID)
	if err != nil {
		return nil, err
	}
	meta := replaymeta.Meta{Source: replaymeta.SourceSentry, SourceID: strings.ToLower(sentryID)}
	meta.SDK = sdkName(h.SDK.Name, h.SDK.Version)
	meta.UserAgentFamily = userAgentFamily(r.Header.Get("User-Agent"))
	if ev != nil {
		meta.URLs, meta.ErrorIDs, meta.TraceIDs, meta.ReplayType = ev.URLs, ev.ErrorIDs, ev.TraceIDs, ev.ReplayType
		if n := sdkName(ev.SDK.Name, ev.SDK.Version); n != "" {
			meta.SDK = n
		}
		if b := ev.Browser; b != "" {
			meta.UserAgentFamily = b
		} else if ua := ev.UserAgent; ua != "" {
			meta.UserAgentFamily = userAgentFamily(ua)
		}
	}
	msgs := make([]message, 0, len(recs))
	for i, rec := range recs {
		seg, data, err := splitRecording(rec)
		if err != nil {
			return nil, err
		}
		if ev != nil && ev.SegmentID != nil && len(recs) == 1 && *ev.SegmentID != seg {
			return nil, badRequest("segment_id_mismatch", "replay_event.segment_id %d differs from the recording's %d", *ev.SegmentID, seg)
		}
		if err := s.checkPayload(data, "replay_recording"); err != nil {
			return nil, err
		}
		m := meta
		if i > 0 {
			// Lists travel once per envelope.
			m.URLs, m.ErrorIDs, m.TraceIDs = nil, nil, nil
		}
		msgs = append(msgs, s.segmentMessage(project, replay, seg, m, data))
	}
	return msgs, nil
}

// splitRecording reads a replay_recording payload: a JSON header line
// {"segment_id":N}, then the recording (zlib or plain JSON).
func splitRecording(p []byte) (int, []byte, error) {
	line, data, _ := bytes.Cut(p, []byte("\n"))
	var seg *int64
	err := eachMember(line, func(k, v []byte) error {
		if string(k) == "segment_id" {
			return jsonInt(v, &seg)
		}
		return nil
	})
	if err != nil {
		return 0, nil, badRequest("bad_recording_header", "replay_recording header is not a JSON object")
	}
	if seg == nil {
		return 0, nil, badRequest("missing_segment_id", "replay_recording header has no segment_id")
	}
	if *seg < 0 || *seg > segment.MaxSegmentID {
		return 0, nil, badRequest("bad_segment_id", "segment_id %d is not in [0, %d]", *seg, segment.MaxSegmentID)
	}
	return int(*seg), data, nil
}

// sentryReplayID maps Sentry's replay id (32 hex digits, a UUID without
// dashes) onto the replay UUID with the same 128 bits: one to one, and the
// Sentry spelling is the UUID's hex without dashes.
func sentryReplayID(s string) (uuid.UUID, error) {
	var id uuid.UUID
	if len(s) != 32 {
		return uuid.Nil, badRequest("bad_replay_id", "replay id must be 32 hex digits")
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return uuid.Nil, badRequest("bad_replay_id", "replay id must be 32 hex digits")
	}
	if id == uuid.Nil {
		return uuid.Nil, badRequest("bad_replay_id", "replay id must not be zero")
	}
	return id, nil
}

// sentryAuthKey reads sentry_key from an X-Sentry-Auth header:
// "Sentry sentry_version=7, sentry_key=KEY, sentry_client=...".
func sentryAuthKey(h string) string {
	h = strings.TrimSpace(h)
	if len(h) < 7 || !strings.EqualFold(h[:7], "sentry ") {
		return ""
	}
	for _, part := range strings.Split(h[7:], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.TrimSpace(k) == "sentry_key" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// dsnKey reads the public key from a DSN (scheme://KEY@host/PROJECT), which
// a tunnel puts in the envelope header.
func dsnKey(dsn string) string {
	if dsn == "" {
		return ""
	}
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

func sdkName(name, version string) string {
	switch {
	case name == "":
		return ""
	case version == "":
		return name
	}
	return name + "/" + version
}
