/* sim-link: what every transport of a simulated device shares: faults, delays, bandwidth */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim-link.h"
#include "sim-node.h"

/* A held-back datagram goes out anyway when no other follows this soon. */
#define SIM_REORDER_HOLD_US (50 * 1000)

struct sim_in {
	struct sim_in *next;
	uint64_t due_us;
	struct sim_peer from;
	size_t len;
	uint8_t data[];
};

struct sim_out {
	struct sim_out *next;
	uint64_t due_us;
	struct sim_peer to;
	bool corrupt;
	size_t len;
	uint8_t data[];
};

static uint64_t sim_link_now(struct sim_link *l)
{
	uint64_t t = 0;

	if (sd_event_now(l->event, CLOCK_MONOTONIC, &t) < 0)
		t = sim_now_usec();
	return t;
}

bool sim_link_chance(struct sim_link *l, double rate)
{
	return sim_rng_chance(&l->rng, rate);
}

int sim_link_set_where(struct sim_link *l, const char *where)
{
	char *w = strdup(where);

	if (!w)
		return -ENOMEM;
	free(l->where);
	l->where = w;
	return 0;
}

int sim_link_init(struct sim_link *l, const struct sim_link_ops *ops, struct sim_node *node,
		  sd_event *e, const struct sim_faults *faults, uint64_t seed, const char *where)
{
	l->ops = ops;
	l->node = node;
	l->event = e;
	l->faults = faults;
	sim_rng_seed(&l->rng, seed, 0);
	sim_pace_init(&l->out_pace, faults->bandwidth * 8, 8);
	sim_pace_init(&l->in_pace, faults->bandwidth * 8, 8);
	return sim_link_set_where(l, where ? where : "");
}

void sim_link_flush(struct sim_link *l)
{
	free(l->held);
	l->held = NULL;
	while (l->queue) {
		struct sim_out *o = l->queue;

		l->queue = o->next;
		free(o);
	}
	if (l->out_timer)
		sd_event_source_set_enabled(l->out_timer, SD_EVENT_OFF);
	while (l->in_head) {
		struct sim_in *i = l->in_head;

		l->in_head = i->next;
		free(i);
	}
	l->in_tail = NULL;
	l->in_len = 0;
	if (l->in_timer)
		sd_event_source_set_enabled(l->in_timer, SD_EVENT_OFF);
}

void sim_link_done(struct sim_link *l)
{
	sim_link_flush(l);
	l->out_timer = sd_event_source_disable_unref(l->out_timer);
	l->in_timer = sd_event_source_disable_unref(l->in_timer);
	l->held_timer = sd_event_source_disable_unref(l->held_timer);
	l->reconnect_timer = sd_event_source_disable_unref(l->reconnect_timer);
	free(l->where);
	l->where = NULL;
}

struct sim_link *sim_link_free(struct sim_link *l)
{
	if (l)
		l->ops->free(l);
	return NULL;
}

static int sim_link_on_reconnect(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_link *l = userdata;

	l->down = false;
	l->bytes = 0;
	if (l->ops->reconnect)
		l->ops->reconnect(l);
	sim_node_link_event(l->node, l, "up");
	return 0;
}

static void sim_link_hang_up(struct sim_link *l)
{
	uint64_t now = sim_link_now(l);
	int r;

	l->down = true;
	sim_link_flush(l);
	sim_node_link_down(l->node, l);
	if (l->ops->hang_up)
		l->ops->hang_up(l);
	sim_node_link_event(l->node, l, "down");
	l->reconnect_timer = sd_event_source_disable_unref(l->reconnect_timer);
	r = sd_event_add_time(l->event, &l->reconnect_timer, CLOCK_MONOTONIC,
			      now + l->faults->reconnect_delay_us, SIM_TIMER_ACCURACY_US,
			      sim_link_on_reconnect, l);
	if (r < 0)
		sim_log_errno(SIM_LOG_ERR, r, l->where, "cannot schedule the reconnection");
	else
		sd_event_source_set_description(l->reconnect_timer, "sim-link-reconnect");
}

void sim_link_count(struct sim_link *l, size_t n)
{
	l->bytes += n;
	if (l->faults->disconnect_after && l->bytes >= l->faults->disconnect_after && !l->down) {
		sim_log(SIM_LOG_INFO, l->where, "dropping the link after %llu bytes",
			(unsigned long long)l->bytes);
		sim_link_hang_up(l);
	}
}

static int sim_link_on_in(sd_event_source *s, uint64_t usec, void *userdata);

