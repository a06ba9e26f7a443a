/* test-smp-mcuboot: MCUboot image parsing against §15.3, imgtool output and broken images */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-mcuboot.h"
#include "tests/tap.h"

/* §15.3: version 1.1.0, hdr_size 32, 64-byte payload, hash TLV only (136 bytes). */
static const char tiny_hex[] =
	"3db8f396 00000000 2000 0000 40000000 00000000 01 01 0000 00000000 00000000"
	"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
	"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
	"0769 2800 1000 2000"
	"c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0";
static const char tiny_hash[] = "c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0";
static const char tiny_file_sha[] =
	"a678ce1ed77e9580a875bc1f228c15d8438965e671921c6b31d494f69057c7ce";

/* The same with a protected SEC_CNT = 5 TLV (148 bytes). */
static const char prot_hex[] =
	"3db8f396 00000000 2000 0c00 40000000 00000000 01 01 0000 00000000 00000000"
	"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
	"000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
	"0869 0c00 5000 0400 05000000"
	"0769 2800 1000 2000"
	"e012cfb3db02672e23539cae0eb8c031f8ce39feb491f8cc8d407ec98ffb1fb8";
static const char prot_hash[] = "e012cfb3db02672e23539cae0eb8c031f8ce39feb491f8cc8d407ec98ffb1fb8";

static uint8_t *unhex(const char *hex, size_t *ret_len)
{
	return tap_unhex(hex, ret_len);
}

static bool mem_is_hex(const uint8_t *p, size_t n, const char *hex)
{
	size_t len;
	_cleanup_free_ uint8_t *want = unhex(hex, &len);

	return len == n && memcmp(p, want, n) == 0;
}

/* Parses and returns the reason (SMP_MCUBOOT_OK on success), checking that
 * *ret stays untouched on failure. */
static enum smp_mcuboot_error parse_reason(const uint8_t *p, size_t len, unsigned flags)
{
	static struct smp_mcuboot_image sentinel;
	struct smp_mcuboot_image *img = &sentinel;
	enum smp_mcuboot_error e = _SMP_MCUBOOT_ERROR_MAX;
	int r = smp_mcuboot_parse_full(p, len, flags, &e, &img);

	if (r == 0) {
		smp_mcuboot_image_free(img);
		return e == SMP_MCUBOOT_OK ? e : _SMP_MCUBOOT_ERROR_MAX;
	}
	if (r != -EBADMSG || img != &sentinel || e == SMP_MCUBOOT_OK)
		return _SMP_MCUBOOT_ERROR_MAX;
	return e;
}

static void test_tiny(void)
{
	_cleanup_free_ uint8_t *p = NULL;
	_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
	char v[SMP_MCUBOOT_VERSION_STRING_MAX];
	size_t len;

	p = unhex(tiny_hex, &len);
	is_int(len, 136, "tiny image is 136 bytes");
	is_int(smp_mcuboot_parse(p, len, &img), 0, "tiny image parses");
	is_int(img->hdr.magic, SMP_MCUBOOT_MAGIC, "magic");
	is_int(img->hdr.load_addr, 0, "load_addr");
	is_int(img->hdr.hdr_size, 32, "hdr_size");
	is_int(img->hdr.protect_tlv_size, 0, "protect_tlv_size");
	is_int(img->hdr.img_size, 64, "img_size");
	is_int(img->hdr.flags, 0, "flags");
	is_str(smp_mcuboot_version_string(&img->hdr.version, SMP_MCUBOOT_VERSION_SMP, v), "1.1.0",
	       "version as SMP reports it");
	is_str(smp_mcuboot_version_string(&img->hdr.version, SMP_MCUBOOT_VERSION_IMGTOOL, v),
	       "1.1.0+0", "version as imgtool writes it");
	is_int(img->size, 136, "size");
	is_int(img->hashed_size, 0x60, "hash covers 0x00..0x5f");
	is_int(img->tlv_end, 136, "TLV area ends the file");
	is_int(img->trailing, 0, "no trailing bytes");
	is_int(img->n_tlvs, 1, "one TLV");
	ok(img->tlvs[0].type == SMP_MCUBOOT_TLV_SHA256 && !img->tlvs[0].protected_tlv &&
		   img->tlvs[0].offset == 0x68 && img->tlvs[0].length == 32,
	   "SHA256 TLV at 0x68, 32 bytes, unprotected");
	ok(mem_is_hex(img->hash, 32, tiny_hash), "image hash from the TLV");
	ok(mem_is_hex(img->computed_hash, 32, tiny_hash), "image hash recomputed");
	ok(img->hash_checkable && img->hash_ok, "hash ok");
	ok(mem_is_hex(img->file_sha256, 32, tiny_file_sha), "file SHA-256 (upload sha)");
	is_int(smp_mcuboot_verify(img), 0, "verify");
	ok(smp_mcuboot_image_find_tlv(img, SMP_MCUBOOT_TLV_SHA256) == &img->tlvs[0], "find SHA256");
	ok(smp_mcuboot_image_find_tlv(img, SMP_MCUBOOT_TLV_ECDSA_SIG) == NULL, "no signature");
}

