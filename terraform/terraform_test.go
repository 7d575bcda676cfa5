// Package terraform_test holds the deployment in this directory and in
// ../cloudbuild.yaml to the code it deploys. It reads the .tf files with the
// HCL parser and evaluates what it can (variable defaults, locals, for_each)
// without a provider or a cloud project, then checks:
//
//   - every function registered in ../function.go is deployed, each with its
//     own service account and the environment its config struct reads;
//   - IAM grants: no owner/editor, no project-level storage or KMS role, and
//     each function account holds exactly the grants its code needs;
//   - the blob bucket has one delete rule per retention class the code accepts;
//   - Pack's push subscription gives a held request time to be flushed;
//   - cloudbuild.yaml uses published builders and runs tests and migrations
//     before the deploy.
//
// TestChecksCatchMistakes applies realistic mistakes to the real files and
// expects each check to report them, so a check that silently passes
// everything fails the suite.
package terraform_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	"gopkg.in/yaml.v3"

	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// configs maps each entry point to the config struct its function loads.
var configs = map[string]any{
	"Pack":   config.Pack{},
	"Serve":  config.Serve{},
	"Shred":  config.Shred{},
	"Ingest": config.Ingest{},
}

// expectedGrants is every IAM grant a function's service account may hold:
// "resource type role [on target]". Adding a permission to a function means
// adding it here, deliberately.
var expectedGrants = map[string][]string{
	"Pack": {
		"google_cloud_run_v2_service_iam_member roles/run.invoker on google_cloud_run_v2_service.otel_collector",
		"google_kms_crypto_key_iam_member roles/cloudkms.cryptoKeyEncrypter on google_kms_crypto_key.root",
		"google_project_iam_member roles/alloydb.client",
		"google_project_iam_member roles/alloydb.databaseUser",
		"google_project_iam_member roles/serviceusage.serviceUsageConsumer",
		"google_pubsub_topic_iam_member roles/pubsub.publisher on google_pubsub_topic.rejects",
		"google_storage_bucket_iam_member custom[storage.objects.get] on google_storage_bucket.blobs if " +
			`resource.name.startsWith("projects/_/buckets/${google_storage_bucket.blobs.name}/objects/rules/sha256/")`,
		"google_storage_bucket_iam_member roles/storage.objectCreator on google_storage_bucket.blobs",
	},
	"Serve": {
		"google_cloud_run_v2_service_iam_member roles/run.invoker on google_cloud_run_v2_service.otel_collector",
		"google_kms_crypto_key_iam_member roles/cloudkms.cryptoKeyDecrypter on google_kms_crypto_key.root",
		"google_project_iam_member roles/alloydb.client",
		"google_project_iam_member roles/alloydb.databaseUser",
		"google_project_iam_member roles/serviceusage.serviceUsageConsumer",
		"google_secret_manager_secret_iam_member roles/secretmanager.secretAccessor on google_secret_manager_secret.jwt",
		"google_storage_bucket_iam_member roles/storage.objectViewer on google_storage_bucket.blobs",
	},
	"Ingest": {
		"google_cloud_run_v2_service_iam_member roles/run.invoker on google_cloud_run_v2_service.otel_collector",
		// Direct delivery to Pack (functions/ingest/deliver.go).
		"google_cloud_run_v2_service_iam_member roles/run.invoker on google_cloudfunctions2_function.pack",
		"google_project_iam_member roles/alloydb.client",
		"google_project_iam_member roles/alloydb.databaseUser",
		"google_project_iam_member roles/serviceusage.serviceUsageConsumer",
		"google_pubsub_topic_iam_member roles/pubsub.publisher on google_pubsub_topic.segments",
	},
	"Shred": {
		"google_cloud_run_v2_service_iam_member roles/run.invoker on google_cloud_run_v2_service.otel_collector",
		// Only while compaction re-encodes segments (TestShredDecryptOnlyWhenReencoding).
		"google_kms_crypto_key_iam_member roles/cloudkms.cryptoKeyDecrypter on google_kms_crypto_key.root",
		"google_project_iam_member roles/alloydb.client",
		"google_project_iam_member roles/alloydb.databaseUser",
		"google_project_iam_member roles/serviceusage.serviceUsageConsumer",
		"google_secret_manager_secret_iam_member roles/secretmanager.secretAccessor on google_secret_manager_secret.jwt",
		"google_storage_bucket_iam_member custom[storage.objects.create storage.objects.delete storage.objects.get storage.objects.list] on google_storage_bucket.blobs",
	},
}

// Builders whose images may run a Cloud Build step.
var builderPrefixes = []string{
	"gcr.io/cloud-builders/",
	"gcr.io/google.com/cloudsdktool/",
	"golang:",
	"hashicorp/terraform:",
}

// stepOrder lists the step pairs (before, after) the pipeline must keep.
var stepOrder = [][2]string{
	{"vet", "deploy"},
	{"test", "migrate"},
	{"test", "deploy"},
	{"build", "migrate"},
	{"migrate", "deploy"},
	{"package", "deploy"},
}

func TestEntryPoints(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkEntryPoints(m, registeredFunctions(t)) {
		t.Error(err)
	}
}

func TestServiceAccounts(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkServiceAccounts(m) {
		t.Error(err)
	}
}

// TestShredDecryptOnlyWhenReencoding: Shred's KMS decrypt grant exists
// exactly when compaction re-encodes segments (compact_zstd_level not off).
func TestShredDecryptOnlyWhenReencoding(t *testing.T) {
	m := loadModule(t)
	var count *hclsyntax.Attribute
	for _, r := range m.resources {
		if r.addr() == "google_kms_crypto_key_iam_member.shred_decrypt" {
			count = r.block.Body.Attributes["count"]
		}
	}
	if count == nil {
		t.Fatal("google_kms_crypto_key_iam_member.shred_decrypt has no count")
	}
	for level, want := range map[string]int64{"off": 0, "fastest": 1, "default": 1, "better": 1, "best": 1} {
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
			"var": cty.ObjectVal(map[string]cty.Value{"compact_zstd_level": cty.StringVal(level)}),
		}}
		v, diags := count.Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("count with compact_zstd_level=%s: %v", level, diags)
		}
		n, _ := v.AsBigFloat().Int64()
		if n != want {
			t.Errorf("compact_zstd_level=%s: %d decrypt grants, want %d", level, n, want)
		}
	}
}

// TestRewrittenEncoding: Pack leaves the events edge rules rewrote for
// compaction to compress only while compaction runs and re-encodes.
func TestRewrittenEncoding(t *testing.T) {
	m := loadModule(t)
	env, ok := m.locals["pack_env"].(*hclsyntax.FunctionCallExpr)
	if !ok || len(env.Args) == 0 {
		t.Fatal("local.pack_env is not a merge(...)")
	}
	own, ok := env.Args[len(env.Args)-1].(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatal("local.pack_env's last argument is not an object")
	}
	var expr hclsyntax.Expression
	for _, item := range own.Items {
		if key, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && key.Type() == cty.String && key.AsString() == "REWRITTEN_ENCODING" {
			expr = item.ValueExpr
		}
	}
	if expr == nil {
		t.Fatal("local.pack_env sets no REWRITTEN_ENCODING")
	}
	for _, tc := range []struct{ level, idle, want string }{
		{"default", "1h", "plain"}, {"better", "30m", "plain"}, {"off", "1h", "s2"}, {"default", "0s", "s2"}, {"default", "0", "s2"},
	} {
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
			"var": cty.ObjectVal(map[string]cty.Value{"compact_zstd_level": cty.StringVal(tc.level), "compact_idle": cty.StringVal(tc.idle)}),
		}}
		v, diags := expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("compact_zstd_level=%s, compact_idle=%s: %v", tc.level, tc.idle, diags)
		}
		if got := v.AsString(); got != tc.want {
			t.Errorf("compact_zstd_level=%s, compact_idle=%s: REWRITTEN_ENCODING=%s, want %s", tc.level, tc.idle, got, tc.want)
		}
	}
}

func TestIAM(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkIAM(m) {
		t.Error(err)
	}
}

func TestFunctionGrants(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkFunctionGrants(m) {
		t.Error(err)
	}
}

func TestDatabaseRoles(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkDatabaseRoles(m) {
		t.Error(err)
	}
}

func TestEnvironment(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkEnvironment(m) {
		t.Error(err)
	}
}

func TestBucket(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkBucket(m) {
		t.Error(err)
	}
}

func TestPackDelivery(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkPackDelivery(m) {
		t.Error(err)
	}
}

func TestSweepSchedule(t *testing.T) {
	m := loadModule(t)
	for _, err := range checkSweep(m) {
		t.Error(err)
	}
}

func TestCloudBuild(t *testing.T) {
	src, err := os.ReadFile("../cloudbuild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkCloudBuild(src) {
		t.Error(err)
	}
}

