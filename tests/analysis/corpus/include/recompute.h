/* Constants the corpus adds into a value (lea, add to memory): fixed up by save-recompute. */
#ifndef RECOMPUTE_H
#define RECOMPUTE_H
#define LEA_MIN_US 2000
#define STAMP_STEP 3000
#define FLAG_ADD 777
#define EXPIRE_AGE 30000
#define INDEXED_AGE 30000
#endif
