/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An operand a site program only reads: a saved register, or a memory cell addressed from
 * the saved registers (a compare's memory operand, a multiply's memory source). Renderer
 * defines, per operand P: P_IN_MEMORY, P_REG (pt_regs word), P_ADDR(ctx) and P_SIZE (bytes);
 * the ones of the other kind are 0.
 *
 * A rip-relative operand (a vmlinux global) is addressed from the function's start: every
 * x86 kprobe flavour (int3, optimized jump, ftrace) hands its handlers regs->ip == probe
 * address + 1, and the loader attaches every program with its probe's offset in the function
 * as the attach cookie (kernel_runtime/sie/libbpf.py).
 */
#define SIE_PT_REGS_IP_WORD 16
#define SIE_FUNCTION_START(ctx) (SIE_REGS_WORD(ctx, SIE_PT_REGS_IP_WORD) - 1 - bpf_get_attach_cookie(ctx))

/* The operand's value now; 0 (and 0 returned) when its memory cannot be read. */
static __always_inline int sie_read_operand(int in_memory, __u64 reg, __u64 addr, __u32 size,
					    __u64 *out)
{
	*out = reg;
	if (!in_memory)
		return 1;
	*out = 0;
	return !bpf_probe_read_kernel(out, size, (const void *)addr);
}

#define SIE_READ_OPERAND(ctx, P, out) sie_read_operand(P##_IN_MEMORY, SIE_REGS_WORD(ctx, P##_REG), P##_ADDR(ctx), P##_SIZE, (out))
