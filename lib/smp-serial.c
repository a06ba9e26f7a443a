/* smp-serial: SMP over a serial console: line framing encoder and streaming decoder */
#include <errno.h>
#include <limits.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-serial.h"

#define SERIAL_MARKER_LEN 2
/* Bytes of a line besides its base64 text: marker and '\n'. */
#define SERIAL_LINE_OVERHEAD (SERIAL_MARKER_LEN + 1)
/* LEN16 before the packet and CRC16 after it. */
#define SERIAL_RAW_OVERHEAD 4

static const uint8_t serial_start_marker[SERIAL_MARKER_LEN] = { 0x06, 0x09 };
static const uint8_t serial_cont_marker[SERIAL_MARKER_LEN] = { 0x04, 0x14 };

uint16_t smp_crc16_xmodem(const uint8_t *p, size_t n, uint16_t crc)
{
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (unsigned bit = 0; bit < 8; bit++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

/* Raw bytes per line: whole base64 groups only, so no line but the last is padded. */
static size_t serial_piece_size(size_t max_line)
{
	if (max_line == 0)
		max_line = SMP_SERIAL_LINE_DEFAULT;
	if (max_line < SERIAL_LINE_OVERHEAD + BASE64_TEXT_BLOCK_SIZE)
		return 0;
	return (max_line - SERIAL_LINE_OVERHEAD) / BASE64_TEXT_BLOCK_SIZE * BASE64_BINARY_BLOCK_SIZE;
}

size_t smp_serial_encoded_size(size_t pkt_len, size_t max_line)
{
	size_t piece = serial_piece_size(max_line);
	size_t raw = pkt_len + SERIAL_RAW_OVERHEAD;
	size_t full, rest, size;

	if (piece == 0 || pkt_len > SMP_SERIAL_PACKET_MAX)
		return 0;

	full = raw / piece;
	rest = raw % piece;
	size = full * (SERIAL_LINE_OVERHEAD + BASE64_ENCODE_RAW_LENGTH(piece));
	if (rest > 0)
		size += SERIAL_LINE_OVERHEAD + BASE64_ENCODE_RAW_LENGTH(rest);
	return size;
}

int smp_serial_encode(const uint8_t *pkt, size_t len, size_t max_line, struct smp_buf *out)
{
	_cleanup_free_ uint8_t *raw = NULL;
	size_t piece = serial_piece_size(max_line);
	size_t raw_len = len + SERIAL_RAW_OVERHEAD;
	uint16_t crc;

	if (piece == 0)
		return -EINVAL;
	if (len > SMP_SERIAL_PACKET_MAX)
		return -EMSGSIZE;

	raw = malloc(raw_len);
	if (!raw)
		return -ENOMEM;
	raw[0] = (uint8_t)((len + 2) >> 8);
	raw[1] = (uint8_t)(len + 2);
	if (len > 0)
		memcpy(raw + 2, pkt, len);
	crc = smp_crc16_xmodem(pkt, len, 0);
	raw[2 + len] = (uint8_t)(crc >> 8);
	raw[3 + len] = (uint8_t)crc;

	for (size_t off = 0; off < raw_len; off += piece) {
		size_t n = MIN(piece, raw_len - off);
		size_t text = BASE64_ENCODE_RAW_LENGTH(n);
		uint8_t *line = smp_buf_reserve(out, SERIAL_LINE_OVERHEAD + text);

		if (!line)
			return smp_buf_error(out);
		memcpy(line, off == 0 ? serial_start_marker : serial_cont_marker, SERIAL_MARKER_LEN);
		base64_encode_raw((char *)line + SERIAL_MARKER_LEN, n, raw + off);
		line[SERIAL_MARKER_LEN + text] = '\n';
		out->len += SERIAL_LINE_OVERHEAD + text;
	}
	return smp_buf_error(out);
}

struct smp_serial_decoder {
	size_t max_packet;

	/* The line being received, without its '\n'. Once it outgrows
	 * SMP_SERIAL_LINE_LIMIT the rest up to the newline is skipped. */
	uint8_t *line;
	size_t line_len;
	bool line_overlong;

	/* Base64 output of one line. */
	uint8_t *scratch;

	/* The packet in progress: packet || CRC16, total bytes announced by LEN16. */
	uint8_t *pkt;
	size_t pkt_len;
	size_t total;
	bool in_progress;

	struct smp_serial_stats stats;
};

int smp_serial_decoder_new(size_t max_packet, struct smp_serial_decoder **ret)
{
	_cleanup_(smp_serial_decoder_freep) struct smp_serial_decoder *d = NULL;

	if (max_packet == 0 || max_packet > SMP_SERIAL_PACKET_MAX)
		return -EINVAL;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->max_packet = max_packet;
	d->line = malloc(SMP_SERIAL_LINE_LIMIT);
	d->scratch = malloc(BASE64_DECODE_LENGTH(SMP_SERIAL_LINE_LIMIT));
	d->pkt = malloc(max_packet + 2);
	if (!d->line || !d->scratch || !d->pkt)
		return -ENOMEM;

	*ret = TAKE_PTR(d);
	return 0;
}

struct smp_serial_decoder *smp_serial_decoder_free(struct smp_serial_decoder *d)
{
	if (!d)
		return NULL;
	free(d->line);
	free(d->scratch);
	free(d->pkt);
	free(d);
	return NULL;
}

static void serial_drop_packet(struct smp_serial_decoder *d)
{
	d->in_progress = false;
	d->pkt_len = 0;
	d->total = 0;
}

void smp_serial_decoder_reset(struct smp_serial_decoder *d)
{
	if (d->in_progress)
		d->stats.dropped_partial++;
	serial_drop_packet(d);
	d->line_len = 0;
	d->line_overlong = false;
}

bool smp_serial_decoder_in_progress(const struct smp_serial_decoder *d)
{
	return d->in_progress;
}

const struct smp_serial_stats *smp_serial_decoder_get_stats(const struct smp_serial_decoder *d)
{
	return &d->stats;
}

/* Decodes the base64 text of one frame line into d->scratch. */
static int serial_decode_base64(struct smp_serial_decoder *d, const uint8_t *text, size_t len,
				size_t *ret_len)
{
	struct base64_decode_ctx ctx;
	size_t n = BASE64_DECODE_LENGTH(len);

	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &n, d->scratch, len, (const char *)text) ||
	    !base64_decode_final(&ctx))
		return -EBADMSG;
	*ret_len = n;
	return 0;
}

