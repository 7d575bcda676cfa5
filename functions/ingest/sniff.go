package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/replayvault/replayvault/shared/segment"
)

// Ingest forwards a segment payload as sent and leaves the full check to
// Pack, which decompresses and validates every byte and enforces
// MAX_DECOMPRESSED_BYTES. What Ingest checks must cost a small fraction of
// that: the payload is not empty, starts a JSON array, and is no
// decompression bomb that shows as one cheaply.
//
// The bomb check rests on a bound: a deflate stream (zlib, gzip) expands at
// most maxDeflateRatio:1, its densest block being 258-byte matches coded in
// two bits each. A deflate payload of n bytes therefore decompresses to at
// most maxDeflateRatio*n bytes; when that is within the limit (any payload
// under 64 KB at the default 64 MiB) no bomb is possible and Ingest only
// decodes the first sniffIn compressed bytes (16 times more, then all,
// when that is not enough), enough to see the '[' the array starts with. A larger payload (or zstd, which has no such bound) is
// decoded for at most sniffOut bytes in sniffChunk steps, and refused as a
// bomb as soon as what came out passes maxRatio times what went in: rrweb
// JSON compresses 5-50:1, a bomb near the deflate maximum from its first
// block. A bomb that hides behind an ordinary prefix is Pack's to refuse.
const (
	// maxDeflateRatio is the most a deflate stream expands (RFC 1951).
	maxDeflateRatio = 1032
	// sniffIn is how much of a payload that cannot be a bomb is decoded
	// first: past a dynamic Huffman block's tables, rarely over 100 bytes.
	sniffIn = 128
	// sniffOut is the most Ingest decompresses of one payload.
	sniffOut = 64 << 10
	// sniffChunk is the step of the ratio check.
	sniffChunk = 4 << 10
	// minRatioSample is the output before the ratio is judged: a
	// stream's first bytes (headers, Huffman tables) say little.
	minRatioSample = 8 << 10
	// maxRatio is the decompressed:compressed ratio taken for a bomb.
	maxRatio = 500
)

// checkPayload checks what Ingest cheaply can of a segment payload it
// forwards as sent (see the constants above): not empty, a JSON array, no
// evident decompression bomb (413), a compressed stream that opens well
// (400). A stream that breaks past its first bytes Pack rejects.
func (s *Server) checkPayload(data []byte, what string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequest("empty_segment", "%s is empty", what)
	}
	enc := segment.Detect(data)
	if enc == segment.Plain {
		if int64(len(data)) > s.cfg.MaxDecompressed {
			return tooLarge(s.cfg.MaxDecompressed)
		}
		return startsArray(data, what)
	}
	if enc == segment.Gzip && len(data) >= 18 && int64(binary.LittleEndian.Uint32(data[len(data)-4:])) > s.cfg.MaxDecompressed {
		// The trailer states the size (mod 2^32): one over the limit is
		// refused without decoding.
		return s.bomb(what)
	}
	bounded := enc != segment.Zstd && int64(len(data))*maxDeflateRatio <= s.cfg.MaxDecompressed
	for in := sniffIn; bounded && in < len(data); in *= 16 {
		head, n, err := s.sniff(enc, data[:in], true, true, what)
		if err != nil || head != 0 || n >= sniffOut {
			return errOr(err, head, what)
		}
		// The prefix ended before anything but white space came out (a
		// long gzip header, a large first Huffman table): try a longer
		// one, then the whole payload.
	}
	head, _, err := s.sniff(enc, data, false, bounded, what)
	return errOr(err, head, what)
}

// errOr is err, or whether the payload starts an array when there is none.
func errOr(err error, head byte, what string) error {
	if err != nil {
		return err
	}
	return isArray(head, what)
}

