package ledger

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/warrantlog/warrant/internal/merkleref"
	"github.com/warrantlog/warrant/proofs"
)

// c2spPath builds a tlog-tiles path from the spec's text, independently of
// parseTilePath: level (or "entries"), N in x-prefixed 3-digit groups, and
// ".p/W" for partial widths.
func c2spPath(level string, n uint64, w int) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	p := "/tile/" + level + "/" + s
	if w < 256 {
		p += fmt.Sprintf(".p/%d", w)
	}
	return p
}

// tileServer serves l the way NewHandler will once it registers the tiles.
func tileServer(t *testing.T, l *Log) *httptest.Server {
	mux := http.NewServeMux()
	registerTiles(mux, l)
	mux.Handle("/", NewHandler(l))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// fetchTile sends method to path and returns status, headers and body; redirects are
// returned, not followed. It asks for the identity encoding (Go's transport
// would otherwise ask for gzip and inflate it out of sight); fetchTileAs
// sends another Accept-Encoding, or none when acceptEncoding is "".
func fetchTile(t testing.TB, srv *httptest.Server, method, path string) (int, http.Header, []byte) {
	t.Helper()
	return fetchTileAs(t, srv, method, path, "identity")
}

func fetchTileAs(t testing.TB, srv *httptest.Server, method, path, acceptEncoding string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	c := *srv.Client()
	// Without DisableCompression, a request with no Accept-Encoding would
	// be sent with "gzip" and inflated out of sight.
	c.Transport = &http.Transport{DisableCompression: true, DisableKeepAlives: true}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %q: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, body
}

// httpTileReader is a tlog.TileReader over the C2SP endpoints: the same
// client code the Go checksum database uses, pointed at this log.
type httpTileReader struct {
	t       *testing.T
	srv     *httptest.Server
	fetched map[string]bool
}

func (r *httpTileReader) Height() int { return 8 }

func (r *httpTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		if tile.H != 8 || tile.L < 0 {
			return nil, fmt.Errorf("unexpected tile %+v", tile)
		}
		p := c2spPath(fmt.Sprint(tile.L), uint64(tile.N), tile.W)
		// tlog's own path differs from C2SP only by the height element.
		if want := "/" + strings.Replace(tile.Path(), "tile/8/", "tile/", 1); p != want {
			r.t.Errorf("C2SP path %q, tlog path says %q", p, want)
		}
		status, _, body := fetchTile(r.t, r.srv, http.MethodGet, p)
		if status != http.StatusOK {
			return nil, fmt.Errorf("GET %s: status %d: %s", p, status, body)
		}
		r.fetched[p] = true
		out[i] = body
	}
	return out, nil
}

