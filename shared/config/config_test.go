package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryVariable keeps the README's configuration table
// true: every variable a config struct reads must be in it.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{Pack{}, Serve{}, Shred{}, Ingest{}} {
		for _, name := range EnvVars(v) {
			if !strings.Contains(string(readme), "| `"+name+"` |") {
				t.Errorf("README.md has no row for %s", name)
			}
		}
	}
}

func TestLoad(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL":         "postgres://x@127.0.0.1/db",
		"BUCKET":               "b",
		"KMS_KEY":              "projects/p/locations/global/keyRings/r/cryptoKeys/k",
		"GOOGLE_CLOUD_PROJECT": "p",
		"REJECT_TOPIC":         "rejects",
		"JWT_SECRET":           strings.Repeat("x", 32),
	}
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		load    string
		wantErr string
	}{
		{"pack defaults", nil, nil, "pack", ""},
		{"serve defaults", nil, nil, "serve", ""},
		{"shred defaults", nil, nil, "shred", ""},
		{"no database", nil, []string{"DATABASE_URL"}, "pack", "DATABASE_URL"},
		{"alloydb instead", map[string]string{"ALLOYDB_INSTANCE": "projects/p/locations/r/clusters/c/instances/i", "DB_USER": "sa@p.iam"}, []string{"DATABASE_URL"}, "pack", ""},
		{"no bucket", nil, []string{"BUCKET"}, "serve", "BUCKET"},
		{"bad kms key", map[string]string{"KMS_KEY": "mykey"}, nil, "pack", "KMS_KEY"},
		{"short secret", map[string]string{"JWT_SECRET": "short"}, nil, "serve", "JWT_SECRET"},
		{"wildcard cors", map[string]string{"CORS_ORIGINS": "*"}, nil, "shred", "CORS_ORIGINS"},
		{"zero flush segments", map[string]string{"FLUSH_SEGMENTS": "0"}, nil, "pack", "FLUSH_SEGMENTS"},
		{"buffer below flush", map[string]string{"MAX_BUFFER_BYTES": "2048", "FLUSH_BYTES": "4096"}, nil, "pack", "MAX_BUFFER_BYTES"},
		{"garbled duration", map[string]string{"FLUSH_AGE": "soon"}, nil, "pack", "FLUSH_AGE"},
		{"no parallelism", map[string]string{"READ_PARALLELISM": "0"}, nil, "serve", "READ_PARALLELISM"},
		{"tiny grace", map[string]string{"ORPHAN_GRACE": "1s"}, nil, "shred", "ORPHAN_GRACE"},
		{"shred copies only, no kms", map[string]string{"COMPACT_ZSTD_LEVEL": "off"}, []string{"KMS_KEY"}, "shred", ""},
		{"shred re-encodes without kms", nil, []string{"KMS_KEY"}, "shred", "KMS_KEY"},
		{"shred re-encodes at better", map[string]string{"COMPACT_ZSTD_LEVEL": "better"}, nil, "shred", ""},
		{"bad compaction level", map[string]string{"COMPACT_ZSTD_LEVEL": "max"}, nil, "shred", "COMPACT_ZSTD_LEVEL"},
		{"rewritten as s2", map[string]string{"REWRITTEN_ENCODING": "s2"}, nil, "pack", ""},
		{"rewritten as gzip", map[string]string{"REWRITTEN_ENCODING": "gzip"}, nil, "pack", "REWRITTEN_ENCODING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range tc.set {
				t.Setenv(k, v)
			}
			for _, k := range tc.unset {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			var err error
			switch tc.load {
			case "pack":
				_, err = LoadPack(t.Context())
			case "serve":
				_, err = LoadServe(t.Context())
			case "shred":
				_, err = LoadShred(t.Context())
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to name %s", err, tc.wantErr)
			}
		})
	}
}

func TestEnvVars(t *testing.T) {
	got := EnvVars(Shred{})
	for _, want := range []string{"BUCKET", "DATABASE_URL", "JWT_SECRET", "ORPHAN_GRACE"} {
		if !slices.Contains(got, want) {
			t.Errorf("EnvVars(Shred{}) = %v, missing %s", got, want)
		}
	}
	if slices.Contains(got, "FLUSH_AGE") {
		t.Error("EnvVars(Shred{}) includes a Pack-only variable")
	}
}
