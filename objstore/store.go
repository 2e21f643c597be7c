// Package objstore holds the object store a distributed log keeps its tiles,
// entry bundles and checkpoint in: a narrow interface over one bucket prefix
// (read, overwrite, create-if-absent, replace-if-unchanged), its S3
// implementation, and a fault-injecting decorator and an in-memory store for
// unit tests.
//
// The interface is narrow on purpose: no listing, no deletion. It has the two
// conditional writes of S3 (PutObject with If-None-Match: * and with
// If-Match: ETAG) because a tile's or entry bundle's key does not fix its
// bytes across a change of leader. A leader deposed while it published a
// batch that was never acknowledged may have writes in flight at keys
// (partial bundles "tile/entries/N.p/W", partial and full tiles) that the
// next leader writes with other bytes, for entries it does acknowledge. With
// plain overwrites the stale write can land last and leave the bucket
// disagreeing with the checkpoint. With Create and Replace it cannot: a
// writer creates, and replaces only an object whose ETag it has just read,
// so a stale write either finds the key taken or finds its ETag changed. The
// checkpoint object is the one plain overwrite: its compare-and-swap lives in
// the coordinator, not in the bucket.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrNotFound is wrapped by Get for a key that holds no object.
var ErrNotFound = errors.New("object not found")

// ErrExists is wrapped by Create when the key already holds an object
// (S3's 412 Precondition Failed to If-None-Match: *): nothing was written.
var ErrExists = errors.New("object already exists")

// ErrChanged is wrapped by Replace when the key no longer holds the object
// whose ETag the caller gave (S3's 412 Precondition Failed to If-Match), or
// no object at all: nothing was written.
var ErrChanged = errors.New("object changed since it was read")

// ErrTooLarge is wrapped by Get for an object larger than MaxObjectBytes and
// by Put for data that large: it is not one of the log's objects, and reading
// it whole would let whoever can write to the bucket exhaust the reader's
// memory.
var ErrTooLarge = errors.New("object too large")

// ErrDenied is wrapped for a request the object store refused for its
// credentials: unknown access key, bad signature, or no permission. Retrying
// does not help; the operator must fix the credentials or the bucket policy.
var ErrDenied = errors.New("access denied by the object store")

// MaxObjectBytes bounds every object Get reads and Put writes: the largest
// C2SP tlog-tiles entry bundle, 256 entries of at most 65535 bytes each behind
// its two-byte length. Tiles (at most 8 KiB) and checkpoints are far smaller,
// and a log's bundles are typically a few hundred KiB.
const MaxObjectBytes = 256 * (2 + 65535)

// Store is one bucket prefix: keys are paths below it, such as tlog-tiles'
// "tile/0/001" or "checkpoint".
//
// Consistency contract (S3's since December 2020, and its conditional writes
// since 2024; versitygw's over a POSIX directory):
//
//   - A write (Put, Create, Replace) that returned nil is durable and every
//     later Get, from any process, returns its bytes (read-after-write).
//   - A write that returned an error other than ErrExists or ErrChanged may or
//     may not have stored the object, now or later: a request the client gave
//     up on can still reach the store and be applied after other writes. A
//     Get after it may return the old bytes, the new ones or ErrNotFound.
//   - Put stores data at key whatever the key holds: the last Put applied
//     wins, which is not always the last one sent. Only an object that its
//     writer is alone to write (the checkpoint, whose compare-and-swap lives
//     in the coordinator) may be Put.
//   - Create stores data only if key holds no object, atomically; otherwise
//     it writes nothing and wraps ErrExists.
//   - GetWithETag returns the object and its ETag, an opaque version tag
//     that changes whenever the object's bytes do (S3's is the MD5 of the
//     bytes, so writing the same bytes again keeps it).
//   - Replace stores data only if key holds the object tagged etag,
//     atomically; otherwise (another object, or none) it writes nothing and
//     wraps ErrChanged.
//
// So a writer that only Creates, and Replaces only on an ETag it read, can
// never overwrite an object written after its read, whenever its requests
// land: that is what makes a deposed leader's late writes harmless (package
// ledger, publish.go).
//
// Get and GetWithETag wrap ErrNotFound for a key that holds no object and
// ErrTooLarge for an object over MaxObjectBytes; the writes wrap ErrTooLarge
// for data that large. All methods are safe for concurrent use.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	GetWithETag(ctx context.Context, key string) (data []byte, etag string, err error)
	Put(ctx context.Context, key string, data []byte) error
	Create(ctx context.Context, key string, data []byte) error
	Replace(ctx context.Context, key string, data []byte, etag string) error
}

