/* smp-transport-internal: what the transports share (write queue, debug log), not for callers */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The optional debug hook every transport config carries. lib/ never logs above
 * debug, so prio is always LOG_DEBUG (7) today; it is passed so the caller can
 * route it like its own messages. msg has no trailing newline. */
typedef void (*smp_transport_log_fn)(int prio, const char *msg, void *userdata);

void smp_transport_logf(smp_transport_log_fn log, void *userdata, const char *fmt, ...)
    _printf_(3, 4);

/* Outgoing data waiting for the descriptor to become writable. Items are written
 * in order; off counts the bytes of the head already written (stream links write
 * partially, packet links all or nothing). */
struct smp_txq_item {
	struct smp_txq_item *next;
	size_t len;
	size_t off;
	bool first; /* the first piece of a packet split over several items */
	uint8_t data[];
};

struct smp_txq {
	struct smp_txq_item *head, *tail;
	size_t count;
	size_t bytes;
};

/* Bytes a transport queues before send() answers -ENOBUFS: the client keeps only a
 * few requests in flight, so reaching this means the link has stalled. */
#define SMP_TXQ_LIMIT (1024 * 1024)

/* Copies len bytes to the tail. Returns 0, -ENOBUFS past SMP_TXQ_LIMIT, -ENOMEM. */
int smp_txq_push(struct smp_txq *q, const uint8_t *data, size_t len);
/* Frees the head item. */
void smp_txq_pop(struct smp_txq *q);
void smp_txq_clear(struct smp_txq *q);
/* Keeps the first count items, frees the rest. */
void smp_txq_truncate(struct smp_txq *q, size_t count);
