/* Constants GCC multiplies by with strength-reduced chains (lea/shl/add/sub, no immediate).
 * The chain oracle test rewrites these lines in a copy, as the kernel oracle does. */
#ifndef CORPUS_CHAINS_H
#define CORPUS_CHAINS_H

#define CWND_SEGMENTS 10
#define BUSY_WEIGHT 8
#define TIGHT_FACTOR 10
#define LIVE_FACTOR 10

struct conn_like {
	unsigned int rcvbuf;
	unsigned short advmss;
	unsigned int window_clamp;
};
#endif
