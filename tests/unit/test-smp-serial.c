/* test-smp-serial: serial console framing against §15.2 and a hostile byte stream */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-serial.h"
#include "tests/tap.h"

/* V1, V32 and V13 of smp-protocol.md §15.1. */
static const char v1_hex[] = "0a000009 00000100 a161646568656c6c6f";
static const char v32_hex[] =
	"090000f4 00011000"
	"bf66696d616765739fbf64736c6f74006776657273696f6e65312e302e30646861736858"
	"20644d69c5f2f82ee9a6195ddadf5272cd4aa80ea3205e9824b79a6facf2d4734f68626f"
	"6f7461626c65f56770656e64696e67f469636f6e6669726d6564f566616374697665f569"
	"7065726d616e656e74f4ffbf64736c6f74016776657273696f6e65312e312e3064686173"
	"685820c39a0f220a6d7ff5e659124e4b3557466d1a0fdd17cb6fe30d863ad017bd12f068"
	"626f6f7461626c65f56770656e64696e67f469636f6e6669726d6564f466616374697665"
	"f4697065726d616e656e74f4ffff6b73706c697453746174757300ff";
static const char v13_hex[] =
	"0a000089 00011101"
	"a665696d61676500636c656e1888636f666600637368615820a678ce1ed77e9580a875bc1f228c15d8438965e6"
	"71921c6b31d494f69057c7ce646461746158403db8f39600000000200000004000000000000000010100000000"
	"000000000000000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f677570677261"
	"6465f4";

/* §15.2 S1, S2, S3: the text after each marker. */
static const char *const s1_lines[] = { "ABMKAAAJAAABAKFhZGVoZWxsb3o2" };
static const char *const s2_lines[] = {
	"AP4JAAD0AAEQAL9maW1hZ2Vzn79kc2xvdABndmVyc2lvbmUxLjAuMGRoYXNoWCBkTWnF8vgu6aYZXdrfUnLNSqgOoyBemCS3mm+s8tRzT2hib290YWJsZfVncGVu",
	"ZGluZ/RpY29uZmlybWVk9WZhY3RpdmX1aXBlcm1hbmVudPT/v2RzbG90AWd2ZXJzaW9uZTEuMS4wZGhhc2hYIMOaDyIKbX/15lkSTks1V0ZtGg/dF8tv4w2GOtAX",
	"vRLwaGJvb3RhYmxl9WdwZW5kaW5n9Gljb25maXJtZWT0ZmFjdGl2ZfRpcGVybWFuZW509P//a3NwbGl0U3RhdHVzAP9Qjw==",
};
static const char *const s3_lines[] = {
	"AJMKAACJAAERAaZlaW1hZ2UAY2xlbhiIY29mZgBjc2hhWCCmeM4e136VgKh1vB8ijBXYQ4ll5nGSHGsx1JT2kFfHzmRkYXRhWEA9uPOWAAAAACAAAABAAAAAAAAA",
	"AAEBAAAAAAAAAAAAAAABAgMEBQYHCAkKCwwNDg8AAQIDBAUGBwgJCgsMDQ4PZ3VwZ3JhZGX0FJ4=",
};

struct vec {
	const char *name;
	uint8_t *pkt;
	size_t len;
	uint16_t crc;
	uint8_t *wire;
	size_t wire_len;
};

static struct vec vecs[3];

/* marker + text + '\n' for each line. */
static uint8_t *build_wire(const char *const *lines, size_t n, size_t *ret_len)
{
	struct smp_buf b = SMP_BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		smp_buf_append(&b, i == 0 ? "\x06\x09" : "\x04\x14", 2);
		smp_buf_append(&b, lines[i], strlen(lines[i]));
		smp_buf_append(&b, "\n", 1);
	}
	if (smp_buf_error(&b) < 0)
		abort();
	return smp_buf_steal(&b, ret_len);
}

