/* test-sim-serial: smp-sim over a pseudo-terminal: framing, line limits, console, baud, hang-ups */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "sim-test.h"
#include "sim-transports.h"
#include "sim-util.h"
#include "smp-image.h"
#include "smp-os.h"
#include "smp-serial-link.h"
#include "smp-serial.h"
#include "smp-upload.h"
#include "tests/tap.h"

#define START_MS 10000

static char *scratch;
static sd_event *event;

static int open_raw(const char *path)
{
	struct termios t;
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
	return fd;
}

struct collect {
	uint8_t pkt[4096];
	size_t len;
	unsigned packets;
	unsigned console;
};

static void on_pkt(const uint8_t *pkt, size_t len, void *userdata)
{
	struct collect *c = userdata;

	c->packets++;
	if (len <= sizeof(c->pkt)) {
		memcpy(c->pkt, pkt, len);
		c->len = len;
	}
}

static void on_console(const uint8_t *line, size_t len, void *userdata)
{
	((struct collect *)userdata)->console++;
}

/* Reads raw bytes for at most timeout_ms, until one packet decoded. The raw
 * text read is appended to raw (may be NULL). */
static bool read_packet(int fd, struct collect *c, unsigned timeout_ms, struct smp_buf *raw)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *dec = NULL;
	long long deadline = sim_test_now_ms() + timeout_ms;
	unsigned before = c->packets;

	smp_serial_decoder_new(8192, &dec);
	while (c->packets == before) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long long left = deadline - sim_test_now_ms();
		uint8_t buf[512];
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return false;
		if (raw)
			smp_buf_append(raw, buf, (size_t)n);
		smp_serial_decoder_feed(dec, buf, (size_t)n, on_pkt, on_console, c);
	}
	return true;
}

static bool send_framed(int fd, const char *hex, size_t max_line)
{
	struct smp_buf out = SMP_BUF_INIT;
	size_t n;
	uint8_t *pkt = tap_unhex(hex, &n);
	bool fine = smp_serial_encode(pkt, n, max_line, &out) == 0 &&
		    write(fd, out.data, out.len) == (ssize_t)out.len;

	smp_buf_clear(&out);
	free(pkt);
	return fine;
}

static void test_framing(void)
{
	char *pattern = sim_strdup_printf("%s/tty%%u", scratch);
	char *link0 = sim_strdup_printf("%s/tty0", scratch),
	     *link1 = sim_strdup_printf("%s/tty1", scratch);
	const char *args[] = {"--serial", "--pty-link", pattern, "--count", "2", NULL};
	struct sim_proc p;
	struct collect c = {.len = 0};
	struct smp_buf raw = SMP_BUF_INIT;
	struct stat st;
	int fd;

	if (sim_proc_start(&p, START_MS, args) < 0) {
		ok(false, "smp-sim --serial starts");
		goto out;
	}
	{
		char *l = sim_proc_ready(&p, "serial", 1, "link");

		ok(l && !strcmp(l, link1) && lstat(link1, &st) == 0 && S_ISLNK(st.st_mode),
		   "device 1's PTY is linked at %s", link1);
		free(l);
	}
	fd = open_raw(link0);
	ok(fd >= 0, "the link opens");
	/* V1 of smp-protocol.md: echo "hello" → V2. */
	ok(send_framed(fd, "0a00000900000100a161646568656c6c6f", 0) &&
	       read_packet(fd, &c, 2000, NULL),
	   "echo over the PTY");
	{
		size_t n;
		uint8_t *want = tap_unhex("0b00000a00000100bf61726568656c6c6fff", &n);

		is_mem(c.pkt, c.len, want, n, "answer is V2 byte for byte");
		free(want);
	}
	/* A 142-byte answer leaves as Zephyr splits it: 93 raw bytes on the
	 * first line, the rest and the CRC on the second. */
	ok(send_framed(fd, "0800000100011000a0", 0) && read_packet(fd, &c, 2000, &raw),
	   "image state over the PTY");
	{
		struct smp_buf want = SMP_BUF_INIT;

		sim_serial_frame(c.pkt, c.len, &want);
		ok(c.len == 142 && raw.len == 127 + 75 && raw.data[126] == '\n' &&
		       !memcmp(raw.data, "\x06\x09", 2) && !memcmp(raw.data + 127, "\x04\x14", 2) &&
		       want.len == raw.len && !memcmp(want.data, raw.data, raw.len),
		   "lines of 127 and 75 bytes (%zu bytes read)", raw.len);
		smp_buf_clear(&want);
	}
	/* Lines longer than the device's 128-byte buffer are dropped. */
	{
		char hex[600] = "0a00008a00000200a1616478";
		size_t n = strlen(hex);

		n += (size_t)sprintf(hex + n, "%02x", 0x85);
		for (unsigned i = 0; i < 0x85; i++)
			n += (size_t)sprintf(hex + n, "%02x", 'a' + i % 26);
		ok(send_framed(fd, hex, 250) && !read_packet(fd, &c, 500, NULL),
		   "a 250-byte line gets no answer");
		ok(send_framed(fd, hex, 127) && read_packet(fd, &c, 2000, NULL) &&
		       c.len == 8 + 4 + 2 + 0x85,
		   "the same request in 127-byte lines is answered");
	}
	close(fd);
	is_int(sim_proc_stop(&p, SIGTERM, 5000), 0, "clean exit");
	ok(lstat(link0, &st) < 0 && lstat(link1, &st) < 0, "the links are gone after exit");
out:
	smp_buf_clear(&raw);
	free(pattern);
	free(link0);
	free(link1);
}

