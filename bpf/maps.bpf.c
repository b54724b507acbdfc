//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
// Map operations: counts per map, call site, goroutine and key, and races.
// Only entry probes: a RET probe is single-stepped, ~30× the cost of the
// emulated instruction an entry probe sits on. A race is found the way the
// runtime finds it: the map's writing flag is set when another goroutine
// enters.
#include "common.h"

// Operations (low 3 bits of a cookie's value).
enum {
	OP_READ = 1,
	OP_WRITE = 2,
	OP_DELETE = 3,
	OP_ITERATE = 4,  // mapiterinit / mapIterStart: one per range loop
	OP_ITERNEXT = 5, // mapiternext / mapIterNext: checked for races only
	// sync.Map's slow paths up to Go 1.23, counted per class only:
	OP_MISS = 6,     // sync.(*Map).missLocked: a key found only in the dirty map
	OP_DIRTY = 7,    // sync.(*Map).dirtyLocked: a new key may copy the read map
};

// How the key is passed (bits 3..5 of a cookie's value).
enum {
	KEY_NONE = 0,
	KEY_U32 = 1,     // _fast32: the value in CX
	KEY_U64 = 2,     // _fast64: the value in CX
	KEY_STR = 3,     // _faststr: pointer CX, length DI
	KEY_PTR = 4,     // generic: CX points at the key; its type says what it is
	KEY_U64PTR = 5,  // _fast64ptr: a pointer value in CX
	KEY_IFACE = 6,   // sync.Map: an `any`, type and data words in the two registers after the receiver
};

// Flags of a cookie's value (bits 6, 7).
enum {
	// SYNC_MAP: the function is a sync.Map operation. Its receiver (AX) is
	// the map; it has no writing flag to check for races, being safe for
	// concurrent use.
	SYNC_MAP = 1 << 6,
	// DICT: a generic method's shape dictionary comes after the receiver
	// (BX), so the key comes one register later (CX, DI).
	DICT = 1 << 7,
};

// The class type of sync.Maps on the heap: no Go map type is passed to
// their methods, and 1 is no type descriptor's address. A global sync.Map
// (between data_lo and data_hi) is a class of its own, of type its address
// with SYNC_MAP_GLOBAL set: one site may be the first to use many of them.
#define SYNC_MAP_TYPE 1
#define SYNC_MAP_GLOBAL (1ULL << 63)

// Key kinds reported to user space.
enum {
	KIND_OTHER = 0,
	KIND_INT = 1,
	KIND_UINT = 2,
	KIND_STRING = 3,
	KIND_POINTER = 4,
};

#define KEY_BYTES 64

// Go's layout facts for the target's version, set at load time.
volatile const u64 map_flags_offset;  // hmap.flags (8) or maps.Map.writing (34)
volatile const u64 map_seed_offset;   // hmap.hash0 (12) or maps.Map.seed (8): new per map and per clear
volatile const u8 map_writing_mask;   // hashWriting (4) or 1
volatile const u64 iter_map_offset;   // hiter.h / maps.Iter.m
volatile const u64 panic_arg_offset;  // _panic.arg: 8 up to Go 1.25, 0 from 1.26
volatile const u8 collect_keys;       // --keys none turns key reading off
volatile const u64 data_lo, data_hi;  // the target's package-level variables
// sync.Map's fields up to Go 1.23 (0: not known): Map.read (a pointer to a
// readOnly), Map.dirty, Map.misses, readOnly.amended.
volatile const u64 sync_read_offset;
volatile const u64 sync_dirty_offset;
volatile const u64 sync_misses_offset;
volatile const u64 sync_amended_offset;

// A map class: the map's Go type (its maptype descriptor) and the return
// address of the first operation seen on it. Short-lived heap maps of one
// kind share a class, so the tables below grow with the code, not with the
// number of maps; a named global usually is a class of its own.
struct class_key {
	u64 type;
	u64 site;
};

struct map_key {
	struct class_key class;
	u8 data[KEY_BYTES];
	u32 len; // the key's length (strings) or size
	u8 kind;
	u8 _pad[3];
};

struct class_stat {
	u64 ops[6]; // by OP_*
	u64 other_keys;  // keyed operations the key table had no room for
	u64 maps;        // distinct maps seen in the class
	u64 interleaved; // writes by A, then B, then A again on one map, within INTERLEAVE_NS
	u64 misses;       // sync.Map: keys found only in the dirty map (OP_MISS)
	u64 promotions;   // sync.Map: the dirty map made the read map
	u64 dirty_copies; // sync.Map: the read map copied into a new dirty map
	u64 hops;         // operations by a goroutine whose last one on a map of this type was on another map
	u64 publishes;    // maps of the class stored into an atomic.Pointer or atomic.Value (snapshots)
	u64 published;    // their entries when stored
	u32 key_kind;
	u32 key_size;
};

