// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "flags": the constant lives only in the flags of a compare (cmp $IV, %reg) and
 * the probe sits on the conditional jump after it. Recompute CF PF AF ZF SF OF as
 * cmp would have set them with IV = f(V) and replace them in the saved flags.
 * Renderer defines: SIE_OPERAND_REG (pt_regs word index), SIE_BITS (compare width).
 */
#include "sie_common.bpf.h"

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
