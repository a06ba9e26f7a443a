/* smp-mcuboot: MCUboot image parser: header, TLV areas, image hash and upload sha */
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-mcuboot.h"

#define MCUBOOT_TLV_INFO_SIZE 4
#define MCUBOOT_TLV_HEADER_SIZE 4

static const char *const mcuboot_error_table[_SMP_MCUBOOT_ERROR_MAX] = {
	[SMP_MCUBOOT_OK] = "ok",
	[SMP_MCUBOOT_E_TRUNCATED_HEADER] = "truncated header",
	[SMP_MCUBOOT_E_BAD_MAGIC] = "bad magic",
	[SMP_MCUBOOT_E_OLD_MAGIC] = "obsolete image format (magic 0x96f3b83c)",
	[SMP_MCUBOOT_E_HDR_SIZE] = "header size below 32",
	[SMP_MCUBOOT_E_PAYLOAD_BEYOND_END] = "payload beyond end",
	[SMP_MCUBOOT_E_PROT_TLV_SIZE] = "protected TLV size below 4",
	[SMP_MCUBOOT_E_PROT_TLV_BEYOND_END] = "protected TLV area beyond end",
	[SMP_MCUBOOT_E_PROT_TLV_MAGIC] = "bad protected TLV area magic",
	[SMP_MCUBOOT_E_PROT_TLV_TOT] = "protected TLV area size differs from header",
	[SMP_MCUBOOT_E_PROT_TLV_UNDECLARED] = "protected TLV area not declared in header",
	[SMP_MCUBOOT_E_TLV_BEYOND_END] = "TLV area beyond end",
	[SMP_MCUBOOT_E_TLV_MAGIC] = "bad TLV area magic",
	[SMP_MCUBOOT_E_TLV_TOT] = "TLV area size below 4",
	[SMP_MCUBOOT_E_TLV_OVERRUN] = "TLV length overruns area",
	[SMP_MCUBOOT_E_NO_SHA256] = "no SHA-256 TLV",
	[SMP_MCUBOOT_E_MULTIPLE_SHA256] = "multiple SHA-256 TLVs",
	[SMP_MCUBOOT_E_SHA256_LENGTH] = "SHA-256 TLV is not 32 bytes",
	[SMP_MCUBOOT_E_HASH_MISMATCH] = "image hash mismatch",
};

