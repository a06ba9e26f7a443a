/* sim-device: one simulated Zephyr device: its state and the SMP server that answers it */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "sim-device.h"
#include "sim-fs.h"
#include "sim-settings.h"
#include "sim-shell.h"
#include "sim-util.h"
#include "smp-cbor.h"
#include "smp-error.h"

/* Request payloads nest at most a few levels; zcbor gives up beyond. */
#define SIM_DECODE_DEPTH 8
/* CONFIG_MCUMGR_GRP_OS_INFO_MAX_RESPONSE_SIZE, CONFIG_STAT_MGMT_MAX_NAME_LEN,
 * CONFIG_MCUMGR_GRP_ENUM_DETAILS_BUFFER_TYPE_STACK_ENTRIES. */
#define SIM_INFO_MAX 256
#define SIM_STAT_NAME_MAX 32
#define SIM_ENUM_DETAILS_MAX 16

struct sim_device {
	const struct sim_config *cfg;
	unsigned index;
	char *name;
	char *serial;
	char *address;
	char *dir;

	struct sim_image *image;
	struct sim_settings *settings;
	struct sim_fs *fs;
	struct sim_flash_stats flash;
	struct sim_rng rng;

	uint64_t boot_us;
	uint64_t boots;
	/* The RTC keeps running across warm resets, not across power loss. */
	bool rtc_set;
	int64_t rtc_epoch;
	uint64_t rtc_mono_us;
	/* The header bytes of the last response: Zephyr sends them again in
	 * one corner of its v1 path (see sim_device_single()). */
	uint8_t last_rsp_hdr[SMP_HEADER_SIZE];
	bool upload_fault_fired;
	unsigned buffers_in_use;
	unsigned buffers_min_free;
};

/* ---- identity and accessors ---- */

const char *sim_device_name(const struct sim_device *d)
{
	return d->name;
}

const char *sim_device_serial(const struct sim_device *d)
{
	return d->serial;
}

const char *sim_device_address(const struct sim_device *d)
{
	return d->address;
}

unsigned sim_device_index(const struct sim_device *d)
{
	return d->index;
}

const struct sim_config *sim_device_config(const struct sim_device *d)
{
	return d->cfg;
}

struct sim_image *sim_device_image(struct sim_device *d)
{
	return d->image;
}

struct sim_settings *sim_device_settings(struct sim_device *d)
{
	return d->settings;
}

struct sim_fs *sim_device_fs(struct sim_device *d)
{
	return d->fs;
}

uint64_t sim_device_uptime_ms(const struct sim_device *d)
{
	return (sim_now_usec() - d->boot_us) / 1000;
}

const char *sim_device_info(const struct sim_device *d, enum sim_info_field f)
{
	static const char *const defaults[_SIM_INFO_MAX] = {
	    [SIM_INFO_KERNEL_NAME] = "Zephyr",
	    [SIM_INFO_RELEASE] = "v4.1.0",
	    [SIM_INFO_VERSION] = "4.1.0",
	    [SIM_INFO_BUILD_DATE] = "Sat Nov 21 11:39:02 2026",
	    [SIM_INFO_MACHINE] = "arm",
	    [SIM_INFO_PROCESSOR] = "cortex-m4",
	    [SIM_INFO_PLATFORM] = "nrf52840dk/nrf52840",
	    [SIM_INFO_OS] = "Zephyr",
	};

	if (d->cfg->info[f])
		return d->cfg->info[f];
	if (f == SIM_INFO_NODE_NAME)
		return d->name;
	return defaults[f];
}

bool sim_device_upload_fault(struct sim_device *d, uint64_t before, uint64_t after)
{
	int64_t at = d->cfg->faults.reset_during_upload;

	if (at < 0 || d->upload_fault_fired)
		return false;
	if (!(before <= (uint64_t)at && after > (uint64_t)at))
		return false;
	d->upload_fault_fired = true;
	return true;
}

void sim_device_set_buffers_in_use(struct sim_device *d, unsigned n)
{
	unsigned free_bufs = n >= d->cfg->buf_count ? 0 : d->cfg->buf_count - n;

	d->buffers_in_use = n;
	d->buffers_min_free = MIN(d->buffers_min_free, free_bufs);
}

/* ---- OS group ---- */

static int sim_os_echo(struct sim_ctx *c)
{
	const char *d = NULL;
	size_t n = 0;

	if (!sim_req_text(c, "d", &d, &n, NULL))
		return SMP_RC_EINVAL;
	smp_cbor_put_text(&c->rsp, "r");
	smp_cbor_put_textn(&c->rsp, d ? d : "", n);
	return 0;
}

