package ledger

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
)

// serveLoopback serves h on a loopback port as serve does (HTTP/1.1 and
// HTTP/2 without TLS) and returns its URL and an HTTP/2 (h2c) client.
func serveLoopback(t *testing.T, h http.Handler) (string, *http.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var cp http.Protocols
	cp.SetUnencryptedHTTP2(true)
	return "http://" + ln.Addr().String(), &http.Client{Transport: &http.Transport{Protocols: &cp}}
}

// gzipBomb is n zero bytes, gzipped.
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(zero))
		zw.Write(zero[:k])
		n -= k
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bombCompressor is a client-side "gzip" compressor that sends a fixed
// bomb whatever the message: an attacker's client.
type bombCompressor struct {
	w    io.Writer
	bomb []byte
}

func (c *bombCompressor) Write(p []byte) (int, error) { return len(p), nil }
func (c *bombCompressor) Reset(w io.Writer)           { c.w = w }
func (c *bombCompressor) Close() error {
	_, err := c.w.Write(c.bomb)
	return err
}

// TestCompressedBombsRefusedCheaply sends gzip bombs over every protocol
// the log serves (Connect unary POST, Connect GET, gRPC, gRPC-Web) to a
// real server and counts the bytes the server inflated: each bomb is
// refused ResourceExhausted after inflating at most maxInflateRatio times
// its compressed size (connect-go alone inflated all of it, here 32 MB to
// 128 MB per request, to report its size). Honest compressed requests are
// still served.
func TestCompressedBombsRefusedCheaply(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Metrics = m })
	url, h2c := serveLoopback(t, NewHandler(f.log))
	ctx := context.Background()
	size := f.log.Checkpoint().Size

	small := gzipBomb(t, 32<<20) // under the 64 KiB request limit compressed
	large := gzipBomb(t, 128<<20)
	if len(small) > MaxRequestBytes || len(large) > MaxBatchRequestBytes {
		t.Fatalf("bombs of %d and %d bytes do not pass the compressed size limits", len(small), len(large))
	}
	clients := []struct {
		name  string
		httpc *http.Client
		opts  []connect.ClientOption
	}{
		{"connect", http.DefaultClient, nil},
		{"grpc", h2c, []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			// Honest compressed requests are served.
			honest := warrantv1connect.NewLedgerServiceClient(c.httpc, url, append(c.opts, connect.WithSendGzip())...)
			if _, err := honest.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{})); err != nil {
				t.Fatalf("honest gzip request: %v", err)
			}
			attack := func(bomb []byte, call func(warrantv1connect.LedgerServiceClient) error) {
				t.Helper()
				opts := append(c.opts,
					connect.WithAcceptCompression("gzip",
						func() connect.Decompressor { return &boundedGzip{limit: 1 << 20, inflated: func(int) {}} },
						func() connect.Compressor { return &bombCompressor{bomb: bomb} }),
					connect.WithSendCompression("gzip"))
				rpc := warrantv1connect.NewLedgerServiceClient(c.httpc, url, opts...)
				before := counterValue(t, m.inflated)
				err := call(rpc)
				inflated := counterValue(t, m.inflated) - before
				if connect.CodeOf(err) != connect.CodeResourceExhausted {
					t.Fatalf("bomb of %d bytes: %v, want ResourceExhausted", len(bomb), err)
				}
				var ce *connect.Error
				if errors.As(err, &ce) && reasonOf(ce) != ReasonRequestTooLarge {
					t.Errorf("bomb refused with reason %q, want %s", reasonOf(ce), ReasonRequestTooLarge)
				}
				if inflated == 0 || inflated > float64(maxInflateRatio*len(bomb)+minInflateBytes+1) {
					t.Fatalf("refusing a %d-byte bomb inflated %.0f bytes, want at most %d", len(bomb), inflated, maxInflateRatio*len(bomb)+minInflateBytes+1)
				}
				t.Logf("%d-byte bomb refused after inflating %.0f bytes", len(bomb), inflated)
			}
			attack(small, func(rpc warrantv1connect.LedgerServiceClient) error {
				_, err := rpc.GetCheckpoint(ctx, connect.NewRequest(&warrantv1.GetCheckpointRequest{}))
				return err
			})
			attack(small, func(rpc warrantv1connect.LedgerServiceClient) error {
				_, err := rpc.Append(ctx, connect.NewRequest(&warrantv1.AppendRequest{}))
				return err
			})
			attack(large, func(rpc warrantv1connect.LedgerServiceClient) error {
				_, err := rpc.AppendBatch(ctx, connect.NewRequest(&warrantv1.AppendBatchRequest{}))
				return err
			})
		})
	}

	// Connect GET carries the message in the URL, its compression in the
	// compression parameter (the Go client never compresses a GET).
	t.Run("connect-get", func(t *testing.T) {
		get := func(msg []byte, compression string) *http.Response {
			t.Helper()
			q := neturl.Values{"connect": {"v1"}, "encoding": {"proto"}, "base64": {"1"}, "message": {base64.RawURLEncoding.EncodeToString(msg)}}
			if compression != "" {
				q.Set("compression", compression)
			}
			resp, err := http.Get(url + warrantv1connect.LedgerServiceGetCheckpointProcedure + "?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		var honest bytes.Buffer
		zw := gzip.NewWriter(&honest)
		zw.Write([]byte{0x08, 0x01}) // trusted_size: 1
		zw.Close()
		if resp := get(honest.Bytes(), "gzip"); resp.StatusCode != http.StatusOK {
			t.Fatalf("honest compressed GET: %s", resp.Status)
		}
		before := counterValue(t, m.inflated)
		resp := get(small, "gzip")
		inflated := counterValue(t, m.inflated) - before
		if resp.StatusCode != http.StatusTooManyRequests { // Connect's HTTP status for ResourceExhausted
			t.Fatalf("GET bomb: %s, want 429 (ResourceExhausted)", resp.Status)
		}
		if inflated == 0 || inflated > float64(maxInflateRatio*len(small)+minInflateBytes+1) {
			t.Fatalf("refusing a %d-byte GET bomb inflated %.0f bytes", len(small), inflated)
		}
		t.Logf("%d-byte GET bomb refused after inflating %.0f bytes", len(small), inflated)
	})
	if got := f.log.Checkpoint().Size; got != size {
		t.Errorf("log size %d after the bombs, want %d: nothing written", got, size)
	}

	// An honest gzipped batch of signed envelopes is far from the ratio
	// bound (random keys, signatures and nonces do not compress much).
	batch := &warrantv1.AppendBatchRequest{}
	for i := range MaxBatchEnvelopes {
		batch.Envelopes = append(batch.Envelopes, bindingEnvelope(t, f.registrar, fmt.Sprintf("spiffe://example.org/agent/batch%d", i), newTestKey(t), "draft", false))
	}
	before := counterValue(t, m.inflated)
	honest := warrantv1connect.NewLedgerServiceClient(http.DefaultClient, url, connect.WithSendGzip())
	resp, err := honest.AppendBatch(ctx, connect.NewRequest(batch))
	if err != nil {
		t.Fatalf("honest gzipped batch: %v", err)
	}
	for i, r := range resp.Msg.GetResults() {
		if r.GetCode() != "" {
			t.Fatalf("honest batch envelope %d: %s %s", i, r.GetCode(), r.GetMessage())
		}
	}
	t.Logf("an honest batch of %d envelopes inflated %.0f bytes", MaxBatchEnvelopes, counterValue(t, m.inflated)-before)
}

// reasonOf is the ErrorDetail reason of a Connect error.
func reasonOf(ce *connect.Error) string {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ed, ok := v.(*warrantv1.ErrorDetail); ok {
				return ed.GetReason()
			}
		}
	}
	return ""
}

// counterValue reads a Prometheus counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
