package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/replayvault/replayvault/shared/segment"
)

// ValidateResult compares Pack's JSON validator with encoding/json.Valid
// on the decompressed JSON of corpus payloads, in the same run.
type ValidateResult struct {
	// MBPerS is segment.Validate's speed on plain JSON, in MB of JSON per
	// CPU second.
	MBPerS float64 `json:"mb_per_s"`
	// JSONValidMBPerS is encoding/json.Valid's on the same bytes.
	JSONValidMBPerS float64 `json:"json_valid_mb_per_s"`
	// Ratio is MBPerS ÷ JSONValidMBPerS.
	Ratio float64 `json:"ratio"`
}

// MeasureValidate runs segment.Validate and json.Valid in turns on the same
// decompressed payloads, on one locked thread, for about d, and compares
// their CPU time.
func MeasureValidate(ctx context.Context, corpus *Corpus, d time.Duration) (ValidateResult, error) {
	var raws [][]byte
	for _, set := range [][]Payload{corpus.First, corpus.Rest} {
		for i := range min(len(set), 16) {
			raw, err := segment.Decode(segment.Gzip, set[i].Gzip, 0)
			if err != nil {
				return ValidateResult{}, fmt.Errorf("corpus payload: %w", err)
			}
			raws = append(raws, raw)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ours, theirs time.Duration
	var bytes int64
	deadline := time.Now().Add(d)
	for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		raw := raws[i%len(raws)]
		t0 := threadCPU()
		if _, err := segment.Validate(raw, segment.Limits{}); err != nil {
			return ValidateResult{}, fmt.Errorf("validate corpus payload: %w", err)
		}
		t1 := threadCPU()
		if !json.Valid(raw) {
			return ValidateResult{}, fmt.Errorf("json.Valid refuses a corpus payload")
		}
		ours += t1 - t0
		theirs += threadCPU() - t1
		bytes += int64(len(raw))
	}
	if ours <= 0 || theirs <= 0 {
		return ValidateResult{}, ctx.Err()
	}
	mb := float64(bytes) / 1e6
	res := ValidateResult{MBPerS: mb / ours.Seconds(), JSONValidMBPerS: mb / theirs.Seconds()}
	res.Ratio = res.MBPerS / res.JSONValidMBPerS
	return res, ctx.Err()
}
