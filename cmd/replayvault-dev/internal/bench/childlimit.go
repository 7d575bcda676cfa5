package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayvault/replayvault/shared/segment"
)

// InProcessLimit is the CPU-bound limit measured inside the process under
// test, in the conditions its load steps ran in: the same pinning and
// GOMAXPROCS, the same GOGC and GOMEMLIMIT, the same heap (what Pack holds
// between requests), right after its 90% step, while this process keeps
// the other CPUs as busy as the driver, stand-ins and PostgreSQL kept them
// during that step (it runs the same work there). The driver's limit
// (LimitResult), measured before the load on every CPU of an idle machine,
// is not like for like with the packer's CPU per segment in its steps;
// this one is, and ingest.limit_fraction uses it.
//
// The work is the driver limit's: Packer.Prepare over the corpus, on a
// packer with Pack's defaults, one worker per CPU of the process
// (GOMAXPROCS), run by the limit probe (ServeLimitProbe) that the
// benchmark's function child (`replayvault-dev function`, never the
// production binary) starts beside the function.
//
// It runs twice: as fast as it goes (CPU-bound, as the driver's limit),
// and paced at the rate of the 90% step, so that the CPU idles between
// segments as it did for the packer in that step. On a VM the same work
// costs measurably more CPU when the CPU idles between segments (caches
// and predictors go cold while the vCPU halts: 0.45 vs 0.54–0.57 ms per
// segment with 0.2–3 ms sleeps between segments on this machine's 2
// vCPUs), so only the paced figure is like for like with the packer's
// CPU per segment at 90%; limit_fraction uses it.
type InProcessLimit struct {
	// Workers is the process's GOMAXPROCS.
	Workers  int     `json:"workers"`
	Segments int64   `json:"segments"`
	WallS    float64 `json:"wall_s"`
	// CPUPer1000 is the process's CPU (every thread: the workers, GC, the
	// idle function) per 1000 segments: what the packer's figure counts.
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	// ThreadCPUPer1000 is the workers' own threads only (no background GC).
	ThreadCPUPer1000 float64 `json:"thread_cpu_s_per_1000"`
	// DriverCPUPer1000 is the same work in this process on the other CPUs
	// at the same time (what kept them busy).
	DriverCPUPer1000 float64 `json:"driver_cpu_s_per_1000"`
	// RestBusy is the other CPUs' busy share during the probe.
	RestBusy float64 `json:"rest_busy"`
	// AtRatePerS is the rate of the paced run (the 90% step's);
	// AtRateCPUPer1000 and AtRateThreadCPUPer1000 are its figures.
	AtRatePerS             float64 `json:"at_rate_per_s"`
	AtRateSegments         int64   `json:"at_rate_segments"`
	AtRateCPUPer1000       float64 `json:"at_rate_cpu_s_per_1000"`
	AtRateThreadCPUPer1000 float64 `json:"at_rate_thread_cpu_s_per_1000"`
	// ProbeCPUS is everything the probe cost the process (receiving the
	// corpus included): the packer's life-long CPU leaves it out.
	ProbeCPUS float64 `json:"probe_cpu_s"`
}

// LimitProbeEnv names the address the limit probe listens on in a
// function child of the benchmark.
const LimitProbeEnv = "REPLAYVAULT_DEV_LIMIT_PROBE"

// limitProbeRequest asks the probe to run the limit's work for Duration,
// at Rate segments per second (0: as fast as it goes), on First (replays'
// first segments) and Rest. On the wire it is this header as one JSON line
// (payload counts, not payloads), then each payload as a uvarint length
// and its bytes: the probe holds no more than the payloads themselves, so
// it adds little to the process's peak memory.
type limitProbeRequest struct {
	Duration    time.Duration `json:"duration"`
	Rate        float64       `json:"rate"`
	NFirst      int           `json:"first"`
	NRest       int           `json:"rest"`
	First, Rest [][]byte      `json:"-"`
}

