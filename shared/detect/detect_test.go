package detect

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

const t0 = 1_700_000_000_000

// ev builds one rrweb event.
func ev(typ int, ts int64, data any) map[string]any {
	return map[string]any{"type": typ, "timestamp": ts, "data": data}
}

func meta(ts int64, href string) map[string]any { return ev(4, ts, map[string]any{"href": href}) }

func clickOn(ts int64, id int) map[string]any {
	return ev(3, ts, map[string]any{"source": 2, "type": 2, "id": id, "x": 1, "y": 1})
}

func mouseDown(ts int64, id int) map[string]any {
	return ev(3, ts, map[string]any{"source": 2, "type": 1, "id": id})
}

func mutation(ts int64) map[string]any {
	return ev(3, ts, map[string]any{"source": 0, "texts": []any{}, "attributes": []any{}, "removes": []any{}, "adds": []any{}})
}

func tick(ts int64) map[string]any {
	return ev(3, ts, map[string]any{"source": 1, "positions": []any{}})
}

func consoleError(ts int64, msg string) map[string]any {
	return ev(6, ts, map[string]any{"plugin": "rrweb/console@1",
		"payload": map[string]any{"level": "error", "payload": []any{msg}, "trace": []any{}}})
}

func consoleLog(ts int64, msg string) map[string]any {
	return ev(6, ts, map[string]any{"plugin": "rrweb/console@1",
		"payload": map[string]any{"level": "log", "payload": []any{msg}}})
}

func network(ts int64, reqs ...map[string]any) map[string]any {
	return ev(6, ts, map[string]any{"plugin": "rrweb/network@1", "payload": map[string]any{"requests": reqs}})
}

func sentrySpan(ts int64, op, url string, status int, seconds float64) map[string]any {
	return ev(5, ts, map[string]any{"tag": "performanceSpan", "payload": map[string]any{
		"op": op, "description": url, "startTimestamp": 1700000000.0, "endTimestamp": 1700000000.0 + seconds,
		"data": map[string]any{"method": "POST", "statusCode": status}}})
}

// snapshot is a full snapshot of a page whose body holds a form with a
// buy button (id 10), an input (11) and a div (12) with a generated class.
func snapshot(ts int64) map[string]any {
	el := func(id int, tag string, attrs map[string]any, kids ...any) map[string]any {
		return map[string]any{"type": 2, "id": id, "tagName": tag, "attributes": attrs, "childNodes": kids}
	}
	doc := map[string]any{"type": 0, "id": 1, "childNodes": []any{
		el(2, "html", map[string]any{},
			el(3, "body", map[string]any{},
				el(4, "form", map[string]any{"class": "css-1a2b checkout"},
					el(10, "button", map[string]any{"class": "primary"}),
					el(11, "input", map[string]any{"id": "qty"}),
					el(12, "div", map[string]any{"class": "x-123"}),
				),
				el(5, "nav", map[string]any{"id": "menu"},
					el(6, "a", map[string]any{}),
				),
			)),
	}}
	return ev(2, ts, map[string]any{"node": doc, "initialOffset": map[string]any{"top": 0, "left": 0}})
}

