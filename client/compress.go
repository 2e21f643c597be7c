package client

import (
	"compress/gzip"
	"fmt"
	"io"

	"connectrpc.com/connect"
)

// boundedGzip replaces connect-go's gzip for responses. connect-go stops
// copying a decompressed message at the read limit but then inflates the
// rest of it just to report its size, so a small gzip bomb from a
// malicious server would cost the client seconds of CPU. This reader
// yields at most MaxResponseBytes+1 bytes (one past the limit, which is
// how connect-go notices the excess) and then fails, so inflating stops
// there and the call fails ResourceExhausted (ReasonResponseTooLarge).
func boundedGzip() connect.ClientOption {
	return connect.WithAcceptCompression("gzip",
		func() connect.Decompressor { return &boundedGzipReader{} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) },
	)
}

type boundedGzipReader struct {
	zr   gzip.Reader
	left int64
}

func (b *boundedGzipReader) Reset(r io.Reader) error {
	b.left = MaxResponseBytes + 1
	return b.zr.Reset(r)
}

func (b *boundedGzipReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("the response inflates to more than %d bytes; stopped inflating there", MaxResponseBytes)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.zr.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedGzipReader) Close() error { return b.zr.Close() }
