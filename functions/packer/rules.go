package packer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// UseRules makes p run the projects' edge rules on every segment between
// validation and sealing. Call it before the first Ingest.
func (p *Packer) UseRules(rs *rules.Set) { p.rules = rs }

// runRules runs the project's rules on a segment validated by a scan with
// hold (ps), whose decoded events are events, and gives the slicer and
// issue detection the events as they will be stored (see feed). It
// returns what to store in place of the payload with its metadata and
// keep = true: the payload itself when no rule rewrote it, else the
// rewritten events as stored (see encodeRewritten). keep = false when
// a rule dropped the segment; an error as from applyRules.
func (p *Packer) runRules(ctx context.Context, attrs segment.Attributes, m Message, info segment.Info, events []byte, ps pass) ([]byte, segment.Info, pass, bool, error) {
	spans := ps.spans
	if ps.over {
		spans = nil // not all events
	}
	data, info, sameOffsets, keep, err := p.applyRules(ctx, attrs, m, info, events, spans, ps.check)
	if err != nil || !keep {
		ps.release()
		return nil, info, pass{}, keep, err
	}
	stored, rw := events, rewritten(m.Data, data)
	if rw {
		stored = data
	} else {
		sameOffsets = true
	}
	// Slices and issues are taken from what is stored, never from what a
	// rule removed (a PII scrub, say).
	if ps, err = p.feed(attrs, ps, stored, sameOffsets); err != nil {
		return nil, info, pass{}, false, err
	}
	if rw {
		if data, info.Encoding, err = p.encodeRewritten(data, attrs); err != nil {
			return nil, info, pass{}, false, err
		}
	}
	return data, info, ps, true, nil
}

// encodeRewritten returns rewritten events as Pack stores them. The
// payload came compressed by the browser, which Pack stores as it came;
// rewritten events it must encode itself. With RewrittenPlain (the
// default) it stores them as they are: compaction compresses every segment
// of an idle replay not yet zstd (COMPACT_ZSTD_LEVEL), so compressing them
// here too would do it twice, and it was the largest part of a scrub's
// cost (README, Edge rules). It does so for the segments of a replay's
// first maxPlainReplay bytes of events (as the segment's number and size
// tell), each at most maxPlainRewritten, so that what it stores
// uncompressed stays small beside compaction's cap on a replay
// (COMPACT_MAX_BYTES). Other rewritten segments are compressed as an s2
// block: about a third of the CPU of zstd's fastest level, for 35–50% more
// bytes than the client's gzip until compaction. Segments kept long enough
// to be transcoded are stored at the configured level, as every payload of
// theirs.
func (p *Packer) encodeRewritten(events []byte, attrs segment.Attributes) ([]byte, segment.Encoding, error) {
	if attrs.RetentionDays >= p.cfg.TranscodeMinRetention && p.cfg.Level != 0 {
		return p.store(events, segment.Plain, attrs.RetentionDays)
	}
	if n := int64(len(events)); p.cfg.RewrittenPlain && n <= maxPlainRewritten && int64(attrs.ID.SegmentID+1)*n <= maxPlainReplay {
		return events, segment.Plain, nil
	}
	if out, ok := segment.CompressS2(events); ok {
		return out, segment.S2, nil
	}
	return segment.CompressLevel(events, segment.LevelFastest), segment.Zstd, nil
}

// Bounds of what Pack stores uncompressed (see encodeRewritten): a segment
// of at most maxPlainRewritten bytes of events, in a replay's first
// maxPlainReplay bytes (about: the segment's number times its size). A
// replay then holds at most about 16 MiB plain where s2 would store 3–5
// MiB, a quarter of compaction's default cap.
const (
	maxPlainRewritten = 1 << 20
	maxPlainReplay    = 16 << 20
)

