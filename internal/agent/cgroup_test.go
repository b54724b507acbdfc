package agent

import "testing"

const (
	id1 = "3f4b9c2e8a7d6f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6"
	id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestContainerID(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup, want string
	}{
		{"docker, cgroup v1, cgroupfs",
			"12:pids:/docker/" + id1 + "\n11:memory:/docker/" + id1 + "\n1:name=systemd:/docker/" + id1 + "\n", id1},
		{"docker, cgroup v2, cgroupfs", "0::/docker/" + id1 + "\n", id1},
		{"docker, cgroup v2, systemd", "0::/system.slice/docker-" + id1 + ".scope\n", id1},
		{"docker, hybrid v1 and v2",
			"4:memory:/system.slice/docker-" + id1 + ".scope\n0::/system.slice/docker-" + id1 + ".scope\n", id1},
		{"containerd cri, cgroupfs",
			"0::/kubepods/burstable/pod7d8c0f3a-1b2c-4d5e-8f90-123456789abc/" + id2 + "\n", id2},
		{"containerd cri, systemd",
			"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d8c0f3a_1b2c_4d5e_8f90_123456789abc.slice/cri-containerd-" + id2 + ".scope\n", id2},
		{"containerd cri, systemd names under cgroupfs",
			"0::/kubepods-besteffort-pod7d8c0f3a_1b2c.slice:cri-containerd:" + id2 + "\n", id2},
		{"cri-o, systemd",
			"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/crio-" + id1 + ".scope\n", id1},
		{"cri-o's conmon is no container", "0::/kubepods.slice/kubepods-pod1234.slice/crio-conmon-" + id1 + ".scope\n", ""},
		{"cri-o, cgroupfs", "0::/kubepods/besteffort/pod1234/" + id1 + "\n", id1},
		{"podman", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id2 + ".scope/container\n", id2},
		{"plain runc, cgroupfs", "0::/" + id1 + "\n", id1},
		{"plain runc, systemd", "0::/system.slice/runc-mybox.scope\n", "mybox"},
		{"plain runc, cgroup v1", "7:cpu,cpuacct:/" + id2 + "\n6:memory:/" + id2 + "\n", id2},
		{"a pod's slice, no container", "0::/kubepods.slice/kubepods-pod1234.slice\n", ""},
		{"systemd service", "0::/system.slice/nginx.service\n", ""},
		{"login session", "0::/user.slice/user-1000.slice/session-3.scope\n", ""},
		{"root cgroup", "0::/\n", ""},
		{"a 32-digit hex directory", "4:memory:/batch/fc5c85c9bdfe46ec12c8c6da4892c54c\n0::/\n", ""},
		{"uppercase hex is no docker id", "0::/docker/" + "3F4B9C2E8A7D6F5E4D3C2B1A0F9E8D7C6B5A49382716F5E4D3C2B1A0F9E8D7C6" + "\n", ""},
		{"a docker- scope of another length", "0::/system.slice/docker-abc.scope\n", ""},
		{"empty", "", ""},
		{"garbage", "no colons here\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ContainerID(tc.cgroup); got != tc.want {
				t.Errorf("ContainerID(%q) = %q, want %q", tc.cgroup, got, tc.want)
			}
		})
	}
}
