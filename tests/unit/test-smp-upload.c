/* test-smp-upload: image and file transfers against a device model, with loss and reordering */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"
#include "smp-client.h"
#include "smp-mcuboot.h"
#include "smp-serial-link.h"
#include "smp-serial.h"
#include "smp-udp.h"
#include "smp-os.h"
#include "smp-upload.h"
#include "tests/tap.h"
#include "tests/unit/client-test.h"

static sd_event *E;

enum fate {
	PASS,
	DROP_REQUEST, /* lost on the way to the device */
	DROP_ANSWER,  /* processed, answer lost */
	HOLD,	      /* overtaken by the next request */
};

/* One device on a scripted link, answering through the model. */
struct rig {
	struct test_model m;
	struct test_dev *d;
	struct test_link *l;
	struct smp_client *c;
	const enum fate *fates; /* by upload/FS request index */
	size_t n_fates;
	unsigned n_chunks;
	uint8_t *held;
	size_t held_len;
	unsigned max_in_flight;
	bool link_freed;
};

static void rig_process(struct rig *g, const uint8_t *pkt, size_t len, bool answer)
{
	struct smp_buf out = SMP_BUF_INIT;

	if (test_model_handle(&g->m, pkt, len, &out) && answer)
		test_dev_send(g->d, out.data, out.len);
	smp_buf_clear(&out);
}

static void rig_auto(struct test_dev *d, const uint8_t *pkt, size_t len, void *userdata)
{
	struct rig *g = userdata;
	enum fate f = PASS;

	g->max_in_flight = MAX(g->max_in_flight, smp_client_get_in_flight(g->c));
	if (len >= SMP_HEADER_SIZE &&
	    ((pkt[5] == SMP_GROUP_IMAGE && pkt[7] == SMP_IMAGE_UPLOAD) || pkt[5] == SMP_GROUP_FS)) {
		unsigned i = g->n_chunks++;

		f = i < g->n_fates ? g->fates[i] : PASS;
	}
	if (f == DROP_REQUEST)
		return;
	if (f == HOLD && !g->held) {
		g->held = malloc(len);
		memcpy(g->held, pkt, len);
		g->held_len = len;
		return;
	}
	rig_process(g, pkt, len, f != DROP_ANSWER);
	if (g->held && f != HOLD) {
		rig_process(g, g->held, g->held_len, true);
		free(g->held);
		g->held = NULL;
	}
}

static void rig_init(struct rig *g, enum smp_link link, size_t buf_size, unsigned buf_count,
		     const struct smp_client_config *cfg)
{
	*g = (struct rig){ 0 };
	g->m.buf_size = buf_size;
	g->m.buf_count = buf_count;
	g->m.slot_cap = 256 * 1024;
	g->m.slot = calloc(1, g->m.slot_cap);
	g->m.file_cap = 256 * 1024;
	g->m.file = calloc(1, g->m.file_cap);
	test_link_pair(E, link, &g->l, &g->d);
	g->l->freed = &g->link_freed;
	if (link == SMP_LINK_SERIAL && buf_size)
		g->l->budget = buf_size - 4;
	g->d->auto_fn = rig_auto;
	g->d->auto_userdata = g;
	if (smp_client_new(E, &g->l->t, cfg, &g->c) < 0)
		abort();
}

static void rig_done(struct rig *g)
{
	smp_client_unref(g->c);
	test_run_idle(E);
	test_dev_free(g->d);
	free(g->m.slot);
	free(g->m.file);
	free(g->held);
}

/* What an operation reported. */
struct op {
	bool done;
	unsigned n_done, n_destroy, n_progress;
	int error;
	struct smp_upload_result res;
	uint64_t last_progress;
	bool progress_monotonic;
	uint64_t total;
	/* scripts */
	struct smp_client *cancel_client;
	uint64_t cancel_id;
	uint64_t cancel_at;
	uint8_t *dl;
	size_t dl_len;
};

static void op_init(struct op *o)
{
	*o = (struct op){ .progress_monotonic = true };
}

static void on_progress(uint64_t off, uint64_t total, void *userdata)
{
	struct op *o = userdata;

	o->n_progress++;
	if (off <= o->last_progress && o->n_progress > 1)
		o->progress_monotonic = false;
	o->last_progress = off;
	o->total = total;
	if (o->cancel_client && off >= o->cancel_at) {
		struct smp_client *c = o->cancel_client;

		o->cancel_client = NULL;
		(void)smp_upload_cancel(c, o->cancel_id);
	}
}

static void on_done(int error, const struct smp_upload_result *res, void *userdata)
{
	struct op *o = userdata;

	o->done = true;
	o->n_done++;
	o->error = error;
	o->res = *res;
}

static void on_destroy(void *userdata)
{
	struct op *o = userdata;

	o->n_destroy++;
}

static int on_data(uint64_t off, const uint8_t *data, size_t len, uint64_t total, void *userdata)
{
	struct op *o = userdata;

	if (off != o->dl_len)
		return -EILSEQ;
	o->dl = realloc(o->dl, o->dl_len + len);
	memcpy(o->dl + o->dl_len, data, len);
	o->dl_len += len;
	return 0;
}

struct image {
	uint8_t *data;
	size_t size;
	uint8_t sha[32];
	uint8_t hash[32];
};

