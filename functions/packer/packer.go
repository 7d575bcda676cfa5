// Package packer is the Pack function: it validates and seals each segment
// that Pub/Sub pushes, holds the request while many segments gather in a
// batch (group commit), writes one object per batch, records every segment's
// byte range and wrapped key in the database, and only then acks.
package packer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derive"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// Config is what the packer needs from config.Pack.
type Config struct {
	FlushBytes     int
	FlushSegments  int
	FlushAge       time.Duration
	MaxConcurrency int
	// MaxBufferBytes bounds the bytes that requests hold in memory: the
	// push envelope and payload while a segment is validated, then the
	// envelope and the sealed segment until its batch is flushed. A request
	// that does not fit is refused at once with 429 (Pub/Sub redelivers
	// with backoff), before it can hold anything more.
	MaxBufferBytes int64
	// FlushTimeout bounds one flush: upload plus transaction.
	FlushTimeout time.Duration
	Limits       segment.Limits
	// DeriveSlices stores console, network and timeline slices taken from
	// each recording segment beside it, in the same flush (see derive.go).
	DeriveSlices bool
	// TranscodeMinRetention and Level: segments of this retention (days)
	// or longer are stored as zstd at Level; 0 means every segment.
	TranscodeMinRetention int
	Level                 segment.Level
	// RewrittenPlain stores the events edge rules rewrote as they are,
	// for compaction to compress (REWRITTEN_ENCODING=plain; see
	// encodeRewritten); else as s2.
	RewrittenPlain bool
}

// ConfigFrom derives the packer's settings from the function's config.
func ConfigFrom(c *config.Pack) Config {
	return Config{
		FlushBytes:            c.FlushBytes,
		FlushSegments:         c.FlushSegments,
		FlushAge:              c.FlushAge,
		MaxConcurrency:        c.MaxConcurrency,
		MaxBufferBytes:        c.MaxBufferBytes,
		FlushTimeout:          c.GCSTimeout + c.DBTimeout,
		Limits:                segment.Limits{MaxDecompressed: c.MaxDecompressedBytes},
		DeriveSlices:          c.DeriveSlices,
		TranscodeMinRetention: c.TranscodeMinRetentionDays,
		Level:                 storeLevel(c.StoreZstdLevel),
		RewrittenPlain:        c.RewrittenEncoding == "plain",
	}
}

// Rejecter sends a permanently invalid message to the reject topic.
type Rejecter interface {
	Reject(ctx context.Context, attrs map[string]string, data []byte, reason string) error
}

// Message is one Pub/Sub message.
type Message struct {
	ID         string
	Data       []byte
	Attributes map[string]string
	// EnvelopeBytes is the size of the request that carried the message
	// (the push JSON, or the buffer of a direct request's body, whose tail
	// is Data: what the HTTP layer holds until the answer), counted
	// against MAX_BUFFER_BYTES for the whole request. Zero when the message
	// did not come over HTTP.
	EnvelopeBytes int
	// release, if set, gives back the buffer Data lies in (a direct
	// request's body, which EnvelopeBytes counts): ingest calls it once
	// the payload is no longer used (sealed into a copy, rejected and the
	// reject topic acked, or filtered), never after an error.
	release func()
}

// Result says what became of an acked message.
type Result int

const (
	// Stored: the segment is durable.
	Stored Result = iota
	// Duplicate: a redelivery of a segment already stored.
	Duplicate
	// Shredded: the replay or project was shredded; nothing stored.
	Shredded
	// Rejected: invalid; sent to the reject topic.
	Rejected
	// Filtered: a project's edge rule dropped it (sampling); nothing stored.
	Filtered
)

func (r Result) String() string {
	return [...]string{"stored", "duplicate", "shredded", "rejected", "filtered"}[r]
}

