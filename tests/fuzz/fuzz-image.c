/* fuzz-image: the MCUboot image parser, version strings and flag names */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "smp-mcuboot.h"
#include "tests/fuzz/fuzz.h"

static void check_version(const struct smp_mcuboot_version *v)
{
	char buf[SMP_MCUBOOT_VERSION_STRING_MAX];
	struct smp_mcuboot_version back;

	/* Both spellings parse back to the same version. */
	for (int form = SMP_MCUBOOT_VERSION_SMP; form <= SMP_MCUBOOT_VERSION_IMGTOOL; form++) {
		smp_mcuboot_version_string(v, form, buf);
		FUZZ_CHECK(memchr(buf, 0, sizeof(buf)));
		FUZZ_CHECK(smp_mcuboot_version_parse(buf, &back) == 0);
		FUZZ_CHECK(smp_mcuboot_version_compare(v, &back) == 0);
	}
}

static void check_flags(uint32_t flags)
{
	char full[1024], tiny[5]; /* 32 bits of at most 24 characters and a '|' each */
	size_t need = smp_mcuboot_flags_to_string(flags, full, sizeof(full));

	FUZZ_CHECK(need == strlen(full));
	FUZZ_CHECK(smp_mcuboot_flags_to_string(flags, tiny, sizeof(tiny)) == need);
	FUZZ_CHECK(strlen(tiny) == MIN(need, sizeof(tiny) - 1) && memcmp(tiny, full, strlen(tiny)) == 0);
	for (unsigned bit = 0; bit < 32; bit++) {
		const char *name = smp_mcuboot_flag_to_string(UINT32_C(1) << bit);

		FUZZ_CHECK(!name || strlen(name) > 0);
	}
}

static void check_image(const uint8_t *data, size_t size, const struct smp_mcuboot_image *img,
			unsigned flags)
{
	const struct smp_mcuboot_tlv *sha;
	int r;

	FUZZ_CHECK(img->size == size);
	FUZZ_CHECK(img->hashed_size <= img->tlv_end && img->tlv_end <= size);
	FUZZ_CHECK(img->tlv_end + img->trailing == size);
	for (size_t i = 0; i < img->n_tlvs; i++) {
		const char *name = smp_mcuboot_tlv_type_to_string(img->tlvs[i].type);

		FUZZ_CHECK(img->tlvs[i].offset <= size && img->tlvs[i].length <= size - img->tlvs[i].offset);
		FUZZ_CHECK(!name || strlen(name) > 0);
	}
	/* The hash is the first 32-byte SHA-256 TLV of the unprotected area (a
	 * protected one, however odd, may come before it in tlvs[]). */
	sha = NULL;
	for (size_t i = 0; i < img->n_tlvs && !sha; i++)
		if (img->tlvs[i].type == SMP_MCUBOOT_TLV_SHA256 && !img->tlvs[i].protected_tlv &&
		    img->tlvs[i].length == SMP_MCUBOOT_SHA256_SIZE)
			sha = &img->tlvs[i];
	FUZZ_CHECK(sha && memcmp(data + sha->offset, img->hash, SMP_MCUBOOT_SHA256_SIZE) == 0);
	sha = smp_mcuboot_image_find_tlv(img, SMP_MCUBOOT_TLV_SHA256);
	FUZZ_CHECK(sha && sha->type == SMP_MCUBOOT_TLV_SHA256);
	FUZZ_CHECK(!img->hash_ok || img->hash_checkable);
	r = smp_mcuboot_verify(img);
	FUZZ_CHECK(img->hash_checkable ? r == (img->hash_ok ? 0 : -EBADMSG) : r == -EOPNOTSUPP);
	if (flags & SMP_MCUBOOT_PARSE_STRICT)
		FUZZ_CHECK(img->hash_ok || !img->hash_checkable);
	check_version(&img->hdr.version);
	check_flags(img->hdr.flags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smp_mcuboot_header h;
	struct smp_mcuboot_version v;
	char text[64];
	int r0 = 0;

	if (smp_mcuboot_header_parse(data, size, &h) == 0) {
		check_version(&h.version);
		check_flags(h.flags);
	}

	for (unsigned flags = 0; flags <= SMP_MCUBOOT_PARSE_STRICT; flags++) {
		_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;
		enum smp_mcuboot_error err = _SMP_MCUBOOT_ERROR_MAX;
		int r = smp_mcuboot_parse_full(data, size, flags, &err, &img);

		FUZZ_CHECK(err < _SMP_MCUBOOT_ERROR_MAX && smp_mcuboot_error_to_string(err));
		FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
		FUZZ_CHECK((r == 0) == (err == SMP_MCUBOOT_OK));
		if (r == 0)
			check_image(data, size, img, flags);
		if (flags == 0)
			r0 = r;
	}
	{
		_cleanup_(smp_mcuboot_image_freep) struct smp_mcuboot_image *img = NULL;

		FUZZ_CHECK(smp_mcuboot_parse(data, size, &img) == r0);
	}

	/* The input as a version string, as an API client would give it. */
	memcpy(text, data, MIN(size, sizeof(text) - 1));
	text[MIN(size, sizeof(text) - 1)] = 0;
	if (smp_mcuboot_version_parse(text, &v) == 0)
		check_version(&v);
	return 0;
}