static void image_load(struct image *img, const char *name)
{
	struct smp_mcuboot_image *p;

	img->data = tap_read_file(tap_srcpath(name), &img->size);
	if (smp_mcuboot_parse(img->data, img->size, &p) < 0)
		abort();
	memcpy(img->sha, p->file_sha256, 32);
	memcpy(img->hash, p->hash, 32);
	smp_mcuboot_image_free(p);
}

static struct smp_upload_source image_source(const struct image *img)
{
	struct smp_upload_source src = { .data = img->data, .fd = -1, .size = img->size };

	memcpy(src.sha, img->sha, 32);
	src.has_sha = true;
	memcpy(src.image_hash, img->hash, 32);
	src.has_image_hash = true;
	return src;
}

static int upload(struct rig *g, const struct smp_upload_source *src,
		  const struct smp_upload_options *opts, struct op *o)
{
	uint64_t id;
	int r;

	op_init(o);
	r = smp_image_upload(g->c, src, opts, on_progress, on_done, o, on_destroy, &id);
	if (r < 0)
		return r;
	o->cancel_id = id;
	test_run_until(E, &o->done, 20000);
	test_run_idle(E);
	return 0;
}

/* smp-protocol.md V13..V16: the 136-byte image of §15.3, byte for byte. */
static void test_vectors(void)
{
	static const char tiny[] =
		"3db8f396 00000000 20000000 40000000 00000000 01010000 00000000 00000000"
		"000102030405060708090a0b0c0d0e0f 000102030405060708090a0b0c0d0e0f"
		"000102030405060708090a0b0c0d0e0f 000102030405060708090a0b0c0d0e0f"
		"07692800 10002000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0";
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src = { .fd = -1 };
	struct test_packet p;
	struct test_link *l;
	struct test_dev *d;
	struct smp_client *c;
	struct op o;
	size_t n;
	uint8_t *img = tap_unhex(tiny, &n), *want;

	is_int(n, 136, "the image of §15.3");
	smp_client_config_init(&cfg);
	cfg.first_seq = 0x11;
	test_link_pair(E, SMP_LINK_SERIAL, &l, &d);
	l->budget = 8 + 0x89; /* exactly V13: 64 data bytes in the first chunk */
	if (smp_client_new(E, &l->t, &cfg, &c) < 0)
		abort();
	smp_client_set_params(c, 384, 1);
	smp_upload_options_init(&opts);
	opts.check_state = false;
	src.data = img;
	src.size = n; /* sha computed from the data */
	op_init(&o);
	is_int(smp_image_upload(c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL), 0,
	       "upload started");
	ok(!o.done && o.n_destroy == 0, "nothing called synchronously");
	want = tap_unhex("0a000089 00011101 "
			 "a665696d61676500636c656e1888636f666600637368615820a678ce1ed77e95"
			 "80a875bc1f228c15d8438965e671921c6b31d494f69057c7ce64646174615840"
			 "3db8f39600000000200000004000000000000000010100000000000000000000"
			 "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
			 "6775706772616465f4",
			 &n);
	if (test_dev_next(E, d, 2000, &p)) {
		is_mem(p.data, p.len, want, n, "first chunk is V13 (sha computed by nettle)");
		free(p.data);
	}
	free(want);
	test_dev_send_hex(d, "0b000008 00011101 bf636f66661840ff");
	want = tap_unhex("0a000056 00011201 "
			 "a2636f6666184064646174615848000102030405060708090a0b0c0d0e0f0001"
			 "02030405060708090a0b0c0d0e0f0769280010002000c39a0f220a6d7ff5e659"
			 "124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
			 &n);
	if (test_dev_next(E, d, 2000, &p)) {
		is_mem(p.data, p.len, want, n, "second chunk is V15: next offset from the answer");
		free(p.data);
	}
	free(want);
	test_dev_send_hex(d, "0b00000f 00011201 bf636f66661888656d61746368f5ff");
	test_run_until(E, &o.done, 2000);
	ok(o.done && o.error == 0, "upload done");
	ok(o.res.verified && !o.res.skipped, "match true: verified");
	is_int(o.res.offset, 136, "offset 136");
	is_int(o.n_progress, 2, "progress at 64 and 136");
	ok(o.last_progress == 136 && o.total == 136 && o.progress_monotonic, "progress values");
	is_int(o.n_destroy, 1, "destroy once, after done");
	smp_client_unref(c);
	test_dev_free(d);
	free(img);
}

static void test_full_image(const char *name, enum smp_link link, size_t buf_size,
			    unsigned buf_count)
{
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct image img;
	struct rig g;
	struct op o;

	image_load(&img, name);
	rig_init(&g, link, buf_size, buf_count, NULL);
	g.m.image_check = true;
	src = image_source(&img);
	smp_upload_options_init(&opts);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0, "%s over %zu-byte buffers x%u: done", name, buf_size, buf_count);
	ok(o.res.verified, "verified by the device");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	is_int(o.res.offset, img.size, "offset = size");
	is_int(o.res.bytes_sent, img.size, "every byte sent once");
	is_int(g.m.n_first, 1, "one first chunk");
	ok(o.progress_monotonic && o.last_progress == img.size, "progress grows to the size");
	is_int(g.m.n_state, 1, "image state read first");
	ok(g.max_in_flight <= smp_client_get_window(g.c),
	   "never more than the window in flight (%u <= %u)", g.max_in_flight,
	   smp_client_get_window(g.c));
	ok(g.l->t.link != SMP_LINK_SERIAL ||
		   o.res.chunks <= 1 + (img.size + (buf_size - 4 - 26) - 1) / (buf_size - 4 - 26),
	   "chunks fill the budget (%u chunks)", o.res.chunks);
	rig_done(&g);
	free(img.data);
}