// maxPrefixBytes and maxKeyBytes keep prefix + "/" + key within S3's
// 1024-byte limit on a key.
const (
	maxPrefixBytes = 512
	maxKeyBytes    = 1024 - maxPrefixBytes - 1
)

// ParseURL splits "s3://BUCKET/PREFIX" (as given to serve --object-store) into
// the bucket name and the prefix, without a trailing slash; "s3://BUCKET" and
// "s3://BUCKET/" name the bucket's root (prefix ""). The bucket must be a valid
// S3 bucket name and the prefix a path of segments made of letters, digits,
// '-', '_' and '.', neither empty, "." nor "..": anything else (a query, a
// port, credentials, percent escapes, spaces) is refused rather than guessed
// at, since a prefix that the server or a mirror reads differently would put
// the log where nobody looks for it.
func ParseURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("object store URL %q: must start with s3://", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("object store URL %q: %w", s, err)
	}
	if prefix == "" {
		return bucket, "", nil
	}
	// One trailing slash is the usual way to write a folder; more are not.
	if err := checkPath(strings.TrimSuffix(prefix, "/"), maxPrefixBytes); err != nil {
		return "", "", fmt.Errorf("object store URL %q: prefix: %w", s, err)
	}
	return bucket, strings.TrimSuffix(prefix, "/"), nil
}

// checkBucket applies S3's rules for bucket names (general purpose buckets):
// 3 to 63 characters of lower-case letters, digits, '.' and '-', starting and
// ending with a letter or digit, no "..", not shaped like an IPv4 address.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q: only lower-case letters, digits, '.' and '-' are allowed", b)
		}
	}
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
	}
	if strings.Contains(b, "..") || strings.Contains(b, ".-") || strings.Contains(b, "-.") {
		return fmt.Errorf("bucket name %q: '.' must sit between letters or digits", b)
	}
	if looksLikeIPv4(b) {
		return fmt.Errorf("bucket name %q is shaped like an IP address", b)
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func looksLikeIPv4(b string) bool {
	parts := strings.Split(b, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// checkPath checks a prefix or a key: at most max bytes, segments separated by
// single slashes, each made of letters, digits, '-', '_' and '.', and neither
// "." nor "..". That covers every tlog-tiles path ("tile/entries/x001/234.p/5")
// and leaves no character whose meaning differs between S3, a file system
// under a gateway and an HTTP mirror.
func checkPath(p string, max int) error {
	if p == "" {
		return errors.New("empty")
	}
	if len(p) > max {
		return fmt.Errorf("%d bytes, limit %d", len(p), max)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment", p)
		}
		if seg == "." || seg == ".." {
			return fmt.Errorf("%q has a %q segment", p, seg)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(alnum(c) || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
				if utf8.ValidString(seg) {
					return fmt.Errorf("%q: character %q is not allowed", p, []rune(seg[i:])[0])
				}
				return fmt.Errorf("%q: byte %#x is not allowed", p, c)
			}
		}
	}
	return nil
}

// checkKey is checkPath for a key given to Get or Put.
func checkKey(key string) error {
	if err := checkPath(key, maxKeyBytes); err != nil {
		return fmt.Errorf("invalid key: %w", err)
	}
	return nil
}

// join puts a key under a prefix.
func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}
