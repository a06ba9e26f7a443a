/* sim-node: a simulated device on the event loop: its transports, request queue and reboots */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim-node.h"
#include "sim-util.h"
#include "smp-header.h"

enum sim_node_state {
	SIM_NODE_UP,
	SIM_NODE_DOWN,
	SIM_NODE_BRICKED,
};

struct sim_job {
	struct sim_link *link;
	struct sim_peer peer;
	uint8_t *data;
	size_t len;
	uint64_t arrived_us;
};

struct sim_node {
	sd_event *event;
	const struct sim_config *cfg;
	struct sim_device *dev;
	sim_node_event_fn on_event;
	void *userdata;
	struct sim_link **links;
	size_t n_links;
	enum sim_node_state state;

	/* Requests waiting for the device's one worker, oldest first. */
	struct sim_job *queue;
	size_t q_len;
	size_t q_cap;
	/* The request being worked on and what it produced. */
	bool busy;
	bool sending; /* its answer is on a wire the worker writes itself */
	struct sim_job current;
	struct sim_result result;
	sd_event_source *busy_timer;
	sd_event_source *boot_timer;
	/* The device's own clock: when the worker became free. A real device's
	 * flash write does not grow by the host's timer wake-up latency, so the
	 * next request starts from the time the last one was due to end, not
	 * from when this process got round to it. */
	uint64_t free_at_us;
	uint64_t requests;
	uint64_t dropped;
	uint64_t no_buffer; /* of those dropped: all buffers were taken */
};

/* Zephyr's SMP buffers: one pool of buf_count net_bufs shared by every
 * transport (smp.c: NET_BUF_POOL_DEFINE(pkt_pool, ..._NETBUF_COUNT)). A
 * transport takes one for each request as it arrives, without waiting
 * (smp_packet_alloc(): K_NO_WAIT), and drops the request when none is free
 * (smp_udp.c: "Failed to allocate mcumgr buffer"). The worker takes a second
 * one for the answer when it starts on a request (smp_alloc_rsp()) and frees
 * both once the answer is sent. So while one request is worked on, only
 * buf_count - 2 more can wait. With buf_count 1 (MCUboot's serial recovery
 * reports that; it has its own static buffers) one request at a time. */
static unsigned sim_node_buffers_in_use(const struct sim_node *n)
{
	return (unsigned)n->q_len + (n->busy ? MIN(2u, n->cfg->buf_count) : 0);
}

static void sim_node_update_buffers(struct sim_node *n)
{
	sim_device_set_buffers_in_use(n->dev, sim_node_buffers_in_use(n));
}

static uint64_t sim_node_now(struct sim_node *n)
{
	uint64_t t = 0;

	if (sd_event_now(n->event, CLOCK_MONOTONIC, &t) < 0)
		t = sim_now_usec();
	return t;
}

static void sim_node_emit(struct sim_node *n, enum sim_node_event ev, const char *fmt, ...)
    _printf_(3, 4);

static void sim_node_emit(struct sim_node *n, enum sim_node_event ev, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n->on_event)
		n->on_event(n, ev, text, n->userdata);
}

static void sim_node_console(struct sim_node *n, const char *fmt, ...) _printf_(2, 3);

/* A Zephyr log line on every transport that carries a console. */
static void sim_node_console(struct sim_node *n, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < n->n_links; i++)
		if (n->links[i]->ops->console)
			n->links[i]->ops->console(n->links[i], text);
}

static void sim_job_clear(struct sim_job *j)
{
	free(j->data);
	*j = (struct sim_job){0};
}

static void sim_node_drop_queue(struct sim_node *n, struct sim_link *only)
{
	size_t kept = 0;

	for (size_t i = 0; i < n->q_len; i++) {
		if (!only || n->queue[i].link == only) {
			sim_job_clear(&n->queue[i]);
			n->dropped++;
		} else
			n->queue[kept++] = n->queue[i];
	}
	n->q_len = kept;
	sim_node_update_buffers(n);
}

static void sim_node_kick(struct sim_node *n);
static int sim_node_on_done(sd_event_source *s, uint64_t usec, void *userdata);

