/* test-gw-firmware: the firmware store: real images, hostile ones, duplicates, removal, restart cleanup */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/gw-events.h"
#include "daemon/gw-firmware.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "db/db.h"
#include "lib/macro.h"
#include "lib/smp-mcuboot.h"
#include "tests/tap.h"

static char dir[] = "/tmp/smpgw-test-firmware-XXXXXX";

static const char *tmp_path(const char *name)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static const char *store_path(const char *id)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/firmware/%s", dir, id);
	return p;
}

/* The manager as smpgwd builds it, with only what the store needs. */
static void start(struct gw_manager *m)
{
	char err[256] = "";

	memset(m, 0, sizeof(*m));
	if (gw_config_init(&m->config) < 0 || gw_config_set(&m->config, "daemon", "state_dir", dir) < 0)
		abort();
	if (db_open(tmp_path("smpgw.db"), &m->db, err, sizeof(err)) < 0) {
		fprintf(stderr, "db_open: %s\n", err);
		abort();
	}
	if (sd_event_new(&m->event) < 0 || gw_registry_new(m, &m->registry) < 0 ||
	    gw_events_new(m, 0, &m->events) < 0)
		abort();
}

static void stop(struct gw_manager *m)
{
	m->firmware = gw_firmware_free(m->firmware);
	m->events = gw_events_free(m->events);
	m->registry = gw_registry_free(m->registry);
	m->db = db_close(m->db);
	m->event = sd_event_unref(m->event);
	gw_config_clear(&m->config);
}

