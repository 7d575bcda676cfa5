// Package cost prices a design's use of Google Cloud over a segment's whole
// retention: storage by class and month with lifecycle transitions and
// early-deletion charges, GCS operations, retrieval, KMS, Pub/Sub, function
// CPU and memory, and database storage. The bench prints its tables, and the
// Terraform policy tests check the bucket's lifecycle rules against Plan.
package cost

import (
	"fmt"
	"math"
)

// Class is a GCS storage class.
type Class int

// The storage classes, warmest first.
const (
	Standard Class = iota
	Nearline
	Coldline
	Archive
)

func (c Class) String() string {
	return [...]string{"STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"}[c]
}

// ClassPrices are one storage class's list prices.
type ClassPrices struct {
	GBMonth        float64 `json:"gb_month"`
	MinDays        int     `json:"min_days"`
	RetrievalPerGB float64 `json:"retrieval_per_gb"`
	ClassAPer1000  float64 `json:"class_a_per_1000"`
	ClassBPer1000  float64 `json:"class_b_per_1000"`
}

// Prices are the list prices the model uses, all in one place.
type Prices struct {
	// Date is when the prices were checked.
	Date    string         `json:"date"`
	Classes [4]ClassPrices `json:"gcs_classes"` // by Class
	// KMSPer10000 is Cloud KMS symmetric (software) operations.
	KMSPer10000 float64 `json:"kms_per_10000"`
	// PubSubPerTiB is Pub/Sub throughput, charged on publish and again on
	// delivery.
	PubSubPerTiB float64 `json:"pubsub_per_tib"`
	// CPUPerVCPUSecond and MemPerGiBSecond are Cloud Run (functions)
	// instance time.
	CPUPerVCPUSecond float64 `json:"cpu_per_vcpu_s"`
	MemPerGiBSecond  float64 `json:"mem_per_gib_s"`
	// DBPerGBHour is AlloyDB storage.
	DBPerGBHour float64 `json:"db_per_gb_hour"`
}

// Published are the list prices (us-central1 / single region) the design is
// judged by, as given on the public price pages on Date. GCS prices storage
// and retrieval per GiB (Over converts), Pub/Sub per TiB (2^40 bytes). Early deletion is
// modelled conservatively: the minimum duration counts from the transition
// into a class, so a rule that keeps an object in a class for less than the
// minimum pays for the rest.
var Published = Prices{
	Date: "2026-11-30",
	Classes: [4]ClassPrices{
		Standard: {GBMonth: 0.020, ClassAPer1000: 0.005, ClassBPer1000: 0.0004},
		Nearline: {GBMonth: 0.010, MinDays: 30, RetrievalPerGB: 0.01, ClassAPer1000: 0.01, ClassBPer1000: 0.001},
		Coldline: {GBMonth: 0.004, MinDays: 90, RetrievalPerGB: 0.02, ClassAPer1000: 0.02, ClassBPer1000: 0.01},
		Archive:  {GBMonth: 0.0012, MinDays: 365, RetrievalPerGB: 0.05, ClassAPer1000: 0.05, ClassBPer1000: 0.05},
	},
	KMSPer10000:      0.03,
	PubSubPerTiB:     40,
	CPUPerVCPUSecond: 0.000024,
	MemPerGiBSecond:  0.0000025,
	DBPerGBHour:      0.0003,
}

