/* Shapes whose constant meets memory: the compared or multiplied operand is a memory cell,
 * or the constant itself goes to the stack as a call argument. */
#include "../include/operands.h"

extern int work(int);

struct fifo_like {
	long pad[2];
	int count;
};

struct cap_group_like {
	long pad[3];
	unsigned long cap;
};

/* cmp $(V-1), 0x10(%rdi); jg: the field is compared in place (blk_add_rq_to_plug's shape). */
__attribute__((noinline)) int queue_full(struct fifo_like *q)
{
	if (q->count >= CMP_MEM_LIMIT)
		return work(7);
	return 0;
}

/* cmp $V, 0xc(%rsp); mov; jg: a local whose address escaped (pcpu_alloc's slot loop). */
__attribute__((noinline)) int stack_limit(void)
{
	int prio;

	fill_like(&prio);
	if (prio > CMP_STACK_LIMIT)
		return work(3);
	return 1;
}

/* push $V: the seventh argument of a call goes on the stack (migrate_pages_batch's retries). */
__attribute__((noinline)) int retry_pages(void *from, void *to, long mode)
{
	return batch_like(from, to, mode, 0, 1, 2, PUSH_RETRIES);
}

/* imul $V, 0x18(%rdi), %rax: capacity_greater's multiply of a field. */
__attribute__((noinline)) int greater(struct cap_group_like *g, unsigned long other)
{
	return g->cap * MUL_MARGIN > other * 1024;
}

/* imul $V, 0x18(%rsi,%rdi), %rax: the same of an array element (an indexed operand). */
__attribute__((noinline)) int greater_at(struct cap_group_like *g, long i, unsigned long other)
{
	return g[i].cap * MUL_INDEXED_MARGIN > other * 1024;
}

int defer_count_like;
unsigned long global_cap_like;

/* cmp $V, global(%rip); jg: a global compared in place (cache_check's cache_defer_cnt >= DFR_MAX). */
__attribute__((noinline)) int defer_full(void)
{
	if (defer_count_like >= CMP_GLOBAL_LIMIT)
		return work(5);
	return 0;
}

/* imul $V, global(%rip), %rax: a multiply of a global. */
__attribute__((noinline)) int greater_global(unsigned long other)
{
	return global_cap_like * MUL_GLOBAL_MARGIN > other * 1024;
}
