# What Cloud Build and the function builds need: an Artifact Registry
# repository for the function images and a private worker pool peered into the
# VPC, so that `replayvault migrate` can reach AlloyDB's private IP.

resource "google_artifact_registry_repository" "functions" {
  repository_id = "${var.name}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images of the replayvault functions, built by Cloud Functions."

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloudbuild_worker_pool" "deploy" {
  name     = "${var.name}-deploy"
  location = var.region

  worker_config {
    machine_type = "e2-standard-2"
    disk_size_gb = 100
  }

  network_config {
    peered_network = google_compute_network.vpc.id
  }

  depends_on = [google_service_networking_connection.psa]
}