/* The thread list of Zephyr 4.1's smp_svr, as its taskstat reports it. */
static int sim_os_taskstat(struct sim_ctx *c)
{
	static const struct {
		const char *name;
		int prio;
		unsigned state;
	} threads[] = {
	    {"mcumgr smp", 3, 128}, {"smp_udp4", 0, 2},	    {"conn_mgr_monitor", -1, 2},
	    {"rx_q[0]", -1, 2},	    {"net_mgmt", -1, 2},    {"shell_uart", 14, 2},
	    {"sysworkq", -1, 2},    {"shell_dummy", 14, 2}, {"idle", 15, 0},
	    {"main", 0, 4},
	};

	smp_cbor_put_text(&c->rsp, "tasks");
	smp_cbor_put_map_indef(&c->rsp);
	for (size_t i = 0; i < ELEMENTSOF(threads); i++) {
		smp_cbor_put_text(&c->rsp, threads[i].name);
		smp_cbor_put_map_indef(&c->rsp);
		smp_cbor_put_text(&c->rsp, "prio");
		smp_cbor_put_int(&c->rsp, threads[i].prio);
		smp_cbor_put_text(&c->rsp, "tid");
		smp_cbor_put_uint(&c->rsp, i);
		smp_cbor_put_text(&c->rsp, "state");
		smp_cbor_put_uint(&c->rsp, threads[i].state);
		smp_cbor_put_break(&c->rsp);
	}
	smp_cbor_put_break(&c->rsp);
	return 0;
}

/* Memory pools as Zephyr's documentation shows them: pool names at the top. */
static int sim_os_mpstat(struct sim_ctx *c)
{
	const struct sim_config *cfg = c->dev->cfg;
	unsigned used = MIN(c->dev->buffers_in_use, cfg->buf_count);

	smp_cbor_put_text(&c->rsp, "smp_buf");
	smp_cbor_put_map_indef(&c->rsp);
	smp_cbor_put_text(&c->rsp, "blksiz");
	smp_cbor_put_uint(&c->rsp, cfg->buf_size);
	smp_cbor_put_text(&c->rsp, "nblks");
	smp_cbor_put_uint(&c->rsp, cfg->buf_count);
	smp_cbor_put_text(&c->rsp, "nfree");
	smp_cbor_put_uint(&c->rsp, cfg->buf_count - used);
	smp_cbor_put_text(&c->rsp, "min");
	smp_cbor_put_uint(&c->rsp, c->dev->buffers_min_free);
	smp_cbor_put_break(&c->rsp);
	return 0;
}

static int sim_os_datetime_read(struct sim_ctx *c)
{
	struct sim_device *d = c->dev;
	char s[48];
	struct tm tm;
	time_t t;

	if (!d->rtc_set) {
		sim_rsp_err(c, SMP_GROUP_OS, SIM_OS_ERR_RTC_NOT_SET);
		return 0;
	}
	t = (time_t)(d->rtc_epoch + (int64_t)((sim_now_usec() - d->rtc_mono_us) / 1000000));
	if (!gmtime_r(&t, &tm)) {
		sim_rsp_err(c, SMP_GROUP_OS, SIM_OS_ERR_RTC_COMMAND_FAILED);
		return 0;
	}
	snprintf(s, sizeof(s), "%4d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
		 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
		 tm.tm_sec % 100);
	smp_cbor_put_text(&c->rsp, "datetime");
	smp_cbor_put_text(&c->rsp, s);
	return 0;
}

/* os_mgmt_datetime_write()'s parser: six decimal fields, each followed by
 * any one character, each within its range. */
static int sim_os_datetime_write(struct sim_ctx *c)
{
	static const struct {
		int min, max;
	} range[6] = {{1900, 11899}, {1, 12}, {1, 31}, {0, 23}, {0, 59}, {0, 59}};
	const char *text = NULL;
	size_t len = 0;
	char s[26];
	long v[6];
	char *pos, *end;
	struct tm tm = {0};
	time_t t;

	if (!sim_req_text(c, "datetime", &text, &len, NULL))
		return SMP_RC_EINVAL;
	if (len < 19 || len >= sizeof(s))
		return SMP_RC_EINVAL;
	memcpy(s, text, len);
	s[len] = 0;
	pos = s;
	for (unsigned i = 0; i < 6; i++) {
		if (pos >= s + len)
			return SMP_RC_EINVAL;
		v[i] = strtol(pos, &end, 10);
		if (end == pos || v[i] < range[i].min || v[i] > range[i].max)
			return SMP_RC_EINVAL;
		pos = end + 1;
	}
	tm.tm_year = (int)v[0] - 1900;
	tm.tm_mon = (int)v[1] - 1;
	tm.tm_mday = (int)v[2];
	tm.tm_hour = (int)v[3];
	tm.tm_min = (int)v[4];
	tm.tm_sec = (int)v[5];
	t = timegm(&tm);
	c->dev->rtc_set = true;
	c->dev->rtc_epoch = (int64_t)t;
	c->dev->rtc_mono_us = sim_now_usec();
	return 0;
}

