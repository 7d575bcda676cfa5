package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/uuid"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/replayvault/replayvault/cmd/internal/cli"
	"github.com/replayvault/replayvault/shared/workload"
)

// runPublish sends segment files, or a generated session, to the segment
// topic as the browser SDK's relay would: one message per segment with
// project_id, replay_id and segment_id attributes.
func runPublish(ctx context.Context, args []string, out io.Writer) error {
	fs := cli.NewFlagSet("replayvault-dev publish", "[-project 1] [-replay UUID] (-generate N | FILE...)")
	project := fs.Int64("project", devProject, "replayvault project id (project_id attribute)")
	replayFlag := fs.String("replay", "", "replay id (UUID); default: a new random one")
	generate := fs.Int("generate", 0, "publish a generated session of `N` segments instead of files")
	segmentBytes := fs.Int("segment-bytes", 4096, "approximate size of a generated segment")
	gz := fs.Bool("gzip", false, "gzip generated segments, as browser SDKs do")
	seed := fs.Uint64("seed", 0, "random seed of the generated session (default: random)")
	startMS := fs.Int64("start-ms", 0, "timestamp (Unix ms) of the generated session's first event (default: an hour ago)")
	first := fs.Int("first-segment", 0, "segment id of the first file or generated segment; the rest count up")
	segType := fs.String("type", "", "type attribute (recording, console, network, timeline); default: unset (recording)")
	retention := fs.Int("retention-days", 0, "retention_days attribute (30, 90, 365, 1825); default: unset (90)")
	psProject := fs.String("pubsub-project", envOr("GOOGLE_CLOUD_PROJECT", devPubSubProject), "Google Cloud project of the topic")
	topic := fs.String("topic", devSegmentTopic, "segment topic ID")
	emulator := fs.String("emulator", os.Getenv("PUBSUB_EMULATOR_HOST"), "Pub/Sub emulator `host:port` (default $PUBSUB_EMULATOR_HOST); empty publishes to Google Cloud with Application Default Credentials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *project <= 0 {
		return errors.New("-project must be a positive project id")
	}
	replay := uuid.New()
	if *replayFlag != "" {
		var err error
		if replay, err = uuid.Parse(*replayFlag); err != nil {
			return fmt.Errorf("-replay: %w", err)
		}
	}
	var payloads [][]byte
	switch {
	case *generate > 0 && fs.NArg() > 0:
		return errors.New("give either -generate N or segment files, not both")
	case *generate > 0:
		s := *seed
		if s == 0 {
			s = rand.Uint64()
		}
		start := *startMS
		if start == 0 {
			start = time.Now().Add(-time.Hour).UnixMilli()
		}
		payloads = generateSession(s, *generate, *segmentBytes, start)
		if *gz {
			for i, p := range payloads {
				payloads[i] = workload.Gzip(p)
			}
		}
	case fs.NArg() > 0:
		for _, name := range fs.Args() {
			b, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			payloads = append(payloads, b)
		}
	default:
		fs.Usage()
		return errors.New("nothing to publish: give -generate N or segment files (JSON arrays of rrweb events, raw or gzip/zlib/zstd)")
	}

	client, err := newPubSubClient(ctx, *psProject, *emulator)
	if err != nil {
		return err
	}
	defer client.Close()
	topicName := fmt.Sprintf("projects/%s/topics/%s", *psProject, *topic)
	pub := client.Publisher(topicName)
	defer pub.Stop()

	extra := map[string]string{}
	if *segType != "" {
		extra["type"] = *segType
	}
	if *retention != 0 {
		extra["retention_days"] = strconv.Itoa(*retention)
	}
	start := time.Now()
	if _, err := publishSegments(ctx, pub, *project, replay, *first, payloads, extra); err != nil {
		return err
	}
	var total int
	for _, p := range payloads {
		total += len(p)
	}
	fmt.Fprintln(out, replay)
	fmt.Fprintf(out, "published %d segments (%d..%d, %d bytes) of replay %s, project %d, to %s in %s\n",
		len(payloads), *first, *first+len(payloads)-1, total, replay, *project, topicName, time.Since(start).Round(time.Millisecond))
	return nil
}

// newPubSubClient returns a client for project, talking to the emulator at
// host if host is set, else to Google Cloud.
func newPubSubClient(ctx context.Context, project, host string) (*pubsub.Client, error) {
	var opts []option.ClientOption
	if host != "" {
		opts = append(opts,
			option.WithEndpoint(host),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		)
	}
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	return c, nil
}

// publishSegments publishes payloads as segments first, first+1, ... of
// replay and waits until the server has acknowledged every one. It returns
// the message IDs in order.
func publishSegments(ctx context.Context, pub *pubsub.Publisher, project int64, replay uuid.UUID, first int, payloads [][]byte, extra map[string]string) ([]string, error) {
	results := make([]*pubsub.PublishResult, len(payloads))
	for i, p := range payloads {
		attrs := map[string]string{
			"project_id": strconv.FormatInt(project, 10),
			"replay_id":  replay.String(),
			"segment_id": strconv.Itoa(first + i),
		}
		for k, v := range extra {
			attrs[k] = v
		}
		results[i] = pub.Publish(ctx, &pubsub.Message{Data: p, Attributes: attrs})
	}
	ids := make([]string, len(results))
	for i, r := range results {
		id, err := r.Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("publish segment %d of %s: %w", first+i, replay, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// generateSession returns n rrweb-like segments of one session starting at
// startMS: segment 0 opens with a meta event and a full snapshot, and
// timestamps run on across segments, as a recorder would produce them. The
// same arguments give the same session.
func generateSession(seed uint64, n, approxBytes int, startMS int64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ts := startMS
	out := make([][]byte, n)
	for i := range out {
		out[i] = workload.Segment(rng, i, ts, approxBytes)
		// workload spaces events 50 ms apart.
		ts += 50 * int64(bytes.Count(out[i], []byte(`"timestamp":`)))
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
