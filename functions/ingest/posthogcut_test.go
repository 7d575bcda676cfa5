package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/workload"
)

// TestCutBatch cuts posthog-js bodies of every shape into sessions and
// compares each session's segment with what encoding/json reads from the
// body; bodies that are broken or name no session are refused with a code.
func TestCutBatch(t *testing.T) {
	sid := uuid.Must(uuid.NewV7()).String()
	sid2 := uuid.Must(uuid.NewV7()).String()
	ev := func(sid, token, data string) string {
		return fmt.Sprintf(`{"event":"$snapshot","properties":{"$session_id":%q,"$window_id":"w","token":%q,"$snapshot_data":%s}}`, sid, token, data)
	}
	two := `[{"type":4,"data":{"href":"http://a/x"},"timestamp":1700000000000},{"type":3,"data":{"source":2,"text":"a\"]}b\\"},"timestamp":1700000000001}]`
	full := `{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"p","childNodes":[{"type":3,"textContent":"Ada \u00e9 \\ \"x\""}]}]}},"timestamp":1700000000002}`
	cvFull := fmt.Sprintf(`{"type":2,"cv":"2024-10","data":%s,"timestamp":1700000000002}`,
		jsonLatin1(gzipBytes([]byte(`{"node":{"type":0,"childNodes":[]},"initialOffset":{"left":0,"top":0}}`))))
	cvMutation := fmt.Sprintf(`{"type":3,"cv":"2024-10","data":{"source":0,"texts":%s,"attributes":[],"removes":%s,"adds":%s},"timestamp":1700000000003}`,
		jsonLatin1(gzipBytes([]byte(`[{"id":5,"value":"hi"}]`))), jsonLatin1(gzipBytes([]byte(`[]`))),
		jsonLatin1(gzipBytes([]byte(`[{"parentId":1,"node":{"type":3,"textContent":"é\u0000\n","id":9}}]`))))
	tests := []struct {
		name  string
		body  string
		token string
		code  string
		want  map[string]string // session id -> its events as JSON
	}{
		{"array", "[" + ev(sid, "tok", two) + "]", "tok", "", map[string]string{sid: two}},
		{"white space", " \n[ " + ev(sid, "tok", two) + " ]\n ", "tok", "", map[string]string{sid: two}},
		{"batch wrapper", `{"api_key":"tok","batch":[` + ev(sid, "", two) + "]}", "tok", "", map[string]string{sid: two}},
		{"batch wrapper token after", `{"batch":[` + ev(sid, "", two) + `],"token":"tok"}`, "tok", "", map[string]string{sid: two}},
		{"one event", ev(sid, "tok", two), "tok", "", map[string]string{sid: two}},
		{"one event object data", ev(sid, "tok", full), "tok", "", map[string]string{sid: "[" + full + "]"}},
		{"two sessions and other events", "[" + ev(sid, "tok", two) + `,{"event":"$pageview","properties":{"token":"tok","x":[1,{"y":"]"}]}},` + ev(sid2, "tok", "["+full+"]") + "," + ev(sid, "tok", "["+full+"]") + "]",
			"tok", "", map[string]string{sid: strings.TrimSuffix(two, "]") + "," + full + "]", sid2: "[" + full + "]"}},
		{"compressed events", "[" + ev(sid, "tok", "["+cvFull+","+cvMutation+"]") + "]", "tok", "", map[string]string{sid: `[` +
			`{"type":2,"data":{"node":{"type":0,"childNodes":[]},"initialOffset":{"left":0,"top":0}},"timestamp":1700000000002},` +
			`{"type":3,"data":{"source":0,"texts":[{"id":5,"value":"hi"}],"attributes":[],"removes":[],"adds":[{"parentId":1,"node":{"type":3,"textContent":"é\u0000\n","id":9}}]},"timestamp":1700000000003}]`}},
		{"last properties count", `[{"event":"$snapshot","properties":{"$session_id":"x"},"properties":` + ev(sid, "tok", two)[len(`{"event":"$snapshot","properties":`):] + "]", "tok", "", map[string]string{sid: two}},
		{"mixed tokens", "[" + ev(sid, "a", two) + "," + ev(sid, "b", two) + "]", "", "mixed_tokens", nil},
		{"body token differs", `{"api_key":"a","batch":[` + ev(sid, "b", two) + "]}", "", "mixed_tokens", nil},
		{"no session id", `[{"event":"$snapshot","properties":{"token":"tok","$snapshot_data":[]}}]`, "tok", "missing_session_id", nil},
		{"session id not a string", `[{"event":"$snapshot","properties":{"$session_id":7,"token":"tok","$snapshot_data":[]}}]`, "tok", "missing_session_id", nil},
		{"session id too long", "[" + ev(strings.Repeat("s", 201), "tok", two) + "]", "tok", "bad_session_id", nil},
		{"no snapshot data", `[{"event":"$snapshot","properties":{"$session_id":"s","token":"tok"}}]`, "tok", "missing_snapshot_data", nil},
		{"snapshot data a string", "[" + ev(sid, "tok", `"x"`) + "]", "tok", "bad_snapshot_data", nil},
		{"item not an object", "[" + ev(sid, "tok", `[1]`) + "]", "tok", "bad_snapshot_data", nil},
		{"no events", "[" + ev(sid, "tok", `[]`) + "]", "tok", "empty_snapshot", nil},
		{"unknown compression", "[" + ev(sid, "tok", `[{"type":2,"cv":"2030-01","data":"x"}]`) + "]", "tok", "bad_compressed_event", nil},
		{"compressed field not gzip", "[" + ev(sid, "tok", `[{"type":2,"cv":"2024-10","data":"x"}]`) + "]", "tok", "bad_compression", nil},
		{"compressed field not latin-1", "[" + ev(sid, "tok", `[{"type":2,"cv":"2024-10","data":"\u0100"}]`) + "]", "tok", "bad_compressed_event", nil},
		{"compressed data not an object", "[" + ev(sid, "tok", `[{"type":3,"cv":"2024-10","data":[]}]`) + "]", "tok", "bad_compressed_event", nil},
		{"compressed field two values", "[" + ev(sid, "tok", `[{"type":2,"cv":"2024-10","data":`+jsonLatin1(gzipBytes([]byte(`{},"x":1`)))+`}]`) + "]", "tok", "bad_json", nil},
		{"not json", `{`, "", "bad_json", nil},
		{"unclosed string", `[{"event":"$snapshot","properties":{"$session_id":"s}}]`, "", "bad_json", nil},
		{"brackets crossed", "[" + ev(sid, "tok", `[{"type":4,"data":[}]}]`) + "]", "", "bad_json", nil},
		{"missing comma", "[" + ev(sid, "tok", `[{"type":4} {"type":4}]`) + "]", "", "bad_json", nil},
		{"trailing garbage", "[" + ev(sid, "tok", two) + "] x", "", "bad_json", nil},
		{"ends after colon", `[{"event":`, "", "bad_json", nil},
		{"ends after comma", `[1,`, "", "bad_json", nil},
		{"deep nesting", strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000), "", "bad_json", nil},
		{"a number", `1`, "", "bad_json", nil},
		{"body token unclosed", `{"token":"a`, "", "bad_json", nil},
		{"body token a broken literal", `{"token":,}`, "", "bad_json", nil},
		{"empty", ``, "", "bad_json", nil},
	}
	s := New(testConfig(), nil, nil)
	req := httptest.NewRequest("POST", "/s/", nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &decoder{s: s, budget: s.cfg.MaxDecompressed}
			b, token, err := d.posthogBody(req, []byte(tc.body))
			var sessions []*posthogSession
			if err == nil {
				if token != tc.token {
					t.Errorf("token %q, want %q", token, tc.token)
				}
				sessions, err = d.snapshotSessions(b, "")
			}
			if code := errCode(t, err); code != tc.code {
				t.Fatalf("code %q (%v), want %q", code, err, tc.code)
			}
			if tc.code != "" {
				return
			}
			got := map[string]string{}
			for _, ss := range sessions {
				got[ss.id] = string(ss.data)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("sessions %v, want %v", got, tc.want)
			}
			for id, want := range tc.want {
				if !json.Valid([]byte(got[id])) {
					t.Fatalf("session %s: not valid JSON: %s", id, got[id])
				}
				if !jsonEqual(t, got[id], want) {
					t.Errorf("session %s:\n got %s\nwant %s", id, got[id], want)
				}
			}
		})
	}
}