func (r *httpTileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// tiledLog is a log of 700 entries behind an HTTP server: two full and one
// partial (188) level-0 tiles, and a partial (2) level-1 tile.
type tiledLog struct {
	f      *fixture
	srv    *httptest.Server
	cp     *proofs.Checkpoint
	leaves [][]byte
}

func newTiledLog(t *testing.T) *tiledLog {
	f := newFixture(t, nil)
	appendN(t, f, 696)
	srv := tileServer(t, f.log)
	status, _, body := fetchTile(t, srv, http.MethodGet, "/checkpoint")
	if status != http.StatusOK {
		t.Fatalf("GET /checkpoint: %d", status)
	}
	v, err := note.NewVerifier(f.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := proofs.OpenCheckpoint(body, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 700 {
		t.Fatalf("checkpoint size %d, want 700", cp.Size)
	}
	return &tiledLog{f: f, srv: srv, cp: cp, leaves: allLeaves(t, f.log)}
}

// TestTilesWithTlogClient verifies the served tiles with
// golang.org/x/mod/sumdb/tlog, an independent implementation: its
// TileHashReader authenticates every tile it reads against the checkpoint
// root, and record and tree proofs built from them check out against the
// real leaves and against this module's proofs.
func TestTilesWithTlogClient(t *testing.T) {
	tl := newTiledLog(t)
	size := int64(tl.cp.Size)
	root := tlog.Hash(tl.cp.Root)
	reader := &httpTileReader{t: t, srv: tl.srv, fetched: map[string]bool{}}
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, reader)

	if th, err := tlog.TreeHash(size, hr); err != nil || th != root {
		t.Fatalf("tlog.TreeHash(%d) = %v, %v; want the checkpoint root %v", size, th, err, root)
	}
	for _, i := range []int64{0, 1, 2, 127, 255, 256, 257, 511, 512, 513, 600, size - 2, size - 1} {
		p, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			t.Fatalf("ProveRecord(%d, %d): %v", size, i, err)
		}
		if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(tl.leaves[i])); err != nil {
			t.Errorf("CheckRecord(%d in %d): %v", i, size, err)
		}
		// The same proof, as the ledger serves it over RPC.
		want, _, err := tl.f.log.InclusionProof(context.Background(), uint64(i), uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		if !equalHashes(tlogHashes(p), want) {
			t.Errorf("record proof %d in %d differs from the ledger's inclusion proof", i, size)
		}
		// A record proof never vouches for another leaf.
		if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(tl.leaves[(i+1)%size])); err == nil {
			t.Errorf("CheckRecord(%d) accepted the leaf of %d", i, (i+1)%size)
		}
	}

	hashes := make([][]byte, len(tl.leaves))
	for i, leaf := range tl.leaves {
		hashes[i] = merkleref.LeafHash(leaf)
	}
	for _, old := range []int64{1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 699} {
		oldHash, err := tlog.TreeHash(old, hr)
		if err != nil {
			t.Fatalf("TreeHash(%d): %v", old, err)
		}
		if !bytes.Equal(oldHash[:], merkleref.Root(hashes[:old])) {
			t.Errorf("tlog's tree hash at %d differs from the reference root", old)
		}
		p, err := tlog.ProveTree(size, old, hr)
		if err != nil {
			t.Fatalf("ProveTree(%d, %d): %v", size, old, err)
		}
		if err := tlog.CheckTree(p, size, root, old, oldHash); err != nil {
			t.Errorf("CheckTree(%d -> %d): %v", old, size, err)
		}
		want, _, err := tl.f.log.ConsistencyProof(context.Background(), uint64(old), uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		if !equalHashes(tlogHashes(p), want) {
			t.Errorf("tree proof %d -> %d differs from the ledger's consistency proof", old, size)
		}
		if err := proofs.VerifyConsistency(uint64(old), uint64(size), want, oldHash[:], tl.cp.Root); err != nil {
			t.Errorf("merkle: %d -> %d: %v", old, size, err)
		}
	}
	for _, p := range []string{"/tile/0/000", "/tile/0/001", "/tile/0/002.p/188", "/tile/1/000.p/2"} {
		if !reader.fetched[p] {
			t.Errorf("the tlog client never fetched %s (fetched %v)", p, reader.fetched)
		}
	}
}

func tlogHashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// TestTileEntryBundles fetches every entry bundle, full and partial,
// decodes it, and checks it against the stored leaves and against the
// level-0 tile hashes.
func TestTileEntryBundles(t *testing.T) {
	tl := newTiledLog(t)
	var got [][]byte
	for n := uint64(0); n*256 < tl.cp.Size; n++ {
		w := int(min(256, tl.cp.Size-n*256))
		status, h, bundle := fetchTile(t, tl.srv, http.MethodGet, c2spPath("entries", n, w))
		if status != http.StatusOK {
			t.Fatalf("bundle %d (width %d): status %d", n, w, status)
		}
		checkTileHeaders(t, h, len(bundle))
		status, _, tile := fetchTile(t, tl.srv, http.MethodGet, c2spPath("0", n, w))
		if status != http.StatusOK || len(tile) != w*32 {
			t.Fatalf("tile 0/%d (width %d): status %d, %d bytes", n, w, status, len(tile))
		}
		var leaves [][]byte
		for rest := bundle; len(rest) > 0; {
			if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest)) {
				t.Fatalf("bundle %d is truncated after %d entries", n, len(leaves))
			}
			l := int(binary.BigEndian.Uint16(rest))
			leaves = append(leaves, rest[2:2+l])
			rest = rest[2+l:]
		}
		if len(leaves) != w {
			t.Fatalf("bundle %d has %d entries, want %d", n, len(leaves), w)
		}
		for i, leaf := range leaves {
			if h := tlog.RecordHash(leaf); !bytes.Equal(h[:], tile[i*32:(i+1)*32]) {
				t.Errorf("entry %d of bundle %d does not hash to its level-0 tile hash", i, n)
			}
		}
		got = append(got, leaves...)
	}
	if !equalHashes(got, tl.leaves) {
		t.Fatalf("the bundles hold %d entries that differ from the %d stored leaves", len(got), len(tl.leaves))
	}
}

