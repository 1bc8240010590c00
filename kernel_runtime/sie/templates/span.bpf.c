// SPDX-License-Identifier: GPL-2.0
/*
 * Safe-span probes for the per-task transition: a task latches the value of its scope
 * when it enters a safe span from outside every span, and keeps it until it leaves, so
 * no task ever mixes two values inside one span. Each value change bumps the epoch the
 * task records, which is how status counts tasks still on an old value.
 */
#include "sie_common.bpf.h"

SEC("kprobe")
int sie_span_enter(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sie_ctl *ctl = sie_control();
	struct sie_task fresh = {}, *task;

	if (!ctl)
		return 0;
	task = bpf_map_lookup_elem(&sie_tasks, &tid);
	if (!task) {
		bpf_map_update_elem(&sie_tasks, &tid, &fresh, BPF_NOEXIST);
		task = bpf_map_lookup_elem(&sie_tasks, &tid);
		if (!task)
			return 0;
	}
	if (task->depth == 0) {
		task->has = sie_scope_value(&task->v);
		task->epoch = ctl->epoch;
	}
	if (task->depth < 64)
		task->depth++;
	return 0;
}

SEC("kprobe")
int sie_span_exit(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct sie_task *task = bpf_map_lookup_elem(&sie_tasks, &tid);

	if (task && task->depth > 0)
		task->depth--;
	return 0;
}
