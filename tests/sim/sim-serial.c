/* sim-serial: the serial transport of a simulated device: a PTY with console framing */
#include <errno.h>
#include <fcntl.h>
#include <nettle/base64.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim-transports.h"
#include "smp-serial.h"

/* Zephyr's MCUMGR_SERIAL_MAX_FRAME: a line, marker and newline included. */
#define SIM_SERIAL_MAX_FRAME 127
/* Output the PTY has not taken yet; beyond this a device's UART would drop. */
#define SIM_SERIAL_OUT_MAX (1024 * 1024)
/* With --baud, input is read from the PTY at most this far ahead of the
 * emulated wire (reading early makes nothing arrive early: see below). */
#define SIM_SERIAL_READ_AHEAD_US 10000
/* With --baud, output goes to the PTY in batches at least this far apart:
 * a byte is written once its 10 bits have passed, at most this much later. */
#define SIM_SERIAL_BATCH_US 500

struct sim_serial {
	struct sim_link link;
	struct sim_serial_params p;
	char *link_path;
	int master;
	int slave;
	sd_event_source *io;
	sd_event_source *throttle_timer;
	sd_event_source *log_timer;
	struct smp_serial_decoder *dec;
	/* The device's line buffer. */
	uint8_t *line;
	size_t line_len;
	bool line_overflow;
	/* Bytes for the PTY, whole lines only; those before out_off are written. */
	struct smp_buf out;
	size_t out_off;
	/* Bytes read from the PTY; those before in_off have reached the device. */
	struct smp_buf in;
	size_t in_off;
	/* --baud: each direction is an 8N1 wire (sim-pace.h). Output bytes are
	 * charged when the device queues them and written to the PTY once
	 * they have passed; input bytes are charged when read from the PTY and
	 * reach the device's line buffer once they have passed. */
	struct sim_pace tx;
	struct sim_pace rx;
};

static uint64_t sim_serial_now(struct sim_serial *s)
{
	uint64_t t = 0;

	if (sd_event_now(s->link.event, CLOCK_MONOTONIC, &t) < 0)
		t = sim_now_usec();
	return t;
}

static void sim_serial_b64(struct smp_buf *out, const uint8_t *raw, size_t n)
{
	char b64[BASE64_ENCODE_RAW_LENGTH(3)];

	base64_encode_raw(b64, n, raw);
	smp_buf_append(out, b64, BASE64_ENCODE_RAW_LENGTH(n));
}

int sim_serial_frame(const uint8_t *data, size_t len, struct smp_buf *out)
{
	uint16_t crc = smp_crc16_xmodem(data, len, 0);
	int max_input = ((SIM_SERIAL_MAX_FRAME - 3) >> 2) * 3;
	size_t src_off = 0;
	bool first = true, last = false;
	uint8_t marker[2] = {0x06, 0x09};

	if (len == 0 || len > SMP_SERIAL_PACKET_MAX)
		return -EINVAL;
	/* mcumgr_serial_tx_pkt(), including its quirks: the first line spends a
	 * triplet on the length and the budget is never given back. */
	while (src_off < len) {
		int to_process, reminder;
		uint8_t raw[3];

		smp_buf_append(out, marker, 2);
		if (first) {
			raw[0] = (uint8_t)((len + 2) >> 8);
			raw[1] = (uint8_t)(len + 2);
			raw[2] = data[0];
			sim_serial_b64(out, raw, 3);
			src_off++;
			max_input -= 3;
		}
		to_process = (int)MIN((size_t)max_input, len - src_off);
		reminder = max_input - (int)(len - src_off);
		if (reminder == 0 || reminder == 1) {
			/* The CRC would not fit whole: move a byte to the next line. */
			to_process -= 1;
			last = false;
		} else if (reminder >= 2)
			last = true;
		while (to_process >= 3) {
			sim_serial_b64(out, data + src_off, 3);
			src_off += 3;
			to_process -= 3;
		}
		if (last) {
			switch (len - src_off) {
			case 0:
				raw[0] = (uint8_t)(crc >> 8);
				raw[1] = (uint8_t)crc;
				sim_serial_b64(out, raw, 2);
				break;
			case 1:
				raw[0] = data[src_off++];
				raw[1] = (uint8_t)(crc >> 8);
				raw[2] = (uint8_t)crc;
				sim_serial_b64(out, raw, 3);
				break;
			case 2:
				raw[0] = data[src_off++];
				raw[1] = data[src_off++];
				raw[2] = (uint8_t)(crc >> 8);
				sim_serial_b64(out, raw, 3);
				raw[0] = (uint8_t)crc;
				sim_serial_b64(out, raw, 1);
				break;
			}
		}
		smp_buf_append(out, "\n", 1);
		marker[0] = 0x04;
		marker[1] = 0x14;
		first = false;
	}
	return smp_buf_error(out);
}

