/* test-sim-device: the simulated SMP server against the Zephyr 4.1 recordings */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim-device.h"
#include "sim-fs.h"
#include "sim-util.h"
#include "smp-cbor.h"
#include "smp-error.h"
#include "smp-fs.h"
#include "smp-image.h"
#include "smp-mcuboot.h"
#include "smp-os.h"
#include "smp-settings.h"
#include "smp-shell.h"
#include "smp-stat.h"
#include "smp-enum.h"
#include "smp-zephyr.h"
#include "tests/tap.h"

static char *scratch;
static uint8_t seq;

static struct sim_device *dev_new(const struct sim_config *cfg)
{
	struct sim_device *d = NULL;
	int r = sim_device_new(cfg, 0, scratch, &d);

	if (r < 0) {
		fprintf(stderr, "sim_device_new: %s\n", strerror(-r));
		exit(1);
	}
	return d;
}

/* The configuration under which the recordings were made: Zephyr 4.1's
 * smp_svr on native_sim (no "match", no memory pools, its info strings). */
static void recording_config(struct sim_config *cfg)
{
	sim_config_init(cfg);
	cfg->buf_size = 2048;
	cfg->buf_count = 8;
	cfg->image_check = false;
	cfg->mpstat = false;
	cfg->info[SIM_INFO_NODE_NAME] = "unknown";
	cfg->info[SIM_INFO_MACHINE] = "posix";
	cfg->info[SIM_INFO_PROCESSOR] = "unknown";
	cfg->info[SIM_INFO_PLATFORM] = "native_sim";
	cfg->flash_write_us_per_kib = 0;
	cfg->flash_erase_us_per_kib = 0;
}

/* Processes raw bytes; the caller clears the result. */
static struct sim_result process(struct sim_device *d, const uint8_t *p, size_t n)
{
	struct sim_result r;

	if (sim_device_process(d, NULL, p, n, &r) < 0) {
		fprintf(stderr, "sim_device_process failed\n");
		exit(1);
	}
	return r;
}

/* Sends a request built with libsmp and decodes the single response. NULL
 * when there was no response or it did not decode. Frees the request. */
static struct smp_response *call_v(struct sim_device *d, struct smp_request *req, uint8_t version,
				   struct sim_result *effects)
{
	struct smp_response *rsp = NULL;
	struct sim_result r;

	if (!req || smp_request_finish(req, version, ++seq) < 0) {
		smp_request_free(req);
		return NULL;
	}
	r = process(d, req->pkt.data, req->pkt.len);
	if (r.n_pkts == 1 && smp_response_decode(r.pkts[0].data, r.pkts[0].len, &rsp) < 0)
		rsp = NULL;
	if (effects)
		*effects = (struct sim_result){
		    .busy_us = r.busy_us, .reset = r.reset, .power_loss = r.power_loss};
	sim_result_clear(&r);
	smp_request_free(req);
	return rsp;
}

static struct smp_response *call(struct sim_device *d, struct smp_request *req)
{
	return call_v(d, req, SMP_VERSION_2, NULL);
}

static struct smp_request *build(int r, struct smp_request *req)
{
	return r < 0 ? NULL : req;
}

/* Builds a request with a libsmp builder; NULL when the builder failed. */
#define REQ(fn)                                                                                    \
	({                                                                                         \
		struct smp_request *_req = NULL;                                                   \
		int _r = fn(&_req);                                                                \
		build(_r, _req);                                                                   \
	})
#define REQ_ARGS(fn, ...)                                                                          \
	({                                                                                         \
		struct smp_request *_req = NULL;                                                   \
		int _r = fn(__VA_ARGS__, &_req);                                                   \
		build(_r, _req);                                                                   \
	})

static bool is_group_err(const struct smp_response *r, uint16_t group, int64_t rc)
{
	return r && r->status.kind == SMP_STATUS_GROUP_ERR && r->status.group == group &&
	       r->status.rc == rc;
}

static bool is_rc(const struct smp_response *r, int64_t rc)
{
	return r && r->status.kind == SMP_STATUS_RC && r->status.rc == rc;
}

static char *hex(const uint8_t *p, size_t n)
{
	char *s = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	s[2 * n] = 0;
	return s;
}

/* ---- the recordings ---- */

/* Replaces every occurrence of the 32-byte value from in want by to. */
static void substitute(uint8_t *want, size_t n, const uint8_t *from, const uint8_t *to)
{
	for (size_t i = 0; i + 32 <= n; i++)
		if (!memcmp(want + i, from, 32))
			memcpy(want + i, to, 32);
}

static void primary_hash(struct sim_device *d, uint8_t out[32])
{
	struct smp_response *rsp = call(d, REQ(smp_image_state_read_request));
	struct smp_image_state *st = NULL;

	memset(out, 0, 32);
	if (rsp && smp_image_state_parse(rsp, &st) == 0 && st->n_slots > 0)
		memcpy(out, st->slots[0].hash, 32);
	smp_image_state_free(st);
	smp_response_free(rsp);
}

static void test_recording(const char *file, uint8_t version)
{
	struct sim_config cfg;
	struct sim_device *d;
	json_error_t jerr;
	json_t *root, *pairs;
	uint8_t recorded_hash[32], our_hash[32];
	size_t i;
	json_t *p;

	recording_config(&cfg);
	d = dev_new(&cfg);
	root = json_load_file(tap_srcpath(file), 0, &jerr);
	ok(root != NULL, "%s loads", file);
	if (!root)
		return;
	pairs = json_object_get(root, "pairs");
	{
		/* The running image of native_sim is not ours: its hash differs. */
		uint8_t *h = tap_unhex(
		    "072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a93", &i);

		memcpy(recorded_hash, h, 32);
		free(h);
	}
	primary_hash(d, our_hash);

	json_array_foreach(pairs, i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		size_t req_len, want_len;
		uint8_t *req =
		    tap_unhex(json_string_value(json_object_get(p, "request_hex")), &req_len);
		uint8_t *want =
		    tap_unhex(json_string_value(json_object_get(p, "response_hex")), &want_len);
		struct sim_result r = process(d, req, req_len);

		if (r.n_pkts != 1) {
			ok(false, "v%u %s: one response (got %zu)", version + 1, name, r.n_pkts);
			goto next;
		}
		if (strstr(name, "bootloader")) {
			/* Recorded without MCUboot; the simulator has it. */
			struct smp_response *rsp = NULL;
			struct smp_os_bootloader_info *bi = NULL;

			ok(smp_response_decode(r.pkts[0].data, r.pkts[0].len, &rsp) == 0 &&
			       smp_os_bootloader_parse(rsp, &bi) == 0 && bi->bootloader &&
			       !strcmp(bi->bootloader, "MCUboot"),
			   "v%u %s: the simulator names MCUboot", version + 1, name);
			smp_os_bootloader_info_free(bi);
			smp_response_free(rsp);
			goto next;
		}
		if (!strcmp(name, "shell exec")) {
			/* The uptime differs; the shape must not. */
			struct smp_response *rsp = NULL;
			struct smp_shell_result *sr = NULL;
			unsigned ms;
			char tail[8] = "";

			ok(smp_response_decode(r.pkts[0].data, r.pkts[0].len, &rsp) == 0 &&
			       rsp->hdr.version == version && smp_shell_exec_parse(rsp, &sr) == 0 &&
			       sr->ret == 0 &&
			       sscanf(sr->output, "\r\nUptime: %u ms%7s", &ms, tail) == 1 &&
			       !strcmp(sr->output + strlen(sr->output) - 2, "\r\n"),
			   "v%u %s: Zephyr's uptime output", version + 1, name);
			smp_shell_result_free(sr);
			smp_response_free(rsp);
			goto next;
		}
		substitute(want, want_len, recorded_hash, our_hash);
		if (!strcmp(name, "stat read") && r.pkts[0].len == want_len) {
			/* ticks counts seconds since boot; the recording was taken
			 * in the first second. */
			static const uint8_t ticks_key[] = {0x65, 't', 'i', 'c', 'k', 's'};
			uint8_t *at = memmem(want, want_len, ticks_key, sizeof(ticks_key));

			if (at && at[6] < 24)
				at[6] = r.pkts[0].data[at + 6 - want];
		}
		if (!is_mem(r.pkts[0].data, r.pkts[0].len, want, want_len, "v%u %s: byte-identical",
			    version + 1, name)) {
			char *g = hex(r.pkts[0].data, r.pkts[0].len);

			tap_diag("got %s", g);
			free(g);
		}
	next:
		sim_result_clear(&r);
		free(req);
		free(want);
	}
	json_decref(root);
	sim_device_free(d);
}