static void test_protected(void)
{
	_cleanup_free_ uint8_t *p = NULL;
	_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
	const struct smp_mcuboot_tlv *t;
	size_t len;

	p = unhex(prot_hex, &len);
	is_int(len, 148, "protected image is 148 bytes");
	is_int(smp_mcuboot_parse_full(p, len, SMP_MCUBOOT_PARSE_STRICT, NULL, &img), 0,
	       "protected image parses strictly");
	is_int(img->hdr.protect_tlv_size, 12, "protect_tlv_size");
	is_int(img->hashed_size, 0x6c, "hash covers 0x00..0x6b");
	is_int(img->n_tlvs, 2, "two TLVs");
	t = smp_mcuboot_image_find_tlv(img, SMP_MCUBOOT_TLV_SEC_CNT);
	ok(t && t == &img->tlvs[0] && t->protected_tlv && t->offset == 0x68 && t->length == 4 &&
		   p[t->offset] == 5,
	   "SEC_CNT = 5, protected, first");
	ok(img->tlvs[1].type == SMP_MCUBOOT_TLV_SHA256 && !img->tlvs[1].protected_tlv &&
		   img->tlvs[1].offset == 0x74,
	   "SHA256 TLV after it");
	ok(mem_is_hex(img->hash, 32, prot_hash), "image hash from the TLV");
	ok(img->hash_ok, "recomputed hash covers the protected area");
}