var (
	// ErrOverloaded means the buffer stayed full: answer 429 so Pub/Sub
	// backs off and redelivers.
	ErrOverloaded = fmt.Errorf("packer buffer full: %w", derrors.Overloaded)
	// ErrClosed means the packer is shutting down.
	ErrClosed = fmt.Errorf("packer closed: %w", derrors.Unavailable)
)

// Packer batches sealed segments and flushes them. It is safe for
// concurrent use; one Packer serves every request of an instance.
type Packer struct {
	cfg    Config
	db     *store.DB
	blobs  blob.Store
	keys   *crypt.Keyring
	reject Rejecter
	rules  *rules.Set // nil: no edge rules
	now    func() time.Time

	space *semaphore.Weighted // bytes held by requests (see Config.MaxBufferBytes)
	// cpu bounds concurrent validate+seal work to the cores: it is CPU-bound,
	// and one validation may hold a few times MAX_DECOMPRESSED_BYTES, so
	// letting all MAX_CONCURRENCY requests decompress at once could OOM.
	cpu chan struct{}

	mu      sync.Mutex
	open    map[int]*batch // by retention class
	waiting int            // requests held in open or flushing batches
	closed  bool
	flushes sync.WaitGroup

	stats Stats

	// Telemetry (WithTelemetry): metrics is nil and tracer a no-op without.
	metrics *telemetry.Pack
	tracer  trace.Tracer
}

// Option adjusts a Packer.
type Option func(*Packer)

// WithTelemetry records m's metrics and traces every request and flush
// with t's tracer.
func WithTelemetry(t *telemetry.Telemetry, m *telemetry.Pack) Option {
	return func(p *Packer) {
		p.tracer = t.OrNop().Tracer
		p.metrics = m
	}
}

// Stats are counters for logs and benchmarks.
type Stats struct {
	Flushes, FlushFailures      atomic.Int64
	Stored, Duplicate, Shredded atomic.Int64
	Rejected, Overloaded        atomic.Int64
	FlushedBytes                atomic.Int64
	Filtered, Rewritten         atomic.Int64 // by edge rules
}

