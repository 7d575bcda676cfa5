package store_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

// TestAppRoleCannotChangeRules: the functions read rule assignments; only
// the operator's user writes them.
func TestAppRoleCannotChangeRules(t *testing.T) {
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
	hash := strings.Repeat("0", 64)
	if _, err := admin.Exec(ctx, `INSERT INTO rule_modules (hash, name, size) VALUES ($1, 'm', 1)`, hash); err != nil {
		t.Fatal(err)
	}
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
	if _, err := app.Exec(ctx, `SELECT * FROM rule_assignments`); err != nil {
		t.Errorf("app role cannot read assignments: %v", err)
	}
	for _, stmt := range []string{
		`INSERT INTO rule_assignments (project_id, name, module_hash) VALUES (1, 'x', '` + hash + `')`,
		`DELETE FROM rule_modules`,
		`UPDATE rule_modules SET name = 'y'`,
	} {
		if _, err := app.Exec(ctx, stmt); err == nil {
			t.Errorf("app role may run %s", stmt)
		}
	}
}
