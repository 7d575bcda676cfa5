package replayvault

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/config"

	// Aliased: the package name would clash with the serve function below.
	servefn "github.com/replayvault/replayvault/functions/serve"
)

var serveHandler = &lazy[http.Handler]{build: func(ctx context.Context) (http.Handler, error) {
	cfg, err := config.LoadServe(ctx)
	if err != nil {
		return nil, err
	}
	s, _, err := servefn.Build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}}

// serve serves the Serve function: the HTTP read path.
func serve(w http.ResponseWriter, r *http.Request) {
	h, err := serveHandler.get()
	if err != nil {
		// The detail (config or connection error) stays in the log.
		slog.ErrorContext(r.Context(), "serve unavailable", "error", err)
		w.Header().Set("Retry-After", "5")
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error": map[string]any{"code": "unavailable", "message": "serve is unavailable; retry later"},
		})
		return
	}
	h.ServeHTTP(w, r)
}
