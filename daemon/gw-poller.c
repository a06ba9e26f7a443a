/* gw-poller: background refresh of what dashboards read: image state, stats, params, liveness */
#include <errno.h>
#include <nettle/sha2.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "daemon/gw-devices.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-poller.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-reported.h"
#include "lib/macro.h"
#include "lib/smp-image.h"
#include "lib/smp-os.h"
#include "lib/smp-stat.h"

#define LOG "poller"
#define NOT_IN_HEAP SIZE_MAX
/* Enough to tell one firmware from another. */
#define GW_POLL_RUNNING_LEN 16

enum poll_step {
	STEP_IMAGE_STATE,
	STEP_STAT_LIST,
	STEP_STAT_SHOW,
	STEP_PARAMS,
	STEP_INFO,
	STEP_END,
};

struct gw_poll_entry;

struct gw_poll_round {
	struct gw_poll_entry *e;
	enum poll_step step;
	bool full;
	bool answered;
	bool had_link; /* the device had a link when the round started */
	bool probe;    /* the device was offline and has not answered yet */
	bool has_call;
	uint64_t call_id;
	struct smp_stat_list *stat_list;
	size_t stat_next;
	json_t *stats;
	uint8_t running[GW_POLL_RUNNING_LEN]; /* gw_poll_round_running(), when has_running */
	bool has_running;
};

struct gw_poll_entry {
	struct gw_poller *p;
	struct gw_device *d;
	uint64_t due_usec; /* CLOCK_MONOTONIC */
	size_t heap_idx;   /* NOT_IN_HEAP when not scheduled */
	bool want_full;
	bool has_running;
	uint8_t running[GW_POLL_RUNNING_LEN]; /* the firmware whose params were read last */
	struct gw_poll_round *round;
	struct gw_poller_device_stats st;
};

struct gw_poller {
	struct gw_manager *m;
	sd_event_source *timer;
	void *entries; /* tsearch() tree by device */
	struct gw_poll_entry **heap;
	size_t n_heap;
	size_t heap_size;
	uint64_t interval_usec; /* 0: no schedule */
	unsigned jitter_pct;
	uint64_t rng;
	struct gw_poller_stats st;
	unsigned probes_in_flight; /* rounds whose offline device has not answered */
};

/* ---- randomness for the spread (xorshift64*, seeded once) ---- */

static uint64_t gw_poller_random(struct gw_poller *p)
{
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n]. */
static uint64_t gw_poller_random_upto(struct gw_poller *p, uint64_t n)
{
	return n == UINT64_MAX ? gw_poller_random(p) : gw_poller_random(p) % (n + 1);
}

static uint64_t gw_poller_now(struct gw_poller *p)
{
	uint64_t now = 0;

	(void)sd_event_now(p->m->event, CLOCK_MONOTONIC, &now);
	return now;
}

/* ---- the heap of due times ---- */

static void gw_poller_heap_set(struct gw_poller *p, size_t i, struct gw_poll_entry *e)
{
	p->heap[i] = e;
	e->heap_idx = i;
}

static void gw_poller_heap_up(struct gw_poller *p, size_t i)
{
	struct gw_poll_entry *e = p->heap[i];

	while (i > 0 && p->heap[(i - 1) / 2]->due_usec > e->due_usec) {
		gw_poller_heap_set(p, i, p->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	gw_poller_heap_set(p, i, e);
}

static void gw_poller_heap_down(struct gw_poller *p, size_t i)
{
	struct gw_poll_entry *e = p->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= p->n_heap)
			break;
		if (c + 1 < p->n_heap && p->heap[c + 1]->due_usec < p->heap[c]->due_usec)
			c++;
		if (p->heap[c]->due_usec >= e->due_usec)
			break;
		gw_poller_heap_set(p, i, p->heap[c]);
		i = c;
	}
	gw_poller_heap_set(p, i, e);
}

