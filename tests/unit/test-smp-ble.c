/* test-smp-ble: BLE notification reassembly and write splitting */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-ble.h"
#include "tests/tap.h"

/* V32 of smp-protocol.md §15.1: image state read response, 252 bytes. */
static const char v32_hex[] =
	"090000f4 00011000"
	"bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"
	"20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f"
	"6f7461626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f569"
	"7065726d616e656e74f4ffbf64736c6f74016776657273696f6e65312e312e3064686173"
	"685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068"
	"626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f466616374697665"
	"f4697065726d616e656e74f4ffff6b73706c697453746174757300ff";

/* Feeds pkt split as a device with this ATT MTU sends it; returns the number
 * of fragments and checks that only the last one completes the packet. */
static size_t feed_split(struct smp_ble_reassembler *r, const uint8_t *pkt, size_t len,
			 size_t att_mtu, const char *what)
{
	size_t count = smp_ble_fragment_count(len, att_mtu);
	bool early = false;

	for (size_t i = 0; i < count; i++) {
		const uint8_t *got = NULL;
		size_t off, n, got_len = 0;
		int k;

		if (smp_ble_fragment(len, att_mtu, i, &off, &n) < 0)
			abort();
		k = smp_ble_reassembler_feed(r, pkt + off, n, &got, &got_len);
		if (i + 1 < count) {
			if (k != 0)
				early = true;
			continue;
		}
		ok(!early, "%s: MTU %zu: no packet before the last fragment", what, att_mtu);
		is_int(k, 1, "%s: MTU %zu: last of %zu fragments completes it", what, att_mtu, count);
		is_mem(got, got_len, pkt, len, "%s: MTU %zu: packet intact", what, att_mtu);
	}
	return count;
}

static void test_v32(void)
{
	static const struct {
		size_t mtu;
		size_t fragments;
	} v[] = { { 23, 13 }, { 27, 11 }, { 247, 2 }, { 498, 1 } };
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *r = NULL;
	_cleanup_free_ uint8_t *pkt = NULL;
	size_t len;

	pkt = tap_unhex(v32_hex, &len);
	is_int(len, 252, "V32 is 252 bytes");
	is_int(smp_ble_reassembler_new(8 + 65535, &r), 0, "new reassembler");

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		is_int(smp_ble_fragment_count(len, v[i].mtu), v[i].fragments, "V32 at MTU %zu: count",
		       v[i].mtu);
		feed_split(r, pkt, len, v[i].mtu, "V32");
		ok(!smp_ble_reassembler_in_progress(r), "MTU %zu: nothing in progress after it",
		   v[i].mtu);
	}
}

/* A packet of exactly len bytes (8-byte header + filler) with a valid length field. */
static uint8_t *make_packet(size_t len)
{
	uint8_t *p = malloc(len);

	if (!p || len < 8)
		abort();
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + 1);
	p[2] = (uint8_t)((len - 8) >> 8);
	p[3] = (uint8_t)(len - 8);
	return p;
}

static void test_boundaries(void)
{
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *r = NULL;
	static const size_t sizes[] = { 8, 19, 20, 21, 39, 40, 41, 244, 245, 65535 + 8 };

	if (smp_ble_reassembler_new(8 + 65535, &r) < 0)
		abort();

	for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
		_cleanup_free_ uint8_t *p = make_packet(sizes[i]);

		feed_split(r, p, sizes[i], 23, "boundary");
		feed_split(r, p, sizes[i], 247, "boundary");
	}

	/* The header itself cut into pieces: 1 + 2 + 5 bytes, then the body. */
	{
		_cleanup_free_ uint8_t *p = make_packet(30);
		const uint8_t *got = NULL;
		size_t got_len = 0;

		is_int(smp_ble_reassembler_feed(r, p, 1, &got, &got_len), 0, "1 header byte: wait");
		ok(smp_ble_reassembler_in_progress(r), "partial header is in progress");
		is_int(smp_ble_reassembler_feed(r, p + 1, 2, &got, &got_len), 0, "3 header bytes: wait");
		is_int(smp_ble_reassembler_feed(r, p + 3, 0, &got, &got_len), 0, "empty: wait");
		is_int(smp_ble_reassembler_feed(r, p + 3, 5, &got, &got_len), 0, "whole header: wait");
		ok(got == NULL && got_len == 0, "outputs untouched while waiting");
		is_int(smp_ble_reassembler_feed(r, p + 8, 22, &got, &got_len), 1, "body completes it");
		is_mem(got, got_len, p, 30, "split header reassembled");
	}

	/* A packet that is only a header (Length 0), in one notification. */
	{
		_cleanup_free_ uint8_t *p = make_packet(8);
		const uint8_t *got = NULL;
		size_t got_len = 0;

		is_int(smp_ble_reassembler_feed(r, p, 8, &got, &got_len), 1, "8-byte packet at once");
		is_int(got_len, 8, "8-byte packet length");
	}
}

