/* test-smp-client: the per-device client against a scripted device, byte for byte */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-client.h"
#include "smp-os.h"
#include "tests/tap.h"
#include "tests/unit/client-test.h"

static sd_event *E;

/* What one request's callback and destroy saw. */
struct call {
	bool done;
	unsigned n_done;
	unsigned n_destroy;
	int error;
	bool has_rsp;
	struct smp_header hdr;
	struct smp_status status;
	char *echo;
	/* re-entrancy scripts */
	struct smp_client **unref_in_cb;
	uint64_t cancel_in_cb;
	int cancel_in_cb_ret;
	struct call *send_in_cb;
};

static void call_reset(struct call *k)
{
	free(k->echo);
	*k = (struct call){ 0 };
}

static void on_done(struct smp_client *c, int error, const struct smp_response *rsp, void *userdata)
{
	struct call *k = userdata;

	k->done = true;
	k->n_done++;
	k->error = error;
	k->has_rsp = rsp != NULL;
	if (rsp) {
		k->hdr = rsp->hdr;
		k->status = rsp->status;
		if (rsp->hdr.group == SMP_GROUP_OS && rsp->hdr.id == SMP_OS_ECHO)
			(void)smp_os_echo_parse(rsp, &k->echo);
	}
	if (k->cancel_in_cb)
		k->cancel_in_cb_ret = smp_client_cancel(c, k->cancel_in_cb);
	if (k->send_in_cb) {
		struct smp_request *req;

		if (smp_os_echo_request("again", &req) == 0)
			(void)smp_client_send(c, req, SMP_PRIO_INTERACTIVE, 0, on_done, k->send_in_cb,
					      NULL, NULL);
	}
	if (k->unref_in_cb)
		*k->unref_in_cb = smp_client_unref(*k->unref_in_cb);
}

static void on_destroy(void *userdata)
{
	struct call *k = userdata;

	k->n_destroy++;
}

static struct smp_request *echo(const char *s)
{
	struct smp_request *r;

	if (smp_os_echo_request(s, &r) < 0)
		abort();
	return r;
}

static uint64_t send_echo(struct smp_client *c, const char *s, enum smp_priority prio,
			  unsigned timeout_ms, struct call *k)
{
	uint64_t id = 0;
	int r = smp_client_send(c, echo(s), prio, timeout_ms, on_done, k, on_destroy, &id);

	if (r < 0)
		tap_diag("send failed: %d", r);
	return id;
}

static struct smp_client *new_client(enum smp_link link, const struct smp_client_config *cfg,
				     struct test_dev **ret_dev, struct test_link **ret_link)
{
	struct smp_client *c;
	struct test_link *l;

	test_link_pair(E, link, &l, ret_dev);
	if (smp_client_new(E, &l->t, cfg, &c) < 0)
		abort();
	if (ret_link)
		*ret_link = l;
	return c;
}

/* Pops the next request the device got and compares it with hex. */
static bool expect(struct test_dev *d, const char *hex, const char *what, struct test_packet *keep)
{
	struct test_packet p;
	size_t len;
	uint8_t *want = tap_unhex(hex, &len);
	bool good;

	if (!test_dev_next(E, d, 2000, &p)) {
		free(want);
		return ok(false, "%s: device got nothing", what);
	}
	good = is_mem(p.data, p.len, want, len, "%s", what);
	free(want);
	if (keep)
		*keep = p;
	else
		free(p.data);
	return good;
}

static uint8_t seq_of(const struct test_packet *p)
{
	return p->data[6];
}

static const char *hexf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *hexf(const char *fmt, ...)
{
	static char buf[4][512];
	static unsigned n;
	char *b = buf[n++ % 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(buf[0]), fmt, ap);
	va_end(ap);
	return b;
}

static void reply_params(struct test_dev *d, const uint8_t *req, unsigned buf_size,
			 unsigned buf_count)
{
	test_dev_reply(d, req, 1,
		       hexf("bf686275665f73697a6519%04x696275665f636f756e74%02xff", buf_size,
			    buf_count));
}

/* The echo answer {"r": text} for a request the device got. */
static void reply_echo(struct test_dev *d, const struct test_packet *p)
{
	/* {"d": s} → {"r": s}: same bytes with the key changed, indefinite map. */
	uint8_t out[600];
	size_t n = p->len - SMP_HEADER_SIZE - 1;

	out[0] = 0xbf;
	memcpy(out + 1, p->data + SMP_HEADER_SIZE + 1, n);
	out[2] = 'r';
	out[1 + n] = 0xff;
	test_dev_reply_raw(d, p->data, p->data[0] >> 3 & 3, out, n + 2);
}

/* Which echo text a request carries (the tests use short ones). */
static const char *echo_text(const struct test_packet *p)
{
	static char buf[64];
	size_t n = p->data[SMP_HEADER_SIZE + 3] & 0x1f;

	memcpy(buf, p->data + SMP_HEADER_SIZE + 4, MIN(n, sizeof(buf) - 1));
	buf[MIN(n, sizeof(buf) - 1)] = 0;
	return buf;
}

static unsigned n_log;
static void on_log(const char *msg, void *userdata)
{
	n_log++;
}

