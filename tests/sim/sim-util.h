/* sim-util: small helpers of the simulator: logging, a seeded RNG, files and time */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

enum sim_log_level {
	SIM_LOG_ERR,
	SIM_LOG_WARN,
	SIM_LOG_INFO,
	SIM_LOG_DEBUG,
	SIM_LOG_TRACE,
};

/* Messages above this level are not printed (smp-sim sets it from -v/-q). */
extern enum sim_log_level sim_log_max;

/* Writes "smp-sim: <who>: message" to stderr when level <= sim_log_max. who may be NULL. */
void sim_log(enum sim_log_level level, const char *who, const char *fmt, ...) _printf_(3, 4);
/* Logs with ": <strerror(-err)>" appended and returns err (negative). */
int sim_log_errno(enum sim_log_level level, int err, const char *who, const char *fmt, ...)
    _printf_(4, 5);

/* A deterministic generator (splitmix64): the same seed gives the same faults. */
struct sim_rng {
	uint64_t s;
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed, uint64_t stream);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
/* True with probability p (never for p <= 0, always for p >= 1). */
bool sim_rng_chance(struct sim_rng *r, double p);
/* Uniform in [0, n), 0 when n == 0. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);

/* Accuracy of every timer: sd-event's default (0) lets a timer fire up to
 * 250 ms late, which would swamp the latencies being simulated. */
#define SIM_TIMER_ACCURACY_US 1

/* CLOCK_MONOTONIC in microseconds. */
uint64_t sim_now_usec(void);

/* Writes a whole file through "<path>.tmp" and rename(), so that a process
 * killed at any moment leaves either the old or the new content. Returns 0
 * or a negative errno. */
int sim_write_file_atomic(const char *path, const void *data, size_t len);
/* Reads a whole file (at most max bytes) into a new buffer (free()).
 * Returns 0, -ENOENT, -EFBIG, or another negative errno. */
int sim_read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len);
/* mkdir -p with mode 0755. Returns 0 or a negative errno. */
int sim_mkdir_p(const char *path);
/* Removes a directory tree (no symlinks followed). Returns 0 or a negative errno. */
int sim_rm_rf(const char *path);
/* asprintf that returns NULL on failure. */
char *sim_strdup_printf(const char *fmt, ...) _printf_(1, 2);

/* Parses a non-negative decimal or 0x-hex number; returns 0 or -EINVAL / -ERANGE. */
int sim_parse_u64(const char *s, uint64_t *ret);
/* Parses a probability in [0, 1]. */
int sim_parse_rate(const char *s, double *ret);
