package agent

import (
	"github.com/cilium/ebpf/link"
)

// linkedPIDs are the processes that uprobe_multi links are attached to,
// by pid: traced by another tracer (a maptrace attach, another agent,
// bpftrace), whose probes would be paid for twice. Linux 6.6 and later;
// elsewhere, or without the privilege to list links, none are seen.
func linkedPIDs() map[int]bool {
	out := map[int]bool{}
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.UprobeMultiType {
			continue
		}
		if um := info.UprobeMulti(); um != nil {
			if pid, ok := um.Pid(); ok {
				out[int(pid)] = true
			}
		}
	}
	return out
}
