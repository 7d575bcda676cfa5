package chaos

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// resetPeakRSS restarts the kernel's high-water mark of this process's
// resident memory (Linux; a no-op elsewhere).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB is this process's resident high-water mark since the last
// reset.
func peakRSSMiB() float64 {
	return float64(statusKB(os.Getpid(), "VmHWM:")) / 1024
}

// statusKB reads a kB field of /proc/<pid>/status (0 if unknown).
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}