// TestChecksCatchMistakes proves the checks can fail: each case breaks the
// real configuration the way a careless edit would and expects the matching
// complaint.
func TestChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		old, new string // old == "": append new to the file
		want     string
	}{
		{
			name: "project-level storage role",
			file: "iam.tf",
			new: `resource "google_project_iam_member" "oops" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.shred.member
}`,
			want: `project-level grant of roles/storage.objectAdmin`,
		},
		{
			name: "project-level KMS role",
			file: "iam.tf",
			new: `resource "google_project_iam_member" "oops" {
  project = var.project_id
  role    = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member  = google_service_account.serve.member
}`,
			want: `project-level grant of roles/cloudkms.cryptoKeyEncrypterDecrypter`,
		},
		{
			name: "project-level custom role with storage permissions",
			file: "iam.tf",
			new: `resource "google_project_iam_member" "oops" {
  project = var.project_id
  role    = google_project_iam_custom_role.shred_objects.id
  member  = google_service_account.shred.member
}`,
			want: `project-level grant of custom role google_project_iam_custom_role.shred_objects with storage.objects.create`,
		},
		{
			name: "owner on a bucket",
			file: "iam.tf",
			new: `resource "google_storage_bucket_iam_member" "oops" {
  bucket = google_storage_bucket.blobs.name
  role   = "roles/owner"
  member = "user:someone@example.com"
}`,
			want: `grants roles/owner`,
		},
		{
			name: "editor through for_each",
			file: "iam.tf",
			old:  `"roles/serviceusage.serviceUsageConsumer",`,
			new:  `"roles/serviceusage.serviceUsageConsumer", "roles/editor",`,
			want: `grants roles/editor`,
		},
		{
			name: "authoritative policy",
			file: "iam.tf",
			new: `resource "google_storage_bucket_iam_policy" "oops" {
  bucket      = google_storage_bucket.blobs.name
  policy_data = "{}"
}`,
			want: `authoritative IAM policy`,
		},
		{
			name: "Shred made public",
			file: "iam.tf",
			old:  `google_cloudfunctions2_function.serve[0].service_config[0].service`,
			new:  `google_cloudfunctions2_function.shred[0].service_config[0].service`,
			want: `public grant (allUsers) on google_cloudfunctions2_function.shred`,
		},
		{
			name: "Pack given more than create",
			file: "iam.tf",
			old:  `role   = "roles/storage.objectCreator"`,
			new:  `role   = "roles/storage.objectAdmin"`,
			want: `Pack (google_service_account.pack) grants differ`,
		},
		{
			name: "Pack reads rule modules without the prefix condition",
			file: "iam.tf",
			old:  `objects/rules/sha256/`,
			new:  `objects/`,
			want: `Pack (google_service_account.pack) grants differ`,
		},
		{
			name: "Pack reads the whole bucket",
			file: "iam.tf",
			old:  `permissions = ["storage.objects.get"]`,
			new:  `permissions = ["storage.objects.get", "storage.objects.list"]`,
			want: `Pack (google_service_account.pack) grants differ`,
		},
		{
			name: "two functions share an account",
			file: "functions.tf",
			old:  `= google_service_account.serve.email`,
			new:  `= google_service_account.pack.email`,
			want: `Serve and Pack share service account google_service_account.pack`,
		},
		{
			name: "function without its own account",
			file: "functions.tf",
			old:  `= google_service_account.shred.email`,
			new:  `= "123-compute@developer.gserviceaccount.com"`,
			want: `Shred: service_account_email is not a google_service_account of this module`,
		},
		{
			name: "lifecycle rule missing for a class",
			file: "variables.tf",
			old:  `default     = [30, 90, 365, 1825]`,
			new:  `default     = [30, 90, 365]`,
			want: `no delete rule for retention class 1825`,
		},
		{
			name: "lifecycle deletes before rows expire",
			file: "storage.tf",
			old:  `age            = lifecycle_rule.value + var.lifecycle_slack_days`,
			new:  `age            = lifecycle_rule.value`,
			want: `deletes r30/ at age 30, before its rows expire`,
		},
		{
			name: "lifecycle rule for every object",
			file: "storage.tf",
			old:  `matches_prefix = ["r${lifecycle_rule.value}/"]`,
			new:  `matches_prefix = []`,
			want: `delete rule without a prefix`,
		},
		{
			name: "env var missing",
			file: "functions.tf",
			old:  `KEK_ROTATE                   = var.kek_rotate`,
			new:  ``,
			want: `Pack: environment differs from config.Pack`,
		},
		{
			name: "local-only env var set",
			file: "functions.tf",
			old:  `SWEEP_BATCH            = var.sweep_batch`,
			new:  "SWEEP_BATCH            = var.sweep_batch\n    SWEEP_TOKEN            = \"t\"",
			want: `Shred: environment differs from config.Shred`,
		},
		{
			name: "JWT secret as plain env",
			file: "functions.tf",
			old:  `KEK_CACHE_TTL          = var.kek_cache_ttl`,
			new:  "KEK_CACHE_TTL          = var.kek_cache_ttl\n    JWT_SECRET             = \"x\"",
			want: `Serve: JWT_SECRET is set both as a plain and a secret variable`,
		},
		{
			name: "default drifts from the config struct",
			file: "variables.tf",
			old:  "first segment.\"\n  type        = string\n  default     = \"2s\"",
			new:  "first segment.\"\n  type        = string\n  default     = \"3s\"",
			want: `Pack: FLUSH_AGE = "3s" but config default is "2s"`,
		},
		{
			name: "one database role for every function",
			file: "alloydb.tf",
			old:  `database_roles = ["alloydbiamuser", var.db_function_roles[each.key]]`,
			new:  `database_roles = ["alloydbiamuser", "replayvault_app"]`,
			want: `database user serve: database_roles = [alloydbiamuser replayvault_app]`,
		},
		{
			name: "DB user of another account",
			file: "functions.tf",
			old:  `DB_USER                = local.db_users.serve`,
			new:  `DB_USER                = local.db_users.pack`,
			want: `Serve: DB_USER is`,
		},
		{
			name: "entry point not registered",
			file: "functions.tf",
			old:  `entry_point       = "Shred"`,
			new:  `entry_point       = "Sweep"`,
			want: `entry point "Sweep" is not registered`,
		},
		{
			name: "ack deadline shorter than a flush",
			file: "variables.tf",
			old: `  type        = number
  default     = 60
}

variable "pack_max_delivery_attempts"`,
			new: `  type        = number
  default     = 20
}

variable "pack_max_delivery_attempts"`,
			want: `ack deadline 20s does not exceed FLUSH_AGE + GCS_TIMEOUT + DB_TIMEOUT`,
		},
		{
			name: "concurrency differs from MAX_CONCURRENCY",
			file: "functions.tf",
			old:  `MAX_CONCURRENCY              = var.pack_max_concurrency`,
			new:  `MAX_CONCURRENCY              = 500`,
			want: `max_instance_request_concurrency 1000 differs from MAX_CONCURRENCY 500`,
		},
		{
			name: "dead letters go to the reject topic",
			file: "pubsub.tf",
			old:  `dead_letter_topic     = google_pubsub_topic.dead_letter.id`,
			new:  `dead_letter_topic     = google_pubsub_topic.rejects.id`,
			want: `dead-letter topic is the reject topic`,
		},
		{
			name: "Pack memory below its buffer",
			file: "variables.tf",
			old:  "default     = \"1Gi\"\n}\n\nvariable \"pack_timeout_seconds\"",
			new:  "default     = \"256Mi\"\n}\n\nvariable \"pack_timeout_seconds\"",
			want: `Pack memory 268435456 bytes is below`,
		},
		{
			name: "Ingest database user in Pack's role",
			file: "alloydb.tf",
			old:  `database_roles = ["alloydbiamuser", var.db_ingest_role]`,
			new:  `database_roles = ["alloydbiamuser", var.db_function_roles["pack"]]`,
			want: `Ingest: database user google_alloydb_user.ingest has roles [alloydbiamuser replayvault_pack]`,
		},
		{
			name: "Ingest publishes rejects too",
			file: "iam.tf",
			new: `resource "google_pubsub_topic_iam_member" "oops" {
  topic  = google_pubsub_topic.rejects.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.ingest.member
}`,
			want: `Ingest (google_service_account.ingest) grants differ`,
		},
		{
			name: "Ingest reads the bucket",
			file: "iam.tf",
			new: `resource "google_storage_bucket_iam_member" "oops" {
  bucket = google_storage_bucket.blobs.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.ingest.member
}`,
			want: `Ingest (google_service_account.ingest) grants differ`,
		},
		{
			name: "Ingest not public",
			file: "iam.tf",
			old:  "name     = google_cloudfunctions2_function.ingest[0].service_config[0].service\n  role     = \"roles/run.invoker\"\n  member   = \"allUsers\"",
			new:  "name     = google_cloudfunctions2_function.ingest[0].service_config[0].service\n  role     = \"roles/run.invoker\"\n  member   = google_service_account.scheduler.member",
			want: `Ingest: no public invoker`,
		},
		{
			name: "Pack made public in Ingest's place",
			file: "iam.tf",
			old:  `google_cloudfunctions2_function.ingest[0].service_config[0].service`,
			new:  `google_cloudfunctions2_function.pack[0].service_config[0].service`,
			want: `public grant (allUsers) on google_cloudfunctions2_function.pack`,
		},
		{
			name: "Ingest given the bucket",
			file: "functions.tf",
			old:  `RETENTION_DAYS         = var.ingest_retention_days`,
			new:  "RETENTION_DAYS         = var.ingest_retention_days\n    BUCKET                 = google_storage_bucket.blobs.name",
			want: `Ingest: environment differs from config.Ingest`,
		},
		{
			name: "sweep hits the wrong path",
			file: "scheduler.tf",
			old:  `/v1/sweep"`,
			new:  `/sweep"`,
			want: `sweep job does not POST to /v1/sweep`,
		},
	}
	files := readTF(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mutated := maps.Clone(files)
			src := string(mutated[tc.file])
			if tc.old == "" {
				src += "\n" + tc.new + "\n"
			} else {
				if n := strings.Count(src, tc.old); n != 1 {
					t.Fatalf("%s contains %q %d times, want 1", tc.file, tc.old, n)
				}
				src = strings.Replace(src, tc.old, tc.new, 1)
			}
			mutated[tc.file] = []byte(src)
			m, err := parseModule(mutated)
			if err != nil {
				t.Fatal(err)
			}
			errs := checkAll(m, []string{"Pack", "Serve", "Shred", "Ingest"})
			if !containsError(errs, tc.want) {
				t.Errorf("no error containing %q; got %v", tc.want, errs)
			}
		})
	}

	t.Run("unmutated", func(t *testing.T) {
		m, err := parseModule(files)
		if err != nil {
			t.Fatal(err)
		}
		if errs := checkAll(m, []string{"Pack", "Serve", "Shred", "Ingest"}); len(errs) > 0 {
			t.Errorf("unexpected errors: %v", errs)
		}
	})
}