/* Returns 1 when a packet was delivered. */
static int serial_maybe_complete(struct smp_serial_decoder *d, smp_serial_packet_fn on_packet,
				 void *userdata)
{
	if (d->pkt_len < d->total)
		return 0;

	/* Running the CRC over packet || CRC16 leaves 0 for an intact frame. */
	if (smp_crc16_xmodem(d->pkt, d->total, 0) != 0) {
		d->stats.crc_errors++;
		serial_drop_packet(d);
		return 0;
	}

	d->stats.packets++;
	d->in_progress = false;
	on_packet(d->pkt, d->total - 2, userdata);
	serial_drop_packet(d);
	return 1;
}

static int serial_frame_line(struct smp_serial_decoder *d, bool start, const uint8_t *text,
			     size_t len, smp_serial_packet_fn on_packet, void *userdata)
{
	const uint8_t *data = d->scratch;
	size_t n;

	if (start) {
		if (d->in_progress)
			d->stats.dropped_partial++;
		serial_drop_packet(d);
	} else if (!d->in_progress) {
		d->stats.orphan_lines++;
		return 0;
	}

	if (serial_decode_base64(d, text, len, &n) < 0) {
		d->stats.base64_errors++;
		serial_drop_packet(d);
		return 0;
	}

	if (start) {
		size_t total;

		if (n < 2) {
			d->stats.length_errors++;
			return 0;
		}
		total = (size_t)data[0] << 8 | data[1];
		if (total < 2 || total > d->max_packet + 2) {
			d->stats.length_errors++;
			return 0;
		}
		d->total = total;
		d->in_progress = true;
		data += 2;
		n -= 2;
	}

	if (n > d->total - d->pkt_len) {
		d->stats.length_errors++;
		serial_drop_packet(d);
		return 0;
	}
	memcpy(d->pkt + d->pkt_len, data, n);
	d->pkt_len += n;

	return serial_maybe_complete(d, on_packet, userdata);
}

static int serial_line(struct smp_serial_decoder *d, smp_serial_packet_fn on_packet,
		       smp_serial_console_fn on_console, void *userdata)
{
	const uint8_t *line = d->line;
	size_t len = d->line_len;

	d->line_len = 0;
	if (len > 0 && line[len - 1] == '\r')
		len--;

	if (len >= SERIAL_MARKER_LEN) {
		if (memcmp(line, serial_start_marker, SERIAL_MARKER_LEN) == 0)
			return serial_frame_line(d, true, line + SERIAL_MARKER_LEN,
						 len - SERIAL_MARKER_LEN, on_packet, userdata);
		if (memcmp(line, serial_cont_marker, SERIAL_MARKER_LEN) == 0)
			return serial_frame_line(d, false, line + SERIAL_MARKER_LEN,
						 len - SERIAL_MARKER_LEN, on_packet, userdata);
	}

	d->stats.console_lines++;
	if (on_console)
		on_console(line, len, userdata);
	return 0;
}

int smp_serial_decoder_feed(struct smp_serial_decoder *d, const uint8_t *data, size_t len,
			    smp_serial_packet_fn on_packet, smp_serial_console_fn on_console,
			    void *userdata)
{
	int delivered = 0;

	while (len > 0) {
		const uint8_t *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;

		if (!d->line_overlong) {
			if (n > SMP_SERIAL_LINE_LIMIT - d->line_len) {
				d->line_overlong = true;
				d->line_len = 0;
			} else {
				memcpy(d->line + d->line_len, data, n);
				d->line_len += n;
			}
		}

		if (!nl)
			break;

		if (d->line_overlong) {
			d->stats.overlong_lines++;
			d->line_overlong = false;
		} else if (serial_line(d, on_packet, on_console, userdata) > 0 &&
			   delivered < INT_MAX)
			delivered++;

		data += n + 1;
		len -= n + 1;
	}
	return delivered;
}
