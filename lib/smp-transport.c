/* smp-transport: code shared by the transports (write queue, debug log) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "smp-transport-internal.h"

void smp_transport_logf(smp_transport_log_fn log, void *userdata, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log(LOG_DEBUG, msg, userdata);
}

int smp_txq_push(struct smp_txq *q, const uint8_t *data, size_t len)
{
	struct smp_txq_item *it;

	if (q->bytes + len > SMP_TXQ_LIMIT)
		return -ENOBUFS;
	it = malloc(sizeof(*it) + len);
	if (!it)
		return -ENOMEM;
	it->next = NULL;
	it->len = len;
	it->off = 0;
	it->first = true;
	memcpy(it->data, data, len);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->count++;
	q->bytes += len;
	return 0;
}

void smp_txq_pop(struct smp_txq *q)
{
	struct smp_txq_item *it = q->head;

	if (!it)
		return;
	q->head = it->next;
	if (!q->head)
		q->tail = NULL;
	q->count--;
	q->bytes -= it->len;
	free(it);
}

void smp_txq_clear(struct smp_txq *q)
{
	while (q->head)
		smp_txq_pop(q);
}

void smp_txq_truncate(struct smp_txq *q, size_t count)
{
	struct smp_txq_item **p = &q->head, *last = NULL;

	for (size_t i = 0; i < count && *p; i++) {
		last = *p;
		p = &(*p)->next;
	}
	while (*p) {
		struct smp_txq_item *it = *p;

		*p = it->next;
		q->count--;
		q->bytes -= it->len;
		free(it);
	}
	q->tail = last;
}
