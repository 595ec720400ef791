// Package rampart_test holds repository-wide checks.
package rampart_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryPackageHasOneDocComment enforces "one package, one job, one doc comment": every
// package has a doc comment, in exactly one of its files, that starts "Package NAME" (or
// "Command NAME" for main packages).
func TestEveryPackageHasOneDocComment(t *testing.T) {
	dirs := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 10 {
		t.Fatalf("found only %d packages; is the walk broken?", len(dirs))
	}
	for dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		docs := map[string][]string{} // package name -> files with a doc comment
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			name := f.Name.Name
			if _, ok := docs[name]; !ok {
				docs[name] = nil
			}
			if f.Doc == nil {
				continue
			}
			docs[name] = append(docs[name], filepath.Base(file))
			text := f.Doc.Text()
			if !strings.HasPrefix(text, "Package "+name+" ") && !(name == "main" && strings.HasPrefix(text, "Command ")) {
				t.Errorf("%s: doc comment should start \"Package %s\": %.40q", file, name, text)
			}
		}
		for name, with := range docs {
			if len(with) != 1 {
				t.Errorf("package %s (%s) has %d doc comments (%v); want exactly one", name, dir, len(with), with)
			}
		}
	}
}
