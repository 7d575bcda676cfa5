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
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

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
	batch, token, perr := dec.posthogBody(r, body)
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
	sessions, err := dec.snapshotSessions(batch, r.Header.Get("User-Agent"))
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
// by the body and every compressed field.
type decoder struct {
	s      *Server
	budget int64
	// fields remembers small compressed fields already expanded, by
	// their bytes as sent: posthog-js compresses an empty list once and
	// sends that same string in every mutation after.
	fields map[string][]byte
}

const (
	// maxMemoField is the largest compressed field remembered.
	maxMemoField = 256
	// maxMemoFields bounds how many are remembered per request.
	maxMemoFields = 1024
)

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

// A posthog-js body is not parsed into a tree: the JSON scanner
// (jsonscan.go) finds each $snapshot event's fields and each rrweb event's
// bytes in the body, and the session's segment is those bytes copied as
// sent. Only events posthog-js compressed ("cv") are rewritten.

// phBatch is a body cut into its snapshot events; the rrweb events
// are slices of the body, not copies.
type phBatch struct {
	body   []byte
	events []snapshotEvent
	// err is the first problem past the framing (an event without a
	// session id, ...): it is reported after the token was checked, so
	// a request with a bad key hears about the key.
	err error
}

// snapshotEvent is one $snapshot event.
type snapshotEvent struct {
	index int // in the body
	sid   string
	props snapshotProps
	items []snapshotItem
}

// snapshotProps are the properties Ingest reads of an event.
type snapshotProps struct {
	sid                                   []byte // raw value
	sidString                             string
	hasData                               bool
	data, dataEnd                         int // where $snapshot_data lies in the body
	window, url, lib, libVersion, browser string
	token                                 string
}

// snapshotItem is one rrweb event of a $snapshot event's $snapshot_data.
// It holds no pointers, only where things lie in the body, so a batch of
// many small events costs the garbage collector nothing to keep.
type snapshotItem struct {
	raw  span
	typ  int  // -1 when not a number
	ts   span // the value of "timestamp"
	data span // the value of "data"
	cv   span // the value of "cv", empty when the event is not compressed
}

// span is where a value lies in the body: b[i:e].
type span struct{ i, e int }

func (s span) of(b []byte) []byte { return b[s.i:s.e] }

// posthogBody undoes the body's encoding and cuts it into snapshot
// events; it returns them and the token the body names (empty if none).
func (d *decoder) posthogBody(r *http.Request, body []byte) (*phBatch, string, error) {
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
	return cutBatch(body)
}

// cutBatch finds the events of a body (an array of events,
// {"batch":[...]}, or one event) and the token it names: the body's
// api_key or token, else its events'. It reads the body once. Events other
// than $snapshot are passed over, but their tokens count.
func cutBatch(body []byte) (*phBatch, string, error) {
	c := &cutter{b: body, batch: &phBatch{body: body}}
	start := skipWS(body, 0)
	var (
		end int
		err error
	)
	switch {
	case start < len(body) && body[start] == '[':
		end, err = elements(body, start, c.event)
	case start < len(body) && body[start] == '{':
		// A batch wrapper or one event: its members tell.
		var (
			er      = &eventReading{} // event 0 unless it is a wrapper
			batched bool
			token   string
		)
		end, err = members(body, start, func(k []byte, v int) (int, error) {
			switch string(k) {
			case "batch":
				if body[v] == '[' {
					batched = true
					return elements(body, v, c.event)
				}
			case "token":
				e, err := skipValue(body, v)
				if err != nil {
					return 0, err
				}
				token, _ = jsonString(body[v:e])
				return e, nil
			}
			return c.eventMember(er, k, v)
		})
		if err == nil {
			if er.apiKey != "" {
				token = er.apiKey
			}
			c.tokens = append([]string{token}, c.tokens...)
			if !batched {
				c.tokens = append(c.tokens, c.finish(er))
			}
		}
	default:
		err = errSyntax
	}
	if err == nil {
		err = checkEnd(body, end)
	}
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, "", e
		}
		return nil, "", badRequest("bad_json", "body is not valid JSON")
	}
	token := ""
	for _, t := range c.tokens {
		if t == "" {
			continue
		}
		if token == "" {
			token = t
		} else if t != token {
			return nil, token, badRequest("mixed_tokens", "events of one request carry different project tokens")
		}
	}
	return c.batch, token, nil
}

