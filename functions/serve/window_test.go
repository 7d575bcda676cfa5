package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
)

// windowStart is the first event of the replays windowReplay generates.
const windowStart = int64(1_700_000_000_000)

// windowReplay generates a recording shaped like rrweb's with checkouts:
// n segments of 30 s each with an event every second, a meta event and a
// full snapshot opening every tenth segment, a ten-minute gap (nothing
// recorded) before segment gapAt, and segment midSnap whose snapshot comes
// 10 s in, after incremental events. A few events carry their timestamp in
// seconds, as some SDKs send it.
func windowReplay(rng *rand.Rand, project int64, replay uuid.UUID, n, gapAt, midSnap int) []seg {
	segs := make([]seg, n)
	for i := range segs {
		base := windowStart + int64(i)*30_000
		if i >= gapAt {
			base += 600_000
		}
		var evs []string
		snapshot := func(ts int64) {
			evs = append(evs,
				fmt.Sprintf(`{"type":4,"data":{"href":"https://example.test/p%d","width":1280,"height":800},"timestamp":%d}`, i, ts),
				fmt.Sprintf(`{"type":2,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":3,"textContent":"seg %d","id":2}]}},"timestamp":%d}`, i, ts))
		}
		if i%10 == 0 {
			snapshot(base)
		}
		for k := int64(0); k < 30; k++ {
			ts := base + k*1000
			if i == midSnap && k == 10 {
				snapshot(ts)
			}
			if rng.IntN(20) == 0 && ts%1000 == 0 {
				evs = append(evs, fmt.Sprintf(`{"type":3,"data":{"source":1,"x":%d},"timestamp":%d}`, rng.IntN(999), ts/1000))
				continue
			}
			evs = append(evs, fmt.Sprintf(`{"type":3,"data":{"source":0,"texts":[{"id":2,"value":"%d/%d \"]}\""}]},"timestamp":%d}`, i, k, ts))
		}
		raw := []byte("[" + strings.Join(evs, ",") + "]")
		segs[i] = seg{project: project, replay: replay, id: i, raw: raw, payload: raw}
	}
	return segs
}

// consoleSlice generates console segments: one plugin event every 5 s.
func consoleSlice(project int64, replay uuid.UUID, n int) []seg {
	segs := make([]seg, n)
	for i := range segs {
		var evs []string
		for k := int64(0); k < 12; k++ {
			ts := windowStart + int64(i)*60_000 + k*5000
			evs = append(evs, fmt.Sprintf(`{"type":6,"data":{"plugin":"rrweb/console@1","payload":{"level":"log","payload":["%d"]}},"timestamp":%d}`, ts, ts))
		}
		raw := []byte("[" + strings.Join(evs, ",") + "]")
		segs[i] = seg{project: project, replay: replay, id: i, typ: "console", raw: raw, payload: raw}
	}
	return segs
}

// windowEvent is an event of a full read with what the window rule needs.
type windowEvent struct {
	json string // compacted
	typ  int64
	ts   int64 // the event's, or its segment's first when it has none
}