/* ---- header rules (smp-protocol.md §2.5) ---- */

static void test_header_rules(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct sim_result r;
	size_t n;
	uint8_t *p;

	recording_config(&cfg);
	d = dev_new(&cfg);

	/* Fewer than 8 bytes: silence. */
	p = tap_unhex("0a000009000001", &n);
	r = process(d, p, n);
	is_int(r.n_pkts, 0, "7 bytes are dropped silently");
	sim_result_clear(&r);
	free(p);

	/* Length field larger than the payload: ECORRUPT, version kept. */
	p = tap_unhex("0a00000a00000100 a161646568656c6c6f", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 1 && r.pkts[0].len == 14 &&
	       !memcmp(r.pkts[0].data, "\x0b\x00\x00\x06\x00\x00\x01\x00\xbf\x62rc\x09\xff", 14),
	   "truncated packet answered {\"rc\": 9}");
	sim_result_clear(&r);
	free(p);

	/* Truncated at every length: never more than one answer, never a crash. */
	p = tap_unhex("0a00000900000100 a161646568656c6c6f", &n);
	for (size_t cut = 0; cut < n; cut++) {
		r = process(d, p, cut);
		if (r.n_pkts != (cut < 8 ? 0u : 1u))
			ok(false, "truncated at %zu", cut);
		sim_result_clear(&r);
	}
	ok(true, "echo truncated at every length");
	free(p);

	/* Ops 4..7 and response ops: ENOTSUP, answered as a write response. */
	p = tap_unhex("0d00000100000106 a0", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 1 && r.pkts[0].data[0] == 0x0b &&
	       !memcmp(r.pkts[0].data + 8, "\xbf\x62rc\x08\xff", 6),
	   "op 5 answered {\"rc\": 8} as WRITE_RSP");
	sim_result_clear(&r);
	free(p);
	p = tap_unhex("0900000100000106 a0", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 1 && r.pkts[0].data[0] == 0x0b &&
	       !memcmp(r.pkts[0].data + 8, "\xbf\x62rc\x08\xff", 6),
	   "a response sent to the device is ENOTSUP");
	sim_result_clear(&r);
	free(p);

	/* Reserved versions: UNSUPPORTED_TOO_NEW with the version capped at 1. */
	p = tap_unhex("1000000100000106 a0", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 1 && r.pkts[0].data[0] == 0x09 &&
	       !memcmp(r.pkts[0].data + 8, "\xbf\x62rc\x0d\xff", 6),
	   "version 2 answered {\"rc\": 13} in a version 1 header");
	sim_result_clear(&r);
	free(p);

	/* Two packets in one frame: two answers; an error stops the rest. */
	p = tap_unhex("0a00000900000100 a161646568656c6c6f 0800000100000206 a0", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 2 && r.pkts[0].data[6] == 1 && r.pkts[1].data[6] == 2,
	   "concatenated packets answered one by one");
	sim_result_clear(&r);
	free(p);
	p = tap_unhex("0800000100000303 a0 0800000100000206 a0", &n);
	cfg.mpstat = false;
	r = process(d, p, n);
	ok(r.n_pkts == 1 && r.pkts[0].data[6] == 3, "processing stops at the first error");
	sim_result_clear(&r);
	free(p);

	/* Not CBOR, and not a map: handlers that decode answer EINVAL. */
	p = tap_unhex("0a00000300000100 ffffff", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 1 && !memcmp(r.pkts[0].data + 8, "\xbf\x62rc\x03\xff", 6),
	   "undecodable echo answered {\"rc\": 3}");
	sim_result_clear(&r);
	free(p);
	p = tap_unhex("0800000100000606 ff", &n);
	r = process(d, p, n);
	ok(r.n_pkts == 1 && r.pkts[0].len > 14, "params ignores its payload");
	sim_result_clear(&r);
	free(p);

	/* Random garbage: answers are whole packets, the loop never crashes. */
	{
		struct sim_rng rng;
		uint8_t buf[64];
		bool fine = true;

		sim_rng_seed(&rng, 42, 0);
		for (unsigned i = 0; i < 3000; i++) {
			size_t len = sim_rng_below(&rng, sizeof(buf));

			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)sim_rng_next(&rng);
			if (len > 3)
				buf[2] = 0, buf[3] = (uint8_t)(len > 8 ? len - 8 : 0);
			buf[0] &= 0x0f;
			r = process(d, buf, len);
			for (size_t k = 0; k < r.n_pkts; k++)
				fine &= r.pkts[k].len >= 8;
			sim_result_clear(&r);
		}
		ok(fine, "3000 random frames handled");
	}
	sim_device_free(d);
}

/* ---- OS group ---- */

