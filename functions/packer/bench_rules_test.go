package packer

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// BenchmarkPrepareRules is Pack's CPU per segment (validate, rules, compress,
// seal: everything inside the CPU slot) with no rule, with the PII scrub
// module and with all three modules (sampling at 100%, scrub, detection), on
// gzip segments of about 30 KB and 300 KB of rrweb JSON: workload.Segment's
// random text (gzip about 3:1; a third of its events are inputs, which the
// scrub masks, so it rewrites every segment) and, as "real-", a segment of
// workload.Recording (the repetitive DOM and words of real pages, gzip
// about 7:1; one event in ten an input). "scrub-nothing-found" is the scrub
// configured so that nothing matches; the "-365d" cases are segments kept
// long enough that Pack transcodes every one (so the base compresses
// too). MB/s counts decompressed bytes;
// stored-B is the bytes sealed (a rewritten segment is compressed by Pack,
// any other stored as the client compressed it). Compare the ns/op of the rule cases with "none" of the
// same size: the target is that scrub adds at most half of it. cpu-ns/op
// is the process's CPU time per segment, which a busy machine inflates less
// than ns/op.
func BenchmarkPrepareRules(b *testing.B) {
	p := rulesBenchPacker(b)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(3, 4))
	for _, corpus := range []struct {
		prefix string
		make   func(size int) []byte
	}{
		{"", func(size int) []byte { return workload.Segment(rng, 1, 1_700_000_000_000, size) }},
		{"real-", func(size int) []byte { return workload.Recording(rng, 2, size, 0, 1_700_000_000_000)[1] }},
	} {
		for _, size := range []int{30 << 10, 300 << 10} {
			raw := corpus.make(size)
			gz := workload.Gzip(raw)
			for _, c := range []struct {
				name      string
				project   int64
				retention int
			}{{"none", none, 30}, {"scrub", scrubOnly, 30}, {"scrub-nothing-found", scrubClean, 30}, {"all", all, 30},
				{"none-365d", none, 365}, {"scrub-365d", scrubOnly, 365}} {
				b.Run(fmt.Sprintf("%s%dKB/%s", corpus.prefix, size>>10, c.name), func(b *testing.B) {
					m := message(c.project, uuid.New(), 1, gz)
					m.Attributes[segment.AttrRetentionDays] = strconv.Itoa(c.retention)
					// Warm up: the first call of a tenant instantiates the
					// module (the Go runtime's start), once per instance.
					e, err := validateAndSeal(ctx, p, m)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(raw)))
					cpu := rulestest.StartCPU()
					for b.Loop() {
						if e, err := validateAndSeal(ctx, p, m); err != nil || e == nil {
							b.Fatalf("validate and seal: %v", err)
						}
					}
					cpu.Report(b)
					b.ReportMetric(float64(len(e.ciphertext)), "stored-B")
				})
			}
		}
	}
}

// validateAndSeal is Pack's CPU work on one message, without the batch.
func validateAndSeal(ctx context.Context, p *Packer, m Message) (*entry, error) {
	v, err := p.validate(ctx, m)
	if err != nil {
		return nil, err
	}
	return p.seal(ctx, v)
}

// BenchmarkScrubCost is the scrub's cost as ratios to Pack's base CPU per
// segment in the same run, measured so that a busy machine moves them
// little: each iteration runs every case once, one after the other, on a
// thread of its own, and each case's cost is the median of its calls'
// thread CPU time. Cases as in BenchmarkPrepareRules; the base of the
// "-365d" cases is "none-365d" (Pack transcodes those segments, so it
// compresses them in the base too). Reported per corpus and size: base-us
// (median CPU µs of "none"), scrub-x, nothing-found-x, all-x,
// scrub-365d-x and scrub-s2-x (the scrub with REWRITTEN_ENCODING=s2) (the
// ratios), stored-B, scrub-stored-B and scrub-s2-stored-B (bytes sealed).
//
//	go test -run '^$' -bench BenchmarkScrubCost -benchtime 100x ./functions/packer
func BenchmarkScrubCost(b *testing.B) {
	p := rulesBenchPacker(b)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(3, 4))
	cases := []struct {
		metric    string
		project   int64
		retention int
		s2        bool // rewritten events stored as s2 (REWRITTEN_ENCODING=s2)
	}{{"base-us", none, 30, false}, {"scrub-x", scrubOnly, 30, false}, {"nothing-found-x", scrubClean, 30, false}, {"all-x", all, 30, false},
		{"", none, 365, false}, {"scrub-365d-x", scrubOnly, 365, false}, {"scrub-s2-x", scrubOnly, 30, true}}
	for _, corpus := range []struct {
		name string
		make func(size int) []byte
	}{
		{"random", func(size int) []byte { return workload.Segment(rng, 1, 1_700_000_000_000, size) }},
		{"real", func(size int) []byte { return workload.Recording(rng, 2, size, 0, 1_700_000_000_000)[1] }},
	} {
		for _, size := range []int{30 << 10, 300 << 10} {
			gz := workload.Gzip(corpus.make(size))
			b.Run(fmt.Sprintf("%s-%dKB", corpus.name, size>>10), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ms := make([]Message, len(cases))
				stored := make([]int, len(cases))
				for i, c := range cases {
					ms[i] = message(c.project, uuid.New(), 1, gz)
					ms[i].Attributes[segment.AttrRetentionDays] = strconv.Itoa(c.retention)
					p.cfg.RewrittenPlain = !c.s2
					e, err := validateAndSeal(ctx, p, ms[i]) // warm up
					if err != nil {
						b.Fatal(err)
					}
					stored[i] = len(e.ciphertext)
				}
				cpu := make([][]time.Duration, len(cases))
				for b.Loop() {
					for i, c := range cases {
						p.cfg.RewrittenPlain = !c.s2
						t0 := threadCPU(b)
						if _, err := validateAndSeal(ctx, p, ms[i]); err != nil {
							b.Fatal(err)
						}
						cpu[i] = append(cpu[i], threadCPU(b)-t0)
					}
				}
				med := make([]float64, len(cases))
				for i := range cpu {
					slices.Sort(cpu[i])
					med[i] = float64(cpu[i][len(cpu[i])/2])
				}
				for i, c := range cases {
					switch {
					case c.metric == "":
					case c.metric == "base-us":
						b.ReportMetric(med[i]/1e3, c.metric)
					case c.retention == 365:
						b.ReportMetric(med[i]/med[4], c.metric)
					default:
						b.ReportMetric(med[i]/med[0], c.metric)
					}
				}
				b.ReportMetric(float64(stored[0]), "stored-B")
				b.ReportMetric(float64(stored[1]), "scrub-stored-B")
				b.ReportMetric(float64(stored[6]), "scrub-s2-stored-B")
			})
		}
	}
}

