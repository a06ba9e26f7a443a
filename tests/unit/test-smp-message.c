/* test-smp-message: request building and response decoding around the payload */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smp-cbor.h"
#include "smp-request.h"
#include "smp-response.h"
#include "tests/tap.h"

static void test_request(void)
{
	struct smp_request *r = NULL;
	size_t n;
	uint8_t *want;

	/* V1: echo "hello", v2, seq 1. */
	is_int(smp_request_new(SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_ECHO, &r), 0, "new request");
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "d");
	smp_cbor_put_text(&r->pkt, "hello");
	is_int(smp_request_finish(r, SMP_VERSION_2, 1), 0, "finish");
	want = tap_unhex("0a000009 00000100 a161646568656c6c6f", &n);
	is_mem(r->pkt.data, r->pkt.len, want, n, "V1 bytes");
	free(want);
	is_int(smp_request_payload_len(r), 9, "payload length");
	/* Retransmission: same request, new sequence number and v1. */
	is_int(smp_request_finish(r, SMP_VERSION_1, 0xff), 0, "refinish");
	ok(r->pkt.data[0] == 0x02 && r->pkt.data[6] == 0xff, "header rewritten");
	r = smp_request_free(r);
	ok(r == NULL, "free returns NULL");

	/* V3: params read, empty map. */
	is_int(smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_PARAMS, &r), 0, "empty");
	smp_request_finish(r, SMP_VERSION_2, 2);
	want = tap_unhex("08000001 00000206 a0", &n);
	is_mem(r->pkt.data, r->pkt.len, want, n, "V3 bytes");
	free(want);
	smp_request_free(r);

	/* Raw payload for a user group. */
	is_int(smp_request_new_raw(SMP_OP_READ, 64, 0, (const uint8_t *)"\xa0", 1, &r), 0, "raw");
	smp_request_finish(r, SMP_VERSION_1, 0x20);
	want = tap_unhex("00000001 00402000 a0", &n);
	is_mem(r->pkt.data, r->pkt.len, want, n, "user group request");
	free(want);
	smp_request_free(r);

	/* A payload past the 16-bit length cannot be built. */
	is_int(smp_request_new(SMP_OP_WRITE, 64, 0, &r), 0, "big request");
	smp_cbor_put_bytes_reserve(&r->pkt, 70000);
	is_int(smp_buf_error(&r->pkt), -EMSGSIZE, "payload beyond 64 KiB refused");
	is_int(smp_request_finish(r, SMP_VERSION_2, 0), -EMSGSIZE, "finish reports it");
	smp_request_free(r);
	smp_request_free(NULL);
}

static int decode_hex(const char *hex, struct smp_response **ret)
{
	size_t n;
	uint8_t *b = tap_unhex(hex, &n);
	int r = smp_response_decode(b, n, ret);

	free(b);
	return r;
}

static void test_response(void)
{
	struct smp_response *r = NULL;
	uint64_t u;
	size_t n;
	uint8_t *b;
	unsigned refused = 0;

	/* V4: params response. */
	is_int(decode_hex("09000019 00000206 bf686275665f73697a65190180696275665f636f756e7404ff", &r), 0,
	       "V4 decodes");
	ok(r->hdr.op == SMP_OP_READ_RSP && r->hdr.seq == 2 && r->hdr.id == 6, "V4 header");
	ok(smp_response_ok(r), "V4 success");
	ok(smp_cbor_get_uint(r->root, "buf_size", &u) == 0 && u == 384, "V4 buf_size");
	r = smp_response_free(r);

	/* V19: v2 error. */
	is_int(decode_hex("0b000013 00011101 bf63657272bf6567726f75700162726309ffff", &r), 0, "V19 decodes");
	ok(r->status.kind == SMP_STATUS_GROUP_ERR && r->status.rc == 9, "V19 status");
	smp_response_free(r);

	/* V20: v1 error from a user group. */
	is_int(decode_hex("01000006 00402000 bf62726308ff", &r), 0, "V20 decodes");
	ok(r->status.kind == SMP_STATUS_RC && r->status.rc == 8 && r->hdr.version == 0, "V20 status");
	smp_response_free(r);

	/* A user group may answer nothing, or a non-map. */
	is_int(decode_hex("01000000 00402000", &r), 0, "empty user payload");
	ok(r->root == NULL && smp_response_ok(r), "no root, ok");
	smp_response_free(r);
	is_int(decode_hex("01000002 00402000 8100", &r), 0, "array user payload");
	ok(cbor_isa_array(r->root) && smp_response_ok(r), "array root kept");
	smp_response_free(r);

	is_int(decode_hex("01000000 00000000", &r), -EBADMSG, "empty standard payload refused");
	is_int(decode_hex("01000002 00000000 8100", &r), -EBADMSG, "array standard payload refused");
	is_int(decode_hex("0a000001 00000100 a0", &r), -EBADMSG, "a request is not a response");
	is_int(decode_hex("0c000001 00000100 a0", &r), -EBADMSG, "op 4 refused");
	is_int(decode_hex("09000002 00000206 a0", &r), -EBADMSG, "length beyond bytes refused");
	is_int(decode_hex("09000001 00000206 a0a0", &r), -EBADMSG, "bytes beyond length refused");
	is_int(decode_hex("09000003 00000206 a16272", &r), -EBADMSG, "bad CBOR refused");
	is_int(decode_hex("09000004 00000206 a1636572 72", &r), -EBADMSG, "truncated key refused");
	is_int(decode_hex("09000004 00000206 a1637263 05", &r), -EBADMSG, "garbage key refused");
	is_int(decode_hex("09000006 00000206 a163657272 0a", &r), -EBADMSG, "malformed err refused");

	/* Every truncation of V32, with the header length left as it was. */
	b = tap_unhex("090000f4 00011000"
		      "bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"
		      "20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f"
		      "6f7461626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f569"
		      "7065726d616e656e74f4ffbf64736c6f74016776657273696f6e65312e312e3064686173"
		      "685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068"
		      "626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f466616374697665"
		      "f4697065726d616e656e74f4ffff6b73706c697453746174757300ff", &n);
	for (size_t i = 0; i < n; i++)
		if (smp_response_decode(b, i, &r) == -EBADMSG)
			refused++;
		else
			smp_response_free(r);
	is_int(refused, n, "every truncation of V32 refused");
	is_int(smp_response_decode(b, n, &r), 0, "V32 decodes");
	smp_response_free(r);
	free(b);
}

int main(void)
{
	test_request();
	test_response();
	return tap_done();
}
