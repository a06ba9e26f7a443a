/* gw-devices: one shared SMP client per device, opened on demand, with the BLE connection budget */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-metrics.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-static.h"
#include "lib/macro.h"
#include "lib/smp-ble-link.h"
#include "lib/smp-header.h"
#include "lib/smp-serial-link.h"
#include "lib/smp-udp.h"

#define LOG "devices"

/*
 * Each device that is talked to gets a struct gw_live in d->live: its client
 * (one reference, ours), the requests waiting for the link and the calls
 * sent on it. Callers queue "ops": a get_client or a call. An op waits on
 * its device until the link is up, then is served from one defer source
 * ("gw-devices-dispatch"), which also runs the callbacks of failed ops and
 * hands free BLE slots to the devices queued for one. Nothing calls back
 * into the caller from inside an API function.
 *
 * Every packet from the device goes through a wrapper of the transport's
 * packet handler that tells the registry the device was seen, so uploads
 * that use the client directly count too.
 *
 * A new client starts with the MCUmgr params the device reported (the
 * registry's "params" section) instead of reading them again: one round
 * trip less for every poll round of a UDP device (whose socket closes
 * between rounds) and for every upload. Params are the firmware's build
 * configuration, so they go stale only when the firmware changes, which
 * takes a reset: the registry's copy is trusted only while the poller
 * keeps it fresh ([poll] interval not 0: it reads params again when the
 * device comes online and when its image state changes), and not after
 * gw_devices_close() (what the rollout engine calls after a reset), a lost
 * link or the device going offline, until the device reports params again.
 * A report also updates the client of a live link.
 */

enum live_state {
	LIVE_CLOSED,     /* no link */
	LIVE_QUEUED,     /* BLE: waiting for a slot of the budget */
	LIVE_CONNECTING, /* BLE: BlueZ connects and resolves the GATT service */
	LIVE_UP,
};

enum op_kind {
	OP_GET,
	OP_CALL,
};

enum op_state {
	OP_WAITING,   /* on live->waiters */
	OP_FAILED,    /* on ds->failed: its callback runs from the dispatch source */
	OP_SENT,      /* on live->sent: the client owns the request */
	OP_DONE,      /* its callback ran; the client's destroy frees it */
	OP_CANCELLED, /* gw_devices_cancel(): the client's destroy frees it */
};

struct gw_live;

struct gw_devices_op {
	TAILQ_ENTRY(gw_devices_op) link; /* live->waiters, live->sent or ds->failed */
	TAILQ_ENTRY(gw_devices_op) all;  /* ds->ops while it can be cancelled */
	struct gw_devices *ds;
	struct gw_live *live; /* NULL once failed */
	enum op_kind kind;
	enum op_state state;
	uint64_t id;
	int error;
	gw_devices_client_fn get_cb;
	smp_client_done_fn call_cb;
	struct smp_request *req;
	enum smp_priority prio;
	unsigned timeout_ms;
	uint64_t client_id;
	void *userdata;
	void (*destroy)(void *);
};

TAILQ_HEAD(gw_devices_op_list, gw_devices_op);

struct gw_live {
	struct gw_devices *ds;
	struct gw_device *d;
	TAILQ_ENTRY(gw_live) all;   /* ds->lives */
	TAILQ_ENTRY(gw_live) queue; /* ds->ble_queue (QUEUED), ds->ble_links (BLE, open) */
	TAILQ_ENTRY(gw_live) serve; /* ds->serve: has waiters and is up */
	bool serving;
	enum live_state state;
	enum gw_transport transport;  /* of the link, as it was opened */
	struct smp_client *client;
	struct smp_transport *link;   /* owned by client */
	smp_transport_packet_fn fwd_packet;
	smp_transport_state_fn fwd_state;
	void *fwd_userdata;
	char *address;                /* what the link was opened to */
	sd_event_source *idle;
	uint64_t last_used_usec;      /* CLOCK_MONOTONIC */
	uint64_t requests_mark;       /* client requests counted at the last look */
	unsigned holds;
	bool failure_logged;
	bool params_suspect;          /* reset or offline: the registry's params may be
				       * of other firmware until reported again */
	struct gw_devices_op_list waiters;
	struct gw_devices_op_list sent;
};

TAILQ_HEAD(gw_live_list, gw_live);

struct gw_devices {
	struct gw_manager *m;
	sd_event_source *dispatch;
	struct gw_live_list lives;
	struct gw_live_list ble_queue;
	struct gw_live_list ble_links;
	struct gw_live_list serve;
	struct gw_devices_op_list ops;
	struct gw_devices_op_list failed;
	unsigned n_ble;
	unsigned ble_max;
	uint64_t ble_idle_usec; /* 0: never */
	bool seed_params;       /* new clients start with the reported params */
	struct smp_client_config ccfg;
	uint64_t next_id;
	bool freeing;
};

