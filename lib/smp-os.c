/* smp-os: requests and response parsers of the OS management group (0) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-cbor.h"
#include "smp-groups-internal.h"
#include "smp-os.h"

/* A request whose payload is {key: text}. */
static int os_text_request(uint8_t op, uint8_t id, const char *key, const char *text,
			   struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (!text)
		return -EINVAL;
	err = smp_request_new(op, SMP_GROUP_OS, id, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, key);
	smp_cbor_put_text(&r->pkt, text);
	return smp_request_done(r, ret);
}

/* The required text field of a response. */
static int os_text_parse(const struct smp_response *rsp, const char *key, char **ret)
{
	const cbor_item_t *root;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	return smp_groups_req_text(root, key, ret);
}

int smp_os_echo_request(const char *text, struct smp_request **ret)
{
	return os_text_request(SMP_OP_WRITE, SMP_OS_ECHO, "d", text, ret);
}

int smp_os_echo_parse(const struct smp_response *rsp, char **ret)
{
	return os_text_parse(rsp, "r", ret);
}

int smp_os_console_echo_request(bool enable, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_CONSOLE_ECHO, &r);
	if (err < 0)
		return err;
	/* Mynewt reads an integer here, not a bool. */
	smp_cbor_put_map(&r->pkt, 1);
	smp_cbor_put_text(&r->pkt, "echo");
	smp_cbor_put_uint(&r->pkt, enable ? 1 : 0);
	return smp_request_done(r, ret);
}

/* ---- task statistics ------------------------------------------------------------ */

int smp_os_taskstat_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_TASKSTAT, ret);
}

struct smp_os_taskstat *smp_os_taskstat_free(struct smp_os_taskstat *t)
{
	if (t) {
		for (size_t i = 0; i < t->n_tasks; i++)
			free(t->tasks[i].name);
		free(t->tasks);
		free(t);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_os_taskstat *, smp_os_taskstat_free);

static int task_parse(const cbor_item_t *m, struct smp_os_task *t)
{
	static const struct {
		const char *key;
		size_t offset;
		unsigned flag;
	} optional[] = {
		{ "stkuse", offsetof(struct smp_os_task, stkuse), SMP_OS_TASK_HAS_STKUSE },
		{ "stksiz", offsetof(struct smp_os_task, stksiz), SMP_OS_TASK_HAS_STKSIZ },
		{ "cswcnt", offsetof(struct smp_os_task, cswcnt), SMP_OS_TASK_HAS_CSWCNT },
		{ "runtime", offsetof(struct smp_os_task, runtime), SMP_OS_TASK_HAS_RUNTIME },
		{ "last_checkin", offsetof(struct smp_os_task, last_checkin),
		  SMP_OS_TASK_HAS_LAST_CHECKIN },
		{ "next_checkin", offsetof(struct smp_os_task, next_checkin),
		  SMP_OS_TASK_HAS_NEXT_CHECKIN },
	};
	int r;

	if (!cbor_isa_map(m))
		return -EBADMSG;
	r = smp_groups_req_int(m, "prio", INT64_MIN, INT64_MAX, &t->prio);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(m, "tid", UINT64_MAX, &t->tid);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(m, "state", UINT64_MAX, &t->state);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(optional); i++) {
		uint64_t *field = (uint64_t *)((char *)t + optional[i].offset);

		r = smp_groups_opt_uint(m, optional[i].key, UINT64_MAX, field);
		if (r < 0)
			return r;
		if (r > 0)
			t->present |= optional[i].flag;
	}
	return 0;
}

int smp_os_taskstat_parse(const struct smp_response *rsp, struct smp_os_taskstat **ret)
{
	_cleanup_(smp_os_taskstat_freep) struct smp_os_taskstat *t = NULL;
	struct cbor_pair *p;
	size_t n;
	int r;

	r = smp_groups_root_map(rsp, "tasks", NULL, &p, &n);
	if (r < 0)
		return r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tasks = smp_groups_calloc(n, sizeof(*t->tasks));
	if (!t->tasks)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct smp_os_task *task = &t->tasks[i];

		r = smp_cbor_item_text(p[i].key, &task->name);
		if (r < 0)
			return r;
		t->n_tasks++;
		r = task_parse(p[i].value, task);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(t);
	return 0;
}

