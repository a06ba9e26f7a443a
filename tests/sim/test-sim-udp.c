/* test-sim-udp: smp-sim over UDP: the recordings, a DFU with libsmp, persistence, every fault */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim-test.h"
#include "sim-util.h"
#include "smp-image.h"
#include "smp-mcuboot.h"
#include "smp-os.h"
#include "smp-udp.h"
#include "smp-upload.h"
#include "tests/tap.h"

#define START_MS 10000
#define BOOT_MS 15000

static char *scratch;
static sd_event *event;

/* ---- raw exchanges ---- */

/* A v2 (or v1) echo request of text with this sequence number. */
static size_t echo_req(uint8_t *buf, const char *text, uint8_t seq, uint8_t version)
{
	size_t n = strlen(text), p = 8;

	buf[p++] = 0xa1;
	buf[p++] = 0x61;
	buf[p++] = 'd';
	if (n < 24)
		buf[p++] = (uint8_t)(0x60 + n);
	else if (n < 256) {
		buf[p++] = 0x78;
		buf[p++] = (uint8_t)n;
	} else {
		buf[p++] = 0x79;
		buf[p++] = (uint8_t)(n >> 8);
		buf[p++] = (uint8_t)n;
	}
	memcpy(buf + p, text, n);
	p += n;
	buf[0] = (uint8_t)(version << 3 | 2);
	buf[1] = 0;
	buf[2] = (uint8_t)((p - 8) >> 8);
	buf[3] = (uint8_t)(p - 8);
	buf[4] = buf[5] = 0;
	buf[6] = seq;
	buf[7] = 0;
	return p;
}

/* Sends an echo and waits for one answer: its length, 0 when none came. */
static ssize_t echo(int fd, const char *text, uint8_t seq, unsigned timeout_ms, uint8_t *rsp,
		    size_t size)
{
	uint8_t req[2048];
	size_t n = echo_req(req, text, seq, 1);

	if (send(fd, req, n, 0) != (ssize_t)n)
		return -errno;
	return sim_test_udp_recv(fd, rsp, size, timeout_ms);
}

static int udp_of(struct sim_proc *p, unsigned i)
{
	char *addr = sim_proc_ready(p, "udp", i, NULL);
	int fd = addr ? sim_test_udp_socket(addr) : -EINVAL;

	free(addr);
	return fd;
}

static bool start(struct sim_proc *p, const char *const *args)
{
	int r = sim_proc_start(p, START_MS, args);

	if (r < 0)
		tap_diag("smp-sim did not start: %s", strerror(-r));
	return r == 0;
}

/* ---- libsmp client ---- */

static struct smp_client *client_for(struct sim_proc *p, unsigned i)
{
	char *addr = sim_proc_ready(p, "udp", i, NULL), *colon;
	struct smp_transport *t = NULL;
	struct smp_client *c = NULL;
	struct smp_client_config cfg;

	if (!addr)
		return NULL;
	colon = strrchr(addr, ':');
	*colon = 0;
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 1000;
	if (smp_udp_new(event, addr, (uint16_t)atoi(colon + 1), NULL, &t) < 0 ||
	    smp_client_new(event, t, &cfg, &c) < 0)
		c = NULL;
	free(addr);
	return c;
}

static struct smp_image_state *state_of(struct smp_client *c)
{
	struct smp_response *rsp =
	    sim_test_call(event, c, SIM_REQ0(smp_image_state_read_request), 2000, NULL);
	struct smp_image_state *st = NULL;

	if (rsp && smp_image_state_parse(rsp, &st) < 0)
		st = NULL;
	smp_response_free(rsp);
	return st;
}