static void test_os(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_response *rsp;
	struct sim_result eff;
	char *s = NULL;

	sim_config_init(&cfg);
	cfg.buf_size = 384;
	d = dev_new(&cfg);

	rsp = call(d, REQ_ARGS(smp_os_echo_request, "hello"));
	ok(rsp && smp_os_echo_parse(rsp, &s) == 0 && !strcmp(s, "hello"), "echo");
	free(s);
	s = NULL;
	smp_response_free(rsp);

	rsp = call(d, REQ_ARGS(smp_os_info_request, NULL));
	ok(rsp && smp_os_info_parse(rsp, &s) == 0 && !strcmp(s, "Zephyr"), "info defaults to s");
	free(s);
	s = NULL;
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_info_request, "nov"));
	ok(rsp && smp_os_info_parse(rsp, &s) == 0 && !strcmp(s, "sim-0 4.1.0 Zephyr"),
	   "info n, v, o in Zephyr's order");
	free(s);
	s = NULL;
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_info_request, "sx"));
	ok(is_group_err(rsp, SMP_GROUP_OS, 2), "info with an unknown character: OS 2");
	smp_response_free(rsp);

	rsp = call(d, REQ_ARGS(smp_os_bootloader_request, "mode"));
	{
		struct smp_os_bootloader_info *bi = NULL;

		ok(rsp && smp_os_bootloader_parse(rsp, &bi) == 0 && bi->has_mode && bi->mode == 3,
		   "bootloader mode 3 (swap using move)");
		smp_os_bootloader_info_free(bi);
	}
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_bootloader_request, "active_b0_slot"));
	ok(is_group_err(rsp, SMP_GROUP_OS, 3), "unknown bootloader query: OS 3");
	smp_response_free(rsp);

	rsp = call(d, REQ(smp_os_datetime_get_request));
	ok(is_group_err(rsp, SMP_GROUP_OS, 4), "datetime before it is set: RTC_NOT_SET");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_datetime_set_request, "2024-02-30T25:00:00"));
	ok(is_rc(rsp, 3), "out-of-range hour: EINVAL");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_datetime_set_request, "2024-1-2"));
	ok(is_rc(rsp, 3), "too short: EINVAL");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_datetime_set_request, "2024-05-06T07:08:09.123+02:00"));
	ok(is_rc(rsp, 3), "26 characters: EINVAL");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_os_datetime_set_request, "2024/05/06 07.08.09"));
	ok(rsp && smp_response_ok(rsp), "any separators are accepted");
	smp_response_free(rsp);
	rsp = call(d, REQ(smp_os_datetime_get_request));
	ok(rsp && smp_os_datetime_parse(rsp, &s) == 0 && !strncmp(s, "2024-05-06T07:08:0", 18),
	   "datetime reads back");
	free(s);
	s = NULL;
	smp_response_free(rsp);

	rsp = call(d, REQ(smp_os_params_request));
	{
		struct smp_os_params pa = {0};

		ok(rsp && smp_os_params_parse(rsp, &pa) == 0 && pa.buf_size == 384 &&
		       pa.buf_count == 4,
		   "params reports the configured buffers");
	}
	smp_response_free(rsp);

	rsp = call(d, REQ(smp_os_mpstat_request));
	{
		struct smp_os_mpstat *mp = NULL;

		ok(rsp && smp_os_mpstat_parse(rsp, &mp) == 0 && mp->n_pools == 1,
		   "mpstat reports the SMP buffer pool");
		smp_os_mpstat_free(mp);
	}
	smp_response_free(rsp);
	rsp = call(d, REQ(smp_os_taskstat_request));
	{
		struct smp_os_taskstat *ts = NULL;

		ok(rsp && smp_os_taskstat_parse(rsp, &ts) == 0, "taskstat parses");
		smp_os_taskstat_free(ts);
	}
	smp_response_free(rsp);

	rsp = call(d, REQ_ARGS(smp_os_console_echo_request, true));
	ok(is_rc(rsp, 8), "console echo is not in Zephyr: ENOTSUP");
	smp_response_free(rsp);

	rsp = call_v(d, REQ_ARGS(smp_os_reset_request, false, -1), SMP_VERSION_2, &eff);
	ok(rsp && smp_response_ok(rsp) && eff.reset && !eff.power_loss,
	   "reset answers {} and asks for a reboot");
	smp_response_free(rsp);

	/* A response that does not fit the buffer: EMSGSIZE. */
	rsp = call(d, REQ(smp_image_state_read_request));
	ok(rsp && smp_response_ok(rsp), "state read fits 384 bytes");
	smp_response_free(rsp);
	sim_device_free(d);
	cfg.buf_size = 128;
	d = dev_new(&cfg);
	rsp = call(d, REQ(smp_image_state_read_request));
	ok(is_rc(rsp, 7), "state read in a 128-byte buffer: EMSGSIZE");
	smp_response_free(rsp);
	sim_device_free(d);

	/* A server older than SMP v2 answers everything in v1 style. */
	sim_config_init(&cfg);
	cfg.smp_version = 1;
	d = dev_new(&cfg);
	rsp = call(d, REQ_ARGS(smp_os_info_request, "q"));
	ok(rsp && rsp->hdr.version == SMP_VERSION_1 && is_rc(rsp, 3),
	   "v1-only: a v2 request gets a v1 header and a translated rc");
	smp_response_free(rsp);
	rsp = call_v(d, REQ(smp_os_params_request), 3, NULL);
	ok(rsp && rsp->hdr.version == SMP_VERSION_1 && smp_response_ok(rsp),
	   "v1-only: version bits are ignored");
	smp_response_free(rsp);
	sim_device_free(d);
}

/* ---- image group: upload, test, reset, confirm, revert ---- */

struct test_image {
	uint8_t *data;
	size_t len;
	uint8_t file_sha[32];
	uint8_t hash[32];
	struct smp_mcuboot_version version;
};

static void load_image(const char *file, struct test_image *t)
{
	struct smp_mcuboot_image *m = NULL;

	t->data = tap_read_file(tap_srcpath(file), &t->len);
	if (smp_mcuboot_parse(t->data, t->len, &m) < 0)
		abort();
	memcpy(t->file_sha, m->file_sha256, 32);
	memcpy(t->hash, m->hash, 32);
	t->version = m->hdr.version;
	smp_mcuboot_image_free(m);
}

/* Uploads in chunks as a client would; returns the last response's result,
 * or off = UINT64_MAX when an answer was missing or an error. */
static struct smp_image_upload_result upload(struct sim_device *d, const uint8_t *data, size_t len,
					     const uint8_t *sha, size_t sha_len, size_t chunk)
{
	struct smp_image_upload_result res = {.off = 0};

	for (unsigned rounds = 0; rounds < 10000; rounds++) {
		struct smp_image_upload_args a = {
		    .off = res.off,
		    .data = data + res.off,
		    .data_len = MIN(chunk, len - res.off),
		    .len = len,
		    .sha = sha,
		    .sha_len = sha_len,
		};
		struct smp_response *rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));

		if (!rsp || smp_image_upload_parse(rsp, &res) < 0) {
			smp_response_free(rsp);
			res.off = UINT64_MAX;
			return res;
		}
		smp_response_free(rsp);
		if (res.off >= len)
			break;
	}
	return res;
}

static struct smp_image_state *state(struct sim_device *d, struct smp_response *rsp)
{
	struct smp_image_state *st = NULL;

	if (!rsp)
		rsp = call(d, REQ(smp_image_state_read_request));
	if (rsp && smp_image_state_parse(rsp, &st) < 0)
		st = NULL;
	smp_response_free(rsp);
	return st;
}

static const char *flags_of(const struct smp_image_state *st, unsigned slot, char *buf)
{
	const struct smp_image_slot_state *s = st ? smp_image_state_find_slot(st, 0, slot) : NULL;

	if (!s)
		return "absent";
	sprintf(buf, "%s %s%s%s%s%s", s->version, s->bootable ? "b" : "", s->pending ? "p" : "",
		s->confirmed ? "c" : "", s->active ? "a" : "", s->permanent ? "P" : "");
	return buf;
}

static void reboot(struct sim_device *d, struct sim_boot_report *rep)
{
	struct sim_boot_report tmp;

	sim_device_power_off(d);
	if (sim_device_boot(d, rep ? rep : &tmp) < 0)
		abort();
}

