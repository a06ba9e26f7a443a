/* smp-buf: a growable byte buffer with a sticky error, for building packets */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends never fail loudly: the first failure (-ENOMEM, or -EMSGSIZE past
 * limit) is remembered in err and later appends are no-ops, so a builder can
 * write a whole message and check smp_buf_error() once at the end.
 * limit == 0 means unbounded. */
struct smp_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t limit;
	int err;
};

#define SMP_BUF_INIT { 0 }

void smp_buf_clear(struct smp_buf *b);
/* Makes room for n more bytes; returns a pointer to them or NULL (error recorded). */
uint8_t *smp_buf_reserve(struct smp_buf *b, size_t n);
void smp_buf_append(struct smp_buf *b, const void *p, size_t n);
static inline int smp_buf_error(const struct smp_buf *b)
{
	return b->err;
}
/* Hands the bytes to the caller (who frees them) and resets the buffer. */
uint8_t *smp_buf_steal(struct smp_buf *b, size_t *ret_len);
