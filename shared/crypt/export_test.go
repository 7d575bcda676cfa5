package crypt

import "time"

// SetKeyringClock lets tests move a keyring's clock.
func SetKeyringClock(k *Keyring, now func() time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.now = now
}

// WaitRotation waits for the keyring's rotation attempt in flight, if any.
func WaitRotation(k *Keyring) {
	k.mu.Lock()
	running := k.running
	k.mu.Unlock()
	if running != nil {
		<-running
	}
}