static bool slot_is(const struct smp_image_state *st, unsigned slot, const char *version,
		    bool active, bool confirmed, bool pending)
{
	const struct smp_image_slot_state *s = st ? smp_image_state_find_slot(st, 0, slot) : NULL;

	if (!version)
		return st && !s;
	return s && !strcmp(s->version, version) && s->active == active &&
	       s->confirmed == confirmed && s->pending == pending;
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

static struct upload_wait upload_file(struct smp_client *c, const char *file)
{
	struct upload_wait w = {.error = -ETIMEDOUT};
	struct smp_upload_source src = {.fd = -1};
	struct smp_upload_options opts;
	size_t len;
	uint8_t *data = tap_read_file(tap_srcpath(file), &len);

	src.data = data;
	src.size = len;
	smp_upload_options_init(&opts);
	opts.timeout_ms = 1000;
	opts.first_timeout_ms = 3000;
	if (smp_image_upload(c, &src, &opts, NULL, on_upload, &w, NULL, NULL) == 0)
		sim_test_run_until(event, &w.done, 60000);
	free(data);
	return w;
}

static uint8_t *image_hash(const char *file, uint8_t out[32])
{
	size_t len;
	uint8_t *data = tap_read_file(tap_srcpath(file), &len);
	struct smp_mcuboot_image *m = NULL;

	if (smp_mcuboot_parse(data, len, &m) == 0)
		memcpy(out, m->hash, 32);
	smp_mcuboot_image_free(m);
	free(data);
	return out;
}

static bool call_ok(struct smp_client *c, struct smp_request *req)
{
	struct smp_response *rsp = sim_test_call(event, c, req, 2000, NULL);
	bool ok = rsp && smp_response_ok(rsp);

	smp_response_free(rsp);
	return ok;
}

static bool reset_and_wait(struct sim_proc *p, struct smp_client *c, const char *expect_boot)
{
	char *boot;
	bool fine;

	/* The answer may be lost to the reboot: the line on stdout decides. */
	smp_response_free(
	    sim_test_call(event, c, SIM_REQ(smp_os_reset_request, false, -1), 1000, NULL));
	boot = sim_proc_wait_line(p, "BOOT id=sim-0", BOOT_MS);
	fine = boot && strstr(boot, expect_boot);
	if (!fine)
		tap_diag("boot line: %s", boot ? boot : "(none)");
	free(boot);
	return fine;
}

/* ---- the recordings over the wire ---- */

static void test_recordings(void)
{
	static const char *const args[] = {"--udp",
					   "127.0.0.1:0",
					   "--buf-count",
					   "8",
					   "--no-image-check",
					   "--no-mpstat",
					   "--info",
					   "n=unknown",
					   "--info",
					   "m=posix",
					   "--info",
					   "p=unknown",
					   "--info",
					   "i=native_sim",
					   "--flash-write-us-per-kib",
					   "0",
					   NULL};
	static const char *const files[] = {"tests/data/zephyr-4.1/udp-v2.json",
					    "tests/data/zephyr-4.1/udp-v1.json"};

	for (unsigned f = 0; f < 2; f++) {
		struct sim_proc p;
		json_t *root, *pair;
		size_t i, same = 0, total = 0;
		uint8_t our_hash[32] = {0}, rec_hash[32], rsp[4096];
		int fd;

		if (!start(&p, args)) {
			ok(false, "smp-sim starts for %s", files[f]);
			continue;
		}
		fd = udp_of(&p, 0);
		{
			/* Our running image's hash replaces native_sim's in the recording. */
			uint8_t req[] = {0, 0, 0, 1, 0, 1, 0x77, 0, 0xa0};
			ssize_t n;

			send(fd, req, sizeof(req), 0);
			n = sim_test_udp_recv(fd, rsp, sizeof(rsp), 2000);
			if (n > 60)
				memcpy(our_hash, rsp + 8 + 37, 32);
		}
		{
			uint8_t *h = tap_unhex(
			    "072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a93", &i);

			memcpy(rec_hash, h, 32);
			free(h);
		}
		root = json_load_file(tap_srcpath(files[f]), 0, NULL);
		json_array_foreach(json_object_get(root, "pairs"), i, pair)
		{
			const char *name = json_string_value(json_object_get(pair, "name"));
			size_t req_len, want_len;
			uint8_t *req = tap_unhex(
			    json_string_value(json_object_get(pair, "request_hex")), &req_len);
			uint8_t *want = tap_unhex(
			    json_string_value(json_object_get(pair, "response_hex")), &want_len);
			ssize_t n;

			send(fd, req, req_len, 0);
			n = sim_test_udp_recv(fd, rsp, sizeof(rsp), 2000);
			for (size_t k = 0; k + 32 <= want_len; k++)
				if (!memcmp(want + k, rec_hash, 32))
					memcpy(want + k, our_hash, 32);
			if (!strcmp(name, "stat read") && n == (ssize_t)want_len)
				want[n - 7] = rsp[n - 7]; /* ticks */
			/* Without MCUboot and with another uptime on the recorded side. */
			if (!strstr(name, "bootloader") && strcmp(name, "shell exec")) {
				total++;
				if (n == (ssize_t)want_len && !memcmp(rsp, want, want_len))
					same++;
				else
					tap_diag("%s differs", name);
			}
			free(req);
			free(want);
		}
		json_decref(root);
		ok(total >= 39 && same == total, "%s over UDP: %zu of %zu answers byte-identical",
		   files[f], same, total);
		close(fd);
		is_int(sim_proc_stop(&p, SIGTERM, 5000), 0, "SIGTERM: clean exit");
	}
}

/* ---- DFU: upload, test, reset, swap, confirm; revert; persistence ---- */

static void test_dfu(void)
{
	const char *file = "tests/data/images/hash-only-1.2.3+4.bin";
	char *dir = sim_strdup_printf("%s/state", scratch);
	const char *args[] = {"--udp",
			      "127.0.0.1:0",
			      "--state",
			      dir,
			      "--reboot-delay",
			      "100",
			      "--flash-write-us-per-kib",
			      "50",
			      NULL};
	struct sim_proc p;
	struct smp_client *c;
	struct smp_image_state *st;
	struct upload_wait w;
	uint8_t hash[32];

	image_hash(file, hash);
	if (!start(&p, args)) {
		ok(false, "smp-sim starts with --state");
		free(dir);
		return;
	}
	c = client_for(&p, 0);
	w = upload_file(c, file);
	ok(w.done && w.error == 0 && w.res.verified && w.res.offset == 70552,
	   "libsmp uploads 70552 bytes, the device answers match");
	st = state_of(c);
	ok(slot_is(st, 1, "1.2.3.4", false, false, false), "slot 1 holds 1.2.3.4");
	smp_image_state_free(st);
	ok(call_ok(c, SIM_REQ(smp_image_state_write_request, hash, false)), "test");
	ok(reset_and_wait(&p, c, "version=1.2.3.4"), "reset swaps: BOOT version=1.2.3.4");
	smp_client_unref(c);
	c = client_for(&p, 0);
	st = state_of(c);
	ok(slot_is(st, 0, "1.2.3.4", true, false, false) &&
	       slot_is(st, 1, "1.0.0", false, true, false),
	   "new image active and unconfirmed, old one the revert target");
	smp_image_state_free(st);
	/* Not confirmed: the next reset reverts. */
	ok(reset_and_wait(&p, c, "version=1.0.0"), "reset without confirm reverts");
	smp_client_unref(c);
	c = client_for(&p, 0);
	ok(call_ok(c, SIM_REQ(smp_image_state_write_request, hash, false)), "test again");
	smp_client_unref(c);

	/* kill -9 is a power cycle: MCUboot swaps at the next start. */
	ok(sim_proc_stop(&p, SIGKILL, 5000) != -ETIMEDOUT, "killed");
	if (!start(&p, args)) {
		ok(false, "restart with the same state");
		free(dir);
		return;
	}
	c = client_for(&p, 0);
	st = state_of(c);
	ok(slot_is(st, 0, "1.2.3.4", true, false, false),
	   "after kill -9 and restart: test swap done");
	smp_image_state_free(st);
	ok(call_ok(c, SIM_REQ(smp_image_state_write_request, NULL, true)), "confirm");
	ok(reset_and_wait(&p, c, "version=1.2.3.4"), "a confirmed image stays after reset");
	smp_client_unref(c);
	is_int(sim_proc_stop(&p, SIGTERM, 5000), 0, "clean exit");
	if (start(&p, args)) {
		c = client_for(&p, 0);
		st = state_of(c);
		ok(slot_is(st, 0, "1.2.3.4", true, true, false) &&
		       slot_is(st, 1, "1.0.0", false, false, false),
		   "confirmed state survives a restart");
		smp_image_state_free(st);
		smp_client_unref(c);
		sim_proc_stop(&p, SIGTERM, 5000);
	} else
		ok(false, "third start");
	free(dir);
}

/* ---- faults ---- */

/* Which of n echoes are answered (bit i set), each waited for at most wait_ms. */
static uint64_t answered_pattern(const char *const *args, unsigned n, unsigned wait_ms)
{
	struct sim_proc p;
	uint64_t pattern = 0;
	uint8_t rsp[256];
	int fd;

	if (!start(&p, args))
		return UINT64_MAX;
	fd = udp_of(&p, 0);
	for (unsigned i = 0; i < n; i++) {
		if (echo(fd, "ping", (uint8_t)i, wait_ms, rsp, sizeof(rsp)) > 0)
			pattern |= 1ULL << i;
		/* A late answer must not count for the next one. */
		while (sim_test_udp_recv(fd, rsp, sizeof(rsp), 0) > 0)
			;
	}
	close(fd);
	sim_proc_stop(&p, SIGTERM, 5000);
	return pattern;
}

static void test_drop_corrupt(void)
{
	static const char *const all[] = {"--udp", "127.0.0.1:0", "--drop-rate", "1", NULL};
	static const char *const half[] = {"--udp",  "127.0.0.1:0", "--drop-rate", "0.4",
					   "--seed", "7",	    NULL};
	static const char *const corrupt[] = {"--udp", "127.0.0.1:0", "--corrupt-rate", "1", NULL};
	uint64_t a, b;

	is_int(answered_pattern(all, 4, 150), 0, "--drop-rate 1: nothing answered");
	a = answered_pattern(half, 16, 300);
	b = answered_pattern(half, 16, 300);
	ok(a != UINT64_MAX && a == b && a != 0 && a != 0xffff,
	   "--drop-rate 0.4 --seed 7: some lost, the same ones twice (%llx)",
	   (unsigned long long)a);

	{
		struct sim_proc p;
		/* {"r": "ping"} */
		static const uint8_t answer[] = {0xbf, 0x61, 'r', 0x64, 'p', 'i', 'n', 'g', 0xff};
		uint8_t rsp[256], want[17] = {0x0b, 0, 0, 9, 0, 0, 0, 0};
		unsigned got = 0, clean = 0;
		int fd;

		memcpy(want + 8, answer, sizeof(answer));
		if (start(&p, corrupt)) {
			fd = udp_of(&p, 0);
			for (unsigned i = 0; i < 8; i++) {
				ssize_t n = echo(fd, "ping", (uint8_t)i, 200, rsp, sizeof(rsp));

				want[6] = (uint8_t)i;
				got += n > 0;
				clean += n == 17 && !memcmp(rsp, want, 17);
			}
			ok(got > 0 && clean == 0, "--corrupt-rate 1: %u answers, none intact", got);
			close(fd);
			sim_proc_stop(&p, SIGTERM, 5000);
		} else
			ok(false, "start with --corrupt-rate");
	}
}

static void test_dup_reorder(void)
{
	static const char *const dup[] = {"--udp", "127.0.0.1:0", "--dup-rate", "1", NULL};
	static const char *const reorder[] = {"--udp", "127.0.0.1:0", "--reorder-rate", "1", NULL};
	struct sim_proc p;
	uint8_t a[256], b[256], req[64];
	ssize_t na, nb;
	int fd;

	if (start(&p, dup)) {
		fd = udp_of(&p, 0);
		na = echo(fd, "one", 1, 1000, a, sizeof(a));
		nb = sim_test_udp_recv(fd, b, sizeof(b), 1000);
		ok(na > 0 && na == nb && !memcmp(a, b, (size_t)na),
		   "--dup-rate 1: every answer twice");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, reorder)) {
		size_t n;

		fd = udp_of(&p, 0);
		n = echo_req(req, "first", 1, 1);
		send(fd, req, n, 0);
		n = echo_req(req, "second", 2, 1);
		send(fd, req, n, 0);
		na = sim_test_udp_recv(fd, a, sizeof(a), 1000);
		nb = sim_test_udp_recv(fd, b, sizeof(b), 1000);
		ok(na > 8 && nb > 8 && a[6] == 2 && b[6] == 1,
		   "--reorder-rate 1: the second answer overtakes");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
}

static void test_timing(void)
{
	static const char *const latency[] = {"--udp", "127.0.0.1:0", "--latency", "300", NULL};
	static const char *const jitter[] = {"--udp", "127.0.0.1:0", "--latency", "10", "--jitter",
					     "200",   "--seed",	     "3",	  NULL};
	static const char *const bw[] = {"--udp", "127.0.0.1:0", "--bandwidth", "10000", NULL};
	struct sim_proc p;
	uint8_t rsp[2048];
	long long t0;
	ssize_t n;
	int fd;

	if (start(&p, latency)) {
		fd = udp_of(&p, 0);
		t0 = sim_test_now_ms();
		n = echo(fd, "slow", 1, 3000, rsp, sizeof(rsp));
		ok(n > 0 && sim_test_now_ms() - t0 >= 300, "--latency 300: answered after %lld ms",
		   sim_test_now_ms() - t0);
		/* Changed at run time through the control channel. */
		ok(sim_proc_command(&p, "set latency 0", 2000) == 0, "control: set latency 0");
		t0 = sim_test_now_ms();
		n = echo(fd, "fast", 2, 3000, rsp, sizeof(rsp));
		ok(n > 0 && sim_test_now_ms() - t0 < 300, "now answered without the delay");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, jitter)) {
		long long lo = 1 << 30, hi = 0;

		fd = udp_of(&p, 0);
		for (unsigned i = 0; i < 8; i++) {
			long long dt;

			t0 = sim_test_now_ms();
			n = echo(fd, "j", (uint8_t)i, 3000, rsp, sizeof(rsp));
			dt = sim_test_now_ms() - t0;
			if (n > 0) {
				lo = MIN(lo, dt);
				hi = MAX(hi, dt);
			}
		}
		ok(lo >= 10 && hi - lo >= 20, "--jitter 200: round trips from %lld to %lld ms", lo,
		   hi);
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, bw)) {
		char text[1001];
		uint8_t req[1100];
		size_t len;
		unsigned got = 0;

		memset(text, 'x', 1000);
		text[1000] = 0;
		fd = udp_of(&p, 0);
		len = echo_req(req, text, 1, 1);
		t0 = sim_test_now_ms();
		for (unsigned i = 0; i < 5; i++)
			send(fd, req, len, 0);
		for (unsigned i = 0; i < 5; i++)
			got += sim_test_udp_recv(fd, rsp, sizeof(rsp), 3000) > 1000;
		/* Five answers of 1013 bytes at 10000 bytes/s. */
		ok(got >= 2 && sim_test_now_ms() - t0 >= 100L * (got - 1),
		   "--bandwidth 10000: %u answers took %lld ms", got, sim_test_now_ms() - t0);
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
}

