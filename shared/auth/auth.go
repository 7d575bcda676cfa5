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
	ScopeRead   = "replay:read"
	ScopeDelete = "replay:delete"
	// ScopeIssueRead lists and reads replay issues.
	ScopeIssueRead = "issue:read"
	// ScopeIssueWrite merges, unmerges, sets status and adds notes.
	ScopeIssueWrite = "issue:write"
)

// Scopes are every scope a token may carry.
var Scopes = []string{ScopeRead, ScopeDelete, ScopeIssueRead, ScopeIssueWrite}

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

// Verifier checks tokens signed with one HS256 secret.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for secret.
func NewVerifier(secret string) *Verifier {
	return &Verifier{
		secret: []byte(secret),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(30*time.Second),
		),
	}
}

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
		return nil, fmt.Errorf("%w: invalid token", ErrUnauthenticated)
	}
	if c.ProjectID != project {
		return nil, fmt.Errorf("%w: token is for another project", ErrForbidden)
	}
	if !c.HasScope(scope) {
		return nil, fmt.Errorf("%w: token lacks scope %s", ErrForbidden, scope)
	}
	return &c, nil
}

// Mint signs a token for project with the given scopes, valid for ttl.
func Mint(secret string, project int64, scopes []string, subject string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{
		ProjectID: project,
		Scope:     strings.Join(scopes, " "),
		RegisteredClaims: jwt.RegisteredClaims{
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
