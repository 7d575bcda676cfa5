package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fastjson"

	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
)

// posthog-js sends session recordings to /s/ as batches of "$snapshot"
// events: {"event":"$snapshot","properties":{"$session_id":...,
// "$window_id":...,"$snapshot_data":[rrweb events...],"token":...}}. The body
// is a JSON array of such events (or {"batch":[...],"api_key":...}, or one
// event), gzip-compressed by current versions (no query flag,
// Content-Type text/plain to skip the CORS preflight; older ones add
// ?compression=gzip-js), or form-encoded base64 (data=...) by old ones.

// maxSnapshotEvents bounds the rrweb events of one request.
const maxSnapshotEvents = 100_000

// posthogSlot is the time one wanted segment number stands for: a batch's
// number is where its first event falls after the session's start, in
// these units, so numbers follow time (see batchSegmentID).
const posthogSlot = 100 * time.Millisecond

// posthogNamespace derives replay UUIDs of session ids that are not UUIDs
// themselves (posthog-js makes UUIDv7s; other clients may not).
var posthogNamespace = uuid.MustParse("6f1b7e64-4a58-4c1e-9d0f-2b7c53c1a6a1")

// posthogSession is one session's part of a snapshot request.
type posthogSession struct {
	id      string
	replay  uuid.UUID
	windows []string
	data    []byte // the JSON array of its events, being built
	events  int
	firstTS int64
	meta    replaymeta.Meta
}

