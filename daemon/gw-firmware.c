/* gw-firmware: the firmware store: MCUboot images validated, kept once by SHA-256 under the state directory */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "db/db-firmware.h"
#include "lib/macro.h"
#include "lib/smp-cbor.h"
#include "lib/smp-mcuboot.h"

#define FW_BLOCK_SIZE (64 * 1024)
#define FW_ID_LEN (2 * SHA256_DIGEST_SIZE)
#define FW_NAME_MAX 128
#define FW_TMP_PREFIX ".add-"

struct gw_firmware {
	struct gw_manager *m;
	struct db_firmware *df;
	char *dir;
	int dir_fd;
};

_printf_(3, 4) static void fw_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void fw_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* Copies id lower-cased into out when it is 64 hex digits: the only names
 * the store has, which also keeps any path out of openat(). */
static bool fw_id_normalize(const char *id, char out[static FW_ID_LEN + 1])
{
	if (!id || strnlen(id, FW_ID_LEN + 1) != FW_ID_LEN)
		return false;
	for (size_t i = 0; i < FW_ID_LEN; i++) {
		char c = id[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		out[i] = c;
	}
	out[FW_ID_LEN] = '\0';
	return true;
}

static ssize_t fw_read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t k = read(fd, buf + got, len - got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static int fw_pread_exact(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t k = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO; /* our own temp file shrank */
		got += (size_t)k;
	}
	return 0;
}

static int fw_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t k = write(fd, buf, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -EIO;
		buf += k;
		len -= (size_t)k;
	}
	return 0;
}

/* --- the JSON description --- */