static void gw_devices_kick(struct gw_devices *ds)
{
	(void)sd_event_source_set_enabled(ds->dispatch, SD_EVENT_ONESHOT);
}

static uint64_t gw_devices_now(struct gw_devices *ds)
{
	uint64_t now = 0;

	(void)sd_event_now(ds->m->event, CLOCK_MONOTONIC, &now);
	return now;
}

static struct gw_devices_op *gw_devices_op_free(struct gw_devices_op *op)
{
	if (!op)
		return NULL;
	smp_request_free(op->req);
	free(op);
	return NULL;
}

/* Ends an op that never reached the device: the callback from the loop. */
static void gw_devices_op_fail(struct gw_devices_op *op, int error)
{
	op->state = OP_FAILED;
	op->error = error;
	op->live = NULL;
	TAILQ_INSERT_TAIL(&op->ds->failed, op, link);
	gw_devices_kick(op->ds);
}

/* Runs a failed op's callback and destroy; it is off every list. */
static void gw_devices_op_finish(struct gw_devices_op *op)
{
	if (op->kind == OP_GET && op->get_cb)
		op->get_cb(op->ds, op->error, NULL, op->userdata);
	else if (op->kind == OP_CALL && op->call_cb)
		op->call_cb(NULL, op->error, NULL, op->userdata);
	if (op->destroy)
		op->destroy(op->userdata);
	gw_devices_op_free(op);
}

/* ---- the per-device state ---- */

static uint64_t gw_live_idle_usec(struct gw_live *live)
{
	switch (live->transport) {
	case GW_TRANSPORT_BLE:
		return live->ds->ble_idle_usec;
	case GW_TRANSPORT_UDP:
		return (uint64_t)GW_DEVICES_UDP_IDLE_MS * 1000;
	case GW_TRANSPORT_SERIAL:
		break;
	}
	return 0;
}

static void gw_live_arm_idle(struct gw_live *live, uint64_t now)
{
	if (!live->idle)
		return;
	(void)sd_event_source_set_time(live->idle, now + gw_live_idle_usec(live));
	(void)sd_event_source_set_enabled(live->idle, SD_EVENT_ONESHOT);
}

/* The device was used now: LRU order and the idle timeout restart. */
static void gw_live_touch(struct gw_live *live)
{
	struct smp_client_stats st;

	live->last_used_usec = gw_devices_now(live->ds);
	if (live->client) {
		smp_client_get_stats(live->client, &st);
		live->requests_mark = st.requests;
	}
	gw_live_arm_idle(live, live->last_used_usec);
}

/* Whether the link carries or awaits work. Callers that took the client
 * from gw_devices_get_client() and send on it directly are seen through
 * the client: requests in flight, or sent since the last look (a request
 * queued in the client is not in flight until its kick runs). */
static bool gw_live_busy(struct gw_live *live)
{
	struct smp_client_stats st;

	if (live->holds > 0 || !TAILQ_EMPTY(&live->waiters) || !TAILQ_EMPTY(&live->sent))
		return true;
	if (!live->client)
		return false;
	if (smp_client_get_in_flight(live->client) > 0)
		return true;
	smp_client_get_stats(live->client, &st);
	if (st.requests != live->requests_mark) {
		gw_live_touch(live);
		return true;
	}
	return false;
}

static void gw_live_serve(struct gw_live *live)
{
	if (live->serving || TAILQ_EMPTY(&live->waiters))
		return;
	live->serving = true;
	TAILQ_INSERT_TAIL(&live->ds->serve, live, serve);
	gw_devices_kick(live->ds);
}

/* Logs once per run of failures that a device said to be online cannot be
 * reached: discovery or the poller decide about online, this is a hint. */
static void gw_live_report_failure(struct gw_live *live, int error)
{
	if (live->failure_logged || !live->d->online)
		return;
	live->failure_logged = true;
	gw_log_errno(LOG_INFO, error, LOG, "%s: cannot open a link to %s: %m", live->d->id,
		     live->d->address);
}

/* Takes the link down. Waiting ops fail with waiter_error, calls sent on
 * the link with sent_error (their answers will not come: BLE is
 * disconnected; UDP and serial answers are dropped with the client). */
