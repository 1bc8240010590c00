/* Constants whose value leaves the analysed function (or does not): the pow2 escape rule. */
#ifndef ESCAPE_H
#define ESCAPE_H
#define RING_MIN_BUFS 4      /* sizes a ring that other functions index with & (size - 1) */
#define LOCAL_SPIN 16        /* only bounds a loop inside its function */
#define TAIL_BUDGET 64       /* handed to a lower-addressed callee by a tail jump */
#define RET_QUOTA 32         /* returned to the caller */
#define FLAGGED_BATCH 1024   /* 'x & (BATCH - 1)' compiled as 'test $0x3ff' */
#define LOCAL_CAP 32         /* a loop bound kept in a register across calls */
#endif
