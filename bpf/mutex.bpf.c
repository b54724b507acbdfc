//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
// Mutex contention: how long goroutines park in the sync semaphores, and who
// wakes them. Two probes per park, both on CALLs (instructions the kernel
// emulates) and both off the lock's fast path, so their rate is the rate of
// parks: the park (runtime.semacquire1 calling gopark) and the wake-up
// (runtime.semrelease1 calling readyWithTime). Probes on the sync wrappers'
// entries and on runtime_Semrelease fire for every acquire and release,
// parked or not: 7× the hits in nats-server.
#include "common.h"

#define HIST_BUCKETS 40

struct wait_start {
	u64 start_ns;
	u64 sema;
	s64 stackid;
	u32 kind;
	u32 _pad;
};

struct wait_key {
	u64 sema;
	s64 stackid;
	u32 kind;
	u32 _pad;
};

struct wait_val {
	u64 count;
	u64 total_ns; // parked: from the park to being made runnable
	u64 max_ns;
	u64 hist[HIST_BUCKETS];
};

// A hand-off: the releaser's stack at the wake-up of a waiter.
struct release_key {
	u64 sema;
	s64 stackid;
};

struct goroutine_val {
	u64 count;
	u64 total_ns;
};

// Parked goroutines, keyed by the g pointer: a parked goroutine may resume
// on another thread, so thread ids would mismatch. A goroutine parks on one
// semaphore at a time, so semrelease1 waking it ends the park recorded here,
// and deletes it; a park that is not a sync mutex's deletes it too, so an
// entry whose wake-up was missed cannot match a later one. An LRU: an
// insert evicts the longest-parked goroutine rather than fail, and 65536
// goroutines parked on sync mutexes at once is far beyond real programs.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
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

// The goroutines that waited on each semaphore, to count them.
struct waiter_key {
	u64 sema;
	s64 goid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct waiter_key);
	__type(value, u8);
	__uint(max_entries, 16384);
} waiter_goids SEC(".maps");

// The innermost frames of a stack: the probed instruction and
// STACK_KEY_DEPTH-1 frame-pointer links.
#define STACK_KEY_DEPTH 8
struct stack_key {
	u64 pc[STACK_KEY_DEPTH];
};

// Stack ids by their innermost frames. The kernel's walk of a whole Go stack
// costs ~1.5 µs in a busy server, twice what reading a few frames and one
// lookup here cost; stacks that share their innermost frames share the
// first one's walk. An LRU: when full, a stack is walked again, nothing lost.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct stack_key);
	__type(value, s64);
	__uint(max_entries, 16384);
} stack_cache SEC(".maps");

// cached_stack is user_stack, walked once per distinct innermost frames.
// Both probes sit inside a function whose frame is set up, so BP starts the
// walk at their caller.
static __always_inline s64 cached_stack(struct pt_regs *ctx)
{
	struct stack_key k = {};
	k.pc[0] = PT_IP(ctx);
	u64 fp = PT_FP(ctx);
#pragma unroll
	for (int i = 1; i < STACK_KEY_DEPTH; i++) {
		u64 frame[2]; // saved BP, return address
		if (!fp || bpf_probe_read_user(frame, sizeof(frame), (void *)fp))
			break;
		k.pc[i] = frame[1];
		fp = frame[0];
	}
	s64 *id = bpf_map_lookup_elem(&stack_cache, &k);
	if (id)
		return *id;
	s64 nid = user_stack(ctx);
	if (nid >= 0)
		bpf_map_update_elem(&stack_cache, &k, &nid, BPF_ANY);
	return nid;
}

// Zeroed scratch for first inserts: wait_val is too large to build on the stack
// comfortably.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct wait_val);
	__uint(max_entries, 1);
} zero_wait SEC(".maps");

// The sync wrappers that call semacquire1 (sync.runtime_SemacquireMutex …),
// by the distance from the park probe to their return address, which is the
// same in the file and in memory, PIE or not; the value is the mutex kind.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, s64);
	__type(value, u32);
	__uint(max_entries, 16);
} park_callers SEC(".maps");

// prog_time's slots.
#define PROG_TIME_PARK 0
#define PROG_TIME_READY 1

