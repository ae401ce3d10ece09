package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/health"
	"github.com/swap-dev/swap/statuscode"
)

func newHealthCmd() *cobra.Command {
	h := &cobra.Command{
		Use:   "health",
		Short: "Probe targets with swap's own health checker",
		Args:  cobra.NoArgs,
	}
	h.AddCommand(newHealthCheckCmd(), newHealthWatchCmd())
	return h
}

// healthCheckResult is `swap health check`'s JSON output.
type healthCheckResult struct {
	Target  string        `json:"target"`
	Probe   string        `json:"probe"`
	Healthy bool          `json:"healthy"`
	Rise    int           `json:"rise"`
	Probes  []probeResult `json:"probes"`
}

type probeResult struct {
	OK       bool    `json:"ok"`
	Reason   string  `json:"reason"`
	Status   int     `json:"status,omitempty"`
	Error    string  `json:"error,omitempty"`
	Duration float64 `json:"duration_seconds"`
}

func newHealthCheckCmd() *cobra.Command {
	var (
		rise              int
		timeout, interval time.Duration
		expect            string
		cfg               health.HTTPConfig
	)
	cmd := &cobra.Command{
		Use:   "check <url|host:port>",
		Short: "Probe one target now: exit 0 when healthy, 1 when not, 2 on bad input",
		Long: `swap health check probes one target the way swap gates a deploy: an http:// or
https:// URL gets an HTTP request (a 2xx or 3xx passes unless --expect says otherwise;
redirects are not followed), host:port a TCP connect. With --rise N it probes N times,
--interval apart, and passes only if every probe does; it stops at the first failure.

Exit codes: 0 healthy, 1 unhealthy, 2 bad input.`,
		Example: `  swap health check http://127.0.0.1:32768/healthz
  swap health check --rise 3 --interval 1s --expect 200 --body '"status":"ok"' http://127.0.0.1:32768/ready
  swap health check 127.0.0.1:6379`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := globalOptions(cmd)
			if err != nil {
				return err
			}
			switch {
			case rise < 1:
				return withCode(exitUsage, fmt.Errorf("--rise %d: use 1 or more", rise))
			case timeout <= 0:
				return withCode(exitUsage, fmt.Errorf("--timeout %s: use a positive duration like 2s", timeout))
			case interval < 0:
				return withCode(exitUsage, fmt.Errorf("--interval %s: use a duration like 1s", interval))
			}
			if cmd.Flags().Changed("expect") {
				if cfg.Expect, err = statuscode.Parse(expect); err != nil {
					return withCode(exitUsage, fmt.Errorf("--expect: %w", err))
				}
			}
			cfg.Timeout = timeout
			checker, err := health.CheckerFor(args[0], cfg)
			if err != nil {
				return withCode(exitUsage, err)
			}

			results, healthy := health.CheckRise(cmd.Context(), checker, rise, interval)
			out := healthCheckResult{Target: args[0], Probe: fmt.Sprint(checker), Healthy: healthy, Rise: rise}
			for _, r := range results {
				p := probeResult{OK: r.OK, Reason: r.Reason.String(), Status: r.Status, Duration: r.Duration.Seconds()}
				if r.Err != nil {
					p.Error = r.Err.Error()
				}
				out.Probes = append(out.Probes, p)
			}
			if g.Output == outputJSON {
				if err := writeJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				printHealthCheck(cmd.OutOrStdout(), out)
			}
			if healthy {
				return nil
			}
			if err := cmd.Context().Err(); err != nil {
				return withCode(exitFailed, fmt.Errorf("%s: interrupted before %d probes passed", args[0], rise))
			}
			last := results[len(results)-1]
			return withCode(exitFailed, fmt.Errorf("%s is unhealthy (probe %d of %d failed, %s): %w; check that it runs and answers there",
				args[0], len(results), rise, last.Reason, last.Err))
		},
	}
	f := cmd.Flags()
	f.IntVar(&rise, "rise", 1, "consecutive successful probes needed")
	f.DurationVar(&timeout, "timeout", health.DefaultTimeout, "timeout of each probe")
	f.DurationVar(&interval, "interval", time.Second, "time between probes when --rise is above 1")
	f.StringVar(&expect, "expect", "200-399", "accepted HTTP status `ranges`, e.g. 200 or 200-299,404")
	f.StringVar(&cfg.Body, "body", "", "`text` the HTTP response body must contain")
	f.StringVar(&cfg.Host, "host", "", "Host header to send (HTTP)")
	f.StringVar(&cfg.Method, "method", "", "HTTP method (default GET)")
	return cmd
}

func printHealthCheck(w io.Writer, out healthCheckResult) {
	for i, p := range out.Probes {
		switch {
		case p.OK && p.Status != 0:
			fmt.Fprintf(w, "probe %d/%d: ok, status %d in %s\n", i+1, out.Rise, p.Status, seconds(p.Duration))
		case p.OK:
			fmt.Fprintf(w, "probe %d/%d: ok in %s\n", i+1, out.Rise, seconds(p.Duration))
		default:
			fmt.Fprintf(w, "probe %d/%d: %s: %s\n", i+1, out.Rise, p.Reason, p.Error)
		}
	}
	if out.Healthy {
		fmt.Fprintf(w, "healthy: %s\n", out.Probe)
	} else {
		fmt.Fprintf(w, "unhealthy: %s\n", out.Probe)
	}
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond)
}