static void gw_poller_heap_remove(struct gw_poller *p, struct gw_poll_entry *e)
{
	struct gw_poll_entry *last;
	size_t i = e->heap_idx;

	if (i == NOT_IN_HEAP)
		return;
	e->heap_idx = NOT_IN_HEAP;
	if (--p->n_heap == i)
		return;
	last = p->heap[p->n_heap];
	gw_poller_heap_set(p, i, last);
	gw_poller_heap_up(p, i);
	gw_poller_heap_down(p, last->heap_idx);
}

static int gw_poller_heap_push(struct gw_poller *p, struct gw_poll_entry *e, uint64_t due)
{
	gw_poller_heap_remove(p, e);
	if (p->n_heap == p->heap_size) {
		size_t n = MAX(p->heap_size * 2, (size_t)64);
		struct gw_poll_entry **h = reallocarray(p->heap, n, sizeof(*h));

		if (!h)
			return -ENOMEM;
		p->heap = h;
		p->heap_size = n;
	}
	e->due_usec = due;
	gw_poller_heap_set(p, p->n_heap++, e);
	gw_poller_heap_up(p, e->heap_idx);
	return 0;
}

/* The timer follows the earliest due time while a round may start. */
static void gw_poller_arm(struct gw_poller *p)
{
	if (p->n_heap == 0 || p->st.in_flight >= GW_POLLER_MAX_IN_FLIGHT || p->m->stopping) {
		(void)sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
		return;
	}
	(void)sd_event_source_set_time(p->timer, p->heap[0]->due_usec);
	(void)sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

static void gw_poller_schedule(struct gw_poll_entry *e, uint64_t due)
{
	struct gw_poller *p = e->p;

	if (gw_poller_heap_push(p, e, due) < 0)
		gw_warn(LOG, "%s: out of memory, not polled any more", e->d->id);
	gw_poller_arm(p);
}

/* Now plus the interval, give or take the jitter. */
static uint64_t gw_poller_next_due(struct gw_poller *p)
{
	uint64_t spread = p->interval_usec * p->jitter_pct / 100;

	return gw_poller_now(p) + p->interval_usec - spread + gw_poller_random_upto(p, 2 * spread);
}

/* A device's first round: within the jitter's spread from now. */
static uint64_t gw_poller_first_due(struct gw_poller *p)
{
	return gw_poller_now(p) + gw_poller_random_upto(p, p->interval_usec * p->jitter_pct / 100);
}

static void gw_poller_schedule_next(struct gw_poll_entry *e)
{
	struct gw_poller *p = e->p;

	if (p->interval_usec == 0) {
		gw_poller_heap_remove(p, e);
		gw_poller_arm(p);
		return;
	}
	gw_poller_schedule(e, gw_poller_next_due(p));
}

/* ---- the entries, by device ---- */

static int gw_poll_entry_compare(const void *a, const void *b)
{
	const struct gw_poll_entry *x = a, *y = b;

	return x->d < y->d ? -1 : x->d > y->d;
}

static struct gw_poll_entry *gw_poller_find(struct gw_poller *p, struct gw_device *d)
{
	struct gw_poll_entry key = {.d = d};
	void *node = tfind(&key, &p->entries, gw_poll_entry_compare);

	return node ? *(struct gw_poll_entry **)node : NULL;
}

static struct gw_poll_round *gw_poll_round_free(struct gw_poll_round *rd)
{
	if (!rd)
		return NULL;
	smp_stat_list_free(rd->stat_list);
	json_decref(rd->stats);
	free(rd);
	return NULL;
}

/* Stops a round without a word to the registry (device or poller going away). */
static void gw_poll_entry_abort(struct gw_poll_entry *e)
{
	struct gw_poll_round *rd = e->round;

	if (!rd)
		return;
	if (rd->has_call)
		(void)gw_devices_cancel(e->p->m->devices, rd->call_id);
	if (rd->probe)
		e->p->probes_in_flight--;
	e->round = gw_poll_round_free(rd);
	e->st.in_flight = false;
	e->p->st.in_flight--;
}

static void gw_poll_entry_free(struct gw_poll_entry *e)
{
	gw_poll_entry_abort(e);
	gw_poller_heap_remove(e->p, e);
	free(e);
}

static void gw_poll_entry_free_node(void *node)
{
	gw_poll_entry_free(node);
}

static int gw_poller_add(struct gw_poller *p, struct gw_device *d)
{
	struct gw_poll_entry *e;
	void *node;

	if (gw_poller_find(p, d))
		return 0;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->p = p;
	e->d = d;
	e->heap_idx = NOT_IN_HEAP;
	e->want_full = true;
	node = tsearch(e, &p->entries, gw_poll_entry_compare);
	if (!node) {
		free(e);
		return -ENOMEM;
	}
	if (p->interval_usec > 0)
		gw_poller_schedule(e, gw_poller_first_due(p));
	return 0;
}

/* ---- a round ---- */

static bool gw_poller_no_answer(int error)
{
	switch (error) {
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -ECONNABORTED:
	case -ENOTCONN:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ENODEV:
	case -ENOENT:
	case -EIO:
		return true;
	default:
		return false;
	}
}

static void gw_poll_round_end(struct gw_poll_round *rd, int error)
{
	struct gw_poll_entry *e = rd->e;
	struct gw_poller *p = e->p;
	struct gw_device *d = e->d;
	bool answered = rd->answered, had_link = rd->had_link;

	if (rd->probe)
		p->probes_in_flight--;
	e->round = gw_poll_round_free(rd);
	e->st.in_flight = false;
	p->st.in_flight--;
	e->st.last_end_ms = gw_now_ms();
	e->st.last_error = error;
	if (answered) {
		e->st.answered++;
		p->st.answered++;
		e->st.last_answer_ms = e->st.last_end_ms;
		if (error < 0)
			gw_log_errno(LOG_DEBUG, error, LOG, "%s: round cut short: %m", d->id);
	} else if (error == -EBUSY) {
		/* No room in the BLE budget: not the device's fault. */
		e->st.skipped++;
		p->st.skipped++;
	} else {
		e->st.failed++;
		p->st.failed++;
		gw_log_errno(LOG_DEBUG, error, LOG, "%s: no answer: %m", d->id);
	}
	gw_poller_schedule_next(e);
	/* Polls keep no UDP socket open: a socket the round opened goes
	 * again, unless someone else uses it meanwhile. BLE links follow the
	 * budget's LRU and idle rules; serial ports stay open. */
	if (!had_link && d->transport == GW_TRANSPORT_UDP)
		(void)gw_devices_close_idle(p->m->devices, d);
	/* Last: the listeners (gw-devices closes the link) may run now. */
	if (!answered && d->online && gw_poller_no_answer(error)) {
		gw_log_errno(LOG_INFO, error, LOG, "%s: does not answer, offline: %m", d->id);
		gw_registry_set_online(p->m->registry, d, false);
	}
}

static void gw_poll_round_next(struct gw_poll_round *rd);

static void gw_poll_round_report(struct gw_poll_round *rd, const char *section, json_t *value)
{
	struct gw_poll_entry *e = rd->e;
	int r;

	if (!value) {
		gw_warn(LOG, "%s: out of memory, %s not stored", e->d->id, section);
		return;
	}
	r = gw_registry_set_reported(e->p->m->registry, e->d, section, value);
	if (r < 0)
		gw_log_errno(LOG_WARNING, r, LOG, "%s: storing %s, ignoring: %m", e->d->id,
			     section);
}

/* What firmware runs: a digest of the active images (number, version,
 * hash). When it differs from the one whose params were read last, the
 * round becomes a full one: other firmware may come with other MCUmgr
 * params, and gw-devices starts new clients with the reported ones. Who
 * else stored the image state (the API) does not matter. */
static void gw_poll_round_running(struct gw_poll_round *rd, const struct smp_image_state *st)
{
	struct gw_poll_entry *e = rd->e;
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	for (size_t i = 0; i < st->n_slots; i++) {
		const struct smp_image_slot_state *s = &st->slots[i];
		uint8_t num[4] = {s->image >> 24, s->image >> 16, s->image >> 8, s->image};

		if (!s->active)
			continue;
		sha256_update(&ctx, sizeof(num), num);
		sha256_update(&ctx, strlen(s->version) + 1, (const uint8_t *)s->version);
		if (s->has_hash)
			sha256_update(&ctx, sizeof(s->hash), s->hash);
	}
	sha256_digest(&ctx, sizeof(rd->running), rd->running);
	rd->has_running = true;
	if (!e->has_running || memcmp(e->running, rd->running, sizeof(rd->running)) != 0)
		rd->full = true;
}

/* Takes in one answer; SMP errors leave the section as it was. */
static void gw_poll_round_take(struct gw_poll_round *rd, const struct smp_response *rsp)
{
	struct gw_poll_entry *e = rd->e;
	struct smp_image_state *st = NULL;
	struct smp_stat_group *g = NULL;
	struct smp_os_params params;
	json_t *value = NULL;
	char *text = NULL;

	switch (rd->step) {
	case STEP_IMAGE_STATE:
		if (smp_image_state_parse(rsp, &st) == 0) {
			(void)gw_reported_image_state(st, &value);
			gw_poll_round_running(rd, st);
			gw_poll_round_report(rd, "image_state", value);
		}
		smp_image_state_free(st);
		break;
	case STEP_STAT_LIST:
		if (smp_stat_list_parse(rsp, &rd->stat_list) == 0)
			rd->stats = json_object();
		break;
	case STEP_STAT_SHOW:
		if (rd->stats && smp_stat_show_parse(rsp, &g) == 0) {
			/* Keyed by the name asked for: that is what the list says. */
			const char *name = rd->stat_list->names[rd->stat_next - 1];

			if (gw_reported_stat_group(g, &value) < 0 ||
			    json_object_set_new(rd->stats, name, value) < 0)
				rd->stats = (json_decref(rd->stats), NULL);
		}
		smp_stat_group_free(g);
		break;
	case STEP_PARAMS:
		if (smp_os_params_parse(rsp, &params) == 0) {
			(void)gw_reported_params(&params, &value);
			gw_poll_round_report(rd, "params", value);
			/* These params belong to the firmware this round saw. */
			e->has_running = rd->has_running;
			memcpy(e->running, rd->running, sizeof(e->running));
		}
		break;
	case STEP_INFO:
		if (smp_os_info_parse(rsp, &text) == 0) {
			(void)gw_reported_info(text, &value);
			gw_poll_round_report(rd, "info", value);
		}
		free(text);
		break;
	case STEP_END:
		break;
	}
}

static void gw_poll_round_on_answer(struct smp_client *c, int error, const struct smp_response *rsp,
				    void *userdata)
{
	struct gw_poll_round *rd = userdata;
	struct gw_poll_entry *e = rd->e;

	rd->has_call = false;
	if (error < 0) {
		gw_poll_round_end(rd, error);
		return;
	}
	if (!rd->answered) {
		rd->answered = true;
		if (rd->probe) {
			rd->probe = false;
			e->p->probes_in_flight--;
		}
		/* Our own ONLINE event makes this round a full one. */
		if (!e->d->online) {
			gw_info(LOG, "%s: answers, online", e->d->id);
			gw_registry_set_online(e->p->m->registry, e->d, true);
		}
	}
	gw_poll_round_take(rd, rsp);
	gw_poll_round_next(rd);
}

/* Moves to the next request of the round, or ends it. */
static void gw_poll_round_next(struct gw_poll_round *rd)
{
	struct gw_poll_entry *e = rd->e;
	struct gw_device *d = e->d;
	struct smp_request *req = NULL;
	unsigned flags = GW_DEVICES_BACKGROUND;
	int r;

	/* Shutting down: what was read is kept, nothing more is asked. */
	if (e->p->m->stopping) {
		gw_poll_round_end(rd, -ECANCELED);
		return;
	}
	switch (rd->step) {
	case STEP_IMAGE_STATE:
		rd->step = STEP_STAT_LIST;
		break;
	case STEP_STAT_LIST:
	case STEP_STAT_SHOW:
		if (rd->stats && rd->stat_list && rd->stat_next < rd->stat_list->n_names) {
			rd->step = STEP_STAT_SHOW;
			break;
		}
		if (rd->stats)
			gw_poll_round_report(rd, "stats", TAKE_PTR(rd->stats));
		rd->step = STEP_PARAMS;
		if (!rd->full && gw_registry_get_reported(d, "params", NULL) &&
		    gw_registry_get_reported(d, "info", NULL)) {
			gw_poll_round_end(rd, 0);
			return;
		}
		break;
	case STEP_PARAMS:
		rd->step = STEP_INFO;
		break;
	case STEP_INFO:
	case STEP_END:
		gw_poll_round_end(rd, 0);
		return;
	}

	switch (rd->step) {
	case STEP_STAT_LIST:
		r = smp_stat_list_request(&req);
		break;
	case STEP_STAT_SHOW:
		r = smp_stat_show_request(rd->stat_list->names[rd->stat_next++], &req);
		break;
	case STEP_PARAMS:
		r = smp_os_params_request(&req);
		break;
	case STEP_INFO:
		r = smp_os_info_request("a", &req);
		break;
	case STEP_IMAGE_STATE:
	case STEP_END:
	default:
		r = -EINVAL;
		break;
	}
	if (r < 0) {
		gw_poll_round_end(rd, r);
		return;
	}
	if (!d->online)
		flags |= GW_DEVICES_PROBE;
	r = gw_devices_call_flags(e->p->m->devices, d, req, SMP_PRIO_INTERACTIVE, 0, flags,
				  gw_poll_round_on_answer, rd, NULL, &rd->call_id);
	if (r < 0) {
		gw_poll_round_end(rd, r);
		return;
	}
	rd->has_call = true;
}

/* Skips the device for now: it comes back after an interval. */
static void gw_poll_entry_skip(struct gw_poll_entry *e, int why)
{
	e->st.skipped++;
	e->st.last_error = why;
	e->p->st.skipped++;
	gw_poller_schedule_next(e);
}

static void gw_poll_entry_start(struct gw_poll_entry *e)
{
	struct gw_poller *p = e->p;
	struct gw_device *d = e->d;
	struct smp_request *req = NULL;
	struct gw_poll_round *rd;
	unsigned flags = GW_DEVICES_BACKGROUND;
	int r;

	if (!d->online && d->transport == GW_TRANSPORT_BLE) {
		gw_poll_entry_skip(e, -EHOSTDOWN);
		return;
	}
	if (!p->m->config.poll_during_upload && gw_devices_is_held(p->m->devices, d)) {
		gw_debug(LOG, "%s: busy with an upload, not polled", d->id);
		gw_poll_entry_skip(e, -EBUSY);
		return;
	}

	rd = calloc(1, sizeof(*rd));
	r = rd ? smp_image_state_read_request(&req) : -ENOMEM;
	if (r < 0) {
		free(rd);
		gw_log_errno(LOG_WARNING, r, LOG, "%s: cannot poll: %m", d->id);
		gw_poller_schedule_next(e);
		return;
	}
	rd->e = e;
	rd->had_link = gw_devices_has_link(p->m->devices, d);
	rd->probe = !d->online;
	p->probes_in_flight += rd->probe;
	rd->step = STEP_IMAGE_STATE;
	rd->full = e->want_full;
	e->want_full = false;
	gw_debug(LOG, "%s: %s round%s", d->id, rd->full ? "full" : "short",
		 rd->probe ? ", probing" : "");
	e->round = rd;
	e->st.in_flight = true;
	e->st.rounds++;
	e->st.last_start_ms = gw_now_ms();
	p->st.rounds++;
	p->st.in_flight++;
	p->st.max_in_flight = MAX(p->st.max_in_flight, p->st.in_flight);

	if (!d->online)
		flags |= GW_DEVICES_PROBE;
	r = gw_devices_call_flags(p->m->devices, d, req, SMP_PRIO_INTERACTIVE, 0, flags,
				  gw_poll_round_on_answer, rd, NULL, &rd->call_id);
	if (r < 0) {
		gw_poll_round_end(rd, r);
		return;
	}
	rd->has_call = true;
}

static int gw_poller_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gw_poller *p = userdata;
	uint64_t now = gw_poller_now(p);

	while (!p->m->stopping && p->st.in_flight < GW_POLLER_MAX_IN_FLIGHT && p->n_heap > 0 &&
	       p->heap[0]->due_usec <= now) {
		struct gw_poll_entry *e = p->heap[0];

		gw_poller_heap_remove(p, e);
		gw_poll_entry_start(e);
	}
	gw_poller_arm(p);
	return 0;
}