static int sim_os_reset(struct sim_ctx *c)
{
	/* "force" matters only with a reset hook, which smp_svr has not. */
	c->reset = true;
	return 0;
}

static int sim_os_params(struct sim_ctx *c)
{
	smp_cbor_put_text(&c->rsp, "buf_size");
	smp_cbor_put_uint(&c->rsp, c->dev->cfg->buf_size);
	smp_cbor_put_text(&c->rsp, "buf_count");
	smp_cbor_put_uint(&c->rsp, c->dev->cfg->buf_count);
	return 0;
}

static int sim_os_info(struct sim_ctx *c)
{
	static const char order[] = "snrvbmpio";
	const char *format = NULL;
	size_t len = 0, valid = 0, n = 0;
	unsigned mask = 0;
	char out[SIM_INFO_MAX];

	if (!sim_req_text(c, "format", &format, &len, NULL))
		return SMP_RC_EINVAL;
	for (size_t i = 0; i < len; i++) {
		const char *p = format[i] ? strchr(order, format[i]) : NULL;

		if (format[i] == 'a') {
			mask = (1u << _SIM_INFO_MAX) - 1;
			valid++;
		} else if (p) {
			mask |= 1u << (p - order);
			valid++;
		}
	}
	if (valid != len) {
		sim_rsp_err(c, SMP_GROUP_OS, SIM_OS_ERR_INVALID_FORMAT);
		return 0;
	}
	if (mask == 0)
		mask = 1u << SIM_INFO_KERNEL_NAME;
	out[0] = 0;
	for (unsigned f = 0; f < _SIM_INFO_MAX; f++) {
		int w;

		if (!(mask & (1u << f)))
			continue;
		w = snprintf(out + n, sizeof(out) - n, "%s%s", n ? " " : "",
			     sim_device_info(c->dev, (enum sim_info_field)f));
		if (w < 0 || (size_t)w >= sizeof(out) - n)
			return SMP_RC_EMSGSIZE;
		n += (size_t)w;
	}
	smp_cbor_put_text(&c->rsp, "output");
	smp_cbor_put_textn(&c->rsp, out, n);
	return 0;
}

static int sim_os_bootloader(struct sim_ctx *c)
{
	const char *q = NULL;
	size_t len = 0;
	bool found = false;

	if (!sim_req_text(c, "query", &q, &len, &found))
		return SMP_RC_EINVAL;
	if (!found) {
		smp_cbor_put_text(&c->rsp, "bootloader");
		smp_cbor_put_text(&c->rsp, "MCUboot");
	} else if (len == 4 && !memcmp(q, "mode", 4)) {
		smp_cbor_put_text(&c->rsp, "mode");
		smp_cbor_put_int(&c->rsp, c->dev->cfg->bootloader_mode);
	} else
		sim_rsp_err(c, SMP_GROUP_OS, SIM_OS_ERR_QUERY_YIELDS_NO_ANSWER);
	return 0;
}

/* ---- statistics group ---- */

static const char *const sim_stat_groups[] = {"flash_sim_stats", "flash_sim_thresholds",
					      "smp_svr_stats"};

