package explorer

import (
	"io/fs"
	"strings"
	"testing"
)

// TestModulePreload checks that index.html preloads every module app.js
// imports, directly or not, so that a new module is not left to load a
// level of imports late.
func TestModulePreload(t *testing.T) {
	files := Files()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := fs.Glob(files, "assets/*.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if m == "assets/app.js" {
			continue
		}
		if !strings.Contains(string(index), `<link rel="modulepreload" href="/ui/`+m+`">`) {
			t.Errorf("index.html does not preload %s", m)
		}
	}
}