static void gw_live_close(struct gw_live *live, int waiter_error, int sent_error)
{
	struct gw_devices *ds = live->ds;
	struct smp_client *c = live->client;
	struct gw_devices_op *op;

	while ((op = TAILQ_FIRST(&live->waiters))) {
		TAILQ_REMOVE(&live->waiters, op, link);
		gw_devices_op_fail(op, waiter_error);
	}
	if (live->state == LIVE_QUEUED)
		TAILQ_REMOVE(&ds->ble_queue, live, queue);
	else if (live->state != LIVE_CLOSED && live->transport == GW_TRANSPORT_BLE) {
		TAILQ_REMOVE(&ds->ble_links, live, queue);
		ds->n_ble--;
		/* A free slot: a queued device may take it. */
		gw_devices_kick(ds);
	}
	live->state = LIVE_CLOSED;
	live->idle = sd_event_source_disable_unref(live->idle);
	free(live->address);
	live->address = NULL;
	if (!c)
		return;

	live->client = NULL;
	while ((op = TAILQ_FIRST(&live->sent))) {
		TAILQ_REMOVE(&live->sent, op, link);
		/* Failed first: the destroy that cancel runs leaves it alone. */
		gw_devices_op_fail(op, sent_error);
		(void)smp_client_cancel(c, op->client_id);
	}
	/* Its totals so far go to /metrics; whoever still holds it is not counted. */
	gw_metrics_remove_client(ds->m->metrics, c);
	smp_client_set_state_handler(c, NULL, NULL, NULL);
	/* Someone else may still hold the client: it must not call us again. */
	smp_transport_set_handlers(live->link, live->fwd_packet, live->fwd_state,
				   live->fwd_userdata);
	if (live->transport == GW_TRANSPORT_BLE)
		(void)smp_ble_link_disconnect(live->link);
	live->link = NULL;
	smp_client_unref(c);
}

static void gw_live_free(struct gw_live *live)
{
	struct gw_devices *ds = live->ds;

	gw_live_close(live, -ECANCELED, -ECANCELED);
	if (live->serving)
		TAILQ_REMOVE(&ds->serve, live, serve);
	TAILQ_REMOVE(&ds->lives, live, all);
	live->d->live = NULL;
	free(live);
}

/* Forgets a device nobody uses; a logged failure is kept to log it once,
 * suspect params to keep them from seeding the next client. */
static void gw_live_maybe_free(struct gw_live *live)
{
	if (live->state != LIVE_CLOSED || live->holds > 0 || live->failure_logged ||
	    live->params_suspect || !TAILQ_EMPTY(&live->waiters) || !TAILQ_EMPTY(&live->sent))
		return;
	gw_live_free(live);
}

static struct gw_live *gw_live_get(struct gw_devices *ds, struct gw_device *d)
{
	struct gw_live *live = d->live;

	if (live)
		return live;
	live = calloc(1, sizeof(*live));
	if (!live)
		return NULL;
	live->ds = ds;
	live->d = d;
	TAILQ_INIT(&live->waiters);
	TAILQ_INIT(&live->sent);
	TAILQ_INSERT_TAIL(&ds->lives, live, all);
	d->live = live;
	return live;
}

static void gw_live_on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len,
			      void *userdata)
{
	struct gw_live *live = userdata;

	gw_registry_seen(live->ds->m->registry, live->d);
	/* May close the link and free live: nothing after this. */
	live->fwd_packet(t, pkt, len, live->fwd_userdata);
}

static void gw_live_on_transport_state(struct smp_transport *t, int state, void *userdata)
{
	struct gw_live *live = userdata;

	live->fwd_state(t, state, live->fwd_userdata);
}

static void gw_live_on_client_state(struct smp_client *c, int state, void *userdata)
{
	struct gw_live *live = userdata;

	if (state >= 0) {
		if (live->state == LIVE_CONNECTING) {
			gw_debug(LOG, "%s: link up", live->d->id);
			live->state = LIVE_UP;
			live->failure_logged = false;
			gw_live_touch(live);
			gw_live_serve(live);
		}
		return;
	}
	if (live->state == LIVE_CONNECTING) {
		gw_live_report_failure(live, state);
		gw_live_close(live, state, state);
	} else {
		gw_log_errno(LOG_DEBUG, state, LOG, "%s: link lost: %m", live->d->id);
		/* As the client forgets them: the device may come back with other firmware. */
		live->params_suspect = true;
		gw_live_close(live, -ECONNRESET, -ECONNRESET);
	}
	gw_live_maybe_free(live);
}

static int gw_live_on_idle(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_live *live = userdata;

	if (gw_live_busy(live)) {
		gw_live_arm_idle(live, gw_devices_now(live->ds));
		return 0;
	}
	gw_debug(LOG, "%s: idle, closing its link", live->d->id);
	gw_live_close(live, -ECONNRESET, -ECONNRESET);
	gw_live_maybe_free(live);
	return 0;
}

/* Debug lines of libsmp. Without the device's name: the link and the client
 * may outlive our state (a caller holds the client), so they get nothing of
 * ours to point to. */
static void gw_devices_link_log(int prio, const char *msg, void *userdata)
{
	gw_log(prio, "link", "%s", msg);
}

static void gw_devices_client_log(const char *msg, void *userdata)
{
	gw_debug("client", "%s", msg);
}