static json_t *fw_tlv_list(const struct smp_mcuboot_image *img, bool protected_tlv)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < img->n_tlvs; i++) {
		const struct smp_mcuboot_tlv *t = &img->tlvs[i];
		const char *name = smp_mcuboot_tlv_type_to_string(t->type);
		json_t *o;

		if (t->protected_tlv != protected_tlv)
			continue;
		o = json_pack("{s:i, s:o, s:I}", "type", (int)t->type, "name",
			      name ? json_string(name) : json_null(), "len", (json_int_t)t->length);
		if (!o || json_array_append_new(list, o) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

static json_t *fw_flag_list(uint32_t flags)
{
	json_t *list = json_array();

	for (unsigned bit = 0; list && bit < 32; bit++) {
		uint32_t f = UINT32_C(1) << bit;
		const char *name = smp_mcuboot_flag_to_string(f);
		char hex[sizeof("0x00000000")];

		if (!(flags & f))
			continue;
		if (!name) {
			snprintf(hex, sizeof(hex), "0x%08x", (unsigned)f);
			name = hex;
		}
		if (json_array_append_new(list, json_string(name)) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* What the firmware row's metadata column keeps: the header and the TLVs. */
static json_t *fw_metadata(const struct smp_mcuboot_image *img)
{
	const struct smp_mcuboot_header *h = &img->hdr;

	return json_pack("{s:{s:I, s:i, s:I, s:i, s:o}, s:o, s:o}", "header", "load_addr",
			 (json_int_t)h->load_addr, "hdr_size", (int)h->hdr_size, "img_size",
			 (json_int_t)h->img_size, "protect_tlv_size", (int)h->protect_tlv_size,
			 "flags", fw_flag_list(h->flags), "tlvs", fw_tlv_list(img, false),
			 "protected_tlvs", fw_tlv_list(img, true));
}

static int fw_on_row_info(const struct db_firmware_row *row, void *userdata)
{
	json_t **ret = userdata, *o, *meta;

	o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I}", "id", row->sha256, "image_hash",
		      row->image_hash, "version", row->version, "size", (json_int_t)row->size,
		      "name", row->name, "created_at", (json_int_t)row->created_at_ms);
	if (!o)
		return -ENOMEM;
	/* Written by us from the parsed image; a row edited by hand that no
	 * longer parses only loses these details. */
	meta = json_loads(row->metadata, 0, NULL);
	if (json_is_object(meta))
		json_object_update_missing(o, meta);
	json_decref(meta);
	*ret = o;
	return 0;
}

static int fw_on_list_row(const struct db_firmware_row *row, void *userdata)
{
	json_t *list = userdata, *o = NULL;
	int r;

	r = fw_on_row_info(row, &o);
	if (r < 0)
		return r;
	return json_array_append_new(list, o) < 0 ? -ENOMEM : 0;
}

/* --- validation --- */

static int fw_invalid(enum smp_mcuboot_error e, char *err, size_t errlen)
{
	fw_errf(err, errlen, "not a valid MCUboot image: %s", smp_mcuboot_error_to_string(e));
	return -EBADMSG;
}

/*
 * Parses the stored copy (fd, size bytes) without reading its payload: the
 * parser gets a view of the file made of the header area and the TLV areas
 * behind it, with img_size set to 0 so the areas follow the header. Its
 * structural checks (magic, sizes, TLV walk, the SHA-256 TLV) then judge the
 * real file, and the offsets are moved back afterwards. The hashes come from
 * the copy loop: image_digest of [0, hdr_size + img_size + protect_tlv_size)
 * (complete whenever the parse succeeds, which proves that range is in the
 * file), file_digest of the whole file.
 */
static int fw_parse_stored(int fd, uint64_t size, const uint8_t *image_digest,
			   const uint8_t *file_digest, struct smp_mcuboot_image **ret, char *err,
			   size_t errlen)
{
	_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
	_cleanup_free_ uint8_t *view = NULL;
	uint8_t head[SMP_MCUBOOT_HEADER_SIZE];
	struct smp_mcuboot_header h;
	enum smp_mcuboot_error e = SMP_MCUBOOT_OK;
	uint64_t prot_start, window;
	size_t n = (size_t)MIN(size, (uint64_t)sizeof(head));
	int r;

	r = fw_pread_exact(fd, head, n, 0);
	if (r < 0)
		return r;
	if (smp_mcuboot_header_parse(head, n, &h) < 0) {
		/* The parser on the bytes there are says why. */
		r = smp_mcuboot_parse_full(head, n, 0, &e, &img);
		if (r == -ENOMEM)
			return r;
		return fw_invalid(e == SMP_MCUBOOT_OK ? SMP_MCUBOOT_E_TRUNCATED_HEADER : e, err,
				  errlen);
	}
	prot_start = (uint64_t)h.hdr_size + h.img_size;
	if (prot_start > size)
		return fw_invalid(SMP_MCUBOOT_E_PAYLOAD_BEYOND_END, err, errlen);

	/* Both TLV areas fit in protect_tlv_size + 65535 bytes (it_tlv_tot is 16 bits). */
	window = MIN(size - prot_start, (uint64_t)h.protect_tlv_size + UINT16_MAX);
	view = malloc(h.hdr_size + window);
	if (!view)
		return -ENOMEM;
	r = fw_pread_exact(fd, view, h.hdr_size, 0);
	if (r == 0)
		r = fw_pread_exact(fd, view + h.hdr_size, (size_t)window, prot_start);
	if (r < 0)
		return r;
	memset(view + 12, 0, 4); /* ih_img_size */

	r = smp_mcuboot_parse_full(view, h.hdr_size + (size_t)window, 0, &e, &img);
	if (r == -EBADMSG)
		return fw_invalid(e, err, errlen);
	if (r < 0)
		return r;

	img->hdr = h;
	img->size = (size_t)size;
	img->hashed_size = (size_t)prot_start + h.protect_tlv_size;
	img->tlv_end += h.img_size;
	img->trailing = (size_t)(size - img->tlv_end);
	for (size_t i = 0; i < img->n_tlvs; i++)
		img->tlvs[i].offset += h.img_size;
	memcpy(img->computed_hash, image_digest, sizeof(img->computed_hash));
	memcpy(img->file_sha256, file_digest, sizeof(img->file_sha256));
	img->hash_ok = img->hash_checkable &&
		       memcmp(img->hash, img->computed_hash, sizeof(img->hash)) == 0;
	/* An encrypted image's hash covers the plaintext: nothing to compare. */
	if (img->hash_checkable && !img->hash_ok)
		return fw_invalid(SMP_MCUBOOT_E_HASH_MISMATCH, err, errlen);

	*ret = TAKE_PTR(img);
	return 0;
}

/* Copies fd to out in blocks, hashing the whole file and the part the image
 * hash covers (known once the header, in the first block, is read). */
static int fw_copy(struct gw_firmware *fw, int fd, int out, uint64_t *ret_size,
		   uint8_t file_digest[static SHA256_DIGEST_SIZE],
		   uint8_t image_digest[static SHA256_DIGEST_SIZE], char *err, size_t errlen)
{
	_cleanup_free_ uint8_t *buf = malloc(FW_BLOCK_SIZE);
	uint64_t total = 0, hashed = 0, to_hash = 0, max = fw->m->config.max_body;
	struct sha256_ctx file_ctx, image_ctx;
	bool header = false;
	int r;

	if (!buf)
		return -ENOMEM;
	sha256_init(&file_ctx);
	sha256_init(&image_ctx);
	for (;;) {
		ssize_t n = fw_read_full(fd, buf, FW_BLOCK_SIZE);

		if (n < 0) {
			fw_errf(err, errlen, "reading the image: %s", strerror((int)-n));
			return -EIO;
		}
		if (n == 0)
			break;
		if (max && total + (uint64_t)n > max) {
			fw_errf(err, errlen, "the image is larger than max_body (%llu bytes)",
				(unsigned long long)max);
			return -EFBIG;
		}
		if (total == 0) {
			struct smp_mcuboot_header h;

			/* A full block, or the whole file: the header is in it if anywhere. */
			header = smp_mcuboot_header_parse(buf, (size_t)n, &h) == 0;
			if (header)
				to_hash = (uint64_t)h.hdr_size + h.img_size + h.protect_tlv_size;
		}
		if (header && hashed < to_hash) {
			size_t k = (size_t)MIN((uint64_t)n, to_hash - hashed);

			sha256_update(&image_ctx, k, buf);
			hashed += k;
		}
		sha256_update(&file_ctx, (size_t)n, buf);
		r = fw_write_all(out, buf, (size_t)n);
		if (r < 0) {
			fw_errf(err, errlen, "writing to the firmware store: %s", strerror(-r));
			return r;
		}
		total += (uint64_t)n;
	}
	sha256_digest(&file_ctx, SHA256_DIGEST_SIZE, file_digest);
	sha256_digest(&image_ctx, SHA256_DIGEST_SIZE, image_digest);
	*ret_size = total;
	return 0;
}

/* Shown in lists and logs: UTF-8 without C0, DEL or C1 (0xC2 0x80..0x9F) controls. */
static bool fw_name_valid(const char *name)
{
	size_t n = strnlen(name, FW_NAME_MAX + 1);

	if (n > FW_NAME_MAX || !smp_utf8_valid((const uint8_t *)name, n))
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return false;
	return true;
}

/* Whether the store holds id's file with the row's size. */
static bool fw_file_ok(struct gw_firmware *fw, const char *id, uint64_t size)
{
	struct stat st;

	return fstatat(fw->dir_fd, id, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size == size;
}

static int fw_on_row_size(const struct db_firmware_row *row, void *userdata)
{
	*(uint64_t *)userdata = row->size;
	return 0;
}

int gw_firmware_add_fd(struct gw_firmware *fw, int fd, const char *name, json_t **ret_info,
		       char *err, size_t errlen)
{
	_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
	_cleanup_free_ char *tmp = NULL, *meta = NULL;
	uint8_t file_digest[SHA256_DIGEST_SIZE], image_digest[SHA256_DIGEST_SIZE];
	char id[FW_ID_LEN + 1], image_hash[FW_ID_LEN + 1], version[SMP_MCUBOOT_VERSION_STRING_MAX];
	uint64_t size = 0, stored_size = 0;
	bool known;
	json_t *info = NULL, *m = NULL;
	int out, r;

	if (name && !fw_name_valid(name)) {
		fw_errf(err, errlen, "the name must be at most %d bytes of UTF-8 text without "
			"control characters", FW_NAME_MAX);
		return -EINVAL;
	}
	if (asprintf(&tmp, "%s/" FW_TMP_PREFIX "XXXXXX", fw->dir) < 0) {
		tmp = NULL;
		return -ENOMEM;
	}
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		r = -errno;
		fw_errf(err, errlen, "cannot create a file in %s: %s", fw->dir, strerror(-r));
		return r == -ENOSPC || r == -EDQUOT ? -ENOSPC : -EIO;
	}

	r = fw_copy(fw, fd, out, &size, file_digest, image_digest, err, errlen);
	if (r < 0)
		goto fail;
	r = fw_parse_stored(out, size, image_digest, file_digest, &img, err, errlen);
	if (r < 0)
		goto fail;
	fw_hex(file_digest, sizeof(file_digest), id);
	fw_hex(img->hash, sizeof(img->hash), image_hash);

	r = db_firmware_get(fw->df, id, fw_on_row_size, &stored_size);
	if (r < 0 && r != -ENOENT)
		goto fail_io;
	known = r >= 0;
	if (known && fw_file_ok(fw, id, stored_size)) {
		/* Same bytes, same id: nothing to store. */
		unlink(tmp);
		close(out);
		r = gw_firmware_get(fw, id, ret_info);
		return r < 0 ? r : 1;
	}

	/* The file first, durably; then the row. A crash in between leaves a
	 * file without a row, which the next start removes. */
	r = fsync(out) < 0 ? -errno : 0;
	if (close(out) < 0 && r == 0)
		r = -errno;
	out = -1;
	if (r < 0)
		goto fail_io;
	if (renameat(AT_FDCWD, tmp, fw->dir_fd, id) < 0) {
		r = -errno;
		goto fail_io;
	}
	if (fsync(fw->dir_fd) < 0) {
		r = -errno;
		unlinkat(fw->dir_fd, id, 0);
		goto fail_io;
	}
	if (known) {
		/* The row was there but its file was not: repaired. */
		gw_warn("firmware", "%s: stored file was missing or damaged, replaced", id);
		r = gw_firmware_get(fw, id, ret_info);
		return r < 0 ? r : 1;
	}

	m = fw_metadata(img);
	meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	if (!meta) {
		unlinkat(fw->dir_fd, id, 0);
		return -ENOMEM;
	}
	r = db_firmware_insert(fw->df, &(struct db_firmware_row){
		.sha256 = id,
		.image_hash = image_hash,
		.version = smp_mcuboot_version_string(&img->hdr.version, SMP_MCUBOOT_VERSION_SMP,
						      version),
		.size = size,
		.name = name ? name : "",
		.metadata = meta,
		.created_at_ms = gw_now_ms(),
	});
	if (r < 0) {
		unlinkat(fw->dir_fd, id, 0);
		fw_errf(err, errlen, "cannot record the image: %s", strerror(-r));
		return r == -ENOMEM ? r : -EIO;
	}
	r = gw_firmware_get(fw, id, &info);
	if (r < 0)
		return r;
	/* Auto-update rules look for newer images when one arrives. */
	if (fw->m->events)
		gw_events_publish(fw->m->events, "firmware.added", NULL, 0,
				  json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(info, "id"),
					    "version", json_object_get(info, "version"), "image_hash",
					    json_object_get(info, "image_hash"), "name",
					    json_object_get(info, "name")));
	*ret_info = info;
	return 0;

fail_io:
	fw_errf(err, errlen, "cannot store the image in %s: %s", fw->dir, strerror(-r));
	r = r == -ENOSPC || r == -EDQUOT ? -ENOSPC : r == -ENOMEM ? r : -EIO;
fail:
	if (out >= 0)
		close(out);
	unlink(tmp);
	return r;
}

int gw_firmware_get(struct gw_firmware *fw, const char *id, json_t **ret)
{
	char norm[FW_ID_LEN + 1];
	json_t *o = NULL;
	int r;

	if (!fw_id_normalize(id, norm))
		return -ENOENT;
	r = db_firmware_get(fw->df, norm, fw_on_row_info, &o);
	if (r < 0)
		return r;
	*ret = o;
	return 0;
}

int gw_firmware_list(struct gw_firmware *fw, json_t **ret)
{
	json_t *list = json_array();
	int r;

	if (!list)
		return -ENOMEM;
	r = db_firmware_load(fw->df, fw_on_list_row, list);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret = list;
	return 0;
}

int gw_firmware_open(struct gw_firmware *fw, const char *id, int *ret_fd, uint64_t *ret_size)
{
	char norm[FW_ID_LEN + 1];
	uint64_t size = 0;
	struct stat st;
	int fd, r;

	if (!fw_id_normalize(id, norm))
		return -ENOENT;
	r = db_firmware_get(fw->df, norm, fw_on_row_size, &size);
	if (r < 0)
		return r;
	fd = openat(fw->dir_fd, norm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ELOOP ? -ENOENT : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
		/* Changed behind our back: refuse rather than send a wrong image. */
		close(fd);
		return -ENOENT;
	}
	*ret_fd = fd;
	*ret_size = size;
	return 0;
}

int gw_firmware_remove(struct gw_firmware *fw, const char *id)
{
	char norm[FW_ID_LEN + 1];
	int r;

	if (!fw_id_normalize(id, norm))
		return -ENOENT;
	r = db_firmware_get(fw->df, norm, fw_on_row_size, &(uint64_t){ 0 });
	if (r < 0)
		return r;
	r = db_firmware_in_use(fw->df, norm);
	if (r < 0)
		return r;
	if (r > 0)
		return -EBUSY;
	/* The row first: a crash before the unlink leaves an orphan file,
	 * which the next start removes. */
	r = db_firmware_delete(fw->df, norm, gw_now_ms());
	if (r < 0)
		return r;
	if (unlinkat(fw->dir_fd, norm, 0) < 0 && errno != ENOENT)
		gw_log_errno(LOG_WARNING, errno, "firmware",
			     "cannot remove %s/%s, removing it at the next start: %m", fw->dir, norm);
	if (fw->m->events)
		gw_events_publish(fw->m->events, "firmware.removed", NULL, 0,
				  json_pack("{s:s}", "id", norm));
	return 0;
}

int gw_firmware_version_compare(const char *a, const char *b, int *ret)
{
	struct smp_mcuboot_version va, vb;

	if (!a || !b || smp_mcuboot_version_parse(a, &va) < 0 ||
	    smp_mcuboot_version_parse(b, &vb) < 0)
		return -EINVAL;
	*ret = smp_mcuboot_version_compare(&va, &vb);
	return 0;
}

/* --- start-up: make rows and files agree --- */

struct fw_bad_rows {
	struct gw_firmware *fw;
	char (*ids)[FW_ID_LEN + 1];
	size_t n;
};

static int fw_on_check_row(const struct db_firmware_row *row, void *userdata)
{
	struct fw_bad_rows *bad = userdata;
	char norm[FW_ID_LEN + 1];
	void *p;

	if (fw_id_normalize(row->sha256, norm) && strcmp(norm, row->sha256) == 0 &&
	    fw_file_ok(bad->fw, row->sha256, row->size))
		return 0;
	p = reallocarray(bad->ids, bad->n + 1, sizeof(*bad->ids));
	if (!p)
		return -ENOMEM;
	bad->ids = p;
	snprintf(bad->ids[bad->n++], sizeof(*bad->ids), "%s", row->sha256);
	return 0;
}

static int fw_drop_bad_rows(struct gw_firmware *fw)
{
	struct fw_bad_rows bad = { .fw = fw };
	int r;

	/* Collected first: rows are not deleted under the running SELECT. */
	r = db_firmware_load(fw->df, fw_on_check_row, &bad);
	for (size_t i = 0; r >= 0 && i < bad.n; i++) {
		gw_warn("firmware", "%s: its file is missing or has the wrong size, forgetting the image",
			bad.ids[i]);
		r = db_firmware_delete(fw->df, bad.ids[i], gw_now_ms());
		if (r == -ENOENT)
			r = 0;
	}
	free(bad.ids);
	return r < 0 ? r : 0;
}

static int fw_on_exists(const struct db_firmware_row *row, void *userdata)
{
	return 0;
}

static int fw_remove_orphans(struct gw_firmware *fw)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = fcntl(fw->dir_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		char norm[FW_ID_LEN + 1];
		int r;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fw_id_normalize(de->d_name, norm) && strcmp(norm, de->d_name) == 0) {
			r = db_firmware_get(fw->df, de->d_name, fw_on_exists, NULL);
			if (r != -ENOENT) {
				if (r < 0) {
					closedir(d);
					return r;
				}
				continue;
			}
		}
		gw_info("firmware", "removing %s/%s: not a stored image (left by an add that did not finish, or damaged)",
			fw->dir, de->d_name);
		if (unlinkat(fw->dir_fd, de->d_name, 0) < 0)
			gw_log_errno(LOG_WARNING, errno, "firmware", "cannot remove %s/%s, ignoring: %m",
				     fw->dir, de->d_name);
	}
	closedir(d);
	return 0;
}

