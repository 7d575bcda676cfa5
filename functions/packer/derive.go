package packer

import (
	"context"
	"log/slog"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derive"
	"github.com/replayvault/replayvault/shared/segment"
)

// maxSliceEvent caps the bytes of one event the validator hands to the
// slicer (and buffers, when the event spans decompressed chunks); a longer
// console or network event stays in the recording but not in its slice.
const maxSliceEvent = 256 << 10

// scan validates a payload; for a recording segment, with DeriveSlices, it
// also takes the console, network and timeline slices out of it in the same
// pass (the validator's event hook) and returns the slicer holding them.
func (p *Packer) scan(attrs segment.Attributes, data []byte) (segment.Info, *derive.Slicer, error) {
	if !p.cfg.DeriveSlices || attrs.ID.Type != segment.DefaultType {
		info, err := segment.Validate(data, p.cfg.Limits)
		return info, nil, err
	}
	s := new(derive.Slicer)
	info, err := segment.ValidateEvents(data, p.cfg.Limits, s.Hook(maxSliceEvent))
	if err != nil {
		return info, nil, err // what the hook gathered is discarded
	}
	return info, s, nil
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
