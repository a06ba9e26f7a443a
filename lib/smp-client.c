/* smp-client: one device's SMP session: sequence numbers, window, timeouts, retries, priorities */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "macro.h"
#include "smp-client.h"
#include "smp-os.h"

enum smp_params_state {
	SMP_PARAMS_UNKNOWN,
	SMP_PARAMS_QUERYING,
	SMP_PARAMS_KNOWN,
};

/* Where a pending entry is; it is on at most one list. */
enum smp_pending_where {
	SMP_PENDING_NOWHERE,
	SMP_PENDING_QUEUED,
	SMP_PENDING_WAITING,
	SMP_PENDING_IN_FLIGHT,
	SMP_PENDING_FAILING, /* collected to be failed (link loss) */
};

struct smp_pending {
	TAILQ_ENTRY(smp_pending) link;
	struct smp_client *client;
	uint64_t id; /* 0 for the client's own params query */
	struct smp_request *req; /* NULL for a params waiter */
	enum smp_priority prio;
	enum smp_pending_where where;
	unsigned timeout_ms;
	bool no_retransmit;
	/* Cancelled while in flight: the callback and destroy are gone; the
	 * entry only keeps its window slot until the device has answered. */
	bool cancelled;
	bool version_resent;
	unsigned retries_left;
	smp_client_done_fn cb;
	void *userdata;
	void (*destroy)(void *);

	uint8_t seq;
	uint8_t version;
	uint64_t tx_order;
	sd_event_source *timer;
};

TAILQ_HEAD(smp_pending_list, smp_pending);

struct smp_client_op {
	TAILQ_ENTRY(smp_client_op) link;
	uint64_t id;
	void (*cancel)(void *opdata);
	void *opdata;
};

struct smp_client {
	unsigned n_ref;
	sd_event *event;
	struct smp_transport *transport;
	struct smp_client_config cfg;
	sd_event_source *kick;

	struct smp_pending_list queue[2]; /* not sent yet, by priority */
	struct smp_pending_list waiters;  /* smp_client_query_params() callers */
	struct smp_pending_list in_flight; /* in transmission order */
	struct smp_pending_list failing;
	struct smp_pending *by_seq[256];
	unsigned n_in_flight;
	unsigned n_bulk_in_flight;
	TAILQ_HEAD(, smp_client_op) ops;

	uint8_t next_seq;
	uint8_t version;
	uint64_t next_id;
	uint64_t tx_counter;

	enum smp_params_state params;
	bool params_explicit;
	struct smp_pending *params_query;
	size_t buf_size;
	unsigned buf_count;

	smp_client_state_fn state_fn;
	void *state_userdata;
	void (*state_destroy)(void *);

	unsigned in_transport; /* transport callbacks on the stack */
	bool dispatching;
	bool freeing;
	struct smp_client_stats stats;
	smp_client_observer_fn observer;
	void *observer_userdata;
};

_printf_(2, 3) static void smp_client_debug(const struct smp_client *c, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!c->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	c->cfg.log(buf, c->cfg.log_userdata);
}

void smp_client_config_init(struct smp_client_config *cfg)
{
	*cfg = (struct smp_client_config){
		.timeout_ms = SMP_CLIENT_DEFAULT_TIMEOUT_MS,
		.udp_retries = SMP_CLIENT_DEFAULT_UDP_RETRIES,
		.max_window = SMP_CLIENT_DEFAULT_MAX_WINDOW,
		.discover_params = true,
		.version = SMP_VERSION_2,
	};
}

static void smp_client_noop_packet(struct smp_transport *t, const uint8_t *pkt, size_t len,
				   void *userdata)
{
}

static void smp_client_noop_state(struct smp_transport *t, int state, void *userdata)
{
}

/* A transport waiting to be freed from the loop: by a defer source, or by
 * an exit source when the loop is told to end before the defer ran (the
 * transport's own sources hold the loop, so otherwise neither would ever
 * go and the loop would leak with them). */
struct smp_client_reap {
	struct smp_transport *transport;
	sd_event_source *sources[2]; /* floating: owned by the loop */
	unsigned n_sources;
};

static void smp_client_reap_destroy(void *userdata)
{
	struct smp_client_reap *rp = userdata;

	if (--rp->n_sources > 0)
		return;
	smp_transport_free(rp->transport);
	free(rp);
}

static int smp_client_on_reap(sd_event_source *s __attribute__((unused)), void *userdata)
{
	struct smp_client_reap *rp = userdata;
	sd_event_source *sources[2] = { rp->sources[0], rp->sources[1] };

	smp_transport_free(rp->transport);
	rp->transport = NULL;
	/* Hand the loop's references back so both sources go; rp goes with
	 * the last one (after this returns: the loop holds the one it runs). */
	for (size_t i = 0; i < ELEMENTSOF(sources); i++) {
		if (!sources[i])
			continue;
		(void)sd_event_source_set_enabled(sources[i], SD_EVENT_OFF);
		(void)sd_event_source_set_floating(sources[i], false);
	}
	return 0;
}

