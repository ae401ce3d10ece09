package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/serve"
	"github.com/swap-dev/swap/switcher"
)

// remoteCall is an operation as `swap --server` asks a swap serve for it.
type remoteCall struct {
	app, op string
	body    map[string]any
}

// runRemote runs call on the swap serve of --server: it starts the operation, prints
// the swap's progress as the local CLI does and exits with the same code.
func runRemote(cmd *cobra.Command, g globals, call remoteCall, opts switcher.Options) error {
	c, err := serve.NewClient(g.Server, os.Getenv("SWAP_SERVE_TOKEN"))
	if err != nil {
		return withCode(exitUsage, err)
	}
	body := call.body
	if body == nil {
		body = map[string]any{}
	}
	if opts.DryRun {
		body["dry_run"] = true
	}
	if opts.Wait > 0 {
		body["wait"] = opts.Wait.String()
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProgress(cmd.OutOrStdout(), g.Output == outputJSON)
	a, err := c.Start(ctx, call.app, call.op, body, os.Getenv("SWAP_IDEMPOTENCY_KEY"))
	if err != nil {
		if ae, ok := err.(*serve.APIError); ok {
			return withCode(ae.ExitCode, ae)
		}
		return withCode(exitUnreachable, err)
	}
	f, err := c.Follow(ctx, a.Deploy, p.event)
	if err != nil {
		if ae, ok := err.(*serve.APIError); ok {
			return withCode(ae.ExitCode, ae)
		}
		return withCode(exitFailed, err)
	}
	var ferr error
	if f.Error != "" {
		ferr = fmt.Errorf("%s", f.Error)
	}
	p.result(f.Result, ferr)
	code := exitOK
	if f.ExitCode != nil {
		code = *f.ExitCode
	}
	if code != exitOK {
		if ferr == nil {
			ferr = fmt.Errorf("deploy %s: %s", f.Deploy, f.Outcome)
		}
		return withCode(code, ferr)
	}
	return nil
}

// remoteOr runs call on --server when it is set, else fn here.
func remoteOr(cmd *cobra.Command, call remoteCall, opts switcher.Options, fn func(cmd *cobra.Command) error) error {
	g, err := globalOptions(cmd)
	if err != nil {
		return err
	}
	if g.Server == "" {
		return fn(cmd)
	}
	return runRemote(cmd, g, call, opts)
}