/* The input timer follows the oldest request on the wire. */
static void sim_link_arm_in(struct sim_link *l)
{
	int r;

	if (!l->in_head) {
		if (l->in_timer)
			sd_event_source_set_enabled(l->in_timer, SD_EVENT_OFF);
		return;
	}
	if (!l->in_timer) {
		r = sd_event_add_time(l->event, &l->in_timer, CLOCK_MONOTONIC, l->in_head->due_us,
				      SIM_TIMER_ACCURACY_US, sim_link_on_in, l);
		if (r < 0) {
			sim_log_errno(SIM_LOG_ERR, r, l->where, "cannot add the input timer");
			return;
		}
		sd_event_source_set_description(l->in_timer, "sim-link-in");
		return;
	}
	sd_event_source_set_time(l->in_timer, l->in_head->due_us);
	sd_event_source_set_enabled(l->in_timer, SD_EVENT_ONESHOT);
}

static int sim_link_on_in(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_link *l = userdata;
	uint64_t now = sim_link_now(l);

	/* The node may hang the link up, which empties the queue. */
	while (l->in_head && l->in_head->due_us <= now && !l->down) {
		struct sim_in *i = l->in_head;

		l->in_head = i->next;
		if (!l->in_head)
			l->in_tail = NULL;
		l->in_len--;
		sim_node_submit(l->node, l, i->data, i->len, i->from.len ? &i->from : NULL);
		free(i);
	}
	sim_link_arm_in(l);
	return 0;
}

/* --bandwidth on the way in: the request reaches the device when its last
 * byte has passed the wire. */
static void sim_link_pace_in(struct sim_link *l, const uint8_t *pkt, size_t len,
			     const struct sim_peer *from)
{
	uint64_t now = sim_link_now(l), due;
	struct sim_in *i;

	sim_pace_set_rate(&l->in_pace, now, l->faults->bandwidth * 8);
	if (!sim_pace_limited(&l->in_pace)) {
		sim_node_submit(l->node, l, pkt, len, from);
		return;
	}
	if (l->in_len >= SIM_LINK_IN_MAX) {
		l->in_dropped++;
		sim_log(SIM_LOG_DEBUG, l->where, "%zu requests on the wire: %zu bytes dropped",
			l->in_len, len);
		return;
	}
	due = sim_pace_charge(&l->in_pace, now, len);
	i = malloc(sizeof(*i) + len);
	if (!i)
		return;
	*i = (struct sim_in){.due_us = due, .len = len};
	if (from)
		i->from = *from;
	memcpy(i->data, pkt, len);
	if (l->in_tail)
		l->in_tail->next = i;
	else
		l->in_head = i;
	l->in_tail = i;
	l->in_len++;
	sim_link_arm_in(l);
}

void sim_link_receive(struct sim_link *l, const uint8_t *pkt, size_t len,
		      const struct sim_peer *from, bool faults_done)
{
	_cleanup_free_ uint8_t *copy = NULL;

	if (l->down)
		return;
	if (!faults_done) {
		sim_link_count(l, len);
		if (l->down)
			return;
		if (sim_link_chance(l, l->faults->drop_rate)) {
			sim_log(SIM_LOG_DEBUG, l->where, "fault: request of %zu bytes dropped",
				len);
			return;
		}
		if (len > 0 && sim_link_chance(l, l->faults->corrupt_rate)) {
			copy = malloc(len);
			if (!copy)
				return;
			memcpy(copy, pkt, len);
			copy[sim_rng_below(&l->rng, len)] ^=
			    (uint8_t)(1u << sim_rng_below(&l->rng, 8));
			pkt = copy;
			sim_log(SIM_LOG_DEBUG, l->where, "fault: request corrupted");
		}
	}
	sim_link_pace_in(l, pkt, len, from);
}

static int sim_link_on_out(sd_event_source *s, uint64_t usec, void *userdata);

static void sim_link_arm(struct sim_link *l)
{
	int r;

	if (!l->queue) {
		if (l->out_timer)
			sd_event_source_set_enabled(l->out_timer, SD_EVENT_OFF);
		return;
	}
	if (!l->out_timer) {
		r = sd_event_add_time(l->event, &l->out_timer, CLOCK_MONOTONIC, l->queue->due_us,
				      SIM_TIMER_ACCURACY_US, sim_link_on_out, l);
		if (r < 0) {
			sim_log_errno(SIM_LOG_ERR, r, l->where, "cannot add the output timer");
			return;
		}
		sd_event_source_set_description(l->out_timer, "sim-link-out");
		return;
	}
	sd_event_source_set_time(l->out_timer, l->queue->due_us);
	sd_event_source_set_enabled(l->out_timer, SD_EVENT_ONESHOT);
}