static int sim_stat_show(struct sim_ctx *c)
{
	const struct sim_flash_stats *f = &c->dev->flash;
	const char *name = NULL;
	size_t len = 0, g;
	struct {
		const char *name;
		uint32_t v;
	} fields[9];
	size_t n = 0;

	if (!sim_req_text(c, "name", &name, &len, NULL) || len == 0 || len >= SIM_STAT_NAME_MAX)
		return SMP_RC_EINVAL;
	for (g = 0; g < ELEMENTSOF(sim_stat_groups); g++)
		if (strlen(sim_stat_groups[g]) == len && !memcmp(sim_stat_groups[g], name, len))
			break;
	if (g == ELEMENTSOF(sim_stat_groups)) {
		/* Zephyr 4.1 names group 63 in this error (seen on a real device). */
		sim_rsp_err(c, SMP_GROUP_ZEPHYR, 3);
		return 0;
	}
	switch (g) {
	case 0:
		fields[n++] = (typeof(fields[0])){"bytes_read", f->bytes_read};
		fields[n++] = (typeof(fields[0])){"bytes_written", f->bytes_written};
		fields[n++] = (typeof(fields[0])){"double_writes", f->double_writes};
		fields[n++] = (typeof(fields[0])){"flash_read_calls", f->flash_read_calls};
		fields[n++] = (typeof(fields[0])){"flash_read_time_us", f->flash_read_time_us};
		fields[n++] = (typeof(fields[0])){"flash_write_calls", f->flash_write_calls};
		fields[n++] = (typeof(fields[0])){"flash_write_time_us", f->flash_write_time_us};
		fields[n++] = (typeof(fields[0])){"flash_erase_calls", f->flash_erase_calls};
		fields[n++] = (typeof(fields[0])){"flash_erase_time_us", f->flash_erase_time_us};
		break;
	case 1:
		fields[n++] = (typeof(fields[0])){"max_write_calls", 0};
		fields[n++] = (typeof(fields[0])){"max_erase_calls", 0};
		fields[n++] = (typeof(fields[0])){"max_len", 0};
		break;
	default:
		/* smp_svr counts seconds in its main loop. */
		fields[n++] =
		    (typeof(fields[0])){"ticks", (uint32_t)(sim_device_uptime_ms(c->dev) / 1000)};
		fields[n++] = (typeof(fields[0])){"s1", 0};
		break;
	}
	smp_cbor_put_text(&c->rsp, "name");
	smp_cbor_put_textn(&c->rsp, name, len);
	smp_cbor_put_text(&c->rsp, "fields");
	smp_cbor_put_map_indef(&c->rsp);
	for (size_t i = 0; i < n; i++) {
		smp_cbor_put_text(&c->rsp, fields[i].name);
		smp_cbor_put_uint(&c->rsp, fields[i].v);
	}
	smp_cbor_put_break(&c->rsp);
	return 0;
}

static int sim_stat_list(struct sim_ctx *c)
{
	smp_cbor_put_text(&c->rsp, "stat_list");
	smp_cbor_put_array_indef(&c->rsp);
	for (size_t i = 0; i < ELEMENTSOF(sim_stat_groups); i++)
		smp_cbor_put_text(&c->rsp, sim_stat_groups[i]);
	smp_cbor_put_break(&c->rsp);
	return 0;
}

/* ---- Zephyr basic group ---- */

static int sim_zephyr_erase_storage(struct sim_ctx *c)
{
	int r1 = sim_settings_erase_storage(c->dev->settings);
	int r2 = sim_fs_erase(c->dev->fs);

	if (r1 < 0 || r2 < 0)
		sim_rsp_err(c, SMP_GROUP_ZEPHYR, SIM_ZB_ERR_FLASH_ERASE_FAILED);
	c->busy_us += 64 * c->dev->cfg->flash_erase_us_per_kib; /* a 64 KiB partition */
	return 0;
}

/* ---- the handler table ---- */

struct sim_cmd {
	sim_handler_fn read;
	sim_handler_fn write;
};

struct sim_group {
	uint16_t id;
	const char *name;
	const struct sim_cmd *cmds;
	unsigned n_cmds; /* mg_handlers_count, reported by enum details */
};

static int sim_enum_count(struct sim_ctx *c);
static int sim_enum_list(struct sim_ctx *c);
static int sim_enum_single(struct sim_ctx *c);
static int sim_enum_details(struct sim_ctx *c);

static const struct sim_cmd sim_os_cmds[] = {
    [SMP_OS_ECHO] = {sim_os_echo, sim_os_echo},
    [SMP_OS_TASKSTAT] = {sim_os_taskstat, NULL},
    [SMP_OS_MPSTAT] = {sim_os_mpstat, NULL},
    [SMP_OS_DATETIME] = {sim_os_datetime_read, sim_os_datetime_write},
    [SMP_OS_RESET] = {NULL, sim_os_reset},
    [SMP_OS_PARAMS] = {sim_os_params, NULL},
    [SMP_OS_INFO] = {sim_os_info, NULL},
    [SMP_OS_BOOTLOADER] = {sim_os_bootloader, NULL},
};

static const struct sim_cmd sim_image_cmds[] = {
    [SMP_IMAGE_STATE] = {sim_image_state_read, sim_image_state_write},
    [SMP_IMAGE_UPLOAD] = {NULL, sim_image_upload},
    [SMP_IMAGE_ERASE] = {NULL, sim_image_erase},
    [SMP_IMAGE_SLOT_INFO] = {sim_image_slot_info, NULL},
};

static const struct sim_cmd sim_stat_cmds[] = {
    [SMP_STAT_SHOW] = {sim_stat_show, NULL},
    [SMP_STAT_LIST] = {sim_stat_list, NULL},
};

