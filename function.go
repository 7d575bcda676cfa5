// Package replayvault registers the Cloud Functions of replayvault with
// functions-framework-go. The same source is deployed once per function with
// a different entry point (the Go buildpack only builds a function package
// at the module root). The package stays thin: it loads each function's
// config, builds its clients lazily on first request, hands every request
// over to functions/*, and on SIGTERM drains and closes what it built.
package replayvault

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/api"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/logging"
	"github.com/replayvault/replayvault/shared/telemetry"

	// Aliased: the package names would clash with the functions below.
	servefn "github.com/replayvault/replayvault/functions/serve"
	shredfn "github.com/replayvault/replayvault/functions/shred"
)

// tel is the instance's OpenTelemetry setup (OTEL_EXPORTER_OTLP_ENDPOINT
// selects the collector); Shutdown flushes it last.
var tel = telemetry.Nop()

func init() {
	logging.Setup()
	t, err := telemetry.Setup(context.Background(), telemetry.ConfigFromEnv("replayvault"))
	if err != nil {
		slog.Error("telemetry off", "error", err)
	} else {
		tel = t
	}
	// Pack is an HTTP function: it reads the Pub/Sub push body itself, in
	// one pass, where a CloudEvent function would have the framework
	// decode and re-encode it (with reflection) several times first.
	functions.HTTP("Pack", pack)
	functions.HTTP("Serve", serve)
	functions.HTTP("Shred", shred)
	functions.HTTP("Ingest", ingest)
	// functions-framework-go has no shutdown hook and the buildpack writes
	// main, so this is the one place that can drain on Cloud Run's SIGTERM.
	go shutdownOnSIGTERM()
}

var packFn = newLazy("pack", func(ctx context.Context) (*packer.Packer, func(), error) {
	cfg, err := config.LoadPack(ctx)
	if err != nil {
		return nil, nil, err
	}
	return packer.Build(ctx, cfg, tel)
})

// pack serves the Pack function: one Pub/Sub push per segment (see
// packer.Packer.ServeHTTP).
func pack(w http.ResponseWriter, r *http.Request) { serveHTTP(packFn, w, r) }

var serveFn = newLazy("serve", func(ctx context.Context) (http.Handler, func(), error) {
	cfg, err := config.LoadServe(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, closeFn, err := servefn.Build(ctx, cfg, tel)
	return s, closeFn, err
})

// serve serves the Serve function: the HTTP read path.
func serve(w http.ResponseWriter, r *http.Request) { serveHTTP(serveFn, w, r) }

var shredFn = newLazy("shred", func(ctx context.Context) (http.Handler, func(), error) {
	cfg, err := config.LoadShred(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, closeFn, err := shredfn.Build(ctx, cfg, tel)
	if err != nil {
		return nil, nil, err
	}
	return s.Handler(), closeFn, nil
})

// shred serves the Shred function: the delete API and the sweep.
func shred(w http.ResponseWriter, r *http.Request) { serveHTTP(shredFn, w, r) }

// serveHTTP hands r to the handler l builds, or answers 503 (with the
// detail only in the log) while it cannot be built or is shutting down.
func serveHTTP[H http.Handler](l *lazy[H], w http.ResponseWriter, r *http.Request) {
	h, done, err := l.acquire()
	if err != nil {
		api.WriteError(w, r, err, nil)
		return
	}
	defer done()
	h.ServeHTTP(w, r)
}
