# The root of trust (README, "Keys"): Pack wraps each new KEK with this key,
# Serve unwraps KEKs with it. Rotation adds a new primary version; old versions
# stay enabled because KEKs wrapped by them must still unwrap. Destroying the
# key (or a version) would shred every segment, so Terraform refuses to.

resource "google_kms_key_ring" "main" {
  name       = var.name
  location   = var.region
  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "root" {
  name            = "root"
  key_ring        = google_kms_key_ring.main.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "${var.kms_rotation_days * 86400}s"

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "SOFTWARE"
  }

  lifecycle {
    prevent_destroy = true
  }
}
