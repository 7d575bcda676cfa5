package rules_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/replayvault/replayvault/shared/rules"
	"github.com/replayvault/replayvault/shared/rules/rulestest"
	"github.com/replayvault/replayvault/shared/rules/sdk"
	"github.com/replayvault/replayvault/shared/workload"
)

// testLimits has a budget far above what the test modules need even on a
// busy machine, so that only the endless loop (which gets a short one)
// meets it.
func testLimits() rules.Limits {
	lim := rules.DefaultLimits()
	lim.MemoryBytes = 64 << 20
	lim.Timeout = time.Minute
	return lim
}

func compile(t *testing.T, e *rules.Engine, name string) *rules.Module {
	t.Helper()
	m, err := e.Module(context.Background(), rulestest.Build(t, "shared/rules/testdata/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func frame(t *testing.T, project int64, config string, attrs map[string]string, events string) []byte {
	t.Helper()
	h := &sdk.Header{ABI: sdk.ABIVersion, ProjectID: project, ReplayID: "0b6a4a4e-6f3c-4a39-9d4e-3f0a4a9c8e11", Type: "recording", RetentionDays: 90, Attributes: attrs}
	if config != "" {
		h.Config = []byte(config)
	}
	b, err := sdk.EncodeInput(nil, h, []byte(events))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func call(t *testing.T, m *rules.Module, tenant string, in []byte) (*sdk.Output, error) {
	t.Helper()
	out, err := m.Call(context.Background(), tenant, in)
	if err != nil {
		return nil, err
	}
	o, err := sdk.DecodeOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	return o, nil
}

func tags(o *sdk.Output) map[string]string {
	m := map[string]string{}
	for _, t := range o.Tags {
		m[t.Key] = t.Value
	}
	return m
}

func failureKind(err error) string {
	var f *rules.Failure
	if errors.As(err, &f) {
		return f.Kind
	}
	return ""
}

// TestEcho checks the ABI round trip: decisions, rewrite, tags.
func TestEcho(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	m := compile(t, e, "echo")
	tests := []struct {
		name  string
		attrs map[string]string
		want  sdk.Result
		body  string
	}{
		{"keep", nil, sdk.Result{Decision: "keep"}, ""},
		{"drop", map[string]string{"echo": "drop"}, sdk.Result{Decision: "drop", Reason: "echo"}, ""},
		{"reject", map[string]string{"echo": "reject"}, sdk.Result{Decision: "reject", Reason: "echo said no"}, ""},
		{"rewrite", map[string]string{"echo": "rewrite", "events": `[{"x":1}]`}, sdk.Result{Decision: "keep", Rewritten: true}, `[{"x":1}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := call(t, m, "p1", frame(t, 1, `{"a":1}`, tt.attrs, `[{"type":3}]`))
			if err != nil {
				t.Fatal(err)
			}
			got := o.Result
			got.Tags = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if string(o.Events) != tt.body {
				t.Errorf("events = %q, want %q", o.Events, tt.body)
			}
			if tt.name == "keep" {
				if g := tags(o); g["config"] != `{"a":1}` || g["events_len"] != "12" || g["project"] != "1" {
					t.Errorf("tags = %v", g)
				}
			}
		})
	}
}

// TestEndlessLoopStopped: a module that never returns is stopped at its
// budget, the instance is discarded and the module still serves the next
// call of a good input.
func TestEndlessLoopStopped(t *testing.T) {
	lim := testLimits()
	lim.Timeout = 500 * time.Millisecond
	e := rules.NewEngine(lim)
	defer e.Close()
	m := compile(t, e, "loop")
	_, err := m.Call(context.Background(), "p1", frame(t, 1, "", nil, "[]"))
	if got := failureKind(err); got != "timeout" {
		t.Fatalf("error = %v (kind %q), want a timeout failure", err, got)
	}
	// The engine and other modules are unaffected.
	echo := compile(t, e, "echo")
	if _, err := call(t, echo, "p1", frame(t, 1, "", nil, "[]")); err != nil {
		t.Fatalf("echo after loop: %v", err)
	}
}

// TestAllocationPastCapStopped: a module allocating without bound hits the
// memory cap (the Go runtime in the module runs out of memory and exits, or
// traps: a "memory" failure); Pack's own memory is untouched.
func TestAllocationPastCapStopped(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	m := compile(t, e, "alloc")
	_, err := m.Call(context.Background(), "p1", frame(t, 1, "", nil, "[]"))
	if got := failureKind(err); got != "memory" {
		t.Fatalf("error = %v (kind %q), want a memory failure", err, got)
	}
	// Again: a fresh instance, same outcome, no leak into the next call.
	_, err = m.Call(context.Background(), "p1", frame(t, 1, "", nil, "[]"))
	if got := failureKind(err); got != "memory" {
		t.Fatalf("second call: error = %v (kind %q)", err, got)
	}
}

// TestTrapAndExit: a panic or os.Exit in a module fails that call only; the
// same module keeps serving other segments.
func TestTrapAndExit(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	trap := compile(t, e, "trap")
	if _, err := call(t, trap, "p1", frame(t, 1, "", nil, "[]")); err != nil {
		t.Fatalf("good input: %v", err)
	}
	_, err := trap.Call(context.Background(), "p1", frame(t, 1, "", map[string]string{"trap": "1"}, "[]"))
	if got := failureKind(err); got != "exit" && got != "trap" {
		t.Fatalf("panic: error = %v (kind %q)", err, got)
	}
	if _, err := call(t, trap, "p1", frame(t, 1, "", nil, "[]")); err != nil {
		t.Fatalf("good input after a panic: %v", err)
	}
	exit := compile(t, e, "exit")
	_, err = exit.Call(context.Background(), "p1", frame(t, 1, "", nil, "[]"))
	if got := failureKind(err); got != "exit" {
		t.Fatalf("os.Exit: error = %v (kind %q)", err, got)
	}
}

// TestHostIOImpossible: files, directories, environment, network, clock and
// randomness of the host are out of reach, and stdout is bounded.
func TestHostIOImpossible(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	m := compile(t, e, "hostio")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	escape := filepath.Join(t.TempDir(), "escape")
	t.Setenv("REPLAYVAULT_RULES_TEST_ENV", "visible?")
	attrs := map[string]string{"read": secret, "write": escape, "dial": "127.0.0.1:1"}
	var seen []map[string]string
	for range 2 {
		o, err := call(t, m, "p1", frame(t, 1, "", attrs, "[]"))
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, tags(o))
	}
	want := map[string]string{
		"read": "false", "write": "false", "readdir": "false", "env": "", "args": "0",
		"dial": "false", "stdout_flood": "false",
		"now": "2025-01-01T00:00:00Z", // the sandbox's clock, not the host's
	}
	for k, v := range want {
		if seen[0][k] != v {
			t.Errorf("%s = %q, want %q", k, seen[0][k], v)
		}
	}
	if _, err := os.Stat(escape); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("module wrote a host file: stat = %v", err)
	}
	// Randomness is deterministic: a fresh instance sees the same bytes.
	m2 := compile(t, rules.NewEngine(testLimits()), "hostio")
	o, err := call(t, m2, "p9", frame(t, 9, "", attrs, "[]"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tags(o)["rand"]; got != seen[0]["rand"] {
		t.Errorf("random bytes differ between fresh instances: %s vs %s", got, seen[0]["rand"])
	}
}

// TestTenantsNeverMix: two projects using the same module get separate
// instances, so state kept in module memory (here a call counter) and config
// never pass from one to the other.
func TestTenantsNeverMix(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	m := compile(t, e, "echo")
	for i := 1; i <= 3; i++ {
		o, err := call(t, m, "project-1", frame(t, 1, `{"p":1}`, nil, "[]"))
		if err != nil {
			t.Fatal(err)
		}
		if g := tags(o); g["calls"] != string(rune('0'+i)) || g["config"] != `{"p":1}` {
			t.Fatalf("project 1 call %d: tags %v", i, g)
		}
	}
	o, err := call(t, m, "project-2", frame(t, 2, `{"p":2}`, nil, "[]"))
	if err != nil {
		t.Fatal(err)
	}
	if g := tags(o); g["calls"] != "1" || g["config"] != `{"p":2}` || g["project"] != "2" {
		t.Fatalf("project 2 saw project 1's instance: tags %v", g)
	}
}

// TestRefusesForeignImports: a module importing anything beyond WASI is
// refused at load.
func TestRefusesForeignImports(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	// (module (import "env" "leak" (func)) (memory 1))
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type: func() -> ()
		2, 12, 1, 3, 'e', 'n', 'v', 4, 'l', 'e', 'a', 'k', 0, 0, // import env.leak
	}
	if _, err := e.Module(context.Background(), wasm); err == nil {
		t.Fatal("module importing env.leak was accepted")
	}
	if _, err := e.Module(context.Background(), []byte("not wasm")); err == nil {
		t.Fatal("garbage accepted as a module")
	}
}

// TestModuleMemoryStaysBounded: the detect module, parsing a 300 KB
// segment on every call, keeps its instance's memory flat over many calls.
// Go's collector in a module runs its workers only while an exported call
// blocks, and with the sandbox's clock a cycle started during a call could
// stay unfinished, so that none other started and the memory grew by about
// 120 KB a call until the cap trapped a valid segment; the SDK finishes the
// cycle after a call whose heap is past its goal (sdk's collect).
func TestModuleMemoryStaysBounded(t *testing.T) {
	lim := testLimits()
	lim.MemoryBytes = 256 << 20 // production's; the engine recycles past half
	e := rules.NewEngine(lim)
	defer e.Close()
	m, err := e.Module(context.Background(), rulestest.Build(t, "shared/rules/modules/detect/wasm"))
	if err != nil {
		t.Fatal(err)
	}
	segs := workload.Recording(rand.New(rand.NewPCG(1, 2)), 8, 300<<10, 300<<10, 1_700_000_000_000)
	var at100, most uint32
	for i := range 180 {
		if _, err := call(t, m, "p1", frame(t, 1, "", map[string]string{"url": "https://shop.example/"}, string(segs[i%len(segs)]))); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		sizes := rules.IdleMemory(m, "p1")
		if len(sizes) != 1 {
			t.Fatalf("call %d: %d idle instances, want the one", i, len(sizes))
		}
		if i == 100 { // the parsers' pools have grown to the segments
			at100 = sizes[0]
		}
		most = max(most, sizes[0])
	}
	t.Logf("instance memory: %d MiB after 100 calls, at most %d MiB in 180", at100>>20, most>>20)
	if most > at100+3<<20 {
		t.Errorf("instance memory grew from %d MiB after 100 calls to %d MiB in 80 more", at100>>20, most>>20)
	}
}

// TestLeakingModuleRecycled: a module that keeps more memory on every call
// (1 MiB) would reach its cap and fail a valid segment; the engine closes
// an instance once its memory is past half the cap and starts a fresh one,
// so every call succeeds and no instance grows past about half the cap.
func TestLeakingModuleRecycled(t *testing.T) {
	lim := testLimits() // 64 MiB
	e := rules.NewEngine(lim)
	defer e.Close()
	m := compile(t, e, "leak")
	in := frame(t, 1, "", nil, "[]")
	var most uint32
	for i := range 200 { // 200 MiB kept, over three caps' worth
		if _, err := call(t, m, "p1", in); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		for _, size := range rules.IdleMemory(m, "p1") {
			most = max(most, size)
		}
	}
	t.Logf("idle instance memory at most %d MiB of a %d MiB cap", most>>20, lim.MemoryBytes>>20)
	if int64(most) > lim.MemoryBytes/2 {
		t.Errorf("an idle instance holds %d MiB of a %d MiB cap", most>>20, lim.MemoryBytes>>20)
	}
}
