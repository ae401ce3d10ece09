package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK          = 0 // done
	exitFailed      = 1 // failed (and rolled back)
	exitUsage       = 2 // bad input or config
	exitBusy        = 3 // the app's lock is held
	exitUnreachable = 4 // Docker, Consul or HAProxy unreachable
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode marks err with the process exit code it should produce.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// execute runs swap with args and returns the process exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "swap: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Anything cobra itself refused (unknown flag, missing argument) is bad input.
	return exitUsage
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "swap",
		Short: "Blue/green traffic switcher and health checker for containerised apps behind HAProxy",
		Long: `swap moves live traffic from one color (blue, green) of a containerised app to the
other without dropping a request: it starts the new color's containers, registers them in
Consul, health-checks them, flips HAProxy through its Runtime API, drains the old color and
removes it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	addGlobalFlags(root) // --config, --log-level, --output, ...: config.go
	rootSwitch(root)     // swap <app> <color>
	root.AddCommand(
		newVersionCmd(),
		newSwitchCmd(),
		newDeployCmd(),
		newRollbackCmd(),
		newPromoteCmd(),
		newAbortCmd(),
		newResumeCmd(),
		newStatusCmd(),
		newHistoryCmd(),
		newCleanupCmd(),
		newUnlockCmd(),
		newServeCmd(),
		newLBCmd(),
		newHealthCmd(),
		newHookCmd(),
		newWatchCmd(),
	)
	return root
}
