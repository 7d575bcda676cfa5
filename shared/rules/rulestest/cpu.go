package rulestest

import (
	"syscall"
	"testing"
	"time"
)

// CPU measures the process's CPU time (user and system) across a benchmark
// loop: on a shared machine it is inflated far less by other processes than
// wall time is.
type CPU struct{ start time.Duration }

// StartCPU starts a measurement.
func StartCPU() CPU { return CPU{start: cpuTime()} }

// Report adds a cpu-ns/op metric to b.
func (c CPU) Report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuTime()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
