package wire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

var hookVars = []string{"SWAP_APP=web", "SWAP_COLOR=green", "SWAP_IMAGE=web:2", "SWAP_DEPLOY=d1"}

// hook is a run of command as web's hook name, with hooks.env extra and the timeout.
func hook(name, command string, timeout time.Duration, extra ...string) switcher.Hook {
	return switcher.Hook{App: "web", Name: name, Command: command, Env: append(extra, hookVars...), Timeout: timeout}
}

// readPid waits for a hook to write a pid into path and returns it.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testenv.WaitFor(t, 30*time.Second, "the hook writes its child's pid", func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return pid
}

// killLater kills pid (a hook's background child) when the test ends.
func killLater(t *testing.T, pid int) {
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	})
}

func TestHooks_ABackgroundChildDoesNotKeepTheHookRunning(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	h := Hooks{}
	done := make(chan error, 1)
	go func() {
		done <- h.Run(context.Background(), hook("post_deploy", "sleep 300 & echo $! > "+pidFile+"; echo started", time.Minute))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run waited for the hook's background child (sleep 300)")
	}
	child := readPid(t, pidFile)
	killLater(t, child)
	if !pidAlive(child) {
		t.Fatal("the background child was killed although the hook ended well: it is the hook's to keep")
	}
}

func TestHooks_AHookOverItsTimeoutIsKilledWithEveryProcessItStarted(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	h := Hooks{}
	err := h.Run(context.Background(), hook("pre_deploy", "sleep 300 & echo $! > "+pidFile+"; echo waiting; wait", time.Second))
	if !errors.Is(err, ErrHookTimeout) {
		t.Fatalf("Run = %v, want ErrHookTimeout", err)
	}
	for _, want := range []string{"timed out after 1s", "apps.web.hooks.timeout", "output: waiting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	child := readPid(t, pidFile)
	killLater(t, child)
	testenv.WaitFor(t, 10*time.Second, "the hook's background child is gone", func() error {
		if pidAlive(child) {
			return fmt.Errorf("pid %d is alive", child)
		}
		return nil
	})
}

func TestHooks_ACancelledContextKillsTheHooksProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	h := Hooks{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, hook("pre_deploy", "sleep 300 & echo $! > "+pidFile+"; wait", time.Hour)) }()
	child := readPid(t, pidFile)
	killLater(t, child)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stopped") {
			t.Fatalf("Run = %v, want it stopped", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	testenv.WaitFor(t, 10*time.Second, "the hook's child is gone", func() error {
		if pidAlive(child) {
			return fmt.Errorf("pid %d is alive", child)
		}
		return nil
	})
}

func TestHooks_SeeAnExplicitEnvironmentWithoutSwapsSecrets(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	swapEnv := map[string]string{"PATH": "/usr/bin:/bin", "HOME": "/home/deploy", "SWAP_CONSUL_TOKEN": "s3cret", "AWS_SECRET_ACCESS_KEY": "k"}
	h := Hooks{
		LookupEnv: func(k string) (string, bool) { v, ok := swapEnv[k]; return v, ok },
	}
	if err := h.Run(context.Background(), hook("post_deploy", "env > "+envFile, time.Minute, "HOME=/srv/hooks", "SLACK_URL=https://hooks.example/x")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, _, _ := strings.Cut(line, "="); k != "PWD" && k != "SHLVL" && k != "_" && k != "OLDPWD" { // the shell's own
			got = append(got, line)
		}
	}
	slices.Sort(got)
	want := []string{"HOME=/srv/hooks", "PATH=/usr/bin:/bin", "SLACK_URL=https://hooks.example/x",
		"SWAP_APP=web", "SWAP_COLOR=green", "SWAP_DEPLOY=d1", "SWAP_IMAGE=web:2"}
	if !slices.Equal(got, want) {
		t.Fatalf("the hook's environment:\n  got  %q\n  want %q", got, want)
	}
}
