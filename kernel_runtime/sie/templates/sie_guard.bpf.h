/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Path guard of a register or memory site that other paths also reach (a join right after
 * the seed): the guard probe on the seed marks the task in a per-CPU slot, and the site
 * acts only on a marked hit, consuming the mark. An unmarked hit (the other path) is left
 * alone instead of failing the self-check or, worse, rewriting a value the constant's code
 * never produced. Renderer define: SIE_GUARDED (0: every hit is the constant's).
 */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sie_marks SEC(".maps");

SEC("kprobe")
int sie_guard(struct pt_regs *ctx)
{
	__u32 zero = 0;
	__u64 *mark = bpf_map_lookup_elem(&sie_marks, &zero);

	if (mark)
		*mark = bpf_get_current_pid_tgid();
	return 0;
}

/* Did this task pass the guard since its last hit here? (Consumes the mark.) */
static __always_inline int sie_on_constant_path(void)
{
	__u32 zero = 0;
	__u64 *mark;

	if (!SIE_GUARDED)
		return 1;
	mark = bpf_map_lookup_elem(&sie_marks, &zero);
	if (!mark || *mark != bpf_get_current_pid_tgid())
		return 0;
	*mark = 0;
	return 1;
}
