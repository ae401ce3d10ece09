// Command testsum reads `go test -json` on stdin, prints each package's result line as
// go test would, the output of every failed test, the names of skipped tests, and a
// closing count: "N passed, N failed, N skipped". It exits 1 when a test or a package
// failed. `make test` pipes the test run through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type summary struct {
	passed, failed, skipped int
	pkgFailed               int
	skippedNames            []string
}

func main() {
	s, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsum: %v\n", err)
		os.Exit(2)
	}
	if s.failed > 0 || s.pkgFailed > 0 {
		os.Exit(1)
	}
}

func summarize(r io.Reader, w io.Writer) (summary, error) {
	var s summary
	outputs := map[string][]string{} // package/test -> lines
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			fmt.Fprintln(w, string(line)) // a build error or anything else go test printed
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test != "" {
				outputs[key] = append(outputs[key], e.Output)
			} else if strings.HasPrefix(e.Output, "ok") || strings.HasPrefix(e.Output, "FAIL") ||
				strings.HasPrefix(e.Output, "?") || strings.HasPrefix(e.Output, "panic") {
				fmt.Fprint(w, e.Output)
			}
		case "pass":
			if e.Test != "" {
				s.passed++
				delete(outputs, key)
			}
		case "skip":
			if e.Test != "" {
				s.skipped++
				s.skippedNames = append(s.skippedNames, e.Package+"."+e.Test)
				delete(outputs, key)
			}
		case "fail":
			if e.Test == "" {
				s.pkgFailed++
				continue
			}
			s.failed++
			fmt.Fprintf(w, "--- FAIL: %s (%s, %.2fs)\n%s", e.Test, e.Package, e.Elapsed, strings.Join(outputs[key], ""))
			delete(outputs, key)
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	sort.Strings(s.skippedNames)
	for _, n := range s.skippedNames {
		fmt.Fprintf(w, "skipped: %s\n", n)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return s, nil
}
