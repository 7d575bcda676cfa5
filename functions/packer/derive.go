package packer

import (
	"context"
	"log/slog"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derive"
	"github.com/replayvault/replayvault/shared/detect"
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
}

// scan validates a payload and, in the same pass (the validator's event
// hook), feeds issue detection and, for a recording segment with
// DeriveSlices, takes the console, network and timeline slices out of it:
// each segment is decompressed and scanned once.
func (p *Packer) scan(attrs segment.Attributes, data []byte) (segment.Info, pass, error) {
	ps := pass{issues: detect.NewStream(detect.Rules{}, detectLimits)}
	if p.cfg.DeriveSlices && attrs.ID.Type == segment.DefaultType {
		ps.slicer = new(derive.Slicer)
	}
	d, s := ps.issues, ps.slicer
	hook := &segment.EventHook{
		OnEvent: func(m segment.EventMeta) {
			d.Event(m.Type, m.HasType, m.Timestamp, m.Raw)
			if s != nil && m.Raw != nil && len(m.Raw) <= maxSliceEvent {
				s.Event(m.Type, m.HasType, m.Timestamp, m.Raw)
			}
		},
		// detect.RawTypes holds the slicer's types (meta, custom, plugin).
		RawTypes: detect.RawTypes,
		MaxRaw:   detectLimits.MaxInput,
	}
	info, err := segment.ValidateEvents(data, p.cfg.Limits, hook)
	if err != nil {
		return info, pass{}, err // what the hook gathered is discarded
	}
	return info, ps, nil
}

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
