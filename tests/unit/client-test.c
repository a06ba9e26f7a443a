/* client-test: a scripted SOCK_SEQPACKET link and a scripted device for the client tests */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <nettle/sha2.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-error.h"
#include "smp-header.h"
#include "tests/tap.h"
#include "tests/unit/client-test.h"

static int test_link_send(struct smp_transport *t, const uint8_t *pkt, size_t len)
{
	struct test_link *l = (struct test_link *)t;

	if (l->down)
		return -ENOTCONN;
	if (send(l->fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static size_t test_link_budget(struct smp_transport *t, size_t buf_size)
{
	struct test_link *l = (struct test_link *)t;

	if (l->budget)
		return l->budget;
	return buf_size ? buf_size : 2048;
}

static void test_link_free(struct smp_transport *t)
{
	struct test_link *l = (struct test_link *)t;

	sd_event_source_disable_unref(l->io);
	close(l->fd);
	if (l->freed)
		*l->freed = true;
	free(l);
}

static const struct smp_transport_ops test_link_ops = {
	.name = "test-seqpacket",
	.send = test_link_send,
	.packet_budget = test_link_budget,
	.free = test_link_free,
};

static int test_link_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct test_link *l = userdata;
	static uint8_t buf[SMP_PACKET_MAX + 1];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0)
		return 0;
	if (n == 0) {
		sd_event_source_set_enabled(s, SD_EVENT_OFF);
		l->t.on_state(&l->t, -ECONNRESET, l->t.userdata);
		return 0;
	}
	l->t.on_packet(&l->t, buf, (size_t)n, l->t.userdata);
	return 0;
}

static int test_dev_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct test_dev *d = userdata;
	static uint8_t buf[SMP_PACKET_MAX + 1];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n <= 0) {
		if (n == 0)
			sd_event_source_set_enabled(s, SD_EVENT_OFF);
		return 0;
	}
	d->received++;
	if (d->auto_fn) {
		d->auto_fn(d, buf, (size_t)n, d->auto_userdata);
		return 0;
	}
	assert(d->tail - d->head < TEST_DEV_QUEUE);
	struct test_packet *p = &d->q[d->tail++ % TEST_DEV_QUEUE];
	p->data = malloc((size_t)n);
	assert(p->data);
	memcpy(p->data, buf, (size_t)n);
	p->len = (size_t)n;
	return 0;
}

void test_link_pair(sd_event *e, enum smp_link link, struct test_link **ret_link,
		    struct test_dev **ret_dev)
{
	struct test_link *l = calloc(1, sizeof(*l));
	struct test_dev *d = calloc(1, sizeof(*d));
	int fds[2];

	assert(l && d);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		abort();
	l->t.ops = &test_link_ops;
	l->t.link = link;
	l->fd = fds[0];
	d->fd = fds[1];
	if (sd_event_add_io(e, &l->io, l->fd, EPOLLIN, test_link_on_io, l) < 0 ||
	    sd_event_add_io(e, &d->io, d->fd, EPOLLIN, test_dev_on_io, d) < 0)
		abort();
	*ret_link = l;
	*ret_dev = d;
}

