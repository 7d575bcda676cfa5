//go:build wasip1

package sdk

import (
	"runtime"
	"runtime/metrics"
	"unsafe"
)

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
	collect()
	if err != nil || len(out) == 0 {
		out = nil
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}

// heap is what collect reads: the collector's goal for the heap, and the
// heap's objects, live or not yet freed.
var heap = []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}

// collect finishes the collector's work after a call once the heap is past
// its goal. In a module, Go's collector cannot be left to itself: its
// workers run only while an exported call blocks, and with the sandbox's
// clock (it moves only as it is read) a cycle that starts during a call may
// never end, so no other starts and the heap grows with every call until
// the memory cap stops the instance (the detect module's did, by about 120
// KB per call of 300 KB segments). Past the goal, the cycle is done here,
// at the cost it would have had anyway.
func collect() {
	metrics.Read(heap)
	if heap[1].Value.Kind() == metrics.KindUint64 && heap[0].Value.Kind() == metrics.KindUint64 &&
		heap[1].Value.Uint64() > heap[0].Value.Uint64() {
		runtime.GC()
	}
}