/* Lowest free count of the device's one memory pool ("smp_buf"), -1 if unknown. */
static long long pool_min_free(struct smp_client *c)
{
	struct smp_response *rsp =
	    sim_test_call(event, c, SIM_REQ0(smp_os_mpstat_request), 2000, NULL);
	struct smp_os_mpstat *m = NULL;
	long long min = -1;

	if (rsp && smp_os_mpstat_parse(rsp, &m) == 0 && m->n_pools == 1 && m->pools[0].has_min)
		min = (long long)m->pools[0].min;
	smp_os_mpstat_free(m);
	smp_response_free(rsp);
	return min;
}

/* Zephyr's buffer pool: a request takes a buffer as it arrives or is
 * dropped; the one being worked on holds a second one for its answer. */
static void test_buffers(void)
{
	static const char *const counts[] = {"2", "3", "4"};
	const char *file = "tests/data/images/hash-only-1.2.3+4.bin";

	for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
		/* Erasing storage keeps the worker busy 64 x 5 ms. */
		const char *args[] = {
		    "--udp", "127.0.0.1:0", "--buf-count", counts[i], "--flash-erase-us-per-kib",
		    "5000",  NULL};
		/* Group 63 (Zephyr basic), command 0, WRITE: erase storage. */
		uint8_t erase[] = {0x0a, 0, 0, 1, 0, 63, 100, 0, 0xa0};
		unsigned bc = (unsigned)atoi(counts[i]), answered = 0, expect = bc - 2;
		bool erased = false, in_order = true;
		struct sim_proc p;
		uint8_t req[64], rsp[256];
		ssize_t n;
		int fd;

		if (!start(&p, args)) {
			ok(false, "smp-sim --buf-count %s starts", counts[i]);
			continue;
		}
		fd = udp_of(&p, 0);
		send(fd, erase, sizeof(erase), 0);
		for (uint8_t seq = 1; seq <= 3; seq++) {
			size_t len = echo_req(req, "queued?", seq, 1);

			send(fd, req, len, 0);
		}
		while ((n = sim_test_udp_recv(fd, rsp, sizeof(rsp), 1000)) > 8) {
			if (rsp[6] == 100)
				erased = true;
			else if (rsp[6] == answered + 1)
				answered++;
			else
				in_order = false;
		}
		ok(erased && in_order && answered == expect,
		   "buf_count %u: erase answered, %u of 3 echoes sent meanwhile answered"
		   " (%u waiting + 2 in use), the rest dropped",
		   bc, answered, expect);
		n = echo(fd, "and now?", 9, 1000, rsp, sizeof(rsp));
		ok(n > 8 && rsp[6] == 9, "buf_count %u: the buffers are free again", bc);
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}

	/* libsmp's window (buf_count - 1) fills the pool and never overflows
	 * it; one more in flight does. Flash writes of 20 ms per KiB make the
	 * requests queue at the device. */
	for (unsigned claim = 4; claim <= 5; claim++) {
		const char *args[] = {
		    "--udp", "127.0.0.1:0", "--buf-count", "4", "--flash-write-us-per-kib",
		    "20000", NULL};
		struct smp_client_stats st;
		struct smp_client *c;
		struct upload_wait w;
		struct sim_proc p;
		long long min;

		if (!start(&p, args)) {
			ok(false, "smp-sim --buf-count 4 starts");
			continue;
		}
		c = client_for(&p, 0);
		/* claim 5: a client that believes in one buffer more. */
		smp_client_set_params(c, 2048, claim);
		w = upload_file(c, file);
		smp_client_get_stats(c, &st);
		min = pool_min_free(c);
		if (claim == 4) {
			is_int(smp_client_get_window(c), 3, "buf_count 4: a window of 3");
			ok(w.done && w.error == 0 && w.res.verified,
			   "upload with 3 in flight: verified");
			ok(st.timeouts == 0 && st.retransmits == 0,
			   "nothing lost: %llu timeouts, %llu retransmissions",
			   (unsigned long long)st.timeouts, (unsigned long long)st.retransmits);
			is_int(min, 0, "every buffer was in use at some point (pool minimum 0)");
		} else {
			is_int(smp_client_get_window(c), 4, "a client told 5 buffers: window 4");
			/* The client learns of a drop from the answer to a later request. */
			ok(w.done && w.error == 0 && st.responses < st.requests &&
			       w.res.resends > 0,
			   "4 in flight: %llu of %llu requests dropped unanswered, %u resends",
			   (unsigned long long)(st.requests - st.responses),
			   (unsigned long long)st.requests, w.res.resends);
		}
		smp_client_unref(c);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
}