// Design is what one design uses per 1,000,000 segments, from the bench's
// counts and the Go benchmarks' measurements.
type Design struct {
	Name string `json:"name"`
	// Objects is objects written; each lifecycle transition is a class A
	// operation per object, at the destination class's price.
	Objects float64 `json:"objects"`
	// ClassA is class A operations while ingesting (writes, lists).
	ClassA float64 `json:"class_a"`
	// StoredGB is the bytes stored (10^9).
	StoredGB float64 `json:"stored_gb"`
	// ReadOpsPerSegment is class B operations per segment read.
	ReadOpsPerSegment float64 `json:"read_ops_per_segment"`
	// KMS is KMS calls while ingesting; KMSPerRead per segment read.
	KMS        float64 `json:"kms_calls"`
	KMSPerRead float64 `json:"kms_per_read"`
	// PubSubGB is the message bytes published (10^9); each is delivered
	// once more to Pack.
	PubSubGB float64 `json:"pubsub_gb"`
	// PackCPUSeconds is the ingest function's CPU; ServeCPUPerRead the read
	// function's per segment read.
	PackCPUSeconds  float64 `json:"pack_cpu_s"`
	ServeCPUPerRead float64 `json:"serve_cpu_s_per_read"`
	// MemGiBPerVCPU is the functions' memory per vCPU: memory is billed for
	// as long as CPU is.
	MemGiBPerVCPU float64 `json:"mem_gib_per_vcpu"`
	// DBBytesPerSegment is a segment row with its index entries.
	DBBytesPerSegment float64 `json:"db_bytes_per_segment"`
	// IngestWaitSeconds is Ingest instance time spent holding requests
	// while Pack stores their segments (direct delivery, see Direct), in
	// instance-seconds of one vCPU and MemGiBPerVCPU.
	IngestWaitSeconds float64 `json:"ingest_wait_instance_s"`
}

// ReadWindow says how often a segment is read while its age in days is in
// [From, To).
type ReadWindow struct {
	From, To   int
	PerSegment float64
}

// DefaultReads is the assumed read pattern: every segment is watched once
// in its first week (what the bench's read test does), a fifth again in the
// rest of the first month, and a tenth in each later quarter (issue triage,
// support, audits). Colder classes trade storage for exactly these reads.
var DefaultReads = []ReadWindow{{0, 7, 1}, {7, 30, 0.2}, {30, 90, 0.1}, {90, 180, 0.1}, {180, 270, 0.1}, {270, 365, 0.1},
	{365, 730, 0.2}, {730, 1095, 0.2}, {1095, 1460, 0.2}, {1460, 1830, 0.2}}

// Transition moves objects to Class at Age days.
type Transition struct {
	Age   int   `json:"age_days"`
	Class Class `json:"class"`
}

// gibPerGB converts GB (10^9 bytes, as Design counts) to GiB (as GCS
// prices).
const gibPerGB = 1e9 / (1 << 30)

// SlackDays is how long an object outlives its retention class: the bucket
// deletes it a day after its segment rows expire (terraform
// lifecycle_slack_days).
const SlackDays = 1

// Breakdown is a design's cost per 1,000,000 segments over one retention,
// item by item, in USD.
type Breakdown struct {
	Retention     int          `json:"retention_days"`
	Lifecycle     []Transition `json:"lifecycle"`
	Storage       [4]float64   `json:"storage_by_class"`
	EarlyDeletion float64      `json:"early_deletion"`
	ClassA        float64      `json:"class_a"`
	ClassB        float64      `json:"class_b"`
	Retrieval     float64      `json:"retrieval"`
	KMS           float64      `json:"kms"`
	PubSub        float64      `json:"pubsub"`
	CPU           float64      `json:"cpu"`
	Memory        float64      `json:"memory"`
	DB            float64      `json:"db_storage"`
	IngestWait    float64      `json:"ingest_wait"`
	Total         float64      `json:"total"`
}

// StorageTotal is the storage charge over all classes, early deletion
// included.
func (b Breakdown) StorageTotal() float64 {
	return b.Storage[0] + b.Storage[1] + b.Storage[2] + b.Storage[3] + b.EarlyDeletion
}

