/* Flags-reading shapes: the site rewrites the flags the instruction would have set with IV',
 * or refuses where it cannot reproduce them. */
#include "../include/flags.h"

extern int work(int);

/* add $1; and $(SEQ_BATCH-1), %edx; jne: the zero flag of the mask decides, the masked value
 * dies (btrfs finish_one_item). */
__attribute__((noinline)) void seq_due(int *seq, int *items)
{
	int s = __atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);

	if (__atomic_sub_fetch(items, 1, __ATOMIC_SEQ_CST) < 128 || s % SEQ_BATCH == 0)
		work(0);
}

/* sub; add $STABLE_WAIT, %rdx; js: time_before(last->created + STABLE_WAIT, q->created)
 * (bfq_get_queue's stable merge). */
__attribute__((noinline)) long stable_since(const unsigned long *last, const unsigned long *q,
					    long *out)
{
	if ((long)(*last + STABLE_WAIT - *q) < 0)
		return 0;
	*out = (long)q;
	return work((int)*last);
}

/* test $(INO_BATCH-1), %eax; je: an AND's flags, no result (get_next_ino). */
__attribute__((noinline)) unsigned int next_ino(unsigned int *last, int *shared)
{
	unsigned int res = *last;

	if ((res & (INO_BATCH - 1)) == 0) {
		res = __atomic_fetch_add(shared, INO_BATCH, __ATOMIC_SEQ_CST);
	}
	res++;
	*last = res;
	return res;
}

/* imul; sar $RATE_SCALE, %rax: a signed product scaled down (pie_dump_stats' avg_dq_rate). */
__attribute__((noinline)) unsigned int rate_unscaled(const unsigned int *rate, int on)
{
	unsigned int out = 0;

	if (on)
		out = *rate * (1000000000L >> 6) >> RATE_SCALE;
	return out + work(on);
}

/* sar $SHIFT_READ; je: the shift's zero flag is read, and a count of 0 would keep the old ones. */
__attribute__((noinline)) int shifted_zero(int x)
{
	x >>= SHIFT_READ;
	if (!x)
		return work(1);
	return x;
}

/* and $(AF_BATCH-1); jne beside a pushf (local_irq_save's shape): AF could be read. */
__attribute__((noinline)) int af_due(int *seq)
{
	unsigned long flags;
	int s = ++*seq;

	asm volatile("pushf; pop %0" : "=r"(flags));
	if (s % AF_BATCH)
		return (int)flags;
	return work(s);
}