#define is_state(st, s0, s1, ...)                                                                  \
	do {                                                                                       \
		char _b0[64], _b1[64];                                                             \
		is_str(flags_of(st, 0, _b0), s0, __VA_ARGS__);                                     \
		is_str(flags_of(st, 1, _b1), s1, __VA_ARGS__);                                     \
	} while (0)

static void test_image_dfu(const char *dir)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_image_state *st;
	struct smp_image_upload_result res;
	struct smp_response *rsp;
	struct test_image img;
	struct sim_boot_report rep;

	load_image("tests/data/images/hash-only-1.2.3+4.bin", &img);
	sim_config_init(&cfg);
	cfg.state_dir = dir;
	cfg.flash_write_us_per_kib = 100;
	d = dev_new(&cfg);

	st = state(d, NULL);
	is_state(st, "1.0.0 bca", "absent", "factory state: only the running image");
	smp_image_state_free(st);

	res = upload(d, img.data, img.len, img.file_sha, 32, 1000);
	ok(res.off == img.len && res.has_match && res.match, "upload of %zu bytes ends with match",
	   img.len);
	st = state(d, NULL);
	is_state(st, "1.0.0 bca", "1.2.3.4 b", "uploaded image listed without flags");
	ok(st && !memcmp(smp_image_state_find_slot(st, 0, 1)->hash, img.hash, 32),
	   "its hash is the image's SHA-256 TLV");
	smp_image_state_free(st);

	/* The same sha again: the data already matches. */
	{
		struct smp_image_upload_args a = {.off = 0,
						  .data = img.data,
						  .data_len = 512,
						  .len = img.len,
						  .sha = img.file_sha,
						  .sha_len = 32};

		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(rsp && smp_image_upload_parse(rsp, &res) == 0 && res.off == img.len && res.match,
		   "re-upload of the same file answers off = len, match");
		smp_response_free(rsp);
	}

	rsp = call(d, REQ_ARGS(smp_image_state_write_request, img.file_sha, false));
	ok(is_group_err(rsp, SMP_GROUP_IMAGE, 8), "test with the file's sha: HASH_NOT_FOUND");
	smp_response_free(rsp);
	st = state(d, call(d, REQ_ARGS(smp_image_state_write_request, img.hash, false)));
	is_state(st, "1.0.0 bca", "1.2.3.4 bp", "test marks slot 1 pending");
	smp_image_state_free(st);
	rsp = call(d, REQ_ARGS(smp_image_state_write_request, img.hash, false));
	ok(rsp && smp_response_ok(rsp), "testing again is a no-op");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_image_state_write_request, img.hash, true));
	ok(is_group_err(rsp, SMP_GROUP_IMAGE, 28), "confirming it while pending: ALREADY_PENDING");
	smp_response_free(rsp);
	{
		struct smp_image_upload_args a = {.off = 0,
						  .data = img.data,
						  .data_len = 512,
						  .len = img.len,
						  .sha = (const uint8_t *)"x",
						  .sha_len = 1};

		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 9),
		   "upload while a test is pending: NO_FREE_SLOT");
		smp_response_free(rsp);
	}
	rsp = call(d, REQ_ARGS(smp_image_erase_request, 1));
	ok(is_group_err(rsp, SMP_GROUP_IMAGE, 9), "erase of the pending slot: NO_FREE_SLOT");
	smp_response_free(rsp);

	/* Power cycle (the simulator process restarts): state survives. */
	sim_device_free(d);
	d = dev_new(&cfg);
	st = state(d, NULL);
	is_state(st, "1.2.3.4 ba", "1.0.0 bc", "a restart boots the test image, unconfirmed");
	smp_image_state_free(st);

	/* Unconfirmed: the next reset reverts. */
	reboot(d, &rep);
	is_int(rep.swap, SIM_SWAP_REVERT, "MCUboot reverted");
	st = state(d, NULL);
	is_state(st, "1.0.0 bca", "1.2.3.4 b", "after the revert the old image runs");
	smp_image_state_free(st);

	/* Test again, reset, confirm: the new image stays. */
	rsp = call(d, REQ_ARGS(smp_image_state_write_request, img.hash, false));
	smp_response_free(rsp);
	reboot(d, &rep);
	is_int(rep.swap, SIM_SWAP_TEST, "test swap");
	is_str(rep.version, "1.2.3.4", "new version boots");
	rsp = call(d, REQ_ARGS(smp_image_state_write_request, img.hash, false));
	ok(is_group_err(rsp, SMP_GROUP_IMAGE, 33),
	   "test of the running image: TEST_TO_ACTIVE_DENIED");
	smp_response_free(rsp);
	{
		struct smp_image_upload_args a = {
		    .off = 0, .data = img.data, .data_len = 512, .len = img.len};

		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 9),
		   "upload over the revert target: NO_FREE_SLOT");
		smp_response_free(rsp);
	}
	st = state(d, call(d, REQ_ARGS(smp_image_state_write_request, NULL, true)));
	is_state(st, "1.2.3.4 bca", "1.0.0 b", "confirm makes it permanent");
	smp_image_state_free(st);
	reboot(d, &rep);
	is_int(rep.swap, SIM_SWAP_NONE, "no swap after confirm");
	st = state(d, NULL);
	is_state(st, "1.2.3.4 bca", "1.0.0 b", "the confirmed image keeps running");
	smp_image_state_free(st);

	/* Permanent swap back to the old image by its hash. */
	{
		const struct smp_image_slot_state *old;
		uint8_t h[32];

		st = state(d, NULL);
		old = st ? smp_image_state_find_slot(st, 0, 1) : NULL;
		memcpy(h, old ? old->hash : img.hash, 32);
		smp_image_state_free(st);
		st = state(d, call(d, REQ_ARGS(smp_image_state_write_request, h, true)));
		is_state(st, "1.2.3.4 bca", "1.0.0 bpP",
			 "confirm=true on slot 1: pending permanent");
		smp_image_state_free(st);
		reboot(d, &rep);
		is_int(rep.swap, SIM_SWAP_PERM, "permanent swap");
		st = state(d, NULL);
		is_state(st, "1.0.0 bca", "1.2.3.4 b",
			 "after a permanent swap: confirmed, no revert");
		smp_image_state_free(st);
	}

	/* Erase, then the slot is gone; erase of the running slot refused. */
	rsp = call(d, REQ_ARGS(smp_image_erase_request, -1));
	ok(rsp && smp_response_ok(rsp), "erase slot 1");
	smp_response_free(rsp);
	st = state(d, NULL);
	is_state(st, "1.0.0 bca", "absent", "erased slot not listed");
	smp_image_state_free(st);
	rsp = call(d, REQ_ARGS(smp_image_erase_request, -1));
	ok(rsp && smp_response_ok(rsp), "erasing an erased slot succeeds");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_image_erase_request, 0));
	ok(is_group_err(rsp, SMP_GROUP_IMAGE, 9), "erase of the running slot: NO_FREE_SLOT");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_image_erase_request, 2));
	ok(is_group_err(rsp, SMP_GROUP_IMAGE, 14), "erase of slot 2: INVALID_SLOT");
	smp_response_free(rsp);

	sim_device_free(d);
	free(img.data);
}

