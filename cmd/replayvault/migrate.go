package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// runMigrate applies pending migrations to the database named by the same
// variables the functions read (DATABASE_URL, or ALLOYDB_INSTANCE, DB_USER
// and DB_NAME through the AlloyDB connector with IAM authentication).
func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault migrate", "[-timeout 5m] [-create-database=true]")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	create := fs.Bool("create-database", true, "create the database first if it does not exist")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate takes no arguments, got %q", fs.Args())
	}
	var cfg config.DB
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	if cfg.DatabaseURL == "" && (cfg.AlloyDBInstance == "" || cfg.DBUser == "") {
		return fmt.Errorf("set DATABASE_URL, or ALLOYDB_INSTANCE and DB_USER")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cfg.DBTimeout = *timeout
	if *create {
		created, err := store.EnsureDatabase(ctx, cfg)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintln(out, "created the database")
		}
	}
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(out, "database is up to date")
		return nil
	}
	fmt.Fprintf(out, "applied %d migration(s): %v\n", len(applied), applied)
	return nil
}
