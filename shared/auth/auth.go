// Package auth verifies and mints the bearer tokens of the HTTP API: HS256
// JWTs carrying the project the caller may act on and the scopes it holds.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/replayvault/replayvault/shared/derrors"
)

// Scopes a token can carry.
const (
	// ScopeRead reads recordings and their metadata.
	ScopeRead = "replay:read"
	// ScopeDelete shreds named replays.
	ScopeDelete = "replay:delete"
	// ScopeProjectDelete shreds a whole project: permanent for every replay
	// of the project, so it never rides on replay:delete.
	ScopeProjectDelete = "project:delete"
	// ScopeIssueRead lists and reads replay issues.
	ScopeIssueRead = "issue:read"
	// ScopeIssueWrite merges, unmerges, sets status and adds notes.
	ScopeIssueWrite = "issue:write"
)

// Scopes lists every scope, for tools that mint tokens.
var Scopes = []string{ScopeRead, ScopeDelete, ScopeProjectDelete, ScopeIssueRead, ScopeIssueWrite}

// Defaults of Policy (and of JWT_AUDIENCE, JWT_ISSUER, JWT_MAX_LIFETIME).
const (
	DefaultAudience    = "replayvault"
	DefaultIssuer      = "replayvault"
	DefaultMaxLifetime = 24 * time.Hour
)

// Policy is what a token must say besides its signature: who it is for
// (aud), who issued it (iss) and at most how long it lives (exp - iat). A
// leaked token with a short lifetime is worth little; one minted for
// another service sharing the secret is refused by its audience.
type Policy struct {
	Audience    string        // empty: DefaultAudience
	Issuer      string        // empty: DefaultIssuer
	MaxLifetime time.Duration // zero: DefaultMaxLifetime
}

func (p Policy) withDefaults() Policy {
	if p.Audience == "" {
		p.Audience = DefaultAudience
	}
	if p.Issuer == "" {
		p.Issuer = DefaultIssuer
	}
	if p.MaxLifetime <= 0 {
		p.MaxLifetime = DefaultMaxLifetime
	}
	return p
}

var (
	// ErrUnauthenticated: no token, or one that is malformed, badly signed or
	// expired (401).
	ErrUnauthenticated = fmt.Errorf("token %w", derrors.Unauthenticated)
	// ErrForbidden: a valid token for another project or scope (403).
	ErrForbidden = fmt.Errorf("token %w", derrors.PermissionDenied)
)

// Claims are the token's claims.
type Claims struct {
	ProjectID int64  `json:"project_id"`
	Scope     string `json:"scope"` // space-separated
	jwt.RegisteredClaims
}

// HasScope reports whether the token grants scope.
func (c *Claims) HasScope(scope string) bool {
	return slices.Contains(strings.Fields(c.Scope), scope)
}

// Verifier checks tokens signed with one HS256 secret against a Policy.
type Verifier struct {
	secret []byte
	policy Policy
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for secret; zero fields of p take the
// defaults.
func NewVerifier(secret string, p Policy) *Verifier {
	p = p.withDefaults()
	return &Verifier{
		secret: []byte(secret),
		policy: p,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithAudience(p.Audience),
			jwt.WithIssuer(p.Issuer),
			jwt.WithLeeway(leeway),
		),
	}
}

// leeway absorbs clock skew between the minting host and the function.
const leeway = 30 * time.Second

// Authorize checks the request's bearer token and that it grants scope on
// project. The error wraps ErrUnauthenticated or ErrForbidden.
func (v *Verifier) Authorize(r *http.Request, project int64, scope string) (*Claims, error) {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: missing bearer token", ErrUnauthenticated)
	}
	var c Claims
	if _, err := v.parser.ParseWithClaims(strings.TrimSpace(raw), &c, func(*jwt.Token) (any, error) {
		return v.secret, nil
	}); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: token expired", ErrUnauthenticated)
		}
		// Say which check failed (never the token itself): an operator
		// with a wrong JWT_AUDIENCE needs to know.
		return nil, fmt.Errorf("%w: invalid token (%s)", ErrUnauthenticated, reason(err))
	}
	if c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: invalid token (no iat)", ErrUnauthenticated)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.policy.MaxLifetime {
		return nil, fmt.Errorf("%w: token lifetime %s exceeds %s", ErrUnauthenticated, life, v.policy.MaxLifetime)
	}
	if c.ProjectID != project {
		return nil, fmt.Errorf("%w: token is for another project", ErrForbidden)
	}
	if !c.HasScope(scope) {
		return nil, fmt.Errorf("%w: token lacks scope %s", ErrForbidden, scope)
	}
	return &c, nil
}

// reason names the failed check of a parse error.
func reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{jwt.ErrTokenInvalidAudience, "wrong aud"},
		{jwt.ErrTokenInvalidIssuer, "wrong iss"},
		{jwt.ErrTokenRequiredClaimMissing, "missing claim"},
		{jwt.ErrTokenUsedBeforeIssued, "iat in the future"},
		{jwt.ErrTokenSignatureInvalid, "bad signature"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "malformed"
}

// Mint signs a token for project with the given scopes, valid for ttl,
// with the default audience and issuer.
func Mint(secret string, project int64, scopes []string, subject string, ttl time.Duration) (string, error) {
	return MintFor(secret, Policy{}, project, scopes, subject, ttl)
}

// MintFor signs a token with p's audience and issuer. It does not check
// ttl against p.MaxLifetime: verifiers do, and tests need tokens that
// break the rule.
func MintFor(secret string, p Policy, project int64, scopes []string, subject string, ttl time.Duration) (string, error) {
	p = p.withDefaults()
	now := time.Now()
	c := Claims{
		ProjectID: project,
		Scope:     strings.Join(scopes, " "),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    p.Issuer,
			Audience:  jwt.ClaimStrings{p.Audience},
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