static void test_imgtool(void)
{
	json_error_t jerr;
	json_t *expected = json_load_file(tap_srcpath("tests/data/images/expected.json"), 0, &jerr);
	static const struct {
		const char *file;
		size_t n_tlvs;
		uint16_t types[3];
	} v[] = {
		{ "hash-only-1.2.3+4.bin", 1, { SMP_MCUBOOT_TLV_SHA256 } },
		{ "ecdsa-p256-2.0.0.bin", 3,
		  { SMP_MCUBOOT_TLV_SHA256, SMP_MCUBOOT_TLV_KEYHASH, SMP_MCUBOOT_TLV_ECDSA_SIG } },
	};

	ok(expected != NULL, "expected.json loads");
	if (!expected)
		return;

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
		_cleanup_free_ uint8_t *p = NULL;
		json_t *e = json_object_get(expected, v[i].file);
		char path[256], ver[SMP_MCUBOOT_VERSION_STRING_MAX];
		bool types_ok = true;
		size_t len;

		snprintf(path, sizeof(path), "tests/data/images/%s", v[i].file);
		p = tap_read_file(tap_srcpath(path), &len);
		is_int(len, json_integer_value(json_object_get(e, "size")), "%s: size", v[i].file);
		is_int(smp_mcuboot_parse_full(p, len, SMP_MCUBOOT_PARSE_STRICT, NULL, &img), 0,
		       "%s: parses strictly", v[i].file);
		if (!img)
			continue;
		ok(mem_is_hex(img->file_sha256, 32,
			      json_string_value(json_object_get(e, "file_sha256"))),
		   "%s: file SHA-256", v[i].file);
		ok(mem_is_hex(img->hash, 32, json_string_value(json_object_get(e, "image_hash"))),
		   "%s: image hash", v[i].file);
		ok(img->hash_ok, "%s: image hash verified", v[i].file);
		is_str(smp_mcuboot_version_string(&img->hdr.version, SMP_MCUBOOT_VERSION_SMP, ver),
		       json_string_value(json_object_get(e, "version_as_smp_reports")),
		       "%s: version as SMP reports it", v[i].file);
		is_int(img->hdr.hdr_size, 512, "%s: 512-byte header", v[i].file);
		is_int(img->trailing, 0, "%s: no trailing bytes", v[i].file);
		is_int(img->n_tlvs, v[i].n_tlvs, "%s: TLV count", v[i].file);
		for (size_t j = 0; j < img->n_tlvs && j < v[i].n_tlvs; j++)
			types_ok = types_ok && img->tlvs[j].type == v[i].types[j];
		ok(types_ok, "%s: TLV types in order", v[i].file);
	}
	{
		_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
		_cleanup_free_ uint8_t *p = NULL;
		char ver[SMP_MCUBOOT_VERSION_STRING_MAX];
		size_t len;

		p = tap_read_file(tap_srcpath("tests/data/images/hash-only-1.2.3+4.bin"), &len);
		if (smp_mcuboot_parse(p, len, &img) == 0)
			is_str(smp_mcuboot_version_string(&img->hdr.version,
							  SMP_MCUBOOT_VERSION_IMGTOOL, ver),
			       "1.2.3+4", "imgtool version form matches the file name");
	}
	json_decref(expected);
}

