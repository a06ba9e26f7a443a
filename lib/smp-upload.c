/* smp-upload: image and file transfers as single operations on a client, with progress */
#include <errno.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "smp-chunk.h"
#include "smp-fs.h"
#include "smp-image.h"
#include "smp-upload.h"

/* Zephyr refuses a first image chunk shorter than the image header (§6.3). */
#define SMP_UPLOAD_FIRST_CHUNK_MIN 32
/* Halving the chunk after timeouts stops here. */
#define SMP_UPLOAD_CHUNK_FLOOR 64

enum smp_xfer_kind {
	SMP_XFER_IMAGE_UPLOAD,
	SMP_XFER_FILE_UPLOAD,
	SMP_XFER_FILE_DOWNLOAD,
};

enum smp_xfer_phase {
	SMP_XFER_PARAMS,  /* waiting for MCUmgr params */
	SMP_XFER_STATE,	  /* reading image state for the skip check */
	SMP_XFER_FIRST,	  /* awaiting the first chunk's answer (images: more chunks behind it) */
	SMP_XFER_STREAM,  /* chunks up to the window */
	SMP_XFER_BACKOFF, /* waiting after a busy answer */
	SMP_XFER_DONE,
};

struct smp_xfer;

/* One request of the transfer. It holds a reference to the transfer while
 * x is set; x is cleared when the transfer stops caring about it. */
struct smp_xfer_chunk {
	TAILQ_ENTRY(smp_xfer_chunk) link;
	struct smp_xfer *x;
	uint64_t id;
	uint64_t off;
	size_t len;
	bool first;
};

struct smp_xfer {
	unsigned n_ref;
	struct smp_client *client;
	enum smp_xfer_kind kind;
	enum smp_xfer_phase phase;
	enum smp_xfer_phase resume_phase; /* after the backoff */
	uint64_t id;			  /* the operation's id, registered with the client */
	uint64_t aux_id;		  /* params waiter or state read in progress */

	const uint8_t *data;
	int fd;
	uint64_t size;
	uint8_t sha[32];
	uint8_t image_hash[32];
	bool has_image_hash;
	uint32_t image;
	bool upgrade;
	char *name;
	struct smp_upload_options opts;

	smp_upload_progress_fn progress;
	smp_upload_done_fn done;
	smp_download_data_fn on_data;
	void *userdata;
	void (*destroy)(void *);

	TAILQ_HEAD(, smp_xfer_chunk) chunks;
	unsigned n_chunks;
	uint64_t next_off; /* where the next chunk starts */
	uint64_t dev_off;  /* the device's offset as last confirmed in this session */
	uint64_t reported; /* last progress reported */
	unsigned failures; /* in a row, without progress */
	unsigned timeouts; /* in a row */
	size_t chunk_cap;  /* 0 = none; set after repeated timeouts */
	uint8_t *buf;	   /* chunk read from fd */
	size_t buf_size;
	sd_event_source *backoff;
	struct smp_upload_result result;
};

void smp_upload_options_init(struct smp_upload_options *o)
{
	*o = (struct smp_upload_options){
		.first_timeout_ms = 30000,
		.max_retries = 5,
		.busy_backoff_ms = 250,
		.check_state = true,
	};
}

static struct smp_xfer *smp_xfer_ref(struct smp_xfer *x)
{
	x->n_ref++;
	return x;
}

static void smp_xfer_unref(struct smp_xfer *x)
{
	if (!x || --x->n_ref > 0)
		return;
	sd_event_source_disable_unref(x->backoff);
	smp_client_unref(x->client);
	free(x->name);
	free(x->buf);
	free(x);
}

static void smp_xfer_unref_void(void *userdata)
{
	smp_xfer_unref(userdata);
}

