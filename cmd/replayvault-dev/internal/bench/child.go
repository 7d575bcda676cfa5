package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the benchmark runs: the stand-ins, the process under
// test (Pack, the naive baseline, Serve) or a reader.
type child struct {
	name   string
	cmd    *exec.Cmd
	logf   *os.File
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited closes
}

// childEnvKeys are variables of our own environment that a child must not
// inherit: the benchmark sets the ones it needs.
var childEnvKeys = []string{
	"FUNCTION_TARGET", "PORT", "DATABASE_URL", "ALLOYDB_INSTANCE", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST",
	"KMS_KEY", "KMS_ENDPOINT", "BUCKET", "GOOGLE_CLOUD_PROJECT", "REJECT_TOPIC", "JWT_SECRET", "GOMAXPROCS", "GOGC",
	LimitProbeEnv,
}

func childEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, d := range childEnvKeys {
			if k == d {
				drop = true
			}
		}
		if _, set := extra[k]; set || drop {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// startChild runs exe with args on cpus, its stderr going to a log file in
// dir; stdout goes to stdout if not nil, else to the log too.
func startChild(name, exe string, args []string, env map[string]string, cpus []int, dir string, stdout io.Writer) (*child, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = childEnv(env)
	cmd.Stderr = logf
	cmd.Stdout = logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	// Killed with us if we die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, logf: logf, exited: make(chan struct{})}
	if err := startOn(cmd, cpus, func(err error) {
		c.err = err
		close(c.exited)
	}); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the child to end (SIGTERM), kills it after timeout, and returns
// its final state (rusage included).
func (c *child) stop(timeout time.Duration) *os.ProcessState {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(timeout):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	c.logf.Close()
	return c.cmd.ProcessState
}

// logTail returns the end of the child's log, for errors.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logf.Name())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// waitListening waits until something accepts connections on addr or the
// child exits.
func (c *child) waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", c.name, c.err, addr, c.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s:\n%s", c.name, addr, timeout, c.logTail())
		}
	}
}

// freePort returns a port on 127.0.0.1 that is free right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// readLine reads the first line a child prints on its stdout.
func readLine(ctx context.Context, r io.Reader, c *child, timeout time.Duration) (string, error) {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- res{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("%s: read its output: %w:\n%s", c.name, r.err, c.logTail())
		}
		return r.line, nil
	case <-c.exited:
		return "", fmt.Errorf("%s exited (%v):\n%s", c.name, c.err, c.logTail())
	case <-time.After(timeout):
		return "", errors.New(c.name + ": no output in time")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// rusageCPU returns the user plus system CPU of an exited process.
func rusageCPU(ps *os.ProcessState) (cpu time.Duration, maxRSS int64) {
	if ps == nil {
		return 0, 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Maxrss << 10
	}
	return ps.UserTime() + ps.SystemTime(), 0
}
