/* smp-header: the 8-byte SMP header, ops, versions, group and command ids */
#include <errno.h>

#include "macro.h"
#include "smp-header.h"

void smp_header_encode(const struct smp_header *h, uint8_t out[SMP_HEADER_SIZE])
{
	out[0] = (uint8_t)((h->version & 0x03) << 3 | (h->op & 0x07));
	out[1] = h->flags;
	out[2] = (uint8_t)(h->len >> 8);
	out[3] = (uint8_t)h->len;
	out[4] = (uint8_t)(h->group >> 8);
	out[5] = (uint8_t)h->group;
	out[6] = h->seq;
	out[7] = h->id;
}

int smp_header_decode(const uint8_t *buf, size_t len, struct smp_header *ret)
{
	if (!buf || len < SMP_HEADER_SIZE)
		return -EBADMSG;
	*ret = (struct smp_header){
		.version = (buf[0] >> 3) & 0x03,
		.op = buf[0] & 0x07,
		.flags = buf[1],
		.len = (uint16_t)(buf[2] << 8 | buf[3]),
		.group = (uint16_t)(buf[4] << 8 | buf[5]),
		.seq = buf[6],
		.id = buf[7],
	};
	return 0;
}

const char *smp_op_to_string(uint8_t op)
{
	static const char *const names[] = {
		[SMP_OP_READ] = "read",
		[SMP_OP_READ_RSP] = "read-rsp",
		[SMP_OP_WRITE] = "write",
		[SMP_OP_WRITE_RSP] = "write-rsp",
	};

	return op < ELEMENTSOF(names) ? names[op] : NULL;
}

const char *smp_group_to_string(uint16_t group)
{
	switch (group) {
	case SMP_GROUP_OS: return "os";
	case SMP_GROUP_IMAGE: return "image";
	case SMP_GROUP_STAT: return "stat";
	case SMP_GROUP_SETTINGS: return "settings";
	case SMP_GROUP_LOG: return "log";
	case SMP_GROUP_CRASH: return "crash";
	case SMP_GROUP_SPLIT: return "split";
	case SMP_GROUP_RUN: return "run";
	case SMP_GROUP_FS: return "fs";
	case SMP_GROUP_SHELL: return "shell";
	case SMP_GROUP_ENUM: return "enum";
	case SMP_GROUP_TRANSPORT: return "transport";
	case SMP_GROUP_ZEPHYR: return "zephyr";
	default: return group >= SMP_GROUP_USER_MIN ? "user" : NULL;
	}
}

const char *smp_command_to_string(uint16_t group, uint8_t id, uint8_t op)
{
	bool write = op == SMP_OP_WRITE || op == SMP_OP_WRITE_RSP;

	switch (group) {
	case SMP_GROUP_OS: {
		static const char *const os[] = { "echo", "console-echo", "taskstat", "mpstat",
						  "datetime", "reset", "params", "info",
						  "bootloader" };
		return id < ELEMENTSOF(os) ? os[id] : NULL;
	}
	case SMP_GROUP_IMAGE:
		switch (id) {
		case SMP_IMAGE_STATE: return "state";
		case SMP_IMAGE_UPLOAD: return "upload";
		case SMP_IMAGE_ERASE: return "erase";
		case SMP_IMAGE_SLOT_INFO: return "slot-info";
		}
		return NULL;
	case SMP_GROUP_STAT:
		return id == SMP_STAT_SHOW ? "show" : id == SMP_STAT_LIST ? "list" : NULL;
	case SMP_GROUP_SETTINGS:
		switch (id) {
		case SMP_SETTINGS_VALUE: return write ? "write" : "read";
		case SMP_SETTINGS_DELETE: return "delete";
		case SMP_SETTINGS_COMMIT: return "commit";
		case SMP_SETTINGS_LOAD_SAVE: return write ? "save" : "load";
		}
		return NULL;
	case SMP_GROUP_FS:
		switch (id) {
		case SMP_FS_FILE: return write ? "upload" : "download";
		case SMP_FS_STATUS: return "status";
		case SMP_FS_HASH: return "hash";
		case SMP_FS_TYPES: return "types";
		case SMP_FS_CLOSE: return "close";
		}
		return NULL;
	case SMP_GROUP_SHELL:
		return id == SMP_SHELL_EXEC ? "exec" : NULL;
	case SMP_GROUP_ENUM: {
		static const char *const en[] = { "count", "list", "single", "details" };
		return id < ELEMENTSOF(en) ? en[id] : NULL;
	}
	case SMP_GROUP_ZEPHYR:
		return id == SMP_ZEPHYR_ERASE_STORAGE ? "erase-storage" : NULL;
	}
	return NULL;
}