static void test_truncation(void)
{
	_cleanup_free_ uint8_t *tiny = NULL, *prot = NULL;
	size_t tlen, plen, bad = 0;

	tiny = unhex(tiny_hex, &tlen);
	prot = unhex(prot_hex, &plen);

	for (size_t n = 0; n < tlen; n++) {
		enum smp_mcuboot_error want = n < 32  ? SMP_MCUBOOT_E_TRUNCATED_HEADER :
					      n < 96  ? SMP_MCUBOOT_E_PAYLOAD_BEYOND_END :
							SMP_MCUBOOT_E_TLV_BEYOND_END;
		/* A private copy of exactly n bytes, so that ASan sees any overread. */
		_cleanup_free_ uint8_t *c = malloc(n ? n : 1);

		memcpy(c, tiny, n);
		if (parse_reason(c, n, 0) != want && bad++ < 5)
			tap_diag("tiny truncated to %zu: reason %d", n, parse_reason(c, n, 0));
	}
	is_int(bad, 0, "tiny image truncated at every length: exact reasons");

	bad = 0;
	for (size_t n = 0; n < plen; n++) {
		enum smp_mcuboot_error want = n < 32  ? SMP_MCUBOOT_E_TRUNCATED_HEADER :
					      n < 96  ? SMP_MCUBOOT_E_PAYLOAD_BEYOND_END :
					      n < 108 ? SMP_MCUBOOT_E_PROT_TLV_BEYOND_END :
							SMP_MCUBOOT_E_TLV_BEYOND_END;
		_cleanup_free_ uint8_t *c = malloc(n ? n : 1);

		memcpy(c, prot, n);
		if (parse_reason(c, n, 0) != want && bad++ < 5)
			tap_diag("protected truncated to %zu: reason %d", n, parse_reason(c, n, 0));
	}
	is_int(bad, 0, "protected image truncated at every length: exact reasons");
	ok(smp_mcuboot_parse(NULL, 0, NULL) == -EBADMSG, "empty input");
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static void test_header_fields(void)
{
	_cleanup_free_ uint8_t *orig = NULL, *orig_prot = NULL;
	uint8_t c[160];
	size_t len, plen, bad = 0;
	static const struct {
		const char *what;
		size_t off;
		int width;
		uint32_t value;
		enum smp_mcuboot_error want;
	} v[] = {
		{ "magic 0", 0, 32, 0, SMP_MCUBOOT_E_BAD_MAGIC },
		{ "magic byte-swapped", 0, 32, 0x3db8f396, SMP_MCUBOOT_E_BAD_MAGIC },
		{ "obsolete magic", 0, 32, SMP_MCUBOOT_MAGIC_V1, SMP_MCUBOOT_E_OLD_MAGIC },
		{ "hdr_size 0", 8, 16, 0, SMP_MCUBOOT_E_HDR_SIZE },
		{ "hdr_size 31", 8, 16, 31, SMP_MCUBOOT_E_HDR_SIZE },
		{ "hdr_size 33", 8, 16, 33, SMP_MCUBOOT_E_TLV_MAGIC },
		{ "hdr_size 0xffff", 8, 16, 0xffff, SMP_MCUBOOT_E_PAYLOAD_BEYOND_END },
		{ "protect_tlv_size 1", 10, 16, 1, SMP_MCUBOOT_E_PROT_TLV_SIZE },
		{ "protect_tlv_size 3", 10, 16, 3, SMP_MCUBOOT_E_PROT_TLV_SIZE },
		{ "protect_tlv_size 4 over the 0x6907 area", 10, 16, 4, SMP_MCUBOOT_E_PROT_TLV_MAGIC },
		{ "protect_tlv_size 0xffff", 10, 16, 0xffff, SMP_MCUBOOT_E_PROT_TLV_BEYOND_END },
		{ "img_size 63", 12, 32, 63, SMP_MCUBOOT_E_TLV_MAGIC },
		{ "img_size 65", 12, 32, 65, SMP_MCUBOOT_E_TLV_MAGIC },
		{ "img_size 0xffffffff", 12, 32, 0xffffffff, SMP_MCUBOOT_E_PAYLOAD_BEYOND_END },
		{ "img_size 0xffffffe0 (wraps in 32 bits)", 12, 32, 0xffffffe0,
		  SMP_MCUBOOT_E_PAYLOAD_BEYOND_END },
	};

	orig = unhex(tiny_hex, &len);
	orig_prot = unhex(prot_hex, &plen);

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		memcpy(c, orig, len);
		if (v[i].width == 16)
			put_le16(c + v[i].off, (uint16_t)v[i].value);
		else
			put_le32(c + v[i].off, v[i].value);
		is_int(parse_reason(c, len, 0), v[i].want, "%s: %s", v[i].what,
		       smp_mcuboot_error_to_string(v[i].want));
	}

	/* Protected area: header and area disagree. */
	memcpy(c, orig_prot, plen);
	put_le16(c + 10, 16);
	is_int(parse_reason(c, plen, 0), SMP_MCUBOOT_E_PROT_TLV_TOT, "protect_tlv_size != it_tlv_tot");
	memcpy(c, orig_prot, plen);
	put_le16(c + 10, 0);
	is_int(parse_reason(c, plen, 0), SMP_MCUBOOT_E_PROT_TLV_UNDECLARED,
	       "protected area not declared in the header");

	/* Every bit of every header byte: refused, or parsed with a wrong hash. */
	for (size_t pos = 0; pos < SMP_MCUBOOT_HEADER_SIZE; pos++)
		for (unsigned bit = 0; bit < 8; bit++) {
			struct smp_mcuboot_image *img = NULL;
			int r;

			memcpy(c, orig, len);
			c[pos] ^= (uint8_t)(1u << bit);
			r = smp_mcuboot_parse(c, len, &img);
			if (r == 0 && img->hash_ok && bad++ < 5)
				tap_diag("header byte %zu bit %u: accepted with a good hash", pos, bit);
			if (r == 0 && parse_reason(c, len, SMP_MCUBOOT_PARSE_STRICT) == SMP_MCUBOOT_OK &&
			    img->hash_checkable && bad++ < 5)
				tap_diag("header byte %zu bit %u: strict mode accepted it", pos, bit);
			if (r != 0 && r != -EBADMSG && bad++ < 5)
				tap_diag("header byte %zu bit %u: %d", pos, bit, r);
			smp_mcuboot_image_free(img);
		}
	is_int(bad, 0, "every header bit flipped: refused or hash mismatch");

	/* The encrypted flags make the hash uncheckable, not wrong. */
	{
		_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;

		memcpy(c, orig, len);
		put_le32(c + 16, SMP_MCUBOOT_F_ENCRYPTED_AES128);
		is_int(smp_mcuboot_parse_full(c, len, SMP_MCUBOOT_PARSE_STRICT, NULL, &img), 0,
		       "encrypted image parses strictly");
		ok(img && !img->hash_checkable && !img->hash_ok, "its hash is not checkable");
		is_int(img ? smp_mcuboot_verify(img) : 0, -EOPNOTSUPP, "verify says so");
	}
}

