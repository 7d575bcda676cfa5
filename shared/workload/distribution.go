package workload

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// SizeDist draws the compressed size of a segment, as uploaded: log-normal
// around Median (most segments are small, a few are large), clamped to
// [Min, Max]. Sigma is the standard deviation of the size's logarithm; 1.0
// puts the 99th percentile near 10× the median.
type SizeDist struct {
	Median, Min, Max int
	Sigma            float64
}

// DefaultSizes is the benchmark's default: median 20 KB compressed with a
// long tail to 1 MB.
func DefaultSizes() SizeDist {
	return SizeDist{Median: 20 << 10, Min: 1 << 10, Max: 1 << 20, Sigma: 1.0}
}

// Validate reports a distribution that cannot be sampled.
func (d SizeDist) Validate() error {
	switch {
	case d.Min < 64:
		return fmt.Errorf("size distribution: min %d is below 64 bytes", d.Min)
	case d.Median < d.Min || d.Median > d.Max:
		return fmt.Errorf("size distribution: median %d is outside [min %d, max %d]", d.Median, d.Min, d.Max)
	case d.Sigma < 0 || math.IsNaN(d.Sigma) || d.Sigma > 4:
		return fmt.Errorf("size distribution: sigma %g is outside [0, 4]", d.Sigma)
	}
	return nil
}

// Sample returns one size in bytes.
func (d SizeDist) Sample(rng *rand.Rand) int {
	v := float64(d.Median) * math.Exp(d.Sigma*rng.NormFloat64())
	return int(min(max(v, float64(d.Min)), float64(d.Max)))
}

// String is the form ParseSizeDist reads.
func (d SizeDist) String() string {
	return fmt.Sprintf("median=%s,sigma=%g,min=%s,max=%s", formatBytes(d.Median), d.Sigma, formatBytes(d.Min), formatBytes(d.Max))
}

// ParseSizeDist reads "median=20KB,sigma=1,min=1KB,max=1MB"; omitted keys
// keep DefaultSizes' values. Sizes take B, KB or MB (powers of 1024).
func ParseSizeDist(s string) (SizeDist, error) {
	d := DefaultSizes()
	if strings.TrimSpace(s) == "" {
		return d, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return d, fmt.Errorf("size distribution %q: %q is not key=value", s, kv)
		}
		var err error
		switch k {
		case "median":
			d.Median, err = parseBytes(v)
		case "min":
			d.Min, err = parseBytes(v)
		case "max":
			d.Max, err = parseBytes(v)
		case "sigma":
			d.Sigma, err = strconv.ParseFloat(v, 64)
		default:
			err = errors.New("unknown key (want median, sigma, min, max)")
		}
		if err != nil {
			return d, fmt.Errorf("size distribution %q: %s: %w", s, k, err)
		}
	}
	return d, d.Validate()
}

func parseBytes(s string) (int, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	mult := 1
	switch {
	case strings.HasSuffix(s, "MB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MB")
	case strings.HasSuffix(s, "KB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KB")
	case strings.HasSuffix(s, "B"):
		s = strings.TrimSuffix(s, "B")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<40 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int(f * float64(mult)), nil
}

func formatBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// LengthDist draws how many segments a replay has: a bounded power law on
// [Min, Max], so that most replays are a few segments long while long
// sessions carry much of the volume. Alpha is the tail exponent; smaller
// means heavier.
type LengthDist struct {
	Min, Max int
	Alpha    float64
}

// DefaultLengths is the benchmark's default: 1 to 2,000 segments, median
// about 2, mean about 14.
func DefaultLengths() LengthDist { return LengthDist{Min: 1, Max: 2000, Alpha: 0.8} }

// Sample returns one replay length by inverting the bounded Pareto CDF.
func (l LengthDist) Sample(rng *rand.Rand) int {
	lo, hi, a := float64(l.Min), float64(l.Max)+1, l.Alpha
	u := rng.Float64()
	// F^-1(u) = lo / (1 - u(1 - (lo/hi)^a))^(1/a)
	x := lo / math.Pow(1-u*(1-math.Pow(lo/hi, a)), 1/a)
	return min(max(int(x), l.Min), l.Max)
}

// gzipRatio is about how much Segment's JSON shrinks under gzip (2.2 for
// 2 KB segments, 3 from 100 KB up); a first guess that CompressedSegment
// then corrects.
const gzipRatio = 2.9

// CompressedSegment returns a gzip payload whose size is within about 10%
// of target bytes, and the raw JSON array inside it. Segment 0 starts with
// a full snapshot, like Segment's.
func CompressedSegment(rng *rand.Rand, segmentID int, startMS int64, target int) (gz, raw []byte) {
	approx := max(int(float64(target)*gzipRatio), 64)
	for range 3 {
		raw = Segment(rng, segmentID, startMS, approx)
		gz = Gzip(raw)
		off := float64(len(gz)) / float64(target)
		if off > 0.9 && off < 1.1 {
			break
		}
		approx = max(int(float64(approx)/off), 64)
	}
	return gz, raw
}
