/* Constants the corpus adds into a value (lea, add to memory): fixed up by save-recompute. */
#ifndef RECOMPUTE_H
#define RECOMPUTE_H
#define LEA_MIN_US 2000
#define STAMP_STEP 3000
#define FLAG_ADD 777
#define EXPIRE_AGE 30000
#define INDEXED_AGE 30000
#define FLUSH_AGE 500
#define EWMA_FACTOR 4
#define HALF_DIV 2
#define QUARTER_DIV 4
#define FIT_MARGIN 1280
#define PERIOD_T 7

struct buf_like {
	unsigned long firstuse;
	void *sb;
};

/* The constant arrives as ``time``: GCC gives its 'sub' this line, not the caller's. */
static inline void *due_buf(struct buf_like *b, unsigned long now, unsigned long time)
{
	void *sb = b->sb;

	if (sb && (long)(now - b->firstuse - time) >= 0) {
		b->sb = 0;
		return sb;
	}
	return 0;
}
#endif