func events(t *testing.T, evs ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type got struct {
	Kind   string
	TS     int64
	Target string
	Page   string
	Count  int
	Req    string
	Msg    string
}

func summarize(occs []Occurrence) []got {
	var out []got
	for _, o := range occs {
		out = append(out, got{o.Kind, o.TS, o.Details.Target, o.Details.Page, o.Details.Count, o.Details.Request, o.Details.Message})
	}
	return out
}

func TestDetect(t *testing.T) {
	const page = "https://shop.example/orders/12345/checkout?x=1"
	tests := []struct {
		name   string
		events []map[string]any
		want   []got
	}{
		{
			name: "dead button clicked five times: one rage click, five dead clicks",
			events: []map[string]any{meta(t0, page), snapshot(t0 + 1),
				clickOn(t0+100, 10), clickOn(t0+200, 10), clickOn(t0+300, 10), clickOn(t0+400, 10), clickOn(t0+500, 10),
				tick(t0 + 3000)},
			want: []got{
				{DeadClick, t0 + 100, "form.checkout > button.primary", "/orders/{n}/checkout", 0, "", ""},
				{DeadClick, t0 + 200, "form.checkout > button.primary", "/orders/{n}/checkout", 0, "", ""},
				{DeadClick, t0 + 300, "form.checkout > button.primary", "/orders/{n}/checkout", 0, "", ""},
				{RageClick, t0 + 300, "form.checkout > button.primary", "/orders/{n}/checkout", 5, "", ""},
				{DeadClick, t0 + 400, "form.checkout > button.primary", "/orders/{n}/checkout", 0, "", ""},
				{DeadClick, t0 + 500, "form.checkout > button.primary", "/orders/{n}/checkout", 0, "", ""},
			},
		},
		{
			name: "clicks answered by mutations: nothing",
			events: []map[string]any{meta(t0, page), snapshot(t0 + 1),
				clickOn(t0+100, 10), mutation(t0 + 150), clickOn(t0+2000, 10), mutation(t0 + 2999), tick(t0 + 5000)},
		},
		{
			name: "navigation answers a click; a mouse-down does not count as a click",
			events: []map[string]any{meta(t0, page), snapshot(t0 + 1),
				mouseDown(t0+90, 6), clickOn(t0+100, 6), meta(t0+400, "https://shop.example/orders"), tick(t0 + 5000)},
		},
		{
			name: "three clicks spread over more than a second: no rage click; a click on an input is not dead",
			events: []map[string]any{snapshot(t0),
				clickOn(t0+100, 11), clickOn(t0+700, 11), clickOn(t0+1300, 11), tick(t0 + 5000)},
		},
		{
			name:   "a click too close to the segment's end is not judged; no snapshot names the node by id",
			events: []map[string]any{clickOn(t0, 77), tick(t0 + 1500), clickOn(t0+1000, 78)},
			want:   []got{{DeadClick, t0, "node:77", "", 0, "", ""}},
		},
		{
			name:   "a node with an id ends the selector path; generated classes are skipped",
			events: []map[string]any{snapshot(t0), clickOn(t0+10, 6), clickOn(t0+20, 12), tick(t0 + 2000)},
			want: []got{
				{DeadClick, t0 + 10, "nav#menu > a", "", 0, "", ""},
				{DeadClick, t0 + 20, "form.checkout > div", "", 0, "", ""},
			},
		},
		{
			name: "console errors: a burst of three within five seconds is one occurrence",
			events: []map[string]any{meta(t0, page),
				consoleError(t0+100, `TypeError: cannot read "total" of undefined at line 42`),
				consoleLog(t0+200, "fine"),
				consoleError(t0+300, `"other"`), consoleError(t0+4000, "third"), consoleError(t0+4100, "fourth"),
				consoleError(t0+60_000, "late"), consoleError(t0+60_100, "late")},
			want: []got{{ConsoleErrors, t0 + 4000, "", "/orders/{n}/checkout", 4, "",
				`TypeError: cannot read "…" of undefined at line {n}`}},
		},
		{
			name: "network plugin: 500 and 0 fail, 404 does not, 4 s is slow",
			events: []map[string]any{meta(t0, page), network(t0+100,
				map[string]any{"name": "https://api.example/v1/carts/77/items?q=1", "method": "post", "status": 500, "startTime": 10.0, "endTime": 60.0},
				map[string]any{"name": "https://api.example/v1/users/0b9e7a10-0000-4000-8000-000000000001", "method": "GET", "status": 0, "startTime": 0.0, "endTime": 1.0},
				map[string]any{"name": "https://api.example/v1/missing", "method": "GET", "status": 404, "startTime": 0.0, "endTime": 1.0},
				map[string]any{"name": "https://cdn.example/a.js", "startTime": 0.0, "endTime": 4000.0},
			)},
			want: []got{
				{FailedRequest, t0 + 100, "", "/orders/{n}/checkout", 0, "POST api.example/v1/carts/{n}/items", ""},
				{FailedRequest, t0 + 100, "", "/orders/{n}/checkout", 0, "GET api.example/v1/users/{uuid}", ""},
				{SlowRequest, t0 + 100, "", "/orders/{n}/checkout", 0, "GET cdn.example/a.js", ""},
			},
		},
		{
			name: "sentry performance spans",
			events: []map[string]any{
				sentrySpan(t0+10, "resource.fetch", "https://api.example/pay/abcdef0123456789abcd", 503, 0.2),
				sentrySpan(t0+20, "resource.xhr", "https://api.example/slow", 200, 3.5),
				sentrySpan(t0+30, "navigation.navigate", "https://shop.example/", 500, 9),
			},
			want: []got{
				{FailedRequest, t0 + 10, "", "", 0, "POST api.example/pay/{id}", ""},
				{SlowRequest, t0 + 20, "", "", 0, "POST api.example/slow", ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			occs, err := Detect(events(t, tc.events...), Rules{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(occs)); diff != "" {
				t.Errorf("occurrences (-want +got):\n%s", diff)
			}
			// The same through a Stream, with keys in encoding/json's
			// order (every event parsed) and in rrweb's (the fast path).
			for _, raw := range [][]byte{events(t, tc.events...), rrwebLayout(t, tc.events...)} {
				occs, err := stream(t, raw, Rules{}, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, summarize(occs)); diff != "" {
					t.Errorf("Stream over %.40s...: occurrences (-want +got):\n%s", raw, diff)
				}
			}
		})
	}
}

// TestFingerprints: the same interaction in two replays (other node ids
// and query strings, same page template and selector) has the same
// fingerprints; another target or page does not.
func TestFingerprints(t *testing.T) {
	run := func(href string, shift int64) []Occurrence {
		occs, err := Detect(events(t, meta(t0+shift, href), snapshot(t0+shift),
			clickOn(t0+shift+10, 10), clickOn(t0+shift+20, 10), clickOn(t0+shift+30, 10), tick(t0+shift+5000)), Rules{}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return occs
	}
	a := run("https://shop.example/orders/1/checkout", 0)
	b := run("https://shop.example/orders/999/checkout?utm=x", 86_400_000)
	other := run("https://shop.example/cart", 0)
	if len(a) != 4 || len(b) != 4 {
		t.Fatalf("occurrences: %d and %d, want 4 each", len(a), len(b))
	}
	for i := range a {
		if a[i].EdgeFP != b[i].EdgeFP || a[i].FinalFP != b[i].FinalFP {
			t.Errorf("occurrence %d: fingerprints differ across replays of one interaction", i)
		}
		if a[i].FinalFP == other[i].FinalFP {
			t.Errorf("occurrence %d: another page has the same final fingerprint", i)
		}
		if !strings.HasPrefix(a[i].FinalFP, "v1:") {
			t.Errorf("final fingerprint %q lacks its rule version", a[i].FinalFP)
		}
		// Recomputable from the stored details alone.
		var d Details
		if err := json.Unmarshal(a[i].Details.JSON(), &d); err != nil {
			t.Fatal(err)
		}
		if FinalFingerprint(a[i].Kind, d) != a[i].FinalFP {
			t.Errorf("final fingerprint not recomputable from details")
		}
	}
	// Console bursts: one edge fingerprint for a page, a final one per message.
	burst := func(msg string) Occurrence {
		occs, err := Detect(events(t, meta(t0, "https://x.example/a"), consoleError(t0+1, msg+" 1"),
			consoleError(t0+2, msg+" 2"), consoleError(t0+3, msg+" 3")), Rules{}, Limits{})
		if err != nil || len(occs) != 1 {
			t.Fatalf("burst: %v %v", occs, err)
		}
		return occs[0]
	}
	x, y := burst("boom"), burst("bang")
	if x.EdgeFP != y.EdgeFP || x.FinalFP == y.FinalFP {
		t.Errorf("console bursts: edge %v final %v; want same edge, different final", x.EdgeFP == y.EdgeFP, x.FinalFP == y.FinalFP)
	}
}

// TestDetectBounds feeds adversarial shapes: work and output stay bounded
// and nothing panics.
func TestDetectBounds(t *testing.T) {
	var many []map[string]any
	for i := range 50_000 {
		many = append(many, clickOn(t0+int64(i)*2000, i))
	}
	many = append(many, tick(t0+200_000_000))
	occs, err := Detect(events(t, many...), Rules{}, Limits{MaxOccurrences: 50})
	if err != nil || len(occs) != 50 {
		t.Errorf("50,000 dead clicks: %d occurrences, %v; want the cap, 50", len(occs), err)
	}
	if occs, _ := Detect(events(t, many...), Rules{}, Limits{MaxEvents: 10}); len(occs) != 9 {
		t.Errorf("MaxEvents 10: %d occurrences, want 9 (the tenth click is the last event scanned)", len(occs))
	}
	// Nested snapshots: 140 levels parse and the selector stays 5 levels;
	// 400 levels are past the parser's limit, an error that quotes no input.
	nested := func(levels int) []byte {
		deep := `{"type":2,"id":1,"tagName":"div","childNodes":[]}`
		for i := 2; i < levels; i++ {
			deep = fmt.Sprintf(`{"type":2,"id":%d,"tagName":"div","attributes":{"class":"c"},"childNodes":[%s]}`, i, deep)
		}
		return []byte(fmt.Sprintf(`[{"type":2,"timestamp":%d,"data":{"node":%s}},{"type":3,"timestamp":%d,"data":{"source":2,"type":2,"id":1}},{"type":3,"timestamp":%d,"data":{"source":1}}]`,
			t0, deep, t0+1, t0+5000))
	}
	occs, err = Detect(nested(140), Rules{}, Limits{})
	if err != nil || len(occs) != 1 || occs[0].Details.Target != "div.c > div.c > div.c > div.c > div" {
		t.Errorf("140 levels: %+v, %v", occs, err)
	}
	if _, err := Detect(nested(400), Rules{}, Limits{}); err == nil || strings.Contains(err.Error(), "div") {
		t.Errorf("400 levels: %v, want an error that quotes no input", err)
	}
	// Over the input cap: not scanned at all.
	if occs, err := Detect(events(t, many...), Rules{}, Limits{MaxInput: 1000}); err != nil || occs != nil {
		t.Errorf("over MaxInput: %v, %v", occs, err)
	}
	// Odd shapes: wrong types everywhere.
	for _, raw := range []string{`[]`, `[1,"x",null,{}]`, `[{"type":"3","data":[]}]`, `[{"type":3,"data":{"source":2,"type":2,"id":"x"}}]`,
		`[{"type":6,"data":{"plugin":"rrweb/network@1","payload":{"requests":{"a":1}}}}]`, `[{"type":2,"data":{"node":{"childNodes":7}}}]`} {
		if _, err := Detect([]byte(raw), Rules{}, Limits{}); err != nil {
			t.Errorf("Detect(%s): %v", raw, err)
		}
	}
	if _, err := Detect([]byte(`{"not":"array"}`), Rules{}, Limits{}); err == nil {
		t.Error("an object is not an event array")
	}
}

// stream runs a Stream in the validator's pass over raw, as Pack does.
func stream(t testing.TB, raw []byte, rules Rules, lim Limits) ([]Occurrence, error) {
	t.Helper()
	st := NewStream(rules, lim)
	hook := &segment.EventHook{
		OnEvent:  func(m segment.EventMeta) { st.Event(m.Type, m.HasType, m.Timestamp, m.Raw) },
		RawTypes: RawTypes,
		MaxRaw:   16 << 20,
	}
	if _, err := segment.ValidateEvents(raw, segment.Limits{}, hook); err != nil {
		t.Fatal(err)
	}
	return st.Finish()
}

// rrwebLayout writes events as rrweb does: type, then data (its source
// first), then timestamp.
func rrwebLayout(t *testing.T, evs ...map[string]any) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		data, _ := e["data"].(map[string]any)
		fmt.Fprintf(&b, `{"type":%d,"data":{`, e["type"])
		first := true
		if src, ok := data["source"]; ok {
			fmt.Fprintf(&b, `"source":%d`, src)
			first = false
		}
		for k, v := range data {
			if k == "source" {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			kb, _ := json.Marshal(k)
			vb, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s:%s", kb, vb)
		}
		fmt.Fprintf(&b, `},"timestamp":%d}`, e["timestamp"])
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// TestStreamMatchesDetect: on generated recordings (rrweb's layout, so
// most incremental events take the fast path) and form sessions (clicks,
// mutations adding nodes), a Stream in the validator's pass finds exactly
// what Detect finds.
func TestStreamMatchesDetect(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var segs [][]byte
	segs = append(segs, workload.Recording(rng, 6, 30_000, 60_000, t0)...)
	segs = append(segs, workload.FormSession(workload.DefaultPII(), t0)...)
	for i := range 6 {
		segs = append(segs, workload.Segment(rng, i, t0, 40_000))
	}
	// Form sessions with their clicks repeated: rage and dead clicks whose
	// targets are named from the snapshot and from a mutation's adds.
	for _, seg := range workload.FormSession(workload.DefaultPII(), t0) {
		var evs []json.RawMessage
		if err := json.Unmarshal(seg, &evs); err != nil {
			t.Fatal(err)
		}
		var out []json.RawMessage
		for _, e := range evs {
			out = append(out, e)
			if strings.Contains(string(e), `"source":2,"type":2`) {
				out = append(out, e, e, e)
			}
		}
		b, _ := json.Marshal(out)
		segs = append(segs, b)
	}
	found := 0
	for i, seg := range segs {
		want, err := Detect(seg, Rules{}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := stream(t, seg, Rules{}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("segment %d: Stream differs from Detect (-Detect +Stream):\n%s", i, diff)
		}
		found += len(got)
	}
	if found == 0 {
		t.Error("no occurrence in any segment: the comparison shows nothing")
	}
}

// TestStreamBounds: a Stream fails as Detect does past the parser's depth,
// and finds nothing in a segment it could not see whole.
func TestStreamBounds(t *testing.T) {
	deep := `{"type":2,"id":1,"tagName":"div","childNodes":[]}`
	for i := 2; i < 400; i++ {
		deep = fmt.Sprintf(`{"type":2,"id":%d,"tagName":"div","childNodes":[%s]}`, i, deep)
	}
	raw := fmt.Sprintf(`[{"type":2,"timestamp":%d,"data":{"node":%s}},{"type":3,"timestamp":%d,"data":{"source":2,"type":2,"id":1}}]`, t0, deep, t0+1)
	if _, err := stream(t, []byte(raw), Rules{}, Limits{}); err == nil {
		t.Error("400 levels: no error")
	}
	clicks := events(t, meta(t0, "https://x.example/a"), snapshot(t0), clickOn(t0+10, 10), clickOn(t0+20, 10), clickOn(t0+30, 10), tick(t0+5000))
	if occs, err := stream(t, clicks, Rules{}, Limits{}); err != nil || len(occs) == 0 {
		t.Fatalf("rage clicks: %v, %v", occs, err)
	}
	// The snapshot alone is over MaxInput: nothing, rather than clicks on
	// unnamed nodes.
	if occs, err := stream(t, clicks, Rules{}, Limits{MaxInput: 300}); err != nil || occs != nil {
		t.Errorf("nodes over MaxInput: %v, %v; want none", occs, err)
	}
	// An event the hook handed over without its bytes (over MaxRaw).
	st := NewStream(Rules{}, Limits{})
	st.Event(2, true, t0, nil)
	if occs, err := st.Finish(); err != nil || occs != nil {
		t.Errorf("event without bytes: %v, %v; want none", occs, err)
	}
}

func TestLeadingSource(t *testing.T) {
	for raw, want := range map[string]int{
		`{"type":3,"data":{"source":1,"positions":[]},"timestamp":1}`: 1,
		`{"type":3,"data":{"source":12}}`:                             12,
		`{"type":3,"data":{"source":0,"adds":[]}}`:                    0,
		`{"type":3,"data":{"source":2.5}}`:                            -1,
		`{"type":3,"data":{"source":-1}}`:                             -1,
		`{"type":3,"data":{"source":"1"}}`:                            -1,
		`{"data":{"source":1},"type":3}`:                              -1,
		`{"type":3,"data":{"source":1e0}}`:                            -1,
		`{"type":3,"data":{"source":12345}}`:                          -1,
	} {
		src, ok := leadingSource([]byte(raw))
		if !ok {
			src = -1
		}
		if src != want {
			t.Errorf("leadingSource(%s) = %d, %v; want %d", raw, src, ok, want)
		}
	}
}

func TestAddsNothing(t *testing.T) {
	for raw, want := range map[string]bool{
		`{"type":3,"data":{"source":0,"texts":[],"adds":[]}}`:                                 true,
		`{"type":3,"data":{"source":0,"adds":[{"parentId":1,"node":{}}]}}`:                    false,
		`{"type":3,"data":{"source":0,"adds":[],"adds":[{"node":{}}]}}`:                       false,
		`{"type":3,"data":{"source":0,"texts":[{"id":1,"value":"\"adds\":[]"}]}}`:             false,
		`{"type":3,"data":{"source":0,"attributes":[{"attributes":{"adds":"x"}}],"adds":[]}}`: false,
	} {
		if got := addsNothing([]byte(raw)); got != want {
			t.Errorf("addsNothing(%s) = %v, want %v", raw, got, want)
		}
	}
}

func TestTemplates(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example/":                              "/",
		"https://a.example":                               "/",
		"https://a.example/u/42/posts/7?x=1#f":            "/u/{n}/posts/{n}",
		"/p/0b9e7a10-0000-4000-8000-000000000001/edit":    "/p/{uuid}/edit",
		"https://a.example/s/deadbeefdeadbeef":            "/s/{id}",
		"https://a.example/t/abcdefghijklmnopqrstuvwxyz1": "/t/{id}",
		"https://a.example/v2/items":                      "/v2/items",
		"%%%":                                             "",
	} {
		if got := PathTemplate(in); got != want {
			t.Errorf("PathTemplate(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MessageTemplate("Error 404 at 'x'\nstack"); got != `Error {n} at "…"` {
		t.Errorf("MessageTemplate = %q", got)
	}
}

// BenchmarkDetect measures Pack's validation of a generated gzip rrweb
// segment of about 200 KB alone, followed by detection as Pack ran it
// before (a second decode, then Detect), and with detection in the
// validator's pass (a Stream on its event hook), as Pack runs it now.
// Compare the ns/op: detection's share of Pack's CPU per segment.
func BenchmarkDetect(b *testing.B) {
	raw := workload.Segment(rand.New(rand.NewPCG(1, 2)), 1, t0, 200_000)
	gz := workload.Gzip(raw)
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"validate", func() error { _, err := segment.Validate(gz, segment.Limits{}); return err }},
		{"validate+decode+Detect", func() error {
			info, err := segment.Validate(gz, segment.Limits{})
			if err != nil {
				return err
			}
			plain, err := segment.Decode(info.Encoding, gz, 0)
			if err != nil {
				return err
			}
			_, err = Detect(plain, Rules{}, Limits{})
			return err
		}},
		{"validate+Stream", func() error {
			st := NewStream(Rules{}, Limits{})
			hook := &segment.EventHook{
				OnEvent:  func(m segment.EventMeta) { st.Event(m.Type, m.HasType, m.Timestamp, m.Raw) },
				RawTypes: RawTypes, MaxRaw: 16 << 20,
			}
			if _, err := segment.ValidateEvents(gz, segment.Limits{}, hook); err != nil {
				return err
			}
			_, err := st.Finish()
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
