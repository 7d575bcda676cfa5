// Package testenv runs the real local stand-ins of replayvault's cloud
// dependencies: a throwaway PostgreSQL cluster, fake-gcs-server over HTTP, an
// in-process KMS gRPC server and the Cloud SDK Pub/Sub emulator.
//
// Every Start function works outside of tests (the dev stack uses them) and
// returns a value with an explicit Stop. The New functions are thin
// testing.TB wrappers that register the cleanup themselves. NewDB and
// NewPubSub share one server per test process, so a package that uses them
// must stop those servers when its tests end:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// process holds the servers shared by all tests of one test process. A
// mutex, not a sync.Once, guards them so that a failed start is retried (and
// reported) by the next test instead of being remembered forever.
var process struct {
	mu         sync.Mutex
	mainCalled bool
	pg         *Postgres
	template   bool // rv_template exists and is migrated
	pubsub     *PubSub
}

// Main runs the tests of a package and then stops the servers that NewDB and
// NewPubSub started lazily. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	process.mu.Lock()
	process.mainCalled = true
	process.mu.Unlock()

	code := m.Run()

	process.mu.Lock()
	defer process.mu.Unlock()
	if process.pubsub != nil {
		if err := process.pubsub.Stop(); err != nil {
			slog.Error("stop pubsub emulator", "err", err)
		}
		process.pubsub = nil
	}
	if process.pg != nil {
		if err := process.pg.Stop(); err != nil {
			slog.Error("stop postgres", "err", err)
		}
		process.pg = nil
		process.template = false
	}
	return code
}

// requireMain fails t when the package has no TestMain calling Main: the
// shared servers would otherwise outlive the test process's temp dirs.
func requireMain(t testing.TB) {
	t.Helper()
	if !process.mainCalled {
		t.Fatal("testenv: this package needs func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) } to stop the shared servers")
	}
}

// FreePort asks the kernel for a port on 127.0.0.1 that is free right now.
// Another process may take it before our child binds it, so callers that
// start a child retry on "address in use".
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomHex returns n random bytes as lowercase hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// TailFile returns the last lines of a log file, for startup errors.
func TailFile(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxTail = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		if _, err := f.Seek(st.Size()-maxTail, io.SeekStart); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// errAddrInUse reports whether a child's log says its port was taken.
func errAddrInUse(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "could not bind")
}