static void test_device_faults(void)
{
	static const char *const busy[] = {"--udp", "127.0.0.1:0", "--busy-rate", "1", NULL};
	static const char *const v1[] = {"--udp", "127.0.0.1:0", "--smp-version", "1", NULL};
	static const char *const small[] = {"--udp", "127.0.0.1:0", "--buf-size", "256", NULL};
	static const char *const mtu[] = {"--udp", "127.0.0.1:0", "--udp-mtu", "300", NULL};
	static const char *const disc[] = {
	    "--udp", "127.0.0.1:0", "--disconnect-after", "150", "--reconnect-delay", "1500", NULL};
	struct sim_proc p;
	uint8_t rsp[512];
	ssize_t n;
	int fd;

	if (start(&p, busy)) {
		fd = udp_of(&p, 0);
		n = echo(fd, "x", 1, 1000, rsp, sizeof(rsp));
		ok(n == 14 && !memcmp(rsp + 8, "\xbf\x62rc\x0a\xff", 6),
		   "--busy-rate 1: {\"rc\": 10}");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, v1)) {
		fd = udp_of(&p, 0);
		n = echo(fd, "x", 1, 1000, rsp, sizeof(rsp));
		ok(n > 8 && rsp[0] == 0x03, "--smp-version 1: a v2 request gets a v1 answer");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, small)) {
		char text[300];
		uint8_t params[] = {0x08, 0, 0, 1, 0, 0, 9, 6, 0xa0};

		fd = udp_of(&p, 0);
		send(fd, params, sizeof(params), 0);
		n = sim_test_udp_recv(fd, rsp, sizeof(rsp), 1000);
		ok(n > 20 && memmem(rsp, (size_t)n,
				    "\x68"
				    "buf_size\x19\x01\x00",
				    12),
		   "--buf-size 256 reported by params");
		memset(text, 'a', 260);
		text[260] = 0;
		n = echo(fd, text, 2, 400, rsp, sizeof(rsp));
		is_int(n, 0, "a request larger than buf_size gets no answer");
		text[200] = 0;
		n = echo(fd, text, 3, 1000, rsp, sizeof(rsp));
		ok(n > 200, "one that fits is answered");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, mtu)) {
		char text[400];

		fd = udp_of(&p, 0);
		memset(text, 'b', 390);
		text[390] = 0;
		n = echo(fd, text, 1, 1000, rsp, sizeof(rsp));
		ok(n == 14 && !memcmp(rsp + 8, "\xbf\x62rc\x09\xff", 6),
		   "--udp-mtu 300: a longer datagram is cut and answered {\"rc\": 9}");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, disc)) {
		char *line;
		unsigned answered = 0;

		fd = udp_of(&p, 0);
		/* About 67 bytes per exchange: the third request crosses 150. */
		for (unsigned i = 0; i < 3; i++)
			answered += echo(fd, "hello, anybody there?", (uint8_t)i, 300, rsp,
					 sizeof(rsp)) > 0;
		line = sim_proc_wait_line(&p, "LINK udp", 2000);
		ok(line && strstr(line, " down") && answered == 2,
		   "--disconnect-after 150: the link drops at the third request (%s)",
		   line ? line : "no line");
		free(line);
		n = echo(fd, "anybody?", 4, 200, rsp, sizeof(rsp));
		is_int(n, 0, "requests are lost while it is down");
		line = sim_proc_wait_line(&p, "LINK udp", 5000);
		ok(line && strstr(line, " up"), "and it comes back");
		free(line);
		n = echo(fd, "back", 9, 1000, rsp, sizeof(rsp));
		ok(n > 8, "answers again");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
}

