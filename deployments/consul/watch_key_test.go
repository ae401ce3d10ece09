package consul

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
)

func TestWatchKey_ReportsTheKeyFirstThenEachWriteAndDelete(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var seen []string
	got := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
	done := make(chan error, 1)
	go func() {
		done <- r.WatchKey(ctx, "apps/web/state", func(k KeyVersion) {
			mu.Lock()
			seen = append(seen, string(k.Value))
			mu.Unlock()
		}, nil)
	}()
	waitLen := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(got()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("callbacks %q, want %d", got(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLen(1) // absent at first
	idx, err := r.CAS(ctx, "apps/web/state", []byte("blue"), 0)
	if err != nil {
		t.Fatal(err)
	}
	waitLen(2)
	if _, err := r.Put(ctx, "apps/web/other", []byte("x")); err != nil { // another key: no callback
		t.Fatal(err)
	}
	if err := r.DeleteCAS(ctx, "apps/web/state", idx); err != nil {
		t.Fatal(err)
	}
	waitLen(3)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchKey = %v", err)
	}
	if g := got(); len(g) != 3 || g[0] != "" || g[1] != "blue" || g[2] != "" {
		t.Fatalf("callbacks %q, want absent, blue, absent", g)
	}
}
