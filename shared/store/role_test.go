package store_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestAppRoleCanWriteButNotAlter checks the role the functions' database
// users get: rows yes, schema no.
func TestAppRoleCanWriteButNotAlter(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	user := "fn_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := admin.Exec(ctx, "CREATE ROLE "+user+" LOGIN IN ROLE replayvault_app"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			c.Exec(context.Background(), "DROP OWNED BY "+user)
			c.Exec(context.Background(), "DROP ROLE "+user)
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	app, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	if _, err := app.Exec(ctx, `INSERT INTO projects (project_id) VALUES (1)`); err != nil {
		t.Errorf("app role cannot insert: %v", err)
	}
	if _, err := app.Exec(ctx, `DELETE FROM projects WHERE project_id = 1`); err != nil {
		t.Errorf("app role cannot delete: %v", err)
	}
	if _, err := app.Exec(ctx, `ALTER TABLE projects ADD COLUMN x int`); err == nil {
		t.Error("app role can alter the schema")
	}
	if _, err := app.Exec(ctx, `DROP TABLE segments`); err == nil {
		t.Error("app role can drop a table")
	}
}

// asRole opens the database as a new login user that is a member of role
// only, as Terraform sets up each function's IAM database user.
func asRole(t *testing.T, admin *store.DB, dsn, role string) *store.DB {
	t.Helper()
	ctx := context.Background()
	user := "fn_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := admin.Pool.Exec(ctx, "CREATE ROLE "+user+" LOGIN IN ROLE "+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Pool.Exec(context.Background(), "DROP OWNED BY "+user)
		admin.Pool.Exec(context.Background(), "DROP ROLE "+user)
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	db, err := store.OpenURL(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// TestFunctionRoles runs what each function does as a member of its own
// role, and checks the role is refused what that function must never do: a
// compromised Serve cannot write, a compromised Pack cannot delete or undo
// a tombstone, Shred cannot touch the keys.
func TestFunctionRoles(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	admin, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	ids := seed(t, admin, 1, 2, 3)
	if _, err := admin.ShredReplays(ctx, 1, ids[1:], "setup"); err != nil {
		t.Fatal(err)
	}
	pack := asRole(t, admin, dsn, "replayvault_pack")
	serve := asRole(t, admin, dsn, "replayvault_serve")
	shred := asRole(t, admin, dsn, "replayvault_shred")

	// What each function does works.
	kek := uuid.New()
	if err := pack.InsertKEK(ctx, kek, "k", []byte{1}); err != nil {
		t.Fatalf("pack: InsertKEK: %v", err)
	}
	if _, err := pack.ExistingSegments(ctx, []segment.ID{{ProjectID: 1, ReplayID: ids[0], Type: "recording"}}); err != nil {
		t.Errorf("pack: ExistingSegments: %v", err)
	}
	now := time.Now()
	seg := func(project int64, replay uuid.UUID, n int) store.Segment {
		return store.Segment{
			ID:       segment.ID{ProjectID: project, ReplayID: replay, SegmentID: n, Type: "recording"},
			BlobPath: "r90/role", ByteStart: int64(n) * 10, ByteStop: int64(n)*10 + 10,
			Encoding: segment.Zstd, RawSize: 100, EventCount: 1, FirstTS: 1, LastTS: 2,
			KEKID: kek, WrappedDEK: []byte{2}, RetentionDays: 90, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		}
	}
	fresh := uuid.New()
	// The new replay comes through Ingest: Pack stores what the SDK said.
	withMeta := seg(2, fresh, 0)
	withMeta.Meta = replaymeta.Meta{Source: "sentry", SDK: "sentry.javascript.browser", URLs: []string{"https://x/a"}}
	// ... and a replay issue was detected in it: Pack records it.
	withMeta.Occurrences = []store.Occurrence{{TS: 1, Kind: "rage_click", EdgeFP: "e1", FinalFP: "v1:f1", Title: "Rage click", Details: []byte(`{}`)}}
	outcomes, err := pack.CommitBatch(ctx, store.Blob{Path: "r90/role", RetentionDays: 90, Size: 30, SegmentCount: 3},
		[]store.Segment{seg(1, ids[0], 10), seg(1, ids[1], 10), withMeta})
	if err != nil {
		t.Fatalf("pack: CommitBatch: %v", err)
	}
	if want := []store.Outcome{store.Stored, store.Shredded, store.Stored}; !slices.Equal(outcomes, want) {
		t.Errorf("pack: CommitBatch outcomes %v, want %v", outcomes, want)
	}
	if _, rows, err := serve.ReplaySegments(ctx, 1, ids[0], "recording", 0, 1<<30); err != nil || len(rows) != 4 {
		t.Errorf("serve: ReplaySegments: %d rows, %v", len(rows), err)
	}
	if _, err := serve.ReplayMeta(ctx, 1, ids[1]); err != nil {
		t.Errorf("serve: ReplayMeta: %v", err)
	}
	if _, err := serve.WrappedKEK(ctx, kek); err != nil {
		t.Errorf("serve: WrappedKEK: %v", err)
	}
	// Compaction re-encoding segments opens them (00170).
	if _, err := shred.WrappedKEK(ctx, kek); err != nil {
		t.Errorf("shred: WrappedKEK: %v", err)
	}
	if segs, err := shred.CompactSegments(ctx, 1, ids[0]); err != nil || len(segs) != 4 || segs[0].WrappedDEK == nil {
		t.Errorf("shred: CompactSegments: %d rows, %v", len(segs), err)
	}
	if rc, err := shred.ShredReplays(ctx, 1, ids[:1], "role"); err != nil || rc.SegmentsShredded != 4 {
		t.Errorf("shred: ShredReplays: %+v, %v", rc, err)
	}
	if _, err := shred.ShredProject(ctx, 2, "role"); err != nil {
		t.Errorf("shred: ShredProject: %v", err)
	}
	if _, err := shred.ExpireSegments(ctx, now, 10); err != nil {
		t.Errorf("shred: ExpireSegments: %v", err)
	}
	if _, err := shred.DeleteEmptyBlobs(ctx, now.Add(time.Minute), 10); err != nil {
		t.Errorf("shred: DeleteEmptyBlobs: %v", err)
	}

	// What each must never do is refused.
	refused := []struct {
		name string
		db   *store.DB
		sql  string
	}{
		{"serve inserts a project", serve, `INSERT INTO projects (project_id) VALUES (99)`},
		{"serve deletes keys", serve, `DELETE FROM keks`},
		{"serve deletes segments", serve, `DELETE FROM segments`},
		{"serve un-tombstones a replay", serve, `UPDATE replays SET deleted_at = NULL`},
		{"pack deletes segments", pack, `DELETE FROM segments`},
		{"pack deletes keys", pack, `DELETE FROM keks`},
		{"pack deletes replays", pack, `DELETE FROM replays`},
		{"pack deletes blobs", pack, `DELETE FROM blobs`},
		{"pack un-tombstones a replay", pack, `UPDATE replays SET deleted_at = NULL`},
		{"pack un-tombstones a project", pack, `UPDATE projects SET deleted_at = NULL`},
		{"pack inserts a tombstoned project", pack, `INSERT INTO projects (project_id, deleted_at) VALUES (98, NULL)`},
		{"pack rewrites a segment's key", pack, `UPDATE segments SET wrapped_dek = '\x00'`},
		{"pack rewrites receipts", pack, `DELETE FROM shred_receipts`},
		{"shred deletes keys", shred, `DELETE FROM keks`},
		{"shred changes keys", shred, `UPDATE keks SET wrapped = '\x00'`},
		{"shred inserts keys", shred, `INSERT INTO keks (id, kms_key, wrapped) VALUES (gen_random_uuid(), 'k', '\x00')`},
		{"shred deletes receipts", shred, `DELETE FROM shred_receipts`},
		{"shred alters the schema", shred, `ALTER TABLE segments ADD COLUMN x int`},
		{"pack drops a table", pack, `DROP TABLE segments`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.db.Pool.Exec(ctx, tc.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "42P01") {
				t.Errorf("%s: err = %v, want insufficient_privilege", tc.sql, err)
			}
		})
	}
}

// TestRolesCannotChangeRules: Pack reads the rule assignments; no
// function's role may write them (only the operator's user does, with
// `replayvault rules`).
func TestRolesCannotChangeRules(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	admin, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	hash := strings.Repeat("0", 64)
	if _, err := admin.Pool.Exec(ctx, `INSERT INTO rule_modules (hash, name, size) VALUES ($1, 'm', 1)`, hash); err != nil {
		t.Fatal(err)
	}
	pack := asRole(t, admin, dsn, "replayvault_pack")
	if _, err := pack.Pool.Exec(ctx, `SELECT * FROM rule_assignments JOIN rule_modules ON hash = module_hash`); err != nil {
		t.Errorf("pack cannot read the rules: %v", err)
	}
	for _, role := range []string{"replayvault_pack", "replayvault_serve", "replayvault_shred"} {
		db := asRole(t, admin, dsn, role)
		for _, stmt := range []string{
			`INSERT INTO rule_assignments (project_id, name, module_hash) VALUES (1, 'x', '` + hash + `')`,
			`DELETE FROM rule_modules`,
			`UPDATE rule_modules SET name = 'y'`,
		} {
			if _, err := db.Pool.Exec(ctx, stmt); err == nil {
				t.Errorf("%s may run %s", role, stmt)
			}
		}
	}
}
