# Project and naming.

variable "project_id" {
  description = "The GCP project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (functions, bucket, key ring, AlloyDB, scheduler)."
  type        = string
  default     = "us-central1"
}

variable "name" {
  description = "Prefix of every resource name. Short, because service account IDs are at most 30 characters."
  type        = string
  default     = "replayvault"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,14}$", var.name))
    error_message = "name must be 3-15 characters of a-z, 0-9 and -, starting with a letter."
  }
}

# Deployment of the functions.

variable "deploy_functions" {
  description = "Deploy the functions and what points at them (push subscription, scheduler job, DB users). False only for the first apply, before Cloud Build has uploaded a source archive and run the migrations (README.md, \"Deploy\")."
  type        = bool
  default     = true
}

variable "source_object" {
  description = "Object in the source bucket holding the module zip that Cloud Build uploads. Each upload makes a new generation, which redeploys the functions."
  type        = string
  default     = "source/replayvault.zip"
}

variable "go_runtime" {
  description = "Cloud Functions Go runtime. go.mod says go 1.26, so the runtime must be Go 1.26 or newer."
  type        = string
  default     = "go126"
}

# Network.

variable "functions_subnet_cidr" {
  description = "Subnet the functions' direct VPC egress takes addresses from (about two per instance)."
  type        = string
  default     = "10.10.0.0/24"
}

variable "psa_prefix_length" {
  description = "Size of the range reserved for private services access (AlloyDB and the Cloud Build private pool)."
  type        = number
  default     = 16
}

# AlloyDB.

variable "alloydb_cpu_count" {
  description = "vCPUs of the AlloyDB primary (2 is the smallest production shape, 16 GB memory)."
  type        = number
  default     = 2
}

variable "alloydb_availability_type" {
  description = "REGIONAL keeps a standby in a second zone (billed as a second node); ZONAL halves the instance cost."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.alloydb_availability_type)
    error_message = "alloydb_availability_type must be REGIONAL or ZONAL."
  }
}

variable "db_backup_retention_days" {
  description = "Days AlloyDB keeps automated backups and the point-in-time recovery log. A shredded key can be restored from them until this window has passed (README.md, \"Residual copies\")."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35 (the point-in-time recovery limit)."
  }
}

variable "alloydb_deletion_protection" {
  description = "Refuse to destroy the AlloyDB cluster: it holds every wrapped key."
  type        = bool
  default     = true
}

variable "db_function_roles" {
  description = "Database role per function, created by the migrations (00020_function_roles.sql) with only that function's table privileges; each function's IAM database user is granted its own."
  type        = map(string)
  default = {
    pack  = "replayvault_pack"
    serve = "replayvault_serve"
    shred = "replayvault_shred"
  }
}

variable "db_ingest_role" {
  description = "Database role the migrations create for Ingest: SELECT on ingest_keys, SELECT and INSERT on ingest_batches, nothing else."
  type        = string
  default     = "replayvault_ingest"
}

# Keys, storage and secrets.

variable "kms_rotation_days" {
  description = "Rotation period of the KMS root key. Old versions stay enabled: KEKs wrapped by them must still unwrap."
  type        = number
  default     = 90
}

variable "bucket_name" {
  description = "Name of the blob bucket; empty means PROJECT-NAME-blobs."
  type        = string
  default     = ""
}

variable "retention_classes" {
  description = "Retention classes in days; each is an object prefix r{days}/ with its own lifecycle rule. Must equal segment.RetentionClasses (a test checks)."
  type        = list(number)
  default     = [30, 90, 365, 1825]
}

variable "lifecycle_slack_days" {
  description = "Days an object outlives its retention class, so a blob is never deleted before its segment rows expire."
  type        = number
  default     = 1
}

variable "soft_delete_days" {
  description = "GCS soft delete retention: deleted objects stay restorable this long (0 turns it off, otherwise 7-90)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_days == 0 || (var.soft_delete_days >= 7 && var.soft_delete_days <= 90)
    error_message = "soft_delete_days must be 0 or between 7 and 90."
  }
}

variable "jwt_secret_id" {
  description = "Secret Manager secret holding the HS256 JWT key (JWT_SECRET of Serve and Shred). Terraform makes the secret; add its versions by hand."
  type        = string
  default     = "replayvault-jwt"
}

variable "jwt_secret_version" {
  description = "Version of the JWT secret the functions read at instance start."
  type        = string
  default     = "latest"
}

variable "cors_origins" {
  description = "Origins allowed to call Serve and Shred from a browser (CORS_ORIGINS)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_origins : can(regex("^https?://", o))])
    error_message = "cors_origins must be http:// or https:// origins; \"*\" is not allowed."
  }
}

