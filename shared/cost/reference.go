package cost

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// The reference designs, per 1,000,000 segments, from the bench's full run
// in the README (bench corpus: gzip segments, median 20 KB, 31.3 GB stored
// per million) and the Go benchmarks of shared/segment (BenchmarkStore,
// BenchmarkDecodeStored). The bench replaces them with its own run's counts.
var (
	// Naive is one object and one KMS wrap per segment.
	Naive = Design{
		Name: "naive", Objects: 1e6, ClassA: 1e6, StoredGB: 31.3, ReadOpsPerSegment: 1,
		KMS: 1e6, KMSPerRead: 1, PubSubGB: 31.5, PackCPUSeconds: 3600, ServeCPUPerRead: 0.0015,
		MemGiBPerVCPU: 1, DBBytesPerSegment: 400,
	}
	// Packed is main before this change: packed objects, KEKs wrapped once
	// per instance-hour, payloads stored as sent.
	Packed = Design{
		Name: "packed", Objects: 3920, ClassA: 3920, StoredGB: 31.3, ReadOpsPerSegment: 1,
		KMS: 28, PubSubGB: 31.5, PackCPUSeconds: 1990, ServeCPUPerRead: 0.0015,
		MemGiBPerVCPU: 1, DBBytesPerSegment: 400,
	}
)

// Transcoded returns d with its payloads stored at a zstd level that keeps
// storedRatio of the bytes, for extraCPU seconds more of Pack per segment,
// and serveCPU seconds per segment read (zstd decodes faster than gzip).
func Transcoded(d Design, storedRatio, extraCPU, serveCPU float64) Design {
	d.Name += "+transcode"
	d.StoredGB *= storedRatio
	d.PackCPUSeconds += extraCPU * 1e6
	d.ServeCPUPerRead = serveCPU
	return d
}

// Delivery is how Ingest hands segments to Pack in a Direct design.
type Delivery struct {
	// Spill is the fraction of segments Pack did not take directly (down,
	// 429, 5xx, too slow), published to Pub/Sub as before.
	Spill float64 `json:"spill"`
	// WaitS is how long Ingest holds a directly delivered segment's request
	// for Pack's answer (Pack's ack latency), SpillWaitS a spilled one's
	// (at worst PACK_TIMEOUT), in seconds.
	WaitS      float64 `json:"wait_s"`
	SpillWaitS float64 `json:"spill_wait_s"`
	// Concurrency is the requests one Ingest instance holds at once
	// (terraform ingest_max_concurrency): waiting requests share its time.
	Concurrency int `json:"concurrency"`
}

// IngestConcurrency is Terraform's ingest_max_concurrency default.
const IngestConcurrency = 80

// Direct returns d with Ingest delivering straight to Pack and publishing
// only the spilled fraction: Pub/Sub throughput (published and delivered)
// shrinks to that fraction, and Ingest pays instance time for holding each
// request while Pack answers. Waiting costs no CPU, but Cloud Run bills an
// instance for as long as it holds a request; with Concurrency requests
// sharing an instance, a request waiting WaitS costs WaitS/Concurrency
// instance-seconds (Little's law at a sustained rate).
func Direct(d Design, v Delivery) Design {
	d.Name += fmt.Sprintf("+direct(%.0f%% spill)", 100*v.Spill)
	d.PubSubGB *= v.Spill
	d.IngestWaitSeconds += 1e6 * ((1-v.Spill)*v.WaitS + v.Spill*v.SpillWaitS) / float64(v.Concurrency)
	return d
}

// ReferenceDelivery is direct delivery as the README's full bench run
// measured it: no push nacked or over the 3 s bound at 90% of the sustained
// rate (so none would spill with PACK_TIMEOUT=6s), ack p50 753 ms there; a
// spilled segment is counted as waiting the whole PACK_TIMEOUT.
var ReferenceDelivery = Delivery{Spill: 0, WaitS: 0.753, SpillWaitS: 6, Concurrency: IngestConcurrency}

// Row is one design priced over one retention.
type Row struct {
	Design string    `json:"design"`
	Cost   Breakdown `json:"cost"`
}

// Table prices each design over each retention, first without lifecycle
// rules (as main stores today) and then, for packed designs, with Plan.
func (p Prices) Table(designs []Design, reads []ReadWindow) []Row {
	var rows []Row
	for _, r := range Retentions {
		for _, d := range designs {
			rows = append(rows, Row{d.Name, p.Over(d, r, nil, reads)})
			if d.Objects < 1e5 { // per-object transitions are affordable
				rows = append(rows, Row{d.Name + "+lifecycle", p.Over(d, r, Plan[r], reads)})
			}
		}
	}
	return rows
}

// WriteTable writes rows for people.
func WriteTable(w io.Writer, p Prices, rows []Row) error {
	fmt.Fprintf(w, "cost per 1M segments over the retention (prices of %s; storage includes early deletion)\n", p.Date)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "days\tdesign\tstorage\tclass A\tclass B\tretrieval\tKMS\tPub/Sub\tCPU+mem\tIngest wait\tDB\ttotal\tlifecycle\t")
	for _, r := range rows {
		c := r.Cost
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n",
			c.Retention, r.Design, c.StorageTotal(), c.ClassA, c.ClassB, c.Retrieval, c.KMS, c.PubSub, c.CPU+c.Memory, c.IngestWait, c.DB, c.Total, FormatLifecycle(c.Lifecycle))
	}
	return tw.Flush()
}
