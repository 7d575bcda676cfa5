package bench

import "time"

// Prices are list prices in USD.
type Prices struct {
	// ClassAPer1000 is GCS class A operations (object writes, lists) per
	// 1,000 (Standard storage).
	ClassAPer1000 float64 `json:"gcs_class_a_per_1000"`
	// ClassBPer1000 is GCS class B operations (reads) per 1,000.
	ClassBPer1000 float64 `json:"gcs_class_b_per_1000"`
	// StorageGBMonth is GCS Standard storage per GB-month.
	StorageGBMonth float64 `json:"gcs_storage_gb_month"`
	// KMSPer10000 is Cloud KMS cryptographic operations (software keys)
	// per 10,000.
	KMSPer10000 float64 `json:"kms_per_10000"`
}

// PublishedPrices are the published prices the design is judged by.
var PublishedPrices = Prices{ClassAPer1000: 0.005, ClassBPer1000: 0.0004, StorageGBMonth: 0.02, KMSPer10000: 0.03}

// Ops are the billable operations of one design per 1,000,000 segments,
// from counted operations.
type Ops struct {
	// ClassA is object writes (and lists) made while ingesting.
	ClassA float64 `json:"gcs_class_a"`
	// ClassB is object reads made by reading every segment back once.
	ClassB float64 `json:"gcs_class_b"`
	// KMS is KMS calls made while ingesting and reading back.
	KMS float64 `json:"kms_calls"`
	// StoredGB is the bytes stored, in GB (10^9).
	StoredGB float64 `json:"stored_gb"`
}

// Cost is the price of Ops, item by item. Storage is one month of the
// stored bytes; multiply by the retention in months for a segment's life.
type Cost struct {
	ClassA       float64 `json:"gcs_class_a"`
	ClassB       float64 `json:"gcs_class_b"`
	KMS          float64 `json:"kms"`
	StorageMonth float64 `json:"storage_month"`
	Total        float64 `json:"total"`
}

// Cost prices ops.
func (p Prices) Cost(o Ops) Cost {
	c := Cost{
		ClassA:       o.ClassA / 1000 * p.ClassAPer1000,
		ClassB:       o.ClassB / 1000 * p.ClassBPer1000,
		KMS:          o.KMS / 10000 * p.KMSPer10000,
		StorageMonth: o.StoredGB * p.StorageGBMonth,
	}
	c.Total = c.ClassA + c.ClassB + c.KMS + c.StorageMonth
	return c
}

// perMillion scales a count over n segments to 1,000,000 segments.
func perMillion(count, n float64) float64 {
	if n <= 0 {
		return 0
	}
	return count / n * 1e6
}

// Default latencies injected by the stand-ins: about one round trip to
// Cloud Storage and to Cloud KMS from a Cloud Run instance in the same
// region.
const (
	DefaultGCSLatency = 20 * time.Millisecond
	DefaultKMSLatency = 10 * time.Millisecond
)
