/* smp-os: requests and response parsers of the OS management group (0) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-request.h"
#include "smp-response.h"

/* Builders: return 0 and a new request in *ret (free with smp_request_free),
 * -EINVAL for a bad argument, -ENOMEM. Optional keys are left out when not
 * given; maps are definite-length in a fixed key order.
 *
 * Parsers: return 0 and the result in *ret; -EREMOTEIO when the response is
 * an error (read rsp->status); -EBADMSG when a required field is missing or
 * any known field has the wrong CBOR type or range; -ENOMEM. Unknown fields
 * are ignored. Heap results are owned by the caller and freed with the
 * matching NULL-safe _free(). */

/* Echo (cmd 0, WRITE): {"d": text} → {"r": text}. */
int smp_os_echo_request(const char *text, struct smp_request **ret);
/* *ret is a new NUL-terminated copy of "r" (free()). */
int smp_os_echo_parse(const struct smp_response *rsp, char **ret);

/* Console echo control (cmd 1, WRITE, Mynewt): {"echo": 0|1} → {}. */
int smp_os_console_echo_request(bool enable, struct smp_request **ret);

/* Task statistics (cmd 2, READ): {} → {"tasks": {name: {...}}}. prio, tid and
 * state are required; the other fields are flagged in present. */
enum {
	SMP_OS_TASK_HAS_STKUSE = 1 << 0,
	SMP_OS_TASK_HAS_STKSIZ = 1 << 1,
	SMP_OS_TASK_HAS_CSWCNT = 1 << 2,
	SMP_OS_TASK_HAS_RUNTIME = 1 << 3,
	SMP_OS_TASK_HAS_LAST_CHECKIN = 1 << 4,
	SMP_OS_TASK_HAS_NEXT_CHECKIN = 1 << 5,
};

struct smp_os_task {
	char *name;
	int64_t prio; /* signed on devices with ..._TASKSTAT_SIGNED_PRIORITY */
	uint64_t tid;
	uint64_t state;
	uint64_t stkuse; /* Zephyr: in 4-byte words */
	uint64_t stksiz;
	uint64_t cswcnt;
	uint64_t runtime;
	uint64_t last_checkin;
	uint64_t next_checkin;
	unsigned present; /* SMP_OS_TASK_HAS_* */
};

struct smp_os_taskstat {
	size_t n_tasks;
	struct smp_os_task *tasks; /* in the device's order */
};

int smp_os_taskstat_request(struct smp_request **ret);
int smp_os_taskstat_parse(const struct smp_response *rsp, struct smp_os_taskstat **ret);
struct smp_os_taskstat *smp_os_taskstat_free(struct smp_os_taskstat *t);

/* Memory pool statistics (cmd 3, READ): Mynewt's {"mpools": {name: {...}}} and
 * the top-level {name: {...}} of Zephyr's documentation both parse; in the
 * second form every top-level value that is a map is a pool. */
struct smp_os_mpool {
	char *name;
	uint64_t blksiz;
	uint64_t nblks;
	uint64_t nfree;
	uint64_t min;
	bool has_min;
};

struct smp_os_mpstat {
	size_t n_pools;
	struct smp_os_mpool *pools;
};

int smp_os_mpstat_request(struct smp_request **ret);
int smp_os_mpstat_parse(const struct smp_response *rsp, struct smp_os_mpstat **ret);
struct smp_os_mpstat *smp_os_mpstat_free(struct smp_os_mpstat *m);

/* Date-time (cmd 4): READ {} → {"datetime": text}; WRITE {"datetime": text} → {}.
 * The text is "YYYY-MM-DDTHH:MM:SS" with an optional ".ms" (UTC). */
int smp_os_datetime_get_request(struct smp_request **ret);
int smp_os_datetime_set_request(const char *datetime, struct smp_request **ret);
/* *ret is a new copy of "datetime" (free()). */
int smp_os_datetime_parse(const struct smp_response *rsp, char **ret);

/* System reset (cmd 5, WRITE) → {}. force is sent only when true (Zephyr
 * decodes it as a CBOR bool); boot_mode 0..255, or -1 to leave it out
 * (Zephyr >= 4.2). */
enum {
	SMP_OS_RESET_BOOT_MODE_NORMAL = 0,
	SMP_OS_RESET_BOOT_MODE_BOOTLOADER = 1,
};
int smp_os_reset_request(bool force, int boot_mode, struct smp_request **ret);

/* MCUmgr parameters (cmd 6, READ): {} → {"buf_size", "buf_count"}, both required. */
struct smp_os_params {
	uint32_t buf_size; /* bounds the whole packet, header included */
	uint32_t buf_count;
};
int smp_os_params_request(struct smp_request **ret);
int smp_os_params_parse(const struct smp_response *rsp, struct smp_os_params *ret);

/* OS/application info (cmd 7, READ): {"format": text} (NULL leaves it out,
 * meaning "s") → {"output": text}. */
int smp_os_info_request(const char *format, struct smp_request **ret);
/* *ret is a new copy of "output" (free()). */
int smp_os_info_parse(const struct smp_response *rsp, char **ret);

/* Bootloader info (cmd 8, READ): {"query": text} (NULL leaves it out) →
 * {"bootloader": text}, {"mode": int, "no-downgrade": bool} or {"active": uint}
 * (nRF Connect SDK's "active_b0_slot"). At least one of them must be present. */
#define SMP_OS_BOOTLOADER_QUERY_MODE "mode"
#define SMP_OS_BOOTLOADER_QUERY_ACTIVE_B0_SLOT "active_b0_slot"

struct smp_os_bootloader_info {
	char *bootloader; /* NULL when absent */
	bool has_mode;
	int64_t mode; /* enum smp_os_boot_mode */
	bool has_no_downgrade;
	bool no_downgrade;
	bool has_active;
	uint64_t active;
};

int smp_os_bootloader_request(const char *query, struct smp_request **ret);
int smp_os_bootloader_parse(const struct smp_response *rsp, struct smp_os_bootloader_info **ret);
struct smp_os_bootloader_info *smp_os_bootloader_info_free(struct smp_os_bootloader_info *b);

/* MCUboot modes reported by the "mode" query (smp-protocol.md §5.9). */
enum smp_os_boot_mode {
	SMP_OS_BOOT_MODE_UNKNOWN = -1,
	SMP_OS_BOOT_MODE_SINGLE_SLOT = 0,
	SMP_OS_BOOT_MODE_SWAP_SCRATCH = 1,
	SMP_OS_BOOT_MODE_OVERWRITE_ONLY = 2,
	SMP_OS_BOOT_MODE_SWAP_MOVE = 3,
	SMP_OS_BOOT_MODE_DIRECT_XIP = 4,
	SMP_OS_BOOT_MODE_DIRECT_XIP_REVERT = 5,
	SMP_OS_BOOT_MODE_RAM_LOAD = 6,
	SMP_OS_BOOT_MODE_FIRMWARE_LOADER = 7,
	SMP_OS_BOOT_MODE_SINGLE_SLOT_RAM_LOAD = 8,
	SMP_OS_BOOT_MODE_SWAP_OFFSET = 9,
};

/* "swap-scratch", ...; NULL for a value outside the table. */
const char *smp_os_boot_mode_name(int64_t mode);
/* True for the modes where "test, reset, then confirm" can revert (1, 3, 5, 9). */
bool smp_os_boot_mode_can_revert(int64_t mode);
