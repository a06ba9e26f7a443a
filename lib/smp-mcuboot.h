/* smp-mcuboot: MCUboot image parser: header, TLV areas, image hash and upload sha */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* smp-protocol.md §14. All image fields are little-endian. */

#define SMP_MCUBOOT_MAGIC 0x96f3b83dU
#define SMP_MCUBOOT_MAGIC_V1 0x96f3b83cU /* obsolete format, refused */
#define SMP_MCUBOOT_HEADER_SIZE 32
#define SMP_MCUBOOT_TLV_INFO_MAGIC 0x6907
#define SMP_MCUBOOT_TLV_PROT_INFO_MAGIC 0x6908
#define SMP_MCUBOOT_SHA256_SIZE 32

enum smp_mcuboot_flag {
	SMP_MCUBOOT_F_PIC = 0x00000001,
	SMP_MCUBOOT_F_ENCRYPTED_AES128 = 0x00000004,
	SMP_MCUBOOT_F_ENCRYPTED_AES256 = 0x00000008,
	SMP_MCUBOOT_F_NON_BOOTABLE = 0x00000010,
	SMP_MCUBOOT_F_RAM_LOAD = 0x00000020,
	SMP_MCUBOOT_F_ROM_FIXED = 0x00000100,
	SMP_MCUBOOT_F_COMPRESSED_LZMA1 = 0x00000200,
	SMP_MCUBOOT_F_COMPRESSED_LZMA2 = 0x00000400,
	SMP_MCUBOOT_F_COMPRESSED_ARM_THUMB_FLT = 0x00000800,
};

enum smp_mcuboot_tlv_type {
	SMP_MCUBOOT_TLV_KEYHASH = 0x01,
	SMP_MCUBOOT_TLV_PUBKEY = 0x02,
	SMP_MCUBOOT_TLV_SHA256 = 0x10,
	SMP_MCUBOOT_TLV_SHA384 = 0x11,
	SMP_MCUBOOT_TLV_SHA512 = 0x12,
	SMP_MCUBOOT_TLV_RSA2048_PSS = 0x20,
	SMP_MCUBOOT_TLV_ECDSA_SIG = 0x22,
	SMP_MCUBOOT_TLV_RSA3072_PSS = 0x23,
	SMP_MCUBOOT_TLV_ED25519 = 0x24,
	SMP_MCUBOOT_TLV_SIG_PURE = 0x25,
	SMP_MCUBOOT_TLV_ENC_RSA2048 = 0x30,
	SMP_MCUBOOT_TLV_ENC_KW = 0x31,
	SMP_MCUBOOT_TLV_ENC_EC256 = 0x32,
	SMP_MCUBOOT_TLV_ENC_X25519 = 0x33,
	SMP_MCUBOOT_TLV_ENC_X25519_SHA512 = 0x34,
	SMP_MCUBOOT_TLV_DEPENDENCY = 0x40,
	SMP_MCUBOOT_TLV_SEC_CNT = 0x50,
	SMP_MCUBOOT_TLV_BOOT_RECORD = 0x60,
	SMP_MCUBOOT_TLV_DECOMP_SIZE = 0x70,
	SMP_MCUBOOT_TLV_DECOMP_SHA = 0x71,
	SMP_MCUBOOT_TLV_DECOMP_SIGNATURE = 0x72,
	SMP_MCUBOOT_TLV_COMP_DEC_SIZE = 0x73,
	SMP_MCUBOOT_TLV_UUID_VID = 0x74,
	SMP_MCUBOOT_TLV_UUID_CID = 0x75,
};

