package consul

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestWatch_FollowsTheBlockingQueryRules(t *testing.T) {
	type answer struct {
		index uint64
		value string
		err   error
	}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		answers   []answer
		wantWaits []uint64 // waitIndex of each call
		wantSeen  []string // values delivered
	}{
		{"the first answer is delivered, even empty",
			[]answer{{3, "", nil}},
			[]uint64{0}, []string{""}},
		{"each query waits on the last index, and changes are delivered",
			[]answer{{10, "a", nil}, {11, "b", nil}, {15, "c", nil}},
			[]uint64{0, 10, 11}, []string{"a", "b", "c"}},
		{"an unchanged index is ignored, even with other data",
			[]answer{{10, "a", nil}, {10, "b", nil}, {11, "c", nil}},
			[]uint64{0, 10, 10}, []string{"a", "c"}},
		{"a moved index with equal data delivers nothing",
			[]answer{{10, "a", nil}, {12, "a", nil}, {13, "a", nil}, {14, "b", nil}},
			[]uint64{0, 10, 12, 13}, []string{"a", "b"}},
		{"an index going backwards resets the wait to 0 and the data is still compared",
			[]answer{{10, "a", nil}, {4, "a", nil}, {5, "a", nil}, {6, "b", nil}, {2, "c", nil}, {3, "c", nil}},
			[]uint64{0, 10, 0, 5, 6, 0}, []string{"a", "b", "c"}},
		{"an index of 0 is waited on as 1",
			[]answer{{0, "a", nil}, {0, "a", nil}, {7, "b", nil}},
			[]uint64{0, 1, 1}, []string{"a", "b"}},
		{"errors keep the index and the last data",
			[]answer{{10, "a", nil}, {0, "", boom}, {0, "", boom}, {10, "a", nil}, {11, "a", nil}, {12, "b", nil}},
			[]uint64{0, 10, 10, 10, 10, 11}, []string{"a", "b"}},
		{"errors before the first answer deliver nothing",
			[]answer{{0, "", boom}, {9, "a", nil}},
			[]uint64{0, 0}, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var waits []uint64
			fetch := func(ctx context.Context, waitIndex uint64) (string, uint64, error) {
				waits = append(waits, waitIndex)
				if len(waits) > len(tc.answers) {
					cancel()
					return "", 0, ctx.Err()
				}
				a := tc.answers[len(waits)-1]
				return a.value, a.index, a.err
			}
			var seen []string
			core, logs := observer.New(zapcore.DebugLevel)
			opts := WatchOptions{MinInterval: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Log: zap.New(core)}
			err := Watch(ctx, opts, fetch, func(v string) { seen = append(seen, v) })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Watch = %v, want context.Canceled", err)
			}
			if got := waits[:len(waits)-1]; !slices.Equal(got, tc.wantWaits) {
				t.Errorf("wait indexes = %v, want %v", got, tc.wantWaits)
			}
			if !slices.Equal(seen, tc.wantSeen) {
				t.Errorf("delivered %q, want %q", seen, tc.wantSeen)
			}
			// Consecutive failures are logged once as a warning, and the recovery once.
			failures := 0
			for _, a := range tc.answers {
				if a.err != nil {
					failures++
				}
			}
			if failures > 0 {
				if n := logs.FilterMessage("watch query failed; retrying with backoff").Len(); n != 1 {
					t.Errorf("%d failure warnings for one run of failures", n)
				}
				if n := logs.FilterMessage("watch query works again").Len(); n != 1 {
					t.Errorf("%d recovery messages", n)
				}
			}
		})
	}
}

func TestWatch_StopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	fetch := func(ctx context.Context, waitIndex uint64) (int, uint64, error) {
		calls++
		if calls == 3 {
			cancel()
		}
		return calls, uint64(calls), nil // a result that arrives as ctx ends is not delivered
	}
	var seen []int
	err := Watch(ctx, WatchOptions{MinInterval: time.Millisecond}, fetch, func(v int) { seen = append(seen, v) })
	if !errors.Is(err, context.Canceled) || !slices.Equal(seen, []int{1, 2}) {
		t.Fatalf("Watch = %v after delivering %v, want Canceled after [1 2]", err, seen)
	}
}

