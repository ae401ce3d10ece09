package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/health"
)

func newHealthWatchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch [app...]",
		Short: "Probe every managed instance of the config's apps and print each health transition until interrupted",
		Long: `Watch runs swap's own prober (each app's healthcheck: interval, timeout, rise, fall)
against every running instance swap manages, and prints a line each time an instance
changes state. The instances are those running when it starts. Ctrl-C stops it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := setup(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			targets, err := env.sw.HealthTargets(ctx, args...)
			if err != nil {
				return classify(err)
			}
			if len(targets) == 0 {
				return withCode(exitFailed, fmt.Errorf("no running instance to watch: deploy an app first (swap deploy <app>)"))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "watching %d instance(s)\n", len(targets))
			err = health.Watch(ctx, targets, health.Options{}, func(t health.Transition) {
				fmt.Fprintf(out, "%s %s: %s -> %s (%s)\n", t.At.Format(time.RFC3339), t.Target, t.From, t.To, t.Result)
			})
			return classify(err)
		},
	}
	return cmd
}
