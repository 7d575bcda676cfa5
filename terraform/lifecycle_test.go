package terraform_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/replayvault/replayvault/shared/cost"
	"github.com/replayvault/replayvault/shared/segment"
)

// TestLifecycleTransitions: each retention prefix of the blob bucket moves
// to colder classes exactly as cost.Plan says (the schedule the cost model
// finds cheapest; cost.TestPlanIsBest checks that and that no transition in
// it loses money), and never before the delete could make the stay a loss.
func TestLifecycleTransitions(t *testing.T) {
	for _, err := range checkTransitions(loadModule(t)) {
		t.Error(err)
	}
}

// TestTransitionChecksCatchMistakes breaks lifecycle.tf the ways a careless
// edit would and expects checkTransitions to say so.
func TestTransitionChecksCatchMistakes(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"transition for a short retention", `"r90-nearline"   = {`, `"r30-nearline" = { prefix = "r30/", age = 7, class = "NEARLINE", from = ["STANDARD"] }
    "r90-nearline"    = {`, `r30/: transitions [NEARLINE@7d], cost.Plan says [STANDARD]`},
		{"transition too early", `prefix = "r1825/", age = 365, class = "COLDLINE"`, `prefix = "r1825/", age = 30, class = "COLDLINE"`, `r1825/: transitions [NEARLINE@7d COLDLINE@30d]`},
		{"transition missing", `"r365-nearline"  = { prefix = "r365/", age = 7, class = "NEARLINE", from = ["STANDARD"] }`, ``, `r365/: transitions [STANDARD]`},
		{"archive", `class = "COLDLINE"`, `class = "ARCHIVE"`, `ARCHIVE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := maps.Clone(readTF(t))
			src := string(files["lifecycle.tf"])
			if strings.Count(src, tc.old) != 1 {
				t.Fatalf("lifecycle.tf contains %q %d times, want 1", tc.old, strings.Count(src, tc.old))
			}
			files["lifecycle.tf"] = []byte(strings.Replace(src, tc.old, tc.new, 1))
			m, err := parseModule(files)
			if err != nil {
				t.Fatal(err)
			}
			if errs := checkTransitions(m); !containsError(errs, tc.want) {
				t.Errorf("no error containing %q; got %v", tc.want, errs)
			}
		})
	}
}

// checkTransitions compares the blob bucket's SetStorageClass rules per
// retention prefix with cost.Plan.
func checkTransitions(m *module) []error {
	r := m.byAddr["google_storage_bucket.blobs"]
	if r == nil {
		return []error{fmt.Errorf("no google_storage_bucket.blobs")}
	}
	rules, err := m.lifecycleRules(r.block)
	if err != nil {
		return []error{err}
	}
	var errs []error
	got := map[string][]cost.Transition{}
	for _, rule := range rules {
		if rule.action != "SetStorageClass" {
			continue
		}
		class, ok := map[string]cost.Class{"NEARLINE": cost.Nearline, "COLDLINE": cost.Coldline, "ARCHIVE": cost.Archive}[rule.class]
		if !ok {
			errs = append(errs, fmt.Errorf("transition to %q: not a class the cost model prices", rule.class))
			continue
		}
		if len(rule.prefixes) != 1 {
			errs = append(errs, fmt.Errorf("transition to %s must match exactly one retention prefix, got %v", rule.class, rule.prefixes))
			continue
		}
		got[rule.prefixes[0]] = append(got[rule.prefixes[0]], cost.Transition{Age: int(rule.age), Class: class})
	}
	for _, days := range segment.RetentionClasses {
		prefix := fmt.Sprintf("r%d/", days)
		have := got[prefix]
		slices.SortFunc(have, func(a, b cost.Transition) int { return a.Age - b.Age })
		want := cost.Plan[days]
		if !slices.Equal(have, want) {
			errs = append(errs, fmt.Errorf("%s: transitions [%s], cost.Plan says [%s]", prefix, cost.FormatLifecycle(have), cost.FormatLifecycle(want)))
		}
		delete(got, prefix)
	}
	for prefix := range got {
		errs = append(errs, fmt.Errorf("transition rule for %s, which is not a retention class", prefix))
	}
	return errs
}

// TestIngestConcurrencyPriced: the cost model prices Ingest's wait for Pack
// (direct delivery) at the concurrency Terraform deploys Ingest with.
func TestIngestConcurrencyPriced(t *testing.T) {
	m := loadModule(t)
	v, err := m.attrValue(m.variables["ingest_max_concurrency"], "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := intOf(v)
	if err != nil {
		t.Fatal(err)
	}
	if got != cost.IngestConcurrency {
		t.Errorf("ingest_max_concurrency defaults to %d, cost.IngestConcurrency is %d: change both", got, cost.IngestConcurrency)
	}
}
