package bench

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/replayvault/replayvault/shared/cost"
	"github.com/replayvault/replayvault/shared/segment"
)

// RetentionCosts is every design's total cost per 1,000,000 segments over
// each retention class (shared/cost), from this run's counts: storage by
// class and month with early deletion, GCS operations, retrieval, KMS,
// Pub/Sub, function CPU and memory, database storage.
type RetentionCosts struct {
	Prices    cost.Prices       `json:"prices"`
	Reads     []cost.ReadWindow `json:"reads"`
	Transcode TranscodeResult   `json:"transcode"`
	// Delivery is direct Ingest-to-Pack delivery as this run measured it
	// (see measureDelivery); Delivery10 is the same with 10% spilled.
	Delivery         cost.Delivery `json:"delivery"`
	DeliveryMeasured bool          `json:"delivery_measured"`
	Delivery10       cost.Delivery `json:"delivery_10"`
	Designs          []cost.Design `json:"designs"`
	Rows             []cost.Row    `json:"rows"`
	// Days90 compares the 90-day totals: today (packed, STANDARD all
	// life, as sent) against packed with lifecycle rules and with
	// transcoding, with direct delivery on top, and naive.
	Days90 struct {
		Naive, Today, Lifecycle, TranscodeLifecycle float64
		// Direct is packed+transcode+lifecycle with direct delivery at
		// the measured spill; Direct10 with 10% spilled.
		Direct, Direct10 float64
		// StorageLayer is the same for the costs the storage design
		// controls (GCS storage, operations, retrieval, KMS): today and
		// with lifecycle.
		StorageLayerToday, StorageLayerLifecycle float64
	} `json:"days_90"`
}

// packTimeout is Ingest's PACK_TIMEOUT default: a push Pack answers later
// than this would spill to Pub/Sub.
const packTimeout = 6 * time.Second

// measureDelivery is direct delivery as the packer's 90% step saw it: a
// segment spills when Pack nacked it, never answered, or answered later than
// PACK_TIMEOUT (the step keeps only the slowest answer, so when that is
// later the whole step counts as spilled: an upper bound). Ingest holds a
// directly delivered request for Pack's ack p50 (the mean of a wait spread
// evenly over a batch's fill), a spilled one for the whole PACK_TIMEOUT.
// Without a 90% step (no sustained rate found, as on a saturated machine)
// nothing is measured: no spill, and every request waits the whole flush
// age, what it waits at low load (an upper bound on the wait).
func measureDelivery(at90 *StepResult, flushAge time.Duration) (v cost.Delivery, measured bool) {
	v = cost.Delivery{SpillWaitS: packTimeout.Seconds(), Concurrency: cost.IngestConcurrency}
	if at90 == nil || at90.Arrived == 0 {
		v.WaitS = flushAge.Seconds()
		return v, false
	}
	v.WaitS = at90.AckP50MS / 1000
	v.Spill = float64(at90.Nacked+at90.Failed+at90.Unsent) / float64(at90.Arrived)
	if at90.AckMaxMS > float64(packTimeout.Milliseconds()) {
		v.Spill = 1
	}
	return v, true
}

// TranscodeResult is Pack's transcoding measured on the corpus: gzip as
// sent to zstd at Level.
type TranscodeResult struct {
	Level string `json:"level"`
	// StoredRatio is transcoded ÷ as-sent bytes.
	StoredRatio float64 `json:"stored_ratio"`
	// CPUPerSegment is the extra Pack CPU per segment (decode and
	// re-compress, one goroutine), in seconds: this process's CPU time,
	// garbage collection included, so other load on the machine does not
	// count.
	CPUPerSegment float64 `json:"cpu_s_per_segment"`
	// DecodeGzip and DecodeZstd are Serve's decode CPU per segment of
	// what is stored, in seconds.
	DecodeGzip float64 `json:"decode_gzip_s"`
	DecodeZstd float64 `json:"decode_zstd_s"`
}

