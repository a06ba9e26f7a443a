/* smp-transport: the link under one device's SMP client (UDP, serial, BLE) behind one vtable */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum smp_link {
	SMP_LINK_UDP,
	SMP_LINK_SERIAL,
	SMP_LINK_BLE,
};

struct smp_transport;

/* A whole SMP packet (header + CBOR) arrived. pkt is valid during the call only. */
typedef void (*smp_transport_packet_fn)(struct smp_transport *t, const uint8_t *pkt, size_t len,
					 void *userdata);
/* The link changed: 0 = up (connected, or writable again), negative errno =
 * lost (-ECONNRESET, -ENOTCONN, -EIO ...). Requests in flight are not
 * answered after a loss; the client fails or retries them. */
typedef void (*smp_transport_state_fn)(struct smp_transport *t, int state, void *userdata);

struct smp_transport_ops {
	const char *name;
	/* Queues one whole SMP packet for sending; the transport copies it and
	 * frames/splits it as its link requires. Never blocks. Returns 0,
	 * -ENOTCONN when the link is down, -EMSGSIZE when the link cannot carry
	 * a packet this large, -ENOMEM. */
	int (*send)(struct smp_transport *t, const uint8_t *pkt, size_t len);
	/* The largest SMP packet (header included) that may be sent to a
	 * device whose mcumgr params report buf_size (0 = unknown): applies the
	 * link's rules of smp-protocol.md §13.4 (serial: buf_size - 4; BLE:
	 * buf_size with reassembly, else min(buf_size, MTU - 3); UDP:
	 * min(buf_size, datagram limit)). */
	size_t (*packet_budget)(struct smp_transport *t, size_t buf_size);
	/* Releases everything; no callback runs after it. */
	void (*free)(struct smp_transport *t);
};

/* Concrete transports embed this as their first member. */
struct smp_transport {
	const struct smp_transport_ops *ops;
	enum smp_link link;
	smp_transport_packet_fn on_packet;
	smp_transport_state_fn on_state;
	void *userdata;
};

static inline void smp_transport_set_handlers(struct smp_transport *t,
					      smp_transport_packet_fn on_packet,
					      smp_transport_state_fn on_state, void *userdata)
{
	t->on_packet = on_packet;
	t->on_state = on_state;
	t->userdata = userdata;
}

static inline int smp_transport_send(struct smp_transport *t, const uint8_t *pkt, size_t len)
{
	return t->ops->send(t, pkt, len);
}

static inline size_t smp_transport_packet_budget(struct smp_transport *t, size_t buf_size)
{
	return t->ops->packet_budget(t, buf_size);
}

static inline struct smp_transport *smp_transport_free(struct smp_transport *t)
{
	if (t)
		t->ops->free(t);
	return NULL;
}

static inline void smp_transport_freep(struct smp_transport **t)
{
	smp_transport_free(*t);
}