static void smp_xfer_chunk_free(void *userdata)
{
	struct smp_xfer_chunk *ch = userdata;
	struct smp_xfer *x = ch->x;

	if (x) {
		TAILQ_REMOVE(&x->chunks, ch, link);
		x->n_chunks--;
		smp_xfer_unref(x);
	}
	free(ch);
}

/* Cancels every chunk in flight: on an in-order device their answers can
 * no longer tell anything new. */
static void smp_xfer_drop_chunks(struct smp_xfer *x)
{
	struct smp_xfer_chunk *ch;

	while ((ch = TAILQ_FIRST(&x->chunks))) {
		uint64_t id = ch->id;

		TAILQ_REMOVE(&x->chunks, ch, link);
		x->n_chunks--;
		ch->x = NULL;
		(void)smp_client_cancel(x->client, id); /* frees ch */
		smp_xfer_unref(x);
	}
}

/* Ends the transfer once: done (unless cancelled), then destroy. */
static void smp_xfer_end(struct smp_xfer *x, int error, bool call_done)
{
	if (x->phase == SMP_XFER_DONE)
		return;
	x->phase = SMP_XFER_DONE;
	smp_xfer_drop_chunks(x);
	if (x->aux_id) {
		uint64_t id = x->aux_id;

		x->aux_id = 0;
		(void)smp_client_cancel(x->client, id);
	}
	x->backoff = sd_event_source_disable_unref(x->backoff);
	if (call_done) {
		smp_client_op_unregister(x->client, x->id);
		if (x->done)
			x->done(error, &x->result, x->userdata);
	}
	if (x->destroy)
		x->destroy(x->userdata);
	smp_xfer_unref(x); /* the operation's own reference */
}

static void smp_xfer_on_cancel(void *opdata)
{
	smp_xfer_end(opdata, -ECANCELED, false);
}

static bool smp_xfer_running(const struct smp_xfer *x)
{
	return x->phase != SMP_XFER_DONE;
}

/* The device confirmed off: progress, and the failure count starts over. */
static void smp_xfer_advance(struct smp_xfer *x, uint64_t off)
{
	if (off > x->dev_off) {
		x->dev_off = off;
		x->failures = 0;
	}
	x->result.offset = x->dev_off;
	if (x->dev_off > x->reported) {
		x->reported = x->dev_off;
		if (x->progress)
			x->progress(x->dev_off, x->size, x->userdata);
	}
}

/* Counts a failure; ends the transfer with error when there were too many.
 * Returns true when the transfer goes on. */
static bool smp_xfer_count_failure(struct smp_xfer *x, int error)
{
	if (++x->failures > x->opts.max_retries) {
		smp_xfer_end(x, error, true);
		return false;
	}
	return true;
}

static unsigned smp_xfer_window(const struct smp_xfer *x)
{
	unsigned w = smp_client_get_bulk_window(x->client);

	if (x->opts.window)
		w = MIN(w, x->opts.window);
	return MAX(w, 1u);
}

