package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	// The root package registers the functions with the framework.
	"github.com/replayvault/replayvault"
)

// Function is the `function` subcommand: it serves one registered function
// exactly as Cloud Run does. FUNCTION_TARGET names it, PORT is where to
// listen, and the rest of the configuration comes from the environment. The
// dev stack and the benchmark start their binary once per function.
var Function = Command{
	Summary: "serve one function (FUNCTION_TARGET, PORT) as Cloud Run does",
	Run:     runFunction,
}

// shutdownGrace bounds the drain on SIGINT or SIGTERM, as Cloud Run's 10 s
// before SIGKILL does.
const shutdownGrace = 9 * time.Second

func runFunction(ctx context.Context, args []string, _ io.Writer) error {
	fs := NewFlagSet("function", "(with FUNCTION_TARGET and PORT set)")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target, port := os.Getenv("FUNCTION_TARGET"), os.Getenv("PORT")
	if target == "" || port == "" {
		return errors.New("set FUNCTION_TARGET (Pack, Serve or Shred) and PORT")
	}
	errc := make(chan error, 1)
	go func() { errc <- funcframework.StartHostPort(*host, port) }()
	select {
	case err := <-errc:
		return fmt.Errorf("function %s: %w", target, err)
	case <-ctx.Done():
		// Drain as on Cloud Run's SIGTERM: Pack flushes what it holds and
		// answers those requests; later requests get 503.
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		return replayvault.Shutdown(sctx)
	}
}
