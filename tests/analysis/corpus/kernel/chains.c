/* Multiplies by a constant that no instruction holds: the chain computes x * f(V). */
#include "../include/chains.h"

extern int work(int);

/* TCP_INIT_CWND * advmss as 'lea (x,x,4); add r,r' (tcp_init_buffer_space). */
__attribute__((noinline)) void init_space(struct conn_like *c)
{
	unsigned int space = CWND_SEGMENTS * c->advmss;

	c->window_clamp = space < c->rcvbuf ? space : c->rcvbuf;
}

/* x * (V - 1) as 'lea (,x,8); sub x' at V=8, 'shl $4; sub' at V=16 (blk-mq's dispatch EWMA). */
__attribute__((noinline)) void busy_ewma(unsigned int *ewma, int busy)
{
	unsigned int e = *ewma * (BUSY_WEIGHT - 1);

	if (busy)
		e += 16;
	*ewma = e / BUSY_WEIGHT;
}

/* The chain's sum is tested right after it: the flags of its 'add' would stay those of V0. */
__attribute__((noinline)) int tight(int x)
{
	int t = x * TIGHT_FACTOR;

	if (t < 0)
		return work(t);
	return t;
}

/* x * 10 as 'lea (x,x,4), %ebx; lea (%rbx,%rbx), %edi': the x*5 in %ebx lives on, so a
 * recompute of %edi alone would pair it with a product of V0. */
__attribute__((noinline)) int shared_step(int x)
{
	int half = x * 5;
	int t = x * LIVE_FACTOR;

	return work(t) + half;
}
