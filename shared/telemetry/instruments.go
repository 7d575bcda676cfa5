package telemetry

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Bucket boundaries: the SDK's defaults (0 to 10,000) fit neither bytes
// nor seconds.
var (
	bytesBuckets    = []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}
	countBuckets    = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}
	secondsBuckets  = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	ratioBuckets    = []float64{1, 1.5, 2, 3, 5, 10, 20, 50, 100}
	readCountBucket = []float64{0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500}
)

// builder creates instruments, keeping the first error: a bad instrument
// is a programming error the tests catch, and the SDK then returns a no-op
// instrument, so callers never need to check.
type builder struct {
	m   metric.Meter
	err error
}

func (b *builder) counter(name, unit, desc string) metric.Int64Counter {
	c, err := b.m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	b.keep(err)
	return c
}

func (b *builder) intHist(name, unit, desc string, buckets []float64) metric.Int64Histogram {
	h, err := b.m.Int64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
	b.keep(err)
	return h
}

func (b *builder) hist(name, unit, desc string, buckets []float64) metric.Float64Histogram {
	h, err := b.m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
	b.keep(err)
	return h
}

func (b *builder) keep(err error) {
	if b.err == nil {
		b.err = err
	}
}

// opts is a measurement's attributes as options of Add and of Record:
// slices of one, kept and passed as add... or rec... (a slice built at the
// call escapes through the interface method, one allocation per
// measurement).
type opts struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

// attrs returns the opts of attributes kv.
func attrs(kv ...attribute.KeyValue) opts {
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	return opts{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}}
}

// maxCachedOptions bounds an optCache: its keys come from the code (routes,
// statuses, reasons) or, for Ingest's SDK names, from a fixed list, but a
// bug must not turn it into a leak.
const maxCachedOptions = 512

// optCache memoizes the measurement option (an attribute set) of each
// combination of attribute values, so that recording a measurement with
// attributes allocates nothing after the first time: attribute.NewSet
// sorts and copies on every call.
type optCache[K comparable] struct {
	mu sync.RWMutex
	m  map[K]opts
}

// get returns the option of k, made by mk the first time. (A typed map
// under a read lock: a sync.Map would box every key.)
func (c *optCache[K]) get(k K, mk func() opts) opts {
	c.mu.RLock()
	o, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return o
	}
	o = mk()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[K]opts{}
	}
	if len(c.m) < maxCachedOptions {
		c.m[k] = o
	}
	return o
}

// Pack is the Pack function's instruments. A nil *Pack records nothing.
type Pack struct {
	received, stored, duplicate, discarded, rejected metric.Int64Counter
	overloaded, kekRotations                         metric.Int64Counter
	flushBytes, flushSegments                        metric.Int64Histogram
	flushAge, flushDuration, ackWait                 metric.Float64Histogram
	buffer                                           metric.Int64UpDownCounter
	kms                                              *KMS

	ackOpts    map[string]opts
	rejectOpts optCache[string]
	flushOpts  optCache[[2]string] // trigger, outcome ("" for the trigger alone)
}

