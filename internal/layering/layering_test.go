// Package layering holds the test that keeps the protocol layers pure:
// no I/O, no goroutine machinery, and no clock but the one passed in.
package layering

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pure are the packages the simulator and the daemon share; they get the
// time as an input and do no I/O.
var pure = []string{"core", "records", "announce", "member", "wire"}

var forbiddenImports = map[string]string{
	"os":        "no files or environment",
	"net":       "no network",
	"sync":      "single-threaded",
	"log":       "outputs are data, not log lines",
	"log/slog":  "outputs are data, not log lines",
	"math/rand": "randomness comes from the *rand.Rand passed in",
}

// Functions of package time that read or wait on the wall clock.
var forbiddenTime = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "Tick": true, "NewTicker": true, "NewTimer": true,
}

func TestPurePackages(t *testing.T) {
	for _, pkg := range pure {
		dir := filepath.Join("..", "..", pkg)
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", pkg, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checkFile(t, pkg, f)
		}
	}
}

func checkFile(t *testing.T, pkg, path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	timeName := ""
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if why, bad := forbiddenImports[p]; bad {
			t.Errorf("%s imports %q: %s must stay pure (%s)", fset.Position(imp.Pos()), p, pkg, why)
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" {
		return
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName && forbiddenTime[sel.Sel.Name] {
			t.Errorf("%s: time.%s: %s takes the time as an input", fset.Position(sel.Pos()), sel.Sel.Name, pkg)
		}
		return true
	})
}