// The class of each map seen, its hash seed when first seen (a map made at
// a freed map's address, or cleared, has another) and its operations: the
// shards of a sharded map are told apart by these.
struct map_info {
	struct class_key class;
	u64 ops;
	u32 seed;
	u32 _pad;
};

// A goroutine's last map of a Go type, to count its hops between maps of
// that type: a sharded map's users hop between its shards, key by key.
struct last_map_key {
	s64 goid;
	u64 type;
};

struct site_key {
	struct class_key class;
	u64 caller;
	u32 op;
	u32 _pad;
};

// A call site's count and the stack of its first call: walking the stack
// is most of a hit's cost, so it is done once per site, not per call.
struct site_val {
	u64 count;
	s64 stackid;
};

struct goroutine_key {
	s64 goid;
	struct class_key class;
};

struct goroutine_stat {
	u64 ops;
	u64 writes;
};

struct gkey_key {
	s64 goid;
	struct map_key key;
};

struct writer {
	u64 ns;
	u64 caller;
	s64 goid;
	s64 stackid;
	u32 op;
	u32 _pad;
};

struct race_key {
	u64 map;
	u64 caller;      // this side's direct caller
	u64 other_caller;
	s64 stackid;
	s64 other_stackid;
	u32 op;          // this side's op
	u32 other_op;    // always a write
};

struct race_val {
	u64 count;
	s64 goid;
	s64 other_goid;
};

// Interleaved writes: goroutine A wrote a map, B wrote it, and A wrote it
// again, all within INTERLEAVE_NS. A map handed from one goroutine to
// another never does this; a map shared by writers does.
struct interleave_key {
	struct class_key class;
	u64 caller;       // A's second write
	u64 other_caller; // B's write in between
};

struct interleave_val {
	u64 count;
	s64 stackid;
	s64 other_stackid;
	s64 goid;
	s64 other_goid;
};

struct fatal_info {
	s64 goid;
	s64 stackid;
	u64 caller;
	u64 map;     // the map this goroutine last touched, when it was this one
	u32 map_op;
	u32 len;
	u64 panic_type; // a panic's value's type descriptor; 0 for a fatal error
	u64 panic_data; // its data pointer
	u64 panic_word[2]; // the 16 bytes there: a number's value, or a string's header
	char msg[64];
};

struct last_op {
	u64 map;
	u32 op;
	u32 _pad;
};

// An LRU, so that churning heap maps recycle it; an LRU insert evicts rather
// than fails, so this and the other LRU tables below lose nothing countable.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, u64);
	__type(value, struct map_info);
	__uint(max_entries, 65536);
} map_classes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct last_map_key);
	__type(value, u64);
	__uint(max_entries, 16384);
} last_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct class_key);
	__type(value, struct class_stat);
	__uint(max_entries, 4096);
} class_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct site_key);
	__type(value, struct site_val);
	__uint(max_entries, 16384);
} sites SEC(".maps");

// Key counts, in two tables: the probes count into the one keys_side names
// while user space drains the other — reads and deletes all of it, every
// ~250ms — into a bounded summary per class, so that a key that becomes hot
// late in a map of many keys is still found. A table filled before its drain
// counts the rest as the class's other_keys and as STAT_KEYS_FULL.
#define KEY_TABLE_SIZE 65536

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct map_key);
	__type(value, u64);
	__uint(max_entries, KEY_TABLE_SIZE);
} keys_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct map_key);
	__type(value, u64);
	__uint(max_entries, KEY_TABLE_SIZE);
} keys_b SEC(".maps");

// 0: the probes count keys into keys_a, 1: into keys_b. Flipped by user space.
volatile u32 keys_side;
// Keys added to each table since its last drain: user space, which reads
// them for free (they are memory-mapped), drains a table early once it is
// half full, so that it fills only at rates far beyond one drain interval's.
volatile u64 keys_added_a;
volatile u64 keys_added_b;

// Per goroutine: LRU, since goroutines come and go; the busy ones stay (and
// goroutine_keys's least used keys give way to new ones).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct goroutine_key);
	__type(value, struct goroutine_stat);
	__uint(max_entries, 16384);
} goroutines SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct gkey_key);
	__type(value, u64);
	__uint(max_entries, 16384);
} goroutine_keys SEC(".maps");

// The last writes of each map, one slot per goroutine (by its goid's low
// bits): two racing writers enter their probes at once, and a shared
// "last writer" field would keep whichever stored last, often the goroutine
// the runtime kills, not the one it raced with.
#define WRITER_SLOTS 4

struct writers {
	struct writer w[WRITER_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, u64);
	__type(value, struct writers);
	__uint(max_entries, 16384);
} writers SEC(".maps");

static const struct writers no_writers; // a new map's: too big for the stack

// latest_other is the latest write in ws not by goroutine goid, after
// since; 0 if none.
static __always_inline struct writer *latest_other(struct writers *ws, s64 goid, u64 since)
{
	struct writer *o = 0;
	for (int i = 0; i < WRITER_SLOTS; i++) {
		struct writer *w = &ws->w[i];
		if (w->ns > since && w->goid != goid && (!o || w->ns > o->ns))
			o = w;
	}
	return o;
}