static int sim_link_on_out(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_link *l = userdata;
	uint64_t now = sim_link_now(l);

	while (l->queue && l->queue->due_us <= now && !l->down) {
		struct sim_out *o = l->queue;

		l->queue = o->next;
		l->ops->transmit(l, o->data, o->len, &o->to, o->corrupt);
		free(o);
	}
	sim_link_arm(l);
	return 0;
}

static void sim_link_insert(struct sim_link *l, struct sim_out *o)
{
	struct sim_out **p;

	/* Sorted by due time; equal times keep their order. */
	for (p = &l->queue; *p && (*p)->due_us <= o->due_us; p = &(*p)->next)
		;
	o->next = *p;
	*p = o;
	sim_link_arm(l);
}

static struct sim_out *sim_out_new(const uint8_t *pkt, size_t len, const struct sim_peer *to,
				   uint64_t due, bool corrupt)
{
	struct sim_out *o = malloc(sizeof(*o) + len);

	if (!o)
		return NULL;
	o->next = NULL;
	o->due_us = due;
	o->len = len;
	o->corrupt = corrupt;
	if (to)
		o->to = *to;
	else
		o->to = (struct sim_peer){.len = 0};
	memcpy(o->data, pkt, len);
	return o;
}

static int sim_link_on_held(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_link *l = userdata;

	if (l->held) {
		sim_link_insert(l, l->held);
		l->held = NULL;
	}
	return 0;
}

static void sim_link_enqueue(struct sim_link *l, const uint8_t *pkt, size_t len,
			     const struct sim_peer *to, uint64_t due, bool corrupt, bool hold)
{
	struct sim_out *o = sim_out_new(pkt, len, to, due, corrupt);

	if (!o)
		return;
	if (l->held) {
		/* The held-back response follows this one. */
		struct sim_out *h = l->held;

		l->held = NULL;
		h->due_us = due + 1;
		sim_link_insert(l, o);
		sim_link_insert(l, h);
		return;
	}
	if (hold) {
		l->held = o;
		if (!l->held_timer) {
			if (sd_event_add_time(l->event, &l->held_timer, CLOCK_MONOTONIC,
					      due + SIM_REORDER_HOLD_US, SIM_TIMER_ACCURACY_US,
					      sim_link_on_held, l) < 0) {
				l->held = NULL;
				sim_link_insert(l, o);
				return;
			}
			sd_event_source_set_description(l->held_timer, "sim-link-reorder");
		} else {
			sd_event_source_set_time(l->held_timer, due + SIM_REORDER_HOLD_US);
			sd_event_source_set_enabled(l->held_timer, SD_EVENT_ONESHOT);
		}
		return;
	}
	sim_link_insert(l, o);
}

void sim_link_send(struct sim_link *l, const uint8_t *pkt, size_t len, const struct sim_peer *to,
		   uint64_t at)
{
	const struct sim_faults *f = l->faults;
	uint64_t now = MIN(sim_link_now(l), at), due;
	bool corrupt = false, hold = false;

	if (l->down)
		return;
	if (sim_link_chance(l, f->drop_rate)) {
		sim_log(SIM_LOG_DEBUG, l->where, "fault: response of %zu bytes dropped", len);
		return;
	}
	if (sim_link_chance(l, f->corrupt_rate))
		corrupt = true;
	/* The response passes the paced wire first, then travels. */
	sim_pace_set_rate(&l->out_pace, now, f->bandwidth * 8);
	due = sim_pace_charge(&l->out_pace, now, len);
	due += f->latency_us + (f->jitter_us ? sim_rng_below(&l->rng, f->jitter_us + 1) : 0);
	if (l->ordered)
		due = MAX(due, l->last_due_us);
	else if (!l->held && sim_link_chance(l, f->reorder_rate)) {
		hold = true;
		sim_log(SIM_LOG_DEBUG, l->where, "fault: response held back behind the next one");
	}
	l->last_due_us = MAX(l->last_due_us, due);
	if (corrupt && !l->corrupts_encoding) {
		_cleanup_free_ uint8_t *copy = malloc(len ? len : 1);

		if (!copy)
			return;
		memcpy(copy, pkt, len);
		if (len)
			copy[sim_rng_below(&l->rng, len)] ^=
			    (uint8_t)(1u << sim_rng_below(&l->rng, 8));
		sim_log(SIM_LOG_DEBUG, l->where, "fault: response corrupted");
		sim_link_enqueue(l, copy, len, to, due, false, hold);
	} else
		sim_link_enqueue(l, pkt, len, to, due, corrupt, hold);
	if (!l->ordered && sim_link_chance(l, f->dup_rate)) {
		sim_log(SIM_LOG_DEBUG, l->where, "fault: response duplicated");
		sim_link_enqueue(l, pkt, len, to, due + 1000, false, false);
	}
}
