// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
// Shared by maptrace's BPF programs: the Go register ABI on amd64 and arm64,
// goroutine identity and the stack map.
#pragma once

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef __u8 u8;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __s64 s64;

#if defined(__TARGET_ARCH_x86)

// The uprobe context on x86_64: the kernel's struct pt_regs. Written out here
// so the programs need neither kernel headers nor vmlinux.h.
struct pt_regs {
	u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

// Go's internal ABI on amd64: the current g lives in R14 and integer
// arguments go in AX, BX, CX, DI, SI, R8, R9, R10, R11.
#define GO_G(ctx) ((ctx)->r14)
#define GO_ARG1(ctx) ((ctx)->ax)
#define GO_ARG2(ctx) ((ctx)->bx)
#define GO_ARG3(ctx) ((ctx)->cx)
#define GO_ARG4(ctx) ((ctx)->di)
#define GO_ARG5(ctx) ((ctx)->si)

#define PT_IP(ctx) ((ctx)->ip)
#define PT_SP(ctx) ((ctx)->sp)
#define PT_FP(ctx) ((ctx)->bp)
// No link register: a call pushes the return address on the stack.
#define PT_LR(ctx) 0
// CPL 3 in the code segment selector.
#define PT_USER_MODE(ctx) (((ctx)->cs & 3) == 3)

#elif defined(__TARGET_ARCH_arm64)

// The uprobe context on arm64: the kernel's struct pt_regs starts with
// struct user_pt_regs, which is all the programs read.
struct pt_regs {
	u64 regs[31]; // x0..x30; x29 is the frame pointer, x30 the link register
	u64 sp, pc, pstate;
};

// Go's internal ABI on arm64: the current g lives in R28 and integer
// arguments go in R0 to R15.
#define GO_G(ctx) ((ctx)->regs[28])
#define GO_ARG1(ctx) ((ctx)->regs[0])
#define GO_ARG2(ctx) ((ctx)->regs[1])
#define GO_ARG3(ctx) ((ctx)->regs[2])
#define GO_ARG4(ctx) ((ctx)->regs[3])
#define GO_ARG5(ctx) ((ctx)->regs[4])

#define PT_IP(ctx) ((ctx)->pc)
#define PT_SP(ctx) ((ctx)->sp)
#define PT_FP(ctx) ((ctx)->regs[29])
#define PT_LR(ctx) ((ctx)->regs[30])
// PSR_MODE_EL0t: the low four bits of PSTATE are the exception level and
// stack pointer choice, all zero in user mode.
#define PT_USER_MODE(ctx) (((ctx)->pstate & 0xf) == 0)

#else
#error "maptrace's BPF programs are for x86 and arm64 (bpf2go -target amd64,arm64)"
#endif

#define MAX_STACK_DEPTH 64

// Set at load time: offset of goid in runtime.g for the target's Go version.
volatile const u64 goid_offset;

static __always_inline s64 goid_of(u64 g)
{
	s64 id = 0;
	bpf_probe_read_user(&id, sizeof(id), (void *)(g + goid_offset));
	return id;
}

// Entry probes sit before the function saves its return address into the
// direct caller (on amd64 the word at SP, on arm64 the link register), which
// the kernel's frame-pointer walk skips: the function has no frame yet.
static __always_inline u64 return_address(struct pt_regs *ctx)
{
#if defined(__TARGET_ARCH_arm64)
	return PT_LR(ctx);
#else
	u64 ra = 0;
	bpf_probe_read_user(&ra, sizeof(ra), (void *)ctx->sp);
	return ra;
#endif
}

// Probe cookies carry the probe's index (for hit counting) in bits 8..15 and a
// program-specific value in bits 0..7; bits 32..47 carry an offset from the
// frame pointer where a program needs one (COOKIE_SLOT).
#define COOKIE_VALUE(c) ((u32)((c) & 0xff))
#define COOKIE_PROBE(c) ((u32)(((c) >> 8) & 0xff))
#define COOKIE_SLOT(c) ((u32)(((c) >> 32) & 0xffff))
#define MAX_PROBES 256
#define COOKIE_AT_BRANCH (1ULL << 16)

// An entry probe on the stack check's conditional jump sees the compare's
// flags: when the jump will be taken, morestack grows the stack and re-runs
// the function from its start, where the probe fires again. Only that second
// hit counts. On amd64 the probe is there before Go 1.21 (which opens frames
// with a single-stepped SUBQ) and the jump is JBE (CF or ZF set); on arm64
// always, since every frame opens with a single-stepped store, and the jump
// is B.LS (C clear or Z set).
#if defined(__TARGET_ARCH_arm64)
#define ARM64_Z (1ULL << 30)
#define ARM64_C (1ULL << 29)
static __always_inline int will_grow_stack(struct pt_regs *ctx, u64 cookie)
{
	return (cookie & COOKIE_AT_BRANCH) && (!(ctx->pstate & ARM64_C) || (ctx->pstate & ARM64_Z));
}
#else
#define X86_CF (1 << 0)
#define X86_ZF (1 << 6)
static __always_inline int will_grow_stack(struct pt_regs *ctx, u64 cookie)
{
	return (cookie & COOKIE_AT_BRANCH) && (ctx->flags & (X86_CF | X86_ZF));
}
#endif

// Error counters, indexed by the STAT_* constants.
enum {
	STAT_STACK_LOST = 0,
	STAT_INFLIGHT_FULL = 1,
	STAT_AGG_FULL = 2,
	STAT_KEYS_FULL = 3, // map-key operations not counted per key: the key table was full
	STAT_MAX = 8,
};

// Every program's collection has these: user stacks, a hit counter per probe
// (the overhead estimate) and error counters (STAT_*).
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(u64));
	__uint(max_entries, 32768);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, MAX_PROBES);
} hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