// NewPack creates the Pack instruments on t's meter.
func NewPack(t *Telemetry) (*Pack, error) {
	b := &builder{m: t.OrNop().Meter}
	p := &Pack{
		received:      b.counter(MetricPackReceived, "{segment}", "Segments pushed to Pack and decoded."),
		stored:        b.counter(MetricPackStored, "{segment}", "Segments made durable and acked."),
		duplicate:     b.counter(MetricPackDuplicate, "{segment}", "Redeliveries of segments already stored, acked."),
		discarded:     b.counter(MetricPackDiscarded, "{segment}", "Segments of shredded replays or projects, acked and dropped."),
		rejected:      b.counter(MetricPackRejected, "{segment}", "Invalid segments sent to the reject topic, by reject_reason."),
		overloaded:    b.counter(MetricPackOverloaded, "{request}", "Pushes answered 429 because the buffer stayed full."),
		kekRotations:  b.counter(MetricPackKEKRotations, "{key}", "New key-encryption keys wrapped by KMS and stored."),
		flushBytes:    b.intHist(MetricPackFlushBytes, "By", "Bytes of one flushed object, by trigger.", bytesBuckets),
		flushSegments: b.intHist(MetricPackFlushSegments, "{segment}", "Segments in one flushed object, by trigger.", countBuckets),
		flushAge:      b.hist(MetricPackFlushAge, "s", "Age of a batch when it was closed, by trigger.", secondsBuckets),
		flushDuration: b.hist(MetricPackFlushDuration, "s", "Time to upload and commit one batch, by trigger and outcome.", secondsBuckets),
		ackWait:       b.hist(MetricPackAckWait, "s", "Time from receiving a push to answering it, by result.", secondsBuckets),
		buffer:        nil,
		ackOpts:       map[string]opts{},
	}
	var err error
	p.buffer, err = b.m.Int64UpDownCounter(MetricPackBufferBytes, metric.WithUnit("By"), metric.WithDescription("Sealed bytes held in batches."))
	b.keep(err)
	p.kms, err = NewKMS(t)
	b.keep(err)
	for _, r := range []string{"stored", "duplicate", "discarded", "rejected", "error"} {
		p.ackOpts[r] = attrs(attribute.String("result", r))
	}
	return p, b.err
}

// KMS returns the KMS call counter Pack shares.
func (p *Pack) KMS() *KMS {
	if p == nil {
		return nil
	}
	return p.kms
}

// Received counts a decoded push.
func (p *Pack) Received(ctx context.Context) {
	if p != nil {
		p.received.Add(ctx, 1)
	}
}

// Rejected counts a rejected segment.
func (p *Pack) Rejected(ctx context.Context, reason string) {
	if p != nil {
		p.rejected.Add(ctx, 1, p.rejectOpts.get(reason, func() opts {
			return attrs(attribute.String("reject_reason", reason))
		}).add...)
	}
}

// Overloaded counts a push refused with 429.
func (p *Pack) Overloaded(ctx context.Context) {
	if p != nil {
		p.overloaded.Add(ctx, 1)
	}
}

// KEKRotated counts a new KEK.
func (p *Pack) KEKRotated(ctx context.Context) {
	if p != nil {
		p.kekRotations.Add(ctx, 1)
	}
}

// Buffer adds delta (negative on release) to the buffered bytes.
func (p *Pack) Buffer(ctx context.Context, delta int64) {
	if p != nil && delta != 0 {
		p.buffer.Add(ctx, delta)
	}
}

// Flush describes one finished flush.
type Flush struct {
	Trigger                      string
	Bytes                        int // object size; 0 if nothing was written
	Segments                     int // segments in the object
	Stored, Duplicate, Discarded int
	Age                          time.Duration // batch age when closed
	Duration                     time.Duration
	Err                          error
}

// Flushed records a flush and its segments' outcomes.
func (p *Pack) Flushed(ctx context.Context, f Flush) {
	if p == nil {
		return
	}
	outcome := "ok"
	if f.Err != nil {
		outcome = "error"
	}
	p.flushDuration.Record(ctx, f.Duration.Seconds(), p.flushOpts.get([2]string{f.Trigger, outcome}, func() opts {
		return attrs(attribute.String("trigger", f.Trigger), attribute.String("outcome", outcome))
	}).rec...)
	if f.Err != nil {
		return
	}
	trig := p.flushOpts.get([2]string{f.Trigger, ""}, func() opts {
		return attrs(attribute.String("trigger", f.Trigger))
	})
	p.flushAge.Record(ctx, f.Age.Seconds(), trig.rec...)
	if f.Bytes > 0 {
		p.flushBytes.Record(ctx, int64(f.Bytes), trig.rec...)
		p.flushSegments.Record(ctx, int64(f.Segments), trig.rec...)
	}
	if f.Stored > 0 {
		p.stored.Add(ctx, int64(f.Stored))
	}
	if f.Duplicate > 0 {
		p.duplicate.Add(ctx, int64(f.Duplicate))
	}
	if f.Discarded > 0 {
		p.discarded.Add(ctx, int64(f.Discarded))
	}
}