/* V3/V4 and V1/V2 of smp-protocol.md §15.1, byte for byte. */
static void test_params_and_echo(void)
{
	struct smp_client_config cfg;
	struct call k = { 0 }, w = { 0 };
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;
	struct smp_client_stats st;
	uint64_t id;

	smp_client_config_init(&cfg);
	cfg.first_seq = 2;
	cfg.log = on_log;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	ok(!smp_client_params_known(c), "params unknown at start");
	is_int(smp_client_get_window(c), 1, "window 1 while params are unknown");
	id = send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	ok(id > 0, "send returns an id");
	is_int(smp_client_query_params(c, on_done, &w, on_destroy, NULL), 0, "params waiter queued");
	ok(!k.done && !w.done, "callbacks never run inside the call");

	expect(d, "08000001 00000206 a0", "params read goes first (V3)", &p);
	test_run_idle(E);
	is_int(test_dev_pending(d), 0, "nothing else is sent while params are read");
	test_dev_send_hex(d, "09000019 00000206 bf686275665f73697a65190180696275665f636f756e7404ff");
	free(p.data);
	expect(d, "0a000009 00000300 a161646568656c6c6f", "echo request (V1 with seq 3)", NULL);
	ok(w.done && w.error == 0 && !w.has_rsp && w.n_destroy == 1, "params waiter called once known");
	is_int(smp_client_get_buf_size(c), 384, "buf_size from params");
	is_int(smp_client_get_buf_count(c), 4, "buf_count from params");
	is_int(smp_client_get_window(c), 3, "window is buf_count - 1");
	test_dev_send_hex(d, "0b00000a 00000300 bf61726568656c6c6fff");
	test_run_until(E, &k.done, 2000);
	ok(k.done && k.error == 0 && k.has_rsp, "echo answered");
	is_str(k.echo, "hello", "echo text");
	is_int(k.hdr.seq, 3, "answer's sequence number");
	is_int(k.n_destroy, 1, "destroy after the callback");
	smp_client_get_stats(c, &st);
	is_int(st.requests, 1, "stats: one request (the params read is internal)");
	is_int(st.responses, 2, "stats: two answers");
	is_int(st.bytes_sent, 9 + 17, "stats: bytes sent");
	is_int(st.bytes_received, 33 + 18, "stats: bytes received");
	is_int(st.stale + st.timeouts + st.retransmits, 0, "stats: nothing stale, late or resent");
	ok(n_log > 0, "debug log hook called");

	/* A waiter once params are known still runs from the loop. */
	call_reset(&w);
	is_int(smp_client_query_params(c, on_done, &w, on_destroy, NULL), 0, "second waiter");
	ok(!w.done, "not called synchronously");
	test_run_until(E, &w.done, 2000);
	ok(w.done && w.error == 0, "called from the loop");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
	call_reset(&w);
}

static void test_seq_wrap(void)
{
	struct smp_client_config cfg;
	struct call k[3] = { 0 };
	struct test_dev *d;
	struct smp_client *c;

	smp_client_config_init(&cfg);
	cfg.first_seq = 254;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	smp_client_set_params(c, 384, 1);
	for (unsigned i = 0; i < 3; i++) {
		static const char *seqs[] = { "fe", "ff", "00" };
		struct test_packet p;

		send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k[i]);
		expect(d, hexf("0a000009 0000%s00 a161646568656c6c6f", seqs[i]),
		       hexf("sequence number %s", seqs[i]), &p);
		reply_echo(d, &p);
		test_run_until(E, &k[i].done, 2000);
		ok(k[i].done && k[i].error == 0 && k[i].hdr.seq == p.data[6], "answer %u matched", i);
		free(p.data);
	}
	smp_client_unref(c);
	test_dev_free(d);
	for (unsigned i = 0; i < 3; i++)
		call_reset(&k[i]);
}

static void test_matching(void)
{
	static const char *const strangers[] = {
		"0b00000a 00000600 bf61726568656c6c6fff", /* other sequence number */
		"0b00000a 00010500 bf61726568656c6c6fff", /* other group */
		"0b00000a 00000501 bf61726568656c6c6fff", /* other command */
		"0900000a 00000500 bf61726568656c6c6fff", /* READ_RSP to a WRITE */
		"0a00000a 00000500 bf61726568656c6c6fff", /* a request, not a response */
		"0b0000",				  /* shorter than a header */
	};
	struct smp_client_config cfg;
	struct call k = { 0 }, b = { 0 };
	struct smp_client_stats st;
	struct test_dev *d;
	struct smp_client *c;
	struct test_packet p;

	smp_client_config_init(&cfg);
	cfg.first_seq = 5;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	expect(d, "0a000009 00000500 a161646568656c6c6f", "request seq 5", NULL);
	for (size_t i = 0; i < ELEMENTSOF(strangers); i++)
		test_dev_send_hex(d, strangers[i]);
	test_run_idle(E);
	smp_client_get_stats(c, &st);
	ok(!k.done, "no stranger completes the request");
	is_int(st.stale, ELEMENTSOF(strangers), "every stranger counted as stale");
	test_dev_send_hex(d, "0b00000a 00000500 bf61726568656c6c6fff");
	test_run_until(E, &k.done, 2000);
	ok(k.done && k.error == 0, "the matching answer completes it");
	test_dev_send_hex(d, "0b00000a 00000500 bf61726568656c6c6fff");
	test_run_idle(E);
	smp_client_get_stats(c, &st);
	is_int(k.n_done, 1, "a duplicate answer is not delivered twice");
	is_int(st.stale, ELEMENTSOF(strangers) + 1, "the duplicate counted as stale");

	/* A matching header with undecodable CBOR fails that request. */
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &b);
	expect(d, "0a000009 00000600 a161646568656c6c6f", "request seq 6", &p);
	test_dev_send_hex(d, "0b000002 00000600 bf61");
	test_run_until(E, &b.done, 2000);
	ok(b.done && b.error == -EBADMSG && !b.has_rsp, "malformed answer: -EBADMSG");
	free(p.data);
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
	call_reset(&b);
}