void test_dev_close(struct test_dev *d)
{
	d->io = sd_event_source_disable_unref(d->io);
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

void test_dev_free(struct test_dev *d)
{
	if (!d)
		return;
	test_dev_close(d);
	while (d->head != d->tail)
		free(d->q[d->head++ % TEST_DEV_QUEUE].data);
	free(d);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool test_run_until(sd_event *e, const bool *flag, unsigned timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;

	while (!*flag && now_ms() < end)
		sd_event_run(e, 5000);
	return *flag;
}

bool test_run_until_count(sd_event *e, const unsigned *count, unsigned want, unsigned timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;

	while (*count < want && now_ms() < end)
		sd_event_run(e, 5000);
	return *count >= want;
}

void test_run_idle(sd_event *e)
{
	while (sd_event_run(e, 0) > 0)
		;
}

unsigned test_dev_pending(const struct test_dev *d)
{
	return d->tail - d->head;
}

bool test_dev_next(sd_event *e, struct test_dev *d, unsigned timeout_ms, struct test_packet *ret)
{
	uint64_t end = now_ms() + timeout_ms;

	while (d->head == d->tail && now_ms() < end)
		sd_event_run(e, 5000);
	if (d->head == d->tail)
		return false;
	*ret = d->q[d->head++ % TEST_DEV_QUEUE];
	return true;
}

void test_dev_send(struct test_dev *d, const uint8_t *pkt, size_t len)
{
	if (send(d->fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)len)
		abort();
}

void test_dev_send_hex(struct test_dev *d, const char *hex)
{
	size_t len;
	uint8_t *p = tap_unhex(hex, &len);

	test_dev_send(d, p, len);
	free(p);
}

void test_dev_reply_raw(struct test_dev *d, const uint8_t *req, uint8_t version,
			const uint8_t *payload, size_t len)
{
	uint8_t *pkt = malloc(SMP_HEADER_SIZE + len);
	struct smp_header h;

	assert(pkt);
	if (smp_header_decode(req, SMP_HEADER_SIZE, &h) < 0)
		abort();
	h.version = version;
	h.op = (uint8_t)(h.op + 1);
	h.len = (uint16_t)len;
	h.flags = 0;
	smp_header_encode(&h, pkt);
	if (len)
		memcpy(pkt + SMP_HEADER_SIZE, payload, len);
	test_dev_send(d, pkt, SMP_HEADER_SIZE + len);
	free(pkt);
}

void test_dev_reply(struct test_dev *d, const uint8_t *req, uint8_t version,
		    const char *payload_hex)
{
	size_t len;
	uint8_t *p = tap_unhex(payload_hex, &len);

	test_dev_reply_raw(d, req, version, p, len);
	free(p);
}

/* ---- the device model ------------------------------------------------------------- */

static void model_header(struct smp_buf *out, const struct smp_header *req)
{
	struct smp_header h = *req;
	uint8_t *p = smp_buf_reserve(out, SMP_HEADER_SIZE);

	h.op = (uint8_t)(h.op + 1);
	h.version = MIN(h.version, 1);
	h.flags = 0;
	h.len = 0;
	smp_header_encode(&h, p);
	out->len += SMP_HEADER_SIZE;
}

static void model_finish(struct smp_buf *out)
{
	size_t n = out->len - SMP_HEADER_SIZE;

	out->data[2] = (uint8_t)(n >> 8);
	out->data[3] = (uint8_t)n;
}

static void model_rc(struct smp_buf *out, int rc)
{
	smp_cbor_put_map_indef(out);
	smp_cbor_put_text(out, "rc");
	smp_cbor_put_uint(out, (uint64_t)rc);
	smp_cbor_put_break(out);
}

static void model_err(struct smp_buf *out, unsigned group, unsigned rc, bool has_len, uint64_t len)
{
	smp_cbor_put_map_indef(out);
	smp_cbor_put_text(out, "err");
	smp_cbor_put_map_indef(out);
	smp_cbor_put_text(out, "group");
	smp_cbor_put_uint(out, group);
	smp_cbor_put_text(out, "rc");
	smp_cbor_put_uint(out, rc);
	smp_cbor_put_break(out);
	if (has_len) {
		smp_cbor_put_text(out, "len");
		smp_cbor_put_uint(out, len);
	}
	smp_cbor_put_break(out);
}

static void model_off(struct smp_buf *out, uint64_t off, int match)
{
	smp_cbor_put_map_indef(out);
	smp_cbor_put_text(out, "off");
	smp_cbor_put_uint(out, off);
	if (match >= 0) {
		smp_cbor_put_text(out, "match");
		smp_cbor_put_bool(out, match);
	}
	smp_cbor_put_break(out);
}

static bool model_slot_matches(const struct test_model *m)
{
	struct sha256_ctx ctx;
	uint8_t d[32];

	sha256_init(&ctx);
	sha256_update(&ctx, (size_t)m->len, m->slot);
	sha256_digest(&ctx, sizeof(d), d);
	return m->sha_len == 32 && memcmp(d, m->sha, 32) == 0;
}

static void model_upload(struct test_model *m, const cbor_item_t *root, struct smp_buf *out)
{
	const uint8_t *data = NULL, *sha = NULL;
	size_t n = 0, sha_len = 0;
	uint64_t off, len;

	m->n_uploads++;
	if (m->refuse_rc) {
		model_err(out, SMP_GROUP_IMAGE, (unsigned)m->refuse_rc, false, 0);
		return;
	}
	if (m->busy) {
		m->busy--;
		model_rc(out, SMP_RC_EBUSY);
		return;
	}
	if (smp_cbor_get_uint(root, "off", &off) < 0 ||
	    smp_cbor_get_bytes(root, "data", &data, &n) < 0) {
		model_err(out, SMP_GROUP_IMAGE, 20, false, 0);
		return;
	}
	if (off == 0) {
		m->n_first++;
		if (n < 32) {
			model_err(out, SMP_GROUP_IMAGE, 22, false, 0);
			return;
		}
		if (smp_cbor_get_uint(root, "len", &len) < 0) {
			model_err(out, SMP_GROUP_IMAGE, 21, false, 0);
			return;
		}
		(void)smp_cbor_get_bytes(root, "sha", &sha, &sha_len);
		if (m->session && sha_len > 0 && sha_len == m->sha_len &&
		    memcmp(sha, m->sha, sha_len) == 0) {
			model_off(out, m->off, -1); /* resume */
			return;
		}
		if (len > m->slot_cap) {
			model_err(out, SMP_GROUP_IMAGE, 30, false, 0);
			return;
		}
		if (m->image_check && m->slot_valid && sha_len == 32 && m->len == len &&
		    memcmp(sha, m->sha, 32) == 0 && model_slot_matches(m)) {
			model_off(out, len, 1); /* already there */
			return;
		}
		m->session = true;
		m->slot_valid = false;
		m->len = len;
		m->off = 0;
		m->sha_len = MIN(sha_len, sizeof(m->sha));
		if (sha_len)
			memcpy(m->sha, sha, m->sha_len);
	} else {
		if (!m->session) {
			model_off(out, 0, -1);
			return;
		}
		if (off != m->off) {
			model_off(out, m->off, -1); /* dropped, no error */
			return;
		}
	}
	if (off + n > m->len) {
		m->session = false;
		model_err(out, SMP_GROUP_IMAGE, 31, false, 0);
		return;
	}
	memcpy(m->slot + off, data, n);
	m->off += n;
	m->data_bytes += n;
	if (m->lose_session_at && m->off >= m->lose_session_at && m->off < m->len) {
		m->lose_session_at = 0;
		m->session = false; /* the answer is lost in the reset too */
		m->off = 0;
		return;
	}
	if (m->off == m->len) {
		m->session = false;
		m->slot_valid = true;
		if (m->corrupt)
			m->slot[m->len / 2] ^= 0xff;
		model_off(out, m->off, m->image_check ? model_slot_matches(m) : -1);
		return;
	}
	model_off(out, m->off, -1);
}

static void model_state(struct test_model *m, struct smp_buf *out)
{
	m->n_state++;
	smp_cbor_put_map_indef(out);
	smp_cbor_put_text(out, "images");
	smp_cbor_put_array_indef(out);
	if (m->state_has) {
		smp_cbor_put_map_indef(out);
		smp_cbor_put_text(out, "slot");
		smp_cbor_put_uint(out, 0);
		smp_cbor_put_text(out, "version");
		smp_cbor_put_text(out, "1.2.3.4");
		smp_cbor_put_text(out, "hash");
		smp_cbor_put_bytes(out, m->state_hash, 32);
		smp_cbor_put_text(out, "active");
		smp_cbor_put_bool(out, true);
		smp_cbor_put_break(out);
	}
	smp_cbor_put_break(out);
	smp_cbor_put_break(out);
}

static void model_fs(struct test_model *m, const struct smp_header *h, const cbor_item_t *root,
		     struct smp_buf *out)
{
	const uint8_t *data = NULL;
	uint64_t off, len;
	size_t n = 0;

	m->n_fs++;
	if (m->busy) {
		m->busy--;
		model_rc(out, SMP_RC_EBUSY);
		return;
	}
	if (smp_cbor_get_uint(root, "off", &off) < 0) {
		model_err(out, SMP_GROUP_FS, 1, false, 0);
		return;
	}
	if (h->op == SMP_OP_READ) {
		size_t size = m->dl_len;

		if (m->dl_shrink_at && off >= m->dl_shrink_at)
			size = m->dl_shrink_at - 1;
		n = off < size ? MIN(m->dl_chunk, size - (size_t)off) : 0;
		smp_cbor_put_map_indef(out);
		smp_cbor_put_text(out, "off");
		smp_cbor_put_uint(out, off);
		smp_cbor_put_text(out, "data");
		smp_cbor_put_bytes(out, n ? m->dl + off : NULL, n);
		if (off == 0) {
			smp_cbor_put_text(out, "len");
			smp_cbor_put_uint(out, m->dl_len);
		}
		smp_cbor_put_break(out);
		return;
	}
	if (smp_cbor_get_bytes(root, "data", &data, &n) < 0) {
		model_err(out, SMP_GROUP_FS, 1, false, 0);
		return;
	}
	if (off == 0) {
		if (smp_cbor_get_uint(root, "len", &len) < 0 || len > m->file_cap) {
			model_err(out, SMP_GROUP_FS, 1, false, 0);
			return;
		}
		m->file_len = 0;
	} else if (off != m->file_len) {
		model_err(out, SMP_GROUP_FS, 11, true, m->file_len);
		return;
	}
	if (off + n > m->file_cap) {
		model_err(out, SMP_GROUP_FS, 10, false, 0);
		return;
	}
	memcpy(m->file + off, data, n);
	m->file_len = (size_t)off + n;
	m->data_bytes += n;
	model_off(out, m->file_len, -1);
}

bool test_model_handle(struct test_model *m, const uint8_t *req, size_t len, struct smp_buf *out)
{
	cbor_item_t *root = NULL;
	struct smp_header h;

	m->n_requests++;
	if (m->drop_larger && len > m->drop_larger)
		return false;
	if (smp_header_decode(req, len, &h) < 0 || h.len != len - SMP_HEADER_SIZE)
		return false;
	if (smp_cbor_load(req + SMP_HEADER_SIZE, h.len, 8, &root) < 0)
		return false;
	model_header(out, &h);
	if (h.group == SMP_GROUP_OS && h.id == SMP_OS_PARAMS) {
		m->n_params++;
		if (m->buf_size) {
			smp_cbor_put_map_indef(out);
			smp_cbor_put_text(out, "buf_size");
			smp_cbor_put_uint(out, m->buf_size);
			smp_cbor_put_text(out, "buf_count");
			smp_cbor_put_uint(out, m->buf_count);
			smp_cbor_put_break(out);
		} else {
			model_rc(out, SMP_RC_ENOTSUP);
		}
	} else if (h.group == SMP_GROUP_OS && h.id == SMP_OS_ECHO) {
		char *text = NULL;

		(void)smp_cbor_get_text(root, "d", &text);
		smp_cbor_put_map_indef(out);
		smp_cbor_put_text(out, "r");
		smp_cbor_put_text(out, text ? text : "");
		smp_cbor_put_break(out);
		free(text);
	} else if (h.group == SMP_GROUP_IMAGE && h.id == SMP_IMAGE_UPLOAD && h.op == SMP_OP_WRITE) {
		size_t before = out->len;

		model_upload(m, root, out);
		if (out->len == before) {
			cbor_decref(&root);
			out->len -= SMP_HEADER_SIZE;
			return false;
		}
	} else if (h.group == SMP_GROUP_IMAGE && h.id == SMP_IMAGE_STATE && h.op == SMP_OP_READ) {
		model_state(m, out);
	} else if (h.group == SMP_GROUP_FS && h.id == SMP_FS_FILE) {
		model_fs(m, &h, root, out);
	} else {
		model_rc(out, SMP_RC_ENOTSUP);
	}
	cbor_decref(&root);
	model_finish(out);
	return true;
}