static void vecs_init(void)
{
	vecs[0] = (struct vec){ .name = "S1", .crc = 0x7a36 };
	vecs[0].pkt = tap_unhex(v1_hex, &vecs[0].len);
	vecs[0].wire = build_wire(s1_lines, ELEMENTSOF(s1_lines), &vecs[0].wire_len);
	vecs[1] = (struct vec){ .name = "S2", .crc = 0x508f };
	vecs[1].pkt = tap_unhex(v32_hex, &vecs[1].len);
	vecs[1].wire = build_wire(s2_lines, ELEMENTSOF(s2_lines), &vecs[1].wire_len);
	vecs[2] = (struct vec){ .name = "S3", .crc = 0x149e };
	vecs[2].pkt = tap_unhex(v13_hex, &vecs[2].len);
	vecs[2].wire = build_wire(s3_lines, ELEMENTSOF(s3_lines), &vecs[2].wire_len);
}

static void vecs_free(void)
{
	for (size_t i = 0; i < ELEMENTSOF(vecs); i++) {
		free(vecs[i].pkt);
		free(vecs[i].wire);
	}
}

/* Everything the decoder delivered, in order. Packets and console lines are
 * recorded in one stream as "P" / "C" records so that order is checked too. */
struct sink {
	struct smp_buf log;
	size_t packets;
	size_t console;
};

static void sink_packet(const uint8_t *pkt, size_t len, void *userdata)
{
	struct sink *s = userdata;
	uint8_t head[3] = { 'P', (uint8_t)(len >> 8), (uint8_t)len };

	smp_buf_append(&s->log, head, sizeof(head));
	smp_buf_append(&s->log, pkt, len);
	s->packets++;
}

static void sink_console(const uint8_t *line, size_t len, void *userdata)
{
	struct sink *s = userdata;
	uint8_t head[3] = { 'C', (uint8_t)(len >> 8), (uint8_t)len };

	smp_buf_append(&s->log, head, sizeof(head));
	smp_buf_append(&s->log, line, len);
	s->console++;
}

static void expect_packet(struct smp_buf *want, const uint8_t *pkt, size_t len)
{
	uint8_t head[3] = { 'P', (uint8_t)(len >> 8), (uint8_t)len };

	smp_buf_append(want, head, sizeof(head));
	smp_buf_append(want, pkt, len);
}

static void expect_console(struct smp_buf *want, const char *line)
{
	size_t len = strlen(line);
	uint8_t head[3] = { 'C', (uint8_t)(len >> 8), (uint8_t)len };

	smp_buf_append(want, head, sizeof(head));
	smp_buf_append(want, line, len);
}

/* Deterministic xorshift so that failures reproduce. */
static uint32_t rng_state = 0x2545f491;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* Feeds the stream in pieces: step 0 = random sizes 1..max_piece, else fixed steps. */
static int feed_pieces(struct smp_serial_decoder *d, const uint8_t *p, size_t len, size_t step,
		       size_t max_piece, struct sink *s)
{
	int total = 0;

	for (size_t off = 0; off < len;) {
		size_t n = step ? step : 1 + rng() % max_piece;
		int k;

		n = MIN(n, len - off);
		k = smp_serial_decoder_feed(d, p + off, n, sink_packet, sink_console, s);
		if (k < 0)
			return k;
		total += k;
		off += n;
	}
	return total;
}

static void test_crc(void)
{
	is_int(smp_crc16_xmodem((const uint8_t *)"123456789", 9, 0), 0x31c3, "CRC check value");
	is_int(smp_crc16_xmodem(NULL, 0, 0), 0, "CRC of nothing");
	is_int(smp_crc16_xmodem((const uint8_t *)"56789", 5,
				smp_crc16_xmodem((const uint8_t *)"1234", 4, 0)),
	       0x31c3, "CRC continued over two calls");
	for (size_t i = 0; i < ELEMENTSOF(vecs); i++)
		is_int(smp_crc16_xmodem(vecs[i].pkt, vecs[i].len, 0), vecs[i].crc, "CRC of %s packet",
		       vecs[i].name);
}

