package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/wire"
	"github.com/swap-dev/swap/lbconfig"
)

// renderResult is `swap lb render`'s JSON output: the first instance's files, and the
// other instances' (each has a directory of its own) in Others.
type renderResult struct {
	Instance  string   `json:"instance"`
	Dir       string   `json:"dir"`
	Source    string   `json:"source"` // where the servers and maps came from
	DryRun    bool     `json:"dry_run"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
	Diff      string   `json:"diff,omitempty"`
	Notes     []string `json:"notes,omitempty"`
	// Reloaded: --reload reloaded this instance, which serves these files now.
	Reloaded bool `json:"reloaded"`
	// Others are the results of the other instances.
	Others []*renderResult `json:"others,omitempty"`

	// runtimeErr is why the servers and maps did not come from the instance's runtime.
	runtimeErr error
}

func newLBRenderCmd() *cobra.Command {
	var dryRun, reload bool
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write haproxy.cfg, routes.map, preview.map, canary.map and server-state of every HAProxy instance",
		Long: `render writes each HAProxy instance's files from swap's config into its directory
(haproxy.instances[].dir, default haproxy.dir), with the servers and map entries that
instance serves now (show servers state, show map), so the files reproduce what is live
and a reload changes nothing. When an instance does not answer, its servers and maps
are read from the files already in its directory. Each directory is locked while it is
read and written, so a concurrent swap never leaves older files last.

Each file is written to a temp file next to it, fsynced, checked (haproxy -c for
haproxy.cfg) and renamed over the old one; a file whose bytes are equal is left alone.
--dry-run writes nothing and prints the diff.

Without --reload, HAProxy serves the files from its next reload. With --reload, once
every file is written and checked, render reloads each instance whose files it wrote
through its master CLI (haproxy.instances[].master_socket), one after the other, each
waited for until its new worker answers: a new app's backends are then live. The live
servers, their state and the routes are written to the files first, so the new workers
start with them. An instance without master_socket is refused (exit 2) before any file
is written; one whose live state cannot be read (it does not run swap's config yet) is
not reloaded (exit 1: reload it by hand this once); another host's instance (address,
no dir) is reloaded on its host. With --dry-run, --reload reloads nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, cfg, err := optionsAndConfig(cmd)
			if err != nil {
				return err
			}
			var fleet *lbconfig.Fleet
			if reload {
				if fleet, err = wire.ReloadFleet(cfg); err != nil {
					return classify(fmt.Errorf("lb render --reload: %w", err))
				}
			}
			res, err := renderLB(cmd.Context(), cfg, dryRun, reload)
			if err != nil {
				return err
			}
			if fleet != nil && !dryRun {
				err = reloadLB(cmd.Context(), fleet, res)
			}
			if g.Output == outputJSON {
				return errors.Join(err, writeJSON(cmd.OutOrStdout(), res))
			}
			for _, r := range append([]*renderResult{res}, res.Others...) {
				printRender(cmd.OutOrStdout(), cmd.ErrOrStderr(), r.Dir, r)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "write nothing; print the diff of what would change")
	cmd.Flags().BoolVar(&reload, "reload", false, "then reload every HAProxy instance whose files were written, through its master_socket")
	return cmd
}

