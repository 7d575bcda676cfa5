package packer

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestRejectLeaksNoPayload sends payloads that hold a marker string in a
// dozen malformed places, through the push handler, and checks that
// neither the logs (at debug level) nor the reject topic's attributes hold
// the marker or any 32-byte run of a payload: a rejected segment's content
// must never reach Cloud Logging, where no shred reaches.
func TestRejectLeaksNoPayload(t *testing.T) {
	d := testenv.NewDeps(t)
	ps := testenv.NewPubSub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, sub, rej := rejectTopic(t, ctx, ps, "leaks")
	p := newPacker(t, d, testConfig(), rej)

	var logs bytes.Buffer
	var logMu sync.Mutex
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)

	const marker = "MARKER-payload-text-7f3a9c"
	long := `[{"type":3,"timestamp":1760000000000,"data":{"text":"` + strings.Repeat(marker+" typed by a user ", 40000) + `"}},{"type":"` + marker + `"}]`
	var gz bytes.Buffer
	gzw := gzip.NewWriter(&gz)
	gzw.Write([]byte(`[{"type":3,"data":"` + marker + `\x"}]`))
	gzw.Close()
	tests := []struct {
		name, payload, reason string
	}{
		{"type is text", `[{"type":"` + marker + `"}]`, segment.ReasonBadEvent},
		{"timestamp is text", `[{"timestamp":"` + marker + `"}]`, segment.ReasonBadEvent},
		{"bare word", `[{"a":` + marker + `}]`, segment.ReasonNotJSON},
		{"not json at all", marker, segment.ReasonNotJSON},
		{"object, not array", `{"` + marker + `":1}`, segment.ReasonNotArray},
		{"string event", `["` + marker + `"]`, segment.ReasonBadEvent},
		{"bad escape", `[{"a":"` + marker + `\q"}]`, segment.ReasonNotJSON},
		{"control character", "[{\"a\":\"" + marker + "\x01\"}]", segment.ReasonNotJSON},
		{"trailing comma", `[{"` + marker + `":1,}]`, segment.ReasonNotJSON},
		{"trailing text", `[{"a":"` + marker + `"}] ` + marker, segment.ReasonNotJSON},
		{"bad number", `[{"a":1e-` + marker + `}]`, segment.ReasonNotJSON},
		{"truncated", `[{"a":"` + marker, segment.ReasonNotJSON},
		{"too deep", `[{"a":` + strings.Repeat(`["`+marker+`",`, 2000), segment.ReasonTooDeep},
		{"long, bad at the end", long, segment.ReasonBadEvent},
		{"gzip, bad escape", gz.String(), segment.ReasonNotJSON},
	}
	want := map[string]string{}
	for i, tc := range tests {
		id := fmt.Sprint(i)
		want[id] = tc.reason
		m := Message{ID: id, Data: []byte(tc.payload),
			Attributes: map[string]string{"project_id": "5", "replay_id": uuid.NewString(), "segment_id": "0", "test_case": id}}
		if code := serve(p, pushRequest(t, m).WithContext(ctx)); code != http.StatusOK {
			t.Errorf("%s: status %d, want 200 (ack)", tc.name, code)
		}
	}
	// A push body that is not an envelope, holding the marker.
	if code := serve(p, rawPush([]byte(`{"message":{"data":"`+marker+`"}}`)).WithContext(ctx)); code != http.StatusOK {
		t.Errorf("bad envelope: status %d, want 200 (ack)", code)
	}

	got := map[string]map[string]string{}
	var mu sync.Mutex
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	err := client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		key := m.Attributes["test_case"]
		if m.Attributes["reject_reason"] == "bad_envelope" {
			key = "envelope"
		}
		got[key] = m.Attributes
		if len(got) == len(tests)+1 {
			rcancel()
		}
	})
	rcancel()
	if err != nil {
		t.Fatal(err)
	}

	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	if !strings.Contains(logged, "segment rejected") {
		t.Fatalf("no rejection was logged:\n%s", logged)
	}
	var attrs strings.Builder
	for id, reason := range want {
		if got[id]["reject_reason"] != reason {
			t.Errorf("case %s (%s): reject_reason %q, want %q", id, tests[atoi(id)].name, got[id]["reject_reason"], reason)
		}
		for k, v := range got[id] {
			attrs.WriteString(k + "=" + v + "\n")
		}
	}
	if got["envelope"] == nil {
		t.Error("bad envelope did not reach the reject topic")
	}
	for k, v := range got["envelope"] {
		attrs.WriteString(k + "=" + v + "\n")
	}
	for where, text := range map[string]string{"logs": logged, "reject attributes": attrs.String()} {
		if strings.Contains(text, marker) {
			t.Errorf("%s hold the marker:\n%s", where, text)
		}
		runs := map[string]bool{}
		for i := 0; i+32 <= len(text); i++ {
			runs[text[i:i+32]] = true
		}
		for _, tc := range tests {
			for i := 0; i+32 <= len(tc.payload); i++ {
				if runs[tc.payload[i:i+32]] {
					t.Errorf("%s hold 32 bytes of payload %q: %q", where, tc.name, tc.payload[i:i+32])
					break
				}
			}
		}
	}
	t.Logf("logs:\n%s", logged)
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// lockedWriter serialises writes from the packer's goroutines.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
