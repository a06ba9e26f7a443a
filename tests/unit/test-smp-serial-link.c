/* test-smp-serial-link: the serial transport over a pseudo-terminal and a socketpair */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "smp-serial-link.h"
#include "smp-serial.h"
#include "tests/tap.h"

/* smp-protocol.md §15: V1 (echo request) and its one-line framing S1; V13 (upload
 * request) and its two lines S3; V32 (image state answer) and its three lines S2. */
#define V1 "0a000009 00000100 a161646568656c6c6f"
#define V2 "0b00000a 00000100 bf61726568656c6c6fff"
#define S1                                                                                         \
	"06 09 41 42 4d 4b 41 41 41 4a 41 41 41 42 41 4b 46 68 5a 47 56 6f 5a 57 78 73 62 33 6f "  \
	"32 0a"
#define V13                                                                                        \
	"0a000089 00011101 a665696d61676500636c656e1888636f666600637368615820a678ce1ed77e9580a875" \
	"bc1f228c15d8438965e671921c6b31d494f69057c7ce646461746158403db8f39600000000200000004000"   \
	"000000000000010100000000000000000000000102030405060708090a0b0c0d0e0f000102030405060708"   \
	"090a0b0c0d0e0f6775706772616465f4"
static const char S3[] =
    "\x06\x09"
    "AJMKAACJAAERAaZlaW1hZ2UAY2xlbhiIY29mZgBjc2hhWCCmeM4e136VgKh1vB8ijBXYQ4ll5nGSHGsx1JT2kFfHzmR"
    "kYXRhWEA9uPOWAAAAACAAAABAAAAAAAAA\n"
    "\x04\x14"
    "AAEBAAAAAAAAAAAAAAABAgMEBQYHCAkKCwwNDg8AAQIDBAUGBwgJCgsMDQ4PZ3VwZ3JhZGX0FJ4=\n";
#define V32                                                                                        \
	"090000f4 00011000 "                                                                       \
	"bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"                 \
	"20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f6f7461626c65f567" \
	"70656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e656e74f4ffbf64736c6f" \
	"74016776657273696f6e65312e312e30646861736858"                                             \
	"20c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068626f6f7461626c65f567" \
	"70656e64696e67f469636f6e6669726d6564f466616374697665f4697065726d616e656e74f4ffff6b73706c" \
	"697453746174757300ff"
static const char *const S2[] = {
    "\x06\x09"
    "AP4JAAD0AAEQAL9maW1hZ2Vzn79kc2xvdABndmVyc2lvbmUxLjAuMGRoYXNoWCBkTWnF8vgu6aYZXdrfUnLNSqgOoyB"
    "emCS3mm+s8tRzT2hib290YWJsZfVncGVu\n",
    "\x04\x14"
    "ZGluZ/RpY29uZmlybWVk9WZhY3RpdmX1aXBlcm1hbmVudPT/v2RzbG90AWd2ZXJzaW9uZTEuMS4wZGhhc2hYIMOaDyI"
    "KbX/15lkSTks1V0ZtGg/dF8tv4w2GOtAX\n",
    "\x04\x14"
    "vRLwaGJvb3RhYmxl9WdwZW5kaW5n9Gljb25maXJtZWT0ZmFjdGl2ZfRpcGVybWFuZW509P//a3NwbGl0U3RhdHVzAP9"
    "Qjw==\n",
};

/* The device end: collects what the transport writes. */
struct device {
	int fd;
	sd_event_source *src;
	uint8_t *buf;
	size_t len, cap;
	bool eof;
};

struct sink {
	size_t packets;
	uint8_t *last;
	size_t last_len;
	size_t n_console;
	char console[8][128];
	size_t n_states;
	int state;
	bool free_in_callback;
	struct smp_transport *t;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool run_until(sd_event *e, const size_t *count, size_t want, int ms)
{
	long long end = now_ms() + ms;

	while (*count < want && now_ms() < end)
		if (sd_event_run(e, 20 * 1000) < 0)
			return false;
	return *count >= want;
}

/* Lets the loop run for ms (timers inside the transport must fire). */
static void run_for(sd_event *e, int ms)
{
	long long end = now_ms() + ms;

	while (now_ms() < end)
		sd_event_run(e, 5 * 1000);
}

static int device_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct device *d = userdata;

