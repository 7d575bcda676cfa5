package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// recording answers GET /v1/projects/{project}/replays/{replay}/recording.
//
// Status and headers wait for the first segment, so that a failure there
// still gets its proper status. Once the body has started, a failure cuts
// the connection instead of ending the body: the client then sees a broken
// transfer and an unterminated JSON document, never a short one that looks
// complete.
func (s *Server) recording(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	project, replay, err := s.authorize(r)
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	q, err := parseRecordingQuery(r.URL.Query())
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	var win store.Window
	if q.window != nil {
		win = store.Window{FromTS: q.window.from, ToTS: q.window.to, Chain: q.typ == segment.DefaultType && !q.window.noChain}
	}
	for attempt := 1; ; attempt++ {
		var (
			meta *store.Replay
			rows []store.Segment
			info store.WindowInfo
			trim *trimmer
		)
		if q.window == nil {
			meta, rows, err = s.db.ReplaySegmentsPage(r.Context(), project, replay, q.typ, q.from, q.to, s.cfg.RowPage)
		} else {
			meta, rows, info, err = s.db.ReplayWindow(r.Context(), project, replay, q.typ, win)
			trim = &trimmer{w: q.window, chain: win.Chain, findChain: win.Chain && info.Start >= 0}
		}
		if err != nil {
			api.WriteError(w, r, err, nil)
			return
		}
		if at, gone := meta.Shredded(); gone {
			writeGone(w, r, at)
			return
		}

		out := &framer{ndjson: q.ndjson}
		h := w.Header()
		h.Set("Content-Type", out.contentType())
		api.NoStore(w)
		if q.window != nil {
			h.Set("Access-Control-Expose-Headers", "Link")
			from, to, ok := q.window.next(info)
			if ok {
				h.Set("Link", nextLink(r.URL.Path, r.URL.Query(), from, to))
			}
			if q.ndjson {
				out.trailer = nextLine(from, ok)
			}
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}

		st := &streamState{start: start}
		err = s.stream(r, w, project, replay, q, rows, out, trim, st)
		if errors.Is(err, errNoChain) && !st.started {
			// The snapshot segment's snapshots all come after from_ts:
			// start from the one before it, or at last from the beginning.
			win.Before = info.Start
			if attempt >= maxChainAttempts-1 {
				win.Before = -1
			}
			continue
		}
		s.metrics.Recording(r.Context(), st.segments, st.stats.Reads, st.stats.BytesRead, st.ttfb)
		gone := r.Context().Err() != nil || errors.Is(err, errWrite) // the client left
		if err == nil || gone || st.started {
			logStream(r, project, replay, st.segments, st.stats, st.ttfb, time.Since(start), err, gone)
		}
		switch {
		case err == nil:
		case st.started:
			abort(w)
		case !gone:
			api.WriteError(w, r, err, nil) // logs it
		}
		return
	}
}

// nextLine is the last line of a window read in NDJSON: where the next
// window starts (null at the end of the replay).
func nextLine(from int64, ok bool) []byte {
	if !ok {
		return []byte(`{"next_from_ts":null}` + "\n")
	}
	return []byte(`{"next_from_ts":` + strconv.FormatInt(from, 10) + "}\n")
}

// streamState is what stream reports about one response.
type streamState struct {
	start    time.Time
	started  bool // the body has begun
	ttfb     time.Duration
	segments int
	stats    fetchStats
}

// stream writes the replay's segments, from the first page of rows on,
// reading the next page (keyset: after the last segment id) as each ends.
// A time window's rows are one page, each segment cut to the window by
// trim.
func (s *Server) stream(r *http.Request, w http.ResponseWriter, project int64, replay uuid.UUID, q recordingQuery, rows []store.Segment, out *framer, trim *trimmer, st *streamState) error {
	rc := http.NewResponseController(w)
	begin := func() error {
		st.started, st.ttfb = true, time.Since(st.start)
		w.WriteHeader(http.StatusOK)
		return written(out.begin(w))
	}
	for {
		// A page of rows is held until its last segment is written: it
		// counts in the lease the fetcher claims from the instance's
		// budget.
		f, err := newFetcher(r.Context(), s.cfg, s.blobs, s.keks, s.budget, rows, int64(len(rows))*rowBytes)
		if err != nil {
			return err
		}
		err = s.streamPage(w, rc, f, rows, out, trim, st, begin)
		fs := f.stop()
		st.stats.Reads += fs.Reads
		st.stats.BytesRead += fs.BytesRead
		st.stats.PeakHeld = max(st.stats.PeakHeld, fs.PeakHeld)
		st.stats.Forced += fs.Forced
		if err != nil {
			return err
		}
		if trim != nil || len(rows) < s.cfg.RowPage {
			break
		}
		next := rows[len(rows)-1].ID.SegmentID + 1
		meta, more, err := s.db.ReplaySegmentsPage(r.Context(), project, replay, q.typ, next, q.to, s.cfg.RowPage)
		if err != nil {
			return fmt.Errorf("segments from %d: %w", next, err)
		}
		if _, gone := meta.Shredded(); gone {
			// Shredded mid-stream: the rest must not be served, and the
			// body must not look complete.
			return fmt.Errorf("%w: replay shredded while it was being read", derrors.Gone)
		}
		if len(more) == 0 {
			break
		}
		rows = more
	}
	if !st.started {
		if err := begin(); err != nil {
			return err
		}
	}
	return written(out.end(w))
}