static void exec_sql(struct db *db, const char *q)
{
	if (sqlite3_exec(db_handle(db), q, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", q, sqlite3_errmsg(db_handle(db)));
		abort();
	}
}

static long long query_int(struct db *db, const char *q)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(db_handle(db), q, -1, &st, NULL) != SQLITE_OK)
		abort();
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -2 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Entries in the store directory. */
static int store_entries(void)
{
	struct dirent *de;
	DIR *d = opendir(tmp_path("firmware"));
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* An fd reading data from its start, from an unlinked temp file. */
static int data_fd(const uint8_t *data, size_t len)
{
	char p[] = "/tmp/smpgw-test-fw-body-XXXXXX";
	int fd = mkstemp(p);

	if (fd < 0)
		abort();
	unlink(p);
	if (len && write(fd, data, len) != (ssize_t)len)
		abort();
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

/* add_fd on a copy of data; returns its result, info in *ret_info (or NULL). */
static int add_bytes(struct gw_firmware *fw, const uint8_t *data, size_t len, const char *name,
		     json_t **ret_info, char *err, size_t errlen)
{
	int fd = data_fd(data, len), r;

	*ret_info = NULL;
	err[0] = '\0';
	r = gw_firmware_add_fd(fw, fd, name, ret_info, err, errlen);
	close(fd);
	return r;
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, n, p);
	sha256_digest(&ctx, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void put_le16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A valid MCUboot image built here: header of hdr_size bytes, a payload of
 * img_size bytes (seeded pattern), optionally a protected area with a
 * SEC_CNT TLV, the SHA-256 TLV, and `trailing` bytes of 0xff padding. */
static uint8_t *make_image(uint16_t hdr_size, uint32_t img_size, bool prot, size_t trailing,
			   uint8_t major, uint8_t minor, uint16_t rev, uint32_t build, unsigned seed,
			   size_t *ret_len)
{
	size_t prot_size = prot ? 4 + 4 + 4 : 0, tlv_size = 4 + 4 + 32;
	size_t hashed = hdr_size + img_size + prot_size, len = hashed + tlv_size + trailing;
	uint8_t *p = calloc(1, len), *q;
	struct sha256_ctx ctx;

	if (!p)
		abort();
	put_le32(p, SMP_MCUBOOT_MAGIC);
	put_le32(p + 4, 0x10000);
	put_le16(p + 8, hdr_size);
	put_le16(p + 10, (unsigned)prot_size);
	put_le32(p + 12, img_size);
	put_le32(p + 16, 0);
	p[20] = major;
	p[21] = minor;
	put_le16(p + 22, rev);
	put_le32(p + 24, build);
	for (uint32_t i = 0; i < img_size; i++)
		p[hdr_size + i] = (uint8_t)((i * 31 + seed * 7) ^ (i >> 8));
	q = p + hdr_size + img_size;
	if (prot) {
		put_le16(q, SMP_MCUBOOT_TLV_PROT_INFO_MAGIC);
		put_le16(q + 2, (unsigned)prot_size);
		put_le16(q + 4, SMP_MCUBOOT_TLV_SEC_CNT);
		put_le16(q + 6, 4);
		put_le32(q + 8, 7);
		q += prot_size;
	}
	put_le16(q, SMP_MCUBOOT_TLV_INFO_MAGIC);
	put_le16(q + 2, (unsigned)tlv_size);
	put_le16(q + 4, SMP_MCUBOOT_TLV_SHA256);
	put_le16(q + 6, 32);
	sha256_init(&ctx);
	sha256_update(&ctx, hashed, p);
	sha256_digest(&ctx, 32, q + 8);
	memset(q + tlv_size, 0xff, trailing);
	*ret_len = len;
	return p;
}

static const char *json_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(none)";
}

/* The TLV entry of this type in info's list, or NULL. */
static json_t *find_tlv(json_t *info, const char *list, unsigned type)
{
	size_t i;
	json_t *t;

	json_array_foreach(json_object_get(info, list), i, t)
		if (json_integer_value(json_object_get(t, "type")) == type)
			return t;
	return NULL;
}

struct stored {
	char id[65];
	uint8_t *data;
	size_t len;
};

static void test_real_images(struct gw_manager *m, struct stored out[2])
{
	json_t *expected, *want;
	const char *file;
	size_t n = 0;

	expected = json_load_file(tap_srcpath("tests/data/images/expected.json"), 0, NULL);
	if (!expected)
		abort();
	json_object_foreach(expected, file, want) {
		char rel[256], err[256];
		json_t *info = NULL, *again = NULL, *hdr, *tlv;
		uint8_t *data, *stored;
		size_t len, slen;
		int r;

		snprintf(rel, sizeof(rel), "tests/data/images/%s", file);
		data = tap_read_file(tap_srcpath(rel), &len);
		r = add_bytes(m->firmware, data, len, file, &info, err, sizeof(err));
		is_int(r, 0, "%s: added (%s)", file, err);
		is_str(json_str(info, "id"), json_str(want, "file_sha256"), "%s: id is the file's SHA-256", file);
		is_str(json_str(info, "image_hash"), json_str(want, "image_hash"), "%s: image hash", file);
		is_str(json_str(info, "version"), json_str(want, "version_as_smp_reports"), "%s: version", file);
		is_int(json_integer_value(json_object_get(info, "size")),
		       json_integer_value(json_object_get(want, "size")), "%s: size", file);
		is_str(json_str(info, "name"), file, "%s: name", file);
		ok(json_integer_value(json_object_get(info, "created_at")) > 1600000000000LL,
		   "%s: created_at in ms", file);
		hdr = json_object_get(info, "header");
		is_int(json_integer_value(json_object_get(hdr, "hdr_size")), 512, "%s: hdr_size", file);
		is_int(json_integer_value(json_object_get(hdr, "img_size")), 70000, "%s: img_size", file);
		ok(json_is_array(json_object_get(hdr, "flags")) &&
		   json_array_size(json_object_get(hdr, "flags")) == 0, "%s: no flags", file);
		tlv = find_tlv(info, "tlvs", SMP_MCUBOOT_TLV_SHA256);
		ok(tlv && json_integer_value(json_object_get(tlv, "len")) == 32 &&
		   strcmp(json_str(tlv, "name"), "SHA256") == 0, "%s: SHA256 TLV listed", file);
		ok(json_is_array(json_object_get(info, "protected_tlvs")) &&
		   json_array_size(json_object_get(info, "protected_tlvs")) == 0,
		   "%s: no protected TLVs", file);
		if (strstr(file, "ecdsa")) {
			tlv = find_tlv(info, "tlvs", SMP_MCUBOOT_TLV_ECDSA_SIG);
			ok(tlv && strcmp(json_str(tlv, "name"), "ECDSA_SIG") == 0 &&
			   json_integer_value(json_object_get(tlv, "len")) == 71, "%s: ECDSA_SIG TLV", file);
			ok(find_tlv(info, "tlvs", SMP_MCUBOOT_TLV_KEYHASH) != NULL, "%s: KEYHASH TLV", file);
		}

		stored = tap_read_file(store_path(json_str(want, "file_sha256")), &slen);
		is_mem(stored, slen, data, len, "%s: stored byte for byte as <sha256>", file);
		free(stored);

		r = add_bytes(m->firmware, data, len, "another name", &again, err, sizeof(err));
		is_int(r, 1, "%s: adding it again answers 1", file);
		ok(json_equal(info, again), "%s: with the same info (first name kept)", file);
		json_decref(again);
		again = NULL;
		is_int(gw_firmware_get(m->firmware, json_str(want, "file_sha256"), &again), 0,
		       "%s: get", file);
		ok(json_equal(info, again), "%s: get answers the same info", file);
		json_decref(again);

		snprintf(out[n].id, sizeof(out[n].id), "%s", json_str(want, "file_sha256"));
		out[n].data = data;
		out[n].len = len;
		n++;
		json_decref(info);
	}
	json_decref(expected);
	is_int(store_entries(), 2, "two files in the store, nothing else");
}

static void test_lookup(struct gw_manager *m, struct stored img[2])
{
	char upper[65], buf[4096];
	json_t *o = NULL, *list = NULL;
	uint64_t size = 0;
	size_t got = 0;
	ssize_t k;
	bool same = true;
	int fd = -1;

	for (size_t i = 0; i < 64; i++)
		upper[i] = (char)(img[0].id[i] >= 'a' ? img[0].id[i] - 32 : img[0].id[i]);
	upper[64] = '\0';
	is_int(gw_firmware_get(m->firmware, upper, &o), 0, "get with an upper-case id");
	is_str(json_str(o, "id"), img[0].id, "answers the lower-case id");
	json_decref(o);
	is_int(gw_firmware_get(m->firmware, "0000000000000000000000000000000000000000000000000000000000000000",
			       &o), -ENOENT, "unknown id: -ENOENT");
	is_int(gw_firmware_get(m->firmware, "../../smpgw.db", &o), -ENOENT, "a path: -ENOENT");
	is_int(gw_firmware_get(m->firmware, "", &o), -ENOENT, "empty id: -ENOENT");
	is_int(gw_firmware_get(m->firmware, NULL, &o), -ENOENT, "NULL id: -ENOENT");

	/* Newest first: make the second one older. */
	snprintf(buf, sizeof(buf), "UPDATE firmware SET created_at = created_at - 1000 WHERE sha256 = '%s'",
		 img[1].id);
	exec_sql(m->db, buf);
	is_int(gw_firmware_list(m->firmware, &list), 0, "list");
	ok(json_array_size(list) == 2 &&
	   strcmp(json_str(json_array_get(list, 0), "id"), img[0].id) == 0 &&
	   strcmp(json_str(json_array_get(list, 1), "id"), img[1].id) == 0, "both, newest first");
	json_decref(list);

	is_int(gw_firmware_open(m->firmware, img[1].id, &fd, &size), 0, "open");
	is_int(size, img[1].len, "with the size");
	while ((k = read(fd, buf, sizeof(buf))) > 0) {
		same &= got + (size_t)k <= img[1].len && memcmp(buf, img[1].data + got, (size_t)k) == 0;
		got += (size_t)k;
	}
	ok(same && got == img[1].len, "the file reads back as the image");
	ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "opened O_CLOEXEC");
	close(fd);
	is_int(gw_firmware_open(m->firmware, "../smpgw.db", &fd, &size), -ENOENT, "open a path: -ENOENT");
	is_int(gw_firmware_open(m->firmware,
				"1111111111111111111111111111111111111111111111111111111111111111", &fd,
				&size), -ENOENT, "open unknown: -ENOENT");
}

/* Adds data expecting -EBADMSG with a sentence; the store must be left as it was. */
static void expect_invalid(struct gw_manager *m, const uint8_t *data, size_t len, const char *why,
			   const char *what)
{
	char err[256];
	json_t *info;
	int before = store_entries(), r;

	r = add_bytes(m->firmware, data, len, NULL, &info, err, sizeof(err));
	is_int(r, -EBADMSG, "%s: -EBADMSG", what);
	ok(strstr(err, "not a valid MCUboot image: ") && (!why || strstr(err, why)),
	   "%s: says why: \"%s\"", what, err);
	ok(info == NULL, "%s: no info", what);
	is_int(store_entries(), before, "%s: nothing left in the store", what);
}

static void test_invalid(struct gw_manager *m, struct stored *img)
{
	const uint8_t *d = img->data;
	size_t len = img->len, bad_lengths = 0, tested = 0;
	uint8_t *c = malloc(len + 200000);
	unsigned seed = 12345;
	char err[256];
	json_t *info;
	int before = store_entries();

	if (!c)
		abort();
	expect_invalid(m, d, 0, "truncated header", "empty body");
	for (size_t i = 0; i < 200000; i++) {
		seed = seed * 1103515245 + 12345;
		c[i] = (uint8_t)(seed >> 16);
	}
	expect_invalid(m, c, 100, "bad magic", "100 bytes of garbage");
	expect_invalid(m, c, 200000, "bad magic", "200 kB of garbage");

	/* Truncated anywhere: every short length, a stride through the
	 * payload, every length across the TLV area. */
	for (size_t n = 1; n < len; n = n < 600 ? n + 1 : n < len - 300 ? n + 4093 : n + 1) {
		if (add_bytes(m->firmware, d, n, NULL, &info, err, sizeof(err)) != -EBADMSG ||
		    !strstr(err, "not a valid MCUboot image: "))
			bad_lengths++;
		json_decref(info);
		tested++;
	}
	is_int(bad_lengths, 0, "every one of %zu truncations refused with a sentence", tested);
	is_int(store_entries(), before, "truncations left nothing in the store");
	expect_invalid(m, d, 31, "truncated header", "31 bytes");
	expect_invalid(m, d, 600, "payload beyond end", "cut in the payload");
	expect_invalid(m, d, len - 1, "TLV", "one byte short");

	memcpy(c, d, len);
	c[1000] ^= 0x01;
	expect_invalid(m, c, len, "image hash mismatch", "one payload bit flipped");
	memcpy(c, d, len);
	c[5] ^= 0x80;
	expect_invalid(m, c, len, "image hash mismatch", "load address changed");
	memcpy(c, d, len);
	c[512 + 70000 + 8] ^= 0xff; /* the first TLV is the SHA-256 one in both images */
	expect_invalid(m, c, len, "image hash mismatch", "the SHA-256 TLV altered");
	memcpy(c, d, len);
	c[0] ^= 0xff;
	expect_invalid(m, c, len, "bad magic", "bad magic");
	memcpy(c, d, len);
	put_le32(c, SMP_MCUBOOT_MAGIC_V1);
	expect_invalid(m, c, len, "obsolete", "old magic");
	memcpy(c, d, len);
	put_le16(c + 8, 16);
	expect_invalid(m, c, len, "header size below 32", "hdr_size 16");
	memcpy(c, d, len);
	put_le32(c + 12, 0xffffffff);
	expect_invalid(m, c, len, "payload beyond end", "img_size 4 GiB");
	memcpy(c, d, len);
	put_le16(c + 10, 3);
	expect_invalid(m, c, len, "protected TLV size below 4", "protect_tlv_size 3");
	memcpy(c, d, len);
	put_le16(c + 10, 0xffff);
	expect_invalid(m, c, len, "protected TLV area beyond end", "protect_tlv_size 65535");
	memcpy(c, d, len);
	put_le16(c + 512 + 70000 + 2, 0xffff);
	expect_invalid(m, c, len, "TLV area beyond end", "it_tlv_tot 65535");
	memcpy(c, d, len);
	put_le16(c + 512 + 70000 + 6, 0xfff0);
	expect_invalid(m, c, len, "TLV length overruns area", "a TLV longer than its area");
	memcpy(c, d, len);
	put_le16(c + 512 + 70000 + 4, SMP_MCUBOOT_TLV_SHA512);
	expect_invalid(m, c, len, "no SHA-256 TLV", "no SHA-256 TLV");
	free(c);
}

static void test_synthetic(struct gw_manager *m)
{
	uint8_t *img;
	size_t len;
	char err[256], id[65];
	json_t *info = NULL, *tlv;
	int r;

	/* Protected TLVs, a bigger header, padding after the TLVs, a payload
	 * ending exactly on a copy block boundary. */
	img = make_image(1024, 3 * 65536 - 1024, true, 4096, 3, 1, 4, 0, 1, &len);
	r = add_bytes(m->firmware, img, len, "synthetic", &info, err, sizeof(err));
	is_int(r, 0, "synthetic image with protected TLVs and padding (%s)", err);
	sha256_hex(img, len, id);
	is_str(json_str(info, "id"), id, "its id covers the padding too");
	is_str(json_str(info, "version"), "3.1.4", "version without build");
	tlv = find_tlv(info, "protected_tlvs", SMP_MCUBOOT_TLV_SEC_CNT);
	ok(tlv && strcmp(json_str(tlv, "name"), "SEC_CNT") == 0, "SEC_CNT listed as protected");
	is_int(json_integer_value(json_object_get(json_object_get(info, "header"), "protect_tlv_size")),
	       12, "protect_tlv_size");
	json_decref(info);
	/* Cut inside the padding: still a valid image, another file. */
	r = add_bytes(m->firmware, img, len - 100, NULL, &info, err, sizeof(err));
	is_int(r, 0, "cut inside the padding: another valid file");
	ok(strcmp(json_str(info, "id"), id) != 0, "with another id");
	is_str(json_str(info, "name"), "", "no name: empty");
	is_int(gw_firmware_remove(m->firmware, json_str(info, "id")), 0, "removed again");
	json_decref(info);
	is_int(gw_firmware_remove(m->firmware, id), 0, "synthetic removed");
	free(img);

	/* Names. */
	img = make_image(32, 100, false, 0, 1, 0, 0, 7, 2, &len);
	r = add_bytes(m->firmware, img, len, "line\nbreak", &info, err, sizeof(err));
	is_int(r, -EINVAL, "a name with a control character: -EINVAL");
	ok(strstr(err, "name") != NULL, "says so: \"%s\"", err);
	{
		char longname[200];

		memset(longname, 'n', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		is_int(add_bytes(m->firmware, img, len, longname, &info, err, sizeof(err)), -EINVAL,
		       "a 199-byte name: -EINVAL");
	}
	is_int(add_bytes(m->firmware, img, len, "\xff\xfe", &info, err, sizeof(err)), -EINVAL,
	       "a name that is not UTF-8: -EINVAL");
	is_int(add_bytes(m->firmware, img, len, "a\xc2\x85z", &info, err, sizeof(err)), -EINVAL,
	       "a name with a C1 control (NEL): -EINVAL");
	is_int(store_entries(), 2, "refused names left nothing in the store");
	r = add_bytes(m->firmware, img, len, "caf\xc3\xa9 v1", &info, err, sizeof(err));
	is_int(r, 0, "a UTF-8 name");
	is_str(json_str(info, "name"), "caf\xc3\xa9 v1", "kept as given");
	is_str(json_str(info, "version"), "1.0.0.7", "version with build");
	is_int(gw_firmware_remove(m->firmware, json_str(info, "id")), 0, "removed");
	json_decref(info);
	free(img);
}

static void test_streams(struct gw_manager *m, struct stored *img)
{
	char err[256];
	json_t *info = NULL;
	int p[2], fd, r, status;
	pid_t pid;
	uint8_t *junk;

	/* A pipe hands the body over in small reads. */
	if (pipe(p) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		for (size_t off = 0; off < img->len; off += 1000) {
			size_t n = MIN((size_t)1000, img->len - off);

			if (write(p[1], img->data + off, n) != (ssize_t)n)
				_exit(1);
		}
		_exit(0);
	}
	close(p[1]);
	r = gw_firmware_add_fd(m->firmware, p[0], NULL, &info, err, sizeof(err));
	close(p[0]);
	waitpid(pid, &status, 0);
	is_int(r, 1, "from a pipe in 1000-byte writes: the same image (already stored)");
	is_str(json_str(info, "id"), img->id, "same id");
	json_decref(info);

	/* From the current offset. */
	junk = malloc(img->len + 10);
	memcpy(junk, "0123456789", 10);
	memcpy(junk + 10, img->data, img->len);
	fd = data_fd(junk, img->len + 10);
	lseek(fd, 10, SEEK_SET);
	r = gw_firmware_add_fd(m->firmware, fd, NULL, &info, err, sizeof(err));
	is_int(r, 1, "read from the fd's offset");
	close(fd);
	json_decref(info);
	free(junk);

	/* max_body. */
	m->config.max_body = img->len - 1;
	r = add_bytes(m->firmware, img->data, img->len, NULL, &info, err, sizeof(err));
	is_int(r, -EFBIG, "one byte over max_body: -EFBIG");
	ok(strstr(err, "max_body") != NULL, "says so: \"%s\"", err);
	is_int(store_entries(), 2, "nothing left in the store");
	m->config.max_body = img->len;
	r = add_bytes(m->firmware, img->data, img->len, NULL, &info, err, sizeof(err));
	is_int(r, 1, "exactly max_body: accepted");
	json_decref(info);
	m->config.max_body = 64 << 20;
}

static void test_remove(struct gw_manager *m, struct stored img[2])
{
	char q[512], err[256];
	json_t *info = NULL, *list = NULL;
	int r;

	snprintf(q, sizeof(q), "INSERT INTO rollouts (id, firmware, state, created_at, updated_at) "
		 "VALUES (1, '%s', 'running', 1, 1)", img[0].id);
	exec_sql(m->db, q);
	is_int(gw_firmware_remove(m->firmware, img[0].id), -EBUSY, "a running rollout uses it: -EBUSY");
	for (const char *const *s = (const char *const[]){ "paused", "waiting", NULL }; *s; s++) {
		snprintf(q, sizeof(q), "UPDATE rollouts SET state = '%s' WHERE id = 1", *s);
		exec_sql(m->db, q);
		is_int(gw_firmware_remove(m->firmware, img[0].id), -EBUSY, "rollout %s: -EBUSY", *s);
	}
	ok(access(store_path(img[0].id), F_OK) == 0, "the file is still there");
	exec_sql(m->db, "UPDATE rollouts SET state = 'completed' WHERE id = 1");
	is_int(gw_firmware_remove(m->firmware, img[0].id), 0, "rollout completed: removed");
	ok(access(store_path(img[0].id), F_OK) < 0, "the file is gone");
	is_int(gw_firmware_get(m->firmware, img[0].id, &info), -ENOENT, "get: -ENOENT");
	snprintf(q, sizeof(q), "SELECT deleted_at FROM firmware WHERE sha256 = '%s'", img[0].id);
	ok(query_int(m->db, q) > 0, "the row stays for the finished rollout, marked removed");
	is_int(gw_firmware_list(m->firmware, &list), 0, "list");
	is_int(json_array_size(list), 1, "lists one image");
	json_decref(list);
	is_int(gw_firmware_remove(m->firmware, img[0].id), -ENOENT, "removing it again: -ENOENT");

	r = add_bytes(m->firmware, img[0].data, img[0].len, "back", &info, err, sizeof(err));
	is_int(r, 0, "adding a removed image stores it anew");
	is_str(json_str(info, "name"), "back", "with the new name");
	ok(access(store_path(img[0].id), F_OK) == 0, "the file is back");
	ok(query_int(m->db, q) == -2, "no longer marked removed");
	json_decref(info);

	snprintf(q, sizeof(q), "INSERT INTO auto_updates (id, firmware, enabled, created_at, updated_at) "
		 "VALUES (1, '%s', 1, 1, 1)", img[1].id);
	exec_sql(m->db, q);
	is_int(gw_firmware_remove(m->firmware, img[1].id), -EBUSY, "an enabled auto-update names it: -EBUSY");
	exec_sql(m->db, "UPDATE auto_updates SET enabled = 0 WHERE id = 1");
	is_int(gw_firmware_remove(m->firmware, img[1].id), 0, "disabled: removed");
	ok(access(store_path(img[1].id), F_OK) < 0, "its file is gone");

	r = add_bytes(m->firmware, img[1].data, img[1].len, NULL, &info, err, sizeof(err));
	is_int(r, 0, "added again");
	json_decref(info);
	exec_sql(m->db, "DELETE FROM auto_updates");
	exec_sql(m->db, "DELETE FROM rollouts");
	is_int(gw_firmware_remove(m->firmware, img[1].id), 0, "nothing names it: removed");
	snprintf(q, sizeof(q), "SELECT count(*) FROM firmware WHERE sha256 = '%s'", img[1].id);
	is_int(query_int(m->db, q), 0, "and its row deleted");
	is_int(gw_firmware_remove(m->firmware, "nope"), -ENOENT, "a malformed id: -ENOENT");
	is_int(gw_firmware_remove(m->firmware,
				  "2222222222222222222222222222222222222222222222222222222222222222"),
	       -ENOENT, "an unknown id: -ENOENT");
}

static void test_restart(struct gw_manager *m, struct stored img[2])
{
	uint8_t *extra;
	size_t elen;
	char err[256], extra_id[65], q[256];
	json_t *info = NULL;
	int fd;

	/* Three images: one intact, one without its file, one truncated. */
	extra = make_image(64, 5000, false, 0, 9, 9, 9, 9, 3, &elen);
	is_int(add_bytes(m->firmware, extra, elen, "keep", &info, err, sizeof(err)), 0, "third image added");
	snprintf(extra_id, sizeof(extra_id), "%s", json_str(info, "id"));
	json_decref(info);
	is_int(add_bytes(m->firmware, img[1].data, img[1].len, NULL, &info, err, sizeof(err)), 0,
	       "second image added");
	json_decref(info);
	ok(access(store_path(img[0].id), F_OK) == 0, "first image present");
	stop(m);

	unlink(store_path(img[1].id));
	if (truncate(store_path(img[0].id), 100) < 0)
		abort();
	/* Leftovers of adds that crashed. */
	fd = open(store_path("3333333333333333333333333333333333333333333333333333333333333333"),
		  O_CREAT | O_WRONLY, 0600);
	close(fd);
	fd = open(store_path(".add-Xy12Zq"), O_CREAT | O_WRONLY, 0600);
	close(fd);
	fd = open(store_path("README"), O_CREAT | O_WRONLY, 0600);
	close(fd);
	is_int(store_entries(), 5, "five entries before the restart");

	start(m);
	is_int(gw_firmware_new(m, &m->firmware), 0, "store reopened");
	is_int(store_entries(), 1, "one entry after it: the intact image");
	ok(access(store_path(extra_id), F_OK) == 0, "the intact image's file kept");
	is_int(gw_firmware_get(m->firmware, extra_id, &info), 0, "the intact image still known");
	json_decref(info);
	is_int(gw_firmware_get(m->firmware, img[1].id, &info), -ENOENT, "the one without a file dropped");
	is_int(gw_firmware_get(m->firmware, img[0].id, &info), -ENOENT, "the truncated one dropped");
	snprintf(q, sizeof(q), "SELECT count(*) FROM firmware");
	is_int(query_int(m->db, q), 1, "one row left");
	free(extra);
}

struct seen {
	char type[32];
	char id[65];
	char version[32];
	unsigned n;
};

static void on_event(struct gw_events *ev, const struct gw_event *e, void *userdata)
{
	struct seen *s = userdata;

	if (strncmp(e->type, "firmware.", 9) != 0)
		return;
	s->n++;
	snprintf(s->type, sizeof(s->type), "%s", e->type);
	snprintf(s->id, sizeof(s->id), "%s", json_str(e->data, "id"));
	snprintf(s->version, sizeof(s->version), "%s",
		 json_string_value(json_object_get(e->data, "version")) ?: "");
}

static void test_events(struct gw_manager *m)
{
	struct gw_events_sub *sub = NULL;
	struct seen s = { 0 };
	uint8_t *img;
	size_t len;
	char err[256];
	json_t *info = NULL;

	if (gw_events_subscribe(m->events, on_event, &s, &sub) < 0)
		abort();
	img = make_image(32, 1000, false, 0, 4, 5, 6, 0, 4, &len);
	is_int(add_bytes(m->firmware, img, len, NULL, &info, err, sizeof(err)), 0, "image added");
	is_int(s.n, 1, "one event");
	is_str(s.type, "firmware.added", "firmware.added");
	is_str(s.id, json_str(info, "id"), "naming the image");
	is_str(s.version, "4.5.6", "with its version");
	json_decref(info);
	is_int(add_bytes(m->firmware, img, len, NULL, &info, err, sizeof(err)), 1, "added again");
	json_decref(info);
	is_int(s.n, 1, "no event for a file already stored");
	is_int(add_bytes(m->firmware, img, 100, NULL, &info, err, sizeof(err)), -EBADMSG, "a bad one");
	is_int(s.n, 1, "no event for a refused file");
	is_int(gw_firmware_remove(m->firmware, s.id), 0, "removed");
	is_int(s.n, 2, "one more event");
	is_str(s.type, "firmware.removed", "firmware.removed");
	gw_events_unsubscribe(m->events, sub);
	free(img);
}

/* A 24 MiB image written in pieces, so only the store's copy could hold it whole. */
static void test_large(struct gw_manager *m)
{
	const uint32_t img_size = 24u << 20;
	uint8_t hdr[32] = { 0 }, tlv[40], *chunk = malloc(1 << 20);
	char p[] = "/tmp/smpgw-test-fw-large-XXXXXX", err[256], id[65];
	struct sha256_ctx img_ctx, file_ctx;
	uint8_t d[32];
	struct rusage before, after;
	json_t *info = NULL;
	int fd = mkstemp(p), r;

	if (fd < 0 || !chunk)
		abort();
	unlink(p);
	put_le32(hdr, SMP_MCUBOOT_MAGIC);
	put_le16(hdr + 8, 32);
	put_le32(hdr + 12, img_size);
	hdr[20] = 7;
	sha256_init(&img_ctx);
	sha256_init(&file_ctx);
	sha256_update(&img_ctx, sizeof(hdr), hdr);
	sha256_update(&file_ctx, sizeof(hdr), hdr);
	if (write(fd, hdr, sizeof(hdr)) != sizeof(hdr))
		abort();
	for (uint32_t off = 0; off < img_size; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20); i++)
			chunk[i] = (uint8_t)(i ^ (off >> 20));
		sha256_update(&img_ctx, 1 << 20, chunk);
		sha256_update(&file_ctx, 1 << 20, chunk);
		if (write(fd, chunk, 1 << 20) != 1 << 20)
			abort();
	}
	free(chunk);
	put_le16(tlv, SMP_MCUBOOT_TLV_INFO_MAGIC);
	put_le16(tlv + 2, sizeof(tlv));
	put_le16(tlv + 4, SMP_MCUBOOT_TLV_SHA256);
	put_le16(tlv + 6, 32);
	sha256_digest(&img_ctx, 32, tlv + 8);
	sha256_update(&file_ctx, sizeof(tlv), tlv);
	sha256_digest(&file_ctx, 32, d);
	for (size_t i = 0; i < 32; i++)
		sprintf(id + 2 * i, "%02x", d[i]);
	if (write(fd, tlv, sizeof(tlv)) != sizeof(tlv) || lseek(fd, 0, SEEK_SET) != 0)
		abort();

	getrusage(RUSAGE_SELF, &before);
	r = gw_firmware_add_fd(m->firmware, fd, "large", &info, err, sizeof(err));
	getrusage(RUSAGE_SELF, &after);
	is_int(r, 0, "a 24 MiB image added (%s)", err);
	is_str(json_str(info, "id"), id, "its id");
	is_str(json_str(info, "version"), "7.0.0", "its version");
	ok(after.ru_maxrss - before.ru_maxrss < 8 * 1024,
	   "the process grew by %ld KiB, far less than the image", after.ru_maxrss - before.ru_maxrss);
	is_int(gw_firmware_remove(m->firmware, id), 0, "removed");
	json_decref(info);
	close(fd);
}

