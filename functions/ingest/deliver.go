package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/semaphore"
	"google.golang.org/api/idtoken"

	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/direct"
)

// Direct delivers segment messages straight to Pack, in Pack's direct form
// (package direct: the payload as the body after a block with the message's
// id and attributes, where a push would carry it in base64 inside JSON),
// so that the common case pays no Pub/Sub
// throughput (published and again delivered: about half the 90-day cost of a
// segment, see the README's cost section). Pack answers 2xx only once the
// segment is durable (stored, duplicate, shredded or rejected to the reject
// topic), exactly as it answers a push; any other outcome — a timeout, 429
// (its buffer is full), 5xx, 4xx, a broken connection — makes the Publisher
// spill that message to the segments topic as before. The SDK is answered
// after one of the two succeeded, so nothing acknowledged is lost. When Pack
// stored a segment but its answer was lost, the spilled copy reaches Pack
// again and is dropped as a duplicate (same segment identity), or acked and
// discarded if the replay was shredded meanwhile.
type Direct struct {
	client  *http.Client
	url     string // Pack's URL + the topic's path (see NewDirect)
	timeout time.Duration
	// held bounds the payload bytes that requests hold while they wait
	// for Pack (about FLUSH_AGE each): a segment that does not fit goes to
	// Pub/Sub at once, so raising Ingest's concurrency for the wait cannot
	// run an instance out of memory.
	held *semaphore.Weighted

	delivered, spilled atomic.Int64
}

// NewDirect returns a Direct to Pack at packURL. The request path names the
// segments topic (projects/P/topics/T), as the push subscription's endpoint
// does, so both kinds of request read alike in Pack's request logs (Pack
// itself does not read the path). client carries Pack's authentication
// (PackClient); timeout bounds one delivery and should exceed Pack's
// FLUSH_AGE plus a flush, or most deliveries spill. At most holdBytes of
// payload wait for Pack at once; the rest is published straight away.
func NewDirect(client *http.Client, packURL, project, topic string, timeout time.Duration, holdBytes int64) *Direct {
	if !strings.HasPrefix(topic, "projects/") {
		topic = "projects/" + project + "/topics/" + topic
	}
	return &Direct{
		client:  client,
		url:     strings.TrimRight(packURL, "/") + "/" + topic,
		timeout: timeout,
		held:    semaphore.NewWeighted(holdBytes),
	}
}

// DirectStats counts what Direct did: segments Pack stored (or settled)
// directly and segments handed to Pub/Sub instead.
type DirectStats struct{ Delivered, Spilled int64 }

// Stats returns the counts so far.
func (d *Direct) Stats() DirectStats {
	return DirectStats{Delivered: d.delivered.Load(), Spilled: d.spilled.Load()}
}

// PackClient returns the HTTP client Ingest calls Pack with. Over https
// (Cloud Run) every request carries an ID token for Pack's URL as audience,
// from the metadata server in production, which Pack's Cloud Run IAM checks
// (Ingest's service account holds roles/run.invoker on Pack). Over plain http
// — the dev stack and tests, which config allows only to a loopback host —
// it carries none: a token must never cross plain HTTP. conns is how many
// connections to keep open to Pack (Ingest's concurrency: each request
// waits about FLUSH_AGE on one).
func PackClient(ctx context.Context, packURL string, conns int) (*http.Client, error) {
	return packClient(ctx, packURL, &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	})
}

// packClient is PackClient over the transport base.
func packClient(ctx context.Context, packURL string, base http.RoundTripper) (*http.Client, error) {
	u, err := url.Parse(packURL)
	if err != nil {
		return nil, fmt.Errorf("PACK_URL: %w", err)
	}
	if u.Scheme != "https" {
		return &http.Client{Transport: base}, nil
	}
	audience := u.Scheme + "://" + u.Host
	// The source may keep ctx for its refreshes; it outlives the build.
	ts, err := idtoken.NewTokenSource(context.WithoutCancel(ctx), audience)
	if err != nil {
		return nil, fmt.Errorf("ID token source for Pack: %w", err)
	}
	return &http.Client{Transport: &oauth2.Transport{Source: ts, Base: base}}, nil
}