static void test_window(void)
{
	struct call b[6] = { 0 }, in[2] = { 0 };
	struct test_packet p[8];
	struct test_dev *d;
	struct smp_client *c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	unsigned n = 0;

	smp_client_set_params(c, 2048, 16);
	is_int(smp_client_get_window(c), 8, "buf_count 16: window 8 (capped by max_window)");
	smp_client_set_params(c, 2048, 5);
	is_int(smp_client_get_window(c), 4, "buf_count 5: window 4, one buffer for the answer");
	is_int(smp_client_get_bulk_window(c), 4, "bulk may fill the window");
	for (unsigned i = 0; i < 6; i++)
		send_echo(c, hexf("b%u", i), SMP_PRIO_BULK, 0, &b[i]);
	test_run_idle(E);
	is_int(test_dev_pending(d), 4, "bulk fills the window: 4 of 4 in flight");
	is_int(smp_client_get_in_flight(c), 4, "in flight count");
	send_echo(c, "i0", SMP_PRIO_INTERACTIVE, 0, &in[0]);
	send_echo(c, "i1", SMP_PRIO_INTERACTIVE, 0, &in[1]);
	test_run_idle(E);
	is_int(test_dev_pending(d), 4, "never more than the window in flight");
	for (unsigned i = 0; i < 4; i++)
		test_dev_next(E, d, 100, &p[n++]);
	is_str(echo_text(&p[3]), "b3", "b3 was the fourth");
	reply_echo(d, &p[0]);
	ok(test_dev_next(E, d, 2000, &p[n++]), "a slot frees");
	is_str(echo_text(&p[4]), "i0", "a queued interactive request takes it, ahead of b4");
	reply_echo(d, &p[1]);
	ok(test_dev_next(E, d, 2000, &p[n++]), "another slot frees");
	is_str(echo_text(&p[5]), "i1", "the second one too");
	reply_echo(d, &p[2]);
	ok(test_dev_next(E, d, 2000, &p[n++]), "a third slot frees");
	is_str(echo_text(&p[6]), "b4", "then bulk continues in order");
	for (unsigned i = 3; i < n; i++)
		reply_echo(d, &p[i]);
	while (n < 8 && test_dev_next(E, d, 2000, &p[n])) {
		reply_echo(d, &p[n]);
		n++;
	}
	test_run_until(E, &b[5].done, 2000);
	for (unsigned i = 0; i < 6; i++)
		ok(b[i].done && b[i].error == 0 && strcmp(b[i].echo, hexf("b%u", i)) == 0,
		   "bulk %u answered with its own text", i);
	ok(in[0].done && in[1].done, "interactive answered");
	is_int(n, 8, "eight requests sent in all");
	for (unsigned i = 0; i < n; i++)
		free(p[i].data);
	smp_client_unref(c);
	test_dev_free(d);
	for (unsigned i = 0; i < 6; i++)
		call_reset(&b[i]);
	call_reset(&in[0]);
	call_reset(&in[1]);
}

/* Window from discovered params, and interactive-first with a window of 1. */
static void test_window_discovered_and_priority(void)
{
	struct call b[4] = { 0 }, in = { 0 };
	struct test_packet p, q[5];
	struct test_dev *d;
	struct smp_client *c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);

	for (unsigned i = 0; i < 4; i++)
		send_echo(c, hexf("b%u", i), SMP_PRIO_BULK, 0, &b[i]);
	test_dev_next(E, d, 2000, &p);
	reply_params(d, p.data, 384, 4);
	free(p.data);
	test_run_idle(E);
	is_int(smp_client_get_window(c), 3, "buf_count 4: window 3");
	is_int(test_dev_pending(d), 3, "bulk takes all three slots");
	send_echo(c, "i0", SMP_PRIO_INTERACTIVE, 0, &in);
	test_run_idle(E);
	is_int(test_dev_pending(d), 3, "interactive waits for a slot");
	for (unsigned i = 0; i < 3; i++)
		test_dev_next(E, d, 2000, &q[i]);
	reply_echo(d, &q[0]);
	ok(test_dev_next(E, d, 2000, &q[3]), "the first answer frees a slot");
	is_str(echo_text(&q[3]), "i0", "the interactive call takes it, ahead of b3");
	for (unsigned i = 1; i < 4; i++)
		reply_echo(d, &q[i]);
	ok(test_dev_next(E, d, 2000, &q[4]), "then the next slot");
	is_str(echo_text(&q[4]), "b3", "goes to b3");
	reply_echo(d, &q[4]);
	test_run_until(E, &b[3].done, 2000);
	ok(b[0].done && b[1].done && b[2].done && b[3].done && in.done, "all answered");
	for (unsigned i = 0; i < 5; i++)
		free(q[i].data);
	smp_client_unref(c);
	test_dev_free(d);
	for (unsigned i = 0; i < 4; i++)
		call_reset(&b[i]);

	/* Window 1: queued bulk waits behind a later interactive call. */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	for (unsigned i = 0; i < 3; i++) {
		call_reset(&b[i]);
		send_echo(c, hexf("b%u", i), SMP_PRIO_BULK, 0, &b[i]);
	}
	call_reset(&in);
	test_run_idle(E);
	send_echo(c, "i0", SMP_PRIO_INTERACTIVE, 0, &in);
	test_dev_next(E, d, 2000, &p);
	is_str(echo_text(&p), "b0", "window 1: first bulk chunk in flight");
	test_run_idle(E);
	is_int(test_dev_pending(d), 0, "window 1 holds everything else");
	reply_echo(d, &p);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	is_str(echo_text(&p), "i0", "interactive goes next, ahead of b1 and b2");
	reply_echo(d, &p);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	is_str(echo_text(&p), "b1", "then bulk resumes");
	reply_echo(d, &p);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &b[2].done, 2000);
	ok(in.done && b[0].done && b[1].done && b[2].done, "all answered");
	smp_client_unref(c);
	test_dev_free(d);
	for (unsigned i = 0; i < 3; i++)
		call_reset(&b[i]);
	call_reset(&in);
}