// other_writer is the most recent writer of m that is not goroutine goid.
static __always_inline struct writer *other_writer(u64 m, s64 goid)
{
	struct writers *ws = bpf_map_lookup_elem(&writers, &m);
	if (!ws)
		return 0;
	return latest_other(ws, goid, 0);
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct race_key);
	__type(value, struct race_val);
	__uint(max_entries, 1024);
} races SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct interleave_key);
	__type(value, struct interleave_val);
	__uint(max_entries, 1024);
} interleaves SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, struct fatal_info);
	__uint(max_entries, 1);
} fatal SEC(".maps");

// The map each goroutine last entered, for fatal_enter to name the map a
// goroutine died in.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, s64);
	__type(value, struct last_op);
	__uint(max_entries, 16384);
} last_ops SEC(".maps");

// Scratch for building a key: too large for the BPF stack beside the rest.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct gkey_key);
	__uint(max_entries, 1);
} scratch SEC(".maps");

// Go's _type: size at 0, tflag at 20, kind at 23 (low 5 bits); a map type's key type at 48.
#define TYPE_SIZE_OFF 0
#define TYPE_TFLAG_OFF 20
#define TYPE_KIND_OFF 23
#define MAPTYPE_KEY_OFF 48
#define GO_KIND_MASK 0x1f
#define GO_KIND_STRING 24
#define GO_KIND_STRUCT 25
// A struct type's fields, a slice of {name, type, offset}, at 56.
#define STRUCTTYPE_FIELDS_OFF 56
#define STRUCT_FIELD_SIZE 24
#define MAX_STRUCT_FIELDS 16
// A type stored in an interface's data word itself, not behind it: the kind
// byte's bit 5 up to Go 1.25, the tflag's bit 5 from Go 1.26 (unused before).
#define GO_DIRECT_IFACE 0x20

static __always_inline u8 go_kind_class(u8 k)
{
	if (k >= 2 && k <= 6) // Int, Int8 … Int64
		return KIND_INT;
	if (k >= 7 && k <= 12) // Uint … Uintptr
		return KIND_UINT;
	if (k == GO_KIND_STRING)
		return KIND_STRING;
	if (k == 22 || k == 26) // Pointer, UnsafePointer
		return KIND_POINTER;
	return KIND_OTHER;
}

// The strings in struct keys, by their text: a struct key holds only their
// headers, and a temporary key's strings are gone by the time the report is
// written, their memory reused (a stack's, at the same address, for the next
// call's key). So the probes read the text when a key is used, and put its
// hash in the key in place of its address: keys of equal text are one, and
// key_texts holds the text by hash and length.
#define KEY_TEXT 64
#define KEY_STRINGS 4

struct text_ref {
	u64 hash;
	u64 len;
};

struct text {
	u8 b[KEY_TEXT];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct text_ref);
	__type(value, struct text);
	__uint(max_entries, 16384);
} key_texts SEC(".maps");

// The offsets of a struct type's first KEY_STRINGS string fields within the
// key bytes copied, one a byte (0xff: none), by the type's address.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, u32);
	__uint(max_entries, 1024);
} key_strings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct text);
	__uint(max_entries, 1);
} text_scratch SEC(".maps");

// string_fields returns the string fields of struct type t, read from its
// descriptor the first time t is seen.
static __always_inline u32 string_fields(u64 t)
{
	u32 *known = bpf_map_lookup_elem(&key_strings, &t);
	if (known)
		return *known;
	u64 fields[2] = {}; // the slice's pointer and length
	bpf_probe_read_user(fields, sizeof(fields), (void *)(t + STRUCTTYPE_FIELDS_OFF));
	u32 offs = 0xffffffff, found = 0;
	for (int i = 0; i < MAX_STRUCT_FIELDS; i++) {
		if (i >= fields[1] || found >= KEY_STRINGS)
			break;
		u64 f[3] = {}; // name, type, offset
		u8 kind = 0;
		bpf_probe_read_user(f, sizeof(f), (void *)(fields[0] + i * STRUCT_FIELD_SIZE));
		bpf_probe_read_user(&kind, sizeof(kind), (void *)(f[1] + TYPE_KIND_OFF));
		if ((kind & GO_KIND_MASK) != GO_KIND_STRING || f[2] > KEY_BYTES - 16)
			continue;
		offs = (offs & ~(0xffu << (found * 8))) | (u32)f[2] << (found * 8);
		found++;
	}
	bpf_map_update_elem(&key_strings, &t, &offs, BPF_NOEXIST);
	return offs;
}

