package packer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
)

// pushRequest is the request a Pub/Sub push subscription sends for m.
func pushRequest(t testing.TB, m Message) *http.Request {
	t.Helper()
	body, err := json.Marshal(pushBody(m))
	if err != nil {
		t.Fatal(err)
	}
	return rawPush(body)
}

// pushBody is the body of a push of m.
func pushBody(m Message) pushData {
	var pd pushData
	pd.Message.ID, pd.Message.Data, pd.Message.Attributes = m.ID, m.Data, m.Attributes
	pd.Subscription = "projects/p/subscriptions/pack"
	return pd
}

// rawPush is a push request with the given body.
func rawPush(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// serve hands req to p and returns the status it answered.
func serve(p *Packer, req *http.Request) int {
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	return w.Code
}

// emulatorRejecter is a PubSubRejecter on a fresh topic of the emulator.
func emulatorRejecter(t *testing.T) *PubSubRejecter {
	t.Helper()
	ps := testenv.NewPubSub(t)
	ctx := context.Background()
	client, err := ps.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	topic := fmt.Sprintf("projects/%s/topics/rejects-%s", ps.Project(), uuid.NewString()[:8])
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	pub := client.Publisher(topic)
	t.Cleanup(pub.Stop)
	return NewPubSubRejecter(pub, 10*time.Second)
}

// TestMetricsAfterWorkload pushes a known mix (new segments, redeliveries
// of stored ones, the same message twice in one batch, invalid ones) and
// reads the metrics back from a ManualReader: every push is counted once as
// received and once by outcome, and the flush histograms match the
// objects in the bucket.
func TestMetricsAfterWorkload(t *testing.T) {
	d := testenv.NewDeps(t)
	reader := sdkmetric.NewManualReader()
	tel := telemetry.New(nil, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	m, err := telemetry.NewPack(tel)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.FlushSegments = 10
	p := New(cfg, d.DB, d.Blobs, d.Keyring(), emulatorRejecter(t), WithTelemetry(tel, m))
	t.Cleanup(p.Close)
	ctx := context.Background()

	var msgs []Message
	for r := range 4 {
		replay := uuid.New()
		for s := range 8 {
			msgs = append(msgs, message(int64(r+1), replay, s, []byte(fmt.Sprintf(`[{"type":4,"timestamp":%d,"data":{}}]`, 1_700_000_000_000+s))))
		}
	}
	bad := []Message{
		{ID: "bad-1", Data: []byte("not json"), Attributes: msgs[0].Attributes},
		{ID: "bad-2", Data: []byte(`[]`), Attributes: map[string]string{"project_id": "x"}},
		{ID: "bad-3", Data: []byte(`{"a":1}`), Attributes: msgs[1].Attributes},
	}
	published := 0
	push := func(ms []Message) {
		var wg sync.WaitGroup
		for _, m := range ms {
			published++
			wg.Go(func() {
				if code := serve(p, pushRequest(t, m).WithContext(ctx)); code != http.StatusOK {
					t.Errorf("push of %s: status %d, want 200", m.ID, code)
				}
			})
		}
		wg.Wait()
	}
	push(msgs)
	push(append(msgs[:5:5], bad...))  // 5 redeliveries of stored segments
	push([]Message{msgs[9], msgs[9]}) // twice in one batch, both already stored
	fresh := message(9, uuid.New(), 0, []byte(`[{"type":4,"timestamp":1}]`))
	push([]Message{fresh, fresh}) // twice in one batch, new

	snap, err := telemetry.Collect(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	stored := snap.Total(telemetry.MetricPackStored)
	dup := snap.Total(telemetry.MetricPackDuplicate)
	rejected := snap.Total(telemetry.MetricPackRejected)
	discarded := snap.Total(telemetry.MetricPackDiscarded)
	received := snap.Total(telemetry.MetricPackReceived)
	if got := stored + dup + rejected + discarded; got != float64(published) || received != float64(published) {
		t.Errorf("stored %v + duplicate %v + rejected %v + discarded %v = %v, received %v; want both %d", stored, dup, rejected, discarded, got, received, published)
	}
	if want := len(msgs) + 1; stored != float64(want) {
		t.Errorf("stored = %v, want %d", stored, want)
	}
	if want := 5 + 2 + 1; dup != float64(want) {
		t.Errorf("duplicate = %v, want %d", dup, want)
	}
	if rejected != float64(len(bad)) {
		t.Errorf("rejected = %v, want %d", rejected, len(bad))
	}
	if n := snap.Total(telemetry.MetricPackRejected, "reject_reason="+segment.ReasonNotJSON); n != 1 {
		t.Errorf("rejected{not json} = %v, want 1", n)
	}
	if n := snap.Count(telemetry.MetricPackAckWait); n != uint64(published) {
		t.Errorf("ack wait observations = %d, want %d", n, published)
	}
	if n := snap.Total(telemetry.MetricPackBufferBytes); n != 0 {
		t.Errorf("buffer bytes after every flush = %v, want 0", n)
	}

	// The flush histograms describe exactly the objects in the bucket.
	var objects, objBytes int
	if err := d.Blobs.List(ctx, "", func(o blob.Object) error {
		objects++
		objBytes += int(o.Size)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := snap.Count(telemetry.MetricPackFlushBytes); n != uint64(objects) {
		t.Errorf("flush bytes observations = %d, want %d objects", n, objects)
	}
	if n := snap.Total(telemetry.MetricPackFlushBytes); n != float64(objBytes) {
		t.Errorf("flush bytes sum = %v, want %d (the objects' sizes)", n, objBytes)
	}
	if n := snap.Total(telemetry.MetricPackFlushSegments); n != float64(len(rows(t, d))) {
		t.Errorf("flush segments sum = %v, want %d rows", n, len(rows(t, d)))
	}
	if n := snap.Count(telemetry.MetricPackFlushBytes, "trigger="+telemetry.TriggerCount); n < 3 {
		t.Errorf("flushes triggered by count = %d, want at least 3 (32 segments, FLUSH_SEGMENTS=10)", n)
	}
	if n := snap.Count(telemetry.MetricPackFlushAge); n == 0 {
		t.Error("no flush age recorded")
	}
	if n := snap.Total(telemetry.MetricKMSCalls); n != 0 {
		t.Errorf("kms calls = %v through an uncounted wrapper, want 0", n)
	}
}

// traceparent is a publisher's W3C trace context.
func traceparent(t *testing.T) (string, trace.SpanContext) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("publisher").Start(context.Background(), "publish")
	defer span.End()
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"], span.SpanContext()
}

// TestTracePushToFlush pushes two segments (each from its own publisher
// trace) into one batch and checks the trace: each request's span continues
// its publisher's trace; the flush span is a child of one request and
// linked both ways with the other; the GCS upload, the database statements
// and the KMS call are spans of those traces; and the request's log lines
// carry its trace id.
func TestTracePushToFlush(t *testing.T) {
	d := testenv.NewDeps(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tel := telemetry.New(tp, nil)
	ctx := context.Background()

	db, err := store.OpenURL(ctx, d.DSN, store.WithTracer(telemetry.NewDBTracer(tel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	kc, err := crypt.NewKMSClient(ctx, d.KMS.Endpoint(), option.WithGRPCDialOption(grpc.WithStatsHandler(
		otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	keys := crypt.NewKeyring(crypt.NewKMS(kc, d.KMS.KeyName(), 10*time.Second), func(ctx context.Context, k *crypt.KEK) error {
		return db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, time.Hour)
	cfg := testConfig()
	cfg.FlushSegments = 2
	cfg.FlushAge = time.Minute // only the count closes the batch
	p := New(cfg, db, blob.NewTraced(d.Blobs, tel.Tracer), keys, noReject{t}, WithTelemetry(tel, nil))
	t.Cleanup(p.Close)

	var logs syncBuffer
	prev := slog.Default()
	slog.SetDefault(logging.NewForProject(&logs, "debug", "proj"))
	t.Cleanup(func() { slog.SetDefault(prev) })

	replay := uuid.New()
	publishers := map[string]trace.SpanContext{}
	var wg sync.WaitGroup
	for i := range 2 {
		m := message(1, replay, i, []byte(`[{"type":4,"timestamp":1700000000000}]`))
		tpHeader, sc := traceparent(t)
		m.Attributes["traceparent"] = tpHeader
		publishers[m.ID] = sc
		wg.Go(func() {
			if code := serve(p, pushRequest(t, m).WithContext(ctx)); code != http.StatusOK {
				t.Errorf("push: status %d, want 200", code)
			}
		})
	}
	wg.Wait()

	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byName[s.Name] = append(byName[s.Name], s)
	}
	flushes := byName["pack.flush"]
	if len(flushes) != 1 {
		t.Fatalf("flush spans = %d, want 1; spans: %v", len(flushes), names(spans.GetSpans()))
	}
	flush := flushes[0]
	requests := byName["pack.segment"]
	if len(requests) != 2 {
		t.Fatalf("request spans = %d, want 2", len(requests))
	}
	children := 0
	for _, r := range requests {
		var id string
		for _, a := range r.Attributes {
			if a.Key == "messaging.message.id" {
				id = a.Value.AsString()
			}
		}
		pub := publishers[id]
		if r.SpanContext.TraceID() != pub.TraceID() || r.Parent.SpanID() != pub.SpanID() {
			t.Errorf("request %s: trace %s parent %s, want the publisher's %s %s", id, r.SpanContext.TraceID(), r.Parent.SpanID(), pub.TraceID(), pub.SpanID())
		}
		if flush.Parent.SpanID() == r.SpanContext.SpanID() {
			children++
			continue
		}
		if !hasLink(r.Links, flush.SpanContext) || !hasLink(flush.Links, r.SpanContext) {
			t.Errorf("request %s and the flush are not linked both ways (request links %v, flush links %v)", id, r.Links, flush.Links)
		}
		// Its log lines carry its own trace.
		if want := "projects/proj/traces/" + r.SpanContext.TraceID().String(); !logHas(t, logs.String(), id, want) {
			t.Errorf("no log line of %s carries %s:\n%s", id, want, logs.String())
		}
	}
	if children != 1 {
		t.Errorf("flush is a child of %d requests, want 1", children)
	}
	inFlush := func(s tracetest.SpanStub) bool {
		return s.SpanContext.TraceID() == flush.SpanContext.TraceID() && s.Parent.SpanID() == flush.SpanContext.SpanID()
	}
	if up := byName["gcs.Create"]; len(up) != 1 || !inFlush(up[0]) {
		t.Errorf("gcs.Create spans %v, want one child of the flush", up)
	}
	for _, op := range []string{"db.BEGIN", "db.INSERT", "db.COMMIT"} {
		found := false
		for _, s := range byName[op] {
			found = found || inFlush(s)
		}
		if !found {
			t.Errorf("no %s span in the flush; spans: %v", op, names(spans.GetSpans()))
		}
	}
	kms := byName["google.cloud.kms.v1.KeyManagementService/Encrypt"]
	if len(kms) == 0 || kms[0].Parent.TraceID() != kms[0].SpanContext.TraceID() || !kms[0].Parent.IsValid() {
		t.Errorf("KMS Encrypt spans %v, want one inside a request's trace", kms)
	}
	// The flush's own log line carries the flush's trace.
	if want := "projects/proj/traces/" + flush.SpanContext.TraceID().String(); !logHas(t, logs.String(), "batch flushed", want) {
		t.Errorf("the batch flushed line does not carry %s:\n%s", want, logs.String())
	}
}

func names(ss tracetest.SpanStubs) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func hasLink(links []sdktrace.Link, sc trace.SpanContext) bool {
	for _, l := range links {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return true
		}
	}
	return false
}

// logHas reports whether a JSON log line mentioning marker has the trace
// field want.
func logHas(t *testing.T, logs, marker, want string) bool {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m[logging.TraceKey] == want && m[logging.SpanIDKey] != nil {
			return true
		}
	}
	return false
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFlushSpanFollowsSampledRequests: the flush span of a batch whose
// first requests were not sampled is still recorded, as a child of its
// first sampled request and linked to the other sampled ones only (links to
// unsampled traces would lead nowhere); a batch without a sampled request
// gets no recorded flush span.
func TestFlushSpanFollowsSampledRequests(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)) // parent-based: follows the request
	p := &Packer{tracer: tp.Tracer("t")}
	req := func(sampled bool) *entry {
		var tid trace.TraceID
		var sid trace.SpanID
		rand.Read(tid[:])
		rand.Read(sid[:])
		var flags trace.TraceFlags
		if sampled {
			flags = trace.FlagsSampled
		}
		return &entry{request: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})}
	}
	a, b, c, d := req(false), req(false), req(true), req(true)
	batchOf := func(es ...*entry) *batch {
		bt := newBatch(90, time.Now())
		bt.entries = es
		bt.trigger = telemetry.TriggerCount
		return bt
	}

	_, span := p.startFlushSpan(context.Background(), batchOf(a, b, c, d))
	span.End()
	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d recorded flush spans, want 1", len(got))
	}
	f := got[0]
	if f.Parent.SpanID() != c.request.SpanID() || f.SpanContext.TraceID() != c.request.TraceID() {
		t.Errorf("flush parent %s in trace %s, want the first sampled request %s", f.Parent.SpanID(), f.SpanContext.TraceID(), c.request.SpanID())
	}
	if len(f.Links) != 1 || !hasLink(f.Links, d.request) {
		t.Errorf("flush links %v, want only the other sampled request", f.Links)
	}

	spans.Reset()
	_, span = p.startFlushSpan(context.Background(), batchOf(a, b))
	span.End()
	if n := len(spans.GetSpans()); n != 0 || span.SpanContext().TraceID() != a.request.TraceID() {
		t.Errorf("unsampled batch: %d recorded flush spans in trace %s, want none, in the first request's trace", n, span.SpanContext().TraceID())
	}
}
