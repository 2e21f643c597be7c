package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"

	"connectrpc.com/connect"

	warrantv1 "github.com/warrantlog/warrant/api/warrant/v1"
	"github.com/warrantlog/warrant/api/warrant/v1/warrantv1connect"
	"github.com/warrantlog/warrant/client"
	"github.com/warrantlog/warrant/proofs"
)

// readOp prepares a read mode: it verifies the latest checkpoint, reads
// every leaf hash from the level-0 tiles (so each proof can be checked
// against the real leaf) and the roots of a sample of earlier tree sizes
// (for consistency proofs), then returns the operation. Each operation's
// answer is verified in full; checkpoints are verified once per distinct
// note.
//
// With several servers (a cluster's nodes), client w reads from server w
// modulo their number, every proof for the tree size of the first
// server's checkpoint, which every other server must already serve.
func readOp(ctx context.Context, cfg *Config) (func(context.Context, int) (int, uint64, error), error) {
	servers := client.SplitServers(cfg.Server)
	if len(servers) == 0 {
		return nil, fmt.Errorf("no server URL in %q", cfg.Server)
	}
	c := client.New(servers[0], cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient))
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if cp.Size < 2 {
		return nil, fmt.Errorf("the log has %d entries: nothing to read", cp.Size)
	}
	for _, s := range servers[1:] {
		other, err := client.New(s, cfg.LogKey, client.WithHTTPClient(cfg.HTTPClient)).Checkpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		if other.Size < cp.Size {
			return nil, fmt.Errorf("%s serves %d entries, %s %d: wait until it has caught up", s, other.Size, servers[0], cp.Size)
		}
	}
	hashes, err := leafHashes(ctx, cfg, servers[0], cp.Size)
	if err != nil {
		return nil, err
	}
	rng := proofs.NewEmptyRange(0)
	type sized struct {
		size uint64
		root []byte
	}
	var samples []sized
	step := max(cp.Size/64, 1)
	for i := range cp.Size {
		rng.Append(leaf(hashes, i), nil)
		if n := uint64(i + 1); n%step == 0 && n < cp.Size {
			r, _ := rng.GetRootHash(nil)
			samples = append(samples, sized{n, r})
		}
	}
	if root, _ := rng.GetRootHash(nil); !bytes.Equal(root, cp.Root) {
		return nil, fmt.Errorf("the tiles do not hash to the checkpoint root")
	}
	var rpcs []warrantv1connect.LedgerServiceClient
	for _, hc := range connClients(cfg) {
		for _, s := range servers {
			rpcs = append(rpcs, warrantv1connect.NewLedgerServiceClient(hc, s, connect.WithReadMaxBytes(client.MaxResponseBytes)))
		}
	}
	rpc := func(w int) warrantv1connect.LedgerServiceClient { return rpcs[w%len(rpcs)] }
	var cps sync.Map // note -> *proofs.Checkpoint
	open := func(note []byte) (*proofs.Checkpoint, error) {
		if v, ok := cps.Load(string(note)); ok {
			return v.(*proofs.Checkpoint), nil
		}
		cp, err := proofs.OpenCheckpoint(note, cfg.LogKey)
		if err == nil {
			cps.Store(string(note), cp)
		}
		return cp, err
	}
	size := cp.Size
	switch cfg.Mode {
	case ModeInclusion:
		return func(ctx context.Context, w int) (int, uint64, error) {
			idx := rand.Uint64N(size)
			resp, err := rpc(w).GetInclusionProof(ctx, connect.NewRequest(&warrantv1.GetInclusionProofRequest{Key: &warrantv1.GetInclusionProofRequest_Index{Index: idx}, TreeSize: size}))
			if err != nil {
				return 0, 0, wrap(err)
			}
			rc, err := open(resp.Msg.GetCheckpoint())
			if err != nil {
				return 0, 0, err
			}
			if resp.Msg.GetTreeSize() != size || rc.Size < size {
				return 0, 0, proofs.Errorf(proofs.ReasonResponseMismatch, "proof for size %d", resp.Msg.GetTreeSize())
			}
			return 1, 0, proofs.VerifyInclusion(idx, size, leaf(hashes, idx), resp.Msg.GetHashes(), cp.Root)
		}, nil
	case ModeConsistency:
		if len(samples) == 0 {
			return nil, fmt.Errorf("log too small for consistency proofs")
		}
		return func(ctx context.Context, w int) (int, uint64, error) {
			s := samples[rand.IntN(len(samples))]
			resp, err := rpc(w).GetConsistencyProof(ctx, connect.NewRequest(&warrantv1.GetConsistencyProofRequest{FromSize: s.size, ToSize: size}))
			if err != nil {
				return 0, 0, wrap(err)
			}
			if _, err := open(resp.Msg.GetCheckpoint()); err != nil {
				return 0, 0, err
			}
			return 1, 0, proofs.VerifyConsistency(s.size, size, resp.Msg.GetHashes(), s.root, cp.Root)
		}, nil
	case ModeEntries:
		return func(ctx context.Context, w int) (int, uint64, error) {
			start := rand.Uint64N(size)
			resp, err := rpc(w).GetEntries(ctx, connect.NewRequest(&warrantv1.GetEntriesRequest{Start: start, Count: 100}))
			if err != nil {
				return 0, 0, wrap(err)
			}
			m := resp.Msg
			rc, err := open(m.GetCheckpoint())
			if err != nil {
				return 0, 0, err
			}
			lh := make([][]byte, len(m.GetLeaves()))
			for i, l := range m.GetLeaves() {
				lh[i] = proofs.LeafHash(l)
			}
			if err := proofs.VerifyRange(start, lh, rc.Size, m.GetLeftHashes(), m.GetRightHashes(), rc.Root); err != nil {
				return 0, 0, err
			}
			return len(lh), 0, nil
		}, nil
	default: // ModeTiles
		full := size / 256
		if full == 0 {
			return nil, fmt.Errorf("log too small for a full tile")
		}
		return func(ctx context.Context, w int) (int, uint64, error) {
			n := rand.Uint64N(full)
			body, err := get(ctx, cfg, fmt.Sprintf("%s/tile/0/%s", servers[w%len(servers)], client.TilePath(n)))
			if err != nil {
				return 0, 0, err
			}
			if len(body) != 256*32 {
				return 0, 0, proofs.Errorf(proofs.ReasonResponseMismatch, "tile %d is %d bytes", n, len(body))
			}
			if !bytes.Equal(body, hashes[n*256*32:(n+1)*256*32]) {
				return 0, 0, proofs.Errorf(proofs.ReasonResponseMismatch, "tile %d differs from the leaf hashes", n)
			}
			return 1, 0, nil
		}, nil
	}
}

