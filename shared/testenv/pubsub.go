package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	pubsubInstallHint = "install the Cloud SDK Pub/Sub emulator (`apt-get install -y google-cloud-cli google-cloud-cli-pubsub-emulator` from Google's Cloud SDK apt repository) and a JRE (`apt-get install -y default-jre-headless`)"
	pubsubLogName     = "emulator.log"
	// pubsubStartTimeout bounds one emulator start; it takes 3-15 s.
	pubsubStartTimeout = 60 * time.Second
	// processPubSubProject is the project of NewPubSub's emulator.
	processPubSubProject = "replayvault-local"
)

// PubSub is the Cloud SDK Pub/Sub emulator running as a child process group
// (gcloud's Python wrapper and the Java emulator) on 127.0.0.1.
type PubSub struct {
	dir     string
	ownsDir bool
	project string
	host    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the gcloud process has exited
	waitErr error         // its exit status, set before exited closes
}

// StartPubSub starts the emulator with its data and log in dir (a new temp
// dir, removed by Stop, if dir == ""). project is the project clients use;
// the emulator accepts any. ctx bounds the start only.
func StartPubSub(ctx context.Context, dir, project string) (*PubSub, error) {
	start := time.Now()
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return nil, fmt.Errorf("gcloud not found: %s", pubsubInstallHint)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("java not found: %s", pubsubInstallHint)
	}
	ps := &PubSub{dir: dir, project: project}
	if dir == "" {
		if ps.dir, err = os.MkdirTemp("", "rv-pubsub-"); err != nil {
			return nil, fmt.Errorf("pubsub temp dir: %w", err)
		}
		ps.ownsDir = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pubsub dir: %w", err)
	}

	// The port is picked before the emulator binds it; retry if we lose the
	// race to another process.
	for attempt := 0; attempt < 3; attempt++ {
		if err = ps.run(ctx, gcloud); err == nil || !errAddrInUse(err.Error()) {
			break
		}
	}
	if err != nil {
		if ps.ownsDir {
			os.RemoveAll(ps.dir)
		}
		return nil, err
	}
	slog.Info("pubsub emulator started", "host", ps.host, "dir", ps.dir, "took", time.Since(start).Round(time.Millisecond))
	return ps, nil
}

func (ps *PubSub) run(ctx context.Context, gcloud string) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	host := "127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(ps.dir, pubsubLogName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pubsub log: %w", err)
	}
	defer logFile.Close() // the child holds its own copy

	cmd := exec.Command(gcloud, "beta", "emulators", "pubsub", "start",
		"--host-port="+host, "--data-dir="+ps.dir, "--quiet")
	cmd.Env = append(os.Environ(),
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// gcloud moves itself into a new process group unless it leads its
	// session, so start it as a session leader: the Java emulator then stays
	// in a group we can kill as a whole. SIGINT on our death lets gcloud stop
	// the emulator it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pubsub emulator: %w", err)
	}
	ps.cmd, ps.host, ps.exited = cmd, host, make(chan struct{})
	go func() {
		ps.waitErr = cmd.Wait()
		close(ps.exited)
	}()

	ctx, cancel := context.WithTimeout(ctx, pubsubStartTimeout)
	defer cancel()
	for {
		if err := ps.ping(ctx); err == nil {
			return nil
		}
		// A lost race for the port does not end the emulator: it logs a
		// BindException and keeps running without serving. Stop it and let
		// the caller pick another port.
		if b, err := os.ReadFile(logPath); err == nil && errAddrInUse(string(b)) {
			ps.killGroup()
			<-ps.exited
			return fmt.Errorf("pubsub emulator on %s: Address already in use", host)
		}
		select {
		case <-ps.exited:
			ps.killGroup()
			return fmt.Errorf("pubsub emulator exited during start (%v); if gcloud lacks the emulator, %s; log %s:\n%s", ps.waitErr, pubsubInstallHint, logPath, TailFile(logPath, 20))
		case <-ctx.Done():
			ps.killGroup()
			return fmt.Errorf("pubsub emulator did not answer on %s: %w; log %s:\n%s", host, ctx.Err(), logPath, TailFile(logPath, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ping asks the emulator's HTTP root, which answers "Ok" once it serves.
func (ps *PubSub) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ps.host+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pubsub emulator answered %s", resp.Status)
	}
	return nil
}

// NewPubSub returns the emulator shared by all tests of the process, started
// on first use and stopped by Main. Tests share it, so each should use its
// own topic and subscription names.
func NewPubSub(t testing.TB) *PubSub {
	t.Helper()
	requireMain(t)
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.pubsub == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*pubsubStartTimeout)
		defer cancel()
		ps, err := StartPubSub(ctx, "", processPubSubProject)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		process.pubsub = ps
	}
	return process.pubsub
}

// Host returns host:port, the value for PUBSUB_EMULATOR_HOST.
func (ps *PubSub) Host() string { return ps.host }

// Project returns the project given to StartPubSub.
func (ps *PubSub) Project() string { return ps.project }

// ClientOptions point a Pub/Sub client at the emulator without touching the
// process environment.
func (ps *PubSub) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(ps.host),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Client returns a Pub/Sub client for Project talking to the emulator. The
// caller closes it.
func (ps *PubSub) Client(ctx context.Context) (*pubsub.Client, error) {
	c, err := pubsub.NewClient(ctx, ps.project, ps.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	return c, nil
}

// Stop terminates the emulator's whole process group and removes the data
// dir if StartPubSub created it.
func (ps *PubSub) Stop() error {
	err := ps.killGroup()
	if ps.ownsDir {
		if rmErr := os.RemoveAll(ps.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("remove pubsub dir: %w", rmErr)
		}
	}
	return err
}

// killGroup sends SIGTERM to the process group, then SIGKILL to whatever is
// left after a grace period, and waits for gcloud to be reaped.
func (ps *PubSub) killGroup() error {
	pgid := ps.cmd.Process.Pid // a session leader's pid is its group id
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			<-ps.exited
			return nil
		}
		return fmt.Errorf("stop pubsub emulator: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ps.exited:
			// gcloud is gone; the group is empty once Java is gone too.
			if !groupAlive(pgid) {
				return nil
			}
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-ps.exited:
	case <-time.After(5 * time.Second):
		return errors.New("stop pubsub emulator: gcloud did not exit after SIGKILL")
	}
	return errors.New("stop pubsub emulator: did not exit on SIGTERM; killed")
}

// groupAlive reports whether process group pgid has a live (not zombie)
// member. kill(-pgid, 0) is not enough: an orphaned Java whose zombie the
// container's init never reaps would count as alive.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}
