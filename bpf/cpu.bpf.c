//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
// CPU-clock samples of the targets: how many, how many in user mode, and
// which of those are inside a Go map operation, counted by the operation's
// call site. It costs nothing per map operation, unlike the map probes. One
// program samples every target of a maptrace process (the agent's many):
// userspace adds a target's pid to the targets table, and its binary's map
// code to step_tables.
#include "common.h"

// What a target's counters count.
enum sample_count {
	SAMPLES_TOTAL = 0,     // the target was on a CPU, user or kernel mode
	SAMPLES_USER = 1,      // ... in user mode
	SAMPLES_MAP = 2,       // ... inside a map operation
	SAMPLES_NO_CALLER = 3, // ... in map code, but the stack ends before its caller
	LOST_STACK = 4,        // a map sample whose walk ended at a frame it could not read
	LOST_SITES = 5,        // a map sample whose site did not fit map_cpu_sites
	SAMPLES_RESUME = 6,    // ... in user mode, where a probe resumes
	SAMPLES_TRAP = 7,      // ... in kernel mode, entered at a probe (its trap)
	SAMPLES_MUTEX_PROBE = 8, // ... of SAMPLES_RESUME and SAMPLES_TRAP, the mutex probes'
	SAMPLES_NS = 9,          // nanoseconds this program ran on the target's samples
	SAMPLES_MAX = 10,
};

// What a stretch of the target's code is.
enum code_kind {
	CODE_OTHER = 0,
	CODE_MAP_WORK = 1,  // does a map operation's work (hashing, growth): counts only under an entry
	CODE_MAP_ENTRY = 2, // a map function the compiler calls (runtime.mapaccess1, ...)
	// Where a probe resumes (the instruction after an entry probe, a probed
	// call's callee): a clock interrupt that comes while the kernel returns
	// from the probe, with interrupts off, is taken there, in user mode.
	// The probe's time, not the target's.
	CODE_PROBE_RESUME = 3,
	// Where the target's registers point while the kernel runs a probe,
	// when that is not where it resumes: the byte after an amd64 int3 in a
	// longer instruction, an arm64 probe's own instruction. Only kernel-mode
	// samples look it up.
	CODE_PROBE_TRAP = 4,
	// The same two for the mutex probes, whose time the governor weighs on
	// its own: they stay attached while the map probes come and go.
	CODE_MUTEX_RESUME = 5,
	CODE_MUTEX_TRAP = 6,
};

// A stretch of code up to end (from the previous step's end): its kind and,
// for map code, where the return address is when a sample lands in it.
struct step {
	u64 end;
	enum code_kind kind;
	s32 sp_delta;  // the return address is at SP+sp_delta; -1: unknown; RET_IN_LR
};

// The return address is in the link register: arm64 keeps it there until
// the function's prologue saves it, and again once its epilogue restores it.
#define RET_IN_LR -2

// A binary's steps cover the address space in ascending order, in file
// addresses; the last one ends at STEP_END, so every search finds one.
#define STEP_BITS 12
#define MAX_STEPS (1 << STEP_BITS)
#define STEP_END (1ULL << 62)
struct steps {
	struct step s[MAX_STEPS];
};

// One step table per binary, shared by its processes: allocated as added.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u32);
	__type(value, struct steps);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} step_tables SEC(".maps");

// A target: its binary's table, where that binary is loaded, and its
// counters, per CPU so that a sample on one CPU does not wait for another.
struct target {
	u64 bias;  // runtime address - file address
	u32 table; // step_tables key
	enum sample_count unused; // typed so that n's indexes reach userspace
	u64 n[SAMPLES_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, u32); // tgid, as the initial PID namespace sees it
	__type(value, struct target);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} targets SEC(".maps");

#define MAX_FRAMES 32

// Samples per target and call site: the return address into the map
// operation's caller, the value the map probes record as a site's caller.
struct site {
	u32 tgid;
	u32 pad;
	u64 caller;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct site);
	__type(value, u64);
	__uint(max_entries, 16384);
} map_cpu_sites SEC(".maps");

struct frames {
	u64 pc[MAX_FRAMES];
};

