package consul

import (
	"context"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// KeyVersion is a key's value and modify index as a key watch sees it (zero when absent).
type KeyVersion struct {
	Value []byte
	Index uint64
	// Session holds the key (a lock), "" when none.
	Session string
}

// WatchKey calls onChange with key (relative to the KV prefix) first and on every change
// of its value, index or holding session, with Watch's rules (blocking queries, backoff,
// resync after an index reset), until ctx ends; onError, when not nil, hears each failed
// query. It returns ctx.Err().
func (r *Registry) WatchKey(ctx context.Context, key string, onChange func(KeyVersion), onError func(error)) error {
	full := r.Key(key)
	fetch := func(ctx context.Context, waitIndex uint64) (KeyVersion, uint64, error) {
		q := &api.QueryOptions{WaitIndex: waitIndex, WaitTime: DefaultWatchWait}
		pair, meta, err := r.client.KV().Get(full, q.WithContext(ctx))
		if err != nil {
			return KeyVersion{}, 0, r.fail("watch "+full, err)
		}
		if pair == nil {
			return KeyVersion{}, meta.LastIndex, nil
		}
		return KeyVersion{Value: pair.Value, Index: pair.ModifyIndex, Session: pair.Session}, meta.LastIndex, nil
	}
	return Watch(ctx, WatchOptions{Log: r.log.With(zap.String("watch", "key"), zap.String("key", full)), OnError: onError}, fetch, onChange)
}
