/* tap: a tiny Test Anything Protocol emitter for the C unit tests */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"

static unsigned tap_count;
static unsigned tap_failed;

__attribute__((format(printf, 2, 0))) static bool tap_vreport(bool cond, const char *fmt, va_list ap)
{
	tap_count++;
	printf("%sok %u - ", cond ? "" : "not ", tap_count);
	vprintf(fmt, ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

bool tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vreport(cond, fmt, ap);
	va_end(ap);
	return cond;
}

bool tap_is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = tap_vreport(got == want, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#   got: %lld\n#   want: %lld\n", got, want);
	return r;
}

bool tap_is_str(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = tap_vreport(got && want ? strcmp(got, want) == 0 : got == want, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#   got: \"%s\"\n#   want: \"%s\"\n", got ? got : "(null)", want ? want : "(null)");
	return r;
}

static void tap_hexdump(const char *label, const void *p, size_t n)
{
	const uint8_t *b = p;

	printf("#   %s (%zu): ", label, n);
	for (size_t i = 0; i < n && i < 96; i++)
		printf("%02x", b[i]);
	printf("%s\n", n > 96 ? "..." : "");
}

bool tap_is_mem(const void *got, size_t got_len, const void *want, size_t want_len,
		const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = tap_vreport(got_len == want_len && (got_len == 0 || memcmp(got, want, got_len) == 0),
			fmt, ap);
	va_end(ap);
	if (!r) {
		tap_hexdump("got", got, got_len);
		tap_hexdump("want", want, want_len);
	}
	return r;
}

void tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("ok %u - ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int tap_done(void)
{
	printf("1..%u\n", tap_count);
	return tap_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int tap_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint8_t *tap_unhex(const char *hex, size_t *ret_len)
{
	size_t n = strlen(hex), len = 0;
	uint8_t *out = malloc(n / 2 + 1);
	int hi = -1;

	if (!out)
		abort();
	for (size_t i = 0; i < n; i++) {
		int v;

		if (hex[i] == ' ' || hex[i] == '|' || hex[i] == '\n')
			continue;
		v = tap_nibble(hex[i]);
		if (v < 0) {
			fprintf(stderr, "bad hex in vector: %s\n", hex);
			abort();
		}
		if (hi < 0) {
			hi = v;
		} else {
			out[len++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0)
		abort();
	*ret_len = len;
	return out;
}

uint8_t *tap_read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;

	if (!f) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		abort();
	}
	for (;;) {
		size_t n;

		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	*ret_len = len;
	return buf;
}

const char *tap_srcpath(const char *rel)
{
	static char path[4096];
	const char *top = getenv("top_srcdir");

	snprintf(path, sizeof(path), "%s/%s", top && *top ? top : ".", rel);
	return path;
}