/* ---- memory pool statistics ------------------------------------------------------ */

int smp_os_mpstat_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_MPSTAT, ret);
}

struct smp_os_mpstat *smp_os_mpstat_free(struct smp_os_mpstat *m)
{
	if (m) {
		for (size_t i = 0; i < m->n_pools; i++)
			free(m->pools[i].name);
		free(m->pools);
		free(m);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_os_mpstat *, smp_os_mpstat_free);

static int mpool_parse(const cbor_item_t *m, struct smp_os_mpool *pool)
{
	int r;

	r = smp_groups_req_uint(m, "blksiz", UINT64_MAX, &pool->blksiz);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(m, "nblks", UINT64_MAX, &pool->nblks);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(m, "nfree", UINT64_MAX, &pool->nfree);
	if (r < 0)
		return r;
	r = smp_groups_opt_uint(m, "min", UINT64_MAX, &pool->min);
	if (r < 0)
		return r;
	pool->has_min = r > 0;
	return 0;
}

int smp_os_mpstat_parse(const struct smp_response *rsp, struct smp_os_mpstat **ret)
{
	_cleanup_(smp_os_mpstat_freep) struct smp_os_mpstat *m = NULL;
	const cbor_item_t *root, *pools;
	struct cbor_pair *p;
	bool wrapped;
	size_t n, count = 0;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	pools = smp_cbor_map_get(root, "mpools");
	wrapped = pools != NULL;
	if (!wrapped)
		pools = root;
	else if (!cbor_isa_map(pools))
		return -EBADMSG;
	n = cbor_map_size(pools);
	p = cbor_map_handle(pools);

	/* At top level, values that are not maps are the envelope ("rc", "rsn"). */
	for (size_t i = 0; i < n; i++)
		if (wrapped || cbor_isa_map(p[i].value))
			count++;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->pools = smp_groups_calloc(count, sizeof(*m->pools));
	if (!m->pools)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct smp_os_mpool *pool = &m->pools[m->n_pools];

		if (!wrapped && !cbor_isa_map(p[i].value))
			continue;
		if (!cbor_isa_map(p[i].value))
			return -EBADMSG;
		r = smp_cbor_item_text(p[i].key, &pool->name);
		if (r < 0)
			return r;
		m->n_pools++;
		r = mpool_parse(p[i].value, pool);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

/* ---- date-time, reset, parameters, info ------------------------------------------ */

int smp_os_datetime_get_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_DATETIME, ret);
}

int smp_os_datetime_set_request(const char *datetime, struct smp_request **ret)
{
	return os_text_request(SMP_OP_WRITE, SMP_OS_DATETIME, "datetime", datetime, ret);
}

int smp_os_datetime_parse(const struct smp_response *rsp, char **ret)
{
	return os_text_parse(rsp, "datetime", ret);
}

int smp_os_reset_request(bool force, int boot_mode, struct smp_request **ret)
{
	struct smp_request *r;
	int err;

	if (boot_mode < -1 || boot_mode > UINT8_MAX)
		return -EINVAL;
	err = smp_request_new(SMP_OP_WRITE, SMP_GROUP_OS, SMP_OS_RESET, &r);
	if (err < 0)
		return err;
	smp_cbor_put_map(&r->pkt, (size_t)force + (boot_mode >= 0));
	if (force) {
		smp_cbor_put_text(&r->pkt, "force");
		smp_cbor_put_bool(&r->pkt, true);
	}
	if (boot_mode >= 0) {
		smp_cbor_put_text(&r->pkt, "boot_mode");
		smp_cbor_put_uint(&r->pkt, (uint64_t)boot_mode);
	}
	return smp_request_done(r, ret);
}

int smp_os_params_request(struct smp_request **ret)
{
	return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_PARAMS, ret);
}

int smp_os_params_parse(const struct smp_response *rsp, struct smp_os_params *ret)
{
	const cbor_item_t *root;
	uint64_t size, count;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "buf_size", UINT32_MAX, &size);
	if (r < 0)
		return r;
	r = smp_groups_req_uint(root, "buf_count", UINT32_MAX, &count);
	if (r < 0)
		return r;
	*ret = (struct smp_os_params){ .buf_size = (uint32_t)size, .buf_count = (uint32_t)count };
	return 0;
}

