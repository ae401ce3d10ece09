package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

// The swap commands: each packs its flags and arguments and calls the switcher.

type mutateFlags struct {
	dryRun bool
	wait   time.Duration
}

func (m *mutateFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&m.dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().DurationVar(&m.wait, "wait", 0, "wait this long for a busy lock instead of failing (exit 3)")
}

func (m *mutateFlags) options() switcher.Options {
	return switcher.Options{DryRun: m.dryRun, Wait: m.wait}
}

// op runs one switcher operation with the config, live progress and exit codes.
func op(cmd *cobra.Command, fn func(ctx context.Context, s *switcher.Switcher) (*switcher.Result, error)) error {
	env, err := setup(cmd)
	if err != nil {
		return err
	}
	defer env.close()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := fn(ctx, env.sw)
	env.progress.result(res, err)
	return classify(err)
}

func newSwitchCmd() *cobra.Command {
	var m mutateFlags
	cmd := &cobra.Command{
		Use:   "switch <app> <color>",
		Short: "Switch an app's traffic to a color (blue or green), starting it if needed",
		Long: `Switch moves all of app's traffic to color. If that color is not running, it is
started with the live color's image (the spec's on the first run), registered, and gated
on health before the shift. Also spelled: swap <app> <color>.`,
		Example: "  swap switch web green\n  swap web green --dry-run",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSwitch(cmd, args, m.options())
		},
	}
	m.add(cmd)
	return cmd
}

func runSwitch(cmd *cobra.Command, args []string, o switcher.Options) error {
	color, err := deployments.ParseColor(args[1])
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("%w (usage: swap <app> <color>)", err))
	}
	return remoteOr(cmd, remoteCall{app: args[0], op: "switch", body: map[string]any{"color": string(color)}}, o, func(cmd *cobra.Command) error {
		return op(cmd, func(ctx context.Context, s *switcher.Switcher) (*switcher.Result, error) {
			return s.Switch(ctx, args[0], color, o)
		})
	})
}

func newDeployCmd() *cobra.Command {
	var m mutateFlags
	var image string
	cmd := &cobra.Command{
		Use:     "deploy <app> --image <ref>",
		Short:   "Start a new image on the idle color, then switch to it",
		Example: "  swap deploy web --image web:v2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return remoteOr(cmd, remoteCall{app: args[0], op: "deploy", body: map[string]any{"image": image}}, m.options(), func(cmd *cobra.Command) error {
				return op(cmd, func(ctx context.Context, s *switcher.Switcher) (*switcher.Result, error) {
					return s.Deploy(ctx, args[0], image, m.options())
				})
			})
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "image `reference` to deploy (default: the app's image in the config)")
	m.add(cmd)
	return cmd
}

// appCmd is a command that takes one app and calls one switcher operation (on --server's
// swap serve when it is set and the operation is one the API runs).
func appCmd(use, short string, call func(*switcher.Switcher, context.Context, string, switcher.Options) (*switcher.Result, error)) *cobra.Command {
	var m mutateFlags
	cmd := &cobra.Command{
		Use:   use + " <app>",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			local := func(cmd *cobra.Command) error {
				return op(cmd, func(ctx context.Context, s *switcher.Switcher) (*switcher.Result, error) {
					return call(s, ctx, args[0], m.options())
				})
			}
			switch use {
			case "rollback", "promote", "abort", "resume":
				return remoteOr(cmd, remoteCall{app: args[0], op: use}, m.options(), local)
			}
			if g, err := globalOptions(cmd); err == nil && g.Server != "" {
				return withCode(exitUsage, fmt.Errorf("%s is not run through --server: run it where swap's config is", use))
			}
			return local(cmd)
		},
	}
	m.add(cmd)
	return cmd
}

func newRollbackCmd() *cobra.Command {
	return appCmd("rollback", "Flip back to the previous color while it is up, else redeploy the previous image", (*switcher.Switcher).Rollback)
}

func newPromoteCmd() *cobra.Command {
	return appCmd("promote", "Continue a swap that waits in preview", (*switcher.Switcher).Promote)
}

func newAbortCmd() *cobra.Command {
	return appCmd("abort", "Roll back a swap that waits in preview or was interrupted before its shift", (*switcher.Switcher).Abort)
}

func newResumeCmd() *cobra.Command {
	return appCmd("resume", "Repair an interrupted swap (roll back before the shift, forward after it) and instances that restarted on another host port", (*switcher.Switcher).Resume)
}

func newCleanupCmd() *cobra.Command {
	return appCmd("cleanup", "Remove the app's images beyond retain and those of deploys rolled back, unless a container uses them (and dangling images, with docker.cleanup.prune_dangling)", (*switcher.Switcher).Cleanup)
}

// rootSwitch makes `swap <app> <color>` a spelling of `swap switch <app> <color>`.
func rootSwitch(root *cobra.Command) {
	var m mutateFlags
	m.add(root)
	root.Use = "swap [<app> <color>]"
	root.Example = "  swap web green\n  swap deploy web --image web:v2\n  swap status web"
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 || len(args) == 2 {
			return nil
		}
		return withCode(exitUsage, fmt.Errorf("unknown command or missing color %q: use `swap <app> <color>` or see `swap --help`", args[0]))
	}
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return runSwitch(cmd, args, m.options())
	}
}

func newUnlockCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "unlock <app> --force",
		Short: "Break an app's lock whose holder died (then run swap resume)",
		Long: `Unlock releases an app's lock whoever holds it. A dead holder's lock also frees by
itself when its Consul session expires (its TTL); unlock is for when you cannot wait and
know the holder is gone. Breaking the lock of a live swap lets two swaps run at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				return withCode(exitUsage, fmt.Errorf("unlock breaks the lock whoever holds it: add --force if its holder is dead"))
			}
			return op(cmd, func(ctx context.Context, s *switcher.Switcher) (*switcher.Result, error) {
				return s.Unlock(ctx, args[0])
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "really break the lock")
	return cmd
}
