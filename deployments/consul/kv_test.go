package consul

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestState_AStaleWriterIsRefused(t *testing.T) {
	agent := testenv.Consul(t)
	ctx := ctxFor(t, 30*time.Second)
	one, two := registry(t, agent), registry(t, agent)
	key := StateKey("web")

	// Both create: only the first one succeeds.
	idx, err := one.CAS(ctx, key, []byte(`{"live":"blue"}`), 0)
	if err != nil || idx == 0 {
		t.Fatalf("first create = %d, %v", idx, err)
	}
	if _, err := two.CAS(ctx, key, []byte(`{"live":"green"}`), 0); !errors.Is(err, ErrStale) {
		t.Fatalf("second create = %v, want ErrStale", err)
	} else {
		mustContain(t, err.Error(), "swap/apps/web/state", "exists already", "retry")
	}

	// Both read the same version; the first write wins, the second is refused.
	v1, i1, err := one.Get(ctx, key)
	if err != nil || string(v1) != `{"live":"blue"}` || i1 != idx {
		t.Fatalf("Get = %q, %d, %v; want the created value at %d", v1, i1, err, idx)
	}
	_, i2, _ := two.Get(ctx, key)
	next, err := one.CAS(ctx, key, []byte(`{"live":"green"}`), i1)
	if err != nil || next <= i1 {
		t.Fatalf("CAS at the read index = %d, %v", next, err)
	}
	_, err = two.CAS(ctx, key, []byte(`{"live":"blue"}`), i2)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("CAS at an old index = %v, want ErrStale", err)
	}
	mustContain(t, err.Error(), "someone else wrote it first", "reload it and retry")
	if v, i, _ := one.Get(ctx, key); string(v) != `{"live":"green"}` || i != next {
		t.Fatalf("after the refused write: %q at %d, want the winner's value at %d", v, i, next)
	}

	// The index CAS returns is the one to write at next.
	again, err := one.CAS(ctx, key, []byte(`{"live":"blue"}`), next)
	if err != nil || again <= next {
		t.Fatalf("CAS at the returned index = %d, %v", again, err)
	}
}

func TestState_GetPutListDelete(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 30*time.Second)

	t.Run("a missing key reads as nil at index 0", func(t *testing.T) {
		v, i, err := r.Get(ctx, StateKey("nothing"))
		if v != nil || i != 0 || err != nil {
			t.Fatalf("Get = %q, %d, %v", v, i, err)
		}
	})

	t.Run("put overwrites whatever is there and returns the new index", func(t *testing.T) {
		i1, err := r.Put(ctx, "misc/k", []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		i2, err := r.Put(ctx, "misc/k", []byte("b"))
		if err != nil || i2 <= i1 {
			t.Fatalf("second Put = %d, %v (first %d)", i2, err, i1)
		}
		if v, i, _ := r.Get(ctx, "misc/k"); string(v) != "b" || i != i2 {
			t.Fatalf("Get = %q at %d", v, i)
		}
	})

	t.Run("list returns a journal in key order with relative keys", func(t *testing.T) {
		for _, k := range []string{"0003", "0001", "0002"} {
			if _, err := r.Put(ctx, journalPrefix("web")+k, []byte("step "+k)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Put(ctx, journalPrefix("webby")+"0001", []byte("other app")); err != nil {
			t.Fatal(err)
		}
		got, err := r.List(ctx, journalPrefix("web"))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range got {
			keys = append(keys, e.Key+"="+string(e.Value))
			if e.Index == 0 {
				t.Errorf("entry %s has no index", e.Key)
			}
		}
		want := []string{"apps/web/journal/0001=step 0001", "apps/web/journal/0002=step 0002", "apps/web/journal/0003=step 0003"}
		if len(keys) != len(want) || keys[0] != want[0] || keys[1] != want[1] || keys[2] != want[2] {
			t.Fatalf("List = %q, want %q", keys, want)
		}
		if empty, err := r.List(ctx, journalPrefix("none")); err != nil || len(empty) != 0 {
			t.Fatalf("List of nothing = %v, %v", empty, err)
		}
	})

	t.Run("delete-cas refuses a stale index, delete does not care", func(t *testing.T) {
		i1, _ := r.Put(ctx, "misc/d", []byte("x"))
		i2, _ := r.Put(ctx, "misc/d", []byte("y"))
		if err := r.DeleteCAS(ctx, "misc/d", i1); !errors.Is(err, ErrStale) {
			t.Fatalf("DeleteCAS at an old index = %v", err)
		}
		if err := r.DeleteCAS(ctx, "misc/d", i2); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := r.Get(ctx, "misc/d"); v != nil {
			t.Fatalf("deleted key reads %q", v)
		}
		if err := r.Delete(ctx, "misc/d"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	})

	t.Run("keys live under the configured prefix", func(t *testing.T) {
		rr, err := New(deployments.ConsulConfig{Address: agent.Addr, KVPrefix: "team/swap/"}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rr.CAS(ctx, StateKey("api"), []byte("s"), 0); err != nil {
			t.Fatal(err)
		}
		pair, _, err := agent.Client.KV().Get("team/swap/apps/api/state", nil)
		if err != nil || pair == nil || string(pair.Value) != "s" {
			t.Fatalf("raw key = %+v, %v", pair, err)
		}
		if got, _ := rr.List(ctx, "apps/"); len(got) != 1 || got[0].Key != "apps/api/state" {
			t.Fatalf("List under the prefix = %+v", got)
		}
	})
}