static void test_image_faults(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_image_state *st;
	struct smp_image_upload_result res;
	struct smp_response *rsp;
	struct test_image img;
	struct sim_boot_report rep;
	struct sim_result eff;

	load_image("tests/data/images/ecdsa-p256-2.0.0.bin", &img);

	/* The new image crashes: MCUboot reverts at once. */
	sim_config_init(&cfg);
	cfg.faults.fail_boot = true;
	d = dev_new(&cfg);
	res = upload(d, img.data, img.len, img.file_sha, 32, 2000);
	ok(res.off == img.len && res.match, "ECDSA image uploaded");
	smp_response_free(call(d, REQ_ARGS(smp_image_state_write_request, img.hash, false)));
	reboot(d, &rep);
	ok(rep.failed_and_reverted && !rep.bricked, "the failing image was reverted");
	is_str(rep.version, "1.0.0", "the old image runs");
	st = state(d, NULL);
	is_state(st, "1.0.0 bca", "2.0.0 b", "state after a failed boot");
	smp_image_state_free(st);
	/* Permanent and failing: a brick. */
	smp_response_free(call(d, REQ_ARGS(smp_image_state_write_request, img.hash, true)));
	reboot(d, &rep);
	ok(rep.bricked, "a permanent image that crashes bricks the device");
	sim_device_free(d);

	/* The application confirms itself. */
	sim_config_init(&cfg);
	cfg.auto_confirm = true;
	d = dev_new(&cfg);
	upload(d, img.data, img.len, img.file_sha, 32, 2000);
	smp_response_free(call(d, REQ_ARGS(smp_image_state_write_request, img.hash, false)));
	reboot(d, &rep);
	st = state(d, NULL);
	is_state(st, "2.0.0 bca", "1.0.0 b", "auto-confirm: confirmed after the test boot");
	smp_image_state_free(st);
	sim_device_free(d);

	/* Power loss in the middle of an upload; the session does not survive. */
	sim_config_init(&cfg);
	cfg.faults.reset_during_upload = 30000;
	d = dev_new(&cfg);
	{
		struct smp_image_upload_args a = {
		    .len = img.len, .sha = img.file_sha, .sha_len = 32};
		uint64_t off = 0;
		bool lost = false;

		for (unsigned i = 0; i < 100 && off < img.len; i++) {
			a.off = off;
			a.data = img.data + off;
			a.data_len = MIN((size_t)4000, img.len - (size_t)off);
			rsp =
			    call_v(d, REQ_ARGS(smp_image_upload_request, &a), SMP_VERSION_2, &eff);
			if (eff.power_loss) {
				lost = !rsp;
				break;
			}
			if (!rsp || smp_image_upload_parse(rsp, &res) < 0)
				break;
			off = res.off;
			smp_response_free(rsp);
		}
		ok(lost && off == 28000, "no answer once the upload crosses 30000 (at %llu)",
		   (unsigned long long)off);
		reboot(d, NULL);
		a.off = 32000;
		a.data = img.data + 32000;
		a.data_len = 100;
		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(rsp && smp_image_upload_parse(rsp, &res) == 0 && res.off == 0,
		   "after the reset the device expects offset 0");
		smp_response_free(rsp);
		st = state(d, NULL);
		is_state(st, "1.0.0 bca", "absent", "a partial image is not listed");
		smp_image_state_free(st);
		res = upload(d, img.data, img.len, img.file_sha, 32, 4000);
		ok(res.off == img.len && res.match, "the upload restarts and completes");
	}
	sim_device_free(d);
	free(img.data);
}

static void test_image_errors(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_response *rsp;
	struct smp_image_upload_result res;
	struct test_image img;
	uint8_t bad[64], sha33[33];

	load_image("tests/data/images/hash-only-1.2.3+4.bin", &img);
	sim_config_init(&cfg);
	cfg.slot_size = 65536;
	d = dev_new(&cfg);
	memset(sha33, 1, sizeof(sha33));

	/* {"confirm": 1.5}: a float where a bool belongs is EINVAL, never a crash. */
	{
		struct smp_request *req = NULL;

		smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_STATE, &req);
		smp_cbor_put_map(&req->pkt, 1);
		smp_cbor_put_text(&req->pkt, "confirm");
		smp_buf_append(&req->pkt, "\xf9\x3e\x00", 3);
		rsp = call(d, req);
		ok(is_rc(rsp, SMP_RC_EINVAL), "a float confirm is refused with EINVAL");
		smp_response_free(rsp);
	}

