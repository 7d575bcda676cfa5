package packer

import "github.com/replayvault/replayvault/shared/segment"

// store returns the bytes to seal for a validated payload and their
// encoding. Segments kept at least TranscodeMinRetention days are stored as
// zstd at the configured level, whatever the browser sent: over a long
// retention the bytes saved cost less than the CPU of decoding and
// re-compressing once (README, cost section). Shorter-lived ones keep the
// encoding they came in, and plain JSON is compressed at the default level.
func (p *Packer) store(data []byte, enc segment.Encoding, retention int) ([]byte, segment.Encoding, error) {
	if retention >= p.cfg.TranscodeMinRetention && p.cfg.Level != 0 {
		return segment.Transcode(enc, data, p.cfg.Level, p.cfg.Limits.MaxDecompressed)
	}
	if enc == segment.Plain {
		return segment.Compress(data), segment.Zstd, nil
	}
	return data, enc, nil
}

// storeLevel reads a validated STORE_ZSTD_LEVEL.
func storeLevel(name string) segment.Level {
	l, err := segment.ParseLevel(name)
	if err != nil {
		return segment.LevelDefault // config.Pack's validation refuses other names
	}
	return l
}
