/* Constants whose value, not encoding, is the hard part: multi-line macros, jiffies, pow2. */
#ifndef VALUES_H
#define VALUES_H
#define VALUES_HZ 250
#define MULTI_LIMIT \
	(VALUES_HZ / 2 + \
	 3)
#define MERGE_MS 600
#define ZERO_DELAY 0
#define DIV_POW2 8
#define MUL_POW2 32
/* the type's size comes from DWARF: 8192 / 32 */
#define PER_PAGE (8192 / sizeof(struct queue_like))

/* the kernel's msecs_to_jiffies() for a constant at HZ=250: folded, rounding up */
static inline unsigned long msecs_to_jiffies(const unsigned int m)
{
	return (m + 3) / 4;
}
#endif
