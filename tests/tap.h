/* tap: a tiny Test Anything Protocol emitter for the C unit tests */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each check prints one "ok N - name" or "not ok N - name" line. tap_done()
 * prints the plan ("1..N") and returns the exit status for main(). */
bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool tap_is_int(long long got, long long want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool tap_is_str(const char *got, const char *want, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool tap_is_mem(const void *got, size_t got_len, const void *want, size_t want_len,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tap_done(void);

/* Parses a hex string (spaces and '|' ignored) into a new buffer; aborts on bad input,
 * since vectors are written by us. */
uint8_t *tap_unhex(const char *hex, size_t *ret_len);
/* Reads a whole file; aborts on failure. */
uint8_t *tap_read_file(const char *path, size_t *ret_len);
/* $top_srcdir/rel, or rel when the variable is unset. Returned string is static. */
const char *tap_srcpath(const char *rel);

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int((long long)(got), (long long)(want), __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __VA_ARGS__)
#define is_mem(got, glen, want, wlen, ...) tap_is_mem((got), (glen), (want), (wlen), __VA_ARGS__)
