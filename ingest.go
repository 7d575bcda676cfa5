package replayvault

import (
	"context"
	"net/http"

	"github.com/replayvault/replayvault/shared/config"

	// Aliased: the package name would clash with the ingest function below.
	ingestfn "github.com/replayvault/replayvault/functions/ingest"
)

var ingestFn = newLazy("ingest", func(ctx context.Context) (http.Handler, func(), error) {
	cfg, err := config.LoadIngest(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, closeFn, err := ingestfn.Build(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return s, closeFn, nil
})

// ingest serves the Ingest function: the public front door of the SDKs.
func ingest(w http.ResponseWriter, r *http.Request) { serveHTTP(ingestFn, w, r) }