static void test_encode(void)
{
	for (size_t i = 0; i < ELEMENTSOF(vecs); i++) {
		struct smp_buf out = SMP_BUF_INIT;

		is_int(smp_serial_encode(vecs[i].pkt, vecs[i].len, 0, &out), 0, "encode %s",
		       vecs[i].name);
		is_mem(out.data, out.len, vecs[i].wire, vecs[i].wire_len, "%s byte for byte",
		       vecs[i].name);
		is_int(smp_serial_encoded_size(vecs[i].len, 0), vecs[i].wire_len, "%s encoded size",
		       vecs[i].name);
		smp_buf_clear(&out);
	}

	/* S2 as three lines of 127, 127 and 99 bytes. */
	{
		const uint8_t *w = vecs[1].wire, *end = w + vecs[1].wire_len;
		size_t lens[4] = { 0 }, n = 0;

		while (w < end && n < ELEMENTSOF(lens)) {
			const uint8_t *nl = memchr(w, '\n', (size_t)(end - w));

			lens[n++] = (size_t)(nl - w) + 1;
			w = nl + 1;
		}
		ok(n == 3 && lens[0] == 127 && lens[1] == 127 && lens[2] == 99,
		   "S2 lines are 127, 127 and 99 bytes");
	}

	{
		struct smp_buf out = SMP_BUF_INIT;

		is_int(smp_serial_encode(vecs[0].pkt, vecs[0].len, 6, &out), -EINVAL,
		       "max_line 6 refused");
		is_int(smp_serial_encoded_size(10, 6), 0, "no size for max_line 6");
		is_int(smp_serial_encode(vecs[0].pkt, SMP_SERIAL_PACKET_MAX + 1, 0, &out), -EMSGSIZE,
		       "65534-byte packet refused");
		is_int(smp_serial_encoded_size(SMP_SERIAL_PACKET_MAX + 1, 0), 0,
		       "no size for 65534 bytes");
		out.limit = 40;
		is_int(smp_serial_encode(vecs[1].pkt, vecs[1].len, 0, &out), -EMSGSIZE,
		       "buffer limit reported");
		smp_buf_clear(&out);
	}
}

/* For many line lengths and packet sizes: every line within max_line, no
 * padding but in the last line, exact size, and the decoder gets it back. */
static void test_encode_line_lengths(void)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
	_cleanup_free_ uint8_t *pkt = malloc(1000);
	size_t bad = 0, cases = 0;

	if (!pkt || smp_serial_decoder_new(1000, &d) < 0)
		abort();
	for (size_t i = 0; i < 1000; i++)
		pkt[i] = (uint8_t)rng();

	for (size_t max_line = 7; max_line <= 300; max_line++)
		for (size_t len = 0; len <= 1000; len += 1 + len / 4, cases++) {
			struct smp_buf out = SMP_BUF_INIT;
			struct sink s = { SMP_BUF_INIT, 0, 0 };
			bool good = smp_serial_encode(pkt, len, max_line, &out) == 0 &&
				    out.len == smp_serial_encoded_size(len, max_line);

			for (size_t off = 0; good && off < out.len;) {
				const uint8_t *nl = memchr(out.data + off, '\n', out.len - off);
				size_t n = nl ? (size_t)(nl - out.data) - off + 1 : 0;
				bool last = nl && (size_t)(nl - out.data) + 1 == out.len;

				if (!nl || n > max_line || (!last && memchr(out.data + off, '=', n)))
					good = false;
				off += n;
			}
			if (good) {
				smp_serial_decoder_feed(d, out.data, out.len, sink_packet, NULL, &s);
				good = s.packets == 1 && s.log.len == 3 + len &&
				       memcmp(s.log.data + 3, pkt, len) == 0;
			}
			if (!good && bad++ < 5)
				tap_diag("max_line %zu len %zu", max_line, len);
			smp_buf_clear(&out);
			smp_buf_clear(&s.log);
		}
	is_int(bad, 0, "line limits, padding and round trip for max_line 7..300 (%zu cases)",
	       cases);
}

static void test_decode_vectors(void)
{
	for (size_t i = 0; i < ELEMENTSOF(vecs); i++) {
		_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
		struct sink s = { SMP_BUF_INIT, 0, 0 };
		struct smp_buf want = SMP_BUF_INIT;

		if (smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &d) < 0)
			abort();
		is_int(feed_pieces(d, vecs[i].wire, vecs[i].wire_len, 1, 0, &s), 1,
		       "%s one byte at a time: one packet", vecs[i].name);
		expect_packet(&want, vecs[i].pkt, vecs[i].len);
		is_mem(s.log.data, s.log.len, want.data, want.len, "%s decoded", vecs[i].name);
		is_int(smp_serial_decoder_get_stats(d)->packets, 1, "%s counted", vecs[i].name);
		ok(!smp_serial_decoder_in_progress(d), "%s: nothing in progress", vecs[i].name);
		smp_buf_clear(&s.log);
		smp_buf_clear(&want);
	}
}

