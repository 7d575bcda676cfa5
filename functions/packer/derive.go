package packer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derive"
	"github.com/replayvault/replayvault/shared/detect"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/segment"
)

// maxSliceEvent caps the bytes of one event the slicer takes; a longer
// console or network event stays in the recording but not in its slice.
const maxSliceEvent = 256 << 10

// pass is what the validator's pass over a segment gathered for later
// stages besides its Info.
type pass struct {
	// slicer holds the console, network and timeline slices of a
	// recording segment (nil unless DeriveSlices).
	slicer *derive.Slicer
	// issues holds what issue detection saw (issues.go).
	issues *detect.Stream
	// held is, for a segment the project's edge rules may rewrite, what
	// the pass told of each event, kept for feed instead of given to the
	// slicer and detection: they must see the events as stored.
	held []heldEvent
	// spans[i] is where held[i] is in the decompressed events (also for
	// the rules' walk, see rules.Set.ApplySpans).
	spans []rules.Span
	// check is the rules' ScrubCheck the pass ran with, which set the
	// spans' Clear (nil: none).
	check *segment.ScrubCheck
	// over: more than maxHeld events, so feed scans the stored events
	// again instead (and held is not all of them).
	over bool
	// buf is held's and spans' pooled storage.
	buf *heldBuf
}

// heldEvent is the validator's metadata of one event; raw: the hook had
// its JSON.
type heldEvent struct {
	typ, ts int64
	hasType bool
	raw     bool
}

type heldBuf struct {
	held  []heldEvent
	spans []rules.Span
}

// maxHeld bounds the events whose metadata a pass holds (detection reads
// no more of a segment); a segment with more is scanned again if a rule
// rewrites it.
const maxHeld = 100_000

// newPass returns the slicer and detection for a segment of attrs.
func (p *Packer) newPass(attrs segment.Attributes) pass {
	ps := pass{issues: detect.NewStream(detect.Rules{}, detectLimits)}
	if p.cfg.DeriveSlices && attrs.ID.Type == segment.DefaultType {
		ps.slicer = new(derive.Slicer)
	}
	return ps
}

// event gives one event to detection and the slicer.
func (ps *pass) event(typ int64, hasType bool, ts int64, raw []byte) {
	ps.issues.Event(typ, hasType, ts, raw)
	if ps.slicer != nil && raw != nil && len(raw) <= maxSliceEvent {
		ps.slicer.Event(typ, hasType, ts, raw)
	}
}

// scan validates a payload and, in the same pass (the validator's event
// hook), feeds issue detection and, for a recording segment with
// DeriveSlices, takes the console, network and timeline slices out of it:
// each segment is decompressed and scanned once. With hold (the payload
// is the decoded events of a project with edge rules) it only notes each
// event, for feed to hand the stored events over once the rules ran.
func (p *Packer) scan(attrs segment.Attributes, data []byte, hold bool) (segment.Info, pass, error) {
	ps, hook := p.newScan(attrs, hold)
	info, err := segment.ValidateEvents(data, p.cfg.Limits, hook)
	if err != nil {
		ps.release()
		return info, pass{}, err // what the hook gathered is discarded
	}
	return info, *ps, nil
}

// scanDecode is scan with hold for the payload of a project with edge
// rules, which read the decoded events: it decompresses the payload into
// buf's storage in the validating pass (segment.ValidateDecode) and
// returns the decoded events too.
func (p *Packer) scanDecode(attrs segment.Attributes, payload, buf []byte) (segment.Info, []byte, pass, error) {
	ps, hook := p.newScan(attrs, true)
	info, events, err := segment.ValidateDecode(payload, p.cfg.Limits, hook, buf)
	if err != nil {
		ps.release()
		return info, nil, pass{}, err
	}
	return info, events, *ps, nil
}