// A frame's record where its frame pointer points, on amd64 and arm64 alike.
struct frame_record {
	u64 next; // the caller's frame pointer
	u64 ret;  // the return address into the caller
};

// Scratch for the stack: too large to keep on the BPF stack beside the rest.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct frames);
	__uint(max_entries, 1);
} frames_scratch SEC(".maps");

// The perf_event program's context (struct bpf_perf_event_data), written out
// with common.h's pt_regs so that no kernel header is needed.
struct perf_event_ctx {
	struct pt_regs regs;
	u64 sample_period;
	u64 addr;
};

// find returns the step holding runtime address pc: the first that ends
// above its file address. The search has no branches, so the verifier walks
// it once instead of once per path.
static __always_inline const struct step *find(const struct steps *tab, u64 pc, u64 bias)
{
	// A user address below the binary wraps around to above 2^63: every
	// comparison below then says it comes first, and the first step is the
	// gap before any map code.
	u64 rel = pc - bias;
	u32 i = 0;
#pragma unroll
	for (u32 half = MAX_STEPS / 2; half > 0; half >>= 1) {
		u64 end = tab->s[(i + half - 1) & (MAX_STEPS - 1)].end;
		// Both are below 2^62: the sign of rel-end says end <= rel.
		u64 below = 1 - ((rel - end) >> 63);
		i += half * below;
	}
	return &tab->s[i & (MAX_STEPS - 1)];
}

// top_bit is the index of v's highest set bit, for 0 < v < 2^32, without a
// branch: each step's sign bit says whether v is above a power of two.
static __always_inline u32 top_bit(u64 v)
{
	u64 r = 0, s;
	s = ((0xffffULL - v) >> 63) << 4;
	v >>= s;
	r += s;
	s = ((0xffULL - v) >> 63) << 3;
	v >>= s;
	r += s;
	s = ((0xfULL - v) >> 63) << 2;
	v >>= s;
	r += s;
	s = ((0x3ULL - v) >> 63) << 1;
	v >>= s;
	r += s;
	return r + ((0x1ULL - v) >> 63);
}

static __always_inline int bump_site(u32 tgid, u64 caller)
{
	struct site key = {.tgid = tgid, .caller = caller};
	u64 *n = bpf_map_lookup_elem(&map_cpu_sites, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 1;
	}
	u64 one = 1;
	if (bpf_map_update_elem(&map_cpu_sites, &key, &one, BPF_NOEXIST) == 0)
		return 1;
	n = bpf_map_lookup_elem(&map_cpu_sites, &key); // another CPU inserted it first
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 1;
	}
	return 0;
}