static void test_timeout_serial(void)
{
	struct smp_client_config cfg;
	struct call k = { 0 }, l = { 0 };
	struct smp_client_stats st;
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;

	smp_client_config_init(&cfg);
	cfg.timeout_ms = 40;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	test_dev_next(E, d, 2000, &p);
	ok(test_run_until(E, &k.done, 2000), "timeout fires");
	is_int(k.error, -ETIMEDOUT, "-ETIMEDOUT");
	ok(!k.has_rsp && k.n_destroy == 1, "no response, destroyed once");
	test_run_idle(E);
	is_int(test_dev_pending(d), 0, "serial: never retransmitted");
	reply_echo(d, &p);
	free(p.data);
	test_run_idle(E);
	smp_client_get_stats(c, &st);
	is_int(k.n_done, 1, "late answer after the timeout is dropped");
	is_int(st.stale, 1, "late answer counted stale");
	is_int(st.timeouts, 1, "one timeout");
	is_int(st.retransmits, 0, "no retransmission");

	/* A per-request timeout overrides the default. */
	send_echo(c, "x", SMP_PRIO_INTERACTIVE, 3000, &l);
	test_dev_next(E, d, 2000, &p);
	test_run_until(E, &l.done, 200);
	ok(!l.done, "3 s timeout has not fired after 200 ms");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &l.done, 2000);
	ok(l.done && l.error == 0, "answered in time");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
	call_reset(&l);
}

static void test_udp_retransmit(void)
{
	struct smp_client_config cfg;
	struct call k = { 0 }, x = { 0 }, r = { 0 };
	struct smp_client_stats st;
	struct test_packet p[3];
	struct test_dev *d;
	struct smp_client *c;
	unsigned n = 0;

	smp_client_config_init(&cfg);
	cfg.timeout_ms = 100;
	cfg.udp_retries = 2;
	c = new_client(SMP_LINK_UDP, &cfg, &d, NULL);
	smp_client_set_params(c, 2048, 2);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	for (n = 0; n < 3; n++)
		if (!test_dev_next(E, d, 2000, &p[n]))
			break;
	is_int(n, 3, "sent three times (two retransmissions)");
	for (unsigned i = 0; i < n; i++)
		is_int(seq_of(&p[i]), i, "transmission %u has sequence number %u", i, i);
	ok(n == 3 && p[0].len == p[2].len && memcmp(p[0].data, p[2].data, 6) == 0 &&
		   memcmp(p[0].data + 7, p[2].data + 7, p[0].len - 7) == 0,
	   "same packet apart from the sequence number");
	if (n == 3) {
		reply_echo(d, &p[0]);
		reply_echo(d, &p[1]);
		test_run_idle(E);
		ok(!k.done, "answers to retired sequence numbers are dropped");
		reply_echo(d, &p[2]);
		test_run_until(E, &k.done, 2000);
	}
	ok(k.done && k.error == 0, "the answer to the last transmission completes it");
	smp_client_get_stats(c, &st);
	is_int(st.retransmits, 2, "two retransmissions counted");
	is_int(st.stale, 2, "two late answers counted");
	for (unsigned i = 0; i < n; i++)
		free(p[i].data);

	send_echo(c, "x", SMP_PRIO_INTERACTIVE, 0, &x);
	ok(test_run_until(E, &x.done, 3000), "gives up");
	is_int(x.error, -ETIMEDOUT, "-ETIMEDOUT after the retries");
	is_int(test_dev_pending(d), 3, "after 3 transmissions");
	while (test_dev_pending(d) && test_dev_next(E, d, 0, &p[0]))
		free(p[0].data);

	/* A reset is never repeated: a copy could reboot the new firmware. */
	smp_client_reset_device(c, false, -1, 0, on_done, &r, on_destroy, NULL);
	ok(test_run_until(E, &r.done, 3000), "reset ends");
	is_int(r.error, -ETIMEDOUT, "unanswered reset on UDP: -ETIMEDOUT");
	is_int(test_dev_pending(d), 1, "sent once");
	if (test_dev_next(E, d, 0, &p[0])) {
		is_mem(p[0].data, p[0].len, "\x0a\x00\x00\x01\x00\x00\x06\x05\xa0", 9,
		       "reset request bytes (V9 with seq 6)");
		free(p[0].data);
	}
	is_int(r.n_destroy, 1, "reset destroy once");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
	call_reset(&x);
	call_reset(&r);
}