func TestCloudBuildChecksCatchMistakes(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     string
	}{
		{
			name: "unknown builder",
			old:  `name: hashicorp/terraform:1.11.4`,
			new:  `name: example.com/terraform:latest`,
			want: `step deploy: image "example.com/terraform:latest" is not a known published builder`,
		},
		{
			name: "deploy does not wait",
			old:  "  - id: deploy\n",
			new:  "  - id: deploy\n    waitFor: ['-']\n",
			want: `step test must finish before deploy`,
		},
		{
			name: "migrate waits only for vet",
			old:  "  - id: migrate\n",
			new:  "  - id: migrate\n    waitFor: [vet]\n",
			want: `step build must finish before migrate`,
		},
		{
			name: "missing step",
			old:  "  - id: package\n",
			new:  "  - id: upload\n",
			want: `no step with id "package"`,
		},
		{
			name: "step without id",
			old:  "  - id: vet\n    name:",
			new:  "  - name:",
			want: `step 1 has no id`,
		},
		{
			name: "inline secret",
			old:  "      - DB_NAME=${_DB_NAME}\n",
			new:  "      - DB_NAME=${_DB_NAME}\n      - DB_PASSWORD=hunter2\n",
			want: `step migrate: env DB_PASSWORD has a literal value`,
		},
		{
			name: "misspelled field",
			old:  "    entrypoint: /workspace/bin/replayvault\n",
			new:  "    entryPoint: /workspace/bin/replayvault\n",
			want: `field entryPoint not found`,
		},
	}
	src, err := os.ReadFile("../cloudbuild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := string(src)
			if n := strings.Count(s, tc.old); n != 1 {
				t.Fatalf("cloudbuild.yaml contains %q %d times, want 1", tc.old, n)
			}
			errs := checkCloudBuild([]byte(strings.Replace(s, tc.old, tc.new, 1)))
			if !containsError(errs, tc.want) {
				t.Errorf("no error containing %q; got %v", tc.want, errs)
			}
		})
	}
}

func containsError(errs []error, want string) bool {
	return slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), want) })
}

// checkAll runs every module check; registered are the function names the
// code registers.
func checkAll(m *module, registered []string) []error {
	var errs []error
	errs = append(errs, checkEntryPoints(m, registered)...)
	errs = append(errs, checkServiceAccounts(m)...)
	errs = append(errs, checkIAM(m)...)
	errs = append(errs, checkFunctionGrants(m)...)
	errs = append(errs, checkEnvironment(m)...)
	errs = append(errs, checkDatabaseRoles(m)...)
	errs = append(errs, checkBucket(m)...)
	errs = append(errs, checkPackDelivery(m)...)
	errs = append(errs, checkSweep(m)...)
	errs = append(errs, checkIngest(m)...)
	return errs
}

// ingestRole is the database role migration 00030 creates for Ingest.
const ingestRole = "replayvault_ingest"

// checkIngest: Ingest is public (browsers call it without credentials), and
// its database user holds only the ingest role the migrations create (read
// keys, number batches), never the functions' read-write app role.
func checkIngest(m *module) []error {
	fns, errs := m.functions()
	fn := fns["Ingest"]
	if fn == nil {
		return errs
	}
	grants, _ := m.grants()
	public := slices.ContainsFunc(grants, func(g grant) bool {
		return g.target == fn.res.addr() && g.role == "roles/run.invoker" && slices.Contains(g.members, "allUsers")
	})
	if !public {
		errs = append(errs, errors.New("Ingest: no public invoker (allUsers roles/run.invoker on its service); SDKs in browsers cannot call it"))
	}
	env, _, err := fn.environment()
	if err != nil {
		return append(errs, err)
	}
	user := env["DB_USER"]
	found := false
	for _, r := range m.resources {
		if r.mode != "resource" || r.typ != "google_alloydb_user" {
			continue
		}
		scopes, err := m.instances(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, scope := range scopes {
			id, err := m.attrValue(r.block, "user_id", scope)
			if err != nil || !id.IsKnown() || id.IsNull() || user == cty.NilVal || !user.IsKnown() || !id.RawEquals(user) {
				continue
			}
			found = true
			roles, err := m.attrValue(r.block, "database_roles", scope)
			if err != nil || !roles.IsWhollyKnown() || roles.IsNull() {
				errs = append(errs, fmt.Errorf("Ingest: database user %s has unknown database_roles (%v)", r.addr(), err))
				continue
			}
			var got []string
			for it := roles.ElementIterator(); it.Next(); {
				_, v := it.Element()
				got = append(got, v.AsString())
			}
			slices.Sort(got)
			if want := []string{"alloydbiamuser", ingestRole}; !slices.Equal(got, want) {
				errs = append(errs, fmt.Errorf("Ingest: database user %s has roles %v, want %v", r.addr(), got, want))
			}
		}
	}
	if !found {
		errs = append(errs, errors.New("Ingest: no google_alloydb_user for its DB_USER"))
	}
	return errs
}

// checkEntryPoints: the deployed entry points are exactly the registered ones.
func checkEntryPoints(m *module, registered []string) []error {
	fns, errs := m.functions()
	var deployed []string
	for entry := range fns {
		deployed = append(deployed, entry)
		if !slices.Contains(registered, entry) {
			errs = append(errs, fmt.Errorf("entry point %q is not registered in function.go (registered: %v)", entry, registered))
		}
	}
	for _, name := range registered {
		if _, ok := fns[name]; !ok {
			errs = append(errs, fmt.Errorf("function %q is registered in function.go but not deployed (deployed: %v)", name, deployed))
		}
	}
	return errs
}

// checkServiceAccounts: each function runs as its own service account.
func checkServiceAccounts(m *module) []error {
	fns, errs := m.functions()
	owner := map[string]string{} // service account -> entry point
	for _, entry := range sortedKeys(fns) {
		sa, err := fns[entry].serviceAccount()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if other, ok := owner[sa]; ok {
			errs = append(errs, fmt.Errorf("%s and %s share service account %s", entry, other, sa))
		}
		owner[sa] = entry
	}
	return errs
}

// checkIAM: no owner/editor anywhere, no storage or KMS role (predefined or
// custom) above the resource level, no authoritative policies, and no public
// grant except Serve's and Ingest's invokers.
func checkIAM(m *module) []error {
	grants, errs := m.grants()
	public := map[string]bool{}
	if fns, _ := m.functions(); fns != nil {
		for _, entry := range []string{"Serve", "Ingest"} {
			if fns[entry] != nil {
				public[fns[entry].res.addr()] = true
			}
		}
	}
	for _, g := range grants {
		if g.role == "roles/owner" || g.role == "roles/editor" {
			errs = append(errs, fmt.Errorf("%s grants %s", g.addr, g.role))
		}
		if g.projectLevel {
			if strings.HasPrefix(g.role, "roles/storage.") || strings.HasPrefix(g.role, "roles/cloudkms.") {
				errs = append(errs, fmt.Errorf("%s: project-level grant of %s; bind it on the bucket or key", g.addr, g.role))
			}
			for _, p := range g.customPermissions {
				if strings.HasPrefix(p, "storage.") || strings.HasPrefix(p, "cloudkms.") {
					errs = append(errs, fmt.Errorf("%s: project-level grant of custom role %s with %s; bind it on the bucket or key", g.addr, g.customRole, p))
					break
				}
			}
		}
		for _, member := range g.members {
			if member == "allUsers" || member == "allAuthenticatedUsers" {
				if g.typ != "google_cloud_run_v2_service_iam_member" || !public[g.target] || g.role != "roles/run.invoker" {
					errs = append(errs, fmt.Errorf("%s: public grant (%s) on %s; only Serve's and Ingest's invokers may be public", g.addr, member, g.target))
				}
			}
		}
	}
	for _, r := range m.resources {
		if r.mode == "data" && r.typ == "google_iam_policy" {
			errs = append(errs, fmt.Errorf("%s: authoritative IAM policy; use *_iam_member", r.addr()))
		}
	}
	return errs
}

// checkFunctionGrants: each function account holds exactly expectedGrants.
func checkFunctionGrants(m *module) []error {
	fns, errs := m.functions()
	grants, _ := m.grants()
	for _, entry := range sortedKeys(fns) {
		want, ok := expectedGrants[entry]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no expected grants listed in this test", entry))
			continue
		}
		sa, err := fns[entry].serviceAccount()
		if err != nil {
			continue // reported by checkServiceAccounts
		}
		member := "serviceAccount:" + symbolicEmail(sa)
		var got []string
		for _, g := range grants {
			if !slices.Contains(g.members, member) {
				continue
			}
			role := g.role
			if g.customRole != "" {
				role = fmt.Sprintf("custom%v", g.customPermissions)
			}
			s := g.typ + " " + role
			if !g.projectLevel {
				s += " on " + g.target
			}
			if g.condition != "" {
				s += " if " + g.condition
			}
			got = append(got, s)
		}
		slices.Sort(got)
		got = slices.Compact(got)
		if diff := cmp.Diff(want, got); diff != "" {
			errs = append(errs, fmt.Errorf("%s (%s) grants differ from expectedGrants (-want +got):\n%s", entry, sa, diff))
		}
	}
	return errs
}

