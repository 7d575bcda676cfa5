package ingest

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestBadInput sends each malformed or unauthorized request, checks it is
// refused with a clear 4xx and reason, and that a good request right after
// is served; in the end exactly the good requests' messages were published.
func TestBadInput(t *testing.T) {
	cfg := testConfig()
	e := newEnv(t, cfg)
	key := e.key(42, "http://good.example")
	otherKey := e.key(43)
	revoked := e.key(42)
	if err := e.db.RevokeIngestKey(context.Background(), 42, revoked); err != nil {
		t.Fatal(err)
	}
	hex := func() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }
	rec := rrwebEvents(1_700_000_000_000, "x")
	sentry := "/api/42/envelope/?sentry_key=" + key

	var zbomb bytes.Buffer
	zw := zlib.NewWriter(&zbomb)
	zw.Write([]byte("["))
	zw.Write(bytes.Repeat([]byte(" "), 4<<20))
	zw.Write([]byte("]"))
	zw.Close()
	bombEnvelope := fmt.Sprintf("{}\n{\"type\":\"replay_event\"}\n{\"replay_id\":\"%s\",\"segment_id\":0}\n{\"type\":\"replay_recording\",\"length\":%d}\n{\"segment_id\":0}\n",
		hex(), len(zbomb.Bytes())+len("{\"segment_id\":0}\n"))
	bombBody := append([]byte(bombEnvelope), zbomb.Bytes()...)
	gzBomb := gzipBytes(append(append([]byte("["), bytes.Repeat([]byte(" "), 4<<20)...), ']'))

	phSession := uuid.Must(uuid.NewV7()).String()
	snap := func(token string) []byte {
		return snapshotBatch(token, phSession, "w1", []json.RawMessage{json.RawMessage(`{"type":4,"data":{},"timestamp":1}`)})
	}
	noSession, _ := json.Marshal([]map[string]any{{"event": "$snapshot", "properties": map[string]any{
		"token": key, "$snapshot_data": []any{map[string]any{"type": 4, "timestamp": 1}}}}})
	badCV, _ := json.Marshal([]map[string]any{{"event": "$snapshot", "properties": map[string]any{
		"token": key, "$session_id": phSession, "$snapshot_data": []any{map[string]any{"type": 2, "cv": "2024-10", "data": "not gzip", "timestamp": 1}}}}})
	cvBomb, _ := json.Marshal([]map[string]any{{"event": "$snapshot", "properties": map[string]any{
		"token": key, "$session_id": phSession, "$snapshot_data": []any{map[string]any{"type": 2, "cv": "2024-10",
			"data": latin1(gzipBytes(append(append([]byte(`"`), bytes.Repeat([]byte("a"), 2<<20)...), '"'))), "timestamp": 1}}}}})

	tests := []struct {
		name    string
		path    string
		body    []byte
		headers []string
		status  int
		code    string
	}{
		{"no key", "/api/42/envelope/", envelope(hex(), 0, rec, true), nil, 401, "missing_key"},
		{"unknown key", "/api/42/envelope/?sentry_key=" + strings.Repeat("f", 32), envelope(hex(), 0, rec, true), nil, 401, "unknown_key"},
		{"revoked key", "/api/42/envelope/?sentry_key=" + revoked, envelope(hex(), 0, rec, true), nil, 401, "revoked_key"},
		{"key of another project", "/api/42/envelope/?sentry_key=" + otherKey, envelope(hex(), 0, rec, true), nil, 403, "wrong_project"},
		{"origin not allowed", sentry, envelope(hex(), 0, rec, true), []string{"Origin", "http://evil.example"}, 403, "origin_not_allowed"},
		{"bad project in path", "/api/x/envelope/?sentry_key=" + key, envelope(hex(), 0, rec, true), nil, 400, "bad_project"},
		{"malformed envelope header", sentry, []byte("not json\n{\"type\":\"replay_event\"}\n{}\n"), nil, 400, "bad_envelope_header"},
		{"malformed item header", sentry, []byte("{}\n{\"type\":\n{}\n"), nil, 400, "bad_item_header"},
		{"length past body", sentry, []byte("{}\n{\"type\":\"replay_recording\",\"length\":999}\n{\"segment_id\":0}\n[]"), nil, 400, "bad_item_length"},
		{"recording header without segment_id", sentry, []byte("{\"event_id\":\"" + hex() + "\"}\n{\"type\":\"replay_recording\",\"length\":16}\n{\"segment\":0}\n[]\n"), nil, 400, "missing_segment_id"},
		{"recording without header line", sentry, []byte("{\"event_id\":\"" + hex() + "\"}\n{\"type\":\"replay_recording\",\"length\":2}\n[]"), nil, 400, "bad_recording_header"},
		{"recording header only", sentry, []byte("{\"event_id\":\"" + hex() + "\"}\n{\"type\":\"replay_recording\"}\n{\"segment_id\":0}\n"), nil, 400, "empty_segment"},
		{"replay id not 32 hex", sentry, envelope("xyz"+hex()[3:], 0, rec, true), nil, 400, "bad_replay_id"},
		{"replay id too short", sentry, envelope(hex()[:30], 0, rec, true), nil, 400, "bad_replay_id"},
		{"recording not an array", sentry, envelope(hex(), 0, []byte(`{"a":1}`), false), nil, 400, "not_an_array"},
		{"corrupt zlib recording", sentry, envelope(hex(), 0, []byte{0x78, 0x9c, 1, 2, 3}, false), nil, 400, "bad_compression"},
		{"body over the limit", sentry, bytes.Repeat([]byte("a"), int(cfg.MaxBodyBytes)+1), nil, 413, "too_large"},
		{"decompression bomb in a recording", sentry, bombBody, nil, 413, "decompressed_too_large"},
		{"unsupported content encoding", sentry, envelope(hex(), 0, rec, true), []string{"Content-Encoding", "br"}, 415, "bad_content_encoding"},
		{"gzip body bomb", sentry, gzBomb, []string{"Content-Encoding", "gzip"}, 413, "decompressed_too_large"},
		{"snapshot batch without $session_id", "/s/", noSession, nil, 400, "missing_session_id"},
		{"snapshot with unknown token", "/s/", snap("nope"), nil, 401, "unknown_key"},
		{"snapshot without token", "/s/", snap(""), nil, 401, "missing_key"},
		{"snapshot body bomb", "/s/", gzBomb, []string{"Content-Type", "text/plain"}, 413, "decompressed_too_large"},
		{"snapshot body not json", "/s/", gzipBytes([]byte("{")), nil, 400, "bad_json"},
		{"snapshot field not gzip", "/s/", badCV, nil, 400, "bad_compression"},
		{"snapshot field bomb", "/s/", gzipBytes(cvBomb), nil, 413, "decompressed_too_large"},
		{"rrweb bad replay id", "/v1/projects/42/replays/nope/segments/0?key=" + key, rec, nil, 400, "bad_replay_id"},
		{"rrweb bad segment", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/01?key=" + key, rec, nil, 400, "bad_segment_id"},
		{"rrweb segment too big", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/1000001?key=" + key, rec, nil, 400, "bad_segment_id"},
		{"rrweb key of another project", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/0?key=" + otherKey, rec, nil, 403, "wrong_project"},
		{"rrweb empty body", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/0?key=" + key, nil, nil, 400, "empty_segment"},
		{"rrweb bomb", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/0?key=" + key, gzBomb, nil, 413, "decompressed_too_large"},
		{"unknown path", "/nope", nil, nil, 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, code, _ := e.post(tc.path, tc.body, tc.headers...)
			if status != tc.status || code != tc.code {
				t.Errorf("got %d %s, want %d %s", status, code, tc.status, tc.code)
			}
			// The next good request is served.
			if status, code, _ := e.post(sentry, envelope(hex(), 0, rec, true), "Origin", "http://good.example"); status != http.StatusOK {
				t.Errorf("good request after it: %d %s", status, code)
			}
		})
	}
	// Only the good requests published: one message each, from Sentry.
	for _, m := range e.pull(len(tests), time.Second) {
		if m.Attrs["source"] != "sentry" || m.Attrs["segment_id"] != "0" {
			t.Errorf("unexpected message %v", m.Attrs)
		}
	}
}
