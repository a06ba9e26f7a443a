/* smp-response: a received SMP response: header, decoded CBOR payload, and its status */
#pragma once

#include <cbor.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-error.h"
#include "smp-header.h"

struct smp_response {
	struct smp_header hdr;
	/* The decoded payload: a map for groups 0..63; for user groups any CBOR
	 * item, or NULL when the payload is empty. Owned by the response. */
	cbor_item_t *root;
	struct smp_status status;
};

/* Decodes one whole response packet (header + CBOR) from untrusted bytes.
 * Returns 0 and a new response, -EBADMSG when the packet is short, its length
 * field disagrees with the bytes, its op is not a response, its CBOR is
 * malformed, or a standard group's payload is not a map; -ENOMEM. */
int smp_response_decode(const uint8_t *pkt, size_t len, struct smp_response **ret);
struct smp_response *smp_response_free(struct smp_response *r);
static inline void smp_response_freep(struct smp_response **r)
{
	smp_response_free(*r);
}

static inline bool smp_response_ok(const struct smp_response *r)
{
	return r->status.kind == SMP_STATUS_OK;
}
