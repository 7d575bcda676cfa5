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
// per-segment work costs with no I/O, HTTP or batching, on all cores. The
// work is Pack's own code (packer.Packer.Prepare) with Pack's default
// settings: attributes, one decompress + validate pass that also detects
// issues and takes the devtools slices, compression if plain, sealing the
// segment and its slices.
type LimitResult struct {
	Cores      int     `json:"cores"`
	Segments   int64   `json:"segments"`
	WallS      float64 `json:"wall_s"`
	PerS       float64 `json:"segments_per_s"`
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	MBPerS     float64 `json:"mb_per_s"` // compressed input
	// EnvelopeCPUPer1000 is what decoding the request's form costs on top
	// (the direct form's block, or the push JSON with the payload
	// base64-encoded inside), measured the same way: Pack and the naive
	// baseline both pay it before validating.
	EnvelopeCPUPer1000 float64 `json:"envelope_cpu_s_per_1000"`
	// SharedCPUPer1000 is the part of the work the naive baseline does
	// too (attributes, validate, compress if plain, seal; no issue
	// detection or slices), measured the same way.
	SharedCPUPer1000 float64 `json:"shared_cpu_s_per_1000"`
}

// MeasureLimit runs the per-segment work on corpus payloads with one
// worker per usable CPU for about d, and measures this process's CPU; the
// envelope's cost is that of requests in form.
func MeasureLimit(ctx context.Context, corpus *Corpus, d time.Duration, form PushForm) (LimitResult, error) {
	pk, err := limitPacker(ctx)
	if err != nil {
		return LimitResult{}, err
	}
	workers := runtime.GOMAXPROCS(0)
	w, err := runWork(ctx, corpus, time.After(d), workers, prepareWork(ctx, pk))
	if err != nil {
		return LimitResult{}, err
	}
	res := LimitResult{
		Cores:      workers,
		Segments:   w.n,
		WallS:      w.wall.Seconds(),
		PerS:       float64(w.n) / w.wall.Seconds(),
		CPUPer1000: w.cpuPer1000(),
		MBPerS:     float64(w.inBytes) / 1e6 / w.wall.Seconds(),
	}
	kek, err := crypt.NewKEK(ctx, newLocalWrapper())
	if err != nil {
		return res, err
	}
	lim := segment.Limits{MaxDecompressed: segment.DefaultMaxDecompressed}
	w, err = runWork(ctx, corpus, time.After(d/3), workers, func(data []byte, attrs map[string]string) error {
		return sharedWork(kek, attrs, data, lim)
	})
	if err != nil {
		return res, err
	}
	res.SharedCPUPer1000 = w.cpuPer1000()
	env, err := measureEnvelope(ctx, corpus, d/3, workers, form)
	res.EnvelopeCPUPer1000 = env
	return res, err
}

// prepareWork is the limit's work: Pack's own Packer.Prepare.
func prepareWork(ctx context.Context, pk *packer.Packer) func(data []byte, attrs map[string]string) error {
	return func(data []byte, attrs map[string]string) error {
		return pk.Prepare(ctx, packer.Message{Data: data, Attributes: attrs})
	}
}

// workDone is what runWork did: segments, their compressed bytes, this
// process's CPU over the run (every thread: the workers, GC, the rest of
// the process), the workers' own threads' CPU, and the wall time.
type workDone struct {
	n, inBytes     int64
	cpu, threadCPU time.Duration
	wall           time.Duration
}

// cpuPer1000 is the process's CPU seconds per 1000 segments.
func (w workDone) cpuPer1000() float64 { return w.cpu.Seconds() / float64(max(w.n, 1)) * 1000 }

// runWork runs work on corpus payloads (one in 16 a replay's first) with
// the given number of workers, each on a thread of its own, until stop
// fires or ctx ends.
func runWork(ctx context.Context, corpus *Corpus, stop <-chan time.Time, workers int, work func(data []byte, attrs map[string]string) error) (workDone, error) {
	var (
		segs, bytes, threadNS atomic.Int64
		stopped               atomic.Bool
		wg                    sync.WaitGroup
		errOnce               sync.Once
		err                   error
	)
	runtime.GC()
	cpu0 := selfCPU()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A thread of its own, so its CPU time is the work's alone.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			defer func() { threadNS.Add(int64(threadCPU() - t0)) }()
			replay := uuid.New().String()
			for i := 0; !stopped.Load(); i++ {
				var p *Payload
				if i%16 == 0 {
					p = &corpus.First[(w+i)%len(corpus.First)]
				} else {
					p = &corpus.Rest[(w*7919+i)%len(corpus.Rest)]
				}
				attrs := map[string]string{"project_id": "1", "replay_id": replay, "segment_id": strconv.Itoa(i)}
				if werr := work(p.Gzip, attrs); werr != nil {
					errOnce.Do(func() { err = werr })
					return
				}
				segs.Add(1)
				bytes.Add(int64(len(p.Gzip)))
			}
		}()
	}
	select {
	case <-stop:
	case <-ctx.Done():
	}
	stopped.Store(true)
	wg.Wait()
	done := workDone{n: segs.Load(), inBytes: bytes.Load(), cpu: selfCPU() - cpu0, threadCPU: time.Duration(threadNS.Load()), wall: time.Since(start)}
	if err == nil && done.n == 0 {
		err = fmt.Errorf("no segment done in %s", done.wall.Round(time.Millisecond))
	}
	return done, err
}

// measureEnvelope decodes request bodies of form with Pack's own decoder
// (packer.DecodeDirect or packer.DecodePush, as Packer.ServeHTTP does) and
// returns the CPU seconds per 1000.
func measureEnvelope(ctx context.Context, corpus *Corpus, d time.Duration, workers int, form PushForm) (float64, error) {
	stream := NewStream(corpus, workload.DefaultLengths(), 100, 10, 1).WithForm(form)
	decode := packer.DecodePush
	if form == FormDirect {
		decode = packer.DecodeDirect
	}
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
				if _, err := decode(bodies[i%len(bodies)]); err != nil {
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

// sharedWork is the part of Pack's per-segment work that the naive
// baseline does too: attributes, validate, compress if plain, seal.
func sharedWork(kek *crypt.KEK, attrs map[string]string, data []byte, lim segment.Limits) error {
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

// limitPacker is a packer with Pack's default settings (config.Pack) and
// no dependencies but an in-memory key wrapper, for Prepare only.
func limitPacker(ctx context.Context) (*packer.Packer, error) {
	keys := crypt.NewKeyring(newLocalWrapper(), func(context.Context, *crypt.KEK) error { return nil }, time.Hour)
	p := packer.New(packer.Config{
		Limits:                segment.Limits{MaxDecompressed: segment.DefaultMaxDecompressed},
		DeriveSlices:          true,
		TranscodeMinRetention: 365,
		Level:                 segment.LevelBetter,
	}, nil, nil, keys, nil)
	// The first KEK, outside the measurement.
	_, err := keys.Current(ctx)
	return p, err
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
