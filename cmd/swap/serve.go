package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/wire"
	"github.com/swap-dev/swap/serve"
	"github.com/swap-dev/swap/switcher"
)

// `swap serve`: the daemon with the HTTP API for deploy pipelines (package serve).

func newServeCmd() *cobra.Command {
	var listen string
	var noReconcile bool
	cmd := &cobra.Command{
		Use:   "serve [--listen 127.0.0.1:7070 | --listen unix:///run/swap/swap.sock]",
		Short: "Run swap as a daemon with an HTTP API for deploy pipelines (docs/serve.md)",
		Long: `serve runs until SIGTERM or SIGINT. Every swap it runs goes through the same lock,
journal and steps as the CLI. The API needs "Authorization: Bearer <token>", the token of
SWAP_SERVE_TOKEN or serve.token_file; on a TCP address serve refuses to start without one.
A unix socket is created mode 0600. On SIGTERM it stops taking requests, lets running swaps
finish (serve.shutdown_timeout, then cancels them: they roll back or leave their journal
for swap resume) and exits 0. Between swaps it runs the reconcile loop of swap watch
(docs/hook.md): HAProxy follows Consul's health and the live color in KV.`,
		Example: "  SWAP_SERVE_TOKEN=$(cat /etc/swap/token) swap serve --listen 127.0.0.1:7070\n  swap serve --listen unix:///run/swap/swap.sock",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, listen, !noReconcile)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "`address`: host:port or unix:///path (default serve.listen, else 127.0.0.1:7070)")
	cmd.Flags().BoolVar(&noReconcile, "no-reconcile", false, "do not run the reconcile loop (swap watch) in the daemon")
	return cmd
}

func runServe(cmd *cobra.Command, listen string, reconcile bool) error {
	// The metrics first: the HAProxy clients count their commands into them.
	met := serve.NewMetrics()
	env, err := setupWith(cmd, func(cfg *deployments.Config, o *wire.Options) {
		if cfg.Serve.MetricsOn() {
			o.HAProxyObserver = met.HAProxyCommand
		}
	})
	if err != nil {
		return err
	}
	defer env.close()
	cfg := env.cfg
	if listen == "" {
		listen = cfg.Serve.Listen
	}
	if listen == "" {
		listen = "127.0.0.1:7070"
	}
	if msg := deployments.ListenProblem(listen); msg != "" {
		return withCode(exitUsage, fmt.Errorf("--listen: %s", msg))
	}
	token, err := serveToken(cfg.Serve.TokenFile)
	if err != nil {
		return withCode(exitUsage, err)
	}
	socket, isUnix := strings.CutPrefix(listen, "unix://")
	if !isUnix && token == "" {
		return withCode(exitUsage, fmt.Errorf("swap serve on a TCP address needs a token: set SWAP_SERVE_TOKEN or serve.token_file (or listen on a unix socket, mode 0600)"))
	}
	log := env.log.Named("serve")
	// The reconcile loop, on the switcher's own clients: /readyz reports its state.
	var loop *switcher.Reconciler
	var feed wire.Feed
	if reconcile {
		if loop, feed, err = wire.ReconcilerOf(env.sw, env.log, ""); err != nil {
			return classify(err)
		}
		if cfg.Serve.MetricsOn() {
			loop.OnPass = met.ReconcilePass
		}
	}
	opts := serve.Options{Apps: cfg.AppNames(), Token: token, Metrics: cfg.Serve.MetricsOn(), Meter: met,
		ExitCode: exitCodeOf, Log: log}
	if loop != nil {
		opts.Loop = loop
	}
	srv := serve.New(env.sw, opts)
	env.sw.OnEvent = srv.Event

	ln, err := listenOn(listen, socket, isUnix)
	if err != nil {
		return withCode(exitUsage, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	if loop != nil {
		go func() {
			defer close(loopDone)
			if err := loop.Run(loopCtx, feed, switcher.DefaultResync); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("the reconcile loop stopped", zap.Error(err))
			}
		}()
	} else {
		close(loopDone)
	}
	defer func() { stopLoop(); <-loopDone }()
	log.Info("swap serve is listening", zap.String("listen", listen), zap.Strings("apps", cfg.AppNames()),
		zap.Bool("metrics", cfg.Serve.MetricsOn()), zap.Bool("reconcile", reconcile))
	fmt.Fprintf(cmd.OutOrStdout(), "swap serve listening on %s\n", listen)

	select {
	case err := <-served:
		return fmt.Errorf("swap serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping: no new requests; waiting for running swaps", zap.Int("running", srv.Running()),
		zap.Duration("shutdown_timeout", cfg.Serve.ShutdownTimeout))
	// Stop taking new swaps first, then wait for those running while their streams are
	// still served, then close the listener.
	srv.Drain(cfg.Serve.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("closing the API", zap.Error(err))
	}
	if isUnix {
		_ = os.Remove(socket)
	}
	fmt.Fprintln(cmd.OutOrStdout(), "swap serve stopped")
	return nil
}

// serveToken is SWAP_SERVE_TOKEN, else the first line of file.
func serveToken(file string) (string, error) {
	if t := strings.TrimSpace(os.Getenv("SWAP_SERVE_TOKEN")); t != "" {
		return t, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("serve.token_file: %w", err)
	}
	t := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if t == "" {
		return "", fmt.Errorf("serve.token_file %s is empty: put the token on its first line", file)
	}
	return t, nil
}

// listenOn opens the API's listener; a unix socket is created mode 0600 (a stale one
// left by a killed serve is replaced, a live one is not).
func listenOn(listen, socket string, isUnix bool) (net.Listener, error) {
	if !isUnix {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: %w", listen, err)
		}
		return ln, nil
	}
	if _, err := os.Stat(socket); err == nil {
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("--listen %s: another swap serve answers on that socket", listen)
		}
		_ = os.Remove(socket)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", socket)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", listen, err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// exitCodeOf is the CLI's exit code for an operation's error.
func exitCodeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(classify(err), &ee) {
		return ee.code
	}
	return exitFailed
}
