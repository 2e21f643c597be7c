package client

import (
	"context"

	"github.com/warrantlog/warrant/proofs"
)

// ObserveCheckpoint checks a signed checkpoint obtained elsewhere (a
// backup, a mirror, a colleague): it must verify under the log key and be
// consistent with the trusted state, in either direction (consistency
// proofs are fetched from the server as needed). If it is newer than the
// trusted state, it becomes the trusted state; with no trusted state, it is
// trusted on first use.
func (c *Client) ObserveCheckpoint(ctx context.Context, signed []byte) (*proofs.Checkpoint, error) {
	cp, err := c.openCheckpoint(signed)
	if err != nil {
		return nil, err
	}
	// A floor of 0: an older checkpoint is not a rollback here, only one
	// that is not a prefix of the trusted tree is wrong.
	if err := c.advance(ctx, cp, nil, 0); err != nil {
		return nil, err
	}
	return cp, nil
}