static const struct sim_cmd sim_settings_cmds[] = {
    [SMP_SETTINGS_VALUE] = {sim_settings_read, sim_settings_write},
    [SMP_SETTINGS_DELETE] = {NULL, sim_settings_delete},
    [SMP_SETTINGS_COMMIT] = {NULL, sim_settings_commit},
    [SMP_SETTINGS_LOAD_SAVE] = {sim_settings_load, sim_settings_save},
};

static const struct sim_cmd sim_fs_cmds[] = {
    [SMP_FS_FILE] = {sim_fs_download, sim_fs_upload},
    [SMP_FS_STATUS] = {sim_fs_status, NULL},
    [SMP_FS_HASH] = {sim_fs_hash, NULL},
    [SMP_FS_TYPES] = {sim_fs_types, NULL},
    [SMP_FS_CLOSE] = {NULL, sim_fs_close},
};

static const struct sim_cmd sim_shell_cmds[] = {
    [SMP_SHELL_EXEC] = {NULL, sim_shell_exec},
};

static const struct sim_cmd sim_enum_cmds[] = {
    [SMP_ENUM_COUNT] = {sim_enum_count, NULL},
    [SMP_ENUM_LIST] = {sim_enum_list, NULL},
    [SMP_ENUM_SINGLE] = {sim_enum_single, NULL},
    [SMP_ENUM_DETAILS] = {sim_enum_details, NULL},
};

static const struct sim_cmd sim_zephyr_cmds[] = {
    [SMP_ZEPHYR_ERASE_STORAGE] = {NULL, sim_zephyr_erase_storage},
};

/* In registration order, which enumeration reports (as smp_svr does). The
 * image group's table has 7 slots in Zephyr (2..4 reserved). */
static const struct sim_group sim_groups[] = {
    {SMP_GROUP_ENUM, "enum mgmt", sim_enum_cmds, 4},
    {SMP_GROUP_FS, "fs mgmt", sim_fs_cmds, 5},
    {SMP_GROUP_IMAGE, "img mgmt", sim_image_cmds, 7},
    {SMP_GROUP_OS, "os mgmt", sim_os_cmds, 9},
    {SMP_GROUP_SETTINGS, "settings mgmt", sim_settings_cmds, 4},
    {SMP_GROUP_SHELL, "shell mgmt", sim_shell_cmds, 1},
    {SMP_GROUP_STAT, "stat mgmt", sim_stat_cmds, 2},
    {SMP_GROUP_ZEPHYR, "zephyr basic mgmt", sim_zephyr_cmds, 1},
};

static size_t sim_group_cmd_count(const struct sim_group *g)
{
	switch (g->id) {
	case SMP_GROUP_OS:
		return ELEMENTSOF(sim_os_cmds);
	case SMP_GROUP_IMAGE:
		return ELEMENTSOF(sim_image_cmds);
	case SMP_GROUP_STAT:
		return ELEMENTSOF(sim_stat_cmds);
	case SMP_GROUP_SETTINGS:
		return ELEMENTSOF(sim_settings_cmds);
	case SMP_GROUP_FS:
		return ELEMENTSOF(sim_fs_cmds);
	case SMP_GROUP_SHELL:
		return ELEMENTSOF(sim_shell_cmds);
	case SMP_GROUP_ENUM:
		return ELEMENTSOF(sim_enum_cmds);
	case SMP_GROUP_ZEPHYR:
		return ELEMENTSOF(sim_zephyr_cmds);
	}
	return 0;
}

static sim_handler_fn sim_find_handler(const struct sim_device *d, uint16_t group, uint8_t id,
				       uint8_t op)
{
	for (size_t i = 0; i < ELEMENTSOF(sim_groups); i++) {
		const struct sim_group *g = &sim_groups[i];

		if (g->id != group)
			continue;
		if (id >= sim_group_cmd_count(g))
			return NULL;
		if (group == SMP_GROUP_OS && id == SMP_OS_MPSTAT && !d->cfg->mpstat)
			return NULL;
		return op == SMP_OP_READ ? g->cmds[id].read : g->cmds[id].write;
	}
	return NULL;
}

/* ---- enumeration group ---- */

static int sim_enum_count(struct sim_ctx *c)
{
	smp_cbor_put_text(&c->rsp, "count");
	smp_cbor_put_uint(&c->rsp, ELEMENTSOF(sim_groups));
	return 0;
}

