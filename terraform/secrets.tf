# The HS256 key Serve and Shred verify JWTs with. Terraform makes the secret
# but never its value (which would land in the state): add a version by hand
# (README.md, "Deploy"). Only the Serve and Shred service accounts may read it.

resource "google_secret_manager_secret" "jwt" {
  secret_id = var.jwt_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "jwt_serve" {
  secret_id = google_secret_manager_secret.jwt.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.serve.member
}

resource "google_secret_manager_secret_iam_member" "jwt_shred" {
  secret_id = google_secret_manager_secret.jwt.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.shred.member
}