// Over prices d over retention days with the lifecycle transitions (in
// increasing age, to colder classes) and read pattern given.
func (p Prices) Over(d Design, retention int, lifecycle []Transition, reads []ReadWindow) Breakdown {
	b := Breakdown{Retention: retention, Lifecycle: lifecycle}
	life := retention + SlackDays
	const perMillion = 1e6

	// Storage, class by class: each stretch lasts until the next transition
	// or the delete; a stretch shorter than its class's minimum is charged
	// the rest as early deletion.
	classAt := func(age float64) Class {
		c := Standard
		for _, t := range lifecycle {
			if float64(t.Age) <= age {
				c = t.Class
			}
		}
		return c
	}
	gib := d.StoredGB * gibPerGB
	start, class := 0, Standard
	for i := 0; i <= len(lifecycle); i++ {
		end := life
		if i < len(lifecycle) {
			end = min(lifecycle[i].Age, life)
		}
		cp := p.Classes[class]
		days := float64(max(end-start, 0))
		b.Storage[class] += gib * days / 30 * cp.GBMonth
		if short := float64(cp.MinDays) - days; short > 0 && end > start {
			b.EarlyDeletion += gib * short / 30 * cp.GBMonth
		}
		if i < len(lifecycle) && lifecycle[i].Age < life {
			b.ClassA += d.Objects / 1000 * p.Classes[lifecycle[i].Class].ClassAPer1000
			start, class = lifecycle[i].Age, lifecycle[i].Class
		} else {
			break
		}
	}
	b.ClassA += d.ClassA / 1000 * p.Classes[Standard].ClassAPer1000

	// Reads: each window's reads spread evenly over its days, priced at
	// the class the object is in that day; reads past the delete never
	// happen.
	var readsTotal float64
	for _, w := range reads {
		for day := w.From; day < w.To && day < life; day++ {
			n := w.PerSegment / float64(w.To-w.From)
			cp := p.Classes[classAt(float64(day))]
			readsTotal += n
			b.ClassB += n * perMillion * d.ReadOpsPerSegment / 1000 * cp.ClassBPer1000
			b.Retrieval += n * gib * cp.RetrievalPerGB
		}
	}
	b.KMS = (d.KMS + readsTotal*perMillion*d.KMSPerRead) / 10000 * p.KMSPer10000
	const tib = 1 << 40
	b.PubSub = 2 * d.PubSubGB * 1e9 / tib * p.PubSubPerTiB
	cpu := d.PackCPUSeconds + readsTotal*perMillion*d.ServeCPUPerRead
	b.CPU = cpu * p.CPUPerVCPUSecond
	b.Memory = cpu * d.MemGiBPerVCPU * p.MemPerGiBSecond
	b.DB = perMillion * d.DBBytesPerSegment / 1e9 * float64(retention*24) * p.DBPerGBHour
	b.IngestWait = d.IngestWaitSeconds * (p.CPUPerVCPUSecond + d.MemGiBPerVCPU*p.MemPerGiBSecond)
	b.Total = b.StorageTotal() + b.ClassA + b.ClassB + b.Retrieval + b.KMS + b.PubSub + b.CPU + b.Memory + b.DB + b.IngestWait
	return b
}

// Best returns the cheapest lifecycle for d over retention among the
// schedules a bucket rule can express: stay in Standard, or move to one
// colder class at some age, or to Nearline and later to Coldline or
// Archive. Ties go to the simpler schedule.
func (p Prices) Best(d Design, retention int, reads []ReadWindow) []Transition {
	ages := []int{1, 7, 14, 30, 60, 90, 180, 365, 730}
	best := []Transition(nil)
	bestCost := p.Over(d, retention, nil, reads).Total
	try := func(l []Transition) {
		if c := p.Over(d, retention, l, reads).Total; c < bestCost-1e-9 {
			best, bestCost = l, c
		}
	}
	for _, a := range ages {
		if a >= retention {
			continue
		}
		for _, c := range []Class{Nearline, Coldline, Archive} {
			try([]Transition{{a, c}})
		}
		for _, a2 := range ages {
			if a2 <= a || a2 >= retention {
				continue
			}
			for _, c := range []Class{Coldline, Archive} {
				try([]Transition{{a, Nearline}, {a2, c}})
			}
		}
	}
	return best
}

// Retentions are the retention classes the model is run for.
var Retentions = []int{30, 90, 365, 1825}

// Plan is the lifecycle the bucket applies per retention class (the
// terraform rules; TestPlanIsBest checks it is Best for Packed with
// DefaultReads at Published prices, and the Terraform tests check the
// bucket against it).
var Plan = map[int][]Transition{
	30:   nil, // Nearline's retrieval and reads cost more than 24 days save
	90:   {{7, Nearline}},
	365:  {{7, Nearline}},
	1825: {{7, Nearline}, {365, Coldline}},
}

// Round rounds to a cent fraction for tables.
func Round(x float64) float64 { return math.Round(x*10000) / 10000 }

// FormatLifecycle writes a schedule as "NEARLINE@7d COLDLINE@90d".
func FormatLifecycle(l []Transition) string {
	if len(l) == 0 {
		return "STANDARD"
	}
	s := ""
	for i, t := range l {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s@%dd", t.Class, t.Age)
	}
	return s
}
