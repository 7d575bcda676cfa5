package config

import (
	"os"
	"strings"
	"testing"
)

func TestLoadIngest(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL":         "postgres://x@127.0.0.1/db",
		"GOOGLE_CLOUD_PROJECT": "p",
		"SEGMENT_TOPIC":        "segments",
	}
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr string
	}{
		{"defaults", nil, nil, ""},
		{"no topic", nil, []string{"SEGMENT_TOPIC"}, "SEGMENT_TOPIC"},
		{"no database", nil, []string{"DATABASE_URL"}, "DATABASE_URL"},
		{"body over pubsub", map[string]string{"MAX_BODY_BYTES": "20000000"}, nil, "MAX_BODY_BYTES"},
		{"decompressed below body", map[string]string{"MAX_DECOMPRESSED_BYTES": "2048"}, nil, "MAX_DECOMPRESSED_BYTES"},
		{"long key cache", map[string]string{"KEY_CACHE_TTL": "1h"}, nil, "KEY_CACHE_TTL"},
		{"zero rate", map[string]string{"KEY_RATE": "0"}, nil, "KEY_RATE"},
		{"zero burst", map[string]string{"PROJECT_BURST": "0"}, nil, "PROJECT_BURST"},
		{"bad retention", map[string]string{"RETENTION_DAYS": "7"}, nil, "RETENTION_DAYS"},
		{"pack on cloud run", map[string]string{"PACK_URL": "https://pack-abc-uc.a.run.app"}, nil, ""},
		{"pack on loopback", map[string]string{"PACK_URL": "http://127.0.0.1:8081"}, nil, ""},
		{"pack on localhost", map[string]string{"PACK_URL": "http://localhost:8081/"}, nil, ""},
		{"pack in the clear", map[string]string{"PACK_URL": "http://pack.internal:8080"}, nil, "PACK_URL"},
		{"pack with a path", map[string]string{"PACK_URL": "https://pack.run.app/projects/p/topics/t"}, nil, "PACK_URL"},
		{"pack with credentials", map[string]string{"PACK_URL": "https://u:secret@pack.run.app"}, nil, "PACK_URL"},
		{"pack not a url", map[string]string{"PACK_URL": "pack"}, nil, "PACK_URL"},
		{"zero pack timeout", map[string]string{"PACK_TIMEOUT": "0s"}, nil, "PACK_TIMEOUT"},
		{"pack hold below a body", map[string]string{"PACK_HOLD_BYTES": "1024"}, nil, "PACK_HOLD_BYTES"},
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
			c, err := LoadIngest(t.Context())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if c.KeyCacheTTL.String() != "30s" || c.RetentionDays != 90 {
					t.Errorf("defaults: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to name %s", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("err = %v shows a password", err)
			}
		})
	}
}
