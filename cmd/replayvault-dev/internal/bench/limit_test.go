package bench

import (
	"context"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/workload"
)

// TestMeasureLimit runs the CPU-bound limit briefly: every corpus payload
// goes through Pack's own per-segment work (a payload it refused would end
// the measurement with an error), and both the work and the envelope cost
// CPU.
func TestMeasureLimit(t *testing.T) {
	corpus := NewCorpus(workload.SizeDist{Median: 8 << 10, Min: 1 << 10, Max: 64 << 10, Sigma: 0.5}, 16, 1)
	res, err := MeasureLimit(context.Background(), corpus, 300*time.Millisecond, FormDirect)
	if err != nil {
		t.Fatal(err)
	}
	if res.Segments == 0 || res.CPUPer1000 <= 0 || res.EnvelopeCPUPer1000 <= 0 || res.SharedCPUPer1000 <= 0 {
		t.Errorf("limit = %+v, want segments and CPU for the work and the envelope", res)
	}
}
