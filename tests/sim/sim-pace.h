/* sim-pace: a wire that carries bytes at a fixed rate, one after the other */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* The simulator's link model for --baud and --bandwidth: a token bucket
 * without burst, i.e. a wire that serialises bytes behind those charged
 * before it. Bytes charged while the wire is busy queue behind the earlier
 * ones; bytes charged while it is idle start at once. Times are in
 * microseconds of one clock chosen by the caller (CLOCK_MONOTONIC in the
 * simulator); nothing here reads a clock, so the arithmetic is testable.
 *
 * Every time is computed from the start of the current busy period and the
 * bytes charged in it, rounded up once: never early, and no rounding error
 * accumulates (at 115200 baud one byte is 86.8 us; rounding each byte would
 * be 1 % off). */
struct sim_pace {
	uint64_t bits_per_sec;	/* 0: no limit, every byte passes at once */
	unsigned bits_per_byte; /* 10 for a UART's 8N1 (start, 8 data, stop); 8 for packets */
	uint64_t start_us;	/* the current busy period began here */
	uint64_t bytes;		/* bytes charged in the current busy period */
	uint64_t total;		/* bytes charged since the start */
};

/* bits_per_byte 0 counts as 8. */
void sim_pace_init(struct sim_pace *p, uint64_t bits_per_sec, unsigned bits_per_byte);
/* Changes the rate for bytes charged from now on. Bytes already charged
 * still finish when charge() said (later bytes queue behind them), but
 * sim_pace_passed() counts them as passed from the change on. */
void sim_pace_set_rate(struct sim_pace *p, uint64_t now_us, uint64_t bits_per_sec);
bool sim_pace_limited(const struct sim_pace *p);

/* Microseconds n bytes take on the wire, rounded up. */
uint64_t sim_pace_duration_us(const struct sim_pace *p, uint64_t n);
/* Charges n bytes offered at now_us behind the earlier ones; returns the
 * time the last of them has passed (now_us without a limit). */
uint64_t sim_pace_charge(struct sim_pace *p, uint64_t now_us, uint64_t n);
/* When everything charged so far has passed (<= now: the wire is idle). */
uint64_t sim_pace_free_us(const struct sim_pace *p);
/* How many of the bytes charged so far (counted since the start) have
 * passed completely by now_us. */
uint64_t sim_pace_passed(const struct sim_pace *p, uint64_t now_us);
/* When the first k bytes charged since the start have passed (k <= total;
 * 0 without a limit, the start of the busy period for bytes of an earlier one). */
uint64_t sim_pace_when(const struct sim_pace *p, uint64_t k);
