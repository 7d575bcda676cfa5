// Package bench is `replayvault-dev bench`: it measures the real Pack and Serve
// functions against the naive storage design (one object, one KMS call and
// one transaction per segment; one whole-object read per segment) in the
// same run, on the same local stand-ins with cloud-like latency, and prices
// both designs from the operations it counted.
//
// Every process whose cost matters runs on its own: the process under test
// (Pack, the naive baseline, Serve, the naive readers) is a child process
// pinned to its own CPU(s), as a Cloud Run instance has its vCPUs, while the
// load driver (this process), the stand-ins (fake-gcs-server, KMS, a DB
// proxy that counts round trips) and PostgreSQL share the others. CPU and
// memory are read from the kernel's accounting of the process under test.
package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// Options configure a run.
type Options struct {
	// Exe is this binary: children run its function, bench standins,
	// bench naive-pack and bench read-naive commands.
	Exe     string
	Quick   bool
	Sizes   workload.SizeDist
	Lengths workload.LengthDist
	// Concurrency caps unanswered pushes (Cloud Run concurrency) and is
	// Pack's MAX_CONCURRENCY.
	Concurrency                       int
	GCSLatency, KMSLatency, DBLatency time.Duration
	// TestCPUs is how many CPUs the process under test gets to itself
	// (0: no pinning).
	TestCPUs  int
	Seed      uint64
	ReadSizes []int
	SkipRead  bool
	// SkipIngest skips the ingest benchmark (for working on the read one).
	SkipIngest bool
	// SkipLong skips the long-replay benchmark (seek, compacted read, list).
	SkipLong bool
	// CompactZstdLevel is the long step's compaction mode (COMPACT_ZSTD_LEVEL;
	// "": Shred's default).
	CompactZstdLevel string
	// Keep leaves the work directory (logs, data) behind.
	Keep bool
	// PushForm is the form the ingest step's requests take (""; FormDirect,
	// Pack's main path in production).
	PushForm PushForm
	// Progress receives one line per step.
	Progress io.Writer
}

// Pack's flush settings under test: its defaults (config.Pack).
const (
	flushAge      = 2 * time.Second
	flushSegments = 1000
	flushBytes    = 8 << 20
	bucket        = "replayvault-bench"
	// activeReplays is how many replays interleave on the subscription.
	activeReplays = 2000
	projects      = 50
)

// timings are the step lengths of a full or quick run.
type timings struct {
	limit, warmup, search, latency, hold     time.Duration
	searches, holds, corpus, reps, seqPrefix int
}

func (o Options) timings() timings {
	if o.Quick {
		return timings{limit: time.Second, search: 2 * time.Second, latency: 2 * time.Second,
			hold: 3 * time.Second, searches: 2, holds: 2, corpus: 192, reps: 1, seqPrefix: 25}
	}
	return timings{limit: 5 * time.Second, warmup: 2 * time.Second, search: 10 * time.Second,
		latency: 15 * time.Second, hold: 30 * time.Second, searches: 7, holds: 6, corpus: 512, reps: 3}
}

type runner struct {
	o        Options
	t        timings
	rep      *Report
	corpus   *Corpus
	split    cpuSplit
	dir      string
	pg       *testenv.Postgres
	pgPID    int
	standins *standinsClient
	sc       *child
	stop     []func()
	t0       time.Time
}

// Run runs the benchmark and returns its report.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	start := time.Now()
	r := &runner{o: o, t: o.timings(), rep: &Report{Quick: o.Quick, Started: started(start)}, t0: start}
	defer func() {
		for i := len(r.stop) - 1; i >= 0; i-- {
			r.stop[i]()
		}
	}()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	var packer, naive DesignResult
	if !o.SkipIngest {
		if packer, err = r.ingest(ctx, "packer"); err != nil {
			return nil, fmt.Errorf("packer: %w", err)
		}
		if naive, err = r.ingest(ctx, "naive"); err != nil {
			return nil, fmt.Errorf("naive: %w", err)
		}
	}
	r.rep.Ingest = computeIngest(r.rep.Limit, packer, naive)
	packerReads, naiveReads := 1.0, 1.0
	if !o.SkipRead {
		rd, err := r.read(ctx)
		switch {
		case errors.Is(err, errNoServe):
			r.rep.Notes = append(r.rep.Notes, "read benchmark skipped: this binary registers no Serve function yet")
		case err != nil:
			return nil, fmt.Errorf("read: %w", err)
		default:
			r.rep.Read = rd
			packerReads = rd.ServeReadsPerSegment
		}
	}
	if !o.SkipRead && !o.SkipLong {
		if r.rep.Long, err = r.long(ctx); err != nil {
			return nil, fmt.Errorf("long replays: %w", err)
		}
	}
	// Instrumentation's cost on Pack's CPU per segment (telemetry.go).
	if r.rep.Telemetry, err = r.telemetryOverhead(ctx); err != nil {
		return nil, fmt.Errorf("telemetry overhead: %w", err)
	}
	stored := r.corpus.MeanCompressed() + crypt.Overhead
	r.rep.computeCosts(stored, packerReads, naiveReads)
	tc, err := measureTranscode(r.corpus, segment.LevelBetter)
	if err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	r.rep.computeRetention(stored, r.corpus.MeanCompressed(), packerReads, naiveReads, tc)
	r.rep.Targets = targets(r.rep)
	r.rep.Notes = append(r.rep.Notes, r.notes()...)
	r.rep.ElapsedS = time.Since(start).Seconds()
	r.rep.Machine.LoadAvgEnd = loadAvg()
	return r.rep, nil
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "bench %5.1fs: "+format+"\n", append([]any{time.Since(r.t0).Seconds()}, args...)...)
	}
}

