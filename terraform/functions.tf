# The four functions, built by the Go buildpack from the module root (the
# root package registers all four) and deployed with different entry points.
# Every environment variable a config struct in shared/config reads is set
# here, so defaults are visible and tunable; the local-only ones
# (config.LocalOnly) never are. A test holds both to the config structs.

locals {
  # config.DB and config.Storage: read by every function.
  common_env = {
    ALLOYDB_INSTANCE = google_alloydb_instance.primary.name
    DB_NAME          = var.db_name
    DB_MAX_CONNS     = var.db_max_conns
    DB_TIMEOUT       = var.db_timeout
    BUCKET           = google_storage_bucket.blobs.name
    GCS_TIMEOUT      = var.gcs_timeout
  }

  # config.Auth, besides JWT_SECRET (from Secret Manager).
  auth_env = {
    CORS_ORIGINS     = join(",", var.cors_origins)
    JWT_AUDIENCE     = var.jwt_audience
    JWT_ISSUER       = var.jwt_issuer
    JWT_MAX_LIFETIME = var.jwt_max_lifetime
  }

  # config.KMS.
  kms_env = {
    KMS_KEY     = google_kms_crypto_key.root.id
    KMS_TIMEOUT = var.kms_timeout
  }

  pack_env = merge(local.common_env, local.kms_env, local.telemetry_env, {
    DB_USER                      = local.db_users.pack
    GOOGLE_CLOUD_PROJECT         = var.project_id
    REJECT_TOPIC                 = google_pubsub_topic.rejects.name
    PUBSUB_TIMEOUT               = var.pubsub_timeout
    FLUSH_BYTES                  = var.flush_bytes
    FLUSH_SEGMENTS               = var.flush_segments
    FLUSH_AGE                    = var.flush_age
    MAX_CONCURRENCY              = var.pack_max_concurrency
    MAX_BUFFER_BYTES             = var.max_buffer_bytes
    MAX_DECOMPRESSED_BYTES       = var.max_decompressed_bytes
    KEK_ROTATE                   = var.kek_rotate
    RULES_REFRESH                = var.rules_refresh
    RULES_TIMEOUT                = var.rules_timeout
    RULES_MEMORY_BYTES           = var.rules_memory_bytes
    RULES_MAX_INPUT_BYTES        = var.rules_max_input_bytes
    DERIVE_SLICES                = var.derive_slices
    TRANSCODE_MIN_RETENTION_DAYS = var.transcode_min_retention_days
    STORE_ZSTD_LEVEL             = var.store_zstd_level
    # Rewritten events (a PII scrub's) are left for compaction to compress,
    # unless compaction does not run or does not re-encode (README, Edge rules).
    REWRITTEN_ENCODING = var.compact_zstd_level == "off" || var.compact_idle == "0s" || var.compact_idle == "0" ? "s2" : "plain"
  })

  # MAX_DECOMPRESSED_BYTES is Pack's value: Serve must inflate every segment
  # Pack kept.
  serve_env = merge(local.common_env, local.kms_env, local.auth_env, local.telemetry_env, {
    DB_USER                = local.db_users.serve
    MAX_DECOMPRESSED_BYTES = var.max_decompressed_bytes
    COALESCE_GAP_BYTES     = var.coalesce_gap_bytes
    MAX_READ_BYTES         = var.max_read_bytes
    READ_PARALLELISM       = var.read_parallelism
    MAX_INFLIGHT_BYTES     = var.max_inflight_bytes
    GOMEMLIMIT             = var.serve_gomemlimit
    KEK_CACHE_SIZE         = var.kek_cache_size
    KEK_CACHE_TTL          = var.kek_cache_ttl
  })

  # Ingest reads keys, calls Pack and publishes; no bucket, no KMS key.
  ingest_env = merge(local.telemetry_env, local.ingest_pack_env, {
    ALLOYDB_INSTANCE       = google_alloydb_instance.primary.name
    DB_NAME                = var.db_name
    DB_MAX_CONNS           = var.db_max_conns
    DB_TIMEOUT             = var.db_timeout
    DB_USER                = local.db_users.ingest
    GOOGLE_CLOUD_PROJECT   = var.project_id
    SEGMENT_TOPIC          = google_pubsub_topic.segments.name
    PUBSUB_TIMEOUT         = var.pubsub_timeout
    MAX_BODY_BYTES         = var.ingest_max_body_bytes
    MAX_DECOMPRESSED_BYTES = var.ingest_max_decompressed_bytes
    KEY_CACHE_TTL          = var.ingest_key_cache_ttl
    KEY_RATE               = var.ingest_key_rate
    KEY_BURST              = var.ingest_key_burst
    PROJECT_RATE           = var.ingest_project_rate
    PROJECT_BURST          = var.ingest_project_burst
    RETENTION_DAYS         = var.ingest_retention_days
    POSTHOG_STATIC_DIR     = var.ingest_posthog_static_dir
  })

  # Direct delivery (functions/ingest/deliver.go): Pub/Sub only for what
  # Pack does not take in time.
  ingest_pack_env = {
    PACK_URL        = var.deploy_functions && var.ingest_direct_delivery ? google_cloudfunctions2_function.pack[0].service_config[0].uri : ""
    PACK_TIMEOUT    = var.ingest_pack_timeout
    PACK_HOLD_BYTES = var.ingest_pack_hold_bytes
  }

  # KMS_KEY names the key only; Shred may decrypt with it (iam.tf,
  # shred_decrypt) only while compaction re-encodes (compact_zstd_level).
  shred_env = merge(local.common_env, local.kms_env, local.auth_env, local.telemetry_env, {
    DB_USER                = local.db_users.shred
    ORPHAN_GRACE           = var.orphan_grace
    SWEEP_BATCH            = var.sweep_batch
    COMPACT_IDLE           = var.compact_idle
    COMPACT_MAX_BYTES      = var.compact_max_bytes
    COMPACT_ZSTD_LEVEL     = var.compact_zstd_level
    MAX_DECOMPRESSED_BYTES = var.max_decompressed_bytes
  })

  source_generation = var.deploy_functions ? data.google_storage_bucket_object.source[0].generation : null
}

