package explorertest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// pageURL is a page of the explorer on srv with the log key in the
// fragment.
func (tl *testLog) pageURL(base, path string) string {
	return base + path + "#logkey=" + url.QueryEscape(tl.vkey)
}

// verified checks that a page shows facts marked verified, and none that
// failed.
func verified(t *testing.T, b *browser, page string, atLeast int) {
	t.Helper()
	if n := b.count(`[data-verified="false"]`); n != 0 {
		t.Errorf("%s: %d facts marked data-verified=false: %s", page, n, b.text(`[data-verified="false"]`))
	}
	if n := b.count(`[data-verified="true"]`); n < atLeast {
		t.Errorf("%s: %d facts marked verified, want at least %d", page, n, atLeast)
	}
}

// TestPages opens every page of the explorer served by the ledger at /ui/
// against the realistic tree, checks what each shows and that every fact
// is marked verified, and saves a screenshot of each.
func TestPages(t *testing.T) {
	tl := startLog(t)
	b := newBrowser(t)
	base := tl.srv.URL

	b.open(tl.pageURL(base, "/ui/"))
	if got := b.text("#pinned-key"); got != "explorer.test/log" {
		t.Fatalf("pinned key %q after opening a link with #logkey", got)
	}
	b.screenshot("search")

	// Search by task path: a scan of the latest entries.
	b.open(tl.pageURL(base, "/ui/?q="+url.QueryEscape("/tickets/triage")))
	verified(t, b, "search by task", 2)
	if s := b.text("#results"); !strings.Contains(s, "dlg-triage") || !strings.Contains(s, "dlg-notify") || strings.Contains(s, "dlg-review") {
		t.Errorf("search for /tickets/triage: %s", s)
	}
	b.screenshot("search-results")
	// By token id.
	b.open(tl.pageURL(base, "/ui/?q="+url.QueryEscape(tl.tokenJTI)))
	if s := b.text("#results"); !strings.Contains(s, fmt.Sprintf("entry %d", tl.index["token"])) {
		t.Errorf("search for the token id: %s", s)
	}
	// A scan of the entries before a given one (the "look further back"
	// link): the token is found in a range that holds it, and not in one
	// that ends before it.
	tokIdx := tl.index["token"]
	b.open(tl.pageURL(base, fmt.Sprintf("/ui/?q=%s&before=%d", url.QueryEscape(tl.tokenJTI), tokIdx+1)))
	verified(t, b, "search back by token id", 1)
	if s := b.text("#scanned"); !strings.Contains(s, fmt.Sprintf("to %d scanned", tokIdx)) {
		t.Errorf("scanned range: %s", s)
	}
	b.open(tl.pageURL(base, fmt.Sprintf("/ui/?q=%s&before=%d", url.QueryEscape(tl.tokenJTI), tokIdx)))
	if s := b.text("#results"); !strings.Contains(s, "Nothing found") || strings.Contains(s, fmt.Sprintf("entry %d ", tokIdx)) {
		t.Errorf("a scan ending before the token found it: %s", s)
	}

	// An accepted delegation with a token, signed by P-256 and Ed25519 keys.
	b.open(tl.pageURL(base, "/ui/entry/dlg-triage"))
	verified(t, b, "entry dlg-triage", 5)
	for sel, want := range map[string]string{
		"#status":     "active",
		"#payload":    "/tickets/triage",
		"#decision":   "accepted",
		"#signatures": "spiffe://example.org/agent/planner",
		"#tokens":     tl.tokenJTI,
	} {
		if s := b.text(sel); !strings.Contains(s, want) {
			t.Errorf("entry dlg-triage %s lacks %q: %s", sel, want, s)
		}
	}
	if s := b.text(`#policy[data-verified="true"]`); !strings.Contains(s, "entry 1") {
		t.Errorf("entry dlg-triage: the policy that decided is not the verified default policy (entry 1): %q", s)
	}
	if n := b.count(`#signatures tr[data-verified="true"]`); n != 1 {
		t.Errorf("entry dlg-triage: %d verified signatures, want 1", n)
	}
	if n := b.count(`button.download`); n < 2 {
		t.Errorf("entry dlg-triage: %d downloads, want the tlog-proof and the chain bundle", n)
	}
	b.screenshot("entry")

	// A revoked delegation with a human approval, and its revoking entry.
	b.open(tl.pageURL(base, "/ui/entry/dlg-review"))
	verified(t, b, "entry dlg-review", 5)
	if s := b.text("#status"); !strings.Contains(s, "revoked") || !strings.Contains(s, fmt.Sprintf("entry %d", tl.index["revocation"])) || !strings.Contains(s, "reviewer compromised") {
		t.Errorf("entry dlg-review status: %s", s)
	}
	if n := b.count(`#signatures tr[data-verified="true"]`); n != 2 {
		t.Errorf("entry dlg-review: %d verified signatures, want the issuer's and bob's approval", n)
	}
	b.screenshot("entry-revoked")

	// Entries the log writes itself, and a key binding signed by the
	// registrar key of the log configuration.
	b.open(tl.pageURL(base, "/ui/entry/0"))
	verified(t, b, "entry 0", 2)
	if s := b.text("h1"); !strings.Contains(s, "Entry 0: log_config") {
		t.Errorf("entry 0: %s", s)
	}
	b.open(tl.pageURL(base, "/ui/entry/2"))
	verified(t, b, "entry 2", 4)
	if s := b.text(`#signatures tr[data-verified="true"]`); !strings.Contains(s, "registrar key") {
		t.Errorf("entry 2's signature is not verified under the registrar key: %s", b.text("#signatures"))
	}

	// A denial, by index: reasons and the policy.
	b.open(tl.pageURL(base, fmt.Sprintf("/ui/entry/%d", tl.index["dlg-wide"])))
	verified(t, b, "entry dlg-wide", 3)
	if s := b.text("#decision"); !strings.Contains(s, "denied") || !strings.Contains(s, "scope_widened") || !strings.Contains(s, "sha256:") {
		t.Errorf("denied entry decision: %s", s)
	}
	if n := b.count(`#policy[data-verified="true"]`); n != 1 {
		t.Errorf("denied entry: the policy that decided is not shown verified")
	}
	b.screenshot("entry-denied")

	// The chain: what each hop narrowed.
	b.open(tl.pageURL(base, "/ui/chain/dlg-notify"))
	verified(t, b, "chain", 3)
	if n := b.count(`li.hop[data-verified="true"]`); n != 3 {
		t.Errorf("chain of dlg-notify: %d verified hops, want 3", n)
	}
	if s := b.text(`li.hop[data-delegation="dlg-triage"]`); !strings.Contains(s, "dropped tickets:write") || !strings.Contains(s, "narrowed from /tickets") || !strings.Contains(s, "dropped confidential") {
		t.Errorf("hop dlg-triage does not show what narrowed: %s", s)
	}
	b.screenshot("chain")

	// The blast radius of the root grant: every state, by shape and word.
	b.open(tl.pageURL(base, "/ui/blast-radius?delegation=dlg-root"))
	verified(t, b, "blast radius", 7)
	states := map[string]int{}
	for _, st := range []string{"active", "revoked", "denied", "revocation", "token"} {
		states[st] = b.count(fmt.Sprintf(`#graph a.node[data-state=%q][data-verified="true"]`, st))
	}
	if states["active"] != 3 || states["revoked"] != 1 || states["denied"] != 1 || states["revocation"] != 1 || states["token"] != 1 {
		t.Errorf("blast radius node states: %v", states)
	}
	if s := b.text("#counts"); !strings.Contains(s, "tickets:read") || !strings.Contains(s, "internal") || !strings.Contains(s, "https://tickets.example/api") {
		t.Errorf("counts: %s", s)
	}
	// What would revoking dlg-triage cut: itself, dlg-notify and the token.
	b.run(`document.querySelector("#cut-target").value = "` + fmt.Sprint(tl.index["dlg-triage"]) + `"; document.querySelector("#cut-target").dispatchEvent(new Event("change"))`)
	if s := b.text("#cut-summary"); !strings.Contains(s, "2 active delegation(s) and 1 unexpired token(s)") {
		t.Errorf("cut summary: %s", s)
	}
	if n := b.count(`#counts[data-verified="true"]`) + b.count(`#cut-summary[data-verified="true"]`); n != 2 {
		t.Errorf("the counts and the cut, derived from verified entries only, are not both marked verified")
	}
	if n := b.count(`#graph a.node.cut`); n != 3 {
		t.Errorf("%d nodes marked as cut, want 3", n)
	}
	b.screenshot("blast-radius")

	// The time filter: nothing logged after the last entry.
	b.run(`document.querySelector("#from").value = "2999-01-01T00:00"; document.querySelector("#from").dispatchEvent(new Event("change"))`)
	if n := b.count(`#graph a.node`); n != 0 {
		t.Errorf("%d nodes drawn after the year 2999", n)
	}

	// An expired delegation.
	b.open(tl.pageURL(base, "/ui/entry/dlg-old"))
	verified(t, b, "entry dlg-old", 4)
	if s := b.text(`#status[data-state="expired"]`); !strings.Contains(s, "expired") {
		t.Errorf("dlg-old's status: %s", b.text("#status"))
	}

	// An agent's radius and timeline.
	b.open(tl.pageURL(base, "/ui/blast-radius?agent="+url.QueryEscape(planner)))
	verified(t, b, "agent blast radius", 8)
	if n := b.count(`#graph a.node[data-state="expired"]`); n != 1 {
		t.Errorf("planner's blast radius: %d expired nodes, want dlg-old", n)
	}
	b.screenshot("blast-radius-agent")
	b.open(tl.pageURL(base, "/ui/agent/"+url.PathEscape(planner)))
	verified(t, b, "agent timeline", 5)
	if s := b.text("#timeline"); !strings.Contains(s, "registered") || !strings.Contains(s, "issued") || !strings.Contains(s, "received") {
		t.Errorf("planner's timeline: %s", s)
	}
	b.screenshot("agent")

	b.open(tl.pageURL(base, "/ui/log"))
	verified(t, b, "log", 3)
	if s := b.text("#log-size"); s != fmt.Sprint(tl.l.Checkpoint().Size) {
		t.Errorf("log size %q, want %d", s, tl.l.Checkpoint().Size)
	}
	if n := b.count(`#tiles[data-verified="true"]`); n != 1 {
		t.Errorf("the log page does not show the tiles agreeing: %s", b.text("#tiles"))
	}
	b.screenshot("log")
	b.checkClean(base)

	// A link carrying another key does not replace the pinned one: the
	// page offers to, and keeps verifying with the pinned key.
	keys, err := os.ReadFile("../testdata/vectors/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		LogKey struct {
			Verifier string `json:"note_verifier_key"`
		} `json:"log_key"`
	}
	if err := json.Unmarshal(keys, &k); err != nil {
		t.Fatal(err)
	}
	// The same page with another fragment: no reload, a hashchange.
	b.do(chromedp.Navigate(base+"/ui/log#logkey="+url.QueryEscape(k.LogKey.Verifier)),
		chromedp.WaitVisible(chromedp.CSS("#offer")),
		chromedp.WaitVisible(chromedp.CSS(`main[data-ready="true"] #checkpoint[data-verified="true"]`)))
	if s := b.text("#offer"); !strings.Contains(s, "different log key") {
		t.Errorf("a link with another key is not questioned: %q", s)
	}
	if got := b.text("#pinned-key"); got != "explorer.test/log" {
		t.Errorf("a link replaced the pinned key with %q", got)
	}
	verified(t, b, "log after a link with another key", 3)

	// The Content-Security-Policy is in force: an inline script injected
	// into the page does not run, and a request to another origin fails.
	blocked := eval[string](b, `(async () => {
		const s = document.createElement("script");
		s.textContent = "window.injected = true";
		document.body.append(s);
		await new Promise((r) => setTimeout(r, 50));
		let fetched = "fetched";
		try { await fetch("http://192.0.2.1/steal"); } catch (e) { fetched = "refused"; }
		return (window.injected ? "ran" : "blocked") + " " + fetched;
	})()`)
	if blocked != "blocked refused" {
		t.Errorf("inline script and foreign fetch: %s, want both refused by the CSP", blocked)
	}
}