static void test_pipelined_window(void)
{
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct image img;
	struct rig g;
	struct op o;

	image_load(&img, "tests/data/images/ecdsa-p256-2.0.0.bin");
	rig_init(&g, SMP_LINK_BLE, 2048, 8, NULL);
	src = image_source(&img);
	smp_upload_options_init(&opts);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0, "window 7: done");
	is_int(g.max_in_flight, 7, "seven chunks in flight: buf_count 8 less the answer's buffer");
	ok(!o.res.verified, "no image check on the device: match absent, not verified");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);
	free(img.data);
}

/* UDP: lost requests, lost answers and reordering through the offset rules. */
static void test_udp_loss(void)
{
	static const enum fate fates[] = {
		[3] = DROP_REQUEST, [8] = DROP_ANSWER, [12] = HOLD, [20] = DROP_REQUEST,
		[21] = DROP_REQUEST, [30] = HOLD, [40] = DROP_ANSWER, [41] = DROP_REQUEST,
	};
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct smp_client_stats st;
	struct image img;
	struct rig g;
	struct op o;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 60;
	rig_init(&g, SMP_LINK_UDP, 1024, 4, &cfg);
	g.m.image_check = true;
	g.fates = fates;
	g.n_fates = ELEMENTSOF(fates);
	src = image_source(&img);
	smp_upload_options_init(&opts);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0, "UDP with loss and reordering: done (%d)", o.error);
	ok(o.res.verified, "verified");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	ok(o.res.resends > 0, "went back %u times", o.res.resends);
	ok(o.res.bytes_sent < img.size + img.size / 4,
	   "resent only what was lost (%llu of %zu bytes)", (unsigned long long)o.res.bytes_sent,
	   img.size);
	ok(o.progress_monotonic, "progress never goes back");
	ok(g.max_in_flight <= 3, "window respected (%u)", g.max_in_flight);
	rig_done(&g);

	/* Window 1 (buf_count 2): a lost chunk or answer is retransmitted by the client. */
	rig_init(&g, SMP_LINK_UDP, 1024, 2, &cfg);
	g.m.image_check = true;
	g.fates = fates;
	g.n_fates = ELEMENTSOF(fates);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified, "UDP window 1 with loss: done (%d)", o.error);
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	smp_client_get_stats(g.c, &st);
	ok(st.retransmits >= 6, "the client retransmitted the lost ones (%llu)",
	   (unsigned long long)st.retransmits);
	rig_done(&g);
	free(img.data);
}

static void test_resume_and_restart(void)
{
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct image img;
	struct rig g;
	struct op o;
	uint64_t data_before;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	smp_upload_options_init(&opts);
	opts.check_state = false;

	/* The device still has a session for this sha at 40000. */
	rig_init(&g, SMP_LINK_SERIAL, 2048, 4, NULL);
	memcpy(g.m.slot, img.data, 40000);
	g.m.session = true;
	g.m.off = 40000;
	g.m.len = img.size;
	memcpy(g.m.sha, img.sha, 32);
	g.m.sha_len = 32;
	g.m.image_check = true;
	src = image_source(&img);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified, "resumed upload done and verified");
	is_int(o.res.resumed_at, 40000, "device resumed at 40000");
	is_int(g.m.data_bytes, img.size - 40000, "only the rest was written");
	ok(o.res.bytes_sent < img.size - 40000 + 3 * 2048,
	   "only the rest was sent (+ the first chunk and the two sent behind it)");
	is_int(o.res.restarts, 0, "no restart");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);

	/* The device loses the session half-way (reset, its answer lost): after the
	 * timeout, off 0 → full first chunk again. */
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 50;
	rig_init(&g, SMP_LINK_SERIAL, 2048, 4, &cfg);
	g.m.image_check = true;
	g.m.lose_session_at = 30000;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified, "restarted upload done and verified (%d)",
	   o.error);
	is_int(o.res.restarts, 1, "one restart");
	is_int(g.m.n_first, 2, "the first chunk (with len and sha) was sent again");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	data_before = g.m.data_bytes;
	ok(data_before > img.size, "the device took the data twice over the restart");
	rig_done(&g);
	free(img.data);
}