const char *smp_mcuboot_error_to_string(enum smp_mcuboot_error e)
{
	if ((unsigned)e >= ELEMENTSOF(mcuboot_error_table))
		return "unknown error";
	return mcuboot_error_table[e];
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static enum smp_mcuboot_error mcuboot_header_parse(const uint8_t *p, size_t len,
						   struct smp_mcuboot_header *ret)
{
	struct smp_mcuboot_header h;

	if (len < SMP_MCUBOOT_HEADER_SIZE)
		return SMP_MCUBOOT_E_TRUNCATED_HEADER;

	h = (struct smp_mcuboot_header){
		.magic = le32(p),
		.load_addr = le32(p + 4),
		.hdr_size = le16(p + 8),
		.protect_tlv_size = le16(p + 10),
		.img_size = le32(p + 12),
		.flags = le32(p + 16),
		.version = {
			.major = p[20],
			.minor = p[21],
			.revision = le16(p + 22),
			.build = le32(p + 24),
		},
	};
	if (h.magic == SMP_MCUBOOT_MAGIC_V1)
		return SMP_MCUBOOT_E_OLD_MAGIC;
	if (h.magic != SMP_MCUBOOT_MAGIC)
		return SMP_MCUBOOT_E_BAD_MAGIC;
	if (h.hdr_size < SMP_MCUBOOT_HEADER_SIZE)
		return SMP_MCUBOOT_E_HDR_SIZE;

	*ret = h;
	return SMP_MCUBOOT_OK;
}

int smp_mcuboot_header_parse(const uint8_t *p, size_t len, struct smp_mcuboot_header *ret)
{
	return mcuboot_header_parse(p, len, ret) == SMP_MCUBOOT_OK ? 0 : -EBADMSG;
}

struct smp_mcuboot_image *smp_mcuboot_image_free(struct smp_mcuboot_image *img)
{
	if (!img)
		return NULL;
	free(img->tlvs);
	free(img);
	return NULL;
}

/* Walks the TLVs of the area [start, end), whose 4-byte info header was
 * checked by the caller, appending them to img->tlvs. The caller made room
 * for every TLV the area could hold. */
static enum smp_mcuboot_error mcuboot_walk_tlvs(const uint8_t *p, size_t start, size_t end,
						bool prot, struct smp_mcuboot_image *img)
{
	for (size_t off = start + MCUBOOT_TLV_INFO_SIZE; off < end;) {
		struct smp_mcuboot_tlv *t = &img->tlvs[img->n_tlvs];

		if (end - off < MCUBOOT_TLV_HEADER_SIZE)
			return SMP_MCUBOOT_E_TLV_OVERRUN;
		*t = (struct smp_mcuboot_tlv){
			.type = le16(p + off),
			.protected_tlv = prot,
			.offset = off + MCUBOOT_TLV_HEADER_SIZE,
			.length = le16(p + off + 2),
		};
		if (t->length > end - t->offset)
			return SMP_MCUBOOT_E_TLV_OVERRUN;
		img->n_tlvs++;
		off = t->offset + t->length;
	}
	return SMP_MCUBOOT_OK;
}

/* Returns 0, -ENOMEM, or -EBADMSG with the reason in *ret_error. */
static int mcuboot_fail(enum smp_mcuboot_error *ret_error, enum smp_mcuboot_error e)
{
	*ret_error = e;
	return -EBADMSG;
}

static int mcuboot_parse(const uint8_t *p, size_t len, unsigned flags,
			 struct smp_mcuboot_image *img, enum smp_mcuboot_error *ret_error)
{
	const struct smp_mcuboot_tlv *sha = NULL;
	enum smp_mcuboot_error e;
	uint64_t prot_start, tlv_start, tlv_end;
	size_t max_tlvs;
	struct sha256_ctx ctx;

	e = mcuboot_header_parse(p, len, &img->hdr);
	if (e != SMP_MCUBOOT_OK)
		return mcuboot_fail(ret_error, e);
	img->size = len;

	/* 64-bit sums of 16- and 32-bit fields cannot overflow. */
	prot_start = (uint64_t)img->hdr.hdr_size + img->hdr.img_size;
	if (prot_start > len)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_PAYLOAD_BEYOND_END);

	if (img->hdr.protect_tlv_size > 0) {
		if (img->hdr.protect_tlv_size < MCUBOOT_TLV_INFO_SIZE)
			return mcuboot_fail(ret_error, SMP_MCUBOOT_E_PROT_TLV_SIZE);
		if (prot_start + img->hdr.protect_tlv_size > len)
			return mcuboot_fail(ret_error, SMP_MCUBOOT_E_PROT_TLV_BEYOND_END);
		if (le16(p + prot_start) != SMP_MCUBOOT_TLV_PROT_INFO_MAGIC)
			return mcuboot_fail(ret_error, SMP_MCUBOOT_E_PROT_TLV_MAGIC);
		if (le16(p + prot_start + 2) != img->hdr.protect_tlv_size)
			return mcuboot_fail(ret_error, SMP_MCUBOOT_E_PROT_TLV_TOT);
	}
	tlv_start = prot_start + img->hdr.protect_tlv_size;
	img->hashed_size = tlv_start;

	if (tlv_start + MCUBOOT_TLV_INFO_SIZE > len)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_TLV_BEYOND_END);
	if (le16(p + tlv_start) == SMP_MCUBOOT_TLV_PROT_INFO_MAGIC &&
	    img->hdr.protect_tlv_size == 0)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_PROT_TLV_UNDECLARED);
	if (le16(p + tlv_start) != SMP_MCUBOOT_TLV_INFO_MAGIC)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_TLV_MAGIC);
	if (le16(p + tlv_start + 2) < MCUBOOT_TLV_INFO_SIZE)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_TLV_TOT);
	tlv_end = tlv_start + le16(p + tlv_start + 2);
	if (tlv_end > len)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_TLV_BEYOND_END);
	img->tlv_end = tlv_end;
	img->trailing = len - tlv_end;

	/* Each TLV takes at least its 4-byte header: this bounds the list. */
	max_tlvs = (img->hdr.protect_tlv_size + (tlv_end - tlv_start)) / MCUBOOT_TLV_HEADER_SIZE;
	img->tlvs = calloc(max_tlvs, sizeof(*img->tlvs));
	if (!img->tlvs)
		return -ENOMEM;

	if (img->hdr.protect_tlv_size > 0) {
		e = mcuboot_walk_tlvs(p, prot_start, tlv_start, true, img);
		if (e != SMP_MCUBOOT_OK)
			return mcuboot_fail(ret_error, e);
	}
	e = mcuboot_walk_tlvs(p, tlv_start, tlv_end, false, img);
	if (e != SMP_MCUBOOT_OK)
		return mcuboot_fail(ret_error, e);

	for (size_t i = 0; i < img->n_tlvs; i++) {
		const struct smp_mcuboot_tlv *t = &img->tlvs[i];

		if (t->protected_tlv || t->type != SMP_MCUBOOT_TLV_SHA256)
			continue;
		if (sha)
			return mcuboot_fail(ret_error, SMP_MCUBOOT_E_MULTIPLE_SHA256);
		if (t->length != SMP_MCUBOOT_SHA256_SIZE)
			return mcuboot_fail(ret_error, SMP_MCUBOOT_E_SHA256_LENGTH);
		sha = t;
	}
	if (!sha)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_NO_SHA256);
	memcpy(img->hash, p + sha->offset, SMP_MCUBOOT_SHA256_SIZE);

	sha256_init(&ctx);
	sha256_update(&ctx, img->hashed_size, p);
	sha256_digest(&ctx, sizeof(img->computed_hash), img->computed_hash);
	img->hash_checkable = !(img->hdr.flags & (SMP_MCUBOOT_F_ENCRYPTED_AES128 |
						  SMP_MCUBOOT_F_ENCRYPTED_AES256));
	img->hash_ok = img->hash_checkable &&
		       memcmp(img->hash, img->computed_hash, SMP_MCUBOOT_SHA256_SIZE) == 0;
	if ((flags & SMP_MCUBOOT_PARSE_STRICT) && img->hash_checkable && !img->hash_ok)
		return mcuboot_fail(ret_error, SMP_MCUBOOT_E_HASH_MISMATCH);

	sha256_init(&ctx);
	sha256_update(&ctx, len, p);
	sha256_digest(&ctx, sizeof(img->file_sha256), img->file_sha256);
	return 0;
}

