package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// Num is a float that encodes NaN and ±Inf (a ratio over zero) as JSON null.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(math.Round(f*1000) / 1000)
}

// Pair is one number for each design.
type Pair struct {
	Packer Num `json:"packer"`
	Naive  Num `json:"naive"`
}

// Report is everything one benchmark run measured. Its JSON form is the
// machine-readable output (--json).
type Report struct {
	Quick    bool     `json:"quick"`
	Started  string   `json:"started"`
	ElapsedS float64  `json:"elapsed_s"`
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`

	Limit    LimitResult    `json:"cpu_limit"`
	Validate ValidateResult `json:"validate"`
	Ingest   IngestReport   `json:"ingest"`
	Read     *ReadReport    `json:"read,omitempty"`
	Long     *LongReport    `json:"long_replays,omitempty"`

	// IngestCPU is the Ingest function's CPU per segment beside Pack's.
	IngestCPU *IngestCPUResult `json:"ingest_cpu,omitempty"`
	// Telemetry is instrumentation's overhead on Pack's CPU per segment.
	Telemetry *TelemetryOverhead `json:"telemetry_overhead,omitempty"`

	// CostUSDPerMillion is the total of Costs for each design.
	CostUSDPerMillion Pair `json:"cost_usd_per_million"`
	Costs             struct {
		Prices    Prices `json:"prices"`
		Packer    Ops    `json:"packer_ops"`
		Naive     Ops    `json:"naive_ops"`
		PackerUSD Cost   `json:"packer_usd"`
		NaiveUSD  Cost   `json:"naive_usd"`
	} `json:"costs"`
	// Retention is the total cost over each retention class.
	Retention *RetentionCosts `json:"retention_costs,omitempty"`

	Targets []Target `json:"targets"`
	Notes   []string `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs int `json:"cpus"`
	// TestCPUs is how many CPUs the process under test was pinned to; the
	// rest ran the load driver and the stand-ins.
	TestCPUs int    `json:"test_cpus"`
	Pinned   bool   `json:"pinned"`
	CPUModel string `json:"cpu_model"`
	// LoadAvg* are the 1-minute load averages when the run started and
	// ended: other work on the machine shows here.
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
	GoVersion    string  `json:"go_version"`
}

// Settings are the knobs the run used.
type Settings struct {
	Sizes          string  `json:"segment_sizes"`
	MeanCompressed float64 `json:"mean_compressed_bytes"`
	Lengths        string  `json:"replay_lengths"`
	Concurrency    int     `json:"max_outstanding_pushes"`
	BoundMS        float64 `json:"ack_bound_ms"`
	GCSLatencyMS   float64 `json:"gcs_latency_ms"`
	KMSLatencyMS   float64 `json:"kms_latency_ms"`
	DBLatencyMS    float64 `json:"db_latency_ms"`
	FlushAgeMS     float64 `json:"flush_age_ms"`
	FlushSegments  int     `json:"flush_segments"`
	FlushBytes     int     `json:"flush_bytes"`
	ReadParallel   int     `json:"serve_read_parallelism"`
	Seed           uint64  `json:"seed"`
	// PushForm is the form of the requests Pack and the naive baseline
	// got: "direct" (Ingest's direct delivery) or "pubsub" (a push).
	PushForm PushForm `json:"push_form,omitempty"`
}

// IngestReport compares the packer with the naive baseline on ingest.
type IngestReport struct {
	Packer DesignResult `json:"packer"`
	Naive  DesignResult `json:"naive"`
	// RatioSegmentsPerS is packer ÷ naive highest sustained rate.
	RatioSegmentsPerS Num `json:"ratio_segments_per_s"`
	// RatioCPUPerSegment is naive ÷ packer Pack-process CPU per segment,
	// each at 90% of its own sustained rate.
	RatioCPUPerSegment Num `json:"ratio_cpu_per_segment"`
	// LimitFraction is the CPU-bound limit's CPU per segment ÷ the
	// packer's Pack-process CPU per segment (1 = no overhead at all), with
	// the limit measured inside the packer's process right after its 90%
	// step (DesignResult.Limit) when there is one, else the driver's.
	LimitFraction Num `json:"limit_fraction"`
	// LimitFractionDriver is the same with the driver's limit (LimitResult:
	// before the load, on every CPU), as earlier runs reported it, and
	// LimitFractionCPUBound with the limit in the packer's process as fast
	// as it goes (not paced at the step's rate).
	LimitFractionDriver   Num  `json:"limit_fraction_driver"`
	LimitFractionCPUBound Num  `json:"limit_fraction_cpu_bound"`
	GCSClassAPerMillion   Pair `json:"gcs_class_a_per_million"`
	KMSCallsPerMillion    Pair `json:"kms_calls_per_million"`
	DBTxPerMillion        Pair `json:"db_transactions_per_million"`
	DBTripsPerMillion     Pair `json:"db_round_trips_per_million"`
}

