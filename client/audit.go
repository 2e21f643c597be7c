package client

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/warrantlog/warrant/internal/atomicfile"
	"github.com/warrantlog/warrant/proofs"
)

// The whole log, read from the tlog-tiles entry bundles (a live server or a
// static mirror serve them alike) up to the latest checkpoint, which is
// verified and checked consistent with the trusted state first. Nothing
// else the server says is trusted: the leaves are recomputed into the tree
// and must hash to that checkpoint's root.

// auditBatch is how many leaves Audit hands the auditor at a time (their
// signatures are pre-verified in parallel within a batch).
const auditBatch = 2048

// Export writes the whole log to path as an export file (proofs.WriteExport)
// that proofs.AuditExport audits offline with the log key alone. The leaves
// stream into a temporary file while the tree is recomputed; path is
// replaced, atomically, only if they hash to the signed root, so a server
// that serves other entries than it signed leaves nothing behind
// (proofs.ReasonAuditTreeMismatch). It returns the checkpoint the export
// holds.
func (c *Client) Export(ctx context.Context, path string) (*proofs.Checkpoint, error) {
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	tmp, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	defer tmp.Abort()
	// The reader fetches bundles while the writer writes: a channel of
	// leaves between them, and the reader's error after the last one.
	leaves := make(chan []byte, 1024)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		errc <- c.tiles.entries(ctx, 0, cp.Size, cp.Size, func(l []byte) error {
			select {
			case leaves <- bytes.Clone(l):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(leaves)
	}()
	rng := proofs.NewEmptyRange(0)
	err = proofs.WriteExport(tmp, cp, func() ([]byte, error) {
		l, ok := <-leaves
		if !ok {
			if err := <-errc; err != nil {
				return nil, err
			}
			return nil, io.ErrUnexpectedEOF
		}
		return l, rng.Append(proofs.LeafHash(l), nil)
	})
	if err != nil {
		return nil, fmt.Errorf("exporting: %w", err)
	}
	if root, _ := rng.GetRootHash(nil); !bytes.Equal(root, cp.Root) {
		return nil, proofs.Errorf(proofs.ReasonAuditTreeMismatch, "the server's entries hash to %x, but its checkpoint says %x; nothing written", root, cp.Root)
	}
	if err := tmp.Commit(); err != nil {
		return nil, &proofs.Error{Reason: proofs.ReasonIOError, Err: err}
	}
	return cp, nil
}

// Audit audits the whole log over the network exactly as proofs.AuditExport
// audits an export file: every leaf's format and signatures, the tree
// against the signed checkpoint (and its consistency with the trusted
// state), and every decision replayed with the rules and policy in force.
// progress, if not nil, is called after each batch of leaves with the
// number audited and the total. A log that does not verify is a report
// with Verified false and its discrepancies, not an error; errors are
// failures to read the log or to verify its checkpoint.
func (c *Client) Audit(ctx context.Context, progress func(done, total uint64)) (*proofs.AuditReport, error) {
	trusted, err := c.Trusted()
	if err != nil {
		return nil, err
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	a := proofs.NewAuditor(cp, trusted)
	var batch [][]byte
	err = c.tiles.entries(ctx, 0, cp.Size, cp.Size, func(l []byte) error {
		if batch = append(batch, bytes.Clone(l)); len(batch) == auditBatch {
			a.AddBatch(batch)
			batch = nil
			if progress != nil {
				progress(a.Next(), cp.Size)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.AddBatch(batch)
	return a.Finish(), nil
}
