package packer

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
)

// keptRejects records what the packer rejects.
type keptRejects struct {
	mu      sync.Mutex
	reasons []string
	bodies  [][]byte
}

func (k *keptRejects) Reject(_ context.Context, _ map[string]string, data []byte, reason string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reasons = append(k.reasons, reason)
	k.bodies = append(k.bodies, bytes.Clone(data))
	return nil
}

// TestServeHTTP: Pack's entry point takes the body a push subscription
// sends and the same body as a binary-mode CloudEvent; acks (200) a body
// that is no push after publishing it, unchanged, to the reject topic as
// bad_envelope; and refuses other methods and bodies no push can have with
// a status, publishing nothing.
func TestServeHTTP(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.Limits = segment.Limits{MaxPayload: 64 << 10}
	rej := &keptRejects{}
	p := newPacker(t, d, cfg, rej)
	seg := []byte(`[{"type":4,"timestamp":1700000000000,"data":{}}]`)
	replay := uuid.New()
	ceHeaders := func(r *http.Request) {
		r.Header.Set("Ce-Specversion", "1.0")
		r.Header.Set("Ce-Id", "ce-1")
		r.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/p/topics/segments")
		r.Header.Set("Ce-Type", "google.cloud.pubsub.topic.v1.messagePublished")
	}
	big := []byte(`{"message":{"data":"` + strings.Repeat("A", 400<<10) + `"}}`)
	tests := []requestCase{
		{"plain push", pushRequest(t, message(1, replay, 0, seg)), http.StatusOK, 1, ""},
		{"binary-mode CloudEvent", func() *http.Request {
			r := pushRequest(t, message(1, replay, 1, seg))
			ceHeaders(r)
			return r
		}(), http.StatusOK, 2, ""},
		{"GET", httptest.NewRequest(http.MethodGet, "/", nil), http.StatusMethodNotAllowed, 2, ""},
		{"not JSON", rawPush([]byte(`not a push`)), http.StatusOK, 2, "bad_envelope"},
		{"empty body", rawPush(nil), http.StatusOK, 2, "bad_envelope"},
		{"bad base64", rawPush([]byte(`{"message":{"data":"!!!"}}`)), http.StatusOK, 2, "bad_envelope"},
		{"CloudEvent with a bad body", func() *http.Request {
			r := rawPush([]byte(`[1,2]`))
			ceHeaders(r)
			return r
		}(), http.StatusOK, 2, "bad_envelope"},
		// Structured mode puts the push under "data": no message, so no
		// attributes, which Ingest rejects.
		{"structured-mode CloudEvent", func() *http.Request {
			r := rawPush(fmt.Appendf(nil, `{"specversion":"1.0","id":"x","data":{"message":{"data":%q}}}`, base64.StdEncoding.EncodeToString(seg)))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			return r
		}(), http.StatusOK, 2, segment.ReasonMissingProjectID},
		{"over the payload limit", rawPush(big), http.StatusRequestEntityTooLarge, 2, ""},
		{"over the payload limit, no length", func() *http.Request {
			r := rawPush(nil)
			r.Body = io.NopCloser(bytes.NewReader(big))
			r.ContentLength = -1
			return r
		}(), http.StatusRequestEntityTooLarge, 2, ""},
	}
	checkRequests(t, p, rej, tests)
}

// requestCase is a request to a Packer and what must become of it.
type requestCase struct {
	name   string
	req    *http.Request
	status int
	stored int64  // segments stored so far
	reject string // reason published, if any
}

// checkRequests serves each case's request in turn and checks its status,
// the count of stored segments after it, and what it published to the
// reject topic: nothing, or one message with the case's reason (a
// bad_envelope carrying the body as it came).
func checkRequests(t *testing.T, p *Packer, rej *keptRejects, tests []requestCase) {
	t.Helper()
	for _, tc := range tests {
		before := len(rej.reasons)
		if code := serve(p, tc.req); code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.status)
		}
		if n := p.Stats().Stored.Load(); n != tc.stored {
			t.Errorf("%s: %d stored, want %d", tc.name, n, tc.stored)
		}
		switch got := rej.reasons[before:]; {
		case tc.reject == "" && len(got) > 0:
			t.Errorf("%s: rejected as %v, want no reject", tc.name, got)
		case tc.reject != "" && (len(got) != 1 || got[0] != tc.reject):
			t.Errorf("%s: rejected as %v, want %s", tc.name, got, tc.reject)
		case tc.reject == "bad_envelope" && tc.req.ContentLength > 0:
			// The reject topic gets the body as it came.
			if body := rej.bodies[before]; int64(len(body)) != tc.req.ContentLength {
				t.Errorf("%s: published %d bytes, want the %d-byte body", tc.name, len(body), tc.req.ContentLength)
			}
		}
	}
}

// TestServeHTTPTraceHeaders: without a trace context in the message's
// attributes, a push continues the trace of its ce-traceparent header (a
// CloudEvent's extension), else of its traceparent header.
func TestServeHTTPTraceHeaders(t *testing.T) {
	d := testenv.NewDeps(t)
	spans := tracetest.NewInMemoryExporter()
	tel := telemetry.New(sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)), nil)
	p := New(testConfig(), d.DB, d.Blobs, d.Keyring(), noReject{t}, WithTelemetry(tel, nil))
	t.Cleanup(p.Close)
	replay := uuid.New()
	for i, header := range []string{"Ce-Traceparent", "Traceparent"} {
		tp, want := traceparent(t)
		req := pushRequest(t, message(1, replay, i, []byte(`[{"type":4,"timestamp":1700000000000}]`)))
		req.Header.Set(header, tp)
		if code := serve(p, req); code != http.StatusOK {
			t.Fatalf("%s: status %d", header, code)
		}
		var found bool
		for _, s := range spans.GetSpans() {
			if s.Name == "pack.segment" && s.Parent.SpanID() == want.SpanID() && s.SpanContext.TraceID() == want.TraceID() {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no pack.segment span continues the header's trace", header)
		}
	}
}

// TestPushBuffers checks the body buffers' size classes: a body gets a
// buffer of its length whose capacity is what pushHold reserves for it,
// pooled only up to the largest class, and a buffer given back comes out
// again only for a body of its class.
func TestPushBuffers(t *testing.T) {
	for _, c := range []struct {
		n, capacity int64
	}{
		{0, 16 << 10},
		{1, 16 << 10},
		{16 << 10, 16 << 10},
		{16<<10 + 1, 32 << 10},
		{100 << 10, 128 << 10},
		{256 << 10, 256 << 10},
		{256<<10 + 1, 256<<10 + 1},
		{3 << 20, 3 << 20},
	} {
		b := pushBuffer(c.n)
		if int64(len(b)) != c.n || int64(cap(b)) != c.capacity || bufferSize(c.n) != c.capacity {
			t.Errorf("pushBuffer(%d): len %d cap %d, bufferSize %d; want cap %d", c.n, len(b), cap(b), bufferSize(c.n), c.capacity)
		}
		if h := pushHold(c.n, segment.Limits{}); h < int64(cap(b))+c.n/4*3 {
			t.Errorf("pushHold(%d) = %d, less than the buffer (%d) and the payload", c.n, h, cap(b))
		}
		releasePushBuffer(b)
	}
	// A buffer that is no class's is never pooled.
	releasePushBuffer(make([]byte, 20<<10))
	for range 100 {
		if b := pushBuffer(20 << 10); cap(b) != 32<<10 {
			t.Fatalf("pushBuffer(20 KiB) has cap %d, want 32 KiB", cap(b))
		}
	}
}
