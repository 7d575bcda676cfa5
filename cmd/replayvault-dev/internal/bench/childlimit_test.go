package bench

import (
	"context"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/workload"
)

// startProbe serves a limit probe in this process and returns its address.
func startProbe(t *testing.T) string {
	t.Helper()
	addr, err := limitProbeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeLimitProbe(ctx, addr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeLimitProbe: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("limit probe not listening: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInProcessLimit runs the limit through a probe: every corpus payload
// goes through Prepare in the probe's process (a refused one would fail
// the request), the figures come back per segment, and with a pinned split
// the driver runs the same work on the other CPUs meanwhile.
func TestInProcessLimit(t *testing.T) {
	corpus := NewCorpus(workload.SizeDist{Median: 8 << 10, Min: 1 << 10, Max: 64 << 10, Sigma: 0.5}, 16, 1)
	addr := startProbe(t)
	for _, c := range []struct {
		name   string
		split  cpuSplit
		driver bool
	}{
		{"unpinned", cpuSplit{test: []int{0, 1}, rest: []int{0, 1}, all: []int{0, 1}}, false},
		{"pinned", cpuSplit{test: []int{1}, rest: []int{0}, all: []int{0, 1}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &runner{corpus: corpus, split: c.split}
			lim, err := r.inProcessLimit(context.Background(), addr, 300*time.Millisecond, 200)
			if err != nil {
				t.Fatal(err)
			}
			if lim.Segments == 0 || lim.Workers < 1 || lim.CPUPer1000 <= 0 || lim.ThreadCPUPer1000 <= 0 || lim.ProbeCPUS <= 0 ||
				lim.AtRateCPUPer1000 <= 0 || lim.AtRateThreadCPUPer1000 <= 0 || lim.AtRatePerS != 200 {
				t.Errorf("limit = %+v, want segments, workers and CPU, as fast as it goes and at 200/s", lim)
			}
			// Paced at 200/s for 0.3 s: about 60 segments (the first at
			// once, and the one a worker waits for when the time is up),
			// never more than the schedule allows.
			if lim.AtRateSegments < 10 || lim.AtRateSegments > 64 {
				t.Errorf("paced run did %d segments in 0.3 s at 200/s", lim.AtRateSegments)
			}
			// The workers' threads are part of the process.
			if lim.ThreadCPUPer1000 > lim.CPUPer1000*1.01 {
				t.Errorf("worker threads %.3f > process %.3f CPU s per 1000", lim.ThreadCPUPer1000, lim.CPUPer1000)
			}
			if got := lim.DriverCPUPer1000 > 0; got != c.driver {
				t.Errorf("driver's work on the other CPUs = %.3f, want some: %v", lim.DriverCPUPer1000, c.driver)
			}
			if lim.RestBusy < 0 || lim.RestBusy > 1 || math.IsNaN(lim.RestBusy) {
				t.Errorf("rest busy = %g", lim.RestBusy)
			}
		})
	}
}

// TestLimitProbeRefuses checks that a probe request without payloads or
// with a bad duration is an error, not a measurement of nothing.
func TestLimitProbeRefuses(t *testing.T) {
	addr := startProbe(t)
	one := []byte("x")
	valid := limitProbeRequest{Duration: time.Second, First: [][]byte{one}, Rest: [][]byte{one}}
	ok, err := valid.encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"duration":1000000}` + "\n",                        // no payloads
		`{"duration":0,"first":1,"rest":1}` + "\n\x01x\x01x", // no duration
		`{"duration":1000000,"first":1,"rest":1,"rate":-1}` + "\n\x01x\x01x",
		`{"duration":1000000,"first":1,"rest":1}` + "\n\x01x",                  // a payload short
		`{"duration":1000000,"first":1,"rest":1}` + "\n\x01x\xff\xff\xff\x7fx", // one too large
		string(ok[:len(ok)-1]),                                                 // cut
		"not json\n",
	} {
		_, err := postProbe(context.Background(), addr, []byte(body), time.Second)
		if err == nil || !strings.Contains(err.Error(), "500") {
			t.Errorf("probe(%s) = %v, want a 500", body, err)
		}
	}
}

// TestLimitFractionInProcess checks that limit_fraction uses the limit
// measured in the packer's process when there is one, and that the
// driver's fraction is reported beside it.
func TestLimitFractionInProcess(t *testing.T) {
	limit := LimitResult{CPUPer1000: 0.5}
	at90 := &StepResult{CPUPer1000: 0.8}
	for _, c := range []struct {
		name                         string
		in                           *InProcessLimit
		fraction, cpuBound, fromDrvr float64
	}{
		{"driver only", nil, 0.5 / 0.8, 0.5 / 0.8, 0.5 / 0.8},
		{"in process, not paced", &InProcessLimit{CPUPer1000: 0.45}, 0.45 / 0.8, 0.45 / 0.8, 0.5 / 0.8},
		{"in process, paced", &InProcessLimit{CPUPer1000: 0.45, AtRateCPUPer1000: 0.7}, 0.7 / 0.8, 0.45 / 0.8, 0.5 / 0.8},
	} {
		in := computeIngest(limit, DesignResult{At90: at90, Limit: c.in}, DesignResult{At90: at90})
		for _, f := range []struct {
			name      string
			got, want float64
		}{
			{"limit_fraction", float64(in.LimitFraction), c.fraction},
			{"limit_fraction_cpu_bound", float64(in.LimitFractionCPUBound), c.cpuBound},
			{"limit_fraction_driver", float64(in.LimitFractionDriver), c.fromDrvr},
		} {
			if math.Abs(f.got-f.want) > 1e-9 {
				t.Errorf("%s: %s = %g, want %g", c.name, f.name, f.got, f.want)
			}
		}
	}
}
