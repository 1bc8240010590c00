/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared part of every SIE site program: the value maps with their scopes, the per-task
 * and global transition state, the per-site counters and the write kfuncs of the sie_write
 * module.
 *
 * All maps are pinned by name in the knob's directory, so every site object of one knob
 * (and the span probes) shares one value table: a value change is one map update.
 * The renderer defines SIE_SITE, SIE_MASK, SIE_EXPECTED and SIE_IV(v) before including this.
 */
#ifndef SIE_COMMON_BPF_H
#define SIE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define SIE_MAX_SITES 32
#define SIE_SCOPE_GLOBAL 0
#define SIE_SCOPE_CGROUP 1
#define SIE_SCOPE_PID 2
#define SIE_MODE_IMMEDIATE 0
#define SIE_MODE_PER_TASK 1
#define SIE_MODE_GLOBAL 2

/* gen: 0 in immediate and per-task mode; in global mode the value table's generation. */
struct sie_key {
	__u32 kind;
	__u32 gen;
	__u64 id;
};

struct sie_val {
	__s64 v;
	__u64 epoch;
};

/* Written by user space only (BPF reads it): a value change rewrites the whole word. */
struct sie_ctl {
	__u64 epoch;
	__u32 pending;		/* global: the newest generation user space published */
	__u32 mode;
	__u64 pending_ns;	/* when it was published (bpf_ktime_get_ns clock) */
};

/*
 * Written by BPF only, with atomics (user space only reads it), so nothing user space does
 * can undo what a site decided: a self-check mismatch's `disabled` stays set.
 * gate (global mode): live generation << 32 | tasks inside a safe span of the knob.
 */
struct sie_live {
	__u64 gate;
	__u64 disabled;
	__u64 switched_ns;	/* when the live generation last moved */
	__u64 switches;
};

struct sie_count {
	__u64 hits;
	__u64 applied;
	__u64 mismatches;
	__u64 refused;
};

struct sie_task {
	__u64 epoch;
	__s64 v;
	__u32 has;
	__u32 depth;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct sie_key);
	__type(value, struct sie_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sie_values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sie_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sie_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sie_live);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sie_live SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SIE_MAX_SITES);
	__type(key, __u32);
	__type(value, struct sie_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sie_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct sie_task);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sie_tasks SEC(".maps");

extern int sie_write_reg(struct pt_regs *regs, __u32 reg, __u64 value) __ksym;
extern int sie_write_flags(struct pt_regs *regs, __u64 mask, __u64 bits) __ksym;
extern int sie_write_mem(struct pt_regs *regs, __u64 addr, __u32 size, __u64 value) __ksym;

char LICENSE[] SEC("license") = "GPL";

/* A word another CPU's BPF program changes atomically: read it once, from memory. */
#define SIE_READ(x) (*(volatile __typeof__(x) *)&(x))

/* pt_regs word @i of the probe's saved state (x86-64 layout: r15 .. di = 0 .. 14). */
#define SIE_REGS_WORD(ctx, i) (((const __u64 *)(ctx))[(i)])

/*
 * A probe's frame: the task and its stack pointer. Two probes on nearby instructions of one
 * function (a path guard and its site, a save and its recompute) see one frame on one pass;
 * an interrupt or softirq running in the same task between them runs hundreds of bytes
 * deeper or on another stack, so keying their hand-over by frame keeps such a pass, reaching
 * the second probe through a join, from taking the first pass's state. Idle tasks (pid 0 on
 * every CPU) differ by stack too.
 */
struct sie_frame {
	__u64 task;
	__u64 sp;
};

static __always_inline struct sie_frame sie_frame_of(struct pt_regs *ctx)
{
	struct sie_frame frame = { .task = bpf_get_current_pid_tgid(), .sp = ctx->sp };

	return frame;
}

static __always_inline struct sie_count *sie_counter(void)
{
	__u32 site = SIE_SITE;

	return bpf_map_lookup_elem(&sie_counts, &site);
}

static __always_inline struct sie_ctl *sie_control(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sie_ctl, &zero);
}

static __always_inline struct sie_live *sie_live_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sie_live, &zero);
}

/* The value of generation @gen for the current task's scope: pid beats cgroup beats global. */
static __always_inline int sie_scope_value(__u32 gen, __s64 *out)
{
	struct sie_key key = { .kind = SIE_SCOPE_PID, .gen = gen,
			       .id = bpf_get_current_pid_tgid() >> 32 };
	struct sie_val *val = bpf_map_lookup_elem(&sie_values, &key);

	if (!val) {
		key.kind = SIE_SCOPE_CGROUP;
		key.id = bpf_get_current_cgroup_id();
		val = bpf_map_lookup_elem(&sie_values, &key);
	}
	if (!val) {
		key.kind = SIE_SCOPE_GLOBAL;
		key.id = 0;
		val = bpf_map_lookup_elem(&sie_values, &key);
	}
	if (!val)
		return 0;
	*out = val->v;
	return 1;
}

