//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
// Mutex contention: how long goroutines park in the sync semaphores, and who
// releases them. Probes sit on the park (runtime_Semacquire{Mutex,RWMutex,
// RWMutexR}) and the release to waiters (runtime_Semrelease), never on the
// lock fast path, so their rate is the rate of contention.
#include "common.h"

#define HIST_BUCKETS 40

struct wait_start {
	u64 start_ns;
	u64 woken_ns; // when a releaser made it runnable; 0 if not seen
	u64 sema;
	u64 caller;
	s64 stackid;
	u32 kind;
	u32 _pad;
};

struct wait_key {
	u64 sema;
	u64 caller;
	s64 stackid;
	u32 kind;
	u32 _pad;
};

struct wait_val {
	u64 count;
	u64 total_ns; // parked: from the park to being made runnable
	u64 sched_ns; // runnable: from being made runnable to running again
	u64 max_ns;
	u64 hist[HIST_BUCKETS];
};

struct release_key {
	u64 sema;
	u64 caller;
	s64 stackid;
};

struct goroutine_val {
	u64 count;
	u64 total_ns;
};

// In-flight parks, keyed by the g pointer: a parked goroutine may resume on
// another thread, so thread ids would mismatch.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct wait_start);
	__uint(max_entries, 65536);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct wait_key);
	__type(value, struct wait_val);
	__uint(max_entries, 16384);
} waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct release_key);
	__type(value, u64);
	__uint(max_entries, 16384);
} releases SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, s64);
	__type(value, struct goroutine_val);
	__uint(max_entries, 16384);
} goroutines SEC(".maps");

// Zeroed scratch for first inserts: wait_val is too large to build on the stack
// comfortably.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct wait_val);
	__uint(max_entries, 1);
} zero_wait SEC(".maps");

// Entry of a semacquire function; the cookie's value is the mutex kind.
SEC("uprobe")
int sema_acquire(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));
	if (will_grow_stack(ctx, cookie))
		return 0;

	u64 g = GO_G(ctx);
	struct wait_start ws = {
		.start_ns = bpf_ktime_get_ns(),
		.sema = GO_ARG1(ctx),
		.caller = return_address(ctx),
		.stackid = user_stack(ctx),
		.kind = COOKIE_VALUE(cookie),
	};
	if (bpf_map_update_elem(&inflight, &g, &ws, BPF_ANY))
		count(&stats, STAT_INFLIGHT_FULL);
	return 0;
}

// A RET of a semacquire function: the goroutine has the semaphore.
SEC("uprobe")
int sema_acquired(struct pt_regs *ctx)
{
	count(&hits, COOKIE_PROBE(bpf_get_attach_cookie(ctx)));

	u64 g = GO_G(ctx);
	struct wait_start *ws = bpf_map_lookup_elem(&inflight, &g);
	if (!ws)
		return 0; // parked before we attached
	// The wait is the time parked, as Go's own metrics and profiles count it;
	// the time from being readied to running is scheduling delay, kept apart.
	u64 now = bpf_ktime_get_ns();
	u64 woken = ws->woken_ns ? ws->woken_ns : now;
	u64 delta = woken - ws->start_ns;
	u64 sched = now - woken;
	struct wait_key key = {
		.sema = ws->sema,
		.caller = ws->caller,
		.stackid = ws->stackid,
		.kind = ws->kind,
	};
	bpf_map_delete_elem(&inflight, &g);

	struct wait_val *v = bpf_map_lookup_elem(&waits, &key);
	if (!v) {
		u32 zero = 0;
		struct wait_val *z = bpf_map_lookup_elem(&zero_wait, &zero);
		if (!z)
			return 0;
		// A racing CPU may have inserted it first: NOEXIST then fails, and the
		// lookup below finds theirs.
		bpf_map_update_elem(&waits, &key, z, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&waits, &key);
		if (!v) {
			count(&stats, STAT_AGG_FULL);
			return 0;
		}
	}
	// Per-CPU, but a preempted program can share the CPU with another: add
	// atomically. A lost max under that race is harmless.
	__sync_fetch_and_add(&v->count, 1);
	__sync_fetch_and_add(&v->total_ns, delta);
	__sync_fetch_and_add(&v->sched_ns, sched);
	if (delta > v->max_ns)
		v->max_ns = delta;
	u32 b = log2_u64(delta);
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	__sync_fetch_and_add(&v->hist[b], 1);

	s64 goid = goid_of(g);
	struct goroutine_val *gv = bpf_map_lookup_elem(&goroutines, &goid);
	if (gv) {
		__sync_fetch_and_add(&gv->count, 1);
		__sync_fetch_and_add(&gv->total_ns, delta);
	} else {
		struct goroutine_val nv = {.count = 1, .total_ns = delta};
		bpf_map_update_elem(&goroutines, &goid, &nv, BPF_NOEXIST);
	}
	return 0;
}

// Entry of runtime.readyWithTime(s *sudog, …): a releaser makes the
// goroutine s.g (the sudog's first word) runnable.
SEC("uprobe")
int sema_ready(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));
	if (will_grow_stack(ctx, cookie))
		return 0;

	u64 g = 0;
	bpf_probe_read_user(&g, sizeof(g), (void *)GO_ARG1(ctx));
	struct wait_start *ws = bpf_map_lookup_elem(&inflight, &g);
	if (ws && !ws->woken_ns)
		ws->woken_ns = bpf_ktime_get_ns();
	return 0;
}

// Entry of runtime_Semrelease: the holder hands the semaphore to waiters.
SEC("uprobe")
int sema_release(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));
	if (will_grow_stack(ctx, cookie))
		return 0;

	struct release_key key = {
		.sema = GO_ARG1(ctx),
		.caller = return_address(ctx),
		.stackid = user_stack(ctx),
	};
	u64 *n = bpf_map_lookup_elem(&releases, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
	} else {
		u64 one = 1;
		if (bpf_map_update_elem(&releases, &key, &one, BPF_NOEXIST))
			count(&stats, STAT_AGG_FULL);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
