/* smp-udp: SMP over UDP, one connected socket per device, one datagram per packet */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "smp-header.h"
#include "smp-chunk.h"
#include "smp-transport-internal.h"
#include "smp-udp.h"

/* The largest UDP payload over IPv4. */
#define UDP_PAYLOAD_MAX 65507
/* Twice the largest datagram: bursts of answers must not be dropped by the kernel. */
#define UDP_RCVBUF (128 * 1024)

struct smp_udp {
	struct smp_transport t; /* first: the vtable's pointer is ours */
	sd_event *event;
	sd_event_source *io;
	sd_event_source *state_defer;
	int fd;
	size_t datagram_max;
	struct smp_txq txq;
	/* A refusal was reported: the next datagram from the device reports it back. */
	bool refused;
	int pending_state;
	unsigned pin;
	bool dead;
	smp_transport_log_fn log;
	void *log_userdata;
};

#define udp_debug(u, ...) smp_transport_logf((u)->log, (u)->log_userdata, "smp-udp: " __VA_ARGS__)

static void udp_destroy(struct smp_udp *u)
{
	u->io = sd_event_source_disable_unref(u->io);
	u->state_defer = sd_event_source_disable_unref(u->state_defer);
	if (u->fd >= 0)
		close(u->fd);
	smp_txq_clear(&u->txq);
	sd_event_unref(u->event);
	free(u);
}

/* Callbacks may free the transport: free() then only marks it dead and the last
 * unpin destroys it. */
static void udp_unpin(struct smp_udp *u)
{
	if (--u->pin == 0 && u->dead)
		udp_destroy(u);
}

static void udp_report_state(struct smp_udp *u, int state)
{
	if (u->dead || !u->t.on_state)
		return;
	u->pin++;
	u->t.on_state(&u->t, state, u->t.userdata);
	udp_unpin(u);
}

static int udp_on_state_defer(sd_event_source *s, void *userdata)
{
	struct smp_udp *u = userdata;
	int state = u->pending_state;

	(void)s;
	(void)sd_event_source_set_enabled(u->state_defer, SD_EVENT_OFF);
	u->pending_state = 0;
	udp_report_state(u, state);
	return 0;
}

/* Reports from the loop, never from inside send(). */
static void udp_queue_state(struct smp_udp *u, int state)
{
	u->pending_state = state;
	(void)sd_event_source_set_enabled(u->state_defer, SD_EVENT_ONESHOT);
}

static void udp_refused(struct smp_udp *u)
{
	udp_debug(u, "device port unreachable (ICMP)");
	u->refused = true;
	udp_queue_state(u, -ECONNREFUSED);
}

