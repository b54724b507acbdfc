package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	containers "github.com/containerd/containerd/api/services/containers/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultContainerd is containerd's socket on a Kubernetes node (and the
// Debian package's default).
const DefaultContainerd = "/run/containerd/containerd.sock"

// The labels containerd's CRI plugin gives the containers a kubelet
// creates (the kubelet's own, passed through CRI), and the containerd
// namespace it keeps them in.
const (
	criNamespace      = "k8s.io"
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
	labelContainer    = "io.kubernetes.container.name"
)

// pod is a container's Kubernetes names; zero outside Kubernetes.
type pod struct {
	Namespace, Name, Container string
}

// pods reads containers' pod labels from the node's containerd, not from
// the Kubernetes API: a watch of every pod from every node is what starved
// API servers under other node agents. Each container is asked about once,
// its answer kept until none of its processes runs: CRI never changes a
// container's labels.
type pods struct {
	addr string
	log  *lineLog

	mu     sync.Mutex
	conn   *grpc.ClientConn
	cache  map[string]pod // by container ID; pod{} for one not Kubernetes'
	warned bool
}

// lookupTimeout bounds one question to containerd, so that a containerd
// that hangs delays a new process's trace by this much at most.
const lookupTimeout = 2 * time.Second

func newPods(addr string, log *lineLog) *pods {
	return &pods{addr: addr, log: log, cache: map[string]pod{}}
}

// of returns container id's pod. When containerd cannot be asked (no
// socket, not containerd, an error), it says so once, and the process keeps
// only its container_id; it asks again for the next new container, so a
// containerd started later is used.
func (ps *pods) of(id string) pod {
	if ps == nil || ps.addr == "" || id == "" {
		return pod{}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.cache[id]; ok {
		return p
	}
	p, err := ps.ask(id)
	switch {
	case err == nil:
		ps.warned = false
	case status.Code(err) == codes.NotFound: // not a CRI container: docker's, runc's, another namespace's
	default:
		if !ps.warned {
			ps.warned = true
			ps.log.printf("warning: containerd at %s: %v: no Kubernetes labels (namespace, pod, container) until it answers; series keep container_id", ps.addr, flatten(err))
		}
		return pod{}
	}
	ps.cache[id] = p
	return p
}

// ask reads container id's labels from containerd; ps.mu is held.
func (ps *pods) ask(id string) (pod, error) {
	if ps.conn == nil {
		// A lazy client: it connects on the first call, and again after
		// containerd restarts.
		conn, err := grpc.NewClient("unix://"+ps.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return pod{}, err
		}
		ps.conn = conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	// containerd's namespace travels in this gRPC header
	// (containerd's namespaces.GRPCHeader).
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", criNamespace)
	resp, err := containers.NewContainersClient(ps.conn).Get(ctx, &containers.GetContainerRequest{ID: id})
	if err != nil {
		if s, ok := status.FromError(err); ok && s.Code() != codes.NotFound {
			return pod{}, fmt.Errorf("get container %s: %s", short(id), s.Message())
		}
		return pod{}, err
	}
	l := resp.GetContainer().GetLabels()
	return pod{Namespace: l[labelPodNamespace], Name: l[labelPodName], Container: l[labelContainer]}, nil
}

// prune forgets the containers none of whose processes runs.
func (ps *pods) prune(running map[string]bool) {
	if ps == nil {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for id := range ps.cache {
		if !running[id] {
			delete(ps.cache, id)
		}
	}
}

func (ps *pods) close() {
	if ps == nil {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.conn != nil {
		ps.conn.Close()
		ps.conn = nil
	}
}