static int sim_enum_list(struct sim_ctx *c)
{
	smp_cbor_put_text(&c->rsp, "groups");
	smp_cbor_put_array_indef(&c->rsp);
	for (size_t i = 0; i < ELEMENTSOF(sim_groups); i++)
		smp_cbor_put_uint(&c->rsp, sim_groups[i].id);
	smp_cbor_put_break(&c->rsp);
	return 0;
}

static int sim_enum_single(struct sim_ctx *c)
{
	uint32_t index = 0;

	if (!sim_req_u32(c, "index", &index, NULL) || index > UINT16_MAX)
		return SMP_RC_EINVAL;
	if (index >= ELEMENTSOF(sim_groups)) {
		sim_rsp_err(c, SMP_GROUP_ENUM, SIM_ENUM_ERR_INDEX_TOO_LARGE);
		return 0;
	}
	smp_cbor_put_text(&c->rsp, "group");
	smp_cbor_put_uint(&c->rsp, sim_groups[index].id);
	if (index == ELEMENTSOF(sim_groups) - 1) {
		smp_cbor_put_text(&c->rsp, "end");
		smp_cbor_put_bool(&c->rsp, true);
	}
	return 0;
}

static int sim_enum_details(struct sim_ctx *c)
{
	const cbor_item_t *list = NULL;
	uint16_t allowed[SIM_ENUM_DETAILS_MAX];
	size_t n_allowed = 0;

	if (!c->map)
		return SMP_RC_EINVAL;
	list = smp_cbor_map_get(c->map, "groups");
	if (list) {
		size_t n;

		if (!cbor_isa_array(list))
			return SMP_RC_EINVAL;
		n = cbor_array_size(list);
		if (n > SIM_ENUM_DETAILS_MAX) {
			sim_rsp_err(c, SMP_GROUP_ENUM, SIM_ENUM_ERR_TOO_MANY_GROUP_ENTRIES);
			return 0;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t v;

			if (smp_cbor_item_uint(cbor_array_handle(list)[i], &v) < 0 ||
			    v > UINT32_MAX)
				return SMP_RC_EINVAL;
			allowed[n_allowed++] = (uint16_t)v;
		}
	}
	smp_cbor_put_text(&c->rsp, "groups");
	smp_cbor_put_array_indef(&c->rsp);
	for (size_t i = 0; i < ELEMENTSOF(sim_groups); i++) {
		const struct sim_group *g = &sim_groups[i];
		bool ok = n_allowed == 0;

		for (size_t j = 0; j < n_allowed; j++)
			ok |= allowed[j] == g->id;
		if (!ok)
			continue;
		smp_cbor_put_map_indef(&c->rsp);
		smp_cbor_put_text(&c->rsp, "group");
		smp_cbor_put_uint(&c->rsp, g->id);
		smp_cbor_put_text(&c->rsp, "name");
		smp_cbor_put_text(&c->rsp, g->name);
		smp_cbor_put_text(&c->rsp, "handlers");
		smp_cbor_put_uint(&c->rsp, g->n_cmds);
		smp_cbor_put_break(&c->rsp);
	}
	smp_cbor_put_break(&c->rsp);
	return 0;
}

/* ---- packets ---- */

void sim_result_clear(struct sim_result *r)
{
	for (size_t i = 0; i < r->n_pkts; i++)
		free(r->pkts[i].data);
	free(r->pkts);
	*r = (struct sim_result){0};
}

static int sim_result_add(struct sim_result *r, const uint8_t *hdr, const uint8_t *payload,
			  size_t len)
{
	struct sim_packet *p = realloc(r->pkts, (r->n_pkts + 1) * sizeof(*p));
	uint8_t *data;

	if (!p)
		return -ENOMEM;
	r->pkts = p;
	data = malloc(SMP_HEADER_SIZE + len);
	if (!data)
		return -ENOMEM;
	memcpy(data, hdr, SMP_HEADER_SIZE);
	if (len)
		memcpy(data + SMP_HEADER_SIZE, payload, len);
	r->pkts[r->n_pkts++] = (struct sim_packet){data, SMP_HEADER_SIZE + len};
	return 0;
}

/* A v1-only server (older than Zephyr 3.4) ignores the version bits and
 * answers with version 0; a v2 server copies the version, capped at 1. */
static uint8_t sim_rsp_version(const struct sim_device *d, const struct smp_header *req)
{
	if (d->cfg->smp_version < 2)
		return SMP_VERSION_1;
	return req->version > SMP_VERSION_2 ? SMP_VERSION_2 : req->version;
}

