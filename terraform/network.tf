# AlloyDB has only a private IP, reached through private services access. The
# functions join the VPC with direct VPC egress (no connector VMs to pay for)
# and send only private ranges through it; Google APIs go out directly.

resource "google_compute_network" "vpc" {
  name                    = var.name
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "functions" {
  name                     = "${var.name}-functions"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.functions_subnet_cidr
  private_ip_google_access = true
}

# One range for every Google-managed service peered into the VPC: AlloyDB and
# the Cloud Build private pool share it, which is what lets the pool reach
# AlloyDB for migrations.
resource "google_compute_global_address" "psa" {
  name          = "${var.name}-psa"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.psa_prefix_length
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "psa" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.psa.name]
}
