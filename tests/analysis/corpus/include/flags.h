/* Constants whose instruction's flags are read afterwards, and a signed shift count. */
#ifndef FLAGS_H
#define FLAGS_H
#define SEQ_BATCH 16
#define STABLE_WAIT 150
#define INO_BATCH 1024
#define RATE_SCALE 8
#define SHIFT_READ 3
#define AF_BATCH 32
#endif
