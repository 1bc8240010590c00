/* Constants for the analysis corpus: each one reproduces a shape GCC gives kernel constants. */
#ifndef SHAPES_H
#define SHAPES_H
#define HZ 250
#define CWND_INIT 10
#define RTO_MIN_J ((unsigned)(HZ/5))
#define TIMEOUT_INIT_J ((unsigned)(HZ))
#define LIMIT_LT 37
#define BATCH_SEL 32
#define RANGE_MAX 41
#define TABLE_SIZE 64
#define SCALE_LOG 8
#define RESTART_MAX 10
#define SHIFT_BY 5
#endif
