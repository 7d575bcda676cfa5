package ingest

import (
	"bytes"
	"compress/zlib"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestSentryEnvelopePublishes(t *testing.T) {
	e := newEnv(t, testConfig())
	key := e.key(42, "http://localhost:8080")
	replayHex := strings.ReplaceAll(uuid.NewString(), "-", "")
	rec := rrwebEvents(1_700_000_000_000, "hello")
	for _, auth := range []struct {
		name, query string
		headers     []string
	}{
		{"query", "?sentry_key=" + key + "&sentry_version=7", nil},
		{"header", "", []string{"X-Sentry-Auth", "Sentry sentry_version=7, sentry_key=" + key + ", sentry_client=test/1"}},
	} {
		t.Run(auth.name, func(t *testing.T) {
			headers := append([]string{"Origin", "http://localhost:8080", "User-Agent", "Mozilla/5.0 Chrome/120.0"}, auth.headers...)
			status, code, resp := e.post("/api/42/envelope/"+auth.query, envelope(replayHex, 3, rec, true), headers...)
			if status != 200 {
				t.Fatalf("status %d %s", status, code)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:8080" {
				t.Errorf("Access-Control-Allow-Origin = %q", got)
			}
		})
	}
	msgs := e.pull(2, 500*time.Millisecond)
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	want := map[string]string{
		"project_id": "42", "replay_id": uuid.MustParse(replayHex).String(), "segment_id": "3",
		"retention_days": "90", "type": "recording",
		"source": "sentry", "source_id": replayHex, "replay_type": "session",
		"sdk": "sentry.javascript.browser/8.0.0", "ua_family": "Chrome",
		"urls": `["http://localhost/page"]`, "trace_ids": `["abc"]`,
	}
	for _, m := range msgs {
		if diff := cmp.Diff(want, m.Attrs); diff != "" {
			t.Errorf("attributes (-want +got):\n%s", diff)
		}
		r, err := zlib.NewReader(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		got.ReadFrom(r)
		if !bytes.Equal(got.Bytes(), rec) {
			t.Errorf("recording = %s, want %s", got.Bytes(), rec)
		}
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		types []string
		code  string
	}{
		{"length and newline", "{}\n{\"type\":\"a\",\"length\":3}\nx\ny\n{\"type\":\"b\"}\nzz\n", []string{"a", "b"}, ""},
		{"length without trailing newline", "{}\n{\"type\":\"a\",\"length\":2}\nab", []string{"a"}, ""},
		{"empty payload", "{}\n{\"type\":\"a\",\"length\":0}\n\n", []string{"a"}, ""},
		{"header only", "{\"event_id\":\"x\"}", nil, ""},
		{"no type", "{}\n{\"length\":1}\na\n", nil, "bad_item_header"},
		{"bad header", "nope\n", nil, "bad_envelope_header"},
		{"negative length", "{}\n{\"type\":\"a\",\"length\":-1}\na\n", nil, "bad_item_length"},
		{"length past body", "{}\n{\"type\":\"a\",\"length\":10}\nab", nil, "bad_item_length"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, items, err := parseEnvelope([]byte(tc.body))
			if tc.code != "" {
				e, ok := err.(*Error)
				if !ok || e.Code != tc.code {
					t.Fatalf("err = %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, it := range items {
				types = append(types, it.typ)
			}
			if diff := cmp.Diff(tc.types, types); diff != "" {
				t.Errorf("types (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseReplayEvent reads the fields Ingest keeps of a replay_event and
// refuses a field of the wrong type, as encoding/json would.
func TestParseReplayEvent(t *testing.T) {
	seg := 4
	tests := []struct {
		name string
		body string
		want replayEvent
		bad  bool
	}{
		{"all fields", `{"type":"replay_event","replay_id":"ab","segment_id":4,"urls":["u1","u\"2"],"error_ids":[],"trace_ids":["t"],` +
			`"replay_type":"buffer","sdk":{"name":"s","version":"1","integrations":["x"]},"contexts":{"browser":{"name":"Firefox","version":"130"},"os":{}},` +
			`"request":{"url":"u","headers":{"Accept":"*/*","User-Agent":"Mozilla/5.0"}},"extra":[1,{"a":null}]}`,
			replayEvent{ReplayID: "ab", SegmentID: &seg, URLs: []string{"u1", `u"2`}, TraceIDs: []string{"t"}, ReplayType: "buffer",
				SDK: struct {
					Name    string `json:"name"`
					Version string `json:"version"`
				}{"s", "1"}, Browser: "Firefox", UserAgent: "Mozilla/5.0"}, false},
		{"nulls", `{"replay_id":null,"segment_id":null,"urls":null,"sdk":null,"contexts":null,"request":{"headers":null}}`, replayEvent{}, false},
		{"empty", `{}`, replayEvent{}, false},
		{"segment id a string", `{"segment_id":"4"}`, replayEvent{}, true},
		{"segment id a fraction", `{"segment_id":4.5}`, replayEvent{}, true},
		{"replay id a number", `{"replay_id":7}`, replayEvent{}, true},
		{"urls not strings", `{"urls":[1]}`, replayEvent{}, true},
		{"sdk a string", `{"sdk":"x"}`, replayEvent{}, true},
		{"not an object", `[]`, replayEvent{}, true},
		{"broken", `{"urls":["a"}`, replayEvent{}, true},
		{"trailing garbage", `{} x`, replayEvent{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ev replayEvent
			err := parseReplayEvent([]byte(tc.body), &ev)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want error %v", err, tc.bad)
			}
			if tc.bad {
				return
			}
			if diff := cmp.Diff(tc.want, ev); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