static void test_version_fallback(void)
{
	struct smp_client_config cfg;
	struct call k = { 0 }, m = { 0 };
	struct smp_client_stats st;
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;

	/* (a) a v1 header in the answer to a v2 request */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	expect(d, "0a000009 00000000 a161646568656c6c6f", "v2 request", NULL);
	test_dev_send_hex(d, "0300000a 00000000 bf61726568656c6c6fff");
	test_run_until(E, &k.done, 2000);
	ok(k.done && k.error == 0 && k.hdr.version == 0, "v1 answer kept");
	is_str(k.echo, "hello", "its content");
	is_int(smp_client_get_version(c), SMP_VERSION_1, "client switched to v1");
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &m);
	expect(d, "02000009 00000100 a161646568656c6c6f", "next request is v1", &p);
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &m.done, 2000);
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
	call_reset(&m);

	/* (b) {"rc": 13} to v2: resend as v1 transparently */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	expect(d, "0a000009 00000000 a161646568656c6c6f", "v2 request", NULL);
	test_dev_send_hex(d, "0b000006 00000000 bf6272630dff");
	expect(d, "02000009 00000100 a161646568656c6c6f", "resent as v1 with a new sequence number",
	       &p);
	ok(!k.done, "the caller saw nothing yet");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &k.done, 2000);
	ok(k.done && k.error == 0 && k.status.kind == SMP_STATUS_OK, "v1 answer delivered");
	is_int(k.n_done, 1, "one callback");
	smp_client_get_stats(c, &st);
	is_int(st.retransmits, 1, "the resend is counted");
	is_int(smp_client_get_version(c), SMP_VERSION_1, "client now v1");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);

	/* (c) {"rc": 12} to v1: back to v2; (d) a second refusal is data */
	smp_client_config_init(&cfg);
	cfg.version = SMP_VERSION_1;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	expect(d, "02000009 00000000 a161646568656c6c6f", "v1 request", NULL);
	test_dev_send_hex(d, "03000006 00000000 bf6272630cff");
	expect(d, "0a000009 00000100 a161646568656c6c6f", "resent as v2", &p);
	test_dev_reply(d, p.data, 1, "bf6272630dff");
	free(p.data);
	test_run_until(E, &k.done, 2000);
	ok(k.done && k.error == 0 && k.status.kind == SMP_STATUS_RC && k.status.rc == 13,
	   "a request is resent once; a second refusal is delivered as data");
	test_run_idle(E);
	is_int(test_dev_pending(d), 0, "no ping-pong");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);

	/* (e) fixed version: rc 13 is data, nothing resent */
	smp_client_config_init(&cfg);
	cfg.fixed_version = true;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "hello", SMP_PRIO_INTERACTIVE, 0, &k);
	expect(d, "0a000009 00000000 a161646568656c6c6f", "v2 request", &p);
	test_dev_reply(d, p.data, 0, "bf6272630dff");
	free(p.data);
	test_run_until(E, &k.done, 2000);
	ok(k.done && k.status.rc == 13, "fixed version: refusal is data");
	is_int(smp_client_get_version(c), SMP_VERSION_2, "fixed version stays v2");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
}

static void test_cancel(void)
{
	struct smp_client_config cfg;
	struct call a = { 0 }, b = { 0 }, x = { 0 }, y = { 0 };
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;
	uint64_t ida, idb, idx;

	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	ida = send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	idb = send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	idx = send_echo(c, "x", SMP_PRIO_BULK, 0, &x);
	is_int(smp_client_cancel(c, idx), 0, "cancel a queued request");
	ok(x.n_destroy == 1 && x.n_done == 0, "queued cancel: destroy once, no callback");
	is_int(smp_client_cancel(c, idx), -ENOENT, "cancel twice: -ENOENT");
	is_int(smp_client_cancel(c, 999999), -ENOENT, "unknown id: -ENOENT");
	is_int(smp_client_cancel(c, 0), -ENOENT, "id 0: -ENOENT");
	test_dev_next(E, d, 2000, &p);
	is_str(echo_text(&p), "a", "a in flight");
	is_int(smp_client_cancel(c, ida), 0, "cancel the request in flight");
	is_int(a.n_destroy, 1, "destroy runs at cancel");
	test_run_idle(E);
	is_int(test_dev_pending(d), 0, "its slot stays taken until the device answers");
	is_int(smp_client_get_in_flight(c), 1, "still counted in flight");
	reply_echo(d, &p);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	is_str(echo_text(&p), "b", "the answer frees the slot, b goes out");
	ok(a.n_done == 0 && a.n_destroy == 1, "the cancelled request's answer is dropped");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &b.done, 2000);
	ok(b.done && b.error == 0 && b.n_destroy == 1, "b answered");
	is_int(smp_client_cancel(c, idb), -ENOENT, "cancel after the end: -ENOENT");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);
	call_reset(&b);
	call_reset(&x);

	/* A cancelled request that is never answered frees its slot at its timeout. */
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 40;
	c = new_client(SMP_LINK_UDP, &cfg, &d, NULL);
	smp_client_set_params(c, 384, 1);
	ida = send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	send_echo(c, "b", SMP_PRIO_INTERACTIVE, 5000, &b);
	test_dev_next(E, d, 2000, &p);
	free(p.data);
	smp_client_cancel(c, ida);
	ok(test_dev_next(E, d, 2000, &p), "b sent after a's timeout");
	is_str(echo_text(&p), "b", "b, not a retransmission of a");
	free(p.data);
	ok(a.n_done == 0 && a.n_destroy == 1, "a: destroy once, never called");
	smp_client_unref(c);
	ok(b.n_done == 0 && b.n_destroy == 1, "teardown: destroy for b, no callback");
	test_dev_free(d);
	call_reset(&a);
	call_reset(&b);

	/* A later answer frees the slot of an earlier cancelled request (served in order). */
	c = new_client(SMP_LINK_UDP, NULL, &d, NULL);
	smp_client_set_params(c, 384, 4);
	ida = send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	test_dev_next(E, d, 2000, &p);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	smp_client_cancel(c, ida);
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &b.done, 2000);
	is_int(smp_client_get_in_flight(c), 0, "the answer to b releases cancelled a");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);
	call_reset(&b);

	/* Re-entrancy: the callback cancels another request and sends a new one. */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	idb = send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	a.cancel_in_cb = idb;
	a.send_in_cb = &y;
	test_dev_next(E, d, 2000, &p);
	reply_echo(d, &p);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	is_int(a.cancel_in_cb_ret, 0, "cancel from inside a callback");
	ok(b.n_destroy == 1 && b.n_done == 0, "cancelled from a callback: destroy only");
	is_str(echo_text(&p), "again", "send from inside a callback");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &y.done, 2000);
	ok(y.done && y.error == 0, "that request completes");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);
	call_reset(&b);
	call_reset(&y);
}