// DesignResult is one design's ingest measurements.
type DesignResult struct {
	// CapacityPerS is the highest ack rate seen in a step that failed.
	CapacityPerS float64 `json:"capacity_per_s"`
	// SustainedPerS is the highest offered rate held for a whole hold
	// step (30 s; shorter in a quick run) with every message acked within
	// the bound and the process's CPU below saturation.
	SustainedPerS float64 `json:"sustained_per_s"`
	// SearchedPerS is the highest rate the shorter search steps passed,
	// before holding it.
	SearchedPerS float64 `json:"searched_per_s"`
	// Bottleneck is what ran out in the lowest step that failed.
	Bottleneck string `json:"bottleneck,omitempty"`
	// CPUBoundPerS is the rate at which the process under test would fill
	// its CPUs, from its CPU per segment at 90% load: its rate when its
	// dependencies cost it nothing, as on Cloud Run where they are remote.
	CPUBoundPerS float64      `json:"cpu_bound_per_s"`
	Steps        []StepResult `json:"steps"`
	At50         *StepResult  `json:"at_50"`
	At90         *StepResult  `json:"at_90"`
	// Limit is the CPU-bound limit measured inside this process right
	// after its 90% step (the packer only; childlimit.go).
	Limit *InProcessLimit `json:"limit_in_process,omitempty"`
	// Whole life of the process under test (start to exit), from its
	// rusage: CPU, peak RSS, and every segment it acked.
	LifeCPUS     float64 `json:"life_cpu_s"`
	LifeMaxRSS   int64   `json:"life_max_rss_bytes"`
	LifeSegments int     `json:"life_segments"` // acked
	// LifeStored is the segments the design stored (recordings: not the
	// packer's derived slices): the denominator of the life-long
	// per-million figures.
	LifeStored int64  `json:"life_stored"`
	LifeOps    Counts `json:"life_ops"`
	// Transactions committed or rolled back in the design's database over
	// its life (pg_stat_database).
	LifeTx int64 `json:"life_transactions"`

	ClassAPerMillion float64 `json:"gcs_class_a_per_million"`
	// KMSPerMillion is counted over the process's life: for the packer
	// one KEK wrap per process start, so it shrinks as the run grows.
	KMSPerMillion float64 `json:"kms_calls_per_million"`
	// KMSPerMillionSteady is the packer's rate in production: one KEK per
	// instance per hour (KEK_ROTATE) at the sustained rate.
	KMSPerMillionSteady  float64 `json:"kms_calls_per_million_steady"`
	TxPerMillion         float64 `json:"db_transactions_per_million"`
	RoundTripsPerMillion float64 `json:"db_round_trips_per_million"`
}

// Target is one of the targets and whether this run met it.
type Target struct {
	Name  string `json:"name"`
	Want  string `json:"want"`
	Got   string `json:"got"`
	Met   bool   `json:"met"`
	Note  string `json:"note,omitempty"`
	value float64
}

// computeIngest fills the ingest ratios from the two designs' results and
// the limit. It uses only its inputs, so tests can check it.
func computeIngest(limit LimitResult, packer, naive DesignResult) IngestReport {
	r := IngestReport{Packer: packer, Naive: naive}
	r.RatioSegmentsPerS = Num(ratio(packer.SustainedPerS, naive.SustainedPerS))
	var pc, nc float64
	if packer.At90 != nil {
		pc = packer.At90.CPUPer1000
	}
	if naive.At90 != nil {
		nc = naive.At90.CPUPer1000
	}
	r.RatioCPUPerSegment = Num(ratio(nc, pc))
	r.LimitFractionDriver = Num(ratio(limit.CPUPer1000, pc))
	r.LimitFraction = r.LimitFractionDriver
	r.LimitFractionCPUBound = r.LimitFractionDriver
	if packer.Limit != nil {
		r.LimitFraction = Num(ratio(packer.Limit.like(), pc))
		r.LimitFractionCPUBound = Num(ratio(packer.Limit.CPUPer1000, pc))
	}
	r.GCSClassAPerMillion = Pair{Num(packer.ClassAPerMillion), Num(naive.ClassAPerMillion)}
	r.KMSCallsPerMillion = Pair{Num(packer.KMSPerMillion), Num(naive.KMSPerMillion)}
	r.DBTxPerMillion = Pair{Num(packer.TxPerMillion), Num(naive.TxPerMillion)}
	r.DBTripsPerMillion = Pair{Num(packer.RoundTripsPerMillion), Num(naive.RoundTripsPerMillion)}
	return r
}

