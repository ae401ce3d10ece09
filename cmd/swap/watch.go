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
			g, err := globalOptions(cmd)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), g.LogLevel)
			if err != nil {
				return withCode(exitUsage, err)
			}
			defer func() { _ = log.Sync() }()
			r, feed, err := wire.NewReconciler(cfg, log, host)
			if err != nil {
				return classify(err)
			}
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
