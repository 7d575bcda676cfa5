package rules_test

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/rules"
)

// rawModule is a hand-written module with the ABI's exports whose
// rv_handle has the given body (no locals): no Go runtime, no WASI, just
// the instructions under test.
func rawModule(handle []byte, extraImport []byte) []byte {
	sec := func(id byte, body []byte) []byte {
		return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
	}
	name := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, sec(1, []byte{4, 0x60, 0, 0, 0x60, 0, 1, 0x7f, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 1, 0x7f, 1, 0x7e})...)
	if extraImport != nil {
		b = append(b, sec(2, extraImport)...)
	}
	b = append(b, sec(3, []byte{4, 0, 1, 2, 3})...)
	b = append(b, sec(5, []byte{1, 0, 1})...)
	var ex []byte
	ex = append(ex, 5)
	ex = append(append(ex, name("memory")...), 2, 0)
	nImp := byte(0)
	if extraImport != nil {
		nImp = 1
	}
	for i, n := range []string{"_initialize", "rv_abi_version", "rv_alloc", "rv_handle"} {
		ex = append(append(ex, name(n)...), 0, nImp+byte(i))
	}
	b = append(b, sec(7, ex)...)
	body := func(code ...byte) []byte {
		f := append([]byte{0}, code...)
		return append(binary.AppendUvarint(nil, uint64(len(f))), f...)
	}
	var code []byte
	code = append(code, 4)
	code = append(code, body(0x0b)...)
	code = append(code, body(0x41, 1, 0x0b)...)
	code = append(code, body(0x41, 0, 0x0b)...)
	code = append(code, body(handle...)...)
	return append(b, sec(10, code)...)
}

// TestMeterStopsTightLoops: the metering stops code that never calls out
// and never allocates (a bare loop, a loop nested in a loop) at the
// budget, and endless recursion traps; each only fails its call.
func TestMeterStopsTightLoops(t *testing.T) {
	lim := testLimits()
	lim.Timeout = 300 * time.Millisecond
	e := rules.NewEngine(lim)
	defer e.Close()
	for _, tt := range []struct {
		name  string
		body  []byte
		kinds string
	}{
		{"loop", []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x42, 0x00, 0x0b}, "timeout"},
		{"nested loops", []byte{0x03, 0x40, 0x03, 0x40, 0x41, 0x01, 0x0d, 0x00, 0x0b, 0x0c, 0x00, 0x0b, 0x42, 0x00, 0x0b}, "timeout"},
		{"recursion", []byte{0x20, 0x00, 0x10, 0x03, 0x0b}, "timeout trap"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := e.Module(context.Background(), rawModule(tt.body, nil))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = m.Call(context.Background(), "p", []byte("x"))
			t.Logf("stopped after %s (budget %s)", time.Since(start).Round(time.Millisecond), lim.Timeout)
			if got := failureKind(err); got == "" || !strings.Contains(tt.kinds, got) {
				t.Fatalf("error = %v (kind %q), want %s", err, got, tt.kinds)
			}
		})
	}
}

// TestMeterRefuses: what the metering cannot account for is refused when
// the module is loaded (and so at push): tail calls, a module that imports
// the meter's host function or exports its fuel, unknown instructions.
func TestMeterRefuses(t *testing.T) {
	e := rules.NewEngine(testLimits())
	defer e.Close()
	tick := []byte{1, 11, 'r', 'e', 'p', 'l', 'a', 'y', 'v', 'a', 'u', 'l', 't', 4, 't', 'i', 'c', 'k', 0, 0}
	for name, wasm := range map[string][]byte{
		"return_call":  rawModule([]byte{0x12, 0x03, 0x0b}, nil),
		"imports tick": rawModule([]byte{0x42, 0x00, 0x0b}, tick),
		"simd":         rawModule([]byte{0xfd, 0x0c, 0x0b}, nil),
		"unknown op":   rawModule([]byte{0xf0, 0x0b}, nil),
		"truncated":    rawModule([]byte{0x41}, nil),
	} {
		if _, err := e.Module(context.Background(), wasm); err == nil {
			t.Errorf("%s: module accepted", name)
		}
	}
	if _, err := e.Module(context.Background(), rawModule([]byte{0x42, 0x00, 0x0b}, nil)); err != nil {
		t.Errorf("the plain module was refused: %v", err)
	}
}
