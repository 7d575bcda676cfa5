# The OpenTelemetry Collector the functions export metrics and traces to: a
# Cloud Run service running the collector's contrib image with the
# googlecloud exporter (metrics to Cloud Monitoring as
# workload.googleapis.com/<name> on generic_task, traces to Cloud Trace).
#
# - Its own service account may only write metrics and traces.
# - Ingress is internal and only the four functions' service accounts may
#   invoke it: the functions send an ID token with every export
#   (shared/telemetry IDTokenTransport), over their VPC interface (a
#   private run.app zone sends *.run.app to private.googleapis.com, which
#   direct VPC egress routes through the VPC even with private ranges only,
#   so Cloud Run counts the requests as internal).
# - Its configuration is otel-collector.yaml.tftpl, rendered here and
#   passed in an environment variable (it holds no secret). It exports
#   while the functions' request waits, so the service needs CPU only
#   during requests (request-based billing; min instances 0).
#
# otel_collector_endpoint points the functions at another collector
# instead; deploy_otel_collector = false with no endpoint turns telemetry
# off. terraform_test.go checks the roles, ingress, invokers and that every
# function exports here.

variable "deploy_otel_collector" {
  description = "Deploy the OpenTelemetry Collector on Cloud Run and point the functions at it (unless otel_collector_endpoint names another collector). False with no endpoint turns telemetry off."
  type        = bool
  default     = true
}

variable "otel_collector_endpoint" {
  description = "OTLP/HTTP endpoint of an existing collector the functions export to instead of the one deployed here (OTEL_EXPORTER_OTLP_ENDPOINT, e.g. https://collector-xyz.a.run.app; an https run.app endpoint gets ID tokens). Empty: the deployed collector, or none."
  type        = string
  default     = ""
}

variable "otel_collector_image" {
  description = "Image of the OpenTelemetry Collector contrib distribution (it has the googlecloud exporter), without tag."
  type        = string
  default     = "docker.io/otel/opentelemetry-collector-contrib"
}

variable "otel_collector_version" {
  description = "Version (image tag) of the collector; pinned, and bumped deliberately: the configuration's keys follow the collector's releases."
  type        = string
  default     = "0.162.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.otel_collector_version))
    error_message = "otel_collector_version must be a release version such as 0.162.0, never latest."
  }
}

variable "otel_collector_memory_mib" {
  description = "Memory of a collector instance, MiB; the memory limiter refuses data at 80% of it."
  type        = number
  default     = 512
}

variable "otel_collector_max_instances" {
  description = "Upper bound on collector instances."
  type        = number
  default     = 4
}

variable "otel_trace_sample_ratio" {
  description = "OTEL_TRACES_SAMPLER_ARG: fraction of new traces the functions sample (a caller's sampled traceparent is followed either way); telemetry.DefaultSampleRatio when unset."
  type        = string
  default     = "0.1"
}

locals {
  deploy_otel_collector = var.deploy_otel_collector && var.otel_collector_endpoint == ""

  # Where the functions send OTLP: the given collector, the deployed one,
  # or nowhere (telemetry off).
  otel_endpoint = (var.otel_collector_endpoint != "" ? var.otel_collector_endpoint :
  local.deploy_otel_collector ? google_cloud_run_v2_service.otel_collector[0].uri : "")

  # Every function's telemetry and logging settings (telemetry.DeployEnv):
  # the collector, OTLP/HTTP (the one protocol an ID token is added to),
  # the trace sample ratio, and the project the log lines' trace field
  # names.
  telemetry_env = {
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint
    OTEL_EXPORTER_OTLP_PROTOCOL = "http/protobuf"
    OTEL_TRACES_SAMPLER_ARG     = var.otel_trace_sample_ratio
    GOOGLE_CLOUD_PROJECT        = var.project_id
  }

  # The identities that export to the collector: the functions'.
  telemetry_senders = {
    pack   = google_service_account.pack.member
    serve  = google_service_account.serve.member
    shred  = google_service_account.shred.member
    ingest = google_service_account.ingest.member
  }

  # What the collector's account may do: write time series and spans.
  otel_collector_roles = ["roles/monitoring.metricWriter", "roles/cloudtrace.agent"]

  otel_collector_port = 4318

  otel_collector_config = templatefile("${path.module}/otel-collector.yaml.tftpl", {
    port             = local.otel_collector_port
    project          = var.project_id
    metric_prefix    = local.otel
    memory_limit_mib = floor(var.otel_collector_memory_mib * 0.8)
    memory_spike_mib = floor(var.otel_collector_memory_mib * 0.2)
  })
}

resource "google_service_account" "otel_collector" {
  account_id   = "${var.name}-otelcol"
  display_name = "replayvault OpenTelemetry collector"
  depends_on   = [google_project_service.apis]
}

# Cloud Monitoring and Cloud Trace have no per-resource IAM: these are
# project-level, and all the collector's account holds.
resource "google_project_iam_member" "otel_collector" {
  for_each = { for r in local.otel_collector_roles : r => r if local.deploy_otel_collector }
  project  = var.project_id
  role     = each.value
  member   = google_service_account.otel_collector.member
}

resource "google_cloud_run_v2_service" "otel_collector" {
  count               = local.deploy_otel_collector ? 1 : 0
  name                = "${var.name}-otel-collector"
  location            = var.region
  description         = "OpenTelemetry Collector: the functions' OTLP metrics to Cloud Monitoring, traces to Cloud Trace."
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false

  template {
    service_account                  = google_service_account.otel_collector.email
    max_instance_request_concurrency = 80
    timeout                          = "30s"

    scaling {
      min_instance_count = 0
      max_instance_count = var.otel_collector_max_instances
    }

    containers {
      image = "${var.otel_collector_image}:${var.otel_collector_version}"
      args  = ["--config=env:OTELCOL_CONFIG"]

      ports {
        container_port = local.otel_collector_port
      }

      env {
        name  = "OTELCOL_CONFIG"
        value = local.otel_collector_config
      }

      # The collector exports while the request that brought the data
      # waits (otel-collector.yaml.tftpl): CPU only during requests.
      resources {
        limits = {
          cpu    = "1"
          memory = "${var.otel_collector_memory_mib}Mi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }
    }
  }

  depends_on = [google_project_service.apis, google_project_iam_member.otel_collector]
}

# Only the functions may send telemetry.
resource "google_cloud_run_v2_service_iam_member" "otel_collector_invokers" {
  for_each = { for k, m in local.telemetry_senders : k => m if local.deploy_otel_collector }
  location = var.region
  name     = google_cloud_run_v2_service.otel_collector[0].name
  role     = "roles/run.invoker"
  member   = each.value
}

# The functions reach *.run.app through the VPC: Private Google Access's
# private.googleapis.com addresses, which direct VPC egress sends through
# the VPC with VPC_EGRESS_PRIVATE_RANGES_ONLY, so the collector's internal
# ingress admits them.
resource "google_dns_managed_zone" "run_app" {
  count       = local.deploy_otel_collector ? 1 : 0
  name        = "${var.name}-run-app"
  dns_name    = "run.app."
  description = "Sends the functions' requests to *.run.app (the collector) through the VPC."
  visibility  = "private"

  private_visibility_config {
    networks {
      network_url = google_compute_network.vpc.id
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_dns_record_set" "run_app" {
  count        = local.deploy_otel_collector ? 1 : 0
  managed_zone = google_dns_managed_zone.run_app[0].name
  name         = "*.run.app."
  type         = "A"
  ttl          = 300
  rrdatas      = ["199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11"]
}
