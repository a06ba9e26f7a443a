/* test-smp-chunk: upload chunk sizing against §13.5 and brute-force encoding */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-chunk.h"
#include "tests/tap.h"

/* An upload request as the image group sends it, in the key order image,
 * len, off, sha, data, upgrade; first-chunk keys only when first is set. */
struct upload {
	bool first;
	bool sha;
	bool upgrade;
	uint64_t len;
	uint64_t off;
};

/* Whole SMP packet size (8-byte header + CBOR) with n data bytes. */
static size_t upload_size(const struct upload *u, size_t n)
{
	static const uint8_t sha[32] = { 0xa6, 0x78, 0xce, 0x1e };
	struct smp_buf b = SMP_BUF_INIT;
	size_t pairs = 2 + (u->first ? 2 : 0) + (u->first && u->sha) + (u->first && u->upgrade);
	size_t size;

	smp_cbor_put_map(&b, pairs);
	if (u->first) {
		smp_cbor_put_text(&b, "image");
		smp_cbor_put_uint(&b, 0);
		smp_cbor_put_text(&b, "len");
		smp_cbor_put_uint(&b, u->len);
	}
	smp_cbor_put_text(&b, "off");
	smp_cbor_put_uint(&b, u->off);
	if (u->first && u->sha) {
		smp_cbor_put_text(&b, "sha");
		smp_cbor_put_bytes(&b, sha, sizeof(sha));
	}
	smp_cbor_put_text(&b, "data");
	if (!smp_cbor_put_bytes_reserve(&b, n))
		abort();
	if (u->first && u->upgrade) {
		smp_cbor_put_text(&b, "upgrade");
		smp_cbor_put_bool(&b, false);
	}
	if (smp_buf_error(&b) < 0)
		abort();
	size = 8 + b.len;
	smp_buf_clear(&b);
	return size;
}

static void test_worked_examples(void)
{
	static const struct {
		const char *name;
		size_t budget;
		struct upload u;
		size_t want;
	} v[] = {
		{ "serial 384 first chunk", 380, { true, true, true, 200000, 0 }, 295 },
		{ "serial 384 later chunk", 380, { false, false, false, 200000, 100000 }, 354 },
		{ "BLE reassembly 2475 first chunk", 2475, { true, true, false, 200000, 0 }, 2399 },
		{ "BLE reassembly 2475 later chunk", 2475, { false, false, false, 200000, 100000 }, 2449 },
		{ "BLE MTU 247 later chunk", 244, { false, false, false, 200000, 100000 }, 219 },
	};

	is_int(smp_chunk_budget_serial(384), 380, "serial budget for buf_size 384");
	is_int(smp_chunk_budget_ble(2475, 498, true), 2475, "BLE budget with reassembly");
	is_int(smp_chunk_budget_ble(2475, 247, false), 244, "BLE budget without reassembly, MTU 247");

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		size_t p = upload_size(&v[i].u, 0);
		size_t n = smp_chunk_max_data(v[i].budget, p);

		is_int(n, v[i].want, "%s: max data", v[i].name);
		ok(upload_size(&v[i].u, n) <= v[i].budget && upload_size(&v[i].u, n + 1) > v[i].budget,
		   "%s: %zu fits, %zu does not", v[i].name, n, n + 1);
	}
}

/* Deterministic xorshift, so a failure can be reproduced. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* n fits and n + 1 does not, or nothing fits and n is 0. */
static bool check_budget(const struct upload *u, size_t budget)
{
	size_t p = upload_size(u, 0);
	size_t n = smp_chunk_max_data(budget, p);

	if (n == 0)
		return upload_size(u, 1) > budget;
	return upload_size(u, n) <= budget && upload_size(u, n + 1) > budget;
}