static int smp_xfer_read(struct smp_xfer *x, uint64_t off, size_t n, const uint8_t **ret)
{
	size_t done = 0;

	if (x->data) {
		*ret = x->data + off;
		return 0;
	}
	if (n > x->buf_size) {
		uint8_t *b = realloc(x->buf, n);

		if (!b)
			return -ENOMEM;
		x->buf = b;
		x->buf_size = n;
	}
	while (done < n) {
		ssize_t k = pread(x->fd, x->buf + done, n - done, (off_t)(off + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO; /* a short file is as bad as a failing one */
		done += (size_t)k;
	}
	*ret = x->buf;
	return 0;
}

static void smp_xfer_on_chunk(struct smp_client *c, int error, const struct smp_response *rsp,
			      void *userdata);

/* Sends the chunk that starts at off; the first one carries the session map. */
static int smp_xfer_send_chunk(struct smp_xfer *x, uint64_t off, bool first)
{
	size_t budget = smp_client_packet_budget(x->client), fixed, n;
	struct smp_image_upload_args ia = { 0 };
	struct smp_fs_upload_args fa = { 0 };
	struct smp_request *req;
	struct smp_xfer_chunk *ch;
	const uint8_t *data = NULL;
	unsigned timeout = x->opts.timeout_ms;
	int r;

	if (x->kind == SMP_XFER_IMAGE_UPLOAD) {
		ia = (struct smp_image_upload_args){
			.off = off,
			.len = x->size,
			.image = x->image,
			.has_image = true,
			.sha = x->sha,
			.sha_len = sizeof(x->sha),
			.upgrade = x->upgrade,
			.has_upgrade = true,
		};
		fixed = smp_image_upload_packet_size(&ia);
		/* Chunks sent behind the first wait with it while the device
		 * erases the slot. */
		if (first || x->phase == SMP_XFER_FIRST)
			timeout = x->opts.first_timeout_ms;
	} else {
		fa = (struct smp_fs_upload_args){ .off = off, .name = x->name, .len = x->size };
		fixed = smp_fs_upload_packet_size(&fa);
	}
	n = smp_chunk_max_data(budget, fixed);
	if (x->chunk_cap)
		n = MIN(n, x->chunk_cap);
	if (x->opts.max_chunk)
		n = MIN(n, x->opts.max_chunk);
	n = (size_t)MIN((uint64_t)n, x->size - off);
	if (x->kind == SMP_XFER_IMAGE_UPLOAD && first &&
	    n < MIN((uint64_t)SMP_UPLOAD_FIRST_CHUNK_MIN, x->size))
		return -EMSGSIZE;
	if (n == 0 && off < x->size)
		return -EMSGSIZE;

	if (n > 0) {
		r = smp_xfer_read(x, off, n, &data);
		if (r < 0)
			return r;
	}
	if (x->kind == SMP_XFER_IMAGE_UPLOAD) {
		ia.data = data;
		ia.data_len = n;
		r = smp_image_upload_request(&ia, &req);
	} else {
		fa.data = data;
		fa.data_len = n;
		r = smp_fs_upload_request(&fa, &req);
	}
	if (r < 0)
		return r;

	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		smp_request_free(req);
		return -ENOMEM;
	}
	ch->off = off;
	ch->len = n;
	ch->first = first;
	r = smp_client_send(x->client, req, SMP_PRIO_BULK, timeout, smp_xfer_on_chunk, ch,
			    smp_xfer_chunk_free, &ch->id);
	if (r < 0) {
		free(ch);
		return r;
	}
	ch->x = smp_xfer_ref(x);
	TAILQ_INSERT_TAIL(&x->chunks, ch, link);
	x->n_chunks++;
	x->next_off = off + n;
	x->result.chunks++;
	x->result.bytes_sent += n;
	return 0;
}

static int smp_xfer_send_download(struct smp_xfer *x)
{
	struct smp_request *req;
	struct smp_xfer_chunk *ch;
	int r;

	r = smp_fs_download_request(x->name, x->next_off, &req);
	if (r < 0)
		return r;
	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		smp_request_free(req);
		return -ENOMEM;
	}
	ch->off = x->next_off;
	ch->first = x->next_off == 0;
	r = smp_client_send(x->client, req, SMP_PRIO_BULK, x->opts.timeout_ms, smp_xfer_on_chunk, ch,
			    smp_xfer_chunk_free, &ch->id);
	if (r < 0) {
		free(ch);
		return r;
	}
	ch->x = smp_xfer_ref(x);
	TAILQ_INSERT_TAIL(&x->chunks, ch, link);
	x->n_chunks++;
	return 0;
}

