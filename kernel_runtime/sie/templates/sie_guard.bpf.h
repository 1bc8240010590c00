/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Path guard of a register or memory site that other paths also reach (a join right after
 * the seed): the guard probe on the seed marks its frame, and the site acts only on a hit in
 * a marked frame, consuming the mark. An unmarked hit (the other path) is left alone instead
 * of failing the self-check or, worse, rewriting a value the constant's code never produced.
 *
 * A frame is the task and its stack pointer: the guard and the site sit on adjacent
 * instructions of one function, so the constant's own pass has one sp at both (one slot
 * lower at the site after a 'push $IV'). An interrupt or softirq running in the same task
 * between the two probes (loopback TCP delivers packets to the peer socket there) runs
 * hundreds of bytes deeper or on another stack, so reaching the site through the join it
 * neither finds nor consumes the interrupted pass's mark. A hash, not a per-CPU slot, so a
 * task moved to another CPU between the probes still finds its mark.
 * Renderer define: SIE_GUARDED (0: every hit is the constant's).
 */

struct sie_frame {
	__u64 task;
	__u64 sp;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sie_frame);
	__type(value, __u8);
} sie_marks SEC(".maps");

static __always_inline struct sie_frame sie_frame_of(struct pt_regs *ctx)
{
	struct sie_frame frame = { .task = bpf_get_current_pid_tgid(), .sp = ctx->sp };

	return frame;
}

SEC("kprobe")
int sie_guard(struct pt_regs *ctx)
{
	struct sie_frame frame = sie_frame_of(ctx);
	__u8 one = 1;

	bpf_map_update_elem(&sie_marks, &frame, &one, BPF_ANY);
	return 0;
}

/* Did this frame pass the guard since its last hit here? (Consumes the mark.) */
static __always_inline int sie_on_constant_path(struct pt_regs *ctx)
{
	struct sie_frame frame = sie_frame_of(ctx);

	if (!SIE_GUARDED)
		return 1;
	if (bpf_map_delete_elem(&sie_marks, &frame) == 0)
		return 1;
	frame.sp += 8;	/* a guarded 'push $IV': the site runs one slot below its guard */
	return bpf_map_delete_elem(&sie_marks, &frame) == 0;
}