/* A realistic stream: console output between frames and between the lines of
 * one frame, in "\n" or "\r\n" form, cut at random points. */
static void build_stream(bool crlf, struct smp_buf *stream, struct smp_buf *want)
{
	static const char *const chatter[] = {
		"*** Booting Zephyr OS build v4.1.0 ***",
		"[00:00:01.000,000] <inf> smp_sample: build time: Jan  1 2025",
		"",
		"uart:~$ ",
	};
	size_t c = 0;

	for (unsigned round = 0; round < 3; round++)
		for (size_t i = 0; i < ELEMENTSOF(vecs); i++) {
			const uint8_t *w = vecs[i].wire, *end = w + vecs[i].wire_len;

			while (w < end) {
				const uint8_t *nl = memchr(w, '\n', (size_t)(end - w));
				const char *text = chatter[c++ % ELEMENTSOF(chatter)];

				smp_buf_append(stream, w, (size_t)(nl - w));
				smp_buf_append(stream, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
				w = nl + 1;
				if (w == end)
					expect_packet(want, vecs[i].pkt, vecs[i].len);
				smp_buf_append(stream, text, strlen(text));
				smp_buf_append(stream, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
				expect_console(want, text);
			}
		}
	if (smp_buf_error(stream) < 0 || smp_buf_error(want) < 0)
		abort();
}

static void test_decode_stream(void)
{
	for (int crlf = 0; crlf < 2; crlf++) {
		struct smp_buf stream = SMP_BUF_INIT, want = SMP_BUF_INIT;
		size_t bad = 0;

		build_stream(crlf, &stream, &want);
		for (unsigned trial = 0; trial < 200; trial++) {
			_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
			struct sink s = { SMP_BUF_INIT, 0, 0 };
			size_t max_piece = trial < 100 ? 8 : 400;

			if (smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &d) < 0)
				abort();
			feed_pieces(d, stream.data, stream.len, trial == 0 ? 1 : 0, max_piece, &s);
			if (s.log.len != want.len || memcmp(s.log.data, want.data, want.len) != 0 ||
			    smp_serial_decoder_get_stats(d)->packets != 9 ||
			    smp_serial_decoder_get_stats(d)->crc_errors != 0)
				bad++;
			smp_buf_clear(&s.log);
		}
		is_int(bad, 0, "interleaved stream%s, 200 random splittings: packets and console "
			       "lines in order", crlf ? " with \\r\\n" : "");
		smp_buf_clear(&stream);
		smp_buf_clear(&want);
	}
}

/* Corrupt each byte of a frame with every other value, then send a marker-led
 * good frame: nothing but the right packets may come out, and the good frame
 * must get through. */
static void test_corruption(void)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;

	if (smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &d) < 0)
		abort();

	for (size_t i = 0; i < ELEMENTSOF(vecs); i++) {
		const struct vec *v = &vecs[i], *good = &vecs[(i + 1) % ELEMENTSOF(vecs)];
		_cleanup_free_ uint8_t *w = malloc(v->wire_len);
		size_t wrong = 0, lost = 0, survived = 0, trials = 0;

		if (!w)
			abort();
		for (size_t pos = 0; pos < v->wire_len; pos++)
			for (unsigned x = 1; x < 256; x++, trials++) {
				struct sink s = { SMP_BUF_INIT, 0, 0 };
				struct smp_buf want = SMP_BUF_INIT;

				memcpy(w, v->wire, v->wire_len);
				w[pos] ^= (uint8_t)x;
				smp_serial_decoder_reset(d);
				smp_serial_decoder_feed(d, w, v->wire_len, sink_packet, sink_console, &s);
				/* The newline ends a line a corrupted '\n' may have merged. */
				smp_serial_decoder_feed(d, (const uint8_t *)"\n", 1, sink_packet,
							sink_console, &s);
				smp_serial_decoder_feed(d, good->wire, good->wire_len, sink_packet,
							sink_console, &s);

				/* The corrupted frame either vanished or came out intact
				 * (e.g. only unused low bits of the last base64 digit
				 * changed); console lines from broken markers are fine. */
				expect_packet(&want, good->pkt, good->len);
				if (s.packets == 2) {
					struct smp_buf both = SMP_BUF_INIT;

					expect_packet(&both, v->pkt, v->len);
					expect_packet(&both, good->pkt, good->len);
					survived++;
					if (s.log.len < both.len ||
					    memcmp(s.log.data + s.log.len - both.len, both.data,
						   both.len) != 0)
						wrong++;
					smp_buf_clear(&both);
				} else if (s.packets == 1) {
					if (s.log.len < want.len ||
					    memcmp(s.log.data + s.log.len - want.len, want.data,
						   want.len) != 0)
						wrong++;
				} else {
					lost++;
				}
				smp_buf_clear(&s.log);
				smp_buf_clear(&want);
			}
		is_int(wrong, 0, "%s: no byte corruption yields a wrong packet (%zu trials)",
		       v->name, trials);
		is_int(lost, 0, "%s: the next frame always gets through", v->name);
		ok(survived < trials / 100, "%s: corrupted frames are dropped (%zu of %zu intact)",
		   v->name, survived, trials);
	}

	/* Corrupting console text between two frames changes nothing for them. */
	{
		static const char text[] = "[00:00:02] <wrn> net: link down\n";
		size_t bad = 0;
		struct smp_buf want = SMP_BUF_INIT;

		expect_packet(&want, vecs[0].pkt, vecs[0].len);
		expect_packet(&want, vecs[0].pkt, vecs[0].len);
		for (size_t pos = 0; pos + 1 < sizeof(text) - 1; pos++)
			for (unsigned x = 1; x < 256; x++) {
				struct sink s = { SMP_BUF_INIT, 0, 0 };
				uint8_t t[sizeof(text)];

				memcpy(t, text, sizeof(text));
				t[pos] ^= (uint8_t)x;
				smp_serial_decoder_reset(d);
				smp_serial_decoder_feed(d, vecs[0].wire, vecs[0].wire_len, sink_packet,
							NULL, &s);
				smp_serial_decoder_feed(d, t, sizeof(text) - 1, sink_packet, NULL, &s);
				smp_serial_decoder_feed(d, vecs[0].wire, vecs[0].wire_len, sink_packet,
							NULL, &s);
				if (s.log.len != want.len || memcmp(s.log.data, want.data, want.len))
					bad++;
				smp_buf_clear(&s.log);
			}
		is_int(bad, 0, "corrupted console text between frames has no effect");
		smp_buf_clear(&want);
	}
}

