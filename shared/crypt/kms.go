package crypt

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/replayvault/replayvault/shared/derrors"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Wrapper wraps and unwraps small keys with a root key. The Cloud KMS
// implementation is the production one; tests use it too, against a local
// KMS gRPC server.
type Wrapper interface {
	Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, ciphertext, aad []byte) ([]byte, error)
	KeyName() string
}

// ErrKMSUnavailable marks a KMS failure worth retrying later.
var ErrKMSUnavailable = fmt.Errorf("kms %w", derrors.Unavailable)

// NewKMSClient returns a Cloud KMS client. With an endpoint (local runs) it
// talks plaintext gRPC without credentials; otherwise it uses Application
// Default Credentials against the real service. extra options follow
// (instrumentation).
func NewKMSClient(ctx context.Context, endpoint string, extra ...option.ClientOption) (*kms.KeyManagementClient, error) {
	var opts []option.ClientOption
	if endpoint != "" {
		opts = append(opts,
			option.WithEndpoint(endpoint),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	c, err := kms.NewKeyManagementClient(ctx, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kms client: %w", err)
	}
	return c, nil
}

// KMS wraps keys with one Cloud KMS symmetric key and checks the CRC32C
// integrity fields of every response, as Google recommends.
type KMS struct {
	client  *kms.KeyManagementClient
	key     string
	timeout time.Duration
}

// NewKMS returns a Wrapper over client for the key named key.
func NewKMS(client *kms.KeyManagementClient, key string, timeout time.Duration) *KMS {
	return &KMS{client: client, key: key, timeout: timeout}
}

// KeyName returns the KMS key's resource name.
func (k *KMS) KeyName() string { return k.key }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, castagnoli)))
}

// Wrap encrypts plaintext with the KMS key.
func (k *KMS) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	resp, err := k.client.Encrypt(ctx, &kmspb.EncryptRequest{
		Name:                              k.key,
		Plaintext:                         plaintext,
		PlaintextCrc32C:                   crc(plaintext),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: crc(aad),
	})
	if err != nil {
		return nil, kmsError("encrypt", err)
	}
	if !resp.VerifiedPlaintextCrc32C || !resp.VerifiedAdditionalAuthenticatedDataCrc32C {
		return nil, fmt.Errorf("kms encrypt: request corrupted in transit")
	}
	if resp.CiphertextCrc32C == nil || resp.CiphertextCrc32C.Value != crc(resp.Ciphertext).Value {
		return nil, fmt.Errorf("kms encrypt: response corrupted in transit")
	}
	return resp.Ciphertext, nil
}

// Unwrap decrypts ciphertext with the KMS key.
func (k *KMS) Unwrap(ctx context.Context, ciphertext, aad []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	resp, err := k.client.Decrypt(ctx, &kmspb.DecryptRequest{
		Name:                              k.key,
		Ciphertext:                        ciphertext,
		CiphertextCrc32C:                  crc(ciphertext),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: crc(aad),
	})
	if err != nil {
		return nil, kmsError("decrypt", err)
	}
	if resp.PlaintextCrc32C == nil || resp.PlaintextCrc32C.Value != crc(resp.Plaintext).Value {
		return nil, fmt.Errorf("kms decrypt: response corrupted in transit")
	}
	return resp.Plaintext, nil
}

func kmsError(op string, err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return fmt.Errorf("kms %s: %w: %w", op, ErrKMSUnavailable, err)
	case codes.InvalidArgument:
		// KMS answers InvalidArgument when the ciphertext or AAD does not
		// authenticate.
		return fmt.Errorf("kms %s: %w: %w", op, ErrIntegrity, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kms %s: %w: %w", op, ErrKMSUnavailable, err)
	}
	return fmt.Errorf("kms %s: %w", op, err)
}