/* ---- the registry ---- */

static void gw_poller_on_registry(struct gw_registry *r, enum gw_registry_event ev,
				  struct gw_device *d, const char *section, void *userdata)
{
	struct gw_poller *p = userdata;
	struct gw_poll_entry *e;

	switch (ev) {
	case GW_REGISTRY_ADDED:
		if (gw_poller_add(p, d) < 0)
			gw_warn(LOG, "%s: out of memory, not polled", d->id);
		break;
	case GW_REGISTRY_REMOVED:
		e = gw_poller_find(p, d);
		if (e) {
			tdelete(e, &p->entries, gw_poll_entry_compare);
			gw_poll_entry_free(e);
			gw_poller_arm(p);
		}
		break;
	case GW_REGISTRY_ONLINE:
		e = gw_poller_find(p, d);
		if (!e || p->interval_usec == 0)
			break;
		if (e->round)
			e->round->full = true;
		else {
			e->want_full = true;
			gw_poller_schedule(e, gw_poller_now(p));
		}
		break;
	case GW_REGISTRY_OFFLINE:
	case GW_REGISTRY_CHANGED:
	case GW_REGISTRY_REPORTED:
		break;
	}
}

static uint64_t gw_poller_seed(void)
{
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
	}
	return seed ? seed : 0x9E3779B97F4A7C15ULL;
}