static void test_unref_in_callback(void)
{
	struct call a = { 0 }, b = { 0 };
	struct test_packet p;
	struct test_link *l;
	struct test_dev *d;
	struct smp_client *c;
	bool freed = false;

	c = new_client(SMP_LINK_SERIAL, NULL, &d, &l);
	l->freed = &freed;
	smp_client_set_params(c, 384, 1);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	a.unref_in_cb = &c;
	test_dev_next(E, d, 2000, &p);
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &a.done, 2000);
	ok(a.done && c == NULL, "callback dropped the last reference");
	ok(b.n_destroy == 1 && b.n_done == 0, "the other request: destroy only");
	test_run_idle(E);
	ok(freed, "transport freed after its callback returned");
	test_dev_free(d);
	call_reset(&a);
	call_reset(&b);

	/* A ref taken by someone else keeps the client alive. */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	ok(smp_client_ref(c) == c, "ref returns the client");
	smp_client_unref(c);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	test_dev_next(E, d, 2000, &p);
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &a.done, 2000);
	ok(a.done, "still works after ref/unref");
	ok(smp_client_unref(NULL) == NULL && smp_client_ref(NULL) == NULL, "NULL-safe");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);
}

static void test_oversize(void)
{
	struct call k = { 0 }, m = { 0 };
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;
	char big[101];
	uint64_t id = 0;
	int r;

	memset(big, 'x', 100);
	big[100] = 0;
	c = new_client(SMP_LINK_BLE, NULL, &d, NULL);
	smp_client_set_params(c, 64, 1);
	is_int(smp_client_packet_budget(c), 64, "budget from the transport");
	r = smp_client_send(c, echo(big), SMP_PRIO_INTERACTIVE, 0, on_done, &k, on_destroy, &id);
	is_int(r, -EMSGSIZE, "a request above the budget is refused at once");
	ok(k.n_destroy == 0 && id == 0, "failed send: no destroy, no id");
	test_run_idle(E);
	is_int(test_dev_pending(d), 0, "nothing sent");
	smp_client_unref(c);
	test_dev_free(d);

	/* Params not known yet: refused when they are, never sent. */
	c = new_client(SMP_LINK_BLE, NULL, &d, NULL);
	is_int(smp_client_send(c, echo(big), SMP_PRIO_INTERACTIVE, 0, on_done, &k, on_destroy, NULL),
	       0, "queued while params are unknown");
	send_echo(c, "small", SMP_PRIO_INTERACTIVE, 0, &m);
	test_dev_next(E, d, 2000, &p);
	reply_params(d, p.data, 64, 1);
	free(p.data);
	test_run_until(E, &k.done, 2000);
	is_int(k.error, -EMSGSIZE, "-EMSGSIZE through the callback");
	test_dev_next(E, d, 2000, &p);
	is_str(echo_text(&p), "small", "the next request still goes");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &m.done, 2000);
	ok(m.done && m.error == 0, "and is answered");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&k);
	call_reset(&m);
}

struct state_log {
	unsigned n;
	int last;
	unsigned destroyed;
};

static void on_state(struct smp_client *c, int state, void *userdata)
{
	struct state_log *s = userdata;

	s->n++;
	s->last = state;
}

static void on_state_destroy(void *userdata)
{
	struct state_log *s = userdata;

	s->destroyed++;
}

struct resender {
	unsigned left, calls, depth, max_depth;
};

static void on_resend(struct smp_client *c, int error, const struct smp_response *rsp,
		      void *userdata)
{
	struct resender *rs = userdata;

	rs->calls++;
	rs->depth++;
	rs->max_depth = MAX(rs->max_depth, rs->depth);
	if (error == -ENOTCONN && rs->left > 0) {
		rs->left--;
		(void)smp_client_send(c, echo("r"), SMP_PRIO_INTERACTIVE, 0, on_resend, rs, NULL,
				      NULL);
	}
	rs->depth--;
}

