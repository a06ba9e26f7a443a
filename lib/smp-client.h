/* smp-client: one device's SMP session: sequence numbers, window, timeouts, retries, priorities */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "smp-header.h"
#include "smp-request.h"
#include "smp-response.h"
#include "smp-transport.h"

/* One client per device. It owns the transport, numbers every transmission
 * with the next 8-bit sequence number, matches answers on (sequence, group,
 * command id, op) and drops the rest (late answers to timed-out or
 * retransmitted requests, duplicates, strangers), keeps up to the window of
 * requests in flight, and times each of them out.
 *
 * Window: the device's MCUmgr params are read once, before the first request
 * (or set by the caller with smp_client_set_params()). Requests and responses
 * share the device's buf_count buffers (smp-protocol.md §5.7): Zephyr takes
 * one per request on arrival and drops the request when none is free, and
 * one more for the answer of the request it is serving, freed with the
 * request's once the answer is sent. So the window is buf_count - 1 (at
 * least 1, at most max_window); 1 while params are unknown. This assumes
 * the gateway is the device's only SMP client: another one, on any of the
 * device's transports, shares the pool. Bulk requests (upload chunks) may
 * fill the window; queued interactive requests are sent before queued bulk
 * ones, so an interactive call waits for at most one answer before it is
 * sent (and then, at the device, behind the chunks already there).
 *
 * Size: a request larger than the transport's packet_budget(buf_size) is
 * refused with -EMSGSIZE and never sent: the device would drop it without
 * an answer (§16.3).
 *
 * Retransmission: only on UDP, with a new sequence number each time (§16.1),
 * at most udp_retries times; serial and BLE are reliable links where a
 * timeout fails the request.
 *
 * Versions: requests go out as SMP v2. A v2 request answered with a v1 header
 * switches the client to v1 for later requests (that answer is kept); an
 * answer {"rc": 13} (UNSUPPORTED_TOO_NEW) to v2 switches to v1 and resends
 * the request; {"rc": 12} (UNSUPPORTED_TOO_OLD) to v1 switches back to v2 and
 * resends. Each request is resent at most once for a version change.
 *
 * Link loss: every request in flight or queued fails with -ECONNRESET (the
 * device drops what it had queued, so nothing is retried behind the caller's
 * back); params and version are forgotten and read again on the next request
 * (the device may come back with other firmware). Requests sent while the
 * link is down fail with the transport's -ENOTCONN.
 *
 * Event sources on the caller's sd_event: one defer source ("smp-client-kick")
 * that sends queued requests, one timer per request in flight
 * ("smp-client-timeout", CLOCK_MONOTONIC), and, when the last reference is
 * dropped from inside a transport callback, one floating defer source
 * ("smp-client-reap") that frees the transport after that callback returns.
 *
 * Callbacks never run from inside smp_client_send(), _cancel() or the other
 * calls below: only from the event loop. They may send, cancel and unref. */

struct smp_client;

enum smp_priority {
	SMP_PRIO_INTERACTIVE, /* API calls, state reads: ahead of every queued bulk request */
	SMP_PRIO_BULK,	      /* upload and download chunks */
};

#define SMP_CLIENT_DEFAULT_TIMEOUT_MS 5000
#define SMP_CLIENT_DEFAULT_UDP_RETRIES 3
#define SMP_CLIENT_DEFAULT_MAX_WINDOW 8
/* buf_size assumed when the device does not answer MCUmgr params (§13.4). */
#define SMP_CLIENT_FALLBACK_BUF_SIZE 384
/* The window may not exceed this: sequence numbers stay unambiguous. */
#define SMP_CLIENT_WINDOW_LIMIT 64

/* Debug messages only; the library never logs above debug. msg has no newline. */
typedef void (*smp_client_log_fn)(const char *msg, void *userdata);

struct smp_client_config {
	unsigned timeout_ms;	/* default per-request timeout */
	unsigned udp_retries;	/* retransmissions per request, UDP only */
	unsigned max_window;	/* cap on requests in flight, 1..SMP_CLIENT_WINDOW_LIMIT */
	bool discover_params;	/* read MCUmgr params before the first request */
	bool fixed_version;	/* never change the SMP version on the device's say */
	uint8_t version;	/* enum smp_version to start with */
	uint8_t first_seq;	/* sequence number of the first transmission */
	smp_client_log_fn log;
	void *log_userdata;
};

