package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestVersionPrintsVersionCommitAndGo(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := execute([]string{"version"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "swap dev (commit unknown, " + runtime.Version()
	if !strings.HasPrefix(out.String(), want) {
		t.Fatalf("version printed %q, want prefix %q", out.String(), want)
	}
}

func TestUnknownCommandExitsWithUsageCode(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := execute([]string{"no-such-command"}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut.String(), "no-such-command") {
		t.Fatalf("stderr %q does not name the command", errOut.String())
	}
}