static int gw_live_new_transport(struct gw_live *live, struct smp_transport **ret)
{
	/* libsmp formats each line before the hook sees it: only when shown. */
	void (*log)(int, const char *, void *) =
		gw_log_enabled(LOG_DEBUG, "link") ? gw_devices_link_log : NULL;
	struct gw_manager *m = live->ds->m;
	struct gw_device *d = live->d;

	switch (d->transport) {
	case GW_TRANSPORT_UDP: {
		struct sockaddr_storage sa;
		socklen_t len;
		/* Literals only: a name would be resolved blocking the loop. */
		int r = gw_static_parse_udp(d->address, NULL, &sa, &len);
		struct smp_udp_config cfg = {.log = log};

		if (r < 0)
			return r;
		return smp_udp_new_sockaddr(m->event, (struct sockaddr *)&sa, len, &cfg, ret);
	}
	case GW_TRANSPORT_SERIAL: {
		struct smp_serial_link_config cfg = {
			.baud = d->baud ? d->baud : m->config.serial_baud,
			.log = log,
		};

		return smp_serial_link_new(m->event, d->address, &cfg, ret);
	}
	case GW_TRANSPORT_BLE: {
		/* Without reassembly every request fits one ATT write: works with
		 * every device, uploads size their chunks to it. */
		struct smp_ble_link_config cfg = {.log = log};

		if (!m->bluez_bus)
			return -ENXIO;
		return smp_ble_link_new(m->event, m->bluez_bus, d->address, &cfg, ret);
	}
	}
	return -EINVAL;
}

/* The device's reported MCUmgr params when they are usable: what the client
 * would not take from an answer either (smp-client.c) is not seeded. */
static bool gw_devices_reported_params(struct gw_device *d, size_t *ret_size, unsigned *ret_count)
{
	json_t *p = gw_registry_get_reported(d, "params", NULL);
	json_t *size = json_object_get(p, "buf_size"), *count = json_object_get(p, "buf_count");

	if (!json_is_integer(size) || !json_is_integer(count) ||
	    json_integer_value(size) < SMP_HEADER_SIZE + 24 ||
	    json_integer_value(size) > UINT32_MAX || json_integer_value(count) < 0 ||
	    json_integer_value(count) > UINT32_MAX)
		return false;
	*ret_size = (size_t)json_integer_value(size);
	*ret_count = (unsigned)json_integer_value(count);
	return true;
}

static void gw_live_seed_params(struct gw_live *live, struct smp_client *c)
{
	size_t size;
	unsigned count;

	if (!live->ds->seed_params || live->params_suspect ||
	    !gw_devices_reported_params(live->d, &size, &count))
		return;
	gw_debug(LOG, "%s: params from the registry: buf_size %zu, buf_count %u", live->d->id,
		 size, count);
	smp_client_set_params(c, size, count);
}

/* Opens the link: UDP and serial are up at once, BLE connects. */
static int gw_live_open(struct gw_live *live)
{
	struct gw_devices *ds = live->ds;
	struct smp_transport *t = NULL;
	struct smp_client *c = NULL;
	uint64_t idle;
	char *address;
	int r;

	address = strdup(live->d->address);
	if (!address)
		return -ENOMEM;
	r = gw_live_new_transport(live, &t);
	if (r >= 0)
		r = smp_client_new(ds->m->event, t, &ds->ccfg, &c);
	if (r < 0) {
		free(address);
		gw_live_report_failure(live, r);
		return r;
	}
	live->transport = live->d->transport;
	idle = gw_live_idle_usec(live);
	if (idle > 0) {
		r = sd_event_add_time(ds->m->event, &live->idle, CLOCK_MONOTONIC, UINT64_MAX,
				      idle / 10, gw_live_on_idle, live);
		if (r < 0) {
			free(address);
			smp_client_unref(c);
			return r;
		}
		(void)sd_event_source_set_description(live->idle, "gw-devices-idle");
	}

	gw_live_seed_params(live, c);
	live->client = c;
	live->link = t;
	live->address = address;
	live->fwd_packet = t->on_packet;
	live->fwd_state = t->on_state;
	live->fwd_userdata = t->userdata;
	smp_transport_set_handlers(t, gw_live_on_packet, gw_live_on_transport_state, live);
	smp_client_set_state_handler(c, gw_live_on_client_state, live, NULL);
	if (ds->m->metrics && gw_metrics_add_client(ds->m->metrics, c) < 0)
		gw_debug(LOG, "%s: out of memory, its requests are not counted", live->d->id);

	if (live->transport == GW_TRANSPORT_BLE) {
		gw_debug(LOG, "%s: connecting to %s", live->d->id, live->address);
		live->state = LIVE_CONNECTING;
		TAILQ_INSERT_TAIL(&ds->ble_links, live, queue);
		ds->n_ble++;
		gw_live_touch(live);
	} else {
		live->state = LIVE_UP;
		live->failure_logged = false;
		gw_live_touch(live);
		gw_live_serve(live);
	}
	return 0;
}

