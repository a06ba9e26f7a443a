/* smp-upload: image and file transfers as single operations on a client, with progress */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-client.h"
#include "smp-error.h"

/* Image upload (smp-protocol.md §6.3, §6.3.1, §16.6, §16.8):
 * - MCUmgr params first (smp_client_query_params), then optionally the
 *   image state: when a slot of the target image already holds image_hash,
 *   the operation ends at once with result.skipped.
 * - The first chunk (off 0) carries len, the full 32-byte file SHA-256,
 *   image and upgrade, with the long first-chunk timeout (slot erase). The
 *   chunks after it follow at once, up to the window, with the same timeout
 *   (they wait behind the erase). The device writes a chunk only at the
 *   offset it expects and answers any other with that offset, so this is
 *   safe: when the first answer resumes an earlier session (off > 0, same
 *   sha) or reports the image already there (off == len, match true), the
 *   chunks still in flight are cancelled and the transfer goes on from the
 *   answer's offset (or ends).
 * - Later chunks are pipelined up to the window (bulk priority, so
 *   interactive calls on the same client pass them), each sized to fill the
 *   link's budget (smp-chunk.h). The next offset always comes from the
 *   device's answers, never from a local counter.
 * - An answer expecting an offset below the chunk's (a chunk was lost, or
 *   dropped by the device because an earlier one was) makes the operation
 *   cancel the chunks still in flight, all doomed on an in-order device,
 *   and continue from that offset once: later answers of the cancelled
 *   chunks are ignored, so nothing is sent twice more than needed. An answer
 *   beyond the chunk (a duplicate) only moves the offset forward.
 * - off == 0 after data was accepted (device reset, erase, another
 *   transport): the whole first-chunk map is sent again (§16.8).
 * - A timeout, or a busy answer (EBUSY, retried after a doubling backoff),
 *   resends from the last acknowledged offset; two timeouts in a row also
 *   halve the chunk size (§16.3: a device drops what it cannot hold).
 *   max_retries failures without progress end the operation.
 * - match true: result.verified; match false: -EILSEQ (the slot does not
 *   hold the file that was sent: erase and upload again); match absent:
 *   not verified (read the image state to check).
 *
 * File upload (§9.2): the same loop on the FS group, without sha/match/skip;
 * an "offset not valid" answer carrying the device's file size continues
 * from that size. File download (§9.1): sequential reads, off += size(data)
 * until len; empty data before the end means the file shrank (-ENODATA).
 *
 * Every operation holds a reference to the client, registers its id with
 * it (smp_client_cancel() or smp_upload_cancel() end it), and follows the
 * client's callback rules: callbacks run from the loop only, may cancel or
 * unref, and destroy(userdata) runs exactly once, after done or on cancel
 * (done is not called then). The source must stay valid (memory) or open
 * (fd) until then; fds are read with pread() and never closed. */

struct smp_upload_source {
	const uint8_t *data; /* the file in memory, or NULL to read fd */
	int fd;
	uint64_t size;	     /* bytes; 0 with an fd means fstat() it */
	/* Image upload only. */
	uint8_t sha[32];     /* SHA-256 of the whole file (the upload "sha") */
	bool has_sha;	     /* false: computed from the source at start */
	uint8_t image_hash[32]; /* the SHA256 TLV (what image state reports) */
	bool has_image_hash; /* needed for the skip check */
	uint32_t image;	     /* image number, 0 = application */
	bool upgrade;	     /* device refuses an image not newer than the running one */
};

struct smp_upload_options {
	unsigned first_timeout_ms; /* first image chunk: the device may erase the slot */
	unsigned timeout_ms;	   /* other requests; 0 = the client's default */
	unsigned max_retries;	   /* failures in a row without progress before giving up */
	unsigned busy_backoff_ms;  /* first wait after a busy answer; doubles each time */
	size_t max_chunk;	   /* cap on data bytes per request; 0 = fill the budget */
	unsigned window;	   /* cap on chunks in flight; 0 = the client's bulk window */
	bool check_state;	   /* image: skip when the device already holds image_hash */
};

/* Defaults: 30 s first chunk, client timeout, 5 retries, 250 ms backoff, no
 * chunk cap, client window, state check on. */
void smp_upload_options_init(struct smp_upload_options *o);

struct smp_upload_result {
	uint64_t size;	     /* the file's size (download: as the device reported it) */
	uint64_t offset;     /* bytes the device acknowledged (download: received) */
	uint64_t resumed_at; /* the device continued an earlier session from here (0 = none) */
	bool skipped;	     /* the device already held the image: nothing was written */
	bool verified;	     /* the device compared the sha and answered match: true */
	uint64_t bytes_sent; /* data bytes sent, resends included */
	unsigned chunks;     /* upload requests sent */
	unsigned resends;    /* times the operation went back to an earlier offset */
	unsigned restarts;   /* times the device lost the session (off == 0) */
	struct smp_status status; /* with -EREMOTEIO: what the device answered */
};

/* Progress: bytes acknowledged (received) of total; called when it grows. */
typedef void (*smp_upload_progress_fn)(uint64_t off, uint64_t total, void *userdata);
/* The end. error: 0; -EREMOTEIO (device refused: result->status);
 * -EILSEQ (match false); -ETIMEDOUT or -EBUSY (retries exhausted);
 * -ECONNRESET/-ENOTCONN (link); -EBADMSG (answers that make no sense, such
 * as an offset past the end); -EPROTO (max_retries losses of the session or
 * of chunks in a row, without progress);
 * -EMSGSIZE (the link's budget cannot carry a first chunk); -ENODATA
 * (download: file shrank); -EIO (reading the source); a data callback's
 * error; -ENOMEM. result is valid during the call only. */
typedef void (*smp_upload_done_fn)(int error, const struct smp_upload_result *result,
				   void *userdata);
/* Download data in order: off is where data belongs, total the file size.
 * Return 0, or a negative errno to stop the download with that error. */
typedef int (*smp_download_data_fn)(uint64_t off, const uint8_t *data, size_t len, uint64_t total,
				    void *userdata);

/* Each returns 0 and the operation's id in *ret_id (may be NULL), or
 * -EINVAL, -EIO (source unreadable when hashing), -ENOMEM; on failure no
 * callback and no destroy runs. opts NULL = defaults (copied). progress may
 * be NULL. */
int smp_image_upload(struct smp_client *c, const struct smp_upload_source *src,
		     const struct smp_upload_options *opts, smp_upload_progress_fn progress,
		     smp_upload_done_fn done, void *userdata, void (*destroy)(void *),
		     uint64_t *ret_id);
/* name: absolute path on the device; src's image fields are ignored. */
int smp_file_upload(struct smp_client *c, const char *name, const struct smp_upload_source *src,
		    const struct smp_upload_options *opts, smp_upload_progress_fn progress,
		    smp_upload_done_fn done, void *userdata, void (*destroy)(void *),
		    uint64_t *ret_id);
int smp_file_download(struct smp_client *c, const char *name,
		      const struct smp_upload_options *opts, smp_download_data_fn data,
		      smp_upload_progress_fn progress, smp_upload_done_fn done, void *userdata,
		      void (*destroy)(void *), uint64_t *ret_id);

/* Same as smp_client_cancel(c, id): destroy runs now, done never. */
int smp_upload_cancel(struct smp_client *c, uint64_t id);
