package rules

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// instantiateMeter provides replayvault.tick to rt's modules: it stops
// the call (as wazero's proc_exit does, by closing the instance and
// panicking with its exit error) once the call's context is done, and
// otherwise refills the instance's fuel.
func instantiateMeter(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(meterModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, _ []uint64) {
			if err := ctx.Err(); err != nil {
				code := sys.ExitCodeContextCanceled
				if errors.Is(err, context.DeadlineExceeded) {
					code = sys.ExitCodeDeadlineExceeded
				}
				_ = mod.CloseWithExitCode(context.Background(), code)
				panic(sys.NewExitError(code))
			}
			if g, ok := mod.ExportedGlobal(meterExport).(api.MutableGlobal); ok {
				g.Set(fuelPerTick)
			}
		}), nil, nil).Export(meterTick).Instantiate(ctx)
	return err
}

// The time budget is enforced by metering the module, not by wazero's
// WithCloseOnContextDone, which in wazero v1.12 leaves the compiled code for
// Go on every loop back-edge (wazero#2466) and made a rule 3 to 5 times
// slower. Before compiling, meter rewrites the module: it adds a mutable
// i32 global, the fuel, and at the start of every function and of every
// loop body decrements it; when it reaches zero the code calls the host
// function replayvault.tick, which checks the call's deadline and either
// refills the fuel or stops the call. Every endless loop and every endless
// chain of calls goes through a loop header or a function start, so it
// reaches the host within fuelPerTick iterations of the deadline; the cost
// on the path is a few instructions per iteration and one exit to Go per
// fuelPerTick.
//
// meter decodes every instruction of the code section (it must, to find
// the loops and renumber calls), so it also refuses what it does not know:
// tail calls, exceptions, SIMD and any other proposal beyond the MVP,
// sign extension, saturating truncation, bulk memory and reference types,
// which is what Go's wasip1 port emits.

// meterModule and meterTick name the host function the metered code calls.
const (
	meterModule = "replayvault"
	meterTick   = "tick"
)

// fuelPerTick is the fuel given at each tick: iterations (loop bodies and
// function starts) between two checks of the deadline. At a nanosecond or
// so per iteration a tick comes every 100 µs or less.
const fuelPerTick = 1 << 17

// meterExport names the fuel global, exported so Pack can refill it before
// each call.
const meterExport = "replayvault_fuel"

const wasmMagic = "\x00asm\x01\x00\x00\x00"

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
)

