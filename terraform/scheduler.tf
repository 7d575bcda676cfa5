# The retention and orphan sweep: Cloud Scheduler calls Shred's POST /v1/sweep
# with an OIDC token of the scheduler account, the only account besides
# shred_invokers allowed to invoke Shred.

resource "google_cloud_scheduler_job" "sweep" {
  count            = var.deploy_functions ? 1 : 0
  name             = "${var.name}-sweep"
  region           = var.region
  description      = "Deletes expired segment rows and orphan objects."
  schedule         = var.sweep_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${var.shred_timeout_seconds}s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.shred[0].service_config[0].uri}/v1/sweep"

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.shred[0].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.shred_scheduler]
}