static void on_link_console(const uint8_t *line, size_t len, void *userdata)
{
	struct collect *c = userdata;

	c->console++;
	if (len >= 13 && !memcmp(line, "*** Booting Z", 13))
		c->packets++; /* counts boot banners here */
}

struct upload_wait {
	bool done;
	int error;
	struct smp_upload_result res;
};

static void on_upload(int error, const struct smp_upload_result *res, void *userdata)
{
	struct upload_wait *w = userdata;

	w->done = true;
	w->error = error;
	w->res = *res;
}

static void test_client(void)
{
	char *link = sim_strdup_printf("%s/ttyc", scratch);
	const char *args[] = {
		"--serial",
		"--pty-link",
		link,
		"--console-interleave",
		"--console-interval",
		"50",
		"--reboot-delay",
		"100",
		"--flash-write-us-per-kib",
		"0",
		NULL,
	};
	struct smp_serial_link_config lcfg = {.on_console = on_link_console};
	struct collect c = {.len = 0};
	struct smp_transport *t = NULL;
	struct smp_client *cl = NULL;
	struct sim_proc p;
	struct smp_response *rsp;
	struct upload_wait w = {.error = -ETIMEDOUT};
	struct smp_upload_source src = {.fd = -1};
	struct smp_upload_options opts;
	uint8_t *img;
	size_t len;
	char *s = NULL;

	lcfg.console_userdata = &c;
	if (sim_proc_start(&p, START_MS, args) < 0) {
		ok(false, "smp-sim with console log starts");
		free(link);
		return;
	}
	ok(smp_serial_link_new(event, link, &lcfg, &t) == 0 &&
	       smp_client_new(event, t, NULL, &cl) == 0,
	   "libsmp serial link on the PTY");
	rsp = sim_test_call(event, cl, SIM_REQ(smp_os_echo_request, "over serial"), 3000, NULL);
	ok(rsp && smp_os_echo_parse(rsp, &s) == 0 && !strcmp(s, "over serial"),
	   "echo through libsmp");
	free(s);
	smp_response_free(rsp);

	img = tap_read_file(tap_srcpath("tests/data/images/hash-only-1.2.3+4.bin"), &len);
	src.data = img;
	src.size = len;
	smp_upload_options_init(&opts);
	if (smp_image_upload(cl, &src, &opts, NULL, on_upload, &w, NULL, NULL) == 0)
		sim_test_run_until(event, &w.done, 60000);
	ok(w.done && w.error == 0 && w.res.verified && w.res.offset == len,
	   "70 KB uploaded over serial with log lines in between (%u chunks)", w.res.chunks);
	free(img);
	/* 252 bytes: three lines, with a log line between each two. */
	rsp = sim_test_call(event, cl, SIM_REQ0(smp_image_state_read_request), 3000, NULL);
	{
		struct smp_image_state *st = NULL;

		ok(rsp && smp_image_state_parse(rsp, &st) == 0 && st->n_slots == 2,
		   "a multi-line answer with interleaved log lines decodes");
		smp_image_state_free(st);
	}
	smp_response_free(rsp);
	{
		long long deadline = sim_test_now_ms() + 3000;

		while (c.console < 5 && sim_test_now_ms() < deadline)
			sd_event_run(event, 100 * 1000);
		ok(c.console >= 5, "console lines reached libsmp's console callback (%u)",
		   c.console);
	}

	rsp = sim_test_call(event, cl, SIM_REQ(smp_os_reset_request, false, -1), 2000, NULL);
	ok(rsp && smp_response_ok(rsp), "reset answered over serial");
	smp_response_free(rsp);
	{
		char *boot = sim_proc_wait_line(&p, "BOOT id=sim-0", 10000);
		long long deadline = sim_test_now_ms() + 3000;

		ok(boot != NULL, "the device rebooted");
		free(boot);
		while (c.packets == 0 && sim_test_now_ms() < deadline)
			sd_event_run(event, 100 * 1000);
		ok(c.packets == 1, "the boot banner came over the console");
	}
	rsp = sim_test_call(event, cl, SIM_REQ(smp_os_echo_request, "after reboot"), 3000, NULL);
	ok(rsp && smp_response_ok(rsp), "the PTY stays across the reboot");
	smp_response_free(rsp);
	smp_client_unref(cl);
	sim_proc_stop(&p, SIGTERM, 5000);
	free(link);
}

