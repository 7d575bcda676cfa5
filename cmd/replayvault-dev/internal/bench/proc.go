package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. Linux fixes it
// at 100 for everything it exports to user space, whatever the kernel's HZ.
const userHZ = 100

// ProcCPU returns the user plus system CPU time a process has used so far,
// all of its threads (live and exited) included: the kernel's own
// accounting of that process alone.
func ProcCPU(pid int) (time.Duration, error) {
	u, s, err := procCPU(pid)
	return u + s, err
}

// procCPU returns a process's user and system CPU time.
func procCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields restart after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("cpu of %d: malformed stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("cpu of %d: short stat %q", pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	return time.Duration(ut) * time.Second / userHZ, time.Duration(st) * time.Second / userHZ, nil
}

// loadAvg returns the 1-minute load average, a hint of how busy the
// machine was with other work.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes
// since it started or since the last ResetPeakRSS.
func PeakRSS(pid int) (int64, error) {
	return statusKB(pid, "VmHWM:")
}

// ResetPeakRSS starts a new peak (Linux: writing 5 to clear_refs), so each
// load step reports its own peak memory.
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func statusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("status of %d: %s %w", pid, key, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("status of %d: no %s", pid, key)
}

// cpuSplit divides this machine's CPUs between the process under test and
// everything else (the load driver, the stand-ins, PostgreSQL), the way a
// Cloud Run instance has its vCPUs to itself while its dependencies run
// elsewhere. With one CPU there is nothing to split and both get it.
type cpuSplit struct {
	test, rest []int
	all        []int
}

// newCPUSplit gives the last testCPUs CPUs this process may use to the
// process under test and the others to the rest; testCPUs <= 0 turns
// pinning off (everything may use every CPU).
func newCPUSplit(testCPUs int) (cpuSplit, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return cpuSplit{}, fmt.Errorf("cpu affinity: %w", err)
	}
	var all []int
	for c := range 1024 {
		if set.IsSet(c) {
			all = append(all, c)
		}
	}
	s := cpuSplit{test: all, rest: all, all: all}
	if testCPUs > 0 && len(all) > testCPUs {
		s.rest, s.test = all[:len(all)-testCPUs], all[len(all)-testCPUs:]
	}
	return s, nil
}

// pinned reports whether the split keeps the process under test apart.
func (s cpuSplit) pinned() bool { return len(s.test) < len(s.all) }

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinProcess sets the CPU affinity of every thread of pid. Threads made
// later inherit it from the thread that makes them.
func pinProcess(pid int, cpus []int) error {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		return err
	}
	set := cpuSet(cpus)
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}

// startOn starts cmd with its CPU affinity already set to cpus, so that the
// child's Go runtime sizes GOMAXPROCS for them from its first instruction,
// and calls exited with cmd.Wait's result when the child ends. The fork
// inherits the affinity of the calling thread, so the start runs on a
// locked thread; that thread also waits for the child, because a parent
// death signal fires when the thread that forked the child ends.
//
// The thread must outlive the goroutine: it may be the one that forked
// another child earlier (PostgreSQL, say), whose parent death signal would
// fire if the runtime ended it. So the thread gets its old affinity back and
// is unlocked, never left to die locked.
func startOn(cmd *exec.Cmd, cpus []int, exited func(error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get cpu affinity: %w", err)
			return
		}
		restore := func() {
			if unix.SchedSetaffinity(0, &old) == nil {
				runtime.UnlockOSThread()
			}
			// Else keep it locked: ending the thread is the lesser harm
			// than other goroutines running pinned.
		}
		if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
			restore()
			errc <- fmt.Errorf("set cpu affinity: %w", err)
			return
		}
		if err := cmd.Start(); err != nil {
			restore()
			errc <- err
			return
		}
		errc <- nil
		err := cmd.Wait()
		restore()
		exited(err)
	}()
	return <-errc
}

// cpuTimes are one CPU's counters from /proc/stat, in USER_HZ ticks.
type cpuTimes struct {
	busy, idle, steal int64
}

// readCPUTimes returns the counters of every CPU by number.
func readCPUTimes() (map[int]cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	out := map[int]cpuTimes{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var v [8]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		out[n] = cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3] + v[4], steal: v[7]}
	}
	return out, nil
}

// busyShare returns how busy the CPUs in cpus were between a and b
// (0 to 1 per CPU, averaged), and the share stolen by the hypervisor.
func busyShare(a, b map[int]cpuTimes, cpus []int) (busy, steal float64) {
	var db, dt, ds int64
	for _, c := range cpus {
		x, y := a[c], b[c]
		bb, ii, ss := y.busy-x.busy, y.idle-x.idle, y.steal-x.steal
		db += bb
		ds += ss
		dt += bb + ii + ss
	}
	if dt == 0 {
		return 0, 0
	}
	return float64(db) / float64(dt), float64(ds) / float64(dt)
}

// waitIdle waits until process pid uses less than 10% of a CPU over 200 ms,
// or timeout passes.
func waitIdle(ctx context.Context, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	prev, err := ProcCPU(pid)
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		cur, err := ProcCPU(pid)
		if err != nil {
			return err
		}
		if cur-prev < 20*time.Millisecond {
			return nil
		}
		prev = cur
	}
	return nil
}

// pinTree pins process pid and every process descended from it (a
// PostgreSQL server and its backends).
func pinTree(pid int, cpus []int) error {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return err
	}
	parent := map[int]int{}
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // gone
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if i < 0 || len(f) < 2 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var firstErr error
	for p := range parent {
		for a := p; a > 1; a = parent[a] {
			if a == pid {
				if err := pinProcess(p, cpus); err != nil && firstErr == nil && !errors.Is(err, os.ErrNotExist) {
					firstErr = err
				}
				break
			}
		}
	}
	return firstErr
}

// postmasterPID reads the server's PID from its data directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}
