/* client-test: a scripted SOCK_SEQPACKET link and a scripted device for the client tests */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "smp-buf.h"
#include "smp-transport.h"

/* The link under test: one SMP packet per SEQPACKET message, as BlueZ's
 * AcquireWrite/AcquireNotify sockets carry them. The device is the other
 * end of the socketpair, on the same loop. */
struct test_link {
	struct smp_transport t;
	int fd;
	sd_event_source *io;
	bool down;	/* send() answers -ENOTCONN */
	size_t budget;	/* packet_budget(): this when nonzero, else buf_size, else 2048 */
	bool *freed;	/* set when the client frees the link */
};

struct test_packet {
	uint8_t *data;
	size_t len;
};

#define TEST_DEV_QUEUE 1024

struct test_dev {
	int fd;
	sd_event_source *io;
	struct test_packet q[TEST_DEV_QUEUE];
	unsigned head, tail;
	unsigned received;
	/* When set, called for every request instead of queueing it. */
	void (*auto_fn)(struct test_dev *d, const uint8_t *pkt, size_t len, void *userdata);
	void *auto_userdata;
};

/* Creates a linked pair on e: *ret_link is handed to the client. */
void test_link_pair(sd_event *e, enum smp_link link, struct test_link **ret_link,
		    struct test_dev **ret_dev);
void test_dev_free(struct test_dev *d);
/* The device closes its end: the link sees EOF and reports -ECONNRESET. */
void test_dev_close(struct test_dev *d);

/* Runs the loop until *flag becomes true or timeout_ms passes; returns *flag. */
bool test_run_until(sd_event *e, const bool *flag, unsigned timeout_ms);
bool test_run_until_count(sd_event *e, const unsigned *count, unsigned want, unsigned timeout_ms);
/* Runs every event that is ready now, without waiting. */
void test_run_idle(sd_event *e);

/* Requests queued by the device, oldest first. */
unsigned test_dev_pending(const struct test_dev *d);
/* Waits (bounded) for the next request; false on timeout. The caller frees ret->data. */
bool test_dev_next(sd_event *e, struct test_dev *d, unsigned timeout_ms, struct test_packet *ret);
/* Sends bytes to the client. */
void test_dev_send(struct test_dev *d, const uint8_t *pkt, size_t len);
void test_dev_send_hex(struct test_dev *d, const char *hex);
/* Answers a request header: same group, id and seq, op + 1, the given version
 * and CBOR payload (hex). */
void test_dev_reply(struct test_dev *d, const uint8_t *req, uint8_t version,
		    const char *payload_hex);
void test_dev_reply_raw(struct test_dev *d, const uint8_t *req, uint8_t version,
			const uint8_t *payload, size_t len);

/* A device model answering like Zephyr's image, FS and OS groups (§5.7,
 * §6.1, §6.3, §9.1, §9.2), independent of any transport: one request in,
 * zero or one answer out. Fields marked "fault" inject misbehaviour. */
struct test_model {
	size_t buf_size;   /* params answer; 0 = {"rc": 8} */
	unsigned buf_count;
	bool image_check;  /* CONFIG_IMG_ENABLE_IMAGE_CHECK: "match" on the last chunk */
	uint8_t *slot;     /* the secondary slot */
	size_t slot_cap;
	/* What image state lists (slot 0, running) when state_has. */
	bool state_has;
	uint8_t state_hash[32];
	/* the upload session */
	bool session;
	uint64_t off, len;
	uint8_t sha[32];
	size_t sha_len;
	bool slot_valid;   /* the slot holds a complete upload of len bytes */
	/* the file system: one file for uploads, one served for downloads */
	uint8_t *file;
	size_t file_len, file_cap;
	const uint8_t *dl;
	size_t dl_len, dl_chunk;
	/* counters */
	unsigned n_requests, n_uploads, n_first, n_state, n_params, n_fs;
	uint64_t data_bytes;
	/* faults */
	unsigned busy;		  /* answer EBUSY to the next n upload requests */
	uint64_t lose_session_at; /* once off reaches it: the device "resets" */
	bool corrupt;		  /* flip a byte of the slot: match false */
	size_t drop_larger;	  /* requests longer than this vanish (no answer) */
	int refuse_rc;		  /* nonzero: image upload answers err {1, rc} */
	size_t dl_shrink_at;	  /* download: file shrinks to this once off reaches it */
};

/* Returns true and the answer in *out (bytes appended), false for no answer. */
bool test_model_handle(struct test_model *m, const uint8_t *req, size_t len, struct smp_buf *out);