static void test_baud(void)
{
	char *link = sim_strdup_printf("%s/ttyb", scratch);
	const char *args[] = {"--serial", "--pty-link", link, "--baud", "9600", NULL};
	struct collect c = {.len = 0};
	struct sim_proc p;
	char hex[600] = "0a0000cd00000300a1616478";
	long long t0;
	size_t n;
	int fd;

	if (sim_proc_start(&p, START_MS, args) < 0) {
		ok(false, "smp-sim --baud starts");
		free(link);
		return;
	}
	/* An echo of 200 bytes: about 300 bytes of text each way. */
	n = strlen(hex);
	n += (size_t)sprintf(hex + n, "%02x", 200);
	for (unsigned i = 0; i < 200; i++)
		n += (size_t)sprintf(hex + n, "%02x", 'A' + i % 26);
	fd = open_raw(link);
	t0 = sim_test_now_ms();
	ok(send_framed(fd, hex, 0) && read_packet(fd, &c, 5000, NULL), "echo at 9600 baud");
	/* ~620 bytes on the wire at 960 bytes/s. */
	ok(sim_test_now_ms() - t0 >= 500, "took %lld ms, as a 9600 baud UART would",
	   sim_test_now_ms() - t0);
	close(fd);
	sim_proc_stop(&p, SIGTERM, 5000);
	free(link);
}

static void test_hangup(void)
{
	char *link = sim_strdup_printf("%s/ttyh", scratch);
	const char *args[] = {"--serial", "--pty-link",	       link,  "--disconnect-after",
			      "400",	  "--reconnect-delay", "300", NULL};
	struct collect c = {.len = 0};
	struct sim_proc p;
	char *line, *first;
	bool hung = false;
	int fd;

	if (sim_proc_start(&p, START_MS, args) < 0) {
		ok(false, "smp-sim --disconnect-after starts");
		free(link);
		return;
	}
	first = sim_proc_ready(&p, "serial", 0, NULL);
	fd = open_raw(link);
	for (unsigned i = 0; i < 20 && !hung; i++) {
		if (!send_framed(fd, "0a00000900000100a161646568656c6c6f", 0) ||
		    !read_packet(fd, &c, 500, NULL))
			hung = true;
	}
	ok(hung, "the port hangs up after about 400 bytes");
	line = sim_proc_wait_line(&p, "LINK serial", 2000);
	ok(line && strstr(line, " down"), "LINK ... down");
	free(line);
	line = sim_proc_wait_line(&p, "LINK serial", 3000);
	ok(line && strstr(line, " up") && first && !strstr(line, first),
	   "LINK ... up on a new PTY (%s)", line ? line : "none");
	free(line);
	close(fd);
	fd = open_raw(link);
	ok(fd >= 0 && send_framed(fd, "0a00000900000100a161646568656c6c6f", 0) &&
	       read_packet(fd, &c, 2000, NULL),
	   "the link points at the new PTY, which answers");
	if (fd >= 0)
		close(fd);
	free(first);
	sim_proc_stop(&p, SIGTERM, 5000);
	free(link);
}

/* Zephyr's splitting, decoded by libsmp, for every packet length up to 1000. */
static void test_frame_codec(void)
{
	bool fine = true;

	for (size_t len = 8; len <= 1000 && fine; len++) {
		struct smp_buf out = SMP_BUF_INIT;
		struct collect c = {.len = 0};
		struct smp_serial_decoder *dec = NULL;
		uint8_t pkt[1000];
		size_t start = 0, lines = 0, raw_last = 0;

		for (size_t i = 0; i < len; i++)
			pkt[i] = (uint8_t)(i * 31 + len);
		fine = sim_serial_frame(pkt, len, &out) == 0 && smp_serial_decoder_new(2000, &dec) == 0;
		for (size_t i = 0; fine && i < out.len; i++) {
			if (out.data[i] != '\n')
				continue;
			/* marker + base64 + newline; the last line's raw bytes */
			fine = i + 1 - start <= 127;
			raw_last = (i - start - 2) / 4 * 3;
			lines++;
			start = i + 1;
		}
		/* The last line ends with both CRC bytes (and is never one byte). */
		fine = fine && raw_last >= 2;
		fine = fine && smp_serial_decoder_feed(dec, out.data, out.len, on_pkt, NULL, &c) == 1 &&
		       c.len == len && !memcmp(c.pkt, pkt, len);
		if (!fine)
			tap_diag("packet of %zu bytes (%zu lines)", len, lines);
		smp_serial_decoder_free(dec);
		smp_buf_clear(&out);
	}
	ok(fine, "Zephyr-style frames of 8..1000 bytes decode, lines <= 127 bytes");
}

int main(void)
{
	char tmpl[] = "/tmp/test-sim-serial-XXXXXX";

	scratch = mkdtemp(tmpl);
	if (!scratch || sd_event_new(&event) < 0)
		return 1;
	test_frame_codec();
	test_framing();
	test_client();
	test_baud();
	test_hangup();
	sd_event_unref(event);
	sim_rm_rf(scratch);
	return tap_done();
}