/*
 * Sends what the phase and the window allow.
 *
 * An image upload does not wait for the first chunk's answer before it
 * fills the window: the chunks after it go out at once (with the first
 * chunk's timeout: they wait behind its slot erase). That is safe because
 * the device serves its requests in order and writes a chunk only at the
 * offset it expects (§6.3: any other is dropped and answered with the
 * expected offset), the sha naming one file: a new session expects exactly
 * these chunks; a resumed one (same sha) writes those that happen to start
 * at its offset, with the right bytes, and answers the others with it; a
 * refused first chunk ends the session (and the upload), so the ones after
 * it find none and write nothing. What the first answer says decides what
 * happens to those already sent (smp_xfer_on_upload_answer()).
 */
static void smp_xfer_fill(struct smp_xfer *x)
{
	int r;

	while (x->phase == SMP_XFER_FIRST || x->phase == SMP_XFER_STREAM) {
		if (x->kind == SMP_XFER_FILE_DOWNLOAD) {
			if (x->n_chunks > 0)
				return;
			r = smp_xfer_send_download(x);
		} else if (x->phase == SMP_XFER_FIRST && x->n_chunks == 0) {
			r = smp_xfer_send_chunk(x, 0, true);
		} else {
			if (x->phase == SMP_XFER_FIRST && x->kind != SMP_XFER_IMAGE_UPLOAD)
				return;
			if (x->n_chunks >= smp_xfer_window(x))
				return;
			if (x->next_off >= x->size) {
				if (x->n_chunks > 0 || x->phase == SMP_XFER_FIRST)
					return;
				/* Everything was answered, yet the device has not
				 * reported the end: send the tail again. */
				if (!smp_xfer_count_failure(x, -EPROTO))
					return;
				x->next_off = x->dev_off;
				x->result.resends++;
			}
			r = smp_xfer_send_chunk(x, x->next_off, false);
		}
		if (r < 0) {
			smp_xfer_end(x, r, true);
			return;
		}
		if (x->kind == SMP_XFER_FILE_DOWNLOAD)
			return;
	}
}

static void smp_xfer_begin_session(struct smp_xfer *x)
{
	x->phase = SMP_XFER_FIRST;
	x->next_off = 0;
	x->dev_off = 0;
	smp_xfer_fill(x);
}

static int smp_xfer_on_backoff(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct smp_xfer *x = smp_xfer_ref(userdata);

	if (x->phase == SMP_XFER_BACKOFF) {
		x->phase = x->resume_phase;
		smp_xfer_fill(x);
	}
	smp_xfer_unref(x);
	return 0;
}

/* A timeout or a busy answer: start again from the last confirmed offset
 * (busy: after a pause). */
static void smp_xfer_retry(struct smp_xfer *x, const struct smp_xfer_chunk *ch, int error)
{
	sd_event *e = smp_client_get_event(x->client);
	uint64_t now, delay;
	int r;

	if (!smp_xfer_count_failure(x, error))
		return;
	if (error == -ETIMEDOUT && ++x->timeouts >= 2 && ch->len > SMP_UPLOAD_CHUNK_FLOOR)
		/* §16.3: a packet too large for the device is dropped silently. */
		x->chunk_cap = MAX(ch->len / 2, (size_t)SMP_UPLOAD_CHUNK_FLOOR);
	smp_xfer_drop_chunks(x);
	x->result.resends++;
	if (x->phase == SMP_XFER_STREAM)
		x->next_off = x->kind == SMP_XFER_FILE_DOWNLOAD ? ch->off : x->dev_off;
	if (error != -EBUSY) {
		smp_xfer_fill(x);
		return;
	}

	delay = (uint64_t)x->opts.busy_backoff_ms << MIN(x->failures - 1, 10u);
	r = sd_event_now(e, CLOCK_MONOTONIC, &now);
	if (r >= 0 && !x->backoff) {
		r = sd_event_add_time(e, &x->backoff, CLOCK_MONOTONIC, now + delay * 1000, 1000,
				      smp_xfer_on_backoff, x);
		if (r >= 0)
			(void)sd_event_source_set_description(x->backoff, "smp-upload-backoff");
	} else if (r >= 0) {
		r = sd_event_source_set_time(x->backoff, now + delay * 1000);
		if (r >= 0)
			r = sd_event_source_set_enabled(x->backoff, SD_EVENT_ONESHOT);
	}
	if (r < 0) {
		smp_xfer_end(x, r, true);
		return;
	}
	x->resume_phase = x->phase;
	x->phase = SMP_XFER_BACKOFF;
}

