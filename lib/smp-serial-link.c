/* smp-serial-link: SMP over a serial port (UART, USB CDC-ACM, pty) with console framing */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <termios.h>
#include <unistd.h>

#include "smp-buf.h"
#include "smp-chunk.h"
#include "smp-serial-link.h"
#include "smp-serial.h"
#include "smp-transport-internal.h"

struct smp_serial_link {
	struct smp_transport t; /* first: the vtable's pointer is ours */
	sd_event *event;
	sd_event_source *io;
	sd_event_source *partial_timer;
	sd_event_source *state_defer;
	int fd;
	bool down;
	int pending_state;
	size_t max_line;
	unsigned partial_timeout_ms;
	struct smp_serial_decoder *decoder;
	struct smp_txq txq;
	unsigned pin;
	bool dead;
	void (*on_console)(const uint8_t *line, size_t len, void *userdata);
	void *console_userdata;
	smp_transport_log_fn log;
	void *log_userdata;
};

#define serial_debug(s, ...)                                                                       \
	smp_transport_logf((s)->log, (s)->log_userdata, "smp-serial: " __VA_ARGS__)

static const struct {
	unsigned baud;
	speed_t speed;
} baud_table[] = {
    {1200, B1200},	 {2400, B2400},	      {4800, B4800},	   {9600, B9600},
    {19200, B19200},	 {38400, B38400},     {57600, B57600},	   {115200, B115200},
    {230400, B230400},	 {460800, B460800},   {500000, B500000},   {576000, B576000},
    {921600, B921600},	 {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
    {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000}, {3500000, B3500000},
    {4000000, B4000000},
};

static int baud_to_speed(unsigned baud, speed_t *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(baud_table); i++)
		if (baud_table[i].baud == baud) {
			*ret = baud_table[i].speed;
			return 0;
		}
	return -EINVAL;
}

static int serial_setup_tty(int fd, unsigned baud)
{
	struct termios tio;
	speed_t speed;

	if (baud_to_speed(baud, &speed) < 0)
		return -EINVAL;
	if (tcgetattr(fd, &tio) < 0)
		return -errno;
	cfmakeraw(&tio);
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | CRTSCTS);
	tio.c_cflag |= CS8 | CLOCAL | CREAD;
	tio.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (cfsetispeed(&tio, speed) < 0 || cfsetospeed(&tio, speed) < 0)
		return -errno;
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		return -errno;
	/* Whatever the device printed before we listened is not an answer to us. */
	(void)tcflush(fd, TCIOFLUSH);
	return 0;
}

static void serial_destroy(struct smp_serial_link *s)
{
	s->io = sd_event_source_disable_unref(s->io);
	s->partial_timer = sd_event_source_disable_unref(s->partial_timer);
	s->state_defer = sd_event_source_disable_unref(s->state_defer);
	if (s->fd >= 0)
		close(s->fd);
	smp_serial_decoder_free(s->decoder);
	smp_txq_clear(&s->txq);
	sd_event_unref(s->event);
	free(s);
}

static void serial_unpin(struct smp_serial_link *s)
{
	if (--s->pin == 0 && s->dead)
		serial_destroy(s);
}

static int serial_on_state_defer(sd_event_source *src, void *userdata)
{
	struct smp_serial_link *s = userdata;

	(void)src;
	(void)sd_event_source_set_enabled(s->state_defer, SD_EVENT_OFF);
	if (s->t.on_state) {
		s->pin++;
		s->t.on_state(&s->t, s->pending_state, s->t.userdata);
		serial_unpin(s);
	}
	return 0;
}

/* The port is gone: stop all I/O and report it from the loop. */
static void serial_go_down(struct smp_serial_link *s, int error)
{
	if (s->down)
		return;
	serial_debug(s, "port lost: %s", strerror(-error));
	s->down = true;
	s->io = sd_event_source_disable_unref(s->io);
	(void)sd_event_source_set_enabled(s->partial_timer, SD_EVENT_OFF);
	smp_txq_clear(&s->txq);
	s->pending_state = error;
	(void)sd_event_source_set_enabled(s->state_defer, SD_EVENT_ONESHOT);
}

