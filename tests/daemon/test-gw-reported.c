/* test-gw-reported: reported sections built from Zephyr 4.1's recorded answers, byte for byte */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/gw-reported.h"
#include "lib/smp-response.h"
#include "tests/tap.h"

/* Recorded from smp_svr on native_sim (tests/data/zephyr-4.1/udp-v2.json). */
#define IMG_STATE                                                                          \
	"0900008600010a00bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861" \
	"73685820072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a9368626f6f74" \
	"61626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e65" \
	"6e74f4ffff6b73706c697453746174757300ff"
#define IMG_STATE_AFTER_UPLOAD                                                             \
	"090000f400010e00bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861" \
	"73685820072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a9368626f6f74" \
	"61626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f5697065726d616e65" \
	"6e74f4ffbf64736c6f74016776657273696f6e65312e302e31646861736858200f9d952ba1cb7c92d0" \
	"53acbaa78361700c19c0bef9adbc36a55054b4938a385768626f6f7461626c65f56770656e64696e67" \
	"f469636f6e6669726d6564f466616374697665f4697065726d616e656e74f4ffff6b73706c69745374" \
	"6174757300ff"
#define STAT_READ                                                                          \
	"0900002900021200bf646e616d656d736d705f7376725f7374617473666669656c6473bf657469636b" \
	"730062733100ffff"
#define OS_PARAMS                                                                          \
	"0900001900000606bf686275665f73697a65190800696275665f636f756e7408ff"
#define OS_INFO_ALL                                                                        \
	"0900005f00000707bf666f757470757478545a657068797220756e6b6e6f776e2076342e312e302034" \
	"2e312e3020536174204e6f762032312031313a33393a3032203230323620706f73697820756e6b6e6f" \
	"776e206e61746976655f73696d205a6570687972ff"

static struct smp_response *decode(const char *hex)
{
	struct smp_response *rsp = NULL;
	size_t n;
	uint8_t *pkt = tap_unhex(hex, &n);

	if (smp_response_decode(pkt, n, &rsp) < 0)
		rsp = NULL;
	free(pkt);
	return rsp;
}

/* Compact JSON text with the members in insertion order: what the registry stores. */
static void is_json(json_t *j, const char *want, const char *name)
{
	char *got = j ? json_dumps(j, JSON_COMPACT) : NULL;

	is_str(got ? got : "(null)", want, "%s", name);
	free(got);
}

static void test_image_state(void)
{
	static const struct {
		const char *hex;
		const char *want;
	} v[] = {
		{IMG_STATE,
		 "{\"images\":[{\"image\":0,\"slot\":0,\"version\":\"1.0.0\",\"bootable\":true,"
		 "\"pending\":false,\"confirmed\":true,\"active\":true,\"permanent\":false,"
		 "\"hash\":\"072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a93\"}],"
		 "\"split_status\":0}"},
		{IMG_STATE_AFTER_UPLOAD,
		 "{\"images\":[{\"image\":0,\"slot\":0,\"version\":\"1.0.0\",\"bootable\":true,"
		 "\"pending\":false,\"confirmed\":true,\"active\":true,\"permanent\":false,"
		 "\"hash\":\"072e40afb39c9ae3fc60ffd93e2f6fda101883955e5319a20954d8e7f78b0a93\"},"
		 "{\"image\":0,\"slot\":1,\"version\":\"1.0.1\",\"bootable\":true,"
		 "\"pending\":false,\"confirmed\":false,\"active\":false,\"permanent\":false,"
		 "\"hash\":\"0f9d952ba1cb7c92d053acbaa78361700c19c0bef9adbc36a55054b4938a3857\"}],"
		 "\"split_status\":0}"},
	};

	for (size_t i = 0; i < 2; i++) {
		struct smp_response *rsp = decode(v[i].hex);
		struct smp_image_state *st = NULL;
		json_t *j = NULL;

		ok(rsp && smp_image_state_parse(rsp, &st) == 0, "image state %zu parses", i);
		is_int(st ? gw_reported_image_state(st, &j) : -EINVAL, 0, "image state %zu converts",
		       i);
		is_json(j, v[i].want, "image state JSON as the poller stores it");
		json_decref(j);
		smp_image_state_free(st);
		smp_response_free(rsp);
	}
}