static void sim_serial_update(struct sim_serial *s);

static int sim_serial_on_throttle(sd_event_source *src, uint64_t usec, void *userdata)
{
	sim_serial_update(userdata);
	return 0;
}

static void sim_serial_line(struct sim_serial *s, uint8_t *line, size_t n);

/* Drops the bytes before *off once there are enough of them to bother. */
static void sim_serial_compact(struct smp_buf *b, size_t *off)
{
	if (*off == b->len) {
		smp_buf_clear(b);
		*off = 0;
	} else if (*off >= 4096) {
		memmove(b->data, b->data + *off, b->len - *off);
		b->len -= *off;
		*off = 0;
	}
}

/* Feeds the device's line buffer with the input bytes that have arrived. */
static void sim_serial_take_input(struct sim_serial *s, uint64_t now)
{
	uint64_t first = s->rx.total - (s->in.len - s->in_off);
	uint64_t arrived = sim_pace_passed(&s->rx, now);

	while (s->in_off < s->in.len && first < arrived) {
		uint8_t c = s->in.data[s->in_off++];

		first++;
		if (c == '\n') {
			if (!s->line_overflow) {
				s->line[s->line_len++] = '\n';
				sim_serial_line(s, s->line, s->line_len);
			} else
				sim_log(SIM_LOG_DEBUG, s->link.where,
					"line longer than %zu bytes dropped", s->p.line_max);
			s->line_len = 0;
			s->line_overflow = false;
			if (s->master < 0)
				return;
		} else if (s->line_len + 1 < s->p.line_max)
			s->line[s->line_len++] = c;
		else
			s->line_overflow = true;
	}
	sim_serial_compact(&s->in, &s->in_off);
}

/* Writes the output bytes that have passed the wire (all of them without
 * --baud); returns when to come back for more (0: no need). */
static uint64_t sim_serial_put_output(struct sim_serial *s, uint64_t now, uint32_t *events)
{
	while (s->out_off < s->out.len) {
		uint64_t first = s->tx.total - (s->out.len - s->out_off);
		uint64_t passed = sim_pace_passed(&s->tx, now);
		size_t n = s->out.len - s->out_off;
		ssize_t w;

		if (passed <= first) {
			uint64_t batch =
			    MAX(1ULL, (uint64_t)s->p.baud / 10 * SIM_SERIAL_BATCH_US / 1000000);

			return sim_pace_when(&s->tx, MIN(first + batch, s->tx.total));
		}
		n = (size_t)MIN((uint64_t)n, passed - first);
		w = write(s->master, s->out.data + s->out_off, n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				*events |= EPOLLOUT;
			else
				sim_log(SIM_LOG_WARN, s->link.where, "write: %s", strerror(errno));
			return 0;
		}
		s->out_off += (size_t)w;
		sim_link_count(&s->link, (size_t)w);
		if (s->master < 0)
			return 0; /* the byte count hung the link up */
		sim_serial_compact(&s->out, &s->out_off);
	}
	return 0;
}

/* Moves bytes both ways as far as the emulated wires allow, then decides
 * which events to wait for. */