#define UPLOAD_ERR(name, code, ...)                                                                \
	do {                                                                                       \
		struct smp_image_upload_args _a = {__VA_ARGS__};                                   \
		rsp = call(d, REQ_ARGS(smp_image_upload_request, &_a));                            \
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, code), "%s: IMG %d", name, code);            \
		smp_response_free(rsp);                                                            \
	} while (0)

	UPLOAD_ERR("first chunk shorter than a header", 22, .off = 0, .data = img.data,
		   .data_len = 31, .len = img.len);
	memset(bad, 0, sizeof(bad));
	UPLOAD_ERR("bad magic", 23, .off = 0, .data = bad, .data_len = 64, .len = 64);
	UPLOAD_ERR("image larger than the slot", 30, .off = 0, .data = img.data, .data_len = 64,
		   .len = img.len);
	{
		/* What the typed builders refuse to send. */
		struct smp_request *r = NULL;

		smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_UPLOAD, &r);
		smp_cbor_put_map(&r->pkt, 4);
		smp_cbor_put_text(&r->pkt, "off");
		smp_cbor_put_uint(&r->pkt, 0);
		smp_cbor_put_text(&r->pkt, "len");
		smp_cbor_put_uint(&r->pkt, 1000);
		smp_cbor_put_text(&r->pkt, "data");
		smp_cbor_put_bytes(&r->pkt, img.data, 64);
		smp_cbor_put_text(&r->pkt, "sha");
		smp_cbor_put_bytes(&r->pkt, sha33, 33);
		rsp = call(d, r);
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 24), "sha of 33 bytes: IMG 24");
		smp_response_free(rsp);

		smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_UPLOAD, &r);
		smp_cbor_put_map(&r->pkt, 1);
		smp_cbor_put_text(&r->pkt, "data");
		smp_cbor_put_bytes(&r->pkt, img.data, 64);
		rsp = call(d, r);
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 20), "no off: IMG 20");
		smp_response_free(rsp);

		smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_UPLOAD, &r);
		smp_cbor_put_map(&r->pkt, 2);
		smp_cbor_put_text(&r->pkt, "off");
		smp_cbor_put_uint(&r->pkt, 0);
		smp_cbor_put_text(&r->pkt, "data");
		smp_cbor_put_bytes(&r->pkt, img.data, 64);
		rsp = call(d, r);
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 21), "first chunk without len: IMG 21");
		smp_response_free(rsp);

		smp_request_new(SMP_OP_WRITE, SMP_GROUP_IMAGE, SMP_IMAGE_UPLOAD, &r);
		smp_cbor_put_map(&r->pkt, 1);
		smp_cbor_put_text(&r->pkt, "off");
		smp_cbor_put_int(&r->pkt, -1);
		rsp = call(d, r);
		ok(is_rc(rsp, 3), "negative off does not decode: EINVAL");
		smp_response_free(rsp);
	}
	sim_device_free(d);

	sim_config_init(&cfg);
	d = dev_new(&cfg);
	{
		struct smp_image_upload_args a = {.off = 0,
						  .data = img.data,
						  .data_len = 100,
						  .len = img.len,
						  .has_upgrade = true,
						  .upgrade = true};
		struct test_image old;

		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(rsp && smp_image_upload_parse(rsp, &res) == 0 && res.off == 100,
		   "upgrade to a newer version is accepted");
		smp_response_free(rsp);
		/* A wrong offset is answered with the expected one. */
		a = (struct smp_image_upload_args){
		    .off = 5000, .data = img.data + 5000, .data_len = 10};
		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(rsp && smp_image_upload_parse(rsp, &res) == 0 && res.off == 100,
		   "an unexpected offset is answered with the expected one");
		smp_response_free(rsp);
		a = (struct smp_image_upload_args){
		    .off = 100, .data = img.data + 100, .data_len = img.len - 50};
		a.data_len = 1000;
		{
			/* Shrink the announced length of the session under way. */
			struct smp_image_upload_args first = {
			    .off = 0, .data = img.data, .data_len = 100, .len = 600};

			smp_response_free(call(d, REQ_ARGS(smp_image_upload_request, &first)));
		}
		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 31), "data beyond len: DATA_OVERRUN");
		smp_response_free(rsp);
		a = (struct smp_image_upload_args){
		    .off = 100, .data = img.data + 100, .data_len = 10};
		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(rsp && smp_image_upload_parse(rsp, &res) == 0 && res.off == 0,
		   "the error ended the session");
		smp_response_free(rsp);

		/* Resume: the same sha at offset 0 continues where it was. */
		res = upload(d, img.data, 3000, img.file_sha, 32, 3000);
		a = (struct smp_image_upload_args){.off = 0,
						   .data = img.data,
						   .data_len = 100,
						   .len = img.len,
						   .sha = img.file_sha,
						   .sha_len = 32};
		res = upload(d, img.data, img.len, img.file_sha, 32, 3000);
		(void)res;
		sim_device_free(d);

		/* Resume proper. */
		d = dev_new(&cfg);
		{
			struct smp_image_upload_args b = {.off = 0,
							  .data = img.data,
							  .data_len = 3000,
							  .len = img.len,
							  .sha = img.file_sha,
							  .sha_len = 8};

			rsp = call(d, REQ_ARGS(smp_image_upload_request, &b));
			smp_response_free(rsp);
			b.data_len = 500;
			rsp = call(d, REQ_ARGS(smp_image_upload_request, &b));
			ok(rsp && smp_image_upload_parse(rsp, &res) == 0 && res.off == 3000,
			   "the same (short) sha resumes at the device's offset");
			smp_response_free(rsp);
		}
		/* Finish with a wrong full sha: match false. */
		sim_device_free(d);
		d = dev_new(&cfg);
		{
			uint8_t wrong[32];

			memcpy(wrong, img.file_sha, 32);
			wrong[0] ^= 1;
			res = upload(d, img.data, img.len, wrong, 32, 4000);
			ok(res.off == img.len && res.has_match && !res.match,
			   "a wrong sha ends with match false");
		}

		load_image("tests/data/images/hash-only-1.2.3+4.bin", &old);
		old.data[20] = 0; /* version 0.2.3 */
		a = (struct smp_image_upload_args){.off = 0,
						   .data = old.data,
						   .data_len = 100,
						   .len = old.len,
						   .has_upgrade = true,
						   .upgrade = true};
		rsp = call(d, REQ_ARGS(smp_image_upload_request, &a));
		ok(is_group_err(rsp, SMP_GROUP_IMAGE, 27), "upgrade to an older version: IMG 27");
		smp_response_free(rsp);

		/* An image with a corrupted payload uploads, is listed (Zephyr
		 * does not check the hash) but MCUboot refuses it at boot. */
		old.data[20] = 9;
		old.data[1000] ^= 0xff;
		{
			struct smp_mcuboot_image *m = NULL;
			struct sim_boot_report rep;
			struct smp_image_state *st;

			smp_mcuboot_parse(old.data, old.len, &m);
			res = upload(d, old.data, old.len, NULL, 0, 4000);
			ok(res.off == old.len && res.has_match && !res.match,
			   "without a sha the image check answers match false");
			smp_response_free(
			    call(d, REQ_ARGS(smp_image_state_write_request, m->hash, false)));
			reboot(d, &rep);
			ok(rep.invalid_secondary && rep.swap == SIM_SWAP_NONE,
			   "MCUboot refuses an image whose hash does not match");
			st = state(d, NULL);
			is_state(st, "1.0.0 bca", "absent", "and erases it");
			smp_image_state_free(st);
			smp_mcuboot_image_free(m);
		}
		free(old.data);
	}
	sim_device_free(d);
	free(img.data);
}

/* ---- slot info, stat, enum ---- */

static void test_misc_groups(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_response *rsp;

	sim_config_init(&cfg);
	d = dev_new(&cfg);

	rsp = call(d, REQ(smp_image_slot_info_request));
	{
		struct smp_image_slot_info *si = NULL;

		ok(rsp && smp_image_slot_info_parse(rsp, &si) == 0 && si->n_images == 1 &&
		       si->images[0].n_slots == 2 && si->images[0].slots[1].size == 0x69000,
		   "slot info");
		smp_image_slot_info_free(si);
	}
	smp_response_free(rsp);

	rsp = call(d, REQ_ARGS(smp_stat_show_request, "flash_sim_stats"));
	{
		struct smp_stat_group *g = NULL;

		ok(rsp && smp_stat_show_parse(rsp, &g) == 0 && g->n_fields == 9, "flash_sim_stats");
		smp_stat_group_free(g);
	}
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_stat_show_request, "a-name-that-is-longer-than-31-chars"));
	ok(is_rc(rsp, 3), "stat name of 35 characters: EINVAL");
	smp_response_free(rsp);

	rsp = call(d, REQ_ARGS(smp_enum_single_request, 7));
	{
		struct smp_enum_single es = {0};

		ok(rsp && smp_enum_single_parse(rsp, &es) == 0 && es.group == 63 && es.end,
		   "the last group carries end");
	}
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_enum_single_request, 8));
	ok(is_group_err(rsp, SMP_GROUP_ENUM, 4), "index past the end: ENUM 4");
	smp_response_free(rsp);
	{
		static const uint16_t want[] = {1, 9, 77};
		struct smp_enum_details *ed = NULL;

		rsp = call(d, REQ_ARGS(smp_enum_details_request, want, 3));
		ok(rsp && smp_enum_details_parse(rsp, &ed) == 0 && ed->n_groups == 2 &&
		       ed->groups[0].group == 1 && ed->groups[1].group == 9,
		   "details of an allow-list, in registration order");
		smp_enum_details_free(ed);
		smp_response_free(rsp);
	}
	sim_device_free(d);
}

/* ---- settings ---- */

