package testenv

import (
	"context"
	"hash/crc32"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestKMSRoundTrip(t *testing.T) {
	ctx := t.Context()
	k := NewKMS(t)
	client := kmsClient(t, k.Endpoint())
	plaintext, aad := []byte("a 32-byte data encryption key..."), []byte("replay r1")

	enc, err := client.Encrypt(ctx, &kmspb.EncryptRequest{
		Name:                              k.KeyName(),
		Plaintext:                         plaintext,
		AdditionalAuthenticatedData:       aad,
		PlaintextCrc32C:                   crc(plaintext),
		AdditionalAuthenticatedDataCrc32C: crc(aad),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !enc.GetVerifiedPlaintextCrc32C() || !enc.GetVerifiedAdditionalAuthenticatedDataCrc32C() {
		t.Errorf("verified_plaintext_crc32c, verified_aad_crc32c = %v, %v; want true, true",
			enc.GetVerifiedPlaintextCrc32C(), enc.GetVerifiedAdditionalAuthenticatedDataCrc32C())
	}
	if enc.GetCiphertextCrc32C() == nil || enc.GetCiphertextCrc32C().GetValue() != crc(enc.GetCiphertext()).GetValue() {
		t.Errorf("ciphertext_crc32c = %v, want %d", enc.GetCiphertextCrc32C(), crc(enc.GetCiphertext()).GetValue())
	}
	if want := k.KeyName() + "/cryptoKeyVersions/1"; enc.GetName() != want {
		t.Errorf("Encrypt name = %q, want %q", enc.GetName(), want)
	}

	dec, err := client.Decrypt(ctx, &kmspb.DecryptRequest{
		Name:                              k.KeyName(),
		Ciphertext:                        enc.GetCiphertext(),
		AdditionalAuthenticatedData:       aad,
		CiphertextCrc32C:                  crc(enc.GetCiphertext()),
		AdditionalAuthenticatedDataCrc32C: crc(aad),
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(dec.GetPlaintext()) != string(plaintext) {
		t.Errorf("Decrypt = %q, want %q", dec.GetPlaintext(), plaintext)
	}
	if dec.GetPlaintextCrc32C() == nil || dec.GetPlaintextCrc32C().GetValue() != crc(plaintext).GetValue() {
		t.Errorf("plaintext_crc32c = %v, want %d", dec.GetPlaintextCrc32C(), crc(plaintext).GetValue())
	}

	// Without request checksums the server verifies nothing and says so.
	enc2, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.KeyName(), Plaintext: plaintext})
	if err != nil {
		t.Fatal(err)
	}
	if enc2.GetVerifiedPlaintextCrc32C() || enc2.GetVerifiedAdditionalAuthenticatedDataCrc32C() {
		t.Error("verified flags set although the request sent no checksums")
	}
	if string(enc2.GetCiphertext()) == string(enc.GetCiphertext()) {
		t.Error("two encryptions of the same plaintext gave the same ciphertext")
	}

	if got, want := k.EncryptCalls(), int64(2); got != want {
		t.Errorf("EncryptCalls = %d, want %d", got, want)
	}
	if got, want := k.DecryptCalls(), int64(1); got != want {
		t.Errorf("DecryptCalls = %d, want %d", got, want)
	}
}

func TestKMSErrors(t *testing.T) {
	ctx := t.Context()
	k := NewKMS(t)
	other := "projects/local/locations/global/keyRings/replayvault/cryptoKeys/other"
	if err := k.AddKey(other); err != nil {
		t.Fatal(err)
	}
	client := kmsClient(t, k.Endpoint())
	aad := []byte("replay r1")
	enc, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.KeyName(), Plaintext: []byte("secret"), AdditionalAuthenticatedData: aad})
	if err != nil {
		t.Fatal(err)
	}
	ct := enc.GetCiphertext()
	flipped := append([]byte(nil), ct...)
	flipped[len(flipped)-1] ^= 1

	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"decrypt with wrong aad", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.KeyName(), Ciphertext: ct, AdditionalAuthenticatedData: []byte("replay r2")})
			return err
		}, codes.InvalidArgument},
		{"decrypt without aad", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.KeyName(), Ciphertext: ct})
			return err
		}, codes.InvalidArgument},
		{"decrypt with another key", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: other, Ciphertext: ct, AdditionalAuthenticatedData: aad})
			return err
		}, codes.InvalidArgument},
		{"decrypt tampered ciphertext", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.KeyName(), Ciphertext: flipped, AdditionalAuthenticatedData: aad})
			return err
		}, codes.InvalidArgument},
		{"decrypt with bad ciphertext crc32c", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.KeyName(), Ciphertext: ct, AdditionalAuthenticatedData: aad, CiphertextCrc32C: crc(flipped)})
			return err
		}, codes.InvalidArgument},
		{"decrypt with a key version", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: k.KeyName() + "/cryptoKeyVersions/1", Ciphertext: ct, AdditionalAuthenticatedData: aad})
			return err
		}, codes.InvalidArgument},
		{"encrypt with bad plaintext crc32c", func() error {
			_, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.KeyName(), Plaintext: []byte("secret"), PlaintextCrc32C: crc([]byte("other"))})
			return err
		}, codes.InvalidArgument},
		{"encrypt with bad aad crc32c", func() error {
			_, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.KeyName(), Plaintext: []byte("secret"), AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: crc(nil)})
			return err
		}, codes.InvalidArgument},
		{"encrypt with unknown key", func() error {
			_, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: "projects/local/locations/global/keyRings/replayvault/cryptoKeys/missing", Plaintext: []byte("secret")})
			return err
		}, codes.NotFound},
		{"encrypt with malformed name", func() error {
			_, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: "keyRings/replayvault/cryptoKeys/root", Plaintext: []byte("secret")})
			return err
		}, codes.InvalidArgument},
		{"encrypt with missing version", func() error {
			_, err := client.Encrypt(ctx, &kmspb.EncryptRequest{Name: k.KeyName() + "/cryptoKeyVersions/2", Plaintext: []byte("secret")})
			return err
		}, codes.NotFound},
		{"decrypt with unknown key", func() error {
			_, err := client.Decrypt(ctx, &kmspb.DecryptRequest{Name: "projects/local/locations/global/keyRings/replayvault/cryptoKeys/missing", Ciphertext: ct})
			return err
		}, codes.NotFound},
		{"unimplemented rpc", func() error {
			_, err := client.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: k.KeyName()})
			return err
		}, codes.Unimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.want {
				t.Errorf("code = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKMSFaults(t *testing.T) {
	ctx := t.Context()
	k := NewKMS(t)
	client := kmsClient(t, k.Endpoint())
	req := &kmspb.EncryptRequest{Name: k.KeyName(), Plaintext: []byte("secret")}

	k.FailEncrypt(true)
	if _, err := client.Encrypt(ctx, req); status.Code(err) != codes.Internal {
		t.Errorf("Encrypt while failing: %v, want Internal", err)
	}
	if got := k.EncryptCalls(); got != 1 {
		t.Errorf("EncryptCalls = %d, want 1 (Internal is not retried)", got)
	}
	k.FailEncrypt(false)

	const d = 200 * time.Millisecond
	k.SetLatency(d)
	start := time.Now()
	if _, err := client.Encrypt(ctx, req); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("Encrypt took %s with latency %s", took, d)
	}
}

