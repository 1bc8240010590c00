/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared part of every SIE site program: the value maps with their scopes, the per-task
 * transition state, the per-site counters and the write kfuncs of the sie_write module.
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

struct sie_key {
	__u32 kind;
	__u32 pad;
	__u64 id;
};

struct sie_val {
	__s64 v;
	__u64 epoch;
};

struct sie_ctl {
	__u64 epoch;
	__u32 disabled;
	__u32 mode;
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

/* pt_regs word @i of the probe's saved state (x86-64 layout: r15 .. di = 0 .. 14). */
#define SIE_REGS_WORD(ctx, i) (((const __u64 *)(ctx))[(i)])

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

/* The value for the current task's scope: pid beats cgroup beats global. */
static __always_inline int sie_scope_value(__s64 *out)
{
	struct sie_key key = { .kind = SIE_SCOPE_PID, .id = bpf_get_current_pid_tgid() >> 32 };
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
 */
static __always_inline int sie_value(struct sie_ctl *ctl, __s64 *out)
{
	struct sie_task *task;
	__u32 tid;

	if (ctl->disabled)
		return 0;
	if (ctl->mode == SIE_MODE_PER_TASK) {
		tid = (__u32)bpf_get_current_pid_tgid();
		task = bpf_map_lookup_elem(&sie_tasks, &tid);
		if (task && task->depth > 0) {
			*out = task->v;
			return task->has;
		}
	}
	return sie_scope_value(out);
}

/* A location that does not hold the default's value: never write, stop the knob. */
static __always_inline void sie_mismatch(struct sie_ctl *ctl, struct sie_count *cnt)
{
	cnt->mismatches++;
	ctl->disabled = 1;
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

/* The arithmetic flags of "cmp b, a" (a - b) at SIE_BITS width. */
static __always_inline __u64 sie_cmp_flags(__u64 a, __u64 b)
{
	__u64 r, p, flags = 0;

	a &= SIE_MASK;
	b &= SIE_MASK;
	r = (a - b) & SIE_MASK;
	p = r & 0xff;
	p ^= p >> 4;
	p ^= p >> 2;
	p ^= p >> 1;
	if (a < b)
		flags |= SIE_FLAG_CF;
	if (!(p & 1))
		flags |= SIE_FLAG_PF;
	if ((a ^ b ^ r) & 0x10)
		flags |= SIE_FLAG_AF;
	if (!r)
		flags |= SIE_FLAG_ZF;
	if ((r >> (SIE_BITS - 1)) & 1)
		flags |= SIE_FLAG_SF;
	if ((((a ^ b) & (a ^ r)) >> (SIE_BITS - 1)) & 1)
		flags |= SIE_FLAG_OF;
	return flags;
}
#endif

#endif
