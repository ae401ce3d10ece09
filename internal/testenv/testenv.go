// Package testenv starts the real HAProxy, Consul and Docker fixtures that swap's
// integration tests run against.
//
// Every fixture is stopped or removed in t.Cleanup. A missing dependency fails the test
// when CI=true and skips it otherwise, naming the command that installs it (`make deps`).
//
// testenv is imported by _test.go files only. It is the one place besides the adapters
// that may import the Docker SDK and consul/api: it builds and inspects fixtures, it is
// not part of swap.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/stack/procs"
)

// InCI reports whether the tests run in CI, where a missing dependency is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require stops the test because dependency what is unavailable: a failure in CI, a
// skip elsewhere. why says what went wrong.
func Require(t testing.TB, what string, why error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available: %v; install it with `make deps`", what, why)
	if InCI() {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skipf("%s (skipping outside CI)", msg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and that this
// process has not handed out before (procs.FreePort: in [20000, 32000), below the
// kernel's and Docker's ephemeral ports).
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := procs.FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot is the directory of swap's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.HasPrefix(string(b), "module github.com/swap-dev/swap\n") {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod of github.com/swap-dev/swap above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("testenv: %v", rootErr)
	}
	return rootDir
}

// WaitFor polls cond every 10ms until it returns nil or timeout passes, then fails the
// test with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("testenv: %s: %v", what, err)
	}
}

// Poll calls cond every 10ms until it returns nil or timeout passes; it returns cond's
// last error then.
func Poll(timeout time.Duration, cond func() error) error {
	return procs.Poll(context.Background(), timeout, cond)
}

var runSeq struct {
	sync.Mutex
	n int
}

// newRunID names one fixture run: unique across processes and across calls.
func newRunID() string {
	runSeq.Lock()
	defer runSeq.Unlock()
	runSeq.n++
	return fmt.Sprintf("%d-%d-%d", time.Now().Unix()%1_000_000, os.Getpid(), runSeq.n)
}