static void test_brute_force(void)
{
	static const uint64_t offs[] = { 0, 23, 24, 255, 256, 65535, 65536, 100000, 4294967295ULL };
	size_t bad = 0, checked = 0;

	/* Every budget up to a bit past the 2- and 3-byte head boundaries. */
	for (size_t o = 0; o < ELEMENTSOF(offs); o++)
		for (int first = 0; first < 2; first++) {
			struct upload u = { first, true, first, offs[o] + 1, offs[o] };

			for (size_t budget = 1; budget <= 700; budget++, checked++)
				if (!check_budget(&u, budget) && bad++ < 5)
					tap_diag("budget %zu off %llu first %d", budget,
						 (unsigned long long)offs[o], first);
		}
	is_int(bad, 0, "every budget 1..700 exact (%zu cases)", checked);

	/* Around the 65535/65536 boundary of the data length. */
	bad = checked = 0;
	for (size_t o = 0; o < ELEMENTSOF(offs); o++) {
		struct upload u = { false, false, false, 0, offs[o] };
		size_t p = upload_size(&u, 0);

		for (size_t budget = p + 65520; budget <= p + 65560; budget++, checked++)
			if (!check_budget(&u, budget) && bad++ < 5)
				tap_diag("budget %zu off %llu", budget, (unsigned long long)offs[o]);
	}
	is_int(bad, 0, "budgets around a 65535-byte chunk exact (%zu cases)", checked);

	bad = checked = 0;
	for (unsigned i = 0; i < 2000; i++, checked++) {
		struct upload u = { rng() & 1, rng() & 1, rng() & 1, rng() % 5000000, 0 };
		size_t budget = (size_t)(rng() % 70000);

		u.off = u.first ? 0 : rng() % (u.len + 1);
		if (!check_budget(&u, budget) && bad++ < 5)
			tap_diag("budget %zu off %llu", budget, (unsigned long long)u.off);
	}
	is_int(bad, 0, "random budgets and offsets exact (%zu cases)", checked);
}

static void test_edges(void)
{
	is_int(smp_chunk_bstr_head(0), 1, "head of 0");
	is_int(smp_chunk_bstr_head(23), 1, "head of 23");
	is_int(smp_chunk_bstr_head(24), 2, "head of 24");
	is_int(smp_chunk_bstr_head(255), 2, "head of 255");
	is_int(smp_chunk_bstr_head(256), 3, "head of 256");
	is_int(smp_chunk_bstr_head(65535), 3, "head of 65535");
	is_int(smp_chunk_bstr_head(65536), 5, "head of 65536");
	is_int(smp_chunk_max_data(100, 0), 0, "no packet size: nothing");
	is_int(smp_chunk_max_data(100, 100), 0, "request without data already fills the budget");
	is_int(smp_chunk_max_data(100, 101), 0, "request without data too big");
	is_int(smp_chunk_max_data(101, 100), 1, "one byte left: one data byte");
	/* fixed = 99: room 25 holds 23 + 1 (24 + 2 = 26 would not fit). */
	is_int(smp_chunk_max_data(124, 100), 23, "one byte wasted below the 24-byte head step");
	is_int(smp_chunk_max_data(125, 100), 24, "24 bytes with a 2-byte head");
	is_int(smp_chunk_max_data(0, 10), 0, "budget 0");

	is_int(smp_chunk_budget_serial(0), 380, "serial: unknown buf_size is 384");
	is_int(smp_chunk_budget_serial(3), 0, "serial: tiny buf_size");
	is_int(smp_chunk_budget_serial(4096), 4092, "serial: MCUboot 4096");
	is_int(smp_chunk_budget_ble(0, 0, false), 20, "BLE: defaults, no reassembly");
	is_int(smp_chunk_budget_ble(0, 498, true), 384, "BLE: default buf_size with reassembly");
	is_int(smp_chunk_budget_ble(100, 247, false), 100, "BLE: buf_size below MTU payload");
	is_int(smp_chunk_budget_ble(384, 3, false), 0, "BLE: impossible MTU");
	is_int(smp_chunk_budget_udp(0, 0), 384, "UDP: defaults");
	is_int(smp_chunk_budget_udp(2048, 0), 1232, "UDP: unknown datagram limit is the safe one");
	is_int(smp_chunk_budget_udp(2048, 1472), 1472, "UDP: IPv4 Ethernet");
	is_int(smp_chunk_budget_udp(1024, 1472), 1024, "UDP: buf_size smaller");
}

int main(void)
{
	test_worked_examples();
	test_brute_force();
	test_edges();
	return tap_done();
}