static void serial_on_decoded_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct smp_serial_link *s = userdata;

	if (s->dead || !s->t.on_packet)
		return;
	s->t.on_packet(&s->t, pkt, len, s->t.userdata);
}

static void serial_on_console_line(const uint8_t *line, size_t len, void *userdata)
{
	struct smp_serial_link *s = userdata;

	if (s->dead || !s->on_console)
		return;
	s->on_console(line, len, s->console_userdata);
}

static void serial_arm_partial_timer(struct smp_serial_link *s)
{
	uint64_t now;

	if (!smp_serial_decoder_in_progress(s->decoder)) {
		(void)sd_event_source_set_enabled(s->partial_timer, SD_EVENT_OFF);
		return;
	}
	if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0)
		return;
	(void)sd_event_source_set_time(s->partial_timer,
				       now + (uint64_t)s->partial_timeout_ms * 1000);
	(void)sd_event_source_set_enabled(s->partial_timer, SD_EVENT_ONESHOT);
}

static int serial_on_partial_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct smp_serial_link *s = userdata;

	(void)src, (void)usec;
	serial_debug(s, "dropped a partial packet after %u ms of silence", s->partial_timeout_ms);
	smp_serial_decoder_reset(s->decoder);
	return 0;
}

static void serial_read(struct smp_serial_link *s)
{
	uint8_t buf[4096];

	/* A few reads per wakeup: enough to keep up with 4 Mbaud, fair to the loop. */
	for (int i = 0; i < 16 && !s->dead && !s->down; i++) {
		ssize_t n = read(s->fd, buf, sizeof(buf));

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			serial_go_down(s, -errno);
			return;
		}
		if (n == 0) {
			serial_go_down(s, -ENODEV);
			return;
		}
		smp_serial_decoder_feed(s->decoder, buf, (size_t)n, serial_on_decoded_packet,
					serial_on_console_line, s);
		if (s->dead)
			return;
		serial_arm_partial_timer(s);
	}
}

static void serial_flush(struct smp_serial_link *s)
{
	while (s->txq.head) {
		struct smp_txq_item *it = s->txq.head;
		ssize_t n = write(s->fd, it->data + it->off, it->len - it->off);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			serial_go_down(s, -errno);
			return;
		}
		it->off += (size_t)n;
		if (it->off == it->len)
			smp_txq_pop(&s->txq);
	}
	(void)sd_event_source_set_io_events(s->io, s->txq.head ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static int serial_on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct smp_serial_link *s = userdata;

	(void)src, (void)fd;
	s->pin++;
	/* Read what is left before acting on a hang-up: the last answer may be in it. */
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		serial_read(s);
	if (!s->dead && !s->down && revents & EPOLLOUT)
		serial_flush(s);
	if (!s->dead && !s->down && revents & EPOLLHUP && !(revents & EPOLLIN))
		serial_go_down(s, -ENODEV);
	serial_unpin(s);
	return 0;
}

static int serial_send(struct smp_transport *t, const uint8_t *pkt, size_t len)
{
	struct smp_serial_link *s = (struct smp_serial_link *)t;
	struct smp_buf out = SMP_BUF_INIT;
	int r;

	if (s->down)
		return -ENOTCONN;
	if (len > SMP_SERIAL_PACKET_MAX)
		return -EMSGSIZE;
	r = smp_serial_encode(pkt, len, s->max_line, &out);
	if (r == 0)
		r = smp_txq_push(&s->txq, out.data, out.len);
	smp_buf_clear(&out);
	if (r < 0)
		return r;
	serial_flush(s);
	return 0;
}

static size_t serial_packet_budget(struct smp_transport *t, size_t buf_size)
{
	(void)t;
	return MIN(smp_chunk_budget_serial(buf_size), (size_t)SMP_SERIAL_PACKET_MAX);
}

