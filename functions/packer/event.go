package packer

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// pushData is the data of a google.cloud.pubsub.topic.v1.messagePublished
// CloudEvent (Eventarc), which is also what functions-framework makes of a
// plain Pub/Sub push request.
type pushData struct {
	Message struct {
		ID         string            `json:"messageId"`
		Data       []byte            `json:"data"`
		Attributes map[string]string `json:"attributes"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// HandleEvent is the Pack CloudEvent function. It returns nil (2xx: ack)
// once the segment is durable, duplicate, shredded or rejected, and an
// error carrying an HTTP status (nack: Pub/Sub redelivers) otherwise.
func (p *Packer) HandleEvent(ctx context.Context, e event.Event) (err error) {
	start := time.Now()
	m, derr := DecodeEvent(e)
	ctx, span := p.tracer.Start(telemetry.FromPush(ctx, m.Attributes, e.Extensions()), "pack.segment",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.message.id", m.ID)))
	result := "error"
	defer func() {
		p.metrics.Acked(ctx, result, time.Since(start))
		span.SetAttributes(attribute.String("replayvault.result", result))
		if err != nil {
			span.SetStatus(codes.Error, "nacked")
		}
		span.End()
	}()
	if derr != nil {
		// Not a Pub/Sub message at all: it can never succeed, so reject
		// the raw event rather than let Pub/Sub retry it forever.
		if rerr := p.reject.Reject(ctx, map[string]string{"ce_id": e.ID(), "ce_type": e.Type()}, e.Data(), "bad_envelope"); rerr != nil {
			return cehttp.NewResult(http.StatusServiceUnavailable, "reject bad envelope: %v", rerr)
		}
		p.stats.Rejected.Add(1)
		p.metrics.Received(ctx)
		p.metrics.Rejected(ctx, "bad_envelope")
		result = Rejected.String()
		// err says no more than that: the body is payload, not for logs.
		slog.WarnContext(ctx, "event rejected", "ce_id", e.ID(), "reject_reason", "bad_envelope", "error", errEnvelope)
		return nil
	}
	res, err := p.Ingest(ctx, m)
	if err != nil {
		status, _ := derrors.ToStatus(err)
		slog.WarnContext(ctx, "segment nacked", "message_id", m.ID, "status", status, "error", err)
		return cehttp.NewResult(status, "%v", err)
	}
	result = res.String()
	// One line per request, joined to its trace and to its batch's flush
	// line; LOG_LEVEL=warn drops it where the log volume matters more.
	slog.InfoContext(ctx, "segment acked", "message_id", m.ID, "result", result)
	return nil
}

// DecodeEvent returns the Pub/Sub message a push CloudEvent carries; an
// error means e is no push at all. (The benchmark's naive baseline decodes
// with it too, so both designs pay the same for the envelope.)
func DecodeEvent(e event.Event) (Message, error) {
	var d pushData
	if err := decodeEvent(e, &d); err != nil {
		return Message{}, err
	}
	return Message{ID: d.Message.ID, Data: d.Message.Data, Attributes: d.Message.Attributes, EnvelopeBytes: len(e.Data())}, nil
}

// decodeEvent reads the push envelope of e. The JSON that Pub/Sub and
// Eventarc send is read by decodePush; anything else (an older CloudEvents
// version, another media type) by the SDK.
func decodeEvent(e event.Event, d *pushData) error {
	if len(e.Data()) == 0 {
		return nil // as DataAs: no data, nothing to decode
	}
	switch e.DataMediaType() {
	case "", "application/json", "text/json":
		if e.SpecVersion() == event.CloudEventsVersionV1 {
			return decodePush(e.Data(), d)
		}
	}
	return e.DataAs(d)
}
