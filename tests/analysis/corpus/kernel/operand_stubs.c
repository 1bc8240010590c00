/* Out-of-line callees of operands.c (another unit, as in the kernel: no inlining, no cloning). */
void fill_like(int *p) { *p = 0; }
int batch_like(void *a, void *b, long c, long d, int e, int f, int retries)
{
	return (int)(c + d) + e + f + retries + (a == b);
}
