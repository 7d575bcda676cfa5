package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestKeys(t *testing.T) {
	dsn := testenv.NewDB(t)
	t.Setenv("DATABASE_URL", dsn)
	ctx := context.Background()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := realMain(ctx, append([]string{"keys"}, args...), &out)
		return out.String(), err
	}
	out, err := run("create", "-project", "5", "-origins", "https://a.example, http://localhost:8080/", "-label", "web", "-ingest-url", "https://ingest.example")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.SplitN(out, "\n", 2)[0]
	if len(key) != 32 {
		t.Fatalf("key %q is not 32 hex digits", key)
	}
	for _, want := range []string{"https://" + key + "@ingest.example/5", "api_host: https://ingest.example   token: " + key} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
	db, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k, err := db.LookupIngestKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if k.ProjectID != 5 || strings.Join(k.Origins, " ") != "https://a.example http://localhost:8080" {
		t.Errorf("stored key = %+v", k)
	}
	out, err = run("list", "-project", "5")
	if err != nil || !strings.Contains(out, key) || !strings.Contains(out, "web") {
		t.Errorf("list = %q, %v", out, err)
	}
	if _, err := run("revoke", "-project", "6", "-key", key); err == nil {
		t.Error("revoked a key through another project")
	}
	if _, err := run("revoke", "-project", "5", "-key", key); err != nil {
		t.Fatal(err)
	}
	if k, _ := db.LookupIngestKey(ctx, key); k.RevokedAt == nil {
		t.Error("key not revoked")
	}

	bad := [][]string{
		{},
		{"rotate", "-project", "5"},
		{"create"},
		{"create", "-project", "5", "-origins", "ftp://x"},
		{"create", "-project", "5", "-origins", "https://a.example/path"},
		{"revoke", "-project", "5"},
	}
	for _, args := range bad {
		if _, err := run(args...); err == nil {
			t.Errorf("keys %q succeeded", args)
		}
	}
}
