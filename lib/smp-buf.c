/* smp-buf: a growable byte buffer with a sticky error, for building packets */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-buf.h"

void smp_buf_clear(struct smp_buf *b)
{
	free(b->data);
	*b = (struct smp_buf){ .limit = b->limit };
}

uint8_t *smp_buf_reserve(struct smp_buf *b, size_t n)
{
	if (b->err)
		return NULL;
	if (n > SIZE_MAX / 2 - b->len || (b->limit && b->len + n > b->limit)) {
		b->err = -EMSGSIZE;
		return NULL;
	}
	/* Allocate even for n == 0: callers get a real pointer, never NULL + 0. */
	if (b->len + n > b->cap || !b->data) {
		size_t cap = b->cap ? b->cap : 64;
		uint8_t *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->data = p;
		b->cap = cap;
	}
	return b->data + b->len;
}

void smp_buf_append(struct smp_buf *b, const void *p, size_t n)
{
	uint8_t *dst = smp_buf_reserve(b, n);

	if (!dst)
		return;
	if (n)
		memcpy(dst, p, n);
	b->len += n;
}

uint8_t *smp_buf_steal(struct smp_buf *b, size_t *ret_len)
{
	uint8_t *p = b->data;

	if (ret_len)
		*ret_len = b->len;
	*b = (struct smp_buf){ .limit = b->limit };
	return p;
}