static void serial_free(struct smp_transport *t)
{
	struct smp_serial_link *s = (struct smp_serial_link *)t;

	if (s->pin > 0) {
		s->dead = true;
		s->io = sd_event_source_disable_unref(s->io);
		s->partial_timer = sd_event_source_disable_unref(s->partial_timer);
		s->state_defer = sd_event_source_disable_unref(s->state_defer);
		return;
	}
	serial_destroy(s);
}

static const struct smp_transport_ops serial_ops = {
    .name = "serial",
    .send = serial_send,
    .packet_budget = serial_packet_budget,
    .free = serial_free,
};

static int serial_new(sd_event *e, int fd, const struct smp_serial_link_config *cfg,
		      struct smp_transport **ret)
{
	static const struct smp_serial_link_config defaults = {0};
	struct smp_serial_link *s;
	unsigned baud;
	int r, flags;

	if (!cfg)
		cfg = &defaults;
	baud = cfg->baud ? cfg->baud : SMP_SERIAL_LINK_DEFAULT_BAUD;
	if (cfg->max_packet > SMP_SERIAL_PACKET_MAX ||
	    (cfg->max_line && smp_serial_encoded_size(1, cfg->max_line) == 0))
		return -EINVAL;

	if (isatty(fd)) {
		r = serial_setup_tty(fd, baud);
		if (r < 0)
			return r;
	} else if (baud_to_speed(baud, &(speed_t){0}) < 0)
		return -EINVAL;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->t.ops = &serial_ops;
	s->t.link = SMP_LINK_SERIAL;
	s->event = sd_event_ref(e);
	s->fd = -1;
	s->max_line = cfg->max_line ? cfg->max_line : SMP_SERIAL_LINE_DEFAULT;
	s->partial_timeout_ms = cfg->partial_timeout_ms
				    ? cfg->partial_timeout_ms
				    : SMP_SERIAL_LINK_DEFAULT_PARTIAL_TIMEOUT_MS;
	s->on_console = cfg->on_console;
	s->console_userdata = cfg->console_userdata;
	s->log = cfg->log;
	s->log_userdata = cfg->log_userdata;

	r = smp_serial_decoder_new(cfg->max_packet ? cfg->max_packet : SMP_SERIAL_PACKET_MAX,
				   &s->decoder);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(e, &s->io, fd, EPOLLIN, serial_on_io, s);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(s->io, "smp-serial");
	r = sd_event_add_time(e, &s->partial_timer, CLOCK_MONOTONIC, 0, 1000,
			      serial_on_partial_timeout, s);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(s->partial_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(s->partial_timer, "smp-serial-partial");
	r = sd_event_add_defer(e, &s->state_defer, serial_on_state_defer, s);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(s->state_defer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(s->state_defer, "smp-serial-state");

	s->fd = fd;
	*ret = &s->t;
	return 0;

fail:
	serial_destroy(s);
	return r;
}

int smp_serial_link_new_fd(sd_event *e, int fd, const struct smp_serial_link_config *cfg,
			   struct smp_transport **ret)
{
	if (!e || fd < 0 || !ret)
		return -EINVAL;
	return serial_new(e, fd, cfg, ret);
}

int smp_serial_link_new(sd_event *e, const char *path, const struct smp_serial_link_config *cfg,
			struct smp_transport **ret)
{
	int fd, r;

	if (!e || !path || !ret)
		return -EINVAL;
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = serial_new(e, fd, cfg, ret);
	if (r < 0)
		close(fd);
	return r;
}

size_t smp_serial_link_get_queued(struct smp_transport *t)
{
	struct smp_serial_link *s = (struct smp_serial_link *)t;
	size_t n = 0;

	if (!t || t->ops != &serial_ops)
		return 0;
	for (struct smp_txq_item *it = s->txq.head; it; it = it->next)
		n += it->len - it->off;
	return n;
}