static void test_boot_faults(void)
{
	static const char *const slow[] = {"--udp", "127.0.0.1:0", "--reboot-delay", "1500", NULL};
	static const char *const failing[] = {"--udp",	     "127.0.0.1:0",
					      "--fail-boot", "--reboot-delay",
					      "100",	     "--flash-write-us-per-kib",
					      "0",	     NULL};
	static const char *const power[] = {"--udp",
					    "127.0.0.1:0",
					    "--reset-during-upload",
					    "20000",
					    "--reboot-delay",
					    "200",
					    "--flash-write-us-per-kib",
					    "0",
					    NULL};
	const char *file = "tests/data/images/ecdsa-p256-2.0.0.bin";
	struct sim_proc p;
	struct smp_client *c;
	uint8_t rsp[256], hash[32];
	int fd;

	if (start(&p, slow)) {
		uint8_t reset[] = {0x0a, 0, 0, 1, 0, 0, 1, 5, 0xa0};
		long long t0;
		char *line;
		ssize_t n;

		fd = udp_of(&p, 0);
		send(fd, reset, sizeof(reset), 0);
		n = sim_test_udp_recv(fd, rsp, sizeof(rsp), 1000);
		t0 = sim_test_now_ms();
		ok(n == 10 && !memcmp(rsp + 8, "\xbf\xff", 2), "reset answered {} first");
		n = echo(fd, "during", 2, 800, rsp, sizeof(rsp));
		is_int(n, 0, "silent while rebooting");
		line = sim_proc_wait_line(&p, "BOOT id=sim-0", 5000);
		ok(line && sim_test_now_ms() - t0 >= 1300,
		   "--reboot-delay 1500: back after %lld ms", sim_test_now_ms() - t0);
		free(line);
		n = echo(fd, "after", 3, 1000, rsp, sizeof(rsp));
		ok(n > 8, "answers after the reboot");
		close(fd);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, failing)) {
		struct upload_wait w;

		c = client_for(&p, 0);
		w = upload_file(c, file);
		ok(w.done && w.error == 0, "ECDSA image uploaded");
		ok(call_ok(c,
			   SIM_REQ(smp_image_state_write_request, image_hash(file, hash), false)),
		   "test");
		ok(reset_and_wait(&p, c, "version=1.0.0"), "--fail-boot: MCUboot reverts at once");
		smp_client_unref(c);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
	if (start(&p, power)) {
		struct upload_wait w;
		char *line;

		c = client_for(&p, 0);
		w = upload_file(c, file);
		line = sim_proc_wait_line(&p, "RESET id=sim-0", 1000);
		ok(line && strstr(line, "reason=power-loss"), "--reset-during-upload: power lost");
		free(line);
		ok(w.done && w.error == 0 && w.res.offset == 70663 && w.res.restarts >= 1,
		   "libsmp restarts the upload and completes it (%u restarts)", w.res.restarts);
		smp_client_unref(c);
		sim_proc_stop(&p, SIGTERM, 5000);
	}
}

