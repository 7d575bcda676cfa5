package replayvault

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/config"

	// Aliased: the package name would clash with the shred function below.
	shredfn "github.com/replayvault/replayvault/functions/shred"
)

var shredHandler = &lazy[http.Handler]{build: func(ctx context.Context) (http.Handler, error) {
	cfg, err := config.LoadShred(ctx)
	if err != nil {
		return nil, err
	}
	s, _, err := shredfn.Build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s.Handler(), nil
}}

// shred serves the Shred function: the delete API and the sweep.
func shred(w http.ResponseWriter, r *http.Request) {
	h, err := shredHandler.get()
	if err != nil {
		// The detail (config or connection error) stays in the log.
		slog.ErrorContext(r.Context(), "shred unavailable", "error", err)
		w.Header().Set("Retry-After", "5")
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error": map[string]any{"code": "unavailable", "message": "shred is unavailable; retry later"},
		})
		return
	}
	h.ServeHTTP(w, r)
}