/* What a frugal build sends: no hash, no split status, only the true flags. */
static void test_image_state_sparse(void)
{
	struct smp_image_slot_state slots[] = {
		{.image = 1, .slot = 1, .version = (char *)"2.0.0+7", .pending = true},
	};
	struct smp_image_state st = {.n_slots = 1, .slots = slots};
	struct smp_image_state empty = {};
	json_t *j = NULL;

	is_int(gw_reported_image_state(&st, &j), 0, "sparse state converts");
	is_json(j,
		"{\"images\":[{\"image\":1,\"slot\":1,\"version\":\"2.0.0+7\",\"bootable\":false,"
		"\"pending\":true,\"confirmed\":false,\"active\":false,\"permanent\":false}]}",
		"no hash member without a hash, no split_status without one");
	json_decref(j);
	j = NULL;
	is_int(gw_reported_image_state(&empty, &j), 0, "empty state converts");
	is_json(j, "{\"images\":[]}", "a device without images");
	json_decref(j);
}

static void test_stat_group(void)
{
	struct smp_response *rsp = decode(STAT_READ);
	struct smp_stat_group *g = NULL;
	struct smp_stat_field big[] = {{(char *)"huge", UINT64_MAX}, {(char *)"zero", 0}};
	struct smp_stat_group gb = {.name = (char *)"x", .n_fields = 2, .fields = big};
	json_t *j = NULL;

	ok(rsp && smp_stat_show_parse(rsp, &g) == 0, "stat read parses");
	is_int(g ? gw_reported_stat_group(g, &j) : -EINVAL, 0, "stat group converts");
	is_json(j, "{\"ticks\":0,\"s1\":0}", "stat group fields in the device's order");
	json_decref(j);
	j = NULL;
	is_int(gw_reported_stat_group(&gb, &j), 0, "large counter converts");
	is_json(j, "{\"huge\":9223372036854775807,\"zero\":0}",
		"a counter above INT64_MAX is clamped, not wrapped negative");
	json_decref(j);
	smp_stat_group_free(g);
	smp_response_free(rsp);
}

static void test_params_info(void)
{
	struct smp_response *rsp = decode(OS_PARAMS);
	struct smp_os_params p;
	char *text = NULL;
	json_t *j = NULL;

	ok(rsp && smp_os_params_parse(rsp, &p) == 0, "params parse");
	is_int(gw_reported_params(&p, &j), 0, "params convert");
	is_json(j, "{\"buf_size\":2048,\"buf_count\":8}", "params as the poller stores them");
	json_decref(j);
	j = NULL;
	smp_response_free(rsp);

	rsp = decode(OS_INFO_ALL);
	ok(rsp && smp_os_info_parse(rsp, &text) == 0, "info parses");
	is_int(gw_reported_info(text, &j), 0, "info converts");
	is_json(j,
		"{\"output\":\"Zephyr unknown v4.1.0 4.1.0 Sat Nov 21 11:39:02 2026 posix unknown "
		"native_sim Zephyr\"}",
		"info as the poller stores it");
	json_decref(j);
	free(text);
	smp_response_free(rsp);
}

static void test_hash_hex(void)
{
	uint8_t h[SMP_IMAGE_HASH_LEN];
	char hex[2 * SMP_IMAGE_HASH_LEN + 1];

	for (size_t i = 0; i < sizeof(h); i++)
		h[i] = (uint8_t)(i * 0x11 + 0x0f);
	memset(hex, 'x', sizeof(hex));
	gw_reported_hash_hex(h, hex);
	is_str(hex, "0f2031425364758697a8b9cadbecfd0e1f30415263748596a7b8c9daebfc0d1e",
	       "hash hex: lower case, two digits a byte, NUL-terminated");
}

int main(void)
{
	test_image_state();
	test_image_state_sparse();
	test_stat_group();
	test_params_info();
	test_hash_hex();
	return tap_done();
}