static int sim_node_on_boot(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_node *n = userdata;
	char ver[SMP_MCUBOOT_VERSION_STRING_MAX];

	n->state = SIM_NODE_UP;
	sim_device_started(n->dev);
	for (size_t i = 0; i < n->n_links; i++)
		if (n->links[i]->ops->device_up)
			n->links[i]->ops->device_up(n->links[i]);
	sim_node_emit(n, SIM_NODE_BOOTED, "BOOT id=%s version=%s", sim_device_name(n->dev),
		      sim_image_running_version(sim_device_image(n->dev), ver));
	sim_node_console(n, "*** Booting Zephyr OS build %s ***",
			 sim_device_info(n->dev, SIM_INFO_RELEASE));
	sim_node_kick(n);
	return 0;
}

/* The device stops answering, MCUboot decides, and after the reboot delay
 * (plus the time MCUboot spends copying) the application is back. */
static void sim_node_go_down(struct sim_node *n, const char *reason)
{
	struct sim_boot_report rep;
	uint64_t delay;
	int r;

	if (n->state != SIM_NODE_UP)
		return;
	n->state = SIM_NODE_DOWN;
	n->busy_timer = sd_event_source_disable_unref(n->busy_timer);
	n->busy = false;
	n->sending = false;
	sim_job_clear(&n->current);
	sim_result_clear(&n->result);
	sim_node_drop_queue(n, NULL);
	for (size_t i = 0; i < n->n_links; i++)
		if (n->links[i]->ops->device_down)
			n->links[i]->ops->device_down(n->links[i]);
	sim_node_emit(n, SIM_NODE_RESET, "RESET id=%s reason=%s", sim_device_name(n->dev), reason);

	sim_device_power_off(n->dev);
	r = sim_device_boot(n->dev, &rep);
	if (r < 0) {
		sim_log_errno(SIM_LOG_ERR, r, sim_device_name(n->dev), "boot failed");
		rep = (struct sim_boot_report){.bricked = true};
	}
	if (rep.invalid_secondary)
		sim_log(SIM_LOG_INFO, sim_device_name(n->dev),
			"MCUboot: the image to test is invalid, erased");
	if (rep.failed_and_reverted)
		sim_log(SIM_LOG_INFO, sim_device_name(n->dev),
			"the new image failed to boot, reverted");
	if (rep.bricked) {
		n->state = SIM_NODE_BRICKED;
		sim_log(SIM_LOG_WARN, sim_device_name(n->dev),
			"no bootable image: the device is dead");
		sim_node_emit(n, SIM_NODE_BOOTED, "BOOT id=%s bricked", sim_device_name(n->dev));
		return;
	}
	sim_log(SIM_LOG_INFO, sim_device_name(n->dev), "reset (%s): swap %s, %s next", reason,
		sim_swap_type_to_string(rep.swap), rep.version);
	delay = n->cfg->reboot_delay_us + rep.copied_bytes / 1024 * n->cfg->swap_us_per_kib;
	if (rep.failed_and_reverted)
		delay += n->cfg->reboot_delay_us;
	n->boot_timer = sd_event_source_disable_unref(n->boot_timer);
	r = sd_event_add_time(n->event, &n->boot_timer, CLOCK_MONOTONIC, sim_node_now(n) + delay,
			      SIM_TIMER_ACCURACY_US, sim_node_on_boot, n);
	if (r < 0) {
		sim_log_errno(SIM_LOG_ERR, r, sim_device_name(n->dev), "cannot schedule the boot");
		return;
	}
	sd_event_source_set_description(n->boot_timer, "sim-node-boot");
}

void sim_node_reset(struct sim_node *n, const char *reason)
{
	sim_node_go_down(n, reason);
}

/* The worker is busy until `until` (CLOCK_MONOTONIC, µs). */
static void sim_node_arm_busy(struct sim_node *n, uint64_t until)
{
	int r;

	if (!n->busy_timer) {
		r = sd_event_add_time(n->event, &n->busy_timer, CLOCK_MONOTONIC,
				      until, SIM_TIMER_ACCURACY_US,
				      sim_node_on_done, n);
		if (r < 0) {
			sim_log_errno(SIM_LOG_ERR, r, sim_device_name(n->dev),
				      "cannot add a timer");
			return;
		}
		sd_event_source_set_description(n->busy_timer, "sim-node-busy");
	} else {
		sd_event_source_set_time(n->busy_timer, until);
		sd_event_source_set_enabled(n->busy_timer, SD_EVENT_ONESHOT);
	}
}

