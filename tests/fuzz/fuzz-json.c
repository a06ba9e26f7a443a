/* fuzz-json: CBOR -> JSON -> CBOR must round trip; JSON text -> CBOR must be stable */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "smp-buf.h"
#include "smp-json.h"
#include "tests/fuzz/fuzz.h"

/* JSON -> CBOR -> JSON -> CBOR: the second CBOR equals the first (the encoder
 * writes one canonical form, and the decoder maps it back to the same JSON).
 * must_encode: j came from smp_json_from_cbor_bytes(), so all of this must
 * work; otherwise j is JSON from outside, which may be refused, and which is
 * only stable after one trip through the loader ({"$int": "5"} comes back as
 * 5, {"$simple": 20} as false). */
static void check_stable(const json_t *j, bool must_encode)
{
	struct smp_buf b1 = SMP_BUF_INIT, b2 = SMP_BUF_INIT;
	json_t *again = NULL;
	char *d1, *d2;
	int r;

	r = smp_json_to_cbor(j, &b1);
	FUZZ_CHECK(r == 0 || r == -ENOMEM || (!must_encode && r == -EINVAL));
	if (r < 0) {
		smp_buf_clear(&b1);
		return;
	}
	r = smp_json_from_cbor_bytes(b1.data, b1.len, &again);
	/* Only JSON from outside may encode into CBOR that libcbor 0.8 refuses:
	 * "$text" that is not UTF-8, "$simple" values other than 20..23. */
	FUZZ_CHECK(r == 0 || r == -ENOMEM || (!must_encode && r == -EBADMSG));
	if (r == 0 && !must_encode) {
		check_stable(again, true);
		json_decref(again);
	} else if (r == 0) {
		FUZZ_CHECK(smp_json_to_cbor(again, &b2) == 0);
		FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
		/* json_equal() compares keys as C strings; the dumps compare them whole. */
		d1 = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		d2 = json_dumps(again, JSON_COMPACT | JSON_ENCODE_ANY);
		FUZZ_CHECK(d1 && d2);
		FUZZ_CHECK(strcmp(d1, d2) == 0);
		free(d1);
		free(d2);
		json_decref(again);
	}
	smp_buf_clear(&b1);
	smp_buf_clear(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = NULL;
	json_error_t e;
	int r;

	/* The input as CBOR: anything accepted must encode back and round trip. */
	r = smp_json_from_cbor_bytes(data, size, &j);
	FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
	if (r == 0) {
		check_stable(j, true);
		json_decref(j);
	}

	/* The same bytes as JSON text, as an API client would send them: the
	 * tagged-form parser sees hostile base64, decimals and nesting. */
	j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (j) {
		check_stable(j, false);
		json_decref(j);
	}
	return 0;
}
