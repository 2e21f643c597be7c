// Package explorertest tests the web explorer (package explorer) in a real
// browser: headless Chromium driven over the DevTools protocol by chromedp,
// against a real ledger on loopback. It is a separate module so that
// chromedp never enters the main module's dependencies.
//
// The tests skip when no Chromium is installed, and fail instead when CI is
// "true". Screenshots of each page are written to $EXPLORER_SCREENSHOTS
// (default: a temporary directory).
package explorertest
