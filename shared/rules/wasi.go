package rules

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// wasiModule is the only import module a rule module may use.
const wasiModule = "wasi_snapshot_preview1"

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoInval   = 28
	errnoNosys   = 52
)

// maxStdio is how many bytes of stdout and stderr one instance may write
// before fd_write fails; the bytes go nowhere.
const maxStdio = 64 << 10

// wasiEpoch is the wall clock a module sees (2025-01-01T00:00:00Z), moving
// only as the module reads its clock or sleeps: the host's time never leaks.
const wasiEpoch = 1735689600 * 1e9

// callState is one instance's view of the world: a deterministic clock and
// random source and its stdio budget. Host functions find it in the context.
type callState struct {
	mu    sync.Mutex
	clock uint64 // nanoseconds since wasiEpoch
	rng   uint64
	stdio int64
}

func newCallState() *callState { return &callState{rng: 0x9e3779b97f4a7c15} }

type callStateKey struct{}

func withCallState(ctx context.Context, s *callState) context.Context {
	return context.WithValue(ctx, callStateKey{}, s)
}

func stateOf(ctx context.Context) *callState {
	if s, ok := ctx.Value(callStateKey{}).(*callState); ok {
		return s
	}
	return newCallState() // never shared: a call without state sees a fresh world
}

// tick advances the clock by d (at least 1 µs, so that loops polling the
// clock see time pass) and returns it.
func (s *callState) tick(d uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock += max(d, 1000)
	return s.clock
}

// next is splitmix64: deterministic, seeded the same in every instance.
func (s *callState) next() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rng += 0x9e3779b97f4a7c15
	z := s.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// wasiFunc is one host function with its signature.
type wasiFunc struct {
	params, results []api.ValueType
	fn              api.GoModuleFunc
}

var i32 = api.ValueTypeI32

// wasiFuncs are the functions Go's wasip1 runtime imports, implemented
// without host access. Every other WASI function answers ENOSYS.
var wasiFuncs = map[string]wasiFunc{
	"args_sizes_get":    {[]api.ValueType{i32, i32}, []api.ValueType{i32}, zeroSizes},
	"args_get":          {[]api.ValueType{i32, i32}, []api.ValueType{i32}, success},
	"environ_sizes_get": {[]api.ValueType{i32, i32}, []api.ValueType{i32}, zeroSizes},
	"environ_get":       {[]api.ValueType{i32, i32}, []api.ValueType{i32}, success},
	"sched_yield":       {nil, []api.ValueType{i32}, success},
	"proc_exit":         {[]api.ValueType{i32}, nil, procExit},
	"clock_time_get":    {[]api.ValueType{i32, api.ValueTypeI64, i32}, []api.ValueType{i32}, clockTimeGet},
	"random_get":        {[]api.ValueType{i32, i32}, []api.ValueType{i32}, randomGet},
	"fd_write":          {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, fdWrite},
	"poll_oneoff":       {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, pollOneoff},
	"fd_close":          {[]api.ValueType{i32}, []api.ValueType{i32}, badf},
	"fd_fdstat_get":     {[]api.ValueType{i32, i32}, []api.ValueType{i32}, fdFdstatGet},
	"fd_fdstat_set_flags": {[]api.ValueType{i32, i32}, []api.ValueType{i32}, func(_ context.Context, _ api.Module, st []uint64) {
		if uint32(st[0]) <= 2 {
			st[0] = errnoSuccess
			return
		}
		st[0] = errnoBadf
	}},
	"fd_prestat_get":      {[]api.ValueType{i32, i32}, []api.ValueType{i32}, badf}, // no preopened directories
	"fd_prestat_dir_name": {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}, badf},
}

// instantiateWASI provides the module's WASI imports in rt: the functions
// above, and an ENOSYS stub with the imported signature for any other.
func instantiateWASI(ctx context.Context, rt wazero.Runtime, c wazero.CompiledModule) error {
	b := rt.NewHostModuleBuilder(wasiModule)
	done := map[string]bool{}
	for _, f := range c.ImportedFunctions() {
		_, name, _ := f.Import()
		if done[name] {
			continue
		}
		done[name] = true
		if w, ok := wasiFuncs[name]; ok && sameTypes(w.params, f.ParamTypes()) && sameTypes(w.results, f.ResultTypes()) {
			b.NewFunctionBuilder().WithGoModuleFunction(w.fn, w.params, w.results).Export(name)
			continue
		}
		results := f.ResultTypes()
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, st []uint64) {
			if len(results) > 0 {
				st[0] = errnoNosys
			}
		}), f.ParamTypes(), results).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func success(_ context.Context, _ api.Module, st []uint64) { st[0] = errnoSuccess }

