package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
)

// ErrStale: a check-and-set was refused because the key changed since it was read.
var ErrStale = errors.New("stale write refused")

// Keys are relative to the KV prefix (consul.kv_prefix, default "swap"); these name the
// ones swap uses. Registry.Key gives the full Consul key.

// StateKey is where an app's state lives: "apps/<app>/state".
func StateKey(app string) string { return "apps/" + app + "/state" }

// journalPrefix is the folder of an app's journal entries: "apps/<app>/journal/".
func journalPrefix(app string) string { return "apps/" + app + "/journal/" }

// LockKey is an app's lock: "locks/<app>".
func LockKey(app string) string { return "locks/" + app }

// Key is the full Consul key of rel: "<prefix>/<rel>".
func (r *Registry) Key(rel string) string { return r.prefix + "/" + strings.TrimPrefix(rel, "/") }

// Entry is one key of a List.
type Entry struct {
	Key   string // relative to the prefix
	Value []byte
	Index uint64 // ModifyIndex: what CAS expects
}

// Get reads key. A missing key is not an error: value nil, index 0 (and CAS with index
// 0 creates it only if it is still absent).
func (r *Registry) Get(ctx context.Context, key string) (value []byte, index uint64, err error) {
	pair, _, err := r.client.KV().Get(r.Key(key), r.query(ctx))
	if err != nil {
		return nil, 0, r.fail("read "+r.Key(key), err)
	}
	if pair == nil {
		return nil, 0, nil
	}
	return pair.Value, pair.ModifyIndex, nil
}

// CAS writes value to key only if the key's ModifyIndex is still index (0: only if the
// key does not exist), and returns the new index. When someone else wrote it first it
// returns an error wrapping ErrStale: reload the key and retry.
func (r *Registry) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	return r.txnSet(ctx, key, &api.KVTxnOp{Verb: api.KVCAS, Key: r.Key(key), Value: value, Index: index})
}

// Put writes value to key whatever is there, and returns the new index.
func (r *Registry) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return r.txnSet(ctx, key, &api.KVTxnOp{Verb: api.KVSet, Key: r.Key(key), Value: value})
}

// txnSet runs one set or cas in a transaction, because a transaction answers with the
// written key's new ModifyIndex and the plain KV endpoint does not.
func (r *Registry) txnSet(ctx context.Context, key string, op *api.KVTxnOp) (uint64, error) {
	full := r.Key(key)
	ok, resp, _, err := r.client.KV().Txn(api.KVTxnOps{op}, r.query(ctx))
	if err != nil {
		return 0, r.fail("write "+full, err)
	}
	if !ok {
		if op.Verb == api.KVCAS {
			return 0, staleError(full, op.Index, resp)
		}
		return 0, fmt.Errorf("consul: write %s: refused: %s", full, txnErrors(resp))
	}
	if resp == nil || len(resp.Results) == 0 || resp.Results[0] == nil {
		return 0, fmt.Errorf("consul: write %s: the transaction answered no index", full)
	}
	return resp.Results[0].ModifyIndex, nil
}

func staleError(key string, index uint64, resp *api.KVTxnResponse) error {
	if index == 0 {
		return fmt.Errorf("consul: create %s: %w: the key exists already (someone else wrote it first); read it and retry", key, ErrStale)
	}
	return fmt.Errorf("consul: write %s at index %d: %w: someone else wrote it first (%s); reload it and retry", key, index, ErrStale, txnErrors(resp))
}

func txnErrors(resp *api.KVTxnResponse) string {
	if resp == nil || len(resp.Errors) == 0 {
		return "no reason given"
	}
	msgs := make([]string, 0, len(resp.Errors))
	for _, e := range resp.Errors {
		msgs = append(msgs, e.What)
	}
	return strings.Join(msgs, "; ")
}

// Delete removes key; a missing key is not an error.
func (r *Registry) Delete(ctx context.Context, key string) error {
	if _, err := r.client.KV().Delete(r.Key(key), r.write(ctx)); err != nil {
		return r.fail("delete "+r.Key(key), err)
	}
	return nil
}

// DeleteCAS removes key only if its ModifyIndex is still index; otherwise it returns an
// error wrapping ErrStale.
func (r *Registry) DeleteCAS(ctx context.Context, key string, index uint64) error {
	full := r.Key(key)
	ok, _, err := r.client.KV().DeleteCAS(&api.KVPair{Key: full, ModifyIndex: index}, r.write(ctx))
	if err != nil {
		return r.fail("delete "+full, err)
	}
	if !ok {
		return fmt.Errorf("consul: delete %s at index %d: %w: someone else changed it first; reload it and retry", full, index, ErrStale)
	}
	return nil
}

// List returns every key under prefix (relative, e.g. journalPrefix(app)), sorted by key.
func (r *Registry) List(ctx context.Context, prefix string) ([]Entry, error) {
	full := r.Key(prefix)
	pairs, _, err := r.client.KV().List(full, r.query(ctx))
	if err != nil {
		return nil, r.fail("list "+full, err)
	}
	out := make([]Entry, 0, len(pairs))
	for _, p := range pairs { // Consul answers sorted by key
		out = append(out, Entry{Key: strings.TrimPrefix(p.Key, r.prefix+"/"), Value: p.Value, Index: p.ModifyIndex})
	}
	return out, nil
}