// New returns a Packer.
func New(cfg Config, db *store.DB, blobs blob.Store, keys *crypt.Keyring, reject Rejecter, opts ...Option) *Packer {
	p := &Packer{
		cfg:    cfg,
		db:     db,
		blobs:  blobs,
		keys:   keys,
		reject: reject,
		now:    time.Now,
		space:  semaphore.NewWeighted(cfg.MaxBufferBytes),
		cpu:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		open:   map[int]*batch{},
		tracer: telemetry.Nop().Tracer,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Stats returns the packer's counters.
func (p *Packer) Stats() *Stats { return &p.stats }

// Ingest handles one message and returns once its fate is durable: stored
// (or known duplicate or shredded) and committed, or rejected and published
// to the reject topic. An error means the message must be redelivered.
//
// Only validation and compression run in a CPU slot. Network calls (the
// reject publish, and waiting for a first KEK) happen outside it, so a slow
// Pub/Sub or KMS cannot take the cores away from valid segments.
//
// Memory: the request reserves what it holds (envelope and payload) before
// anything else, and is refused with ErrOverloaded (429) when that does not
// fit; once sealed it holds the envelope and the sealed segment, and the
// payload is no longer referenced.
func (p *Packer) Ingest(ctx context.Context, m Message) (Result, error) {
	p.metrics.Received(ctx)
	n := int64(m.EnvelopeBytes) + int64(len(m.Data))
	h, ok := p.hold(n)
	if !ok {
		return 0, p.overloaded(ctx, n)
	}
	defer h.release()
	return p.ingest(ctx, m, h)
}

// overloaded counts a request refused for want of buffer space and returns
// its error (429: Pub/Sub redelivers with backoff).
func (p *Packer) overloaded(ctx context.Context, n int64) error {
	p.stats.Overloaded.Add(1)
	p.metrics.Overloaded(ctx)
	return fmt.Errorf("%w: %d bytes do not fit in MAX_BUFFER_BYTES", ErrOverloaded, n)
}

// ingest is Ingest for a request that already holds h, sized to what it
// holds now (its envelope and payload); h stays the caller's to release.
func (p *Packer) ingest(ctx context.Context, m Message, h *holding) (Result, error) {
	select {
	case p.cpu <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	v, err := p.validate(ctx, m)
	<-p.cpu
	if reason, ok := rejectReason(err); ok {
		if err := p.reject.Reject(ctx, m.Attributes, m.Data, reason); err != nil {
			// The publisher may still hold m.Data: not released.
			return 0, fmt.Errorf("reject message %s (%s): %w", m.ID, reason, err)
		}
		m.releasePayload()
		p.stats.Rejected.Add(1)
		p.metrics.Rejected(ctx, reason)
		slog.WarnContext(ctx, "segment rejected", "message_id", m.ID, "reject_reason", reason, "error", err)
		return Rejected, nil
	}
	if err != nil {
		return 0, err
	}
	if v.filtered {
		m.releasePayload()
		p.stats.Filtered.Add(1)
		return Filtered, nil
	}
	e, err := p.seal(ctx, v)
	if err != nil {
		return 0, err
	}
	// Nothing refers to the payload now (the entry holds copies): a
	// direct body's buffer goes back before the wait for the flush.
	envelope := int64(m.EnvelopeBytes)
	if m.releasePayload() {
		envelope = 0
	}
	// From here the request holds its envelope and the sealed segment; the
	// sealed part moves to the batch, which releases it after the flush
	// (even if this request has gone by then).
	if !h.resize(envelope + e.bytes()) {
		p.stats.Overloaded.Add(1)
		p.metrics.Overloaded(ctx)
		return 0, fmt.Errorf("%w: sealed segment does not fit in MAX_BUFFER_BYTES", ErrOverloaded)
	}
	e.reserved = h.take(e.bytes())
	p.metrics.Buffer(ctx, e.reserved)
	e.request = trace.SpanContextFromContext(ctx)
	return p.add(ctx, e)
}

// releasePayload calls m.release, if set, and reports whether it did.
func (m Message) releasePayload() bool {
	if m.release == nil {
		return false
	}
	m.release()
	return true
}

// Prepare runs the CPU-bound part of Ingest on m and drops the result:
// attributes, the validating pass that also detects issues and takes the
// slices, the edge rules, compression, and sealing the segment and its
// slices. It holds no buffer space, joins no batch and does no I/O beyond
// the keyring's first KEK; a segment Ingest would reject is an error.
// replayvault-dev bench runs it for its CPU-bound limit, so that the limit
// is Pack's own per-segment work and nothing else.
func (p *Packer) Prepare(ctx context.Context, m Message) error {
	v, err := p.validate(ctx, m)
	if err != nil || v.filtered {
		return err
	}
	_, err = p.seal(ctx, v)
	return err
}

// holding is buffer space reserved by one request.
type holding struct {
	p *Packer
	n int64
}

// hold reserves n bytes (at most the whole buffer, so that any single
// request can get through an empty one) without waiting.
func (p *Packer) hold(n int64) (*holding, bool) {
	n = min(n, p.cfg.MaxBufferBytes)
	if !p.space.TryAcquire(n) {
		return nil, false
	}
	return &holding{p: p, n: n}, true
}

// resize grows or shrinks the reservation to n; false (keeping the old
// size) when growing does not fit.
func (h *holding) resize(n int64) bool {
	n = min(n, h.p.cfg.MaxBufferBytes)
	switch {
	case n < h.n:
		h.p.space.Release(h.n - n)
	case n > h.n:
		if !h.p.space.TryAcquire(n - h.n) {
			return false
		}
	}
	h.n = n
	return true
}

// take moves up to n bytes of the reservation to a new owner, who must
// release them, and returns how many moved.
func (h *holding) take(n int64) int64 {
	n = min(n, h.n)
	h.n -= n
	return n
}

func (h *holding) release() {
	if h.n > 0 {
		h.p.space.Release(h.n)
		h.n = 0
	}
}

// validated is a segment that passed validation and the project's edge
// rules, in the form it is stored.
type validated struct {
	attrs  segment.Attributes
	info   segment.Info
	stored []byte
	enc    segment.Encoding
	// meta is what the message's attributes say about the replay (SDK,
	// URLs, error ids), stored on the replay row.
	meta replaymeta.Meta
	// slices are the console, network and timeline slices derived from
	// the stored events (nil unless DeriveSlices and a recording).
	slices []derive.Slice
	// issues are the replay issues detected in the stored events.
	issues []store.Occurrence
	// filtered: a rule dropped the segment; nothing is stored.
	filtered bool
}

// validate checks m, runs the project's edge rules on it and compresses a
// plain payload. It is CPU-bound and makes no network call: a rule's
// rejection comes back as an error rejectReason recognizes, for Ingest to
// publish outside the CPU slot.
func (p *Packer) validate(ctx context.Context, m Message) (v validated, _ error) {
	attrs, err := segment.ParseAttributes(m.Attributes)
	if err != nil {
		return validated{}, err
	}
	hasRules, err := p.hasRules(attrs)
	if err != nil {
		return validated{}, err
	}
	var (
		info   segment.Info
		ps     pass
		events []byte // the decoded events, for a project with rules
	)
	if hasRules {
		// The rules read decoded events: the pass decompresses the
		// payload into a pooled buffer, which goes back once what is
		// stored no longer needs it (below).
		bp := eventBufs.Get().(*[]byte)
		defer func() {
			if cap(*bp) <= maxPooledEvents && (len(events) == 0 || len(v.stored) == 0 || &v.stored[0] != &events[0]) {
				eventBufs.Put(bp)
			} // else what is stored is the rewritten events in it (plain): the entry's now
		}()
		info, events, ps, err = p.scanDecode(attrs, m.Data, *bp)
		if cap(events) > cap(*bp) && rewritten(m.Data, events) {
			*bp = events[:0] // grown: keep the larger one (not a plain payload, which is the message's)
		}
	} else {
		info, ps, err = p.scan(attrs, m.Data, false)
	}
	if err != nil {
		return validated{}, err
	}
	data := m.Data
	if events != nil {
		var keep bool
		if data, info, ps, keep, err = p.runRules(ctx, attrs, m, info, events, ps); err != nil || !keep {
			return validated{filtered: !keep}, err
		}
	}
	v = validated{attrs: attrs, info: info, stored: data, enc: info.Encoding, meta: replaymeta.FromAttributes(m.Attributes)}
	if ps.slicer != nil {
		v.slices = ps.slicer.Slices()
	}
	v.issues = p.detectIssues(ctx, attrs.ID, info, ps.issues)
	if rewritten(m.Data, data) {
		return v, nil // rewritten events, as runRules stored them
	}
	// Plain payloads are compressed; long-kept ones are transcoded to a
	// stronger zstd level (see transcode.go).
	if v.stored, v.enc, err = p.store(data, info.Encoding, attrs.RetentionDays); err != nil {
		return validated{}, fmt.Errorf("store %s: %w", attrs.ID, err)
	}
	return v, nil
}

// seal encrypts v under the current KEK. The keyring answers at once while
// it holds a KEK (rotation runs in the background); only before the first
// KEK is stored does this wait, bounded by ctx. AES-GCM runs at gigabytes
// per second, so sealing needs no CPU slot.
func (p *Packer) seal(ctx context.Context, v validated) (*entry, error) {
	kek, err := p.keys.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w: %w", v.attrs.ID, derrors.Unavailable, err)
	}
	sealed, err := crypt.Seal(kek, v.attrs.ID.AAD(), v.stored)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", v.attrs.ID, err)
	}
	return &entry{
		id:         v.attrs.ID,
		retention:  v.attrs.RetentionDays,
		info:       v.info,
		encoding:   v.enc,
		ciphertext: sealed.Ciphertext,
		wrappedDEK: sealed.WrappedDEK,
		kekID:      kek.ID,
		meta:       v.meta,
		issues:     v.issues,
		derived:    p.sealSlices(ctx, v.attrs, v.slices, kek),
	}, nil
}

// add puts e, whose buffer reservation is e.reserved, in its batch and
// waits for the batch's flush.
func (p *Packer) add(ctx context.Context, e *entry) (Result, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.space.Release(e.reserved)
		p.metrics.Buffer(ctx, -e.reserved)
		return 0, ErrClosed
	}
	b := p.open[e.retention]
	if b == nil {
		b = newBatch(e.retention, p.now())
		p.open[e.retention] = b
		b.timer = time.AfterFunc(p.cfg.FlushAge, func() { p.flushIfOpen(b) })
	}
	sameBatch := false
	if first, dup := b.ids[e.id]; dup {
		// The same message twice in one batch: wait for the first copy.
		p.space.Release(e.reserved)
		p.metrics.Buffer(ctx, -e.reserved)
		e, sameBatch = first, true
	} else {
		b.addEntry(e)
	}
	p.waiting++
	if len(b.entries) >= p.cfg.FlushSegments {
		p.startFlushLocked(b, telemetry.TriggerCount)
	} else if b.size >= int64(p.cfg.FlushBytes) {
		p.startFlushLocked(b, telemetry.TriggerSize)
	}
	if p.waiting >= p.cfg.MaxConcurrency {
		// No further request can reach this instance until some are
		// answered: waiting for the age threshold would only add latency.
		for _, ob := range p.open {
			p.startFlushLocked(ob, telemetry.TriggerConcurrency)
		}
	}
	p.mu.Unlock()

	select {
	case <-b.done:
	case <-ctx.Done():
		// The batch may still commit this segment; the redelivery will then
		// be a duplicate, never a loss.
		p.leave(b)
		return 0, ctx.Err()
	}
	p.leave(b)
	if b.flushSpan.IsValid() && b.flushSpan.TraceID() != trace.SpanContextFromContext(ctx).TraceID() {
		// Join this request's trace to the flush that acked it.
		trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: b.flushSpan})
	}
	if b.err != nil {
		return 0, b.err
	}
	if sameBatch {
		// The flush counted the first copy only.
		p.metrics.SecondCopy(ctx, e.outcome == store.Shredded)
	}
	switch e.outcome {
	case store.Stored:
		if sameBatch {
			return Duplicate, nil
		}
		return Stored, nil
	case store.Duplicate:
		return Duplicate, nil
	default:
		return Shredded, nil
	}
}

