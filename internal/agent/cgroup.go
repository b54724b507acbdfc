package agent

import (
	"os"
	"strconv"
	"strings"
)

// containerPrefixes are the prefixes runtimes give a container's cgroup
// (a systemd scope, or a cgroupfs directory) before its ID.
var containerPrefixes = []string{
	"docker-",         // Docker, systemd driver
	"cri-containerd-", // containerd's CRI plugin, systemd driver
	"crio-",           // CRI-O, systemd driver
	"libpod-",         // Podman
	"runc-",           // plain runc --systemd-cgroup: runc-ID.scope in system.slice
}

// ContainerID finds the container ID in the contents of /proc/PID/cgroup:
// the last cgroup path component that names a container as Docker,
// containerd (CRI), CRI-O, Podman or plain runc lay them out, or "" for a
// process in no container. IDs are 64 hex digits, except runc's own
// (runc-ID.scope), which are what its user named them.
func ContainerID(cgroup string) string {
	for _, line := range strings.Split(cgroup, "\n") {
		// hierarchy-ID:controllers:path; the path may hold colons.
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		parts := strings.Split(f[2], "/")
		for i := len(parts) - 1; i >= 0; i-- {
			if id := containerPart(parts[i]); id != "" {
				return id
			}
		}
	}
	return ""
}

// containerPart is the container ID a cgroup path component names, or "".
func containerPart(p string) string {
	// containerd's systemd driver under cgroupfs paths:
	// kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		p = p[i+1:]
	}
	scope := strings.HasSuffix(p, ".scope")
	p = strings.TrimSuffix(p, ".scope")
	for _, pre := range containerPrefixes {
		id, ok := strings.CutPrefix(p, pre)
		switch {
		case !ok:
			continue
		case strings.HasPrefix(id, "conmon-"):
			return "" // CRI-O's and Podman's monitor, beside the container
		case isHexID(id), pre == "runc-" && scope && id != "":
			return id
		}
		return ""
	}
	if isHexID(p) { // cgroupfs drivers: .../docker/<id>, .../pod<uid>/<id>
		return p
	}
	return ""
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// containerOf reads process pid's container ID; "" when it has none or its
// cgroups cannot be read.
func containerOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	return ContainerID(string(b))
}