int smp_mcuboot_parse_full(const uint8_t *img, size_t len, unsigned flags,
			   enum smp_mcuboot_error *ret_error, struct smp_mcuboot_image **ret)
{
	_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *m = NULL;
	enum smp_mcuboot_error e = SMP_MCUBOOT_OK;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		r = -ENOMEM;
	else
		r = mcuboot_parse(img, len, flags, m, &e);
	if (ret_error)
		*ret_error = e;
	if (r < 0)
		return r;

	*ret = TAKE_PTR(m);
	return 0;
}

int smp_mcuboot_parse(const uint8_t *img, size_t len, struct smp_mcuboot_image **ret)
{
	return smp_mcuboot_parse_full(img, len, 0, NULL, ret);
}

int smp_mcuboot_verify(const struct smp_mcuboot_image *img)
{
	if (!img->hash_checkable)
		return -EOPNOTSUPP;
	return img->hash_ok ? 0 : -EBADMSG;
}

const struct smp_mcuboot_tlv *smp_mcuboot_image_find_tlv(const struct smp_mcuboot_image *img,
							 uint16_t type)
{
	for (size_t i = 0; i < img->n_tlvs; i++)
		if (img->tlvs[i].type == type)
			return &img->tlvs[i];
	return NULL;
}

char *smp_mcuboot_version_string(const struct smp_mcuboot_version *v,
				 enum smp_mcuboot_version_form form,
				 char buf[static SMP_MCUBOOT_VERSION_STRING_MAX])
{
	int n = snprintf(buf, SMP_MCUBOOT_VERSION_STRING_MAX, "%u.%u.%u", v->major, v->minor,
			 v->revision);

	if (form == SMP_MCUBOOT_VERSION_IMGTOOL)
		snprintf(buf + n, (size_t)(SMP_MCUBOOT_VERSION_STRING_MAX - n), "+%u",
			 (unsigned)v->build);
	else if (v->build != 0)
		snprintf(buf + n, (size_t)(SMP_MCUBOOT_VERSION_STRING_MAX - n), ".%u",
			 (unsigned)v->build);
	return buf;
}