// fullRead reads the whole recording of typ as NDJSON and labels each event
// with its type and timestamp, parsed independently of Serve's scanner.
func fullRead(t *testing.T, e *env, project int64, replay uuid.UUID, typ string) []windowEvent {
	t.Helper()
	tok := token(t, project)
	body := readAll(t, get(t, recordingURL(e.url, project, replay, "format=ndjson&type="+typ), tok))
	lines := ndjsonSegments(t, body)
	_, rows, err := e.d.DB.ReplaySegments(t.Context(), project, replay, typ, 0, 1<<31-1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(lines) {
		t.Fatalf("%d lines for %d rows", len(lines), len(rows))
	}
	var out []windowEvent
	for i, line := range lines {
		for _, ev := range line {
			var f struct {
				Type      int64   `json:"type"`
				Timestamp float64 `json:"timestamp"`
			}
			if err := json.Unmarshal([]byte(ev), &f); err != nil {
				t.Fatal(err)
			}
			ts := int64(f.Timestamp)
			if f.Timestamp > 0 && f.Timestamp < 1e11 {
				ts = int64(f.Timestamp * 1000)
			}
			if ts == 0 {
				ts = rows[i].FirstTS
			}
			out = append(out, windowEvent{json: ev, typ: f.Type, ts: ts})
		}
	}
	return out
}

// filterWindow is the window rule applied to a full read (see window.go).
func filterWindow(all []windowEvent, from, to int64, chain bool) []string {
	out := []string{}
	if !chain {
		for _, ev := range all {
			if ev.ts >= from && ev.ts <= to {
				out = append(out, ev.json)
			}
		}
		return out
	}
	start := 0
	for i, ev := range all {
		if ev.typ == 2 && ev.ts <= from {
			start = i
			if i > 0 && all[i-1].typ == 4 {
				start = i - 1
			}
		}
	}
	for _, ev := range all[start:] {
		if ev.ts <= to {
			out = append(out, ev.json)
		}
	}
	return out
}

// TestWindow reads time windows of a recording and of a console slice and
// checks each against the same window cut out of a full read, in both
// formats, with the hint to the next window, and that only the segments
// the window needs were read.
func TestWindow(t *testing.T) {
	cfg := defaults()
	cfg.CoalesceGapBytes = 0 // every byte read belongs to a segment served
	e := newEnv(t, cfg)
	rng := rand.New(rand.NewPCG(3, 4))
	const project = 7
	replay := uuid.New()
	const n, gapAt, midSnap = 40, 20, 25
	segs := windowReplay(rng, project, replay, n, gapAt, midSnap)
	pack(t, e.d, 7, append(segs, consoleSlice(project, replay, 5)...))
	all := fullRead(t, e, project, replay, "recording")
	console := fullRead(t, e, project, replay, "console")
	if len(all) == 0 || len(console) != 60 {
		t.Fatalf("full reads: %d recording events, %d console events", len(all), len(console))
	}
	rows := segmentRows(t, e.d, project, replay)
	segStart := func(i int) int64 { return rows[i].FirstTS }
	last := rows[n-1].LastTS
	const open = int64(-1)

	for _, tc := range []struct {
		name     string
		typ      string
		from, to int64 // to == open: no to_ts
		// segments is the range of segments the read must touch (the
		// first is the snapshot segment; a fallback reads more).
		segments [2]int
		next     int64 // expected next_from_ts, 0 for none
		// reread is a segment read twice: the snapshot segment of a first
		// attempt whose snapshot came too late (-1: none).
		reread int
	}{
		{"at the start", "recording", windowStart, windowStart + 45_000, [2]int{0, 1}, windowStart + 45_001, -1},
		{"before the start", "recording", 0, windowStart - 1, [2]int{-1, -1}, windowStart, -1},
		{"overlapping the start", "recording", 0, windowStart + 5_000, [2]int{0, 0}, windowStart + 5_001, -1},
		{"mid segment", "recording", segStart(13) + 5_500, segStart(14) + 2_000, [2]int{10, 14}, segStart(14) + 2_001, -1},
		{"at a snapshot", "recording", segStart(10), segStart(10) + 10_000, [2]int{10, 10}, segStart(10) + 10_001, -1},
		{"just before a snapshot", "recording", segStart(10) - 1, segStart(10), [2]int{0, 10}, segStart(10) + 1, -1},
		{"in the gap", "recording", segStart(gapAt) - 300_000, segStart(gapAt) - 240_000, [2]int{10, gapAt - 1}, segStart(gapAt) - 239_999, -1},
		{"before a mid-segment snapshot", "recording", segStart(midSnap) + 3_000, segStart(midSnap) + 20_000, [2]int{20, midSnap}, segStart(midSnap) + 20_001, midSnap},
		{"after a mid-segment snapshot", "recording", segStart(midSnap) + 12_000, segStart(midSnap) + 20_000, [2]int{midSnap, midSnap}, segStart(midSnap) + 20_001, -1},
		{"at the end", "recording", last, open, [2]int{30, n - 1}, 0, -1},
		{"the last millisecond", "recording", last - 1000, last, [2]int{30, n - 1}, 0, -1},
		{"past the end", "recording", last + 3_600_000, last + 7_200_000, [2]int{30, n - 1}, 0, -1},
		{"from only", "recording", segStart(35), open, [2]int{30, n - 1}, 0, -1},
		{"to only", "recording", -1, segStart(2), [2]int{0, 2}, segStart(2) + 1, -1},
		{"console middle", "console", windowStart + 61_000, windowStart + 130_000, [2]int{1, 2}, windowStart + 130_001, -1},
		{"recording without the chain", "recording-nochain", segStart(13) + 5_500, segStart(14) + 2_000, [2]int{13, 14}, segStart(14) + 2_001, -1},
		{"console past the end", "console", windowStart + 1_000_000, windowStart + 2_000_000, [2]int{-1, -1}, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain := tc.typ == "recording"
			q := url.Values{"type": {tc.typ}}
			src := all
			if tc.typ == "recording-nochain" {
				tc.typ = "recording"
				q = url.Values{"type": {tc.typ}, "chain": {"0"}}
			} else if !chain {
				src = console
			}
			from, to := tc.from, tc.to
			if from >= 0 {
				q.Set("from_ts", strconv.FormatInt(from, 10))
			} else {
				from = 0
			}
			if to != open {
				q.Set("to_ts", strconv.FormatInt(to, 10))
			} else {
				to = 1<<63 - 1
			}
			want := filterWindow(src, from, to, chain)

			before := e.blobs.Counts()
			resp := get(t, recordingURL(e.url, project, replay, q.Encode()), token(t, project))
			link := resp.Header.Get("Link")
			body := readAll(t, resp)
			read := e.blobs.Counts().BytesRead - before.BytesRead
			got := []string{}
			if err := json.Unmarshal(body, &[]json.RawMessage{}); err != nil {
				t.Fatalf("body is not a JSON array: %v", err)
			}
			got = append(got, compactEvents(t, body)...)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("window (-filtered full read +window read):\n%s", diff)
			}

			// Only the window's segments were read.
			var need int64
			if tc.segments[0] >= 0 {
				var typRows []store.Segment
				_, typRows, err := e.d.DB.ReplaySegments(t.Context(), project, replay, tc.typ, tc.segments[0], tc.segments[1])
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range typRows {
					need += r.ByteStop - r.ByteStart
					if r.ID.SegmentID == tc.reread {
						need += r.ByteStop - r.ByteStart
					}
				}
			}
			if read != need {
				t.Errorf("read %d bytes; segments %d-%d hold %d", read, tc.segments[0], tc.segments[1], need)
			}

			wantLink := ""
			if tc.next != 0 {
				nq := url.Values{}
				for k, v := range q {
					nq[k] = v
				}
				nq.Set("from_ts", strconv.FormatInt(tc.next, 10))
				nq.Set("to_ts", strconv.FormatInt(tc.next+to-from, 10))
				wantLink = fmt.Sprintf(`<%s?%s>; rel="next"`, fmt.Sprintf("/v1/projects/%d/replays/%s/recording", project, replay), nq.Encode())
			}
			if link != wantLink {
				t.Errorf("Link = %q, want %q", link, wantLink)
			}

			// NDJSON: the same events, then the hint line.
			q.Set("format", "ndjson")
			nd := readAll(t, get(t, recordingURL(e.url, project, replay, q.Encode()), token(t, project)))
			lines := bytes.SplitAfter(bytes.TrimSuffix(nd, []byte("\n")), []byte("\n"))
			trailer := lines[len(lines)-1]
			var hint struct {
				Next *int64 `json:"next_from_ts"`
			}
			if err := json.Unmarshal(trailer, &hint); err != nil {
				t.Fatalf("last NDJSON line %q: %v", trailer, err)
			}
			if (hint.Next == nil) != (tc.next == 0) || hint.Next != nil && *hint.Next != tc.next {
				t.Errorf("next_from_ts = %s, want %d", trailer, tc.next)
			}
			gotND := []string{}
			for _, l := range ndjsonSegments(t, bytes.Join(lines[:len(lines)-1], nil)) {
				gotND = append(gotND, l...)
			}
			if diff := cmp.Diff(want, gotND); diff != "" {
				t.Errorf("NDJSON window (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWindowBadBounds: malformed, inverted and conflicting bounds are 400.
func TestWindowBadBounds(t *testing.T) {
	e := newEnv(t, defaults())
	replay := uuid.New()
	pack(t, e.d, 10, windowReplay(rand.New(rand.NewPCG(1, 1)), 1, replay, 2, 5, 5))
	for _, q := range []string{
		"from_ts=", "to_ts=", "from_ts=-1", "to_ts=-5", "from_ts=1.5", "from_ts=abc", "from_ts=%2B5",
		"from_ts=99999999999999999999", "from_ts=10&to_ts=9", "from_ts=1&from_ts=2", "to_ts=1&to_ts=2",
		"from_ts=1&to_ts=2&segments=0-1", "from_ts=0x10", "from_ts=1e3", "chain=0", "from_ts=1&chain=2",
		"from_ts=1&chain=0&chain=1",
	} {
		resp := get(t, recordingURL(e.url, 1, replay, q), token(t, 1))
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("?%s: status %d, want 400", q, resp.StatusCode)
		}
	}
	// Auth still comes first.
	resp := get(t, recordingURL(e.url, 1, replay, "from_ts=10&to_ts=9"), "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", resp.StatusCode)
	}
}