// goRuntimeEnv are variables the Go runtime reads, not a config struct; a
// function may set them.
var goRuntimeEnv = []string{"GOGC", "GOMAXPROCS", "GOMEMLIMIT"}

// checkEnvironment: each function sets exactly the variables its config
// struct reads, minus the local-only ones, plus any of goRuntimeEnv;
// JWT_SECRET comes from Secret Manager; values with a struct default match
// it; DB_USER is the function's own account.
func checkEnvironment(m *module) []error {
	fns, errs := m.functions()
	for _, entry := range sortedKeys(fns) {
		fn := fns[entry]
		cfg, ok := configs[entry]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no config struct known for this entry point", entry))
			continue
		}
		env, secrets, err := fn.environment()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var got []string
		for name := range env {
			if slices.Contains(goRuntimeEnv, name) {
				continue
			}
			got = append(got, name)
			if slices.Contains(secrets, name) {
				errs = append(errs, fmt.Errorf("%s: %s is set both as a plain and a secret variable", entry, name))
			}
		}
		got = append(got, secrets...)
		slices.Sort(got)
		got = slices.Compact(got)
		var want []string
		for _, name := range config.EnvVars(cfg) {
			if !slices.Contains(config.LocalOnly, name) {
				want = append(want, name)
			}
		}
		want = append(want, telemetry.DeployEnv()...)
		slices.Sort(want)
		want = slices.Compact(want)
		if diff := cmp.Diff(want, got); diff != "" {
			errs = append(errs, fmt.Errorf("%s: environment differs from config.%s minus config.LocalOnly (-want +got):\n%s", entry, entry, diff))
		}
		if slices.Contains(want, "JWT_SECRET") && !slices.Contains(secrets, "JWT_SECRET") {
			errs = append(errs, fmt.Errorf("%s: JWT_SECRET must come from Secret Manager (secret_environment_variables)", entry))
		}

		for name, def := range envDefaults(cfg) {
			v, ok := env[name]
			if !ok || !v.IsWhollyKnown() {
				continue
			}
			s, err := convert.Convert(v, cty.String)
			if err != nil || s.IsNull() {
				errs = append(errs, fmt.Errorf("%s: %s is not a string: %v", entry, name, err))
				continue
			}
			if !sameSetting(def, s.AsString()) {
				errs = append(errs, fmt.Errorf("%s: %s = %q but config default is %q; change both or neither", entry, name, s.AsString(), def.value))
			}
		}

		if sa, err := fn.serviceAccount(); err == nil {
			want := strings.TrimSuffix(symbolicEmail(sa), ".gserviceaccount.com")
			if v, ok := env["DB_USER"]; !ok || !v.IsKnown() || v.IsNull() || v.AsString() != want {
				errs = append(errs, fmt.Errorf("%s: DB_USER is %#v, want its own service account's IAM user %q", entry, v, want))
			}
		}
	}
	return errs
}

// checkDatabaseRoles: each function's IAM database user holds
// alloydbiamuser and exactly its own function's role, which a migration
// creates (shared/store/role_test.go checks what each role may do).
func checkDatabaseRoles(m *module) []error {
	var errs []error
	r := m.byAddr["google_alloydb_user.functions"]
	if r == nil {
		return []error{errors.New("no google_alloydb_user.functions")}
	}
	insts, err := m.instances(r)
	if err != nil {
		return []error{err}
	}
	migrations, err := filepath.Glob("../shared/store/migrations/*.sql")
	if err != nil {
		return []error{err}
	}
	var sql strings.Builder
	for _, f := range migrations {
		b, err := os.ReadFile(f)
		if err != nil {
			return []error{err}
		}
		sql.Write(b)
	}
	seen := map[string]bool{}
	for _, inst := range insts {
		fn := inst["each"].GetAttr("key").AsString()
		seen[fn] = true
		v, err := m.attrValue(r.block, "database_roles", inst)
		if err != nil || !v.IsWhollyKnown() {
			errs = append(errs, fmt.Errorf("database user %s: database_roles not known: %v", fn, err))
			continue
		}
		var roles []string
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			roles = append(roles, e.AsString())
		}
		want := []string{"alloydbiamuser", "replayvault_" + fn}
		if !slices.Equal(roles, want) {
			errs = append(errs, fmt.Errorf("database user %s: database_roles = %v, want %v (its own function's role only)", fn, roles, want))
		}
		if !strings.Contains(sql.String(), "'replayvault_"+fn+"'") {
			errs = append(errs, fmt.Errorf("database user %s: no migration creates role replayvault_%s", fn, fn))
		}
	}
	for _, fn := range []string{"pack", "serve", "shred"} {
		if !seen[fn] {
			errs = append(errs, fmt.Errorf("no database user for %s", fn))
		}
	}
	return errs
}

// checkBucket: the bucket every function uses has one delete rule per
// retention class, with a day's slack, and no public or versioned access.
func checkBucket(m *module) []error {
	fns, errs := m.functions()
	bucket := ""
	for _, entry := range sortedKeys(fns) {
		if cfg, ok := configs[entry]; ok && !slices.Contains(config.EnvVars(cfg), "BUCKET") {
			continue // Ingest has no bucket; checkEnvironment keeps it unset
		}
		env, _, err := fns[entry].environment()
		if err != nil {
			continue // reported by checkEnvironment
		}
		addr := m.symbolAddr(env["BUCKET"])
		if addr == "" || !strings.HasPrefix(addr, "google_storage_bucket.") {
			errs = append(errs, fmt.Errorf("%s: BUCKET does not name a google_storage_bucket of this module", entry))
			continue
		}
		if bucket != "" && bucket != addr {
			errs = append(errs, fmt.Errorf("functions use different buckets: %s and %s", bucket, addr))
		}
		bucket = addr
	}
	r := m.byAddr[bucket]
	if r == nil {
		return append(errs, errors.New("no blob bucket found through the functions' BUCKET"))
	}

	for attr, want := range map[string]cty.Value{
		"uniform_bucket_level_access": cty.True,
		"public_access_prevention":    cty.StringVal("enforced"),
	} {
		if got, err := m.attrValue(r.block, attr, nil); err != nil || !got.RawEquals(want) {
			errs = append(errs, fmt.Errorf("%s: %s must be %#v, got %#v (%v)", bucket, attr, want, got, err))
		}
	}
	for _, v := range blocksOf(r.block, "versioning") {
		if got, err := m.attrValue(v, "enabled", nil); err != nil || !got.RawEquals(cty.False) {
			errs = append(errs, fmt.Errorf("%s: versioning must be off: objects are never rewritten and a noncurrent copy would outlive its shred", bucket))
		}
	}

	rules, err := m.lifecycleRules(r.block)
	if err != nil {
		return append(errs, fmt.Errorf("%s: %w", bucket, err))
	}
	ages := map[string]int64{}
	for _, rule := range rules {
		if rule.action != "Delete" {
			continue
		}
		if len(rule.prefixes) == 0 {
			errs = append(errs, fmt.Errorf("%s: delete rule without a prefix removes objects of every retention class", bucket))
			continue
		}
		for _, p := range rule.prefixes {
			ages[p] = rule.age
		}
	}
	for _, days := range segment.RetentionClasses {
		prefix := fmt.Sprintf("r%d/", days)
		age, ok := ages[prefix]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: no delete rule for retention class %d (prefix %s)", bucket, days, prefix))
		case age <= int64(days):
			errs = append(errs, fmt.Errorf("%s: rule deletes %s at age %d, before its rows expire (want > %d)", bucket, prefix, age, days))
		}
		delete(ages, prefix)
	}
	for prefix := range ages {
		errs = append(errs, fmt.Errorf("%s: delete rule for %s, which is not a retention class of segment.RetentionClasses %v", bucket, prefix, segment.RetentionClasses))
	}
	return errs
}

