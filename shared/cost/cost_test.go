package cost

import (
	"math"
	"os"
	"slices"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestOverStorage checks the storage arithmetic on hand-computed cases,
// early deletion included.
func TestOverStorage(t *testing.T) {
	d := Design{StoredGB: 30, Objects: 1000}
	for _, tc := range []struct {
		name      string
		retention int
		l         []Transition
		storage   float64
		early     float64
		classA    float64
	}{
		// 31 days of Standard: 30 GB × 31/30 months × $0.02.
		{"standard", 30, nil, 30 * 31.0 / 30 * 0.02, 0, 0},
		// 7 days Standard, 24 Nearline, then 6 days' early deletion.
		{"nearline early", 30, []Transition{{7, Nearline}}, 30*7.0/30*0.02 + 30*24.0/30*0.01, 30 * 6.0 / 30 * 0.01, 1000.0 / 1000 * 0.01},
		// 30 Standard, 60 Nearline, 276 Coldline: no early deletion.
		{"nearline then coldline", 365, []Transition{{30, Nearline}, {90, Coldline}},
			30*30.0/30*0.02 + 30*60.0/30*0.01 + 30*276.0/30*0.004, 0, 0.01 + 0.02},
		// A transition past the delete never happens.
		{"too late", 30, []Transition{{60, Coldline}}, 30 * 31.0 / 30 * 0.02, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Published.Over(d, tc.retention, tc.l, nil)
			got := (b.StorageTotal() - b.EarlyDeletion) / gibPerGB
			b.EarlyDeletion /= gibPerGB
			if !near(got, tc.storage) || !near(b.EarlyDeletion, tc.early) || !near(b.ClassA, tc.classA) {
				t.Errorf("storage %g early %g class A %g; want %g %g %g", got, b.EarlyDeletion, b.ClassA, tc.storage, tc.early, tc.classA)
			}
		})
	}
}

// TestReadsFollowClass: a read in a colder class pays its retrieval and
// class B price.
func TestReadsFollowClass(t *testing.T) {
	d := Design{StoredGB: 10, ReadOpsPerSegment: 1}
	reads := []ReadWindow{{40, 41, 1}}
	std := Published.Over(d, 90, nil, reads)
	cold := Published.Over(d, 90, []Transition{{30, Coldline}}, reads)
	if std.Retrieval != 0 || !near(cold.Retrieval, 10*gibPerGB*0.02) {
		t.Errorf("retrieval standard %g coldline %g; want 0 and 0.2", std.Retrieval, cold.Retrieval)
	}
	if !near(std.ClassB, 1e6/1000*0.0004) || !near(cold.ClassB, 1e6/1000*0.01) {
		t.Errorf("class B standard %g coldline %g", std.ClassB, cold.ClassB)
	}
}

// TestPlanIsBest: the lifecycle the bucket applies (Plan, which the
// Terraform tests hold the bucket to) is the cheapest schedule the model
// finds for the packed design, and each of its transitions saves money
// against the plan without it. If prices or the read pattern change, this
// says which rule to change.
func TestPlanIsBest(t *testing.T) {
	for _, r := range Retentions {
		best := Published.Best(Packed, r, DefaultReads)
		if !slices.Equal(best, Plan[r]) {
			t.Errorf("retention %d: Plan is %s, the model's best is %s", r, FormatLifecycle(Plan[r]), FormatLifecycle(best))
		}
		full := Published.Over(Packed, r, Plan[r], DefaultReads).Total
		for i := range Plan[r] {
			without := slices.Delete(slices.Clone(Plan[r]), i, i+1)
			if c := Published.Over(Packed, r, without, DefaultReads).Total; c <= full {
				t.Errorf("retention %d: dropping %s@%dd costs %.4f, no more than the plan's %.4f", r, Plan[r][i].Class, Plan[r][i].Age, c, full)
			}
		}
	}
}

// TestTable writes the reference table (run with -v to read it).
func TestTable(t *testing.T) {
	rows := Published.Table([]Design{Naive, Packed, Direct(Packed, ReferenceDelivery)}, DefaultReads)
	if len(rows) != 5*len(Retentions) {
		t.Fatalf("%d rows", len(rows))
	}
	if testing.Verbose() {
		if err := WriteTable(os.Stdout, Published, rows); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDirect checks direct delivery's arithmetic by hand: Pub/Sub shrinks
// to the spilled fraction, and Ingest pays instance time for the wait.
func TestDirect(t *testing.T) {
	d := Design{PubSubGB: 100, MemGiBPerVCPU: 1}
	full := Published.Over(d, 30, nil, nil).PubSub
	for _, tc := range []struct {
		v      Delivery
		pubsub float64
		wait   float64
	}{
		{Delivery{Spill: 0, WaitS: 1, SpillWaitS: 6, Concurrency: 100}, 0, 1e6 * 1.0 / 100 * (0.000024 + 0.0000025)},
		// 90% wait 1 s, 10% wait 6 s: 1.5 s per segment over 100 at once.
		{Delivery{Spill: 0.1, WaitS: 1, SpillWaitS: 6, Concurrency: 100}, 0.1 * full, 1e6 * 1.5 / 100 * (0.000024 + 0.0000025)},
		{Delivery{Spill: 1, WaitS: 1, SpillWaitS: 0, Concurrency: 100}, full, 0},
	} {
		b := Published.Over(Direct(d, tc.v), 30, nil, nil)
		if !near(b.PubSub, tc.pubsub) || !near(b.IngestWait, tc.wait) || !near(b.Total, tc.pubsub+tc.wait) {
			t.Errorf("%+v: Pub/Sub %g, wait %g, total %g; want %g, %g", tc.v, b.PubSub, b.IngestWait, b.Total, tc.pubsub, tc.wait)
		}
	}
}

// TestDirectHalvesNinetyDays: on the reference designs (the README's full
// bench run), direct delivery with the lifecycle plan costs at most half of
// today's 90 days (packed, STANDARD all life, every segment through
// Pub/Sub) with no segment spilled, and says what 10% spilled costs.
func TestDirectHalvesNinetyDays(t *testing.T) {
	today := Published.Over(Packed, 90, nil, DefaultReads)
	life := Published.Over(Packed, 90, Plan[90], DefaultReads)
	direct := Published.Over(Direct(Packed, ReferenceDelivery), 90, Plan[90], DefaultReads)
	v := ReferenceDelivery
	v.Spill = 0.1
	spill10 := Published.Over(Direct(Packed, v), 90, Plan[90], DefaultReads)
	t.Logf("90 days per 1M segments: today $%.2f (Pub/Sub $%.2f), lifecycle $%.2f (%.0f%%), direct+lifecycle $%.2f (%.0f%%; Ingest wait $%.2f), 10%% spilled $%.2f (%.0f%%)",
		today.Total, today.PubSub, life.Total, 100*life.Total/today.Total, direct.Total, 100*direct.Total/today.Total, direct.IngestWait, spill10.Total, 100*spill10.Total/today.Total)
	if direct.Total > today.Total/2 {
		t.Errorf("direct+lifecycle $%.2f is more than half of today's $%.2f", direct.Total, today.Total)
	}
	if !(direct.Total < spill10.Total && spill10.Total < life.Total) {
		t.Errorf("totals out of order: direct %.2f, 10%% spilled %.2f, lifecycle only %.2f", direct.Total, spill10.Total, life.Total)
	}
}