// SecondCopy counts a segment pushed again while its first copy was in the
// same batch (the flush counted only the first): a duplicate, or discarded
// if the replay was shredded.
func (p *Pack) SecondCopy(ctx context.Context, discarded bool) {
	switch {
	case p == nil:
	case discarded:
		p.discarded.Add(ctx, 1)
	default:
		p.duplicate.Add(ctx, 1)
	}
}

// Acked records how long a push waited for its answer; result is stored,
// duplicate, discarded, rejected or error.
func (p *Pack) Acked(ctx context.Context, result string, wait time.Duration) {
	if p == nil {
		return
	}
	o, ok := p.ackOpts[result]
	if !ok {
		o = attrs(attribute.String("result", result))
	}
	p.ackWait.Record(ctx, wait.Seconds(), o.rec...)
}

// KMS counts KMS calls. A nil *KMS records nothing.
type KMS struct {
	calls metric.Int64Counter
	opts  map[[2]string]opts
}

// NewKMS creates the KMS call counter on t's meter.
func NewKMS(t *Telemetry) (*KMS, error) {
	c, err := t.OrNop().Meter.Int64Counter(MetricKMSCalls, metric.WithUnit("{call}"), metric.WithDescription("Cloud KMS calls, by op and outcome."))
	k := &KMS{calls: c, opts: map[[2]string]opts{}}
	for _, op := range []string{"wrap", "unwrap"} {
		for _, o := range []string{"ok", "error"} {
			k.opts[[2]string{op, o}] = attrs(attribute.String("op", op), attribute.String("outcome", o))
		}
	}
	return k, err
}

// Call counts one KMS call.
func (k *KMS) Call(ctx context.Context, op string, err error) {
	if k == nil {
		return
	}
	o := "ok"
	if err != nil {
		o = "error"
	}
	k.calls.Add(ctx, 1, k.opts[[2]string{op, o}].add...)
}

// HTTP is the request metrics of an HTTP function (Serve, Shred, Ingest).
type HTTP struct {
	function string
	requests metric.Int64Counter
	duration metric.Float64Histogram
	opts     optCache[httpKey]
}

type httpKey struct {
	route  string
	status int
}

// NewHTTP creates the request instruments of the named function.
func NewHTTP(t *Telemetry, function string) (*HTTP, error) {
	b := &builder{m: t.OrNop().Meter}
	h := &HTTP{
		function: function,
		requests: b.counter(MetricHTTPRequests, "{request}", "HTTP requests answered, by function, route and status."),
		duration: b.hist(MetricHTTPDuration, "s", "HTTP request duration, by function, route and status.", secondsBuckets),
	}
	return h, b.err
}

// Request records one answered request.
func (h *HTTP) Request(ctx context.Context, route string, status int, d time.Duration) {
	if h == nil {
		return
	}
	o := h.opts.get(httpKey{route, status}, func() opts {
		return attrs(attribute.String("function", h.function), attribute.String("route", route), attribute.Int("http.response.status_code", status))
	})
	h.requests.Add(ctx, 1, o.add...)
	h.duration.Record(ctx, d.Seconds(), o.rec...)
}

// Serve is the Serve function's read-path instruments. A nil *Serve records
// nothing.
type Serve struct {
	ttfb       metric.Float64Histogram
	bytes      metric.Int64Histogram
	reads      metric.Int64Histogram
	coalescing metric.Float64Histogram
	kms        *KMS
}

// NewServe creates the Serve instruments on t's meter.
func NewServe(t *Telemetry) (*Serve, error) {
	b := &builder{m: t.OrNop().Meter}
	s := &Serve{
		ttfb:       b.hist(MetricServeTTFB, "s", "Time from request to the first byte of the recording.", secondsBuckets),
		bytes:      b.intHist(MetricServeBytes, "By", "Bytes read from storage for one recording.", bytesBuckets),
		reads:      b.intHist(MetricServeReads, "{read}", "Ranged storage reads for one recording.", readCountBucket),
		coalescing: b.hist(MetricServeCoalesc, "1", "Segments per ranged read, per recording.", ratioBuckets),
	}
	var err error
	s.kms, err = NewKMS(t)
	b.keep(err)
	return s, b.err
}

// KMS returns the KMS call counter Serve shares.
func (s *Serve) KMS() *KMS {
	if s == nil {
		return nil
	}
	return s.kms
}

