package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummarizeCountsAndShowsFailuresAndSkips(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"quiet\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.5}`,
		`{"Action":"skip","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.6s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`# a build error line`,
	}, "\n")
	var out bytes.Buffer
	s, err := summarize(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if s.passed != 1 || s.failed != 1 || s.skipped != 1 || s.pkgFailed != 1 {
		t.Fatalf("summary %+v", s)
	}
	got := out.String()
	for _, want := range []string{"--- FAIL: TestB (p, 0.50s)\nboom\n", "FAIL\tp\t0.6s\n", "skipped: p.TestC\n", "# a build error line\n", "1 passed, 1 failed, 1 skipped\n"} {
		if !strings.Contains(got, want) {
			t.Fatalf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet") {
		t.Fatalf("a passing test's output was printed:\n%s", got)
	}
}
