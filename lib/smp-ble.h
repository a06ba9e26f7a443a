/* smp-ble: SMP over BLE GATT: reassembly of notifications and splitting of writes */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* smp-protocol.md §13.2. There is no framing beyond the SMP header: a packet
 * is cut into pieces of ATT_MTU - 3 bytes, each one write or notification, and
 * the receiver knows the end from the header's length field (8 + Length bytes).
 * A packet always starts at a notification boundary. */

/* The smallest ATT MTU Bluetooth allows (20 bytes of payload). */
#define SMP_BLE_ATT_MTU_MIN 23

/* Reassembler for the notifications of one connection. It does not keep
 * time: the transport arms its own timer while smp_ble_reassembler_in_progress()
 * holds and calls smp_ble_reassembler_reset() when the gap between
 * notifications grows too long, and on disconnect. */
struct smp_ble_reassembler;

/* max_packet: the largest SMP packet to accept, header included, at least 8
 * (use 8 + 65535 to accept anything the header can announce). The buffer grows
 * as packets need it, never beyond max_packet. Returns 0, -EINVAL, -ENOMEM. */
int smp_ble_reassembler_new(size_t max_packet, struct smp_ble_reassembler **ret);
/* NULL-safe; returns NULL. */
struct smp_ble_reassembler *smp_ble_reassembler_free(struct smp_ble_reassembler *r);
/* Drops a partial packet (timeout, disconnect). */
void smp_ble_reassembler_reset(struct smp_ble_reassembler *r);
/* True while a packet has started but not completed. */
bool smp_ble_reassembler_in_progress(const struct smp_ble_reassembler *r);

/* Adds one notification's value.
 * Returns 1 when it completes a packet: *ret_pkt and *ret_len (written only then)
 * point at the whole SMP packet inside the reassembler, valid until the next
 * call on it. Returns 0 when more is needed (a first notification shorter
 * than the 8-byte header is kept until the header is whole; an empty
 * notification changes nothing). On a dropped packet returns -EBADMSG (more
 * bytes than 8 + Length: the notification does not belong to this packet, and
 * it is dropped together with the partial packet), -EMSGSIZE (the header
 * announces more than max_packet) or -ENOMEM; the next notification then
 * starts a new packet. */
int smp_ble_reassembler_feed(struct smp_ble_reassembler *r, const uint8_t *frag, size_t len,
			     const uint8_t **ret_pkt, size_t *ret_len);

/* Splitting for writes: fragment i (0-based) of a pkt_len-byte packet over a
 * link with this ATT MTU covers bytes [i * (att_mtu - 3), ...) of at most
 * att_mtu - 3 bytes. smp_ble_fragment_count() is 0 for an empty packet or an
 * att_mtu below 4. */
size_t smp_ble_fragment_count(size_t pkt_len, size_t att_mtu);
/* Writes the offset and length of fragment index; returns 0, -EINVAL (att_mtu
 * below 4) or -ERANGE (index >= smp_ble_fragment_count()). */
int smp_ble_fragment(size_t pkt_len, size_t att_mtu, size_t index, size_t *ret_offset,
		     size_t *ret_len);

static inline void smp_ble_reassembler_freep(struct smp_ble_reassembler **r)
{
	smp_ble_reassembler_free(*r);
}
