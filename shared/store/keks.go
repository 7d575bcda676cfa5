package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/replayvault/replayvault/shared/derrors"
)

// ErrNotFound means the row asked for does not exist.
var ErrNotFound = fmt.Errorf("row %w", derrors.NotFound)

// InsertKEK stores a wrapped KEK. The packer calls it before sealing anything
// with the KEK.
func (db *DB) InsertKEK(ctx context.Context, id uuid.UUID, kmsKey string, wrapped []byte) error {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	_, err := db.Pool.Exec(ctx, `INSERT INTO keks (id, kms_key, wrapped) VALUES ($1, $2, $3)`, id, kmsKey, wrapped)
	if err != nil {
		return fmt.Errorf("insert kek %s: %w", id, classify(err))
	}
	return nil
}

// WrappedKEK returns the wrapped form of KEK id.
func (db *DB) WrappedKEK(ctx context.Context, id uuid.UUID) ([]byte, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var wrapped []byte
	err := db.Pool.QueryRow(ctx, `SELECT wrapped FROM keks WHERE id = $1`, id).Scan(&wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("kek %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("kek %s: %w", id, classify(err))
	}
	return wrapped, nil
}