/* ---- the BLE budget ---- */

/* The least recently used BLE link that nobody is using. */
static struct gw_live *gw_devices_ble_victim(struct gw_devices *ds)
{
	struct gw_live *live, *best = NULL;

	TAILQ_FOREACH(live, &ds->ble_links, queue)
		if (live->state == LIVE_UP && !gw_live_busy(live) &&
		    (!best || live->last_used_usec < best->last_used_usec))
			best = live;
	return best;
}

/* Makes room for one more BLE link: true when there is a free slot now. */
static bool gw_devices_ble_make_room(struct gw_devices *ds)
{
	struct gw_live *victim;

	if (ds->n_ble < ds->ble_max)
		return true;
	victim = gw_devices_ble_victim(ds);
	if (!victim)
		return false;
	gw_debug(LOG, "%s: closing its idle BLE link for another device", victim->d->id);
	gw_live_close(victim, -ECONNRESET, -ECONNRESET);
	gw_live_maybe_free(victim);
	return ds->n_ble < ds->ble_max;
}

/* Opens the link of a queued or closed device, its waiters fail when it cannot. */
static void gw_live_open_or_fail(struct gw_live *live)
{
	struct gw_devices_op *op;
	int r;

	r = gw_live_open(live);
	if (r >= 0)
		return;
	while ((op = TAILQ_FIRST(&live->waiters))) {
		TAILQ_REMOVE(&live->waiters, op, link);
		gw_devices_op_fail(op, r);
	}
	gw_live_maybe_free(live);
}

/* Hands free (or freed) slots to the queued devices, in order. */
static void gw_devices_ble_run(struct gw_devices *ds)
{
	struct gw_live *live;

	while ((live = TAILQ_FIRST(&ds->ble_queue))) {
		if (!gw_devices_ble_make_room(ds))
			break;
		TAILQ_REMOVE(&ds->ble_queue, live, queue);
		live->state = LIVE_CLOSED;
		gw_live_open_or_fail(live);
	}
}

/* The device has a new waiter and no link. */
static int gw_live_start(struct gw_live *live, bool background)
{
	struct gw_devices *ds = live->ds;

	if (live->d->transport != GW_TRANSPORT_BLE)
		return gw_live_open(live);
	if (TAILQ_EMPTY(&ds->ble_queue) && gw_devices_ble_make_room(ds))
		return gw_live_open(live);
	if (background)
		return -EBUSY;
	gw_debug(LOG, "%s: waiting for a BLE connection slot", live->d->id);
	live->state = LIVE_QUEUED;
	TAILQ_INSERT_TAIL(&ds->ble_queue, live, queue);
	return 0;
}

/* A waiter left (cancelled): a queued device nobody waits for leaves the queue. */
static void gw_live_waiter_gone(struct gw_live *live)
{
	if (live->state == LIVE_QUEUED && TAILQ_EMPTY(&live->waiters)) {
		TAILQ_REMOVE(&live->ds->ble_queue, live, queue);
		live->state = LIVE_CLOSED;
	}
	gw_live_maybe_free(live);
}

/* ---- serving ops ---- */

static void gw_devices_on_call_done(struct smp_client *c, int error, const struct smp_response *rsp,
				    void *userdata)
{
	struct gw_devices_op *op = userdata;
	struct gw_devices *ds = op->ds;
	struct gw_live *live = op->live;

	TAILQ_REMOVE(&live->sent, op, link);
	TAILQ_REMOVE(&ds->ops, op, all);
	op->state = OP_DONE;
	op->live = NULL;
	gw_live_touch(live);
	if (!TAILQ_EMPTY(&ds->ble_queue))
		gw_devices_kick(ds);
	/* May close the link or free live. */
	if (op->call_cb)
		op->call_cb(c, error, rsp, op->userdata);
}

static void gw_devices_on_call_destroy(void *userdata)
{
	struct gw_devices_op *op = userdata;

	switch (op->state) {
	case OP_FAILED:
		/* Closed under it: the failed list ends it. */
		return;
	case OP_SENT:
		/* The client went away without answering (not while we hold it). */
		TAILQ_REMOVE(&op->live->sent, op, link);
		TAILQ_REMOVE(&op->ds->ops, op, all);
		break;
	case OP_WAITING:
	case OP_DONE:
	case OP_CANCELLED:
		break;
	}
	if (op->destroy)
		op->destroy(op->userdata);
	gw_devices_op_free(op);
}

