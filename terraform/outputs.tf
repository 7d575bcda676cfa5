output "serve_url" {
  description = "Base URL of Serve (GET /v1/projects/...)."
  value       = var.deploy_functions ? google_cloudfunctions2_function.serve[0].service_config[0].uri : null
}

output "ingest_url" {
  description = "Ingest's URL: the host of Sentry DSNs and PostHog's api_host (replayvault keys create -ingest-url)."
  value       = var.deploy_functions ? google_cloudfunctions2_function.ingest[0].service_config[0].uri : null
}

output "shred_url" {
  description = "Base URL of Shred (IAM-only)."
  value       = var.deploy_functions ? google_cloudfunctions2_function.shred[0].service_config[0].uri : null
}

output "pack_url" {
  description = "Base URL of Pack (called only by the push subscription)."
  value       = var.deploy_functions ? google_cloudfunctions2_function.pack[0].service_config[0].uri : null
}

output "segment_topic" {
  description = "Topic segment producers publish to."
  value       = google_pubsub_topic.segments.id
}

output "reject_topic" {
  description = "Topic of permanently invalid segments (subscription of the same name keeps them a week)."
  value       = google_pubsub_topic.rejects.id
}

output "dead_letter_topic" {
  description = "Topic of segments Pack failed to take (subscription of the same name keeps them a week)."
  value       = google_pubsub_topic.dead_letter.id
}

output "bucket" {
  description = "Bucket of packed blobs."
  value       = google_storage_bucket.blobs.name
}

output "kms_key" {
  description = "KMS root key (KMS_KEY)."
  value       = google_kms_crypto_key.root.id
}

output "jwt_secret" {
  description = "Secret Manager secret of the JWT key; add versions to it."
  value       = google_secret_manager_secret.jwt.id
}

output "alloydb_instance" {
  description = "AlloyDB primary instance URI (ALLOYDB_INSTANCE)."
  value       = google_alloydb_instance.primary.name
}

output "source_bucket" {
  description = "Bucket Cloud Build uploads the function source to."
  value       = google_storage_bucket.source.name
}

output "deploy_service_account" {
  description = "Service account to run cloudbuild.yaml as."
  value       = google_service_account.deploy.email
}

output "deploy_db_user" {
  description = "AlloyDB IAM user of the deploy account (DB_USER of the migrate step)."
  value       = local.db_users.deploy
}

output "worker_pool" {
  description = "Cloud Build private pool peered into the VPC (for the migrate step)."
  value       = google_cloudbuild_worker_pool.deploy.id
}
