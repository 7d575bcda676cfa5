package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replayvault/replayvault/shared/testenv"
)

// function is one functions-framework server: a child process in its own
// process group.
type function struct {
	name    string
	url     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited closes
	ready   atomic.Bool   // it listened: an exit from now on is news
	stopped atomic.Bool   // stop was called: an exit from now on is expected
}

// startFunction starts one function on a free port and waits until it
// accepts connections. A lost race for the port is retried.
func (s *stack) startFunction(ctx context.Context, name string, env []string) (*function, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		f, err := s.launch(ctx, name, env)
		if err == nil {
			return f, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func (s *stack) launch(ctx context.Context, name string, env []string) (*function, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	f := &function{
		name:    name,
		url:     "http://127.0.0.1:" + strconv.Itoa(port),
		logPath: filepath.Join(s.logDir(), strings.ToLower(name)+".log"),
		exited:  make(chan struct{}),
	}
	logFile, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	var w io.Writer = logFile
	var prefixed *prefixWriter
	if s.opts.FunctionLogs != nil {
		// Through a pipe: the child's output is copied while it runs.
		prefixed = &prefixWriter{w: s.opts.FunctionLogs, prefix: fmt.Sprintf("[%-5s] ", strings.ToLower(name))}
		w = io.MultiWriter(logFile, prefixed)
	}

	f.cmd = exec.Command(s.opts.Binary, "function")
	// Later entries win: ours override anything inherited.
	f.cmd.Env = append(os.Environ(), append(env, "FUNCTION_TARGET="+name, "PORT="+strconv.Itoa(port))...)
	f.cmd.Stdout, f.cmd.Stderr = w, w
	// Its own process group, so Stop ends it and anything it started; killed
	// with us if we die without stopping it.
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		f.waitErr = f.cmd.Wait()
		// Only now: with -v a goroutine copies the child's output into it
		// until the child exits.
		logFile.Close()
		close(f.exited)
		if f.ready.Load() && !f.stopped.Load() {
			select {
			case s.died <- f:
			default:
			}
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			f.ready.Store(true)
			return f, nil
		}
		select {
		case <-f.exited:
			return nil, fmt.Errorf("function %s exited during start (%v); log %s:\n%s", name, f.waitErr, f.logPath, testenv.TailFile(f.logPath, 20))
		case <-ctx.Done():
			f.stop()
			return nil, fmt.Errorf("function %s did not listen on port %d: %w; log %s:\n%s", name, port, ctx.Err(), f.logPath, testenv.TailFile(f.logPath, 20))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// stop ends the function's process group: SIGTERM, then SIGKILL after a
// grace period.
func (f *function) stop() error {
	f.stopped.Store(true)
	pgid := f.cmd.Process.Pid // Setpgid: its pid is its group id
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", f.name, err)
	}
	select {
	case <-f.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-f.exited
	}
	return nil
}

// prefixWriter writes each line with a prefix; a partial line waits for its
// end.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// randomToken returns 32 random bytes as hex.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
