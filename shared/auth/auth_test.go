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
	v := NewVerifier(secret)
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
