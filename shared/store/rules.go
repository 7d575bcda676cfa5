package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RuleModule is a rule module known to the database; its bytes are in the
// bucket at RuleModulePath(Hash).
type RuleModule struct {
	Hash      string
	Name      string
	Size      int64
	CreatedAt time.Time
}

// RuleAssignment runs a module on a project's segments.
type RuleAssignment struct {
	ProjectID  int64
	Name       string
	ModuleHash string
	Position   int
	// Config is the assignment's JSON configuration (nil for none).
	Config    json.RawMessage
	FailOpen  bool
	UpdatedAt time.Time
	// ModuleSize is the module's size in bytes (from rule_modules), so that
	// Pack reads exactly that many.
	ModuleSize int64
}

// RuleModulePath is where a module's bytes live in the bucket.
func RuleModulePath(hash string) string { return "rules/sha256/" + hash + ".wasm" }

// PutRuleModule records a pushed module; pushing the same bytes again keeps
// the first name.
func (db *DB) PutRuleModule(ctx context.Context, m RuleModule) error {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO rule_modules (hash, name, size) VALUES ($1, $2, $3)
		ON CONFLICT (hash) DO NOTHING`, m.Hash, m.Name, m.Size)
	if err != nil {
		return fmt.Errorf("record rule module %s: %w", m.Hash, classify(err))
	}
	return nil
}

// RuleModules lists the known modules, newest first.
func (db *DB) RuleModules(ctx context.Context) ([]RuleModule, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `SELECT hash, name, size, created_at FROM rule_modules ORDER BY created_at DESC, hash`)
	if err != nil {
		return nil, fmt.Errorf("list rule modules: %w", classify(err))
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RuleModule, error) {
		var m RuleModule
		return m, r.Scan(&m.Hash, &m.Name, &m.Size, &m.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("list rule modules: %w", classify(err))
	}
	return ms, nil
}

// AssignRule creates or replaces the project's assignment named a.Name.
func (db *DB) AssignRule(ctx context.Context, a RuleAssignment) error {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var config any
	if len(a.Config) > 0 {
		config = string(a.Config)
	}
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO rule_assignments (project_id, name, module_hash, position, config, fail_open)
		VALUES ($1, $2, $3, $4, $5::jsonb, $6)
		ON CONFLICT (project_id, name) DO UPDATE SET
			module_hash = excluded.module_hash, position = excluded.position,
			config = excluded.config, fail_open = excluded.fail_open, updated_at = now()`,
		a.ProjectID, a.Name, a.ModuleHash, a.Position, config, a.FailOpen)
	if err != nil {
		return fmt.Errorf("assign rule %s to project %d: %w", a.Name, a.ProjectID, classify(err))
	}
	return nil
}

// UnassignRule removes the project's assignment name and reports whether it
// existed.
func (db *DB) UnassignRule(ctx context.Context, project int64, name string) (bool, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	tag, err := db.Pool.Exec(ctx, `DELETE FROM rule_assignments WHERE project_id = $1 AND name = $2`, project, name)
	if err != nil {
		return false, fmt.Errorf("unassign rule %s from project %d: %w", name, project, classify(err))
	}
	return tag.RowsAffected() > 0, nil
}

// RuleAssignments lists assignments in the order they run: of one project,
// or of every project when project is 0.
func (db *DB) RuleAssignments(ctx context.Context, project int64) ([]RuleAssignment, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `
		SELECT a.project_id, a.name, a.module_hash, a.position, a.config, a.fail_open, a.updated_at, m.size
		FROM rule_assignments a JOIN rule_modules m ON m.hash = a.module_hash
		WHERE $1 = 0 OR a.project_id = $1
		ORDER BY a.project_id, a.position, a.name`, project)
	if err != nil {
		return nil, fmt.Errorf("list rule assignments: %w", classify(err))
	}
	as, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RuleAssignment, error) {
		var a RuleAssignment
		var config []byte
		err := r.Scan(&a.ProjectID, &a.Name, &a.ModuleHash, &a.Position, &config, &a.FailOpen, &a.UpdatedAt, &a.ModuleSize)
		if len(config) > 0 {
			a.Config = config
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list rule assignments: %w", classify(err))
	}
	return as, nil
}
