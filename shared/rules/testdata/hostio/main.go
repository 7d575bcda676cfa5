//go:build wasip1

// Command hostio tries to reach the host: files, environment, clock,
// randomness, stdout. It reports what it got as tags.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/replayvault/replayvault/shared/rules/sdk"
)

func init() {
	sdk.Handle(func(in *sdk.Input) (*sdk.Output, error) {
		o := sdk.Keep()
		tag := func(k string, v any) { o.Tags = append(o.Tags, sdk.Tag{Key: k, Value: fmt.Sprint(v)}) }
		_, err := os.ReadFile(in.Attributes["read"])
		tag("read", err == nil)
		err = os.WriteFile(in.Attributes["write"], []byte("escaped"), 0o644)
		tag("write", err == nil)
		_, err = os.ReadDir("/")
		tag("readdir", err == nil)
		tag("env", strings.Join(os.Environ(), ","))
		tag("args", len(os.Args))
		_, err = net.Dial("tcp", in.Attributes["dial"])
		tag("dial", err == nil)
		tag("now", time.Now().UTC().Format(time.RFC3339))
		var r [8]byte
		rand.Read(r[:])
		tag("rand", hex.EncodeToString(r[:]))
		big := strings.Repeat("x", 1<<20)
		_, err = fmt.Fprint(os.Stdout, big)
		tag("stdout_flood", err == nil)
		return o, nil
	})
}

func main() {}