// checkPackDelivery: Pack is fed by an authenticated push subscription whose
// ack deadline outlasts a held request (FLUSH_AGE plus one flush), with
// backoff and a dead-letter topic apart from the reject topic; its instance
// concurrency is MAX_CONCURRENCY and its memory holds the buffer.
func checkPackDelivery(m *module) []error {
	fns, errs := m.functions()
	pack := fns["Pack"]
	if pack == nil {
		return append(errs, errors.New("no Pack function"))
	}
	if len(blocksOf(pack.res.block, "event_trigger")) > 0 {
		errs = append(errs, errors.New("Pack uses an Eventarc event_trigger, whose subscription's ack deadline Terraform cannot set; push through google_pubsub_subscription"))
	}
	env, _, err := pack.environment()
	if err != nil {
		return append(errs, err)
	}
	durations := map[string]time.Duration{}
	for _, name := range []string{"FLUSH_AGE", "GCS_TIMEOUT", "DB_TIMEOUT"} {
		d, err := durationOf(env[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("Pack: %s: %w", name, err))
		}
		durations[name] = d
	}
	held := durations["FLUSH_AGE"] + durations["GCS_TIMEOUT"] + durations["DB_TIMEOUT"]

	sc := firstBlock(pack.res.block, "service_config")
	if sc == nil {
		return append(errs, errors.New("Pack: no service_config"))
	}
	timeout, err := m.intAttr(sc, "timeout_seconds")
	if err != nil {
		errs = append(errs, fmt.Errorf("Pack: %w", err))
	}
	concurrency, err := m.intAttr(sc, "max_instance_request_concurrency")
	if err != nil {
		errs = append(errs, fmt.Errorf("Pack: %w", err))
	}
	if got, err := intOf(env["MAX_CONCURRENCY"]); err != nil || got != concurrency {
		errs = append(errs, fmt.Errorf("Pack: max_instance_request_concurrency %d differs from MAX_CONCURRENCY %d (%v): a batch flushes when MAX_CONCURRENCY requests wait", concurrency, got, err))
	}
	if cpu, err := m.attrValue(sc, "available_cpu", nil); err != nil || !cpu.IsKnown() {
		errs = append(errs, fmt.Errorf("Pack: available_cpu unknown (%v)", err))
	} else if s, _ := convert.Convert(cpu, cty.String); !s.IsNull() {
		if f, err := strconv.ParseFloat(s.AsString(), 64); err != nil || (concurrency > 1 && f < 1) {
			errs = append(errs, fmt.Errorf("Pack: concurrency %d needs at least 1 vCPU, got %q", concurrency, s.AsString()))
		}
	}
	memory, err := m.attrValue(sc, "available_memory", nil)
	buffer, err1 := intOf(env["MAX_BUFFER_BYTES"])
	segmentMax, err2 := intOf(env["MAX_DECOMPRESSED_BYTES"])
	if err := errors.Join(err, err1, err2); err != nil {
		errs = append(errs, fmt.Errorf("Pack memory: %w", err))
	} else if mem, err := memoryBytes(memory); err != nil {
		errs = append(errs, fmt.Errorf("Pack: available_memory: %w", err))
	} else if need := 2*buffer + segmentMax; mem < need {
		errs = append(errs, fmt.Errorf("Pack memory %d bytes is below 2 x MAX_BUFFER_BYTES + MAX_DECOMPRESSED_BYTES = %d", mem, need))
	}

	rejectTopic := m.symbolAddr(env["REJECT_TOPIC"])
	if !strings.HasPrefix(rejectTopic, "google_pubsub_topic.") {
		errs = append(errs, errors.New("Pack: REJECT_TOPIC does not name a google_pubsub_topic of this module"))
	}

	var subs []*resource
	for _, r := range m.resources {
		if r.typ != "google_pubsub_subscription" || r.mode != "resource" {
			continue
		}
		if pc := firstBlock(r.block, "push_config"); pc != nil && slices.Contains(refs(pc.Body.Attributes["push_endpoint"]), pack.res.addr()) {
			subs = append(subs, r)
		}
	}
	if len(subs) != 1 {
		return append(errs, fmt.Errorf("want one push subscription to %s, found %d", pack.res.addr(), len(subs)))
	}
	sub := subs[0]
	ack, err := m.intAttr(sub.block, "ack_deadline_seconds")
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("%s: %w", sub.addr(), err))
	case time.Duration(ack)*time.Second <= held:
		errs = append(errs, fmt.Errorf("%s: ack deadline %ds does not exceed FLUSH_AGE + GCS_TIMEOUT + DB_TIMEOUT = %s: held requests would be redelivered", sub.addr(), ack, held))
	case ack < timeout:
		errs = append(errs, fmt.Errorf("%s: ack deadline %ds is shorter than Pack's timeout %ds", sub.addr(), ack, timeout))
	}
	if pc := firstBlock(sub.block, "push_config"); firstBlock(pc, "oidc_token") == nil {
		errs = append(errs, fmt.Errorf("%s: push without oidc_token cannot invoke an IAM-only function", sub.addr()))
	}
	if rp := firstBlock(sub.block, "retry_policy"); rp == nil || rp.Body.Attributes["minimum_backoff"] == nil {
		errs = append(errs, fmt.Errorf("%s: no retry_policy with backoff: nacked segments would be redelivered at once", sub.addr()))
	}
	dl := firstBlock(sub.block, "dead_letter_policy")
	if dl == nil {
		return append(errs, fmt.Errorf("%s: no dead_letter_policy", sub.addr()))
	}
	if n, err := m.intAttr(dl, "max_delivery_attempts"); err != nil || n < 5 {
		errs = append(errs, fmt.Errorf("%s: max_delivery_attempts %d (%v), want at least 5", sub.addr(), n, err))
	}
	dlTopic, err := m.attrValue(dl, "dead_letter_topic", nil)
	switch addr := m.symbolAddr(dlTopic); {
	case err != nil || addr == "":
		errs = append(errs, fmt.Errorf("%s: dead_letter_topic is not a topic of this module (%v)", sub.addr(), err))
	case addr == rejectTopic:
		errs = append(errs, fmt.Errorf("%s: dead-letter topic is the reject topic %s; delivery failures and invalid input must stay apart", sub.addr(), addr))
	}
	return errs
}

// checkSweep: Cloud Scheduler POSTs to Shred's /v1/sweep with an OIDC token of
// an account that is not a function's.
func checkSweep(m *module) []error {
	fns, errs := m.functions()
	shred := fns["Shred"]
	if shred == nil {
		return append(errs, errors.New("no Shred function"))
	}
	var jobs []*hclsyntax.Block
	for _, r := range m.resources {
		if r.typ == "google_cloud_scheduler_job" {
			if ht := firstBlock(r.block, "http_target"); ht != nil && slices.Contains(refs(ht.Body.Attributes["uri"]), shred.res.addr()) {
				jobs = append(jobs, ht)
			}
		}
	}
	if len(jobs) != 1 {
		return append(errs, fmt.Errorf("want one scheduler job calling %s, found %d", shred.res.addr(), len(jobs)))
	}
	ht := jobs[0]
	method, _ := m.attrValue(ht, "http_method", nil)
	tmpl, _ := ht.Body.Attributes["uri"].Expr.(*hclsyntax.TemplateExpr)
	if !method.RawEquals(cty.StringVal("POST")) || tmpl == nil || !strings.HasSuffix(literalTail(tmpl), "/v1/sweep") {
		errs = append(errs, errors.New("sweep job does not POST to /v1/sweep"))
	}
	oidc := firstBlock(ht, "oidc_token")
	if oidc == nil {
		return append(errs, errors.New("sweep job has no oidc_token: Shred is IAM-only"))
	}
	v, err := m.attrValue(oidc, "service_account_email", nil)
	sa := m.symbolAddr(v)
	if err != nil || !strings.HasPrefix(sa, "google_service_account.") {
		return append(errs, errors.New("sweep job's oidc_token is not a service account of this module"))
	}
	for _, entry := range sortedKeys(fns) {
		if fnSA, err := fns[entry].serviceAccount(); err == nil && fnSA == sa {
			errs = append(errs, fmt.Errorf("sweep job calls as %s, the service account of %s", sa, entry))
		}
	}
	return errs
}

// Cloud Build.

type buildConfig struct {
	Steps            []buildStep       `yaml:"steps"`
	Substitutions    map[string]string `yaml:"substitutions"`
	Options          buildOptions      `yaml:"options"`
	Timeout          string            `yaml:"timeout"`
	ServiceAccount   string            `yaml:"serviceAccount"`
	LogsBucket       string            `yaml:"logsBucket"`
	Tags             []string          `yaml:"tags"`
	Images           []string          `yaml:"images"`
	AvailableSecrets struct {
		SecretManager []struct {
			VersionName string `yaml:"versionName"`
			Env         string `yaml:"env"`
		} `yaml:"secretManager"`
	} `yaml:"availableSecrets"`
}

type buildStep struct {
	ID         string   `yaml:"id"`
	Name       string   `yaml:"name"`
	Entrypoint string   `yaml:"entrypoint"`
	Args       []string `yaml:"args"`
	Script     string   `yaml:"script"`
	Dir        string   `yaml:"dir"`
	Env        []string `yaml:"env"`
	SecretEnv  []string `yaml:"secretEnv"`
	WaitFor    []string `yaml:"waitFor"`
	Timeout    string   `yaml:"timeout"`
}

type buildOptions struct {
	DynamicSubstitutions bool     `yaml:"dynamicSubstitutions"`
	Logging              string   `yaml:"logging"`
	MachineType          string   `yaml:"machineType"`
	Env                  []string `yaml:"env"`
	SecretEnv            []string `yaml:"secretEnv"`
	Pool                 struct {
		Name string `yaml:"name"`
	} `yaml:"pool"`
}

var secretName = regexp.MustCompile(`(?i)secret|passw|token|private|credential|api_?key`)

