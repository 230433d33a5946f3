package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newCheckCmd() *cobra.Command {
	return newConfigCmd("check", "Validate the flags and the environment, print the effective configuration and its memory budget",
		func(cmd *cobra.Command, s *settings) error {
			if err := s.checkBudget(); err != nil {
				return err
			}
			var b strings.Builder
			b.WriteString("configuration ok\n")
			for _, a := range s.attrs() {
				fmt.Fprintf(&b, "%s=%s\n", a.Key, a.Value)
			}
			// CONTRACT D8: the memory the configured pools can ever use, by part.
			for _, a := range s.memoryBudget().parts() {
				fmt.Fprintf(&b, "%s=%s\n", a.Key, a.Value)
			}
			// Accepted but probably not meant: one line each on stderr, so that stdout stays key=value.
			for _, w := range s.warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "edged: warning: "+w)
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), b.String())
			return err
		})
}
