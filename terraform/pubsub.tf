# Segments arrive on the segment topic and reach Pack through an explicit push
# subscription rather than an Eventarc trigger: the subscription Eventarc makes
# has an ack deadline Terraform cannot set (and no dead-letter policy), while
# group commit holds each request for up to FLUSH_AGE plus a flush. Pack
# reads the push body itself, and would take Eventarc's binary-mode
# CloudEvent as well (terraform/README.md, "Why a push subscription").

resource "google_pubsub_topic" "segments" {
  name       = "${var.name}-segments"
  depends_on = [google_project_service.apis]
}

# Permanently invalid segments, published by Pack with a reject_reason
# attribute. Kept apart from the dead-letter topic: rejects are bad input,
# dead letters are delivery failures.
resource "google_pubsub_topic" "rejects" {
  name       = "${var.name}-rejects"
  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "rejects" {
  name                       = "${var.name}-rejects"
  topic                      = google_pubsub_topic.rejects.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

# Segments Pack failed to take after pack_max_delivery_attempts deliveries.
resource "google_pubsub_topic" "dead_letter" {
  name       = "${var.name}-dead-letter"
  depends_on = [google_project_service.apis]
}

# A topic without a subscription drops what is published to it; this one keeps
# dead letters a week for inspection and replay.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "pack" {
  count = var.deploy_functions ? 1 : 0
  name  = "${var.name}-pack"
  topic = google_pubsub_topic.segments.id

  # A push request is answered only after its batch is committed.
  ack_deadline_seconds       = var.pack_ack_deadline_seconds
  message_retention_duration = "604800s"

  push_config {
    # Pack is an HTTP function that reads the push body itself.
    push_endpoint = google_cloudfunctions2_function.pack[0].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.pack_push.email
      audience              = google_cloudfunctions2_function.pack[0].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.pack_retry_min_backoff
    maximum_backoff = var.pack_retry_max_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.pack_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.pack_push_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}
