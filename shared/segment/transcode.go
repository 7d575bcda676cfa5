package segment

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Level is a zstd compression level the packer stores segments at. The
// names are klauspost/compress's: fastest (about zstd -1), default (-3),
// better (about -7) and best (about -11).
type Level = zstd.EncoderLevel

// The levels a deployment may choose (STORE_ZSTD_LEVEL).
const (
	LevelFastest = zstd.SpeedFastest
	LevelDefault = zstd.SpeedDefault
	LevelBetter  = zstd.SpeedBetterCompression
	LevelBest    = zstd.SpeedBestCompression
)

// ParseLevel reads a level by its name: fastest, default, better or best.
func ParseLevel(s string) (Level, error) {
	ok, l := zstd.EncoderLevelFromString(s)
	if !ok {
		return 0, fmt.Errorf("unknown zstd level %q (want fastest, default, better or best)", s)
	}
	return l, nil
}

// Transcode returns payload, which is encoded with enc, as a zstd frame at
// level, and the encoding to store it under. A zstd payload is kept as it
// came: it is already zstd, and the client chose its level. Gzip and zlib
// payloads are decoded (under the same bound as Decode: at most
// maxDecompressed bytes) and re-compressed; so are plain ones.
//
// The caller has validated payload, so a decode error here means the
// payload changed or the limits differ; it is returned, never hidden.
func Transcode(enc Encoding, payload []byte, level Level, maxDecompressed int64) ([]byte, Encoding, error) {
	switch enc {
	case Zstd:
		return payload, Zstd, nil
	case Plain:
		return CompressLevel(payload, level), Zstd, nil
	}
	raw, err := Decode(enc, payload, maxDecompressed)
	if err != nil {
		return nil, "", fmt.Errorf("transcode %s: %w", enc, err)
	}
	return CompressLevel(raw, level), Zstd, nil
}

// CompressLevel is Compress at the given level. It is safe for concurrent
// use.
func CompressLevel(raw []byte, level Level) []byte {
	if level == LevelDefault {
		return Compress(raw)
	}
	bp := compressBufs.Get().(*[]byte)
	out := levelEncoder(level).EncodeAll(raw, (*bp)[:0])
	res := bytes.Clone(out) // exact size: see Compress
	if cap(out) <= maxPooledBuf {
		*bp = out
		compressBufs.Put(bp)
	}
	return res
}

// levelEncoders holds one shared encoder per level (*zstd.Encoder by
// Level), made on first use.
var levelEncoders sync.Map

func levelEncoder(level Level) *zstd.Encoder {
	if e, ok := levelEncoders.Load(level); ok {
		return e.(*zstd.Encoder)
	}
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithZeroFrames(true))
	if err != nil {
		panic(fmt.Sprintf("segment: zstd encoder at %s: %v", level, err)) // ParseLevel's levels are valid
	}
	if prev, loaded := levelEncoders.LoadOrStore(level, e); loaded {
		e.Close()
		return prev.(*zstd.Encoder)
	}
	return e
}
