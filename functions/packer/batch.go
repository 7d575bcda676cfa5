package packer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// entry is one sealed segment waiting in a batch.
type entry struct {
	id         segment.ID
	retention  int
	info       segment.Info
	encoding   segment.Encoding
	ciphertext []byte
	wrappedDEK []byte
	kekID      uuid.UUID
	meta       replaymeta.Meta
	issues     []store.Occurrence // detected in the segment
	reserved   int64              // buffer bytes held until the flush ends
	// derived are the slices taken from this recording segment; they join
	// its batch and have no request of their own.
	derived []*entry
	// request is the span of the request that brought the segment, for
	// the flush span's links.
	request trace.SpanContext

	// Set by the flush, read after done is closed.
	outcome store.Outcome
}

// batch collects the segments of one retention class until it flushes.
type batch struct {
	retention int
	created   time.Time
	entries   []*entry
	ids       map[segment.ID]*entry
	size      int64
	timer     *time.Timer
	trigger   string // why it was closed (telemetry.Trigger*)

	done chan struct{} // closed when the flush has ended
	err  error
	// flushSpan is the flush's span, set before done is closed.
	flushSpan trace.SpanContext
}

func newBatch(retention int, now time.Time) *batch {
	return &batch{retention: retention, created: now, ids: map[segment.ID]*entry{}, done: make(chan struct{})}
}

func (b *batch) addEntry(e *entry) {
	b.entries = append(b.entries, e)
	b.ids[e.id] = e
	b.size += int64(len(e.ciphertext))
	for _, d := range e.derived {
		if _, dup := b.ids[d.id]; !dup {
			b.addEntry(d)
		}
	}
}

// bytes is the sealed size of e with its derived slices.
func (e *entry) bytes() int64 {
	n := int64(len(e.ciphertext))
	for _, d := range e.derived {
		n += int64(len(d.ciphertext))
	}
	return n
}

// objectPath is where a batch's object lives: one prefix per retention class
// so a GCS lifecycle rule per class can back up the sweep.
func objectPath(retention int, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("r%d/%04d/%02d/%02d/%s", retention, t.Year(), t.Month(), t.Day(), uuid.New())
}

// flush writes b as one object, commits its rows, and wakes its requests.
func (p *Packer) flush(b *batch) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.FlushTimeout)
	defer cancel()
	start := p.now()
	defer func() {
		var reserved int64
		for _, e := range b.entries {
			reserved += e.reserved
		}
		p.space.Release(reserved)
		p.metrics.Buffer(ctx, -reserved)
		close(b.done)
	}()
	ctx, span := p.startFlushSpan(ctx, b)
	fl := telemetry.Flush{Trigger: b.trigger, Age: start.Sub(b.created)}
	defer func() {
		fl.Duration, fl.Err = p.now().Sub(start), b.err
		p.metrics.Flushed(ctx, fl)
		span.SetAttributes(attribute.Int("replayvault.flush.bytes", fl.Bytes), attribute.Int("replayvault.flush.stored", fl.Stored))
		if b.err != nil {
			span.RecordError(b.err)
			span.SetStatus(codes.Error, "flush failed")
		}
		span.End()
	}()
	fresh, err := p.dropKnown(ctx, b)
	if err != nil {
		b.err = p.failed(ctx, b, err)
		return
	}
	if len(fresh) == 0 {
		fl.Duplicate = len(b.entries)
		p.stats.Duplicate.Add(int64(len(b.entries)))
		slog.InfoContext(ctx, "batch held only redeliveries; nothing written", "duplicates", len(b.entries))
		return
	}
	path, parts, size, segs := assemble(b.retention, start, fresh)
	if err := p.blobs.Create(ctx, path, parts...); err != nil {
		b.err = p.failed(ctx, b, fmt.Errorf("upload batch: %w", err))
		return
	}
	outcomes, err := p.db.CommitBatch(ctx, store.Blob{Path: path, RetentionDays: b.retention, Size: size, SegmentCount: len(segs)}, segs)
	if err != nil {
		// The object is now an orphan: no blob row names it. The sweep
		// deletes it after the grace period.
		slog.WarnContext(ctx, "batch object orphaned", "object", path, "error", err)
		b.err = p.failed(ctx, b, err)
		return
	}
	p.flushed(ctx, b, fresh, outcomes, path, int(size), start)
	fl.Bytes, fl.Segments = int(size), len(segs)
	fl.Stored, fl.Duplicate, fl.Discarded = countOutcomes(b.entries)
}