/* Frees the transport from the loop once the callback it is in returns.
 * Returns 0, or -errno when no defer could be made (the caller frees it). */
static int smp_client_reap_later(struct smp_client *c)
{
	struct smp_client_reap *rp;

	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->transport = c->transport;
	for (size_t i = 0; i < ELEMENTSOF(rp->sources); i++) {
		sd_event_source *s;
		int r;

		r = i == 0 ? sd_event_add_defer(c->event, &s, smp_client_on_reap, rp)
			   : sd_event_add_exit(c->event, &s, smp_client_on_reap, rp);
		if (r >= 0) {
			r = sd_event_source_set_floating(s, true);
			if (r < 0)
				sd_event_source_unref(s);
		}
		if (r < 0) {
			if (i == 0) {
				free(rp);
				return r;
			}
			break; /* without the exit source: only a loop that ends first leaks */
		}
		(void)sd_event_source_set_description(s, i == 0 ? "smp-client-reap"
								 : "smp-client-reap-exit");
		(void)sd_event_source_set_destroy_callback(s, smp_client_reap_destroy);
		rp->sources[i] = s;
		rp->n_sources++;
		sd_event_source_unref(s); /* floating: the loop keeps it */
	}
	return 0;
}

static void smp_client_on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len,
				 void *userdata);
static void smp_client_on_state(struct smp_transport *t, int state, void *userdata);
static int smp_client_on_kick(sd_event_source *s, void *userdata);

int smp_client_new(sd_event *e, struct smp_transport *t, const struct smp_client_config *cfg,
		   struct smp_client **ret)
{
	_cleanup_(smp_transport_freep) struct smp_transport *transport = t;
	struct smp_client *c;
	int r;

	if (!e || !t)
		return -EINVAL;
	if (cfg && (cfg->max_window < 1 || cfg->max_window > SMP_CLIENT_WINDOW_LIMIT ||
		    cfg->timeout_ms == 0 || cfg->version > SMP_VERSION_2))
		return -EINVAL;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->n_ref = 1;
	if (cfg)
		c->cfg = *cfg;
	else
		smp_client_config_init(&c->cfg);
	for (size_t i = 0; i < ELEMENTSOF(c->queue); i++)
		TAILQ_INIT(&c->queue[i]);
	TAILQ_INIT(&c->waiters);
	TAILQ_INIT(&c->in_flight);
	TAILQ_INIT(&c->failing);
	TAILQ_INIT(&c->ops);
	c->next_seq = c->cfg.first_seq;
	c->version = c->cfg.version;
	c->next_id = 1;
	c->event = sd_event_ref(e);

	r = sd_event_add_defer(e, &c->kick, smp_client_on_kick, c);
	if (r < 0) {
		sd_event_unref(c->event);
		free(c);
		return r;
	}
	(void)sd_event_source_set_enabled(c->kick, SD_EVENT_OFF);
	(void)sd_event_source_set_description(c->kick, "smp-client-kick");

	c->transport = TAKE_PTR(transport);
	smp_transport_set_handlers(c->transport, smp_client_on_packet, smp_client_on_state, c);
	*ret = c;
	return 0;
}

/* Takes the entry off whatever list holds it. */
static void smp_pending_detach(struct smp_client *c, struct smp_pending *p)
{
	switch (p->where) {
	case SMP_PENDING_QUEUED:
		TAILQ_REMOVE(&c->queue[p->prio], p, link);
		break;
	case SMP_PENDING_WAITING:
		TAILQ_REMOVE(&c->waiters, p, link);
		break;
	case SMP_PENDING_IN_FLIGHT:
		TAILQ_REMOVE(&c->in_flight, p, link);
		if (c->by_seq[p->seq] == p)
			c->by_seq[p->seq] = NULL;
		c->n_in_flight--;
		if (p->prio == SMP_PRIO_BULK)
			c->n_bulk_in_flight--;
		break;
	case SMP_PENDING_FAILING:
		TAILQ_REMOVE(&c->failing, p, link);
		break;
	case SMP_PENDING_NOWHERE:
		break;
	}
	p->where = SMP_PENDING_NOWHERE;
	if (p == c->params_query)
		c->params_query = NULL;
}

static void smp_pending_free(struct smp_pending *p)
{
	sd_event_source_disable_unref(p->timer);
	smp_request_free(p->req);
	free(p);
}