	(void)s, (void)revents;
	for (;;) {
		if (d->cap - d->len < 4096) {
			d->cap = d->cap ? d->cap * 2 : 65536;
			d->buf = realloc(d->buf, d->cap);
		}
		ssize_t n = read(fd, d->buf + d->len, d->cap - d->len);
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				d->eof = true;
				sd_event_source_set_enabled(d->src, SD_EVENT_OFF);
			}
			return 0;
		}
		d->len += (size_t)n;
	}
}

static void device_attach(sd_event *e, struct device *d, int fd)
{
	memset(d, 0, sizeof(*d));
	d->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	sd_event_add_io(e, &d->src, fd, EPOLLIN, device_on_io, d);
}

static void device_close(struct device *d)
{
	d->src = sd_event_source_disable_unref(d->src);
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = 0;
}

static void device_write(struct device *d, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(d->fd, p, n);

		if (w < 0 && errno == EAGAIN)
			continue;
		if (w <= 0)
			return;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
}

static void on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len, void *userdata)
{
	struct sink *s = userdata;

	s->packets++;
	free(s->last);
	s->last = malloc(len);
	memcpy(s->last, pkt, len);
	s->last_len = len;
	if (s->free_in_callback) {
		smp_transport_free(t);
		s->t = NULL;
	}
}

static void on_state(struct smp_transport *t, int state, void *userdata)
{
	struct sink *s = userdata;

	(void)t;
	s->n_states++;
	s->state = state;
}

static void on_console(const uint8_t *line, size_t len, void *userdata)
{
	struct sink *s = userdata;

	if (s->n_console < 8) {
		size_t n = len < 127 ? len : 127;

		memcpy(s->console[s->n_console], line, n);
		s->console[s->n_console][n] = '\0';
	}
	s->n_console++;
}

static int send_hex(struct smp_transport *t, const char *hex)
{
	size_t n;
	uint8_t *p = tap_unhex(hex, &n);
	int r = smp_transport_send(t, p, n);

	free(p);
	return r;
}

static int open_pty(char **ret_path)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		return -1;
	*ret_path = strdup(ptsname(m));
	return m;
}

static void device_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct sink *s = userdata;

	s->packets++;
	free(s->last);
	s->last = malloc(len);
	memcpy(s->last, pkt, len);
	s->last_len = len;
}