/* Shutdown waits for the rounds in flight to get the answer they wait for
 * (then they end: gw_poll_round_next); not for probes of offline devices,
 * which may wait for every retransmission and have nothing to keep. */
static int gw_poller_busy(void *userdata)
{
	struct gw_poller *p = userdata;

	return (int)(p->st.in_flight - p->probes_in_flight);
}

struct gw_poller *gw_poller_free(struct gw_poller *p)
{
	if (!p)
		return NULL;
	gw_manager_remove_stop_hook(p->m, gw_poller_busy, p);
	if (p->m->registry)
		gw_registry_remove_listener(p->m->registry, gw_poller_on_registry, p);
	tdestroy(p->entries, gw_poll_entry_free_node);
	free(p->heap);
	sd_event_source_disable_unref(p->timer);
	free(p);
	return NULL;
}

static void gw_poller_reschedule_node(const void *node, VISIT which, void *userdata)
{
	struct gw_poll_entry *e = *(struct gw_poll_entry *const *)node;
	struct gw_poller *p = userdata;

	if (which != postorder && which != leaf)
		return;
	/* A device in a round is scheduled when the round ends. */
	if (e->round || e->heap_idx != NOT_IN_HEAP)
		return;
	if (gw_poller_heap_push(p, e, gw_poller_first_due(p)) < 0)
		gw_warn(LOG, "%s: out of memory, not polled any more", e->d->id);
}

