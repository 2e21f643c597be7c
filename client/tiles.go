package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/warrantlog/warrant/proofs"
)

// TilePath encodes a C2SP tlog-tiles index: groups of three digits, all
// but the last prefixed with "x" (1234067 -> "x001/x234/067").
func TilePath(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// EntryBundles reads the leaves [0, size) from the log's tlog-tiles entry
// bundles at baseURL (e.g. "http://127.0.0.1:8750") in order, calling fn
// for each. It checks only the framing: callers verify the leaves, for
// example by recomputing the tree (proofs.Auditor).
func (c *Client) EntryBundles(ctx context.Context, baseURL string, size uint64, fn func(leaf []byte) error) error {
	hc := c.httpClient
	for n := uint64(0); n*256 < size; n++ {
		width := min(size-n*256, 256)
		url := fmt.Sprintf("%s/tile/entries/%s", strings.TrimSuffix(baseURL, "/"), TilePath(n))
		if width < 256 {
			url += fmt.Sprintf(".p/%d", width)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return &proofs.Error{Reason: ReasonTransport, Err: err}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256*(proofs.MaxLeafBytes+2)+1))
		resp.Body.Close()
		if err != nil {
			return &proofs.Error{Reason: ReasonTransport, Err: err}
		}
		if resp.StatusCode != http.StatusOK {
			return proofs.Errorf(ReasonTransport, "GET %s: %s", url, resp.Status)
		}
		for i := uint64(0); i < width; i++ {
			if len(body) < 2 || len(body) < 2+int(binary.BigEndian.Uint16(body)) {
				return proofs.Errorf(ReasonMismatch, "entry bundle %d ends after %d of %d entries", n, i, width)
			}
			l := int(binary.BigEndian.Uint16(body))
			if err := fn(body[2 : 2+l]); err != nil {
				return err
			}
			body = body[2+l:]
		}
		if len(body) != 0 {
			return proofs.Errorf(ReasonMismatch, "entry bundle %d has data after its %d entries", n, width)
		}
	}
	return nil
}