/* Why an image was refused; smp_mcuboot_error_to_string() gives the text. */
enum smp_mcuboot_error {
	SMP_MCUBOOT_OK,
	SMP_MCUBOOT_E_TRUNCATED_HEADER, /* fewer than 32 bytes */
	SMP_MCUBOOT_E_BAD_MAGIC,
	SMP_MCUBOOT_E_OLD_MAGIC,	     /* 0x96f3b83c, the obsolete v1 format */
	SMP_MCUBOOT_E_HDR_SIZE,		     /* ih_hdr_size below 32 */
	SMP_MCUBOOT_E_PAYLOAD_BEYOND_END,    /* hdr_size + img_size past the end of the file */
	SMP_MCUBOOT_E_PROT_TLV_SIZE,	     /* ih_protect_tlv_size set but below 4 */
	SMP_MCUBOOT_E_PROT_TLV_BEYOND_END,   /* protected TLV area past the end of the file */
	SMP_MCUBOOT_E_PROT_TLV_MAGIC,	     /* no 0x6908 where the protected area starts */
	SMP_MCUBOOT_E_PROT_TLV_TOT,	     /* its it_tlv_tot differs from ih_protect_tlv_size */
	SMP_MCUBOOT_E_PROT_TLV_UNDECLARED,   /* 0x6908 area present but ih_protect_tlv_size 0 */
	SMP_MCUBOOT_E_TLV_BEYOND_END,	     /* TLV info header or area past the end of the file */
	SMP_MCUBOOT_E_TLV_MAGIC,	     /* no 0x6907 after the protected area */
	SMP_MCUBOOT_E_TLV_TOT,		     /* it_tlv_tot below 4 */
	SMP_MCUBOOT_E_TLV_OVERRUN,	     /* a TLV header or value overruns its area */
	SMP_MCUBOOT_E_NO_SHA256,	     /* no SHA-256 TLV in the unprotected area */
	SMP_MCUBOOT_E_MULTIPLE_SHA256,
	SMP_MCUBOOT_E_SHA256_LENGTH,	     /* SHA-256 TLV whose value is not 32 bytes */
	SMP_MCUBOOT_E_HASH_MISMATCH,	     /* only in strict mode / smp_mcuboot_verify() */
	_SMP_MCUBOOT_ERROR_MAX,
};

const char *smp_mcuboot_error_to_string(enum smp_mcuboot_error e);

struct smp_mcuboot_version {
	uint8_t major;
	uint8_t minor;
	uint16_t revision;
	uint32_t build;
};

struct smp_mcuboot_header {
	uint32_t magic;
	uint32_t load_addr;
	uint16_t hdr_size;
	uint16_t protect_tlv_size;
	uint32_t img_size;
	uint32_t flags;
	struct smp_mcuboot_version version;
};

/* One TLV; offset is where its value starts, from the start of the image. */
struct smp_mcuboot_tlv {
	uint16_t type;
	bool protected_tlv;
	size_t offset;
	size_t length;
};

/* A parsed image. It does not point into the bytes it was parsed from: TLV
 * values are offsets into them, which the caller keeps. */
struct smp_mcuboot_image {
	struct smp_mcuboot_header hdr;
	size_t size;	     /* the whole file, as given to the parser */
	size_t hashed_size;  /* hdr_size + img_size + protect_tlv_size: what the image hash covers */
	size_t tlv_end;	     /* end of the unprotected TLV area */
	/* Bytes after the TLV area (imgtool --pad fill and trailer): accepted and
	 * ignored by the parser, but part of the file and of file_sha256, since
	 * the upload sends the file as it is. */
	size_t trailing;
	struct smp_mcuboot_tlv *tlvs; /* protected first, in file order */
	size_t n_tlvs;
	uint8_t hash[SMP_MCUBOOT_SHA256_SIZE];		/* value of the SHA-256 TLV (§14.6) */
	uint8_t computed_hash[SMP_MCUBOOT_SHA256_SIZE]; /* SHA-256 of [0, hashed_size) */
	/* False for encrypted images: their hash covers the plaintext, so it
	 * cannot be recomputed from the file and hash_ok says nothing. */
	bool hash_checkable;
	bool hash_ok; /* hash_checkable and computed_hash == hash */
	uint8_t file_sha256[SMP_MCUBOOT_SHA256_SIZE]; /* SHA-256 of all size bytes: the upload "sha" */
};

/* Parses the 32-byte header only (e.g. the first upload chunk in the
 * simulator). Checks length, magic and hdr_size >= 32; nothing else.
 * Returns 0, -EBADMSG (too short, bad or obsolete magic, hdr_size < 32). */
int smp_mcuboot_header_parse(const uint8_t *p, size_t len, struct smp_mcuboot_header *ret);