static __always_inline u64 text_hash(const struct text *t)
{
	u64 h = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < KEY_TEXT / 8; i++) {
		u64 w;
		__builtin_memcpy(&w, t->b + i * 8, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return h;
}

// hash_texts replaces the address of each string struct key k of type t
// holds with the hash of its text, and keeps the text.
static __always_inline void hash_texts(struct map_key *k, u64 t)
{
	u32 offs = string_fields(t);
	if ((offs & 0xff) == 0xff)
		return; // no string field: most struct keys
	u32 zero = 0;
	struct text *tx = bpf_map_lookup_elem(&text_scratch, &zero);
	if (!tx)
		return;
	for (int i = 0; i < KEY_STRINGS; i++) {
		u32 off = (offs >> (i * 8)) & 0xff;
		if (off > KEY_BYTES - 16)
			break;
		u64 hdr[2]; // pointer, length
		__builtin_memcpy(hdr, k->data + off, sizeof(hdr));
		if (!hdr[1])
			continue;
		u64 n = hdr[1] < KEY_TEXT ? hdr[1] : KEY_TEXT;
		__builtin_memset(tx, 0, sizeof(*tx));
		if (bpf_probe_read_user(tx->b, n & (KEY_TEXT * 2 - 1), (void *)hdr[0]))
			continue; // left as it is: shown as not read
		struct text_ref r = {.hash = text_hash(tx), .len = hdr[1]};
		if (!bpf_map_lookup_elem(&key_texts, &r))
			bpf_map_update_elem(&key_texts, &r, tx, BPF_NOEXIST);
		__builtin_memcpy(k->data + off, &r.hash, sizeof(r.hash));
	}
}

static __always_inline void read_string(struct map_key *k, u64 ptr, u64 len)
{
	k->kind = KIND_STRING;
	k->len = len;
	u64 n = len < KEY_BYTES ? len : KEY_BYTES;
	if (n)
		bpf_probe_read_user(k->data, n & (KEY_BYTES * 2 - 1), (void *)ptr);
}

// read_iface reads an `any` key: its type word says how to read its data word.
static __always_inline void read_iface(struct map_key *k, u64 itype, u64 data)
{
	if (!itype)
		return; // a nil key
	u64 size = 0;
	u8 kind = 0, tflag = 0;
	bpf_probe_read_user(&size, sizeof(size), (void *)(itype + TYPE_SIZE_OFF));
	bpf_probe_read_user(&tflag, sizeof(tflag), (void *)(itype + TYPE_TFLAG_OFF));
	bpf_probe_read_user(&kind, sizeof(kind), (void *)(itype + TYPE_KIND_OFF));
	if ((kind | tflag) & GO_DIRECT_IFACE) {
		// The data word is the value: a pointer, chan, map or func.
		k->kind = go_kind_class(kind & GO_KIND_MASK) == KIND_POINTER ? KIND_POINTER : KIND_OTHER;
		k->len = 8;
		__builtin_memcpy(k->data, &data, 8);
		return;
	}
	u8 raw = kind & GO_KIND_MASK;
	kind = go_kind_class(raw);
	if (kind == KIND_STRING) {
		u64 hdr[2] = {};
		bpf_probe_read_user(hdr, sizeof(hdr), (void *)data);
		read_string(k, hdr[0], hdr[1]);
		return;
	}
	k->kind = kind;
	k->len = size;
	u64 n = size < KEY_BYTES ? size : KEY_BYTES;
	if (n)
		bpf_probe_read_user(k->data, n & (KEY_BYTES * 2 - 1), (void *)data);
	if (raw == GO_KIND_STRUCT)
		hash_texts(k, itype);
}

static __always_inline void read_key(struct pt_regs *ctx, u32 mode, u32 flags, struct map_key *k)
{
	u64 v = GO_ARG3(ctx);
	switch (mode) {
	case KEY_IFACE: {
		// Both pairs read whole: the verifier refuses a ctx pointer the
		// compiler would otherwise pick between.
		u64 a2 = GO_ARG2(ctx), a3 = GO_ARG3(ctx), a4 = GO_ARG4(ctx);
		asm volatile("" : "+r"(a2), "+r"(a3), "+r"(a4));
		if (flags & DICT)
			read_iface(k, a3, a4);
		else
			read_iface(k, a2, a3);
		return;
	}
	case KEY_U32:
		k->kind = KIND_INT;
		k->len = 4;
		__builtin_memcpy(k->data, &v, 4);
		return;
	case KEY_U64:
		k->kind = KIND_INT;
		k->len = 8;
		__builtin_memcpy(k->data, &v, 8);
		return;
	case KEY_U64PTR:
		k->kind = KIND_POINTER;
		k->len = 8;
		__builtin_memcpy(k->data, &v, 8);
		return;
	case KEY_STR:
		read_string(k, v, GO_ARG4(ctx));
		return;
	case KEY_PTR: {
		u64 ktype = 0, size = 0;
		u8 kind = 0;
		bpf_probe_read_user(&ktype, sizeof(ktype), (void *)(GO_ARG1(ctx) + MAPTYPE_KEY_OFF));
		bpf_probe_read_user(&size, sizeof(size), (void *)(ktype + TYPE_SIZE_OFF));
		bpf_probe_read_user(&kind, sizeof(kind), (void *)(ktype + TYPE_KIND_OFF));
		u8 raw = kind & GO_KIND_MASK;
		kind = go_kind_class(raw);
		if (kind == KIND_STRING) {
			u64 hdr[2] = {};
			bpf_probe_read_user(hdr, sizeof(hdr), (void *)v);
			read_string(k, hdr[0], hdr[1]);
			return;
		}
		k->kind = kind;
		k->len = size;
		u64 n = size < KEY_BYTES ? size : KEY_BYTES;
		if (n)
			bpf_probe_read_user(k->data, n & (KEY_BYTES * 2 - 1), (void *)v);
		if (raw == GO_KIND_STRUCT)
			hash_texts(k, ktype);
		return;
	}
	}
}

static __always_inline void add(u64 *p, u64 n)
{
	__sync_fetch_and_add(p, n);
}

// site counts a call at its site and returns the site's stack id (-1 if the
// stack could not be taken or the site table is full).
static __always_inline s64 site(struct pt_regs *ctx, struct class_key *c, u64 caller, u32 op)
{
	struct site_key sk = {.class = *c, .caller = caller, .op = op};
	struct site_val *sv = bpf_map_lookup_elem(&sites, &sk);
	if (sv) {
		add(&sv->count, 1);
		return sv->stackid;
	}
	struct site_val nv = {.count = 1, .stackid = user_stack(ctx)};
	if (bpf_map_update_elem(&sites, &sk, &nv, BPF_NOEXIST)) {
		sv = bpf_map_lookup_elem(&sites, &sk); // another CPU inserted it first
		if (!sv) {
			count(&stats, STAT_AGG_FULL);
			return nv.stackid;
		}
		add(&sv->count, 1);
	}
	return nv.stackid;
}

// map_seed is map m's hash seed, or 0 for a sync.Map, which has none.
static __always_inline u32 map_seed(u64 m, int is_sync)
{
	u32 seed = 0;
	if (map_seed_offset && !is_sync)
		bpf_probe_read_user(&seed, sizeof(seed), (void *)(m + map_seed_offset));
	return seed;
}

// class_of returns the class of map m of Go type t, classifying the map at
// its first operation seen, and counts the operation on m. A map whose
// address now holds a map of another type, or another hash seed, is a new
// map (the old one was freed, or cleared). A sync.Map has no seed.
static __always_inline struct class_stat *class_of(struct class_key *c, u64 m, u64 t, u64 caller, int is_sync)
{
	u32 seed = map_seed(m, is_sync);
	struct map_info nmi = {.class = {.type = t, .site = caller}, .ops = 1, .seed = seed};
	struct map_info *mi = bpf_map_lookup_elem(&map_classes, &m);
	int fresh;
	if (!mi) {
		// Two CPUs can see a new map at once: the one whose insert lands
		// classifies and counts it, the other counts its operation there.
		fresh = !bpf_map_update_elem(&map_classes, &m, &nmi, BPF_NOEXIST);
		if (!fresh)
			mi = bpf_map_lookup_elem(&map_classes, &m);
	} else {
		fresh = mi->class.type != t || mi->seed != seed;
		if (fresh)
			bpf_map_update_elem(&map_classes, &m, &nmi, BPF_ANY);
	}
	if (fresh || !mi) {
		*c = nmi.class;
	} else {
		add(&mi->ops, 1);
		*c = mi->class;
	}
	struct class_stat ns = {};
	struct class_stat *st = lookup_or_init(&class_stats, c, &ns);
	if (!st)
		return 0;
	if (fresh)
		add(&st->maps, 1);
	return st;
}

// note_hop counts goroutine goid's operation on m as a hop when its last
// operation on a map of m's type was on another map.
static __always_inline void note_hop(struct class_stat *st, s64 goid, u64 t, u64 m)
{
	struct last_map_key lk = {.goid = goid, .type = t};
	u64 *last = bpf_map_lookup_elem(&last_maps, &lk);
	if (!last) {
		bpf_map_update_elem(&last_maps, &lk, &m, BPF_ANY);
		return;
	}
	if (*last != m) {
		add(&st->hops, 1);
		*last = m;
	}
}

// A write in progress that started more than this long ago cannot be the
// last recorded writer's: that entry is stale (its probes were off). A
// writer preempted in the middle of its write on a busy machine can take
// tens of milliseconds to finish it.
#define WRITER_FRESH_NS (500 * 1000 * 1000ULL)

// check_race records a race if another goroutine is writing m. stackid is
// this call's stack, or -2 to take it only if there is a race.
static __always_inline void check_race(struct pt_regs *ctx, u64 m, u32 op, s64 goid, s64 stackid, u64 caller)
{
	u8 flags = 0;
	bpf_probe_read_user(&flags, sizeof(flags), (void *)(m + map_flags_offset));
	if (!(flags & map_writing_mask))
		return;
	struct race_key rk = {.map = m, .caller = caller, .op = op, .other_op = OP_WRITE, .other_stackid = -1};
	s64 other = 0;
	struct writer *w = other_writer(m, goid);
	if (w) {
		if (bpf_ktime_get_ns() - w->ns < WRITER_FRESH_NS) {
			other = w->goid;
			rk.other_caller = w->caller;
			rk.other_stackid = w->stackid;
			rk.other_op = w->op;
		}
	}
	rk.stackid = stackid == -2 ? user_stack(ctx) : stackid;
	struct race_val zero = {};
	struct race_val *rv = lookup_or_init(&races, &rk, &zero);
	if (!rv)
		return;
	add(&rv->count, 1);
	rv->goid = goid;
	rv->other_goid = other;
}

// Writes by one goroutine, another, then the first again, within this span,
// are interleaved: the map is shared by writers, not handed over.
#define INTERLEAVE_NS (10 * 1000 * 1000ULL)

// note_write records goroutine goid's write of m, counting it as interleaved
// when another goroutine wrote m since goid's last write.
static __always_inline void note_write(struct class_key *c, struct class_stat *st, u64 m, struct writer *w)
{
	struct writers *ws = lookup_or_init(&writers, &m, (void *)&no_writers);
	if (!ws)
		return;
	struct writer *mine = &ws->w[w->goid & (WRITER_SLOTS - 1)];
	if (mine->goid == w->goid && mine->ns && w->ns - mine->ns < INTERLEAVE_NS) {
		struct writer *o = latest_other(ws, w->goid, mine->ns);
		if (o) {
			add(&st->interleaved, 1);
			struct interleave_key ik = {.class = *c, .caller = w->caller, .other_caller = o->caller};
			// The first pair's stacks and goroutines stand for the rest.
			struct interleave_val niv = {.stackid = w->stackid, .other_stackid = o->stackid,
						     .goid = w->goid, .other_goid = o->goid};
			struct interleave_val *iv = lookup_or_init(&interleaves, &ik, &niv);
			if (iv)
				add(&iv->count, 1);
		}
	}
	*mine = *w;
}

// sync_slow_path counts a sync.Map's miss, with the promotion it causes once
// the misses reach the dirty map's length, or its dirty map's rebuild: at
// the entry of missLocked (misses not yet counted) and of dirtyLocked
// (which copies only when there is no dirty map). A map not seen by its
// own operations yet is left out.
static __always_inline void sync_slow_path(u64 m, u32 op)
{
	if (!sync_misses_offset)
		return;
	struct map_info *mi = bpf_map_lookup_elem(&map_classes, &m);
	if (!mi)
		return;
	struct class_key c = mi->class;
	struct class_stat *st = bpf_map_lookup_elem(&class_stats, &c);
	if (!st)
		return;
	u64 dirty = 0;
	bpf_probe_read_user(&dirty, sizeof(dirty), (void *)(m + sync_dirty_offset));
	if (op == OP_DIRTY) {
		if (!dirty)
			add(&st->dirty_copies, 1);
		return;
	}
	add(&st->misses, 1);
	s64 misses = 0, len = 0;
	bpf_probe_read_user(&misses, sizeof(misses), (void *)(m + sync_misses_offset));
	if (dirty) // a classic map's header starts with its count
		bpf_probe_read_user(&len, sizeof(len), (void *)dirty);
	if (misses + 1 >= len)
		add(&st->promotions, 1);
}

// The map window: maptrace sets window_closed before it detaches the map
// probes (on a busy target the kernel takes tens of milliseconds to remove
// them, and they fire meanwhile) and clears it once they are all attached
// again. A hit while it is set costs what any hit does, and hits counts it,
// but records nothing: what a window records is then the work of the time
// its probes were all in place, which maptrace measures. recorded_hits
// counts the hits that record: per CPU, as a shared counter next to
// window_closed would pull its cache line from the other CPUs at every hit.
volatile u32 window_closed;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, 1);
} recorded_hits SEC(".maps");