static void sim_serial_update(struct sim_serial *s)
{
	uint64_t now = sim_serial_now(s), wake, t;
	uint32_t events = 0;
	const uint8_t *nl;

	if (s->master < 0)
		return;
	sim_serial_take_input(s, now);
	if (s->master < 0)
		return;
	wake = sim_serial_put_output(s, now, &events);
	if (s->master < 0)
		return;
	/* The next complete line of input is the next thing the device acts on. */
	nl = s->in_off < s->in.len ? memchr(s->in.data + s->in_off, '\n', s->in.len - s->in_off)
				   : NULL;
	if (nl) {
		t = sim_pace_when(&s->rx,
				  s->rx.total - (s->in.len - (size_t)(nl - s->in.data)) + 1);
		wake = wake ? MIN(wake, t) : t;
	}
	if (sim_pace_free_us(&s->rx) > now + SIM_SERIAL_READ_AHEAD_US) {
		t = sim_pace_free_us(&s->rx) - SIM_SERIAL_READ_AHEAD_US;
		wake = wake ? MIN(wake, t) : t;
	} else
		events |= EPOLLIN;
	sd_event_source_set_io_events(s->io, events);
	if (wake) {
		sd_event_source_set_time(s->throttle_timer, MAX(wake, now));
		sd_event_source_set_enabled(s->throttle_timer, SD_EVENT_ONESHOT);
	} else
		sd_event_source_set_enabled(s->throttle_timer, SD_EVENT_OFF);
}

static void sim_serial_queue(struct sim_serial *s, const void *p, size_t n)
{
	if (s->out.len - s->out_off + n > SIM_SERIAL_OUT_MAX) {
		sim_log(SIM_LOG_DEBUG, s->link.where, "nobody reads the port: %zu bytes dropped",
			n);
		return;
	}
	smp_buf_append(&s->out, p, n);
	if (smp_buf_error(&s->out)) {
		sim_log(SIM_LOG_WARN, s->link.where, "out of memory for the port");
		return;
	}
	sim_pace_charge(&s->tx, sim_serial_now(s), n);
}

static void sim_serial_console_line(struct sim_serial *s, const char *text)
{
	uint64_t ms = sim_device_uptime_ms(sim_node_device(s->link.node));
	char line[320];
	int n;

	if (!strncmp(text, "***", 3))
		n = snprintf(line, sizeof(line), "%s\r\n", text);
	else
		n = snprintf(
		    line, sizeof(line), "[%02llu:%02llu:%02llu.%03llu,000] %s\r\n",
		    (unsigned long long)(ms / 3600000), (unsigned long long)(ms / 60000 % 60),
		    (unsigned long long)(ms / 1000 % 60), (unsigned long long)(ms % 1000), text);
	if (n > 0)
		sim_serial_queue(s, line, MIN((size_t)n, sizeof(line) - 1));
}

static void sim_serial_console(struct sim_link *l, const char *text)
{
	struct sim_serial *s = (struct sim_serial *)l;

	if (!s->p.console_log || s->master < 0)
		return;
	sim_serial_console_line(s, text);
	sim_serial_update(s);
}

static void sim_serial_transmit(struct sim_link *l, const uint8_t *pkt, size_t len,
				const struct sim_peer *to, bool corrupt)
{
	struct sim_serial *s = (struct sim_serial *)l;
	struct smp_buf frame = SMP_BUF_INIT;
	size_t start = 0;

	if (s->master < 0)
		return;
	if (sim_serial_frame(pkt, len, &frame) < 0) {
		smp_buf_clear(&frame);
		return;
	}
	if (corrupt && frame.len > 3) {
		/* Line noise: one character of the text changes. */
		size_t at = 2 + sim_rng_below(&l->rng, frame.len - 3);

		if (frame.data[at] != '\n')
			frame.data[at] = frame.data[at] == 'A' ? 'B' : 'A';
	}
	for (size_t i = 0; i < frame.len; i++) {
		if (frame.data[i] != '\n')
			continue;
		sim_serial_queue(s, frame.data + start, i + 1 - start);
		start = i + 1;
		/* A log line that lands between two lines of the frame. */
		if (s->p.console_log && s->p.interleave && start < frame.len)
			sim_serial_console_line(s, "<dbg> smp_sim: (interleaved log line)");
	}
	smp_buf_clear(&frame);
	sim_serial_update(s);
}

static void sim_serial_on_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct sim_serial *s = userdata;

	sim_link_receive(&s->link, pkt, len, NULL, true);
}

/* One complete input line, newline included: the device's line buffer
 * has held it; now the line faults, then the framing decoder. */