// measureTranscode transcodes the corpus's payloads once at level and
// decodes both forms once, on one goroutine, timing them by the process's
// CPU time (nothing else in the bench process runs by then).
func measureTranscode(c *Corpus, level segment.Level) (TranscodeResult, error) {
	res := TranscodeResult{Level: level.String()}
	all := append(append([]Payload(nil), c.First...), c.Rest...)
	var sent, stored int
	zs := make([][]byte, len(all))
	start := selfCPU()
	for i, p := range all {
		out, _, err := segment.Transcode(segment.Gzip, p.Gzip, level, 0)
		if err != nil {
			return res, fmt.Errorf("transcode payload %d: %w", i, err)
		}
		zs[i] = out
		sent += len(p.Gzip)
		stored += len(out)
	}
	res.CPUPerSegment = (selfCPU() - start).Seconds() / float64(len(all))
	res.StoredRatio = float64(stored) / float64(sent)
	decode := func(enc segment.Encoding, data func(int) []byte) (float64, error) {
		start := selfCPU()
		for range 4 { // decoding is fast: repeat for a measurable CPU time
			for i := range all {
				if _, err := segment.Decode(enc, data(i), 0); err != nil {
					return 0, err
				}
			}
		}
		return (selfCPU() - start).Seconds() / float64(4*len(all)), nil
	}
	var err error
	if res.DecodeGzip, err = decode(segment.Gzip, func(i int) []byte { return all[i].Gzip }); err != nil {
		return res, err
	}
	if res.DecodeZstd, err = decode(segment.Zstd, func(i int) []byte { return zs[i] }); err != nil {
		return res, err
	}
	return res, nil
}

// dbBytesPerSegment is a segment row with its primary-key index entry
// (wrapped DEK, ids, byte range, event metadata), as PostgreSQL stores it.
const dbBytesPerSegment = 400

// computeRetention prices the designs this run measured over every
// retention class. meanSent is the mean payload as published.
func (r *Report) computeRetention(storedBytesPerSegment, meanSent, packerReadsPerSeg, naiveReadsPerSeg float64, tc TranscodeResult) {
	rc := &RetentionCosts{Prices: cost.Published, Reads: cost.DefaultReads, Transcode: tc}
	gb := storedBytesPerSegment * 1e6 / 1e9
	pubsub := (meanSent + 200) * 1e6 / 1e9 // payload and attributes
	cpu := func(d DesignResult) float64 {
		if d.At90 != nil {
			return d.At90.CPUPer1000 * 1000
		}
		return 0
	}
	packed := cost.Design{
		Name: "packed", Objects: r.Ingest.Packer.ClassAPerMillion, ClassA: r.Ingest.Packer.ClassAPerMillion,
		StoredGB: gb, ReadOpsPerSegment: packerReadsPerSeg, KMS: r.Ingest.Packer.KMSPerMillion,
		PubSubGB: pubsub, PackCPUSeconds: cpu(r.Ingest.Packer), ServeCPUPerRead: tc.DecodeGzip,
		MemGiBPerVCPU: 1, DBBytesPerSegment: dbBytesPerSegment,
	}
	naive := cost.Design{
		Name: "naive", Objects: r.Ingest.Naive.ClassAPerMillion, ClassA: r.Ingest.Naive.ClassAPerMillion,
		StoredGB: gb, ReadOpsPerSegment: naiveReadsPerSeg, KMS: r.Ingest.Naive.KMSPerMillion, KMSPerRead: 1,
		PubSubGB: pubsub, PackCPUSeconds: cpu(r.Ingest.Naive), ServeCPUPerRead: tc.DecodeGzip,
		MemGiBPerVCPU: 1, DBBytesPerSegment: dbBytesPerSegment,
	}
	transcoded := cost.Transcoded(packed, tc.StoredRatio, tc.CPUPerSegment, tc.DecodeZstd)
	rc.Delivery, rc.DeliveryMeasured = measureDelivery(r.Ingest.Packer.At90, time.Duration(r.Settings.FlushAgeMS*float64(time.Millisecond)))
	rc.Delivery10 = rc.Delivery
	rc.Delivery10.Spill = max(rc.Delivery.Spill, 0.1)
	direct := cost.Direct(transcoded, rc.Delivery)
	direct10 := cost.Direct(transcoded, rc.Delivery10)
	rc.Designs = []cost.Design{naive, packed, transcoded, direct, direct10}
	rc.Rows = cost.Published.Table(rc.Designs, rc.Reads)

	p := cost.Published
	layer := func(b cost.Breakdown) float64 { return b.StorageTotal() + b.ClassA + b.ClassB + b.Retrieval + b.KMS }
	today := p.Over(packed, 90, nil, rc.Reads)
	life := p.Over(packed, 90, cost.Plan[90], rc.Reads)
	rc.Days90.Naive = p.Over(naive, 90, nil, rc.Reads).Total
	rc.Days90.Today = today.Total
	rc.Days90.Lifecycle = life.Total
	rc.Days90.TranscodeLifecycle = p.Over(transcoded, 90, cost.Plan[90], rc.Reads).Total
	rc.Days90.Direct = p.Over(direct, 90, cost.Plan[90], rc.Reads).Total
	rc.Days90.Direct10 = p.Over(direct10, 90, cost.Plan[90], rc.Reads).Total
	rc.Days90.StorageLayerToday = layer(today)
	rc.Days90.StorageLayerLifecycle = layer(life)
	r.Retention = rc
}

