// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "register": the constant was just loaded into a register (mov $IV, %reg) and
 * nothing has read it yet. Overwrite the saved register with IV = f(V).
 * Renderer defines: SIE_REG (pt_regs word index), SIE_MERGE (1 when a sub-register write
 * keeps the upper bits, as 8/16-bit moves do on x86; 32-bit moves zero-extend), SIE_GUARDED
 * (1 when other paths also reach the site: a guard probe on the constant's own path marks
 * the task, and unmarked hits are left alone instead of failing the self-check).
 */
#include "sie_common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sie_marks SEC(".maps");

SEC("kprobe")
int sie_guard(struct pt_regs *ctx)
{
	__u32 zero = 0;
	__u64 *mark = bpf_map_lookup_elem(&sie_marks, &zero);

	if (mark)
		*mark = bpf_get_current_pid_tgid();
	return 0;
}

/* Did this task pass the guard since its last hit here? (Consumes the mark.) */
static __always_inline int sie_on_constant_path(void)
{
	__u32 zero = 0;
	__u64 *mark;

	if (!SIE_GUARDED)
		return 1;
	mark = bpf_map_lookup_elem(&sie_marks, &zero);
	if (!mark || *mark != bpf_get_current_pid_tgid())
		return 0;
	*mark = 0;
	return 1;
}

SEC("kprobe")
int sie_site(struct pt_regs *ctx)
{
	struct sie_count *cnt = sie_counter();
	struct sie_ctl *ctl = sie_control();
	__u64 cur, next;
	__s64 v;

	if (!cnt || !ctl || !sie_on_constant_path())
		return 0;
	cnt->hits++;
	cur = SIE_REGS_WORD(ctx, SIE_REG);
	if ((cur & SIE_MASK) != SIE_EXPECTED) {
		sie_mismatch(ctl, cnt);
		return 0;
	}
	if (!sie_value(ctl, &v))
		return 0;
	next = (__u64)SIE_IV(v) & SIE_MASK;
	if (SIE_MERGE)
		next |= cur & ~SIE_MASK;
	sie_account(cnt, sie_write_reg(ctx, SIE_REG, next));
	return 0;
}