/* Fills in the defaults: 5 s timeout, 3 UDP retries, window cap 8, params
 * discovery on, SMP v2, first sequence number 0, no log. */
void smp_client_config_init(struct smp_client_config *cfg);

/* Creates a client on the caller's loop (a reference to e is taken). t is
 * taken in every case: freed on failure, and with the client. cfg NULL means
 * the defaults; it is copied. Returns 0, -EINVAL (bad cfg), -ENOMEM. */
int smp_client_new(sd_event *e, struct smp_transport *t, const struct smp_client_config *cfg,
		   struct smp_client **ret);
/* NULL-safe. Dropping the last reference calls the destroy function (never
 * the callback) of every request still pending; compound operations hold a
 * reference of their own, so they end before the client does. */
struct smp_client *smp_client_ref(struct smp_client *c);
struct smp_client *smp_client_unref(struct smp_client *c);
static inline void smp_client_unrefp(struct smp_client **c)
{
	smp_client_unref(*c);
}

/* The end of one request.
 * error: 0 when the device answered: rsp is the decoded answer (valid during
 *   the call only) and a device error is data in rsp->status. Otherwise rsp
 *   is NULL and error is -ETIMEDOUT (no answer, retries included),
 *   -ENOTCONN (link down when sending), -ECONNRESET (link lost while
 *   pending), -EMSGSIZE (larger than the link's budget for this device),
 *   -EBADMSG (the matching answer did not decode), or the transport's
 *   -ENOMEM. Never called after the request was cancelled. */
typedef void (*smp_client_done_fn)(struct smp_client *c, int error, const struct smp_response *rsp,
				   void *userdata);

struct smp_client_send_opts {
	enum smp_priority prio;
	unsigned timeout_ms; /* 0 = the client's default */
	/* Never retransmit, even on UDP: for requests whose repetition would
	 * do harm (a reset that reaches the rebooted device again). */
	bool no_retransmit;
};

/* Queues a request. req is taken in every case (freed on failure). On
 * success returns 0 and the request's id in *ret_id (may be NULL); cb then
 * runs once from the loop, unless cancelled, and destroy(userdata) runs once
 * after it or on cancel or teardown (cb and destroy may be NULL). On failure
 * (-EMSGSIZE when the request exceeds the budget of known params, -ENOMEM)
 * neither cb nor destroy runs: userdata stays the caller's. */
int smp_client_send(struct smp_client *c, struct smp_request *req, enum smp_priority prio,
		    unsigned timeout_ms, smp_client_done_fn cb, void *userdata,
		    void (*destroy)(void *), uint64_t *ret_id);
int smp_client_send_opts(struct smp_client *c, struct smp_request *req,
			 const struct smp_client_send_opts *opts, smp_client_done_fn cb,
			 void *userdata, void (*destroy)(void *), uint64_t *ret_id);

/* Cancels a request (or a compound operation, see below) by id: its callback
 * will not run; its destroy runs now. A request already sent still occupies
 * its window slot until the device answers it (the answer is dropped), a
 * later request is answered (the device serves in order: this answer was
 * lost), or it times out; it is never retransmitted. Returns 0, or -ENOENT
 * for an unknown or finished id. */
int smp_client_cancel(struct smp_client *c, uint64_t id);

/* Makes sure MCUmgr params are known: cb(c, 0, NULL, userdata) runs once they
 * are (read from the device, defaulted after ENOTSUP or a timeout, or set
 * by the caller), ahead of any request; -ECONNRESET/-ENOTCONN when the link
 * fails first. Same id, cancel and destroy rules as smp_client_send(). */
int smp_client_query_params(struct smp_client *c, smp_client_done_fn cb, void *userdata,
			    void (*destroy)(void *), uint64_t *ret_id);
/* For callers that know the device: buf_size bounds a whole packet, header
 * included; buf_count 0 means 1. No params request is sent afterwards. */
void smp_client_set_params(struct smp_client *c, size_t buf_size, unsigned buf_count);