variable "jwt_audience" {
  description = "JWT_AUDIENCE: the aud claim every Serve/Shred token must carry."
  type        = string
  default     = "replayvault"
}

variable "jwt_issuer" {
  description = "JWT_ISSUER: the iss claim every Serve/Shred token must carry."
  type        = string
  default     = "replayvault"
}

variable "jwt_max_lifetime" {
  description = "JWT_MAX_LIFETIME: the longest token lifetime (exp - iat) Serve and Shred accept."
  type        = string
  default     = "24h"
}

# Who may call in.

variable "segment_publishers" {
  description = "IAM members (e.g. serviceAccount:ingest@P.iam.gserviceaccount.com) allowed to publish segments to the segment topic."
  type        = list(string)
  default     = []
}

variable "serve_public" {
  description = "Let anyone reach Serve (allUsers run.invoker); every request still needs a valid JWT. False keeps Serve IAM-only."
  type        = bool
  default     = true
}

variable "shred_invokers" {
  description = "IAM members (backend, GDPR tooling) allowed to call Shred besides the scheduler."
  type        = list(string)
  default     = []
}

variable "shred_ingress" {
  description = "Ingress of Shred: ALLOW_ALL (IAM still required) or ALLOW_INTERNAL_ONLY when every caller is in the project or its VPC."
  type        = string
  default     = "ALLOW_ALL"
}

# Pack: the batching design (README, "What each function does": group commit).

variable "pack_max_concurrency" {
  description = "Requests one Pack instance holds at once. Both the instance concurrency and MAX_CONCURRENCY, which must be the same number."
  type        = number
  default     = 1000
}

variable "pack_max_instances" {
  description = "Upper bound on Pack instances. Fewer instances mean fuller batches."
  type        = number
  default     = 10
}

variable "pack_cpu" {
  description = "vCPUs of a Pack instance (concurrency above 1 needs at least 1)."
  type        = string
  default     = "1"
}

variable "pack_memory" {
  description = "Memory of a Pack instance: room for MAX_BUFFER_BYTES of sealed segments plus the payloads being decoded."
  type        = string
  default     = "1Gi"
}

variable "pack_timeout_seconds" {
  description = "Request timeout of Pack; at most the push ack deadline."
  type        = number
  default     = 60
}

variable "pack_ack_deadline_seconds" {
  description = "Ack deadline of the push subscription: longer than FLUSH_AGE plus one flush (GCS_TIMEOUT + DB_TIMEOUT)."
  type        = number
  default     = 60
}

variable "pack_max_delivery_attempts" {
  description = "Deliveries of one message before it goes to the dead-letter topic."
  type        = number
  default     = 10
}

variable "pack_retry_min_backoff" {
  description = "Smallest delay before Pub/Sub redelivers a nacked segment."
  type        = string
  default     = "10s"
}

variable "pack_retry_max_backoff" {
  description = "Largest delay before Pub/Sub redelivers a nacked segment."
  type        = string
  default     = "600s"
}

# Serve and Shred sizing.

variable "serve_max_concurrency" {
  description = "Requests one Serve instance handles at once."
  type        = number
  default     = 80
}

variable "serve_max_instances" {
  description = "Upper bound on Serve instances."
  type        = number
  default     = 20
}

variable "serve_cpu" {
  description = "vCPUs of a Serve instance."
  type        = string
  default     = "1"
}

variable "serve_memory" {
  description = "Memory of a Serve instance."
  type        = string
  default     = "1Gi"
}

variable "serve_timeout_seconds" {
  description = "Request timeout of Serve (a long recording streams for a while)."
  type        = number
  default     = 300
}

variable "shred_max_concurrency" {
  description = "Requests one Shred instance handles at once."
  type        = number
  default     = 20
}

variable "shred_max_instances" {
  description = "Upper bound on Shred instances."
  type        = number
  default     = 5
}

variable "shred_cpu" {
  description = "vCPUs of a Shred instance."
  type        = string
  default     = "1"
}

variable "shred_memory" {
  description = "Memory of a Shred instance."
  type        = string
  default     = "512Mi"
}

variable "shred_timeout_seconds" {
  description = "Request timeout of Shred; bounds one sweep run."
  type        = number
  default     = 900
}

variable "sweep_schedule" {
  description = "Cron schedule of the retention and orphan sweep (POST /v1/sweep on Shred)."
  type        = string
  default     = "0 * * * *"
}

# Function settings: each is one environment variable of shared/config, with
# the same default as the config struct (a test compares them).

variable "db_name" {
  description = "DB_NAME: the database the functions use."
  type        = string
  default     = "replayvault"
}

variable "db_max_conns" {
  description = "DB_MAX_CONNS: pool size of one instance. Sum over functions of max instances x this must stay under the instance's max_connections."
  type        = number
  default     = 8
}

