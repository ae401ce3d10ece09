package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

// swap hook: one reconcile pass, as a `consul watch` handler (docs/hook.md).
func newHookCmd() *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "hook [app...]",
		Short: "One reconcile pass of HAProxy against Consul and KV: a `consul watch` handler (JSON on stdin)",
		Long: `hook reads a consul watch's JSON on stdin (-type=service, checks or key), finds the
apps it is about (or takes them as arguments; every app when neither names one) and runs
one reconcile pass for each: HAProxy's servers follow Consul's health and the routes,
preview and canary maps (and, with consul.mesh, the mesh's route) follow the live color
in KV. It is idempotent; it exits non-zero
only when HAProxy could not be brought in line (docs/hook.md).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := reconcileSetup(cmd, host)
			if err != nil {
				return err
			}
			defer rs.close()
			g, cfg, r := rs.g, rs.cfg, rs.r
			for _, a := range args {
				if _, err := cfg.App(a); err != nil {
					return withCode(exitUsage, err)
				}
			}
			apps := args
			if in := watchInput(cmd.InOrStdin()); len(in) > 0 {
				apps = append(apps, watchApps(in, cfg)...)
			}
			if len(apps) == 0 {
				apps = cfg.AppNames()
			}
			slices.Sort(apps)
			apps = slices.Compact(apps)
			var results []switcher.PassResult
			errs := make([]error, 0, len(apps)) // by app, nil when in line
			for _, app := range apps {
				res, err := r.Settle(cmd.Context(), app)
				results = append(results, res)
				errs = append(errs, err)
			}
			if g.Output == outputJSON {
				if err := writeJSON(cmd.OutOrStdout(), results); err != nil {
					return err
				}
			} else {
				printPasses(cmd.OutOrStdout(), results, errs)
			}
			return hookExit(errs)
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "this host's `name` in the loop's KV record of the servers it took out (default: the hostname)")
	return cmd
}

// hookExit is the hook's exit: 0 when every app is in line (or owned by a swap), 4 when
// Consul or HAProxy could not be reached, 1 when a change failed.
func hookExit(errs []error) error {
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	if errors.Is(err, switcher.ErrNotInLine) {
		return withCode(exitFailed, err)
	}
	return classify(err)
}

// watchInput reads stdin unless it is a terminal (swap hook run by hand).
func watchInput(r io.Reader) []byte {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(r, 64<<20))
	return b
}

// watchApps returns the configured apps a consul watch's JSON is about: the service
// name of -type=service entries ({"Service": {"Service": ...}}) and of -type=checks
// checks ({"ServiceName": ...}), and the app of -type=key / keyprefix keys under
// <kv_prefix>/apps/<app>/. Anything else names no app; so does JSON that does not parse.
func watchApps(in []byte, cfg *deployments.Config) []string {
	var v any
	if err := json.Unmarshal(in, &v); err != nil {
		return nil
	}
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case map[string]any:
		items = []any{t}
	}
	keyPrefix := strings.Trim(cfg.Consul.KVPrefix, "/") + "/apps/"
	var out []string
	add := func(name string) {
		if _, err := cfg.App(name); err == nil && name != "" {
			out = append(out, name)
		}
	}
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if svc, ok := m["Service"].(map[string]any); ok {
			if name, ok := svc["Service"].(string); ok {
				add(name)
			}
		}
		if name, ok := m["ServiceName"].(string); ok {
			add(name)
		}
		if key, ok := m["Key"].(string); ok {
			if rest, ok := strings.CutPrefix(key, keyPrefix); ok {
				app, _, _ := strings.Cut(rest, "/")
				add(app)
			}
		}
	}
	return out
}

func printPasses(w io.Writer, results []switcher.PassResult, errs []error) {
	for i, r := range results {
		switch {
		case errs[i] != nil:
			fmt.Fprintf(w, "%s: not in line: %v\n", r.App, errs[i])
		case r.Skipped != "":
			fmt.Fprintf(w, "%s: left alone: %s\n", r.App, r.Skipped)
			continue
		case len(r.Applied) == 0:
			fmt.Fprintf(w, "%s: in line\n", r.App)
		}
		for _, a := range r.Applied {
			fmt.Fprintf(w, "%s: %s\n", r.App, a)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: note: %s\n", r.App, n)
		}
	}
}
