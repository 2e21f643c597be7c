package proofs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Auditor replays a whole log from index 0: it recomputes the tree and
// checks it against a signed checkpoint, parses every leaf, checks every
// signature and re-derives every decision (Replay), and records every
// discrepancy with its index instead of stopping at the first.
type Auditor struct {
	cp      *Checkpoint
	trusted *Checkpoint
	rng     *compact.Range
	replay  *Replay
	report  AuditReport
	// keys holds every key the log has named (bindings, registrars,
	// admins), by key id, for checking signatures ahead of the replay.
	keys map[string]*PublicKey
}

// Discrepancy is one finding of an audit.
type Discrepancy struct {
	Index   uint64 `json:"index"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// AuditReport summarises an audit.
type AuditReport struct {
	Origin   string `json:"origin"`
	Size     uint64 `json:"size"`
	Root     string `json:"root"`
	Verified bool   `json:"verified"`
	// Entries counts the entries by kind.
	Entries map[string]int `json:"entries"`
	// Accepted and Denied count the signed events by decision.
	Accepted int `json:"accepted"`
	Denied   int `json:"denied"`
	// Denials counts denials by reason code.
	Denials map[string]int `json:"denials"`
	// Discrepancies are everything that is wrong, in index order.
	Discrepancies []Discrepancy `json:"discrepancies"`
}

// NewAuditor prepares an audit of the log up to the checkpoint cp (already
// verified). If trusted is not nil (a checkpoint the auditor trusted
// before), the audit also checks that its tree is a prefix of cp's.
func NewAuditor(cp, trusted *Checkpoint) *Auditor {
	return &Auditor{
		cp: cp, trusted: trusted, rng: NewEmptyRange(0), replay: NewReplay(), keys: map[string]*PublicKey{},
		report: AuditReport{Origin: cp.Origin, Size: cp.Size, Root: fmt.Sprintf("%x", cp.Root),
			Entries: map[string]int{}, Denials: map[string]int{}, Discrepancies: []Discrepancy{}},
	}
}

// Next is the index of the next entry Add expects.
func (a *Auditor) Next() uint64 { return a.rng.End() }

// AddBatch audits the next leaves, in order. It parses them and checks
// their signatures on every core first (signature checks do not depend on
// the log's state: a key id names one key), then replays them in order,
// which is what makes a whole-log audit fast.
func (a *Auditor) AddBatch(leaves [][]byte) {
	parsed := make([]*ParsedLeaf, len(leaves))
	errs := make([]error, len(leaves))
	parallelFor(len(leaves), func(i int) { parsed[i], errs[i] = ParseLeaf(leaves[i]) })
	// Keys named by this batch become known before its signatures are
	// checked; whether a key may sign an entry is the replay's question.
	for _, p := range parsed {
		if p == nil {
			continue
		}
		for _, k := range p.Keys() {
			a.keys[k.ID] = k
		}
	}
	lookup := func(id string) *PublicKey { return a.keys[id] }
	parallelFor(len(parsed), func(i int) {
		if parsed[i] != nil && parsed[i].Env != nil {
			parsed[i].Env.Preverify(lookup)
		}
	})
	for i, leaf := range leaves {
		a.add(leaf, parsed[i], errs[i])
	}
}

// parallelFor runs fn(0..n-1) on every core.
func parallelFor(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// Add audits the next leaf.
func (a *Auditor) Add(leaf []byte) {
	p, err := ParseLeaf(leaf)
	a.add(leaf, p, err)
}

func (a *Auditor) add(leaf []byte, p *ParsedLeaf, err error) {
	idx := a.rng.End()
	if err := a.rng.Append(LeafHash(leaf), nil); err != nil {
		a.note(idx, ReasonAuditTreeMismatch, err)
		return
	}
	if a.trusted != nil && a.rng.End() == a.trusted.Size {
		if root, _ := a.rng.GetRootHash(nil); !bytes.Equal(root, a.trusted.Root) {
			a.note(idx, ReasonAuditInconsistent, fmt.Errorf("the first %d entries hash to %x, but the trusted checkpoint of that size says %x: the log was rewritten", a.trusted.Size, root, a.trusted.Root))
		}
	}
	if err != nil {
		a.note(idx, Reason(err), err)
		a.replay.next++ // keep the replay aligned with the log
		return
	}
	a.report.Entries[p.Kind]++
	if p.Decision != nil {
		if p.Decision.Outcome == OutcomeAccepted {
			a.report.Accepted++
		} else {
			a.report.Denied++
			for _, r := range p.Decision.Reasons {
				a.report.Denials[r]++
			}
		}
	}
	if err := a.replay.Apply(idx, p); err != nil {
		a.note(idx, Reason(err), err)
	}
}

func (a *Auditor) note(idx uint64, reason string, err error) {
	if reason == "" {
		reason = ReasonAuditError
	}
	a.report.Discrepancies = append(a.report.Discrepancies, Discrepancy{Index: idx, Reason: reason, Message: err.Error()})
}

// Finish checks the recomputed tree against the checkpoint and returns the
// report. Verified is true only if the tree matches and nothing was found.
func (a *Auditor) Finish() *AuditReport {
	root, err := a.rng.GetRootHash(nil)
	if a.rng.End() == 0 {
		root = EmptyRoot()
	}
	switch {
	case a.rng.End() != a.cp.Size:
		a.note(a.rng.End(), ReasonAuditTreeMismatch, fmt.Errorf("%d entries audited, the checkpoint covers %d", a.rng.End(), a.cp.Size))
	case err != nil || !bytes.Equal(root, a.cp.Root):
		a.note(a.cp.Size, ReasonAuditTreeMismatch, fmt.Errorf("the entries hash to %x, but the signed checkpoint says %x", root, a.cp.Root))
	}
	if a.trusted != nil && a.trusted.Size > a.cp.Size {
		a.note(a.cp.Size, ReasonAuditInconsistent, fmt.Errorf("the trusted checkpoint (size %d) is larger than the audited one (size %d): rollback", a.trusted.Size, a.cp.Size))
	}
	slices.SortStableFunc(a.report.Discrepancies, func(x, y Discrepancy) int { return int(x.Index) - int(y.Index) })
	a.report.Verified = len(a.report.Discrepancies) == 0
	return &a.report
}

// DenialReasons returns the denial counts sorted by reason code.
func (r *AuditReport) DenialReasons() []string { return slices.Sorted(maps.Keys(r.Denials)) }

// auditBatch is how many entries an audit parses and checks in parallel
// before replaying them.
const auditBatch = 2048

// Export file layout: the magic line, the checkpoint's length as a 4-byte
// big-endian integer and the signed checkpoint, then exactly checkpoint-size
// leaves in index order, each as a 2-byte big-endian length and the leaf
// (as in tlog-tiles entry bundles), and nothing after.
const exportMagic = "warrant-export/v1\n"

// WriteExport writes an export: cp, then the leaves from next().
func WriteExport(w io.Writer, cp *Checkpoint, next func() ([]byte, error)) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString(exportMagic)
	bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(cp.Note))))
	bw.Write(cp.Note)
	for i := uint64(0); i < cp.Size; i++ {
		leaf, err := next()
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if len(leaf) == 0 || len(leaf) > MaxLeafBytes {
			return fmt.Errorf("entry %d is %d bytes", i, len(leaf))
		}
		bw.Write(binary.BigEndian.AppendUint16(nil, uint16(len(leaf))))
		if _, err := bw.Write(leaf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// AuditExport audits an export file: its checkpoint must verify under
// logKey; every leaf is audited; a truncated file, a short or long leaf
// count, or trailing data is a discrepancy. progress, if not nil, is called
// now and then with the entries done and the total.
func AuditExport(r io.Reader, logKey note.Verifier, trusted *Checkpoint, progress func(done, total uint64)) (*AuditReport, error) {
	return AuditWitnessedExport(r, logKey, nil, trusted, progress)
}

// AuditWitnessedExport is AuditExport for an auditor with a witness policy
// (nil: none): the export's checkpoint must satisfy it too
// (OpenWitnessedCheckpoint), or nothing is audited.
func AuditWitnessedExport(r io.Reader, logKey note.Verifier, witnesses *WitnessPolicy, trusted *Checkpoint, progress func(done, total uint64)) (*AuditReport, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != exportMagic {
		return nil, Errorf(ReasonExportMalformed, "not a warrant export (want %q)", exportMagic[:len(exportMagic)-1])
	}
	var n [4]byte
	if _, err := io.ReadFull(br, n[:]); err != nil {
		return nil, Errorf(ReasonExportMalformed, "truncated before the checkpoint")
	}
	cpLen := binary.BigEndian.Uint32(n[:])
	if cpLen > MaxCheckpointBytes {
		return nil, Errorf(ReasonExportMalformed, "checkpoint length %d over %d", cpLen, MaxCheckpointBytes)
	}
	note := make([]byte, cpLen)
	if _, err := io.ReadFull(br, note); err != nil {
		return nil, Errorf(ReasonExportMalformed, "truncated in the checkpoint")
	}
	cp, err := OpenWitnessedCheckpoint(note, logKey, witnesses)
	if err != nil {
		return nil, err
	}
	a := NewAuditor(cp, trusted)
	last := time.Now()
	var batch [][]byte
	flush := func() {
		a.AddBatch(batch)
		batch = batch[:0]
		if progress != nil && time.Since(last) > 100*time.Millisecond {
			progress(a.Next(), cp.Size)
			last = time.Now()
		}
	}
	for i := uint64(0); i < cp.Size; i++ {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			flush()
			a.note(i, ReasonExportMalformed, fmt.Errorf("the export ends after %d of %d entries", i, cp.Size))
			break
		}
		leaf := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(br, leaf); err != nil {
			flush()
			a.note(i, ReasonExportMalformed, fmt.Errorf("the export ends inside entry %d", i))
			break
		}
		if batch = append(batch, leaf); len(batch) == auditBatch {
			flush()
		}
	}
	flush()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		a.note(cp.Size, ReasonExportMalformed, errors.New("data after the last entry"))
	}
	if progress != nil {
		progress(a.Next(), cp.Size)
	}
	return a.Finish(), nil
}