int gw_firmware_new(struct gw_manager *m, struct gw_firmware **ret)
{
	struct gw_firmware *fw;
	int r;

	fw = calloc(1, sizeof(*fw));
	if (!fw)
		return -ENOMEM;
	fw->m = m;
	fw->dir_fd = -1;
	if (asprintf(&fw->dir, "%s/firmware", m->config.state_dir) < 0) {
		fw->dir = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (mkdir(fw->dir, 0700) < 0 && errno != EEXIST) {
		r = gw_log_errno(LOG_ERR, errno, "firmware", "cannot create %s: %m", fw->dir);
		goto fail;
	}
	fw->dir_fd = open(fw->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fw->dir_fd < 0) {
		r = gw_log_errno(LOG_ERR, errno, "firmware", "cannot open %s: %m", fw->dir);
		goto fail;
	}
	r = db_firmware_new(m->db, &fw->df);
	if (r < 0)
		goto fail;
	r = fw_drop_bad_rows(fw);
	if (r >= 0)
		r = fw_remove_orphans(fw);
	if (r < 0) {
		gw_log_errno(LOG_ERR, r, "firmware", "cannot check the firmware store %s: %m", fw->dir);
		goto fail;
	}
	*ret = fw;
	return 0;
fail:
	gw_firmware_free(fw);
	return r;
}

struct gw_firmware *gw_firmware_free(struct gw_firmware *fw)
{
	if (fw) {
		db_firmware_free(fw->df);
		if (fw->dir_fd >= 0)
			close(fw->dir_fd);
		free(fw->dir);
		free(fw);
	}
	return NULL;
}