// dropKnown marks the entries whose segment is already stored (known
// redeliveries) as duplicates and returns the others: those cost no object
// bytes, and a batch of only redeliveries no object at all.
func (p *Packer) dropKnown(ctx context.Context, b *batch) ([]*entry, error) {
	ids := make([]segment.ID, len(b.entries))
	for i, e := range b.entries {
		ids[i] = e.id
	}
	known, err := p.db.ExistingSegments(ctx, ids)
	if err != nil {
		return nil, err
	}
	var fresh []*entry
	for _, e := range b.entries {
		if known[e.id] {
			e.outcome = store.Duplicate
		} else {
			fresh = append(fresh, e)
		}
	}
	return fresh, nil
}

// assemble lays the entries' ciphertexts end to end in one object and
// returns its path, its parts (the ciphertexts themselves: the upload
// streams them, so the object is never copied into one buffer), its size
// and the row of each segment.
func assemble(retention int, start time.Time, entries []*entry) (path string, parts [][]byte, size int64, segs []store.Segment) {
	parts = make([][]byte, len(entries))
	segs = make([]store.Segment, len(entries))
	path = objectPath(retention, start)
	expires := start.Add(time.Duration(retention) * 24 * time.Hour)
	for i, e := range entries {
		off := size
		parts[i] = e.ciphertext
		size += int64(len(e.ciphertext))
		segs[i] = store.Segment{
			ID:              e.id,
			BlobPath:        path,
			ByteStart:       off,
			ByteStop:        size,
			Encoding:        e.encoding,
			RawSize:         e.info.RawSize,
			EventCount:      e.info.EventCount,
			FirstTS:         e.info.FirstTS,
			LastTS:          e.info.LastTS,
			HasFullSnapshot: e.info.HasFullSnapshot,
			KEKID:           e.kekID,
			WrappedDEK:      e.wrappedDEK,
			RetentionDays:   retention,
			CreatedAt:       start,
			ExpiresAt:       expires,
			Meta:            e.meta,
			Occurrences:     e.issues,
		}
	}
	return path, parts, size, segs
}

// flushed records what a committed flush did with each entry, counts it
// and logs one line for the batch.
func (p *Packer) flushed(ctx context.Context, b *batch, fresh []*entry, outcomes []store.Outcome, path string, size int, start time.Time) {
	dup := len(b.entries) - len(fresh)
	var stored, shredded int
	for i, e := range fresh {
		e.outcome = outcomes[i]
		switch outcomes[i] {
		case store.Stored:
			stored++
		case store.Duplicate:
			dup++
		default:
			shredded++
		}
	}
	p.stats.Flushes.Add(1)
	p.stats.Stored.Add(int64(stored))
	p.stats.Duplicate.Add(int64(dup))
	p.stats.Shredded.Add(int64(shredded))
	p.stats.FlushedBytes.Add(int64(size))
	slog.InfoContext(ctx, "batch flushed", "object", path, "segments", len(fresh), "stored", stored,
		"duplicates", dup, "shredded", shredded, "bytes", size, "age", start.Sub(b.created), "duration", p.now().Sub(start))
}

func (p *Packer) failed(ctx context.Context, b *batch, err error) error {
	p.stats.FlushFailures.Add(1)
	slog.ErrorContext(ctx, "batch flush failed; every request of the batch is nacked", "segments", len(b.entries), "error", err)
	return err
}