/* Tells the observer how a caller's request ended; the client's own
 * params read (id 0) and params waiters (no request) are not the caller's. */
static void smp_client_observe(struct smp_client *c, struct smp_pending *p, int error,
			       const struct smp_response *rsp)
{
	if (!c->observer || p->id == 0 || !p->req)
		return;
	if (error == 0)
		error = rsp && !smp_response_ok(rsp) ? 1 : 0;
	c->observer(c, p->req->group, p->req->id, error, c->observer_userdata);
}

void smp_client_set_observer(struct smp_client *c, smp_client_observer_fn fn, void *userdata)
{
	c->observer = fn;
	c->observer_userdata = userdata;
}

/* Ends a request: off its list and timer first, then the callback, then
 * destroy. The caller holds a reference to the client. */
static void smp_client_complete(struct smp_client *c, struct smp_pending *p, int error,
				const struct smp_response *rsp)
{
	smp_pending_detach(c, p);
	p->timer = sd_event_source_disable_unref(p->timer);
	if (!p->cancelled)
		smp_client_observe(c, p, error, rsp);
	if (!p->cancelled && p->cb)
		p->cb(c, error, rsp, p->userdata);
	if (p->destroy)
		p->destroy(p->userdata);
	smp_pending_free(p);
}

static void smp_client_free(struct smp_client *c)
{
	struct smp_pending_list *lists[] = { &c->in_flight, &c->failing, &c->waiters,
					     &c->queue[SMP_PRIO_INTERACTIVE],
					     &c->queue[SMP_PRIO_BULK] };
	struct smp_client_op *op;

	c->freeing = true;
	for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
		struct smp_pending *p;

		while ((p = TAILQ_FIRST(lists[i]))) {
			smp_pending_detach(c, p);
			if (p->destroy)
				p->destroy(p->userdata);
			smp_pending_free(p);
		}
	}
	/* The params query is on no list until it is sent. */
	if (c->params_query) {
		struct smp_pending *p = c->params_query;

		smp_pending_detach(c, p);
		smp_pending_free(p);
	}
	/* Operations hold a reference, so none is left; be safe anyway. */
	while ((op = TAILQ_FIRST(&c->ops))) {
		TAILQ_REMOVE(&c->ops, op, link);
		free(op);
	}
	if (c->state_destroy)
		c->state_destroy(c->state_userdata);
	sd_event_source_disable_unref(c->kick);

	/* A transport freed inside its own callback would return into freed
	 * memory: free it from the loop once that callback is done. */
	smp_transport_set_handlers(c->transport, smp_client_noop_packet, smp_client_noop_state,
				   NULL);
	if (c->in_transport == 0 || smp_client_reap_later(c) < 0)
		smp_transport_free(c->transport);
	sd_event_unref(c->event);
	free(c);
}

struct smp_client *smp_client_ref(struct smp_client *c)
{
	if (c) {
		assert(c->n_ref > 0);
		c->n_ref++;
	}
	return c;
}

struct smp_client *smp_client_unref(struct smp_client *c)
{
	if (!c)
		return NULL;
	assert(c->n_ref > 0);
	if (--c->n_ref == 0)
		smp_client_free(c);
	return NULL;
}

/* Transport callbacks pin the client; the last reference may go at their
 * end, while the transport is still on the stack. */
static void smp_client_enter_transport(struct smp_client *c)
{
	c->n_ref++;
	c->in_transport++;
}

static void smp_client_leave_transport(struct smp_client *c)
{
	if (c->n_ref == 1) {
		c->n_ref = 0;
		smp_client_free(c);
		return;
	}
	c->n_ref--;
	c->in_transport--;
}

static void smp_client_kick(struct smp_client *c)
{
	int r = sd_event_source_set_enabled(c->kick, SD_EVENT_ONESHOT);

	if (r < 0)
		smp_client_debug(c, "cannot schedule sending: %d", r);
}

/* What Zephyr can hold (smp.c, smp_udp.c, smp_uart.c): every transport takes
 * one buffer of the buf_count pool per request as it arrives, without
 * waiting (K_NO_WAIT: none free, the request is dropped), and the worker
 * takes one more for the answer when it starts on a request, freeing both
 * once the answer is sent. Answers do not pile up (they go out before the
 * next request is started), so buf_count - 1 requests fit; one more can be
 * dropped while a request is being served. */
unsigned smp_client_get_window(const struct smp_client *c)
{
	unsigned w;

	if (c->params != SMP_PARAMS_KNOWN)
		return 1;
	w = c->buf_count > 1 ? c->buf_count - 1 : 1;
	return MIN(w, c->cfg.max_window);
}