static void test_errors(void)
{
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *r = NULL;
	_cleanup_free_ uint8_t *p = make_packet(60);
	_cleanup_free_ uint8_t *big = make_packet(300);
	const uint8_t *got = NULL;
	size_t got_len = 0;

	is_int(smp_ble_reassembler_new(7, &r), -EINVAL, "max_packet below a header refused");
	is_int(smp_ble_reassembler_new(256, &r), 0, "reassembler of 256 bytes");

	/* More bytes than 8 + Length in one notification. */
	{
		uint8_t over[61];

		memcpy(over, p, 60);
		over[60] = 0xee;
		is_int(smp_ble_reassembler_feed(r, over, 61, &got, &got_len), -EBADMSG,
		       "one byte too many in the first notification");
		ok(!smp_ble_reassembler_in_progress(r), "dropped");
	}
	is_int(smp_ble_reassembler_feed(r, p, 20, &got, &got_len), 0, "first part");
	is_int(smp_ble_reassembler_feed(r, p + 20, 20, &got, &got_len), 0, "second part");
	is_int(smp_ble_reassembler_feed(r, p + 40, 21, &got, &got_len), -EBADMSG,
	       "last part one byte too long");
	ok(got == NULL, "no packet handed out on error");
	feed_split(r, p, 60, 23, "after an overrun");

	/* Announced length beyond max_packet: refused at the header. */
	is_int(smp_ble_reassembler_feed(r, big, 20, &got, &got_len), -EMSGSIZE,
	       "300-byte packet on a 256-byte reassembler");
	ok(!smp_ble_reassembler_in_progress(r), "oversize not kept");
	/* Its following fragments look like new packets (there is no way to
	 * tell): the transport's timeout resets whatever they started. */
	is_int(smp_ble_reassembler_feed(r, big + 20, 3, &got, &got_len), 0,
	       "a stray 3-byte fragment waits for a header");
	ok(smp_ble_reassembler_in_progress(r), "stray fragment kept");
	smp_ble_reassembler_reset(r);
	ok(!smp_ble_reassembler_in_progress(r), "reset drops it");
	feed_split(r, p, 60, 23, "after oversize and reset");

	/* Reset in the middle of a packet, as the transport does on timeout. */
	is_int(smp_ble_reassembler_feed(r, p, 20, &got, &got_len), 0, "partial packet");
	smp_ble_reassembler_reset(r);
	feed_split(r, p, 60, 27, "after reset mid-packet");

	/* Back to back: the packet is handed out, the next feed starts afresh. */
	feed_split(r, p, 60, 498, "first of two");
	feed_split(r, p, 60, 498, "second of two");
}

/* Deterministic xorshift so that failures reproduce. */
static uint32_t rng_state = 0x12345678;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_garbage(void)
{
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *r = NULL;
	uint8_t frag[600];
	size_t completed = 0, wrong = 0;

	if (smp_ble_reassembler_new(512, &r) < 0)
		abort();

	/* Every result must be consistent with the header it came from. */
	for (unsigned i = 0; i < 100000; i++) {
		size_t n = rng() % sizeof(frag);
		const uint8_t *got;
		size_t got_len;
		int k;

		for (size_t j = 0; j < n; j++)
			frag[j] = (uint8_t)rng();
		/* Small lengths now and then, so that packets do complete. */
		if (n >= 4 && (rng() & 3) == 0)
			frag[2] = 0, frag[3] = (uint8_t)(rng() % 64);
		k = smp_ble_reassembler_feed(r, frag, n, &got, &got_len);
		if (k == 1) {
			completed++;
			if (got_len < 8 || got_len != 8 + ((size_t)got[2] << 8 | got[3]) || got_len > 512)
				wrong++;
		} else if (k != 0 && k != -EBADMSG && k != -EMSGSIZE) {
			wrong++;
		}
	}
	is_int(wrong, 0, "random notifications: results always consistent");
	ok(completed > 0, "random notifications: some completed (%zu)", completed);
}

static void test_fragments(void)
{
	size_t off = 99, n = 99;

	is_int(smp_ble_fragment_count(0, 23), 0, "empty packet: no fragment");
	is_int(smp_ble_fragment_count(20, 23), 1, "20 bytes at MTU 23: one");
	is_int(smp_ble_fragment_count(21, 23), 2, "21 bytes at MTU 23: two");
	is_int(smp_ble_fragment_count(100, 3), 0, "MTU 3: no payload");
	is_int(smp_ble_fragment(21, 23, 1, &off, &n), 0, "second fragment of 21 bytes");
	ok(off == 20 && n == 1, "it is byte 20, 1 byte");
	is_int(smp_ble_fragment(21, 23, 2, &off, &n), -ERANGE, "no third fragment");
	is_int(smp_ble_fragment(21, 3, 0, &off, &n), -EINVAL, "MTU 3 refused");
	ok(off == 20 && n == 1, "outputs untouched on error");
}

int main(void)
{
	test_v32();
	test_boundaries();
	test_errors();
	test_garbage();
	test_fragments();
	return tap_done();
}
