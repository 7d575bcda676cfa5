package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// LimitResult is the CPU-bound limit of this machine: what Pack's
// per-segment work (attributes, decompress + validate, compress if plain,
// seal) costs with no I/O, HTTP or batching, on all cores.
type LimitResult struct {
	Cores      int     `json:"cores"`
	Segments   int64   `json:"segments"`
	WallS      float64 `json:"wall_s"`
	PerS       float64 `json:"segments_per_s"`
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	MBPerS     float64 `json:"mb_per_s"` // compressed input
	// EnvelopeCPUPer1000 is what decoding the push request's JSON (the
	// payload base64-encoded inside) costs on top, measured the same way:
	// Pack and the naive baseline both pay it before validating.
	EnvelopeCPUPer1000 float64 `json:"envelope_cpu_s_per_1000"`
}

// MeasureLimit runs the per-segment work on corpus payloads with one
// worker per usable CPU for about d, and measures this process's CPU.
func MeasureLimit(ctx context.Context, corpus *Corpus, d time.Duration) (LimitResult, error) {
	kek, err := crypt.NewKEK(ctx, newLocalWrapper())
	if err != nil {
		return LimitResult{}, err
	}
	workers := runtime.GOMAXPROCS(0)
	lim := segment.Limits{MaxDecompressed: segment.DefaultMaxDecompressed}
	var (
		segs, inBytes atomic.Int64
		stop          atomic.Bool
		wg            sync.WaitGroup
		firstErr      error
		errOnce       sync.Once
	)
	runtime.GC()
	cpu0 := selfCPU()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replay := uuid.New().String()
			for i := 0; !stop.Load(); i++ {
				var p *Payload
				if i%16 == 0 {
					p = &corpus.First[(w+i)%len(corpus.First)]
				} else {
					p = &corpus.Rest[(w*7919+i)%len(corpus.Rest)]
				}
				attrs := map[string]string{"project_id": "1", "replay_id": replay, "segment_id": strconv.Itoa(i)}
				if err := packWork(kek, attrs, p.Gzip, lim); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				segs.Add(1)
				inBytes.Add(int64(len(p.Gzip)))
			}
		}()
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	wall := time.Since(start)
	cpu := selfCPU() - cpu0
	if firstErr != nil {
		return LimitResult{}, firstErr
	}
	n := segs.Load()
	res := LimitResult{
		Cores:      workers,
		Segments:   n,
		WallS:      wall.Seconds(),
		PerS:       float64(n) / wall.Seconds(),
		CPUPer1000: cpu.Seconds() / float64(n) * 1000,
		MBPerS:     float64(inBytes.Load()) / 1e6 / wall.Seconds(),
	}
	env, err := measureEnvelope(ctx, corpus, d/3, workers)
	res.EnvelopeCPUPer1000 = env
	return res, err
}

// measureEnvelope decodes push request bodies with Pack's own decoder
// (packer.DecodePush, as Packer.ServeHTTP does) and returns the CPU seconds
// per 1000.
func measureEnvelope(ctx context.Context, corpus *Corpus, d time.Duration, workers int) (float64, error) {
	stream := NewStream(corpus, workload.DefaultLengths(), 100, 10, 1)
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = stream.Next().Body
	}
	var (
		n    atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
		bad  atomic.Value
	)
	cpu0 := selfCPU()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				if _, err := packer.DecodePush(bodies[i%len(bodies)]); err != nil {
					bad.Store(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	if err, _ := bad.Load().(error); err != nil {
		return 0, err
	}
	if n.Load() == 0 {
		return 0, nil
	}
	return (selfCPU() - cpu0).Seconds() / float64(n.Load()) * 1000, ctx.Err()
}

// packWork is Pack's per-segment CPU work, as in packer.Ingest.
func packWork(kek *crypt.KEK, attrs map[string]string, data []byte, lim segment.Limits) error {
	a, err := segment.ParseAttributes(attrs)
	if err != nil {
		return err
	}
	info, err := segment.Validate(data, lim)
	if err != nil {
		return err
	}
	stored := data
	if info.Encoding == segment.Plain {
		stored = segment.Compress(data)
	}
	_, err = crypt.Seal(kek, a.ID.AAD(), stored)
	return err
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// localWrapper wraps keys with an in-memory AES key: a KMS without the
// network, for the no-I/O limit.
type localWrapper struct{ aead cipher.AEAD }

func newLocalWrapper() *localWrapper {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return &localWrapper{aead: aead}
}

func (l *localWrapper) Wrap(_ context.Context, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, l.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return l.aead.Seal(nonce, nonce, plaintext, aad), nil
}

func (l *localWrapper) Unwrap(_ context.Context, ciphertext, aad []byte) ([]byte, error) {
	n := l.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, fmt.Errorf("local unwrap: short ciphertext")
	}
	return l.aead.Open(nil, ciphertext[:n], ciphertext[n:], aad)
}

func (l *localWrapper) KeyName() string { return "local" }
