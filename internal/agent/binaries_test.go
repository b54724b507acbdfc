package agent

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildInfoExited: a process that exits between the scan's look at it
// and the read of its build information leaves nothing cached, so that the
// executable's other processes are not taken for programs that are not Go.
func TestBuildInfoExited(t *testing.T) {
	b := newBinaries()
	self, ok := identify(os.Getpid())
	if !ok {
		t.Fatal("identify the test itself")
	}
	if !b.buildInfo(&self) || !self.IsGo() {
		t.Fatalf("the test's own build information: Go %q", self.GoVersion)
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, ok := identify(cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	if !ok {
		t.Fatal("identify a running child")
	}
	fresh := newBinaries()
	if fresh.buildInfo(&p) {
		t.Fatalf("buildInfo of an exited process: ok, Go %q", p.GoVersion)
	}
	if len(fresh.info) != 0 {
		t.Errorf("buildInfo of an exited process kept %v", fresh.info)
	}
}
