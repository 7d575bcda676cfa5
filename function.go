// Package replayvault registers the three Cloud Functions of replayvault with
// functions-framework-go. The same source is deployed three times with
// different entry points (the Go buildpack only builds a function package at
// the module root). The package stays thin: it loads config, builds clients
// lazily on first request, and hands over to functions/*.
package replayvault

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/logging"
)

func init() {
	logging.Setup()
	functions.CloudEvent("Pack", pack)
	functions.HTTP("Serve", serve)
	functions.HTTP("Shred", shred)
}

// buildTimeout bounds building one function's clients.
const buildTimeout = 30 * time.Second

// lazy builds a value on first use. Unlike sync.Once it remembers only
// success: a failed build is retried on the next request, and its error is
// returned to every request until then.
type lazy[T any] struct {
	mu    sync.Mutex
	v     T
	ok    bool
	build func(context.Context) (T, error)
}

func (l *lazy[T]) get() (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.v, nil
	}
	// Clients outlive the request that happened to build them.
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	v, err := l.build(ctx)
	if err != nil {
		return v, err
	}
	l.v, l.ok = v, true
	return v, nil
}

var packFn = &lazy[*packer.Packer]{build: func(ctx context.Context) (*packer.Packer, error) {
	cfg, err := config.LoadPack(ctx)
	if err != nil {
		return nil, err
	}
	p, _, err := packer.Build(ctx, cfg)
	return p, err
}}

func pack(ctx context.Context, e event.Event) error {
	p, err := packFn.get()
	if err != nil {
		return cehttp.NewResult(http.StatusServiceUnavailable, "pack unavailable: %v", err)
	}
	return p.HandleEvent(ctx, e)
}
