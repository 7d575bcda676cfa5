# One service account per function, each granted only what its code does, on
# the resource it does it to. The only project-level grants are the AlloyDB
# client roles (AlloyDB has no per-instance IAM) and log writing for builds.

resource "google_service_account" "pack" {
  account_id   = "${var.name}-pack"
  display_name = "replayvault Pack function"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "serve" {
  account_id   = "${var.name}-serve"
  display_name = "replayvault Serve function"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "ingest" {
  account_id   = "${var.name}-ingest"
  display_name = "replayvault Ingest function"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "shred" {
  account_id   = "${var.name}-shred"
  display_name = "replayvault Shred function"
  depends_on   = [google_project_service.apis]
}

# Identity of the push subscription's OIDC token: may invoke Pack, nothing else.
resource "google_service_account" "pack_push" {
  account_id   = "${var.name}-pack-push"
  display_name = "replayvault segment push to Pack"
  depends_on   = [google_project_service.apis]
}

# Identity of the sweep job's OIDC token: may invoke Shred, nothing else.
resource "google_service_account" "scheduler" {
  account_id   = "${var.name}-scheduler"
  display_name = "replayvault sweep scheduler"
  depends_on   = [google_project_service.apis]
}

# Builds the function images from the uploaded source.
resource "google_service_account" "build" {
  account_id   = "${var.name}-fn-build"
  display_name = "replayvault function image builds"
  depends_on   = [google_project_service.apis]
}

# Runs cloudbuild.yaml: tests, migrations (as an AlloyDB IAM user) and
# terraform apply. Its administrative roles are granted by hand (README.md,
# "Roles the deployer needs"), not here.
resource "google_service_account" "deploy" {
  account_id   = "${var.name}-deploy"
  display_name = "replayvault Cloud Build deploys"
  depends_on   = [google_project_service.apis]
}

locals {
  # AlloyDB IAM database users are the service account email without
  # ".gserviceaccount.com".
  db_users = {
    pack   = trimsuffix(google_service_account.pack.email, ".gserviceaccount.com")
    serve  = trimsuffix(google_service_account.serve.email, ".gserviceaccount.com")
    shred  = trimsuffix(google_service_account.shred.email, ".gserviceaccount.com")
    ingest = trimsuffix(google_service_account.ingest.email, ".gserviceaccount.com")
    deploy = trimsuffix(google_service_account.deploy.email, ".gserviceaccount.com")
  }

  db_clients = {
    pack   = google_service_account.pack.member
    serve  = google_service_account.serve.member
    shred  = google_service_account.shred.member
    ingest = google_service_account.ingest.member
    deploy = google_service_account.deploy.member
  }

  # Connecting through the AlloyDB connector with IAM authentication.
  db_client_roles = [
    "roles/alloydb.client",
    "roles/alloydb.databaseUser",
    "roles/serviceusage.serviceUsageConsumer",
  ]

  db_client_grants = {
    for pair in setproduct(keys(local.db_clients), local.db_client_roles) :
    "${pair[0]} ${pair[1]}" => { client = pair[0], role = pair[1] }
  }

  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_project_iam_member" "db_client" {
  for_each = local.db_client_grants
  project  = var.project_id
  role     = each.value.role
  member   = local.db_clients[each.value.client]
}

# Pack: create objects (create-if-absent needs no read), encrypt new KEKs,
# publish rejects.
resource "google_storage_bucket_iam_member" "pack_create" {
  bucket = google_storage_bucket.blobs.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.pack.member
}

# Pack also reads edge rule modules, and nothing else in the bucket: a
# custom role with only storage.objects.get, bound under an IAM condition on
# the content-addressed prefix rules/sha256/ (the bucket has uniform access,
# which conditions require). Segment blobs stay unreadable to Pack.
resource "google_project_iam_custom_role" "rules_read" {
  role_id     = "${replace(var.name, "-", "_")}_rules_read"
  title       = "replayvault Pack rule module read"
  description = "Read objects; bound on the blob bucket under a rules/ prefix condition only."
  permissions = ["storage.objects.get"]
  depends_on  = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "pack_rules_read" {
  bucket = google_storage_bucket.blobs.name
  role   = google_project_iam_custom_role.rules_read.id
  member = google_service_account.pack.member
  condition {
    title       = "rule-modules-only"
    description = "Edge rule modules under rules/sha256/, no segment data."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.blobs.name}/objects/rules/sha256/\")"
  }
}

resource "google_kms_crypto_key_iam_member" "pack_encrypt" {
  crypto_key_id = google_kms_crypto_key.root.id
  role          = "roles/cloudkms.cryptoKeyEncrypter"
  member        = google_service_account.pack.member
}

resource "google_pubsub_topic_iam_member" "pack_reject" {
  topic  = google_pubsub_topic.rejects.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.pack.member
}

# Serve: ranged reads and KEK unwrapping.
resource "google_storage_bucket_iam_member" "serve_read" {
  bucket = google_storage_bucket.blobs.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.serve.member
}

resource "google_kms_crypto_key_iam_member" "serve_decrypt" {
  crypto_key_id = google_kms_crypto_key.root.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.serve.member
}

# Shred: compaction re-encoding segments to zstd (compact_zstd_level not
# "off") opens them, so it unwraps KEKs like Serve. This is the privilege the
# mode costs: with it Shred can read every segment whose key it holds (it
# already can delete them all). With compaction copying only, Shred never
# gets it and never decrypts.
resource "google_kms_crypto_key_iam_member" "shred_decrypt" {
  count         = var.compact_zstd_level == "off" ? 0 : 1
  crypto_key_id = google_kms_crypto_key.root.id
  role          = "roles/cloudkms.cryptoKeyDecrypter"
  member        = google_service_account.shred.member
}

# Shred: the orphan sweep lists objects and deletes those without a blob row;
# compaction reads an idle replay's sealed ranges and writes them as one new
# object (create-if-absent: it never overwrites). No predefined role has just
# these permissions (objectUser also updates metadata and ACLs), hence a
# custom role, bound on the bucket only.
resource "google_project_iam_custom_role" "shred_objects" {
  role_id     = "${replace(var.name, "-", "_")}_shred_objects"
  title       = "replayvault Shred object cleanup and compaction"
  description = "List, read, create and delete objects; bound on the blob bucket only."
  permissions = ["storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list"]
  depends_on  = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "shred_delete" {
  bucket = google_storage_bucket.blobs.name
  role   = google_project_iam_custom_role.shred_objects.id
  member = google_service_account.shred.member
}

# Ingest: publish segment messages, nothing else (its database user may
# only read keys and number batches: db_ingest_role).
resource "google_pubsub_topic_iam_member" "ingest_publish" {
  topic  = google_pubsub_topic.segments.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.ingest.member
}

# Other segment producers publish to the segment topic.
resource "google_pubsub_topic_iam_member" "segment_publishers" {
  for_each = toset(var.segment_publishers)
  topic    = google_pubsub_topic.segments.id
  role     = "roles/pubsub.publisher"
  member   = each.value
}

# Pub/Sub's service agent mints the push OIDC tokens and moves undeliverable
# messages to the dead-letter topic.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.pack_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
  depends_on         = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic      = google_pubsub_topic.dead_letter.id
  role       = "roles/pubsub.publisher"
  member     = local.pubsub_agent
  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count        = var.deploy_functions ? 1 : 0
  subscription = google_pubsub_subscription.pack[0].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Invokers, bound on each function's Cloud Run service (a 2nd gen function
# is invoked through it).
resource "google_cloud_run_v2_service_iam_member" "pack_push_invoker" {
  count    = var.deploy_functions ? 1 : 0
  location = var.region
  name     = google_cloudfunctions2_function.pack[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.pack_push.member
}

# Ingest delivers segments to Pack directly (functions/ingest/deliver.go),
# with an ID token of its own account.
resource "google_cloud_run_v2_service_iam_member" "pack_ingest_invoker" {
  count    = var.deploy_functions && var.ingest_direct_delivery ? 1 : 0
  location = var.region
  name     = google_cloudfunctions2_function.pack[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.ingest.member
}

resource "google_cloud_run_v2_service_iam_member" "serve_public" {
  count    = var.deploy_functions && var.serve_public ? 1 : 0
  location = var.region
  name     = google_cloudfunctions2_function.serve[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Ingest is the SDKs' front door: browsers call it without credentials; the
# ingest key, its origins and the rate limits guard it.
resource "google_cloud_run_v2_service_iam_member" "ingest_public" {
  count    = var.deploy_functions ? 1 : 0
  location = var.region
  name     = google_cloudfunctions2_function.ingest[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "shred_scheduler" {
  count    = var.deploy_functions ? 1 : 0
  location = var.region
  name     = google_cloudfunctions2_function.shred[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_run_v2_service_iam_member" "shred_invokers" {
  for_each = var.deploy_functions ? toset(var.shred_invokers) : toset([])
  location = var.region
  name     = google_cloudfunctions2_function.shred[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

# Function image builds: read the source, push the image, write build logs.
resource "google_storage_bucket_iam_member" "build_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_push" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build_logs" {
  for_each = {
    build  = google_service_account.build.member
    deploy = google_service_account.deploy.member
  }
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = each.value
}

# Cloud Build uploads the source archive...
resource "google_storage_bucket_iam_member" "deploy_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.deploy.member
}

# ...and deploys functions that run as these accounts.
resource "google_service_account_iam_member" "deploy_act_as" {
  for_each = {
    pack      = google_service_account.pack.name
    serve     = google_service_account.serve.name
    shred     = google_service_account.shred.name
    ingest    = google_service_account.ingest.name
    pack_push = google_service_account.pack_push.name
    scheduler = google_service_account.scheduler.name
    build     = google_service_account.build.name
    otelcol   = google_service_account.otel_collector.name
  }
  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deploy.member
}