static void sim_serial_line(struct sim_serial *s, uint8_t *line, size_t n)
{
	if (sim_link_chance(&s->link, s->link.faults->drop_rate)) {
		sim_log(SIM_LOG_DEBUG, s->link.where, "fault: input line dropped");
		return;
	}
	if (n > 3 && sim_link_chance(&s->link, s->link.faults->corrupt_rate)) {
		size_t at = 2 + sim_rng_below(&s->link.rng, n - 3);

		line[at] ^= 0x01;
		sim_log(SIM_LOG_DEBUG, s->link.where, "fault: input line corrupted");
	}
	smp_serial_decoder_feed(s->dec, line, n, sim_serial_on_packet, NULL, s);
}

static int sim_serial_on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct sim_serial *s = userdata;
	uint8_t buf[4096];
	size_t want = sizeof(buf);
	ssize_t n;

	if (revents & EPOLLIN) {
		/* At most what passes the wire in the read-ahead time. */
		if (s->p.baud)
			want =
			    MIN(want, MAX((size_t)1, (size_t)((uint64_t)s->p.baud / 10 *
							      SIM_SERIAL_READ_AHEAD_US / 1000000)));
		n = read(fd, buf, want);
		if (n > 0) {
			sim_link_count(&s->link, (size_t)n);
			if (s->master < 0)
				return 0;
			smp_buf_append(&s->in, buf, (size_t)n);
			if (smp_buf_error(&s->in)) {
				sim_log(SIM_LOG_WARN, s->link.where, "out of memory for the port");
				smp_buf_clear(&s->in);
				s->in_off = 0;
				return 0;
			}
			sim_pace_charge(&s->rx, sim_serial_now(s), (uint64_t)n);
		} else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != EIO)
			sim_log(SIM_LOG_WARN, s->link.where, "read: %s", strerror(errno));
	}
	sim_serial_update(s);
	return 0;
}

/* Zephyr's UART transport writes the answer from the SMP worker, byte by
 * byte (uart_mcumgr_send(): uart_poll_out()), so the worker and the
 * request's buffers are held for the answer's wire time. */
static uint64_t sim_serial_tx_hold_us(struct sim_link *l, size_t len)
{
	struct sim_serial *s = (struct sim_serial *)l;
	struct smp_buf frame = SMP_BUF_INIT;
	_cleanup_free_ uint8_t *zeros = NULL;
	uint64_t us = 0;

	if (!s->p.baud || len == 0)
		return 0;
	/* The framing's length does not depend on the bytes. */
	zeros = calloc(1, len);
	if (zeros && sim_serial_frame(zeros, len, &frame) == 0)
		us = sim_pace_duration_us(&s->tx, frame.len);
	smp_buf_clear(&frame);
	return us;
}

static void sim_serial_close_pty(struct sim_serial *s)
{
	s->io = sd_event_source_disable_unref(s->io);
	if (s->link_path) {
		char target[256];
		ssize_t n = readlink(s->link_path, target, sizeof(target) - 1);

		/* Only our own link is removed. */
		if (n > 0) {
			target[n] = 0;
			if (!strcmp(target, s->link.where))
				unlink(s->link_path);
		}
	}
	if (s->master >= 0)
		close(s->master);
	if (s->slave >= 0)
		close(s->slave);
	s->master = s->slave = -1;
	smp_buf_clear(&s->out);
	s->out_off = 0;
	smp_buf_clear(&s->in);
	s->in_off = 0;
	s->line_len = 0;
	s->line_overflow = false;
	if (s->dec)
		smp_serial_decoder_reset(s->dec);
}

