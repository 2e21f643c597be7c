package main

// The bucket of a distributed log read as a C2SP tlog-tiles mirror with
// third-party code only (issue 17: "the bucket is read with a third-party
// tlog-tiles client"), for the chaos tests (chaos_test.go).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	tlogfmt "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// bucket reads the cluster's bucket prefix (s3://warrant/log) over the S3
// API, with the credentials cluster.sh made.
func (c *scriptCluster) bucket() bucketReader {
	s3 := awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://127.0.0.1:" + c.state["S3_PORT"]),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: c.state["S3_ACCESS_KEY"], SecretAccessKey: c.state["S3_SECRET_KEY"]}, nil
		}),
	})
	return s3Bucket(s3, "warrant", "log/")
}

// s3Bucket reads the objects under prefix in bucket.
func s3Bucket(s3 *awss3.Client, bucket, prefix string) bucketReader {
	return func(ctx context.Context, key string) ([]byte, error) {
		obj, err := s3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + key)})
		if err != nil {
			return nil, err
		}
		defer obj.Body.Close()
		return io.ReadAll(obj.Body)
	}
}

// bucketReader reads objects of the log's bucket prefix.
type bucketReader func(ctx context.Context, key string) ([]byte, error)

// checkBucket reads the bucket as a C2SP tlog-tiles mirror with
// third-party code only: the checkpoint is opened with x/mod's note under
// the log key and parsed by transparency-dev/formats; the hash tiles are
// read and authenticated against it by x/mod's tlog (TileHashReader), which
// then proves the inclusion of entries taken from the entry bundles; and
// every leaf the clients read from the nodes is in the bundles at its
// index.
func checkBucket(t *testing.T, get bucketReader, logKey note.Verifier, leaves []tlog.Hash, size uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var raw []byte
	waitFor(t, "the bucket's checkpoint to reach the log's size", 2*time.Minute, func() bool {
		b, err := get(ctx, "checkpoint")
		if err != nil {
			return false
		}
		raw = b
		n, err := note.Open(b, note.VerifierList(logKey))
		return err == nil && strings.HasPrefix(n.Text, strings.SplitN(n.Text, "\n", 2)[0]+"\n"+strconv.FormatUint(size, 10)+"\n")
	})
	tree, err := openTiledCheckpoint(raw, logKey)
	if err != nil {
		t.Fatalf("the bucket's checkpoint: %v", err)
	}
	if uint64(tree.N) != size {
		t.Fatalf("the bucket's checkpoint has %d entries, the log %d", tree.N, size)
	}
	tiles := tlog.TileHashReader(tree, &bucketTiles{ctx: ctx, get: get})
	// The bundles: every leaf at its index.
	for start := uint64(0); start < size; start += 256 {
		n := min(256, size-start)
		key := fmt.Sprintf("tile/entries/%s", tlog.Tile{H: 8, L: 0, N: int64(start / 256), W: int(n)}.Path()[len("tile/8/0/"):])
		b, err := get(ctx, key)
		if err != nil {
			t.Fatalf("bucket %s: %v", key, err)
		}
		entries, err := splitEntryBundle(b)
		if err != nil || uint64(len(entries)) != n {
			t.Fatalf("bucket %s: %d entries (%v); want %d", key, len(entries), err, n)
		}
		for i, e := range entries {
			idx := int64(start) + int64(i)
			h := tlog.RecordHash(e)
			if h != leaves[idx] {
				t.Errorf("bucket entry %d hashes to %x; the nodes serve %x", idx, h, leaves[idx])
			}
			// Inclusion, proven from the bucket's tiles alone, for a
			// sample (every 17th and the last).
			if idx%17 == 0 || uint64(idx) == size-1 {
				proof, err := tlog.ProveRecord(tree.N, idx, tiles)
				if err != nil {
					t.Fatalf("proving entry %d from the bucket's tiles: %v", idx, err)
				}
				if err := tlog.CheckRecord(proof, tree.N, tree.Hash, idx, h); err != nil {
					t.Errorf("inclusion of entry %d in the bucket's checkpoint: %v", idx, err)
				}
			}
		}
	}
}

// openTiledCheckpoint opens a C2SP checkpoint under the log key (x/mod's
// note) and parses its body (transparency-dev/formats).
func openTiledCheckpoint(raw []byte, logKey note.Verifier) (tlog.Tree, error) {
	n, err := note.Open(raw, note.VerifierList(logKey))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("signature: %w", err)
	}
	var cp tlogfmt.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return tlog.Tree{}, err
	}
	if cp.Origin != logKey.Name() {
		return tlog.Tree{}, fmt.Errorf("origin %q, want %q", cp.Origin, logKey.Name())
	}
	if len(cp.Hash) != tlog.HashSize {
		return tlog.Tree{}, errors.New("root hash of the wrong size")
	}
	return tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Hash)}, nil
}

// bucketTiles is a tlog.TileReader over the bucket: x/mod's tile paths
// (tile/8/L/N) are tlog-tiles' (tile/L/N), with the height 8 implied.
type bucketTiles struct {
	ctx context.Context
	get bucketReader
}

func (b *bucketTiles) Height() int { return 8 }

func (b *bucketTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		key := "tile/" + strings.TrimPrefix(tile.Path(), "tile/8/")
		data, err := b.get(b.ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out[i] = data
	}
	return out, nil
}

func (b *bucketTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// splitEntryBundle splits a tlog-tiles entry bundle: each entry a 16-bit
// big-endian length and its bytes.
func splitEntryBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		var l [2]byte
		if _, err := r.Read(l[:1]); err != nil {
			return out, nil
		}
		if _, err := r.Read(l[1:]); err != nil {
			return nil, errors.New("truncated length")
		}
		e := make([]byte, int(l[0])<<8|int(l[1]))
		if _, err := io.ReadFull(r, e); err != nil {
			return nil, errors.New("truncated entry")
		}
		out = append(out, e)
	}
}
