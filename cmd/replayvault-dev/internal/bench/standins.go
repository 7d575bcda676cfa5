package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"

	"github.com/replayvault/replayvault/shared/testenv"
)

// StandinsConfig says how to run the cloud stand-ins.
type StandinsConfig struct {
	// Dir holds the fake GCS objects (its filesystem backend: every
	// request costs about the same however many objects there are, unlike
	// the in-memory backend, which scans all objects on each write).
	Dir    string
	Bucket string
	// Postgres is host:port of the PostgreSQL server the DB proxy fronts.
	Postgres                          string
	GCSLatency, KMSLatency, DBLatency time.Duration
}

// StandinsInfo is what RunStandins prints, as one JSON line, once ready.
type StandinsInfo struct {
	GCSHost     string `json:"gcs_host"` // STORAGE_EMULATOR_HOST
	KMSEndpoint string `json:"kms_endpoint"`
	KMSKey      string `json:"kms_key"`
	PubSubHost  string `json:"pubsub_host"` // PUBSUB_EMULATOR_HOST
	DBProxy     string `json:"db_proxy"`    // host:port in front of Postgres
	Control     string `json:"control"`     // base URL of /counts and /latency
}

// Counts are the stand-ins' counters, as served at /counts.
type Counts struct {
	GCS        testenv.GCSCounts `json:"gcs"`
	KMSEncrypt int64             `json:"kms_encrypt"`
	KMSDecrypt int64             `json:"kms_decrypt"`
	Published  int64             `json:"published"` // reject-topic messages
	// DBRoundTrips are by database name.
	DBRoundTrips map[string]int64 `json:"db_round_trips"`
}

// Sub returns c - o, counter by counter.
func (c Counts) Sub(o Counts) Counts {
	d := Counts{
		GCS: testenv.GCSCounts{
			Uploads: c.GCS.Uploads - o.GCS.Uploads, Reads: c.GCS.Reads - o.GCS.Reads,
			RangedReads: c.GCS.RangedReads - o.GCS.RangedReads, ReadBytes: c.GCS.ReadBytes - o.GCS.ReadBytes, Deletes: c.GCS.Deletes - o.GCS.Deletes,
			Lists: c.GCS.Lists - o.GCS.Lists, Other: c.GCS.Other - o.GCS.Other,
		},
		KMSEncrypt: c.KMSEncrypt - o.KMSEncrypt, KMSDecrypt: c.KMSDecrypt - o.KMSDecrypt,
		Published:    c.Published - o.Published,
		DBRoundTrips: map[string]int64{},
	}
	for db, n := range c.DBRoundTrips {
		d.DBRoundTrips[db] = n - o.DBRoundTrips[db]
	}
	return d
}

// ClassA is the GCS class A operations: uploads and lists.
func (c Counts) ClassA() int64 { return c.GCS.Uploads + c.GCS.Lists }

// ClassB is the GCS class B operations: object reads and metadata reads.
func (c Counts) ClassB() int64 { return c.GCS.Reads + c.GCS.Other }

// KMSCalls is every KMS request.
func (c Counts) KMSCalls() int64 { return c.KMSEncrypt + c.KMSDecrypt }

// RunStandins runs fake-gcs-server, the KMS server, a reject-topic sink and
// the DB proxy in this process, prints their addresses to out as one JSON
// line, and serves their counters until ctx ends. The benchmark runs it as
// its own child process so that none of their CPU lands on the process
// under test.
func RunStandins(ctx context.Context, cfg StandinsConfig, out io.Writer) error {
	gcs, err := testenv.StartGCS(cfg.Dir, cfg.Bucket)
	if err != nil {
		return err
	}
	defer gcs.Stop()
	kms, err := testenv.StartKMS()
	if err != nil {
		return err
	}
	defer kms.Stop()
	sink, err := startPublishSink()
	if err != nil {
		return err
	}
	defer sink.stop()
	proxy, err := StartDBProxy(cfg.Postgres)
	if err != nil {
		return err
	}
	defer proxy.Close()
	setLatency := func(g, k, d time.Duration) {
		gcs.SetLatency(g)
		kms.SetLatency(k)
		proxy.SetLatency(d)
	}
	setLatency(cfg.GCSLatency, cfg.KMSLatency, cfg.DBLatency)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Counts{
			GCS:          gcs.Counts(),
			KMSEncrypt:   kms.EncryptCalls(),
			KMSDecrypt:   kms.DecryptCalls(),
			Published:    sink.published.Load(),
			DBRoundTrips: proxy.RoundTrips(),
		})
	})
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		var ds [3]time.Duration
		for i, k := range []string{"gcs", "kms", "db"} {
			d, err := time.ParseDuration(r.FormValue(k))
			if err != nil {
				http.Error(w, fmt.Sprintf("%s: %v", k, err), http.StatusBadRequest)
				return
			}
			ds[i] = d
		}
		setLatency(ds[0], ds[1], ds[2])
		w.WriteHeader(http.StatusNoContent)
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("control listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("standins control", "error", err)
		}
	}()
	defer srv.Close()

	info := StandinsInfo{
		GCSHost:     gcs.Host(),
		KMSEndpoint: kms.Endpoint(),
		KMSKey:      kms.KeyName(),
		PubSubHost:  sink.addr(),
		DBProxy:     proxy.Addr(),
		Control:     "http://" + lis.Addr().String(),
	}
	if err := json.NewEncoder(out).Encode(info); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// publishSink stands in for the reject topic: the benchmark's segments are
// all valid, so it only counts what would have been rejected.
type publishSink struct {
	pubsubpb.UnimplementedPublisherServer
	lis       net.Listener
	srv       *grpc.Server
	published atomic.Int64
}

func startPublishSink() (*publishSink, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pubsub sink listen: %w", err)
	}
	s := &publishSink{lis: lis, srv: grpc.NewServer()}
	pubsubpb.RegisterPublisherServer(s.srv, s)
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

func (s *publishSink) addr() string { return s.lis.Addr().String() }
func (s *publishSink) stop()        { s.srv.Stop() }

// Publish accepts and counts every message.
func (s *publishSink) Publish(_ context.Context, req *pubsubpb.PublishRequest) (*pubsubpb.PublishResponse, error) {
	n := int64(len(req.GetMessages()))
	base := s.published.Add(n) - n
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.FormatInt(base+int64(i), 10)
	}
	return &pubsubpb.PublishResponse{MessageIds: ids}, nil
}

// standinsClient reads the counters of a running stand-ins process and sets
// its latency.
type standinsClient struct {
	info StandinsInfo
	hc   *http.Client
}

func (c *standinsClient) counts(ctx context.Context) (Counts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.info.Control+"/counts", nil)
	if err != nil {
		return Counts{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Counts{}, fmt.Errorf("stand-in counts: %w", err)
	}
	defer resp.Body.Close()
	var out Counts
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Counts{}, fmt.Errorf("stand-in counts: %w", err)
	}
	return out, nil
}

func (c *standinsClient) setLatency(ctx context.Context, gcs, kms, db time.Duration) error {
	u := fmt.Sprintf("%s/latency?gcs=%s&kms=%s&db=%s", c.info.Control, gcs, kms, db)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("stand-in latency: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("stand-in latency: %s: %s", resp.Status, b)
	}
	return nil
}