static void test_truncation(void)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
	const struct smp_serial_stats *st;
	const struct vec *s2 = &vecs[1], *s1 = &vecs[0];
	size_t line1 = 127, line2 = 127;
	struct sink s = { SMP_BUF_INIT, 0, 0 };

	if (smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &d) < 0)
		abort();
	st = smp_serial_decoder_get_stats(d);

	/* The device stops after two lines, then sends a new packet. */
	smp_serial_decoder_feed(d, s2->wire, line1 + line2, sink_packet, sink_console, &s);
	ok(smp_serial_decoder_in_progress(d), "two of three lines: in progress");
	is_int(smp_serial_decoder_feed(d, s1->wire, s1->wire_len, sink_packet, sink_console, &s),
	       1, "new start after a truncated frame delivers");
	is_int(st->dropped_partial, 1, "partial packet counted as dropped");
	ok(s.packets == 1 && s.log.len == 3 + s1->len && memcmp(s.log.data + 3, s1->pkt, s1->len) == 0,
	   "the new packet, not the old");

	/* A line cut in the middle (device reset) ends at a newline: base64 error. */
	smp_serial_decoder_feed(d, s2->wire, line1 + 60, sink_packet, sink_console, &s);
	smp_serial_decoder_feed(d, (const uint8_t *)"\r\n", 2, sink_packet, sink_console, &s);
	is_int(st->base64_errors, 1, "line cut mid-way: base64 error");
	ok(!smp_serial_decoder_in_progress(d), "and the packet is dropped");
	smp_serial_decoder_feed(d, s2->wire + line1 + line2, s2->wire_len - line1 - line2,
				sink_packet, sink_console, &s);
	is_int(st->orphan_lines, 1, "its last line is an orphan");
	is_int(s.packets, 1, "no packet from the pieces");

	/* A reset while a packet is in progress. */
	smp_serial_decoder_feed(d, s2->wire, line1, sink_packet, sink_console, &s);
	smp_serial_decoder_reset(d);
	is_int(st->dropped_partial, 2, "reset drops the partial packet");
	smp_serial_decoder_feed(d, s2->wire + line1, s2->wire_len - line1, sink_packet,
				sink_console, &s);
	is_int(st->orphan_lines, 3, "continuations after reset are orphans");

	/* Lines longer than the limit are skipped whole and do not disturb a packet. */
	{
		size_t n = SMP_SERIAL_LINE_LIMIT + 100;
		_cleanup_free_ uint8_t *junk = malloc(n + 1);

		if (!junk)
			abort();
		memset(junk, 'x', n);
		junk[n] = '\n';
		smp_serial_decoder_feed(d, s2->wire, line1, sink_packet, sink_console, &s);
		feed_pieces(d, junk, n + 1, 0, 700, &s);
		is_int(st->overlong_lines, 1, "overlong line counted");
		is_int(smp_serial_decoder_feed(d, s2->wire + line1, s2->wire_len - line1, sink_packet,
					       sink_console, &s),
		       1, "packet around an overlong line still delivered");
		/* A line of exactly the limit is still a (console) line. */
		is_int(smp_serial_decoder_feed(d, junk + 100, n + 1 - 100, sink_packet, sink_console,
					       &s),
		       0, "line of exactly the limit");
		is_int(st->overlong_lines, 1, "not overlong");
	}

	/* First line with less than LEN16; LEN16 of 0 and 1. */
	{
		static const char *const bad[] = { "\x06\x09\n", "\x06\x09QQ==\n", "\x06\x09" "AAA=\n",
						   "\x06\x09" "AAE=\n" };
		uint64_t before = st->length_errors;

		for (size_t i = 0; i < ELEMENTSOF(bad); i++)
			smp_serial_decoder_feed(d, (const uint8_t *)bad[i], strlen(bad[i]),
						sink_packet, sink_console, &s);
		is_int(st->length_errors - before, ELEMENTSOF(bad), "short first lines: length errors");
	}

	/* An empty packet (LEN16 = 2, CRC of nothing = 0) is a frame like any other. */
	is_int(smp_serial_decoder_feed(d, (const uint8_t *)"\x06\x09" "AAIAAA==\n", 11, sink_packet,
				       sink_console, &s),
	       1, "empty packet delivered");
	smp_buf_clear(&s.log);
}

