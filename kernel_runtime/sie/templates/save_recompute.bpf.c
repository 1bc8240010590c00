// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "save-recompute": an operation combines an input with IV (add, shift, mask,
 * multiply; a 3-operand lea or imul; a read-modify-write of memory), so the result cannot be
 * rewritten from itself. One probe on the operation saves its input for the current frame;
 * one on the next instruction checks the result is input OP f(V0) and writes input OP f(V).
 * The saved input is consumed by that check: a hit that did not pass the operation (another
 * path into the next instruction) leaves the location alone.
 * Renderer defines: SIE_RECOMPUTE(s, iv), SIE_EXPECTED_IV and SIE_IN_MEMORY, then either
 * SIE_BASE_REG, SIE_DISP, SIE_SIZE (the cell DISP(%base) of SIZE bytes) or SIE_REG, the input
 * saved (the SIE_INPUT operand of sie_operand.bpf.h: the location itself, a 3-operand source,
 * or the memory source of 'imul $i, mem, %r', read before the imul, whose destination may be
 * its own address register) and SIE_MERGE (a sub-32-bit register keeps its upper bits); SIE_RECOMPUTE_FLAGS (1: an add, sub, and, or or xor whose
 * flags are read later, so SIE_FLAGS_MASK of them are checked and rewritten as
 * SIE_FLAGS_OF(saved, iv) says the operation sets them, at SIE_BITS).
 */
#include "sie_common.bpf.h"
#include "sie_operand.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sie_frame);	/* the save's frame: sie_common.bpf.h */
	__type(value, __u64);
} sie_saved SEC(".maps");

#if SIE_IN_MEMORY
static __always_inline __u64 sie_cell(struct pt_regs *ctx)
{
	return SIE_REGS_WORD(ctx, SIE_BASE_REG) + (__s64)(SIE_DISP);
}

/* The cell's value (0 when unreadable: the self-check then fails). */
static __always_inline __u64 sie_location(struct pt_regs *ctx)
{
	__u64 value = 0;

	bpf_probe_read_kernel(&value, SIE_SIZE, (const void *)sie_cell(ctx));
	return value;
}

static __always_inline int sie_input(struct pt_regs *ctx, __u64 *out)
{
	*out = sie_location(ctx);
	return 1;
}

static __always_inline int sie_put(struct pt_regs *ctx, __u64 cur, __u64 next)
{
	return sie_write_mem(ctx, sie_cell(ctx), SIE_SIZE, next);
}
#else
static __always_inline __u64 sie_location(struct pt_regs *ctx)
{
	return SIE_REGS_WORD(ctx, SIE_REG);
}

/* The input now (at the save probe); 0 when a memory input cannot be read. */
static __always_inline int sie_input(struct pt_regs *ctx, __u64 *out)
{
	return SIE_READ_OPERAND(ctx, SIE_INPUT, out);
}

static __always_inline int sie_put(struct pt_regs *ctx, __u64 cur, __u64 next)
{
	if (SIE_MERGE)
		next |= cur & ~SIE_MASK;
	return sie_write_reg(ctx, SIE_REG, next);
}
#endif

#if SIE_RECOMPUTE_FLAGS
static __always_inline int sie_flags_hold(struct pt_regs *ctx, __u64 saved, __u64 iv)
{
	return (ctx->flags & SIE_FLAGS_MASK) == (SIE_FLAGS_OF(saved, iv) & SIE_FLAGS_MASK);
}

static __always_inline int sie_put_flags(struct pt_regs *ctx, __u64 saved, __u64 iv)
{
	return sie_write_flags(ctx, SIE_FLAGS_MASK, SIE_FLAGS_OF(saved, iv));
}
#else
static __always_inline int sie_flags_hold(struct pt_regs *ctx, __u64 saved, __u64 iv)
{
	return 1;
}

static __always_inline int sie_put_flags(struct pt_regs *ctx, __u64 saved, __u64 iv)
{
	return 0;
}
#endif

SEC("kprobe")
int sie_save(struct pt_regs *ctx)
{
	struct sie_frame frame = sie_frame_of(ctx);
	__u64 input;

	if (sie_input(ctx, &input))
		bpf_map_update_elem(&sie_saved, &frame, &input, BPF_ANY);
	else  /* unread: the site leaves this pass alone */
		bpf_map_delete_elem(&sie_saved, &frame);
	return 0;
}

SEC("kprobe")
int sie_site(struct pt_regs *ctx)
{
	struct sie_count *cnt = sie_counter();
	struct sie_ctl *ctl = sie_control();
	struct sie_frame frame = sie_frame_of(ctx);
	__u64 *found = bpf_map_lookup_elem(&sie_saved, &frame);
	__u64 saved, cur, next;
	__s64 v;

	if (!cnt || !ctl || !found)
		return 0;
	saved = *found;
	bpf_map_delete_elem(&sie_saved, &frame);
	cnt->hits++;
	cur = sie_location(ctx);
	if ((cur & SIE_MASK) != ((__u64)SIE_RECOMPUTE(saved, SIE_EXPECTED_IV) & SIE_MASK) ||
	    !sie_flags_hold(ctx, saved, SIE_EXPECTED_IV)) {
		sie_mismatch(ctl, cnt);
		return 0;
	}
	if (!sie_value(ctl, &v))
		return 0;
	next = (__u64)SIE_RECOMPUTE(saved, (__u64)SIE_IV(v)) & SIE_MASK;
	sie_account(cnt, sie_put(ctx, cur, next) || sie_put_flags(ctx, saved, (__u64)SIE_IV(v)));
	return 0;
}
