// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "flags": the constant lives only in the flags of a compare (cmp $IV, op or
 * test $IV, %reg) and the probe sits on the conditional jump after it. Recompute the flags
 * the compare would have set with IV = f(V) and replace them in the saved flags.
 * Renderer defines: the SIE_OPERAND operand (sie_operand.bpf.h): a register, or for
 * 'cmp $IV, mem' a memory cell read again at the probe (nothing between the cmp and the
 * probe writes it or its address registers; a cell another CPU changed meanwhile fails the
 * self-check); SIE_BITS (compare width).
 * SIE_FLAGS_OF(op, iv): the compare's flags (sie_cmp_flags, or for a test sie_logic_flags of
 * op & iv: sie_common.bpf.h); SIE_FLAGS_MASK: those it defines (a test leaves AF undefined).
 */
#include "sie_common.bpf.h"
#include "sie_operand.bpf.h"

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
	saved = ctx->flags & SIE_FLAGS_MASK;
	if (!SIE_READ_OPERAND(ctx, SIE_OPERAND, &operand) || saved != (SIE_FLAGS_OF(operand, SIE_EXPECTED) & SIE_FLAGS_MASK)) {
		sie_mismatch(ctl, cnt);
		return 0;
	}
	if (!sie_value(ctl, &v))
		return 0;
	sie_account(cnt, sie_write_flags(ctx, SIE_FLAGS_MASK,
					 SIE_FLAGS_OF(operand, (__u64)SIE_IV(v))));
	return 0;
}
