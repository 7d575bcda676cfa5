package telemetry

// Metric names. Every instrument replayvault emits is named here; the
// Terraform dashboard and alert policies refer to them (through
// Cloud Monitoring's workload.googleapis.com/ prefix for OTLP metrics), and
// terraform_test.go reads this file so the two cannot drift apart.
const (
	// Pack.
	MetricPackReceived      = "replayvault.pack.segments.received"  // {segment}; every push decoded
	MetricPackStored        = "replayvault.pack.segments.stored"    // {segment}; durable and acked
	MetricPackDuplicate     = "replayvault.pack.segments.duplicate" // {segment}; redelivery of a stored segment
	MetricPackDiscarded     = "replayvault.pack.segments.discarded" // {segment}; replay or project shredded
	MetricPackRejected      = "replayvault.pack.segments.rejected"  // {segment}; attr reject_reason
	MetricPackFlushBytes    = "replayvault.pack.flush.bytes"        // By; one object; attr trigger
	MetricPackFlushSegments = "replayvault.pack.flush.segments"     // {segment}; segments in the object; attr trigger
	MetricPackFlushAge      = "replayvault.pack.flush.age"          // s; first segment's wait; attr trigger
	MetricPackFlushDuration = "replayvault.pack.flush.duration"     // s; upload + commit; attr trigger, outcome
	MetricPackAckWait       = "replayvault.pack.ack.wait"           // s; push received to answer; attr result
	MetricPackBufferBytes   = "replayvault.pack.buffer.bytes"       // By; sealed bytes held (up-down)
	MetricPackOverloaded    = "replayvault.pack.overloaded"         // {request}; answered 429
	MetricPackKEKRotations  = "replayvault.pack.kek.rotations"      // {key}; new KEKs wrapped and stored

	// KMS, from every function that calls it.
	MetricKMSCalls = "replayvault.kms.calls" // {call}; attr op (wrap, unwrap), outcome (ok, error)

	// Serve (and the HTTP metrics of Shred and Ingest, by attr function).
	MetricHTTPRequests = "replayvault.http.requests"         // {request}; attr function, route, http.response.status_code
	MetricHTTPDuration = "replayvault.http.request.duration" // s; attr function, route, http.response.status_code
	MetricServeTTFB    = "replayvault.serve.ttfb"            // s; request start to the first recording byte
	MetricServeBytes   = "replayvault.serve.bytes"           // By; bytes read from storage per request
	MetricServeReads   = "replayvault.serve.reads"           // {read}; ranged reads per request
	MetricServeCoalesc = "replayvault.serve.coalescing"      // 1; segments per ranged read, per request

	// Shred and the sweep.
	MetricShredReceipts = "replayvault.shred.receipts" // {receipt}; attr kind (replays, project)
	MetricShredSegments = "replayvault.shred.segments" // {segment}; segment rows shredded
	MetricSweepWork     = "replayvault.sweep.work"     // {item}; attr kind (segments_expired, blobs_deleted, orphans_deleted, ...)
	MetricSweepBacklog  = "replayvault.sweep.backlog"  // {item}; work left when a sweep run ended (gauge)
	MetricSweepRuns     = "replayvault.sweep.runs"     // {run}; attr outcome (done, budget, error)

	// Ingest (functions/ingest, built separately).
	MetricIngestRequests = "replayvault.ingest.requests" // {request}; attr sdk, outcome
	MetricIngestSegments = "replayvault.ingest.segments" // {segment}; published to the segment topic; attr sdk
)

// MetricNames lists every metric name above.
func MetricNames() []string {
	return []string{
		MetricPackReceived, MetricPackStored, MetricPackDuplicate, MetricPackDiscarded, MetricPackRejected,
		MetricPackFlushBytes, MetricPackFlushSegments, MetricPackFlushAge, MetricPackFlushDuration,
		MetricPackAckWait, MetricPackBufferBytes, MetricPackOverloaded, MetricPackKEKRotations,
		MetricKMSCalls,
		MetricHTTPRequests, MetricHTTPDuration, MetricServeTTFB, MetricServeBytes, MetricServeReads, MetricServeCoalesc,
		MetricShredReceipts, MetricShredSegments, MetricSweepWork, MetricSweepBacklog, MetricSweepRuns,
		MetricIngestRequests, MetricIngestSegments,
	}
}

// DeployEnv lists the environment variables a deployment sets on every
// function for telemetry and logging (beside its config struct's):
// the collector's endpoint and the project that log lines' trace field
// names. terraform_test.go holds functions.tf to it.
func DeployEnv() []string {
	return []string{"GOOGLE_CLOUD_PROJECT", "OTEL_EXPORTER_OTLP_ENDPOINT"}
}

// Flush triggers: why a batch was closed.
const (
	TriggerSize        = "size"        // FLUSH_BYTES reached
	TriggerCount       = "count"       // FLUSH_SEGMENTS reached
	TriggerAge         = "age"         // FLUSH_AGE elapsed
	TriggerConcurrency = "concurrency" // MAX_CONCURRENCY requests held
	TriggerDrain       = "drain"       // shutdown
)
