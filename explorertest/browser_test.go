package explorertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds the browser, skipping the test when there is none (and
// failing when CI is "true": CI must install it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium found: CI must install Debian's chromium package")
	}
	t.Skip("no chromium installed (apt-get install chromium)")
	return ""
}

// browser is one headless Chromium with a fresh profile (so nothing is
// pinned or trusted), recording every request it makes and every console
// error, exception and CSP report.
type browser struct {
	ctx context.Context
	t   *testing.T

	mu       sync.Mutex
	requests []string
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	b := &browser{ctx: ctx, t: t}
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, fmt.Sprintf("exception: %s %v", ev.ExceptionDetails.Text, ev.ExceptionDetails.Exception))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				b.problems = append(b.problems, fmt.Sprintf("console error: %v", ev.Args))
			}
		case *cdplog.EventEntryAdded:
			// A 404 is an answer the page handles (a search that finds
			// nothing); the tests check what the page shows for it.
			if ev.Entry.Level == cdplog.EntryLevelError && !(ev.Entry.Source == "network" && strings.Contains(ev.Entry.Text, "404")) {
				b.problems = append(b.problems, fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{})
		return err
	}))
	return b
}

// do runs actions with a generous timeout: a busy two-core machine runs
// several test suites at once.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// open loads a page and waits until it has rendered (main[data-ready]).
func (b *browser) open(u string) {
	b.t.Helper()
	b.do(chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(`main[data-ready="true"]`)))
}

// eval evaluates a JavaScript expression into T.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

func (b *browser) count(selector string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf("document.querySelectorAll(%q).length", selector))
}

func (b *browser) text(selector string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf("(document.querySelector(%q) || {}).innerText || ''", selector))
}

// screenshot saves the whole page as name.png under $EXPLORER_SCREENSHOTS
// (default: the test's temporary directory).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("EXPLORER_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// checkClean fails on exceptions, console errors (CSP violations are
// reported there) and requests to any origin but allowed.
func (b *browser) checkClean(allowed ...string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser: %s", p)
	}
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme == "blob" || u.Scheme == "data" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if strings.HasPrefix(r, a+"/") {
				ok = true
			}
		}
		if !ok {
			b.t.Errorf("the page requested %s, outside %v", r, allowed)
		}
	}
}

// run evaluates JavaScript for its effect.
func (b *browser) run(js string) {
	b.t.Helper()
	eval[any](b, js)
}
