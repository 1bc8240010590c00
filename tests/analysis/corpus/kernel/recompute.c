/* Shapes where the constant is added into a value that keeps living: the result cannot be
 * rewritten from itself, the fix-up needs the input saved before the instruction. */
#include "../include/recompute.h"

extern int work(int);
extern unsigned long jiffies_like;
extern void lock_like(void *);

struct task_like {
	unsigned long pad[3];
	unsigned long stamp;
};

/* lea %edi <- %ebx + LEA_MIN_US: the input stays live in %ebx (tcp_rack_mark_lost's shape). */
__attribute__((noinline)) int lea_three(unsigned int srtt)
{
	unsigned int t = srtt >> 2;

	return work(t + LEA_MIN_US) + t;
}

/* add $STAMP_STEP, 0x18(%rdi): a read-modify-write of memory (task_numa_work's node_stamp). */
__attribute__((noinline)) void bump_stamp(struct task_like *t)
{
	t->stamp += STAMP_STEP;
}

/* add $FLAG_ADD, %edi; js: the sign flag of the add is read: the site rewrites the flags too. */
__attribute__((noinline)) int add_then_test(int x)
{
	x += FLAG_ADD;
	if (x < 0)
		return work(x);
	return x * 3;
}

/* lea -EXPIRE_AGE(%rdi), %rax: a subtraction into a new register (nfsd's RC_EXPIRE). */
__attribute__((noinline)) long expired_before(long now, long *limit)
{
	limit[0] = now - EXPIRE_AGE;
	return work((int)now);
}

/* lea -INDEXED_AGE(%rbx,%rax), %rax: two inputs, no single register to save. */
__attribute__((noinline)) long indexed_age(long now)
{
	return work((int)now) + now - INDEXED_AGE;
}

/* sub $FLUSH_AGE, %rax three instructions past the call line's rows (ip_vs's sync flush). */
__attribute__((noinline)) void *next_due(struct buf_like *b)
{
	lock_like(b);
	return due_buf(b, jiffies_like, FLUSH_AGE);
}

/* add $(1 << EWMA_FACTOR), %eax: the constant is a shift count (blk-mq's dispatch-busy EWMA). */
__attribute__((noinline)) void update_ewma(unsigned int *ewma, int busy)
{
	unsigned int e = *ewma * 7;

	if (busy)
		e += 1 << EWMA_FACTOR;
	*ewma = e / 8;
}

/* Signed x / 2: 'shr $63; add; sar $1' (the shrinker's delta = freeable / 2). */
__attribute__((noinline)) long half_of(long freeable, int idle)
{
	long delta = work(idle);

	if (idle)
		delta = freeable / HALF_DIV;
	return delta + freeable;
}

/* Signed x / 4: 'test; lea 3(x); cmovns; sar $2': the rounding bias depends on the divisor. */
__attribute__((noinline)) long quarter_of(long freeable, int idle)
{
	long delta = work(idle);

	if (idle)
		delta = freeable / QUARTER_DIV;
	return delta + freeable;
}

/* cap * FIT_MARGIN as 'lea (x,x,4); shl $8': a multiply chain, no immediate (fits_capacity). */
__attribute__((noinline)) int fits(unsigned long cap, unsigned long max)
{
	return cap * FIT_MARGIN < max * 1024;
}

/* sub $PERIOD_T, %edi; je: the zero flag of the sub is read (task_numa_fault's period slot). */
__attribute__((noinline)) int period_slot(int ratio, int slot_len)
{
	int slot = ratio - PERIOD_T;

	if (!slot)
		slot = 1;
	return slot * slot_len;
}
