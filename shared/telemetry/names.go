package telemetry

import "unicode"

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

// MetricAttributes lists the attribute keys each metric is recorded with
// (a test in this package records every instrument and compares). Cloud
// Monitoring names a metric label after its key with every character but
// letters and digits made "_" (MetricLabel), which is what the Terraform
// filters must say.
func MetricAttributes() map[string][]string {
	return map[string][]string{
		MetricPackRejected:      {"reject_reason"},
		MetricPackFlushBytes:    {"trigger"},
		MetricPackFlushSegments: {"trigger"},
		MetricPackFlushAge:      {"trigger"},
		MetricPackFlushDuration: {"outcome", "trigger"},
		MetricPackAckWait:       {"result"},
		MetricKMSCalls:          {"op", "outcome"},
		MetricHTTPRequests:      {"function", "http.response.status_code", "route"},
		MetricHTTPDuration:      {"function", "http.response.status_code", "route"},
		MetricShredReceipts:     {"kind"},
		MetricSweepWork:         {"kind"},
		MetricSweepRuns:         {"outcome"},
		MetricIngestRequests:    {"outcome", "sdk"},
		MetricIngestSegments:    {"sdk"},
	}
}

// MetricLabel is the Cloud Monitoring label of attribute key: the
// collector's googlecloud exporter turns every character that is not a
// letter or digit into "_" (http.response.status_code becomes
// http_response_status_code) and prefixes "key_" to a leading digit.
func MetricLabel(key string) string {
	b := []rune(key)
	for i, r := range b {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			b[i] = '_'
		}
	}
	s := string(b)
	if s != "" && unicode.IsDigit(b[0]) {
		s = "key_" + s
	}
	return s
}

// MonitoredResource is the Cloud Monitoring resource type the functions'
// metrics are written against. The collector's googlecloud exporter maps
// an OTLP resource with service.name and service.instance.id (NewSDK sets
// both) and no cloud.platform it knows (GCE, GKE, App Engine, EC2) to
// generic_task, with job = service.name (K_SERVICE), task_id =
// service.instance.id and location "global". Dashboard and alert filters
// on replayvault metrics name this type.
const MonitoredResource = "generic_task"

// DeployEnv lists the environment variables a deployment sets on every
// function for telemetry and logging (beside its config struct's): the
// collector's endpoint and protocol, the trace sample ratio, and the
// project that log lines' trace field names. terraform_test.go holds
// functions.tf to it.
func DeployEnv() []string {
	return []string{"GOOGLE_CLOUD_PROJECT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER_ARG"}
}

// Flush triggers: why a batch was closed.
const (
	TriggerSize        = "size"        // FLUSH_BYTES reached
	TriggerCount       = "count"       // FLUSH_SEGMENTS reached
	TriggerAge         = "age"         // FLUSH_AGE elapsed
	TriggerConcurrency = "concurrency" // MAX_CONCURRENCY requests held
	TriggerDrain       = "drain"       // shutdown
)
