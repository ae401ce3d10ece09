package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/swap-dev/swap/internal/stack"
)

// StackFlags are the flags of the programs that run swap on the demo's stack
// (internal/stack): its working directory and the binaries.
type StackFlags struct {
	Dir, Swap, Consul, Demoapp string
}

// RegisterStackFlags adds -dir (default .<name>), -swap, -consul and -demoapp to fs
// (flag.CommandLine when nil).
func RegisterStackFlags(fs *flag.FlagSet, name string) *StackFlags {
	if fs == nil {
		fs = flag.CommandLine
	}
	f := &StackFlags{}
	fs.StringVar(&f.Dir, "dir", "."+name, "working `directory` (short: HAProxy's sockets live there); removed at the end")
	fs.StringVar(&f.Swap, "swap", "bin/swap", "the swap `binary`")
	fs.StringVar(&f.Consul, "consul", "bin/consul", "the consul `binary`")
	fs.StringVar(&f.Demoapp, "demoapp", "bin/demoapp", "the static demoapp `binary`")
	return f
}

// HostPorts is docker.host_ports for every benchmark's stack: below the kernel's
// ephemeral ports (32768-60999, swap's default range), where the load's outgoing
// connections take theirs — one took the port swap picked for a container before Docker
// bound it, and the deploy failed — and below procs.FreePort's (20000-31999), where the
// stack's own processes listen.
const HostPorts = "10000-19999"

// UpStack starts the stack in f.Dir with apps (swap.yaml's apps: section), after
// removing what a killed run left there. down stops it and joins its error into *err;
// call it deferred even when UpStack fails (it removes what was started).
func (f *StackFlags) UpStack(ctx context.Context, apps string) (st *stack.Stack, down func(err *error), err error) {
	down = func(*error) {}
	if _, err := os.Stat(f.Dir); err == nil {
		if err := stack.Down(ctx, f.Dir, os.Stderr); err != nil {
			return nil, down, err
		}
	}
	st, err = stack.Up(ctx, stack.Options{Dir: f.Dir, Swap: f.Swap, Consul: f.Consul, Log: os.Stderr, Apps: apps, HostPorts: HostPorts})
	if st != nil {
		if rerr := recordStackID(st.ID); rerr != nil {
			err = errors.Join(err, rerr)
		}
		down = func(err *error) {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			*err = errors.Join(*err, st.Down(cctx))
		}
	}
	return st, down, err
}

// DeployDemo makes image (VERSION=v1) from the demoapp binary and deploys app on it with
// swap. No container of app may run on this Docker before.
func (f *StackFlags) DeployDemo(ctx context.Context, st *stack.Stack, app, image string) error {
	bin, err := os.ReadFile(f.Demoapp)
	if err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	if insts, err := st.Docker.List(ctx, app); err != nil || len(insts) > 0 {
		return fmt.Errorf("docker already runs swap containers of app %s (%d, %v)", app, len(insts), err)
	}
	if err := st.DemoImage(ctx, image, "v1", bin); err != nil {
		return err
	}
	_, err = st.SwapJSON(ctx, "", nil, "deploy", app, "--image", image)
	return err
}

// StackIDsEnv names the file where UpStack appends the ID of every stack it starts (one
// a line), when set: the suite (bench/suite) checks afterwards that nothing labelled
// with those IDs is left in Docker, without mistaking another run's demo for a leftover.
const StackIDsEnv = "SWAP_BENCH_STACK_IDS"

func recordStackID(id string) error {
	path := os.Getenv(StackIDsEnv)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", StackIDsEnv, err)
	}
	_, err = fmt.Fprintln(f, id)
	return errors.Join(err, f.Close())
}
