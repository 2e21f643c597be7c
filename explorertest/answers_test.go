package explorertest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// askInstead rewrites the requests of one RPC method whose field is from
// into to: the log, honest, answers another question than the page asked.
func askInstead(method, field, from, to string) func(string, map[string]any) {
	return func(m string, body map[string]any) {
		if m == method && body[field] == from {
			body[field] = to
		}
		// The explorer lists children in bulk too: the same question,
		// asked as one of ListChildrenBatch's.
		if method == "ListChildren" && m == "ListChildrenBatch" {
			if ids, ok := body[field+"s"].([]any); ok {
				for i, id := range ids {
					if id == from {
						ids[i] = to
					}
				}
			}
		}
	}
}

// failedPlainly requires the page's banner to say that it failed
// verification and sel to name the mismatch.
func failedPlainly(t *testing.T, b *browser, page, sel string) {
	t.Helper()
	if s := b.text("#verification-failed"); !strings.Contains(s, "FAILED verification") {
		t.Errorf("%s: no banner says the page failed verification: %q", page, s)
	}
	if s := b.text(sel); !strings.Contains(s, "response_mismatch") {
		t.Errorf("%s: %s does not say the answer is not the one asked for: %s", page, sel, s)
	}
}

// TestWrongAnswers puts a proxy in front of the log that rewrites the
// requests: every entry it answers with is genuine and proven, but not
// the one the page asked for. Each page must mark what it shows from such
// an answer data-verified="false", never "true".
func TestWrongAnswers(t *testing.T) {
	tl := startLog(t)
	var proxyURL string
	open := func(t *testing.T, edit func(string, map[string]any), page string) *browser {
		t.Helper()
		b := newBrowser(t)
		proxyURL = startProxy(t, tl.srv.URL, &tamperingProxy{editRequest: edit}).URL
		b.open(tl.pageURL(proxyURL, page))
		return b
	}

	t.Run("chain root", func(t *testing.T) {
		// The root grant asked for is dlg-root; the log is asked for dlg-old,
		// another root grant by alice.
		b := open(t, askInstead("GetEntry", "delegationId", "dlg-root", "dlg-old"), "/ui/chain/dlg-triage")
		noneVerified(t, b, "chain", `li.hop[data-delegation="dlg-old"]`)
		if n := b.count(`li.hop[data-verified="true"]`); n != 1 {
			t.Errorf("chain: %d hops verified, want only dlg-triage's own: %s", n, b.text("ol.chain"))
		}
		failedPlainly(t, b, "chain", `li.hop[data-delegation="dlg-old"]`)
	})

	t.Run("entry by delegation id", func(t *testing.T) {
		// The revoked dlg-review asked for; the active dlg-triage answered.
		b := open(t, askInstead("GetEntry", "delegationId", "dlg-review", "dlg-triage"), "/ui/entry/dlg-review")
		noneVerified(t, b, "entry", "#entry-proof", "#payload", "#decision", "#status")
		failedPlainly(t, b, "entry", "#entry-proof")
	})

	t.Run("entry status from another delegation's children", func(t *testing.T) {
		// The children of dlg-review (its revocation) asked for; those of
		// dlg-triage (a delegation and a token) answered.
		b := open(t, askInstead("ListChildren", "delegationId", "dlg-review", "dlg-triage"), "/ui/entry/dlg-review")
		noneVerified(t, b, "entry", "#status", "#tokens")
		if s := b.text("#tokens"); !strings.Contains(s, "(0)") {
			t.Errorf("a token of another delegation is counted as issued under dlg-review: %s", s)
		}
		if n := b.count(`#entry-proof[data-verified="true"]`); n != 1 {
			t.Errorf("the entry itself, answered rightly, is not verified")
		}
	})

	t.Run("entry by index", func(t *testing.T) {
		from, to := tl.index["dlg-triage"], tl.index["dlg-notify"]
		b := open(t, askInstead("GetEntry", "index", itoa(from), itoa(to)), fmt.Sprintf("/ui/entry/%d", from))
		noneVerified(t, b, "entry", "#entry-proof", "#payload", "#decision")
		failedPlainly(t, b, "entry", "#entry-proof")
		if s := b.text("#entry-proof"); !strings.Contains(s, fmt.Sprintf("asked for entry %d, got entry %d", from, to)) {
			t.Errorf("the mismatch is not named: %s", s)
		}
	})

	t.Run("blast radius", func(t *testing.T) {
		b := open(t, askInstead("GetEntry", "delegationId", "dlg-root", "dlg-review"), "/ui/blast-radius?delegation=dlg-root")
		noneVerified(t, b, "blast radius", "#radius-summary", fmt.Sprintf(`#graph a.node[data-index="%d"]`, tl.index["dlg-review"]))
		if n := b.count(`#graph a.node[data-verified="true"]`); n != 0 {
			t.Errorf("blast radius: %d nodes verified under a wrong answer", n)
		}
		if n := b.count(`#counts[data-verified="true"]`); n != 0 {
			t.Errorf("blast radius: counts marked verified under a wrong answer")
		}
	})

	t.Run("agent", func(t *testing.T) {
		b := open(t, askInstead("ListAgentEntries", "agent", executor, alice), "/ui/agent/"+url.PathEscape(executor))
		if n := b.count(`#timeline tbody tr[data-verified="true"]`); n != 0 {
			t.Errorf("timeline: %d of alice's entries verified as the executor's", n)
		}
		if n := b.count(`#timeline tbody tr[data-verified="false"]`); n == 0 {
			t.Errorf("timeline: alice's entries are not marked failed: %s", b.text("#timeline"))
		}
		if s := b.text("#timeline"); strings.Contains(s, "approved") || !strings.Contains(s, "does not name this agent") {
			t.Errorf("timeline roles: %s", s)
		}
		failedPlainly(t, b, "timeline", "#timeline")
		b.open(tl.pageURL(proxyURL, "/ui/blast-radius?agent="+url.QueryEscape(executor)))
		noneVerified(t, b, "agent blast radius", "#radius-summary")
	})
}
