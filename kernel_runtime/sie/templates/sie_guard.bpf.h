/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Path guard of a register or memory site that other paths also reach (a join right after
 * the seed): the guard probe on the seed marks its frame, and the site acts only on a hit in
 * a marked frame, consuming the mark. An unmarked hit (the other path) is left alone instead
 * of failing the self-check or, worse, rewriting a value the constant's code never produced.
 *
 * Marks are keyed by frame (sie_frame_of): the guard and the site sit on adjacent
 * instructions, so the constant's own pass has one sp at both (one slot lower at the site
 * after a 'push $IV'); a softirq in the same task between the two probes (loopback TCP
 * delivers to the peer socket there) neither finds nor consumes the mark. A hash, not a
 * per-CPU slot, so a task moved to another CPU between the probes still finds its mark.
 * Renderer define: SIE_GUARDED (0: every hit is the constant's).
 */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sie_frame);
	__type(value, __u8);
} sie_marks SEC(".maps");

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