func (p *Packer) leave(b *batch) {
	p.mu.Lock()
	p.waiting--
	p.mu.Unlock()
}

func (p *Packer) flushIfOpen(b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[b.retention] == b {
		p.startFlushLocked(b, telemetry.TriggerAge)
	}
}

// startFlushLocked closes b to new segments and flushes it in the
// background; trigger says why (telemetry.Trigger*). p.mu must be held.
func (p *Packer) startFlushLocked(b *batch, trigger string) {
	if p.open[b.retention] != b {
		return // already flushing
	}
	b.trigger = trigger
	delete(p.open, b.retention)
	b.timer.Stop()
	p.flushes.Add(1)
	go func() {
		defer p.flushes.Done()
		p.flush(b)
	}()
}

// Close is Drain: the packer holds no clients of its own.
func (p *Packer) Close() { p.Drain() }

// Drain stops taking segments (later ones get ErrClosed, 503, and Pub/Sub
// redelivers them), flushes every open batch so the requests it holds are
// answered, and waits for every flush to finish. Shutdown calls it on
// SIGTERM.
func (p *Packer) Drain() {
	p.mu.Lock()
	p.closed = true
	for _, b := range p.open {
		p.startFlushLocked(b, telemetry.TriggerDrain)
	}
	p.mu.Unlock()
	p.flushes.Wait()
}
