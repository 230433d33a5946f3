package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

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
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "edged %s\ncommit: %s\ngo: %s\nplatform: %s\n",
				version, commit, runtime.Version(), platform())
			return err
		},
	}
}

// platform returns GOOS/GOARCH and the architecture level the binary was built for, from the build
// information the linker embeds (it survives -s -w): "linux/arm GOARM=6", "linux/amd64 GOAMD64=v1".
// The level tells a GOARM=7 build, which dies with an illegal instruction on a Pi Zero, from the GOARM=6
// one the armhf package ships.
func platform() string {
	p := runtime.GOOS + "/" + runtime.GOARCH
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return p
	}
	key := "GO" + strings.ToUpper(runtime.GOARCH) // GOARM, GOARM64, GOAMD64, GO386 ...
	for _, s := range info.Settings {
		if s.Key == key && s.Value != "" {
			return p + " " + key + "=" + s.Value
		}
	}
	return p
}