/* Bulk requests may fill the window. A slot kept free for interactive
 * requests would buy little: the device serves in order, so an interactive
 * request waits behind the chunks already there in any case, and the next
 * answer frees a slot for it ahead of queued chunks. It would cost much:
 * a window of 3 less one slot is a third less throughput on a
 * latency-bound link. */
unsigned smp_client_get_bulk_window(const struct smp_client *c)
{
	return smp_client_get_window(c);
}

size_t smp_client_packet_budget(const struct smp_client *c)
{
	size_t buf_size = c->params == SMP_PARAMS_KNOWN ? c->buf_size : 0;
	size_t b = smp_transport_packet_budget(c->transport, buf_size);

	return MIN(b, (size_t)SMP_PACKET_MAX);
}

static void smp_client_on_timeout_cb(struct smp_client *c, struct smp_pending *p);

static int smp_client_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct smp_pending *p = userdata;
	struct smp_client *c = p->client;

	smp_client_ref(c);
	smp_client_on_timeout_cb(c, p);
	smp_client_unref(c);
	return 0;
}

static int smp_client_arm_timer(struct smp_client *c, struct smp_pending *p)
{
	uint64_t now, deadline;
	int r;

	r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	deadline = now + (uint64_t)(p->timeout_ms ? p->timeout_ms : c->cfg.timeout_ms) * 1000;
	if (!p->timer) {
		/* 1 ms accuracy: sd-event's default (250 ms) would blur short timeouts. */
		r = sd_event_add_time(c->event, &p->timer, CLOCK_MONOTONIC, deadline, 1000,
				      smp_client_on_timer, p);
		if (r < 0)
			return r;
		(void)sd_event_source_set_description(p->timer, "smp-client-timeout");
		return 0;
	}
	r = sd_event_source_set_time(p->timer, deadline);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

/* A sequence number no request in flight is using. */
static uint8_t smp_client_next_seq(struct smp_client *c)
{
	for (unsigned i = 0; i < 256; i++) {
		uint8_t seq = c->next_seq++;

		if (!c->by_seq[seq])
			return seq;
	}
	/* The window stays far below 256: cannot happen. */
	abort();
}

/* Sends p (queued, or in flight for a resend) with a new sequence number. */
static int smp_client_transmit(struct smp_client *c, struct smp_pending *p)
{
	uint8_t seq, version = c->version;
	int r;

	if (p->req->pkt.len > smp_client_packet_budget(c))
		return -EMSGSIZE;
	seq = smp_client_next_seq(c);
	r = smp_request_finish(p->req, version, seq);
	if (r < 0)
		return r;
	r = smp_client_arm_timer(c, p);
	if (r < 0)
		return r;
	r = smp_transport_send(c->transport, p->req->pkt.data, p->req->pkt.len);
	if (r < 0) {
		(void)sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
		return r;
	}

	if (p->where == SMP_PENDING_IN_FLIGHT) {
		/* A resend: the old sequence number is retired, late answers to it are dropped. */
		if (c->by_seq[p->seq] == p)
			c->by_seq[p->seq] = NULL;
		TAILQ_REMOVE(&c->in_flight, p, link);
	} else {
		assert(p->where == SMP_PENDING_NOWHERE);
		c->n_in_flight++;
		if (p->prio == SMP_PRIO_BULK)
			c->n_bulk_in_flight++;
		p->where = SMP_PENDING_IN_FLIGHT;
	}
	TAILQ_INSERT_TAIL(&c->in_flight, p, link);
	p->seq = seq;
	p->version = version;
	p->tx_order = ++c->tx_counter;
	c->by_seq[seq] = p;
	c->stats.bytes_sent += p->req->pkt.len;
	smp_client_debug(c, "sent seq %u group %u id %u op %u, %zu bytes", seq, p->req->group,
			 p->req->id, p->req->op, p->req->pkt.len);
	return 0;
}

static struct smp_pending *smp_pending_new(struct smp_client *c, struct smp_request *req,
					   const struct smp_client_send_opts *opts,
					   smp_client_done_fn cb, void *userdata,
					   void (*destroy)(void *))
{
	struct smp_pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->client = c;
	p->req = req;
	p->prio = opts->prio;
	p->timeout_ms = opts->timeout_ms;
	p->no_retransmit = opts->no_retransmit;
	p->retries_left = c->cfg.udp_retries;
	p->cb = cb;
	p->userdata = userdata;
	p->destroy = destroy;
	return p;
}

/* Fails every pending request, and those in flight too when asked. They
 * are collected first: callbacks may queue new requests, which are not
 * failed, and may cancel the ones still waiting for their turn here. */
static void smp_client_fail(struct smp_client *c, int error, bool in_flight)
{
	struct smp_pending_list *lists[] = { &c->in_flight, &c->waiters,
					     &c->queue[SMP_PRIO_INTERACTIVE],
					     &c->queue[SMP_PRIO_BULK] };
	struct smp_pending *p;

	if (c->params_query && c->params_query->where == SMP_PENDING_NOWHERE) {
		p = c->params_query;
		smp_pending_detach(c, p);
		TAILQ_INSERT_TAIL(&c->failing, p, link);
		p->where = SMP_PENDING_FAILING;
	}
	for (size_t i = in_flight ? 0 : 1; i < ELEMENTSOF(lists); i++)
		while ((p = TAILQ_FIRST(lists[i]))) {
			smp_pending_detach(c, p);
			TAILQ_INSERT_TAIL(&c->failing, p, link);
			p->where = SMP_PENDING_FAILING;
		}
	while ((p = TAILQ_FIRST(&c->failing)))
		smp_client_complete(c, p, error, NULL);
}

static void smp_client_on_params(struct smp_client *c, int error, const struct smp_response *rsp,
				 void *userdata)
{
	struct smp_os_params params;
	int r;

	if (c->params != SMP_PARAMS_QUERYING)
		return; /* the caller set them meanwhile */
	if (error == -ECONNRESET || error == -ENOTCONN || error == -ENOMEM) {
		/* The link failed, not the device: ask again next time. */
		c->params = SMP_PARAMS_UNKNOWN;
		smp_client_fail(c, error, false);
		return;
	}
	r = error < 0 ? error : smp_os_params_parse(rsp, &params);
	if (r >= 0 && params.buf_size >= SMP_HEADER_SIZE + 24) {
		c->buf_size = MIN((size_t)params.buf_size, (size_t)SMP_PACKET_MAX);
		c->buf_count = MAX(params.buf_count, 1u);
	} else {
		/* ENOTSUP, a timeout or nonsense: the defaults that always work (§13.4). */
		c->buf_size = SMP_CLIENT_FALLBACK_BUF_SIZE;
		c->buf_count = 1;
	}
	c->params = SMP_PARAMS_KNOWN;
	smp_client_debug(c, "params: buf_size %zu buf_count %u (%d), window %u", c->buf_size,
			 c->buf_count, r, smp_client_get_window(c));
}

static int smp_client_start_params_query(struct smp_client *c)
{
	const struct smp_client_send_opts opts = { .prio = SMP_PRIO_INTERACTIVE };
	struct smp_request *req;
	struct smp_pending *p;
	int r;

	r = smp_os_params_request(&req);
	if (r < 0)
		return r;
	p = smp_pending_new(c, req, &opts, smp_client_on_params, NULL, NULL);
	if (!p) {
		smp_request_free(req);
		return -ENOMEM;
	}
	c->params_query = p;
	c->params = SMP_PARAMS_QUERYING;
	return 0;
}

static bool smp_client_has_work(const struct smp_client *c)
{
	return !TAILQ_EMPTY(&c->waiters) || !TAILQ_EMPTY(&c->queue[SMP_PRIO_INTERACTIVE]) ||
	       !TAILQ_EMPTY(&c->queue[SMP_PRIO_BULK]);
}

/* Sends what the window allows: params first, then waiters, interactive, bulk. */
static void smp_client_dispatch(struct smp_client *c)
{
	if (c->dispatching || c->freeing)
		return;
	c->dispatching = true;
	smp_client_ref(c);

	for (;;) {
		struct smp_pending *p;
		int r;

		if (c->params == SMP_PARAMS_UNKNOWN) {
			if (!smp_client_has_work(c))
				break;
			if (!c->cfg.discover_params) {
				c->params = SMP_PARAMS_KNOWN;
				continue;
			}
			r = smp_client_start_params_query(c);
			if (r < 0) {
				smp_client_fail(c, r, false);
				break;
			}
		}
		if (c->params == SMP_PARAMS_QUERYING) {
			p = c->params_query;
			if (!p || p->where != SMP_PENDING_NOWHERE || c->n_in_flight > 0)
				break;
			r = smp_client_transmit(c, p);
			if (r < 0) {
				smp_client_complete(c, p, r, NULL);
				/* Back to the loop first: a caller that resends on
				 * every failure must not spin here. */
				smp_client_kick(c);
				break;
			}
			continue;
		}

		p = TAILQ_FIRST(&c->waiters);
		if (p) {
			smp_client_complete(c, p, 0, NULL);
			continue;
		}
		p = TAILQ_FIRST(&c->queue[SMP_PRIO_INTERACTIVE]);
		if (!p || c->n_in_flight >= smp_client_get_window(c)) {
			p = TAILQ_FIRST(&c->queue[SMP_PRIO_BULK]);
			if (!p || c->n_in_flight >= smp_client_get_window(c) ||
			    c->n_bulk_in_flight >= smp_client_get_bulk_window(c))
				break;
		}
		smp_pending_detach(c, p);
		r = smp_client_transmit(c, p);
		if (r < 0) {
			smp_client_complete(c, p, r, NULL);
			smp_client_kick(c);
			break;
		}
	}

	c->dispatching = false;
	smp_client_unref(c);
}

static int smp_client_on_kick(sd_event_source *s, void *userdata)
{
	smp_client_dispatch(userdata);
	return 0;
}

static void smp_client_on_timeout_cb(struct smp_client *c, struct smp_pending *p)
{
	int r;

	c->stats.timeouts++;
	if (p->cancelled) {
		smp_pending_detach(c, p);
		smp_pending_free(p);
	} else if (c->transport->link == SMP_LINK_UDP && !p->no_retransmit &&
		   p->retries_left > 0) {
		p->retries_left--;
		c->stats.retransmits++;
		smp_client_debug(c, "seq %u timed out, retransmitting", p->seq);
		r = smp_client_transmit(c, p);
		if (r < 0)
			smp_client_complete(c, p, r, NULL);
	} else {
		smp_client_debug(c, "seq %u timed out", p->seq);
		smp_client_complete(c, p, -ETIMEDOUT, NULL);
	}
	smp_client_dispatch(c);
}

/* The device serves requests in order: cancelled requests sent before the
 * one just answered will not be answered any more; free their slots. */
static void smp_client_release_cancelled_before(struct smp_client *c, struct smp_pending *p)
{
	struct smp_pending *q, *next;

	for (q = TAILQ_FIRST(&c->in_flight); q && q != p; q = next) {
		next = TAILQ_NEXT(q, link);
		if (q->cancelled) {
			smp_pending_detach(c, q);
			smp_pending_free(q);
		}
	}
}

/* Resends p for a version change; true when it was resent (or failed). */
static bool smp_client_version_fallback(struct smp_client *c, struct smp_pending *p,
					const struct smp_response *rsp)
{
	uint8_t to;
	int r;

	if (c->cfg.fixed_version || p->version_resent || rsp->status.kind != SMP_STATUS_RC)
		return false;
	if (rsp->status.rc == SMP_RC_UNSUPPORTED_TOO_NEW && p->version == SMP_VERSION_2)
		to = SMP_VERSION_1;
	else if (rsp->status.rc == SMP_RC_UNSUPPORTED_TOO_OLD && p->version == SMP_VERSION_1)
		to = SMP_VERSION_2;
	else
		return false;

	smp_client_debug(c, "device refused SMP v%u (rc %lld), switching to v%u", p->version + 1,
			 (long long)rsp->status.rc, to + 1);
	c->version = to;
	p->version_resent = true;
	c->stats.retransmits++;
	r = smp_client_transmit(c, p);
	if (r < 0)
		smp_client_complete(c, p, r, NULL);
	return true;
}

static void smp_client_handle_packet(struct smp_client *c, const uint8_t *pkt, size_t len)
{
	_cleanup_(smp_response_freep) struct smp_response *rsp = NULL;
	struct smp_pending *p;
	struct smp_header h;
	int r;

	c->stats.bytes_received += len;
	r = smp_header_decode(pkt, len, &h);
	p = r < 0 ? NULL : c->by_seq[h.seq];
	if (!p || h.group != p->req->group || h.id != p->req->id || h.op != p->req->op + 1) {
		c->stats.stale++;
		smp_client_debug(c, "dropped a %zu-byte packet that matches no request (seq %d)",
				 len, r < 0 ? -1 : h.seq);
		return;
	}
	c->stats.responses++;
	smp_client_release_cancelled_before(c, p);
	if (p->cancelled) {
		smp_pending_detach(c, p);
		smp_pending_free(p);
		return;
	}

	r = smp_response_decode(pkt, len, &rsp);
	if (r < 0) {
		smp_client_complete(c, p, r == -ENOMEM ? -ENOMEM : -EBADMSG, NULL);
		return;
	}
	if (smp_client_version_fallback(c, p, rsp))
		return;
	if (!c->cfg.fixed_version && p->version == SMP_VERSION_2 &&
	    rsp->hdr.version == SMP_VERSION_1 && c->version == SMP_VERSION_2) {
		smp_client_debug(c, "device answers SMP v1, switching to v1");
		c->version = SMP_VERSION_1;
	}
	smp_client_complete(c, p, 0, rsp);
}

static void smp_client_on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len,
				 void *userdata)
{
	struct smp_client *c = userdata;

	smp_client_enter_transport(c);
	smp_client_handle_packet(c, pkt, len);
	smp_client_dispatch(c);
	smp_client_leave_transport(c);
}