static __always_inline void count(void *map, u32 idx)
{
	u64 *v = bpf_map_lookup_elem(map, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

// What a program costs in the target it probes, sampled: one run in
// PROG_TIME_EVERY on each CPU is timed, into its program's slot. maptrace
// charges each probe its trap (calibrated) plus its program's time here, not
// one program's cost for all: a mutex probe that walks a deep stack costs
// several times a map probe, and a map probe's tables miss the cache in a
// busy target as they never do in a calibration loop.
#define PROG_TIME_EVERY 16
#define PROG_TIME_SLOTS 4

struct prog_time {
	u64 seen; // runs on this CPU, timed or not (a lost count is harmless)
	u64 runs; // timed runs
	u64 ns;   // their time
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct prog_time);
	__uint(max_entries, PROG_TIME_SLOTS);
} prog_time SEC(".maps");

// time_start returns the start of a run to time, or 0 for one not timed.
static __always_inline u64 time_start(u32 slot)
{
	struct prog_time *t = bpf_map_lookup_elem(&prog_time, &slot);
	if (!t || (t->seen++ % PROG_TIME_EVERY) != 0)
		return 0;
	return bpf_ktime_get_ns();
}

static __always_inline void time_end(u32 slot, u64 start)
{
	if (!start)
		return;
	u64 ns = bpf_ktime_get_ns() - start;
	struct prog_time *t = bpf_map_lookup_elem(&prog_time, &slot);
	if (t) { // atomically, as the error counters: a preempted run may share the CPU
		__sync_fetch_and_add(&t->runs, 1);
		__sync_fetch_and_add(&t->ns, ns);
	}
}

// lookup_or_init returns key's value in a hash map, inserting a copy of init
// first if the key is new; 0, counted as STAT_AGG_FULL, when the map is full.
// LRU maps never need it: an insert into a full one evicts an entry instead.
static __always_inline void *lookup_or_init(void *map, void *key, void *init)
{
	void *v = bpf_map_lookup_elem(map, key);
	if (v)
		return v;
	// NOEXIST: another CPU may insert the key first; the lookup finds theirs.
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	v = bpf_map_lookup_elem(map, key);
	if (!v)
		count(&stats, STAT_AGG_FULL);
	return v;
}

// bump adds one to a u64 counter in a hash map: 1 if the key was there, 2
// if it was added, 0 when the map is full (the caller says what was lost).
static __always_inline int bump(void *map, void *key)
{
	u64 *n = bpf_map_lookup_elem(map, key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 1;
	}
	u64 one = 1;
	if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) == 0)
		return 2;
	n = bpf_map_lookup_elem(map, key); // another CPU inserted it first
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 1;
	}
	return 0;
}

// user_stack walks the user stack by frame pointers into stacks.
static __always_inline s64 user_stack(struct pt_regs *ctx)
{
	s64 id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	if (id < 0)
		count(&stats, STAT_STACK_LOST);
	return id;
}

static __always_inline u32 log2_u64(u64 v)
{
	u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}
