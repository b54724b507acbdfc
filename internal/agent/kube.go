package agent

import (
	"context"
	"encoding/json"
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

// A pod's own labels are on its sandbox container only: the CRI plugin
// gives the sandbox the pod's labels and labels it its kind, and each app
// container's OCI spec an annotation naming its sandbox (containerd's
// pkg/cri annotations and labels).
const (
	annotationSandboxID = "io.kubernetes.cri.sandbox-id"
	labelKind           = "io.cri-containerd.kind"
	kindSandbox         = "sandbox"
)

// DefaultServiceLabel is the pod label that names a service, the one
// Kubernetes recommends for an application's name.
const DefaultServiceLabel = "app.kubernetes.io/name"

// pod is a container's Kubernetes names; zero outside Kubernetes.
type pod struct {
	Namespace, Name, Container string
	// Service is the value of the pod's service label; "" without one.
	Service string
}

// pods reads containers' pod labels from the node's containerd, not from
// the Kubernetes API: a watch of every pod from every node is what starved
// API servers under other node agents. Each container is asked about once
// (with its pod's sandbox, which has the pod's labels), its answer kept
// until none of its processes runs: CRI never changes a container's or a
// sandbox's labels.
type pods struct {
	addr         string
	serviceLabel string // the pod label that names the service; "" for none
	log          *lineLog

	mu     sync.Mutex
	conn   *grpc.ClientConn
	cache  map[string]pod // by container ID; pod{} for one not Kubernetes'
	warned bool
}

// lookupTimeout bounds one question to containerd, so that a containerd
// that hangs delays a new process's trace by this much at most.
const lookupTimeout = 2 * time.Second

func newPods(addr, serviceLabel string, log *lineLog) *pods {
	return &pods{addr: addr, serviceLabel: serviceLabel, log: log, cache: map[string]pod{}}
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

// ask reads container id's labels from containerd, and its pod's service
// label from the pod's sandbox; ps.mu is held.
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
	c, err := ps.get(id)
	if err != nil {
		return pod{}, err
	}
	l := c.GetLabels()
	p := pod{Namespace: l[labelPodNamespace], Name: l[labelPodName], Container: l[labelContainer]}
	if p.Container == "" || ps.serviceLabel == "" {
		return p, nil
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	// The spec is the OCI runtime spec, as JSON; one that does not decode
	// names no sandbox.
	json.Unmarshal(c.GetSpec().GetValue(), &spec)
	sandbox := spec.Annotations[annotationSandboxID]
	if sandbox == "" {
		return p, nil
	}
	sc, err := ps.get(sandbox)
	switch {
	case status.Code(err) == codes.NotFound: // the pod is going away
		return p, nil
	case err != nil:
		return pod{}, err
	}
	if sl := sc.GetLabels(); sl[labelKind] == kindSandbox {
		p.Service = sl[ps.serviceLabel]
	}
	return p, nil
}

// get reads container id from containerd; ps.mu is held.
func (ps *pods) get(id string) (*containers.Container, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	// containerd's namespace travels in this gRPC header
	// (containerd's namespaces.GRPCHeader).
	ctx = metadata.AppendToOutgoingContext(ctx, "containerd-namespace", criNamespace)
	resp, err := containers.NewContainersClient(ps.conn).Get(ctx, &containers.GetContainerRequest{ID: id})
	if err != nil {
		if s, ok := status.FromError(err); ok && s.Code() != codes.NotFound {
			return nil, fmt.Errorf("get container %s: %s", short(id), s.Message())
		}
		return nil, err
	}
	return resp.GetContainer(), nil
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