static void smp_client_on_state(struct smp_transport *t, int state, void *userdata)
{
	struct smp_client *c = userdata;

	smp_client_enter_transport(c);
	smp_client_debug(c, "link %s (%d)", state < 0 ? "lost" : "up", state);
	if (state < 0) {
		smp_client_fail(c, -ECONNRESET, true);
		if (!c->params_explicit) {
			c->params = SMP_PARAMS_UNKNOWN;
			c->buf_size = 0;
			c->buf_count = 0;
		}
		c->version = c->cfg.version;
	}
	if (c->state_fn)
		c->state_fn(c, state, c->state_userdata);
	if (state >= 0)
		smp_client_dispatch(c);
	smp_client_leave_transport(c);
}

int smp_client_send_opts(struct smp_client *c, struct smp_request *req,
			 const struct smp_client_send_opts *opts, smp_client_done_fn cb,
			 void *userdata, void (*destroy)(void *), uint64_t *ret_id)
{
	_cleanup_(smp_request_freep) struct smp_request *r = req;
	struct smp_pending *p;
	int err;

	if (!c || !r || !opts || (opts->prio != SMP_PRIO_INTERACTIVE && opts->prio != SMP_PRIO_BULK))
		return -EINVAL;
	if (c->freeing)
		return -ESHUTDOWN;
	err = smp_buf_error(&r->pkt);
	if (err < 0)
		return err;
	if (c->params == SMP_PARAMS_KNOWN && r->pkt.len > smp_client_packet_budget(c))
		return -EMSGSIZE;

	p = smp_pending_new(c, r, opts, cb, userdata, destroy);
	if (!p)
		return -ENOMEM;
	TAKE_PTR(r);
	p->id = c->next_id++;
	p->where = SMP_PENDING_QUEUED;
	TAILQ_INSERT_TAIL(&c->queue[p->prio], p, link);
	c->stats.requests++;
	smp_client_kick(c);
	if (ret_id)
		*ret_id = p->id;
	return 0;
}

