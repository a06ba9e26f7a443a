/* fuzz: the libFuzzer entry point every target defines, and invariant checks */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Defined by each tests/fuzz/fuzz-<target>.c; called by libFuzzer, or by
 * fuzz-replay.c for every corpus file under make check. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test does not hold: abort, so that libFuzzer
 * keeps the input as a crash and the replay test fails. Not assert(): it must
 * stay on with -DNDEBUG. */
#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                           \
		}                                                                          \
	} while (0)
