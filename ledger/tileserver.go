package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// The C2SP tlog-tiles read API (https://c2sp.org/tlog-tiles):
//
//	GET /tile/<L>/<N>[.p/<W>]       hashes of tree level 8L, 32 bytes each
//	GET /tile/entries/<N>[.p/<W>]   leaves 256N ... as (uint16 length, bytes)
//
// The store already keeps tree nodes as tiles of this exact shape (see
// tiles.go), so a request is one Badger read transaction. A resource is served only
// when the latest signed checkpoint covers all of it: the store may hold
// entries committed but not yet signed, and a client must never see data
// that no checkpoint vouches for. Once covered, a resource never changes
// (tiles only grow at their end, and a partial tile is a prefix of what is
// stored), which is why it can be cached forever by any HTTP cache or CDN.

const (
	// maxTileLevel is the highest tile level the spec allows.
	maxTileLevel = 63
	// maxTilePathLen bounds what the parser looks at. The longest canonical
	// path after "/tile/" ("entries/" + seven 3-digit groups + ".p/255") is
	// 47 bytes; anything much longer is refused before any work.
	maxTilePathLen = 64
	// tileCacheControl is for covered tiles and bundles: they are immutable.
	tileCacheControl = "public, max-age=31536000, immutable"
)

// tileRequest is a parsed tlog-tiles path.
type tileRequest struct {
	entries bool   // an entry bundle rather than a hash tile
	level   uint8  // tile level L (always 0 for entry bundles)
	index   uint64 // tile index N within its level
	width   int    // 1..255 for a partial tile, tileWidth for a full one
}

// errTileNotCovered means the resource is well-formed but the latest
// checkpoint does not (yet) cover it.
var errTileNotCovered = errors.New("not covered by the latest checkpoint")

// registerTiles serves the tlog-tiles hash tiles and entry bundles of l on
// mux, gzip-compressed for clients that accept it (gzip.go). One handler parses the whole path itself: the spec's encoding of N
// has a variable number of path elements, which mux patterns cannot
// express, and parsing it strictly is what keeps every resource at exactly
// one URL (so caches never hold two copies or a non-canonical alias).
// Method matching ("GET" also admits HEAD) is left to the mux.
func registerTiles(mux *http.ServeMux, l *Log) {
	gz := newGzipCache(gzipCacheBytes)
	mux.HandleFunc("GET /tile/", func(w http.ResponseWriter, r *http.Request) {
		// The escaped path, not the decoded one: "%30%30%30" is not a
		// canonical "000" and must not alias it.
		t, ok := parseTilePath(strings.TrimPrefix(r.URL.EscapedPath(), "/tile/"))
		if !ok {
			tileError(w, http.StatusBadRequest, "malformed tile path")
			return
		}
		h := w.Header()
		// Both encodings of a resource are immutable, and a cache must not
		// hand the gzip one to a client that did not ask for it.
		h.Add("Vary", "Accept-Encoding") // Add: CORS may have set Vary: Origin
		gzipOK := acceptsGzip(r.Header.Values("Accept-Encoding"))
		if gzipOK {
			// A cached compressed body was covered when it was cached,
			// and coverage only grows: no store read needed.
			if body, ok := gz.get(t); ok {
				writeTile(w, body, true)
				return
			}
		}
		body, err := l.readTile(t)
		if errors.Is(err, errTileNotCovered) {
			// A node behind the log does not say "no such tile": the
			// client tries another node (replica.go).
			if berr := l.awaitCovered(r.Context(), t.needs()); berr != nil {
				w.Header().Set("Retry-After", "1")
				tileError(w, http.StatusServiceUnavailable, berr.Error())
				return
			}
			body, err = l.readTile(t)
		}
		switch {
		case errors.Is(err, errTileNotCovered):
			tileError(w, http.StatusNotFound, "tile not available")
			return
		case err != nil:
			err = readError(err)
			l.log.Error("serving tile", "path", r.URL.Path, "err", err)
			status := http.StatusInternalServerError
			if proofs.Reason(err) == ReasonStoreUnavailable {
				status = http.StatusServiceUnavailable
			}
			tileError(w, status, "tile cannot be read")
			return
		}
		if gzipOK {
			body = gz.compress(t, body)
		}
		writeTile(w, body, gzipOK)
	})
}

// writeTile answers a covered tile or bundle, compressed or not.
func writeTile(w http.ResponseWriter, body []byte, gzipped bool) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", tileCacheControl)
	if gzipped {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// tileError answers an error that no cache may keep: a 404 today may be a
// tile tomorrow.
func tileError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, status)
}