resource "google_cloudfunctions2_function" "pack" {
  count       = var.deploy_functions ? 1 : 0
  name        = "${var.name}-pack"
  location    = var.region
  description = "Validates, seals and packs segments pushed by the ${var.name}-pack subscription."

  build_config {
    runtime           = var.go_runtime
    entry_point       = "Pack"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket     = google_storage_bucket.source.name
        object     = var.source_object
        generation = local.source_generation
      }
    }
  }

  service_config {
    service_account_email = google_service_account.pack.email
    # Group commit: a request waits for its batch, so one instance must hold
    # many requests (MAX_CONCURRENCY is the same number) and at least 1 vCPU.
    max_instance_request_concurrency = var.pack_max_concurrency
    available_cpu                    = var.pack_cpu
    available_memory                 = var.pack_memory
    max_instance_count               = var.pack_max_instances
    min_instance_count               = 0
    timeout_seconds                  = var.pack_timeout_seconds
    # Only the push subscription calls Pack; Pub/Sub in the same project
    # counts as internal.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    environment_variables          = local.pack_env

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
  }

  depends_on = [
    google_alloydb_user.functions,
    google_project_iam_member.db_client,
    google_storage_bucket_iam_member.build_source,
    google_artifact_registry_repository_iam_member.build_push,
    google_project_iam_member.build_logs,
  ]
}

