package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/maptrace/maptrace/internal/report"
)

func reportCmd() *cobra.Command {
	var flags outputFlags
	cmd := &cobra.Command{
		Use:   "report FILE.json",
		Short: "Re-render a saved JSON report as text, JSON or profiles",
		Long: "report reads a report written by `maptrace attach -f json -o FILE` and writes it again, as text (the\n" +
			"default) or JSON, with any of the profiles: what attach would have written from the same trace.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("report needs one FILE.json, got %d arguments (see `maptrace report --help`)", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.check(); err != nil {
				return err
			}
			r, err := readReport(args[0])
			if err != nil {
				return err
			}
			return flags.write(cmd.OutOrStdout(), r)
		},
	}
	flags.register(cmd)
	return cmd
}

// notReport is what to do with a file that is not a report.
const notReport = "give a file written by `maptrace attach -f json -o FILE`"

// readReport reads a JSON report. It accepts fields it does not know (the
// format only grows) but nothing that is not one version-1 report object.
func readReport(path string) (*report.Report, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, usageError{fmt.Errorf("%s is a directory: %s", path, notReport)}
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usageError{fmt.Errorf("%s: no such file: %s", path, notReport)}
	case err != nil:
		return nil, fmt.Errorf("%s: %v", path, unwrapPath(err))
	}
	// The version first, so that a report of another version is called that
	// rather than malformed.
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.Version == nil {
		why := ""
		if t := bytes.TrimSpace(b); err != nil && len(t) > 0 && t[0] == '{' {
			why = fmt.Sprintf(" (%v)", err) // JSON, but cut short or hand-edited
		}
		return nil, usageError{fmt.Errorf("%s is not a maptrace JSON report%s: %s", path, why, notReport)}
	}
	if *head.Version != report.Version {
		return nil, usageError{fmt.Errorf("%s is a version %d report; this maptrace reads version %d: use the maptrace that wrote it",
			path, *head.Version, report.Version)}
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, usageError{fmt.Errorf("%s: a damaged report (%v): %s", path, err, notReport)}
	}
	return &r, nil
}
