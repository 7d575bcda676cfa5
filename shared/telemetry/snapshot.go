package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Point is one time series of a Snapshot: a counter's sum or a gauge's
// value, or a histogram's count, sum and buckets.
type Point struct {
	// Attrs are the series' attributes, as "k=v" joined by ",".
	Attrs string  `json:"attrs,omitempty"`
	Value float64 `json:"value"` // sum, gauge value, or histogram sum
	Count uint64  `json:"count,omitempty"`
	// Bounds and Buckets are a histogram's boundaries and per-bucket
	// counts (len(Bounds)+1).
	Bounds  []float64 `json:"bounds,omitempty"`
	Buckets []uint64  `json:"buckets,omitempty"`
}

// Snapshot is every metric's points, by name: the dev stack serves it as
// JSON and tests read it.
type Snapshot map[string][]Point

// ErrNoSnapshot means the Telemetry was not set up with ExporterMemory.
var ErrNoSnapshot = errors.New("telemetry: no in-memory reader (REPLAYVAULT_TELEMETRY=memory)")

// Snapshot collects the current cumulative values (ExporterMemory only).
func (t *Telemetry) Snapshot(ctx context.Context) (Snapshot, error) {
	if t == nil || t.snapshot == nil {
		return nil, ErrNoSnapshot
	}
	return Collect(ctx, t.snapshot)
}

// Collect reads r into a Snapshot.
func Collect(ctx context.Context, r sdkmetric.Reader) (Snapshot, error) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		return nil, fmt.Errorf("telemetry: collect: %w", err)
	}
	s := Snapshot{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			s[m.Name] = append(s[m.Name], points(m.Data)...)
		}
	}
	for _, ps := range s {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Attrs < ps[j].Attrs })
	}
	return s, nil
}

func points(d metricdata.Aggregation) []Point {
	var out []Point
	switch d := d.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, Point{Attrs: attrString(p.Attributes), Value: float64(p.Value)})
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			out = append(out, Point{Attrs: attrString(p.Attributes), Value: p.Value})
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, Point{Attrs: attrString(p.Attributes), Value: float64(p.Value)})
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			out = append(out, Point{Attrs: attrString(p.Attributes), Value: p.Value})
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			out = append(out, Point{Attrs: attrString(p.Attributes), Value: float64(p.Sum), Count: p.Count, Bounds: p.Bounds, Buckets: p.BucketCounts})
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, Point{Attrs: attrString(p.Attributes), Value: p.Sum, Count: p.Count, Bounds: p.Bounds, Buckets: p.BucketCounts})
		}
	}
	return out
}

func attrString(s attribute.Set) string {
	kv := s.ToSlice()
	parts := make([]string, len(kv))
	for i, a := range kv {
		parts[i] = string(a.Key) + "=" + a.Value.String()
	}
	return strings.Join(parts, ",")
}

// Total is the sum of name's values over every series whose attributes
// contain all of match ("k=v" each).
func (s Snapshot) Total(name string, match ...string) float64 {
	var v float64
	for _, p := range s[name] {
		if matches(p.Attrs, match) {
			v += p.Value
		}
	}
	return v
}

// Count is the number of observations of histogram name over the series
// matching match.
func (s Snapshot) Count(name string, match ...string) uint64 {
	var n uint64
	for _, p := range s[name] {
		if matches(p.Attrs, match) {
			n += p.Count
		}
	}
	return n
}

func matches(attrs string, match []string) bool {
	have := strings.Split(attrs, ",")
	for _, m := range match {
		found := false
		for _, h := range have {
			if h == m {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