// streamPage writes the segments of one page of rows as f delivers them.
func (s *Server) streamPage(w http.ResponseWriter, rc *http.ResponseController, f *fetcher, rows []store.Segment, out *framer, trim *trimmer, st *streamState, begin func() error) error {
	for i := range rows {
		doc, err := f.next(i)
		if err == nil && trim != nil {
			doc, err = trim.trim(i, &rows[i], doc)
		}
		if err != nil {
			return err
		}
		if !st.started {
			if err := begin(); err != nil {
				return err
			}
		}
		st.segments++
		if err := out.segment(w, doc); err != nil {
			return fmt.Errorf("segment %s: %w", rows[i].ID, err)
		}
		// Flush each segment: the player can start on the first while
		// later ones are still being read.
		if err := written(rc.Flush()); err != nil {
			return err
		}
	}
	return nil
}

// errWrite marks a failure to write the response: the client has gone.
var errWrite = errors.New("write response")

func written(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// abort cuts the response so that the client cannot take the body for
// complete: the connection is closed without the chunked encoding's final
// chunk. Where the connection cannot be taken over (HTTP/2), the panic
// makes net/http reset the stream.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// recordingQuery is the parsed query string of a recording request.
type recordingQuery struct {
	typ      string
	from, to int // inclusive segment range
	ndjson   bool
	window   *windowQuery // nil: the whole segment range
}

// parseRecordingQuery reads ?segments=A-B|A-|A, ?type=, ?format= and the
// time window ?from_ts=&to_ts= (which excludes segments=).
func parseRecordingQuery(v url.Values) (recordingQuery, error) {
	q := recordingQuery{typ: segment.DefaultType, from: 0, to: math.MaxInt32}
	for name, vals := range v {
		switch name {
		case "segments", "type", "format", "from_ts", "to_ts", "chain":
			if len(vals) > 1 {
				return q, fmt.Errorf("%w: %s given %d times", derrors.InvalidArgument, name, len(vals))
			}
		}
	}
	if t := v.Get("type"); t != "" {
		if !segment.ValidType(t) {
			return q, fmt.Errorf("%w: unknown type %q (want one of %s)", derrors.InvalidArgument, t, strings.Join(segment.Types, ", "))
		}
		q.typ = t
	}
	switch f := v.Get("format"); f {
	case "", "json":
	case "ndjson":
		q.ndjson = true
	default:
		return q, fmt.Errorf("%w: unknown format %q (want json or ndjson)", derrors.InvalidArgument, f)
	}
	var err error
	if q.window, err = parseWindow(v); err != nil {
		return q, err
	}
	if _, ok := v["segments"]; ok && q.window != nil {
		return q, fmt.Errorf("%w: segments= and a time window (from_ts, to_ts) exclude each other", derrors.InvalidArgument)
	}
	if s, ok := v["segments"]; ok {
		var err error
		if q.from, q.to, err = parseSegments(s[0]); err != nil {
			return q, err
		}
	}
	return q, nil
}

// parseSegments parses "A-B", "A-" or "A": inclusive, A <= B.
func parseSegments(s string) (from, to int, err error) {
	bad := func() (int, int, error) {
		return 0, 0, fmt.Errorf("%w: segments=%q must be A-B, A- or A with 0 <= A <= B", derrors.InvalidArgument, s)
	}
	a, b, dash := strings.Cut(s, "-")
	from, ok := segmentNumber(a)
	if !ok {
		return bad()
	}
	switch {
	case !dash:
		to = from
	case b == "":
		to = math.MaxInt32
	default:
		if to, ok = segmentNumber(b); !ok || to < from {
			return bad()
		}
	}
	return from, to, nil
}

// segmentNumber parses a segment id: decimal digits only, no sign.
func segmentNumber(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// framer writes segments as one JSON array of all their events, or as one
// segment array per line (NDJSON).
type framer struct {
	ndjson  bool
	trailer []byte // NDJSON only: a last line after the segments
	events  bool   // an event has been written (JSON: the next needs a comma)
	buf     bytes.Buffer
}

func (f *framer) contentType() string {
	if f.ndjson {
		return "application/x-ndjson"
	}
	return "application/json"
}

func (f *framer) begin(w io.Writer) error {
	if f.ndjson {
		return nil
	}
	_, err := io.WriteString(w, "[")
	return err
}

func (f *framer) end(w io.Writer) error {
	if f.ndjson {
		_, err := w.Write(f.trailer)
		return err
	}
	_, err := io.WriteString(w, "]\n")
	return err
}

// segment writes one segment's JSON array. The packer validated it as an
// array of event objects; the outer brackets are checked again here, as
// the framing depends on them.
func (f *framer) segment(w io.Writer, doc []byte) error {
	doc = trimJSONSpace(doc)
	if len(doc) < 2 || doc[0] != '[' || doc[len(doc)-1] != ']' {
		return fmt.Errorf("stored segment is not a JSON array")
	}
	if f.ndjson {
		if bytes.ContainsAny(doc, "\r\n") {
			// Newlines may only be whitespace between tokens here (inside
			// strings they are escaped); one line per segment needs them
			// gone.
			f.buf.Reset()
			if err := json.Compact(&f.buf, doc); err != nil {
				return fmt.Errorf("compact segment: %w", err)
			}
			doc = f.buf.Bytes()
		}
		if _, err := w.Write(doc); err != nil {
			return written(err)
		}
		_, err := io.WriteString(w, "\n")
		return written(err)
	}
	inner := trimJSONSpace(doc[1 : len(doc)-1])
	if len(inner) == 0 {
		return nil // an empty segment adds no events, and no comma
	}
	if f.events {
		if _, err := io.WriteString(w, ","); err != nil {
			return written(err)
		}
	}
	f.events = true
	_, err := w.Write(inner)
	return written(err)
}

// trimJSONSpace trims the four whitespace characters of JSON.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