/* Chunks go out behind the first one, before its answer (smp_xfer_fill()). */
static void test_first_chunk_pipelined(void)
{
	static const enum fate overtaken[] = { [0] = HOLD };
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct smp_client_stats st;
	struct test_packet p[3], extra;
	struct smp_buf answers[3] = { SMP_BUF_INIT, SMP_BUF_INIT, SMP_BUF_INIT };
	struct image img;
	struct rig g;
	struct op o;
	uint64_t after[3] = { 0 };
	bool got = true;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	src = image_source(&img);
	smp_upload_options_init(&opts);
	opts.check_state = false;
	opts.first_timeout_ms = 5000;
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 50;

	/* A fresh session, window 3: the device is scripted by hand first. */
	rig_init(&g, SMP_LINK_SERIAL, 2048, 4, &cfg);
	g.m.image_check = true;
	g.d->auto_fn = NULL;
	smp_client_set_params(g.c, 2048, 4);
	op_init(&o);
	is_int(smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL), 0,
	       "pipelined first chunk: upload started");
	for (unsigned i = 0; i < 3; i++)
		got = got && test_dev_next(E, g.d, 2000, &p[i]);
	ok(got, "three chunks out before any answer");
	ok(!test_dev_next(E, g.d, 300, &extra), "no fourth: the window is full");
	smp_client_get_stats(g.c, &st);
	is_int(st.timeouts, 0, "300 ms unanswered, 50 ms default timeout: the chunks behind the "
			       "first one wait with its timeout");
	for (unsigned i = 0; got && i < 3; i++) {
		if (!test_model_handle(&g.m, p[i].data, p[i].len, &answers[i]))
			got = false;
		after[i] = g.m.off;
		free(p[i].data);
	}
	ok(got && g.m.n_first == 1 && after[0] > 0 && after[1] > after[0] && after[2] > after[1],
	   "the device took all three at the offsets it expected (%llu, %llu, %llu)",
	   (unsigned long long)after[0], (unsigned long long)after[1],
	   (unsigned long long)after[2]);
	is_int(g.m.data_bytes, after[2], "and wrote them");
	g.d->auto_fn = rig_auto;
	for (unsigned i = 0; got && i < 3; i++)
		test_dev_send(g.d, answers[i].data, answers[i].len);
	test_run_until(E, &o.done, 10000);
	test_run_idle(E);
	ok(o.done && o.error == 0 && o.res.verified, "done and verified (%d)", o.error);
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	is_int(o.res.bytes_sent, img.size, "every byte sent once");
	ok(o.res.resends == 0 && o.res.restarts == 0 && o.res.resumed_at == 0,
	   "no resend, restart or resume");
	rig_done(&g);
	for (unsigned i = 0; i < 3; i++)
		smp_buf_clear(&answers[i]);

	/* A session of this sha at exactly the third chunk's offset: the device
	 * answers the first chunk with it, drops the second, writes the third. */
	rig_init(&g, SMP_LINK_SERIAL, 2048, 4, &cfg);
	smp_client_set_params(g.c, 2048, 4);
	memcpy(g.m.slot, img.data, after[1]);
	g.m.session = true;
	g.m.off = after[1];
	g.m.len = img.size;
	memcpy(g.m.sha, img.sha, 32);
	g.m.sha_len = 32;
	g.m.image_check = true;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified,
	   "resumed where a chunk sent behind the first starts: done and verified (%d)", o.error);
	is_int(o.res.resumed_at, after[1], "resumed at that offset");
	is_int(g.m.data_bytes, img.size - after[1], "nothing written twice");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	is_int(o.res.restarts, 0, "no restart");
	rig_done(&g);

	/* The second chunk overtakes the first (UDP): the device has no session
	 * for it and answers off 0 before the first chunk's answer. That is no
	 * restart; the third, dropped by the device, is sent again. */
	rig_init(&g, SMP_LINK_UDP, 2048, 4, &cfg);
	smp_client_set_params(g.c, 2048, 4);
	g.m.image_check = true;
	g.fates = overtaken;
	g.n_fates = ELEMENTSOF(overtaken);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified,
	   "first chunk overtaken: done and verified (%d)", o.error);
	is_int(g.m.n_first, 1, "the first chunk was sent once: an early off 0 is no restart");
	is_int(o.res.restarts, 0, "no restart");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);

	/* The first chunk is refused: the upload ends, nothing is written. */
	rig_init(&g, SMP_LINK_BLE, 2048, 8, NULL);
	g.m.refuse_rc = 9;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == -EREMOTEIO && o.res.status.rc == 9,
	   "refused with chunks behind it: -EREMOTEIO, rc 9 (%d)", o.error);
	ok(g.m.n_uploads >= 2 && g.m.n_uploads <= 7, "no more than the window was sent (%u)",
	   g.m.n_uploads);
	is_int(g.m.data_bytes, 0, "nothing written");
	ok(o.n_done == 1 && o.n_destroy == 1, "done and destroy once");
	rig_done(&g);

	/* Busy on the first chunk: the ones behind it find no session; all are
	 * sent again after the backoff. */
	opts.busy_backoff_ms = 5;
	rig_init(&g, SMP_LINK_SERIAL, 2048, 4, &cfg);
	smp_client_set_params(g.c, 2048, 4);
	g.m.image_check = true;
	g.m.busy = 1;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified, "EBUSY with chunks behind it: done (%d)",
	   o.error);
	is_int(g.m.n_first, 1, "the device started one session");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);
	free(img.data);
}

