/* group-test: helpers shared by the group codec tests (recordings, vectors, malformed input) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* ---- vectors ---- */

/* Decodes a whole packet written in hex; NULL (after a failing TAP line) when it
 * does not decode. */
struct smp_response *gt_response(const char *hex, const char *what);

/* One TAP line: err is 0 and r, finished with (version, seq), equals the hex
 * packet. Frees r. */
void gt_check_request(int err, struct smp_request *r, uint8_t version, uint8_t seq,
		      const char *hex, const char *what);

/* One TAP line: the response's status is (kind, group, rc). */
void gt_check_status(const struct smp_response *rsp, enum smp_status_kind kind, uint16_t group,
		     int64_t rc, const char *what);

/* ---- the Zephyr 4.1 recordings (tests/data/zephyr-4.1/udp-v{1,2}.json) ---- */

struct gt_pair {
	char *name;
	uint8_t *req;
	size_t req_len;
	uint8_t *rsp;
	size_t rsp_len;
};

struct gt_recording {
	char *file;
	int version; /* the SMP version the recorder sent: 0 (v1) or 1 (v2) */
	size_t n_pairs;
	struct gt_pair *pairs;
};

/* Loads "udp-v1.json" or "udp-v2.json"; aborts when the file is missing or bad. */
struct gt_recording *gt_recording_load(const char *file);
void gt_recording_free(struct gt_recording *rec);
/* The pair of that name; aborts when there is none (a typo in a test). */
const struct gt_pair *gt_recording_pair(const struct gt_recording *rec, const char *name);
/* The decoded response of a pair; NULL (after a failing TAP line) when it does not decode. */
struct smp_response *gt_recording_response(const struct gt_recording *rec, const char *name);
/* One TAP line: the built request equals the recorded one (header finished with
 * the recorded version and sequence). Frees r. */
void gt_check_recorded_request(const struct gt_recording *rec, const char *name, int err,
			       struct smp_request *r);

/* ---- malformed input ---- */

/* What the checks below report when smp_response_decode() itself refused the
 * packet, so that a parser's -EBADMSG cannot be confused with the decoder's. */
#define GT_UNDECODABLE (-100000)

struct gt_field {
	const char *key;
	const char *good;  /* hex of a valid value */
	const char *wrong; /* hex of a value of the wrong type (null is always tried too) */
	bool required;
};

/* Builds responses header(group, id, op) + prefix + map of fields + suffix and
 * runs smp_groups_parse_any() on them: every field (indefinite and definite
 * map) gives 0; leaving out a required field gives -EBADMSG and an optional
 * one 0; each field's value replaced by wrong and by null gives -EBADMSG. */
void gt_check_fields(const char *what, uint16_t group, uint8_t id, uint8_t op, const char *prefix,
		     const struct gt_field *fields, size_t n_fields, const char *suffix);

/* Runs smp_groups_parse_any() on header(group, id, op) + payload hex and
 * checks the result, GT_UNDECODABLE when it does not decode (one TAP line). */
void gt_check_payload(const char *what, uint16_t group, uint8_t id, uint8_t op,
		      const char *payload, int want);

/* Every truncation of a response packet fails to decode, also with the header
 * length patched to match (one TAP line); every byte replaced by a set of
 * hostile values decodes and parses without a crash, to a known code (one TAP line). */
void gt_check_truncations(const char *what, const uint8_t *pkt, size_t len);
void gt_check_mutations(const char *what, const uint8_t *pkt, size_t len);
/* Both of the above on every response pair of both recordings in this group. */
void gt_check_recordings_robust(uint16_t group);

/* Hostile values for key in a response to (group, id, op) whose map otherwise
 * holds the pairs in base (hex, may be ""): huge declared array, map, byte and
 * text lengths, nesting past the decoder's limit (all refused by the decoder:
 * GT_UNDECODABLE), and nesting within the limit (the parser's -EBADMSG). */
void gt_check_hostile(const char *what, uint16_t group, uint8_t id, uint8_t op, const char *base,
		      const char *key);
