package wire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

// Hooks runs deploy hooks with /bin/sh -c, each in its own process group, with an
// explicit environment (PATH and HOME of swap's, then the hook's Env) and its timeout.
//
// A hook's output goes to a file, not a pipe: a background child (`notify.sh &`) that
// keeps the hook's output open then cannot keep swap waiting once the shell is done. On
// the timeout, or when ctx ends (Ctrl-C, a lost lock), the whole process group is killed.
type Hooks struct {
	Log *zap.Logger
	// LookupEnv reads swap's environment for PATH and HOME (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
}

var _ switcher.HookRunner = Hooks{}

// maxHookOutput is how much of a failed hook's output its error quotes.
const maxHookOutput = 2048

// defaultPath is a hook's PATH when swap has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ErrHookTimeout says a hook ran longer than its app's hooks.timeout.
var ErrHookTimeout = errors.New("timed out")

func (h Hooks) Run(ctx context.Context, hook switcher.Hook) error {
	app, name, command := hook.App, hook.Name, hook.Command
	timeout := hook.Timeout
	if timeout <= 0 {
		timeout = deployments.DefaultHookTimeout
	}

	out, err := os.CreateTemp("", "swap-hook-*.log")
	if err != nil {
		return fmt.Errorf("create the output file of hook %s: %w", name, err)
	}
	defer os.Remove(out.Name())
	defer out.Close()

	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = h.environ(hook.Env)
	cmd.Stdout, cmd.Stderr = out, out // a file: no copying goroutine that a child could hold up
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("start /bin/sh for hook %s: %w: there is no shell here (the swap image is FROM scratch: add a static /bin/sh in an image built FROM it, or remove the hook)", name, err)
		}
		return fmt.Errorf("start /bin/sh for hook %s: %w", name, err)
	}
	pgid := cmd.Process.Pid // Setpgid: the shell leads its own group

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var why error
	select {
	case err = <-done:
	case <-timer.C:
		why = fmt.Errorf("%w after %v (%s): killed it and every process it started",
			ErrHookTimeout, timeout, deployments.Path("apps").Key(app).Key("hooks").Key("timeout"))
	case <-ctx.Done():
		why = fmt.Errorf("stopped (%w): killed it and every process it started", context.Cause(ctx))
	}
	if why != nil {
		select {
		case err = <-done: // it ended just then: its group may be gone, leave it
		default:
			// The whole group: the shell and whatever it started, in the background too.
			// A group's id is not reused while any member lives, so this reaches only
			// the hook's processes (ESRCH when they are all gone already).
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			err = why
		}
	}
	if h.Log != nil {
		h.Log.Info("hook ran", zap.String("hook", name), zap.String("app", app), zap.Bool("ok", err == nil),
			zap.Duration("took", time.Since(start)))
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("%q: %w; output: %s", command, err, tail(out, maxHookOutput))
}

// environ is a hook's whole environment: PATH and HOME from swap's (nothing else of it:
// swap's environment holds its secrets, like SWAP_CONSUL_TOKEN), then env (the app's
// hooks.env, then swap's variables for the hook: SWAP_APP, ...), later entries winning.
func (h Hooks) environ(env []string) []string {
	lookup := h.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	vars := map[string]string{"PATH": defaultPath}
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := lookup(k); ok && v != "" {
			vars[k] = v
		}
	}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// tail is the last limit bytes of f's content, trimmed.
func tail(f *os.File, limit int64) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, st.Size()-limit)
	b := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(b, off)
	text := strings.TrimSpace(string(b[:n]))
	if off > 0 {
		text = "..." + text
	}
	return text
}
