package explorertest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// unlabelled lists the form controls without a label, and the pages
// without the landmarks and the one h1 every page has.
const a11yCheck = `(() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    const named = el.labels?.length || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim());
    if (!named) problems.push("unlabelled " + el.tagName + "#" + el.id);
  }
  for (const sel of ["header", "nav[aria-label]", "main#main", "footer"]) if (!document.querySelector(sel)) problems.push("no " + sel);
  if (document.querySelectorAll("h1").length !== 1) problems.push(document.querySelectorAll("h1").length + " h1");
  for (const t of document.querySelectorAll("table")) if (!t.querySelector("caption")) problems.push("a table without a caption");
  for (const a of document.querySelectorAll("svg a")) if (!a.getAttribute("aria-label")) problems.push("a graph node without a name");
  return problems.join("; ");
})()`

// tabTo presses Tab until the focused element matches selector.
func tabTo(t *testing.T, b *browser, selector string) {
	t.Helper()
	for i := 0; i < 80; i++ {
		if eval[bool](b, `!!document.activeElement && document.activeElement.matches(`+jsString(selector)+`)`) {
			return
		}
		b.do(chromedp.KeyEvent("\t"))
	}
	t.Fatalf("Tab never reached %s", selector)
}

func jsString(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// TestKeyboardAndLabels checks every page for labelled controls,
// landmarks, captions and named graph nodes, and walks the explorer with
// the keyboard alone: the skip link, the search form, a result, a graph
// node.
func TestKeyboardAndLabels(t *testing.T) {
	tl := startLog(t)
	b := newBrowser(t)
	base := tl.srv.URL
	for _, p := range []string{"/ui/", "/ui/?q=%2Ftickets", "/ui/entry/dlg-triage", "/ui/chain/dlg-notify",
		"/ui/blast-radius?delegation=dlg-root", "/ui/agent/" + url.PathEscape(executor), "/ui/log"} {
		b.open(tl.pageURL(base, p))
		if problems := eval[string](b, a11yCheck); problems != "" {
			t.Errorf("%s: %s", p, problems)
		}
	}

	b.open(tl.pageURL(base, "/ui/"))
	b.do(chromedp.KeyEvent("\t"))
	if !eval[bool](b, `document.activeElement.matches("a.skip")`) {
		t.Errorf("the first Tab does not reach the skip link")
	}
	tabTo(t, b, "#q")
	b.do(chromedp.KeyEvent("dlg-triage\r"), chromedp.WaitVisible(chromedp.CSS(`#results`)))
	tabTo(t, b, `#results a[href="/ui/entry/`+itoa(tl.index["dlg-triage"])+`"]`)
	b.do(chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(`.page[data-page="entry"]`)))
	if s := b.text("h1"); !strings.Contains(s, "Entry "+itoa(tl.index["dlg-triage"])) {
		t.Errorf("Enter on a result opened %q", s)
	}
	if !eval[bool](b, `document.activeElement === document.querySelector("main")`) {
		t.Errorf("after navigation the focus is not on the main content")
	}
	b.open(tl.pageURL(base, "/ui/blast-radius?delegation=dlg-root"))
	tabTo(t, b, `#graph a.node[data-index="`+itoa(tl.index["dlg-notify"])+`"]`)
	b.do(chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS(`.page[data-page="entry"]`)))
	if s := b.text("h1"); !strings.Contains(s, "Entry "+itoa(tl.index["dlg-notify"])) {
		t.Errorf("Enter on a graph node opened %q", s)
	}
	b.checkClean(base)
}
