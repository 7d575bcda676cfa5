# AlloyDB holds the metadata and every wrapped DEK. Connections go through the
# AlloyDB connector (alloydbconn) with IAM database authentication only: no
# passwords exist anywhere.

resource "google_alloydb_cluster" "main" {
  cluster_id          = var.name
  location            = var.region
  database_version    = "POSTGRES_15"
  deletion_protection = var.alloydb_deletion_protection

  network_config {
    network            = google_compute_network.vpc.id
    allocated_ip_range = google_compute_global_address.psa.name
  }

  # Backups and the point-in-time log keep deleted rows, including shredded
  # keys, until they age out: both windows are db_backup_retention_days.
  automated_backup_policy {
    enabled       = true
    location      = var.region
    backup_window = "3600s"

    weekly_schedule {
      days_of_week = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
      start_times {
        hours = 3
      }
    }

    time_based_retention {
      retention_period = "${var.db_backup_retention_days * 86400}s"
    }
  }

  continuous_backup_config {
    enabled              = true
    recovery_window_days = var.db_backup_retention_days
  }

  depends_on = [google_service_networking_connection.psa]
}

resource "google_alloydb_instance" "primary" {
  cluster           = google_alloydb_cluster.main.name
  instance_id       = "${var.name}-primary"
  instance_type     = "PRIMARY"
  availability_type = var.alloydb_availability_type

  machine_config {
    cpu_count = var.alloydb_cpu_count
  }

  database_flags = {
    "alloydb.iam_authentication" = "on"
  }

  # Only connector clients (mTLS plus an IAM token) may connect.
  client_connection_config {
    require_connectors = true
  }
}

# The Cloud Build service account runs the migrations, so it owns the schema;
# it creates the functions' roles (db_function_roles) and grants each the table
# privileges its function needs.
resource "google_alloydb_user" "deploy" {
  cluster        = google_alloydb_cluster.main.name
  user_id        = local.db_users.deploy
  user_type      = "ALLOYDB_IAM_USER"
  database_roles = ["alloydbiamuser", "alloydbsuperuser"]
  depends_on     = [google_alloydb_instance.primary]
}

# One IAM database user per function, each granted only its own function's
# role (Serve reads; Pack inserts and updates counters, never deletes; Shred
# deletes; Ingest reads keys and numbers batches), made with the functions:
# the roles exist once Cloud Build has run the migrations.
resource "google_alloydb_user" "functions" {
  for_each       = var.deploy_functions ? toset(["pack", "serve", "shred"]) : toset([])
  cluster        = google_alloydb_cluster.main.name
  user_id        = local.db_users[each.key]
  user_type      = "ALLOYDB_IAM_USER"
  database_roles = ["alloydbiamuser", var.db_function_roles[each.key]]
  depends_on     = [google_alloydb_instance.primary]
}

resource "google_alloydb_user" "ingest" {
  count          = var.deploy_functions ? 1 : 0
  cluster        = google_alloydb_cluster.main.name
  user_id        = local.db_users.ingest
  user_type      = "ALLOYDB_IAM_USER"
  database_roles = ["alloydbiamuser", var.db_ingest_role]
  depends_on     = [google_alloydb_instance.primary]
}