static int sim_serial_open_pty(struct sim_serial *s)
{
	char name[128];
	struct termios t;
	struct stat st;
	int r;

	if (openpty(&s->master, &s->slave, name, NULL, NULL) < 0)
		return -errno;
	/* Raw on our side: bytes pass unchanged whatever the client sets. */
	if (tcgetattr(s->slave, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(s->slave, TCSANOW, &t);
	}
	if (fcntl(s->master, F_SETFL, fcntl(s->master, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(s->master, F_SETFD, FD_CLOEXEC) < 0 || fcntl(s->slave, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	r = sim_link_set_where(&s->link, name);
	if (r < 0)
		return r;
	if (s->link_path) {
		if (lstat(s->link_path, &st) == 0) {
			if (!S_ISLNK(st.st_mode)) {
				sim_log(SIM_LOG_ERR, NULL, "%s exists and is not a symlink",
					s->link_path);
				return -EEXIST;
			}
			unlink(s->link_path);
		}
		if (symlink(name, s->link_path) < 0)
			return sim_log_errno(SIM_LOG_ERR, -errno, NULL, "symlink %s", s->link_path);
	}
	r = sd_event_add_io(s->link.event, &s->io, s->master, EPOLLIN, sim_serial_on_io, s);
	if (r < 0)
		return r;
	sd_event_source_set_description(s->io, "sim-serial");
	sim_pace_init(&s->tx, s->p.baud, 10);
	sim_pace_init(&s->rx, s->p.baud, 10);
	return 0;
}

static void sim_serial_hang_up(struct sim_link *l)
{
	sim_serial_close_pty((struct sim_serial *)l);
}

static void sim_serial_reconnect(struct sim_link *l)
{
	struct sim_serial *s = (struct sim_serial *)l;
	int r = sim_serial_open_pty(s);

	if (r < 0)
		sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot open a new pseudo-terminal");
}

static int sim_serial_on_log(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct sim_serial *s = userdata;
	struct sim_node *n = s->link.node;

	if (sim_node_is_up(n))
		sim_serial_console(&s->link, "<inf> smp_sample: still alive");
	sd_event_source_set_time(src, usec + (uint64_t)s->p.log_interval_ms * 1000);
	return 0;
}

static void sim_serial_free(struct sim_link *l)
{
	struct sim_serial *s = (struct sim_serial *)l;

	sim_serial_close_pty(s);
	sd_event_source_disable_unref(s->throttle_timer);
	sd_event_source_disable_unref(s->log_timer);
	smp_serial_decoder_free(s->dec);
	smp_buf_clear(&s->in);
	free(s->line);
	free(s->link_path);
	sim_link_done(l);
	free(s);
}

static const struct sim_link_ops sim_serial_ops = {
    .kind = "serial",
    .transmit = sim_serial_transmit,
    .hang_up = sim_serial_hang_up,
    .reconnect = sim_serial_reconnect,
    .console = sim_serial_console,
    .tx_hold_us = sim_serial_tx_hold_us,
    .free = sim_serial_free,
};

int sim_serial_new(struct sim_node *n, sd_event *e, const struct sim_faults *faults, uint64_t seed,
		   const struct sim_serial_params *p, struct sim_link **ret)
{
	const struct sim_config *cfg = sim_device_config(sim_node_device(n));
	struct sim_serial *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->master = s->slave = -1;
	s->p = *p;
	s->p.line_max = MAX(p->line_max, (size_t)8);
	s->link.ordered = true;
	s->link.corrupts_encoding = true;
	r = sim_link_init(&s->link, &sim_serial_ops, n, e, faults, seed, "");
	if (r < 0)
		goto fail;
	s->link_path = p->link_path ? strdup(p->link_path) : NULL;
	s->line = malloc(s->p.line_max + 1);
	if ((p->link_path && !s->link_path) || !s->line) {
		r = -ENOMEM;
		goto fail;
	}
	/* LEN16, packet and CRC must fit the device's buffer. */
	r = smp_serial_decoder_new(cfg->buf_size > 4 ? cfg->buf_size - 4 : 1, &s->dec);
	if (r < 0)
		goto fail;
	r = sd_event_add_time(e, &s->throttle_timer, CLOCK_MONOTONIC, 0, SIM_TIMER_ACCURACY_US,
			      sim_serial_on_throttle, s);
	if (r < 0)
		goto fail;
	sd_event_source_set_enabled(s->throttle_timer, SD_EVENT_OFF);
	sd_event_source_set_description(s->throttle_timer, "sim-serial-baud");
	if (p->console_log && p->log_interval_ms) {
		r = sd_event_add_time_relative(e, &s->log_timer, CLOCK_MONOTONIC,
					       (uint64_t)p->log_interval_ms * 1000,
					       SIM_TIMER_ACCURACY_US, sim_serial_on_log, s);
		if (r < 0)
			goto fail;
		sd_event_source_set_enabled(s->log_timer, SD_EVENT_ON);
		sd_event_source_set_description(s->log_timer, "sim-serial-log");
	}
	r = sim_serial_open_pty(s);
	if (r < 0)
		goto fail;
	*ret = &s->link;
	return 0;
fail:
	sim_serial_free(&s->link);
	return r;
}
