package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	"github.com/google/uuid"
	"google.golang.org/api/option"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/clients"
	"github.com/replayvault/replayvault/shared/closer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/direct"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// NaiveSchema is the naive baseline's table: one row per segment naming
// the segment's own object, with the segment's data key wrapped directly by
// KMS. The benchmark creates it in the naive design's database.
const NaiveSchema = `
CREATE TABLE IF NOT EXISTS naive_segments (
    project_id        bigint NOT NULL,
    replay_id         uuid NOT NULL,
    type              text NOT NULL,
    segment_id        int NOT NULL,
    object            text NOT NULL,
    encoding          text NOT NULL,
    raw_size          bigint NOT NULL,
    event_count       int NOT NULL,
    first_ts          bigint NOT NULL,
    last_ts           bigint NOT NULL,
    has_full_snapshot boolean NOT NULL,
    key_id            uuid NOT NULL, -- the KMS-wrapped key's id, its KMS AAD
    kms_wrapped_key   bytea NOT NULL,
    wrapped_dek       bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (project_id, replay_id, type, segment_id)
)`

// Naive is the baseline the packer is measured against: the same
// validation, compression and sealing as Pack, but the storage design most
// systems start with. Each segment is acked once it has its own GCS object
// (one class A operation), its own key wrapped by one KMS Encrypt call, and
// its own single-row, single-statement transaction. Requests run fully
// concurrently; nothing is batched.
type Naive struct {
	db     *store.DB
	blobs  blob.Store
	kms    crypt.Wrapper
	reject packer.Rejecter
	limits segment.Limits

	Stored, Duplicate, Rejected atomic.Int64
}

// NewNaive returns the baseline over its dependencies.
func NewNaive(db *store.DB, blobs blob.Store, kms crypt.Wrapper, reject packer.Rejecter, limits segment.Limits) *Naive {
	return &Naive{db: db, blobs: blobs, kms: kms, reject: reject, limits: limits}
}

// BuildNaive connects the dependencies named by the Pack configuration (the
// baseline runs with the same environment as Pack) and returns the baseline
// and a function that releases them. Its GCS client keeps as many idle
// connections as the instance has concurrent requests: with the library's
// default of 100, a thousand concurrent uploads over plain HTTP/1.1 to the
// stand-in would open and close connections all the time, a handicap the
// real service's HTTP/2 does not have.
func BuildNaive(ctx context.Context, cfg *config.Pack) (_ *Naive, _ func(), err error) {
	var c closer.Stack
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxConcurrency + 16,
		MaxIdleConnsPerHost: cfg.MaxConcurrency + 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
	db, blobs, err := clients.Storage(ctx, cfg.DB, cfg.Storage, &c, option.WithHTTPClient(hc))
	if err != nil {
		return nil, nil, err
	}
	wrapper, err := clients.KMS(ctx, cfg.KMS, &c)
	if err != nil {
		return nil, nil, err
	}
	pub, err := clients.Publisher(ctx, cfg.GoogleCloudProject, cfg.RejectTopic, &c)
	if err != nil {
		return nil, nil, err
	}
	rej := packer.NewPubSubRejecter(pub, cfg.PubSubTimeout)
	n := NewNaive(db, blobs, wrapper, rej, segment.Limits{MaxDecompressed: cfg.MaxDecompressedBytes})
	return n, c.Close, nil
}

// ServeHTTP is the baseline's HTTP function, with Pack's contract and
// Pack's way of taking each form of request (packer.ReadDirect and
// packer.DecodeDirect for Ingest's direct form, packer.ReadPush and
// packer.DecodePush for a Pub/Sub push), so both designs pay the same for
// the envelope: 200 (ack) once the segment is durable or rejected, 503
// (nack) otherwise; a malformed direct request is 400, as in Pack.
func (n *Naive) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Header.Get("Content-Type") == direct.ContentType {
		body, err := packer.ReadDirect(r, n.limits)
		if err != nil {
			http.Error(w, http.StatusText(http.StatusRequestEntityTooLarge), http.StatusRequestEntityTooLarge)
			return
		}
		m, err := packer.DecodeDirect(body)
		if err != nil {
			http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
			return
		}
		if err := n.ingest(ctx, m.Data, m.Attributes); err != nil {
			slog.WarnContext(ctx, "naive: segment nacked", "message_id", m.ID, "error", err)
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		}
		return
	}
	body, err := packer.ReadPush(r, n.limits)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusRequestEntityTooLarge), http.StatusRequestEntityTooLarge)
		return
	}
	m, err := packer.DecodePush(body)
	if err != nil {
		if rerr := n.reject.Reject(ctx, map[string]string{"ce_id": r.Header.Get("Ce-Id")}, body, "bad_envelope"); rerr != nil {
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
			return
		}
		n.Rejected.Add(1)
		return
	}
	if err := n.ingest(ctx, m.Data, m.Attributes); err != nil {
		slog.WarnContext(ctx, "naive: segment nacked", "message_id", m.ID, "error", err)
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
	}
}