// renderLB renders every instance's files with its live servers and maps. The
// result is the first instance's, with the others in Others; the error is the first
// failure (the other instances are rendered all the same). With reload, the notes say
// what --reload leaves alone.
func renderLB(ctx context.Context, cfg *deployments.Config, dryRun, reload bool) (*renderResult, error) {
	layout, clients, err := lbInstances(cfg)
	if err != nil {
		return nil, err
	}
	write, err := wire.WriteOptions(cfg, nil)
	if err != nil {
		return nil, withCode(exitFailed, err)
	}
	write.DryRun = dryRun
	var first *renderResult
	var firstErr error
	for i, c := range clients {
		var res *renderResult
		var err error
		if cfg.HAProxy.WritesFiles(i) {
			res, err = renderInstance(ctx, c, instanceLayout(cfg, layout, i), write)
		} else {
			note := fmt.Sprintf("haproxy %s is another host's (address %s, no dir): its files are written there, by the swap serve or swap watch of that host", c.Name(), cfg.HAProxy.Instances[i].Address)
			if reload {
				note += ", and it is reloaded there: --reload reloads the HAProxys whose files it writes"
			}
			res = &renderResult{Instance: c.Name(), Source: "nothing", DryRun: dryRun, Notes: []string{note}}
		}
		if first == nil {
			first = res
		} else {
			first.Others = append(first.Others, res)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if reload && dryRun && first != nil {
		first.Notes = append(first.Notes, "--dry-run: no HAProxy reloaded")
	}
	return first, firstErr
}

// reloadTimeout bounds the reload of one instance: its new worker up and answering on
// the admin socket.
const reloadTimeout = time.Minute

// reloadLB reloads the instances of fleet (wire.ReloadFleet) once their files are
// written, and marks them Reloaded in res.
func reloadLB(ctx context.Context, fleet *lbconfig.Fleet, res *renderResult) error {
	instances := fleet.Instances()
	reloaded := map[string]bool{}
	for _, in := range instances {
		reloaded[in.Client.Name()] = true
	}
	all := append([]*renderResult{res}, res.Others...)
	for _, r := range all {
		if reloaded[r.Instance] && r.runtimeErr != nil {
			return classify(fmt.Errorf("lb render --reload: haproxy %s is not reloaded (an HAProxy that does not run swap's config yet is reloaded or started by hand on %s, this once): --reload first writes its live servers and maps to the files, and they cannot be read: %w",
				r.Instance, filepath.Join(r.Dir, lbconfig.ConfigFile), r.runtimeErr))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(len(instances))*reloadTimeout)
	defer cancel()
	if err := fleet.Reload(ctx); err != nil {
		return classify(fmt.Errorf("lb render --reload: the files are written, the reload failed: %w", err))
	}
	for _, r := range all {
		r.Reloaded = reloaded[r.Instance]
	}
	return nil
}

// renderInstance renders one instance's files into its layout's directory, holding
// the directory's lock from reading the runtime to the last rename.
func renderInstance(ctx context.Context, c *lbconfig.Client, layout *lbconfig.Layout, write lbconfig.WriteOptions) (*renderResult, error) {
	dryRun := write.DryRun
	res := &renderResult{Instance: c.Name(), Dir: layout.Dir, DryRun: dryRun}
	if !dryRun {
		unlock, err := lbconfig.LockDir(ctx, layout.Dir)
		if err != nil {
			return res, withCode(exitFailed, fmt.Errorf("render %s for haproxy %s: %w", layout.Dir, c.Name(), err))
		}
		defer unlock()
	}
	live, err := c.Snapshot(ctx, layout)
	var state []byte
	if err == nil {
		state, _ = c.ServerStateFile(ctx)
		res.Source = "haproxy " + c.Name()
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("haproxy %s not used: %v", c.Name(), err))
		res.runtimeErr = err
		live, err = lbconfig.ReadLayoutFiles(layout)
		if err != nil {
			return res, withCode(exitFailed, fmt.Errorf("haproxy %s did not answer and the files in %s cannot be read: %w", c.Name(), layout.Dir, err))
		}
		res.Source = "the files in " + layout.Dir
	}
	files, err := lbconfig.Render(live)
	if err != nil {
		return res, withCode(exitFailed, err)
	}
	// The state file changes with every check; it is written, never diffed.
	if state != nil && !dryRun {
		files = append(files, lbconfig.File{Name: lbconfig.StateFile, Data: state})
	}
	wr, err := lbconfig.WriteFiles(ctx, layout.Dir, files, write)
	res.Changed, res.Unchanged, res.Diff = wr.Changed, wr.Unchanged, wr.Diff
	if err != nil {
		return res, withCode(exitFailed, fmt.Errorf("render %s: %w", layout.Dir, err))
	}
	return res, nil
}

func printRender(out, errOut io.Writer, dir string, res *renderResult) {
	for _, n := range res.Notes {
		fmt.Fprintf(errOut, "swap: note: %s\n", n)
	}
	fmt.Fprintf(out, "servers and maps from %s\n", res.Source)
	if res.DryRun {
		if res.Diff == "" {
			fmt.Fprintf(out, "no changes in %s\n", dir)
			return
		}
		fmt.Fprint(out, res.Diff)
		return
	}
	if len(res.Changed) == 0 {
		fmt.Fprintf(out, "no changes in %s\n", dir)
	} else {
		fmt.Fprintf(out, "wrote %s in %s", strings.Join(res.Changed, ", "), dir)
		if len(res.Unchanged) > 0 {
			fmt.Fprintf(out, " (unchanged: %s)", strings.Join(res.Unchanged, ", "))
		}
		fmt.Fprintln(out)
	}
	switch {
	case res.Reloaded:
		fmt.Fprintf(out, "reloaded haproxy %s: it serves the files of %s now\n", res.Instance, dir)
	case len(res.Changed) > 0:
		fmt.Fprintln(out, "HAProxy serves them after its next reload (swap lb render --reload); the runtime already matches them.")
	}
}