static void test_pty(sd_event *e)
{
	struct sink s = {0};
	struct device d;
	struct smp_transport *t = NULL;
	struct smp_serial_link_config cfg = {
	    .baud = 921600,
	    .partial_timeout_ms = 60,
	    .on_console = on_console,
	};
	struct termios tio;
	char *path = NULL;
	size_t n;
	uint8_t *want;
	int master = open_pty(&path), check;

	ok(master >= 0, "pty: pair opened");
	cfg.console_userdata = &s;
	device_attach(e, &d, master);

	cfg.baud = 12345;
	is_int(smp_serial_link_new(e, path, &cfg, &t), -EINVAL, "pty: unsupported baud refused");
	is_int(smp_serial_link_new(e, "/nonexistent/tty", &cfg, &t), -ENOENT, "pty: missing port");
	cfg.baud = 921600;
	is_int(smp_serial_link_new(e, path, &cfg, &t), 0, "pty: link opened on %s", path);
	smp_transport_set_handlers(t, on_packet, on_state, &s);
	is_str(t->ops->name, "serial", "pty: vtable name");
	ok(t->link == SMP_LINK_SERIAL, "pty: link type");

	/* The terminal is raw 8N1 at the configured speed. */
	check = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	ok(check >= 0 && tcgetattr(check, &tio) == 0, "pty: termios readable");
	is_int(cfgetospeed(&tio), B921600, "pty: output speed 921600");
	is_int(cfgetispeed(&tio), B921600, "pty: input speed 921600");
	ok((tio.c_cflag & CSIZE) == CS8 && !(tio.c_cflag & (PARENB | CSTOPB | CRTSCTS)) &&
	       (tio.c_cflag & (CLOCAL | CREAD)) == (CLOCAL | CREAD),
	   "pty: 8N1, no flow control, CLOCAL|CREAD");
	ok(!(tio.c_lflag & (ICANON | ECHO | ISIG)) && !(tio.c_oflag & OPOST) &&
	       !(tio.c_iflag & (ICRNL | IXON)),
	   "pty: raw (no echo, no canonical mode, no CR/LF mapping)");
	close(check);

	is_int(smp_transport_packet_budget(t, 384), 380, "pty: budget buf_size - 4");
	is_int(smp_transport_packet_budget(t, 0), 380, "pty: budget with unknown buf_size");
	is_int(smp_transport_packet_budget(t, 4096), 4092, "pty: budget of MCUboot's 4096");

	/* Requests leave exactly as §15.2 frames them. */
	is_int(send_hex(t, V1), 0, "pty: V1 queued");
	want = tap_unhex(S1, &n);
	ok(run_until(e, &d.len, n, 2000), "pty: S1 bytes arrived");
	is_mem(d.buf, d.len, want, n, "pty: V1 on the wire is S1");
	free(want);
	d.len = 0;
	is_int(send_hex(t, V13), 0, "pty: V13 queued");
	ok(run_until(e, &d.len, sizeof(S3) - 1, 2000), "pty: S3 bytes arrived");
	is_mem(d.buf, d.len, S3, sizeof(S3) - 1, "pty: V13 on the wire is S3 (two lines)");
	d.len = 0;

	/* The answer as Zephyr sends it, with log lines in between. */
	device_write(&d, "*** Booting Zephyr OS ***\r\n", 27);
	device_write(&d, S2[0], strlen(S2[0]));
	device_write(&d, "[00:00:01.000] <inf> app: tick\r\n", 32);
	device_write(&d, S2[1], strlen(S2[1]));
	device_write(&d, S2[2], strlen(S2[2]));
	ok(run_until(e, &s.packets, 1, 2000), "pty: V32 answer delivered");
	want = tap_unhex(V32, &n);
	is_mem(s.last, s.last_len, want, n, "pty: V32 intact through console noise");
	free(want);
	ok(run_until(e, &s.n_console, 2, 2000), "pty: console lines delivered");
	is_str(s.console[0], "*** Booting Zephyr OS ***", "pty: first console line");
	is_str(s.console[1], "[00:00:01.000] <inf> app: tick", "pty: second console line");

	/* A packet that stops half-way is dropped after the silence timeout: its
	 * continuation lines, arriving late, no longer complete it. */
	device_write(&d, S2[0], strlen(S2[0]));
	run_for(e, 200);
	device_write(&d, S2[1], strlen(S2[1]));
	device_write(&d, S2[2], strlen(S2[2]));
	want = tap_unhex(V2, &n);
	uint8_t frame[256];
	struct smp_buf out = SMP_BUF_INIT;
	smp_serial_encode(want, n, 0, &out);
	memcpy(frame, out.data, out.len);
	device_write(&d, frame, out.len);
	ok(run_until(e, &s.packets, 2, 2000), "pty: answer after a stalled packet delivered");
	run_for(e, 20);
	is_int(s.packets, 2, "pty: the stalled packet was dropped, not completed late");
	is_mem(s.last, s.last_len, want, n, "pty: the delivered one is V2");
	free(want);
	smp_buf_clear(&out);

	/* 60000 bytes encode to ~80 KB, more than the pty holds: the rest waits for
	 * EPOLLOUT while the device reads. */
	size_t big_len = 60000;
	uint8_t *big = malloc(big_len);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (uint8_t)(i * 7);
	big[0] = 0x0a;
	big[2] = (uint8_t)((big_len - 8) >> 8);
	big[3] = (uint8_t)(big_len - 8);
	is_int(smp_transport_send(t, big, big_len), 0, "pty: 60000-byte packet queued");
	ok(smp_serial_link_get_queued(t) > 0, "pty: part of it waits in the queue (%zu bytes)",
	   smp_serial_link_get_queued(t));
	size_t enc = smp_serial_encoded_size(big_len, 0);
	ok(run_until(e, &d.len, enc, 10000), "pty: all %zu encoded bytes reached the device", enc);
	is_int(smp_serial_link_get_queued(t), 0, "pty: queue drained");
	struct smp_serial_decoder *dec;
	struct sink dev = {0};
	bool lines_ok = true;
	for (size_t i = 0, start = 0; i < d.len; i++)
		if (d.buf[i] == '\n') {
			lines_ok &= i + 1 - start <= 127;
			start = i + 1;
		}
	ok(lines_ok, "pty: no line longer than 127 bytes");
	smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &dec);
	smp_serial_decoder_feed(dec, d.buf, d.len, device_packet, NULL, &dev);
	is_int(dev.packets, 1, "pty: the device decodes one packet");
	is_mem(dev.last, dev.last_len, big, big_len, "pty: the 60000-byte packet intact");
	smp_serial_decoder_free(dec);
	free(dev.last);
	free(big);
	d.len = 0;

	/* The peer hangs up (USB adapter unplugged). */
	d.src = sd_event_source_disable_unref(d.src);
	close(d.fd);
	d.fd = -1;
	ok(run_until(e, &s.n_states, 1, 2000), "pty: hang-up reported");
	ok(s.state == -EIO || s.state == -ENODEV, "pty: on_state(%d) is -EIO or -ENODEV", s.state);
	is_int(send_hex(t, V1), -ENOTCONN, "pty: send after hang-up refused");

	smp_transport_free(t);
	device_close(&d);
	free(s.last);
	free(path);
}