static int sim_emit(struct sim_device *d, struct sim_result *r, const struct smp_header *req,
		    const uint8_t *payload, size_t len)
{
	struct smp_header h = {
	    .version = sim_rsp_version(d, req),
	    /* smp_rsp_op(): everything but READ is answered as a write. */
	    .op = req->op == SMP_OP_READ ? SMP_OP_READ_RSP : SMP_OP_WRITE_RSP,
	    .flags = 0,
	    .len = (uint16_t)len,
	    .group = req->group,
	    .seq = req->seq,
	    .id = req->id,
	};
	uint8_t hdr[SMP_HEADER_SIZE];

	smp_header_encode(&h, hdr);
	memcpy(d->last_rsp_hdr, hdr, sizeof(hdr));
	return sim_result_add(r, hdr, payload, len);
}

/* smp_build_err_rsp(): {"rc": status}. */
static int sim_emit_rc(struct sim_device *d, struct sim_result *r, const struct smp_header *req,
		       int status)
{
	struct smp_buf b = SMP_BUF_INIT;
	int ret;

	smp_cbor_put_map_indef(&b);
	smp_cbor_put_text(&b, "rc");
	smp_cbor_put_int(&b, status);
	smp_cbor_put_break(&b);
	ret = smp_buf_error(&b);
	if (ret == 0)
		ret = sim_emit(d, r, req, b.data, b.len);
	smp_buf_clear(&b);
	return ret;
}

/* One request: returns 0 when a response was emitted (or none is due, on
 * power loss), a generic code for an error response, or -ENOMEM. */
static int sim_device_single(struct sim_device *d, const void *link, const struct smp_header *h,
			     const uint8_t *payload, struct sim_result *r)
{
	struct sim_ctx c = {
	    .dev = d,
	    .hdr = *h,
	    .payload = payload,
	    .payload_len = h->len,
	    .link = link,
	    .rsp = {.limit = d->cfg->buf_size > SMP_HEADER_SIZE ? d->cfg->buf_size - SMP_HEADER_SIZE
								: 1},
	};
	bool v1 = d->cfg->smp_version < 2 || h->version == SMP_VERSION_1;
	sim_handler_fn fn;
	int rc, ret = 0;

	if (d->cfg->smp_version >= 2 && h->version > SMP_VERSION_2)
		return SMP_RC_UNSUPPORTED_TOO_NEW;
	fn = sim_find_handler(d, h->group, h->id, h->op);
	if (!fn)
		return SMP_RC_ENOTSUP;
	if (sim_rng_chance(&d->rng, d->cfg->faults.busy_rate))
		return SMP_RC_EBUSY;

	if (smp_cbor_load(payload, h->len, SIM_DECODE_DEPTH, &c.map) < 0 || !cbor_isa_map(c.map))
		smp_cbor_decrefp(&c.map);
	smp_cbor_put_map_indef(&c.rsp);
	rc = fn(&c);
	smp_cbor_put_break(&c.rsp);
	r->busy_us += c.busy_us;
	r->reset |= c.reset;
	r->power_loss |= c.power_loss;
	if (c.power_loss)
		goto out;
	if (rc == 0 && smp_buf_error(&c.rsp) == -ENOMEM) {
		ret = -ENOMEM;
		goto out;
	}
	if (rc == 0 && smp_buf_error(&c.rsp) < 0)
		rc = SMP_RC_EMSGSIZE;
	if (rc != 0) {
		ret = rc;
		goto out;
	}
	if (v1 && c.err_rc != 0) {
		rc = sim_translate_error(c.err_group, c.err_rc);
		if (rc != 0) {
			ret = rc;
			goto out;
		}
		/* Zephyr returns "success" without writing a header: the reused
		 * buffer goes out as the 8 header bytes of the previous response. */
		ret = sim_result_add(r, d->last_rsp_hdr, NULL, 0);
		goto out;
	}
	ret = sim_emit(d, r, h, c.rsp.data, c.rsp.len);
out:
	smp_cbor_decrefp(&c.map);
	smp_buf_clear(&c.rsp);
	return ret;
}

int sim_device_process(struct sim_device *d, const void *link, const uint8_t *frame, size_t len,
		       struct sim_result *ret)
{
	struct sim_result r = {0};
	size_t off = 0;
	int rc = 0;

	while (off < len && !r.power_loss) {
		struct smp_header h;

		/* Too short for a header: no response at all. */
		if (smp_header_decode(frame + off, len - off, &h) < 0)
			break;
		if (len - off - SMP_HEADER_SIZE < h.len)
			rc = SMP_RC_ECORRUPT;
		else if (h.op == SMP_OP_READ || h.op == SMP_OP_WRITE)
			rc = sim_device_single(d, link, &h, frame + off + SMP_HEADER_SIZE, &r);
		else
			rc = SMP_RC_ENOTSUP;
		if (rc == -ENOMEM)
			goto fail;
		if (rc != 0) {
			if (sim_emit_rc(d, &r, &h, rc) < 0)
				goto fail;
			break;
		}
		off += SMP_HEADER_SIZE + h.len;
	}
	*ret = r;
	return 0;
fail:
	sim_result_clear(&r);
	return -ENOMEM;
}