// Recording records how one recording was served.
func (s *Serve) Recording(ctx context.Context, segments, reads int, bytes int64, ttfb time.Duration) {
	if s == nil {
		return
	}
	if ttfb > 0 {
		s.ttfb.Record(ctx, ttfb.Seconds())
	}
	s.bytes.Record(ctx, bytes)
	s.reads.Record(ctx, int64(reads))
	if reads > 0 {
		s.coalescing.Record(ctx, float64(segments)/float64(reads))
	}
}

// Shred is the Shred function's instruments. A nil *Shred records nothing.
type Shred struct {
	receipts, segments, work, runs metric.Int64Counter
	backlog                        metric.Int64Gauge
	opts                           optCache[[2]string] // attribute key, value
}

// opt returns the option of one attribute.
func (s *Shred) opt(key, value string) opts {
	return s.opts.get([2]string{key, value}, func() opts { return attrs(attribute.String(key, value)) })
}

// NewShred creates the Shred and sweep instruments on t's meter.
func NewShred(t *Telemetry) (*Shred, error) {
	b := &builder{m: t.OrNop().Meter}
	s := &Shred{
		receipts: b.counter(MetricShredReceipts, "{receipt}", "Shred receipts issued, by kind."),
		segments: b.counter(MetricShredSegments, "{segment}", "Segment rows shredded."),
		work:     b.counter(MetricSweepWork, "{item}", "Sweep work done, by kind."),
		runs:     b.counter(MetricSweepRuns, "{run}", "Sweep runs, by outcome."),
	}
	var err error
	s.backlog, err = b.m.Int64Gauge(MetricSweepBacklog, metric.WithUnit("{item}"), metric.WithDescription("Work the sweep left for its next run."))
	b.keep(err)
	return s, b.err
}

// Receipt counts one shred receipt of kind (replays, project) covering
// segments segment rows.
func (s *Shred) Receipt(ctx context.Context, kind string, segments int64) {
	if s == nil {
		return
	}
	s.receipts.Add(ctx, 1, s.opt("kind", kind).add...)
	s.segments.Add(ctx, segments)
}

// Swept records one sweep run: the work done by kind, the backlog left
// (-1 if unknown) and its outcome (done, budget, error).
func (s *Shred) Swept(ctx context.Context, work map[string]int64, backlog int64, outcome string) {
	if s == nil {
		return
	}
	for k, n := range work {
		if n > 0 {
			s.work.Add(ctx, n, s.opt("kind", k).add...)
		}
	}
	if backlog >= 0 {
		s.backlog.Record(ctx, backlog)
	}
	s.runs.Add(ctx, 1, s.opt("outcome", outcome).add...)
}

// Ingest is the Ingest function's instruments (functions/ingest). A nil
// *Ingest records nothing.
type Ingest struct {
	requests, segments metric.Int64Counter
	opts               optCache[[2]string] // sdk, outcome ("" for the sdk alone)
}

// NewIngest creates the Ingest instruments on t's meter.
func NewIngest(t *Telemetry) (*Ingest, error) {
	b := &builder{m: t.OrNop().Meter}
	i := &Ingest{
		requests: b.counter(MetricIngestRequests, "{request}", "Ingest requests, by sdk and outcome."),
		segments: b.counter(MetricIngestSegments, "{segment}", "Segments Ingest published, by sdk."),
	}
	return i, b.err
}

// Request records one Ingest request from sdk (the SDK's name, e.g.
// "browser", "ios") with outcome (accepted, rejected, unauthorized,
// overloaded, error) and the segments it published.
func (i *Ingest) Request(ctx context.Context, sdk, outcome string, segments int) {
	if i == nil {
		return
	}
	i.requests.Add(ctx, 1, i.opts.get([2]string{sdk, outcome}, func() opts {
		return attrs(attribute.String("sdk", sdk), attribute.String("outcome", outcome))
	}).add...)
	if segments > 0 {
		i.segments.Add(ctx, int64(segments), i.opts.get([2]string{sdk, ""}, func() opts {
			return attrs(attribute.String("sdk", sdk))
		}).add...)
	}
}