// encode returns the request as the probe reads it.
func (q limitProbeRequest) encode() ([]byte, error) {
	q.NFirst, q.NRest = len(q.First), len(q.Rest)
	head, err := json.Marshal(q)
	if err != nil {
		return nil, err
	}
	b := append(head, '\n')
	for _, p := range append(append([][]byte(nil), q.First...), q.Rest...) {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b, nil
}

// readProbeRequest reads a request from r, bounded: at most maxProbePayloads
// payloads of at most segment.DefaultMaxPayload bytes each.
func readProbeRequest(r io.Reader) (limitProbeRequest, error) {
	br := bufio.NewReader(r)
	head, err := br.ReadSlice('\n')
	if err != nil {
		return limitProbeRequest{}, fmt.Errorf("limit probe request header: %w", err)
	}
	var q limitProbeRequest
	if err := json.Unmarshal(head, &q); err != nil {
		return limitProbeRequest{}, fmt.Errorf("limit probe request header: %w", err)
	}
	if q.NFirst < 1 || q.NRest < 1 || q.NFirst+q.NRest > maxProbePayloads || q.Duration <= 0 || q.Duration > 10*time.Minute || q.Rate < 0 {
		return limitProbeRequest{}, errors.New("limit probe request: want 2 to 10,000 payloads, a duration up to 10m and a rate ≥ 0")
	}
	read := func(n int) ([][]byte, error) {
		out := make([][]byte, n)
		for i := range out {
			size, err := binary.ReadUvarint(br)
			if err != nil {
				return nil, err
			}
			if size > segment.DefaultMaxPayload {
				return nil, fmt.Errorf("payload of %d bytes", size)
			}
			out[i] = make([]byte, size)
			if _, err := io.ReadFull(br, out[i]); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if q.First, err = read(q.NFirst); err == nil {
		q.Rest, err = read(q.NRest)
	}
	if err != nil {
		return limitProbeRequest{}, fmt.Errorf("limit probe request payloads: %w", err)
	}
	return q, nil
}

// maxProbePayloads bounds a probe request's payload count.
const maxProbePayloads = 10_000

// limitProbeResult is what the probe measured.
type limitProbeResult struct {
	Workers   int           `json:"workers"`
	Segments  int64         `json:"segments"`
	Wall      time.Duration `json:"wall"`
	CPU       time.Duration `json:"cpu"`
	ThreadCPU time.Duration `json:"thread_cpu"`
	Probe     time.Duration `json:"probe"`
}

// ServeLimitProbe serves the limit probe on addr (loopback) until ctx
// ends: POST /limit with a limitProbeRequest runs Packer.Prepare in this
// process and answers a limitProbeResult. Only replayvault-dev's function
// command starts it, when LimitProbeEnv is set.
func ServeLimitProbe(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("limit probe: %w", err)
	}
	var mu sync.Mutex // one measurement at a time
	mux := http.NewServeMux()
	mux.HandleFunc("POST /limit", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		res, err := probeLimit(r.Context(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("limit probe: %w", err)
	}
	return nil
}

// probeLimit reads a request from body and runs it.
func probeLimit(ctx context.Context, body io.Reader) (limitProbeResult, error) {
	cpu0 := selfCPU()
	req, err := readProbeRequest(body)
	if err != nil {
		return limitProbeResult{}, err
	}
	corpus := &Corpus{First: payloads(req.First), Rest: payloads(req.Rest)}
	pk, err := limitPacker(ctx)
	if err != nil {
		return limitProbeResult{}, err
	}
	workers := runtime.GOMAXPROCS(0)
	work := prepareWork(ctx, pk)
	if req.Rate > 0 {
		work = paced(work, req.Rate)
	}
	w, err := runWork(ctx, corpus, time.After(req.Duration), workers, work)
	if err != nil {
		return limitProbeResult{}, err
	}
	return limitProbeResult{Workers: workers, Segments: w.n, Wall: w.wall, CPU: w.cpu, ThreadCPU: w.threadCPU, Probe: selfCPU() - cpu0}, nil
}

// paced calls work at most rate times per second, whichever worker calls:
// each call waits for its slot of the schedule (idle, as a process waits
// for its next request).
func paced(work func(data []byte, attrs map[string]string) error, rate float64) func(data []byte, attrs map[string]string) error {
	var (
		next  atomic.Int64
		once  sync.Once
		start time.Time
	)
	interval := time.Duration(float64(time.Second) / rate)
	return func(data []byte, attrs map[string]string) error {
		once.Do(func() { start = time.Now() })
		due := start.Add(time.Duration(next.Add(1)-1) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		return work(data, attrs)
	}
}

func payloads(gz [][]byte) []Payload {
	out := make([]Payload, len(gz))
	for i, b := range gz {
		out[i] = Payload{Gzip: b}
	}
	return out
}

// inProcessLimit measures the limit in the process under test through its
// probe at probeAddr, for about d as fast as it goes and for about d at
// rate segments per second, while this process (on the other CPUs when
// pinned) runs the same work as fast as it goes.
func (r *runner) inProcessLimit(ctx context.Context, probeAddr string, d time.Duration, rate float64) (*InProcessLimit, error) {
	req := limitProbeRequest{Duration: d}
	for _, p := range r.corpus.First {
		req.First = append(req.First, p.Gzip)
	}
	for _, p := range r.corpus.Rest {
		req.Rest = append(req.Rest, p.Gzip)
	}
	body, err := req.encode()
	if err != nil {
		return nil, err
	}
	req.Rate = rate
	pacedBody, err := req.encode()
	if err != nil {
		return nil, err
	}
	// The other CPUs do the same work meanwhile, as busy as during a load
	// step; unpinned, they are the process's own and are left alone.
	stop := make(chan time.Time)
	type driverDone struct {
		w   workDone
		err error
	}
	dc := make(chan driverDone, 1)
	if r.split.pinned() {
		pk, err := limitPacker(ctx)
		if err != nil {
			return nil, err
		}
		go func() {
			w, err := runWork(ctx, r.corpus, stop, len(r.split.rest), prepareWork(ctx, pk))
			dc <- driverDone{w, err}
		}()
	} else {
		dc <- driverDone{}
	}
	ct0, err := readCPUTimes()
	if err != nil {
		close(stop)
		return nil, err
	}
	res, perr := postProbe(ctx, probeAddr, body, d)
	var at limitProbeResult
	if perr == nil && rate > 0 {
		at, perr = postProbe(ctx, probeAddr, pacedBody, d)
	}
	ct1, err := readCPUTimes()
	close(stop)
	dd := <-dc
	if err := errors.Join(perr, err, dd.err); err != nil {
		return nil, fmt.Errorf("limit in the process under test: %w", err)
	}
	per1000 := func(cpu time.Duration, n int64) float64 { return cpu.Seconds() / float64(max(n, 1)) * 1000 }
	lim := &InProcessLimit{
		Workers:          res.Workers,
		Segments:         res.Segments,
		WallS:            res.Wall.Seconds(),
		CPUPer1000:       per1000(res.CPU, res.Segments),
		ThreadCPUPer1000: per1000(res.ThreadCPU, res.Segments),
		ProbeCPUS:        (res.Probe + at.Probe).Seconds(),
	}
	if rate > 0 {
		lim.AtRatePerS, lim.AtRateSegments = rate, at.Segments
		lim.AtRateCPUPer1000, lim.AtRateThreadCPUPer1000 = per1000(at.CPU, at.Segments), per1000(at.ThreadCPU, at.Segments)
	}
	if dd.w.n > 0 {
		lim.DriverCPUPer1000 = dd.w.cpuPer1000()
	}
	lim.RestBusy, _ = busyShare(ct0, ct1, r.split.rest)
	return lim, nil
}

// like is the in-process limit like for like with the packer's CPU per
// segment at 90%: the paced run's when there is one.
func (l *InProcessLimit) like() float64 {
	if l.AtRateCPUPer1000 > 0 {
		return l.AtRateCPUPer1000
	}
	return l.CPUPer1000
}

// postProbe runs one probe request.
func postProbe(ctx context.Context, addr string, body []byte, d time.Duration) (limitProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/limit", bytes.NewReader(body))
	if err != nil {
		return limitProbeResult{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return limitProbeResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return limitProbeResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return limitProbeResult{}, fmt.Errorf("limit probe: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var res limitProbeResult
	if err := json.Unmarshal(b, &res); err != nil {
		return limitProbeResult{}, fmt.Errorf("limit probe said %q: %w", b, err)
	}
	return res, nil
}

// limitProbeAddr returns a loopback address for a child's limit probe.
func limitProbeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + port, nil
}

// StartLimitProbe starts the limit probe in the background when this
// process is a benchmark's function child (LimitProbeEnv is set); errors
// go to stderr, the function runs regardless.
func StartLimitProbe(ctx context.Context) {
	addr := os.Getenv(LimitProbeEnv)
	if addr == "" {
		return
	}
	go func() {
		if err := ServeLimitProbe(ctx, addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
}