func checkCloudBuild(src []byte) []error {
	var errs []error
	var cfg buildConfig
	dec := yaml.NewDecoder(strings.NewReader(string(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return []error{fmt.Errorf("cloudbuild.yaml: %w", err)}
	}
	if strings.Contains(string(src), "PRIVATE KEY") {
		errs = append(errs, errors.New("cloudbuild.yaml contains a private key"))
	}

	index := map[string]int{}
	for i, s := range cfg.Steps {
		if s.ID == "" {
			errs = append(errs, fmt.Errorf("step %d has no id", i+1))
		} else if _, dup := index[s.ID]; dup {
			errs = append(errs, fmt.Errorf("step id %q is used twice", s.ID))
		}
		index[s.ID] = i
		if !slices.ContainsFunc(builderPrefixes, func(p string) bool { return strings.HasPrefix(s.Name, p) }) {
			errs = append(errs, fmt.Errorf("step %s: image %q is not a known published builder (%v)", s.ID, s.Name, builderPrefixes))
		}
		errs = append(errs, checkBuildEnv("step "+s.ID, s.Env)...)
	}
	errs = append(errs, checkBuildEnv("options", cfg.Options.Env)...)

	// Cloud Build runs a step without waitFor after every earlier step; with
	// waitFor: ['-'] at once; otherwise after the steps it names.
	before := make([]map[int]bool, len(cfg.Steps))
	for i, s := range cfg.Steps {
		before[i] = map[int]bool{}
		var direct []int
		switch {
		case len(s.WaitFor) == 0:
			for j := range i {
				direct = append(direct, j)
			}
		case slices.Equal(s.WaitFor, []string{"-"}):
		default:
			for _, id := range s.WaitFor {
				j, ok := index[id]
				if !ok || j >= i {
					errs = append(errs, fmt.Errorf("step %s waits for %q, which is not an earlier step", s.ID, id))
					continue
				}
				direct = append(direct, j)
			}
		}
		for _, j := range direct {
			before[i][j] = true
			maps.Copy(before[i], before[j])
		}
	}
	var ids []string
	for _, pair := range stepOrder {
		ids = append(ids, pair[0], pair[1])
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, ok := index[id]; !ok {
			errs = append(errs, fmt.Errorf("no step with id %q", id))
		}
	}
	for _, pair := range stepOrder {
		a, okA := index[pair[0]]
		b, okB := index[pair[1]]
		if okA && okB && !before[b][a] {
			errs = append(errs, fmt.Errorf("step %s must finish before %s starts", pair[0], pair[1]))
		}
	}

	if i, ok := index["test"]; ok && !strings.Contains(stepCommand(cfg.Steps[i]), "scripts/test") {
		errs = append(errs, errors.New("step test does not run scripts/test, the script CI runs"))
	}
	if i, ok := index["migrate"]; ok {
		s := cfg.Steps[i]
		if cmd := stepCommand(s); !strings.Contains(cmd, "replayvault") || !strings.Contains(cmd, "migrate") {
			errs = append(errs, fmt.Errorf("step migrate does not run `replayvault migrate`: %q", cmd))
		}
		for _, name := range []string{"ALLOYDB_INSTANCE=", "DB_USER="} {
			if !slices.ContainsFunc(s.Env, func(e string) bool { return strings.HasPrefix(e, name) }) {
				errs = append(errs, fmt.Errorf("step migrate does not set %s", strings.TrimSuffix(name, "=")))
			}
		}
	}
	return errs
}

// checkBuildEnv rejects secret-looking variables with literal values: secrets
// come from Secret Manager (availableSecrets) or the build's identity.
func checkBuildEnv(where string, env []string) []error {
	var errs []error
	for _, e := range env {
		name, value, _ := strings.Cut(e, "=")
		if secretName.MatchString(name) && value != "" && !strings.HasPrefix(value, "$") {
			errs = append(errs, fmt.Errorf("%s: env %s has a literal value; use Secret Manager", where, name))
		}
	}
	return errs
}

func stepCommand(s buildStep) string {
	return strings.Join(append([]string{s.Entrypoint, s.Script}, s.Args...), " ")
}

// function.go.

// registeredFunctions returns the names ../function.go registers with
// functions.HTTP, functions.CloudEvent or functions.Typed.
func registeredFunctions(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../function.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse function.go: %v", err)
	}
	pkg := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/GoogleCloudPlatform/functions-framework-go/functions" {
			pkg = "functions"
			if imp.Name != nil {
				pkg = imp.Name.Name
			}
		}
	}
	if pkg == "" {
		t.Fatal("function.go does not import functions-framework-go/functions")
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != pkg || !slices.Contains([]string{"HTTP", "CloudEvent", "Typed"}, sel.Sel.Name) {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("%s: function name is not a string literal", fset.Position(call.Pos()))
			return true
		}
		name, _ := strconv.Unquote(lit.Value)
		names = append(names, name)
		return true
	})
	slices.Sort(names)
	return names
}

// Terraform module reading and evaluation.

type resource struct {
	mode      string // "resource" or "data"
	typ, name string
	block     *hclsyntax.Block
}

func (r *resource) addr() string {
	if r.mode == "data" {
		return "data." + r.typ + "." + r.name
	}
	return r.typ + "." + r.name
}

type module struct {
	templates map[string][]byte // *.tftpl files, by name
	resources []*resource
	byAddr    map[string]*resource
	variables map[string]*hclsyntax.Block
	locals    map[string]hclsyntax.Expression
	ctx       *hcl.EvalContext
	symbols   map[string]string // symbolic attribute value -> resource address
}

func readTF(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("*.tf")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files (%v)", err)
	}
	tmpl, err := filepath.Glob("*.tftpl")
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, tmpl...)
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = b
	}
	return files
}

func loadModule(t *testing.T) *module {
	t.Helper()
	m, err := parseModule(readTF(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func parseModule(files map[string][]byte) (*module, error) {
	m := &module{
		byAddr:    map[string]*resource{},
		variables: map[string]*hclsyntax.Block{},
		locals:    map[string]hclsyntax.Expression{},
		symbols:   map[string]string{},
	}
	m.templates = map[string][]byte{}
	for _, name := range sortedKeys(files) {
		if strings.HasSuffix(name, ".tftpl") {
			m.templates[name] = files[name]
			continue
		}
		f, diags := hclsyntax.ParseConfig(files[name], name, hcl.InitialPos)
		if diags.HasErrors() {
			return nil, diags
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			switch b.Type {
			case "resource", "data":
				r := &resource{mode: b.Type, typ: b.Labels[0], name: b.Labels[1], block: b}
				if _, dup := m.byAddr[r.addr()]; dup {
					return nil, fmt.Errorf("%s declared twice", r.addr())
				}
				m.resources = append(m.resources, r)
				m.byAddr[r.addr()] = r
			case "variable":
				m.variables[b.Labels[0]] = b
			case "locals":
				for name, attr := range b.Body.Attributes {
					m.locals[name] = attr.Expr
				}
			}
		}
	}
	return m, m.buildContext()
}

// symbolicAttrs are the attributes of resources that evaluate to symbols
// naming the resource, so that checks can tell which bucket, topic, key or
// account an expression refers to. Other resource attributes are unknown.
var symbolicAttrs = map[string][]string{
	"google_service_account":         {"id", "name", "email", "member", "account_id", "unique_id"},
	"google_project_iam_custom_role": {"id", "name", "role_id"},
	"google_pubsub_topic":            {"id", "name"},
	"google_storage_bucket":          {"id", "name", "url"},
	"google_kms_crypto_key":          {"id", "name"},
	"google_secret_manager_secret":   {"id", "name", "secret_id"},
	"google_cloud_run_v2_service":    {"id", "name", "uri"},
}

// symbolicEmail is the email a service account resource evaluates to.
func symbolicEmail(addr string) string {
	return strings.TrimPrefix(addr, "google_service_account.") + "@test-project.iam.gserviceaccount.com"
}

func (m *module) buildContext() error {
	vars := map[string]cty.Value{}
	for name, b := range m.variables {
		v := cty.DynamicVal
		if def, ok := b.Body.Attributes["default"]; ok {
			val, diags := def.Expr.Value(nil)
			if diags.HasErrors() {
				return fmt.Errorf("variable %s: %w", name, diags)
			}
			if ty, ok := b.Body.Attributes["type"]; ok {
				t, diags := typeexpr.TypeConstraint(ty.Expr)
				if diags.HasErrors() {
					return fmt.Errorf("variable %s: %w", name, diags)
				}
				var err error
				if val, err = convert.Convert(val, t); err != nil {
					return fmt.Errorf("variable %s default: %w", name, err)
				}
			}
			v = val
		}
		vars[name] = v
	}
	m.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":  cty.ObjectVal(vars),
			"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(".")}),
		},
		Functions: functions(m.templates),
	}

	byType := map[string]map[string]cty.Value{}
	data := map[string]map[string]cty.Value{}
	for _, r := range m.resources {
		v := cty.DynamicVal
		_, counted := r.block.Body.Attributes["count"]
		_, each := r.block.Body.Attributes["for_each"]
		if attrs, ok := symbolicAttrs[r.typ]; ok && r.mode == "resource" && !each {
			obj := map[string]cty.Value{}
			for _, a := range attrs {
				s := "{" + r.addr() + "." + a + "}"
				switch {
				case r.typ == "google_service_account" && a == "email":
					s = symbolicEmail(r.addr())
				case r.typ == "google_service_account" && a == "member":
					s = "serviceAccount:" + symbolicEmail(r.addr())
				}
				obj[a] = cty.StringVal(s)
				m.symbols[s] = r.addr()
			}
			v = cty.ObjectVal(obj)
			if counted {
				// One instance, [0], whatever the count (which may depend
				// on locals not evaluated yet); checks that care evaluate
				// the count themselves.
				v = cty.TupleVal([]cty.Value{v})
			}
		}
		target := byType
		if r.mode == "data" {
			target = data
		}
		if target[r.typ] == nil {
			target[r.typ] = map[string]cty.Value{}
		}
		target[r.typ][r.name] = v
	}
	for typ, names := range byType {
		m.ctx.Variables[typ] = cty.ObjectVal(names)
	}
	dataObj := map[string]cty.Value{}
	for typ, names := range data {
		dataObj[typ] = cty.ObjectVal(names)
	}
	m.ctx.Variables["data"] = cty.ObjectVal(dataObj)

	// Locals may refer to each other in any order: evaluate until nothing
	// changes, then report what still fails.
	locals := map[string]cty.Value{}
	for name := range m.locals {
		locals[name] = cty.DynamicVal
	}
	for range len(m.locals) + 1 {
		m.ctx.Variables["local"] = cty.ObjectVal(locals)
		changed := false
		for name, expr := range m.locals {
			v, diags := expr.Value(m.ctx)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			if !v.RawEquals(locals[name]) {
				locals[name], changed = v, true
			}
		}
		if !changed {
			break
		}
	}
	m.ctx.Variables["local"] = cty.ObjectVal(locals)
	for name, expr := range m.locals {
		if _, diags := expr.Value(m.ctx); diags.HasErrors() {
			return fmt.Errorf("local.%s: %w", name, diags)
		}
	}
	return nil
}

// functions are the Terraform functions this module's expressions use;
// templatefile reads its templates from templates (file name -> text).
func functions(templates map[string][]byte) map[string]function.Function {
	return map[string]function.Function{
		"templatefile": templateFileFunc(templates),
		"coalesce":     stdlib.CoalesceFunc,
		"concat":       stdlib.ConcatFunc,
		"floor":        stdlib.FloorFunc,
		"jsonencode":   stdlib.JSONEncodeFunc,
		"contains":     stdlib.ContainsFunc,
		"format":       stdlib.FormatFunc,
		"join":         stdlib.JoinFunc,
		"keys":         stdlib.KeysFunc,
		"length":       stdlib.LengthFunc,
		"lookup":       stdlib.LookupFunc,
		"lower":        stdlib.LowerFunc,
		"merge":        stdlib.MergeFunc,
		"replace":      stdlib.ReplaceFunc,
		"setproduct":   stdlib.SetProductFunc,
		"tolist":       stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tonumber":     stdlib.MakeToFunc(cty.Number),
		"toset":        stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":     stdlib.MakeToFunc(cty.String),
		"trimprefix":   stdlib.TrimPrefixFunc,
		"trimsuffix":   stdlib.TrimSuffixFunc,
		"upper":        stdlib.UpperFunc,
		"values":       stdlib.ValuesFunc,
	}
}

// attrValue evaluates attribute name of block b; a missing attribute is null.
func (m *module) attrValue(b *hclsyntax.Block, name string, extra map[string]cty.Value) (cty.Value, error) {
	if b == nil {
		return cty.NilVal, fmt.Errorf("no block for %s", name)
	}
	attr, ok := b.Body.Attributes[name]
	if !ok {
		return cty.NullVal(cty.DynamicPseudoType), nil
	}
	ctx := m.ctx
	if len(extra) > 0 {
		ctx = m.ctx.NewChild()
		ctx.Variables = extra
	}
	v, diags := attr.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return v, nil
}

func (m *module) intAttr(b *hclsyntax.Block, name string) (int64, error) {
	v, err := m.attrValue(b, name, nil)
	if err != nil {
		return 0, err
	}
	n, err := intOf(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// symbolAddr returns the resource a symbolic value names, or "".
func (m *module) symbolAddr(v cty.Value) string {
	if v == cty.NilVal || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return ""
	}
	return m.symbols[v.AsString()]
}

// instances returns the evaluation scope (each or count) of every instance
// of r; one nil scope for a single resource.
func (m *module) instances(r *resource) ([]map[string]cty.Value, error) {
	if attr, ok := r.block.Body.Attributes["for_each"]; ok {
		v, diags := attr.Expr.Value(m.ctx)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s for_each: %w", r.addr(), diags)
		}
		if !v.IsWhollyKnown() && (!v.IsKnown() || v.Type().IsSetType()) {
			return nil, fmt.Errorf("%s: for_each is not known without a cloud, so its grants cannot be checked", r.addr())
		}
		if !v.CanIterateElements() {
			return nil, fmt.Errorf("%s: for_each is not a collection", r.addr())
		}
		var out []map[string]cty.Value
		for it := v.ElementIterator(); it.Next(); {
			k, val := it.Element()
			if v.Type().IsSetType() {
				k = val
			}
			out = append(out, map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": val})})
		}
		return out, nil
	}
	if attr, ok := r.block.Body.Attributes["count"]; ok {
		v, diags := attr.Expr.Value(m.ctx)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s count: %w", r.addr(), diags)
		}
		n, err := intOf(v)
		if err != nil {
			return nil, fmt.Errorf("%s count: %w", r.addr(), err)
		}
		var out []map[string]cty.Value
		for i := range n {
			out = append(out, map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(i)})})
		}
		return out, nil
	}
	return []map[string]cty.Value{nil}, nil
}