/* The link is up: hand the client over, or send the request. */
static void gw_devices_op_serve(struct gw_live *live, struct gw_devices_op *op)
{
	struct gw_devices *ds = live->ds;
	struct smp_client *c;
	int r;

	if (op->kind == OP_GET) {
		TAILQ_REMOVE(&ds->ops, op, all);
		c = smp_client_ref(live->client);
		gw_live_touch(live);
		if (op->get_cb)
			op->get_cb(ds, 0, c, op->userdata);
		if (op->destroy)
			op->destroy(op->userdata);
		gw_devices_op_free(op);
		smp_client_unref(c);
		return;
	}

	r = smp_client_send(live->client, TAKE_PTR(op->req), op->prio, op->timeout_ms,
			    gw_devices_on_call_done, op, gw_devices_on_call_destroy, &op->client_id);
	if (r < 0) {
		/* Neither callback of the client runs: fail it here, in the loop. */
		TAILQ_REMOVE(&ds->ops, op, all);
		op->error = r;
		gw_devices_op_finish(op);
		return;
	}
	op->state = OP_SENT;
	TAILQ_INSERT_TAIL(&live->sent, op, link);
	gw_live_touch(live);
}

static int gw_devices_on_dispatch(sd_event_source *s, void *userdata)
{
	struct gw_devices *ds = userdata;
	struct gw_devices_op *op;
	struct gw_live *live;

	gw_devices_ble_run(ds);
	for (;;) {
		op = TAILQ_FIRST(&ds->failed);
		if (op) {
			TAILQ_REMOVE(&ds->failed, op, link);
			TAILQ_REMOVE(&ds->ops, op, all);
			gw_devices_op_finish(op);
			continue;
		}
		live = TAILQ_FIRST(&ds->serve);
		if (!live)
			break;
		op = TAILQ_FIRST(&live->waiters);
		if (!op || live->state != LIVE_UP) {
			TAILQ_REMOVE(&ds->serve, live, serve);
			live->serving = false;
			continue;
		}
		TAILQ_REMOVE(&live->waiters, op, link);
		/* Callbacks may do anything: look at the lists afresh afterwards. */
		gw_devices_op_serve(live, op);
	}
	return 0;
}

/* ---- the API ---- */

static void gw_devices_on_registry(struct gw_registry *r, enum gw_registry_event ev,
				   struct gw_device *d, const char *section, void *userdata)
{
	struct gw_devices *ds = userdata;
	struct gw_live *live = d->live;
	size_t size;
	unsigned count;

	/* It may come back with other firmware: kept even without a link. */
	if (ev == GW_REGISTRY_OFFLINE && !live && gw_devices_reported_params(d, &size, &count))
		live = gw_live_get(ds, d);
	if (!live)
		return;
	switch (ev) {
	case GW_REGISTRY_REMOVED:
		gw_live_free(live);
		break;
	case GW_REGISTRY_OFFLINE:
		live->params_suspect = true;
		gw_live_close(live, -EHOSTDOWN, -ECONNRESET);
		gw_live_maybe_free(live);
		break;
	case GW_REGISTRY_CHANGED:
		/* A new address (BlueZ object, host:port) needs a new link. */
		if (live->address && strcmp(live->address, d->address) != 0) {
			gw_live_close(live, -ECONNRESET, -ECONNRESET);
			gw_live_maybe_free(live);
		}
		break;
	case GW_REGISTRY_REPORTED:
		if (section && strcmp(section, "params") == 0) {
			/* Fresh from the device: good for the client it talks to
			 * now, which takes unusable ones as it would from an answer. */
			live->params_suspect = false;
			if (live->client) {
				if (!gw_devices_reported_params(d, &size, &count)) {
					size = SMP_CLIENT_FALLBACK_BUF_SIZE;
					count = 1;
				}
				smp_client_set_params(live->client, size, count);
			}
			gw_live_maybe_free(live);
		}
		break;
	case GW_REGISTRY_ADDED:
	case GW_REGISTRY_ONLINE:
		break;
	}
}

/* What gw-devices takes from m->config, at start and at each reload. */
static void gw_devices_read_config(struct gw_devices *ds)
{
	const struct gw_config *c = &ds->m->config;

	ds->ble_max = MAX(c->ble_max_connections, 1u);
	ds->ble_idle_usec = (uint64_t)c->ble_idle_timeout_ms * 1000;
	ds->seed_params = c->poll_interval_ms > 0;
	smp_client_config_init(&ds->ccfg);
	if (c->timeout_ms > 0)
		ds->ccfg.timeout_ms = c->timeout_ms;
	ds->ccfg.udp_retries = c->retries;
	if (gw_log_enabled(LOG_DEBUG, "client"))
		ds->ccfg.log = gw_devices_client_log;
}

void gw_devices_reload(struct gw_devices *ds)
{
	unsigned old_max = ds->ble_max;

	gw_devices_read_config(ds);
	/* A larger budget lets queued BLE devices connect now; a smaller one
	 * closes no link in use: idle ones make room as devices ask for it. */
	if (ds->ble_max > old_max)
		gw_devices_ble_run(ds);
}