// threadCPU is the calling thread's CPU time (the benchmark locks its
// goroutine to it): Pack's work on one segment runs in the caller.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// The projects of rulesBenchPacker's packer: none has no rules, scrubOnly
// the PII scrub, all sampling (keeping everything), the scrub and
// detection, scrubClean the scrub configured so that nothing in the
// generated segments matches.
const none, scrubOnly, all, scrubClean = 1, 2, 3, 4

// rulesBenchPacker returns a packer whose projects run the repository's
// rule modules as the constants above say, with production's transcoding
// and a generous rule budget (these benchmarks measure cost, on a machine
// that may be busy), its KEK already fetched.
func rulesBenchPacker(b *testing.B) *Packer {
	cfg := testConfig()
	cfg.Limits.MaxDecompressed = 64 << 20
	// Production's transcoding: segments kept a year or more are stored
	// at zstd's "better" level whatever the client sent ("-365d" cases).
	cfg.TranscodeMinRetention, cfg.Level = 365, segment.LevelBetter
	cfg.RewrittenPlain = true // production's default
	return rulesPacker(b, cfg)
}

// rulesPacker is rulesBenchPacker's packer with the given configuration.
func rulesPacker(b *testing.B, cfg Config) *Packer {
	d := testenv.NewDeps(b)
	scrub := rulestest.Push(b, d.DB, d.Blobs, "piiscrub", rulestest.Build(b, "shared/rules/modules/piiscrub/wasm"))
	sampling := rulestest.Push(b, d.DB, d.Blobs, "sampling", rulestest.Build(b, "shared/rules/modules/sampling/wasm"))
	detect := rulestest.Push(b, d.DB, d.Blobs, "detect", rulestest.Build(b, "shared/rules/modules/detect/wasm"))
	rulestest.Assign(b, d.DB, store.RuleAssignment{ProjectID: scrubOnly, Name: "scrub", ModuleHash: scrub})
	// Without mask_all_inputs nothing in the generated segments matches:
	// the cost of a scrub that finds nothing to mask (no rewrite).
	rulestest.Assign(b, d.DB, store.RuleAssignment{ProjectID: scrubClean, Name: "scrub", ModuleHash: scrub, Config: []byte(`{"mask_all_inputs":false}`)})
	rulestest.Assign(b, d.DB, store.RuleAssignment{ProjectID: all, Name: "sample", ModuleHash: sampling, Position: 0, Config: []byte(`{"rate":1}`)})
	rulestest.Assign(b, d.DB, store.RuleAssignment{ProjectID: all, Name: "scrub", ModuleHash: scrub, Position: 1})
	rulestest.Assign(b, d.DB, store.RuleAssignment{ProjectID: all, Name: "detect", ModuleHash: detect, Position: 2})
	ctx := context.Background()
	p := New(cfg, d.DB, discardStore{}, d.Keyring(), hotReject{b})
	b.Cleanup(p.Close)
	// Production's memory cap (RULES_MEMORY_BYTES) and a generous time
	// budget: this measures cost, and the machine may be busy.
	lim := rules.DefaultLimits()
	lim.Timeout = time.Minute
	engine := rules.NewEngine(lim)
	b.Cleanup(engine.Close)
	rs := rules.NewSet(engine, d.DB, d.Blobs, 16<<20)
	if err := rs.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	p.UseRules(rs)
	if _, err := p.keys.Current(ctx); err != nil {
		b.Fatal(err)
	}
	return p
}
