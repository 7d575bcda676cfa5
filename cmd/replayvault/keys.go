package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/store"
)

// runKeys manages a project's public ingest keys in the database named by
// the same variables the functions read (as migrate does):
//
//	replayvault keys create -project P [-origins https://a.example,https://b.example] [-label web] [-ingest-url URL]
//	replayvault keys list -project P
//	replayvault keys revoke -project P -key KEY
//
// A key is public (it ships in every page, like a Sentry DSN); the origins
// say which sites' pages may send with it ("*" for any). A revoked key is
// refused by every Ingest instance within KEY_CACHE_TTL.
func runKeys(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: replayvault keys create|list|revoke -project P [flags]")
	}
	sub, args := args[0], args[1:]
	fs := cli.NewFlagSet("replayvault keys "+sub, "-project P [flags]")
	project := fs.Int64("project", 0, "project id (required)")
	var origins, label, ingestURL, key *string
	switch sub {
	case "create":
		origins = fs.String("origins", "", "comma-separated origins whose pages may send with the key (https://app.example), or * for any")
		label = fs.String("label", "", "a name for the key")
		ingestURL = fs.String("ingest-url", "", "Ingest's public URL, to print the Sentry DSN and PostHog host to paste")
	case "list":
	case "revoke":
		key = fs.String("key", "", "the public key to revoke (required)")
	default:
		return fmt.Errorf("unknown keys command %q (want create, list or revoke)", sub)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keys %s takes no arguments, got %q", sub, fs.Args())
	}
	if *project <= 0 {
		return errors.New("-project must be a positive project id")
	}
	var parsedOrigins []string
	if origins != nil {
		var err error
		if parsedOrigins, err = parseOrigins(*origins); err != nil {
			return err
		}
	}
	if key != nil && *key == "" {
		return errors.New("-key is required")
	}
	var cfg config.DB
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	if cfg.DatabaseURL == "" && (cfg.AlloyDBInstance == "" || cfg.DBUser == "") {
		return errors.New("set DATABASE_URL, or ALLOYDB_INSTANCE and DB_USER")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()

	switch sub {
	case "create":
		k := store.IngestKey{PublicKey: newPublicKey(), ProjectID: *project, Origins: parsedOrigins, Label: *label}
		if err := db.CreateIngestKey(ctx, k); err != nil {
			return err
		}
		fmt.Fprintln(out, k.PublicKey)
		if *ingestURL != "" {
			return printKeyUse(out, *ingestURL, k)
		}
		return nil
	case "list":
		keys, err := db.IngestKeys(ctx, *project)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tLABEL\tORIGINS\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.PublicKey, orDash(k.Label), orDash(strings.Join(k.Origins, ",")),
				k.CreatedAt.UTC().Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	default: // revoke
		if err := db.RevokeIngestKey(ctx, *project, *key); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("project %d has no such key", *project)
			}
			return err
		}
		fmt.Fprintln(out, "revoked; Ingest instances refuse it within KEY_CACHE_TTL")
		return nil
	}
}

// newPublicKey returns 32 random hex digits, the shape of a Sentry DSN's
// public key.
func newPublicKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func parseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		switch {
		case o == "":
			continue
		case o == "*":
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" || u.RawQuery != "") {
				return nil, fmt.Errorf("origin %q must be scheme://host[:port], like https://app.example", o)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// printKeyUse prints what to paste into each SDK for a key.
func printKeyUse(out io.Writer, ingestURL string, k store.IngestKey) error {
	u, err := url.Parse(strings.TrimSuffix(ingestURL, "/"))
	if err != nil || u.Host == "" {
		return fmt.Errorf("-ingest-url %q is not a URL", ingestURL)
	}
	dsn := *u
	dsn.User = url.User(k.PublicKey)
	dsn.Path = fmt.Sprintf("%s/%d", u.Path, k.ProjectID)
	fmt.Fprintf(out, "Sentry DSN:       %s\n", dsn.String())
	fmt.Fprintf(out, "PostHog api_host: %s   token: %s\n", u.String(), k.PublicKey)
	fmt.Fprintf(out, "rrweb endpoint:   %s/v1/projects/%d/replays/{replay}/segments/{n}?key=%s\n", u.String(), k.ProjectID, k.PublicKey)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