static void test_limits(void)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *big = NULL;
	const struct vec *s2 = &vecs[1];
	struct sink s = { SMP_BUF_INIT, 0, 0 };

	is_int(smp_serial_decoder_new(0, &d), -EINVAL, "max_packet 0 refused");
	is_int(smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX + 1, &d), -EINVAL,
	       "max_packet above 65533 refused");

	/* A decoder for 251-byte packets refuses V32 from its first line. */
	is_int(smp_serial_decoder_new(251, &d), 0, "decoder for 251 bytes");
	is_int(smp_serial_decoder_feed(d, s2->wire, s2->wire_len, sink_packet, sink_console, &s), 0,
	       "252-byte packet not delivered");
	is_int(smp_serial_decoder_get_stats(d)->length_errors, 1, "announced length too big");
	is_int(smp_serial_decoder_get_stats(d)->orphan_lines, 2, "its other lines are orphans");
	d = smp_serial_decoder_free(d);
	is_int(smp_serial_decoder_new(252, &d), 0, "decoder for 252 bytes");
	is_int(smp_serial_decoder_feed(d, s2->wire, s2->wire_len, sink_packet, sink_console, &s), 1,
	       "252-byte packet fits exactly");

	/* More data than announced: LEN16 lowered by one in S1 (and the line re-encoded). */
	{
		struct smp_buf out = SMP_BUF_INIT;

		smp_serial_encode(vecs[0].pkt, vecs[0].len, 0, &out);
		/* "ABM" encodes 00 13 ..; "ABI" is 00 12 with the same third byte. */
		ok(out.len > 5 && out.data[4] == 'M', "S1 starts ABM");
		out.data[4] = 'I';
		smp_serial_decoder_feed(d, out.data, out.len, sink_packet, sink_console, &s);
		is_int(smp_serial_decoder_get_stats(d)->length_errors, 1, "more data than LEN16");
		smp_buf_clear(&out);
	}

	/* The largest packet the length field allows, in default and long lines. */
	{
		size_t len = SMP_SERIAL_PACKET_MAX;
		_cleanup_free_ uint8_t *pkt = malloc(len);
		static const size_t lines[] = { 0, 4096 + 3 };

		if (!pkt || smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &big) < 0)
			abort();
		for (size_t i = 0; i < len; i++)
			pkt[i] = (uint8_t)rng();
		for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
			struct smp_buf out = SMP_BUF_INIT;

			smp_buf_clear(&s.log);
			s.packets = 0;
			is_int(smp_serial_encode(pkt, len, lines[i], &out), 0,
			       "encode 65533 bytes, max_line %zu", lines[i]);
			is_int(out.len, smp_serial_encoded_size(len, lines[i]), "its size");
			is_int(feed_pieces(big, out.data, out.len, 0, 5000, &s), 1, "decoded");
			ok(s.log.len == 3 + len && memcmp(s.log.data + 3, pkt, len) == 0,
			   "65533 bytes round trip, max_line %zu", lines[i]);
			smp_buf_clear(&out);
		}
		/* 65535 + 8 (a header announcing Length 65535) cannot be framed. */
		{
			struct smp_buf out = SMP_BUF_INIT;
			_cleanup_free_ uint8_t *huge = calloc(1, 65535 + 8);

			if (!huge)
				abort();
			is_int(smp_serial_encode(huge, 65535 + 8, 0, &out), -EMSGSIZE,
			       "65535 + 8 bytes exceed LEN16");
			is_int(out.len, 0, "nothing written");
			smp_buf_clear(&out);
		}
	}
	smp_buf_clear(&s.log);
}

