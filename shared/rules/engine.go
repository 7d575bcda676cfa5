// Package rules runs per-project edge rules inside Pack: WebAssembly modules
// (the ABI is in package sdk) compiled once per content hash with wazero,
// pooled per project, and called under a memory cap and a time budget (see
// meter.go) with no host access. A module that traps, exits, loops or grows past its cap fails
// that one call; its instance is discarded and Pack carries on.
package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

// Limits bound what one module may cost.
type Limits struct {
	// MemoryBytes caps one instance's linear memory (rounded down to 64 KiB
	// pages).
	MemoryBytes int64
	// Timeout bounds one call; instantiating a module gets InitTimeout.
	Timeout     time.Duration
	InitTimeout time.Duration
	// MaxOutputBytes caps a call's output frame.
	MaxOutputBytes int64
	// MaxIdle is how many idle instances the engine keeps across all
	// modules and projects; each may hold up to MemoryBytes.
	MaxIdle int
}

// DefaultLimits are the limits Pack uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MemoryBytes:    256 << 20,
		Timeout:        2 * time.Second,
		InitTimeout:    10 * time.Second,
		MaxOutputBytes: 64 << 20,
		MaxIdle:        8,
	}
}

// Failure is a module's failure on one call: it trapped, exited, ran out of
// time or memory, or returned a malformed output. Pack applies the
// assignment's fail mode to it.
type Failure struct {
	// Kind is a short stable word: timeout, memory (the call needed more
	// than the memory cap), exit, trap, output, init.
	Kind string
	Err  error
}

func (f *Failure) Error() string { return "rule module " + f.Kind + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Engine compiles and caches modules. It is safe for concurrent use.
type Engine struct {
	lim   Limits
	cache wazero.CompilationCache

	mu      sync.Mutex
	modules map[string]*Module // by content hash
	idle    int
}

// NewEngine returns an Engine with limits lim.
func NewEngine(lim Limits) *Engine {
	return &Engine{lim: lim, cache: wazero.NewCompilationCache(), modules: map[string]*Module{}}
}

// Hash returns the content hash that names a module: hex SHA-256.
func Hash(wasm []byte) string {
	h := sha256.Sum256(wasm)
	return hex.EncodeToString(h[:])
}

// Module returns the compiled module for wasm, compiling it on first use.
// Compiling is slow (about a second for a Go module); Pack does it in the
// background refresh, never on a segment's path.
func (e *Engine) Module(ctx context.Context, wasm []byte) (*Module, error) {
	hash := Hash(wasm)
	e.mu.Lock()
	m := e.modules[hash]
	e.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := e.compile(ctx, hash, wasm)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev := e.modules[hash]; prev != nil {
		go m.rt.Close(context.Background())
		return prev, nil
	}
	e.modules[hash] = m
	return m, nil
}

// Cached reports whether the module with this hash is compiled.
func (e *Engine) Cached(hash string) *Module {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.modules[hash]
}

// Retain closes every compiled module whose hash is not in keep.
func (e *Engine) Retain(keep map[string]bool) {
	e.mu.Lock()
	var gone []*Module
	for h, m := range e.modules {
		if !keep[h] {
			gone = append(gone, m)
			delete(e.modules, h)
		}
	}
	e.mu.Unlock()
	for _, m := range gone {
		m.close()
	}
}

// Close closes every module.
func (e *Engine) Close() {
	e.Retain(nil)
	e.cache.Close(context.Background())
}

func (e *Engine) compile(ctx context.Context, hash string, wasm []byte) (*Module, error) {
	metered, err := meter(wasm)
	if err != nil {
		return nil, fmt.Errorf("rule module %s: %w", hash[:12], err)
	}
	// No WithCloseOnContextDone: the metering stops a call at its
	// deadline (see meter.go) at a fraction of the cost.
	pages := uint32(max(e.lim.MemoryBytes>>16, 1))
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages))
	compiled, err := rt.CompileModule(ctx, metered)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("compile rule module %s: %w", hash[:12], err)
	}
	if err := checkModule(compiled); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("rule module %s: %w", hash[:12], err)
	}
	if err := instantiateWASI(ctx, rt, compiled); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("rule module %s: %w", hash[:12], err)
	}
	if err := instantiateMeter(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("rule module %s: %w", hash[:12], err)
	}
	return &Module{Hash: hash, engine: e, rt: rt, compiled: compiled, idle: map[string][]*instance{}}, nil
}

