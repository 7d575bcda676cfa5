package clients

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// ObservedStorage is Storage with tel's spans on every database statement
// (a pgx tracer) and every GCS request. A nil tel is Storage.
func ObservedStorage(ctx context.Context, db config.DB, st config.Storage, c *closer.Stack, tel *telemetry.Telemetry, opts ...option.ClientOption) (*store.DB, blob.Store, error) {
	if tel == nil {
		return Storage(ctx, db, st, c, opts...)
	}
	d, g, err := storage(ctx, db, st, c, []store.Option{store.WithTracer(telemetry.NewDBTracer(tel))}, opts...)
	if err != nil {
		return nil, nil, err
	}
	return d, blob.NewTraced(g, tel.Tracer), nil
}

// ObservedKMS is KMS with otelgrpc spans on the client's calls and every
// wrap and unwrap counted in m. A nil tel is KMS.
func ObservedKMS(ctx context.Context, cfg config.KMS, c *closer.Stack, tel *telemetry.Telemetry, m *telemetry.KMS) (crypt.Wrapper, error) {
	if tel == nil {
		return KMS(ctx, cfg, c)
	}
	h := otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(tel.TracerProvider),
		otelgrpc.WithMeterProvider(tel.MeterProvider),
		otelgrpc.WithPropagators(propagation.TraceContext{}))
	k, err := KMS(ctx, cfg, c, option.WithGRPCDialOption(grpc.WithStatsHandler(h)))
	if err != nil {
		return nil, err
	}
	return crypt.Counted(k, m.Call), nil
}
