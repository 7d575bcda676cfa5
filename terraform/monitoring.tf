# Operators' view of replayvault in Cloud Monitoring: one dashboard and the
# alert policies. The replayvault.* metrics are the OpenTelemetry metrics the
# functions export over OTLP (shared/telemetry/names.go); the collector
# (otel.tf) writes them as workload.googleapis.com/<name> on generic_task,
# each attribute a label with "_" for "." (http.response.status_code is
# metric.label.http_response_status_code). terraform_test.go checks that
# every metric and label named here is one the code emits, on that
# resource type, and that every alert notifies a channel.

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) every alert notifies; at least one."
  type        = list(string)

  validation {
    condition     = length(var.notification_channels) > 0
    error_message = "Give at least one notification channel: an alert nobody receives is no alert."
  }

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels must be full notification channel ids."
  }
}

variable "alert_ack_p99_fraction" {
  description = "The ack-wait alert fires when Pack's p99 ack wait exceeds this fraction of the push subscription's ack deadline."
  type        = number
  default     = 0.5
}

variable "alert_reject_ratio" {
  description = "The reject alert fires when this fraction of received segments is rejected over 10 minutes."
  type        = number
  default     = 0.05
}

variable "alert_5xx_ratio" {
  description = "The 5xx alert fires when this fraction of a function's HTTP requests answers 5xx over 5 minutes."
  type        = number
  default     = 0.01
}

locals {
  # Prefix of the OTLP metrics in Cloud Monitoring, and the monitored
  # resource the collector's googlecloud exporter writes them against
  # (telemetry.MonitoredResource): every filter on them names both.
  otel          = "workload.googleapis.com"
  otel_resource = "resource.type=\"generic_task\""

  metric = {
    received       = "replayvault.pack.segments.received"
    rejected       = "replayvault.pack.segments.rejected"
    flush_bytes    = "replayvault.pack.flush.bytes"
    flush_segments = "replayvault.pack.flush.segments"
    ack_wait       = "replayvault.pack.ack.wait"
    http_requests  = "replayvault.http.requests"
    http_duration  = "replayvault.http.request.duration"
    sweep_backlog  = "replayvault.sweep.backlog"
  }

  dead_letter_subscription = "${var.name}-dead-letter"
  alloydb_cluster          = var.name

  # One xyChart tile of the dashboard.
  chart = {
    for k, c in {
      ingest_rate = {
        title  = "Segments received /s (Pack)"
        filter = "metric.type=\"${local.otel}/${local.metric.received}\" AND ${local.otel_resource}"
        align  = "ALIGN_RATE", reduce = "REDUCE_SUM", group = []
      }
      reject_rate = {
        title  = "Segments rejected /s, by reason"
        filter = "metric.type=\"${local.otel}/${local.metric.rejected}\" AND ${local.otel_resource}"
        align  = "ALIGN_RATE", reduce = "REDUCE_SUM", group = ["metric.label.reject_reason"]
      }
      flush_size = {
        title  = "Flush size, bytes (p50)"
        filter = "metric.type=\"${local.otel}/${local.metric.flush_bytes}\" AND ${local.otel_resource}"
        align  = "ALIGN_DELTA", reduce = "REDUCE_PERCENTILE_50", group = ["metric.label.trigger"]
      }
      flush_segments = {
        title  = "Segments per flush (p50), by trigger"
        filter = "metric.type=\"${local.otel}/${local.metric.flush_segments}\" AND ${local.otel_resource}"
        align  = "ALIGN_DELTA", reduce = "REDUCE_PERCENTILE_50", group = ["metric.label.trigger"]
      }
      ack_p99 = {
        title  = "Pack ack wait p99, s"
        filter = "metric.type=\"${local.otel}/${local.metric.ack_wait}\" AND ${local.otel_resource}"
        align  = "ALIGN_DELTA", reduce = "REDUCE_PERCENTILE_99", group = []
      }
      serve_p99 = {
        title  = "Serve request duration p99, s"
        filter = "metric.type=\"${local.otel}/${local.metric.http_duration}\" AND ${local.otel_resource} AND metric.label.function=\"serve\""
        align  = "ALIGN_DELTA", reduce = "REDUCE_PERCENTILE_99", group = ["metric.label.route"]
      }
      serve_errors = {
        title  = "Serve 5xx /s"
        filter = "metric.type=\"${local.otel}/${local.metric.http_requests}\" AND ${local.otel_resource} AND metric.label.function=\"serve\" AND metric.label.http_response_status_code=starts_with(\"5\")"
        align  = "ALIGN_RATE", reduce = "REDUCE_SUM", group = ["metric.label.http_response_status_code"]
      }
      dlq_depth = {
        title  = "Dead-letter messages"
        filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${local.dead_letter_subscription}\""
        align  = "ALIGN_MAX", reduce = "REDUCE_SUM", group = []
      }
      alloydb_cpu = {
        title  = "AlloyDB CPU utilization"
        filter = "metric.type=\"alloydb.googleapis.com/instance/cpu/average_utilization\" AND resource.type=\"alloydb.googleapis.com/Instance\" AND resource.label.cluster_id=\"${local.alloydb_cluster}\""
        align  = "ALIGN_MEAN", reduce = "REDUCE_MAX", group = ["resource.label.instance_id"]
      }
      sweep_backlog = {
        title  = "Sweep backlog (expired rows left)"
        filter = "metric.type=\"${local.otel}/${local.metric.sweep_backlog}\" AND ${local.otel_resource}"
        align  = "ALIGN_MAX", reduce = "REDUCE_MAX", group = []
      }
      } : k => {
      title = c.title
      xyChart = {
        dataSets = [{
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = c.filter
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = c.align
                crossSeriesReducer = c.reduce
                groupByFields      = c.group
              }
            }
          }
        }]
      }
    }
  }
  chart_order = ["ingest_rate", "reject_rate", "flush_size", "flush_segments", "ack_p99", "serve_p99", "serve_errors", "dlq_depth", "alloydb_cpu", "sweep_backlog"]
}

