package explorertest

import (
	"net/url"
	"testing"
)

// TestBlastRadius500 draws the blast radius of a root grant with 500
// delegations under it (a hub hands 20 agents a task each, and each hands
// 24 tasks on), every node verified in the browser. It logs how long the
// page took from navigation to the graph drawn and verified, and how long
// drawing alone took, and asserts no time: the machine is shared.
func TestBlastRadius500(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 500-delegation tree")
	}
	const agents, perAgent = 20, 24
	w := newWideLog(t, agents, perAgent, "w-root")
	b := newBrowser(t)
	b.open(w.srv.URL + "/ui/blast-radius?delegation=w-root#logkey=" + url.QueryEscape(w.l.VerifierKey()))
	want := 1 + agents + agents*perAgent
	if n := b.count(`#graph a.node[data-verified="true"]`); n != want {
		t.Errorf("%d verified nodes drawn, want %d", n, want)
	}
	if n := b.count(`[data-verified="false"]`); n != 0 {
		t.Errorf("%d facts failed", n)
	}
	t.Logf("%d nodes: from navigation to the graph drawn and verified %s ms (the page's own work: fetched, verified and drawn in %s ms; drawn, layout and SVG, in %s ms); requests: %s",
		want, eval[string](b, `String(Math.round(performance.getEntriesByName("explorer-ready").pop().startTime))`),
		eval[string](b, `document.querySelector(".page").dataset.renderMs`), eval[string](b, `document.querySelector(".page").dataset.drawMs`),
		eval[string](b, `JSON.stringify(Object.entries(performance.getEntriesByType("resource").filter((e) => e.initiatorType === "fetch").reduce((m, e) => { const k = e.name.split("/").pop(); m[k] = (m[k] || 0) + 1; return m; }, {})))`))
	b.screenshot("blast-radius-500")
	b.checkClean(w.srv.URL)
}