int smp_client_send(struct smp_client *c, struct smp_request *req, enum smp_priority prio,
		    unsigned timeout_ms, smp_client_done_fn cb, void *userdata,
		    void (*destroy)(void *), uint64_t *ret_id)
{
	const struct smp_client_send_opts opts = { .prio = prio, .timeout_ms = timeout_ms };

	return smp_client_send_opts(c, req, &opts, cb, userdata, destroy, ret_id);
}

int smp_client_query_params(struct smp_client *c, smp_client_done_fn cb, void *userdata,
			    void (*destroy)(void *), uint64_t *ret_id)
{
	const struct smp_client_send_opts opts = { .prio = SMP_PRIO_INTERACTIVE };
	struct smp_pending *p;

	if (!c)
		return -EINVAL;
	if (c->freeing)
		return -ESHUTDOWN;
	p = smp_pending_new(c, NULL, &opts, cb, userdata, destroy);
	if (!p)
		return -ENOMEM;
	p->id = c->next_id++;
	p->where = SMP_PENDING_WAITING;
	TAILQ_INSERT_TAIL(&c->waiters, p, link);
	smp_client_kick(c);
	if (ret_id)
		*ret_id = p->id;
	return 0;
}

void smp_client_set_params(struct smp_client *c, size_t buf_size, unsigned buf_count)
{
	c->buf_size = MIN(buf_size, (size_t)SMP_PACKET_MAX);
	c->buf_count = MAX(buf_count, 1u);
	c->params = SMP_PARAMS_KNOWN;
	c->params_explicit = true;
	smp_client_kick(c);
}

