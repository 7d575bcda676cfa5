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
	rows := Published.Table([]Design{Naive, Packed}, DefaultReads)
	if len(rows) != 3*len(Retentions) {
		t.Fatalf("%d rows", len(rows))
	}
	if testing.Verbose() {
		if err := WriteTable(os.Stdout, Published, rows); err != nil {
			t.Fatal(err)
		}
	}
}