static void test_match_and_skip(void)
{
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct image img;
	struct rig g;
	struct op o;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	src = image_source(&img);
	smp_upload_options_init(&opts);

	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.image_check = true;
	g.m.corrupt = true;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == -EILSEQ, "match false: -EILSEQ");
	ok(!o.res.verified, "not verified");
	rig_done(&g);

	/* Already in a slot per image state: nothing uploaded. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.state_has = true;
	memcpy(g.m.state_hash, img.hash, 32);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.skipped, "image state holds the hash: skipped");
	is_int(g.m.n_uploads, 0, "no upload request sent");
	is_int(o.res.offset, img.size, "reported complete");
	rig_done(&g);

	/* Another image's hash in the slot: uploaded. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.state_has = true;
	memset(g.m.state_hash, 0x5a, 32);
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && !o.res.skipped, "a different hash: uploaded");
	ok(g.m.n_uploads > 1, "upload requests sent");
	rig_done(&g);

	/* The device's image check finds the same bytes in the slot: first answer is the end. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.image_check = true;
	memcpy(g.m.slot, img.data, img.size);
	g.m.slot_valid = true;
	g.m.len = img.size;
	memcpy(g.m.sha, img.sha, 32);
	g.m.sha_len = 32;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.skipped && o.res.verified,
	   "first chunk answered {off: len, match: true}: skipped and verified");
	is_int(g.m.n_uploads, 1, "a single request");
	is_int(g.m.data_bytes, 0, "nothing written");
	rig_done(&g);
	free(img.data);
}

static void test_errors(void)
{
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct image img;
	struct rig g;
	struct op o;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	src = image_source(&img);
	smp_upload_options_init(&opts);
	opts.check_state = false;
	opts.busy_backoff_ms = 5;

	/* Busy twice, then fine. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.busy = 2;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0, "EBUSY twice: retried after a backoff, done");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);

	/* Busy for ever: gives up with -EBUSY. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.busy = 1000;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == -EBUSY, "EBUSY for ever: -EBUSY");
	is_int(g.m.n_uploads, opts.max_retries + 1, "after max_retries + 1 attempts");
	rig_done(&g);

	/* A refusal is the device's answer. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.refuse_rc = 9;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == -EREMOTEIO, "NO_FREE_SLOT: -EREMOTEIO (%d)", o.error);
	ok(o.res.status.kind == SMP_STATUS_GROUP_ERR && o.res.status.group == 1 &&
		   o.res.status.rc == 9,
	   "status carries {group 1, rc 9}");
	rig_done(&g);

	/* Too small for the first chunk. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.l->budget = 90;
	upload(&g, &src, &opts, &o);
	is_int(o.error, -EMSGSIZE, "budget below a 32-byte first chunk: -EMSGSIZE");
	rig_done(&g);

	/* Serial device that silently drops packets above 600 bytes: the chunk shrinks. */
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 40;
	rig_init(&g, SMP_LINK_SERIAL, 2048, 2, &cfg);
	g.m.drop_larger = 600;
	opts.max_retries = 8;
	opts.first_timeout_ms = 40;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0, "timeouts halve the chunk until it fits (%d)", o.error);
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);

	/* Link lost mid-way. */
	opts.max_retries = 5;
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	g.m.lose_session_at = 20000; /* stands for the answer lost with the link */
	op_init(&o);
	smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	{
		unsigned want = 1;

		while (o.last_progress < 10000 && test_run_until_count(E, &o.n_progress, want, 2000))
			want = o.n_progress + 1;
	}
	test_dev_close(g.d);
	test_run_until(E, &o.done, 2000);
	ok(o.done && o.error == -ECONNRESET, "link loss: -ECONNRESET");
	ok(o.res.offset >= 10000, "result tells how far it got (%llu)",
	   (unsigned long long)o.res.offset);
	is_int(o.n_destroy, 1, "destroy once");
	rig_done(&g);

	/* Bad arguments. */
	rig_init(&g, SMP_LINK_BLE, 2048, 2, NULL);
	src.size = 0;
	op_init(&o);
	is_int(smp_image_upload(g.c, &src, &opts, NULL, on_done, &o, on_destroy, NULL), -EINVAL,
	       "empty image: -EINVAL");
	is_int(o.n_destroy, 0, "no destroy on failure");
	is_int(smp_file_upload(g.c, "", &src, &opts, NULL, on_done, &o, on_destroy, NULL),
	       -EINVAL, "empty file name: -EINVAL");
	rig_done(&g);
	free(img.data);
}

static void test_cancel(void)
{
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct image img;
	struct rig g;
	struct op o;
	uint64_t id;
	struct smp_client *c;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	src = image_source(&img);
	smp_upload_options_init(&opts);

	/* Cancel from the progress callback. */
	rig_init(&g, SMP_LINK_BLE, 2048, 8, NULL);
	op_init(&o);
	smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o, on_destroy, &id);
	o.cancel_id = id;
	o.cancel_client = g.c;
	o.cancel_at = 20000;
	test_run_until_count(E, &o.n_destroy, 1, 5000);
	test_run_idle(E);
	ok(o.n_destroy == 1 && o.n_done == 0, "cancelled in progress: destroy once, done never");
	is_int(smp_upload_cancel(g.c, id), -ENOENT, "cancel again: -ENOENT");
	ok(g.m.off < img.size, "the device did not get everything");
	is_int(smp_client_get_in_flight(g.c), 0, "cancelled chunks leave once answered");
	rig_done(&g);

	/* Cancel before anything happened. */
	rig_init(&g, SMP_LINK_BLE, 2048, 8, NULL);
	op_init(&o);
	smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o, on_destroy, &id);
	is_int(smp_upload_cancel(g.c, id), 0, "cancel at once");
	is_int(o.n_destroy, 1, "destroy runs at cancel");
	test_run_idle(E);
	ok(o.n_done == 0 && g.m.n_uploads == 0, "nothing sent, done never called");
	rig_done(&g);

	/* The owner drops the client during the upload: the operation keeps it. */
	rig_init(&g, SMP_LINK_BLE, 2048, 8, NULL);
	op_init(&o);
	smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	c = g.c;
	smp_client_unref(c); /* g.c stays as a borrowed pointer for rig_auto */
	test_run_until(E, &o.done, 10000);
	g.c = NULL;
	ok(o.done && o.error == 0, "upload finished without the owner's reference");
	test_run_idle(E);
	ok(g.link_freed, "the client went with the operation");
	rig_done(&g);
	free(img.data);
}