static struct smp_pending *smp_client_find(struct smp_client *c, uint64_t id)
{
	struct smp_pending_list *lists[] = { &c->in_flight, &c->failing, &c->waiters,
					     &c->queue[SMP_PRIO_INTERACTIVE],
					     &c->queue[SMP_PRIO_BULK] };
	struct smp_pending *p;

	for (size_t i = 0; i < ELEMENTSOF(lists); i++)
		TAILQ_FOREACH(p, lists[i], link)
			if (p->id == id && !p->cancelled)
				return p;
	return NULL;
}

int smp_client_cancel(struct smp_client *c, uint64_t id)
{
	struct smp_client_op *op;
	struct smp_pending *p;
	void (*destroy)(void *);
	void *userdata;

	if (!c || id == 0)
		return -ENOENT;
	TAILQ_FOREACH(op, &c->ops, link)
		if (op->id == id) {
			void (*cancel)(void *) = op->cancel;
			void *opdata = op->opdata;

			TAILQ_REMOVE(&c->ops, op, link);
			free(op);
			cancel(opdata);
			return 0;
		}

	p = smp_client_find(c, id);
	if (!p)
		return -ENOENT;
	smp_client_observe(c, p, -ECANCELED, NULL);
	destroy = p->destroy;
	userdata = p->userdata;
	p->cb = NULL;
	p->destroy = NULL;
	p->userdata = NULL;
	if (p->where == SMP_PENDING_IN_FLIGHT) {
		/* The device still holds it: keep the slot until it answers. */
		p->cancelled = true;
	} else {
		smp_pending_detach(c, p);
		smp_pending_free(p);
	}
	if (destroy)
		destroy(userdata);
	return 0;
}