// cutter is cutBatch's state.
type cutter struct {
	b      []byte
	batch  *phBatch
	tokens []string // in the order found: the body's first, then each event's
	n      int      // events seen
	total  int      // rrweb events seen
}

// eventReading is one event as it is read.
type eventReading struct {
	index    int
	snapshot bool
	apiKey   string
	props    snapshotProps
	items    []snapshotItem
	err      error // the first problem with its rrweb events
}

func (c *cutter) newEvent() *eventReading {
	c.n++
	return &eventReading{index: c.n - 1}
}

// event reads the event starting at b[i] and returns its end.
func (c *cutter) event(i int) (int, error) {
	if c.b[i] != '{' {
		return skipValue(c.b, i) // not an event: nothing to take
	}
	er := c.newEvent()
	e, err := members(c.b, i, func(k []byte, v int) (int, error) { return c.eventMember(er, k, v) })
	if err != nil {
		return 0, err
	}
	c.tokens = append(c.tokens, c.finish(er))
	return e, nil
}

// finish keeps a $snapshot event, or the first problem with one, and
// returns the token the event carries.
func (c *cutter) finish(er *eventReading) string {
	token := er.props.token
	if token == "" {
		token = er.apiKey
	}
	if !er.snapshot || c.batch.err != nil {
		return token
	}
	if err := er.check(); err != nil {
		c.batch.err = err
		return token
	}
	c.batch.events = append(c.batch.events, snapshotEvent{index: er.index, sid: er.props.sidString, props: er.props, items: er.items})
	return token
}

// eventMember reads the member k of an event, its value at b[v].
func (c *cutter) eventMember(er *eventReading, k []byte, v int) (int, error) {
	switch string(k) {
	case "properties":
		if c.b[v] == '{' {
			// A repeated key's last value counts, as for encoding/json.
			er.props, er.items, er.err = snapshotProps{}, er.items[:0], nil
			return members(c.b, v, func(k []byte, v int) (int, error) { return c.prop(er, k, v) })
		}
	}
	e, err := skipValue(c.b, v)
	if err != nil {
		return 0, err
	}
	switch string(k) {
	case "event":
		er.snapshot = string(c.b[v:e]) == `"$snapshot"`
	case "api_key":
		er.apiKey, _ = jsonString(c.b[v:e])
	}
	return e, nil
}

// prop reads the property k of an event, its value at b[v].
func (c *cutter) prop(er *eventReading, k []byte, v int) (int, error) {
	p := &er.props
	if string(k) == "$snapshot_data" {
		p.hasData = true
		er.items, er.err = er.items[:0], nil
		switch c.b[v] {
		case '[':
			p.data = v
			e, err := elements(c.b, v, func(i int) (int, error) { return c.item(er, i) })
			p.dataEnd = e
			return e, err
		case '{':
			p.data = v
			e, err := c.item(er, v)
			p.dataEnd = e
			return e, err
		}
		er.setErr(badRequest("bad_snapshot_data", "$snapshot_data of event %d is not rrweb events", er.index))
	}
	e, err := skipValue(c.b, v)
	if err != nil {
		return 0, err
	}
	raw := c.b[v:e]
	switch string(k) {
	case "$session_id":
		p.sid = raw
	case "$window_id":
		p.window, _ = jsonString(raw)
	case "$current_url":
		p.url, _ = jsonString(raw)
	case "$lib":
		p.lib, _ = jsonString(raw)
	case "$lib_version":
		p.libVersion, _ = jsonString(raw)
	case "$browser":
		p.browser, _ = jsonString(raw)
	case "token":
		p.token, _ = jsonString(raw)
	}
	return e, nil
}

