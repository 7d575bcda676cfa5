// Package derrors defines the classes of failure every function shares and
// maps them to HTTP status codes in one place (golang/pkgsite's derrors is
// the model). Packages wrap a class into their own errors with %w, for
// example
//
//	var ErrUnavailable = fmt.Errorf("database %w", derrors.Unavailable)
//
// and handlers answer with ToStatus, so a KMS outage is 503 in Pack and in
// Serve alike.
package derrors

//lint:file-ignore ST1012 the classes are named as pkgsite names them: derrors.NotFound reads as what it is.

import (
	"context"
	"errors"
	"net/http"
)

// The classes. Each maps to one HTTP status.
var (
	// InvalidArgument: a malformed id, range, body or parameter (400).
	InvalidArgument = errors.New("invalid argument")
	// Unauthenticated: no credential, or a malformed, badly signed or
	// expired one (401).
	Unauthenticated = errors.New("unauthenticated")
	// PermissionDenied: a valid credential for another project or scope (403).
	PermissionDenied = errors.New("permission denied")
	// NotFound: no such resource (404).
	NotFound = errors.New("not found")
	// MethodNotAllowed: the path exists but not with this method (405).
	MethodNotAllowed = errors.New("method not allowed")
	// Gone: the resource was shredded (410).
	Gone = errors.New("gone")
	// TooLarge: a request body over its limit (413).
	TooLarge = errors.New("too large")
	// Overloaded: the instance holds all it may; the caller should back off
	// and retry (429).
	Overloaded = errors.New("overloaded")
	// Integrity: stored data failed authentication; never retried (500).
	Integrity = errors.New("integrity check failed")
	// StorageUnavailable: the object store failed or lost an object (502).
	StorageUnavailable = errors.New("storage unavailable")
	// Unavailable: a dependency (database, KMS, Pub/Sub) is unreachable or
	// the instance is shutting down; retry later (503).
	Unavailable = errors.New("unavailable")
)

// classes lists every class with its status and stable code, in the order
// ToStatus tests them: the first class an error wraps decides.
var classes = []struct {
	err    error
	status int
	code   string
}{
	{InvalidArgument, http.StatusBadRequest, "bad_request"},
	{Unauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{PermissionDenied, http.StatusForbidden, "forbidden"},
	{NotFound, http.StatusNotFound, "not_found"},
	{MethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed"},
	{Gone, http.StatusGone, "gone"},
	{TooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{Overloaded, http.StatusTooManyRequests, "overloaded"},
	{Integrity, http.StatusInternalServerError, "integrity"},
	{StorageUnavailable, http.StatusBadGateway, "storage_unavailable"},
	{Unavailable, http.StatusServiceUnavailable, "unavailable"},
}

// ToStatus returns the HTTP status for err and a stable code for response
// bodies and logs. A deadline or cancellation counts as Unavailable; any
// other unclassified error is 500 "internal".
func ToStatus(err error) (int, string) {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return http.StatusServiceUnavailable, "unavailable"
	}
	return http.StatusInternalServerError, "internal"
}

// Retryable reports whether a request that failed with status may succeed
// when sent again later: such answers carry Retry-After.
func Retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
		status == http.StatusServiceUnavailable
}
