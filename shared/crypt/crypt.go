// Package crypt is replayvault's envelope encryption. Every segment is sealed
// with its own random 256-bit data key (DEK) under AES-256-GCM, with the
// segment's identity as additional authenticated data. The DEK is stored only
// wrapped by a key-encryption key (KEK); a KEK is a random key wrapped once by
// the Cloud KMS root key. Deleting a segment's wrapped DEK is the crypto-shred.
package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/replayvault/replayvault/shared/derrors"
)

// ErrIntegrity means a ciphertext or wrapped key failed authentication: the
// bytes were changed, or belong to another identity or key. Never serve them.
var ErrIntegrity = fmt.Errorf("segment %w", derrors.Integrity)

const (
	keySize   = 32
	nonceSize = 12
	// Overhead is how many bytes sealing adds to a plaintext.
	Overhead = nonceSize + 16
)

// Sealed is one sealed segment.
type Sealed struct {
	Ciphertext []byte // nonce || AES-256-GCM(DEK, plaintext, aad)
	WrappedDEK []byte // nonce || AES-256-GCM(KEK, DEK, aad)
}

// Seal encrypts plaintext under a fresh DEK and wraps the DEK with kek; aad
// binds both to the segment's identity.
func Seal(kek *KEK, aad, plaintext []byte) (Sealed, error) {
	var dek [keySize]byte
	if _, err := rand.Read(dek[:]); err != nil {
		return Sealed{}, fmt.Errorf("generate dek: %w", err)
	}
	dekAEAD, err := newGCM(dek[:])
	if err != nil {
		return Sealed{}, err
	}
	ct, err := seal(dekAEAD, aad, plaintext)
	if err != nil {
		return Sealed{}, err
	}
	wrapped, err := seal(kek.aead, aad, dek[:])
	if err != nil {
		return Sealed{}, err
	}
	clear(dek[:])
	return Sealed{Ciphertext: ct, WrappedDEK: wrapped}, nil
}

// Open unwraps the DEK with kek and decrypts ciphertext. Any tampering, or a
// mismatched identity or key, returns an error wrapping ErrIntegrity.
func Open(kek *KEK, aad, ciphertext, wrappedDEK []byte) ([]byte, error) {
	return openSegment(kek, aad, ciphertext, wrappedDEK, false)
}

// OpenInPlace is Open decrypting into ciphertext's own storage, which it
// overwrites: for a reader that holds the sealed bytes only to decrypt
// them, it saves a copy of the segment.
func OpenInPlace(kek *KEK, aad, ciphertext, wrappedDEK []byte) ([]byte, error) {
	return openSegment(kek, aad, ciphertext, wrappedDEK, true)
}

func openSegment(kek *KEK, aad, ciphertext, wrappedDEK []byte, inPlace bool) ([]byte, error) {
	dekAEAD, err := segmentAEAD(kek, aad, wrappedDEK)
	if err != nil {
		return nil, err
	}
	var pt []byte
	if inPlace {
		pt, err = openInPlace(dekAEAD, aad, ciphertext)
	} else {
		pt, err = open(dekAEAD, aad, ciphertext)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt segment: %w", err)
	}
	return pt, nil
}

// Reseal encrypts plaintext under the DEK that wrappedDEK holds, with a
// fresh nonce, for a segment whose payload is re-encoded in place
// (compaction). The wrapped DEK stays as stored, so deleting it still
// shreds both the old and the new ciphertext, and no KMS call is needed.
// aad must be the segment's identity, as for Open; a wrapped DEK that does
// not open under kek and aad returns an error wrapping ErrIntegrity.
//
// A DEK then seals two messages; with random 96-bit nonces that is far
// inside AES-GCM's limits.
func Reseal(kek *KEK, aad, wrappedDEK, plaintext []byte) ([]byte, error) {
	dekAEAD, err := segmentAEAD(kek, aad, wrappedDEK)
	if err != nil {
		return nil, err
	}
	return seal(dekAEAD, aad, plaintext)
}

// segmentAEAD unwraps a segment's DEK with kek and returns its cipher; the
// unwrapped key bytes are cleared.
func segmentAEAD(kek *KEK, aad, wrappedDEK []byte) (cipher.AEAD, error) {
	dek, err := open(kek.aead, aad, wrappedDEK)
	if err != nil {
		return nil, fmt.Errorf("unwrap dek: %w", err)
	}
	defer clear(dek)
	return newGCM(dek)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

func seal(aead cipher.AEAD, aad, plaintext []byte) ([]byte, error) {
	out := make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("generate nonce: %w", err)
	}
	return aead.Seal(out, out[:nonceSize], plaintext, aad), nil
}

// openInPlace is open into sealed's storage: the plaintext starts where
// the nonce ends.
func openInPlace(aead cipher.AEAD, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrIntegrity, len(sealed))
	}
	body := sealed[nonceSize:]
	pt, err := aead.Open(body[:0], sealed[:nonceSize], body, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return pt, nil
}

func open(aead cipher.AEAD, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrIntegrity, len(sealed))
	}
	// Exactly the plaintext's size: a reader that counts what it holds by
	// capacity (Serve) holds no more than the sealed bytes it read.
	dst := make([]byte, 0, len(sealed)-nonceSize-aead.Overhead())
	pt, err := aead.Open(dst, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return pt, nil
}