// directFrom builds the Direct that cfg's PACK_URL asks for; nil when it is
// empty (publish everything).
func directFrom(ctx context.Context, cfg *config.Ingest, c *closer.Stack) (*Direct, error) {
	if cfg.PackURL == "" {
		return nil, nil
	}
	hc, err := PackClient(ctx, cfg.PackURL, directConns)
	if err != nil {
		return nil, err
	}
	c.Add(hc.CloseIdleConnections)
	return NewDirect(hc, cfg.PackURL, cfg.GoogleCloudProject, cfg.SegmentTopic, cfg.PackTimeout, cfg.PackHoldBytes), nil
}

// directConns is how many idle connections to Pack an instance keeps: a
// direct delivery holds one for about FLUSH_AGE.
const directConns = 256

// DeliverFirst makes p try Pack directly before publishing: only the
// messages Pack did not take are published (d nil: all are). p is returned.
func (p *Publisher) DeliverFirst(d *Direct) *Publisher {
	p.direct = d
	return p
}

// directParallel bounds the deliveries one request makes at once: a
// posthog batch can carry many sessions' segments.
const directParallel = 16

// deliverAll sends msgs to Pack, directParallel at a time, and returns those
// Pack did not take, to be published instead.
func (d *Direct) deliverAll(ctx context.Context, msgs []message) []message {
	failed := make([]bool, len(msgs))
	slots := make(chan struct{}, directParallel)
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := d.deliver(ctx, m); err != nil {
				failed[i] = true
				// Spilling is safe and expected now and then (a full
				// buffer, a scale-up); many in a row say PACK_URL, IAM or
				// PACK_TIMEOUT are wrong. err holds no payload.
				slog.WarnContext(ctx, "segment spilled to Pub/Sub", "error", err)
			}
		}()
	}
	wg.Wait()
	var rest []message
	for i, m := range msgs {
		if failed[i] {
			rest = append(rest, m)
		}
	}
	d.delivered.Add(int64(len(msgs) - len(rest)))
	d.spilled.Add(int64(len(rest)))
	return rest
}

// deliver sends m to Pack in the direct form and returns nil once Pack
// answered 2xx.
func (d *Direct) deliver(ctx context.Context, m message) error {
	if !d.held.TryAcquire(int64(len(m.data))) {
		return errHoldFull
	}
	defer d.held.Release(int64(len(m.data)))
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	body, err := d.directBody(m)
	if err != nil {
		return err
	}
	// PUT: a Pack from before the direct form answers 405 and the segment
	// is published (packer/direct.go).
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, d.url, body.reader())
	if err != nil {
		return fmt.Errorf("direct delivery: %w", err)
	}
	req.ContentLength = body.size()
	// A connection that died idle may be retried by the transport: Pack
	// settles a repeat as a duplicate.
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body.reader()), nil }
	req.Header.Set("Content-Type", direct.ContentType)
	resp, err := d.client.Do(req)
	if err != nil {
		// The URL and the cause only; url.Error never holds the body.
		return fmt.Errorf("direct delivery: %w", err)
	}
	defer resp.Body.Close()
	// Read a little so the connection can be reused; Pack's error text is
	// for its own log, not ours.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("direct delivery: Pack answered %d", resp.StatusCode)
	}
	return nil
}

// errHoldFull: the instance's requests already hold PACK_HOLD_BYTES while
// waiting for Pack.
var errHoldFull = errors.New("direct delivery: PACK_HOLD_BYTES are waiting for Pack already")

// directBody is the body of Pack's direct form carrying m (package
// direct): a block with a fresh message id and m's attributes, then the
// payload as it is, read from m's own bytes (not copied).
type directBody struct {
	block, data []byte
}

func (d *Direct) directBody(m message) (*directBody, error) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	block, err := direct.AppendBlock(nil, "direct-"+hex.EncodeToString(id[:]), m.attrs)
	if err != nil {
		// The attributes Ingest sets are far within the block's limits;
		// the error names sizes, not contents.
		return nil, fmt.Errorf("direct delivery: %w", err)
	}
	return &directBody{block: block, data: m.data}, nil
}

func (b *directBody) size() int64 { return int64(len(b.block) + len(b.data)) }

func (b *directBody) reader() io.Reader {
	return io.MultiReader(bytes.NewReader(b.block), bytes.NewReader(b.data))
}