static __always_inline int recording(void)
{
	if (window_closed)
		return 0;
	count(&recorded_hits, 0);
	return 1;
}

// prog_time's slots: map_op's and map_publish's.
#define PROG_TIME_MAP_OP 0
#define PROG_TIME_MAP_PUBLISH 1

static __always_inline int map_op_run(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));
	if (will_grow_stack(ctx, cookie) || !recording())
		return 0;
	u32 op = COOKIE_VALUE(cookie) & 7;
	u32 mode = (COOKIE_VALUE(cookie) >> 3) & 7;
	u32 flags = COOKIE_VALUE(cookie) & (SYNC_MAP | DICT);
	int is_sync = flags & SYNC_MAP;

	u64 a1 = GO_ARG1(ctx), a2 = GO_ARG2(ctx);
	asm volatile("" : "+r"(a1), "+r"(a2)); // as in read_key
	u64 m = op == OP_ITERNEXT ? 0 : is_sync ? a1 : a2;
	if (op == OP_ITERNEXT)
		bpf_probe_read_user(&m, sizeof(m), (void *)(GO_ARG1(ctx) + iter_map_offset));
	if (!m)
		return 0; // a nil map: reads of it are not map work

	s64 goid = goid_of(GO_G(ctx));
	u64 caller = return_address(ctx);
	if (op == OP_ITERNEXT) {
		// Once per element of a range loop: checked for races only.
		check_race(ctx, m, op, goid, -2, caller);
		return 0;
	}
	if (op == OP_MISS || op == OP_DIRTY) {
		sync_slow_path(m, op);
		return 0;
	}
	struct class_key c = {};
	u64 type = a1;
	if (is_sync)
		type = m >= data_lo && m < data_hi ? m | SYNC_MAP_GLOBAL : SYNC_MAP_TYPE;
	struct class_stat *st = class_of(&c, m, type, caller, is_sync);
	if (!st)
		return 0;
	s64 stackid = site(ctx, &c, caller, op);
	u32 zero = 0;
	// A sync.Map is made for concurrent use: no race to check, no fatal
	// "concurrent map" error to attribute to it, no interleaving to note.
	if (!is_sync) {
		check_race(ctx, m, op, goid, stackid, caller);
		struct last_op *lo = bpf_map_lookup_elem(&last_ops, &goid);
		if (lo) { // in place: an LRU update allocates
			lo->map = m;
			lo->op = op;
		} else {
			struct last_op nlo = {.map = m, .op = op};
			bpf_map_update_elem(&last_ops, &goid, &nlo, BPF_ANY);
		}
	}

	if (!is_sync)
		note_hop(st, goid, type, m);
	if (!is_sync && (op == OP_WRITE || op == OP_DELETE)) {
		struct writer w = {.ns = bpf_ktime_get_ns(), .caller = caller, .goid = goid, .stackid = stackid, .op = op};
		note_write(&c, st, m, &w);
	}
	add(&st->ops[op], 1);
	if (is_sync && op == OP_ITERATE && sync_read_offset) {
		// Range promotes the dirty map at once if it has keys the read map lacks.
		u64 ro = 0;
		u8 amended = 0;
		bpf_probe_read_user(&ro, sizeof(ro), (void *)(m + sync_read_offset));
		if (ro)
			bpf_probe_read_user(&amended, sizeof(amended), (void *)(ro + sync_amended_offset));
		if (amended)
			add(&st->promotions, 1);
	}

	struct goroutine_key gk = {.goid = goid, .class = c};
	struct goroutine_stat *gs = bpf_map_lookup_elem(&goroutines, &gk);
	if (gs) {
		add(&gs->ops, 1);
		if (op == OP_WRITE || op == OP_DELETE)
			add(&gs->writes, 1);
	} else {
		struct goroutine_stat ngs = {.ops = 1, .writes = op == OP_WRITE || op == OP_DELETE};
		bpf_map_update_elem(&goroutines, &gk, &ngs, BPF_ANY);
	}

	if (!collect_keys || mode == KEY_NONE)
		return 0;
	struct gkey_key *gkk = bpf_map_lookup_elem(&scratch, &zero);
	if (!gkk)
		return 0;
	__builtin_memset(gkk, 0, sizeof(*gkk));
	gkk->goid = goid;
	gkk->key.class = c;
	read_key(ctx, mode, flags, &gkk->key);
	st->key_kind = gkk->key.kind;
	st->key_size = gkk->key.len;
	int counted;
	if (keys_side) {
		counted = bump(&keys_b, &gkk->key);
		if (counted == 2)
			add((u64 *)&keys_added_b, 1);
	} else {
		counted = bump(&keys_a, &gkk->key);
		if (counted == 2)
			add((u64 *)&keys_added_a, 1);
	}
	if (!counted) {
		add(&st->other_keys, 1);
		count(&stats, STAT_KEYS_FULL);
	}
	bump(&goroutine_keys, gkk); // an LRU: never full
	return 0;
}