static void test_fd_source(void)
{
	struct smp_upload_options opts;
	struct smp_upload_source src = { .fd = -1 };
	struct image img;
	struct rig g;
	struct op o;
	char path[] = "/tmp/test-smp-upload-XXXXXX";
	int fd = mkstemp(path);

	image_load(&img, "tests/data/images/ecdsa-p256-2.0.0.bin");
	if (fd < 0 || write(fd, img.data, img.size) != (ssize_t)img.size)
		abort();
	unlink(path);
	src.fd = fd; /* size from fstat, sha computed from the file */
	smp_upload_options_init(&opts);
	rig_init(&g, SMP_LINK_SERIAL, 1024, 4, NULL);
	g.m.image_check = true;
	upload(&g, &src, &opts, &o);
	ok(o.done && o.error == 0 && o.res.verified, "upload from an fd, sha computed: verified");
	is_mem(g.m.sha, 32, img.sha, 32, "computed sha = file SHA-256");
	is_mem(g.m.slot, g.m.len, img.data, img.size, "slot holds the file");
	rig_done(&g);
	close(fd);
	free(img.data);
}

/* An interactive call during an upload is not stuck behind it. */
struct echo_call {
	bool done;
	int error;
	uint64_t upload_off_at_answer;
	struct op *o;
};

static void on_echo(struct smp_client *c, int error, const struct smp_response *rsp,
		    void *userdata)
{
	struct echo_call *k = userdata;

	k->done = true;
	k->error = error;
	k->upload_off_at_answer = k->o->last_progress;
}

