package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestPrograms(t *testing.T) {
	if err := os.Chdir("../.."); err != nil { // the repository root, as make runs it
		t.Fatal(err)
	}
	got, err := Programs([]string{"cutoverbench", "./bench/reconcilebench/", "bench/datapathbench"})
	if err != nil || strings.Join(got, ",") != "cutoverbench,reconcilebench,datapathbench" {
		t.Fatalf("Programs = %v, %v", got, err)
	}
	for args, want := range map[string]string{
		"":                          "BENCH_SUITE",
		"nosuch":                    "no bench/nosuch/main.go",
		"cutoverbench cutoverbench": "twice",
		"suite":                     "not a benchmark program",
		"../etc":                    "not a benchmark program",
	} {
		_, err := Programs(strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Programs(%q) = %v, want an error with %q", args, err, want)
		}
	}
}

func TestBudget(t *testing.T) {
	if Budget(true) != 3*time.Minute || Budget(false) != 15*time.Minute {
		t.Fatal(Budget(true), Budget(false))
	}
}

func TestStackIDs(t *testing.T) {
	if got := StackIDs("ab12cd34\n\nef56ab78\nab12cd34\n"); strings.Join(got, ",") != "ab12cd34,ef56ab78" {
		t.Fatal(got)
	}
	if got := StackIDs(""); len(got) != 0 {
		t.Fatal(got)
	}
}