resource "google_monitoring_dashboard" "replayvault" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "replayvault"
    mosaicLayout = {
      columns = 12
      tiles = [for i, k in local.chart_order : {
        xPos   = (i % 2) * 6
        yPos   = floor(i / 2) * 4
        width  = 6
        height = 4
        widget = local.chart[k]
      }]
    }
  })
}

# Pack's p99 ack wait nears the ack deadline: Pub/Sub would soon redeliver
# segments that are still being flushed (duplicates, wasted work).
resource "google_monitoring_alert_policy" "ack_wait" {
  project               = var.project_id
  display_name          = "${var.name}: Pack ack wait p99 near the ack deadline"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "p99 ack wait > ${var.alert_ack_p99_fraction} x ${var.pack_ack_deadline_seconds}s"
    condition_threshold {
      filter          = "metric.type=\"${local.otel}/${local.metric.ack_wait}\" AND ${local.otel_resource}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_ack_p99_fraction * var.pack_ack_deadline_seconds
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
      }
    }
  }
  documentation {
    content = "Pack holds each push until its batch is committed. A p99 near the ack deadline means flushes are slow (GCS, AlloyDB or KMS latency; see the trace of a slow pack.segment span) or the buffer is full. Redeliveries are safe (duplicates are detected) but waste work."
  }
}

# Any message in the dead-letter topic is a segment Pack failed to store
# after every retry.
resource "google_monitoring_alert_policy" "dead_letter" {
  project               = var.project_id
  display_name          = "${var.name}: messages in the dead-letter subscription"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "dead-letter backlog > 0"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${local.dead_letter_subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
  documentation {
    content = "Segments in ${local.dead_letter_subscription} were nacked ${var.pack_max_delivery_attempts} times. Find their traces by message id in Pack's logs, fix the cause, then republish them to the segment topic."
  }
}

# A spike of rejected segments: a broken SDK release or an attack.
resource "google_monitoring_alert_policy" "reject_rate" {
  project               = var.project_id
  display_name          = "${var.name}: reject rate spike"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "rejected / received > ${var.alert_reject_ratio}"
    condition_threshold {
      filter             = "metric.type=\"${local.otel}/${local.metric.rejected}\" AND ${local.otel_resource}"
      denominator_filter = "metric.type=\"${local.otel}/${local.metric.received}\" AND ${local.otel_resource}"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_reject_ratio
      duration           = "600s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  documentation {
    content = "More than ${var.alert_reject_ratio * 100}% of segments are rejected. The reject_reason label of ${local.metric.rejected} and the reject topic's messages say why."
  }
}

# Any function answering 5xx at a rate worth a look.
resource "google_monitoring_alert_policy" "http_5xx" {
  project               = var.project_id
  display_name          = "${var.name}: 5xx rate"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "5xx / requests > ${var.alert_5xx_ratio}"
    condition_threshold {
      filter             = "metric.type=\"${local.otel}/${local.metric.http_requests}\" AND ${local.otel_resource} AND metric.label.http_response_status_code=starts_with(\"5\")"
      denominator_filter = "metric.type=\"${local.otel}/${local.metric.http_requests}\" AND ${local.otel_resource}"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_5xx_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.function"]
      }
    }
  }
  documentation {
    content = "A function answers 5xx to more than ${var.alert_5xx_ratio * 100}% of requests. Its ERROR log lines carry the trace of each failed request."
  }
}

# The sweep leaves more expired rows behind each run: it cannot keep up.
resource "google_monitoring_alert_policy" "sweep_backlog" {
  project               = var.project_id
  display_name          = "${var.name}: sweep backlog growing"
  combiner              = "OR"
  notification_channels = var.notification_channels
  conditions {
    display_name = "sweep backlog rising over 6 hours"
    condition_threshold {
      filter          = "metric.type=\"${local.otel}/${local.metric.sweep_backlog}\" AND ${local.otel_resource}"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "21600s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_PERCENT_CHANGE"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }
  documentation {
    content = "Each sweep run ends with more expired segment rows left than the one before (${local.metric.sweep_backlog}). Raise SWEEP_BATCH, run the sweep more often, or check the sweep's logs for errors."
  }
}
