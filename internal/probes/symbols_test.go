package probes

import (
	"os"
	"strings"
	"testing"

	"github.com/maptrace/maptrace/internal/symbols"
)

func TestInventory(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := symbols.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	got := map[string]SymbolStatus{}
	var order []string
	for _, s := range Inventory(bin) {
		got[s.What] = s
		order = append(order, s.What)
	}
	want := []string{"mutex waits", "RWMutex read waits", "RWMutex write waits", "file lock waits", "mutex parks",
		"mutex wake-ups", "map reads", "map writes", "map deletes", "map iteration", "fatal errors"}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Fatalf("groups %q, want %q", order, want)
	}
	for _, what := range []string{"mutex waits", "file lock waits", "mutex parks", "fatal errors", "map reads", "map writes"} {
		s := got[what]
		if len(s.Found) == 0 || len(s.Errs) > 0 {
			t.Errorf("%s: found %v, errors %v in the test binary", what, s.Found, s.Errs)
		}
	}
	for _, what := range []string{"mutex waits", "RWMutex read waits", "fatal errors"} {
		if !got[what].Expected {
			t.Errorf("%s: not expected in a %s binary", what, bin.GoVersion)
		}
	}
	if got["map reads"].Expected || got["file lock waits"].Expected {
		t.Error("map functions and internal/poll are linked only when used; they must not be expected")
	}
	if f := got["fatal errors"].Found; strings.Join(f, ",") != "runtime.fatal,runtime.throw,runtime.fatalpanic" {
		t.Errorf("fatal errors found %v", f)
	}
}
