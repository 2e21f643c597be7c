package client

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/warrantlog/warrant/proofs"
)

// The C2SP tlog-tiles read API is all a client needs to follow or audit a
// log: GET /checkpoint, the hash tiles /tile/<L>/<N>[.p/<W>] and the entry
// bundles /tile/entries/<N>[.p/<W>]. A static mirror (a file server or CDN
// holding copies of those files) serves nothing else, so every read the
// client can do from tiles it does from tiles when the Connect API is not
// there. Nothing read from tiles is trusted: the checkpoint verifies under
// the log key, tiles are hashed up to its root (tlog.TileHashReader), and
// entries are recomputed into the tree by the caller.

// Bounds on what one tlog-tiles GET may return, after decompression: the
// reader stops there (a gzip bomb costs at most this much inflating).
const (
	maxCheckpointBytes = 1 << 20
	maxHashTileBytes   = tileWidth * 32
	maxBundleBytes     = tileWidth * (proofs.MaxLeafBytes + 2)
	tileWidth          = 256
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

// tilesSource reads the tlog-tiles resources under base.
type tilesSource struct {
	hc interface {
		Do(*http.Request) (*http.Response, error)
	}
	base string
}

func (c *Client) tilesAt(baseURL string) tilesSource {
	return tilesSource{hc: c.httpClient, base: strings.TrimSuffix(baseURL, "/")}
}

// get fetches base+path and returns at most limit bytes of its body. It asks
// for gzip and inflates it itself, so the bound holds whatever HTTP client
// is in use: the reader stops at limit+1 bytes, compressed or not, and
// reports ReasonResponseTooLarge.
func (s tilesSource) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	url := s.base + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &proofs.Error{Reason: ReasonTransport, Err: err}
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := s.hc.Do(req)
	if err != nil {
		if proofs.Reason(err) != "" {
			return nil, err // no server of the log (servers.go)
		}
		return nil, &proofs.Error{Reason: ReasonTransport, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &proofs.Error{Reason: ReasonTransport, Err: fmt.Errorf("GET %s: %w", url, statusError(resp.StatusCode))}
	}
	// The compressed body is bounded too: deflate can consume input
	// without producing output, and a body much larger than its content
	// is not a tile.
	var body io.Reader = &capReader{r: resp.Body, n: limit + limit/64 + 4096, what: "compressed response"}
	switch enc := strings.ToLower(resp.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, proofs.Errorf(ReasonMismatch, "GET %s: gzip: %v", url, err)
		}
		body = zr
	default:
		return nil, proofs.Errorf(ReasonMismatch, "GET %s: unsupported Content-Encoding %q", url, enc)
	}
	b, err := io.ReadAll(&capReader{r: body, n: limit, what: "response"})
	var tooLarge *responseTooLarge
	switch {
	case errors.As(err, &tooLarge):
		return nil, proofs.Errorf(ReasonResponseTooLarge, "GET %s: %v; stopped reading there", url, err)
	case err != nil:
		return nil, proofs.Errorf(ReasonTransport, "GET %s: %v", url, err)
	}
	return b, nil
}

// statusError is an HTTP status other than 200 OK.
type statusError int

func (e statusError) Error() string {
	return fmt.Sprintf("%d %s", int(e), http.StatusText(int(e)))
}

// getTile fetches the tile or entry bundle prefix+N at width w. The spec
// lets a log (and so a mirror) delete a partial tile once the full one
// exists, its prefix: so when a partial answers 404 the full tile is
// fetched instead (full is then true), and callers read only its first w
// entries.
func (s tilesSource) getTile(ctx context.Context, prefix string, n, w uint64, limit int64) (body []byte, full bool, err error) {
	path := prefix + TilePath(n)
	if w == tileWidth {
		body, err = s.get(ctx, path, limit)
		return body, true, err
	}
	body, err = s.get(ctx, path+fmt.Sprintf(".p/%d", w), limit)
	if se := statusError(0); errors.As(err, &se) && se == http.StatusNotFound {
		body, err = s.get(ctx, path, limit)
		return body, true, err
	}
	return body, false, err
}

// responseTooLarge is the error of a capReader that reached its bound.
type responseTooLarge struct {
	what  string
	limit int64
}

func (e *responseTooLarge) Error() string {
	return fmt.Sprintf("the %s is larger than %d bytes", e.what, e.limit)
}