/* The tiny image with its unprotected TLV area replaced by tlvs (hex), the
 * info header's total computed, plus extra bytes appended as given. */
static size_t build_tlvs(uint8_t *out, size_t cap, const char *tlvs, int tot_delta)
{
	_cleanup_free_ uint8_t *base = NULL, *t = NULL;
	size_t blen, tlen;

	base = unhex(tiny_hex, &blen);
	t = unhex(tlvs, &tlen);
	if (0x60 + 4 + tlen > cap)
		abort();
	memcpy(out, base, 0x60);
	put_le16(out + 0x60, SMP_MCUBOOT_TLV_INFO_MAGIC);
	put_le16(out + 0x62, (uint16_t)((int)tlen + 4 + tot_delta));
	memcpy(out + 0x64, t, tlen);
	return 0x64 + tlen;
}

static void test_tlvs(void)
{
	static const char sha[] = "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0";
	static const struct {
		const char *what;
		const char *tlvs;
		int tot_delta;
		enum smp_mcuboot_error want;
	} v[] = {
		{ "tot 4 less", "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0", -4,
		  SMP_MCUBOOT_E_TLV_OVERRUN },
		{ "tot 1 more", "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0", 1,
		  SMP_MCUBOOT_E_TLV_BEYOND_END },
		{ "tot 3", "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
		  3 - 40, SMP_MCUBOOT_E_TLV_TOT },
		{ "tot 0", "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
		  -40, SMP_MCUBOOT_E_TLV_TOT },
		{ "tot 4: empty area", "", 0, SMP_MCUBOOT_E_NO_SHA256 },
		{ "TLV len 33", "1000 2100 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0", 0,
		  SMP_MCUBOOT_E_TLV_OVERRUN },
		{ "TLV len 0xffff", "1000 ffff c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
		  0, SMP_MCUBOOT_E_TLV_OVERRUN },
		{ "TLV len 31: 1-byte leftover", "1000 1f00 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
		  0, SMP_MCUBOOT_E_TLV_OVERRUN },
		{ "TLV header cut", "1000", 0, SMP_MCUBOOT_E_TLV_OVERRUN },
		{ "SHA384 only", "1100 3000 000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
				 "000102030405060708090a0b0c0d0e0f", 0, SMP_MCUBOOT_E_NO_SHA256 },
		{ "SHA-256 of 16 bytes", "1000 1000 000102030405060708090a0b0c0d0e0f", 0,
		  SMP_MCUBOOT_E_SHA256_LENGTH },
		{ "two SHA-256 TLVs", "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0"
				      "1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0",
		  0, SMP_MCUBOOT_E_MULTIPLE_SHA256 },
		{ "vendor TLV and empty TLV around the hash", "a000 0300 010203 1000 2000 c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f0 fe00 0000",
		  0, SMP_MCUBOOT_OK },
	};
	uint8_t c[400];

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		size_t n = build_tlvs(c, sizeof(c), v[i].tlvs, v[i].tot_delta);

		is_int(parse_reason(c, n, 0), v[i].want, "%s: %s", v[i].what,
		       smp_mcuboot_error_to_string(v[i].want));
	}

	{
		size_t n = build_tlvs(c, sizeof(c), sha, 0);

		put_le16(c + 0x60, 0x1234);
		is_int(parse_reason(c, n, 0), SMP_MCUBOOT_E_TLV_MAGIC, "TLV info magic wrong");
	}

	/* Protected area: bad magic, a TLV overrunning it. */
	{
		_cleanup_free_ uint8_t *p = NULL;
		size_t plen;

		p = unhex(prot_hex, &plen);
		memcpy(c, p, plen);
		put_le16(c + 0x60, SMP_MCUBOOT_TLV_INFO_MAGIC);
		is_int(parse_reason(c, plen, 0), SMP_MCUBOOT_E_PROT_TLV_MAGIC, "protected magic wrong");
		memcpy(c, p, plen);
		put_le16(c + 0x66, 5);
		is_int(parse_reason(c, plen, 0), SMP_MCUBOOT_E_TLV_OVERRUN,
		       "protected TLV overruns its area");
	}
}

