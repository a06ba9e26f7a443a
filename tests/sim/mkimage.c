/* mkimage: writes a valid MCUboot image (hash-only TLV, like smp-sim's factory images) for demos and tests */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/macro.h"
#include "sim-image.h"
#include "smp-mcuboot.h"

#define MKIMAGE_DEFAULT_SIZE (64 * 1024)
#define MKIMAGE_MAX_SIZE (16 * 1024 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mkimage [OPTION]... FILE\n"
		"Writes an MCUboot image that smp-sim boots and smpgwd's firmware store accepts:\n"
		"a header, a payload of filler unique to --ident, and a SHA-256 TLV (no signature).\n"
		"Prints \"version=V size=N sha256=HEX image_hash=HEX\": sha256 is the file's (the\n"
		"firmware id), image_hash the TLV's (what a device reports in image state).\n\n"
		"  --version V    image version, M.m.r or M.m.r.b or M.m.r+b (default 1.1.0)\n"
		"  --size BYTES   payload size (default %u)\n"
		"  --ident TEXT   makes the payload unique (default \"smpgw demo\")\n"
		"  -h, --help     this text\n",
		MKIMAGE_DEFAULT_SIZE);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* Writes through a temporary file and rename(): a reader never sees half an image. */
static int write_file(const char *path, const uint8_t *data, size_t len)
{
	_cleanup_free_ char *tmp = NULL;
	FILE *f;
	int r = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	if (fwrite(data, 1, len, f) != len)
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int main(int argc, char **argv)
{
	enum { OPT_VERSION = 256, OPT_SIZE, OPT_IDENT };
	static const struct option options[] = {
		{ "version", required_argument, NULL, OPT_VERSION },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "ident", required_argument, NULL, OPT_IDENT },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct smp_mcuboot_version v;
	const char *version = "1.1.0", *ident = "smpgw demo";
	unsigned long size = MKIMAGE_DEFAULT_SIZE;
	_cleanup_free_ uint8_t *data = NULL;
	struct smp_mcuboot_image *img = NULL;
	char vs[SMP_MCUBOOT_VERSION_STRING_MAX], sha[65], hash[65], *end;
	size_t len;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case OPT_VERSION: version = optarg; break;
		case OPT_SIZE:
			errno = 0;
			size = strtoul(optarg, &end, 0);
			if (errno || *end || end == optarg || size == 0 || size > MKIMAGE_MAX_SIZE) {
				fprintf(stderr, "mkimage: bad --size \"%s\" (1..%u)\n", optarg,
					MKIMAGE_MAX_SIZE);
				return 2;
			}
			break;
		case OPT_IDENT: ident = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (smp_mcuboot_version_parse(version, &v) < 0) {
		fprintf(stderr, "mkimage: bad --version \"%s\"\n", version);
		return 2;
	}
	r = sim_image_build(ident, &v, size, &data, &len);
	if (r < 0) {
		fprintf(stderr, "mkimage: %s\n", strerror(-r));
		return 1;
	}
	/* Whatever is written must pass the parser the gateway uses on uploads. */
	r = smp_mcuboot_parse_full(data, len, SMP_MCUBOOT_PARSE_STRICT, NULL, &img);
	if (r < 0) {
		fprintf(stderr, "mkimage: the built image does not parse: %s\n", strerror(-r));
		return 1;
	}
	hex(img->file_sha256, sizeof(img->file_sha256), sha);
	hex(img->hash, sizeof(img->hash), hash);
	smp_mcuboot_version_string(&img->hdr.version, SMP_MCUBOOT_VERSION_SMP, vs);
	smp_mcuboot_image_free(img);

	r = write_file(argv[optind], data, len);
	if (r < 0) {
		fprintf(stderr, "mkimage: %s: %s\n", argv[optind], strerror(-r));
		return 1;
	}
	printf("version=%s size=%zu sha256=%s image_hash=%s\n", vs, len, sha, hash);
	return 0;
}