// meter returns wasm with fuel metering; see above.
func meter(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:8]) != wasmMagic {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := &wreader{b: wasm[8:]}
	for len(r.b) > 0 {
		id := r.byte()
		body := r.bytes(int(r.u32()))
		if r.err != nil {
			return nil, fmt.Errorf("meter: section %d: %w", id, r.err)
		}
		if id == secCustom {
			continue // names and debug info would refer to old indices
		}
		secs = append(secs, section{id, body})
	}
	// First pass: the type index of () -> () and the counts of imported
	// functions and globals and of defined globals.
	tickType, nTypes := -1, 0
	nImpFuncs, nImpGlobals, nGlobals := 0, 0, 0
	for _, s := range secs {
		r := &wreader{b: s.body}
		switch s.id {
		case secType:
			nTypes = int(r.u32())
			for i := 0; i < nTypes && r.err == nil; i++ {
				if r.byte() != 0x60 {
					return nil, errors.New("meter: bad type")
				}
				np := int(r.u32())
				r.bytes(np)
				nr := int(r.u32())
				r.bytes(nr)
				if np == 0 && nr == 0 && tickType < 0 {
					tickType = i
				}
			}
		case secImport:
			n := int(r.u32())
			for i := 0; i < n && r.err == nil; i++ {
				if mod := r.bytes(int(r.u32())); string(mod) == meterModule {
					return nil, fmt.Errorf("meter: imports from %s", meterModule)
				}
				r.bytes(int(r.u32()))
				switch kind := r.byte(); kind {
				case 0:
					r.u32()
					nImpFuncs++
				case 1: // table
					r.byte()
					r.limits()
				case 2: // memory
					r.limits()
				case 3:
					r.bytes(2)
					nImpGlobals++
				default:
					return nil, fmt.Errorf("meter: import kind %d", kind)
				}
			}
		case secGlobal:
			// Constant expressions may not name functions (ref.func):
			// their indices would need renumbering.
			nGlobals = int(r.u32())
			for i := 0; i < nGlobals && r.err == nil; i++ {
				r.bytes(2)
				r.constExpr()
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("meter: section %d: %w", s.id, r.err)
		}
	}
	fuel := uint32(nImpGlobals + nGlobals)
	tick := uint32(nImpFuncs) // the new import comes after the others
	m := &meterer{fuel: fuel, tick: tick, nImpFuncs: uint32(nImpFuncs)}

	out := []byte(wasmMagic)
	hasType, hasImport, hasGlobal, hasExport := false, false, false, false
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	// Sections must stay in order; the ones meter adds to may be missing.
	order := func(id byte) int {
		if id == 12 { // data count sits between element and code
			return 95
		}
		return int(id) * 10
	}
	addMissing := func(before byte) {
		if !hasType && order(before) > order(secType) {
			hasType = true
			tickType, nTypes = 0, 1
			emit(secType, []byte{1, 0x60, 0, 0})
		}
		if !hasImport && order(before) > order(secImport) {
			hasImport = true
			emit(secImport, m.tickImport(nil, 0, uint32(tickType)))
		}
		if !hasGlobal && order(before) > order(secGlobal) {
			hasGlobal = true
			emit(secGlobal, m.fuelGlobal(nil, 0))
		}
		if !hasExport && order(before) > order(secExport) {
			hasExport = true
			emit(secExport, m.fuelExport(nil, 0))
		}
	}
	for _, s := range secs {
		addMissing(s.id)
		var body []byte
		var err error
		switch s.id {
		case secType:
			hasType = true
			body = s.body
			if tickType < 0 {
				r := &wreader{b: s.body}
				n := r.u32()
				body = binary.AppendUvarint(nil, uint64(n+1))
				body = append(body, r.b...)
				body = append(body, 0x60, 0, 0)
				tickType = int(n)
			}
		case secImport:
			hasImport = true
			r := &wreader{b: s.body}
			n := r.u32()
			body = m.tickImport(r.b, n, uint32(tickType))
		case secGlobal:
			hasGlobal = true
			r := &wreader{b: s.body}
			n := r.u32()
			body = m.fuelGlobal(r.b, n)
		case secExport:
			hasExport = true
			body, err = m.exports(s.body)
		case secStart:
			r := &wreader{b: s.body}
			body = binary.AppendUvarint(nil, uint64(m.fn(r.u32())))
			err = r.err
		case secElement:
			body, err = m.elements(s.body)
		case secCode:
			body, err = m.code(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("meter: section %d: %w", s.id, err)
		}
		emit(s.id, body)
	}
	addMissing(255)
	return out, nil
}

type meterer struct {
	fuel, tick, nImpFuncs uint32
}

// fn renumbers a function index: the tick import shifts the module's own
// functions by one.
func (m *meterer) fn(i uint32) uint32 {
	if i >= m.nImpFuncs {
		return i + 1
	}
	return i
}

func (m *meterer) tickImport(rest []byte, n, typ uint32) []byte {
	b := binary.AppendUvarint(nil, uint64(n+1))
	b = append(b, rest...)
	b = appendName(b, meterModule)
	b = appendName(b, meterTick)
	b = append(b, 0)
	return binary.AppendUvarint(b, uint64(typ))
}

func (m *meterer) fuelGlobal(rest []byte, n uint32) []byte {
	b := binary.AppendUvarint(nil, uint64(n+1))
	b = append(b, rest...)
	b = append(b, 0x7f, 1, 0x41) // i32, mutable, i32.const
	b = appendSLEB(b, fuelPerTick)
	return append(b, 0x0b)
}

func (m *meterer) fuelExport(rest []byte, n uint32) []byte {
	b := binary.AppendUvarint(nil, uint64(n+1))
	b = append(b, rest...)
	b = appendName(b, meterExport)
	b = append(b, 3)
	return binary.AppendUvarint(b, uint64(m.fuel))
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (m *meterer) exports(body []byte) ([]byte, error) {
	r := &wreader{b: body}
	n := r.u32()
	var rest []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.bytes(int(r.u32()))
		if string(name) == meterExport {
			return nil, fmt.Errorf("exports %s", meterExport)
		}
		kind := r.byte()
		idx := r.u32()
		if kind == 0 {
			idx = m.fn(idx)
		}
		rest = appendName(rest, string(name))
		rest = append(rest, kind)
		rest = binary.AppendUvarint(rest, uint64(idx))
	}
	if r.err != nil {
		return nil, r.err
	}
	return m.fuelExport(rest, n), nil
}

// elements renumbers the functions of element segments. Only the forms
// with function indices (0 to 3) are accepted; Go emits form 0.
func (m *meterer) elements(body []byte) ([]byte, error) {
	r := &wreader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = binary.AppendUvarint(out, uint64(flags))
		switch flags {
		case 0:
			out = append(out, r.constExpr()...)
		case 1, 3:
			out = append(out, r.byte()) // elemkind
		case 2:
			out = binary.AppendUvarint(out, uint64(r.u32())) // table
			out = append(out, r.constExpr()...)
			out = append(out, r.byte())
		default:
			return nil, fmt.Errorf("element segment form %d", flags)
		}
		k := r.u32()
		out = binary.AppendUvarint(out, uint64(k))
		for j := uint32(0); j < k && r.err == nil; j++ {
			out = binary.AppendUvarint(out, uint64(m.fn(r.u32())))
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return out, r.err
}

// code meters every function body.
func (m *meterer) code(body []byte) ([]byte, error) {
	r := &wreader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	var fb []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		fn := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		var err error
		if fb, err = m.function(fb[:0], fn); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(fb)))
		out = append(out, fb...)
	}
	if len(r.b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// check is the metering sequence: fuel -= 1; if fuel == 0 { tick() }.
func (m *meterer) check(b []byte) []byte {
	b = append(b, 0x23) // global.get fuel
	b = binary.AppendUvarint(b, uint64(m.fuel))
	b = append(b, 0x41, 1, 0x6b, 0x24) // i32.const 1, i32.sub, global.set fuel
	b = binary.AppendUvarint(b, uint64(m.fuel))
	b = append(b, 0x23)
	b = binary.AppendUvarint(b, uint64(m.fuel))
	b = append(b, 0x45, 0x04, 0x40, 0x10) // i32.eqz, if (no result), call tick
	b = binary.AppendUvarint(b, uint64(m.tick))
	return append(b, 0x0b) // end
}

// function copies one body (locals, then instructions) with checks at its
// start and at the start of every loop, and calls renumbered.
func (m *meterer) function(out, fn []byte) ([]byte, error) {
	r := &wreader{b: fn}
	nl := r.u32()
	out = binary.AppendUvarint(out, uint64(nl))
	for i := uint32(0); i < nl && r.err == nil; i++ {
		out = binary.AppendUvarint(out, uint64(r.u32()))
		out = append(out, r.byte())
	}
	if r.err != nil {
		return nil, r.err
	}
	out = m.check(out)
	for len(r.b) > 0 {
		start := r.b
		op := r.byte()
		switch {
		case op == 0x10: // call
			out = append(out, op)
			out = binary.AppendUvarint(out, uint64(m.fn(r.u32())))
			continue
		case op == 0xd2: // ref.func
			out = append(out, op)
			out = binary.AppendUvarint(out, uint64(m.fn(r.u32())))
			continue
		case op == 0x03: // loop
			r.blockType()
			out = append(out, start[:len(start)-len(r.b)]...)
			out = m.check(out)
			continue
		}
		if err := r.skipImmediates(op); err != nil {
			return nil, err
		}
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, start[:len(start)-len(r.b)]...)
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// skipImmediates reads the immediates of op (not call, ref.func or loop).
func (r *wreader) skipImmediates(op byte) error {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b:
	case op == 0x02, op == 0x04: // block, if
		r.blockType()
	case op == 0x0c, op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x11: // call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select with types
		r.bytes(int(r.u32()))
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		if align := r.u32(); align&0x40 != 0 {
			return errors.New("multiple memories")
		}
		r.u32()
	case op == 0x3f, op == 0x40: // memory.size, memory.grow
		r.byte()
	case op == 0x41:
		r.s64()
	case op == 0x42:
		r.s64()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null
		r.byte()
	case op == 0xd1: // ref.is_null
	case op == 0xfc:
		switch sub := r.u32(); {
		case sub <= 7: // saturating truncation
		case sub == 8: // memory.init
			r.u32()
			r.byte()
		case sub == 9, sub == 13, sub == 15, sub == 16, sub == 17: // data.drop, elem.drop, table.grow/size/fill
			r.u32()
		case sub == 10: // memory.copy
			r.byte()
			r.byte()
		case sub == 11: // memory.fill
			r.byte()
		case sub == 12, sub == 14: // table.init, table.copy
			r.u32()
			r.u32()
		default:
			return fmt.Errorf("instruction 0xfc %d is not metered", sub)
		}
	default:
		return fmt.Errorf("instruction %#x is not metered (tail calls, exceptions, SIMD and other proposals are refused)", op)
	}
	return nil
}

// wreader reads the binary format; the first error sticks.
type wreader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *wreader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wreader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errTruncated
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *wreader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.err = errors.New("bad u32")
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

// s64 skips a signed LEB128 of up to 10 bytes.
func (r *wreader) s64() {
	if r.err != nil {
		return
	}
	for i := 0; i < 10 && i < len(r.b); i++ {
		if r.b[i]&0x80 == 0 {
			r.b = r.b[i+1:]
			return
		}
	}
	r.err = errors.New("bad integer")
}

// blockType reads a block type: empty (0x40), a value type, or a type
// index as a signed 33-bit integer.
func (r *wreader) blockType() {
	if r.err != nil || len(r.b) == 0 {
		r.err = errTruncated
		return
	}
	switch c := r.b[0]; {
	case c == 0x40 || c >= 0x6f && c <= 0x7f:
		r.b = r.b[1:]
	default:
		r.s64()
	}
}

func (r *wreader) limits() {
	switch r.byte() {
	case 0:
		r.u32()
	case 1:
		r.u32()
		r.u32()
	default:
		r.err = errors.New("bad limits")
	}
}

// constExpr returns a constant expression's bytes, up to and with its end.
func (r *wreader) constExpr() []byte {
	start := r.b
	for r.err == nil {
		op := r.byte()
		if op == 0x0b {
			break
		}
		switch op {
		case 0x41, 0x42:
			r.s64()
		case 0x23:
			r.u32()
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0xd0:
			r.byte()
		default:
			r.err = fmt.Errorf("constant expression op %#x", op)
		}
	}
	return start[:len(start)-len(r.b)]
}

// appendSLEB appends v as a signed LEB128.
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