// TestCutBatchErrorIndex: a problem names the event by its place in the
// batch, whether or not the batch is wrapped.
func TestCutBatchErrorIndex(t *testing.T) {
	bad := `{"event":"$snapshot","properties":{"$snapshot_data":[]}}`
	for _, body := range []string{`[{"event":"$pageview"},` + bad + `]`, `{"api_key":"t","batch":[{"event":"$pageview"},` + bad + `]}`} {
		b, _, err := cutBatch([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if b.err == nil || !strings.Contains(b.err.Error(), "event 1 ") {
			t.Errorf("%s: error %v, want one naming event 1", body, b.err)
		}
	}
}

// TestCutBatchCopiesEvents: a realistic batch's segment is its rrweb
// events byte for byte, and the metadata is read on the way.
func TestCutBatchCopiesEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	raw := workload.Segment(rng, 1, 1_700_000_000_000, 300<<10)
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatal(err)
	}
	sid := uuid.Must(uuid.NewV7()).String()
	body := gzipBytes(snapshotBatch("tok", sid, "w1", events))
	s := New(defaultLimits(), nil, nil)
	d := &decoder{s: s, budget: s.cfg.MaxDecompressed}
	b, token, err := d.posthogBody(httptest.NewRequest("POST", "/s/", nil), body)
	if err != nil || token != "tok" {
		t.Fatalf("token %q, err %v", token, err)
	}
	sessions, err := d.snapshotSessions(b, "Mozilla/5.0 Firefox/130.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 {
		t.Fatalf("%d sessions", len(sessions))
	}
	ss := sessions[0]
	want := append([]byte("["), bytes.Join(bytesOf(events), []byte(","))...)
	want = append(want, ']')
	if !bytes.Equal(ss.data, want) {
		t.Errorf("segment differs from the events as sent (%d bytes, want %d)", len(ss.data), len(want))
	}
	var first struct {
		Timestamp int64 `json:"timestamp"`
	}
	json.Unmarshal(events[0], &first)
	if ss.firstTS != first.Timestamp || ss.events != len(events) || ss.meta.SDK != "posthog-js/1.200.0" ||
		ss.meta.UserAgentFamily != "Firefox" || !reflect.DeepEqual(ss.windows, []string{"w1"}) {
		t.Errorf("firstTS %d events %d sdk %q ua %q windows %v", ss.firstTS, ss.events, ss.meta.SDK, ss.meta.UserAgentFamily, ss.windows)
	}
}

