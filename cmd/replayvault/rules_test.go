package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestRulesCommand pushes a module, assigns it with a config, lists and
// unassigns it, against a real database and fake-gcs-server, and checks
// what Pack would load: the bytes under the content-addressed path and the
// assignment row.
func TestRulesCommand(t *testing.T) {
	ctx := context.Background()
	d := testenv.NewDeps(t)
	t.Setenv("DATABASE_URL", d.DSN)
	t.Setenv("BUCKET", testenv.TestBucket)
	t.Setenv("STORAGE_EMULATOR_HOST", d.GCS.Host())
	wasm := rulestest.Build(t, "shared/rules/modules/sampling/wasm")
	file := filepath.Join(t.TempDir(), "sampling.wasm")
	if err := os.WriteFile(file, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := realMain(ctx, append([]string{"rules"}, args...), &out)
		return out.String(), err
	}

	out, err := run("push", "-name", "sampling", file)
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out)
	if hash != rules.Hash(wasm) {
		t.Fatalf("push printed %q, want the module's hash", out)
	}
	stored, err := d.Blobs.ReadRange(ctx, store.RuleModulePath(hash), 0, int64(len(wasm)))
	if err != nil || !bytes.Equal(stored, wasm) {
		t.Fatalf("bucket holds %d bytes at %s (%v), want the module", len(stored), store.RuleModulePath(hash), err)
	}
	if _, err := run("push", "-name", "sampling", file); err != nil {
		t.Fatalf("pushing the same module again: %v", err)
	}

	garbage := filepath.Join(t.TempDir(), "bad.wasm")
	if err := os.WriteFile(garbage, []byte("\x00asm junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("push", "-name", "bad", garbage); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("pushing garbage: %v, want it refused", err)
	}
	if err := d.Blobs.List(ctx, "rules/", func(o blob.Object) error {
		if o.Name != store.RuleModulePath(hash) {
			t.Errorf("unexpected object %s", o.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]string{
		{"assign", "-project", "7", "-name", "sample"},
		{"assign", "-project", "7", "-name", "sample", "-module", "nope"},
		{"assign", "-project", "7", "-name", "sample", "-module", "sampling", "-config", "{not json"},
		{"assign", "-project", "7", "-name", "sample", "-module", "sampling", "-fail", "maybe"},
		{"assign", "-project", "7", "-name", "Bad Name", "-module", "sampling"},
		{"unassign", "-project", "7", "-name", "sample"},
		{"frobnicate"},
	} {
		if _, err := run(bad...); err == nil {
			t.Errorf("rules %v succeeded", bad)
		}
	}
	if _, err := run("assign", "-project", "7", "-name", "sample", "-module", "sampling", "-config", `{"rate":0.1}`, "-fail", "open"); err != nil {
		t.Fatal(err)
	}
	as, err := d.DB.RuleAssignments(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ModuleHash != hash || !as[0].FailOpen || !strings.Contains(string(as[0].Config), `"rate": 0.1`) {
		t.Fatalf("assignments = %+v", as)
	}
	out, err = run("list", "-project", "7")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{hash, "sampling", "sample", "open", `"rate": 0.1`} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if _, err := run("unassign", "-project", "7", "-name", "sample"); err != nil {
		t.Fatal(err)
	}
	if as, err := d.DB.RuleAssignments(ctx, 0); err != nil || len(as) != 0 {
		t.Fatalf("after unassign: %+v, %v", as, err)
	}
}
