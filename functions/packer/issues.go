package packer

import (
	"context"
	"log/slog"

	"github.com/replayvault/replayvault/shared/detect"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// detectLimits bound detection per segment: a segment whose JSON is larger
// (in practice a big full snapshot) gets no issues, which keeps the bytes
// detection holds and parses within a fixed budget.
var detectLimits = detect.Limits{MaxInput: 16 << 20, MaxEvents: 100_000, MaxNodes: 100_000, MaxOccurrences: 200}

// detectIssues returns the issues that detection found in a validated
// segment during its scan (see Packer.scan). Detection is best effort: a
// segment it cannot read is still stored, just without issues.
func (p *Packer) detectIssues(ctx context.Context, id segment.ID, info segment.Info, d *detect.Stream) []store.Occurrence {
	if d == nil || info.RawSize > int64(detectLimits.MaxInput) {
		return nil
	}
	found, err := d.Finish()
	if err != nil {
		slog.InfoContext(ctx, "issue detection skipped", "segment", id.String(), "error", err)
		return nil
	}
	occs := make([]store.Occurrence, len(found))
	for i, o := range found {
		occs[i] = store.Occurrence{TS: o.TS, Kind: o.Kind, EdgeFP: o.EdgeFP, FinalFP: o.FinalFP, Title: o.Title,
			Details: o.Details.JSON()}
	}
	return occs
}