int gw_devices_new(struct gw_manager *m, struct gw_devices **ret)
{
	struct gw_devices *ds;
	int r;

	if (!m || !m->event || !m->registry)
		return -EINVAL;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	ds->m = m;
	ds->next_id = 1;
	TAILQ_INIT(&ds->lives);
	TAILQ_INIT(&ds->ble_queue);
	TAILQ_INIT(&ds->ble_links);
	TAILQ_INIT(&ds->serve);
	TAILQ_INIT(&ds->ops);
	TAILQ_INIT(&ds->failed);
	gw_devices_read_config(ds);

	r = sd_event_add_defer(m->event, &ds->dispatch, gw_devices_on_dispatch, ds);
	if (r < 0) {
		free(ds);
		return r;
	}
	(void)sd_event_source_set_enabled(ds->dispatch, SD_EVENT_OFF);
	(void)sd_event_source_set_description(ds->dispatch, "gw-devices-dispatch");
	r = gw_registry_add_listener(m->registry, gw_devices_on_registry, ds);
	if (r < 0) {
		sd_event_source_disable_unref(ds->dispatch);
		free(ds);
		return r;
	}
	*ret = ds;
	return 0;
}

struct gw_devices *gw_devices_free(struct gw_devices *ds)
{
	struct gw_devices_op *op;
	struct gw_live *live;

	if (!ds)
		return NULL;
	ds->freeing = true;
	gw_registry_remove_listener(ds->m->registry, gw_devices_on_registry, ds);
	while ((live = TAILQ_FIRST(&ds->lives)))
		gw_live_free(live);
	/* Every op left is failed now; callers hear -ECANCELED. */
	while ((op = TAILQ_FIRST(&ds->failed))) {
		TAILQ_REMOVE(&ds->failed, op, link);
		TAILQ_REMOVE(&ds->ops, op, all);
		gw_devices_op_finish(op);
	}
	sd_event_source_disable_unref(ds->dispatch);
	free(ds);
	return NULL;
}

/* Queues op for the device: served when the link is up, failed otherwise. */
static int gw_devices_submit(struct gw_devices *ds, struct gw_device *d, struct gw_devices_op *op,
			     unsigned flags)
{
	struct gw_live *live;
	int r;

	live = gw_live_get(ds, d);
	if (!live)
		return -ENOMEM;
	op->id = ds->next_id++;
	TAILQ_INSERT_TAIL(&ds->ops, op, all);
	if (!d->online && !(flags & GW_DEVICES_PROBE)) {
		gw_devices_op_fail(op, -EHOSTDOWN);
		gw_live_maybe_free(live);
		return 0;
	}

	op->state = OP_WAITING;
	op->live = live;
	TAILQ_INSERT_TAIL(&live->waiters, op, link);
	switch (live->state) {
	case LIVE_UP:
		gw_live_serve(live);
		break;
	case LIVE_CONNECTING:
		break;
	case LIVE_QUEUED:
		if (flags & GW_DEVICES_BACKGROUND) {
			TAILQ_REMOVE(&live->waiters, op, link);
			gw_devices_op_fail(op, -EBUSY);
		}
		break;
	case LIVE_CLOSED:
		r = gw_live_start(live, flags & GW_DEVICES_BACKGROUND);
		if (r < 0) {
			TAILQ_REMOVE(&live->waiters, op, link);
			gw_devices_op_fail(op, r);
			gw_live_maybe_free(live);
		}
		break;
	}
	return 0;
}

static struct gw_devices_op *gw_devices_op_new(struct gw_devices *ds, enum op_kind kind,
					       void *userdata, void (*destroy)(void *))
{
	struct gw_devices_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->ds = ds;
	op->kind = kind;
	op->userdata = userdata;
	op->destroy = destroy;
	return op;
}

int gw_devices_get_client(struct gw_devices *ds, struct gw_device *d, gw_devices_client_fn cb,
			  void *userdata, void (*destroy)(void *), uint64_t *ret_id)
{
	struct gw_devices_op *op;
	int r;

	if (!ds || !d)
		return -EINVAL;
	if (ds->freeing)
		return -ESHUTDOWN;
	op = gw_devices_op_new(ds, OP_GET, userdata, destroy);
	if (!op)
		return -ENOMEM;
	op->get_cb = cb;
	r = gw_devices_submit(ds, d, op, 0);
	if (r < 0) {
		gw_devices_op_free(op);
		return r;
	}
	if (ret_id)
		*ret_id = op->id;
	return 0;
}