func checkTileHeaders(t *testing.T, h http.Header, n int) {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control %q", cc)
	}
	if cl := h.Get("Content-Length"); cl != fmt.Sprint(n) {
		t.Errorf("Content-Length %q, body %d bytes", cl, n)
	}
}

// TestTileAvailability: exactly what the checkpoint covers is served, with
// immutable caching; the rest is 404 and uncacheable; HEAD works like GET
// without a body; other methods are refused.
func TestTileAvailability(t *testing.T) {
	tl := newTiledLog(t) // size 700: level 0 has 700 nodes, level 1 has 2
	tests := []struct {
		path string
		want int // status; for 200 also the number of hashes (or entries)
		n    int
	}{
		{"/tile/0/000", 200, 256},
		{"/tile/0/001", 200, 256},
		{"/tile/0/000.p/1", 200, 1},     // any prefix of a covered tile
		{"/tile/0/001.p/255", 200, 255}, // likewise
		{"/tile/0/002.p/188", 200, 188}, // the partial tile of this checkpoint
		{"/tile/0/002.p/100", 200, 100}, // the partial tile of an earlier size
		{"/tile/0/002.p/189", 404, 0},   // wider than covered
		{"/tile/0/002.p/255", 404, 0},
		{"/tile/0/002", 404, 0},
		{"/tile/0/003", 404, 0},
		{"/tile/0/003.p/1", 404, 0},
		{"/tile/0/x001/000", 404, 0},
		{"/tile/0/x018/x446/x744/x073/x709/x551/615", 404, 0}, // N = MaxUint64
		{"/tile/1/000.p/2", 200, 2},
		{"/tile/1/000.p/1", 200, 1},
		{"/tile/1/000.p/3", 404, 0},
		{"/tile/1/000", 404, 0},
		{"/tile/1/001.p/1", 404, 0},
		{"/tile/2/000.p/1", 404, 0}, // level 2 is empty: never served
		{"/tile/7/000.p/1", 404, 0},
		{"/tile/8/000.p/1", 404, 0}, // tree level 64 and beyond
		{"/tile/63/000.p/1", 404, 0},
		{"/tile/63/x018/x446/x744/x073/x709/x551/615.p/255", 404, 0},
		{"/tile/entries/000", 200, 256},
		{"/tile/entries/001.p/7", 200, 7},
		{"/tile/entries/002.p/188", 200, 188},
		{"/tile/entries/002.p/189", 404, 0},
		{"/tile/entries/002", 404, 0},
		{"/tile/entries/003.p/1", 404, 0},
		{"/tile/entries/x018/x446/x744/x073/x709/x551/615", 404, 0},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			status, h, body := fetchTile(t, tl.srv, method, tt.path)
			if status != tt.want {
				t.Errorf("%s %s: status %d, want %d (%s)", method, tt.path, status, tt.want, body)
				continue
			}
			if tt.want != 200 {
				if cc := h.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("%s %s: %d with Cache-Control %q", method, tt.path, status, cc)
				}
				continue
			}
			size := tt.n * 32
			if strings.Contains(tt.path, "entries") {
				size = 0
				first := parseTileIndex(t, tt.path) * 256
				for _, leaf := range tl.leaves[first : first+uint64(tt.n)] {
					size += 2 + len(leaf)
				}
			}
			checkTileHeaders(t, h, size)
			if method == http.MethodHead && len(body) != 0 {
				t.Errorf("HEAD %s: %d-byte body", tt.path, len(body))
			}
			if method == http.MethodGet && len(body) != size {
				t.Errorf("GET %s: %d bytes, want %d", tt.path, len(body), size)
			}
		}
	}
	// Only GET and HEAD (on the tiles' own mux: the catch-all "/" of this
	// test server would answer other methods itself).
	mux := http.NewServeMux()
	registerTiles(mux, tl.f.log)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, "/tile/0/000", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /tile/0/000: status %d, want 405", method, rec.Code)
		}
	}
}

