package testenv

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// DefaultKMSKey is the CryptoKey every KMS server starts with.
const DefaultKMSKey = "projects/local/locations/global/keyRings/replayvault/cryptoKeys/root"

const (
	// kmsMaxData is the real service's limit on plaintext and AAD of a
	// SOFTWARE key.
	kmsMaxData = 64 << 10
	// kmsFormat leads every ciphertext; the 12-byte GCM nonce follows it,
	// then the sealed plaintext.
	kmsFormat = 1
	// kmsSeedName holds the master seed under StartKMSDir's dir.
	kmsSeedName = "kms-seed"
)

// kmsName splits projects/P/locations/L/keyRings/R/cryptoKeys/K with an
// optional /cryptoKeyVersions/V.
var kmsName = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+)(?:/cryptoKeyVersions/([^/]+))?$`)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// KMS is an in-process gRPC server implementing the Cloud KMS Encrypt and
// Decrypt RPCs with AES-256-GCM, for use through the real KMS client. Each
// CryptoKey has one version, 1, whose key is derived from a per-server
// random seed (or a seed kept in a directory, see StartKMSDir).
type KMS struct {
	lis    net.Listener
	grpc   *grpc.Server
	served chan struct{} // closed when Serve returns
	svc    *kmsService
}

// StartKMS starts a KMS server on 127.0.0.1 with a fresh random seed and the
// key DefaultKMSKey.
func StartKMS() (*KMS, error) {
	return StartKMSDir("")
}

// StartKMSDir is StartKMS with the seed kept in dir (created on first use),
// so that what one run of the dev stack encrypted the next can decrypt. With
// dir == "" the seed is random and lives in memory only.
func StartKMSDir(dir string) (*KMS, error) {
	seed, err := kmsSeed(dir)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("kms listen: %w", err)
	}
	k := &KMS{
		lis:    lis,
		grpc:   grpc.NewServer(),
		served: make(chan struct{}),
		svc:    &kmsService{seed: seed, keys: map[string]cipher.AEAD{}},
	}
	if err := k.AddKey(DefaultKMSKey); err != nil {
		lis.Close()
		return nil, err
	}
	kmspb.RegisterKeyManagementServiceServer(k.grpc, k.svc)
	go func() {
		defer close(k.served)
		if err := k.grpc.Serve(lis); err != nil {
			slog.Error("kms serve", "err", err)
		}
	}()
	return k, nil
}

// NewKMS starts a KMS server for the duration of t.
func NewKMS(t testing.TB) *KMS {
	t.Helper()
	k, err := StartKMS()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(k.Stop)
	return k
}

// Endpoint returns host:port for the client's endpoint option (plaintext,
// no authentication).
func (k *KMS) Endpoint() string { return k.lis.Addr().String() }

// KeyName returns the name of the CryptoKey the server starts with.
func (k *KMS) KeyName() string { return DefaultKMSKey }

// AddKey creates CryptoKey name
// (projects/P/locations/L/keyRings/R/cryptoKeys/K); adding an existing key is
// a no-op. Calls naming a key that was never added answer NotFound.
func (k *KMS) AddKey(name string) error {
	m := kmsName.FindStringSubmatch(name)
	if m == nil || m[2] != "" {
		return fmt.Errorf("kms key name %q is not projects/P/locations/L/keyRings/R/cryptoKeys/K", name)
	}
	mac := hmac.New(sha256.New, k.svc.seed)
	mac.Write([]byte(name))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return fmt.Errorf("kms key %s: %w", name, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("kms key %s: %w", name, err)
	}
	k.svc.mu.Lock()
	defer k.svc.mu.Unlock()
	k.svc.keys[name] = aead
	return nil
}

// Stop closes the server and its connections.
func (k *KMS) Stop() {
	k.grpc.Stop()
	<-k.served
}

// EncryptCalls returns how many Encrypt calls the server has received.
func (k *KMS) EncryptCalls() int64 { return k.svc.encryptCalls.Load() }

// DecryptCalls returns how many Decrypt calls the server has received.
func (k *KMS) DecryptCalls() int64 { return k.svc.decryptCalls.Load() }

// SetLatency delays every call by d.
func (k *KMS) SetLatency(d time.Duration) {
	k.svc.mu.Lock()
	defer k.svc.mu.Unlock()
	k.svc.latency = d
}

// FailEncrypt makes Encrypt answer Internal, which the client does not
// retry, until called with false.
func (k *KMS) FailEncrypt(fail bool) {
	k.svc.mu.Lock()
	defer k.svc.mu.Unlock()
	k.svc.failEncrypt = fail
}

// kmsSeed reads or creates the seed file in dir, or returns a random seed.
// Hang makes every Encrypt and Decrypt call, from now on and already
// waiting, block until Hang(false) or the caller's deadline: a KMS that
// accepts connections but never answers.
func (k *KMS) Hang(hang bool) {
	k.svc.mu.Lock()
	defer k.svc.mu.Unlock()
	switch {
	case hang && k.svc.hung == nil:
		k.svc.hung = make(chan struct{})
	case !hang && k.svc.hung != nil:
		close(k.svc.hung)
		k.svc.hung = nil
	}
}

func kmsSeed(dir string) ([]byte, error) {
	if dir == "" {
		seed := make([]byte, 32)
		_, err := rand.Read(seed)
		return seed, err
	}
	path := filepath.Join(dir, kmsSeedName)
	seed, err := os.ReadFile(path)
	if err == nil {
		if len(seed) != 32 {
			return nil, fmt.Errorf("kms seed %s: want 32 bytes, got %d", path, len(seed))
		}
		return seed, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("kms seed: %w", err)
	}
	seed = make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kms seed: %w", err)
	}
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		return nil, fmt.Errorf("kms seed: %w", err)
	}
	return seed, nil
}

// kmsService implements the RPCs; the embedded Unimplemented server answers
// Unimplemented for everything but Encrypt and Decrypt.
type kmsService struct {
	kmspb.UnimplementedKeyManagementServiceServer

	seed                       []byte
	encryptCalls, decryptCalls atomic.Int64

	mu          sync.Mutex
	keys        map[string]cipher.AEAD // by CryptoKey name
	latency     time.Duration
	failEncrypt bool
	hung        chan struct{} // non-nil: calls wait until it is closed
}

func (s *kmsService) Encrypt(ctx context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	s.encryptCalls.Add(1)
	fail, err := s.delay(ctx)
	if err != nil {
		return nil, err
	}
	if fail {
		return nil, status.Error(codes.Internal, "testenv: injected encrypt failure")
	}
	m := kmsName.FindStringSubmatch(req.GetName())
	if m == nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid resource name %q", req.GetName())
	}
	if m[2] != "" && m[2] != "1" {
		return nil, status.Errorf(codes.NotFound, "%s not found", req.GetName())
	}
	aead, err := s.key(m[1])
	if err != nil {
		return nil, err
	}
	if len(req.GetPlaintext()) == 0 || len(req.GetPlaintext()) > kmsMaxData {
		return nil, status.Errorf(codes.InvalidArgument, "plaintext must be 1 to %d bytes, got %d", kmsMaxData, len(req.GetPlaintext()))
	}
	if len(req.GetAdditionalAuthenticatedData()) > kmsMaxData {
		return nil, status.Errorf(codes.InvalidArgument, "additional_authenticated_data must be at most %d bytes", kmsMaxData)
	}
	verifiedPlaintext, err := checkCRC32C("plaintext", req.GetPlaintext(), req.GetPlaintextCrc32C())
	if err != nil {
		return nil, err
	}
	verifiedAAD, err := checkCRC32C("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C())
	if err != nil {
		return nil, err
	}

	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(req.GetPlaintext())+aead.Overhead())
	out[0] = kmsFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, status.Errorf(codes.Internal, "nonce: %v", err)
	}
	out = aead.Seal(out, out[1:], req.GetPlaintext(), req.GetAdditionalAuthenticatedData())
	return &kmspb.EncryptResponse{
		Name:                    m[1] + "/cryptoKeyVersions/1",
		Ciphertext:              out,
		CiphertextCrc32C:        crc32cValue(out),
		VerifiedPlaintextCrc32C: verifiedPlaintext,
		VerifiedAdditionalAuthenticatedDataCrc32C: verifiedAAD,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

func (s *kmsService) Decrypt(ctx context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	s.decryptCalls.Add(1)
	if _, err := s.delay(ctx); err != nil {
		return nil, err
	}
	m := kmsName.FindStringSubmatch(req.GetName())
	if m == nil || m[2] != "" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid resource name %q: Decrypt takes a CryptoKey", req.GetName())
	}
	aead, err := s.key(m[1])
	if err != nil {
		return nil, err
	}
	if _, err := checkCRC32C("ciphertext", req.GetCiphertext(), req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	if _, err := checkCRC32C("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	ct := req.GetCiphertext()
	if len(ct) < 1+aead.NonceSize()+aead.Overhead() || ct[0] != kmsFormat {
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	}
	nonce, sealed := ct[1:1+aead.NonceSize()], ct[1+aead.NonceSize():]
	plaintext, err := aead.Open(nil, nonce, sealed, req.GetAdditionalAuthenticatedData())
	if err != nil {
		// The real service cannot tell a wrong key from wrong AAD either.
		return nil, status.Error(codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
	}
	return &kmspb.DecryptResponse{
		Plaintext:       plaintext,
		PlaintextCrc32C: crc32cValue(plaintext),
		UsedPrimary:     true,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

// delay applies the configured latency and reports whether Encrypt should
// fail.
func (s *kmsService) delay(ctx context.Context) (failEncrypt bool, err error) {
	s.mu.Lock()
	latency, fail, hung := s.latency, s.failEncrypt, s.hung
	s.mu.Unlock()
	if hung != nil {
		select {
		case <-hung:
		case <-ctx.Done():
			return false, status.FromContextError(ctx.Err()).Err()
		}
	}
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-ctx.Done():
			return false, status.FromContextError(ctx.Err()).Err()
		}
	}
	return fail, nil
}

func (s *kmsService) key(name string) (cipher.AEAD, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	aead, ok := s.keys[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "%s not found", name)
	}
	return aead, nil
}

// checkCRC32C verifies data against the checksum a client sent, if it sent
// one, and reports whether it did.
func checkCRC32C(field string, data []byte, sum *wrapperspb.Int64Value) (bool, error) {
	if sum == nil {
		return false, nil
	}
	if got := int64(crc32.Checksum(data, castagnoli)); got != sum.GetValue() {
		return false, status.Errorf(codes.InvalidArgument, "The checksum in field %s_crc32c did not match the data in field %s.", field, field)
	}
	return true, nil
}

func crc32cValue(data []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(data, castagnoli)))
}
