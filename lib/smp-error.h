/* smp-error: classifying responses (ok, "rc", "err"/"ret" maps) and naming every error code */
#pragma once

#include <cbor.h>
#include <stdint.h>

#include "smp-header.h"

enum smp_status_kind {
	SMP_STATUS_OK,
	SMP_STATUS_RC,        /* SMP-level or v1 error: {"rc": n}, n != 0 */
	SMP_STATUS_GROUP_ERR, /* v2 command error: {"err": {group, rc}} or 3.4's {"ret": {...}} */
};

/* Generic codes carried in "rc" (mcumgr_err_t). */
enum smp_rc {
	SMP_RC_OK = 0,
	SMP_RC_EUNKNOWN = 1,
	SMP_RC_ENOMEM = 2,
	SMP_RC_EINVAL = 3,
	SMP_RC_ETIMEOUT = 4,
	SMP_RC_ENOENT = 5,
	SMP_RC_EBADSTATE = 6,
	SMP_RC_EMSGSIZE = 7,
	SMP_RC_ENOTSUP = 8,
	SMP_RC_ECORRUPT = 9,
	SMP_RC_EBUSY = 10,
	SMP_RC_EACCESSDENIED = 11,
	SMP_RC_UNSUPPORTED_TOO_OLD = 12,
	SMP_RC_UNSUPPORTED_TOO_NEW = 13,
	SMP_RC_EPERUSER = 256,
};

#define SMP_RSN_MAX 128

struct smp_status {
	enum smp_status_kind kind;
	uint16_t group; /* for GROUP_ERR: the group named in the error map (may differ from the header's) */
	int64_t rc;     /* 0 for OK */
	char rsn[SMP_RSN_MAX]; /* optional "rsn" hint, truncated, "" when absent; never parse it */
};

/* Classifies a decoded top-level response map (smp-protocol.md §4.1).
 * header_group decides the shell quirk: a shell response holding "o" uses
 * "rc" as the command's exit code, not as an SMP error. A missing or empty
 * map is success. Returns 0, or -EBADMSG when "err"/"rc" have the wrong shape. */
int smp_status_classify(const cbor_item_t *map, uint16_t header_group, struct smp_status *ret);

/* "EINVAL", "ENOTSUP", ... or NULL when unknown (>= 256 is application-defined). */
const char *smp_rc_name(int64_t rc);
/* "NO_FREE_SLOT", ...: the name of a group's error code, or NULL. Codes 0 and 1
 * are "OK" and "UNKNOWN" in every group. */
const char *smp_group_rc_name(uint16_t group, int64_t rc);
/* A human sentence for an error code ("no slot available for the upload"); never NULL. */
const char *smp_rc_describe(int64_t rc);
const char *smp_group_rc_describe(uint16_t group, int64_t rc);

/* Name and sentence for a status, whichever its kind ("OK" / "ok" for success). */
const char *smp_status_name(const struct smp_status *s);
const char *smp_status_describe(const struct smp_status *s);

/* The best negative errno for a status, for callers that only want a code:
 * 0 for OK, -EBUSY for busy, -ENOENT for not-found codes, -ENOTSUP,
 * -EINVAL, -EACCES, -ENOMEM, -EMSGSIZE, otherwise -EREMOTEIO. */
int smp_status_to_errno(const struct smp_status *s);
