package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/store"
)

// rulesUsage is the rules command's usage line.
const rulesUsage = `push|list|assign|unassign [flags]

  push -name NAME FILE.wasm       compile-check a module, store it in the bucket
                                  (rules/sha256/<hash>.wasm) and record it
  list [-project P]               modules and assignments
  assign -project P -name N -module HASH|NAME [-config JSON | -config-file F]
         [-position N] [-fail closed|open]
                                  run a module on a project's segments
  unassign -project P -name N     stop running it

Pack picks changes up within RULES_REFRESH. Reads DATABASE_URL (or the AlloyDB
variables), BUCKET and STORAGE_EMULATOR_HOST like the functions do; writing
rules needs the deployer's database user (the functions' role may only read).`

// runRules manages edge rule modules and their assignments to projects.
func runRules(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: replayvault rules "+rulesUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("rules needs a subcommand: push, list, assign or unassign")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "push":
		return rulesPush(ctx, args, out)
	case "list":
		return rulesList(ctx, args, out)
	case "assign":
		return rulesAssign(ctx, args, out)
	case "unassign":
		return rulesUnassign(ctx, args, out)
	}
	return fmt.Errorf("unknown rules subcommand %q (push, list, assign, unassign)", sub)
}

// rulesEnv is what the rules command reads from the environment.
type rulesEnv struct {
	config.DB
	config.Storage
}

func openRules(ctx context.Context, needBucket bool, c *closer.Stack) (*store.DB, blob.Store, error) {
	var cfg rulesEnv
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg.DB, Lookuper: envconfig.OsLookuper()}); err != nil {
		return nil, nil, fmt.Errorf("read environment: %w", err)
	}
	if cfg.DatabaseURL == "" && (cfg.AlloyDBInstance == "" || cfg.DBUser == "") {
		return nil, nil, errors.New("set DATABASE_URL, or ALLOYDB_INSTANCE and DB_USER")
	}
	if !needBucket {
		db, err := store.Open(ctx, cfg.DB)
		if err != nil {
			return nil, nil, err
		}
		c.Add(db.Close)
		return db, nil, nil
	}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg.Storage, Lookuper: envconfig.OsLookuper()}); err != nil {
		return nil, nil, fmt.Errorf("read environment: %w", err)
	}
	return clients.Storage(ctx, cfg.DB, cfg.Storage, c)
}

func rulesPush(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault rules push", "-name NAME FILE.wasm")
	name := fs.String("name", "", "a name for the module (for people; the hash identifies it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() != 1 {
		return errors.New("rules push needs -name and one FILE.wasm")
	}
	wasm, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	// Refuse a module Pack could not load before anyone can assign it.
	engine := rules.NewEngine(rules.DefaultLimits())
	defer engine.Close()
	if _, err := engine.Module(ctx, wasm); err != nil {
		return fmt.Errorf("module refused: %w", err)
	}
	var c closer.Stack
	defer c.Close()
	db, blobs, err := openRules(ctx, true, &c)
	if err != nil {
		return err
	}
	hash := rules.Hash(wasm)
	path := store.RuleModulePath(hash)
	if err := blobs.Create(ctx, path, wasm); err != nil && !errors.Is(err, blob.ErrExists) {
		return fmt.Errorf("store %s: %w", path, err)
	}
	if err := db.PutRuleModule(ctx, store.RuleModule{Hash: hash, Name: *name, Size: int64(len(wasm))}); err != nil {
		return err
	}
	fmt.Fprintln(out, hash)
	return nil
}

func rulesList(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault rules list", "[-project P]")
	project := fs.Int64("project", 0, "only this project's assignments")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var c closer.Stack
	defer c.Close()
	db, _, err := openRules(ctx, false, &c)
	if err != nil {
		return err
	}
	mods, err := db.RuleModules(ctx)
	if err != nil {
		return err
	}
	as, err := db.RuleAssignments(ctx, *project)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tNAME\tSIZE\tPUSHED")
	for _, m := range mods {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", m.Hash, m.Name, m.Size, m.CreatedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(tw, "\nPROJECT\tNAME\tPOSITION\tMODULE\tFAIL\tCONFIG")
	for _, a := range as {
		fail := "closed"
		if a.FailOpen {
			fail = "open"
		}
		cfg := string(a.Config)
		if cfg == "" {
			cfg = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", a.ProjectID, a.Name, a.Position, a.ModuleHash[:12], fail, cfg)
	}
	return tw.Flush()
}

func rulesAssign(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault rules assign", "-project P -name N -module HASH|NAME [-config JSON | -config-file F] [-position N] [-fail closed|open]")
	project := fs.Int64("project", 0, "project id")
	name := fs.String("name", "", "assignment name, unique in the project (e.g. scrub)")
	module := fs.String("module", "", "module hash, or the name it was pushed with")
	cfgJSON := fs.String("config", "", "the rule's JSON configuration")
	cfgFile := fs.String("config-file", "", "read the JSON configuration from this file")
	position := fs.Int("position", 0, "rules run in ascending position")
	fail := fs.String("fail", "closed", "when the module fails: closed (reject the segment) or open (store it as if the rule were absent)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *project <= 0 || *name == "" || *module == "" {
		return errors.New("rules assign needs -project, -name and -module")
	}
	if *fail != "closed" && *fail != "open" {
		return fmt.Errorf("-fail must be closed or open, got %q", *fail)
	}
	raw := []byte(*cfgJSON)
	if *cfgFile != "" {
		if *cfgJSON != "" {
			return errors.New("give -config or -config-file, not both")
		}
		b, err := os.ReadFile(*cfgFile)
		if err != nil {
			return err
		}
		raw = b
	}
	if len(raw) > 0 && !json.Valid(raw) {
		return errors.New("the configuration is not valid JSON")
	}
	if len(raw) > 64<<10 {
		return errors.New("the configuration exceeds 64 KiB")
	}
	var c closer.Stack
	defer c.Close()
	db, _, err := openRules(ctx, false, &c)
	if err != nil {
		return err
	}
	hash, err := resolveModule(ctx, db, *module)
	if err != nil {
		return err
	}
	a := store.RuleAssignment{ProjectID: *project, Name: *name, ModuleHash: hash, Position: *position, FailOpen: *fail == "open"}
	if len(raw) > 0 {
		a.Config = raw
	}
	if err := db.AssignRule(ctx, a); err != nil {
		return err
	}
	fmt.Fprintf(out, "project %d runs %s (%s), fail %s\n", *project, *name, hash[:12], *fail)
	return nil
}

// resolveModule accepts a full hash or the name of exactly one module.
func resolveModule(ctx context.Context, db *store.DB, ref string) (string, error) {
	mods, err := db.RuleModules(ctx)
	if err != nil {
		return "", err
	}
	var found []string
	for _, m := range mods {
		if m.Hash == ref || m.Name == ref {
			found = append(found, m.Hash)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no pushed module is named or hashed %q", ref)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d modules are named %q; give the hash", len(found), ref)
}

func rulesUnassign(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault rules unassign", "-project P -name N")
	project := fs.Int64("project", 0, "project id")
	name := fs.String("name", "", "assignment name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *project <= 0 || *name == "" {
		return errors.New("rules unassign needs -project and -name")
	}
	var c closer.Stack
	defer c.Close()
	db, _, err := openRules(ctx, false, &c)
	if err != nil {
		return err
	}
	ok, err := db.UnassignRule(ctx, *project, *name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("project %d has no rule named %s", *project, *name)
	}
	fmt.Fprintf(out, "project %d no longer runs %s\n", *project, *name)
	return nil
}