// grant is one evaluated IAM binding.
type grant struct {
	addr              string
	typ               string
	role              string
	customRole        string // address of a google_project_iam_custom_role
	customPermissions []string
	members           []string // known members only
	projectLevel      bool
	target            string // resource the grant is on, for resource-level grants
	condition         string // the IAM condition's expression, references as ${addr}
}

var iamResource = regexp.MustCompile(`^google_[a-z0-9_]+_iam_(member|binding|policy)$`)

// targetAttrs name the resource a resource-level IAM binding is on.
var targetAttrs = []string{"bucket", "crypto_key_id", "topic", "subscription", "secret_id", "service_account_id", "repository", "name"}

func (m *module) grants() ([]grant, []error) {
	var grants []grant
	var errs []error
	for _, r := range m.resources {
		if r.mode != "resource" || !iamResource.MatchString(r.typ) {
			continue
		}
		if strings.HasSuffix(r.typ, "_iam_policy") {
			errs = append(errs, fmt.Errorf("%s: authoritative IAM policy replaces every other grant; use *_iam_member", r.addr()))
			continue
		}
		scopes, err := m.instances(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		projectLevel := slices.ContainsFunc([]string{"google_project_iam_", "google_folder_iam_", "google_organization_iam_"},
			func(p string) bool { return strings.HasPrefix(r.typ, p) })
		target := ""
		for _, a := range targetAttrs {
			if rs := refs(r.block.Body.Attributes[a]); len(rs) > 0 && strings.HasPrefix(rs[0], "google_") {
				target = rs[0]
				break
			}
		}
		for _, scope := range scopes {
			g := grant{addr: r.addr(), typ: r.typ, projectLevel: projectLevel, target: target}
			if cond := firstBlock(r.block, "condition"); cond != nil {
				g.condition = exprText(cond.Body.Attributes["expression"])
			}
			role, err := m.attrValue(r.block, "role", scope)
			if err != nil || !role.IsKnown() || role.IsNull() {
				errs = append(errs, fmt.Errorf("%s: role is not known without a cloud (%v)", r.addr(), err))
				continue
			}
			g.role = role.AsString()
			if addr := m.symbols[g.role]; strings.HasPrefix(addr, "google_project_iam_custom_role.") {
				g.customRole = addr
				perms, err := m.attrValue(m.byAddr[addr].block, "permissions", nil)
				if err != nil || !perms.IsWhollyKnown() {
					errs = append(errs, fmt.Errorf("%s: permissions unknown (%v)", addr, err))
				} else {
					for it := perms.ElementIterator(); it.Next(); {
						_, p := it.Element()
						g.customPermissions = append(g.customPermissions, p.AsString())
					}
					slices.Sort(g.customPermissions)
				}
			} else if !strings.HasPrefix(g.role, "roles/") {
				errs = append(errs, fmt.Errorf("%s: role %q is neither predefined nor a custom role of this module", r.addr(), g.role))
			}
			for _, attr := range []string{"member", "members"} {
				v, err := m.attrValue(r.block, attr, scope)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", r.addr(), attr, err))
					continue
				}
				if !v.IsKnown() || v.IsNull() {
					continue
				}
				if v.Type() == cty.String {
					g.members = append(g.members, v.AsString())
					continue
				}
				for it := v.ElementIterator(); it.Next(); {
					if _, e := it.Element(); e.IsKnown() && !e.IsNull() {
						g.members = append(g.members, e.AsString())
					}
				}
			}
			grants = append(grants, g)
		}
	}
	return grants, errs
}

// function is one deployed google_cloudfunctions2_function.
type deployedFunction struct {
	m     *module
	entry string
	res   *resource
}

// functions returns the deployed functions by entry point.
func (m *module) functions() (map[string]*deployedFunction, []error) {
	fns := map[string]*deployedFunction{}
	var errs []error
	for _, r := range m.resources {
		if r.mode != "resource" || r.typ != "google_cloudfunctions2_function" {
			continue
		}
		entry, err := m.attrValue(firstBlock(r.block, "build_config"), "entry_point", nil)
		if err != nil || !entry.IsKnown() || entry.IsNull() {
			errs = append(errs, fmt.Errorf("%s: entry_point is not a known string (%v)", r.addr(), err))
			continue
		}
		name := entry.AsString()
		if other, dup := fns[name]; dup {
			errs = append(errs, fmt.Errorf("%s and %s both deploy entry point %s", r.addr(), other.res.addr(), name))
			continue
		}
		fns[name] = &deployedFunction{m: m, entry: name, res: r}
	}
	if len(fns) == 0 {
		errs = append(errs, errors.New("no google_cloudfunctions2_function in the module"))
	}
	return fns, errs
}

// serviceAccount returns the address of the google_service_account the
// function runs as.
func (f *deployedFunction) serviceAccount() (string, error) {
	v, err := f.m.attrValue(firstBlock(f.res.block, "service_config"), "service_account_email", nil)
	addr := f.m.symbolAddr(v)
	if err != nil || !strings.HasPrefix(addr, "google_service_account.") {
		return "", fmt.Errorf("%s: service_account_email is not a google_service_account of this module (%v)", f.entry, err)
	}
	return addr, nil
}