/* Only the generic EBUSY is worth waiting for: group codes such as
 * NO_FREE_SLOT or IMAGE_ALREADY_PENDING need a reset, not patience. */
static bool smp_xfer_busy(const struct smp_status *s)
{
	return s->kind == SMP_STATUS_RC && s->rc == SMP_RC_EBUSY;
}

static void smp_xfer_on_upload_answer(struct smp_xfer *x, const struct smp_xfer_chunk *ch,
				      const struct smp_response *rsp)
{
	struct smp_image_upload_result u = { 0 };
	uint64_t end = ch->off + ch->len, len;
	/* Nothing confirmed before this first chunk's answer. */
	bool fresh = ch->first && x->reported == 0;
	int r;

	if (rsp->status.kind != SMP_STATUS_OK) {
		if (smp_xfer_busy(&rsp->status)) {
			smp_xfer_retry(x, ch, -EBUSY);
			return;
		}
		/* FS: a wrong offset is refused with the size of the file on
		 * the device, which is where the next chunk has to start: the
		 * same news as an image answer with another offset. */
		if (x->kind != SMP_XFER_FILE_UPLOAD || smp_fs_upload_error_len(rsp, &len) < 0 ||
		    len > x->size) {
			x->result.status = rsp->status;
			smp_xfer_end(x, -EREMOTEIO, true);
			return;
		}
		u.off = len;
		r = 0;
	} else if (x->kind == SMP_XFER_IMAGE_UPLOAD)
		r = smp_image_upload_parse(rsp, &u);
	else
		r = smp_fs_upload_parse(rsp, &u.off);
	if (r < 0 || u.off > x->size) {
		smp_xfer_end(x, -EBADMSG, true);
		return;
	}
	x->timeouts = 0;

	if (u.off == x->size) {
		smp_xfer_advance(x, u.off);
		if (!smp_xfer_running(x))
			return;
		if (x->kind == SMP_XFER_IMAGE_UPLOAD) {
			/* Answered complete at once: the device already had these bytes. */
			if (fresh)
				x->result.skipped = true;
			if (u.has_match && !u.match) {
				smp_xfer_end(x, -EILSEQ, true);
				return;
			}
			x->result.verified = u.has_match;
		}
		smp_xfer_end(x, 0, true);
		return;
	}

	if (x->phase == SMP_XFER_FIRST && !ch->first) {
		/* Overtook the first chunk's answer (reordered on the way): only
		 * that answer tells what the session is. */
		if (u.off > x->dev_off)
			smp_xfer_advance(x, u.off);
		if (smp_xfer_running(x))
			smp_xfer_fill(x);
		return;
	}

	if (u.off == 0) {
		/* No session on the device (reset, erase, another transport),
		 * or it took nothing of the first chunk: send the whole first
		 * chunk again (§16.8). */
		if (!smp_xfer_count_failure(x, -EPROTO))
			return;
		if (!ch->first)
			x->result.restarts++;
		smp_xfer_drop_chunks(x);
		smp_xfer_begin_session(x);
		return;
	}

	if (ch->first) {
		x->phase = SMP_XFER_STREAM;
		if (u.off != ch->len) {
			/* A resumed session: the chunks sent behind the first one
			 * were answered with its offset (or written, where one
			 * started there: a duplicate answer then moves us on). */
			x->result.resumed_at = u.off;
			smp_xfer_drop_chunks(x);
			x->next_off = u.off;
		}
		/* Else the chunks behind it are on their way, next_off after them. */
		smp_xfer_advance(x, u.off);
	} else if (u.off == end) {
		smp_xfer_advance(x, u.off);
	} else if (u.off > end) {
		/* A duplicate (a retransmission of a chunk already written): the
		 * device is further on. */
		smp_xfer_advance(x, u.off);
		if (x->next_off < u.off)
			x->next_off = u.off;
	} else if (u.off >= x->dev_off) {
		/* The device wants u.off: a chunk before this one was lost, and
		 * everything sent after it was dropped or will be. Go back once. */
		smp_xfer_advance(x, u.off);
		if (!smp_xfer_running(x) || !smp_xfer_count_failure(x, -EPROTO))
			return;
		smp_xfer_drop_chunks(x);
		x->next_off = u.off;
		x->result.resends++;
	}
	/* else: an older answer overtaken by newer ones; nothing to learn. */
	smp_xfer_fill(x);
}

