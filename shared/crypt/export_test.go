package crypt

import "time"

// SetKeyringClock lets tests move a keyring's clock.
func SetKeyringClock(k *Keyring, now func() time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.now = now
}