/* Every device waiting for its next round gets a due time under the new
 * interval: no later than one new interval (give or take the jitter) from
 * now, so a shorter interval applies at once and a longer one from the
 * next round. Polling turned off takes every device off the schedule;
 * turned on, they all become due within the jitter's spread. */
void gw_poller_reload(struct gw_poller *p)
{
	uint64_t interval = (uint64_t)p->m->config.poll_interval_ms * 1000, was = p->interval_usec;
	unsigned jitter = MIN(p->m->config.poll_jitter_pct, 100u);

	if (interval == was && jitter == p->jitter_pct)
		return;
	p->interval_usec = interval;
	p->jitter_pct = jitter;
	gw_info(LOG, "interval %llu ms, jitter %u%%", (unsigned long long)(interval / 1000), jitter);
	if (interval == 0) {
		while (p->n_heap > 0)
			gw_poller_heap_remove(p, p->heap[p->n_heap - 1]);
	} else if (was == 0) {
		twalk_r(p->entries, gw_poller_reschedule_node, p);
	} else {
		/* Due times only move earlier: set them in place, then restore
		 * the heap order bottom-up. */
		for (size_t i = 0; i < p->n_heap; i++)
			p->heap[i]->due_usec = MIN(p->heap[i]->due_usec, gw_poller_next_due(p));
		for (size_t i = p->n_heap / 2; i-- > 0;)
			gw_poller_heap_down(p, i);
	}
	gw_poller_arm(p);
}