static void test_interactive_during_upload(void)
{
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct echo_call k = { 0 };
	struct smp_request *req;
	struct image img;
	struct rig g;
	struct op o;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	src = image_source(&img);
	smp_upload_options_init(&opts);
	opts.check_state = false;
	rig_init(&g, SMP_LINK_SERIAL, 512, 4, NULL);
	op_init(&o);
	k.o = &o;
	smp_image_upload(g.c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	test_run_until_count(E, &o.n_progress, 10, 5000);
	smp_os_echo_request("ping", &req);
	smp_client_send(g.c, req, SMP_PRIO_INTERACTIVE, 0, on_echo, &k, NULL, NULL);
	test_run_until(E, &k.done, 5000);
	ok(k.done && k.error == 0, "echo answered during the upload");
	ok(k.upload_off_at_answer < img.size / 2, "long before the upload ended (%llu of %zu)",
	   (unsigned long long)k.upload_off_at_answer, img.size);
	test_run_until(E, &o.done, 10000);
	ok(o.done && o.error == 0, "upload done");
	rig_done(&g);
	free(img.data);
}

static void test_file_upload(void)
{
	static const enum fate fates[] = { [5] = DROP_REQUEST, [11] = DROP_ANSWER, [17] = HOLD };
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src = { .fd = -1 };
	uint8_t *file = malloc(50000);
	struct rig g;
	struct op o;

	for (size_t i = 0; i < 50000; i++)
		file[i] = (uint8_t)(i * 7 + (i >> 8));
	src.data = file;
	src.size = 50000;
	smp_upload_options_init(&opts);

	rig_init(&g, SMP_LINK_SERIAL, 512, 8, NULL);
	op_init(&o);
	smp_file_upload(g.c, "/lfs/blob", &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	test_run_until(E, &o.done, 10000);
	ok(o.done && o.error == 0, "file upload done");
	is_mem(g.m.file, g.m.file_len, file, 50000, "device file = source");
	is_int(o.res.bytes_sent, 50000, "every byte once");
	rig_done(&g);

	/* UDP loss: the device refuses a wrong offset with its file size, upload continues there. */
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 60;
	rig_init(&g, SMP_LINK_UDP, 1024, 8, &cfg);
	g.fates = fates;
	g.n_fates = ELEMENTSOF(fates);
	op_init(&o);
	smp_file_upload(g.c, "/lfs/blob", &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	test_run_until(E, &o.done, 10000);
	ok(o.done && o.error == 0, "file upload with loss done (%d)", o.error);
	is_mem(g.m.file, g.m.file_len, file, 50000, "device file = source");
	ok(o.res.resends > 0, "continued from the device's size %u times", o.res.resends);
	rig_done(&g);

	/* Empty file. */
	rig_init(&g, SMP_LINK_SERIAL, 512, 2, NULL);
	src.size = 0;
	src.fd = -1;
	op_init(&o);
	smp_file_upload(g.c, "/lfs/empty", &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	test_run_until(E, &o.done, 5000);
	ok(o.done && o.error == 0 && g.m.n_fs == 1 && g.m.file_len == 0, "empty file: one request");
	rig_done(&g);
	free(file);
}

static void test_file_download(void)
{
	struct smp_upload_options opts;
	uint8_t *file = malloc(10000);
	struct rig g;
	struct op o;

	for (size_t i = 0; i < 10000; i++)
		file[i] = (uint8_t)(i ^ (i >> 5));
	smp_upload_options_init(&opts);

	rig_init(&g, SMP_LINK_SERIAL, 512, 2, NULL);
	g.m.dl = file;
	g.m.dl_len = 10000;
	g.m.dl_chunk = 300;
	op_init(&o);
	smp_file_download(g.c, "/lfs/log.txt", &opts, on_data, on_progress, on_done, &o, on_destroy,
			  NULL);
	test_run_until(E, &o.done, 10000);
	ok(o.done && o.error == 0, "download done");
	is_mem(o.dl, o.dl_len, file, 10000, "received the file");
	ok(o.res.size == 10000 && o.res.offset == 10000, "size and offset");
	ok(o.progress_monotonic && o.last_progress == 10000 && o.total == 10000, "progress");
	is_int(g.m.n_fs, 34, "off += size(data): 34 requests of 300 bytes");
	free(o.dl);
	rig_done(&g);

	/* The file shrinks under the download. */
	rig_init(&g, SMP_LINK_SERIAL, 512, 2, NULL);
	g.m.dl = file;
	g.m.dl_len = 10000;
	g.m.dl_chunk = 300;
	g.m.dl_shrink_at = 3000;
	op_init(&o);
	smp_file_download(g.c, "/lfs/log.txt", &opts, on_data, on_progress, on_done, &o, on_destroy,
			  NULL);
	test_run_until(E, &o.done, 10000);
	is_int(o.error, -ENODATA, "empty data before the end: -ENODATA");
	free(o.dl);
	rig_done(&g);

	/* Empty file: one request. */
	rig_init(&g, SMP_LINK_SERIAL, 512, 2, NULL);
	g.m.dl = file;
	g.m.dl_len = 0;
	g.m.dl_chunk = 300;
	op_init(&o);
	smp_file_download(g.c, "/lfs/empty", &opts, on_data, NULL, on_done, &o, on_destroy, NULL);
	test_run_until(E, &o.done, 5000);
	ok(o.done && o.error == 0 && o.res.size == 0 && g.m.n_fs == 1, "empty file downloaded");
	free(o.dl);
	rig_done(&g);
	free(file);
}

/* ---- real transports: the device at the other end of a pty, a socketpair, UDP --------- */

/* A device speaking console framing on a byte stream (pty master, socket). */
struct framed_dev {
	int fd;
	sd_event_source *io;
	struct smp_serial_decoder *dec;
	struct smp_buf out;
	size_t out_off;
	struct test_model *m;
};

static void framed_on_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct framed_dev *f = userdata;
	struct smp_buf rsp = SMP_BUF_INIT;

	if (test_model_handle(f->m, pkt, len, &rsp))
		(void)smp_serial_encode(rsp.data, rsp.len, 0, &f->out);
	smp_buf_clear(&rsp);
}

static void framed_flush(struct framed_dev *f)
{
	while (f->out_off < f->out.len) {
		ssize_t n = write(f->fd, f->out.data + f->out_off, f->out.len - f->out_off);

		if (n <= 0)
			break;
		f->out_off += (size_t)n;
	}
	if (f->out_off == f->out.len) {
		f->out.len = 0;
		f->out_off = 0;
	}
	sd_event_source_set_io_events(f->io, EPOLLIN | (f->out.len ? EPOLLOUT : 0));
}

static int framed_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct framed_dev *f = userdata;
	uint8_t buf[4096];

	if (revents & (EPOLLIN | EPOLLHUP)) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0)
			smp_serial_decoder_feed(f->dec, buf, (size_t)n, framed_on_packet, NULL, f);
		else if (n == 0 || errno != EAGAIN) {
			sd_event_source_set_enabled(s, SD_EVENT_OFF);
			return 0;
		}
	}
	framed_flush(f);
	return 0;
}

static void framed_init(struct framed_dev *f, int fd, struct test_model *m)
{
	*f = (struct framed_dev){ .fd = fd, .m = m };
	if (smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &f->dec) < 0 ||
	    sd_event_add_io(E, &f->io, fd, EPOLLIN, framed_on_io, f) < 0)
		abort();
}

static void framed_done(struct framed_dev *f)
{
	sd_event_source_disable_unref(f->io);
	smp_serial_decoder_free(f->dec);
	smp_buf_clear(&f->out);
	close(f->fd);
}

static void model_init(struct test_model *m, size_t buf_size, unsigned buf_count)
{
	*m = (struct test_model){ .buf_size = buf_size, .buf_count = buf_count };
	m->image_check = true;
	m->slot_cap = 256 * 1024;
	m->slot = calloc(1, m->slot_cap);
}