// newScan returns a pass for a segment of attrs and the validator's hook
// that fills it (see scan).
func (p *Packer) newScan(attrs segment.Attributes, hold bool) (*pass, *segment.EventHook) {
	ps := p.newPass(attrs)
	hook := &segment.EventHook{
		OnEvent: func(m segment.EventMeta) { ps.event(m.Type, m.HasType, m.Timestamp, m.Raw) },
		// detect.RawTypes holds the slicer's types (meta, custom, plugin).
		RawTypes: detect.RawTypes,
		MaxRaw:   detectLimits.MaxInput,
	}
	if hold {
		ps.buf = heldBufs.Get().(*heldBuf)
		ps.held, ps.spans = ps.buf.held[:0], ps.buf.spans[:0]
		if p.rules != nil {
			// The rules' pre-filter, folded into this pass.
			ps.check = p.rules.ScrubCheck(attrs.ID.ProjectID)
			hook.Scrub = ps.check
		}
		hook.OnEvent = func(m segment.EventMeta) {
			if len(ps.held) >= maxHeld {
				ps.over = true
				return
			}
			ps.held = append(ps.held, heldEvent{typ: m.Type, ts: m.Timestamp, hasType: m.HasType, raw: m.Raw != nil})
			ps.spans = append(ps.spans, rules.Span{Start: m.Start, End: m.End, Clear: !m.MayScrub, NoTags: !m.TagName})
		}
	}
	return &ps, hook
}

// feed hands the events of a scan with hold to detection and the slicer,
// from the events as stored: the decoded events when no rule rewrote them,
// else the rewritten ones. A rewrite that kept every event where it was
// (sameOffsets: a scrub's masks) is read at the offsets the validator
// noted, so the masked text, never the original, reaches the slices and
// issues; any other rewrite is scanned again.
func (p *Packer) feed(attrs segment.Attributes, ps pass, stored []byte, sameOffsets bool) (pass, error) {
	defer ps.release()
	if ps.over || !sameOffsets {
		_, fresh, err := p.scan(attrs, stored, false)
		return fresh, err
	}
	out := p.newPass(attrs)
	for i, e := range ps.held {
		var raw []byte
		if e.raw {
			sp := ps.spans[i]
			if sp.Start < 0 || sp.End > int64(len(stored)) || sp.Start >= sp.End {
				return pass{}, fmt.Errorf("event at [%d, %d) outside %d bytes of events", sp.Start, sp.End, len(stored)) // never
			}
			raw = stored[sp.Start:sp.End]
		}
		out.event(e.typ, e.hasType, e.ts, raw)
	}
	return out, nil
}

// release returns a pass's held metadata for reuse.
func (ps *pass) release() {
	if ps.buf != nil && cap(ps.held) <= maxPooledHeld {
		ps.buf.held, ps.buf.spans = ps.held[:0], ps.spans[:0]
		heldBufs.Put(ps.buf)
	}
	ps.held, ps.spans, ps.buf = nil, nil, nil
}

// maxPooledHeld is the largest held slice kept for reuse (640 KiB): larger
// ones are rare and would pin memory in the pool.
const maxPooledHeld = 16 << 10

var heldBufs = sync.Pool{New: func() any { return new(heldBuf) }}

// sealSlices seals each slice under its own identity (the recording's
// replay and segment id, the slice's type) for the recording's batch. The
// slices are an index, not the record: one that cannot be sealed is left
// out, and the recording is stored all the same.
func (p *Packer) sealSlices(ctx context.Context, attrs segment.Attributes, slices []derive.Slice, kek *crypt.KEK) []*entry {
	var out []*entry
	for _, sl := range slices {
		id := attrs.ID
		id.Type = sl.Type
		sealed, err := crypt.Seal(kek, id.AAD(), segment.Compress(sl.JSON))
		if err != nil {
			slog.WarnContext(ctx, "slice not sealed", "segment", id.String(), "error", err)
			continue
		}
		out = append(out, &entry{
			id:         id,
			retention:  attrs.RetentionDays,
			info:       sl.Info,
			encoding:   segment.Zstd,
			ciphertext: sealed.Ciphertext,
			wrappedDEK: sealed.WrappedDEK,
			kekID:      kek.ID,
		})
	}
	return out
}

// rewritten reports whether a rule replaced the payload (applyRules returns
// the same slice when it did not).
func rewritten(orig, now []byte) bool {
	return len(orig) != len(now) || len(now) > 0 && &orig[0] != &now[0]
}