int gw_poller_new(struct gw_manager *m, struct gw_poller **ret)
{
	_cleanup_free_ struct gw_poller *p = NULL;
	struct gw_device *d;
	int r;

	if (!m || !m->event || !m->registry || !m->devices)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->m = m;
	p->interval_usec = (uint64_t)m->config.poll_interval_ms * 1000;
	p->jitter_pct = MIN(m->config.poll_jitter_pct, 100u);
	p->rng = gw_poller_seed();

	r = sd_event_add_time(m->event, &p->timer, CLOCK_MONOTONIC, UINT64_MAX, 10 * 1000,
			      gw_poller_on_timer, p);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(p->timer, "gw-poller-timer");
	r = gw_registry_add_listener(m->registry, gw_poller_on_registry, p);
	if (r < 0) {
		p->timer = sd_event_source_disable_unref(p->timer);
		return r;
	}
	r = gw_manager_add_stop_hook(m, gw_poller_busy, p);
	if (r < 0) {
		gw_registry_remove_listener(m->registry, gw_poller_on_registry, p);
		p->timer = sd_event_source_disable_unref(p->timer);
		return r;
	}
	for (d = gw_registry_next(m->registry, NULL); d; d = gw_registry_next(m->registry, d->id)) {
		r = gw_poller_add(p, d);
		if (r < 0) {
			gw_poller_free(TAKE_PTR(p));
			return r;
		}
	}
	*ret = TAKE_PTR(p);
	return 0;
}

int gw_poller_poll_now(struct gw_poller *p, struct gw_device *d)
{
	struct gw_poll_entry *e = p && d ? gw_poller_find(p, d) : NULL;

	if (!e)
		return -ENOENT;
	if (e->round)
		return -EBUSY;
	e->want_full = true;
	gw_poller_schedule(e, gw_poller_now(p));
	return 0;
}

void gw_poller_get_stats(struct gw_poller *p, struct gw_poller_stats *ret)
{
	*ret = p->st;
}

int gw_poller_get_device_stats(struct gw_poller *p, struct gw_device *d,
			       struct gw_poller_device_stats *ret)
{
	struct gw_poll_entry *e = p && d ? gw_poller_find(p, d) : NULL;

	if (!e)
		return -ENOENT;
	*ret = e->st;
	return 0;
}
