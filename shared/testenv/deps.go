package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/store"
)

// TestBucket is the bucket NewDeps creates.
const TestBucket = "replayvault-test"

// Deps is the set of real local dependencies one function test needs, with
// the production clients already pointed at them.
type Deps struct {
	DSN string
	DB  *store.DB
	// DBStats counts the statements and transactions of DB.
	DBStats *store.Stats
	GCS     *GCS
	KMS     *KMS
	Blobs   *blob.GCS
	Wrapper *crypt.KMS
}

// NewDeps starts a fresh database, fake-gcs-server with TestBucket and a KMS
// server, and connects the real clients; everything is closed at cleanup.
func NewDeps(t testing.TB) *Deps {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := &Deps{DSN: NewDB(t), GCS: NewGCS(t, TestBucket), KMS: NewKMS(t), DBStats: &store.Stats{}}
	db, err := store.OpenURL(ctx, d.DSN, store.WithTracer(d.DBStats))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(db.Close)
	d.DB = db
	gc, err := d.GCS.Client(ctx)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { gc.Close() })
	d.Blobs = blob.NewGCS(gc, TestBucket, 30*time.Second)
	kc, err := crypt.NewKMSClient(ctx, d.KMS.Endpoint())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { kc.Close() })
	d.Wrapper = crypt.NewKMS(kc, d.KMS.KeyName(), 10*time.Second)
	return d
}

// Keyring returns a packer keyring over d's KMS and database.
func (d *Deps) Keyring() *crypt.Keyring {
	return crypt.NewKeyring(d.Wrapper, func(ctx context.Context, k *crypt.KEK) error {
		return d.DB.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, time.Hour)
}

// KEKCache returns a read-path KEK cache over d's KMS and database.
func (d *Deps) KEKCache() *crypt.KEKCache {
	return crypt.NewKEKCache(d.Wrapper, d.DB.WrappedKEK, 64, time.Minute)
}
