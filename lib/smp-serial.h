/* smp-serial: SMP over a serial console: line framing encoder and streaming decoder */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smp-buf.h"

/* smp-protocol.md §13.1. One packet travels as raw = BE16(len + 2) || packet ||
 * BE16(CRC-16/XMODEM(packet)), cut into pieces that are base64-encoded one per
 * line: first line "\x06\x09" + base64 + "\n", following lines "\x04\x14" +
 * base64 + "\n". */

/* Zephyr's and MCUboot's default receive line buffer is 128 bytes: 127 bytes
 * per line including marker and newline, i.e. 93 raw bytes per line. Longer
 * lines are dropped by the device without any answer. */
#define SMP_SERIAL_LINE_DEFAULT 127
/* The largest packet the 16-bit length field can announce (it counts the CRC). */
#define SMP_SERIAL_PACKET_MAX (UINT16_MAX - 2)
/* The decoder discards lines longer than this (marker and base64 or console
 * text, without the newline); a 4096-byte device buffer fits in one line. */
#define SMP_SERIAL_LINE_LIMIT (4096 + 64)

/* CRC-16/XMODEM (poly 0x1021, no reflection, no final XOR). Start with crc = 0;
 * pass the previous result to continue over more bytes. Check value: "123456789"
 * gives 0x31C3. */
uint16_t smp_crc16_xmodem(const uint8_t *p, size_t n, uint16_t crc);

/* Appends the lines carrying one SMP packet (header + CBOR) to out.
 * max_line: longest line in bytes including marker and '\n'; 0 means
 * SMP_SERIAL_LINE_DEFAULT. Each line holds 3 * ((max_line - 3) / 4) raw bytes
 * (93 for 127), so no line but the last carries base64 padding.
 * Returns 0; -EINVAL when max_line (nonzero) is below 7 (one base64 group);
 * -EMSGSIZE when len > SMP_SERIAL_PACKET_MAX; otherwise the buffer's sticky
 * error (-ENOMEM, -EMSGSIZE past its limit). On failure out may hold a partial
 * frame (and its sticky error); callers discard it. */
int smp_serial_encode(const uint8_t *pkt, size_t len, size_t max_line, struct smp_buf *out);

/* Exact number of bytes smp_serial_encode() writes for a pkt_len-byte packet
 * with this max_line (0 = default). 0 when the packet cannot be encoded
 * (too large, or max_line below 7). */
size_t smp_serial_encoded_size(size_t pkt_len, size_t max_line);

/* Streaming decoder. Feed it the bytes read from the port in pieces of any
 * size (one byte at a time works). It follows the receiver algorithm of
 * §13.1: lines end in '\n' (an optional '\r' before it is stripped); a line
 * starting with 06 09 starts a packet and drops any partial one; 04 14
 * continues the packet in progress (dropped when none is); any other line is
 * console text and leaves a partial packet alone. Each line is base64-decoded
 * on its own. A packet that grows beyond its announced length, fails its CRC,
 * carries bad base64, or announces more than max_packet bytes is dropped and
 * counted. Memory is bounded: one line buffer of SMP_SERIAL_LINE_LIMIT and a
 * packet buffer of at most max_packet + 4 bytes, both allocated by _new. */
struct smp_serial_decoder;

/* Counters of what the decoder saw, for the transport's logs. */
struct smp_serial_stats {
	uint64_t packets;	  /* delivered with a good CRC */
	uint64_t crc_errors;	  /* complete packets with a bad CRC */
	uint64_t length_errors;	  /* more data than announced, first line shorter than
				   * LEN16, LEN16 < 2, or LEN16 above max_packet + 2 */
	uint64_t base64_errors;	  /* a frame line that is not valid base64 */
	uint64_t overlong_lines;  /* lines longer than SMP_SERIAL_LINE_LIMIT, discarded */
	uint64_t console_lines;	  /* lines that were not frames */
	uint64_t orphan_lines;	  /* continuation lines without a packet in progress */
	uint64_t dropped_partial; /* partial packets dropped by a new start, or by _reset */
};

/* A packet arrived: pkt/len is the SMP packet without LEN16 and CRC, valid
 * during the call only. */
typedef void (*smp_serial_packet_fn)(const uint8_t *pkt, size_t len, void *userdata);
/* A console line arrived, without its "\r\n"; not NUL-terminated, may hold any byte. */
typedef void (*smp_serial_console_fn)(const uint8_t *line, size_t len, void *userdata);

/* max_packet: the largest SMP packet to accept (header included), 1 ..
 * SMP_SERIAL_PACKET_MAX. Returns 0, -EINVAL, -ENOMEM. */
int smp_serial_decoder_new(size_t max_packet, struct smp_serial_decoder **ret);
/* NULL-safe; returns NULL. */
struct smp_serial_decoder *smp_serial_decoder_free(struct smp_serial_decoder *d);
/* Forgets the partial line and any partial packet (counted in dropped_partial
 * when there was one), e.g. when the transport's inter-line timeout fires or
 * the port is reopened. Statistics are kept. */
void smp_serial_decoder_reset(struct smp_serial_decoder *d);
/* True while a packet has started but not completed: the transport arms its
 * timeout while this holds. */
bool smp_serial_decoder_in_progress(const struct smp_serial_decoder *d);

/* Consumes all len bytes, calling on_packet for each complete packet and
 * on_console (may be NULL) for each text line, in stream order. The callbacks
 * must not call back into this decoder (feed, reset or free); a transport
 * whose callback may tear it down must pin itself around the call.
 * Returns the number of packets delivered (>= 0); input errors are not
 * errors of the call, they are counted in the statistics. */
int smp_serial_decoder_feed(struct smp_serial_decoder *d, const uint8_t *data, size_t len,
			    smp_serial_packet_fn on_packet, smp_serial_console_fn on_console,
			    void *userdata);

/* Current counters; the pointer stays valid as long as the decoder. */
const struct smp_serial_stats *smp_serial_decoder_get_stats(const struct smp_serial_decoder *d);

static inline void smp_serial_decoder_freep(struct smp_serial_decoder **d)
{
	smp_serial_decoder_free(*d);
}
