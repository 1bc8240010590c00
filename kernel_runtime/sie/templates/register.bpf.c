// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "register": the constant was just loaded into a register (mov $IV, %reg) and
 * nothing has read it yet. Overwrite the saved register with IV = f(V).
 * Renderer defines: SIE_REG (pt_regs word index), SIE_MERGE (1 when a sub-register write
 * keeps the upper bits, as 8/16-bit moves do on x86; 32-bit moves zero-extend), SIE_GUARDED
 * (sie_guard.bpf.h).
 */
#include "sie_common.bpf.h"
#include "sie_guard.bpf.h"

SEC("kprobe")
int sie_site(struct pt_regs *ctx)
{
	struct sie_count *cnt = sie_counter();
	struct sie_ctl *ctl = sie_control();
	__u64 cur, next;
	__s64 v;

	if (!cnt || !ctl || !sie_on_constant_path(ctx))
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
