package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestDocsListEveryFlag checks that docs/cli.md names every command and
// every flag, with its shorthand.
func TestDocsListEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, cmd := range []*cobra.Command{attachCmd(), agentCmd(), demoCmd(), doctorCmd(), versionCmd()} {
		name := strings.Fields(cmd.Use)[0]
		if !strings.Contains(doc, "maptrace "+name) {
			t.Errorf("docs/cli.md does not show `maptrace %s`", name)
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			if !strings.Contains(doc, "`--"+f.Name) {
				t.Errorf("docs/cli.md does not document %s --%s", name, f.Name)
			}
			if f.Shorthand != "" && !strings.Contains(doc, "`-"+f.Shorthand+"`, `--"+f.Name) {
				t.Errorf("docs/cli.md does not give %s --%s's shorthand -%s", name, f.Name, f.Shorthand)
			}
		})
	}
}