// form is the form of the ingest step's requests: Options.PushForm, or
// the direct form Pack mostly gets in production.
func (r *runner) form() PushForm {
	if r.o.PushForm == "" {
		return FormDirect
	}
	return r.o.PushForm
}

func (r *runner) setup(ctx context.Context) error {
	o := r.o
	r.rep.Machine = Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: runtime.Version(), LoadAvgStart: loadAvg()}
	r.rep.Settings = Settings{
		Sizes: o.Sizes.String(), Lengths: fmt.Sprintf("%d..%d segments, power law α=%g", o.Lengths.Min, o.Lengths.Max, o.Lengths.Alpha),
		Concurrency: o.Concurrency, BoundMS: ms(flushAge + time.Second),
		GCSLatencyMS: ms(o.GCSLatency), KMSLatencyMS: ms(o.KMSLatency), DBLatencyMS: ms(o.DBLatency),
		FlushAgeMS: ms(flushAge), FlushSegments: flushSegments, FlushBytes: flushBytes, ReadParallel: 32, Seed: o.Seed,
		PushForm: r.form(),
	}

	r.progress("generating %d payloads (%s)", r.t.corpus, o.Sizes)
	r.corpus = NewCorpus(o.Sizes, r.t.corpus, o.Seed)
	r.rep.Settings.MeanCompressed = r.corpus.MeanCompressed()

	// The CPU-bound limit runs first, alone, on every core.
	r.progress("CPU-bound limit on %d cores", runtime.GOMAXPROCS(0))
	lim, err := MeasureLimit(ctx, r.corpus, r.t.limit, r.form())
	if err != nil {
		return fmt.Errorf("cpu limit: %w", err)
	}
	r.rep.Limit = lim
	r.progress("  %.0f segments/s, %.3f CPU s per 1000", lim.PerS, lim.CPUPer1000)
	if r.rep.Validate, err = MeasureValidate(ctx, r.corpus, r.t.limit/3); err != nil {
		return fmt.Errorf("validator speed: %w", err)
	}
	r.progress("  validator %.0f MB/s, json.Valid %.0f MB/s (%.2f×)", r.rep.Validate.MBPerS, r.rep.Validate.JSONValidMBPerS, r.rep.Validate.Ratio)

	// Ingest's CPU per segment beside Pack's (ingestcpu.go).
	ic, err := MeasureIngestCPU(ctx, r.t.limit/4, o.Seed)
	if err != nil {
		return fmt.Errorf("ingest CPU: %w", err)
	}
	r.rep.IngestCPU = &ic
	r.progress("  Ingest CPU per segment measured beside Pack's (%d cases)", len(ic.Rows))

	if r.split, err = newCPUSplit(o.TestCPUs); err != nil {
		return err
	}
	r.rep.Machine.TestCPUs, r.rep.Machine.Pinned = len(r.split.test), r.split.pinned()
	if r.split.pinned() {
		// This process and everything it starts from now on (PostgreSQL,
		// the stand-ins) stay off the CPUs of the process under test.
		if err := pinProcess(os.Getpid(), r.split.rest); err != nil {
			return err
		}
	}

	if r.dir, err = os.MkdirTemp("", "rv-bench-"); err != nil {
		return err
	}
	if !o.Keep {
		r.stop = append(r.stop, func() { os.RemoveAll(r.dir) })
	}
	// fake-gcs-server's filesystem backend on tmpfs when there is one.
	gcsParent := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		gcsParent = "/dev/shm"
	}
	gcsDir, err := os.MkdirTemp(gcsParent, "rv-bench-gcs-")
	if err != nil {
		return err
	}
	r.stop = append(r.stop, func() { os.RemoveAll(gcsDir) })

	r.progress("starting PostgreSQL")
	pg, err := testenv.StartPostgres(ctx, "")
	if err != nil {
		return err
	}
	r.pg = pg
	r.stop = append(r.stop, func() { _ = pg.Stop() })
	if r.pgPID, err = postmasterPID(pg.Dir()); err != nil {
		return err
	}
	// Migrate one database and copy it: faster than migrating three.
	if err := pg.CreateDatabase(ctx, "bench_template", ""); err != nil {
		return err
	}
	if err := store.Migrate(ctx, pg.DSN("bench_template")); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, db := range []string{"bench_packer", "bench_naive", "bench_read"} {
		if err := pg.CreateDatabase(ctx, db, "bench_template"); err != nil {
			return err
		}
	}
	if err := execSQL(ctx, pg.DSN("bench_naive"), NaiveSchema); err != nil {
		return err
	}

	u, err := url.Parse(pg.DSN("postgres"))
	if err != nil {
		return err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	sc, err := startChild("standins", o.Exe, []string{"bench", "standins",
		"-dir", gcsDir, "-bucket", bucket, "-postgres", u.Host,
		"-gcs-latency", o.GCSLatency.String(), "-kms-latency", o.KMSLatency.String(), "-db-latency", o.DBLatency.String(),
	}, map[string]string{"LOG_LEVEL": "warn"}, r.split.rest, r.dir, pw)
	pw.Close()
	if err != nil {
		return err
	}
	r.sc = sc
	r.stop = append(r.stop, func() { sc.stop(10 * time.Second) })
	line, err := readLine(ctx, pr, sc, 30*time.Second)
	if err != nil {
		return err
	}
	var info StandinsInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		return fmt.Errorf("stand-ins said %q: %w", line, err)
	}
	r.standins = &standinsClient{info: info, hc: &http.Client{Timeout: 30 * time.Second}}
	r.progress("stand-ins up: GCS %s, KMS %s, DB proxy %s", info.GCSHost, info.KMSEndpoint, info.DBProxy)
	return nil
}