variable "db_timeout" {
  description = "DB_TIMEOUT: bound on one statement or transaction."
  type        = string
  default     = "15s"
}

variable "gcs_timeout" {
  description = "GCS_TIMEOUT: bound on one GCS request."
  type        = string
  default     = "30s"
}

variable "kms_timeout" {
  description = "KMS_TIMEOUT: bound on one KMS call."
  type        = string
  default     = "10s"
}

variable "pubsub_timeout" {
  description = "PUBSUB_TIMEOUT: bound on one reject publish (Pack) and on waiting for one request's segment messages to be accepted (Ingest)."
  type        = string
  default     = "10s"
}

variable "flush_bytes" {
  description = "FLUSH_BYTES: a batch flushes at this many sealed bytes."
  type        = number
  default     = 8388608
}

variable "flush_segments" {
  description = "FLUSH_SEGMENTS: a batch flushes at this many segments."
  type        = number
  default     = 1000
}

variable "flush_age" {
  description = "FLUSH_AGE: a batch flushes this long after its first segment."
  type        = string
  default     = "2s"
}

variable "max_buffer_bytes" {
  description = "MAX_BUFFER_BYTES: sealed bytes one Pack instance holds before it pushes back."
  type        = number
  default     = 268435456
}

variable "max_decompressed_bytes" {
  description = "MAX_DECOMPRESSED_BYTES: cap on one segment's decompressed size, for Pack (rejects larger) and Serve (never inflates past it)."
  type        = number
  default     = 67108864
}

variable "kek_rotate" {
  description = "KEK_ROTATE: how long one KEK seals new segments."
  type        = string
  default     = "1h"
}

variable "rules_refresh" {
  description = "RULES_REFRESH: how often Pack reloads edge rule assignments (a change takes effect within it)."
  type        = string
  default     = "30s"
}

variable "rules_timeout" {
  description = "RULES_TIMEOUT: one edge rule call's time budget."
  type        = string
  default     = "2s"
}

variable "rules_memory_bytes" {
  description = "RULES_MEMORY_BYTES: memory cap of one rule module instance; size pack_memory for about 2 x CPUs instances."
  type        = number
  default     = 268435456
}

variable "rules_max_input_bytes" {
  description = "RULES_MAX_INPUT_BYTES: largest decompressed segment given to rules; a larger one is a rule failure."
  type        = number
  default     = 16777216
}

variable "coalesce_gap_bytes" {
  description = "COALESCE_GAP_BYTES: Serve merges two ranged reads of a blob across a gap smaller than this."
  type        = number
  default     = 1048576
}

variable "max_read_bytes" {
  description = "MAX_READ_BYTES: cap on one coalesced ranged read."
  type        = number
  default     = 16777216
}

variable "read_parallelism" {
  description = "READ_PARALLELISM: ranged reads in flight for one Serve request."
  type        = number
  default     = 32
}

variable "max_inflight_bytes" {
  description = "MAX_INFLIGHT_BYTES: bytes all Serve requests of one instance may hold in pages of rows, ranged reads and decoded segments; past it new requests queue (keep well under serve_memory)."
  type        = number
  default     = 536870912

  validation {
    condition     = var.max_inflight_bytes >= 4 * var.max_read_bytes + var.max_decompressed_bytes * 9 / 8
    error_message = "max_inflight_bytes must hold one request's lease: at least 4 x max_read_bytes + 9/8 x max_decompressed_bytes."
  }
}

variable "serve_gomemlimit" {
  description = "GOMEMLIMIT of a Serve instance: the Go runtime collects harder as the heap nears it. Keep it about 10% under serve_memory and well over max_inflight_bytes."
  type        = string
  default     = "900MiB"
}

variable "kek_cache_size" {
  description = "KEK_CACHE_SIZE: unwrapped KEKs one Serve instance keeps."
  type        = number
  default     = 1024
}

variable "kek_cache_ttl" {
  description = "KEK_CACHE_TTL: how long an unwrapped KEK stays cached."
  type        = string
  default     = "10m"
}

variable "orphan_grace" {
  description = "ORPHAN_GRACE: age after which the sweep deletes an object that has no blob row."
  type        = string
  default     = "1h"
}

variable "derive_slices" {
  description = "DERIVE_SLICES: Pack stores console, network and timeline slices derived from each recording segment."
  type        = bool
  default     = true
}

variable "compact_idle" {
  description = "COMPACT_IDLE: how long a replay goes without a new segment before the sweep re-packs it into one object (0s: never)."
  type        = string
  default     = "1h"
}