static void test_hash_mismatch(void)
{
	_cleanup_free_ uint8_t *p = NULL;
	size_t len;
	/* A payload byte, a header byte, and the stored hash itself. */
	static const size_t where[] = { 0x20, 0x5f, 0x14, 0x68, 0x87 };

	p = unhex(tiny_hex, &len);
	for (size_t i = 0; i < ELEMENTSOF(where); i++) {
		_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
		enum smp_mcuboot_error e;

		p[where[i]] ^= 0x01;
		is_int(smp_mcuboot_parse(p, len, &img), 0, "byte 0x%zx changed: still parses", where[i]);
		ok(img && img->hash_checkable && !img->hash_ok, "byte 0x%zx changed: hash mismatch",
		   where[i]);
		is_int(img ? smp_mcuboot_verify(img) : 0, -EBADMSG, "byte 0x%zx changed: verify fails",
		       where[i]);
		is_int(smp_mcuboot_parse_full(p, len, SMP_MCUBOOT_PARSE_STRICT, &e, &img), -EBADMSG,
		       "byte 0x%zx changed: strict parse fails", where[i]);
		is_int(e, SMP_MCUBOOT_E_HASH_MISMATCH, "byte 0x%zx changed: reason", where[i]);
		p[where[i]] ^= 0x01;
	}
}

static void test_trailing(void)
{
	_cleanup_free_ uint8_t *p = NULL;
	_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
	uint8_t c[136 + 100];
	size_t len;

	p = unhex(tiny_hex, &len);
	memcpy(c, p, len);
	memset(c + len, 0xff, sizeof(c) - len);
	is_int(smp_mcuboot_parse_full(c, sizeof(c), SMP_MCUBOOT_PARSE_STRICT, NULL, &img), 0,
	       "padded image parses");
	ok(img && img->trailing == 100 && img->tlv_end == 136 && img->size == sizeof(c),
	   "trailing bytes reported");
	ok(img && img->hash_ok && mem_is_hex(img->hash, 32, tiny_hash), "image hash unchanged");
	ok(img && !mem_is_hex(img->file_sha256, 32, tiny_file_sha),
	   "file SHA-256 covers the padding too");
}