int smp_client_op_register(struct smp_client *c, void (*cancel)(void *opdata), void *opdata,
			   uint64_t *ret_id)
{
	struct smp_client_op *op;

	if (!c || !cancel)
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->id = c->next_id++;
	op->cancel = cancel;
	op->opdata = opdata;
	TAILQ_INSERT_TAIL(&c->ops, op, link);
	*ret_id = op->id;
	return 0;
}

void smp_client_op_unregister(struct smp_client *c, uint64_t id)
{
	struct smp_client_op *op;

	TAILQ_FOREACH(op, &c->ops, link)
		if (op->id == id) {
			TAILQ_REMOVE(&c->ops, op, link);
			free(op);
			return;
		}
}

struct smp_client_reset_call {
	smp_client_done_fn cb;
	void *userdata;
	void (*destroy)(void *);
};

static void smp_client_on_reset(struct smp_client *c, int error, const struct smp_response *rsp,
				void *userdata)
{
	struct smp_client_reset_call *call = userdata;

	/* The device reboots right after answering; a link that drops meanwhile
	 * means the reset happened (§5.6, §16.12). */
	if (error == -ECONNRESET)
		error = 0;
	if (call->cb)
		call->cb(c, error, rsp, call->userdata);
}

static void smp_client_reset_call_free(void *userdata)
{
	struct smp_client_reset_call *call = userdata;

	if (call->destroy)
		call->destroy(call->userdata);
	free(call);
}

int smp_client_reset_device(struct smp_client *c, bool force, int boot_mode, unsigned timeout_ms,
			    smp_client_done_fn cb, void *userdata, void (*destroy)(void *),
			    uint64_t *ret_id)
{
	const struct smp_client_send_opts opts = {
		.prio = SMP_PRIO_INTERACTIVE,
		.timeout_ms = timeout_ms,
		.no_retransmit = true,
	};
	struct smp_client_reset_call *call;
	struct smp_request *req;
	int r;

	if (!c)
		return -EINVAL;
	r = smp_os_reset_request(force, boot_mode, &req);
	if (r < 0)
		return r;
	call = malloc(sizeof(*call));
	if (!call) {
		smp_request_free(req);
		return -ENOMEM;
	}
	*call = (struct smp_client_reset_call){ cb, userdata, destroy };
	r = smp_client_send_opts(c, req, &opts, smp_client_on_reset, call,
				 smp_client_reset_call_free, ret_id);
	if (r < 0)
		free(call);
	return r;
}

void smp_client_set_state_handler(struct smp_client *c, smp_client_state_fn fn, void *userdata,
				  void (*destroy)(void *))
{
	void (*old_destroy)(void *) = c->state_destroy;
	void *old_userdata = c->state_userdata;

	c->state_fn = fn;
	c->state_userdata = userdata;
	c->state_destroy = destroy;
	if (old_destroy)
		old_destroy(old_userdata);
}

size_t smp_client_get_buf_size(const struct smp_client *c)
{
	return c->params == SMP_PARAMS_KNOWN ? c->buf_size : 0;
}

unsigned smp_client_get_buf_count(const struct smp_client *c)
{
	return c->params == SMP_PARAMS_KNOWN ? c->buf_count : 0;
}

bool smp_client_params_known(const struct smp_client *c)
{
	return c->params == SMP_PARAMS_KNOWN;
}

unsigned smp_client_get_in_flight(const struct smp_client *c)
{
	return c->n_in_flight;
}

uint8_t smp_client_get_version(const struct smp_client *c)
{
	return c->version;
}

enum smp_link smp_client_get_link(const struct smp_client *c)
{
	return c->transport->link;
}

sd_event *smp_client_get_event(const struct smp_client *c)
{
	return c->event;
}

unsigned smp_client_get_default_timeout(const struct smp_client *c)
{
	return c->cfg.timeout_ms;
}

void smp_client_get_stats(const struct smp_client *c, struct smp_client_stats *ret)
{
	*ret = c->stats;
}
