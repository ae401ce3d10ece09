package wire

import (
	"context"
	"errors"
	"sync"

	"github.com/swap-dev/swap/switcher"
)

// The adapters answer the switcher's preflight: does the service behind them answer?

var (
	_ switcher.Pinger = (*Runtime)(nil)
	_ switcher.Pinger = Registry{}
	_ switcher.Pinger = (*Balancer)(nil)
)

// Ping checks that the Docker engine answers.
func (r *Runtime) Ping(ctx context.Context) error { return r.Driver.Ping(ctx) }

// Ping checks that the Consul agent answers and its cluster has a leader.
func (r Registry) Ping(ctx context.Context) error { return r.R.Ping(ctx) }

// Ping checks that every HAProxy instance answers `show info` on its admin socket, and
// that the haproxy that checks rendered files is there (haproxy.binary, or in
// haproxy.check_container); the error names each one that does not.
func (b *Balancer) Ping(ctx context.Context) error {
	ins := b.F.Instances()
	errs := make([]error, len(ins), len(ins)+1)
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() {
			_, errs[i] = in.Client.Info(ctx)
		})
	}
	wg.Wait()
	return errors.Join(append(errs, b.F.CheckerReady(ctx))...)
}