static void test_socketpair(sd_event *e)
{
	struct sink s = {0}, dev = {0};
	struct device d;
	struct smp_transport *t = NULL;
	struct smp_serial_link_config cfg = {.max_line = 64};
	struct smp_serial_decoder *dec = NULL;
	int sv[2];
	size_t n;
	uint8_t *want;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	device_attach(e, &d, sv[1]);
	is_int(smp_serial_link_new_fd(e, sv[0], &cfg, &t), 0, "socketpair: link over a non-tty fd");
	smp_transport_set_handlers(t, on_packet, on_state, &s);

	/* Short lines for a device with a small line buffer. */
	is_int(send_hex(t, V13), 0, "socketpair: V13 queued");
	size_t enc = smp_serial_encoded_size(145, 64);
	ok(run_until(e, &d.len, enc, 2000), "socketpair: %zu bytes arrived", enc);
	bool lines_ok = true;
	size_t lines = 0;
	for (size_t i = 0, start = 0; i < d.len; i++)
		if (d.buf[i] == '\n') {
			lines_ok &= i + 1 - start <= 64;
			lines++;
			start = i + 1;
		}
	ok(lines_ok && lines == 4, "socketpair: four lines of at most 64 bytes (%zu)", lines);
	smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &dec);
	smp_serial_decoder_feed(dec, d.buf, d.len, device_packet, NULL, &dev);
	want = tap_unhex(V13, &n);
	is_int(dev.packets, 1, "socketpair: the device decodes one packet");
	is_mem(dev.last, dev.last_len, want, n, "socketpair: and it is V13");
	free(want);
	smp_serial_decoder_free(dec);
	free(dev.last);

	/* A callback may free the link; what follows in the same read is not delivered. */
	want = tap_unhex(V2, &n);
	struct smp_buf out = SMP_BUF_INIT;
	smp_serial_encode(want, n, 0, &out);
	smp_serial_encode(want, n, 0, &out);
	s.free_in_callback = true;
	s.t = t;
	device_write(&d, out.data, out.len);
	ok(run_until(e, &s.packets, 1, 2000), "socketpair: packet delivered to a freeing callback");
	run_for(e, 20);
	is_int(s.packets, 1, "socketpair: nothing delivered after free");
	ok(s.t == NULL, "socketpair: freed from inside on_packet");
	smp_buf_clear(&out);
	free(want);
	device_close(&d);

	/* End of file on the other end. */
	struct sink s2 = {0};
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	is_int(smp_serial_link_new_fd(e, sv[0], NULL, &t), 0, "socketpair: second link");
	smp_transport_set_handlers(t, on_packet, on_state, &s2);
	close(sv[1]);
	ok(run_until(e, &s2.n_states, 1, 2000), "socketpair: EOF reported");
	is_int(s2.state, -ENODEV, "socketpair: on_state(-ENODEV)");
	smp_transport_free(t);
	free(s.last);
}

int main(void)
{
	sd_event *e = NULL;

	if (sd_event_new(&e) < 0)
		return 1;
	test_pty(e);
	test_socketpair(e);
	sd_event_unref(e);
	return tap_done();
}