// RepriceRetention prices a saved report's counts over the retention again
// with this build's cost model: the stored and published bytes, read
// operations and transcoding measurement come from its retention designs,
// the rest from its ingest and read results.
func (r *Report) RepriceRetention() error {
	rc := r.Retention
	if rc == nil || len(rc.Designs) < 2 {
		return errors.New("the report has no retention costs to reprice")
	}
	var naive, packed *cost.Design
	for i := range rc.Designs {
		switch rc.Designs[i].Name {
		case "naive":
			naive = &rc.Designs[i]
		case "packed":
			packed = &rc.Designs[i]
		}
	}
	if naive == nil || packed == nil {
		return errors.New("the report's retention costs lack the naive or packed design")
	}
	perSegment := func(gb float64) float64 { return gb * 1e9 / 1e6 }
	r.computeRetention(perSegment(packed.StoredGB), perSegment(packed.PubSubGB)-200, packed.ReadOpsPerSegment, naive.ReadOpsPerSegment, rc.Transcode)
	return nil
}

func (rc *RetentionCosts) writeTable(b *strings.Builder) {
	tc := rc.Transcode
	fmt.Fprintf(b, "transcoding the corpus (gzip as sent -> zstd %s): %.1f%% of the bytes, %.2f ms more Pack CPU per segment; decode per segment %.2f ms gzip, %.2f ms zstd\n",
		tc.Level, 100*tc.StoredRatio, 1000*tc.CPUPerSegment, 1000*tc.DecodeGzip, 1000*tc.DecodeZstd)
	_ = cost.WriteTable(b, rc.Prices, rc.Rows)
	d := rc.Days90
	fmt.Fprintf(b, "90 days: today (packed) $%.2f, with lifecycle $%.2f (%.0f%%), with transcoding too $%.2f (%.0f%%); naive $%.2f\n",
		d.Today, d.Lifecycle, 100*d.Lifecycle/d.Today, d.TranscodeLifecycle, 100*d.TranscodeLifecycle/d.Today, d.Naive)
	v := rc.Delivery
	how := fmt.Sprintf("measured at 90%% of the sustained rate; Ingest holds each request Pack's ack p50 there, %.0f ms", 1000*v.WaitS)
	if !rc.DeliveryMeasured {
		how = fmt.Sprintf("not measured, no sustained rate in this run; Ingest holds each request the whole flush age, %.0f ms, as at low load", 1000*v.WaitS)
	}
	fmt.Fprintf(b, "90 days with direct delivery (Ingest posts to Pack, Pub/Sub only for what spills; +transcode+lifecycle): $%.2f (%.0f%% of today) at %.1f%% spilled (%s; %d requests to an Ingest instance, a spilled one held PACK_TIMEOUT %.0f s), $%.2f (%.0f%%) at %.0f%% spilled\n",
		d.Direct, 100*d.Direct/d.Today, 100*v.Spill, how, v.Concurrency, v.SpillWaitS, d.Direct10, 100*d.Direct10/d.Today, 100*rc.Delivery10.Spill)
	fmt.Fprintf(b, "90 days, storage layer only (GCS and KMS): today $%.2f, with lifecycle $%.2f (%.0f%%)\n",
		d.StorageLayerToday, d.StorageLayerLifecycle, 100*d.StorageLayerLifecycle/d.StorageLayerToday)
	b.WriteString("reads assumed (per segment, by age in days):")
	for _, w := range rc.Reads {
		fmt.Fprintf(b, " %d-%d: %g", w.From, w.To, w.PerSegment)
	}
	b.WriteString("\n")
}