func TestWatchService_OneCallbackPerChangeAndNoneForUnchangedData(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var (
		mu      sync.Mutex
		calls   [][]string // IDs per callback
		indexes []uint64   // index of each answer
	)
	snapshot := func() ([][]string, uint64) {
		mu.Lock()
		defer mu.Unlock()
		var last uint64
		if len(indexes) > 0 {
			last = indexes[len(indexes)-1]
		}
		return slices.Clone(calls), last
	}
	fetch := r.serviceFetch("web")
	recording := func(ctx context.Context, waitIndex uint64) ([]ServiceInstance, uint64, error) {
		v, i, err := fetch(ctx, waitIndex)
		if err == nil {
			mu.Lock()
			indexes = append(indexes, i)
			mu.Unlock()
		}
		return v, i, err
	}
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, WatchOptions{Log: r.log}, recording, func(insts []ServiceInstance) {
			ids := []string{}
			for _, si := range insts {
				ids = append(ids, si.ID+"="+string(si.Verdict.Status))
			}
			mu.Lock()
			calls = append(calls, ids)
			mu.Unlock()
		})
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Watch = %v", err)
			}
		})
	}
	defer stop()
	waitCalls := func(n int) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d callbacks", n), func() error {
			if got, _ := snapshot(); len(got) < n {
				return fmt.Errorf("callbacks so far: %q", got)
			}
			return nil
		})
	}
	// catchUp waits until the watch has seen the catalog at least at index.
	catchUp := func() {
		t.Helper()
		_, meta, err := agent.Client.Health().Service("web", "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 30*time.Second, "the watch to catch up", func() error {
			if _, i := snapshot(); i < meta.LastIndex {
				return fmt.Errorf("watch at %d, catalog at %d", i, meta.LastIndex)
			}
			return nil
		})
	}

	waitCalls(1) // the initial, empty list
	reg := registration{Instance: instance("web", deployments.Blue, 0, 18081), TTL: 10 * time.Minute, TTLOnly: true}
	if err := r.registerService(ctx, reg); err != nil {
		t.Fatal(err)
	}
	waitCalls(2)
	catchUp()

	// Re-register with a change the watch does not look at (weights): the catalog index
	// moves, the data the watch delivers does not.
	before, atIndex := snapshot()
	svc, err := definition(reg, deployments.DefaultInstallation)
	if err != nil {
		t.Fatal(err)
	}
	svc.Weights = &api.AgentWeights{Passing: 7, Warning: 1}
	if err := agent.Client.Agent().ServiceRegister(svc); err != nil {
		t.Fatal(err)
	}
	catchUp()
	after, afterIndex := snapshot()
	if afterIndex <= atIndex {
		t.Fatalf("the re-registration did not move the index (%d -> %d): the test proves nothing", atIndex, afterIndex)
	}
	if len(after) != len(before) {
		t.Fatalf("a change of weights only was delivered: %q", after[len(before):])
	}

	if err := r.publishTTL(ctx, tTLCheckID("web-blue-0"), true, ""); err != nil {
		t.Fatal(err)
	}
	waitCalls(3)
	if err := r.Deregister(ctx, "web-blue-0"); err != nil {
		t.Fatal(err)
	}
	waitCalls(4)
	catchUp()
	stop()

	got, _ := snapshot()
	want := [][]string{{}, {"web-blue-0=critical"}, {"web-blue-0=passing"}, {}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("callbacks = %q, want %q", got, want)
	}
}

func TestWatchService_DeliversTheCurrentInstancesFirst(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.registerService(ctx, registration{Instance: instance("api", deployments.Green, 2, 18082), TTL: time.Minute, TTLOnly: true}); err != nil {
		t.Fatal(err)
	}
	got := make(chan []ServiceInstance, 1)
	err := r.WatchService(ctx, "api", func(insts []ServiceInstance) {
		got <- insts
		cancel()
	}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchService = %v", err)
	}
	insts := <-got
	if len(insts) != 1 || insts[0].ID != "api-green-2" || insts[0].Color != deployments.Green || insts[0].Port != 18082 {
		t.Fatalf("first delivery = %+v", insts)
	}
}