/* ---- lifecycle ---- */

void sim_device_power_off(struct sim_device *d)
{
	sim_image_power_off(d->image);
	sim_fs_power_off(d->fs);
	d->rtc_set = false;
}

int sim_device_boot(struct sim_device *d, struct sim_boot_report *ret)
{
	struct sim_boot_report rep;
	char line[128];
	int r;

	r = sim_image_boot(d->image, &d->cfg->faults, d->cfg->auto_confirm, &rep);
	if (r < 0)
		return r;
	d->boot_us = sim_now_usec();
	d->boots++;
	d->buffers_in_use = 0;
	d->buffers_min_free = d->cfg->buf_count;
	sim_image_power_off(d->image);
	sim_fs_power_off(d->fs);
	sim_settings_boot(d->settings);
	if (!rep.bricked) {
		snprintf(line, sizeof(line), "boot %llu version %s swap %s\n",
			 (unsigned long long)d->boots, rep.version,
			 sim_swap_type_to_string(rep.swap));
		sim_fs_boot(d->fs, line);
	}
	if (ret)
		*ret = rep;
	return 0;
}

void sim_device_started(struct sim_device *d)
{
	d->boot_us = sim_now_usec();
}

int sim_device_new(const struct sim_config *cfg, unsigned index, const char *scratch,
		   struct sim_device **ret)
{
	struct sim_device *d = calloc(1, sizeof(*d));
	_cleanup_free_ char *fs_root = NULL, *settings_path = NULL;
	uint64_t h = 1469598103934665603ULL;
	struct sim_image_params ip;
	int r = -ENOMEM;

	if (!d)
		return -ENOMEM;
	d->cfg = cfg;
	d->index = index;
	d->name = sim_strdup_printf("%s%u", cfg->name_prefix, index);
	if (!d->name)
		goto fail;
	for (const char *c = d->name; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ULL;
	d->serial = sim_strdup_printf("SIM%08X", (unsigned)(h ^ (h >> 32)));
	/* A random static address (top bits 11), unique per index. */
	d->address = sim_strdup_printf("C0:53:49:4D:%02X:%02X", (index >> 8) & 0xff, index & 0xff);
	if (!d->serial || !d->address)
		goto fail;
	sim_rng_seed(&d->rng, cfg->seed, 0x1000 + index);
	if (cfg->state_dir) {
		d->dir = sim_strdup_printf("%s/%s", cfg->state_dir, d->name);
		if (!d->dir)
			goto fail;
		r = sim_mkdir_p(d->dir);
		if (r < 0)
			goto fail;
		fs_root = sim_strdup_printf("%s/fs", d->dir);
		settings_path = sim_strdup_printf("%s/settings", d->dir);
		if (!fs_root || !settings_path) {
			r = -ENOMEM;
			goto fail;
		}
	} else {
		fs_root = sim_strdup_printf("%s/%s", scratch, d->name);
		if (!fs_root) {
			r = -ENOMEM;
			goto fail;
		}
	}

	ip = (struct sim_image_params){
	    .slot_size = cfg->slot_size,
	    .mode = cfg->bootloader_mode,
	    .dir = d->dir,
	    .ident = d->name,
	    .version = cfg->app_version,
	    .stats = &d->flash,
	};
	ip.version.build = index;
	r = sim_image_new(&ip, &d->image);
	if (r < 0)
		goto fail;
	{
		const char *identity[] = {"name",    d->name,	 "serial", d->serial,
					  "address", d->address, NULL};

		r = sim_settings_new(settings_path, identity, &d->settings);
		if (r < 0)
			goto fail;
	}
	r = sim_fs_new(fs_root, cfg->fs_mount, &d->flash, &d->fs);
	if (r < 0)
		goto fail;
	memset(d->last_rsp_hdr, 0, sizeof(d->last_rsp_hdr));
	r = sim_device_boot(d, NULL);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail:
	sim_device_free(d);
	return r;
}

struct sim_device *sim_device_free(struct sim_device *d)
{
	if (!d)
		return NULL;
	sim_image_free(d->image);
	sim_settings_free(d->settings);
	sim_fs_free(d->fs);
	free(d->name);
	free(d->serial);
	free(d->address);
	free(d->dir);
	free(d);
	return NULL;
}