int gw_devices_call_flags(struct gw_devices *ds, struct gw_device *d, struct smp_request *req,
			  enum smp_priority prio, unsigned timeout_ms, unsigned flags,
			  smp_client_done_fn cb, void *userdata, void (*destroy)(void *),
			  uint64_t *ret_id)
{
	_cleanup_(smp_request_freep) struct smp_request *rq = req;
	struct gw_devices_op *op;
	int r;

	if (!ds || !d || !rq || (prio != SMP_PRIO_INTERACTIVE && prio != SMP_PRIO_BULK))
		return -EINVAL;
	if (ds->freeing)
		return -ESHUTDOWN;
	op = gw_devices_op_new(ds, OP_CALL, userdata, destroy);
	if (!op)
		return -ENOMEM;
	op->call_cb = cb;
	op->req = TAKE_PTR(rq);
	op->prio = prio;
	/* 0: [smp] timeout as it is now (a reload reaches links already open). */
	op->timeout_ms = timeout_ms ? timeout_ms : ds->ccfg.timeout_ms;
	r = gw_devices_submit(ds, d, op, flags);
	if (r < 0) {
		gw_devices_op_free(op);
		return r;
	}
	if (ret_id)
		*ret_id = op->id;
	return 0;
}

int gw_devices_call(struct gw_devices *ds, struct gw_device *d, struct smp_request *req,
		    enum smp_priority prio, unsigned timeout_ms, smp_client_done_fn cb,
		    void *userdata, void (*destroy)(void *), uint64_t *ret_id)
{
	return gw_devices_call_flags(ds, d, req, prio, timeout_ms, 0, cb, userdata, destroy,
				     ret_id);
}

int gw_devices_cancel(struct gw_devices *ds, uint64_t id)
{
	struct gw_devices_op *op;
	struct gw_live *live;

	if (!ds)
		return -EINVAL;
	TAILQ_FOREACH(op, &ds->ops, all)
		if (op->id == id)
			break;
	if (!op)
		return -ENOENT;

	TAILQ_REMOVE(&ds->ops, op, all);
	live = op->live;
	switch (op->state) {
	case OP_WAITING:
		TAILQ_REMOVE(&live->waiters, op, link);
		gw_live_waiter_gone(live);
		break;
	case OP_FAILED:
		TAILQ_REMOVE(&ds->failed, op, link);
		break;
	case OP_SENT:
		TAILQ_REMOVE(&live->sent, op, link);
		op->state = OP_CANCELLED;
		/* The client runs our destroy now, which ends the op. */
		if (smp_client_cancel(live->client, op->client_id) >= 0)
			return 0;
		break;
	case OP_DONE:
	case OP_CANCELLED:
		return -ENOENT;
	}
	if (op->destroy)
		op->destroy(op->userdata);
	gw_devices_op_free(op);
	return 0;
}

void gw_devices_hold(struct gw_devices *ds, struct gw_device *d)
{
	struct gw_live *live;

	if (!ds || !d || ds->freeing)
		return;
	live = gw_live_get(ds, d);
	if (!live) {
		gw_warn(LOG, "%s: out of memory, the link is not held", d->id);
		return;
	}
	live->holds++;
}

void gw_devices_release(struct gw_devices *ds, struct gw_device *d)
{
	struct gw_live *live = d ? d->live : NULL;

	if (!ds || !live || live->holds == 0)
		return;
	if (--live->holds > 0)
		return;
	if (live->client)
		gw_live_touch(live);
	if (!TAILQ_EMPTY(&ds->ble_queue))
		gw_devices_kick(ds);
	gw_live_maybe_free(live);
}

bool gw_devices_is_held(struct gw_devices *ds, struct gw_device *d)
{
	return ds && d && d->live && ((struct gw_live *)d->live)->holds > 0;
}

void gw_devices_close(struct gw_devices *ds, struct gw_device *d)
{
	struct gw_live *live;

	if (!ds || !d)
		return;
	/* After a reset the device may run other firmware: kept even without a link. */
	live = gw_live_get(ds, d);
	if (!live)
		return;
	live->params_suspect = true;
	gw_live_close(live, -ECONNRESET, -ECONNRESET);
	gw_live_maybe_free(live);
}

bool gw_devices_close_idle(struct gw_devices *ds, struct gw_device *d)
{
	struct gw_live *live = d ? d->live : NULL;

	if (!ds || !live || !live->client || gw_live_busy(live))
		return false;
	gw_debug(LOG, "%s: closing its unused link", d->id);
	gw_live_close(live, -ECONNRESET, -ECONNRESET);
	gw_live_maybe_free(live);
	return true;
}

unsigned gw_devices_ble_connections(struct gw_devices *ds)
{
	return ds ? ds->n_ble : 0;
}

bool gw_devices_has_link(struct gw_devices *ds, struct gw_device *d)
{
	return ds && d && d->live && ((struct gw_live *)d->live)->client;
}