// TestStartKMSDir is the dev stack's --data-dir: a restarted server decrypts
// what the previous one encrypted.
func TestStartKMSDir(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	encryptWith := func() []byte {
		k, err := StartKMSDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Stop()
		enc, err := kmsClient(t, k.Endpoint()).Encrypt(ctx, &kmspb.EncryptRequest{Name: k.KeyName(), Plaintext: []byte("kept")})
		if err != nil {
			t.Fatal(err)
		}
		return enc.GetCiphertext()
	}
	ct := encryptWith()

	k, err := StartKMSDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	dec, err := kmsClient(t, k.Endpoint()).Decrypt(ctx, &kmspb.DecryptRequest{Name: k.KeyName(), Ciphertext: ct})
	if err != nil {
		t.Fatalf("decrypt after restart: %v", err)
	}
	if string(dec.GetPlaintext()) != "kept" {
		t.Errorf("decrypt after restart = %q, want %q", dec.GetPlaintext(), "kept")
	}

	// A server with a fresh seed must not.
	fresh := NewKMS(t)
	if _, err := kmsClient(t, fresh.Endpoint()).Decrypt(ctx, &kmspb.DecryptRequest{Name: fresh.KeyName(), Ciphertext: ct}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("decrypt under another seed: %v, want InvalidArgument", err)
	}
}

// kmsClient is the real KMS client pointed at a local server.
func kmsClient(t *testing.T, endpoint string) *kms.KeyManagementClient {
	t.Helper()
	c, err := kms.NewKeyManagementClient(context.Background(),
		option.WithEndpoint(endpoint),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}
