package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Set at link time: go build -ldflags "-X main.version=1.2.3 -X main.commit=abc1234".
var (
	version = "0.0.0-dev"
	commit  = "unknown"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "edged %s\ncommit: %s\ngo: %s\nplatform: %s/%s\n",
				version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