static void smp_xfer_on_download_answer(struct smp_xfer *x, const struct smp_xfer_chunk *ch,
					const struct smp_response *rsp)
{
	_cleanup_free_ struct smp_fs_download *d = NULL;
	int r;

	if (rsp->status.kind != SMP_STATUS_OK) {
		if (smp_xfer_busy(&rsp->status)) {
			smp_xfer_retry(x, ch, -EBUSY);
			return;
		}
		x->result.status = rsp->status;
		smp_xfer_end(x, -EREMOTEIO, true);
		return;
	}
	r = smp_fs_download_parse(rsp, &d);
	if (r < 0 || d->off != ch->off || (ch->off == 0 && !d->has_len)) {
		smp_xfer_end(x, -EBADMSG, true);
		return;
	}
	x->timeouts = 0;
	if (ch->off == 0) {
		x->size = d->len;
		x->result.size = d->len;
	}
	if (d->data_len > x->size - d->off) {
		smp_xfer_end(x, -EBADMSG, true);
		return;
	}
	if (d->data_len == 0 && d->off < x->size) {
		/* §9.1: the file shrank under us. */
		smp_xfer_end(x, -ENODATA, true);
		return;
	}
	if (d->data_len > 0 && x->on_data) {
		r = x->on_data(d->off, d->data, d->data_len, x->size, x->userdata);
		if (r < 0) {
			smp_xfer_end(x, r, true);
			return;
		}
		if (!smp_xfer_running(x))
			return;
	}
	x->next_off = d->off + d->data_len;
	smp_xfer_advance(x, x->next_off);
	if (!smp_xfer_running(x))
		return;
	if (x->next_off == x->size) {
		smp_xfer_end(x, 0, true);
		return;
	}
	smp_xfer_fill(x);
}

static void smp_xfer_on_chunk(struct smp_client *c, int error, const struct smp_response *rsp,
			      void *userdata)
{
	struct smp_xfer_chunk *ch = userdata;
	struct smp_xfer *x = ch->x;

	if (!x)
		return;
	/* The chunk's reference to x is ours until the end of this call. */
	TAILQ_REMOVE(&x->chunks, ch, link);
	x->n_chunks--;
	ch->x = NULL;

	if (smp_xfer_running(x)) {
		if (error == -ETIMEDOUT)
			smp_xfer_retry(x, ch, error);
		else if (error < 0)
			smp_xfer_end(x, error, true);
		else if (x->kind == SMP_XFER_FILE_DOWNLOAD)
			smp_xfer_on_download_answer(x, ch, rsp);
		else
			smp_xfer_on_upload_answer(x, ch, rsp);
	}
	smp_xfer_unref(x);
}