// spread lets this process, the stand-ins and PostgreSQL use every CPU
// (setup work that is not measured) or, with all false, puts them back on
// theirs.
func (r *runner) spread(all bool) error {
	if !r.split.pinned() {
		return nil
	}
	cpus := r.split.rest
	if all {
		cpus = r.split.all
	}
	return errors.Join(pinProcess(os.Getpid(), cpus), pinProcess(r.sc.pid(), cpus), pinTree(r.pgPID, cpus))
}

// proxied returns the DSN of database db through the stand-ins' DB proxy.
func (r *runner) proxied(db string) string {
	u, _ := url.Parse(r.pg.DSN(db))
	u.Host = r.standins.info.DBProxy
	return u.String()
}

// functionEnv is the environment of a function process under test, as
// Cloud Run would set it, pointed at the stand-ins.
func (r *runner) functionEnv(target, port, db string) map[string]string {
	info := r.standins.info
	return map[string]string{
		"FUNCTION_TARGET":       target,
		"PORT":                  port,
		"DATABASE_URL":          r.proxied(db),
		"BUCKET":                bucket,
		"STORAGE_EMULATOR_HOST": info.GCSHost,
		"KMS_KEY":               info.KMSKey,
		"KMS_ENDPOINT":          info.KMSEndpoint,
		"GOOGLE_CLOUD_PROJECT":  "bench",
		"PUBSUB_EMULATOR_HOST":  info.PubSubHost,
		"REJECT_TOPIC":          "rejects",
		"FLUSH_AGE":             flushAge.String(),
		"FLUSH_SEGMENTS":        strconv.Itoa(flushSegments),
		"FLUSH_BYTES":           strconv.Itoa(flushBytes),
		"MAX_CONCURRENCY":       strconv.Itoa(r.o.Concurrency),
		"LOG_LEVEL":             "info",
	}
}

// target is one running process under test.
type target struct {
	name   string
	c      *child
	url    string
	db     string
	hc     *http.Client
	stream *Stream
	rng    *mrand.Rand
	acked  int
	// probe is the address of the process's limit probe (the packer's).
	probe string
}