/* A decimal number of at most max; advances *s past it. */
static int mcuboot_version_part(const char **s, uint32_t max, uint32_t *ret)
{
	uint64_t v = 0;
	const char *p = *s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			return -EINVAL;
	}
	*s = p;
	*ret = (uint32_t)v;
	return 0;
}

int smp_mcuboot_version_parse(const char *s, struct smp_mcuboot_version *ret)
{
	static const uint32_t max[4] = { UINT8_MAX, UINT8_MAX, UINT16_MAX, UINT32_MAX };
	uint32_t part[4] = { 0 };
	unsigned n = 0;

	for (;;) {
		if (mcuboot_version_part(&s, max[n], &part[n]) < 0)
			return -EINVAL;
		n++;
		if (*s == '\0')
			break;
		/* The build number follows "+" (imgtool) or a third "." (SMP). */
		if (*s == '+' && n == 3) {
			s++;
			continue;
		}
		if (*s != '.' || n == 4)
			return -EINVAL;
		s++;
	}

	*ret = (struct smp_mcuboot_version){
		.major = (uint8_t)part[0],
		.minor = (uint8_t)part[1],
		.revision = (uint16_t)part[2],
		.build = part[3],
	};
	return 0;
}

int smp_mcuboot_version_compare(const struct smp_mcuboot_version *a,
				const struct smp_mcuboot_version *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->revision != b->revision)
		return a->revision < b->revision ? -1 : 1;
	if (a->build != b->build)
		return a->build < b->build ? -1 : 1;
	return 0;
}

static const struct {
	uint32_t flag;
	const char *name;
} mcuboot_flag_table[] = {
	{ SMP_MCUBOOT_F_PIC, "PIC" },
	{ SMP_MCUBOOT_F_ENCRYPTED_AES128, "ENCRYPTED_AES128" },
	{ SMP_MCUBOOT_F_ENCRYPTED_AES256, "ENCRYPTED_AES256" },
	{ SMP_MCUBOOT_F_NON_BOOTABLE, "NON_BOOTABLE" },
	{ SMP_MCUBOOT_F_RAM_LOAD, "RAM_LOAD" },
	{ SMP_MCUBOOT_F_ROM_FIXED, "ROM_FIXED" },
	{ SMP_MCUBOOT_F_COMPRESSED_LZMA1, "COMPRESSED_LZMA1" },
	{ SMP_MCUBOOT_F_COMPRESSED_LZMA2, "COMPRESSED_LZMA2" },
	{ SMP_MCUBOOT_F_COMPRESSED_ARM_THUMB_FLT, "COMPRESSED_ARM_THUMB_FLT" },
};