static void smp_xfer_on_state(struct smp_client *c, int error, const struct smp_response *rsp,
			      void *userdata)
{
	struct smp_image_state *s = NULL;
	struct smp_xfer *x = userdata;
	bool held = false;

	x->aux_id = 0;
	if (!smp_xfer_running(x))
		return;
	if (error == -ECONNRESET || error == -ENOTCONN) {
		smp_xfer_end(x, error, true);
		return;
	}
	/* A state read that fails only costs the skip. */
	if (error == 0 && smp_image_state_parse(rsp, &s) == 0)
		for (size_t i = 0; i < s->n_slots && !held; i++)
			held = s->slots[i].image == x->image && s->slots[i].has_hash &&
			       memcmp(s->slots[i].hash, x->image_hash, sizeof(x->image_hash)) == 0;
	smp_image_state_free(s);
	if (!held) {
		smp_xfer_begin_session(x);
		return;
	}
	x->result.skipped = true;
	smp_xfer_advance(x, x->size);
	if (smp_xfer_running(x))
		smp_xfer_end(x, 0, true);
}

static void smp_xfer_on_params(struct smp_client *c, int error, const struct smp_response *rsp,
			       void *userdata)
{
	struct smp_xfer *x = userdata;
	struct smp_request *req;
	int r;

	x->aux_id = 0;
	if (!smp_xfer_running(x))
		return;
	if (error < 0) {
		smp_xfer_end(x, error, true);
		return;
	}
	if (x->kind == SMP_XFER_FILE_DOWNLOAD) {
		x->phase = SMP_XFER_STREAM;
		smp_xfer_fill(x);
		return;
	}
	if (x->kind != SMP_XFER_IMAGE_UPLOAD || !x->opts.check_state || !x->has_image_hash) {
		smp_xfer_begin_session(x);
		return;
	}
	x->phase = SMP_XFER_STATE;
	r = smp_image_state_read_request(&req);
	if (r < 0) {
		smp_xfer_end(x, r, true);
		return;
	}
	r = smp_client_send(x->client, req, SMP_PRIO_BULK, x->opts.timeout_ms, smp_xfer_on_state,
			    smp_xfer_ref(x), smp_xfer_unref_void, &x->aux_id);
	if (r < 0) {
		x->n_ref--; /* the failed send took no reference */
		smp_xfer_end(x, r, true);
	}
}

static int smp_sha256_source(const uint8_t *data, int fd, uint64_t size, uint8_t out[32])
{
	struct sha256_ctx ctx;
	uint8_t buf[65536];
	uint64_t off = 0;

	sha256_init(&ctx);
	if (data)
		sha256_update(&ctx, (size_t)size, data);
	else
		while (off < size) {
			ssize_t k = pread(fd, buf, (size_t)MIN((uint64_t)sizeof(buf), size - off),
					  (off_t)off);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return -EIO;
			sha256_update(&ctx, (size_t)k, buf);
			off += (uint64_t)k;
		}
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
	return 0;
}

static int smp_xfer_new(struct smp_client *c, enum smp_xfer_kind kind, const char *name,
			const struct smp_upload_options *opts, smp_upload_progress_fn progress,
			smp_upload_done_fn done, void *userdata, void (*destroy)(void *),
			struct smp_xfer **ret)
{
	struct smp_xfer *x;

	if (!c || (kind != SMP_XFER_IMAGE_UPLOAD && (!name || !*name)))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->n_ref = 1;
	x->kind = kind;
	x->fd = -1;
	TAILQ_INIT(&x->chunks);
	if (opts)
		x->opts = *opts;
	else
		smp_upload_options_init(&x->opts);
	if (name) {
		x->name = strdup(name);
		if (!x->name) {
			free(x);
			return -ENOMEM;
		}
	}
	x->progress = progress;
	x->done = done;
	x->userdata = userdata;
	x->destroy = destroy;
	x->client = smp_client_ref(c);
	*ret = x;
	return 0;
}

static int smp_xfer_set_source(struct smp_xfer *x, const struct smp_upload_source *src)
{
	if (!src || (!src->data && src->fd < 0))
		return -EINVAL;
	x->data = src->data;
	x->fd = src->fd;
	x->size = src->size;
	if (!src->data && x->size == 0) {
		struct stat st;

		if (fstat(src->fd, &st) < 0)
			return -errno;
		x->size = (uint64_t)st.st_size;
	}
	x->result.size = x->size;
	return 0;
}

