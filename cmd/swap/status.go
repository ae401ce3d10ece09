package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

func newStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [app]",
		Short: "Show each app's live color, images, instances (health, sessions, CPU, memory) and last deploys",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := setup(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			apps := env.cfg.AppNames()
			if len(args) == 1 {
				apps = args
			}
			var all []*switcher.AppStatus
			for _, app := range apps {
				st, err := env.sw.Status(cmd.Context(), app)
				if err != nil {
					return classify(err)
				}
				all = append(all, st)
			}
			if env.globals.Output == outputJSON {
				return writeJSON(cmd.OutOrStdout(), all)
			}
			for _, st := range all {
				printStatus(cmd.OutOrStdout(), st)
			}
			return nil
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, st *switcher.AppStatus) {
	live := string(st.Live)
	if live == "" {
		live = "none (never deployed)"
	}
	fmt.Fprintf(w, "%s: live %s\n", st.App, live)
	for c, cs := range st.Colors {
		retiring := ""
		if cs.Retiring() {
			retiring = fmt.Sprintf(", retiring at %s: `swap rollback %s` flips back until then", cs.RetireAt.Format(time.RFC3339), st.App)
		}
		fmt.Fprintf(w, "  %-5s %s (image %s, deploy %s, since %s%s)\n", c, cs.Image, orDash(deployments.ShortID(cs.ImageID)), cs.Deploy,
			cs.Since.Format(time.RFC3339), retiring)
	}
	for lb, be := range st.Routes {
		fmt.Fprintf(w, "  route on %s -> %s\n", lb, orDash(be))
	}
	if m := st.Mesh; m != nil {
		if m.Problem != "" {
			fmt.Fprintf(w, "  mesh: %s\n", m.Problem)
		} else {
			fmt.Fprintf(w, "  mesh -> %s\n", m)
		}
	}
	if st.InFlight != nil {
		fmt.Fprintf(w, "  in flight: %s to %s (deploy %s) at %s, %s\n", st.InFlight.Plan.Op, st.InFlight.Plan.To,
			st.InFlight.Plan.Deploy, st.InFlight.Step, st.InFlight.Status)
		for _, h := range slices.Sorted(maps.Keys(st.InFlight.Hosts)) {
			fmt.Fprintf(w, "    started on docker host %s: %s\n", h, strings.Join(st.InFlight.Hosts[h], ", "))
		}
	}
	if len(st.Instances) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		// The HOST column only when the instances run on several Docker hosts.
		hosts := slices.ContainsFunc(st.Instances, func(in switcher.InstanceStatus) bool { return in.DockerHost != "" })
		host := func(in switcher.InstanceStatus) string {
			if hosts {
				return in.ID + "\t" + orDash(in.DockerHost)
			}
			return in.ID
		}
		head := "INSTANCE"
		if hosts {
			head += "\tHOST"
		}
		fmt.Fprintln(tw, "  "+head+"\tIMAGE\tIMAGE ID\tADDR\tDOCKER\tCONSUL\tHAPROXY\tSESSIONS\tCPU\tMEM")
		for _, in := range st.Instances {
			var lbs []string
			for _, s := range in.HAProxy {
				lbs = append(lbs, fmt.Sprintf("%s:%s/%s", s.LB, s.Status, orDash(s.CheckStatus)))
			}
			cpu, mem := "-", "-"
			if in.Usage != nil {
				cpu = fmt.Sprintf("%.1f%%", in.Usage.CPUPercent)
				mem = fmt.Sprintf("%.1fMiB", float64(in.Usage.MemBytes)/(1<<20))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", host(in), in.Image, orDash(deployments.ShortID(in.ImageID)), in.Addr, in.State, in.Consul,
				orDash(strings.Join(lbs, " ")), in.Sessions, cpu, mem)
		}
		tw.Flush()
		for _, in := range st.Instances {
			if in.Drift != "" {
				fmt.Fprintf(w, "  drift: %s: %s; `swap resume %s` makes them follow it\n", in.ID, in.Drift, st.App)
			}
		}
	}
	for _, h := range st.History {
		fmt.Fprintf(w, "  %s %s %s -> %s %s: %s (%s)\n", h.Finished.Format(time.RFC3339), h.Op, orDash(string(h.From)),
			h.To, switcher.Image{Ref: h.Image, ID: h.ImageID}, h.Result, h.Finished.Sub(h.Started).Round(time.Millisecond))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history <app>",
		Short: "List an app's swaps, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := setup(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			hist, err := env.sw.History(cmd.Context(), args[0])
			if err != nil {
				return classify(err)
			}
			if env.globals.Output == outputJSON {
				return writeJSON(cmd.OutOrStdout(), hist)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINISHED\tDEPLOY\tOP\tFROM\tTO\tIMAGE\tIMAGE ID\tRESULT\tTOOK\tERROR")
			for _, h := range hist {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Finished.Format(time.RFC3339), h.Deploy, h.Op,
					orDash(string(h.From)), h.To, h.Image, orDash(deployments.ShortID(h.ImageID)), h.Result, h.Finished.Sub(h.Started).Round(time.Millisecond), h.Error)
			}
			return tw.Flush()
		},
	}
}
