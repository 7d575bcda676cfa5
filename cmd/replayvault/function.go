package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	// The root package registers Pack, Serve and Shred with the framework.
	_ "github.com/replayvault/replayvault"
)

// runFunction serves one registered function exactly as Cloud Run does:
// FUNCTION_TARGET names it, PORT is where to listen, and the rest of the
// configuration comes from the environment. The dev stack and the
// benchmark start this binary once per function.
func runFunction(ctx context.Context, args []string, _ io.Writer) error {
	fs := newFlagSet("function", "(with FUNCTION_TARGET and PORT set)")
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
		// The framework has no graceful stop; exiting drops in-flight
		// requests, which Pub/Sub redelivers.
		return nil
	}
}