// environment returns the plain environment variables (evaluated, values
// possibly unknown) and the names of the secret ones.
func (f *deployedFunction) environment() (map[string]cty.Value, []string, error) {
	sc := firstBlock(f.res.block, "service_config")
	if sc == nil {
		return nil, nil, fmt.Errorf("%s: no service_config", f.entry)
	}
	for _, b := range sc.Body.Blocks {
		if b.Type == "dynamic" {
			return nil, nil, fmt.Errorf("%s: dynamic %s blocks cannot be checked; write them out", f.entry, b.Labels[0])
		}
	}
	env := map[string]cty.Value{}
	v, err := f.m.attrValue(sc, "environment_variables", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: environment_variables: %w", f.entry, err)
	}
	if !v.IsNull() {
		if !v.IsKnown() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
			return nil, nil, fmt.Errorf("%s: environment_variables names are not known without a cloud", f.entry)
		}
		for it := v.ElementIterator(); it.Next(); {
			k, val := it.Element()
			env[k.AsString()] = val
		}
	}
	var secrets []string
	for _, b := range blocksOf(sc, "secret_environment_variables") {
		k, err := f.m.attrValue(b, "key", nil)
		if err != nil || !k.IsKnown() || k.IsNull() {
			return nil, nil, fmt.Errorf("%s: secret key unknown (%v)", f.entry, err)
		}
		secrets = append(secrets, k.AsString())
	}
	slices.Sort(secrets)
	return env, secrets, nil
}

type lifecycleRule struct {
	action   string
	class    string // SetStorageClass's storage_class
	age      int64
	prefixes []string
}

// lifecycleRules evaluates the static and dynamic lifecycle_rule blocks.
func (m *module) lifecycleRules(bucket *hclsyntax.Block) ([]lifecycleRule, error) {
	var rules []lifecycleRule
	read := func(b *hclsyntax.Block, scope map[string]cty.Value) error {
		action, err := m.attrValue(firstBlock(b, "action"), "type", scope)
		if err != nil || !action.IsKnown() || action.IsNull() {
			return fmt.Errorf("lifecycle action unknown (%v)", err)
		}
		cond := firstBlock(b, "condition")
		rule := lifecycleRule{action: action.AsString()}
		if sc, err := m.attrValue(firstBlock(b, "action"), "storage_class", scope); err == nil && sc.IsKnown() && !sc.IsNull() {
			rule.class = sc.AsString()
		}
		age, err := m.attrValue(cond, "age", scope)
		if err != nil {
			return err
		}
		if !age.IsNull() {
			if rule.age, err = intOf(age); err != nil {
				return fmt.Errorf("lifecycle age: %w", err)
			}
		}
		prefixes, err := m.attrValue(cond, "matches_prefix", scope)
		if err != nil || !prefixes.IsWhollyKnown() {
			return fmt.Errorf("lifecycle matches_prefix unknown (%v)", err)
		}
		if !prefixes.IsNull() {
			for it := prefixes.ElementIterator(); it.Next(); {
				_, p := it.Element()
				rule.prefixes = append(rule.prefixes, p.AsString())
			}
		}
		rules = append(rules, rule)
		return nil
	}
	for _, b := range bucket.Body.Blocks {
		switch {
		case b.Type == "lifecycle_rule":
			if err := read(b, nil); err != nil {
				return nil, err
			}
		case b.Type == "dynamic" && b.Labels[0] == "lifecycle_rule":
			iterator := "lifecycle_rule"
			if it, ok := b.Body.Attributes["iterator"]; ok {
				iterator = hcl.ExprAsKeyword(it.Expr)
			}
			each, err := m.attrValue(b, "for_each", nil)
			if err != nil || !each.IsWhollyKnown() || !each.CanIterateElements() {
				return nil, fmt.Errorf("dynamic lifecycle_rule for_each unknown (%v)", err)
			}
			content := firstBlock(b, "content")
			for it := each.ElementIterator(); it.Next(); {
				k, v := it.Element()
				if each.Type().IsSetType() {
					k = v
				}
				scope := map[string]cty.Value{iterator: cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
				if err := read(content, scope); err != nil {
					return nil, err
				}
			}
		}
	}
	return rules, nil
}

// HCL and value helpers.

func firstBlock(b *hclsyntax.Block, typ string) *hclsyntax.Block {
	if bs := blocksOf(b, typ); len(bs) > 0 {
		return bs[0]
	}
	return nil
}

func blocksOf(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	if b == nil {
		return nil
	}
	var out []*hclsyntax.Block
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// refs returns the resources ("type.name") and other objects ("var.x",
// "local.y") an attribute's expression refers to.
// exprText renders a literal or template expression with its references
// written as ${resource.name.attr}, so that an IAM condition can be compared
// without knowing the values a cloud would fill in.
func exprText(attr *hclsyntax.Attribute) string {
	if attr == nil {
		return ""
	}
	var part func(e hclsyntax.Expression) string
	part = func(e hclsyntax.Expression) string {
		switch x := e.(type) {
		case *hclsyntax.LiteralValueExpr:
			if x.Val.Type() == cty.String {
				return x.Val.AsString()
			}
			return x.Val.GoString()
		case *hclsyntax.TemplateExpr:
			var b strings.Builder
			for _, p := range x.Parts {
				b.WriteString(part(p))
			}
			return b.String()
		case *hclsyntax.TemplateWrapExpr:
			return part(x.Wrapped)
		case *hclsyntax.ScopeTraversalExpr:
			var names []string
			for _, t := range x.Traversal {
				switch s := t.(type) {
				case hcl.TraverseRoot:
					names = append(names, s.Name)
				case hcl.TraverseAttr:
					names = append(names, s.Name)
				}
			}
			return "${" + strings.Join(names, ".") + "}"
		}
		return fmt.Sprintf("<%T>", e)
	}
	return part(attr.Expr)
}

func refs(attr *hclsyntax.Attribute) []string {
	if attr == nil {
		return nil
	}
	var out []string
	for _, tr := range attr.Expr.Variables() {
		name := tr.RootName()
		if len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				name += "." + a.Name
			}
		}
		out = append(out, name)
	}
	return out
}

// literalTail returns the literal text at the end of a string template.
func literalTail(t *hclsyntax.TemplateExpr) string {
	if len(t.Parts) == 0 {
		return ""
	}
	lit, ok := t.Parts[len(t.Parts)-1].(*hclsyntax.LiteralValueExpr)
	if !ok || lit.Val.Type() != cty.String {
		return ""
	}
	return lit.Val.AsString()
}

func intOf(v cty.Value) (int64, error) {
	if v == cty.NilVal || !v.IsKnown() || v.IsNull() {
		return 0, errors.New("value not known")
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		return 0, err
	}
	i, acc := n.AsBigFloat().Int64()
	if acc != big.Exact {
		return 0, fmt.Errorf("%s is not an integer", n.AsBigFloat())
	}
	return i, nil
}

func durationOf(v cty.Value) (time.Duration, error) {
	if v == cty.NilVal || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return 0, errors.New("not a known duration string")
	}
	return time.ParseDuration(v.AsString())
}

var memoryRE = regexp.MustCompile(`^([0-9]+)(k|Ki|M|Mi|G|Gi)?$`)

// memoryBytes parses a Cloud Functions memory size such as "512Mi" or "1G".
func memoryBytes(v cty.Value) (int64, error) {
	if !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return 0, errors.New("not a known string")
	}
	sub := memoryRE.FindStringSubmatch(v.AsString())
	if sub == nil {
		return 0, fmt.Errorf("cannot parse %q", v.AsString())
	}
	n, _ := strconv.ParseInt(sub[1], 10, 64)
	unit := map[string]int64{"": 1, "k": 1e3, "Ki": 1 << 10, "M": 1e6, "Mi": 1 << 20, "G": 1e9, "Gi": 1 << 30}[sub[2]]
	return n * unit, nil
}

// envDefault is the default a config struct gives one variable.
type envDefault struct {
	value string
	typ   reflect.Type
}

// envDefaults returns the env:"NAME, default=..." defaults of a config struct.
func envDefaults(cfg any) map[string]envDefault {
	out := map[string]envDefault{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
			for opt := range strings.SplitSeq(opts, ",") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(opt), "default="); ok {
					out[strings.TrimSpace(name)] = envDefault{value: v, typ: f.Type}
				}
			}
		}
	}
	walk(reflect.TypeOf(cfg))
	return out
}

// sameSetting compares a Terraform value with a struct default: durations by
// length ("60m" is "1h"), everything else as text.
func sameSetting(def envDefault, got string) bool {
	if def.typ == reflect.TypeFor[time.Duration]() {
		a, errA := time.ParseDuration(def.value)
		b, errB := time.ParseDuration(got)
		return errA == nil && errB == nil && a == b
	}
	return def.value == got
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// TestIngestRoleMatchesMigration keeps db_ingest_role and the role the
// migrations create for Ingest the same name.
func TestIngestRoleMatchesMigration(t *testing.T) {
	sql, err := os.ReadFile("../shared/store/migrations/00030_ingest.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sql), "CREATE ROLE "+ingestRole+" NOLOGIN") {
		t.Errorf("migration 00030 does not create role %s", ingestRole)
	}
	m := loadModule(t)
	def, err := m.attrValue(m.variables["db_ingest_role"], "default", nil)
	if err != nil || def.IsNull() || def.AsString() != ingestRole {
		t.Errorf("variable db_ingest_role defaults to %#v (%v), want %q", def, err, ingestRole)
	}
}
