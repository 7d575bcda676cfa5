package workload

import "testing"

func TestMedianCI(t *testing.T) {
	xs := make([]float64, 40)
	for i := range xs {
		xs[i] = float64(39 - i) // 0..39, reversed
	}
	// n = 40: ranks floor(20 - 6.2) = 13 and ceil(1 + 20 + 6.2) = 28, around
	// the median rank 20.5: the values 12 and 27.
	if med, lo, hi := MedianCI(xs); med != 19.5 || lo != 12 || hi != 27 {
		t.Errorf("MedianCI(0..39) = %v, %v, %v, want 19.5, 12, 27", med, lo, hi)
	}
	if med, lo, hi := MedianCI([]float64{3, 1, 2}); med != 2 || lo != 1 || hi != 3 {
		t.Errorf("MedianCI(3 values) = %v, %v, %v, want 2 and the whole range", med, lo, hi)
	}
}