static void test_version_compare(void)
{
	static const struct {
		const char *a, *b;
		int sign;
	} cases[] = {
		{ "1.2.3", "1.2.3", 0 },
		{ "1.2.3", "1.2.3.0", 0 },
		{ "1.2.3", "1.2.4", -1 },
		{ "1.2.3.4", "1.2.3", 1 },
		{ "1.2.3.4", "1.2.3.5", -1 },
		{ "1.10.0", "1.9.0", 1 },
		{ "2.0.0", "1.255.65535.4294967295", 1 },
		{ "0.0.0", "0.0.0.1", -1 },
		{ "255.255.65535.4294967295", "255.255.65535.4294967294", 1 },
	};
	static const char *const bad[] = { "", "a", "1.2.x", "1.2.3.4.5", "256.0.0", "1..2", "-1.0.0",
					   "1.2.3 ", "1.0.65536" };
	int c;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		c = 99;
		is_int(gw_firmware_version_compare(cases[i].a, cases[i].b, &c), 0, "compare %s %s",
		       cases[i].a, cases[i].b);
		is_int(c < 0 ? -1 : c > 0, cases[i].sign, "%s vs %s: %d", cases[i].a, cases[i].b,
		       cases[i].sign);
		c = 99;
		gw_firmware_version_compare(cases[i].b, cases[i].a, &c);
		is_int(c < 0 ? -1 : c > 0, -cases[i].sign, "%s vs %s: %d", cases[i].b, cases[i].a,
		       -cases[i].sign);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		c = 99;
		is_int(gw_firmware_version_compare(bad[i], "1.0.0", &c), -EINVAL, "\"%s\": -EINVAL", bad[i]);
		is_int(c, 99, "result untouched");
	}
	is_int(gw_firmware_version_compare(NULL, "1.0.0", &c), -EINVAL, "NULL: -EINVAL");
}

int main(void)
{
	struct gw_manager m;
	struct stored img[2] = { 0 };
	struct stat st;

	if (!mkdtemp(dir))
		abort();
	start(&m);
	is_int(gw_firmware_new(&m, &m.firmware), 0, "gw_firmware_new on a fresh state directory");
	ok(stat(tmp_path("firmware"), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
	   "store directory created 0700");

	test_real_images(&m, img);
	test_lookup(&m, img);
	test_invalid(&m, &img[0]);
	test_invalid(&m, &img[1]);
	test_synthetic(&m);
	test_streams(&m, &img[0]);
	test_events(&m);
	test_large(&m);
	test_remove(&m, img);
	test_restart(&m, img);
	test_version_compare();
	ok(gw_firmware_free(NULL) == NULL, "gw_firmware_free(NULL)");

	stop(&m);
	free(img[0].data);
	free(img[1].data);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			tap_diag("could not remove %s", dir);
	}
	return tap_done();
}