// leafHashes reads the level-0 tiles: the hash of every leaf, one after
// the other in one slice (see leaf). One flat slice, not a slice per hash:
// millions of small slices would be pointers for every garbage collection
// to scan, a cost of the generator that would show as the server's.
func leafHashes(ctx context.Context, cfg *Config, server string, size uint64) ([]byte, error) {
	out := make([]byte, 0, size*32)
	for n := uint64(0); n*256 < size; n++ {
		w := min(size-n*256, 256)
		url := fmt.Sprintf("%s/tile/0/%s", server, client.TilePath(n))
		if w < 256 {
			url += fmt.Sprintf(".p/%d", w)
		}
		body, err := get(ctx, cfg, url)
		if err != nil {
			return nil, err
		}
		if uint64(len(body)) != w*32 {
			return nil, fmt.Errorf("tile 0/%d is %d bytes, want %d", n, len(body), w*32)
		}
		out = append(out, body...)
	}
	return out, nil
}

// leaf is the hash of leaf i in the output of leafHashes.
func leaf(hashes []byte, i uint64) []byte { return hashes[i*32 : (i+1)*32 : (i+1)*32] }

func get(ctx context.Context, cfg *Config, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "%v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, proofs.Errorf(proofs.ReasonUnavailable, "GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// wrap gives a Connect error its code as a reason.
func wrap(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return &proofs.Error{Reason: ce.Code().String(), Err: err}
	}
	return err
}

// connClients is the HTTP clients the proof readers take turns on: the
// configured one, or with HTTP2 and Conns > 1, as many clients, each with
// a transport (so a connection) of its own.
func connClients(cfg *Config) []*http.Client {
	if !cfg.HTTP2 || cfg.Conns <= 1 {
		return []*http.Client{cfg.HTTPClient}
	}
	out := make([]*http.Client, cfg.Conns)
	for i := range out {
		c := *cfg.HTTPClient
		if t, ok := c.Transport.(*http.Transport); ok {
			c.Transport = t.Clone()
		}
		out[i] = &c
	}
	return out
}