/* The worker is done with a request: its two buffers are free again. */
static void sim_node_release(struct sim_node *n, uint64_t at)
{
	n->free_at_us = at;
	n->busy = false;
	n->sending = false;
	sim_job_clear(&n->current);
	sim_node_update_buffers(n);
	sim_node_kick(n);
}

static int sim_node_on_done(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sim_node *n = userdata;
	struct sim_result res = n->result;
	struct sim_link *l = n->current.link;
	uint64_t hold = 0;

	/* usec is when the work was due to end (not when the loop woke). */
	if (n->sending) {
		sim_node_release(n, usec);
		return 0;
	}
	n->result = (struct sim_result){0};
	if (!res.power_loss)
		for (size_t i = 0; i < res.n_pkts; i++) {
			sim_link_send(l, res.pkts[i].data, res.pkts[i].len, &n->current.peer, usec);
			if (l->ops->tx_hold_us)
				hold += l->ops->tx_hold_us(l, res.pkts[i].len);
		}
	if (res.power_loss)
		sim_node_go_down(n, "power-loss");
	else if (res.reset) {
		sim_node_console(n, "<inf> mcumgr_os_grp: reset requested");
		sim_node_go_down(n, "request");
	} else if (hold > 0) {
		/* Buffers and worker stay taken until the answer has left. */
		n->sending = true;
		sim_node_arm_busy(n, usec + hold);
	} else
		sim_node_release(n, usec);
	sim_result_clear(&res);
	return 0;
}

static void sim_node_log_request(struct sim_node *n, const struct sim_job *job)
{
	struct smp_header h;
	const char *cmd;

	if (smp_header_decode(job->data, job->len, &h) < 0) {
		sim_log(SIM_LOG_DEBUG, sim_device_name(n->dev), "%s: %zu bytes, no header",
			job->link->ops->kind, job->len);
		return;
	}
	cmd = smp_command_to_string(h.group, h.id, h.op);
	sim_log(SIM_LOG_DEBUG, sim_device_name(n->dev),
		"%s: %s %s/%s v%u seq %u, %zu bytes: %zu answer(s)%s%s, busy %llu us",
		job->link->ops->kind, smp_op_to_string(h.op) ? smp_op_to_string(h.op) : "op?",
		smp_group_to_string(h.group) ? smp_group_to_string(h.group) : "group?",
		cmd ? cmd : "?", h.version + 1, h.seq, job->len, n->result.n_pkts,
		n->result.reset ? ", reset" : "", n->result.power_loss ? ", power loss" : "",
		(unsigned long long)n->result.busy_us);
}

static void sim_node_kick(struct sim_node *n)
{
	struct sim_job job;
	int r;

	if (n->busy || n->q_len == 0 || n->state != SIM_NODE_UP)
		return;
	job = n->queue[0];
	memmove(n->queue, n->queue + 1, (n->q_len - 1) * sizeof(*n->queue));
	n->q_len--;
	n->busy = true;
	n->current = job;
	sim_node_update_buffers(n);
	r = sim_device_process(n->dev, job.link, job.data, job.len, &n->result);
	if (r < 0) {
		sim_log_errno(SIM_LOG_ERR, r, sim_device_name(n->dev), "request dropped");
		n->result = (struct sim_result){0};
	}
	n->requests++;
	if (sim_log_max >= SIM_LOG_DEBUG)
		sim_node_log_request(n, &job);
	/* It started when it arrived or when the worker became free, whichever
	 * came later; both are in the past. */
	sim_node_arm_busy(n, MAX(job.arrived_us, n->free_at_us) + n->result.busy_us);
}

void sim_node_submit(struct sim_node *n, struct sim_link *l, const uint8_t *pkt, size_t len,
		     const struct sim_peer *from)
{
	struct sim_job *j;

	if (n->state != SIM_NODE_UP) {
		sim_log(SIM_LOG_DEBUG, sim_device_name(n->dev), "down: request dropped");
		n->dropped++;
		return;
	}
	/* A request that does not fit one SMP buffer is lost, without an answer. */
	if (len > n->cfg->buf_size) {
		sim_log(SIM_LOG_DEBUG, sim_device_name(n->dev),
			"request of %zu bytes does not fit buf_size %u: dropped", len,
			n->cfg->buf_size);
		n->dropped++;
		return;
	}
	if (sim_node_buffers_in_use(n) >= n->cfg->buf_count) {
		sim_log(SIM_LOG_DEBUG, sim_device_name(n->dev),
			"all %u buffers taken: request dropped", n->cfg->buf_count);
		n->dropped++;
		n->no_buffer++;
		return;
	}
	if (n->q_len == n->q_cap) {
		size_t cap = n->q_cap ? n->q_cap * 2 : 4;
		struct sim_job *q = realloc(n->queue, cap * sizeof(*q));

		if (!q)
			return;
		n->queue = q;
		n->q_cap = cap;
	}
	j = &n->queue[n->q_len];
	*j = (struct sim_job){.link = l, .len = len, .arrived_us = sim_node_now(n)};
	if (from)
		j->peer = *from;
	j->data = malloc(len ? len : 1);
	if (!j->data)
		return;
	memcpy(j->data, pkt, len);
	n->q_len++;
	sim_node_update_buffers(n);
	sim_node_kick(n);
}

