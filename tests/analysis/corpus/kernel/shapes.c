/* The analysis corpus: one function per shape, compiled with kernel-like gcc flags. */
#include "../include/shapes.h"

struct sock_like {
	unsigned int pad[4];
	unsigned int cwnd;
	unsigned int rto_min;
	unsigned int timeout;
};

extern int work(int);
extern int other(void);
int table[TABLE_SIZE];

__attribute__((noinline)) void init_store(struct sock_like *s)
{
	s->cwnd = CWND_INIT;
}

__attribute__((noinline)) void init_merged(struct sock_like *s)
{
	s->rto_min = RTO_MIN_J;
	s->timeout = TIMEOUT_INIT_J;
}

__attribute__((noinline)) int below_limit(unsigned int x)
{
	if (x < LIMIT_LT)
		return work(1);
	return 0;
}

__attribute__((noinline)) unsigned int select_batch(const unsigned char *multi)
{
	return *multi ? BATCH_SEL * 2 : BATCH_SEL;
}

__attribute__((noinline)) int in_range(int x)
{
	if (x >= 2 && x <= RANGE_MAX)
		return work(x);
	return 0;
}

__attribute__((noinline)) int lookup(unsigned int hash)
{
	return table[hash & (TABLE_SIZE - 1)];
}

__attribute__((noinline)) unsigned int scaled(unsigned int x)
{
	return x / SCALE_LOG;
}

__attribute__((noinline)) int restart_loop(void)
{
	int restart = RESTART_MAX;

	do {
		if (other())
			return 1;
	} while (--restart);
	return 0;
}

__attribute__((noinline)) unsigned long shifted(unsigned long x)
{
	return work((int)(x << SHIFT_BY));
}
