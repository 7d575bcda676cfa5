# Packed blobs. Objects are written once under r{days}/yyyy/mm/dd/uuid with a
# does-not-exist precondition and never rewritten, so versioning stays off; a
# lifecycle rule per retention class deletes a blob a day after its segment
# rows expire. The bytes are useless without the wrapped keys in AlloyDB.

resource "google_storage_bucket" "blobs" {
  name                        = coalesce(var.bucket_name, "${var.project_id}-${var.name}-blobs")
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = false
  }

  # Deleted objects stay restorable this long: a residual-copy window.
  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_days * 86400
  }

  dynamic "lifecycle_rule" {
    for_each = toset(var.retention_classes)
    content {
      action {
        type = "Delete"
      }
      condition {
        age            = lifecycle_rule.value + var.lifecycle_slack_days
        matches_prefix = ["r${lifecycle_rule.value}/"]
      }
    }
  }

  # Colder classes as objects age (lifecycle.tf).
  dynamic "lifecycle_rule" {
    for_each = local.storage_transitions
    content {
      action {
        type          = "SetStorageClass"
        storage_class = lifecycle_rule.value.class
      }
      condition {
        age                   = lifecycle_rule.value.age
        matches_prefix        = [lifecycle_rule.value.prefix]
        matches_storage_class = lifecycle_rule.value.from
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# Function source archives uploaded by Cloud Build. Old archives are not needed
# once built (the images stay in Artifact Registry).
resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${var.name}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      age = 30
    }
  }

  depends_on = [google_project_service.apis]
}

# The archive the functions are built from; its generation changes with every
# upload, which redeploys them.
data "google_storage_bucket_object" "source" {
  count  = var.deploy_functions ? 1 : 0
  bucket = google_storage_bucket.source.name
  name   = var.source_object
}
