package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/wire"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

func newLBCmd() *cobra.Command {
	lb := &cobra.Command{
		Use:   "lb",
		Short: "Render HAProxy's config from swap's config and show what HAProxy serves",
		Long: `swap lb works on HAProxy directly: render writes haproxy.cfg and the map files
(docs/haproxy.md explains the layout) and, with --reload, reloads HAProxy; status shows
every backend and server of every HAProxy instance.`,
		Args: cobra.NoArgs,
	}
	lb.AddCommand(newLBRenderCmd(), newLBStatusCmd())
	return lb
}

// lbInstances returns the layout the config describes and a Runtime API client for
// every HAProxy instance in it.
func lbInstances(cfg *deployments.Config) (*lbconfig.Layout, []*lbconfig.Client, error) {
	layout, err := switcher.LBLayout(cfg, switcher.LBCurrent{})
	if err != nil {
		return nil, nil, withCode(exitUsage, err)
	}
	var clients []*lbconfig.Client
	for _, in := range cfg.HAProxy.Instances {
		c, err := wire.Client(in)
		if err != nil {
			return nil, nil, withCode(exitUsage, err)
		}
		clients = append(clients, c)
	}
	return layout, clients, nil
}

// instanceLayout is layout with the directory of haproxy.instances[i]'s files: its map
// ids and admin socket are there.
func instanceLayout(cfg *deployments.Config, layout *lbconfig.Layout, i int) *lbconfig.Layout {
	l := layout.Clone()
	l.Dir = cfg.HAProxy.InstanceDir(i)
	return l
}

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

// lbServer is one server in `swap lb status`.
type lbServer struct {
	Name         string `json:"name"`
	Addr         string `json:"addr"`
	Status       string `json:"status"`
	CheckStatus  string `json:"check_status"`
	Weight       int    `json:"weight"`
	Sessions     int64  `json:"sessions"`
	Queued       int64  `json:"queued"`
	UsedConns    int64  `json:"used_conns"`
	Responses5xx int64  `json:"responses_5xx"`
}

// lbBackend is one backend in `swap lb status`.
type lbBackend struct {
	Name     string     `json:"name"`
	Status   string     `json:"status"`
	Sessions int64      `json:"sessions"`
	Servers  []lbServer `json:"servers"`
}

// lbInstance is one HAProxy instance in `swap lb status`.
type lbInstance struct {
	Name     string            `json:"name"`
	Error    string            `json:"error,omitempty"`
	Version  string            `json:"version,omitempty"`
	Routes   map[string]string `json:"routes,omitempty"`
	Backends []lbBackend       `json:"backends"`
}

func newLBStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the backends, servers, states, sessions and check results of every HAProxy instance",
		Long: `status asks every HAProxy instance of the config for its backends (show stat) and
routes (show map) and prints them as a table, or as JSON with --output json. It shows
swap's backends (<app>_blue, <app>_green) and swap_fallback. An instance that does not
answer is listed with its error, and the exit code is 4.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g, cfg, err := optionsAndConfig(cmd)
			if err != nil {
				return err
			}
			all, err := lbStatus(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if g.Output == outputJSON {
				err = writeJSON(cmd.OutOrStdout(), all)
			} else {
				printLBStatus(cmd.OutOrStdout(), all)
			}
			if err != nil {
				return err
			}
			var failed []string
			for _, in := range all {
				if in.Error != "" {
					failed = append(failed, in.Name)
				}
			}
			if len(failed) > 0 {
				return withCode(exitUnreachable, fmt.Errorf("haproxy %s did not answer: %w", strings.Join(failed, ", "), lbconfig.ErrUnreachable))
			}
			return nil
		},
	}
}

func lbStatus(ctx context.Context, cfg *deployments.Config) ([]lbInstance, error) {
	layout, clients, err := lbInstances(cfg)
	if err != nil {
		return nil, err
	}
	ours := map[string]bool{lbconfig.FallbackBackend: true}
	for _, b := range layout.Backends {
		ours[b.Name] = true
	}
	var all []lbInstance
	for i, c := range clients {
		in := lbInstance{Name: c.Name(), Backends: []lbBackend{}}
		if err := fillInstance(ctx, c, instanceLayout(cfg, layout, i), ours, &in); err != nil {
			in.Error = err.Error()
		}
		all = append(all, in)
	}
	return all, nil
}

func fillInstance(ctx context.Context, c *lbconfig.Client, layout *lbconfig.Layout, ours map[string]bool, in *lbInstance) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	in.Version = v.Raw
	rows, err := c.Stat(ctx, "")
	if err != nil {
		return err
	}
	byName := map[string]*lbBackend{}
	var order []string
	backend := func(name string) *lbBackend {
		if b, ok := byName[name]; ok {
			return b
		}
		byName[name] = &lbBackend{Name: name, Servers: []lbServer{}}
		order = append(order, name)
		return byName[name]
	}
	for _, r := range rows {
		if !ours[r.Proxy] {
			continue
		}
		switch r.Type {
		case lbconfig.StatBackend:
			b := backend(r.Proxy)
			b.Status, b.Sessions = r.Status, r.Scur
		case lbconfig.StatServer:
			b := backend(r.Proxy)
			b.Servers = append(b.Servers, lbServer{
				Name: r.Name, Addr: r.Addr, Status: r.Status, CheckStatus: strings.TrimPrefix(r.CheckStatus, "* "),
				Weight: r.Weight, Sessions: r.Scur, Queued: r.Qcur, UsedConns: r.UsedConnCur, Responses5xx: r.Hrsp5xx,
			})
		}
	}
	sort.Strings(order)
	for _, name := range order {
		in.Backends = append(in.Backends, *byName[name])
	}
	entries, err := c.ShowMap(ctx, layout.RoutesMap())
	if err != nil && !errors.Is(err, lbconfig.ErrNoSuchMap) {
		return err
	}
	if len(entries) > 0 {
		in.Routes = map[string]string{}
		for _, e := range entries {
			in.Routes[e.Key] = e.Value
		}
	}
	return nil
}

func printLBStatus(w io.Writer, all []lbInstance) {
	for i, in := range all {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if in.Error != "" {
			fmt.Fprintf(w, "haproxy %s: unreachable: %s\n", in.Name, in.Error)
			continue
		}
		fmt.Fprintf(w, "haproxy %s (%s)\n", in.Name, in.Version)
		keys := make([]string, 0, len(in.Routes))
		for k := range in.Routes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  route %s -> %s\n", k, in.Routes[k])
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  BACKEND\tSERVER\tADDR\tSTATUS\tCHECK\tWEIGHT\tSESSIONS\tQUEUED\tCONNS\t5XX")
		for _, b := range in.Backends {
			fmt.Fprintf(tw, "  %s\t-\t-\t%s\t-\t-\t%d\t-\t-\t-\n", b.Name, orDash(b.Status), b.Sessions)
			for _, s := range b.Servers {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", b.Name, s.Name, s.Addr, s.Status,
					orDash(s.CheckStatus), s.Weight, s.Sessions, s.Queued, s.UsedConns, s.Responses5xx)
			}
		}
		tw.Flush()
	}
}
