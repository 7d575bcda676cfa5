package bench

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"
)

// StepSpec is one open-loop load step, modelled on how Pub/Sub push drives
// a Cloud Run instance: messages arrive at Rate per second (a Poisson
// process) for Duration whatever happens to earlier ones; each is pushed
// as an HTTP request as soon as fewer than Cap pushes are unanswered (the
// instance's concurrency); beyond that they wait in the subscription's
// backlog.
type StepSpec struct {
	Rate     float64
	Duration time.Duration
	Cap      int
	// Bound is the ack latency (arrival to ack, backlog included) that
	// the step's p99 must stay within to count as sustained.
	Bound time.Duration
	// Drain is how long after the arrival window outstanding pushes may
	// take before the step gives up on them.
	Drain time.Duration
}

// sample is one message's fate, in offsets from the step's start.
type sample struct {
	arrive, send, done time.Duration
	status             int // HTTP status; 0 when the request failed
	bytes              int
}

// drive runs one step against url and returns every message's sample plus
// how many arrived but were never pushed.
func drive(ctx context.Context, hc *http.Client, url string, stream *Stream, spec StepSpec, rng *rand.Rand) (samples []sample, unsent int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exp := func() time.Duration {
		return time.Duration(rng.ExpFloat64() / spec.Rate * float64(time.Second))
	}
	done := make(chan sample, spec.Cap)
	samples = make([]sample, 0, int(spec.Rate*spec.Duration.Seconds()*1.2)+16)
	var queue []time.Duration // arrival offsets waiting to be pushed
	outstanding := 0
	next := exp()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	deadline := spec.Duration + spec.Drain
	for {
		now := time.Since(start)
		for next <= now && next < spec.Duration {
			queue = append(queue, next)
			next += exp()
		}
		for outstanding < spec.Cap && len(queue) > 0 {
			arrive := queue[0]
			queue = queue[1:]
			m := stream.Next()
			outstanding++
			go func() { done <- push(ctx, hc, url, m, arrive, start) }()
		}
		if now >= spec.Duration && len(queue) == 0 && outstanding == 0 {
			return samples, 0
		}
		if now >= deadline {
			// Give up: cancel what is in flight and count it as failed.
			cancel()
			for ; outstanding > 0; outstanding-- {
				samples = append(samples, <-done)
			}
			return samples, len(queue)
		}
		wait := deadline - now
		if next < spec.Duration {
			wait = min(wait, next-now)
		}
		timer.Reset(max(wait, 0))
		select {
		case s := <-done:
			outstanding--
			samples = append(samples, s)
			// Collect whatever else finished without sleeping again.
			for more := true; more; {
				select {
				case s := <-done:
					outstanding--
					samples = append(samples, s)
				default:
					more = false
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

// push sends one message in its form: as Ingest's direct delivery posts
// it (Pack's main path, PACK_URL), or as a Pub/Sub push subscription does
// (the JSON body, no CloudEvent headers; terraform/pubsub.tf).
func push(ctx context.Context, hc *http.Client, url string, m Message, arrive time.Duration, start time.Time) sample {
	s := sample{arrive: arrive, send: time.Since(start), bytes: m.Bytes}
	req, err := http.NewRequestWithContext(ctx, m.Method, url, bytes.NewReader(m.Body))
	if err != nil {
		s.done = time.Since(start)
		return s
	}
	req.Header.Set("Content-Type", m.ContentType)
	resp, err := hc.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.status = resp.StatusCode
	}
	s.done = time.Since(start)
	return s
}

// newPushClient returns an HTTP client that keeps a connection per
// possible outstanding push, like Pub/Sub's push senders.
func newPushClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency + 16,
			MaxIdleConnsPerHost: concurrency + 16,
			IdleConnTimeout:     5 * time.Minute,
			DisableCompression:  true,
		},
	}
}

// StepResult is what one load step measured.
type StepResult struct {
	Label       string  `json:"label"`
	OfferedPerS float64 `json:"offered_per_s"`
	DurationS   float64 `json:"duration_s"`
	Arrived     int     `json:"arrived"`
	Acked       int     `json:"acked"`
	Nacked      int     `json:"nacked"` // answered non-2xx
	Failed      int     `json:"failed"` // no answer (error or given up)
	Unsent      int     `json:"unsent"` // still in the backlog at the end
	// AckedPerS is acks over the arrival window.
	AckedPerS float64 `json:"acked_per_s"`
	// ThroughputPerS is acks per second between the first ack and the
	// last: the capacity when the step keeps the target busy throughout.
	ThroughputPerS float64 `json:"throughput_per_s"`
	// Ack latency from push to answer (what the handler holds a request),
	// and delay from arrival to answer (backlog included), in ms.
	AckP50MS   float64 `json:"ack_p50_ms"`
	AckP99MS   float64 `json:"ack_p99_ms"`
	AckMaxMS   float64 `json:"ack_max_ms"`
	DelayP50MS float64 `json:"delay_p50_ms"`
	DelayP99MS float64 `json:"delay_p99_ms"`
	// MBPerS is compressed payload megabytes (10^6) acked per second.
	MBPerS float64 `json:"mb_per_s"`
	// CPUS is the CPU seconds the process under test used during the
	// step, from its own accounting; CPUPer1000 divides by acks.
	CPUS       float64 `json:"cpu_s"`
	SysS       float64 `json:"cpu_sys_s"` // the kernel's part of CPUS
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	// CPUUtil is CPUS over the arrival window, in CPUs: the work one
	// second of load costs (queued work finishing after the window counts).
	CPUUtil float64 `json:"cpu_util"`
	PeakRSS int64   `json:"peak_rss_bytes"`
	// RestBusy is how busy the other CPUs (driver, stand-ins, PostgreSQL,
	// anything else on the machine) were, 0 to 1; Steal is the share of
	// all CPUs' time the hypervisor gave to other machines.
	RestBusy  float64 `json:"rest_cpus_busy"`
	Steal     float64 `json:"steal"`
	Ops       Counts  `json:"ops"`
	Sustained bool    `json:"sustained"`
	Why       string  `json:"why,omitempty"`
	// Bottleneck says what ran out when a step was not sustained: "process
	// under test" (its CPUs were busy), "driver and stand-ins" (the other
	// CPUs were), or "neither CPU" (waiting: latency, locks, scheduling).
	Bottleneck string `json:"bottleneck,omitempty"`
	wall       time.Duration
}

// predictCapacity estimates the rate at which a step's load would fill
// either the CPUs of the process under test or the others.
func predictCapacity(s StepResult, testCPUs int) float64 {
	if s.Acked == 0 || s.CPUPer1000 <= 0 {
		return 0
	}
	p := float64(testCPUs) / s.CPUPer1000 * 1000
	if s.RestBusy > 0.05 {
		p = min(p, s.AckedPerS/s.RestBusy)
	}
	return p
}

// saturated is the share of its CPUs at which the process under test is
// saturated: a step that needed more is not sustained, as queues would
// grow on a longer run.
const saturated = 0.9

// bottleneck names what ran out in a step that was not sustained.
func bottleneck(s StepResult, testCPUs int) string {
	switch {
	case s.Sustained:
		return ""
	case s.CPUUtil >= 0.85*float64(testCPUs):
		return "process under test"
	case s.RestBusy >= 0.9:
		return "driver and stand-ins"
	}
	return "neither CPU"
}

// summarize fills the latency, throughput and verdict fields from samples.
func summarize(spec StepSpec, samples []sample, unsent int) StepResult {
	r := StepResult{OfferedPerS: spec.Rate, DurationS: spec.Duration.Seconds(), Arrived: len(samples) + unsent, Unsent: unsent}
	var acks, delays []time.Duration
	var bytes int64
	first, last := time.Duration(math.MaxInt64), time.Duration(0)
	for _, s := range samples {
		switch {
		case s.status >= 200 && s.status < 300:
			r.Acked++
			acks = append(acks, s.done-s.send)
			delays = append(delays, s.done-s.arrive)
			bytes += int64(s.bytes)
			first, last = min(first, s.done), max(last, s.done)
		case s.status != 0:
			r.Nacked++
		default:
			r.Failed++
		}
	}
	secs := spec.Duration.Seconds()
	r.AckedPerS = float64(r.Acked) / secs
	if r.Acked > 1 && last > first {
		r.ThroughputPerS = float64(r.Acked-1) / (last - first).Seconds()
	}
	r.MBPerS = float64(bytes) / 1e6 / secs
	slices.Sort(acks)
	slices.Sort(delays)
	r.AckP50MS, r.AckP99MS = ms(quantile(acks, 0.5)), ms(quantile(acks, 0.99))
	if len(acks) > 0 {
		r.AckMaxMS = ms(acks[len(acks)-1])
	}
	r.DelayP50MS, r.DelayP99MS = ms(quantile(delays, 0.5)), ms(quantile(delays, 0.99))

	// Sustained: every message acked, none left behind, and the
	// arrival-to-ack p99 within the bound (the step also checks the
	// process's CPU; see saturated).
	lost := r.Nacked + r.Failed + r.Unsent
	switch {
	case r.Arrived == 0:
		r.Why = "nothing arrived"
	case lost > 0:
		r.Why = "not acked: " + itoa(r.Nacked) + " nacked, " + itoa(r.Failed) + " failed, " + itoa(r.Unsent) + " never pushed"
	case r.DelayP99MS > ms(spec.Bound):
		r.Why = "p99 arrival-to-ack " + fmtMS(r.DelayP99MS) + " > bound " + fmtMS(ms(spec.Bound))
	default:
		r.Sustained = true
	}
	return r
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
