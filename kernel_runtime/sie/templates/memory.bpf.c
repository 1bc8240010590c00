// SPDX-License-Identifier: GPL-2.0
/*
 * Synthesis "memory": the constant was just stored to memory (mov $IV, DISP(%base)).
 * Overwrite that cell; the module only accepts the store's own destination.
 * Renderer defines: SIE_BASE_REG (pt_regs word index), SIE_DISP, SIE_SIZE (bytes), SIE_GUARDED
 * (sie_guard.bpf.h).
 */
#include "sie_common.bpf.h"
#include "sie_guard.bpf.h"

SEC("kprobe")
int sie_site(struct pt_regs *ctx)
{
	struct sie_count *cnt = sie_counter();
	struct sie_ctl *ctl = sie_control();
	__u64 addr, cur = 0;
	__s64 v;

	if (!cnt || !ctl || !sie_on_constant_path(ctx))
		return 0;
	cnt->hits++;
	addr = SIE_REGS_WORD(ctx, SIE_BASE_REG) + (__s64)(SIE_DISP);
	if (bpf_probe_read_kernel(&cur, SIE_SIZE, (const void *)addr) || (cur & SIE_MASK) != SIE_EXPECTED) {
		sie_mismatch(ctl, cnt);
		return 0;
	}
	if (!sie_value(ctl, &v))
		return 0;
	sie_account(cnt, sie_write_mem(ctx, addr, SIE_SIZE, (__u64)SIE_IV(v) & SIE_MASK));
	return 0;
}
