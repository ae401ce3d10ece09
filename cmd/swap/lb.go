package main

import (
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