SEC("uprobe")
int map_op(struct pt_regs *ctx)
{
	u64 start = time_start(PROG_TIME_MAP_OP);
	int ret = map_op_run(ctx);
	time_end(PROG_TIME_MAP_OP, start);
	return ret;
}

// How a publishing function (sync/atomic's pointer stores and swaps,
// atomic.Value's) is passed the new value: the cookie's value.
enum {
	PUB_PTR_ARG2 = 1,   // StorePointer, SwapPointer: a pointer, BX
	PUB_PTR_ARG3 = 2,   // CompareAndSwapPointer: CX
	PUB_IFACE_ARG3 = 3, // (*Value).Store, Swap: an `any`, data word CX
	PUB_IFACE_ARG5 = 4, // (*Value).CompareAndSwap: the new `any`'s data word, SI
};

// map_publish counts a copy-on-write snapshot: a map the map probes have
// seen stored into an atomic.Pointer (a *map, or a pointer to a struct that
// starts with one) or an atomic.Value (the map itself), with its entries
// then (the count word that starts a map's header, classic or swiss).
// Anything else stored is not in map_classes, or not with the seed there,
// and costs a lookup or two.
static __always_inline int map_publish_run(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));
	if (will_grow_stack(ctx, cookie) || !recording())
		return 0;
	u64 a2 = GO_ARG2(ctx), a3 = GO_ARG3(ctx), a5 = GO_ARG5(ctx);
	asm volatile("" : "+r"(a2), "+r"(a3), "+r"(a5)); // as in read_key
	u64 m = 0;
	switch (COOKIE_VALUE(cookie)) {
	case PUB_PTR_ARG2:
		bpf_probe_read_user(&m, sizeof(m), (void *)a2);
		break;
	case PUB_PTR_ARG3:
		bpf_probe_read_user(&m, sizeof(m), (void *)a3);
		break;
	case PUB_IFACE_ARG3:
		m = a3;
		break;
	case PUB_IFACE_ARG5:
		m = a5;
		break;
	}
	if (!m)
		return 0;
	struct map_info *mi = bpf_map_lookup_elem(&map_classes, &m);
	if (!mi)
		return 0;
	// A freed map's address may hold another object now, which is stored
	// (a context's channel, say): only the map seen there, with its seed,
	// is that map.
	int is_sync = mi->class.type == SYNC_MAP_TYPE || (mi->class.type & SYNC_MAP_GLOBAL);
	if (map_seed(m, is_sync) != mi->seed)
		return 0;
	struct class_key c = mi->class;
	struct class_stat *st = bpf_map_lookup_elem(&class_stats, &c);
	if (!st)
		return 0;
	u64 n = 0;
	bpf_probe_read_user(&n, sizeof(n), (void *)m);
	add(&st->publishes, 1);
	add(&st->published, n);
	return 0;
}