// computeCosts prices both designs from counted operations: ingest ops
// per million segments, one month of the stored bytes, and one full read
// back of every segment at the class B operations per segment the read
// benchmark counted.
func (r *Report) computeCosts(storedBytesPerSegment, packerReadsPerSeg, naiveReadsPerSeg float64) {
	r.Costs.Prices = PublishedPrices
	gb := storedBytesPerSegment * 1e6 / 1e9
	r.Costs.Packer = Ops{
		ClassA:   r.Ingest.Packer.ClassAPerMillion,
		ClassB:   packerReadsPerSeg * 1e6,
		KMS:      r.Ingest.Packer.KMSPerMillion,
		StoredGB: gb,
	}
	r.Costs.Naive = Ops{
		ClassA:   r.Ingest.Naive.ClassAPerMillion,
		ClassB:   naiveReadsPerSeg * 1e6,
		KMS:      r.Ingest.Naive.KMSPerMillion,
		StoredGB: gb,
	}
	r.Costs.PackerUSD = PublishedPrices.Cost(r.Costs.Packer)
	r.Costs.NaiveUSD = PublishedPrices.Cost(r.Costs.Naive)
	r.CostUSDPerMillion = Pair{Num(r.Costs.PackerUSD.Total), Num(r.Costs.NaiveUSD.Total)}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick (short steps: coarse numbers, a smoke test)"
	}
	fmt.Fprintf(&b, "replayvault-dev bench — %s run, %s, %.0f s\n", mode, r.Started, r.ElapsedS)
	pin := "not pinned"
	if r.Machine.Pinned {
		pin = fmt.Sprintf("process under test pinned to %d of %d CPUs; driver, stand-ins and PostgreSQL on the rest", r.Machine.TestCPUs, r.Machine.CPUs)
	}
	fmt.Fprintf(&b, "machine: %d CPUs (%s), %s, load average %.1f at start, %.1f at end; %s\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, pin)
	s := r.Settings
	fmt.Fprintf(&b, "workload: sizes %s (mean %.1f KB compressed), replay lengths %s\n", s.Sizes, s.MeanCompressed/1024, s.Lengths)
	fmt.Fprintf(&b, "latency: GCS %s, KMS %s, DB %s per request; push concurrency %d; ack bound %s\n",
		fmtMS(s.GCSLatencyMS), fmtMS(s.KMSLatencyMS), fmtMS(s.DBLatencyMS), s.Concurrency, fmtMS(s.BoundMS))
	if s.PushForm != "" {
		fmt.Fprintf(&b, "requests to Pack and the naive baseline: %s\n", pushFormText[s.PushForm])
	}
	fmt.Fprintf(&b, "CPU-bound limit (Pack's own per-segment work, no I/O, %d cores: one decompress+validate pass that also detects issues\n"+
		"  and takes slices, compress if plain, seal): %.0f segments/s, %.3f CPU s per 1000, %.1f MB/s; of that, validate+compress+seal\n"+
		"  alone (what the naive baseline does too) %.3f; decoding the request (%s)\n"+
		"  costs %.3f CPU s per 1000 more\n",
		r.Limit.Cores, r.Limit.PerS, r.Limit.CPUPer1000, r.Limit.MBPerS, r.Limit.SharedCPUPer1000, envelopeText(s.PushForm), r.Limit.EnvelopeCPUPer1000)
	if l := r.Ingest.Packer.Limit; l != nil {
		fmt.Fprintf(&b, "the same work inside the packer's process (its pinning, GOMAXPROCS %d, GOGC, heap), right after its 90%% step while the\n"+
			"  other CPUs ran it too (%.0f%% busy, %.3f CPU s per 1000 there): %.3f CPU s per 1000 as fast as it goes (worker threads alone\n"+
			"  %.3f); %.3f paced at the 90%% step's %.0f segments/s, the CPU idling between segments as it did for the packer (threads\n"+
			"  %.3f): limit ÷ packer uses this one, like for like with the packer's CPU per segment at 90%%\n",
			l.Workers, 100*l.RestBusy, l.DriverCPUPer1000, l.CPUPer1000, l.ThreadCPUPer1000, l.AtRateCPUPer1000, l.AtRatePerS, l.AtRateThreadCPUPer1000)
	}
	if r.Validate.MBPerS > 0 {
		fmt.Fprintf(&b, "validator on the corpus's JSON: %.0f MB/s, encoding/json.Valid %.0f MB/s (%.2f×), per CPU second\n",
			r.Validate.MBPerS, r.Validate.JSONValidMBPerS, r.Validate.Ratio)
	}
	if r.IngestCPU != nil {
		b.WriteString("\n")
		r.IngestCPU.writeTable(&b)
	}
	b.WriteString("\n")

	in := r.Ingest
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ingest\tpacker\tnaive\tratio\t")
	row := func(name string, p, n string, ratio string) { fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, p, n, ratio) }
	row("sustained segments/s", fmt.Sprintf("%.0f", in.Packer.SustainedPerS), fmt.Sprintf("%.0f", in.Naive.SustainedPerS), fmtRatio(float64(in.RatioSegmentsPerS)))
	row("  limited by", orDash(in.Packer.Bottleneck), orDash(in.Naive.Bottleneck), "")
	row("  its CPUs full at (from CPU/segment)", fmt.Sprintf("%.0f", in.Packer.CPUBoundPerS), fmt.Sprintf("%.0f", in.Naive.CPUBoundPerS), fmtRatio(ratio(in.Packer.CPUBoundPerS, in.Naive.CPUBoundPerS)))
	for _, at := range []struct {
		name string
		p, n *StepResult
	}{{"50%", in.Packer.At50, in.Naive.At50}, {"90%", in.Packer.At90, in.Naive.At90}} {
		if at.p == nil || at.n == nil {
			continue
		}
		row("ack p50 at "+at.name, fmtMS(at.p.AckP50MS), fmtMS(at.n.AckP50MS), "")
		row("ack p99 at "+at.name, fmtMS(at.p.AckP99MS)+unsustained(at.p), fmtMS(at.n.AckP99MS)+unsustained(at.n), "")
	}
	if p, n := in.Packer.At90, in.Naive.At90; p != nil && n != nil {
		row("MB/s at 90%", fmt.Sprintf("%.1f", p.MBPerS), fmt.Sprintf("%.1f", n.MBPerS), "")
		row("CPU s per 1000 segments at 90%", fmt.Sprintf("%.3f", p.CPUPer1000), fmt.Sprintf("%.3f", n.CPUPer1000), fmtRatio(float64(in.RatioCPUPerSegment)))
		lp, ln := perThousand(in.Packer.LifeCPUS, in.Packer.LifeStored), perThousand(in.Naive.LifeCPUS, in.Naive.LifeStored)
		row("  over the whole process life", fmt.Sprintf("%.3f", lp), fmt.Sprintf("%.3f", ln), fmtRatio(ratio(ln, lp)))
		if l := in.Packer.Limit; l != nil {
			row("limit in the packer's process at its 90% rate", fmt.Sprintf("%.3f", l.like()), "", "")
			row("CPU-bound limit ÷ packer CPU at 90%", fmt.Sprintf("%.2f", float64(in.LimitFraction)), "", "")
			row("  with the limit as fast as it goes, in process", fmt.Sprintf("%.2f", float64(in.LimitFractionCPUBound)), "", "")
			row("  with the driver's limit (before the load)", fmt.Sprintf("%.2f", float64(in.LimitFractionDriver)), "", "")
		} else {
			row("CPU-bound limit ÷ packer CPU at 90%", fmt.Sprintf("%.2f", float64(in.LimitFraction)), "", "")
		}
		row("peak RSS at 90%", fmtBytes(p.PeakRSS), fmtBytes(n.PeakRSS), "")
	}
	row("peak RSS, whole life", fmtBytes(in.Packer.LifeMaxRSS), fmtBytes(in.Naive.LifeMaxRSS), "")
	row("GCS class A per 1M segments", fmtCount(in.Packer.ClassAPerMillion), fmtCount(in.Naive.ClassAPerMillion), fmtRatio(ratio(in.Naive.ClassAPerMillion, in.Packer.ClassAPerMillion)))
	row("KMS calls per 1M segments (this run)", fmtCount(in.Packer.KMSPerMillion), fmtCount(in.Naive.KMSPerMillion), fmtRatio(ratio(in.Naive.KMSPerMillion, in.Packer.KMSPerMillion)))
	row("  at 1 KEK per instance-hour", fmtCount(in.Packer.KMSPerMillionSteady), fmtCount(in.Naive.KMSPerMillionSteady), fmtRatio(ratio(in.Naive.KMSPerMillionSteady, in.Packer.KMSPerMillionSteady)))
	row("DB transactions per 1M segments", fmtCount(in.Packer.TxPerMillion), fmtCount(in.Naive.TxPerMillion), fmtRatio(ratio(in.Naive.TxPerMillion, in.Packer.TxPerMillion)))
	row("DB round trips per 1M segments", fmtCount(in.Packer.RoundTripsPerMillion), fmtCount(in.Naive.RoundTripsPerMillion), fmtRatio(ratio(in.Naive.RoundTripsPerMillion, in.Packer.RoundTripsPerMillion)))
	tw.Flush()

	if r.Read != nil {
		b.WriteString("\n")
		r.Read.writeTable(&b)
	}
	if r.Long != nil {
		b.WriteString("\n")
		r.Long.writeTable(&b)
	}

	if r.Telemetry != nil {
		b.WriteString("\n")
		r.Telemetry.writeTable(&b)
	}
	b.WriteString("\ncost per 1M segments (published prices)\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "item\tpacker\tnaive\t")
	c := r.Costs
	fmt.Fprintf(tw, "GCS class A (writes)\t%s\t%s\t\n", fmtUSD(c.PackerUSD.ClassA), fmtUSD(c.NaiveUSD.ClassA))
	fmt.Fprintf(tw, "KMS\t%s\t%s\t\n", fmtUSD(c.PackerUSD.KMS), fmtUSD(c.NaiveUSD.KMS))
	fmt.Fprintf(tw, "storage, one month (%.1f GB)\t%s\t%s\t\n", c.Packer.StoredGB, fmtUSD(c.PackerUSD.StorageMonth), fmtUSD(c.NaiveUSD.StorageMonth))
	fmt.Fprintf(tw, "GCS class B (read every segment once)\t%s\t%s\t\n", fmtUSD(c.PackerUSD.ClassB), fmtUSD(c.NaiveUSD.ClassB))
	fmt.Fprintf(tw, "total\t%s\t%s\t\n", fmtUSD(c.PackerUSD.Total), fmtUSD(c.NaiveUSD.Total))
	tw.Flush()
	if r.Retention != nil {
		b.WriteString("\n")
		r.Retention.writeTable(&b)
	}

	b.WriteString("\ntargets\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets {
		verdict := "MISSED"
		if t.Met {
			verdict = "met"
		}
		fmt.Fprintf(tw, "  %s\twant %s\tgot %s\t%s\n", t.Name, t.Want, t.Got, verdict)
	}
	tw.Flush()
	for _, t := range r.Targets {
		if t.Note != "" {
			fmt.Fprintf(&b, "  - %s: %s\n", t.Name, t.Note)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nnotes\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func perThousand(cpu float64, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return cpu / float64(n) * 1000
}

// unsustained marks a latency step that missed the bound.
func unsustained(s *StepResult) string {
	if s.Sustained {
		return ""
	}
	return " (not sustained)"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func started(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// pushFormText says what each form of request is, for the table.
var pushFormText = map[PushForm]string{
	FormDirect: "direct form, as Ingest posts each segment (PACK_URL): the payload as the body after a block of id and attributes",
	FormPubSub: "Pub/Sub push envelope, as what spills through Pub/Sub arrives: JSON with the payload in base64",
}

// envelopeText names the decoding of a request of form f (a report from
// before forms existed measured the push).
func envelopeText(f PushForm) string {
	if f == FormDirect {
		return "the direct form's block; the payload is the body itself"
	}
	return "the push envelope: reflection-free, the base64 payload in one pass"
}
