package packer

import (
	"context"
	"log/slog"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/derive"
	"github.com/replayvault/replayvault/shared/segment"
)

// deriveSlices takes the console, network and timeline slices out of a
// recording segment and seals each under its own identity (same replay and
// segment id, the slice's type). It is a pass of its own over the
// decompressed payload until the validator offers a per-event hook; then
// derive.Slicer plugs into that instead. The slices are an index, not the
// record: if the payload cannot be sliced, the recording is stored without
// them.
func (p *Packer) deriveSlices(ctx context.Context, attrs segment.Attributes, data []byte, info segment.Info, kek *crypt.KEK) []*entry {
	doc, err := segment.Decode(info.Encoding, data, p.cfg.Limits.MaxDecompressed)
	var slices []derive.Slice
	if err == nil {
		slices, err = derive.From(doc)
	}
	if err != nil {
		slog.WarnContext(ctx, "slices not derived", "segment", attrs.ID.String(), "error", err)
		return nil
	}
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