static void test_stats(void)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;
	const struct smp_serial_stats *st;
	struct smp_buf stream = SMP_BUF_INIT;
	struct sink s = { SMP_BUF_INIT, 0, 0 };
	_cleanup_free_ uint8_t *badcrc = NULL;

	if (smp_serial_decoder_new(SMP_SERIAL_PACKET_MAX, &d) < 0)
		abort();
	st = smp_serial_decoder_get_stats(d);

	/* S1 with its CRC's last base64 digit changed: "o2" -> "o3". */
	badcrc = malloc(vecs[0].wire_len);
	if (!badcrc)
		abort();
	memcpy(badcrc, vecs[0].wire, vecs[0].wire_len);
	badcrc[vecs[0].wire_len - 2] = '3';

	smp_buf_append(&stream, "hello\r\n", 7);
	smp_buf_append(&stream, vecs[0].wire, vecs[0].wire_len);
	smp_buf_append(&stream, badcrc, vecs[0].wire_len);
	smp_buf_append(&stream, "\x06\x09!!!!\n", 7);
	smp_buf_append(&stream, vecs[2].wire, vecs[2].wire_len);
	is_int(smp_serial_decoder_feed(d, stream.data, stream.len, sink_packet, NULL, &s), 2,
	       "feed returns the packets delivered");
	ok(st->packets == 2 && st->crc_errors == 1 && st->base64_errors == 1 &&
		   st->console_lines == 1 && st->length_errors == 0 && st->orphan_lines == 0,
	   "stats: 2 packets, 1 CRC error, 1 base64 error, 1 console line");
	is_int(s.console, 0, "NULL console handler tolerated");
	smp_buf_clear(&stream);
	smp_buf_clear(&s.log);
}

int main(void)
{
	vecs_init();
	test_crc();
	test_encode();
	test_encode_line_lengths();
	test_decode_vectors();
	test_decode_stream();
	test_corruption();
	test_truncation();
	test_limits();
	test_stats();
	vecs_free();
	return tap_done();
}
