/* fuzz-ble: BLE notification reassembly with fragments the input chooses, and re-splitting */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "smp-ble.h"
#include "smp-header.h"
#include "tests/fuzz/fuzz.h"

/* A reassembled packet, split again for an ATT MTU and fed to a fresh
 * reassembler, comes back whole from its last fragment only. */
static void check_resplit(const uint8_t *pkt, size_t len, size_t att_mtu)
{
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *r = NULL;
	size_t count = smp_ble_fragment_count(len, att_mtu), covered = 0, off, n;

	FUZZ_CHECK(count > 0);
	FUZZ_CHECK(smp_ble_reassembler_new(len, &r) == 0);
	for (size_t i = 0; i < count; i++) {
		const uint8_t *got = NULL;
		size_t got_len = 0;
		int k;

		FUZZ_CHECK(smp_ble_fragment(len, att_mtu, i, &off, &n) == 0);
		FUZZ_CHECK(off == covered && n > 0 && n <= att_mtu - 3);
		covered += n;
		k = smp_ble_reassembler_feed(r, pkt + off, n, &got, &got_len);
		FUZZ_CHECK(k == (i + 1 == count ? 1 : 0));
		if (k == 1)
			FUZZ_CHECK(got_len == len && memcmp(got, pkt, len) == 0);
	}
	FUZZ_CHECK(covered == len);
	FUZZ_CHECK(smp_ble_fragment(len, att_mtu, count, &off, &n) == -ERANGE);
}

/* Feeds the fragments to r; checks what comes out. Returns the number of packets. */
static size_t feed_all(struct smp_ble_reassembler *r, size_t max_packet, const uint8_t *data,
		       size_t size, size_t att_mtu)
{
	size_t packets = 0;

	/* Records: one length byte, then that many fragment bytes (cut at the end). */
	for (size_t off = 0; off < size;) {
		size_t n = MIN((size_t)data[off], size - off - 1);
		const uint8_t *pkt = NULL;
		size_t len = 0;
		int k;

		k = smp_ble_reassembler_feed(r, data + off + 1, n, &pkt, &len);
		off += 1 + n;
		FUZZ_CHECK(k == 0 || k == 1 || k == -EBADMSG || k == -EMSGSIZE || k == -ENOMEM);
		if (k != 1) {
			if (k < 0)
				FUZZ_CHECK(!smp_ble_reassembler_in_progress(r));
			continue;
		}
		packets++;
		FUZZ_CHECK(!smp_ble_reassembler_in_progress(r));
		FUZZ_CHECK(len >= SMP_HEADER_SIZE && len <= max_packet);
		FUZZ_CHECK(len == SMP_HEADER_SIZE + ((size_t)pkt[2] << 8 | pkt[3]));
		check_resplit(pkt, len, att_mtu);
	}
	return packets;
}

/* Input: byte 0 chooses the ATT MTU for re-splitting (4 + n) and a small
 * packet limit for a second reassembler; then fragment records. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *big = NULL;
	_cleanup_(smp_ble_reassembler_freep) struct smp_ble_reassembler *small = NULL;
	size_t small_max;

	if (size < 1)
		return 0;
	small_max = SMP_HEADER_SIZE + data[0];
	FUZZ_CHECK(smp_ble_reassembler_new(SMP_PACKET_MAX, &big) == 0);
	FUZZ_CHECK(smp_ble_reassembler_new(small_max, &small) == 0);
	feed_all(big, SMP_PACKET_MAX, data + 1, size - 1, 4 + (size_t)data[0]);
	feed_all(small, small_max, data + 1, size - 1, SMP_BLE_ATT_MTU_MIN);
	smp_ble_reassembler_reset(big);
	FUZZ_CHECK(!smp_ble_reassembler_in_progress(big));
	return 0;
}