// semacquire1's call of gopark: the goroutine queued on the semaphore and
// parks. The semaphore, semacquire1's first argument, is in its spill slot
// above the frame, COOKIE_SLOT bytes above the frame pointer (the plan checks
// that semacquire1 spills it).
static __always_inline int sema_park_run(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));

	u64 g = GO_G(ctx);
	u64 frame[2] = {}; // saved frame pointer, return address into the caller
	u64 fp = PT_FP(ctx);
	bpf_probe_read_user(frame, sizeof(frame), (void *)fp);
	u64 sema = 0;
	bpf_probe_read_user(&sema, sizeof(sema), (void *)(fp + COOKIE_SLOT(cookie)));
	s64 dist = (s64)(frame[1] - PT_IP(ctx));
	u32 *kind = bpf_map_lookup_elem(&park_callers, &dist);
	if (!kind) {
		bpf_map_delete_elem(&inflight, &g); // not a sync mutex
		return 0;
	}
	struct wait_start ws = {
		.start_ns = bpf_ktime_get_ns(),
		.sema = sema,
		.stackid = cached_stack(ctx),
		.kind = *kind,
	};
	if (bpf_map_update_elem(&inflight, &g, &ws, BPF_ANY))
		count(&stats, STAT_INFLIGHT_FULL);
	return 0;
}

SEC("uprobe")
int sema_park(struct pt_regs *ctx)
{
	u64 start = time_start(PROG_TIME_PARK);
	int ret = sema_park_run(ctx);
	time_end(PROG_TIME_PARK, start);
	return ret;
}

// semrelease1's call of readyWithTime(s *sudog, …): a releaser makes the
// goroutine s.g (the sudog's first word) runnable. That ends the wait as Go's own
// metrics and profiles count it: time parked, not the scheduling delay after.
static __always_inline int sema_ready_run(struct pt_regs *ctx)
{
	count(&hits, COOKIE_PROBE(bpf_get_attach_cookie(ctx)));

	u64 now = bpf_ktime_get_ns();
	u64 g = 0;
	bpf_probe_read_user(&g, sizeof(g), (void *)GO_ARG1(ctx));
	struct wait_start *ws = bpf_map_lookup_elem(&inflight, &g);
	if (!ws)
		return 0; // parked before we attached, or not on a sync mutex
	u64 sema = ws->sema;
	u64 delta = now - ws->start_ns;
	struct wait_key key = {
		.sema = sema,
		.stackid = ws->stackid,
		.kind = ws->kind,
	};
	bpf_map_delete_elem(&inflight, &g);

	u32 zero = 0;
	struct wait_val *z = bpf_map_lookup_elem(&zero_wait, &zero);
	if (!z)
		return 0;
	struct wait_val *v = lookup_or_init(&waits, &key, z);
	if (!v)
		return 0;
	// Per-CPU, but a preempted program can share the CPU with another: add
	// atomically. A lost max under that race is harmless.
	__sync_fetch_and_add(&v->count, 1);
	__sync_fetch_and_add(&v->total_ns, delta);
	if (delta > v->max_ns)
		v->max_ns = delta;
	u32 b = log2_u64(delta);
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	__sync_fetch_and_add(&v->hist[b], 1);

	// The hand-off, on the releaser's stack: who held what they waited for.
	struct release_key rk = {.sema = sema, .stackid = cached_stack(ctx)};
	if (!bump(&releases, &rk))
		count(&stats, STAT_AGG_FULL);

	s64 goid = goid_of(g);
	struct waiter_key wk = {.sema = sema, .goid = goid};
	u8 one = 1;
	lookup_or_init(&waiter_goids, &wk, &one);
	struct goroutine_val gz = {};
	struct goroutine_val *gv = lookup_or_init(&goroutines, &goid, &gz);
	if (gv) {
		__sync_fetch_and_add(&gv->count, 1);
		__sync_fetch_and_add(&gv->total_ns, delta);
	}
	return 0;
}

SEC("uprobe")
int sema_ready(struct pt_regs *ctx)
{
	u64 start = time_start(PROG_TIME_READY);
	int ret = sema_ready_run(ctx);
	time_end(PROG_TIME_READY, start);
	return ret;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
