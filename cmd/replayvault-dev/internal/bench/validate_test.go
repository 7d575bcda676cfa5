package bench

import (
	"context"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/workload"
)

// TestMeasureValidate checks that the validator comparison runs on a
// corpus and reports both speeds (no threshold: speeds are for the report).
func TestMeasureValidate(t *testing.T) {
	corpus := NewCorpus(workload.SizeDist{Median: 8 << 10, Min: 2 << 10, Max: 32 << 10, Sigma: 0.5}, 8, 1)
	res, err := MeasureValidate(context.Background(), corpus, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.MBPerS <= 0 || res.JSONValidMBPerS <= 0 || res.Ratio <= 0 {
		t.Fatalf("implausible result %+v", res)
	}
	t.Logf("%+v", res)
}