/* Parse flags. */
enum {
	/* Refuse with -EBADMSG / SMP_MCUBOOT_E_HASH_MISMATCH when the recomputed
	 * image hash differs from the SHA-256 TLV (unless the image is
	 * encrypted, see hash_checkable). */
	SMP_MCUBOOT_PARSE_STRICT = 1 << 0,
};

/* Parses and hashes a whole image file. Safe on hostile input: every size is
 * checked against len before use; nothing is read outside [0, len).
 * A hash mismatch is not an error by default (see hash_ok); pass
 * SMP_MCUBOOT_PARSE_STRICT or call smp_mcuboot_verify() to refuse it.
 * Images without a SHA-256 TLV (SHA-384/512 only, or SIG_PURE) are refused:
 * the gateway needs that hash to test and confirm an image.
 * Returns 0 and a new image in *ret (free with smp_mcuboot_image_free()),
 * -EBADMSG for a malformed image with the reason in *ret_error (may be NULL;
 * written on every return, SMP_MCUBOOT_OK on success), -ENOMEM. */
int smp_mcuboot_parse_full(const uint8_t *img, size_t len, unsigned flags,
			   enum smp_mcuboot_error *ret_error, struct smp_mcuboot_image **ret);
/* smp_mcuboot_parse_full() without flags and without the reason. */
int smp_mcuboot_parse(const uint8_t *img, size_t len, struct smp_mcuboot_image **ret);
/* NULL-safe; returns NULL. */
struct smp_mcuboot_image *smp_mcuboot_image_free(struct smp_mcuboot_image *img);
/* 0 when the recomputed hash matches the SHA-256 TLV, -EBADMSG when it does
 * not, -EOPNOTSUPP for an encrypted image (not checkable). */
int smp_mcuboot_verify(const struct smp_mcuboot_image *img);
/* The first TLV of this type, or NULL. */
const struct smp_mcuboot_tlv *smp_mcuboot_image_find_tlv(const struct smp_mcuboot_image *img,
							 uint16_t type);

/* "255.255.65535.4294967295" plus NUL fits. */
#define SMP_MCUBOOT_VERSION_STRING_MAX 32

enum smp_mcuboot_version_form {
	/* "1.2.3.4", or "1.2.3" when build is 0: how SMP Get state reports it. */
	SMP_MCUBOOT_VERSION_SMP,
	/* "1.2.3+4", always with the build number: imgtool's --version. */
	SMP_MCUBOOT_VERSION_IMGTOOL,
};

/* Formats v into buf and returns buf. */
char *smp_mcuboot_version_string(const struct smp_mcuboot_version *v,
				 enum smp_mcuboot_version_form form,
				 char buf[static SMP_MCUBOOT_VERSION_STRING_MAX]);
/* Parses "M.m.r", "M.m.r.b" (SMP) or "M.m.r+b" (imgtool); also "M" and "M.m"
 * as imgtool accepts them. Decimal only, each part within its field's range.
 * Returns 0 or -EINVAL. */
int smp_mcuboot_version_parse(const char *s, struct smp_mcuboot_version *ret);
/* <0, 0, >0 as a is older than, equal to, newer than b (major, minor,
 * revision, then build). */
int smp_mcuboot_version_compare(const struct smp_mcuboot_version *a,
				const struct smp_mcuboot_version *b);

/* Name of one flag bit ("RAM_LOAD"), or NULL for an unknown or multi-bit value. */
const char *smp_mcuboot_flag_to_string(uint32_t flag);
/* Writes the set flags as "NON_BOOTABLE|RAM_LOAD", unknown bits as "0x00001000",
 * "" for none; snprintf semantics: returns the length the full text needs, writes
 * at most size bytes including the NUL. */
size_t smp_mcuboot_flags_to_string(uint32_t flags, char *buf, size_t size);
/* Name of a TLV type ("SHA256", "ECDSA_SIG"), or NULL for unknown types. */
const char *smp_mcuboot_tlv_type_to_string(uint16_t type);

static inline void smp_mcuboot_image_freep(struct smp_mcuboot_image **img)
{
	smp_mcuboot_image_free(*img);
}
