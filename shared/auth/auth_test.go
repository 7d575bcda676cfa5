package auth

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestAuthorize(t *testing.T) {
	secret := strings.Repeat("k", 32)
	v := NewVerifier(secret, Policy{})
	mint := func(project int64, scopes []string, ttl time.Duration) string {
		tok, err := Mint(secret, project, scopes, "test", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(1, []string{ScopeRead}, time.Hour)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{ProjectID: 1, Scope: ScopeRead,
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{ProjectID: 1, Scope: ScopeRead}).SignedString([]byte(secret))
	otherKey, _ := Mint(strings.Repeat("z", 32), 1, []string{ScopeRead}, "x", time.Hour)
	// claims signs c with the right key, filling exp.
	claims := func(c jwt.RegisteredClaims) string {
		if c.ExpiresAt == nil {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{ProjectID: 1, Scope: ScopeRead, RegisteredClaims: c}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	now := jwt.NewNumericDate(time.Now())
	aud := jwt.ClaimStrings{DefaultAudience}
	other := func(p Policy, ttl time.Duration) string {
		tok, err := MintFor(secret, p, 1, []string{ScopeRead}, "x", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name   string
		header string
		scope  string
		want   error
	}{
		{"valid", "Bearer " + good, ScopeRead, nil},
		{"missing", "", ScopeRead, ErrUnauthenticated},
		{"not bearer", "Basic " + good, ScopeRead, ErrUnauthenticated},
		{"garbage", "Bearer abc.def.ghi", ScopeRead, ErrUnauthenticated},
		{"other key", "Bearer " + otherKey, ScopeRead, ErrUnauthenticated},
		{"alg none", "Bearer " + noneTok, ScopeRead, ErrUnauthenticated},
		{"no expiry", "Bearer " + noExp, ScopeRead, ErrUnauthenticated},
		{"expired", "Bearer " + mint(1, []string{ScopeRead}, -time.Hour), ScopeRead, ErrUnauthenticated},
		{"other project", "Bearer " + mint(2, []string{ScopeRead}, time.Hour), ScopeRead, ErrForbidden},
		{"wrong scope", "Bearer " + good, ScopeDelete, ErrForbidden},
		{"both scopes", "Bearer " + mint(1, []string{ScopeRead, ScopeDelete}, time.Hour), ScopeDelete, nil},
		{"replay:delete is not project:delete", "Bearer " + mint(1, []string{ScopeRead, ScopeDelete}, time.Hour), ScopeProjectDelete, ErrForbidden},
		{"project:delete", "Bearer " + mint(1, []string{ScopeProjectDelete}, time.Hour), ScopeProjectDelete, nil},
		{"no aud", "Bearer " + claims(jwt.RegisteredClaims{Issuer: DefaultIssuer, IssuedAt: now}), ScopeRead, ErrUnauthenticated},
		{"no iss", "Bearer " + claims(jwt.RegisteredClaims{Audience: aud, IssuedAt: now}), ScopeRead, ErrUnauthenticated},
		{"no iat", "Bearer " + claims(jwt.RegisteredClaims{Audience: aud, Issuer: DefaultIssuer}), ScopeRead, ErrUnauthenticated},
		{"all required claims", "Bearer " + claims(jwt.RegisteredClaims{Audience: aud, Issuer: DefaultIssuer, IssuedAt: now}), ScopeRead, nil},
		{"iat in the future", "Bearer " + claims(jwt.RegisteredClaims{Audience: aud, Issuer: DefaultIssuer, IssuedAt: jwt.NewNumericDate(time.Now().Add(time.Hour)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(2 * time.Hour))}), ScopeRead, ErrUnauthenticated},
		{"other audience", "Bearer " + other(Policy{Audience: "billing"}, time.Hour), ScopeRead, ErrUnauthenticated},
		{"other issuer", "Bearer " + other(Policy{Issuer: "someone-else"}, time.Hour), ScopeRead, ErrUnauthenticated},
		{"lifetime at the cap", "Bearer " + mint(1, []string{ScopeRead}, DefaultMaxLifetime), ScopeRead, nil},
		{"lifetime over the cap", "Bearer " + mint(1, []string{ScopeRead}, DefaultMaxLifetime+time.Minute), ScopeRead, ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			_, err := v.Authorize(r, 1, tc.scope)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestPolicy: a verifier with its own audience, issuer and lifetime cap
// accepts only tokens minted for them.
func TestPolicy(t *testing.T) {
	secret := strings.Repeat("k", 32)
	p := Policy{Audience: "replays-eu", Issuer: "backend", MaxLifetime: 10 * time.Minute}
	v := NewVerifier(secret, p)
	tests := []struct {
		name   string
		policy Policy
		ttl    time.Duration
		want   error
	}{
		{"matching", p, 10 * time.Minute, nil},
		{"defaults", Policy{}, time.Minute, ErrUnauthenticated},
		{"audience only", Policy{Audience: "replays-eu"}, time.Minute, ErrUnauthenticated},
		{"too long", p, 11 * time.Minute, ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := MintFor(secret, tc.policy, 1, []string{ScopeRead}, "x", tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			_, err = v.Authorize(r, 1, ScopeRead)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Error("error message holds the token")
			}
		})
	}
}
