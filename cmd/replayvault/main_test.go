package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestToken(t *testing.T) {
	secret := strings.Repeat("s", 32)
	t.Setenv("JWT_SECRET", secret)
	tests := []struct {
		name    string
		args    []string
		wantErr string
		scope   string
	}{
		{"read", []string{"-project", "7"}, "", auth.ScopeRead},
		{"both", []string{"-project", "7", "-scope", "replay:read,replay:delete"}, "", auth.ScopeDelete},
		{"no project", []string{}, "-project", ""},
		{"issue scopes", []string{"-project", "7", "-scope", "issue:read,issue:write"}, "", auth.ScopeIssueWrite},
		{"bad scope", []string{"-project", "7", "-scope", "admin"}, "unknown scope", ""},
		{"bad ttl", []string{"-project", "7", "-ttl", "-1s"}, "-ttl", ""},
		{"project delete", []string{"-project", "7", "-scope", "project:delete"}, "", auth.ScopeProjectDelete},
		{"ttl over the cap", []string{"-project", "7", "-ttl", "25h"}, "JWT_MAX_LIFETIME", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := realMain(context.Background(), append([]string{"token"}, tc.args...), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out.String()))
			if _, err := auth.NewVerifier(secret, auth.Policy{}).Authorize(r, 7, tc.scope); err != nil {
				t.Errorf("minted token does not authorize %s on project 7: %v", tc.scope, err)
			}
			if _, err := auth.NewVerifier(secret, auth.Policy{}).Authorize(r, 8, tc.scope); err == nil {
				t.Error("minted token authorizes another project")
			}
		})
	}
}

func TestTokenNeedsSecret(t *testing.T) {
	t.Setenv("JWT_SECRET", "short")
	if err := realMain(context.Background(), []string{"token", "-project", "1"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
		t.Fatalf("err = %v, want a JWT_SECRET error", err)
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	// Empty the (migrated) test database so migrate has work to do.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Setenv("DATABASE_URL", dsn)
	var out bytes.Buffer
	if err := realMain(ctx, []string{"migrate"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "applied") {
		t.Errorf("first run printed %q, want 'applied ...'", out.String())
	}
	out.Reset()
	if err := realMain(ctx, []string{"migrate"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "up to date") {
		t.Errorf("second run printed %q, want 'up to date'", out.String())
	}
	// A database that does not exist yet is created first.
	fresh := strings.Replace(dsn, "/test_", "/fresh_", 1)
	if fresh == dsn {
		t.Fatalf("cannot derive a new database name from %s", dsn)
	}
	t.Setenv("DATABASE_URL", fresh)
	out.Reset()
	if err := realMain(ctx, []string{"migrate"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "created the database") || !strings.Contains(out.String(), "applied") {
		t.Errorf("migrate of a missing database printed %q", out.String())
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), dsn); err == nil {
			name := fresh[strings.LastIndex(fresh, "/")+1:]
			if i := strings.IndexByte(name, '?'); i >= 0 {
				name = name[:i]
			}
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})

	t.Setenv("DATABASE_URL", "")
	if err := realMain(context.Background(), []string{"migrate"}, &out); err == nil {
		t.Error("migrate without a database configured succeeded")
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := realMain(context.Background(), []string{"frobnicate"}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown command succeeded")
	}
}