// FuzzCutBatch: no body makes the cutter panic, and a body that is valid
// JSON gives segments that are valid JSON.
func FuzzCutBatch(f *testing.F) {
	for _, seed := range []string{
		`[{"event":"$snapshot","properties":{"$session_id":"s","token":"t","$snapshot_data":[{"type":4,"data":{"href":"h"},"timestamp":1}]}}]`,
		`{"api_key":"t","batch":[{"event":"$snapshot","properties":{"$session_id":"s","$snapshot_data":{"type":3,"data":{"a":"\"]}"}}}}]}`,
		`{"event":"$snapshot","properties":{"$session_id":"s\u0041","$snapshot_data":[{"type":2,"cv":"2024-10","data":"x"}]}}`,
		`[[],{},"",1,null,{"properties":[]}]`,
		`{"token":"a`,
	} {
		f.Add([]byte(seed))
	}
	s := New(testConfig(), nil, nil)
	req := httptest.NewRequest("POST", "/s/", nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		d := &decoder{s: s, budget: s.cfg.MaxDecompressed}
		b, _, err := d.posthogBody(req, body)
		if err != nil {
			return
		}
		sessions, err := d.snapshotSessions(b, "")
		if err != nil || !json.Valid(body) {
			return
		}
		for _, ss := range sessions {
			if !json.Valid(ss.data) && !bytes.Contains(body, []byte(`"cv"`)) {
				t.Fatalf("segment of a valid body is not valid JSON: %s", ss.data)
			}
		}
	})
}

func errCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("unexpected error type: %v", err)
	}
	return e.Code
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// jsonLatin1 is b as posthog-js writes it into JSON: a string of one
// character per byte.
func jsonLatin1(b []byte) string {
	j, _ := json.Marshal(latin1(b))
	return string(j)
}

func bytesOf(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}
