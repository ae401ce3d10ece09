package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/lbconfig"
)

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