func parseTileIndex(t *testing.T, path string) uint64 {
	t.Helper()
	r, ok := parseTilePath(strings.TrimPrefix(path, "/tile/"))
	if !ok {
		t.Fatalf("parseTilePath(%q) failed", path)
	}
	return r.index
}

// TestTilesNotYetSigned: entries committed but not covered by a signed
// checkpoint (its write failed) are in the stored tiles, yet nothing of
// them is served until a checkpoint covers them.
func TestTilesNotYetSigned(t *testing.T) {
	f := newFixture(t, nil)
	srv := tileServer(t, f.log)
	before := f.log.Checkpoint().Size // 4
	injected := errors.New("injected: checkpoint write failed")
	f.log.faults.checkpoint.Store(&injected)
	env := signDelegation(t, f.human, delegation("dlg_t", humanID, agentID, "nonce-t0000000"))
	if _, err := f.log.Append(context.Background(), env); proofs.Reason(err) != ReasonCheckpointPending {
		t.Fatalf("append: %v, want %s", err, ReasonCheckpointPending)
	}
	err := f.log.db.View(func(txn *badger.Txn) error {
		tile, err := getValue(txn, tileKey(0, 0))
		if err == nil && uint64(len(tile)) != (before+1)*32 {
			err = fmt.Errorf("stored tile 0/000 has %d hashes, want %d", len(tile)/32, before+1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w := int(before)
	for _, p := range []struct {
		path string
		want int
	}{
		{c2spPath("0", 0, w), 200},
		{c2spPath("entries", 0, w), 200},
		{c2spPath("0", 0, w+1), 404},
		{c2spPath("entries", 0, w+1), 404},
	} {
		if status, _, body := fetchTile(t, srv, http.MethodGet, p.path); status != p.want {
			t.Errorf("%s with %d entries stored and %d signed: status %d, want %d (%s)", p.path, before+1, before, status, p.want, body)
		}
	}
	f.log.faults.checkpoint.Store(nil)
	if _, err := f.log.Append(context.Background(), signDelegation(t, f.human, delegation("dlg_u", humanID, agentID, "nonce-u0000000"))); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := fetchTile(t, srv, http.MethodGet, c2spPath("entries", 0, w+2)); status != 200 {
		t.Errorf("after signing %d entries, bundle width %d: status %d", f.log.Checkpoint().Size, w+2, status)
	}
}

// TestTileMalformedPaths: non-canonical and nonsense paths are refused with
// a 4xx (400 from the tile parser; the mux may answer 404, 405 or a 301 to
// the cleaned path), never a 5xx, and never a tile.
func TestTileMalformedPaths(t *testing.T) {
	tl := newTiledLog(t)
	paths := []string{
		"/x", "/tile", "/tile/", "/tile/0", "/tile/0/", "/tile/entries", "/tile/entries/",
		"/tile/0/x000", "/tile/0/1", "/tile/0/01", "/tile/0/0000", "/tile/0/abc", "/tile/0/-01",
		"/tile/0/000.p/0", "/tile/0/000.p/256", "/tile/0/000.p/01", "/tile/0/000.p/", "/tile/0/000.p",
		"/tile/0/000.p/1/", "/tile/0/000.p/+1", "/tile/0/000.p/-1", "/tile/0/000.p/1.p/1",
		"/tile/-1/000", "/tile/64/000", "/tile/00/000", "/tile/01/000", "/tile/+1/000", "/tile/1e1/000",
		"/tile/data/000", "/tile/8/0/000", "/tile/Entries/000",
		"/tile/entries/x000/000", "/tile/0/x000/000", "/tile/0/x001", "/tile/0/001/x001",
		"/tile/0/X001/000", "/tile/0/x01/000", "/tile/0/x0001/000", "/tile/0/x001/00",
		"/tile/0/000/", "/tile/0//000", "/tile/0/./000", "/tile/0/../0/000", "/tile/0/%30%30%30",
		"/tile/0/000%2Ep/1", "/tile/0/000.p%2F1",
		"/tile/0/x018/x446/x744/x073/x709/x551/616", // N = MaxUint64 + 1
		"/tile/0/x001/x000/x000/x000/x000/x000/x000/000",
		"/tile/0/" + strings.Repeat("x001/", 1000) + "000",
		"/tile/" + strings.Repeat("9", 10000) + "/000",
		"/tile/0/" + strings.Repeat("0", 100000),
	}
	for _, p := range paths {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			status, _, body := fetchTile(t, tl.srv, method, p)
			if status == http.StatusOK || status >= 500 {
				t.Errorf("%s %.80q: status %d (%.80q)", method, p, status, body)
			}
			if strings.HasPrefix(p, "/tile/0/0") && len(p) > 1000 && status != http.StatusBadRequest {
				t.Errorf("%s %.80q: status %d, want 400", method, p, status)
			}
		}
	}
	// The parser itself refuses every one of them.
	for _, p := range paths {
		u, err := url.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := parseTilePath(strings.TrimPrefix(u.EscapedPath(), "/tile/")); ok && strings.HasPrefix(p, "/tile/") {
			t.Errorf("parseTilePath(%.80q) = %+v, want refusal", p, r)
		}
	}
}

// TestParseTilePath checks the parser against known encodings.
func TestParseTilePath(t *testing.T) {
	tests := []struct {
		path string
		want tileRequest
	}{
		{"0/000", tileRequest{level: 0, index: 0, width: 256}},
		{"0/005", tileRequest{index: 5, width: 256}},
		{"3/x001/x234/067", tileRequest{level: 3, index: 1234067, width: 256}},
		{"63/x001/000.p/255", tileRequest{level: 63, index: 1000, width: 255}},
		{"entries/999.p/1", tileRequest{entries: true, index: 999, width: 1}},
		{"entries/x018/x446/x744/x073/x709/x551/615", tileRequest{entries: true, index: math.MaxUint64, width: 256}},
	}
	for _, tt := range tests {
		got, ok := parseTilePath(tt.path)
		if !ok || got != tt.want {
			t.Errorf("parseTilePath(%q) = %+v, %v; want %+v", tt.path, got, ok, tt.want)
		}
		level := "entries"
		if !tt.want.entries {
			level = fmt.Sprint(tt.want.level)
		}
		if p := c2spPath(level, tt.want.index, tt.want.width); p != "/tile/"+tt.path {
			t.Errorf("c2spPath(%+v) = %q, want %q", tt.want, p, "/tile/"+tt.path)
		}
	}
}

// FuzzTilePath: the parser never panics; whatever it accepts is in range
// and is the canonical encoding of what it parsed; for hash tiles it agrees
// with tlog.ParseTilePath, the Go checksum database's parser of the same
// encoding (with a height element, and without the spec's bounds on L and
// N); and the handler answers every path without a 5xx. Seeds are in
// testdata/fuzz/FuzzTilePath.
func FuzzTilePath(f *testing.F) {
	fx := newFixture(f, nil) // 4 entries
	mux := http.NewServeMux()
	registerTiles(mux, fx.log)
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := parseTilePath(s)
		if ok {
			if r.level > 63 || r.width < 1 || r.width > 256 || (r.entries && r.level != 0) {
				t.Fatalf("parseTilePath(%q) = %+v: out of range", s, r)
			}
			level := "entries"
			if !r.entries {
				level = fmt.Sprint(r.level)
			}
			if p := c2spPath(level, r.index, r.width); p != "/tile/"+s {
				t.Fatalf("parseTilePath(%q) = %+v, which encodes as %q", s, r, p)
			}
		}
		if !strings.HasPrefix(s, "entries/") {
			tt, err := tlog.ParseTilePath("tile/8/" + s)
			switch {
			case ok && err != nil && r.index <= math.MaxInt64:
				t.Fatalf("parseTilePath(%q) accepts what tlog refuses: %v", s, err)
			case !ok && err == nil && tt.L >= 0 && tt.L <= 63:
				t.Fatalf("parseTilePath(%q) refuses what tlog accepts as %+v", s, tt)
			case ok && err == nil && (tt.L != int(r.level) || uint64(tt.N) != r.index || tt.W != r.width):
				t.Fatalf("parseTilePath(%q) = %+v, tlog says %+v", s, r, tt)
			}
		}
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/tile/" + s}, Header: http.Header{}}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code >= 500 || (rec.Code == 200 && !ok) {
			t.Fatalf("GET /tile/%q: status %d (parsed: %v)", s, rec.Code, ok)
		}
	})
}