resource "google_cloudfunctions2_function" "serve" {
  count       = var.deploy_functions ? 1 : 0
  name        = "${var.name}-serve"
  location    = var.region
  description = "Streams a replay's segments, decrypted and in order, to the frontend."

  build_config {
    runtime           = var.go_runtime
    entry_point       = "Serve"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket     = google_storage_bucket.source.name
        object     = var.source_object
        generation = local.source_generation
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.serve.email
    max_instance_request_concurrency = var.serve_max_concurrency
    available_cpu                    = var.serve_cpu
    available_memory                 = var.serve_memory
    max_instance_count               = var.serve_max_instances
    min_instance_count               = 0
    timeout_seconds                  = var.serve_timeout_seconds
    # Called by browsers with a JWT.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    environment_variables          = local.serve_env

    secret_environment_variables {
      key        = "JWT_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.jwt.secret_id
      version    = var.jwt_secret_version
    }

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
  }

  depends_on = [
    google_alloydb_user.functions,
    google_project_iam_member.db_client,
    google_secret_manager_secret_iam_member.jwt_serve,
    google_storage_bucket_iam_member.build_source,
    google_artifact_registry_repository_iam_member.build_push,
    google_project_iam_member.build_logs,
  ]
}

resource "google_cloudfunctions2_function" "shred" {
  count       = var.deploy_functions ? 1 : 0
  name        = "${var.name}-shred"
  location    = var.region
  description = "Crypto-shreds replays on request and sweeps expired segments and orphan objects."

  build_config {
    runtime           = var.go_runtime
    entry_point       = "Shred"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket     = google_storage_bucket.source.name
        object     = var.source_object
        generation = local.source_generation
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.shred.email
    max_instance_request_concurrency = var.shred_max_concurrency
    available_cpu                    = var.shred_cpu
    available_memory                 = var.shred_memory
    max_instance_count               = var.shred_max_instances
    min_instance_count               = 0
    timeout_seconds                  = var.shred_timeout_seconds
    # IAM-only: no allUsers invoker is ever bound (iam.tf).
    ingress_settings               = var.shred_ingress
    all_traffic_on_latest_revision = true
    environment_variables          = local.shred_env

    secret_environment_variables {
      key        = "JWT_SECRET"
      project_id = var.project_id
      secret     = google_secret_manager_secret.jwt.secret_id
      version    = var.jwt_secret_version
    }

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
    }
    direct_vpc_egress = "VPC_EGRESS_PRIVATE_RANGES_ONLY"
  }

  depends_on = [
    google_alloydb_user.functions,
    google_project_iam_member.db_client,
    google_secret_manager_secret_iam_member.jwt_shred,
    google_storage_bucket_iam_member.build_source,
    google_artifact_registry_repository_iam_member.build_push,
    google_project_iam_member.build_logs,
  ]
}

resource "google_cloudfunctions2_function" "ingest" {
  count       = var.deploy_functions ? 1 : 0
  name        = "${var.name}-ingest"
  location    = var.region
  description = "The SDKs' front door: Sentry envelopes, posthog-js snapshots and rrweb segments, published to the segment topic."

  build_config {
    runtime           = var.go_runtime
    entry_point       = "Ingest"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket     = google_storage_bucket.source.name
        object     = var.source_object
        generation = local.source_generation
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.ingest.email
    max_instance_request_concurrency = var.ingest_max_concurrency
    available_cpu                    = var.ingest_cpu
    available_memory                 = var.ingest_memory
    max_instance_count               = var.ingest_max_instances
    min_instance_count               = 0
    timeout_seconds                  = var.ingest_timeout_seconds
    # Called by browsers on every instrumented site.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true
    environment_variables          = local.ingest_env

    direct_vpc_network_interface {
      network    = google_compute_network.vpc.name
      subnetwork = google_compute_subnetwork.functions.name
    }
    # Pack's ingress is internal-only: a call from another function is
    # internal only when it leaves through the VPC (the subnet has Private
    # Google Access, which also carries Pub/Sub and the other Google APIs).
    direct_vpc_egress = var.ingest_direct_delivery ? "VPC_EGRESS_ALL_TRAFFIC" : "VPC_EGRESS_PRIVATE_RANGES_ONLY"
  }

  depends_on = [
    google_alloydb_user.ingest,
    google_project_iam_member.db_client,
    google_storage_bucket_iam_member.build_source,
    google_artifact_registry_repository_iam_member.build_push,
    google_project_iam_member.build_logs,
  ]
}