const char *smp_mcuboot_flag_to_string(uint32_t flag)
{
	for (size_t i = 0; i < ELEMENTSOF(mcuboot_flag_table); i++)
		if (mcuboot_flag_table[i].flag == flag)
			return mcuboot_flag_table[i].name;
	return NULL;
}

size_t smp_mcuboot_flags_to_string(uint32_t flags, char *buf, size_t size)
{
	size_t need = 0;

	if (size > 0)
		buf[0] = '\0';

	for (unsigned bit = 0; bit < 32; bit++) {
		uint32_t f = UINT32_C(1) << bit;
		const char *name;
		char hex[sizeof("0x00000000")];
		int n;

		if (!(flags & f))
			continue;
		name = smp_mcuboot_flag_to_string(f);
		if (!name) {
			snprintf(hex, sizeof(hex), "0x%08x", (unsigned)f);
			name = hex;
		}
		n = snprintf(need < size ? buf + need : NULL, need < size ? size - need : 0,
			     "%s%s", need > 0 ? "|" : "", name);
		need += (size_t)n;
	}
	return need;
}

static const struct {
	uint16_t type;
	const char *name;
} mcuboot_tlv_table[] = {
	{ SMP_MCUBOOT_TLV_KEYHASH, "KEYHASH" },
	{ SMP_MCUBOOT_TLV_PUBKEY, "PUBKEY" },
	{ SMP_MCUBOOT_TLV_SHA256, "SHA256" },
	{ SMP_MCUBOOT_TLV_SHA384, "SHA384" },
	{ SMP_MCUBOOT_TLV_SHA512, "SHA512" },
	{ SMP_MCUBOOT_TLV_RSA2048_PSS, "RSA2048_PSS" },
	{ SMP_MCUBOOT_TLV_ECDSA_SIG, "ECDSA_SIG" },
	{ SMP_MCUBOOT_TLV_RSA3072_PSS, "RSA3072_PSS" },
	{ SMP_MCUBOOT_TLV_ED25519, "ED25519" },
	{ SMP_MCUBOOT_TLV_SIG_PURE, "SIG_PURE" },
	{ SMP_MCUBOOT_TLV_ENC_RSA2048, "ENC_RSA2048" },
	{ SMP_MCUBOOT_TLV_ENC_KW, "ENC_KW" },
	{ SMP_MCUBOOT_TLV_ENC_EC256, "ENC_EC256" },
	{ SMP_MCUBOOT_TLV_ENC_X25519, "ENC_X25519" },
	{ SMP_MCUBOOT_TLV_ENC_X25519_SHA512, "ENC_X25519_SHA512" },
	{ SMP_MCUBOOT_TLV_DEPENDENCY, "DEPENDENCY" },
	{ SMP_MCUBOOT_TLV_SEC_CNT, "SEC_CNT" },
	{ SMP_MCUBOOT_TLV_BOOT_RECORD, "BOOT_RECORD" },
	{ SMP_MCUBOOT_TLV_DECOMP_SIZE, "DECOMP_SIZE" },
	{ SMP_MCUBOOT_TLV_DECOMP_SHA, "DECOMP_SHA" },
	{ SMP_MCUBOOT_TLV_DECOMP_SIGNATURE, "DECOMP_SIGNATURE" },
	{ SMP_MCUBOOT_TLV_COMP_DEC_SIZE, "COMP_DEC_SIZE" },
	{ SMP_MCUBOOT_TLV_UUID_VID, "UUID_VID" },
	{ SMP_MCUBOOT_TLV_UUID_CID, "UUID_CID" },
};

const char *smp_mcuboot_tlv_type_to_string(uint16_t type)
{
	for (size_t i = 0; i < ELEMENTSOF(mcuboot_tlv_table); i++)
		if (mcuboot_tlv_table[i].type == type)
			return mcuboot_tlv_table[i].name;
	return NULL;
}