// item reads one rrweb event of $snapshot_data at b[i].
func (c *cutter) item(er *eventReading, i int) (int, error) {
	if c.total++; c.total > maxSnapshotEvents {
		return 0, badRequest("too_many_events", "request holds more than %d rrweb events", maxSnapshotEvents)
	}
	if c.b[i] != '{' {
		er.setErr(badRequest("bad_snapshot_data", "$snapshot_data of event %d: item %d is not an object", er.index, len(er.items)))
		return skipValue(c.b, i)
	}
	it := snapshotItem{raw: span{i, 0}, typ: -1}
	e, err := members(c.b, i, func(k []byte, v int) (int, error) {
		e, err := skipValue(c.b, v)
		if err != nil {
			return 0, err
		}
		switch raw := c.b[v:e]; string(k) {
		case "type":
			it.typ = eventType(raw)
		case "timestamp":
			it.ts = span{v, e}
		case "data":
			it.data = span{v, e}
		case "cv":
			it.cv = span{v, e}
		}
		return e, nil
	})
	if err != nil {
		return 0, err
	}
	it.raw.e = e
	er.items = append(er.items, it)
	return e, nil
}

func (er *eventReading) setErr(err error) {
	if er.err == nil {
		er.err = err
	}
}

// check says what is wrong with a $snapshot event, if anything.
func (er *eventReading) check() error {
	p := &er.props
	sid, ok := jsonString(p.sid)
	if !ok || sid == "" {
		return badRequest("missing_session_id", "$snapshot event %d has no $session_id", er.index)
	}
	if len(sid) > 200 {
		return badRequest("bad_session_id", "$session_id of event %d is over 200 bytes", er.index)
	}
	p.sidString = sid
	if er.err != nil {
		return er.err
	}
	if !p.hasData {
		return badRequest("missing_snapshot_data", "$snapshot event %d has no $snapshot_data", er.index)
	}
	return nil
}