static void test_header_parse(void)
{
	_cleanup_free_ uint8_t *p = NULL;
	struct smp_mcuboot_header h = { .hdr_size = 7 };
	size_t len;

	p = unhex(tiny_hex, &len);
	is_int(smp_mcuboot_header_parse(p, 31, &h), -EBADMSG, "31 bytes: too short");
	is_int(h.hdr_size, 7, "untouched on failure");
	is_int(smp_mcuboot_header_parse(p, 32, &h), 0, "header alone parses");
	ok(h.hdr_size == 32 && h.img_size == 64 && h.version.major == 1 && h.version.minor == 1,
	   "header fields");
	put_le32(p, SMP_MCUBOOT_MAGIC_V1);
	is_int(smp_mcuboot_header_parse(p, 32, &h), -EBADMSG, "old magic refused");
}

/* Deterministic xorshift so that failures reproduce. */
static uint32_t rng_state = 0x6d2b79f5;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* Random damage to both small images: never a crash (ASan watches), and
 * whatever parses describes TLVs that lie inside the input. */
static void test_random_damage(void)
{
	_cleanup_free_ uint8_t *tiny = NULL, *prot = NULL;
	size_t tlen, plen, bad = 0, parsed = 0;

	tiny = unhex(tiny_hex, &tlen);
	prot = unhex(prot_hex, &plen);

	for (unsigned i = 0; i < 20000; i++) {
		const uint8_t *src = i & 1 ? prot : tiny;
		size_t n = i & 1 ? plen : tlen;
		_cleanup_free_ uint8_t *c = NULL;
		struct smp_mcuboot_image *img = NULL;
		int r;

		if (rng() % 4 == 0)
			n = rng() % (n + 1);
		c = malloc(n ? n : 1);
		memcpy(c, src, n);
		for (unsigned k = rng() % 4 + 1; k > 0 && n > 0; k--)
			c[rng() % n] = (uint8_t)rng();

		r = smp_mcuboot_parse(c, n, &img);
		if (r == 0) {
			parsed++;
			for (size_t j = 0; j < img->n_tlvs; j++)
				if (img->tlvs[j].offset + img->tlvs[j].length > n)
					bad++;
			if (img->tlv_end + img->trailing != n || img->hashed_size > n)
				bad++;
		} else if (r != -EBADMSG) {
			bad++;
		}
		smp_mcuboot_image_free(img);
	}
	is_int(bad, 0, "random damage: only -EBADMSG or a consistent image");
	ok(parsed > 0, "random damage: some still parse (%zu)", parsed);
}

static void test_versions(void)
{
	static const struct {
		const char *s;
		int r;
		struct smp_mcuboot_version v;
	} v[] = {
		{ "1.2.3.4", 0, { 1, 2, 3, 4 } },
		{ "1.2.3+4", 0, { 1, 2, 3, 4 } },
		{ "2.0.0", 0, { 2, 0, 0, 0 } },
		{ "1.2", 0, { 1, 2, 0, 0 } },
		{ "7", 0, { 7, 0, 0, 0 } },
		{ "255.255.65535.4294967295", 0, { 255, 255, 65535, 4294967295U } },
		{ "256.0.0", -EINVAL, { 0 } },
		{ "1.2.65536", -EINVAL, { 0 } },
		{ "1.2.3.4294967296", -EINVAL, { 0 } },
		{ "1.2+3", -EINVAL, { 0 } },
		{ "1.2.3.4.5", -EINVAL, { 0 } },
		{ "1.2.3+4.5", -EINVAL, { 0 } },
		{ "1..2", -EINVAL, { 0 } },
		{ "1.2.", -EINVAL, { 0 } },
		{ "", -EINVAL, { 0 } },
		{ "v1.2.3", -EINVAL, { 0 } },
		{ "1.2.3 ", -EINVAL, { 0 } },
		{ "-1.2.3", -EINVAL, { 0 } },
	};
	char buf[SMP_MCUBOOT_VERSION_STRING_MAX];
	struct smp_mcuboot_version a = { 1, 2, 3, 0 }, b = { 1, 2, 3, 1 }, c = { 1, 10, 0, 0 };

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		struct smp_mcuboot_version got = { 9, 9, 9, 9 };
		int r = smp_mcuboot_version_parse(v[i].s, &got);

		is_int(r, v[i].r, "parse \"%s\"", v[i].s);
		if (r == 0)
			ok(smp_mcuboot_version_compare(&got, &v[i].v) == 0, "\"%s\" fields", v[i].s);
		else
			ok(got.major == 9 && got.build == 9, "\"%s\": untouched", v[i].s);
	}

	is_str(smp_mcuboot_version_string(&v[5].v, SMP_MCUBOOT_VERSION_SMP, buf),
	       "255.255.65535.4294967295", "largest version, SMP form");
	is_str(smp_mcuboot_version_string(&v[5].v, SMP_MCUBOOT_VERSION_IMGTOOL, buf),
	       "255.255.65535+4294967295", "largest version, imgtool form");
	ok(smp_mcuboot_version_compare(&a, &b) < 0, "build breaks the tie");
	ok(smp_mcuboot_version_compare(&b, &c) < 0, "minor 10 is newer than minor 2");
	ok(smp_mcuboot_version_compare(&c, &a) > 0, "compare is antisymmetric");
}