// parseTilePath parses the part of a tlog-tiles path after "/tile/". It
// accepts only the canonical encoding: L in 0..63 and W in 1..255 as
// decimals without leading zeros, N as 3-digit groups with every group but
// the last prefixed by "x" and no leading all-zero group, and N within a
// uint64.
func parseTilePath(p string) (tileRequest, bool) {
	t := tileRequest{width: tileWidth}
	if len(p) > maxTilePathLen {
		return t, false
	}
	first, rest, ok := strings.Cut(p, "/")
	if !ok {
		return t, false
	}
	if first == "entries" {
		t.entries = true
	} else {
		l, ok := parseSmallDecimal(first, maxTileLevel)
		if !ok {
			return t, false
		}
		t.level = uint8(l)
	}
	if n, w, ok := strings.Cut(rest, ".p/"); ok {
		width, ok := parseSmallDecimal(w, tileWidth-1)
		if !ok || width == 0 {
			return t, false
		}
		rest, t.width = n, width
	}
	groups := strings.Split(rest, "/")
	if len(groups) > 7 { // 7 groups hold 21 digits; uint64 needs 20
		return t, false
	}
	for i, g := range groups {
		if i < len(groups)-1 {
			var ok bool
			if g, ok = strings.CutPrefix(g, "x"); !ok || (i == 0 && g == "000") {
				return t, false
			}
		}
		if len(g) != 3 || !isDigits(g) {
			return t, false
		}
		d := uint64(g[0]-'0')*100 + uint64(g[1]-'0')*10 + uint64(g[2]-'0')
		if t.index > (math.MaxUint64-d)/1000 {
			return t, false
		}
		t.index = t.index*1000 + d
	}
	return t, true
}

// path is the inverse of parseTilePath: the canonical tlog-tiles path of
// t, after "tile/" ("entries/x001/234.p/5", "0/000").
func (t tileRequest) path() string {
	var b strings.Builder
	if t.entries {
		b.WriteString("entries/")
	} else {
		b.WriteString(strconv.Itoa(int(t.level)))
		b.WriteByte('/')
	}
	n := strconv.FormatUint(t.index, 10)
	if pad := (3 - len(n)%3) % 3; pad > 0 {
		n = strings.Repeat("0", pad) + n
	}
	for i := 0; i < len(n); i += 3 {
		if i+3 < len(n) {
			b.WriteByte('x')
			b.WriteString(n[i : i+3])
			b.WriteByte('/')
		} else {
			b.WriteString(n[i:])
		}
	}
	if t.width < tileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(t.width))
	}
	return b.String()
}

// needs is the tree size a checkpoint must have to cover t, saturated at
// the largest uint64 (which no tree reaches).
func (t tileRequest) needs() uint64 {
	const maxSize = ^uint64(0)
	if t.index > (maxSize-uint64(t.width))/tileWidth {
		return maxSize
	}
	n := t.index*tileWidth + uint64(t.width) // nodes at level 8L
	shift := uint(t.level) * tileHeight
	if shift >= 64 || n > maxSize>>shift {
		return maxSize
	}
	return n << shift
}

// parseSmallDecimal parses a decimal in 0..limit (limit < 1000) written
// without sign or leading zeros.
func parseSmallDecimal(s string, limit int) (int, bool) {
	if len(s) == 0 || len(s) > 3 || !isDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v, _ := strconv.Atoi(s)
	return v, v <= limit
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// readTile returns the content of t, or errTileNotCovered.
//
// The checkpoint is read before the Badger transaction starts: a checkpoint
// is published only after the commit of everything it covers, so the
// transaction's snapshot then holds all of it. (Read inside the
// transaction, a checkpoint published in between could cover entries the
// snapshot lacks.)
func (l *Log) readTile(t tileRequest) ([]byte, error) {
	return l.readTileUpTo(t, l.Checkpoint().Size)
}

// readTileUpTo returns the content of t as GET /tile serves it once a
// checkpoint of the given size covers it, or errTileNotCovered. A
// distributed log's leader (publish.go) reads the tiles of a batch with it
// before the checkpoint that covers them is swapped in, and puts exactly
// these bytes in the object store.
func (l *Log) readTileUpTo(t tileRequest, size uint64) ([]byte, error) {
	// count is the number of nodes at tree level 8L in the checkpointed
	// tree (the number of leaves for bundles); a shift of 64 or more is 0.
	count := size >> (uint(t.level) * tileHeight)
	full, part := count/tileWidth, int(count%tileWidth)
	if t.index > full || (t.index == full && t.width > part) {
		return nil, errTileNotCovered
	}
	var out []byte
	err := l.db.View(func(txn *badger.Txn) (err error) {
		if t.entries {
			out, err = readBundle(txn, t.index*tileWidth, t.width)
			return err
		}
		tile, err := getValue(txn, tileKey(t.level, t.index))
		if err != nil {
			return err
		}
		if len(tile) < t.width*hashSize || !tileValue(tile) {
			// Covered hashes are missing: data loss, not a client error.
			return errMissingNode{uint(t.level) * tileHeight, t.index*tileWidth + uint64(len(tile)/hashSize)}
		}
		out = tile[:t.width*hashSize]
		return nil
	})
	return out, err
}

// readBundle encodes the n leaves from start as a tlog-tiles entry bundle.
// Its size is bounded by n ≤ 256 leaves of at most 65,535 bytes each.
func readBundle(txn *badger.Txn, start uint64, n int) ([]byte, error) {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: n, Prefix: []byte{tLeaf}})
	defer it.Close()
	var out []byte
	next, end := start, start+uint64(n)
	for it.Seek(leafKey(start)); it.Valid() && next < end; it.Next() {
		if !bytes.Equal(it.Item().Key(), leafKey(next)) {
			break
		}
		err := it.Item().Value(func(v []byte) error {
			if len(v) > math.MaxUint16 {
				return proofs.Errorf(ReasonDataLoss, "entry %d is %d bytes, too large for an entry bundle", next, len(v))
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
			out = append(out, v...)
			return nil
		})
		if err != nil {
			return nil, err
		}
		next++
	}
	if next != end {
		return nil, proofs.Errorf(ReasonDataLoss, "entry %d is missing from the store", next)
	}
	return out, nil
}
