// SPDX-License-Identifier: GPL-2.0
/*
 * Least-privilege self-test: a kprobe program that tries the writes sie_write must refuse
 * (an arbitrary kernel address, the instruction pointer, the trap flag) and counts how
 * many were refused. Nothing here can succeed on a correct module; the target address is
 * pipe_max_size, whose value user space checks is unchanged afterwards.
 */
#include "sie_common.bpf.h"

#define SIE_TRY_MEM 0
#define SIE_TRY_IP 1
#define SIE_TRY_TF 2
#define SIE_TRY_HITS 3
#define SIE_PT_REGS_IP 16
#define SIE_FLAG_TF 0x100ULL

extern const void pipe_max_size __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sie_refusals SEC(".maps");

static __always_inline void sie_tally(__u32 slot, int refused)
{
	__u64 *n = bpf_map_lookup_elem(&sie_refusals, &slot);

	if (n && refused)
		__sync_fetch_and_add(n, 1);
}

SEC("kprobe")
int sie_refusal(struct pt_regs *ctx)
{
	sie_tally(SIE_TRY_HITS, 1);
	sie_tally(SIE_TRY_MEM, sie_write_mem(ctx, (__u64)&pipe_max_size, 4, 4096) != 0);
	sie_tally(SIE_TRY_IP, sie_write_reg(ctx, SIE_PT_REGS_IP, 0) != 0);
	sie_tally(SIE_TRY_TF, sie_write_flags(ctx, SIE_FLAG_TF, SIE_FLAG_TF) != 0);
	return 0;
}
