package packer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/replayvault/replayvault/shared/derrors"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/telemetry"
)

// pushData is the body of a Pub/Sub push request, which is also the data
// of the google.cloud.pubsub.topic.v1.messagePublished CloudEvent that
// Eventarc delivers in binary mode.
type pushData struct {
	Message struct {
		ID         string            `json:"messageId"`
		Data       []byte            `json:"data"`
		Attributes map[string]string `json:"attributes"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// ServeHTTP is the Pack function: one request per segment, answered 200
// (ack) once the segment is durable, duplicate, shredded or rejected, and
// with a status Pub/Sub (or Ingest) redelivers on (429, 5xx) otherwise.
//
// It takes the body a push subscription sends,
// {"message":{"data":…,"attributes":…,"messageId":…},"subscription":…},
// and the same body with ce-* headers (a messagePublished CloudEvent in
// binary mode, as Eventarc delivers it), and decodes it itself in one pass
// (DecodePush). A body that is no push at all can never succeed: it is
// published to the reject topic as bad_envelope and acked, as an invalid
// segment is. Ingest's direct deliveries come in the direct form instead
// (direct.ContentType, see direct.go): a malformed one is answered 400.
func (p *Packer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "Pack takes Pub/Sub push requests (POST) and Ingest's direct ones (PUT)", http.StatusMethodNotAllowed)
		return
	}
	f, ok := requestForm(r.Header.Get("Content-Type"))
	if !ok || r.Method == http.MethodPut && f != formDirect {
		// PUT is the direct form's method (see direct.go).
		slog.WarnContext(ctx, "request refused", "status", http.StatusUnsupportedMediaType, "error", "unknown replayvault content type, or PUT of another form")
		http.Error(w, http.StatusText(http.StatusUnsupportedMediaType), http.StatusUnsupportedMediaType)
		return
	}
	// Reserve what the request will hold before reading a byte of it: its
	// body and (for a push) the payload decoded from it. Past
	// MAX_BUFFER_BYTES the answer is 429 at once, so a burst of large
	// requests is refused before it costs memory (net/http drains or drops
	// the unread body).
	hold, limit, tooLarge := pushHold(r.ContentLength, p.cfg.Limits), maxPush(p.cfg.Limits), ErrPushTooLarge
	if f == formDirect {
		hold, limit, tooLarge = directHold(r.ContentLength, p.cfg.Limits), maxDirect(p.cfg.Limits), ErrDirectTooLarge
	}
	h, ok := p.hold(hold)
	if !ok {
		p.metrics.Received(ctx)
		err := p.overloaded(ctx, hold)
		slog.DebugContext(ctx, "push refused", "status", http.StatusTooManyRequests, "error", err)
		answer(w, http.StatusTooManyRequests)
		return
	}
	defer h.release()
	body, err := readBody(r, limit, tooLarge, pushBuffer)
	if err != nil {
		// Not from Pub/Sub, whose messages are smaller: a status, no reject.
		status, _ := derrors.ToStatus(err)
		slog.WarnContext(ctx, "push refused", "status", status, "error", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	var m Message
	var derr error
	if f == formDirect {
		if m, err = DecodeDirect(body); err != nil {
			// Nothing is settled: Ingest publishes the message instead
			// (see direct.go). err names positions, never body bytes.
			releasePushBuffer(body)
			slog.WarnContext(ctx, "direct request refused", "status", http.StatusBadRequest, "error", err)
			http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
			return
		}
		// The payload is the body: its buffer goes back once ingest is
		// done with the payload (see Message.release).
		m.release = func() { releasePushBuffer(body) }
	} else if m, derr = DecodePush(body); derr == nil {
		// Nothing decoded refers to the body (the payload and strings are
		// copies): its buffer goes back at once. A bad envelope keeps it,
		// for the reject topic.
		releasePushBuffer(body)
	}
	ctx, span := p.tracer.Start(telemetry.FromPush(telemetry.FromHTTP(ctx, r.Header), m.Attributes, ceTrace(r.Header)), "pack.segment",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.message.id", m.ID)))
	result := "error"
	status := http.StatusOK
	defer func() {
		p.metrics.Acked(ctx, result, time.Since(start))
		span.SetAttributes(attribute.String("replayvault.result", result))
		if status >= 300 {
			span.SetStatus(codes.Error, "nacked")
		}
		span.End()
	}()
	if derr != nil {
		status = p.rejectEnvelope(ctx, r.Header, body)
		if status < 300 {
			result = Rejected.String()
		}
		answer(w, status)
		return
	}
	p.metrics.Received(ctx)
	// What the request holds now: the body and the decoded payload
	// (smaller than reserved unless the length was unknown); a direct
	// body's buffer is the payload's too.
	n := int64(m.EnvelopeBytes) + int64(len(m.Data))
	if f == formDirect {
		n = int64(m.EnvelopeBytes)
	}
	var res Result
	if h.resize(n) {
		res, err = p.ingest(ctx, m, h)
	} else {
		err = p.overloaded(ctx, n)
	}
	if err != nil {
		status, _ = derrors.ToStatus(err)
		slog.WarnContext(ctx, "segment nacked", "message_id", m.ID, "status", status, "error", err)
		answer(w, status)
		return
	}
	result = res.String()
	// Debug: at info, a line per segment costs more CPU than the rest of
	// the request's bookkeeping; each flush logs its batch at info.
	slog.DebugContext(ctx, "segment acked", "message_id", m.ID, "result", result)
	answer(w, status)
}

// rejectEnvelope sends a body that is no push to the reject topic and
// returns the status to answer.
func (p *Packer) rejectEnvelope(ctx context.Context, h http.Header, body []byte) int {
	attrs := map[string]string{}
	for k, hk := range map[string]string{"ce_id": "Ce-Id", "ce_type": "Ce-Type"} {
		if v := h.Get(hk); v != "" {
			attrs[k] = v
		}
	}
	if err := p.reject.Reject(ctx, attrs, body, "bad_envelope"); err != nil {
		slog.WarnContext(ctx, "bad envelope nacked", "error", err)
		return http.StatusServiceUnavailable
	}
	p.stats.Rejected.Add(1)
	p.metrics.Received(ctx)
	p.metrics.Rejected(ctx, "bad_envelope")
	// errEnvelope says no more than that: the body is payload, not for logs.
	slog.WarnContext(ctx, "push rejected", "ce_id", attrs["ce_id"], "reject_reason", "bad_envelope", "error", errEnvelope)
	return http.StatusOK
}

// answer writes a status with no body: Pub/Sub reads only the status, and
// an error's detail (which may name a segment) stays in the log.
func answer(w http.ResponseWriter, status int) {
	if status >= 300 {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.WriteHeader(status)
}

// ceTrace returns the trace context of a binary-mode CloudEvent's
// ce-traceparent and ce-tracestate headers, as telemetry.FromPush takes
// it; nil without.
func ceTrace(h http.Header) map[string]any {
	tp := h.Get("Ce-Traceparent")
	if tp == "" {
		return nil
	}
	return map[string]any{"traceparent": tp, "tracestate": h.Get("Ce-Tracestate")}
}

// maxPush is the largest push body Pack reads: the base64 of the largest
// payload plus the envelope around it.
func maxPush(lim segment.Limits) int64 {
	maxPayload := lim.MaxPayload
	if maxPayload <= 0 {
		maxPayload = segment.DefaultMaxPayload
	}
	return (maxPayload+2)/3*4 + envelopeSlack
}

// envelopeSlack is what a push body holds besides the base64 payload: the
// message id, attributes, publish time and subscription name (Pub/Sub
// caps attributes at 100 pairs of 256 + 1024 bytes).
const envelopeSlack = 256 << 10

// ErrPushTooLarge refuses a request body no Pub/Sub push can have: larger
// than the payload limit in base64 plus the envelope.
var ErrPushTooLarge = fmt.Errorf("push body too large: %w", derrors.TooLarge)

// pushHold is the buffer space a push request of contentLength bytes
// (-1: unknown) will hold: its body, and the payload decoded from the
// body's base64 (at most 3/4 of it). Unknown lengths reserve the largest
// push ReadPush accepts.
func pushHold(contentLength int64, lim segment.Limits) int64 {
	n := contentLength
	if n < 0 || n > maxPush(lim) {
		n = maxPush(lim)
	}
	// The body's buffer may be a pooled one of its size class.
	return bufferSize(n) + n/4*3
}

// ReadPush reads the body of a push request, refusing one larger than a
// payload within lim could make (ErrPushTooLarge). The body is read into
// one buffer of the announced size.
func ReadPush(r *http.Request, lim segment.Limits) ([]byte, error) {
	return readBody(r, maxPush(lim), ErrPushTooLarge, func(n int64) []byte { return make([]byte, n) })
}

// readBody reads a request body of at most limit bytes (tooLarge past it),
// into a buffer from buffer when its length is known.
func readBody(r *http.Request, limit int64, tooLarge error, buffer func(n int64) []byte) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	if r.ContentLength >= 0 {
		body := buffer(r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, fmt.Errorf("read request body: %w: %w", derrors.InvalidArgument, err)
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read request body: %w: %w", derrors.InvalidArgument, err)
	case int64(len(body)) > limit:
		return nil, tooLarge
	}
	return body, nil
}

// DecodePush returns the Pub/Sub message of a push request body; an error
// means body is no push at all. It decodes without reflection, the base64
// payload in one pass (decodePush). The benchmark's naive baseline decodes
// with it too, so both designs pay the same for the envelope.
func DecodePush(body []byte) (Message, error) {
	var d pushData
	if len(body) == 0 {
		return Message{}, errEnvelope
	}
	if err := decodePush(body, &d); err != nil {
		return Message{}, err
	}
	return Message{ID: d.Message.ID, Data: d.Message.Data, Attributes: d.Message.Attributes, EnvelopeBytes: len(body)}, nil
}

// Push bodies are read into pooled buffers of a few size classes (powers
// of two from 16 KiB to 256 KiB, where nearly all pushes fall) and given
// back as soon as the envelope is decoded: at hundreds of pushes a second
// a fresh, zeroed buffer per body was a third of Pack's allocation, and so
// of its GC. Larger bodies get a buffer of their own. pushHold reserves
// the class's size, so MAX_BUFFER_BYTES still bounds what requests hold.
const (
	minBufferClass = 14 // 16 KiB
	maxBufferClass = 18 // 256 KiB
)

var pushBuffers [maxBufferClass - minBufferClass + 1]sync.Pool

// bufferSize is the size of the buffer a body of n bytes is read into:
// its class's, or n past the largest class.
func bufferSize(n int64) int64 {
	if n > 1<<maxBufferClass {
		return n
	}
	return 1 << bufferClass(n)
}

// bufferClass is the smallest class that holds n bytes (n ≤ 256 KiB).
func bufferClass(n int64) int {
	c := minBufferClass
	for int64(1)<<c < n {
		c++
	}
	return c
}

// pushBuffer returns a buffer of length n, pooled if n fits a class.
func pushBuffer(n int64) []byte {
	if n > 1<<maxBufferClass {
		return make([]byte, n)
	}
	c := bufferClass(n)
	if b, ok := pushBuffers[c-minBufferClass].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<c)
}

// releasePushBuffer gives a buffer from pushBuffer back to its pool; the
// caller must hold no reference into it any more.
func releasePushBuffer(b []byte) {
	n := int64(cap(b))
	if n < 1<<minBufferClass || n > 1<<maxBufferClass || n&(n-1) != 0 {
		return
	}
	b = b[:0]
	pushBuffers[bufferClass(n)-minBufferClass].Put(&b)
}