int smp_os_info_request(const char *format, struct smp_request **ret)
{
	if (!format)
		return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_INFO, ret);
	return os_text_request(SMP_OP_READ, SMP_OS_INFO, "format", format, ret);
}

int smp_os_info_parse(const struct smp_response *rsp, char **ret)
{
	return os_text_parse(rsp, "output", ret);
}

/* ---- bootloader info -------------------------------------------------------------- */

int smp_os_bootloader_request(const char *query, struct smp_request **ret)
{
	if (!query)
		return smp_request_new_empty(SMP_OP_READ, SMP_GROUP_OS, SMP_OS_BOOTLOADER, ret);
	return os_text_request(SMP_OP_READ, SMP_OS_BOOTLOADER, "query", query, ret);
}

struct smp_os_bootloader_info *smp_os_bootloader_info_free(struct smp_os_bootloader_info *b)
{
	if (b) {
		free(b->bootloader);
		free(b);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_os_bootloader_info *, smp_os_bootloader_info_free);

int smp_os_bootloader_parse(const struct smp_response *rsp, struct smp_os_bootloader_info **ret)
{
	_cleanup_(smp_os_bootloader_info_freep) struct smp_os_bootloader_info *b = NULL;
	const cbor_item_t *root;
	int r;

	r = smp_groups_root(rsp, &root);
	if (r < 0)
		return r;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	r = smp_groups_opt_text(root, "bootloader", &b->bootloader);
	if (r < 0)
		return r;
	r = smp_groups_opt_int(root, "mode", INT64_MIN, INT64_MAX, &b->mode);
	if (r < 0)
		return r;
	b->has_mode = r > 0;
	r = smp_groups_opt_bool(root, "no-downgrade", &b->no_downgrade);
	if (r < 0)
		return r;
	b->has_no_downgrade = r > 0;
	r = smp_groups_opt_uint(root, "active", UINT64_MAX, &b->active);
	if (r < 0)
		return r;
	b->has_active = r > 0;
	if (!b->bootloader && !b->has_mode && !b->has_active)
		return -EBADMSG;
	*ret = TAKE_PTR(b);
	return 0;
}

static const char *const boot_mode_names[] = {
	[SMP_OS_BOOT_MODE_SINGLE_SLOT] = "single-slot",
	[SMP_OS_BOOT_MODE_SWAP_SCRATCH] = "swap-scratch",
	[SMP_OS_BOOT_MODE_OVERWRITE_ONLY] = "overwrite-only",
	[SMP_OS_BOOT_MODE_SWAP_MOVE] = "swap-move",
	[SMP_OS_BOOT_MODE_DIRECT_XIP] = "direct-xip",
	[SMP_OS_BOOT_MODE_DIRECT_XIP_REVERT] = "direct-xip-revert",
	[SMP_OS_BOOT_MODE_RAM_LOAD] = "ram-load",
	[SMP_OS_BOOT_MODE_FIRMWARE_LOADER] = "firmware-loader",
	[SMP_OS_BOOT_MODE_SINGLE_SLOT_RAM_LOAD] = "single-slot-ram-load",
	[SMP_OS_BOOT_MODE_SWAP_OFFSET] = "swap-offset",
};

const char *smp_os_boot_mode_name(int64_t mode)
{
	if (mode == SMP_OS_BOOT_MODE_UNKNOWN)
		return "unknown";
	if (mode < 0 || (uint64_t)mode >= ELEMENTSOF(boot_mode_names))
		return NULL;
	return boot_mode_names[mode];
}

bool smp_os_boot_mode_can_revert(int64_t mode)
{
	return mode == SMP_OS_BOOT_MODE_SWAP_SCRATCH || mode == SMP_OS_BOOT_MODE_SWAP_MOVE ||
	       mode == SMP_OS_BOOT_MODE_DIRECT_XIP_REVERT || mode == SMP_OS_BOOT_MODE_SWAP_OFFSET;
}