static void test_settings(const char *dir)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_response *rsp;
	struct smp_settings_value *v = NULL;
	static const uint8_t forty[40] = {1, 2, 3};

	sim_config_init(&cfg);
	cfg.state_dir = dir;
	d = dev_new(&cfg);

	rsp = call(d, REQ_ARGS(smp_settings_read_request, "id/name", 0));
	ok(rsp && smp_settings_read_parse(rsp, &v) == 0 && v->len == 5 &&
	       !memcmp(v->val, "sim-0", 5),
	   "id/name holds the device's name");
	v = smp_settings_value_free(v);
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_write_request, "id/name", (const uint8_t *)"x", 1));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 6), "id/ is read-only: WRITE_NOT_SUPPORTED");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_write_request, "secret/key", (const uint8_t *)"k", 1));
	ok(rsp && smp_response_ok(rsp), "secret/ accepts writes");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "secret/key", 0));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 4), "but not reads: READ_NOT_SUPPORTED");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "nope/x", 0));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 5), "unknown subtree: ROOT_KEY_NOT_FOUND");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/0123456789012345678901234567", 0));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 2), "name of 32 characters: KEY_TOO_LONG");
	smp_response_free(rsp);

	rsp = call(d, REQ_ARGS(smp_settings_write_request, "app/blob", forty, sizeof(forty)));
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/blob", 100));
	ok(rsp && smp_settings_read_parse(rsp, &v) == 0 && v->len == 32 && v->has_max_size &&
	       v->max_size == 32,
	   "max_size beyond the device's limit is capped and reported");
	v = smp_settings_value_free(v);
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/blob", 4));
	ok(rsp && smp_settings_read_parse(rsp, &v) == 0 && v->len == 4 && !v->has_max_size,
	   "a smaller max_size truncates");
	v = smp_settings_value_free(v);
	smp_response_free(rsp);

	/* Written but not saved: a power cycle loses it. */
	rsp = call(
	    d, REQ_ARGS(smp_settings_write_request, "app/cnt", (const uint8_t *)"\x2a\0\0\0", 4));
	smp_response_free(rsp);
	sim_device_free(d);
	d = dev_new(&cfg);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/cnt", 0));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 3), "unsaved value gone after a restart");
	smp_response_free(rsp);
	smp_response_free(call(
	    d, REQ_ARGS(smp_settings_write_request, "app/cnt", (const uint8_t *)"\x2b\0\0\0", 4)));
	rsp = call(d, REQ_ARGS(smp_settings_save_request, NULL));
	ok(rsp && smp_response_ok(rsp), "save");
	smp_response_free(rsp);
	sim_device_free(d);
	d = dev_new(&cfg);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/cnt", 0));
	ok(rsp && smp_settings_read_parse(rsp, &v) == 0 && v->len == 4 && v->val[0] == 0x2b,
	   "saved value survives a restart");
	v = smp_settings_value_free(v);
	smp_response_free(rsp);

	/* Delete reaches storage; RAM keeps the value until the next boot. */
	smp_response_free(call(d, REQ_ARGS(smp_settings_delete_request, "app/cnt")));
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/cnt", 0));
	ok(rsp && smp_response_ok(rsp), "deleted value still in RAM");
	smp_response_free(rsp);
	reboot(d, NULL);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "app/cnt", 0));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 3), "and gone after a reboot");
	smp_response_free(rsp);
	rsp = call(d, REQ(smp_settings_commit_request));
	ok(rsp && smp_response_ok(rsp), "commit");
	smp_response_free(rsp);
	rsp = call(d, REQ(smp_settings_load_request));
	ok(rsp && smp_response_ok(rsp), "load");
	smp_response_free(rsp);

	/* Storage erase (Zephyr basic) wipes saved settings. */
	smp_response_free(
	    call(d, REQ_ARGS(smp_settings_write_request, "peer/x", (const uint8_t *)"1", 1)));
	smp_response_free(call(d, REQ_ARGS(smp_settings_save_request, NULL)));
	rsp = call(d, REQ(smp_zephyr_erase_storage_request));
	ok(rsp && smp_response_ok(rsp), "erase storage");
	smp_response_free(rsp);
	reboot(d, NULL);
	rsp = call(d, REQ_ARGS(smp_settings_read_request, "peer/x", 0));
	ok(is_group_err(rsp, SMP_GROUP_SETTINGS, 3), "erased storage: the value is gone");
	smp_response_free(rsp);
	sim_device_free(d);
}

/* ---- file system ---- */

static void test_fs(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_response *rsp;
	uint8_t data[3000];
	uint64_t off = 0;

	sim_config_init(&cfg);
	cfg.buf_size = 512;
	d = dev_new(&cfg);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);

	/* Upload in chunks, then read back by download. */
	while (off < sizeof(data)) {
		struct smp_fs_upload_args a = {.off = off,
					       .data = data + off,
					       .data_len = MIN((size_t)400, sizeof(data) - off),
					       .name = "/lfs1/data.bin",
					       .len = sizeof(data)};

		rsp = call(d, REQ_ARGS(smp_fs_upload_request, &a));
		if (!rsp || smp_fs_upload_parse(rsp, &off) < 0) {
			smp_response_free(rsp);
			break;
		}
		smp_response_free(rsp);
	}
	is_int(off, sizeof(data), "file uploaded in chunks");
	{
		uint8_t back[sizeof(data)];
		uint64_t got = 0, len = 0;
		bool fine = true;

		while (fine && got < sizeof(back)) {
			struct smp_fs_download *dl = NULL;

			rsp = call(d, REQ_ARGS(smp_fs_download_request, "/lfs1/data.bin", got));
			fine = rsp && smp_fs_download_parse(rsp, &dl) == 0 && dl->data_len > 0 &&
			       dl->data_len <= 512 - 47 && got + dl->data_len <= sizeof(back);
			if (fine) {
				if (dl->has_len)
					len = dl->len;
				memcpy(back + got, dl->data, dl->data_len);
				got += dl->data_len;
			}
			free(dl);
			smp_response_free(rsp);
		}
		ok(fine && len == sizeof(data) && !memcmp(back, data, sizeof(data)),
		   "downloaded in chunks of buf_size - 47, identical");
	}
	rsp = call(d, REQ_ARGS(smp_fs_status_request, "/lfs1/data.bin"));
	ok(rsp && smp_fs_status_parse(rsp, &off) == 0 && off == sizeof(data), "status");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_hash_request, "/lfs1/data.bin", "crc32", 1000, 100));
	{
		struct smp_fs_hash *h = NULL;

		ok(rsp && smp_fs_hash_parse(rsp, &h) == 0 && h->off == 1000 && h->len == 100 &&
		       h->output_uint == sim_crc32(0, data + 1000, 100),
		   "crc32 of a range");
		smp_fs_hash_free(h);
	}
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_hash_request, "/lfs1/data.bin", "md5", 0, 0));
	ok(is_group_err(rsp, SMP_GROUP_FS, 13), "unknown hash type: FS 13");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_hash_request, "/lfs1/data.bin", "sha256", 5000, 0));
	ok(is_group_err(rsp, SMP_GROUP_FS, 12), "offset beyond the file: FS 12");
	smp_response_free(rsp);
	{
		struct smp_fs_upload_args a = {
		    .off = 0, .data = NULL, .data_len = 0, .name = "/lfs1/empty", .len = 0};

		smp_response_free(call(d, REQ_ARGS(smp_fs_upload_request, &a)));
		rsp = call(d, REQ_ARGS(smp_fs_hash_request, "/lfs1/empty", NULL, 0, 0));
		ok(is_group_err(rsp, SMP_GROUP_FS, 16), "hash of an empty file: FS 16");
		smp_response_free(rsp);
	}
	rsp = call(d, REQ_ARGS(smp_fs_status_request, "/lfs1/logs"));
	ok(is_group_err(rsp, SMP_GROUP_FS, 4), "status of a directory: FS 4");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_download_request, "/lfs1/logs/boot.log", 0));
	{
		struct smp_fs_download *dl = NULL;

		ok(rsp && smp_fs_download_parse(rsp, &dl) == 0 && dl->data_len > 10 &&
		       !memcmp(dl->data, "boot 1 version 1.0.0", 20),
		   "the application logs its boots");
		free(dl);
	}
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_status_request, "/lfs1/../../etc/passwd"));
	ok(is_group_err(rsp, SMP_GROUP_FS, 2), "\"..\" is an invalid name");
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_status_request, "/etc/passwd"));
	ok(is_group_err(rsp, SMP_GROUP_FS, 3), "outside the mount point: not found");
	smp_response_free(rsp);
	{
		struct smp_fs_upload_args a = {
		    .off = 0, .data = data, .data_len = 10, .name = "/other/x", .len = 10};

		rsp = call(d, REQ_ARGS(smp_fs_upload_request, &a));
		ok(is_group_err(rsp, SMP_GROUP_FS, 14),
		   "upload outside the mount: MOUNT_POINT_NOT_FOUND");
		smp_response_free(rsp);
		a = (struct smp_fs_upload_args){
		    .off = 0, .data = data, .data_len = 10, .name = "/lfs1/part", .len = 100};
		smp_response_free(call(d, REQ_ARGS(smp_fs_upload_request, &a)));
		a = (struct smp_fs_upload_args){
		    .off = 50, .data = data, .data_len = 10, .name = "/lfs1/part"};
		rsp = call(d, REQ_ARGS(smp_fs_upload_request, &a));
		ok(is_group_err(rsp, SMP_GROUP_FS, 11) && smp_fs_upload_error_len(rsp, &off) == 0 &&
		       off == 10,
		   "wrong upload offset: FS 11 with the size on the device");
		smp_response_free(rsp);
	}
	rsp = call(d, REQ(smp_fs_close_request));
	ok(rsp && smp_response_ok(rsp), "close");
	smp_response_free(rsp);
	rsp = call(d, REQ(smp_zephyr_erase_storage_request));
	smp_response_free(rsp);
	rsp = call(d, REQ_ARGS(smp_fs_status_request, "/lfs1/data.bin"));
	ok(is_group_err(rsp, SMP_GROUP_FS, 3), "erase storage removes the files");
	smp_response_free(rsp);
	sim_device_free(d);
}