// checkModule refuses modules that import anything but WASI functions or do
// not export the ABI.
func checkModule(c wazero.CompiledModule) error {
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == meterModule && name == meterTick {
			continue // added by meter, which refuses a module importing it
		}
		if mod != wasiModule {
			return fmt.Errorf("imports %s.%s: only %s is provided", mod, name, wasiModule)
		}
	}
	if len(c.ImportedMemories()) > 0 {
		return errors.New("imports a memory")
	}
	exports := c.ExportedFunctions()
	for _, name := range []string{"_initialize", "rv_abi_version", "rv_alloc", "rv_handle"} {
		if _, ok := exports[name]; !ok {
			return fmt.Errorf("does not export %s (build with sdk and -buildmode=c-shared)", name)
		}
	}
	return nil
}

// Module is one compiled rule module with its pools of instances, one pool
// per tenant (project and assignment), so that no state a module keeps in
// memory passes from one project to another.
type Module struct {
	// Hash is the module's content hash.
	Hash string

	engine   *Engine
	rt       wazero.Runtime
	compiled wazero.CompiledModule

	mu     sync.Mutex
	idle   map[string][]*instance
	closed bool
}

type instance struct {
	mod           api.Module
	alloc, handle api.Function
	tenant        string
	state         *callState
}

// Call runs the module on one input frame for tenant and returns its output
// frame. A *Failure error is the module's fault; other errors are Pack's
// (for example ctx ended before the call).
func (m *Module) Call(ctx context.Context, tenant string, input []byte) ([]byte, error) {
	inst, err := m.take(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out, err := m.call(ctx, inst, input)
	if err != nil {
		var f *Failure
		if errors.As(err, &f) && (f.Kind == "trap" || f.Kind == "exit") && m.nearCap(inst) {
			// Out of memory: the Go runtime in a module gives up with a
			// trap or an exit, which would hide the cause.
			f.Kind = "memory"
		}
		inst.mod.Close(context.Background())
		return nil, err
	}
	if int64(inst.mod.Memory().Size()) > m.engine.lim.MemoryBytes/2 {
		// Past half its cap: a module's memory never shrinks, and one that
		// keeps growing would fail a valid segment at the cap. A fresh
		// instance serves the next call.
		inst.mod.Close(context.Background())
		return out, nil
	}
	m.put(inst)
	return out, nil
}

// nearCap reports whether inst's memory is within an eighth of the cap.
// The engine recycles an instance past half of it after a call (see Call),
// so only a call that needed more than that gets there.
func (m *Module) nearCap(inst *instance) bool {
	c := m.engine.lim.MemoryBytes
	return int64(inst.mod.Memory().Size()) > c-c/8
}

func (m *Module) call(parent context.Context, inst *instance, input []byte) ([]byte, error) {
	if err := parent.Err(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(parent, m.engine.lim.Timeout)
	defer cancel()
	ctx = withCallState(ctx, inst.state)
	res, err := inst.alloc.Call(ctx, uint64(len(input)))
	if err != nil {
		return nil, m.failure(parent, err)
	}
	mem := inst.mod.Memory()
	if !mem.Write(uint32(res[0]), input) {
		return nil, &Failure{Kind: "output", Err: errors.New("rv_alloc returned a buffer outside memory")}
	}
	res, err = inst.handle.Call(ctx, uint64(len(input)))
	if err != nil {
		return nil, m.failure(parent, err)
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	if n == 0 {
		return nil, &Failure{Kind: "output", Err: errors.New("rv_handle reported a failure")}
	}
	if int64(n) > m.engine.lim.MaxOutputBytes {
		return nil, &Failure{Kind: "output", Err: fmt.Errorf("output of %d bytes exceeds %d", n, m.engine.lim.MaxOutputBytes)}
	}
	view, ok := mem.Read(ptr, n)
	if !ok {
		return nil, &Failure{Kind: "output", Err: errors.New("output outside memory")}
	}
	return append([]byte(nil), view...), nil
}

// failure classifies a call error: the budget, an exit (the Go runtime exits
// when it runs out of memory or panics) or a trap. When parent itself ended
// the error is Pack's, not the module's.
func (m *Module) failure(parent context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("rule call: %w", perr)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return &Failure{Kind: "timeout", Err: fmt.Errorf("exceeded its %s budget", m.engine.lim.Timeout)}
		}
		return &Failure{Kind: "exit", Err: fmt.Errorf("exited with code %d", exit.ExitCode())}
	}
	return &Failure{Kind: "trap", Err: err}
}

func (m *Module) take(ctx context.Context, tenant string) (*instance, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("rule module closed")
	}
	if pool := m.idle[tenant]; len(pool) > 0 {
		inst := pool[len(pool)-1]
		m.idle[tenant] = pool[:len(pool)-1]
		m.mu.Unlock()
		m.engine.idleDelta(-1)
		return inst, nil
	}
	m.mu.Unlock()
	return m.instantiate(ctx, tenant)
}