// snapshotSessions collects the rrweb events of each session, in the order
// sent, with compressed ones expanded.
func (d *decoder) snapshotSessions(b *phBatch, ua string) ([]*posthogSession, error) {
	if b.err != nil {
		return nil, b.err
	}
	var (
		order    []*posthogSession
		sessions = map[string]*posthogSession{}
	)
	for _, ev := range b.events {
		p := ev.props
		ss := sessions[ev.sid]
		if ss == nil {
			ss = &posthogSession{id: ev.sid, replay: posthogReplayID(ev.sid)}
			ss.meta = replaymeta.Meta{Source: replaymeta.SourcePostHog, SourceID: ev.sid, ReplayType: "session"}
			lib := p.lib
			if lib == "web" {
				lib = "posthog-js"
			}
			ss.meta.SDK = sdkName(lib, p.libVersion)
			if p.browser != "" {
				ss.meta.UserAgentFamily = p.browser
			} else {
				ss.meta.UserAgentFamily = userAgentFamily(ua)
			}
			sessions[ev.sid] = ss
			order = append(order, ss)
		}
		if p.window != "" && !containsString(ss.windows, p.window) {
			ss.windows = append(ss.windows, p.window)
		}
		if p.url != "" {
			ss.addURL(p.url)
		}
		ss.data = slices.Grow(ss.data, p.dataEnd-p.data+2)
		for j, it := range ev.items {
			raw := it.raw.of(b.body)
			if it.cv.e != 0 {
				x, err := d.expand(b.body, it, ev.index, j)
				if err != nil {
					return nil, err
				}
				raw = x
			}
			if ss.firstTS == 0 {
				ts, _ := jsonNumber(it.ts.of(b.body))
				ss.firstTS = int64(ts)
			}
			if it.typ == 4 { // Meta: the page's URL
				ss.addURL(metaHref(it.data.of(b.body)))
			}
			if ss.events++; ss.events == 1 {
				ss.data = append(ss.data, '[')
			} else {
				ss.data = append(ss.data, ',')
			}
			ss.data = append(ss.data, raw...)
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

// eventType is the rrweb event type v (a small integer), -1 if v is none.
func eventType(v []byte) int {
	if len(v) == 1 && v[0] >= '0' && v[0] <= '9' {
		return int(v[0] - '0')
	}
	if f, ok := jsonNumber(v); ok && f == float64(int(f)) {
		return int(f)
	}
	return -1
}

// metaHref is data.href of a Meta event, "" if none.
func metaHref(data []byte) string {
	var href string
	if len(data) > 0 && data[0] == '{' {
		_ = eachMember(data, func(k, v []byte) error {
			if string(k) == "href" {
				href, _ = jsonString(v)
			}
			return nil
		})
	}
	return href
}

// compressedFields are the fields posthog-js gzips in events it marks
// "cv":"2024-10": a full snapshot's data, and a mutation's or style sheet
// rule's texts, attributes, removes and adds.
var compressedFields = []string{"texts", "attributes", "removes", "adds"}

// expand turns an event posthog-js compressed back into a plain rrweb
// event: each compressed field is a string whose characters are the bytes
// of a gzip stream (latin-1), holding the field's JSON. The event is
// written anew with the fields' JSON in their place and without "cv".
func (d *decoder) expand(body []byte, it snapshotItem, i, j int) ([]byte, error) {
	if string(it.cv.of(body)) != `"2024-10"` {
		return nil, badRequest("bad_compressed_event", "event %d item %d: unknown compression version", i, j)
	}
	what := fmt.Sprintf("event %d item %d", i, j)
	if it.typ == 3 && (it.data.e == 0 || body[it.data.i] != '{') {
		return nil, badRequest("bad_compressed_event", "%s: data is not an object", what)
	}
	raw := it.raw.of(body)
	out := make([]byte, 0, 2*len(raw))
	err := rewriteObject(&out, raw, func(k, v []byte) ([]byte, bool, error) {
		switch string(k) {
		case "cv":
			return nil, false, nil
		case "data":
			switch it.typ {
			case 2: // FullSnapshot: data
				x, err := d.unzipField(v, what)
				return x, true, err
			case 3: // IncrementalSnapshot: fields of data
				var data []byte
				err := rewriteObject(&data, v, func(k, v []byte) ([]byte, bool, error) {
					if !slices.Contains(compressedFields, string(k)) {
						return v, true, nil
					}
					x, err := d.unzipField(v, what)
					return x, true, err
				})
				return data, true, err
			}
		}
		return v, true, nil
	})
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		return nil, badRequest("bad_json", "%s is not valid JSON", what)
	}
	return out, nil
}

// rewriteObject appends the object o to out with each member's value
// replaced by what fn returns (dropped when keep is false).
func rewriteObject(out *[]byte, o []byte, fn func(k, v []byte) (nv []byte, keep bool, err error)) error {
	*out = append(*out, '{')
	n := 0
	err := eachMember(o, func(k, v []byte) error {
		nv, keep, err := fn(k, v)
		if err != nil || !keep {
			return err
		}
		if n++; n > 1 {
			*out = append(*out, ',')
		}
		*out = append(*out, '"')
		*out = append(*out, k...)
		*out = append(*out, '"', ':')
		*out = append(*out, nv...)
		return nil
	})
	*out = append(*out, '}')
	return err
}

// unzipField decodes one compressed field; a field that is not a string
// was not compressed and is left as it is.
func (d *decoder) unzipField(v []byte, what string) ([]byte, error) {
	if len(v) == 0 || v[0] != '"' {
		return v, nil
	}
	if x, ok := d.fields[string(v)]; ok {
		// The same bytes expanded before: charge the budget again, as
		// the segment grows by as much.
		if d.budget -= int64(len(x)); d.budget < 0 {
			return nil, errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large", "request decompresses to more than %d bytes", d.s.cfg.MaxDecompressed)
		}
		return x, nil
	}
	// The string is latin-1: every character is one byte of the stream.
	b, ok := latin1Bytes(v, make([]byte, 0, len(v)))
	if !ok {
		return nil, badRequest("bad_compressed_event", "%s: compressed field is not latin-1", what)
	}
	raw, err := d.gunzip(b, what)
	if err != nil {
		return nil, err
	}
	x, err := oneValue(raw)
	if err != nil {
		return nil, badRequest("bad_json", "%s (decompressed) is not valid JSON", what)
	}
	if len(v) <= maxMemoField && len(d.fields) < maxMemoFields {
		if d.fields == nil {
			d.fields = make(map[string][]byte)
		}
		d.fields[string(v)] = x
	}
	return x, nil
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
