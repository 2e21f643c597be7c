package ledger

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
)

// Request decompression.
//
// connect-go stops reading a compressed request message at its size limit
// (connect.WithReadMaxBytes), but then reads the rest of the decompressed
// stream to report its size: a 10 MB gzip bomb under the 16 MiB AppendBatch
// limit inflated to gigabytes, seconds of CPU to refuse one request. The
// gzip decompressor here stops instead, with ResourceExhausted, as soon as
// the message inflates beyond its handler's limit or beyond
// maxInflateRatio times its compressed size (whichever is smaller; never
// below minInflateBytes). Refusing a bomb so costs no more than reading
// maxInflateRatio times its compressed bytes. The same pool serves the
// Connect (unary POST and GET's compression parameter), gRPC and gRPC-Web
// protocols: connect-go decompresses all of them through it.

const (
	// maxInflateRatio bounds how much larger than its compressed size a
	// request message may inflate. Signed envelopes (random signatures,
	// nonces, keys) compress by a factor of 2 to 4, so an honest message
	// is far from it.
	maxInflateRatio = 10
	// minInflateBytes is what any compressed message may inflate to,
	// whatever its compressed size: a small message may compress well,
	// and inflating this much costs microseconds.
	minInflateBytes = 64 << 10
)

// withBoundedGzip replaces connect-go's gzip decompressor, for a handler
// whose messages are at most limit bytes, by one that stops at the bound.
// inflated is told of every byte decompressed.
func withBoundedGzip(limit int64, inflated func(n int)) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &boundedGzip{limit: limit, inflated: inflated} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) },
	)
}

// boundedGzip is a gzip connect.Decompressor that refuses to inflate more
// than its bound (see withBoundedGzip).
type boundedGzip struct {
	limit    int64       // the handler's message limit
	inflated func(n int) // told of every byte inflated
	zr       *gzip.Reader
	bound    int64 // what the current message may inflate to
	left     int64 // what it may still inflate to
	err      error // the error of Reset or of the bound, returned by Read
}

func (d *boundedGzip) Reset(src io.Reader) error {
	// connect-go hands the whole compressed message over as a buffer.
	bound := d.limit
	if b, ok := src.(*bytes.Buffer); ok {
		bound = min(d.limit, max(minInflateBytes, maxInflateRatio*int64(b.Len())))
	}
	d.bound, d.left = bound, bound
	if d.zr == nil {
		d.zr, d.err = gzip.NewReader(src)
	} else {
		d.err = d.zr.Reset(src)
	}
	return d.err
}

func (d *boundedGzip) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	// Never inflate more than one byte beyond the bound: that byte is how
	// the bound is seen to be exceeded.
	if int64(len(p)) > d.left+1 {
		p = p[:d.left+1]
	}
	n, err := d.zr.Read(p)
	d.inflated(n)
	d.left -= int64(n)
	if d.left < 0 {
		cerr := connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("compressed request message inflates beyond %d bytes (the message limit is %d bytes, and %d times the compressed size)", d.bound, d.limit, maxInflateRatio))
		addDetail(cerr, &warrantv1.ErrorDetail{Reason: ReasonRequestTooLarge})
		d.err = cerr
		return n, cerr
	}
	return n, err
}

func (d *boundedGzip) Close() error {
	if d.zr == nil {
		return nil
	}
	return d.zr.Close()
}
