/* fuzz-serial: the streaming serial decoder, fed in pieces the input chooses, and re-encoding */
#include <errno.h>
#include <string.h>

#include "macro.h"
#include "smp-buf.h"
#include "smp-serial.h"
#include "tests/fuzz/fuzz.h"

/* What a decoder delivered, in order: 'P' or 'C', the length, the bytes. */
struct trace {
	struct smp_buf log;
	size_t max_line; /* for re-encoding the packets */
	bool reencode;
};

static void trace_add(struct trace *t, char kind, const uint8_t *p, size_t len)
{
	uint32_t n = (uint32_t)len;

	smp_buf_append(&t->log, &kind, 1);
	smp_buf_append(&t->log, &n, sizeof(n));
	smp_buf_append(&t->log, p, len);
	FUZZ_CHECK(smp_buf_error(&t->log) == 0);
}

static void on_single(const uint8_t *pkt, size_t len, void *userdata)
{
	const uint8_t **want = userdata;

	FUZZ_CHECK(*want);
	FUZZ_CHECK(memcmp(pkt, *want, len) == 0);
	*want = NULL;
}

/* A delivered packet, encoded again and decoded by a fresh decoder, comes back
 * alone and unchanged, in lines no longer than asked. */
static void check_reencode(const uint8_t *pkt, size_t len, size_t max_line)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
	struct smp_buf out = SMP_BUF_INIT;
	const uint8_t *want = pkt;
	const struct smp_serial_stats *st;
	size_t line_start = 0;

	FUZZ_CHECK(smp_serial_encode(pkt, len, max_line, &out) == 0);
	FUZZ_CHECK(out.len == smp_serial_encoded_size(len, max_line));
	for (size_t i = 0; i < out.len; i++)
		if (out.data[i] == '\n') {
			FUZZ_CHECK(i + 1 - line_start <= (max_line ? max_line : SMP_SERIAL_LINE_DEFAULT));
			line_start = i + 1;
		}
	FUZZ_CHECK(line_start == out.len);

	FUZZ_CHECK(smp_serial_decoder_new(len, &d) == 0);
	FUZZ_CHECK(smp_serial_decoder_feed(d, out.data, out.len, on_single, NULL, &want) == 1);
	FUZZ_CHECK(want == NULL);
	FUZZ_CHECK(!smp_serial_decoder_in_progress(d));
	st = smp_serial_decoder_get_stats(d);
	FUZZ_CHECK(st->packets == 1 && st->crc_errors == 0 && st->length_errors == 0 &&
		   st->base64_errors == 0 && st->console_lines == 0);
	smp_buf_clear(&out);
}

static void on_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct trace *t = userdata;

	FUZZ_CHECK(len > 0);
	trace_add(t, 'P', pkt, len);
	if (t->reencode)
		check_reencode(pkt, len, t->max_line);
}

static void on_console(const uint8_t *line, size_t len, void *userdata)
{
	trace_add(userdata, 'C', line, len);
}

static bool stats_equal(const struct smp_serial_stats *a, const struct smp_serial_stats *b)
{
	return a->packets == b->packets && a->crc_errors == b->crc_errors &&
	       a->length_errors == b->length_errors && a->base64_errors == b->base64_errors &&
	       a->overlong_lines == b->overlong_lines && a->console_lines == b->console_lines &&
	       a->orphan_lines == b->orphan_lines && a->dropped_partial == b->dropped_partial;
}

/* Input: byte 0 chooses the piece sizes (0: one byte at a time), byte 1 the
 * line length for re-encoding (0: default, else 7 + n); the rest is the stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *whole = NULL;
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *pieces = NULL;
	struct trace a = { .reencode = true }, b = { 0 };
	uint32_t rng;
	int na, nb = 0;

	if (size < 2)
		return 0;
	a.max_line = data[1] ? 7 + (size_t)data[1] : 0;
	rng = (uint32_t)data[0] << 8 | data[1] | 1;

	FUZZ_CHECK(smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &whole) == 0);
	FUZZ_CHECK(smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &pieces) == 0);

	na = smp_serial_decoder_feed(whole, data + 2, size - 2, on_packet, on_console, &a);
	FUZZ_CHECK(na >= 0 && (uint64_t)na == smp_serial_decoder_get_stats(whole)->packets);

	/* The split points must not change what comes out. */
	for (size_t off = 2; off < size;) {
		size_t n = 1;
		int k;

		if (data[0]) {
			rng ^= rng << 13; /* xorshift32 */
			rng ^= rng >> 17;
			rng ^= rng << 5;
			n = 1 + rng % data[0];
		}
		n = MIN(n, size - off);
		k = smp_serial_decoder_feed(pieces, data + off, n, on_packet, on_console, &b);
		FUZZ_CHECK(k >= 0);
		nb += k;
		off += n;
	}
	FUZZ_CHECK(na == nb);
	FUZZ_CHECK(a.log.len == b.log.len && (a.log.len == 0 || memcmp(a.log.data, b.log.data, a.log.len) == 0));
	FUZZ_CHECK(stats_equal(smp_serial_decoder_get_stats(whole), smp_serial_decoder_get_stats(pieces)));
	FUZZ_CHECK(smp_serial_decoder_in_progress(whole) == smp_serial_decoder_in_progress(pieces));

	smp_serial_decoder_reset(pieces);
	FUZZ_CHECK(!smp_serial_decoder_in_progress(pieces));
	smp_buf_clear(&a.log);
	smp_buf_clear(&b.log);
	return 0;
}