func (r *runner) startTarget(ctx context.Context, name string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	t := &target{name: name, db: "bench_" + name, url: "http://127.0.0.1:" + port + "/"}
	var args []string
	env := r.functionEnv("Pack", port, t.db)
	if name == "naive" {
		args = []string{"bench", "naive-pack"}
		env["FUNCTION_TARGET"] = NaiveTarget
	} else {
		args = []string{"function"}
		if t.probe, err = limitProbeAddr(); err != nil {
			return nil, err
		}
		env[LimitProbeEnv] = t.probe
	}
	if t.c, err = startChild(name, r.o.Exe, args, env, r.split.test, r.dir, nil); err != nil {
		return nil, err
	}
	if err := t.c.waitListening(ctx, "127.0.0.1:"+port, 30*time.Second); err != nil {
		t.c.stop(5 * time.Second)
		return nil, err
	}
	seed := r.o.Seed + uint64(len(name))
	t.hc = newPushClient(r.o.Concurrency)
	t.stream = NewStream(r.corpus, r.o.Lengths, activeReplays, projects, seed).WithForm(r.form())
	t.rng = mrand.New(mrand.NewPCG(seed, 99))
	return t, nil
}

// ingest measures one design: warm up, find its capacity under overload,
// search for the highest rate it sustains within the ack bound, then run at
// 50% and 90% of that rate.
func (r *runner) ingest(ctx context.Context, name string) (DesignResult, error) {
	var res DesignResult
	tx0, err := r.transactions(ctx, "bench_"+name)
	if err != nil {
		return res, err
	}
	c0, err := r.standins.counts(ctx)
	if err != nil {
		return res, err
	}
	t, err := r.startTarget(ctx, name)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			t.c.stop(10 * time.Second)
		}
	}()
	r.progress("%s: pid %d on CPUs %v", name, t.c.pid(), r.split.test)

	bound := flushAge + time.Second
	// A message still unanswered bound after the window closed is late
	// whatever happens next, so a step never needs to wait longer.
	drain := bound + 500*time.Millisecond
	run := func(label string, rate float64, d time.Duration) (StepResult, error) {
		s, err := r.step(ctx, t, StepSpec{Rate: rate, Duration: d, Cap: r.o.Concurrency, Bound: bound, Drain: drain}, label)
		if err == nil && label != "warm-up" {
			res.Steps = append(res.Steps, s)
			if !s.Sustained {
				res.CapacityPerS = max(res.CapacityPerS, s.ThroughputPerS)
			}
		}
		// Requests given up on may still be in the process: let it finish
		// them before the next step.
		if err == nil && !s.Sustained {
			err = waitIdle(ctx, t.c.pid(), 20*time.Second)
		}
		return s, err
	}
	// Warm up (clients, the KEK, connections) unless the run is quick:
	// then the first step pays for it, a few tens of milliseconds of CPU.
	if r.t.warmup > 0 {
		if _, err := run("warm-up", 50, r.t.warmup); err != nil {
			return res, err
		}
	}

	// Highest sustained rate. Start well below what the CPU-bound limit
	// allows this process; after a step that passes, aim just under the
	// capacity that step predicts (the CPUs of the process under test over
	// its CPU per segment, or the other CPUs over their load, whichever is
	// less); after one that fails, bisect.
	est := r.rep.Limit.PerS * float64(len(r.split.test)) / float64(len(r.split.all))
	lo, hi := 0.0, math.Inf(1)
	rate := max(0.5*est, 20)
	for range r.t.searches {
		s, err := run("search", rate, r.t.search)
		if err != nil {
			return res, err
		}
		if s.Sustained {
			lo = rate
		} else {
			// Failing rates only fall, so this is the lowest so far.
			hi, res.Bottleneck = rate, s.Bottleneck
		}
		switch {
		case lo > 0 && hi/lo < 1.08:
		case lo == 0:
			rate *= 0.6
			continue
		case math.IsInf(hi, 1):
			next := 1.15 * rate
			if p := predictCapacity(s, len(r.split.test)); p > 0 {
				next = min(max(0.95*p, next), 3*rate)
			}
			rate = next
			continue
		default:
			rate = (lo + hi) / 2
			continue
		}
		break
	}
	// A rate the short search steps passed is sustained only once it is
	// held for a whole hold step: a backlog that grows slowly, or a process
	// that saturates its CPUs, shows only over time. A failed hold retries
	// 10% lower, up to six times in a full run (the search's short steps
	// can pass well above what the stand-ins' CPU holds for 30 s).
	res.SearchedPerS = lo
	for k, rate := 0, lo; k < r.t.holds && rate > 0; k, rate = k+1, 0.9*rate {
		s, err := run("hold", rate, r.t.hold)
		if err != nil {
			return res, err
		}
		if s.Sustained {
			res.SustainedPerS = rate
			break
		}
		res.Bottleneck = s.Bottleneck
	}
	lo = res.SustainedPerS
	if lo > 0 {
		for _, f := range []float64{0.5, 0.9} {
			s, err := run(fmt.Sprintf("%.0f%%", f*100), f*lo, r.t.latency)
			if err != nil {
				return res, err
			}
			if f == 0.5 {
				res.At50 = &s
			} else {
				res.At90 = &s
				if s.CPUPer1000 > 0 {
					res.CPUBoundPerS = float64(len(r.split.test)) / s.CPUPer1000 * 1000
				}
			}
		}
	}
	// The limit again, inside this process right after its 90% step
	// (childlimit.go): like for like with that step's CPU per segment.
	// Without it (the probe's port taken, say) the run goes on with the
	// driver's limit, and says so.
	if t.probe != "" && res.At90 != nil {
		if res.Limit, err = r.inProcessLimit(ctx, t.probe, r.t.limit, cmp.Or(res.At90.AckedPerS, res.At90.OfferedPerS)); err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			r.progress("%s: %v", name, err)
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("no limit measured in the %s's process (%v): limit_fraction uses the driver's", name, err))
		} else {
			r.progress("%s: limit in its process %.3f CPU s per 1000 at %.0f/s, %.3f as fast as it goes (the driver's same work on the other CPUs meanwhile %.3f, busy %.0f%%)",
				name, res.Limit.AtRateCPUPer1000, res.Limit.AtRatePerS, res.Limit.CPUPer1000, res.Limit.DriverCPUPer1000, 100*res.Limit.RestBusy)
		}
	}

	ps := t.c.stop(15 * time.Second)
	stopped = true
	cpu, rss := rusageCPU(ps)
	res.LifeCPUS, res.LifeMaxRSS, res.LifeSegments = cpu.Seconds(), rss, t.acked
	if res.Limit != nil {
		res.LifeCPUS -= res.Limit.ProbeCPUS
	}
	c1, err := r.standins.counts(ctx)
	if err != nil {
		return res, err
	}
	res.LifeOps = c1.Sub(c0)
	tx1, err := r.settledTransactions(ctx, "bench_"+name, tx0)
	if err != nil {
		return res, err
	}
	res.LifeTx = tx1 - tx0
	// Per-segment figures over the whole life divide by the segments
	// stored: requests the driver gave up on may still have been stored
	// (and paid for), and some were not. The packer's table also holds the
	// devtools slices it derives from recordings: count the recordings,
	// one per pushed segment, as the naive table does.
	count := "SELECT count(*) FROM segments WHERE type = '" + segment.DefaultType + "'"
	if name == "naive" {
		count = "SELECT count(*) FROM naive_segments"
	}
	if err := queryInt(ctx, r.pg.DSN("bench_"+name), count, &res.LifeStored); err != nil {
		return res, err
	}
	n := float64(max(res.LifeStored, 1))
	res.KMSPerMillion = perMillion(float64(res.LifeOps.KMSCalls()), n)
	if name == "packer" && res.SustainedPerS > 0 {
		// One KEK per instance per KEK_ROTATE (1 h) at the sustained rate.
		res.KMSPerMillionSteady = 1e6 / (res.SustainedPerS * 3600)
	} else {
		res.KMSPerMillionSteady = res.KMSPerMillion
	}
	res.TxPerMillion = perMillion(float64(res.LifeTx), n)
	// Class A and round trips per segment depend on the rate (batch
	// size): take them at 90% load.
	if res.At90 != nil {
		res.ClassAPerMillion = perMillion(float64(res.At90.Ops.ClassA()), float64(res.At90.Acked))
		res.RoundTripsPerMillion = perMillion(float64(res.At90.Ops.DBRoundTrips["bench_"+name]), float64(res.At90.Acked))
	} else {
		res.ClassAPerMillion = perMillion(float64(res.LifeOps.ClassA()), n)
		res.RoundTripsPerMillion = perMillion(float64(res.LifeOps.DBRoundTrips["bench_"+name]), n)
	}
	if res.LifeOps.Published > 0 {
		return res, fmt.Errorf("%d segments were rejected; the workload should be valid", res.LifeOps.Published)
	}
	return res, nil
}

