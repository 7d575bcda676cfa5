package crypt

import "context"

// Counted wraps a Wrapper and reports every call (op "wrap" or "unwrap")
// and its error to count, for the KMS call metric.
func Counted(w Wrapper, count func(ctx context.Context, op string, err error)) Wrapper {
	return countedWrapper{w, count}
}

type countedWrapper struct {
	Wrapper
	count func(context.Context, string, error)
}

func (c countedWrapper) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	b, err := c.Wrapper.Wrap(ctx, plaintext, aad)
	c.count(ctx, "wrap", err)
	return b, err
}

func (c countedWrapper) Unwrap(ctx context.Context, ciphertext, aad []byte) ([]byte, error) {
	b, err := c.Wrapper.Unwrap(ctx, ciphertext, aad)
	c.count(ctx, "unwrap", err)
	return b, err
}
