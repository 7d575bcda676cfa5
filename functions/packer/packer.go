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

	"golang.org/x/sync/semaphore"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// Config is what the packer needs from config.Pack.
type Config struct {
	FlushBytes     int
	FlushSegments  int
	FlushAge       time.Duration
	MaxConcurrency int
	MaxBufferBytes int64
	// BufferWait is how long a segment may wait for buffer space before it
	// is refused (and redelivered by Pub/Sub).
	BufferWait time.Duration
	// FlushTimeout bounds one flush: upload plus transaction.
	FlushTimeout time.Duration
	Limits       segment.Limits
	// TranscodeMinRetention and Level: segments of this retention (days)
	// or longer are stored as zstd at Level; 0 means every segment.
	TranscodeMinRetention int
	Level                 segment.Level
}

// ConfigFrom derives the packer's settings from the function's config.
func ConfigFrom(c *config.Pack) Config {
	return Config{
		FlushBytes:     c.FlushBytes,
		FlushSegments:  c.FlushSegments,
		FlushAge:       c.FlushAge,
		MaxConcurrency: c.MaxConcurrency,
		MaxBufferBytes: c.MaxBufferBytes,
		BufferWait:     10 * time.Second,
		FlushTimeout:   c.GCSTimeout + c.DBTimeout,
		Limits:         segment.Limits{MaxDecompressed: c.MaxDecompressedBytes},

		TranscodeMinRetention: c.TranscodeMinRetentionDays,
		Level:                 storeLevel(c.StoreZstdLevel),
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

	space *semaphore.Weighted // buffered sealed bytes
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
}

// Stats are counters for logs and benchmarks.
type Stats struct {
	Flushes, FlushFailures      atomic.Int64
	Stored, Duplicate, Shredded atomic.Int64
	Rejected                    atomic.Int64
	FlushedBytes                atomic.Int64
	Filtered, Rewritten         atomic.Int64 // by edge rules
}

// New returns a Packer.
func New(cfg Config, db *store.DB, blobs blob.Store, keys *crypt.Keyring, reject Rejecter) *Packer {
	return &Packer{
		cfg:    cfg,
		db:     db,
		blobs:  blobs,
		keys:   keys,
		reject: reject,
		now:    time.Now,
		space:  semaphore.NewWeighted(cfg.MaxBufferBytes),
		cpu:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		open:   map[int]*batch{},
	}
}

// Stats returns the packer's counters.
func (p *Packer) Stats() *Stats { return &p.stats }

// Ingest handles one message and returns once its fate is durable: stored
// (or known duplicate or shredded) and committed, or rejected and published
// to the reject topic. An error means the message must be redelivered.
func (p *Packer) Ingest(ctx context.Context, m Message) (Result, error) {
	select {
	case p.cpu <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	e, res, err := p.prepare(ctx, m)
	<-p.cpu
	if e == nil {
		return res, err
	}
	return p.add(ctx, e)
}

// prepare validates and seals m. It returns the entry to batch, or no entry
// and the final result (rejected) or error.
func (p *Packer) prepare(ctx context.Context, m Message) (*entry, Result, error) {
	attrs, err := segment.ParseAttributes(m.Attributes)
	var info segment.Info
	if err == nil {
		info, err = segment.Validate(m.Data, p.cfg.Limits)
	}
	if reason, ok := segment.Reason(err); ok {
		if err := p.reject.Reject(ctx, m.Attributes, m.Data, reason); err != nil {
			return nil, 0, fmt.Errorf("reject message %s (%s): %w", m.ID, reason, err)
		}
		p.stats.Rejected.Add(1)
		slog.WarnContext(ctx, "segment rejected", "message_id", m.ID, "reject_reason", reason, "error", err)
		return nil, Rejected, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if p.rules != nil {
		var res Result
		if m, info, res, err = p.applyRules(ctx, attrs, m, info); err != nil || res != Stored {
			return nil, res, err
		}
	}

	stored, enc, err := p.store(m.Data, info.Encoding, attrs.RetentionDays)
	if err != nil {
		return nil, 0, fmt.Errorf("store %s: %w", attrs.ID, err)
	}
	kek, err := p.keys.Current(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("seal %s: %w", attrs.ID, err)
	}
	sealed, err := crypt.Seal(kek, attrs.ID.AAD(), stored)
	if err != nil {
		return nil, 0, fmt.Errorf("seal %s: %w", attrs.ID, err)
	}
	e := &entry{
		id:         attrs.ID,
		retention:  attrs.RetentionDays,
		info:       info,
		encoding:   enc,
		ciphertext: sealed.Ciphertext,
		wrappedDEK: sealed.WrappedDEK,
		kekID:      kek.ID,
	}
	return e, 0, nil
}

// add reserves buffer space for e, puts it in its batch and waits for the
// batch's flush.
func (p *Packer) add(ctx context.Context, e *entry) (Result, error) {
	size := min(int64(len(e.ciphertext)), p.cfg.MaxBufferBytes)
	wctx, cancel := context.WithTimeout(ctx, p.cfg.BufferWait)
	err := p.space.Acquire(wctx, size)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, ErrOverloaded
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.space.Release(size)
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
		p.space.Release(size)
		e, sameBatch = first, true
	} else {
		e.reserved = size
		b.addEntry(e)
	}
	p.waiting++
	if len(b.entries) >= p.cfg.FlushSegments || b.size >= int64(p.cfg.FlushBytes) {
		p.startFlushLocked(b)
	}
	if p.waiting >= p.cfg.MaxConcurrency {
		// No further request can reach this instance until some are
		// answered: waiting for the age threshold would only add latency.
		for _, ob := range p.open {
			p.startFlushLocked(ob)
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
	if b.err != nil {
		return 0, b.err
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
		p.startFlushLocked(b)
	}
}

// startFlushLocked closes b to new segments and flushes it in the
// background. p.mu must be held.
func (p *Packer) startFlushLocked(b *batch) {
	if p.open[b.retention] != b {
		return // already flushing
	}
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
		p.startFlushLocked(b)
	}
	p.mu.Unlock()
	p.flushes.Wait()
}
