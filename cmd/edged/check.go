package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newCheckCmd() *cobra.Command {
	return newConfigCmd("check", "Validate the flags and the environment, print the effective configuration",
		func(cmd *cobra.Command, s *settings) error {
			var b strings.Builder
			b.WriteString("configuration ok\n")
			for _, a := range s.attrs() {
				fmt.Fprintf(&b, "%s=%s\n", a.Key, a.Value)
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), b.String())
			return err
		})
}