// sniff decodes the start of data (a prefix of the payload when cut) and
// returns its first byte that is not white space (0 if none came out) and
// how much it decoded. A bounded payload (one that cannot be a bomb) stops
// at that byte; any other is decoded for sniffOut bytes with the ratio
// checked at every step.
func (s *Server) sniff(enc segment.Encoding, data []byte, cut, bounded bool, what string) (byte, int, error) {
	in := bytes.NewReader(data)
	r, release, err := openSniff(enc, in)
	if err != nil {
		if cut {
			return 0, 0, nil
		}
		return 0, 0, badRequest("bad_compression", "%s: %s stream is corrupt", what, enc)
	}
	defer release()
	bp := sniffBufs.Get().(*[sniffChunk]byte)
	defer sniffBufs.Put(bp)
	var (
		head byte
		n    int
	)
	for n < sniffOut {
		m, err := r.Read(bp[:])
		if head == 0 {
			if t := bytes.TrimLeft(bp[:m], " \t\r\n"); len(t) > 0 {
				head = t[0]
			}
		}
		n += m
		switch {
		case err == io.EOF:
			return head, n, nil
		case err != nil && cut && errors.Is(err, io.ErrUnexpectedEOF):
			// The prefix ran out, as it was made to.
			return head, n, nil
		case err != nil:
			return 0, 0, badRequest("bad_compression", "%s: %s stream is corrupt", what, enc)
		case bounded:
			if head != 0 {
				return head, n, nil
			}
			continue
		}
		consumed := len(data) - in.Len()
		if head != 0 && s.provenSmall(enc, n, consumed, len(data)) {
			return head, n, nil
		}
		if n >= minRatioSample && n > maxRatio*max(consumed, 1) {
			return 0, n, s.bomb(what)
		}
	}
	return head, n, nil
}

// provenSmall reports whether a deflate stream of total bytes, of which
// consumed gave out bytes so far, cannot pass the limit however the rest
// expands.
func (s *Server) provenSmall(enc segment.Encoding, out, consumed, total int) bool {
	return enc != segment.Zstd && int64(out)+int64(total-consumed)*maxDeflateRatio <= s.cfg.MaxDecompressed
}

func isArray(head byte, what string) error {
	if head != '[' {
		return badRequest("not_an_array", "%s is not a JSON array of rrweb events", what)
	}
	return nil
}

func startsArray(data []byte, what string) error {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) == 0 {
		return isArray(0, what)
	}
	return isArray(t[0], what)
}

func (s *Server) bomb(what string) *Error {
	return errorf(http.StatusRequestEntityTooLarge, "decompressed_too_large",
		"%s decompresses to more than %d bytes (or at a ratio over %d:1)", what, s.cfg.MaxDecompressed, maxRatio)
}

// Decompressors are pooled: making one (window, Huffman tables) costs more
// than sniffing a small payload.
var (
	sniffBufs = sync.Pool{New: func() any { return new([sniffChunk]byte) }}
	gzReaders sync.Pool // *gzip.Reader
	zlReaders sync.Pool // io.ReadCloser that is a zlib.Resetter
)

// openSniff opens a decompressing reader over in and a function returning
// it to its pool; in must be read through it only.
func openSniff(enc segment.Encoding, in *bytes.Reader) (io.Reader, func(), error) {
	switch enc {
	case segment.Gzip:
		z, _ := gzReaders.Get().(*gzip.Reader)
		var err error
		if z == nil {
			z, err = gzip.NewReader(in)
		} else {
			err = z.Reset(in)
		}
		if err != nil {
			return nil, nil, err
		}
		return z, func() { gzReaders.Put(z) }, nil
	case segment.Zlib:
		z, _ := zlReaders.Get().(io.ReadCloser)
		var err error
		if z == nil {
			z, err = zlib.NewReader(in)
		} else {
			err = z.(zlib.Resetter).Reset(in, nil)
		}
		if err != nil {
			return nil, nil, err
		}
		return z, func() { zlReaders.Put(z) }, nil
	default:
		d, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	}
}
