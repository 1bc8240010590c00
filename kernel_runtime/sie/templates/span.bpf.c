// SPDX-License-Identifier: GPL-2.0
/*
 * Safe-span probes for the per-task and global transitions.
 *
 * Per-task: a task latches the value of its scope when it enters a safe span from outside
 * every span, and keeps it until it leaves, so no task ever mixes two values inside one
 * span. Each value change bumps the epoch the task records, which is how status counts
 * tasks still on an old value.
 *
 * Global: sie_live.gate holds the live generation (high half) and the number of tasks
 * inside any safe span of the knob (low half) in one word, so "nobody inside" and "switch
 * the generation" are one compare-and-swap: a task entering with nobody inside, or the
 * last one leaving, moves the live generation to the one user space published
 * (sie_ctl.pending). While any task is inside, the generation cannot move; nothing forces
 * it. The task entry's epoch holds the generation it entered under, `has` that it counts.
 */
#include "sie_common.bpf.h"

/* Move the live generation to the published one if the gate still reads @seen. */
static __always_inline int sie_promote(struct sie_live *live, struct sie_ctl *ctl, __u64 seen,
				       __u64 inside)
{
	__u32 want = SIE_READ(ctl->pending);

	if ((__u32)seen != 0 || want <= (__u32)(seen >> 32))
		return 0;
	if (__sync_val_compare_and_swap(&live->gate, seen, ((__u64)want << 32) | inside) != seen)
		return 0;
	live->switched_ns = bpf_ktime_get_ns();
	__sync_fetch_and_add(&live->switches, 1);
	return 1;
}

/* Count the task in (promoting a published generation first when nobody is inside). */
static __always_inline __u32 sie_gate_enter(struct sie_live *live, struct sie_ctl *ctl)
{
	__u64 seen = SIE_READ(live->gate);

	if (sie_promote(live, ctl, seen, 1))
		return SIE_READ(ctl->pending);
	return __sync_fetch_and_add(&live->gate, 1) >> 32;
}

static __always_inline void sie_gate_exit(struct sie_live *live, struct sie_ctl *ctl)
{
	__u64 before = __sync_fetch_and_add(&live->gate, -1);

	sie_promote(live, ctl, before - 1, 0);
}

SEC("kprobe")
int sie_span_enter(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sie_ctl *ctl = sie_control();
	struct sie_live *live = sie_live_state();
	struct sie_task fresh = {}, *task;

	if (!ctl || !live)
		return 0;
	task = bpf_map_lookup_elem(&sie_tasks, &tid);
	if (!task) {
		bpf_map_update_elem(&sie_tasks, &tid, &fresh, BPF_NOEXIST);
		task = bpf_map_lookup_elem(&sie_tasks, &tid);
		if (!task)
			return 0;
	}
	if (task->depth == 0) {
		if (ctl->mode == SIE_MODE_GLOBAL) {
			task->epoch = sie_gate_enter(live, ctl);
			task->has = 1;
		} else {
			task->has = sie_scope_value(0, &task->v);
			task->epoch = ctl->epoch;
		}
	}
	if (task->depth < 64)
		task->depth++;
	return 0;
}

SEC("kprobe")
int sie_span_exit(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sie_ctl *ctl = sie_control();
	struct sie_live *live = sie_live_state();
	struct sie_task *task = bpf_map_lookup_elem(&sie_tasks, &tid);

	if (!task || task->depth == 0)
		return 0;
	task->depth--;
	if (task->depth == 0 && ctl && live && ctl->mode == SIE_MODE_GLOBAL && task->has) {
		/* only in-flight tasks stay in the map: a full LRU could evict a counted one */
		bpf_map_delete_elem(&sie_tasks, &tid);
		sie_gate_exit(live, ctl);
	}
	return 0;
}
