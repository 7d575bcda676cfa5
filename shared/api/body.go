package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/replayvault/replayvault/shared/derrors"
)

// ErrEmptyBody is DecodeJSON's answer to a request without a body; it is
// InvalidArgument, and callers for whom no body is fine check for it.
var ErrEmptyBody = fmt.Errorf("%w: request body is empty", derrors.InvalidArgument)

// DecodeJSON reads the request body into v: one JSON value of known fields
// only, at most limit bytes (TooLarge past it, InvalidArgument otherwise).
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF):
			return ErrEmptyBody
		case errors.As(err, &tooBig):
			return fmt.Errorf("%w: request body exceeds %d bytes", derrors.TooLarge, tooBig.Limit)
		}
		return fmt.Errorf("%w: request body: %v", derrors.InvalidArgument, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: request body: unexpected data after the JSON object", derrors.InvalidArgument)
	}
	return nil
}
