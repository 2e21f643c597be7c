package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/warrantlog/warrant/proofs"
)

// gzipZeros is one gzip member holding n zero bytes: about n/1000 bytes
// that inflate to n. Concatenated members are one valid gzip stream.
func gzipZeros(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// bombServer is a hostile server on loopback: every request is answered
// 200 with contentType, Content-Encoding gzip (unless plain) and an endless
// body of gzip members of zeros (or plain zeros), until the client hangs
// up. sent counts the bytes put on the wire.
type bombServer struct {
	*httptest.Server
	sent atomic.Int64
}

func newBombServer(t *testing.T, contentType string, plain bool) *bombServer {
	member := gzipZeros(t, 1<<20)
	if plain {
		member = make([]byte, 64<<10)
	}
	b := &bombServer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		if !plain {
			w.Header().Set("Content-Encoding", "gzip")
		}
		w.WriteHeader(http.StatusOK)
		// Bounded only so that a broken client fails the test rather than
		// running forever: 4 GiB on the wire.
		for b.sent.Load() < 4<<30 {
			n, err := w.Write(member)
			b.sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// TestTilesBomb: a hostile tlog-tiles source answers with an endless gzip
// bomb (or an endless plain body) as checkpoint, hash tile and entry
// bundle. The client stops reading at the resource's bound and says so.
func TestTilesBomb(t *testing.T) {
	for _, plain := range []bool{false, true} {
		srv := newBombServer(t, "application/octet-stream", plain)
		c := New(srv.URL, nil, WithHTTPClient(&http.Client{}))
		ctx := context.Background()
		check := func(what string, err error, limit int) {
			t.Helper()
			if proofs.Reason(err) != ReasonResponseTooLarge || !strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes", limit)) {
				t.Fatalf("%s (plain %v): %v", what, plain, err)
			}
		}
		err := c.EntryBundles(ctx, srv.URL, 5, func([]byte) error { return nil })
		check("entry bundle", err, maxBundleBytes)
		_, err = c.tiles.checkpoint(ctx)
		check("checkpoint", err, maxCheckpointBytes)
		_, err = c.tiles.get(ctx, "tile/0/000", maxHashTileBytes)
		check("hash tile", err, maxHashTileBytes)
		srv.CloseClientConnections()
		// The client hung up long before the server's own bound: what it
		// read is what the bounds allow plus what the sockets buffer.
		if sent := srv.sent.Load(); sent > 256<<20 {
			t.Fatalf("plain %v: the server got %d bytes out before the client hung up", plain, sent)
		}
	}
}

// TestConnectBomb: a hostile server answers a Connect call with a gzip
// bomb (1 MiB on the wire, 1 GiB inflated). The call fails at
// MaxResponseBytes with response_too_large; it does not fall back to the
// tiles (the server did speak Connect).
func TestConnectBomb(t *testing.T) {
	member := gzipZeros(t, 16<<20)
	body := bytes.Repeat(member, (1<<20)/len(member))
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/proto")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c := New(srv.URL, nil, WithRetry(1, 0))
	_, err := c.Checkpoint(context.Background())
	if proofs.Reason(err) != ReasonResponseTooLarge || connect.CodeOf(err) != connect.CodeResourceExhausted ||
		!strings.Contains(err.Error(), fmt.Sprint(MaxResponseBytes)) || !strings.Contains(err.Error(), "stopped inflating") {
		t.Fatalf("Checkpoint from a bomb: %v", err)
	}
	if n := calls.Load(); n != 1 || c.noConnect.Load() {
		t.Fatalf("%d calls; fell back to tiles: %v", n, c.noConnect.Load())
	}
}

// TestBoundedGzipReader: read the way connect-go reads a compressed
// message (to the limit plus one, then to the end to size the excess), an
// endless bomb is inflated only to the limit: the compressed bytes it
// consumed are a tiny fraction of the stream.
func TestBoundedGzipReader(t *testing.T) {
	src := &endless{member: gzipZeros(t, 1<<20)}
	zr := &boundedGzipReader{}
	if err := zr.Reset(src); err != nil {
		t.Fatal(err)
	}
	var dst bytes.Buffer
	n, err := dst.ReadFrom(io.LimitReader(zr, MaxResponseBytes+1))
	if err != nil || n != MaxResponseBytes+1 {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	_, err = io.Copy(io.Discard, zr)
	if err == nil || !strings.Contains(err.Error(), "stopped inflating") {
		t.Fatalf("reading past the limit: %v", err)
	}
	// 16 MiB at about 1000:1, plus read-ahead.
	if src.read > 1<<20 {
		t.Fatalf("consumed %d compressed bytes for a %d-byte limit", src.read, MaxResponseBytes)
	}
	// Reset rearms the bound for the next message.
	if err := zr.Reset(bytes.NewReader(gzipZeros(t, 10))); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) != 10 {
		t.Fatalf("after Reset: %d bytes, %v", len(b), err)
	}
}

// endless repeats member forever, counting what is read.
type endless struct {
	member []byte
	off    int
	read   int64
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.member[e.off:])
	e.off = (e.off + n) % len(e.member)
	e.read += int64(n)
	return n, nil
}
