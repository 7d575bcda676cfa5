package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/auth"
)

// runToken mints an HS256 token with JWT_SECRET from the environment (never
// from a flag, so it stays out of shell history and process lists). The
// audience, issuer and lifetime cap are the functions' own variables
// (JWT_AUDIENCE, JWT_ISSUER, JWT_MAX_LIFETIME), with the same defaults, so
// a token minted here is one the functions accept.
func runToken(_ context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault token", "-project N [-scope replay:read,replay:delete,project:delete,issue:read,issue:write] [-ttl 1h] [-subject NAME]")
	project := fs.Int64("project", 0, "project id the token is for (required)")
	scope := fs.String("scope", auth.ScopeRead, "comma-separated scopes: "+strings.Join(auth.Scopes, ", ")+" (project:delete shreds a whole project)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	subject := fs.String("subject", "replayvault-cli", "who the token identifies (recorded on shred receipts)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *project <= 0 {
		return errors.New("-project must be a positive project id")
	}
	var scopes []string
	for _, s := range strings.Split(*scope, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(auth.Scopes, s) {
			return fmt.Errorf("unknown scope %q (want one of %s)", s, strings.Join(auth.Scopes, ", "))
		}
		scopes = append(scopes, s)
	}
	policy := auth.Policy{Audience: os.Getenv("JWT_AUDIENCE"), Issuer: os.Getenv("JWT_ISSUER")}
	policy.MaxLifetime = auth.DefaultMaxLifetime
	if v := os.Getenv("JWT_MAX_LIFETIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("JWT_MAX_LIFETIME=%q is not a positive duration", v)
		}
		policy.MaxLifetime = d
	}
	if *ttl <= 0 || *ttl > policy.MaxLifetime {
		return fmt.Errorf("-ttl must be between 1s and %s (JWT_MAX_LIFETIME), got %s", policy.MaxLifetime, *ttl)
	}
	secret := os.Getenv("JWT_SECRET")
	if len(secret) < 32 {
		return errors.New("set JWT_SECRET (at least 32 bytes) in the environment")
	}
	tok, err := auth.MintFor(secret, policy, *project, scopes, *subject, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}
