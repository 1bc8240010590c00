/* Where a constant's value goes after its seed (tests/analysis/test_corpus_escape.py). */
#include "../include/escape.h"

extern int work(int);

struct ring_like {
	unsigned int head;
	unsigned int ring_size;
	void *bufs;
};

/* defined first, so it sits below its callers: their tail jumps go to a lower address */
__attribute__((noinline)) int take_budget(struct ring_like *r, unsigned int budget)
{
	return work((int)(r->head % budget));
}

/* the pipe ring's shape: the size is stored, and readers elsewhere mask with size - 1 */
__attribute__((noinline)) void ring_init(struct ring_like *r, unsigned int want)
{
	r->ring_size = want < RING_MIN_BUFS ? RING_MIN_BUFS : want;
}

/* a consumer in another function: why the store above must keep a power of two */
__attribute__((noinline)) unsigned int ring_slot(const struct ring_like *r)
{
	return r->head & (r->ring_size - 1);
}

/* the value only bounds a compare in its own function: nothing else ever sees it */
__attribute__((noinline)) int spin_local(int x)
{
	int n = 0;

	while (x > LOCAL_SPIN && n < 100) {
		x = work(x);
		n++;
	}
	return n;
}

/* 'return take_budget(r, TAIL_BUDGET)': a tail jump out of the function with V in %esi */
__attribute__((noinline)) int tail_budget(struct ring_like *r)
{
	return take_budget(r, TAIL_BUDGET);
}

/* the value is the caller's */
__attribute__((noinline)) unsigned int ret_quota(void)
{
	return RET_QUOTA;
}

/* get_next_ino's shape: a batch refill when the counter crosses a multiple of the batch */
__attribute__((noinline)) unsigned int next_id(unsigned int *last)
{
	unsigned int res = *last;

	if ((res & (FLAGGED_BATCH - 1)) == 0)
		res = (unsigned int)work((int)res);
	*last = res + 1;
	return res;
}

/* the cap is kept in a callee-saved register across calls and only bounds the loop */
__attribute__((noinline)) int drain_local(int n)
{
	int cap = n < LOCAL_CAP ? n : LOCAL_CAP;
	int i, sum = 0;

	for (i = 0; i < cap; i++)
		sum += work(i);
	return sum;
}
