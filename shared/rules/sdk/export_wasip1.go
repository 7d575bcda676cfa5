//go:build wasip1

package sdk

import "unsafe"

// in and out keep the exchanged buffers reachable between calls.
var in, out []byte

//go:wasmexport rv_abi_version
func abiVersion() uint32 { return ABIVersion }

//go:wasmexport rv_alloc
func alloc(size uint32) unsafe.Pointer {
	// Reuse the buffer unless it is too small or far too large (a big
	// segment once should not pin its memory forever).
	if cap(in) < int(size) || cap(in) == 0 || cap(in) > 4*int(size)+1<<20 {
		in = make([]byte, max(size, 1))
	}
	in = in[:max(size, 1)]
	return unsafe.Pointer(unsafe.SliceData(in))
}

//go:wasmexport rv_handle
func handle(size uint32) uint64 {
	if handler == nil || int(size) > len(in) {
		return 0
	}
	var err error
	out, err = Run(handler, in[:size])
	if err != nil || len(out) == 0 {
		out = nil
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}