// applyRules runs the project's rules on a validated segment, whose
// decoded events (from scanDecode) are events, at spans (where the
// validating pass found each event; nil if it did not note all), whose
// Clear the pass set under check (see rules.Set.ApplySpans). It returns
// the events to seal (rewritten ones, validated again, in place of the
// payload) with their metadata and keep = true; keep = false when a rule
// dropped the segment (sampling); or an error: a *ruleRejection when a rule
// rejected it or its output is invalid, which Ingest sends to the reject
// topic. sameOffsets reports a rewrite that left every event where it was
// (rules.Verdict.SameOffsets). It runs inside the CPU slot: rules are CPU
// work, and modules are fetched and compiled by the background refresh,
// never here.
func (p *Packer) applyRules(ctx context.Context, attrs segment.Attributes, m Message, info segment.Info, events []byte, spans []rules.Span, check *segment.ScrubCheck) (data []byte, _ segment.Info, sameOffsets, keep bool, _ error) {
	// The decoded events are Pack's to mask in place, but for a plain
	// payload, which is the message's own (and goes to the reject topic
	// as it came if a later rule rejects the segment).
	v, err := p.rules.ApplySpans(ctx, attrs.ID, attrs.RetentionDays, m.Attributes, events, spans, check, rewritten(m.Data, events))
	if err != nil {
		return nil, info, false, false, fmt.Errorf("rules for %s: %w", attrs.ID, err)
	}
	if len(v.Tags) > 0 || len(v.Fingerprints) > 0 {
		// Kept for the replay-issues work; the values are the rule's
		// output (element descriptions, normalized messages), never
		// payload text, but only their count is logged.
		slog.DebugContext(ctx, "rules tagged segment", "segment", attrs.ID.String(), "tags", len(v.Tags), "fingerprints", len(v.Fingerprints))
	}
	switch v.Decision {
	case sdk.DecisionDrop:
		return nil, info, false, false, nil
	case sdk.DecisionReject:
		// The original payload goes to the reject topic: it may be
		// replayed after the rule is fixed. The topic is as private as
		// the bucket.
		return nil, info, false, false, &ruleRejection{reason: v.Reason}
	}
	if v.Events == nil {
		return m.Data, info, false, true, nil
	}
	// The rewritten events replace the payload, so the original is never
	// sealed; they must pass the same validation as a received payload.
	// Strings-mode rules (a PII scrub) only change string contents, which
	// Set checked, and never an event's type or timestamp: what validation
	// learned holds but the size, and a size within the limit needs no
	// second pass.
	maxRaw := p.cfg.Limits.MaxDecompressed
	if maxRaw <= 0 {
		maxRaw = segment.DefaultMaxDecompressed
	}
	if v.OnlyStrings && int64(len(v.Events)) <= maxRaw {
		rinfo := info
		rinfo.Encoding, rinfo.RawSize = segment.Plain, int64(len(v.Events))
		p.stats.Rewritten.Add(1)
		return v.Events, rinfo, v.SameOffsets, true, nil
	}
	rinfo, err := segment.Validate(v.Events, p.cfg.Limits)
	if reason, ok := segment.Reason(err); ok {
		return nil, info, false, false, &ruleRejection{reason: "rule_output:" + reason}
	}
	if err != nil {
		return nil, info, false, false, err
	}
	p.stats.Rewritten.Add(1)
	return v.Events, rinfo, false, true, nil
}

// hasRules reports whether the project of a segment has edge rules.
func (p *Packer) hasRules(attrs segment.Attributes) (bool, error) {
	if p.rules == nil {
		return false, nil
	}
	return p.rules.Has(attrs.ID.ProjectID)
}

// eventBufs recycles the buffers scanDecode decompresses segments of
// projects with edge rules into (see validate).
var eventBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledEvents is the largest events buffer kept for reuse: larger
// segments are rare and would pin memory in the pool.
const maxPooledEvents = 1 << 20

// ruleRejection is a segment an edge rule refused, or whose rewritten
// events are invalid: it goes to the reject topic with reason.
type ruleRejection struct{ reason string }

func (r *ruleRejection) Error() string { return "rejected by an edge rule: " + r.reason }

// rejectReason reports whether err refuses the message for good (invalid,
// or rejected by a rule) and the reject topic's reason.
func rejectReason(err error) (string, bool) {
	var rr *ruleRejection
	if errors.As(err, &rr) {
		return rr.reason, true
	}
	return segment.Reason(err)
}

// BuildRules loads the edge rules once (Pack must not store a segment
// before it knows the project's rules) and keeps refreshing them in the
// background every RULES_REFRESH until c closes.
func BuildRules(ctx context.Context, cfg config.Rules, db *store.DB, blobs blob.Store, c *closer.Stack) (*rules.Set, error) {
	lim := rules.DefaultLimits()
	lim.MemoryBytes = cfg.RulesMemoryBytes
	lim.Timeout = cfg.RulesTimeout
	lim.InitTimeout = max(lim.InitTimeout, 5*cfg.RulesTimeout)
	lim.MaxIdle = 2 * runtime.GOMAXPROCS(0)
	engine := rules.NewEngine(lim)
	c.Add(engine.Close)
	rs := rules.NewSet(engine, db, blobs, cfg.RulesMaxInputBytes)
	if err := rs.Refresh(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs.Run(bg, cfg.RulesRefresh)
	}()
	c.Add(func() { cancel(); <-done })
	return rs, nil
}