static void udp_receive(struct smp_udp *u)
{
	/* On the stack, not in the transport: a gateway with 1,000 UDP devices
	 * would otherwise carry 64 MiB of receive buffers. */
	uint8_t rxbuf[UDP_PAYLOAD_MAX + 1];

	/* Bounded: a flood of datagrams must not starve the rest of the loop. */
	for (int i = 0; i < 64 && !u->dead; i++) {
		struct iovec iov = {.iov_base = rxbuf, .iov_len = sizeof(rxbuf)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n = recvmsg(u->fd, &mh, MSG_DONTWAIT);
		size_t want;

		if (n < 0) {
			if (errno == ECONNREFUSED)
				udp_refused(u);
			else if (errno != EAGAIN && errno != EINTR)
				udp_debug(u, "recv failed, ignoring: %s", strerror(errno));
			return;
		}
		if (mh.msg_flags & MSG_TRUNC || (size_t)n > UDP_PAYLOAD_MAX) {
			udp_debug(u, "dropped a truncated datagram");
			continue;
		}
		if ((size_t)n < SMP_HEADER_SIZE) {
			udp_debug(u, "dropped a %zd-byte datagram, shorter than the SMP header", n);
			continue;
		}
		want = SMP_HEADER_SIZE + ((size_t)rxbuf[2] << 8 | rxbuf[3]);
		if (want != (size_t)n) {
			udp_debug(u, "dropped a %zd-byte datagram whose header announces %zu", n,
				  want);
			continue;
		}
		if (u->refused) {
			u->refused = false;
			udp_report_state(u, 0);
			if (u->dead)
				return;
		}
		if (u->t.on_packet)
			u->t.on_packet(&u->t, rxbuf, (size_t)n, u->t.userdata);
	}
}

static void udp_flush(struct smp_udp *u)
{
	while (u->txq.head) {
		struct smp_txq_item *it = u->txq.head;
		ssize_t n = send(u->fd, it->data, it->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0 && errno == ECONNREFUSED) {
			/* An earlier ICMP error surfaced here; this datagram is lost like any
			 * other UDP datagram and the client retransmits. */
			udp_refused(u);
		} else if (n < 0)
			udp_debug(u, "send failed, datagram dropped: %s", strerror(errno));
		smp_txq_pop(&u->txq);
	}
	(void)sd_event_source_set_io_events(u->io, u->txq.head ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static int udp_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct smp_udp *u = userdata;

	(void)s, (void)fd;
	u->pin++;
	if (revents & (EPOLLIN | EPOLLERR))
		udp_receive(u);
	if (!u->dead && revents & EPOLLOUT)
		udp_flush(u);
	udp_unpin(u);
	return 0;
}

static int udp_send(struct smp_transport *t, const uint8_t *pkt, size_t len)
{
	struct smp_udp *u = (struct smp_udp *)t;
	int r;

	if (len > u->datagram_max)
		return -EMSGSIZE;
	r = smp_txq_push(&u->txq, pkt, len);
	if (r < 0)
		return r;
	udp_flush(u);
	return 0;
}

static size_t udp_packet_budget(struct smp_transport *t, size_t buf_size)
{
	struct smp_udp *u = (struct smp_udp *)t;

	return smp_chunk_budget_udp(buf_size, u->datagram_max);
}

static void udp_free(struct smp_transport *t)
{
	struct smp_udp *u = (struct smp_udp *)t;

	if (u->pin > 0) {
		u->dead = true;
		u->io = sd_event_source_disable_unref(u->io);
		u->state_defer = sd_event_source_disable_unref(u->state_defer);
		return;
	}
	udp_destroy(u);
}

static const struct smp_transport_ops udp_ops = {
    .name = "udp",
    .send = udp_send,
    .packet_budget = udp_packet_budget,
    .free = udp_free,
};

int smp_udp_new_sockaddr(sd_event *e, const struct sockaddr *sa, socklen_t salen,
			 const struct smp_udp_config *cfg, struct smp_transport **ret)
{
	struct smp_udp *u;
	int r, rcvbuf = UDP_RCVBUF;

	if (!e || !sa || !ret)
		return -EINVAL;
	if (!(sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) &&
	    !(sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)))
		return -EINVAL;
	if (cfg && cfg->datagram_max > UDP_PAYLOAD_MAX)
		return -EINVAL;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->t.ops = &udp_ops;
	u->t.link = SMP_LINK_UDP;
	u->event = sd_event_ref(e);
	u->fd = -1;
	if (cfg) {
		u->datagram_max = cfg->datagram_max;
		u->log = cfg->log;
		u->log_userdata = cfg->log_userdata;
	}
	if (u->datagram_max == 0)
		u->datagram_max = sa->sa_family == AF_INET6 ? SMP_UDP_DATAGRAM_MAX_IPV6
							    : SMP_UDP_DATAGRAM_MAX_IPV4;

	u->fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (u->fd < 0) {
		r = -errno;
		goto fail;
	}
	/* Best effort: the kernel caps it at rmem_max, which is still far above one answer. */
	(void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	/* connect() binds an ephemeral port and makes the kernel filter other senders. */
	if (connect(u->fd, sa, salen) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(e, &u->io, u->fd, EPOLLIN, udp_on_io, u);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(u->io, "smp-udp");
	r = sd_event_add_defer(e, &u->state_defer, udp_on_state_defer, u);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(u->state_defer, "smp-udp-state");
	(void)sd_event_source_set_enabled(u->state_defer, SD_EVENT_OFF);

	udp_debug(u, "socket bound to port %u", smp_udp_get_local_port(&u->t));
	*ret = &u->t;
	return 0;

fail:
	udp_destroy(u);
	return r;
}

int smp_udp_new(sd_event *e, const char *host, uint16_t port, const struct smp_udp_config *cfg,
		struct smp_transport **ret)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_DGRAM,
	    .ai_protocol = IPPROTO_UDP,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	char service[8];
	int r;

	if (!e || !host || !*host || port == 0 || !ret)
		return -EINVAL;
	snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		r = getaddrinfo(host, service, &hints, &res);
	}
	if (r == EAI_MEMORY)
		return -ENOMEM;
	if (r != 0 || !res)
		return -EADDRNOTAVAIL;
	r = smp_udp_new_sockaddr(e, res->ai_addr, res->ai_addrlen, cfg, ret);
	freeaddrinfo(res);
	return r;
}

uint16_t smp_udp_get_local_port(struct smp_transport *t)
{
	struct smp_udp *u = (struct smp_udp *)t;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!t || t->ops != &udp_ops || getsockname(u->fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}
