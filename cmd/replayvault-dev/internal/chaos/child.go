package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a function process (`replayvault-dev function` with
// FUNCTION_TARGET), started, killed with SIGKILL and restarted on the same
// port, as Cloud Run replaces a crashed instance.
type child struct {
	name, exe, dir string
	env            map[string]string
	port           string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
	peakKB int64 // the largest VmHWM seen over every incarnation
}

// childEnvDrop are variables of our own environment a child must not
// inherit: the scenario sets the ones it needs.
var childEnvDrop = []string{
	"FUNCTION_TARGET", "PORT", "DATABASE_URL", "ALLOYDB_INSTANCE", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST",
	"KMS_KEY", "KMS_ENDPOINT", "BUCKET", "GOOGLE_CLOUD_PROJECT", "REJECT_TOPIC", "JWT_SECRET", "GOMAXPROCS", "GOGC", "GOMEMLIMIT",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
}

func newChild(name, exe, dir string, env map[string]string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return &child{name: name, exe: exe, dir: dir, env: env, port: port}, nil
}

func (c *child) url() string { return "http://127.0.0.1:" + c.port }

// start runs a new incarnation and waits until it listens.
func (c *child) start(ctx context.Context) error {
	c.mu.Lock()
	c.starts++
	logf, err := os.OpenFile(filepath.Join(c.dir, c.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "--- start %d\n", c.starts)
	cmd := exec.Command(c.exe, "function")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, d := range childEnvDrop {
			drop = drop || k == d
		}
		if _, set := c.env[k]; !drop && !set {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PORT="+c.port)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // killed with us
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()
	go c.watchRSS(cmd.Process.Pid, exited)

	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+c.port, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before listening:\n%s", c.name, c.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s:\n%s", c.name, c.port, c.logTail())
		}
	}
}

// watchRSS samples the incarnation's peak RSS until it exits: a killed
// process's status cannot be read afterwards.
func (c *child) watchRSS(pid int, exited chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if kb := statusKB(pid, "VmHWM:"); kb > 0 {
			c.mu.Lock()
			c.peakKB = max(c.peakKB, kb)
			c.mu.Unlock()
		}
		select {
		case <-exited:
			return
		case <-t.C:
		}
	}
}

// peakRSSMiB is the largest peak RSS of any incarnation so far.
func (c *child) peakRSSMiB() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		c.peakKB = max(c.peakKB, statusKB(c.cmd.Process.Pid, "VmHWM:"))
	}
	return float64(c.peakKB) / 1024
}

// running reports whether an incarnation is running.
func (c *child) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// kill ends the running incarnation with SIGKILL and waits for it.
func (c *child) kill() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop asks the running incarnation to drain (SIGTERM, as Cloud Run does)
// and kills it after timeout.
func (c *child) stop(timeout time.Duration) {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		c.kill()
	}
}

// sumLog adds up a numeric field of the child's JSON log lines whose
// message is msg, over every incarnation.
func (c *child) sumLog(msg, field string) int64 {
	f, err := os.Open(filepath.Join(c.dir, c.name+".log"))
	if err != nil {
		return 0
	}
	defer f.Close()
	var sum int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["message"] != msg {
			continue
		}
		if v, ok := line[field].(float64); ok {
			sum += int64(v)
		}
	}
	return sum
}

func (c *child) logTail() string {
	b, err := os.ReadFile(filepath.Join(c.dir, c.name+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}
