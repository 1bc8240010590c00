/* Constants whose instruction reads or writes memory the runtime addresses from the saved
 * registers: a compare against a field or a stack local, a pushed call argument, a multiply
 * of a field; a global (rip-relative) compared or multiplied. */
#ifndef OPERANDS_H
#define OPERANDS_H
#define CMP_MEM_LIMIT 48
#define CMP_STACK_LIMIT 12
#define PUSH_RETRIES 10
#define MUL_MARGIN 1078
#define MUL_INDEXED_MARGIN 1078
#define CMP_GLOBAL_LIMIT 300
#define MUL_GLOBAL_MARGIN 1100

extern void fill_like(int *);
extern int batch_like(void *a, void *b, long c, long d, int e, int f, int retries);
#endif