func (m *Module) put(inst *instance) {
	if !m.engine.idleDelta(1) {
		inst.mod.Close(context.Background())
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.engine.idleDelta(-1)
		inst.mod.Close(context.Background())
		return
	}
	m.idle[inst.tenant] = append(m.idle[inst.tenant], inst)
	m.mu.Unlock()
}

// idleDelta changes the engine's idle count; an increase past MaxIdle is
// refused.
func (e *Engine) idleDelta(d int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d > 0 && e.idle+d > e.lim.MaxIdle {
		return false
	}
	e.idle += d
	return true
}

func (m *Module) instantiate(parent context.Context, tenant string) (*instance, error) {
	ctx, cancel := context.WithTimeout(parent, m.engine.lim.InitTimeout)
	defer cancel()
	state := newCallState()
	mod, err := m.rt.InstantiateModule(withCallState(ctx, state), m.compiled,
		wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
	if err != nil {
		if perr := parent.Err(); perr != nil {
			return nil, fmt.Errorf("instantiate rule module: %w", perr)
		}
		return nil, &Failure{Kind: "init", Err: err}
	}
	inst := &instance{
		mod:    mod,
		alloc:  mod.ExportedFunction("rv_alloc"),
		handle: mod.ExportedFunction("rv_handle"),
		tenant: tenant,
		state:  state,
	}
	res, err := mod.ExportedFunction("rv_abi_version").Call(withCallState(ctx, state))
	if err != nil || len(res) != 1 || res[0] != sdk.ABIVersion {
		mod.Close(context.Background())
		return nil, &Failure{Kind: "init", Err: fmt.Errorf("ABI version %v, want %d", res, sdk.ABIVersion)}
	}
	return inst, nil
}

// DropTenant closes the idle instances of tenant (its assignment changed or
// went away).
func (m *Module) DropTenant(tenant string) {
	m.mu.Lock()
	pool := m.idle[tenant]
	delete(m.idle, tenant)
	m.mu.Unlock()
	m.engine.idleDelta(-len(pool))
	for _, inst := range pool {
		inst.mod.Close(context.Background())
	}
}

func (m *Module) close() {
	m.mu.Lock()
	m.closed = true
	n := 0
	for _, pool := range m.idle {
		n += len(pool)
	}
	m.idle = nil
	m.mu.Unlock()
	m.engine.idleDelta(-n)
	m.rt.Close(context.Background())
}