// step runs one load step and reads the process's CPU, memory and the
// stand-ins' counters around it.
func (r *runner) step(ctx context.Context, t *target, spec StepSpec, label string) (StepResult, error) {
	pid := t.c.pid()
	c0, err := r.standins.counts(ctx)
	if err != nil {
		return StepResult{}, err
	}
	user0, sys0, err := procCPU(pid)
	if err != nil {
		return StepResult{}, err
	}
	if err := ResetPeakRSS(pid); err != nil {
		return StepResult{}, err
	}
	if spec.Rate <= 0 || math.IsNaN(spec.Rate) || math.IsInf(spec.Rate, 0) {
		return StepResult{}, fmt.Errorf("%s: no rate to run %s at (%g/s)", t.name, label, spec.Rate)
	}
	ct0, err := readCPUTimes()
	if err != nil {
		return StepResult{}, err
	}
	start := time.Now()
	samples, unsent := drive(ctx, t.hc, t.url, t.stream, spec, t.rng)
	wall := time.Since(start)
	ct1, err := readCPUTimes()
	if err != nil {
		return StepResult{}, err
	}
	user1, sys1, err := procCPU(pid)
	if err != nil {
		return StepResult{}, fmt.Errorf("%s died: %w:\n%s", t.name, err, t.c.logTail())
	}
	peak, _ := PeakRSS(pid)
	c1, err := r.standins.counts(ctx)
	if err != nil {
		return StepResult{}, err
	}
	s := summarize(spec, samples, unsent)
	s.Label, s.wall = label, wall
	s.CPUS = (user1 - user0 + sys1 - sys0).Seconds()
	s.SysS = (sys1 - sys0).Seconds()
	if s.Acked > 0 {
		s.CPUPer1000 = s.CPUS / float64(s.Acked) * 1000
	}
	s.CPUUtil = s.CPUS / spec.Duration.Seconds()
	s.PeakRSS = peak
	s.Ops = c1.Sub(c0)
	s.RestBusy, _ = busyShare(ct0, ct1, r.split.rest)
	_, s.Steal = busyShare(ct0, ct1, r.split.all)
	if s.Sustained && s.CPUUtil >= saturated*float64(len(r.split.test)) {
		s.Sustained = false
		s.Why = fmt.Sprintf("process CPU saturated (%.2f of %d CPUs)", s.CPUUtil, len(r.split.test))
	}
	s.Bottleneck = bottleneck(s, len(r.split.test))
	t.acked += s.Acked
	verdict := "sustained"
	if !s.Sustained {
		verdict = s.Why + " [" + s.Bottleneck + "]"
	}
	r.progress("%s %-7s offered %5.0f/s acked %5.0f/s  ack p50 %s p99 %s  cpu %.2f (%.2f s/1000, sys %.0f%%)  rest %.0f%%  rss %s  class A %d  kms %d  %s",
		t.name, label, spec.Rate, s.AckedPerS, fmtMS(s.AckP50MS), fmtMS(s.AckP99MS), s.CPUUtil, s.CPUPer1000, 100*ratio(s.SysS, s.CPUS), 100*s.RestBusy,
		fmtBytes(s.PeakRSS), s.Ops.ClassA(), s.Ops.KMSCalls(), verdict)
	return s, ctx.Err()
}