/* ---- many devices ---- */

static void test_many(void)
{
	static const char *const args[] = {"--udp", "127.0.0.1:0", "--count", "100", NULL};
	struct sim_proc p;
	unsigned fine = 0;
	uint8_t info[] = {0x08, 0,   0,	  0x0a, 0,   0,	  1,   7,    0xa1,
			  0x66, 'f', 'o', 'r',	'm', 'a', 't', 0x61, 'n'};

	if (!start(&p, args)) {
		ok(false, "100 devices start");
		return;
	}
	is_int(p.n_ready, 100, "100 READY lines");
	for (unsigned i = 0; i < 100; i++) {
		int fd = udp_of(&p, i);
		uint8_t rsp[128];
		char want[32];
		ssize_t n;

		send(fd, info, sizeof(info), 0);
		n = sim_test_udp_recv(fd, rsp, sizeof(rsp), 2000);
		snprintf(want, sizeof(want), "sim-%u", i);
		if (n > 17 && (size_t)n - 18 >= strlen(want) && rsp[16] == 0x60 + strlen(want) &&
		    !memcmp(rsp + 17, want, strlen(want)))
			fine++;
		close(fd);
	}
	is_int(fine, 100, "each of the 100 devices names itself sim-<i> (os info n)");
	{
		char *v = sim_proc_ready(&p, "udp", 42, "version"),
		     *sn0 = sim_proc_ready(&p, "udp", 0, "sn"),
		     *sn1 = sim_proc_ready(&p, "udp", 1, "sn");

		ok(v && !strcmp(v, "1.0.0.42"), "device 42 runs 1.0.0.42");
		ok(sn0 && sn1 && strcmp(sn0, sn1), "serial numbers differ");
		free(v);
		free(sn0);
		free(sn1);
	}
	is_int(sim_proc_stop(&p, SIGTERM, 10000), 0, "100 devices exit cleanly");
}

