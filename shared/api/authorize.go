package api

import (
	"errors"
	"net/http"

	"github.com/replayvault/replayvault/shared/auth"
)

// Authorize checks that the request's bearer token grants scope on the
// project named by the path value project, and returns the project and the
// token's claims. The token is checked before anything else: a missing or
// invalid token is 401 whatever the path says; a valid one then gets 400 for
// a malformed project id and 403 for another project or scope. Nothing else
// is looked at before this passes.
func Authorize(r *http.Request, v *auth.Verifier, project, scope string) (int64, *auth.Claims, error) {
	id, perr := ProjectID(project)
	claims, aerr := v.Authorize(r, id, scope)
	switch {
	case errors.Is(aerr, auth.ErrUnauthenticated):
		return 0, nil, aerr
	case perr != nil:
		return 0, nil, perr
	case aerr != nil:
		return 0, nil, aerr
	}
	return id, claims, nil
}
