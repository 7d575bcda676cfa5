package packer

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestPackTranscodes packs one real-shaped recording twice, gzip as a
// browser sends it, under a 365-day and a 90-day retention with
// transcoding from 365 days: the long-lived copy is stored as zstd and
// smaller, the short-lived one as sent; every segment of both opens, the
// way Serve reads it, to exactly the original JSON.
func TestPackTranscodes(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.TranscodeMinRetention = 365
	cfg.Level = segment.LevelBetter
	p := newPacker(t, d, cfg, nil)
	ctx := context.Background()

	raw := workload.Recording(rand.New(rand.NewPCG(16, 3)), 12, 60<<10, 300<<10, 1_700_000_000_000)
	long, short := uuid.New(), uuid.New()
	want := map[uuid.UUID]string{long: string(segment.Zstd), short: string(segment.Gzip)}
	var sent int
	for _, id := range []uuid.UUID{long, short} {
		for s, r := range raw {
			m := message(7, id, s, workload.Gzip(r))
			if id == long {
				m.Attributes["retention_days"] = "365"
				sent += len(m.Data)
			} else {
				m.Attributes["retention_days"] = strconv.Itoa(90)
			}
			if res, err := p.Ingest(ctx, m); err != nil || res != Stored {
				t.Fatalf("ingest %s: %v, %v", m.ID, res, err)
			}
		}
	}

	keks := d.KEKCache()
	stored := map[uuid.UUID]int64{}
	got := rows(t, d)
	if len(got) != 2*len(raw) {
		t.Fatalf("%d rows, want %d", len(got), 2*len(raw))
	}
	for _, x := range got {
		if x.enc != want[x.replay] {
			t.Errorf("%s/%d stored as %s, want %s", x.replay, x.segID, x.enc, want[x.replay])
		}
		stored[x.replay] += x.stop - x.start
		b, err := open(ctx, d, keks, x)
		if err != nil {
			t.Fatalf("open %s/%d: %v", x.replay, x.segID, err)
		}
		if !bytes.Equal(b, raw[x.segID]) {
			t.Fatalf("segment %s/%d differs from the original", x.replay, x.segID)
		}
	}
	if stored[long] >= stored[short] {
		t.Errorf("transcoded replay stores %d bytes, as sent %d", stored[long], stored[short])
	}
	t.Logf("gzip as sent %d bytes, sealed as sent %d, sealed transcoded %d", sent, stored[short], stored[long])
}
