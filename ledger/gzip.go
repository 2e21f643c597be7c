package ledger

import (
	"bytes"
	"compress/gzip"
	"container/list"
	"strconv"
	"strings"
	"sync"
)

// Compressed tiles. C2SP tlog-tiles asks logs to serve tiles and entry
// bundles gzip-compressed to clients that accept it. Entry bundles (JSON
// envelopes) shrink severalfold; hash tiles are random hashes and do not
// shrink, but are small. A covered resource never changes, so its
// compressed form is computed once and kept in a small LRU cache: a
// follower or mirror that reads the newest bundles, and the partial tiles
// every client asks for, cost one compression, not one per request.
// Compression is at gzip.BestSpeed: the cache and downstream HTTP caches
// make the ratio matter less than the CPU.

// gzipCacheBytes bounds the compressed bytes the cache holds.
const gzipCacheBytes = 16 << 20

type gzipCache struct {
	mu    sync.Mutex
	max   int
	bytes int
	lru   *list.List // of *gzipEntry, most recent first
	m     map[tileRequest]*list.Element
	pool  sync.Pool // *gzip.Writer
}

type gzipEntry struct {
	t    tileRequest
	body []byte
}

func newGzipCache(max int) *gzipCache {
	return &gzipCache{max: max, lru: list.New(), m: map[tileRequest]*list.Element{}}
}

// get returns the compressed body of t, if cached.
func (c *gzipCache) get(t tileRequest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[t]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*gzipEntry).body, true
}

// compress returns body (the covered content of t) gzip-compressed, and
// caches it. Bodies over an eighth of the cache are not kept: one huge
// bundle must not evict everything else.
func (c *gzipCache) compress(t tileRequest, body []byte) []byte {
	zw, _ := c.pool.Get().(*gzip.Writer)
	var buf bytes.Buffer
	buf.Grow(len(body)/2 + 64)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	} else {
		zw.Reset(&buf)
	}
	zw.Write(body) // writes to a bytes.Buffer do not fail
	zw.Close()
	c.pool.Put(zw)
	out := buf.Bytes()
	if len(out) > c.max/8 {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[t]; ok {
		return out
	}
	c.m[t] = c.lru.PushFront(&gzipEntry{t, out})
	c.bytes += len(out)
	for c.bytes > c.max {
		e := c.lru.Back()
		g := e.Value.(*gzipEntry)
		c.lru.Remove(e)
		delete(c.m, g.t)
		c.bytes -= len(g.body)
	}
	return out
}

// acceptsGzip reports whether Accept-Encoding values admit gzip: "gzip",
// "x-gzip" or "*" with a non-zero quality, unless gzip itself is refused
// ("gzip;q=0").
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			ok := true
			for _, p := range strings.Split(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					ok = err == nil && q > 0
				}
			}
			switch coding {
			case "gzip", "x-gzip":
				return ok
			case "*":
				star = ok
			}
		}
	}
	return star
}