static void test_consecutive_ports(void)
{
	int probe = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	char where[32], arg[32];
	const char *args[] = {"--udp", arg, "--count", "3", NULL};
	struct sim_proc p;

	bind(probe, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(probe, (struct sockaddr *)&sa, &len);
	close(probe);
	snprintf(arg, sizeof(arg), "127.0.0.1:%u", ntohs(sa.sin_port));
	if (ntohs(sa.sin_port) > 65000 || !start(&p, args)) {
		tap_skip("no free port range", "consecutive ports");
		return;
	}
	snprintf(where, sizeof(where), "127.0.0.1:%u", ntohs(sa.sin_port) + 2);
	{
		char *third = sim_proc_ready(&p, "udp", 2, NULL);

		ok(third && !strcmp(third, where), "device 2 listens on PORT+2");
		free(third);
	}
	sim_proc_stop(&p, SIGTERM, 5000);
}

int main(void)
{
	char tmpl[] = "/tmp/test-sim-udp-XXXXXX";

	scratch = mkdtemp(tmpl);
	if (!scratch || sd_event_new(&event) < 0)
		return 1;
	test_recordings();
	test_dfu();
	test_drop_corrupt();
	test_dup_reorder();
	test_timing();
	test_buffers();
	test_device_faults();
	test_boot_faults();
	test_many();
	test_consecutive_ports();
	sd_event_unref(event);
	sim_rm_rf(scratch);
	return tap_done();
}