// capReader reads at most n bytes of r, and fails when r has more.
type capReader struct {
	r    io.Reader
	n    int64
	read int64
	what string
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.read > c.n {
		return 0, &responseTooLarge{c.what, c.n}
	}
	// Read one byte past the bound to tell "exactly n" from "more".
	if rest := c.n + 1 - c.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := c.r.Read(p)
	c.read += int64(k)
	if c.read > c.n {
		return k - int(c.read-c.n), &responseTooLarge{c.what, c.n}
	}
	return k, err
}

// checkpoint fetches the signed checkpoint note (unverified).
func (s tilesSource) checkpoint(ctx context.Context) ([]byte, error) {
	return s.get(ctx, "checkpoint", maxCheckpointBytes)
}

// entries reads the leaves [start, end) of the tree of size treeSize from
// its entry bundles, in order, calling fn for each. Bundles are fetched at
// the width the tree of treeSize has, the only widths a mirror of that
// checkpoint must hold. It checks only the framing: callers verify the
// leaves, for example by recomputing the tree.
func (s tilesSource) entries(ctx context.Context, start, end, treeSize uint64, fn func(leaf []byte) error) error {
	if end > treeSize || start > end {
		return fmt.Errorf("entries [%d, %d) of a tree of size %d", start, end, treeSize)
	}
	for n := start / tileWidth; n*tileWidth < end; n++ {
		width := min(treeSize-n*tileWidth, tileWidth)
		body, full, err := s.getTile(ctx, "tile/entries/", n, width, maxBundleBytes)
		if err != nil {
			return err
		}
		for i := uint64(0); i < width; i++ {
			if len(body) < 2 || len(body) < 2+int(binary.BigEndian.Uint16(body)) {
				return proofs.Errorf(ReasonMismatch, "entry bundle %d ends after %d of %d entries", n, i, width)
			}
			l := int(binary.BigEndian.Uint16(body))
			if idx := n*tileWidth + i; idx >= start && idx < end {
				if err := fn(body[2 : 2+l]); err != nil {
					return err
				}
			}
			body = body[2+l:]
		}
		// Data after the entries is an error, unless this is the full
		// bundle standing in for a missing partial one.
		if len(body) != 0 && (width == tileWidth || !full) {
			return proofs.Errorf(ReasonMismatch, "entry bundle %d has data after its %d entries", n, width)
		}
	}
	return nil
}

// consistency computes a consistency proof from size from to cp from the
// hash tiles, each tile checked against cp's root as it is read.
func (s tilesSource) consistency(ctx context.Context, from uint64, cp *proofs.Checkpoint) ([][]byte, error) {
	tree := tlog.Tree{N: int64(cp.Size)}
	copy(tree.Hash[:], cp.Root)
	tr := &tileReader{ctx: ctx, s: s}
	p, err := tlog.ProveTree(int64(cp.Size), int64(from), tlog.TileHashReader(tree, tr))
	if err != nil {
		if tr.err != nil {
			return nil, tr.err
		}
		// The tiles do not hash to the signed root: a tampered mirror.
		return nil, proofs.Errorf(ReasonMismatch, "the hash tiles do not match the checkpoint of size %d: %v", cp.Size, err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out, nil
}

// tileReader is a tlog.TileReader over C2SP tile paths (tlog's own Path
// is the sumdb layout, which names the tile height).
type tileReader struct {
	ctx context.Context
	s   tilesSource
	err error // the first fetch error, reported instead of tlog's wrapping
}

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, full, err := r.s.getTile(r.ctx, fmt.Sprintf("tile/%d/", t.L), uint64(t.N), uint64(t.W), maxHashTileBytes)
		switch {
		case err != nil:
		case full && len(b) == tileWidth*32:
			b = b[:t.W*32] // the full tile, standing in for a missing partial
		case len(b) != t.W*32:
			err = proofs.Errorf(ReasonMismatch, "hash tile %d/%d is %d bytes, not %d", t.L, t.N, len(b), t.W*32)
		}
		if err != nil {
			if r.err == nil {
				r.err = err
			}
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// EntryBundles reads the leaves [0, size) from the log's tlog-tiles entry
// bundles at baseURL (e.g. "http://127.0.0.1:8750") in order, calling fn
// for each. It checks only the framing: callers verify the leaves, for
// example by recomputing the tree (proofs.Auditor).
func (c *Client) EntryBundles(ctx context.Context, baseURL string, size uint64, fn func(leaf []byte) error) error {
	return c.tilesAt(baseURL).entries(ctx, 0, size, size, fn)
}