static void test_names(void)
{
	char buf[128];
	bool distinct = true;

	is_str(smp_mcuboot_flag_to_string(SMP_MCUBOOT_F_RAM_LOAD), "RAM_LOAD", "flag name");
	ok(smp_mcuboot_flag_to_string(0x3) == NULL, "two bits have no single name");
	is_int(smp_mcuboot_flags_to_string(0, buf, sizeof(buf)), 0, "no flags");
	is_str(buf, "", "no flags: empty");
	is_int(smp_mcuboot_flags_to_string(SMP_MCUBOOT_F_NON_BOOTABLE | SMP_MCUBOOT_F_ROM_FIXED |
						   0x80000000U,
					   buf, sizeof(buf)),
	       strlen("NON_BOOTABLE|ROM_FIXED|0x80000000"), "flags length");
	is_str(buf, "NON_BOOTABLE|ROM_FIXED|0x80000000", "flags text with an unknown bit");
	is_int(smp_mcuboot_flags_to_string(SMP_MCUBOOT_F_PIC | SMP_MCUBOOT_F_RAM_LOAD, buf, 6),
	       strlen("PIC|RAM_LOAD"), "truncated: full length returned");
	is_str(buf, "PIC|R", "truncated text NUL-terminated");

	is_str(smp_mcuboot_tlv_type_to_string(SMP_MCUBOOT_TLV_SHA256), "SHA256", "TLV name");
	is_str(smp_mcuboot_tlv_type_to_string(0x75), "UUID_CID", "UUID_CID is 0x75 (code, not docs)");
	ok(smp_mcuboot_tlv_type_to_string(0xa0) == NULL, "vendor TLV has no name");

	for (int i = 0; i < _SMP_MCUBOOT_ERROR_MAX; i++)
		for (int j = i + 1; j < _SMP_MCUBOOT_ERROR_MAX; j++)
			if (strcmp(smp_mcuboot_error_to_string(i), smp_mcuboot_error_to_string(j)) == 0)
				distinct = false;
	ok(distinct, "every reason has its own text");
	is_str(smp_mcuboot_error_to_string(SMP_MCUBOOT_E_OLD_MAGIC),
	       "obsolete image format (magic 0x96f3b83c)", "old magic reason");
	is_str(smp_mcuboot_error_to_string(_SMP_MCUBOOT_ERROR_MAX), "unknown error",
	       "out of range reason");
}

int main(void)
{
	test_tiny();
	test_protected();
	test_imgtool();
	test_truncation();
	test_header_fields();
	test_tlvs();
	test_hash_mismatch();
	test_trailing();
	test_header_parse();
	test_random_damage();
	test_versions();
	test_names();
	return tap_done();
}