// sample counts one of target t's samples.
static __always_inline void sample(struct perf_event_ctx *ctx, struct target *t, u32 tgid)
{
	// Per CPU, and a sample never interrupts another on its CPU: no atomics.
	t->n[SAMPLES_TOTAL]++;
	u32 table = t->table;
	const struct steps *tab = bpf_map_lookup_elem(&step_tables, &table);
	u64 bias = t->bias;
	// Kernel mode includes the traps of maptrace's own probes, which are
	// never the target's map work. A trap is told by the user registers
	// it saved: the first frame of the user stack.
	if (!PT_USER_MODE(&ctx->regs)) {
		u64 uip = 0;
		if (!tab || bpf_get_stack(ctx, &uip, sizeof(uip), BPF_F_USER_STACK) <= 0)
			return;
		u32 k = find(tab, uip, bias)->kind;
		if (k >= CODE_PROBE_RESUME)
			t->n[SAMPLES_TRAP]++;
		if (k >= CODE_MUTEX_RESUME)
			t->n[SAMPLES_MUTEX_PROBE]++;
		return;
	}
	t->n[SAMPLES_USER]++;
	if (!tab)
		return;

	u64 ip = PT_IP(&ctx->regs);
	const struct step *leaf = find(tab, ip, bias);
	u32 kind = leaf->kind;
	if (kind == CODE_PROBE_RESUME || kind == CODE_MUTEX_RESUME) {
		t->n[SAMPLES_RESUME]++;
		t->n[SAMPLES_MUTEX_PROBE] += kind == CODE_MUTEX_RESUME;
		return;
	}
	// A trap's address in user mode is an instruction the probe is not on
	// at the time: a sliver of its function, left out.
	if (kind == CODE_OTHER || kind >= CODE_PROBE_TRAP)
		return; // most samples: no stack walk

	u32 zero = 0;
	struct frames *f = bpf_map_lookup_elem(&frames_scratch, &zero);
	if (!f)
		return;

	// The stack is walked here by frame pointers, one record of the saved
	// frame pointer and return address per frame, and only as far out as
	// the map code goes: bpf_get_stack reads every frame of the stack, in
	// two reads each, and reading user memory is most of what a sample
	// costs.
	struct frame_record fr = {};
	u64 fp = PT_FP(&ctx->regs);
	int have = fp && bpf_probe_read_user(&fr, sizeof(fr), (void *)fp) == 0;

	// The frame-pointer walk misses the leaf's caller when the leaf has no
	// frame of its own (the hash functions) or has not set it up yet: the
	// frame pointer is still the caller's, so the walk's first return
	// address is the caller's caller. The step says where the return
	// address really is; when the walk's first differs, the caller goes in
	// before it.
	u64 ret = 0;
	s32 delta = leaf->sp_delta;
	if (delta == RET_IN_LR)
		ret = PT_LR(&ctx->regs);
	else if (delta >= 0 && bpf_probe_read_user(&ret, sizeof(ret), (void *)(PT_SP(&ctx->regs) + (u64)delta)))
		ret = 0;
	u32 insert = ret && (!have || fr.ret != ret);

	// Walk out from the leaf while the frames are map code; the operation's
	// call site is the frame past the outermost map entry point. The walk
	// notes entry points as bits and stops at the first frame that is not
	// map code; keeping more state that forks on every frame (remember
	// this entry point) made the verifier walk over a million instructions,
	// past its limit before Linux 6.18's better pruning. Unrolled: as a
	// loop, clang may lay it out with its latch falling through into its
	// head, a back-edge Linux 6.1's verifier rejects.
	u64 kk = kind;
	u64 entries = (kk >> 1) & 1; // bit k: frame k is a map entry point
	u32 k;
#pragma unroll
	for (k = 1; k < MAX_FRAMES; k++) {
		u64 pc = ret;
		if (k > 1 || !insert) {
			if (!have && (!fp || bpf_probe_read_user(&fr, sizeof(fr), (void *)fp)))
				break;
			have = 0;
			pc = fr.ret;
			fp = fr.next;
		}
		f->pc[k & (MAX_FRAMES - 1)] = pc;
		kk = find(tab, pc - 1, bias)->kind; // a return address: look up its call
		entries |= ((kk >> 1) & 1) << k;
		if (kk == CODE_OTHER) {
			k++;
			break;
		}
	}
	// Frames 0 to k-1 are read; the leaf, frame 0, is ip. Unless the last
	// is not map code, the stack ends inside map code: at a frame that
	// could not be read, or past MAX_FRAMES.
	int ended = kk != CODE_OTHER;
	t->n[LOST_STACK] += ended && k < MAX_FRAMES;
	if (entries == 0) {
		if (ended)
			t->n[SAMPLES_NO_CALLER]++;
		return; // map work not under a map operation: hash/maphash's hashing, say
	}
	u32 outer = top_bit(entries);
	t->n[SAMPLES_MAP]++;
	u32 c = outer + 1;
	if (c >= k) {
		t->n[SAMPLES_NO_CALLER]++;
		return;
	}
	u64 caller = f->pc[c & (MAX_FRAMES - 1)];
	if (!bump_site(tgid, caller))
		t->n[LOST_SITES]++;
	return;
}

// cpu_sample counts a sample of a target, and the time it takes, which is
// part of what sampling costs the target.
SEC("perf_event")
int cpu_sample(struct perf_event_ctx *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct target *t = bpf_map_lookup_elem(&targets, &tgid);
	if (!t)
		return 0;
	u64 start = bpf_ktime_get_ns();
	sample(ctx, t, tgid);
	t->n[SAMPLES_NS] += bpf_ktime_get_ns() - start;
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
