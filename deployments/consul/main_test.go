package consul

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

// The lock tests need a second process. The test binary re-runs itself with
// lockerEnv set and becomes a small locker instead of running the tests.
const lockerEnv = "SWAP_CONSUL_TEST_LOCKER"

func TestMain(m *testing.M) {
	if os.Getenv(lockerEnv) != "" {
		os.Exit(runLocker())
	}
	os.Exit(m.Run())
}

// runLocker is the helper process. Environment: the agent's address, the app, the
// command it names itself by, the TTL. Protocol on stdin/stdout, one line each:
//
//	-> READY            (connected)
//	<- go               (take the lock, without waiting)
//	-> LOCKED | BUSY <holder JSON> | ERROR <text>
//	<- unlock           (or EOF)
//	-> UNLOCKED
func runLocker() int {
	out := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	r, err := New(deployments.ConsulConfig{Address: os.Getenv("LOCKER_CONSUL")}, zap.NewNop())
	if err != nil {
		out("ERROR %v", err)
		return 1
	}
	ctx := context.Background()
	if err := r.Ping(ctx); err != nil {
		out("ERROR %v", err)
		return 1
	}
	ttl, _ := time.ParseDuration(os.Getenv("LOCKER_TTL"))
	in := bufio.NewScanner(os.Stdin)
	out("READY")
	if !in.Scan() || in.Text() != "go" {
		return 1
	}
	l, err := r.Lock(ctx, os.Getenv("LOCKER_APP"), LockOptions{TTL: ttl, Holder: Me(os.Getenv("LOCKER_COMMAND"))})
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		b, _ := json.Marshal(busy.Holder)
		out("BUSY %s", b)
		return 3
	case err != nil:
		out("ERROR %v", err)
		return 1
	}
	out("LOCKED")
	in.Scan() // "unlock" or EOF
	if err := l.Unlock(ctx); err != nil {
		out("ERROR %v", err)
		return 1
	}
	out("UNLOCKED")
	return 0
}

// locker is a running helper process.
type locker struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	pid     int
	stopped chan struct{}
}

func startLocker(t *testing.T, agent *testenv.ConsulAgent, app, name string, ttl time.Duration) *locker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockerEnv+"=1", "LOCKER_CONSUL="+agent.Addr, "LOCKER_APP="+app,
		"LOCKER_COMMAND="+name, "LOCKER_TTL="+ttl.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start locker %s: %v", name, err)
	}
	l := &locker{t: t, name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 10), pid: cmd.Process.Pid, stopped: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		close(l.lines)
	}()
	go func() { cmd.Wait(); close(l.stopped) }()
	t.Cleanup(func() {
		select {
		case <-l.stopped:
		default:
			cmd.Process.Kill() // our own child, by pid
			<-l.stopped
		}
	})
	l.expect("READY")
	return l
}

// next is the helper's next line.
func (l *locker) next() string {
	l.t.Helper()
	select {
	case line, ok := <-l.lines:
		if !ok {
			l.t.Fatalf("locker %s exited early", l.name)
		}
		return line
	case <-time.After(60 * time.Second):
		l.t.Fatalf("locker %s said nothing for 60s", l.name)
	}
	return ""
}

func (l *locker) expect(want string) {
	l.t.Helper()
	if got := l.next(); got != want {
		l.t.Fatalf("locker %s: got %q, want %q", l.name, got, want)
	}
}

func (l *locker) send(line string) {
	l.t.Helper()
	if _, err := io.WriteString(l.stdin, line+"\n"); err != nil {
		l.t.Fatalf("locker %s: %v", l.name, err)
	}
}

// registry is a Registry for agent that logs into the test.
func registry(t *testing.T, agent *testenv.ConsulAgent) *Registry {
	t.Helper()
	r, err := New(deployments.ConsulConfig{Address: agent.Addr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ctxFor is a context for one test step, bounded so a hang fails instead of blocking.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustContain(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%q\ndoes not contain %q", s, p)
		}
	}
}
