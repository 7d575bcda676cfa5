package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionDeps holds the deployed code to its boundary: the binary
// Cloud Build migrates with and the root package the functions are built
// from link no test stand-in, no benchmark and no developer tool.
func TestProductionDeps(t *testing.T) {
	forbidden := []string{
		"testing",
		"github.com/fsouza/fake-gcs-server/",
		"github.com/replayvault/replayvault/shared/testenv",
		"github.com/replayvault/replayvault/shared/workload",
		"github.com/replayvault/replayvault/shared/store/storetest",
		"github.com/replayvault/replayvault/cmd/replayvault-dev",
	}
	for _, pkg := range []string{"github.com/replayvault/replayvault/cmd/replayvault", "github.com/replayvault/replayvault"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %q", pkg, deps)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if d == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s links %s", pkg, d)
				}
			}
		}
	}
}
