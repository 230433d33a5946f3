package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit statuses (README "Exit codes"). The systemd unit must not restart on exitUsage or exitBind:
// a restart cannot fix them.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	exitBind  = 3
)

// usageError is a bad flag, value or environment variable: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitError carries the exit status of a failure found after the command line was accepted.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// newRootCmd builds the command tree: serve, check, version and cobra's completion.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "edged",
		Short: "HTTP/1.1 daemon for embedded Linux gateways",
		Long: "edged serves HTTP/1.1 with a fixed pool of workers and preallocated buffers, in accept mode\n" +
			"(--socket-queue 0) or socket-queue mode. Every flag has an environment twin EDGED_<FLAG>\n" +
			"(--socket-queue -> EDGED_SOCKET_QUEUE); the command line wins over the environment.",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.AddCommand(newServeCmd(), newCheckCmd(), newVersionCmd())
	return root
}

// strictCompletion adds cobra's completion command to root now rather than when root runs, and makes
// it refuse an argument as every other command does (exit 2). cobra's own only groups one command per
// shell: with an unknown shell ("edged completion bsh > /etc/bash_completion.d/edged") it printed its
// help to stdout and exited 0. It must be called once root's output is set: the shells' commands keep
// the writer they find.
func strictCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = cobra.NoArgs
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
	}
}

// newConfigCmd builds a command that takes the daemon flags (serve and check share them: one
// definition, one validation). run is called with the settings once the command line and the
// environment have been applied and checked.
func newConfigCmd(use, short string, run func(cmd *cobra.Command, s *settings) error) *cobra.Command {
	s := defaultSettings()
	fs := pflag.NewFlagSet(use, pflag.ContinueOnError)
	fs.SortFlags = false
	s.register(fs)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(fs, os.Getenv); err != nil {
				return err
			}
			s.unknownEnv = unknownEnv(fs, os.Environ())
			if err := s.validate(); err != nil {
				return err
			}
			return run(cmd, &s)
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().AddFlagSet(fs)
	return cmd
}

// execute runs root with args and turns the outcome into an exit status. Every failure is reported as
// one line on stderr, "edged: ...", naming the flag when a flag is at fault.
func execute(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	strictCompletion(root)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	code := exitUsage // cobra's own errors: unknown flag, command or argument
	var (
		invalid *pflag.InvalidValueError
		exit    *exitError
	)
	switch {
	case errors.As(err, &invalid):
		msg = fmt.Sprintf("invalid --%s: %v, got %q", invalid.GetFlag().Name, errors.Unwrap(invalid), invalid.GetValue())
	case errors.As(err, &exit):
		code = exit.code
	case errors.As(err, new(*fs.PathError)):
		// The output could not be written (a full disk, a closed pipe): a failure, not a usage error.
		code = exitFail
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	fmt.Fprintln(root.ErrOrStderr(), "edged: "+msg)
	return code
}
