package main

import (
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/wire"
	"github.com/swap-dev/swap/switcher"
)

// cliEnv is what a command that talks to the stack has: the config, the switcher wired
// to Docker, Consul and HAProxy, and the progress renderer.
type cliEnv struct {
	cfg      *deployments.Config
	globals  globals
	sw       *switcher.Switcher
	progress *progress
	log      *zap.Logger
	close    func()
}

// setup loads the config and wires the switcher for cmd.
func setup(cmd *cobra.Command) (*cliEnv, error) { return setupWith(cmd, nil) }

// setupWith is setup with tune, when set, adjusting the wiring's options for the config.
func setupWith(cmd *cobra.Command, tune func(*deployments.Config, *wire.Options)) (*cliEnv, error) {
	g, cfg, log, err := configAndLogger(cmd)
	if err != nil {
		return nil, err
	}
	opts := wire.Options{
		Command:         strings.Join(os.Args, " "),
		ContainerLabels: parseLabels(os.Getenv("SWAP_CONTAINER_LABELS")),
	}
	if tune != nil {
		tune(cfg, &opts)
	}
	sw, closeFn, err := wire.New(cfg, log, opts)
	if err != nil {
		return nil, classify(err)
	}
	p := newProgress(cmd.OutOrStdout(), g.Output == outputJSON)
	sw.OnEvent = p.event
	sw.LookupEnv = os.LookupEnv
	sw.Fault = faultFromEnv(os.Getenv("SWAP_FAULT"))
	return &cliEnv{cfg: cfg, globals: g, sw: sw, progress: p, log: log, close: func() { closeFn(); _ = log.Sync() }}, nil
}

// parseLabels reads "k=v,k2=v2" (SWAP_CONTAINER_LABELS: extra labels on every container
// swap starts; the tests use it for their cleanup label).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

// faultFromEnv arms the crash tests' fault-injection point: SWAP_FAULT=<step>:<phase>
// (phase "before" or "after") makes swap kill itself with SIGKILL there, as a crash
// would. Not for production use.
func faultFromEnv(spec string) func(switcher.Step, string) {
	step, phase, ok := strings.Cut(spec, ":")
	if !ok {
		return nil
	}
	return func(s switcher.Step, p string) {
		if string(s) == step && p == phase {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
