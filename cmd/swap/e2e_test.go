package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestE2E_BlueGreenBlueAndANewImageUnderLoadWithoutAFailedRequest(t *testing.T) {
	t.Parallel()
	s := newStack(t, "")
	app := e2eApp("web") // container names are global on the Docker host
	r := s.mustSwap("deploy", app)
	if !strings.Contains(r.stdout, "blue live with "+s.v1) {
		t.Fatalf("first deploy did not report blue live:\n%s", r)
	}
	s.waitAnswer("web.test", "color=blue version=v1")

	l := s.startLoad("web.test", "/", 4)
	s.mustSwap(app, "green")
	s.waitAnswer("web.test", "color=green version=v1")
	s.mustSwap("switch", app, "blue")
	s.waitAnswer("web.test", "color=blue version=v1")
	s.mustSwap("deploy", app, "--image", s.v2)
	s.waitAnswer("web.test", "color=green version=v2")
	l.requireNoFailures(t)
	for _, c := range []string{"blue", "green"} {
		if l.byColor[c] == 0 {
			t.Fatalf("no response from %s during the swaps: %v", c, l.byColor)
		}
	}

	st := s.mustSwap("status", app)
	for _, want := range []string{app + ": live green", s.v2, app + "-green-0", app + "-green-1", "passing"} {
		if !strings.Contains(st.stdout, want) {
			t.Fatalf("status does not show %q:\n%s", want, st.stdout)
		}
	}
	if strings.Contains(st.stdout, app+"-blue-") {
		t.Fatalf("blue instances left after the swap:\n%s", st.stdout)
	}
	hist := s.mustSwap("history", app)
	if n := strings.Count(hist.stdout, " done "); n != 4 {
		t.Fatalf("history shows %d done swaps, want 4:\n%s", n, hist.stdout)
	}

	s.requireWatchSeesHealthy(app+"-green-0", app+"-green-1")
}

// requireWatchSeesHealthy runs `swap health watch` until it reports each instance
// healthy (bounded), then stops it.
func (s *stack) requireWatchSeesHealthy(ids ...string) {
	t := s.t
	t.Helper()
	cmd := exec.Command(cliBinary(t), "health", "watch")
	cmd.Env = append(os.Environ(), "SWAP_E2E_CLI=1", "SWAP_CONFIG="+s.cfgPath, "SWAP_LOG_LEVEL=warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	seen := map[string]bool{}
	timeout := time.After(20 * time.Second)
	for len(seen) < len(ids) {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("swap health watch ended early; saw %v", seen)
			}
			for _, id := range ids {
				if strings.Contains(line, id+": ") && strings.Contains(line, "-> healthy") {
					seen[id] = true
				}
			}
		case <-timeout:
			t.Fatalf("swap health watch did not report %v healthy; saw %v", ids, seen)
		}
	}
}
