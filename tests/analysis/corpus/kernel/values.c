/* Static consts (folded like macros), a static variable (memory), jiffies and ilog2 shifts. */
#include "../include/values.h"

extern int work(int);

struct queue_like {
	unsigned long pad[2];
	unsigned int back_max;
	unsigned int limit;
	unsigned long merge_until;
};

static const int back_max = 16 * 1024;
static int live_budget = 7;

/* copies the constant into the member of the same name (bfq_init_queue's shape) */
__attribute__((noinline)) void init_queue(struct queue_like *q)
{
	q->back_max = back_max;
}

__attribute__((noinline)) int over_budget(int x)
{
	live_budget += x;
	return work(live_budget);
}

__attribute__((noinline)) int over_limit(unsigned int x)
{
	if (x > MULTI_LIMIT)
		return work(1);
	return 0;
}

__attribute__((noinline)) void merge_window(struct queue_like *q, unsigned long now)
{
	q->merge_until = now + msecs_to_jiffies(MERGE_MS);
}

__attribute__((noinline)) unsigned int divided(unsigned int x)
{
	return work(x / DIV_POW2);
}

__attribute__((noinline)) unsigned long multiplied(unsigned long x)
{
	return work((int)(x * MUL_POW2));
}

__attribute__((noinline)) void clamp_batch(struct queue_like *q, unsigned int n)
{
	q->limit = n < PER_PAGE ? n : PER_PAGE;
}

/* out of line and opaque to GCC's interprocedural passes, like a call into another file */
__attribute__((noipa)) int queue_later(void *item, unsigned long delay)
{
	return item != 0 && delay;
}

/* a delay of 0 is passed as 'xor %esi, %esi' (smc_tx's queue_delayed_work shape) */
__attribute__((noinline)) int kick(struct queue_like *q)
{
	return queue_later(q, ZERO_DELAY) + 1;
}
