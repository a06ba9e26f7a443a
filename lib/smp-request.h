/* smp-request: an SMP request being built: the header's fields and the encoded packet */
#pragma once

#include <stdint.h>

#include "smp-buf.h"
#include "smp-header.h"

/* The packet buffer starts with SMP_HEADER_SIZE reserved bytes; builders
 * append the CBOR payload to pkt with the smp_cbor_put_* functions; the
 * client fills the header in (sequence number, version) when it sends. */
struct smp_request {
	uint8_t op;
	uint16_t group;
	uint8_t id;
	struct smp_buf pkt;
};

/* Returns 0 and a new request with an empty payload, or -ENOMEM. */
int smp_request_new(uint8_t op, uint16_t group, uint8_t id, struct smp_request **ret);
struct smp_request *smp_request_free(struct smp_request *r);
static inline void smp_request_freep(struct smp_request **r)
{
	smp_request_free(*r);
}

/* A request whose payload is the empty map, as most READs are. */
int smp_request_new_empty(uint8_t op, uint16_t group, uint8_t id, struct smp_request **ret);

/* Builds a request from an already encoded CBOR payload (copied). */
int smp_request_new_raw(uint8_t op, uint16_t group, uint8_t id, const uint8_t *payload,
			size_t len, struct smp_request **ret);

/* Writes the header for this sequence number and version into pkt.data.
 * Returns 0, the buffer's sticky error, or -EMSGSIZE when the payload is
 * longer than the 16-bit length field. May be called again (retransmission
 * with a new sequence number). */
int smp_request_finish(struct smp_request *r, uint8_t version, uint8_t seq);

static inline size_t smp_request_payload_len(const struct smp_request *r)
{
	return r->pkt.len - SMP_HEADER_SIZE;
}

/* Finishes a request built by a typed builder: returns 0 and hands it to
 * *ret, or frees it and returns its buffer's error. */
int smp_request_done(struct smp_request *r, struct smp_request **ret);