SEC("uprobe")
int map_publish(struct pt_regs *ctx)
{
	u64 start = time_start(PROG_TIME_MAP_PUBLISH);
	int ret = map_publish_run(ctx);
	time_end(PROG_TIME_MAP_PUBLISH, start);
	return ret;
}

// first_fatal records the dying goroutine in the one fatal_info, and returns
// it, unless an earlier fatal error or panic was recorded first.
static __always_inline struct fatal_info *first_fatal(struct pt_regs *ctx)
{
	u64 cookie = bpf_get_attach_cookie(ctx);
	count(&hits, COOKIE_PROBE(cookie));
	if (will_grow_stack(ctx, cookie))
		return NULL;
	u32 zero = 0;
	struct fatal_info *fi = bpf_map_lookup_elem(&fatal, &zero);
	if (!fi || fi->len)
		return NULL; // keep the first
	s64 goid = goid_of(GO_G(ctx));
	fi->goid = goid;
	fi->caller = return_address(ctx);
	fi->stackid = user_stack(ctx);
	fi->len = 1;
	// The map this goroutine was in.
	struct last_op *lo = bpf_map_lookup_elem(&last_ops, &goid);
	if (lo) {
		fi->map = lo->map;
		fi->map_op = lo->op;
	}
	return fi;
}

