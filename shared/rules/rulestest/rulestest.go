// Package rulestest builds rule modules for tests: it runs the standard Go
// toolchain with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and caches the
// result by the content of the sources, so the tests of one run (and later
// runs) build each module once.
package rulestest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string][]byte{}
)

// Build returns the wasm of the main package at pkg, a path relative to the
// module root such as "shared/rules/modules/piiscrub/wasm".
func Build(tb testing.TB, pkg string) []byte {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[pkg]; ok {
		return b
	}
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	key, err := sourceKey(root, pkg)
	if err != nil {
		tb.Fatal(err)
	}
	cached := filepath.Join(os.TempDir(), "replayvault-rules", key+".wasm")
	if b, err := os.ReadFile(cached); err == nil {
		built[pkg] = b
		return b
	}
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := cached + fmt.Sprintf(".%d.tmp", os.Getpid())
	cmd := exec.Command(goTool(), "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, "./"+pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build rule module %s: %v\n%s", pkg, err, out)
	}
	if err := os.Rename(tmp, cached); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(cached)
	if err != nil {
		tb.Fatal(err)
	}
	built[pkg] = b
	return b
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// moduleRoot finds go.mod above this package's directory at test time (the
// working directory of a test is its package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// sourceKey hashes what a module's build depends on inside this repository:
// the Go files of the package, of its parent (the rule's logic), of the
// sdk, go.mod and go.sum, and the toolchain version.
func sourceKey(root, pkg string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), pkg)
	var files []string
	for _, dir := range []string{pkg, filepath.Dir(pkg), "shared/rules/sdk"} {
		m, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return "", err
		}
		files = append(files, m...)
	}
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	sort.Strings(files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", strings.TrimPrefix(f, root), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}