/* ---- shell ---- */

static void test_shell(void)
{
	struct sim_config cfg;
	struct sim_device *d;
	struct smp_response *rsp;
	struct smp_shell_result *sr = NULL;
	struct sim_result eff;

	sim_config_init(&cfg);
	d = dev_new(&cfg);
	{
		const char *argv[] = {"echo", "hello", "world"};

		rsp = call(d, REQ_ARGS(smp_shell_exec_request, argv, 3));
		ok(rsp && smp_shell_exec_parse(rsp, &sr) == 0 && sr->ret == 0 &&
		       !strcmp(sr->output, "\r\nhello world\r\n"),
		   "echo");
		sr = smp_shell_result_free(sr);
		smp_response_free(rsp);
	}
	{
		const char *argv[] = {"kernel", "version"};

		rsp = call(d, REQ_ARGS(smp_shell_exec_request, argv, 2));
		ok(rsp && smp_shell_exec_parse(rsp, &sr) == 0 &&
		       !strcmp(sr->output, "\r\nZephyr version 4.1.0\r\n"),
		   "kernel version");
		sr = smp_shell_result_free(sr);
		smp_response_free(rsp);
	}
	{
		const char *argv[] = {"kernel"};

		rsp = call(d, REQ_ARGS(smp_shell_exec_request, argv, 1));
		ok(rsp && smp_shell_exec_parse(rsp, &sr) == 0 && sr->ret == 1 &&
		       strstr(sr->output, "uptime"),
		   "a command group alone prints its help, ret 1");
		sr = smp_shell_result_free(sr);
		smp_response_free(rsp);
	}
	{
		const char *argv[] = {"mcuboot", "confirm"};

		rsp = call(d, REQ_ARGS(smp_shell_exec_request, argv, 2));
		ok(rsp && smp_shell_exec_parse(rsp, &sr) == 0 && sr->ret == 0, "mcuboot confirm");
		sr = smp_shell_result_free(sr);
		smp_response_free(rsp);
	}
	{
		char big[300];
		const char *argv[] = {big};

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		rsp = call(d, REQ_ARGS(smp_shell_exec_request, argv, 1));
		ok(is_group_err(rsp, SMP_GROUP_SHELL, 2), "line longer than the buffer: SHELL 2");
		smp_response_free(rsp);
		struct smp_request *r = NULL;

		smp_request_new(SMP_OP_WRITE, SMP_GROUP_SHELL, SMP_SHELL_EXEC, &r);
		smp_cbor_put_map(&r->pkt, 1);
		smp_cbor_put_text(&r->pkt, "argv");
		smp_cbor_put_array(&r->pkt, 0);
		rsp = call(d, r);
		ok(is_group_err(rsp, SMP_GROUP_SHELL, 3), "empty argv: SHELL 3");
		smp_response_free(rsp);
	}
	{
		const char *argv[] = {"kernel", "reboot"};

		rsp = call_v(d, REQ_ARGS(smp_shell_exec_request, argv, 2), SMP_VERSION_2, &eff);
		ok(!rsp && eff.power_loss, "kernel reboot: no answer, the device restarts");
		smp_response_free(rsp);
	}
	{
		/* {"argv": "text"} is not an array. */
		size_t n;
		uint8_t *p = tap_unhex("0a00000800090000 a164617267766161", &n);
		struct sim_result r = process(d, p, n);

		ok(r.n_pkts == 1 && !memcmp(r.pkts[0].data + 8, "\xbf\x62rc\x03\xff", 6),
		   "argv not an array: EINVAL");
		sim_result_clear(&r);
		free(p);
	}
	sim_device_free(d);
}

int main(void)
{
	char tmpl[] = "/tmp/test-sim-device-XXXXXX";

	scratch = mkdtemp(tmpl);
	if (!scratch)
		return 1;
	test_recording("tests/data/zephyr-4.1/udp-v2.json", SMP_VERSION_2);
	test_recording("tests/data/zephyr-4.1/udp-v1.json", SMP_VERSION_1);
	test_header_rules();
	test_os();
	{
		char *dir = sim_strdup_printf("%s/state-dfu", scratch);

		test_image_dfu(dir);
		free(dir);
		dir = sim_strdup_printf("%s/state-settings", scratch);
		test_settings(dir);
		free(dir);
	}
	test_image_faults();
	test_image_errors();
	test_misc_groups();
	test_fs();
	test_shell();
	sim_rm_rf(scratch);
	return tap_done();
}