/* Resets the device (OS reset, §5.6). The answer may be lost when the device
 * reboots, so cb gets error 0 when the device answered (rsp set: a refusal
 * is data in rsp->status) and also when the link dropped while waiting (rsp
 * NULL, §16.12). Never retransmitted. timeout_ms 0 = the client's default.
 * boot_mode < 0 leaves it out. Same rules as smp_client_send(). */
int smp_client_reset_device(struct smp_client *c, bool force, int boot_mode, unsigned timeout_ms,
			    smp_client_done_fn cb, void *userdata, void (*destroy)(void *),
			    uint64_t *ret_id);

/* The owner's view of the link: state 0 = up, negative errno = lost; called
 * after the client failed its pending requests. Replaces (and destroys) the
 * previous handler; destroy(userdata) runs on replacement or teardown. */
typedef void (*smp_client_state_fn)(struct smp_client *c, int state, void *userdata);
void smp_client_set_state_handler(struct smp_client *c, smp_client_state_fn fn, void *userdata,
				  void (*destroy)(void *));

/* Compound operations (uploads, downloads) register here so that
 * smp_client_cancel() finds them by id, in the same id space as requests.
 * cancel(opdata) must end the operation: cancel its requests and run the
 * operation's destroy. The client unregisters the operation before calling
 * cancel. Returns 0 and the id, -ENOMEM. */
int smp_client_op_register(struct smp_client *c, void (*cancel)(void *opdata), void *opdata,
			   uint64_t *ret_id);
/* Called by the operation when it ends on its own; unknown ids are ignored. */
void smp_client_op_unregister(struct smp_client *c, uint64_t id);

struct smp_client_stats {
	uint64_t requests;	 /* accepted by smp_client_send and friends */
	uint64_t responses;	 /* matched answers */
	uint64_t timeouts;	 /* timer expiries (before a retransmission or failure) */
	uint64_t retransmits;	 /* UDP resends and version-fallback resends */
	uint64_t stale;		 /* packets dropped: no match, duplicates, late answers */
	uint64_t bytes_sent;	 /* SMP packets handed to the transport, headers included */
	uint64_t bytes_received; /* SMP packets from the transport */
};

/* Params as known now: buf_size 0 and buf_count 0 while unknown. */
size_t smp_client_get_buf_size(const struct smp_client *c);
unsigned smp_client_get_buf_count(const struct smp_client *c);
bool smp_client_params_known(const struct smp_client *c);
/* Requests allowed in flight now (1 while params are unknown). */
unsigned smp_client_get_window(const struct smp_client *c);
/* Of those, how many bulk requests may be in flight: the whole window
 * (interactive requests overtake queued bulk ones instead). */
unsigned smp_client_get_bulk_window(const struct smp_client *c);
/* Requests in flight now, cancelled ones still awaiting their answer included. */
unsigned smp_client_get_in_flight(const struct smp_client *c);
/* The largest request packet (header included) for this device on this link. */
size_t smp_client_packet_budget(const struct smp_client *c);
/* The SMP version the next request will carry (enum smp_version). */
uint8_t smp_client_get_version(const struct smp_client *c);
enum smp_link smp_client_get_link(const struct smp_client *c);
sd_event *smp_client_get_event(const struct smp_client *c);
unsigned smp_client_get_default_timeout(const struct smp_client *c);
void smp_client_get_stats(const struct smp_client *c, struct smp_client_stats *ret);

/* Sees every request of the caller end (not the client's own params read):
 * result 0 when the device answered with status OK, 1 when it answered with
 * an SMP error status, else the negative errno the request ended with
 * (-ETIMEDOUT, -ECONNRESET, -ENOTCONN, -EMSGSIZE, -EBADMSG, ..., -ECANCELED
 * for smp_client_cancel()). Runs from the loop before the request's
 * callback, once per request; it must not call into the client. A request
 * cancelled while in flight is counted at the cancel; requests still pending
 * when the last reference goes are not counted. fn NULL removes it;
 * there is no destroy: the observer outlives the client or removes itself. */
typedef void (*smp_client_observer_fn)(struct smp_client *c, uint16_t group, uint8_t id,
				       int result, void *userdata);
void smp_client_set_observer(struct smp_client *c, smp_client_observer_fn fn, void *userdata);
