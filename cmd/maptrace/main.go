// Command maptrace shows, for a running Go process, which mutexes its
// goroutines wait on and for how long — attached with eBPF uprobes, without a
// restart or a rebuild.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError marks errors in how maptrace was called (exit status 2).
type usageError struct{ error }

func main() {
	root := &cobra.Command{
		Use:           "maptrace",
		Short:         "Trace mutex contention and map use in a running Go process",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(attachCmd(), versionCmd(), demoCmd(), workloadCmd(), doctorCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "maptrace: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print maptrace's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "maptrace %s\n", version)
		},
	}
}
