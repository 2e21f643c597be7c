package ledger

import (
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/warrantlog/warrant/proofs"
)

// chainState implements proofs.ChainState over the store, seen through one
// Badger transaction, plus an overlay of what the current batch has staged
// but not yet committed. The rules therefore see exactly the entries before
// the one being decided, as an offline replay does.
type chainState struct {
	txn      *badger.Txn
	bindings *proofs.Bindings
	cache    *delegationCache
	// absent, when set (the sequencer's batches only), answers lookups of
	// keys certainly not in the store without asking it (keyfilter.go).
	absent *keyFilter

	// Overlay of the batch being sequenced (nil maps for read-only use).
	dels    map[string]*proofs.DelegationRecord
	revoked map[string]bool
	nonces  map[string]bool
}

func newChainState(txn *badger.Txn, bs *proofs.Bindings, cache *delegationCache) *chainState {
	return &chainState{
		txn: txn, bindings: bs, cache: cache,
		dels: map[string]*proofs.DelegationRecord{}, revoked: map[string]bool{}, nonces: map[string]bool{},
	}
}

func (c *chainState) Binding(agent string) *proofs.Binding { return c.bindings.Agent(agent) }

func (c *chainState) Delegation(id string) (*proofs.DelegationRecord, error) {
	if r := c.dels[id]; r != nil {
		return r, nil
	}
	if r := c.cache.get(id); r != nil {
		return r, nil
	}
	idx, ok, err := getIndexVia(c.txn, c.absent, strKey(tDelegID, id))
	if err != nil || !ok {
		return nil, err
	}
	raw, err := getValue(c.txn, leafKey(idx))
	if err != nil {
		return nil, err
	}
	p, err := proofs.ParseLeaf(raw)
	if err != nil || p.Delegation == nil {
		return nil, &proofs.Error{Reason: ReasonDataLoss, Err: fmt.Errorf("delegation %q at entry %d: %v", id, idx, err)}
	}
	r := &proofs.DelegationRecord{Index: idx, D: p.Delegation}
	c.cache.put(id, r)
	return r, nil
}

func (c *chainState) Revoked(id string) (bool, error) {
	if c.revoked[id] {
		return true, nil
	}
	_, ok, err := getIndexVia(c.txn, c.absent, strKey(tRevoked, id))
	return ok, err
}

func (c *chainState) IssuedRevoked(agent string) (uint64, bool) {
	return c.bindings.IssuedRevoked(agent)
}

func (c *chainState) IDUsed(id string) (bool, error) {
	if c.dels[id] != nil {
		return true, nil
	}
	_, ok, err := getIndexVia(c.txn, c.absent, strKey(tDelegID, id))
	return ok, err
}

// Record implements proofs.Store: the overlay takes what an entry staged
// in the batch changes.
func (c *chainState) Record(ef *proofs.Effects) {
	if d := ef.Delegation; d != nil {
		c.dels[d.D.ID] = d
		c.nonces[d.D.Issuer+"\x00"+d.D.Nonce] = true
	}
	if ef.Revokes != "" {
		c.revoked[ef.Revokes] = true
	}
}

func (c *chainState) NonceUsed(issuer, nonce string) (bool, error) {
	if c.nonces[issuer+"\x00"+nonce] {
		return true, nil
	}
	_, ok, err := getIndexVia(c.txn, c.absent, nonceKey(issuer, nonce))
	return ok, err
}

// delegationCache keeps recently used accepted delegations, which never
// change once committed, so that walking a chain rarely touches the store.
// It is bounded; entries are added only after their commit.
type delegationCache struct {
	mu   sync.Mutex
	max  int
	m    map[string]*proofs.DelegationRecord
	ring []string
	next int
}

func newDelegationCache(max int) *delegationCache {
	return &delegationCache{max: max, m: make(map[string]*proofs.DelegationRecord, max), ring: make([]string, max)}
}

func (c *delegationCache) get(id string) *proofs.DelegationRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

// put adds a committed delegation, evicting the oldest beyond the bound.
func (c *delegationCache) put(id string, r *proofs.DelegationRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok {
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.m, old)
	}
	c.ring[c.next] = id
	c.next = (c.next + 1) % c.max
	c.m[id] = r
}

// clear forgets every delegation: a distributed node's store was rebuilt
// (ingest.go), and what it cached may have been discarded.
func (c *delegationCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	clear(c.ring)
	c.next = 0
}