static void test_link_loss(void)
{
	struct state_log st = { 0 }, st2 = { 0 };
	struct call a = { 0 }, b = { 0 }, q = { 0 }, r = { 0 };
	struct test_packet p;
	struct test_link *l;
	struct test_dev *d;
	struct smp_client *c;

	c = new_client(SMP_LINK_BLE, NULL, &d, NULL);
	smp_client_set_state_handler(c, on_state, &st, on_state_destroy);
	smp_client_set_state_handler(c, on_state, &st2, on_state_destroy);
	is_int(st.destroyed, 1, "replaced state handler destroyed");
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	test_dev_next(E, d, 2000, &p);
	reply_params(d, p.data, 384, 3);
	free(p.data);
	send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	send_echo(c, "q", SMP_PRIO_BULK, 0, &q);
	test_run_idle(E);
	is_int(test_dev_pending(d), 2, "two in flight, one queued");
	test_dev_close(d);
	test_run_until(E, &q.done, 2000);
	ok(a.error == -ECONNRESET && b.error == -ECONNRESET && q.error == -ECONNRESET,
	   "link loss fails in-flight and queued requests with -ECONNRESET");
	ok(a.n_destroy == 1 && b.n_destroy == 1 && q.n_destroy == 1, "each destroyed once");
	ok(st2.n == 1 && st2.last == -ECONNRESET, "owner told about the loss");
	ok(!smp_client_params_known(c), "params forgotten with the link");
	smp_client_unref(c);
	is_int(st2.destroyed, 1, "state handler destroyed at teardown");
	test_dev_free(d);

	/* A callback run by the link loss cancels a request failing after it. */
	call_reset(&a);
	call_reset(&b);
	c = new_client(SMP_LINK_BLE, NULL, &d, NULL);
	smp_client_set_params(c, 384, 4);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	a.cancel_in_cb = send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	test_run_idle(E);
	test_dev_close(d);
	test_run_until(E, &a.done, 2000);
	is_int(a.cancel_in_cb_ret, 0, "cancel from a link-loss callback finds the next victim");
	ok(b.n_done == 0 && b.n_destroy == 1, "that one: destroy only");
	smp_client_unref(c);
	test_dev_free(d);

	/* Reset: the link drops instead of an answer → success (§16.12). */
	c = new_client(SMP_LINK_BLE, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	smp_client_reset_device(c, true, 1, 0, on_done, &r, on_destroy, NULL);
	expect(d, "0a000013 00000005 a265666f726365f569626f6f745f6d6f646501",
	       "reset request with force and boot_mode", NULL);
	test_dev_close(d);
	test_run_until(E, &r.done, 2000);
	ok(r.done && r.error == 0 && !r.has_rsp, "link loss after a reset counts as success");
	is_int(r.n_destroy, 1, "destroyed once");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&r);

	/* Reset answered {} (V11). */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	smp_client_set_params(c, 384, 1);
	smp_client_reset_device(c, false, -1, 0, on_done, &r, on_destroy, NULL);
	expect(d, "0a000001 00000005 a0", "reset request (V9 with seq 0)", &p);
	test_dev_reply(d, p.data, 1, "bfff");
	free(p.data);
	test_run_until(E, &r.done, 2000);
	ok(r.done && r.error == 0 && r.has_rsp && r.status.kind == SMP_STATUS_OK, "reset answered");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&r);

	/* A caller that resends on every failure does not spin inside the client. */
	call_reset(&a);
	c = new_client(SMP_LINK_BLE, NULL, &d, &l);
	smp_client_set_params(c, 384, 1);
	l->down = true;
	{
		struct resender rs = { .left = 5 };

		(void)smp_client_send(c, echo("r"), SMP_PRIO_INTERACTIVE, 0, on_resend, &rs, NULL,
				      NULL);
		test_run_until_count(E, &rs.calls, 6, 2000);
		is_int(rs.calls, 6, "six failures, each from its own loop iteration");
		is_int(rs.max_depth, 1, "never nested");
	}
	smp_client_unref(c);
	test_dev_free(d);

	/* Link down when sending: -ENOTCONN, and params are read again later. */
	call_reset(&a);
	call_reset(&b);
	c = new_client(SMP_LINK_BLE, NULL, &d, &l);
	l->down = true;
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	test_run_until(E, &a.done, 2000);
	is_int(a.error, -ENOTCONN, "link down: -ENOTCONN");
	is_int(test_dev_pending(d), 0, "nothing reached the device");
	l->down = false;
	send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &b);
	expect(d, "08000001 00000106 a0", "params read again once the link works", &p);
	reply_params(d, p.data, 384, 2);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &b.done, 2000);
	ok(b.done && b.error == 0, "then the request goes");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);
	call_reset(&b);
	call_reset(&q);
}

