package explorertest

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/warrantlog/warrant/proofs"
)

// captureDownloads makes the page keep every Blob it offers for download.
const captureDownloads = `(() => {
  window.downloads = [];
  const create = URL.createObjectURL;
  URL.createObjectURL = (blob) => { window.downloads.push(blob); return create(blob); };
})()`

// download clicks the button and returns the bytes it offered.
func download(t *testing.T, b *browser, button string) string {
	t.Helper()
	return eval[string](b, fmt.Sprintf(`(async () => {
		const before = window.downloads.length;
		const btn = [...document.querySelectorAll("button.download")].find((x) => x.textContent.includes(%q));
		if (!btn) return "no button";
		btn.click();
		return window.downloads.length > before ? await window.downloads[before].text() : "nothing offered";
	})()`, button))
}

// TestDownloads checks what the pages offer for download with warrant's
// own verifiers: the tlog-proof verifies as `warrant verify` would, the
// chain bundle verifies with proofs.VerifyBundle, the SVG is well-formed
// XML drawing every node, the DOT a digraph of them.
func TestDownloads(t *testing.T) {
	tl := startLog(t)
	b := newBrowser(t)
	logKey, err := proofs.ParseVerifierKey(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	b.open(tl.pageURL(tl.srv.URL, "/ui/entry/dlg-notify"))
	b.run(captureDownloads)
	proof := download(t, b, "tlog-proof")
	v, err := proofs.VerifyTLogProof([]byte(proof), logKey)
	if err != nil {
		t.Fatalf("the downloaded tlog-proof does not verify: %v\n%s", err, proof)
	}
	if v.Index != tl.index["dlg-notify"] || v.Leaf.Delegation == nil || v.Leaf.Delegation.ID != "dlg-notify" {
		t.Errorf("the tlog-proof proves entry %d, not dlg-notify", v.Index)
	}
	bundle := download(t, b, "chain bundle")
	chain, err := proofs.VerifyBundle([]byte(bundle), logKey, proofs.BundleOptions{})
	if err != nil {
		t.Fatalf("the downloaded chain bundle does not verify: %v", err)
	}
	if n := len(chain.Links); n != 3 {
		t.Errorf("the bundle has %d links, want 3", n)
	}

	// The agent timeline offers each verified entry's tlog-proof.
	b.open(tl.pageURL(tl.srv.URL, "/ui/agent/"+url.PathEscape(notifier)))
	b.run(captureDownloads)
	checkProof(t, b, tl, tl.index["dlg-notify"], "dlg-notify")
	if b.count(`main a[href^="/ui/blast-radius?agent="]`) == 0 {
		t.Errorf("the agent timeline does not lead to its blast-radius graph")
	}

	// A search result offers its tlog-proof, and a delegation its chain bundle.
	b.open(tl.pageURL(tl.srv.URL, "/ui/?q=dlg-notify"))
	b.run(captureDownloads)
	checkProof(t, b, tl, tl.index["dlg-notify"], "dlg-notify")
	if _, err := proofs.VerifyBundle([]byte(download(t, b, "chain bundle")), logKey, proofs.BundleOptions{}); err != nil {
		t.Errorf("the search result's chain bundle does not verify: %v", err)
	}

	b.open(tl.pageURL(tl.srv.URL, "/ui/log"))
	b.run(captureDownloads)
	note := download(t, b, "checkpoint")
	cp, err := proofs.OpenCheckpoint([]byte(note), logKey)
	if err != nil || cp.Size != tl.l.Checkpoint().Size {
		t.Errorf("the downloaded checkpoint: %v (size %v)", err, cp)
	}

	b.open(tl.pageURL(tl.srv.URL, "/ui/blast-radius?delegation=dlg-root"))
	b.run(captureDownloads)
	svg := download(t, b, "SVG")
	dec := xml.NewDecoder(strings.NewReader(svg))
	nodes := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "a" && se.Name.Space == "http://www.w3.org/2000/svg" {
			nodes++
		}
	}
	if nodes != 7 || !strings.Contains(svg, "REVOKED") || !strings.Contains(svg, "DENIED") {
		t.Errorf("the SVG draws %d nodes (want 7) or lacks the states' words", nodes)
	}
	dot := download(t, b, "DOT")
	if !strings.HasPrefix(dot, "digraph ") || strings.Count(dot, " -> ") != 6 || !strings.Contains(dot, "shape=octagon") {
		t.Errorf("the DOT is not the graph:\n%s", dot)
	}
	b.checkClean(tl.srv.URL)

	// Served through a proxy that changes one byte of dlg-triage, no page
	// offers that entry's tlog-proof (nor its chain bundle).
	target := tl.index["dlg-triage"]
	proxy := startProxy(t, tl.srv.URL, &tamperingProxy{editJSON: flipLeafByte(target)})
	noProof := func(page, sel string) {
		t.Helper()
		b.open(tl.pageURL(proxy.URL, page))
		if b.count(sel+`[data-verified="false"]`) == 0 {
			t.Errorf("%s: %s is not marked failed", page, sel)
		}
		if n := b.count(sel + ` button.download`); n != 0 {
			t.Errorf("%s: the tampered entry offers %d download(s)", page, n)
		}
	}
	noProof(fmt.Sprintf("/ui/entry/%d", target), "#entry-proof")
	noProof("/ui/agent/"+url.PathEscape(executor), fmt.Sprintf(`#timeline tr:has(a[href="/ui/entry/%d"])`, target))
	if n := b.count(`#timeline tr[data-verified="true"] button.download`); n == 0 || n != b.count(`#timeline tr[data-verified="true"]`) {
		t.Errorf("the timeline's untampered entries offer %d tlog-proofs, want one each", n)
	}
	noProof("/ui/?q=dlg-triage", fmt.Sprintf(`#results li:has(a[href="/ui/entry/%d"])`, target))
	if n := b.count(`#results button.download`); n != 0 {
		t.Errorf("the search for the tampered delegation offers %d download(s)", n)
	}
}

// checkProof downloads the tlog-proof of entry index from the page and
// verifies it as `warrant verify` would: it must prove the delegation id.
func checkProof(t *testing.T, b *browser, tl *testLog, index uint64, id string) {
	t.Helper()
	logKey, err := proofs.ParseVerifierKey(tl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	proof := download(t, b, fmt.Sprintf("tlog-proof of entry %d", index))
	v, err := proofs.VerifyTLogProof([]byte(proof), logKey)
	if err != nil {
		t.Fatalf("the downloaded tlog-proof of entry %d does not verify: %v\n%s", index, err, proof)
	}
	if v.Index != index || v.Leaf.Delegation == nil || v.Leaf.Delegation.ID != id {
		t.Errorf("the tlog-proof proves entry %d, not %s", v.Index, id)
	}
}
