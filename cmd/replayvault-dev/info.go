package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/replayvault/replayvault/shared/testenv"
)

// stackInfo is what --info-file writes and /api/config partly serves.
type stackInfo struct {
	WebURL              string  `json:"web_url"`
	RecorderURL         string  `json:"recorder_url"`
	ViewerURL           string  `json:"viewer_url"`
	PackURL             string  `json:"pack_url"`
	ServeURL            string  `json:"serve_url"`
	ShredURL            string  `json:"shred_url"`
	DatabaseURL         string  `json:"database_url"`
	StorageEmulatorHost string  `json:"storage_emulator_host"`
	Bucket              string  `json:"bucket"`
	KMSEndpoint         string  `json:"kms_endpoint"`
	KMSKey              string  `json:"kms_key"`
	PubSubEmulatorHost  string  `json:"pubsub_emulator_host"`
	PubSubProject       string  `json:"pubsub_project"`
	Topic               string  `json:"topic"`
	RejectTopic         string  `json:"reject_topic"`
	Subscription        string  `json:"subscription"`
	Project             int64   `json:"project"`
	Token               string  `json:"token"`
	DataDir             string  `json:"data_dir"`
	LogDir              string  `json:"log_dir"`
	StartSeconds        float64 `json:"start_seconds"`
}

func (s *stack) info() (stackInfo, error) {
	tok, err := s.token(devProject)
	if err != nil {
		return stackInfo{}, err
	}
	return stackInfo{
		WebURL:              s.webURL,
		RecorderURL:         s.webURL + "/recorder",
		ViewerURL:           fmt.Sprintf("%s/viewer?project=%d&token=%s", s.webURL, devProject, tok),
		PackURL:             s.funcs["Pack"].url,
		ServeURL:            s.funcs["Serve"].url,
		ShredURL:            s.funcs["Shred"].url,
		DatabaseURL:         s.dsn,
		StorageEmulatorHost: s.gcs.Host(),
		Bucket:              devBucket,
		KMSEndpoint:         s.kms.Endpoint(),
		KMSKey:              s.kms.KeyName(),
		PubSubEmulatorHost:  s.ps.Host(),
		PubSubProject:       devPubSubProject,
		Topic:               s.topicName(devSegmentTopic),
		RejectTopic:         s.topicName(devRejectTopic),
		Subscription:        s.subscriptionName(devPushSubscription),
		Project:             devProject,
		Token:               tok,
		DataDir:             s.dir,
		LogDir:              s.logDir(),
		StartSeconds:        s.started.Seconds(),
	}, nil
}

// writeInfo writes the stack's info as JSON, atomically: a reader polling
// for the file never sees half of it.
func (s *stack) writeInfo(path string) error {
	in, err := s.info()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("info file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("info file: %w", err)
	}
	return nil
}

// printTable tells what runs where, with a token and the pages to open.
func (s *stack) printTable(out io.Writer) {
	in, err := s.info()
	if err != nil {
		fmt.Fprintln(out, "replayvault-dev dev:", err)
		return
	}
	state := s.dir + " (removed on exit; --data-dir keeps it)"
	if !s.ownsDir {
		state = s.dir + " (kept)"
	}
	fmt.Fprintf(out, "\nreplayvault-dev dev: ready in %.1fs\n\n", s.started.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  web: recorder, viewer, ingest\t%s\n", in.WebURL)
	fmt.Fprintf(tw, "  Pack (functions-framework)\t%s\t<- push subscription %s on %s\n", in.PackURL, devPushSubscription, in.Topic)
	fmt.Fprintf(tw, "  Serve (functions-framework)\t%s\t/v1/projects/{p}/replays/{r}[/recording]\n", in.ServeURL)
	fmt.Fprintf(tw, "  Shred (functions-framework)\t%s\tDELETE /v1/projects/{p}/replays/{r}, POST /v1/sweep\n", in.ShredURL)
	fmt.Fprintf(tw, "  PostgreSQL 15 (AlloyDB)\t%s\n", in.DatabaseURL)
	fmt.Fprintf(tw, "  fake-gcs-server\thttp://%s\tbucket %s\n", in.StorageEmulatorHost, in.Bucket)
	fmt.Fprintf(tw, "  KMS (gRPC)\t%s\t%s\n", in.KMSEndpoint, in.KMSKey)
	fmt.Fprintf(tw, "  Pub/Sub emulator\t%s\ttopics %s, %s\n", in.PubSubEmulatorHost, devSegmentTopic, devRejectTopic)
	fmt.Fprintf(tw, "  logs\t%s/{pack,serve,shred}.log\n", in.LogDir)
	fmt.Fprintf(tw, "  state\t%s\n", state)
	tw.Flush()
	if s.opts.NodeModules == "" {
		fmt.Fprintln(out, "\n  ! rrweb is not installed, so the recorder and viewer pages cannot load it: run `npm ci` in the repository root and restart")
	}
	fmt.Fprintf(out, "\nToken for project %d (replay:read replay:delete, valid %dh; paste the line into a shell):\n  TOKEN=%s\n", devProject, int(devTokenTTL.Hours()), in.Token)
	fmt.Fprintf(out, "\nOpen in a browser:\n  recorder  %s\n  viewer    %s\n", in.RecorderURL, in.ViewerURL)
	fmt.Fprintf(out, "\nPublish a generated session through the emulator:\n  PUBSUB_EMULATOR_HOST=%s go run ./cmd/replayvault-dev publish -project %d -generate 20\n", in.PubSubEmulatorHost, devProject)
	fmt.Fprintf(out, "\nRead it back:\n  curl -H \"Authorization: Bearer $TOKEN\" %s/v1/projects/%d/replays/REPLAY_ID/recording\n", in.ServeURL, devProject)
	fmt.Fprintln(out, "\nPress Ctrl-C to stop everything.")
}

// logTails returns the end of each function's log, for failure reports.
func (s *stack) logTails(lines int) string {
	var b strings.Builder
	for _, name := range []string{"Pack", "Serve", "Shred"} {
		f := s.funcs[name]
		if f == nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s (%s):\n%s\n", name, f.logPath, testenv.TailFile(f.logPath, lines))
	}
	return b.String()
}