static void test_params_defaults(void)
{
	struct smp_client_config cfg;
	struct call a = { 0 };
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;

	/* ENOTSUP: 384 bytes, one buffer. */
	c = new_client(SMP_LINK_SERIAL, NULL, &d, NULL);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	test_dev_next(E, d, 2000, &p);
	test_dev_reply(d, p.data, 1, "bf62726308ff");
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	is_int(smp_client_get_buf_size(c), 384, "ENOTSUP: buf_size 384");
	is_int(smp_client_get_window(c), 1, "ENOTSUP: window 1");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &a.done, 2000);
	ok(a.done && a.error == 0, "request answered");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);

	/* No answer to params at all. */
	smp_client_config_init(&cfg);
	cfg.timeout_ms = 40;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 1000, &a);
	test_dev_next(E, d, 2000, &p);
	free(p.data);
	ok(test_dev_next(E, d, 2000, &p), "request sent after the params timeout");
	is_int(smp_client_get_buf_size(c), 384, "timeout: buf_size 384");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &a.done, 2000);
	ok(a.done && a.error == 0, "request answered");
	smp_client_unref(c);
	test_dev_free(d);
	call_reset(&a);

	/* Discovery off: the transport's own budget and a window of 1. */
	smp_client_config_init(&cfg);
	cfg.discover_params = false;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &a);
	expect(d, "0a000005 00000000 a1616461 61", "no params read", &p);
	ok(smp_client_params_known(c) && smp_client_get_buf_size(c) == 0, "buf_size 0 = unknown");
	is_int(smp_client_packet_budget(c), 2048, "transport's budget for unknown buf_size");
	smp_client_unref(c);
	test_dev_free(d);
	free(p.data);
	call_reset(&a);

	/* Bad configuration. */
	{
		struct test_link *l;
		struct test_dev *d2;
		bool freed = false;

		smp_client_config_init(&cfg);
		cfg.max_window = 0;
		test_link_pair(E, SMP_LINK_SERIAL, &l, &d2);
		l->freed = &freed;
		is_int(smp_client_new(E, &l->t, &cfg, &c), -EINVAL, "max_window 0: -EINVAL");
		ok(freed, "transport freed on failure");
		test_dev_free(d2);
	}
}

/* What the observer saw: the last request's group, id and result, and how many. */
struct observed {
	unsigned n;
	uint16_t group;
	uint8_t id;
	int result;
};

static void on_observe(struct smp_client *c, uint16_t group, uint8_t id, int result,
		       void *userdata)
{
	struct observed *o = userdata;

	o->n++;
	o->group = group;
	o->id = id;
	o->result = result;
}

static void test_observer(void)
{
	struct smp_client_config cfg;
	struct call k[4] = { 0 };
	struct observed o = { 0 };
	struct test_packet p;
	struct test_dev *d;
	struct smp_client *c;
	uint64_t id;

	smp_client_config_init(&cfg);
	cfg.timeout_ms = 40;
	c = new_client(SMP_LINK_SERIAL, &cfg, &d, NULL);
	smp_client_set_observer(c, on_observe, &o);

	/* The params read is the client's own: not observed. */
	send_echo(c, "a", SMP_PRIO_INTERACTIVE, 0, &k[0]);
	test_dev_next(E, d, 2000, &p);
	reply_params(d, p.data, 384, 1);
	free(p.data);
	test_dev_next(E, d, 2000, &p);
	is_int(o.n, 0, "observer: params read not counted");
	reply_echo(d, &p);
	free(p.data);
	test_run_until(E, &k[0].done, 2000);
	ok(o.n == 1 && o.group == SMP_GROUP_OS && o.id == SMP_OS_ECHO && o.result == 0,
	   "observer: answered OK is 0, with group and id");

	send_echo(c, "b", SMP_PRIO_INTERACTIVE, 0, &k[1]);
	test_dev_next(E, d, 2000, &p);
	test_dev_reply(d, p.data, 1, "bf62726308ff"); /* {"rc": 8} */
	free(p.data);
	test_run_until(E, &k[1].done, 2000);
	ok(o.n == 2 && o.result == 1, "observer: an SMP error status is 1");

	send_echo(c, "c", SMP_PRIO_INTERACTIVE, 0, &k[2]);
	test_dev_next(E, d, 2000, &p);
	free(p.data);
	test_run_until(E, &k[2].done, 2000);
	ok(o.n == 3 && o.result == -ETIMEDOUT, "observer: a timeout is -ETIMEDOUT");

	id = send_echo(c, "d", SMP_PRIO_INTERACTIVE, 0, &k[3]);
	is_int(smp_client_cancel(c, id), 0, "cancel");
	ok(o.n == 4 && o.result == -ECANCELED, "observer: a cancel is -ECANCELED, at the cancel");
	test_run_idle(E);
	is_int(o.n, 4, "observer: a cancelled request is counted once");

	smp_client_set_observer(c, NULL, NULL);
	send_echo(c, "e", SMP_PRIO_INTERACTIVE, 0, &k[0]);
	test_dev_next(E, d, 2000, &p);
	free(p.data);
	test_dev_close(d);
	k[0].done = false;
	test_run_until(E, &k[0].done, 2000);
	is_int(o.n, 4, "observer removed: nothing counted");
	smp_client_unref(c);
	test_dev_free(d);
	for (size_t i = 0; i < ELEMENTSOF(k); i++)
		call_reset(&k[i]);
}

int main(void)
{
	if (sd_event_new(&E) < 0)
		abort();
	test_params_and_echo();
	test_seq_wrap();
	test_matching();
	test_window();
	test_window_discovered_and_priority();
	test_timeout_serial();
	test_udp_retransmit();
	test_version_fallback();
	test_cancel();
	test_unref_in_callback();
	test_oversize();
	test_link_loss();
	test_params_defaults();
	test_observer();
	sd_event_unref(E);
	return tap_done();
}