/* Registers the operation and asks for params; on failure nothing was called. */
static int smp_xfer_start(struct smp_xfer *x, uint64_t *ret_id)
{
	int r;

	r = smp_client_op_register(x->client, smp_xfer_on_cancel, x, &x->id);
	if (r < 0)
		return r;
	x->phase = SMP_XFER_PARAMS;
	r = smp_client_query_params(x->client, smp_xfer_on_params, smp_xfer_ref(x),
				    smp_xfer_unref_void, &x->aux_id);
	if (r < 0) {
		x->n_ref--;
		smp_client_op_unregister(x->client, x->id);
		return r;
	}
	if (ret_id)
		*ret_id = x->id;
	return 0;
}

/* Drops a transfer that never started: no callback, no destroy. */
static void smp_xfer_abandon(struct smp_xfer *x)
{
	x->destroy = NULL;
	smp_xfer_unref(x);
}

int smp_image_upload(struct smp_client *c, const struct smp_upload_source *src,
		     const struct smp_upload_options *opts, smp_upload_progress_fn progress,
		     smp_upload_done_fn done, void *userdata, void (*destroy)(void *),
		     uint64_t *ret_id)
{
	struct smp_xfer *x;
	int r;

	r = smp_xfer_new(c, SMP_XFER_IMAGE_UPLOAD, NULL, opts, progress, done, userdata, destroy,
			 &x);
	if (r < 0)
		return r;
	r = smp_xfer_set_source(x, src);
	if (r >= 0 && x->size == 0)
		r = -EINVAL;
	if (r >= 0) {
		x->image = src->image;
		x->upgrade = src->upgrade;
		x->has_image_hash = src->has_image_hash;
		memcpy(x->image_hash, src->image_hash, sizeof(x->image_hash));
		if (src->has_sha)
			memcpy(x->sha, src->sha, sizeof(x->sha));
		else
			r = smp_sha256_source(x->data, x->fd, x->size, x->sha);
	}
	if (r >= 0)
		r = smp_xfer_start(x, ret_id);
	if (r < 0)
		smp_xfer_abandon(x);
	return r;
}

int smp_file_upload(struct smp_client *c, const char *name, const struct smp_upload_source *src,
		    const struct smp_upload_options *opts, smp_upload_progress_fn progress,
		    smp_upload_done_fn done, void *userdata, void (*destroy)(void *),
		    uint64_t *ret_id)
{
	struct smp_xfer *x;
	int r;

	r = smp_xfer_new(c, SMP_XFER_FILE_UPLOAD, name, opts, progress, done, userdata, destroy,
			 &x);
	if (r < 0)
		return r;
	r = smp_xfer_set_source(x, src);
	if (r >= 0)
		r = smp_xfer_start(x, ret_id);
	if (r < 0)
		smp_xfer_abandon(x);
	return r;
}

int smp_file_download(struct smp_client *c, const char *name,
		      const struct smp_upload_options *opts, smp_download_data_fn data,
		      smp_upload_progress_fn progress, smp_upload_done_fn done, void *userdata,
		      void (*destroy)(void *), uint64_t *ret_id)
{
	struct smp_xfer *x;
	int r;

	r = smp_xfer_new(c, SMP_XFER_FILE_DOWNLOAD, name, opts, progress, done, userdata, destroy,
			 &x);
	if (r < 0)
		return r;
	x->on_data = data;
	x->size = UINT64_MAX; /* until the first answer tells */
	r = smp_xfer_start(x, ret_id);
	if (r < 0)
		smp_xfer_abandon(x);
	return r;
}

int smp_upload_cancel(struct smp_client *c, uint64_t id)
{
	return smp_client_cancel(c, id);
}