static void upload_over(struct smp_transport *t, struct test_model *m, const struct image *img,
			const char *what)
{
	struct smp_upload_options opts;
	struct smp_upload_source src = image_source(img);
	struct smp_client *c;
	struct op o;

	if (smp_client_new(E, t, NULL, &c) < 0)
		abort();
	smp_upload_options_init(&opts);
	op_init(&o);
	is_int(smp_image_upload(c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL), 0,
	       "%s: upload started", what);
	test_run_until(E, &o.done, 20000);
	ok(o.done && o.error == 0 && o.res.verified, "%s: done and verified (%d)", what, o.error);
	is_mem(m->slot, m->len, img->data, img->size, "%s: slot holds the file", what);
	is_int(smp_client_get_buf_size(c), m->buf_size, "%s: params read through the link", what);
	ok(o.res.bytes_sent >= img->size, "%s: %u chunks", what, o.res.chunks);
	smp_client_unref(c);
	test_run_idle(E);
}

static void test_serial_pty(void)
{
	struct test_model m;
	struct framed_dev f;
	struct smp_transport *t;
	struct image img;
	int master;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	model_init(&m, 1024, 4);
	master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
		tap_skip("no pseudo-terminals here", "serial over a pty");
		if (master >= 0)
			close(master);
		free(m.slot);
		free(img.data);
		return;
	}
	framed_init(&f, master, &m);
	is_int(smp_serial_link_new(E, ptsname(master), NULL, &t), 0, "serial link on a pty");
	upload_over(t, &m, &img, "serial over a pty");
	framed_done(&f);
	free(m.slot);
	free(img.data);
}

static void test_serial_socketpair(void)
{
	struct test_model m;
	struct framed_dev f;
	struct smp_transport *t;
	struct image img;
	int sv[2];

	image_load(&img, "tests/data/images/ecdsa-p256-2.0.0.bin");
	model_init(&m, 2048, 8);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	framed_init(&f, sv[1], &m);
	is_int(smp_serial_link_new_fd(E, sv[0], NULL, &t), 0, "serial link on a socketpair");
	upload_over(t, &m, &img, "serial over a socketpair");
	framed_done(&f);
	free(m.slot);
	free(img.data);
}

/* A UDP device on loopback that loses every 9th upload request. */
struct udp_dev {
	int fd;
	sd_event_source *io;
	struct test_model *m;
	unsigned n;
};

static int udp_dev_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct udp_dev *u = userdata;
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	uint8_t buf[65536];
	struct smp_buf rsp = SMP_BUF_INIT;
	ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&sa, &salen);

	if (n < SMP_HEADER_SIZE)
		return 0;
	if (buf[5] == SMP_GROUP_IMAGE && buf[7] == SMP_IMAGE_UPLOAD && ++u->n % 9 == 0)
		return 0;
	if (test_model_handle(u->m, buf, (size_t)n, &rsp))
		(void)sendto(fd, rsp.data, rsp.len, 0, (struct sockaddr *)&sa, salen);
	smp_buf_clear(&rsp);
	return 0;
}

static void test_udp_loopback(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	struct smp_client_config cfg;
	struct smp_upload_options opts;
	struct smp_upload_source src;
	struct smp_client_stats st;
	struct test_model m;
	struct udp_dev u = { 0 };
	struct smp_transport *t;
	struct smp_client *c;
	struct image img;
	struct op o;

	image_load(&img, "tests/data/images/hash-only-1.2.3+4.bin");
	model_init(&m, 1024, 8);
	u.m = &m;
	u.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u.fd < 0 || bind(u.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(u.fd, (struct sockaddr *)&sin, &len) < 0 ||
	    sd_event_add_io(E, &u.io, u.fd, EPOLLIN, udp_dev_on_io, &u) < 0)
		abort();
	is_int(smp_udp_new(E, "127.0.0.1", ntohs(sin.sin_port), NULL, &t), 0, "UDP link on loopback");
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 50;
	if (smp_client_new(E, t, &cfg, &c) < 0)
		abort();
	smp_upload_options_init(&opts);
	src = image_source(&img);
	op_init(&o);
	smp_image_upload(c, &src, &opts, on_progress, on_done, &o, on_destroy, NULL);
	test_run_until(E, &o.done, 20000);
	ok(o.done && o.error == 0 && o.res.verified, "UDP with a lossy device: done and verified (%d)",
	   o.error);
	is_mem(m.slot, m.len, img.data, img.size, "UDP: slot holds the file");
	smp_client_get_stats(c, &st);
	ok(st.retransmits > 0 || o.res.resends > 0, "UDP: losses repaired (%llu retransmits, %u resends)",
	   (unsigned long long)st.retransmits, o.res.resends);
	smp_client_unref(c);
	test_run_idle(E);
	sd_event_source_disable_unref(u.io);
	close(u.fd);
	free(m.slot);
	free(img.data);
}

int main(void)
{
	if (sd_event_new(&E) < 0)
		abort();
	test_vectors();
	test_full_image("tests/data/images/hash-only-1.2.3+4.bin", SMP_LINK_SERIAL, 384, 4);
	test_full_image("tests/data/images/ecdsa-p256-2.0.0.bin", SMP_LINK_SERIAL, 2048, 4);
	test_pipelined_window();
	test_udp_loss();
	test_resume_and_restart();
	test_first_chunk_pipelined();
	test_match_and_skip();
	test_errors();
	test_cancel();
	test_fd_source();
	test_interactive_during_upload();
	test_file_upload();
	test_file_download();
	test_serial_pty();
	test_serial_socketpair();
	test_udp_loopback();
	sd_event_unref(E);
	return tap_done();
}