// posthogSnapshots answers POST /s/.
func (s *Server) posthogSnapshots(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(r)
	if err != nil {
		allowOrigin(w, r, nil)
		writeError(w, r, err)
		return
	}
	dec := &decoder{s: s, budget: s.cfg.MaxDecompressed}
	defer dec.release()
	root, token, perr := dec.posthogBody(r, body)
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	if token == "" && perr != nil {
		// The token is in the body: a body that does not parse names none.
		allowOrigin(w, r, nil)
		writeError(w, r, perr)
		return
	}
	k, err := s.admit(r.Context(), r, token, 0)
	allowOrigin(w, r, k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if perr != nil {
		writeError(w, r, perr)
		return
	}
	sessions, err := dec.snapshotSessions(root, r.Header.Get("User-Agent"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	msgs := make([]message, 0, len(sessions))
	for _, ss := range sessions {
		data := ss.data
		seg, err := s.batchSegmentID(r, k.ProjectID, ss, data)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if len(data) > 1<<20 {
			// Keep under Pub/Sub's 10 MB: a 10 MB gzip body can hold far more.
			data = segment.Compress(data)
		}
		msgs = append(msgs, s.segmentMessage(k.ProjectID, ss.replay, seg, ss.meta, data))
	}
	if err := s.publish(r.Context(), msgs); err != nil {
		writeError(w, r, err)
		return
	}
	writeOK(w, map[string]int{"status": 1})
}

// batchSegmentID numbers a batch. posthog-js sends no segment numbers, and
// retries a failed batch with the same content, so the number comes from the
// database keyed by a hash of the content (windows and events): a retry gets
// its first number back and Pack stores nothing new (same segment
// identity), while two different batches never share one. The number wanted
// is the batch's first event time after the session began (a posthog-js
// session id is a UUIDv7, whose first 48 bits are that start in ms) in
// 100 ms slots, so segments sort by time across windows and retries that
// arrive late; when that slot is taken the next free one is used.
func (s *Server) batchSegmentID(r *http.Request, project int64, ss *posthogSession, data []byte) (int, error) {
	h := sha256.New()
	for _, win := range ss.windows {
		h.Write([]byte(win))
		h.Write([]byte{0})
	}
	h.Write(data)
	want := 0
	if start, ok := uuidV7Millis(ss.replay); ok && ss.firstTS >= start {
		want = int(min((ss.firstTS-start)/posthogSlot.Milliseconds(), int64(segment.MaxSegmentID)))
	}
	return s.db.BatchSegmentID(r.Context(), project, ss.replay, h.Sum(nil), want, segment.MaxSegmentID)
}

// uuidV7Millis returns the Unix milliseconds of a version 7 UUID.
func uuidV7Millis(id uuid.UUID) (int64, bool) {
	if id.Version() != 7 {
		return 0, false
	}
	sec, nsec := id.Time().UnixTime()
	return sec*1000 + nsec/1e6, true
}

// decoder holds one request's parse state: the decompression budget shared
// by the body and every compressed field, and the parsers whose values are
// alive until the events are written (pooled: a parser's memory is reused
// by the next request).
type decoder struct {
	s       *Server
	budget  int64
	parsers []*fastjson.Parser
}

var parsers fastjson.ParserPool

func (d *decoder) parse(b []byte, what string) (*fastjson.Value, error) {
	p := parsers.Get()
	d.parsers = append(d.parsers, p)
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, badRequest("bad_json", "%s is not valid JSON", what)
	}
	return v, nil
}

// release returns the parsers; no value they made may be used after.
func (d *decoder) release() {
	for _, p := range d.parsers {
		parsers.Put(p)
	}
	d.parsers = nil
}

// gunzip decompresses within the request's remaining budget.
func (d *decoder) gunzip(b []byte, what string) ([]byte, error) {
	if d.budget <= 0 {
		return nil, errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large", "request decompresses to more than %d bytes", d.s.cfg.MaxDecompressed)
	}
	saved := d.s.cfg.MaxDecompressed
	out, err := segment.Decode(segment.Gzip, b, d.budget)
	if reason, ok := segment.Reason(err); ok {
		if reason == segment.ReasonDecompressedTooLarge {
			return nil, errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large", "request decompresses to more than %d bytes", saved)
		}
		return nil, badRequest("bad_compression", "%s: gzip stream is corrupt", what)
	}
	if err != nil {
		return nil, fmt.Errorf("gunzip %s: %w", what, err)
	}
	d.budget -= int64(len(out))
	return out, nil
}

// posthogBody undoes the body's encoding and parses it; it returns the
// parsed value and the token it names (empty if none).
func (d *decoder) posthogBody(r *http.Request, body []byte) (*fastjson.Value, string, error) {
	q := r.URL.Query()
	if bytes.HasPrefix(body, []byte("data=")) || q.Get("compression") == "base64" {
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("data") == "" {
			return nil, "", badRequest("bad_body", "form body has no data field")
		}
		b, err := base64.StdEncoding.DecodeString(form.Get("data"))
		if err != nil {
			return nil, "", badRequest("bad_body", "data field is not base64")
		}
		body = b
	}
	if segment.Detect(body) == segment.Gzip {
		b, err := d.gunzip(body, "body")
		if err != nil {
			return nil, "", err
		}
		body = b
	} else if q.Get("compression") == "gzip-js" {
		return nil, "", badRequest("bad_compression", "compression=gzip-js but the body is not gzip")
	}
	if int64(len(body)) > d.s.cfg.MaxDecompressed {
		return nil, "", errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large", "request decompresses to more than %d bytes", d.s.cfg.MaxDecompressed)
	}
	v, err := d.parse(body, "body")
	if err != nil {
		return nil, "", err
	}
	token := string(v.GetStringBytes("api_key"))
	if token == "" {
		token = string(v.GetStringBytes("token"))
	}
	events := eventsOf(v)
	for _, ev := range events {
		t := string(ev.GetStringBytes("properties", "token"))
		if t == "" {
			t = string(ev.GetStringBytes("api_key"))
		}
		if t == "" {
			continue
		}
		if token == "" {
			token = t
		} else if t != token {
			return nil, token, badRequest("mixed_tokens", "events of one request carry different project tokens")
		}
	}
	return v, token, nil
}

// eventsOf returns the events of a body: an array, {"batch":[...]}, or one
// event.
func eventsOf(v *fastjson.Value) []*fastjson.Value {
	switch v.Type() {
	case fastjson.TypeArray:
		a, _ := v.Array()
		return a
	case fastjson.TypeObject:
		if b := v.Get("batch"); b != nil && b.Type() == fastjson.TypeArray {
			a, _ := b.Array()
			return a
		}
		return []*fastjson.Value{v}
	}
	return nil
}

// snapshotSessions collects the rrweb events of each session, in the order
// sent, with compressed fields expanded. Events other than $snapshot are
// dropped.
func (d *decoder) snapshotSessions(root *fastjson.Value, ua string) ([]*posthogSession, error) {
	var (
		order    []*posthogSession
		sessions = map[string]*posthogSession{}
		total    int
	)
	for i, ev := range eventsOf(root) {
		if string(ev.GetStringBytes("event")) != "$snapshot" {
			continue
		}
		props := ev.Get("properties")
		sidV := props.Get("$session_id")
		if sidV == nil || sidV.Type() != fastjson.TypeString || len(sidV.GetStringBytes()) == 0 {
			return nil, badRequest("missing_session_id", "$snapshot event %d has no $session_id", i)
		}
		sid := string(sidV.GetStringBytes())
		if len(sid) > 200 {
			return nil, badRequest("bad_session_id", "$session_id of event %d is over 200 bytes", i)
		}
		ss := sessions[sid]
		if ss == nil {
			ss = &posthogSession{id: sid, replay: posthogReplayID(sid)}
			ss.meta = replaymeta.Meta{Source: replaymeta.SourcePostHog, SourceID: sid, ReplayType: "session"}
			lib, ver := string(props.GetStringBytes("$lib")), string(props.GetStringBytes("$lib_version"))
			if lib == "web" {
				lib = "posthog-js"
			}
			ss.meta.SDK = sdkName(lib, ver)
			if b := props.GetStringBytes("$browser"); len(b) > 0 {
				ss.meta.UserAgentFamily = string(b)
			} else {
				ss.meta.UserAgentFamily = userAgentFamily(ua)
			}
			sessions[sid] = ss
			order = append(order, ss)
		}
		if win := string(props.GetStringBytes("$window_id")); win != "" && !containsString(ss.windows, win) {
			ss.windows = append(ss.windows, win)
		}
		if u := props.GetStringBytes("$current_url"); len(u) > 0 {
			ss.addURL(string(u))
		}
		data := props.Get("$snapshot_data")
		var items []*fastjson.Value
		switch {
		case data == nil:
			return nil, badRequest("missing_snapshot_data", "$snapshot event %d has no $snapshot_data", i)
		case data.Type() == fastjson.TypeArray:
			items, _ = data.Array()
		case data.Type() == fastjson.TypeObject:
			items = []*fastjson.Value{data}
		default:
			return nil, badRequest("bad_snapshot_data", "$snapshot_data of event %d is not rrweb events", i)
		}
		for j, e := range items {
			if total++; total > maxSnapshotEvents {
				return nil, badRequest("too_many_events", "request holds more than %d rrweb events", maxSnapshotEvents)
			}
			if e.Type() != fastjson.TypeObject {
				return nil, badRequest("bad_snapshot_data", "$snapshot_data of event %d: item %d is not an object", i, j)
			}
			if err := d.expand(e, i, j); err != nil {
				return nil, err
			}
			if ss.firstTS == 0 {
				ss.firstTS = int64(e.GetFloat64("timestamp"))
			}
			if e.GetInt("type") == 4 { // Meta: the page's URL
				if href := e.GetStringBytes("data", "href"); len(href) > 0 {
					ss.addURL(string(href))
				}
			}
			if ss.events++; ss.events == 1 {
				ss.data = append(ss.data, '[')
			} else {
				ss.data = append(ss.data, ',')
			}
			ss.data = e.MarshalTo(ss.data)
		}
	}
	for _, ss := range order {
		if ss.events == 0 {
			return nil, badRequest("empty_snapshot", "session %.40q has no rrweb events", ss.id)
		}
		ss.data = append(ss.data, ']')
	}
	return order, nil
}

// compressedFields are the fields posthog-js gzips in events it marks
// "cv":"2024-10": a full snapshot's data, and a mutation's or style sheet
// rule's texts, attributes, removes and adds.
var compressedFields = []string{"texts", "attributes", "removes", "adds"}

// expand turns an event posthog-js compressed back into a plain rrweb
// event: each compressed field is a string whose characters are the bytes
// of a gzip stream (latin-1), holding the field's JSON.
func (d *decoder) expand(e *fastjson.Value, i, j int) error {
	cv := e.Get("cv")
	if cv == nil {
		return nil
	}
	if string(cv.GetStringBytes()) != "2024-10" {
		return badRequest("bad_compressed_event", "event %d item %d: unknown compression version", i, j)
	}
	o, _ := e.Object()
	what := fmt.Sprintf("event %d item %d", i, j)
	switch e.GetInt("type") {
	case 2: // FullSnapshot: data
		v, err := d.unzipField(o.Get("data"), what)
		if err != nil {
			return err
		}
		if v != nil {
			o.Set("data", v)
		}
	case 3: // IncrementalSnapshot: fields of data
		data, err := e.Get("data").Object()
		if err != nil {
			return badRequest("bad_compressed_event", "%s: data is not an object", what)
		}
		for _, f := range compressedFields {
			v, err := d.unzipField(data.Get(f), what)
			if err != nil {
				return err
			}
			if v != nil {
				data.Set(f, v)
			}
		}
	}
	o.Del("cv")
	return nil
}

// unzipField decodes one compressed field; a field that is not a string
// was not compressed and is left alone (nil).
func (d *decoder) unzipField(v *fastjson.Value, what string) (*fastjson.Value, error) {
	if v == nil || v.Type() != fastjson.TypeString {
		return nil, nil
	}
	s := v.GetStringBytes()
	// The string is latin-1: every character is one byte of the stream.
	b := make([]byte, 0, len(s))
	for _, r := range string(s) {
		if r > 0xff {
			return nil, badRequest("bad_compressed_event", "%s: compressed field is not latin-1", what)
		}
		b = append(b, byte(r))
	}
	raw, err := d.gunzip(b, what)
	if err != nil {
		return nil, err
	}
	return d.parse(raw, what+" (decompressed)")
}

func (ss *posthogSession) addURL(u string) {
	if len(ss.meta.URLs) < replaymeta.MaxListLen && !containsString(ss.meta.URLs, u) {
		ss.meta.URLs = append(ss.meta.URLs, u)
	}
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// posthogReplayID maps a PostHog session id onto a replay UUID one to one:
// a session id that is a UUID (posthog-js makes UUIDv7s) is the replay id
// itself; any other string gets a name-based (v5) UUID of it.
func posthogReplayID(sid string) uuid.UUID {
	if id, err := uuid.Parse(sid); err == nil && len(sid) == 36 && id != uuid.Nil {
		return id
	}
	return uuid.NewSHA1(posthogNamespace, []byte(sid))
}

// posthogFlags answers /flags/ and /decide/ (posthog-js asks on load): no
// feature flags, session recording on, sent to this host's /s/.
func (s *Server) posthogFlags(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, r, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST"))
		return
	}
	token := r.URL.Query().Get("token")
	if token == "" && r.Method == http.MethodPost {
		body, err := s.readBody(r)
		if err != nil {
			allowOrigin(w, r, nil)
			writeError(w, r, err)
			return
		}
		dec := &decoder{s: s, budget: s.cfg.MaxDecompressed}
		if _, t, err := dec.posthogBody(r, body); err == nil {
			token = t
		}
		dec.release()
	}
	k, err := s.admit(r.Context(), r, token, 0)
	allowOrigin(w, r, k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	resp := remoteConfig(token)
	resp["featureFlags"] = map[string]any{}
	resp["featureFlagPayloads"] = map[string]any{}
	resp["flags"] = map[string]any{}
	resp["errorsWhileComputingFlags"] = false
	resp["config"] = map[string]any{"enable_collect_everything": false}
	resp["toolbarParams"] = map[string]any{}
	resp["isAuthenticated"] = false
	writeOK(w, resp)
}

// remoteConfig is what posthog-js reads to switch features on: only
// session recording, to /s/.
func remoteConfig(token string) map[string]any {
	return map[string]any{
		"token":                 token,
		"supportedCompression":  []string{"gzip", "gzip-js"},
		"hasFeatureFlags":       false,
		"autocapture_opt_out":   true,
		"autocaptureExceptions": false,
		"capturePerformance":    false,
		"heatmaps":              false,
		"surveys":               false,
		"defaultIdentifiedOnly": true,
		"siteApps":              []any{},
		"sessionRecording": map[string]any{
			"endpoint":                    "/s/",
			"recorderVersion":             "v2",
			"consoleLogRecordingEnabled":  false,
			"networkPayloadCapture":       nil,
			"sampleRate":                  nil,
			"minimumDurationMilliseconds": nil,
			"linkedFlag":                  nil,
			"urlTriggers":                 []any{},
			"urlBlocklist":                []any{},
			"eventTriggers":               []any{},
		},
	}
}

// posthogRemoteConfig answers /array/{token}/config.js (a script that
// registers the config for posthog-js) and /array/{token}/config (JSON).
func (s *Server) posthogRemoteConfig(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	file := r.PathValue("file")
	if file != "config.js" && file != "config" {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no route for %s", r.URL.Path))
		return
	}
	k, err := s.admit(r.Context(), r, token, 0)
	allowOrigin(w, r, k)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cfg := remoteConfig(token)
	if file == "config" {
		writeOK(w, cfg)
		return
	}
	tok, _ := json.Marshal(token)
	js, _ := json.Marshal(map[string]any{"config": cfg, "siteApps": []any{}})
	w.Header().Set("Content-Type", "application/javascript")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};window._POSTHOG_REMOTE_CONFIG[%s]=%s;})();\n", tok, js)
}

// staticName is what a posthog-js asset may be called.
var staticName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*\.js(\.map)?$`)

// posthogStatic serves posthog-js's own files (lazy-recorder.js, which the
// SDK loads to start recording) from PostHogStaticDir, the SDK's dist
// directory of the version the site ships. /static/{version}/{file} and
// /static/{file} both name the file; only a bare asset name is ever opened.
func (s *Server) posthogStatic(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if s.cfg.PostHogStaticDir == "" || !staticName.MatchString(name) {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no such asset"))
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.PostHogStaticDir, name))
	if err != nil {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no such asset"))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no such asset"))
		return
	}
	w.Header().Set("Content-Type", "application/javascript")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// posthogDropped accepts analytics events posthog-js sends besides
// recordings (/e/, /batch/ ...) and drops them unread: replayvault stores
// replays only.
func (s *Server) posthogDropped(w http.ResponseWriter, r *http.Request) {
	allowOrigin(w, r, nil)
	writeOK(w, map[string]int{"status": 1})
}