void sim_node_link_down(struct sim_node *n, struct sim_link *l)
{
	sim_node_drop_queue(n, l);
}

void sim_node_link_event(struct sim_node *n, struct sim_link *l, const char *what)
{
	sim_node_emit(n, SIM_NODE_LINK, "LINK %s %s id=%s %s", l->ops->kind, l->where,
		      sim_device_name(n->dev), what);
}

int sim_node_new(sd_event *e, const struct sim_config *cfg, unsigned index, const char *scratch,
		 sim_node_event_fn on_event, void *userdata, struct sim_node **ret)
{
	struct sim_node *n = calloc(1, sizeof(*n));
	int r;

	if (!n)
		return -ENOMEM;
	n->event = sd_event_ref(e);
	n->cfg = cfg;
	n->on_event = on_event;
	n->userdata = userdata;
	r = sim_device_new(cfg, index, scratch, &n->dev);
	if (r < 0) {
		sim_node_free(n);
		return r;
	}
	n->state = SIM_NODE_UP;
	*ret = n;
	return 0;
}

struct sim_node *sim_node_free(struct sim_node *n)
{
	if (!n)
		return NULL;
	for (size_t i = 0; i < n->n_links; i++)
		sim_link_free(n->links[i]);
	free(n->links);
	sim_node_drop_queue(n, NULL);
	free(n->queue);
	sim_job_clear(&n->current);
	sim_result_clear(&n->result);
	sd_event_source_disable_unref(n->busy_timer);
	sd_event_source_disable_unref(n->boot_timer);
	sim_device_free(n->dev);
	sd_event_unref(n->event);
	free(n);
	return NULL;
}

int sim_node_add_link(struct sim_node *n, struct sim_link *l)
{
	struct sim_link **p = realloc(n->links, (n->n_links + 1) * sizeof(*p));

	if (!p)
		return -ENOMEM;
	n->links = p;
	n->links[n->n_links++] = l;
	return 0;
}

struct sim_device *sim_node_device(struct sim_node *n)
{
	return n->dev;
}

bool sim_node_is_up(const struct sim_node *n)
{
	return n->state == SIM_NODE_UP;
}

size_t sim_node_n_links(const struct sim_node *n)
{
	return n->n_links;
}

struct sim_link *sim_node_link(struct sim_node *n, size_t i)
{
	return i < n->n_links ? n->links[i] : NULL;
}

void sim_node_dump(struct sim_node *n)
{
	struct sim_device *d = n->dev;
	char ver[SMP_MCUBOOT_VERSION_STRING_MAX];

	fprintf(stderr,
		"smp-sim: %s: %s, version %s, swap %s, %llu requests, %llu dropped"
		" (%llu without a buffer), %zu queued, uptime %llu ms",
		sim_device_name(d),
		n->state == SIM_NODE_UP	    ? "up"
		: n->state == SIM_NODE_DOWN ? "rebooting"
					    : "bricked",
		sim_image_running_version(sim_device_image(d), ver),
		sim_swap_type_to_string(sim_image_swap_type(sim_device_image(d))),
		(unsigned long long)n->requests, (unsigned long long)n->dropped,
		(unsigned long long)n->no_buffer, n->q_len,
		(unsigned long long)sim_device_uptime_ms(d));
	for (size_t i = 0; i < n->n_links; i++)
		fprintf(stderr, "; %s %s%s, %llu dropped on the wire", n->links[i]->ops->kind,
			n->links[i]->where, n->links[i]->down ? " (down)" : "",
			(unsigned long long)n->links[i]->in_dropped);
	fputc('\n', stderr);
}
