package rulestest

import (
	"context"
	"errors"
	"testing"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/store"
)

// Push stores wasm in the bucket and the database as `replayvault rules
// push` does, and returns its hash.
func Push(tb testing.TB, db *store.DB, blobs blob.Store, name string, wasm []byte) string {
	tb.Helper()
	ctx := context.Background()
	hash := rules.Hash(wasm)
	if err := blobs.Create(ctx, store.RuleModulePath(hash), wasm); err != nil && !errors.Is(err, blob.ErrExists) {
		tb.Fatal(err)
	}
	if err := db.PutRuleModule(ctx, store.RuleModule{Hash: hash, Name: name, Size: int64(len(wasm))}); err != nil {
		tb.Fatal(err)
	}
	return hash
}

// Assign assigns a pushed module to a project.
func Assign(tb testing.TB, db *store.DB, a store.RuleAssignment) {
	tb.Helper()
	if err := db.AssignRule(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
}
