package workload

import (
	"math"
	"slices"
)

// MedianCI returns the median of xs and a 95% confidence interval of it
// from order statistics (the ranks n/2 ± 1.96·√n/2, which hold whatever
// the distribution); with few values the interval is the whole range.
// Benchmarks that compare rounds on a noisy machine report it.
func MedianCI(xs []float64) (med, lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	half := 1.96 * math.Sqrt(float64(n)) / 2
	j := max(int(math.Floor(float64(n)/2-half)), 1)  // 1-based rank
	k := min(int(math.Ceil(float64(n)/2+half))+1, n) // 1-based rank
	return med, s[j-1], s[k-1]
}
