/* smp-ble: SMP over BLE GATT: reassembly of notifications and splitting of writes */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "smp-ble.h"

/* SMP header size; its bytes 2..3 hold the big-endian length of what follows. */
#define BLE_SMP_HEADER_SIZE 8

struct smp_ble_reassembler {
	size_t max_packet;
	uint8_t *buf;
	size_t cap;
	size_t len;
	/* 8 + Length once the header is whole, else 0. */
	size_t total;
	/* The previous feed handed out buf: clear it on the next one, not before. */
	bool delivered;
};

int smp_ble_reassembler_new(size_t max_packet, struct smp_ble_reassembler **ret)
{
	struct smp_ble_reassembler *r;

	if (max_packet < BLE_SMP_HEADER_SIZE)
		return -EINVAL;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->max_packet = max_packet;
	*ret = r;
	return 0;
}

struct smp_ble_reassembler *smp_ble_reassembler_free(struct smp_ble_reassembler *r)
{
	if (!r)
		return NULL;
	free(r->buf);
	free(r);
	return NULL;
}

void smp_ble_reassembler_reset(struct smp_ble_reassembler *r)
{
	r->len = 0;
	r->total = 0;
	r->delivered = false;
}

bool smp_ble_reassembler_in_progress(const struct smp_ble_reassembler *r)
{
	return !r->delivered && r->len > 0;
}

static int ble_reserve(struct smp_ble_reassembler *r, size_t size)
{
	uint8_t *p;

	if (size <= r->cap)
		return 0;
	p = realloc(r->buf, size);
	if (!p)
		return -ENOMEM;
	r->buf = p;
	r->cap = size;
	return 0;
}

/* Byte i of what is held followed by the new fragment. */
static uint8_t ble_byte(const struct smp_ble_reassembler *r, const uint8_t *frag, size_t i)
{
	return i < r->len ? r->buf[i] : frag[i - r->len];
}

int smp_ble_reassembler_feed(struct smp_ble_reassembler *r, const uint8_t *frag, size_t len,
			     const uint8_t **ret_pkt, size_t *ret_len)
{
	int k;

	if (r->delivered)
		smp_ble_reassembler_reset(r);
	if (len == 0)
		return 0;

	if (r->total == 0 && r->len + len >= BLE_SMP_HEADER_SIZE) {
		size_t total = BLE_SMP_HEADER_SIZE +
			       ((size_t)ble_byte(r, frag, 2) << 8 | ble_byte(r, frag, 3));

		if (total > r->max_packet) {
			smp_ble_reassembler_reset(r);
			return -EMSGSIZE;
		}
		r->total = total;
	}

	if (r->total == 0) {
		/* A header cut short: keep it until the rest arrives. */
		k = ble_reserve(r, BLE_SMP_HEADER_SIZE);
		if (k < 0) {
			smp_ble_reassembler_reset(r);
			return k;
		}
		memcpy(r->buf + r->len, frag, len);
		r->len += len;
		return 0;
	}

	if (len > r->total - r->len) {
		smp_ble_reassembler_reset(r);
		return -EBADMSG;
	}

	k = ble_reserve(r, r->total);
	if (k < 0) {
		smp_ble_reassembler_reset(r);
		return k;
	}
	memcpy(r->buf + r->len, frag, len);
	r->len += len;
	if (r->len < r->total)
		return 0;

	r->delivered = true;
	*ret_pkt = r->buf;
	*ret_len = r->len;
	return 1;
}

size_t smp_ble_fragment_count(size_t pkt_len, size_t att_mtu)
{
	size_t piece;

	if (att_mtu < 4)
		return 0;
	piece = att_mtu - 3;
	return pkt_len / piece + (pkt_len % piece != 0);
}

int smp_ble_fragment(size_t pkt_len, size_t att_mtu, size_t index, size_t *ret_offset,
		     size_t *ret_len)
{
	size_t piece, off;

	if (att_mtu < 4)
		return -EINVAL;
	if (index >= smp_ble_fragment_count(pkt_len, att_mtu))
		return -ERANGE;

	piece = att_mtu - 3;
	off = index * piece;
	*ret_offset = off;
	*ret_len = MIN(piece, pkt_len - off);
	return 0;
}
