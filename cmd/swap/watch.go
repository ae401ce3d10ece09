package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/wire"
	"github.com/swap-dev/swap/switcher"
)

// swap watch: the reconcile loop, long-running (docs/hook.md).
func newWatchCmd() *cobra.Command {
	var host string
	var resync time.Duration
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Keep HAProxy in step with Consul health and the live color in KV until stopped (blocking queries)",
		Long: `watch runs the reconcile pass of swap hook for every app of the config, at start, on
every change Consul's blocking queries report (the app's instances and health, its state,
journal and lock keys) and every --resync, until SIGINT or SIGTERM. Consul outages are
logged and retried with backoff; the loop never stops on its own (docs/hook.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := reconcileSetup(cmd, host)
			if err != nil {
				return err
			}
			defer rs.close()
			cfg, log, r, feed := rs.cfg, rs.log, rs.r, rs.feed
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log.Info("reconcile loop started", zap.Strings("apps", cfg.AppNames()))
			if err := r.Run(ctx, feed, resync); err != nil && !errors.Is(err, context.Canceled) {
				return classify(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "this host's `name` in the loop's KV record of the servers it took out (default: the hostname)")
	cmd.Flags().DurationVar(&resync, "resync", switcher.DefaultResync, "run a pass at least this `often`, changes or not")
	return cmd
}

// reconcileEnv is what swap hook and swap watch run on: the config, a logger and the
// reconciler with its change feed.
type reconcileEnv struct {
	g     globals
	cfg   *deployments.Config
	log   *zap.Logger
	r     *switcher.Reconciler
	feed  wire.Feed
	close func()
}

// reconcileSetup loads cmd's options and config and wires the reconciler (host names
// this host in its KV record; "" is the hostname).
func reconcileSetup(cmd *cobra.Command, host string) (*reconcileEnv, error) {
	g, cfg, log, err := configAndLogger(cmd)
	if err != nil {
		return nil, err
	}
	r, feed, err := wire.NewReconciler(cfg, log, host)
	if err != nil {
		_ = log.Sync()
		return nil, classify(err)
	}
	return &reconcileEnv{g: g, cfg: cfg, log: log, r: r, feed: feed, close: func() { _ = log.Sync() }}, nil
}