func (n *Naive) ingest(ctx context.Context, data []byte, attrs map[string]string) error {
	a, err := segment.ParseAttributes(attrs)
	var info segment.Info
	if err == nil {
		info, err = segment.Validate(data, n.limits)
	}
	if reason, ok := segment.Reason(err); ok {
		if err := n.reject.Reject(ctx, attrs, data, reason); err != nil {
			return err
		}
		n.Rejected.Add(1)
		return nil
	}
	if err != nil {
		return err
	}
	stored, enc := data, info.Encoding
	if enc == segment.Plain {
		stored, enc = segment.Compress(data), segment.Zstd
	}
	// The segment's own key, wrapped by KMS (one Encrypt call); Seal then
	// protects the data with a fresh key under it, exactly as Pack does
	// under its shared KEK.
	key, err := crypt.NewKEK(ctx, n.kms)
	if err != nil {
		return fmt.Errorf("naive: seal %s: %w", a.ID, err)
	}
	sealed, err := crypt.Seal(key, a.ID.AAD(), stored)
	if err != nil {
		return fmt.Errorf("naive: seal %s: %w", a.ID, err)
	}
	now := time.Now().UTC()
	object := fmt.Sprintf("n%d/%04d/%02d/%02d/%s", a.RetentionDays, now.Year(), now.Month(), now.Day(), uuid.New())
	if err := n.blobs.Create(ctx, object, sealed.Ciphertext); err != nil {
		return fmt.Errorf("naive: upload %s: %w", a.ID, err)
	}
	ctx, cancel := n.db.WithTimeout(ctx)
	defer cancel()
	tag, err := n.db.Pool.Exec(ctx, `
		INSERT INTO naive_segments (project_id, replay_id, type, segment_id, object, encoding, raw_size,
			event_count, first_ts, last_ts, has_full_snapshot, key_id, kms_wrapped_key, wrapped_dek, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT DO NOTHING`,
		a.ID.ProjectID, a.ID.ReplayID, a.ID.Type, a.ID.SegmentID, object, string(enc), info.RawSize,
		info.EventCount, info.FirstTS, info.LastTS, info.HasFullSnapshot, key.ID, key.Wrapped, sealed.WrappedDEK,
		now.Add(time.Duration(a.RetentionDays)*24*time.Hour))
	if err != nil {
		return fmt.Errorf("naive: insert %s: %w", a.ID, err)
	}
	if tag.RowsAffected() == 0 {
		n.Duplicate.Add(1)
	} else {
		n.Stored.Add(1)
	}
	return nil
}

// NaiveTarget is the function name the baseline registers under; the
// benchmark starts it with FUNCTION_TARGET set to this.
const NaiveTarget = "NaivePack"

// ServeNaive runs the baseline as Pack runs on Cloud Run: configuration
// from the same environment, the CloudEvent function registered with
// functions-framework-go and served on host:$PORT until ctx ends. Its
// clients are built before it listens.
func ServeNaive(ctx context.Context, host string) error {
	port := os.Getenv("PORT")
	if port == "" || os.Getenv("FUNCTION_TARGET") != NaiveTarget {
		return fmt.Errorf("set PORT and FUNCTION_TARGET=%s, and the Pack function's environment", NaiveTarget)
	}
	cfg, err := config.LoadPack(ctx)
	if err != nil {
		return err
	}
	n, closeAll, err := BuildNaive(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	functions.HTTP(NaiveTarget, n.ServeHTTP)
	errc := make(chan error, 1)
	go func() { errc <- funcframework.StartHostPort(host, port) }()
	select {
	case err := <-errc:
		return fmt.Errorf("naive pack: %w", err)
	case <-ctx.Done():
		return nil
	}
}
