terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source = "hashicorp/google"
      # Validated offline against the 8.x provider (scripts/tf-validate).
      version = "~> 8.0"
    }
  }

  # State lives in a bucket made once by hand (README.md, "Deploy"); its name
  # is given at init: terraform init -backend-config=bucket=STATE_BUCKET.
  backend "gcs" {
    prefix = "replayvault"
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # The APIs this module uses. Enabling them needs serviceusage.services.enable;
  # they stay enabled on destroy so other users of the project keep working.
  services = [
    "alloydb.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtrace.googleapis.com",
    "compute.googleapis.com",
    "dns.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each           = toset(local.services)
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