variable "compact_zstd_level" {
  description = "COMPACT_ZSTD_LEVEL: off (compaction copies sealed bytes and never decrypts) or the zstd level (fastest, default, better, best) at which compaction re-encodes the segments of idle replays not yet zstd, so their reads decode zstd instead of gzip (2-3x less Serve CPU). Not off costs a privilege: Shred's service account gets roles/cloudkms.cryptoKeyDecrypter on the root key and holds segment plaintext in memory while it re-encodes (README, Compaction)."
  type        = string
  default     = "default"
  validation {
    condition     = contains(["off", "fastest", "default", "better", "best"], var.compact_zstd_level)
    error_message = "compact_zstd_level must be off, fastest, default, better or best."
  }
}

variable "compact_max_bytes" {
  description = "COMPACT_MAX_BYTES: largest replay (stored bytes) the sweep re-packs; the Shred function holds it in memory."
  type        = number
  default     = 67108864
}

variable "sweep_batch" {
  description = "SWEEP_BATCH: expired segment rows one sweep statement deletes."
  type        = number
  default     = 5000
}

# Ingest: the SDKs' front door (functions/ingest).

variable "ingest_max_concurrency" {
  description = "Requests one Ingest instance handles at once. Each holds at most MAX_BODY_BYTES plus what it decompresses."
  type        = number
  default     = 80
}

variable "ingest_cpu" {
  description = "vCPUs of one Ingest instance."
  type        = string
  default     = "1"
}

variable "ingest_memory" {
  description = "Memory of one Ingest instance."
  type        = string
  default     = "1Gi"
}

variable "ingest_max_instances" {
  description = "Most Ingest instances; the per-instance rate limits multiply by it."
  type        = number
  default     = 20
}

variable "ingest_timeout_seconds" {
  description = "Longest Ingest request."
  type        = number
  default     = 30
}

variable "ingest_max_body_bytes" {
  description = "MAX_BODY_BYTES: largest request body as sent (413 past it); at most Pub/Sub's 10 MB."
  type        = number
  default     = 10485760
}

variable "ingest_max_decompressed_bytes" {
  description = "MAX_DECOMPRESSED_BYTES of Ingest: most one request may decompress to."
  type        = number
  default     = 67108864
}

variable "ingest_key_cache_ttl" {
  description = "KEY_CACHE_TTL: how long an instance trusts a key lookup; a revoked key is refused within it."
  type        = string
  default     = "30s"
}

variable "ingest_key_rate" {
  description = "KEY_RATE: requests per second one key may send to one instance."
  type        = number
  default     = 20
}

variable "ingest_key_burst" {
  description = "KEY_BURST: burst of one key's token bucket."
  type        = number
  default     = 100
}

variable "ingest_project_rate" {
  description = "PROJECT_RATE: requests per second one project may send to one instance, over all its keys."
  type        = number
  default     = 100
}

variable "ingest_project_burst" {
  description = "PROJECT_BURST: burst of one project's token bucket."
  type        = number
  default     = 500
}

variable "ingest_retention_days" {
  description = "RETENTION_DAYS of replays that arrive through Ingest."
  type        = number
  default     = 90
}

variable "ingest_posthog_static_dir" {
  description = "POSTHOG_STATIC_DIR: directory in the deployed source holding posthog-js's dist files served under /static/ (empty: 404; bundle posthog-js's recorder instead, README.md)."
  type        = string
  default     = ""
}

variable "ingest_direct_delivery" {
  description = "Ingest sends each segment to Pack directly (PACK_URL, an ID token of Ingest's account; egress through the VPC, since Pack is internal-only) and publishes to the segment topic only what Pack does not store: Pub/Sub throughput was half of a segment's 90-day cost (README, cost section). Ingest then reaches only the VPC and Google services (Private Google Access): an OTLP collector outside Google needs Cloud NAT. false: publish everything."
  type        = bool
  default     = true
}

variable "ingest_pack_timeout" {
  description = "PACK_TIMEOUT: bound on one direct delivery; above flush_age plus a flush, or deliveries spill to Pub/Sub."
  type        = string
  default     = "6s"
}

variable "ingest_pack_hold_bytes" {
  description = "PACK_HOLD_BYTES: payload bytes one Ingest instance's requests may hold while waiting for Pack; past it segments are published at once. Keep it well under ingest_memory."
  type        = number
  default     = 268435456
}

# Pack: how stored bytes are compressed (see the README's cost section).

variable "transcode_min_retention_days" {
  description = "TRANSCODE_MIN_RETENTION_DAYS: segments kept this long or longer are stored as zstd at store_zstd_level (0: every segment). See the README's cost section."
  type        = number
  default     = 365
}

variable "store_zstd_level" {
  description = "STORE_ZSTD_LEVEL: zstd level of transcoded segments (fastest, default, better, best)."
  type        = string
  default     = "better"
}
