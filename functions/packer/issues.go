package packer

import (
	"context"
	"log/slog"

	"github.com/replayvault/replayvault/shared/detect"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// detectLimits bound detection per segment: a segment whose JSON is larger
// (in practice a big full snapshot) is not scanned, which keeps the second
// decompression and the parse within a fixed budget.
var detectLimits = detect.Limits{MaxInput: 16 << 20, MaxEvents: 100_000, MaxNodes: 100_000, MaxOccurrences: 200}

// detectIssues finds the issues in a validated segment. Detection is best
// effort: a segment it cannot scan is still stored, just without issues.
func (p *Packer) detectIssues(ctx context.Context, id segment.ID, data []byte, info segment.Info) []store.Occurrence {
	if info.RawSize > int64(detectLimits.MaxInput) {
		return nil
	}
	raw, err := segment.Decode(info.Encoding, data, int64(detectLimits.MaxInput))
	if err != nil {
		return nil // valid a moment ago; only a limit can refuse it now
	}
	found, err := detect.Detect(raw, detect.Rules{}, detectLimits)
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