/*
 * The value this hit must apply, or 0 when the kernel's own constant applies.
 * Per-task mode: a task inside a safe span keeps the value it latched on entering it.
 * Global mode: the live generation, which cannot move while any task is inside a span.
 */
static __always_inline int sie_value(struct sie_ctl *ctl, __s64 *out)
{
	struct sie_live *live = sie_live_state();
	struct sie_task *task;
	__u32 tid;

	if (!live || SIE_READ(live->disabled))
		return 0;
	if (ctl->mode == SIE_MODE_GLOBAL)
		return sie_scope_value(SIE_READ(live->gate) >> 32, out);
	if (ctl->mode == SIE_MODE_PER_TASK) {
		tid = (__u32)bpf_get_current_pid_tgid();
		task = bpf_map_lookup_elem(&sie_tasks, &tid);
		if (task && task->depth > 0) {
			*out = task->v;
			return task->has;
		}
	}
	return sie_scope_value(0, out);
}

/*
 * A location that does not hold the default's value: never write, stop the knob. The flag
 * lives in sie_live, which user space never writes (ctl is the knob's control, for callers).
 */
static __always_inline void sie_mismatch(struct sie_ctl *ctl, struct sie_count *cnt)
{
	struct sie_live *live = sie_live_state();

	cnt->mismatches++;
	if (live)
		__sync_fetch_and_or(&live->disabled, 1);
}

static __always_inline void sie_account(struct sie_count *cnt, int err)
{
	if (err)
		cnt->refused++;
	else
		cnt->applied++;
}

#ifdef SIE_BITS
#define SIE_FLAG_CF 0x001ULL
#define SIE_FLAG_PF 0x004ULL
#define SIE_FLAG_AF 0x010ULL
#define SIE_FLAG_ZF 0x040ULL
#define SIE_FLAG_SF 0x080ULL
#define SIE_FLAG_OF 0x800ULL
#define SIE_FLAGS_ARITH (SIE_FLAG_CF | SIE_FLAG_PF | SIE_FLAG_AF | SIE_FLAG_ZF | SIE_FLAG_SF | SIE_FLAG_OF)
/* and, or, xor and test leave AF undefined: those sites neither check nor write it */
#define SIE_FLAGS_LOGIC (SIE_FLAGS_ARITH & ~SIE_FLAG_AF)

/* PF ZF SF of a result @r (already cut to SIE_BITS). */
static __always_inline __u64 sie_result_flags(__u64 r)
{
	__u64 p = r & 0xff, flags = 0;

	p ^= p >> 4;
	p ^= p >> 2;
	p ^= p >> 1;
	if (!(p & 1))
		flags |= SIE_FLAG_PF;
	if (!r)
		flags |= SIE_FLAG_ZF;
	if ((r >> (SIE_BITS - 1)) & 1)
		flags |= SIE_FLAG_SF;
	return flags;
}

/* The arithmetic flags of "cmp b, a" (a - b) at SIE_BITS width: also those of "sub". */
static __always_inline __u64 sie_cmp_flags(__u64 a, __u64 b)
{
	__u64 r, flags;

	a &= SIE_MASK;
	b &= SIE_MASK;
	r = (a - b) & SIE_MASK;
	flags = sie_result_flags(r);
	if (a < b)
		flags |= SIE_FLAG_CF;
	if ((a ^ b ^ r) & 0x10)
		flags |= SIE_FLAG_AF;
	if ((((a ^ b) & (a ^ r)) >> (SIE_BITS - 1)) & 1)
		flags |= SIE_FLAG_OF;
	return flags;
}

/* The arithmetic flags of "add b, a" (a + b) at SIE_BITS width. */
static __always_inline __u64 sie_add_flags(__u64 a, __u64 b)
{
	__u64 r, flags;

	a &= SIE_MASK;
	b &= SIE_MASK;
	r = (a + b) & SIE_MASK;
	flags = sie_result_flags(r);
	if (r < a)
		flags |= SIE_FLAG_CF;
	if ((a ^ b ^ r) & 0x10)
		flags |= SIE_FLAG_AF;
	if ((((a ^ r) & (b ^ r)) >> (SIE_BITS - 1)) & 1)
		flags |= SIE_FLAG_OF;
	return flags;
}

/* The flags (SIE_FLAGS_LOGIC) of a logical operation whose result is @r: CF = OF = 0. */
static __always_inline __u64 sie_logic_flags(__u64 r)
{
	return sie_result_flags(r & SIE_MASK);
}
#endif

#endif
