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

func main() {
	root := &cobra.Command{
		Use:           "maptrace",
		Short:         "Trace mutex contention and map use in a running Go process",
		SilenceUsage:  true,
		SilenceErrors: true,
		// An unknown command is a usage error (cobra's own check exits 1).
		Args: argsError,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		// SuggestionsFor needs it set (cobra defaults it only for its own
		// unknown-command message).
		SuggestionsMinimumDistance: 2,
	}
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(attachCmd(), agentCmd(), reportCmd(), versionCmd(), demoCmd(), workloadCmd(), doctorCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "maptrace: %s\n", flatten(err))
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
		Args:  argsError,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "maptrace %s\n", version)
		},
	}
}