// TestTilesAfterClose: a closed store answers 503, not a panic or a 500.
func TestTilesAfterClose(t *testing.T) {
	l := openTestLog(t, t.TempDir(), nil, nil)
	mux := http.NewServeMux()
	registerTiles(mux, l)
	l.Close()
	for _, p := range []string{"/tile/0/000.p/1", "/tile/entries/000.p/1"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s on a closed log: status %d, want 503", p, rec.Code)
		}
	}
}

// TestTilesGzip: tiles and entry bundles come gzip-compressed exactly when
// the client accepts gzip, identical once inflated, with Vary and the
// immutable caching headers either way; a second request is served from
// the compressed cache with the same bytes.
func TestTilesGzip(t *testing.T) {
	tl := newTiledLog(t)
	paths := []string{c2spPath("entries", 0, 256), c2spPath("entries", 2, 188), c2spPath("0", 1, 256), c2spPath("0", 2, 188), c2spPath("1", 0, 2)}
	for _, p := range paths {
		_, _, plain := fetchTile(t, tl.srv, http.MethodGet, p)
		for _, tt := range []struct {
			accept string
			gzip   bool
		}{
			{"", false}, {"identity", false}, {"gzip", true}, {"br, gzip;q=0.5", true}, {"x-gzip", true},
			{"*", true}, {"gzip;q=0", false}, {"*, gzip;q=0", false}, {"deflate, br", false}, {"GZIP", true},
		} {
			status, h, body := fetchTileAs(t, tl.srv, http.MethodGet, p, tt.accept)
			if status != http.StatusOK {
				t.Fatalf("%s (Accept-Encoding %q): status %d", p, tt.accept, status)
			}
			checkTileHeaders(t, h, len(body))
			if v := h.Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("%s (Accept-Encoding %q): Vary %q", p, tt.accept, v)
			}
			if ce := h.Get("Content-Encoding"); (ce == "gzip") != tt.gzip || (ce != "" && ce != "gzip") {
				t.Fatalf("%s (Accept-Encoding %q): Content-Encoding %q", p, tt.accept, ce)
			}
			if tt.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("%s: not gzip: %v", p, err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("%s: inflating: %v", p, err)
				}
			}
			if !bytes.Equal(body, plain) {
				t.Fatalf("%s (Accept-Encoding %q): %d bytes differ from the identity encoding's %d", p, tt.accept, len(body), len(plain))
			}
		}
		// Cached: the same compressed bytes again.
		_, _, z1 := fetchTileAs(t, tl.srv, http.MethodGet, p, "gzip")
		_, _, z2 := fetchTileAs(t, tl.srv, http.MethodGet, p, "gzip")
		if !bytes.Equal(z1, z2) {
			t.Fatalf("%s: two compressed answers differ", p)
		}
		if strings.Contains(p, "entries") && len(z1) >= len(plain)/2 {
			t.Errorf("%s: compressed to %d of %d bytes", p, len(z1), len(plain))
		}
	}
	// Not covered stays 404 whatever the encoding, and uncacheable.
	status, h, _ := fetchTileAs(t, tl.srv, http.MethodGet, c2spPath("entries", 2, 189), "gzip")
	if status != http.StatusNotFound || h.Get("Cache-Control") != "no-store" || h.Get("Content-Encoding") != "" {
		t.Fatalf("uncovered bundle with gzip: %d %v", status, h)
	}
}

func TestGzipCacheBound(t *testing.T) {
	c := newGzipCache(64 << 10)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<12) // compresses well
	for i := range 200 {
		body := append(fmt.Appendf(nil, "%d-", i), big...)
		noise := make([]byte, 2048)
		for j := range noise {
			noise[j] = byte(i*131 + j*j*7)
		}
		c.compress(tileRequest{index: uint64(i), width: 256}, append(body, noise...))
	}
	if c.bytes > c.max || c.lru.Len() != len(c.m) || c.lru.Len() == 0 {
		t.Fatalf("cache holds %d bytes (max %d), %d list entries, %d map entries", c.bytes, c.max, c.lru.Len(), len(c.m))
	}
	if _, ok := c.get(tileRequest{index: 0, width: 256}); ok {
		t.Fatal("the oldest entry was not evicted")
	}
	if _, ok := c.get(tileRequest{index: 199, width: 256}); !ok {
		t.Fatal("the newest entry is not cached")
	}
}
