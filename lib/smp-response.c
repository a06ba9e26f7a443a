/* smp-response: a received SMP response: header, decoded CBOR payload, and its status */
#include <errno.h>
#include <stdlib.h>

#include "smp-cbor.h"
#include "smp-response.h"

int smp_response_decode(const uint8_t *pkt, size_t len, struct smp_response **ret)
{
	struct smp_response *r;
	struct smp_header h;
	int err;

	err = smp_header_decode(pkt, len, &h);
	if (err < 0)
		return err;
	if ((size_t)h.len != len - SMP_HEADER_SIZE || !smp_op_is_response(h.op))
		return -EBADMSG;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->hdr = h;
	if (h.len > 0) {
		err = smp_cbor_load(pkt + SMP_HEADER_SIZE, h.len, SMP_CBOR_MAX_DEPTH, &r->root);
		if (err < 0)
			goto fail;
	}
	if (h.group < SMP_GROUP_USER_MIN && (!r->root || !cbor_isa_map(r->root))) {
		err = -EBADMSG;
		goto fail;
	}
	/* User groups answer CBOR by convention only; classify when it is a map. */
	err = smp_status_classify(r->root && cbor_isa_map(r->root) ? r->root : NULL, h.group,
				  &r->status);
	if (err < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	smp_response_free(r);
	return err;
}

struct smp_response *smp_response_free(struct smp_response *r)
{
	if (r) {
		if (r->root)
			cbor_decref(&r->root);
		free(r);
	}
	return NULL;
}
