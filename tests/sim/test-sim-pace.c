/* test-sim-pace: the link pacing arithmetic of the simulator (--baud, --bandwidth), no clock */
#include <stdint.h>

#include "sim-pace.h"
#include "tests/tap.h"

static void test_uart(void)
{
	struct sim_pace p;
	uint64_t t = 0;
	bool consistent = true;

	/* 115200 baud 8N1: 10 bits per byte, 11520 bytes per second. */
	sim_pace_init(&p, 115200, 10);
	ok(sim_pace_limited(&p), "115200 baud is a limit");
	is_int(sim_pace_duration_us(&p, 1), 87, "one byte: 86.8 us, rounded up");
	is_int(sim_pace_duration_us(&p, 127), 11025, "a 127-byte console line: 11024.3 us, up");
	is_int(sim_pace_duration_us(&p, 11520), 1000000, "11520 bytes: exactly one second");

	/* Charged one at a time, with no error piling up. */
	for (unsigned i = 0; i < 11520; i++)
		t = sim_pace_charge(&p, 0, 1);
	is_int(t, 1000000, "11520 single bytes offered at once end at 1 s, not 11520 x 87 us");
	is_int(sim_pace_free_us(&p), 1000000, "the wire is free at 1 s");
	is_int(sim_pace_passed(&p, 999999), 11519, "at 999999 us the last byte is not through");
	is_int(sim_pace_passed(&p, 1000000), 11520, "at 1 s every byte is");

	/* Behind the earlier bytes while busy, at once when idle. */
	sim_pace_init(&p, 115200, 10);
	is_int(sim_pace_charge(&p, 0, 100), 8681, "100 bytes at 0: through at 8680.6 -> 8681 us");
	is_int(sim_pace_charge(&p, 1000, 100), 17362,
	       "100 more at 1 ms queue behind: 200 bytes after 0 = 17361.2 -> 17362 us");
	is_int(sim_pace_charge(&p, 20000, 10), 20869,
	       "10 bytes at 20 ms on an idle wire: 20 ms + 868.1 -> 869 us");
	is_int(sim_pace_passed(&p, 19999), 200, "before that, the first 200 have passed");
	is_int(sim_pace_passed(&p, 20868), 209, "at 20868 us, 9 of the last 10");
	is_int(sim_pace_passed(&p, 20869), 210, "at 20869 us, all of them");
	is_int(p.total, 210, "210 bytes charged");

	/* passed() and when() agree byte for byte. */
	sim_pace_init(&p, 115200, 10);
	sim_pace_charge(&p, 5000, 300);
	for (uint64_t k = 1; k <= 300; k++) {
		uint64_t w = sim_pace_when(&p, k);

		if (sim_pace_passed(&p, w) < k || sim_pace_passed(&p, w - 1) >= k)
			consistent = false;
	}
	ok(consistent, "byte k passes exactly at when(k), for each of 300 bytes");
	is_int(sim_pace_when(&p, 1), 5087, "the first byte at 5 ms + 87 us");
	is_int(sim_pace_passed(&p, 5000), 0, "nothing passed at the start");
}

static void test_packets(void)
{
	struct sim_pace p;

	/* --bandwidth 125000: bytes per second of payload, 8 bits each. */
	sim_pace_init(&p, 125000 * 8, 8);
	is_int(sim_pace_duration_us(&p, 1472), 11776, "a 1472-byte datagram at 125000 B/s");
	is_int(sim_pace_charge(&p, 100, 1472), 11876, "sent at 100 us: through at 11876 us");
	is_int(sim_pace_charge(&p, 200, 1472), 23652, "the next queues behind it");
	is_int(sim_pace_charge(&p, 50000, 18), 50144, "an 18-byte answer on an idle wire");

	/* A rate change applies to what is charged afterwards. */
	sim_pace_init(&p, 8000, 8);
	is_int(sim_pace_charge(&p, 0, 1000), 1000000, "1000 bytes at 1000 B/s: 1 s");
	sim_pace_set_rate(&p, 500000, 16000);
	is_int(sim_pace_charge(&p, 500000, 1000), 1500000,
	       "after doubling the rate, 1000 more take 0.5 s behind the first");
	sim_pace_set_rate(&p, 600000, 0);
	ok(!sim_pace_limited(&p), "rate 0: no limit");
	is_int(sim_pace_charge(&p, 600000, 5000), 600000, "without a limit bytes pass at once");
	is_int(sim_pace_passed(&p, 0), 7000, "and count as passed");
	is_int(sim_pace_duration_us(&p, 5000), 0, "taking no time");

	/* Large counts do not overflow: 1e12 bytes at 1 bit per second. */
	sim_pace_init(&p, 1, 8);
	is_int(sim_pace_duration_us(&p, 1000000000000ULL), 8000000000000000000ULL,
	       "1e12 bytes at 1 bit/s: 8e18 us, computed without overflow");
	sim_pace_init(&p, 0, 0);
	is_int(p.bits_per_byte, 8, "bits per byte 0 means 8");
}

int main(void)
{
	test_uart();
	test_packets();
	return tap_done();
}
