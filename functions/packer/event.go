package packer

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/replayvault/replayvault/shared/derrors"
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
func (p *Packer) HandleEvent(ctx context.Context, e event.Event) error {
	var d pushData
	if err := e.DataAs(&d); err != nil {
		// Not a Pub/Sub message at all: it can never succeed, so reject
		// the raw event rather than let Pub/Sub retry it forever.
		if rerr := p.reject.Reject(ctx, map[string]string{"ce_id": e.ID(), "ce_type": e.Type()}, e.Data(), "bad_envelope"); rerr != nil {
			return cehttp.NewResult(http.StatusServiceUnavailable, "reject bad envelope: %v", rerr)
		}
		p.stats.Rejected.Add(1)
		slog.WarnContext(ctx, "event rejected", "ce_id", e.ID(), "reject_reason", "bad_envelope", "error", err)
		return nil
	}
	// Nothing here refers to the decoded message once Ingest has it, so
	// its payload is garbage as soon as Ingest has sealed it, not when the
	// batch has flushed.
	id := d.Message.ID
	m := Message{ID: id, Data: d.Message.Data, Attributes: d.Message.Attributes, EnvelopeBytes: len(e.Data())}
	d = pushData{}
	res, err := p.Ingest(ctx, m)
	if err != nil {
		status, _ := derrors.ToStatus(err)
		slog.WarnContext(ctx, "segment nacked", "message_id", id, "status", status, "error", err)
		return cehttp.NewResult(status, "%v", err)
	}
	slog.DebugContext(ctx, "segment acked", "message_id", id, "result", res.String())
	return nil
}