static __always_inline void read_msg(struct fatal_info *fi, u64 ptr, u64 len)
{
	u64 n = len < sizeof(fi->msg) ? len : sizeof(fi->msg);
	if (len)
		fi->len = len;
	if (n)
		bpf_probe_read_user(fi->msg, n & 127, (void *)ptr);
}

// runtime.fatal / runtime.throw entry: the target is about to die. They never
// return, so there is nothing to probe but their entry.
SEC("uprobe")
int fatal_enter(struct pt_regs *ctx)
{
	struct fatal_info *fi = first_fatal(ctx);
	if (fi)
		read_msg(fi, GO_ARG1(ctx), GO_ARG2(ctx));
	return 0;
}

// runtime.fatalpanic entry: a panic no deferred call recovered. The runtime
// has already replaced an error or Stringer value with its text. The value's
// data is kept as it is, and read as a string header too: user space
// prints it by its type.
SEC("uprobe")
int panic_enter(struct pt_regs *ctx)
{
	struct fatal_info *fi = first_fatal(ctx);
	if (!fi)
		return 0;
	u64 arg[2] = {}; // the panic's value: type, data
	if (bpf_probe_read_user(arg, sizeof(arg), (void *)(GO_ARG1(ctx) + panic_arg_offset)) || !arg[0])
		return 0;
	fi->panic_type = arg[0];
	fi->panic_data = arg[1];
	if (arg[1] && !bpf_probe_read_user(fi->panic_word, sizeof(fi->panic_word), (void *)arg[1]))
		read_msg(fi, fi->panic_word[0], fi->panic_word[1]);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