func badf(_ context.Context, _ api.Module, st []uint64) { st[0] = errnoBadf }

func zeroSizes(_ context.Context, m api.Module, st []uint64) {
	mem := m.Memory()
	if !mem.WriteUint32Le(uint32(st[0]), 0) || !mem.WriteUint32Le(uint32(st[1]), 0) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

func procExit(ctx context.Context, m api.Module, st []uint64) {
	code := uint32(st[0])
	_ = m.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}

func clockTimeGet(ctx context.Context, m api.Module, st []uint64) {
	id, resultPtr := uint32(st[0]), uint32(st[2])
	t := stateOf(ctx).tick(0)
	switch id {
	case 0: // realtime
		t += wasiEpoch
	case 1, 2, 3: // monotonic, process and thread CPU time
	default:
		st[0] = errnoInval
		return
	}
	if !m.Memory().WriteUint64Le(resultPtr, t) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

func randomGet(ctx context.Context, m api.Module, st []uint64) {
	ptr, n := uint32(st[0]), uint32(st[1])
	buf, ok := m.Memory().Read(ptr, n)
	if !ok {
		st[0] = errnoInval
		return
	}
	s := stateOf(ctx)
	for i := 0; i < len(buf); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], s.next())
		copy(buf[i:], w[:])
	}
	st[0] = errnoSuccess
}

// fdWrite accepts stdout and stderr up to maxStdio bytes per instance and
// discards them.
func fdWrite(ctx context.Context, m api.Module, st []uint64) {
	fd, iovs, iovsLen, nwrittenPtr := uint32(st[0]), uint32(st[1]), uint32(st[2]), uint32(st[3])
	if fd != 1 && fd != 2 {
		st[0] = errnoBadf
		return
	}
	mem := m.Memory()
	var total uint64
	for i := range iovsLen {
		n, ok := mem.ReadUint32Le(iovs + 8*i + 4)
		if !ok {
			st[0] = errnoInval
			return
		}
		total += uint64(n)
	}
	s := stateOf(ctx)
	s.mu.Lock()
	s.stdio += int64(total)
	over := s.stdio > maxStdio
	s.mu.Unlock()
	if over {
		st[0] = errnoBadf
		return
	}
	if !mem.WriteUint32Le(nwrittenPtr, uint32(total)) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

// fdFdstatGet describes stdin, stdout and stderr as character devices; no
// other descriptor exists.
func fdFdstatGet(_ context.Context, m api.Module, st []uint64) {
	fd, ptr := uint32(st[0]), uint32(st[1])
	if fd > 2 {
		st[0] = errnoBadf
		return
	}
	var b [24]byte
	b[0] = 2 // character device
	rights := uint64(1 << 6)
	if fd == 0 {
		rights = 1 << 1
	}
	binary.LittleEndian.PutUint64(b[8:], rights)
	if !m.Memory().Write(ptr, b[:]) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}

// pollOneoff completes every subscription at once: clock subscriptions
// advance the deterministic clock by their timeout (a sleep takes no host
// time), descriptor subscriptions fail with EBADF.
func pollOneoff(ctx context.Context, m api.Module, st []uint64) {
	in, out, nsubs, neventsPtr := uint32(st[0]), uint32(st[1]), uint32(st[2]), uint32(st[3])
	mem := m.Memory()
	if nsubs == 0 || nsubs > 1024 {
		st[0] = errnoInval
		return
	}
	s := stateOf(ctx)
	for i := range nsubs {
		sub, ok := mem.Read(in+48*i, 48)
		if !ok {
			st[0] = errnoInval
			return
		}
		var ev [32]byte
		copy(ev[:8], sub[:8]) // userdata
		tag := sub[8]
		ev[10] = tag
		if tag == 0 {
			timeout := binary.LittleEndian.Uint64(sub[24:])
			if timeout > 60e9 {
				timeout = 60e9
			}
			s.tick(timeout)
		} else {
			binary.LittleEndian.PutUint16(ev[8:], errnoBadf)
		}
		if !mem.Write(out+32*i, ev[:]) {
			st[0] = errnoInval
			return
		}
	}
	if !mem.WriteUint32Le(neventsPtr, nsubs) {
		st[0] = errnoInval
		return
	}
	st[0] = errnoSuccess
}
