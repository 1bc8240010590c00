// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "save-recompute": an irreversible operation (shift, mask, multiply) combines
 * a register with IV, so the result cannot be undone. One probe before the operation
 * saves its input; one after recomputes input OP f(V) into the register.
 * Renderer defines: SIE_REG (pt_regs word index), SIE_RECOMPUTE(s, iv).
 */
#include "sie_common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sie_saved SEC(".maps");

SEC("kprobe")
int sie_save(struct pt_regs *ctx)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&sie_saved, &zero);

	if (slot)
		*slot = SIE_REGS_WORD(ctx, SIE_REG);
	return 0;
}

SEC("kprobe")
int sie_site(struct pt_regs *ctx)
{
	struct sie_count *cnt = sie_counter();
	struct sie_ctl *ctl = sie_control();
	__u32 zero = 0;
	__u64 *saved = bpf_map_lookup_elem(&sie_saved, &zero);
	__u64 cur;
	__s64 v;

	if (!cnt || !ctl || !saved)
		return 0;
	cnt->hits++;
	cur = SIE_REGS_WORD(ctx, SIE_REG);
	if ((cur & SIE_MASK) != ((__u64)SIE_RECOMPUTE(*saved, SIE_EXPECTED_IV) & SIE_MASK)) {
		sie_mismatch(ctl, cnt);
		return 0;
	}
	if (!sie_value(ctl, &v))
		return 0;
	sie_account(cnt, sie_write_reg(ctx, SIE_REG, (__u64)SIE_RECOMPUTE(*saved, (__u64)SIE_IV(v)) & SIE_MASK));
	return 0;
}
