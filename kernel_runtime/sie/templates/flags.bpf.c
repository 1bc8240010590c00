// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "flags": the constant lives only in the flags of a compare (cmp $IV, %reg) and
 * the probe sits on the conditional jump after it. Recompute CF PF AF ZF SF OF as
 * cmp would have set them with IV = f(V) and replace them in the saved flags.
 * Renderer defines: SIE_OPERAND_REG (pt_regs word index), SIE_BITS (compare width).
 * sie_cmp_flags is in sie_common.bpf.h (a save-recompute 'sub' rewrites the same flags).
 */
#include "sie_common.bpf.h"

SEC("kprobe")
int sie_site(struct pt_regs *ctx)
{
	struct sie_count *cnt = sie_counter();
	struct sie_ctl *ctl = sie_control();
	__u64 operand, saved;
	__s64 v;

	if (!cnt || !ctl)
		return 0;
	cnt->hits++;
	operand = SIE_REGS_WORD(ctx, SIE_OPERAND_REG);
	saved = ctx->flags & SIE_FLAGS_ARITH;
	if (saved != sie_cmp_flags(operand, SIE_EXPECTED)) {
		sie_mismatch(ctl, cnt);
		return 0;
	}
	if (!sie_value(ctl, &v))
		return 0;
	sie_account(cnt, sie_write_flags(ctx, SIE_FLAGS_ARITH,
					 sie_cmp_flags(operand, (__u64)SIE_IV(v))));
	return 0;
}