// transactions reads the database's committed plus rolled-back
// transactions from pg_stat_database.
func (r *runner) transactions(ctx context.Context, db string) (int64, error) {
	conn, err := pgx.Connect(ctx, r.pg.DSN("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, db).Scan(&n)
	return n, err
}

// settledTransactions waits for the sessions of a stopped process to end
// (each reports its counts as it exits) and returns the settled count.
func (r *runner) settledTransactions(ctx context.Context, db string, before int64) (int64, error) {
	last := before
	for range 20 {
		time.Sleep(250 * time.Millisecond)
		n, err := r.transactions(ctx, db)
		if err != nil {
			return 0, err
		}
		if n == last && n != before {
			return n, nil
		}
		last = n
	}
	return last, nil
}

func queryInt(ctx context.Context, dsn, sql string, dst *int64) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dst)
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

var errNoServe = errors.New("no Serve function registered")

// openLayout opens database name and clients of the storage and KMS
// stand-ins, for writing replays the bench's way (KEKs persisted in that
// database); kms is the stand-in's key, for a KEK cache. closeAll releases
// them.
func (r *runner) openLayout(ctx context.Context, name string) (l *layout, kms *crypt.KMS, closeAll func(), err error) {
	info := r.standins.info
	db, err := store.OpenURL(ctx, r.pg.DSN(name))
	if err != nil {
		return nil, nil, nil, err
	}
	gc, err := blob.NewGCSClient(ctx)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	kc, err := crypt.NewKMSClient(ctx, info.KMSEndpoint)
	if err != nil {
		gc.Close()
		db.Close()
		return nil, nil, nil, err
	}
	kms = crypt.NewKMS(kc, info.KMSKey, 10*time.Second)
	keys := crypt.NewKeyring(kms, func(ctx context.Context, k *crypt.KEK) error {
		return db.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, time.Hour)
	l = &layout{db: db, blobs: blob.NewGCS(gc, bucket, time.Minute), keys: keys, corpus: r.corpus}
	return l, kms, func() { kc.Close(); gc.Close(); db.Close() }, nil
}

// read measures replay reads: Serve over the packed layout against the
// naive readers over one object per segment.
func (r *runner) read(ctx context.Context) (*ReadReport, error) {
	info := r.standins.info
	if err := os.Setenv("STORAGE_EMULATOR_HOST", info.GCSHost); err != nil {
		return nil, err
	}
	l, _, closeLayout, err := r.openLayout(ctx, "bench_read")
	if err != nil {
		return nil, err
	}
	defer closeLayout()

	// A live replay's segments arrive seconds apart, so each lands in a
	// different batch object (the spread layout): reading one replay then
	// costs one ranged read per segment, exactly as if every segment had
	// its own object. So the replays are written once with one object per
	// segment, and Serve and the naive readers read the same objects and
	// rows. The burst layout, a replay whose segments arrived together, is
	// written separately for Serve.
	const spreadProject, burstProject = 101, 102
	mk := func() []ReplayRef {
		refs := make([]ReplayRef, len(r.o.ReadSizes))
		for i, n := range r.o.ReadSizes {
			refs[i] = ReplayRef{ID: newUUID(), Segments: n}
		}
		return refs
	}
	spread, burst := mk(), mk()
	// Writing the layouts is setup, not measurement: no injected latency,
	// every CPU.
	if err := r.standins.setLatency(ctx, 0, 0, 0); err != nil {
		return nil, err
	}
	if err := r.spread(true); err != nil {
		return nil, err
	}
	r.progress("read: writing %v-segment replays", r.o.ReadSizes)
	wstart := time.Now()
	if err := l.perSegment(ctx, spreadProject, spread); err != nil {
		return nil, err
	}
	if r.o.Quick {
		burst = nil // not in quick runs
	}
	if err := l.burst(ctx, burstProject, burst); err != nil {
		return nil, err
	}
	if err := r.spread(false); err != nil {
		return nil, err
	}
	if err := r.standins.setLatency(ctx, r.o.GCSLatency, r.o.KMSLatency, r.o.DBLatency); err != nil {
		return nil, err
	}
	r.progress("read: layouts written in %s", time.Since(wstart).Round(time.Millisecond))

	rep := &ReadReport{Layout: "spread"}
	serveRes, burstRes, extra, err := r.readServe(ctx, spread, burst)
	if err != nil {
		return nil, err
	}
	rep.Burst, rep.Extra = burstRes, extra
	seq, err := r.readNaive(ctx, "bench_read", spreadProject, spread, 1)
	if err != nil {
		return nil, err
	}
	par, err := r.readNaive(ctx, "bench_read", spreadProject, spread, 10)
	if err != nil {
		return nil, err
	}
	for i, n := range r.o.ReadSizes {
		rep.Rows = append(rep.Rows, ReadRow{Segments: n, Serve: serveRes[i], Sequential: seq[i], Parallel: par[i]})
	}
	rep.computeRatios()
	return rep, nil
}

// readServe runs Serve as its own process and reads each replay through it:
// the spread layout with the default settings, the burst layout, and the
// longest spread replay with more reads in flight.
func (r *runner) readServe(ctx context.Context, spread, burst []ReplayRef) (main, burstRes, extra []ReadResult, err error) {
	secret := randomHex(32)
	variants := []struct {
		name        string
		parallelism int
	}{{"Serve", 32}, {"Serve READ_PARALLELISM=64", 64}}
	if r.o.Quick {
		variants = variants[:1]
	}
	for vi, v := range variants {
		port, err := freePort()
		if err != nil {
			return nil, nil, nil, err
		}
		env := r.functionEnv("Serve", port, "bench_read")
		env["JWT_SECRET"] = secret
		env["READ_PARALLELISM"] = strconv.Itoa(v.parallelism)
		c, err := startChild(fmt.Sprintf("serve-%d", v.parallelism), r.o.Exe, []string{"function"}, env, r.split.test, r.dir, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := c.waitListening(ctx, "127.0.0.1:"+port, 30*time.Second); err != nil {
			c.stop(5 * time.Second)
			if strings.Contains(err.Error(), "no matching function") {
				return nil, nil, nil, errNoServe
			}
			return nil, nil, nil, err
		}
		base := "http://127.0.0.1:" + port
		hc := &http.Client{Timeout: 10 * time.Minute}
		one := func(project int64, ref ReplayRef, reps int) (ReadResult, error) {
			tok, err := auth.Mint(secret, project, []string{auth.ScopeRead}, "bench", time.Hour)
			if err != nil {
				return ReadResult{}, err
			}
			var runs []ReadResult
			for range reps {
				c0, err := r.standins.counts(ctx)
				if err != nil {
					return ReadResult{}, err
				}
				res, err := readServe(ctx, hc, base, tok, project, ref.ID)
				if err != nil {
					return ReadResult{}, fmt.Errorf("%w\n%s", err, c.logTail())
				}
				c1, err := r.standins.counts(ctx)
				if err != nil {
					return ReadResult{}, err
				}
				res.Reader, res.Segments, res.GCSReads = v.name, ref.Segments, c1.Sub(c0).GCS.Reads
				runs = append(runs, res)
			}
			return median(runs), nil
		}
		// Warm up: connections, the KEK cache.
		if _, err := one(101, spread[0], 1); err != nil {
			c.stop(5 * time.Second)
			return nil, nil, nil, err
		}
		if vi == 0 {
			for _, ref := range spread {
				res, err := one(101, ref, r.t.reps)
				if err != nil {
					c.stop(5 * time.Second)
					return nil, nil, nil, err
				}
				main = append(main, res)
				r.progress("read: %s %4d segments: ttfb %s total %s, %d GCS reads", v.name, ref.Segments, fmtMS(res.TTFBMS), fmtMS(res.TotalMS), res.GCSReads)
			}
			for _, ref := range burst {
				res, err := one(102, ref, r.t.reps)
				if err != nil {
					c.stop(5 * time.Second)
					return nil, nil, nil, err
				}
				res.Reader = "Serve, burst layout"
				burstRes = append(burstRes, res)
				r.progress("read: %s %4d segments: ttfb %s total %s, %d GCS reads", res.Reader, ref.Segments, fmtMS(res.TTFBMS), fmtMS(res.TotalMS), res.GCSReads)
			}
		} else {
			ref := spread[len(spread)-1]
			res, err := one(101, ref, r.t.reps)
			if err != nil {
				c.stop(5 * time.Second)
				return nil, nil, nil, err
			}
			extra = append(extra, res)
			r.progress("read: %s %4d segments: ttfb %s total %s, %d GCS reads", v.name, ref.Segments, fmtMS(res.TTFBMS), fmtMS(res.TotalMS), res.GCSReads)
		}
		c.stop(10 * time.Second)
	}
	return main, burstRes, extra, nil
}

// readNaive runs a naive reader process with the given parallelism.
func (r *runner) readNaive(ctx context.Context, db string, project int64, refs []ReplayRef, workers int) ([]ReadResult, error) {
	spec := ReaderSpec{
		DSN: r.pg.DSN(db), Bucket: bucket,
		KMSEndpoint: r.standins.info.KMSEndpoint, KMSKey: r.standins.info.KMSKey,
		Project: project, Replays: refs, Warmup: refs[0], Workers: workers, Reps: r.t.reps,
	}
	if workers == 1 {
		spec.Prefix = r.t.seqPrefix
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	c0, err := r.standins.counts(ctx)
	if err != nil {
		return nil, err
	}
	c, err := startChild(fmt.Sprintf("reader-%d", workers), r.o.Exe, []string{"bench", "read-naive", "-spec", string(b)},
		map[string]string{"STORAGE_EMULATOR_HOST": r.standins.info.GCSHost, "LOG_LEVEL": "warn"}, r.split.test, r.dir, &out)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.exited:
	case <-ctx.Done():
		c.stop(5 * time.Second)
		return nil, ctx.Err()
	}
	c.stop(time.Second)
	if c.err != nil {
		return nil, fmt.Errorf("naive reader: %w:\n%s", c.err, c.logTail())
	}
	var res []ReadResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		return nil, fmt.Errorf("naive reader said %q: %w", out.String(), err)
	}
	c1, err := r.standins.counts(ctx)
	if err != nil {
		return nil, err
	}
	reads := c1.Sub(c0).GCS.Reads
	var segs int64
	for _, x := range res {
		n := x.Segments
		if x.Measured > 0 {
			n = x.Measured
		}
		segs += int64(n * max(r.t.reps, 1))
	}
	segs += int64(refs[0].Segments) // the warm-up
	for i := range res {
		res[i].GCSReads = int64(math.Round(float64(reads) / float64(segs) * float64(res[i].Segments)))
		r.progress("read: %s %4d segments: ttfb %s total %s", res[i].Reader, res[i].Segments, fmtMS(res[i].TTFBMS), fmtMS(res[i].TotalMS))
	}
	return res, nil
}

func newUUID() (id [16]byte) {
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
