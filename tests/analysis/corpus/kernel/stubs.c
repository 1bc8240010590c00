/* Out-of-line callees so the shapes above stay as GCC compiles them in the kernel. */
int work(int x) { return x + 1; }
int other(void) { return 0; }
void _start(void) { for (;;) ; }
unsigned long jiffies_like;
void lock_like(void *p) { (void)p; }
