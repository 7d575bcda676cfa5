package shred

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
)

// TestShredRacesPack races a shred against Pack flushes of the same replay,
// 50 times on the real database. Segments arrive 4 ms apart and batches
// flush after 20 ms, so the shred lands before, between and after commits.
// Whatever the interleaving:
//
//   - from the moment the shred's response arrives (it has committed), the
//     replay has no segment row, so nothing of it can be opened, and none
//     appears later from a flush that was in flight;
//   - every segment acked as stored was committed before the shred, and the
//     receipt counts exactly those;
//   - redelivering every segment after the shred stores nothing.
func TestShredRacesPack(t *testing.T) {
	const rounds, segs = 50, 10
	e := newEnv(t, testConfig(), 20*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	tok := token(t, 7, auth.ScopeDelete)
	var totalStored, totalDiscarded int
	for round := range rounds {
		r := newReplay(rng, 7, segs)
		results := make([]packer.Result, segs)
		var wg sync.WaitGroup
		for s := range segs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(s) * 4 * time.Millisecond)
				res, err := e.packer.Ingest(ctx, r.message(s))
				if err != nil {
					t.Errorf("round %d: ingest %d: %v", round, s, err)
				}
				results[s] = res
			}()
		}
		time.Sleep(time.Duration(rng.IntN(70)) * time.Millisecond)
		res := e.do(t, http.MethodDelete, "/v1/projects/7/replays/"+r.id.String(), tok, "")
		if res.status != http.StatusOK {
			t.Fatalf("round %d: shred: %d %s", round, res.status, res.raw)
		}
		if rows := e.segments(t, 7, r.id); len(rows) != 0 {
			t.Fatalf("round %d: %d segment rows (wrapped DEKs) right after the shred committed", round, len(rows))
		}
		wg.Wait()
		if rows := e.segments(t, 7, r.id); len(rows) != 0 {
			t.Fatalf("round %d: a flush in flight stored %d segments after the shred", round, len(rows))
		}
		var stored, discarded int
		for s, res := range results {
			switch res {
			case packer.Stored:
				stored++
			case packer.Shredded:
				discarded++
			default:
				t.Errorf("round %d: segment %d: %v", round, s, res)
			}
		}
		if shredded := int(res.body["segments_shredded"].(float64)); shredded != stored {
			t.Errorf("round %d: receipt counts %d segments, %d were acked as stored before it", round, shredded, stored)
		}
		totalStored += stored
		totalDiscarded += discarded

		e.pack(t, packer.Shredded, r)
		if rows := e.segments(t, 7, r.id); len(rows) != 0 {
			t.Fatalf("round %d: redelivery stored %d segments", round, len(rows))
		}
	}
	t.Logf("%d rounds: %d segments stored then shredded, %d discarded as arriving after the shred", rounds, totalStored, totalDiscarded)
	// Both sides of the race must have happened, or the test proved little.
	if totalStored == 0 || totalDiscarded == 0 {
		t.Errorf("the race was one-sided: %d stored, %d discarded", totalStored, totalDiscarded)
	}
}
