/* sim-udp: the UDP transport of a simulated device (Zephyr's smp_udp) */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim-transports.h"

struct sim_udp {
	struct sim_link link;
	int fd;
	size_t mtu;
	uint8_t *buf;
	sd_event_source *io;
};

static int sim_udp_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct sim_udp *u = userdata;

	/* Drain what is there; each datagram is one frame. */
	for (unsigned i = 0; i < 64; i++) {
		struct sim_peer from = {.len = sizeof(from.sa)};
		ssize_t n = recvfrom(fd, u->buf, u->mtu, 0, (struct sockaddr *)&from.sa, &from.len);

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				sim_log(SIM_LOG_WARN, u->link.where, "recvfrom: %s",
					strerror(errno));
			break;
		}
		sim_link_receive(&u->link, u->buf, (size_t)n, &from, false);
	}
	return 0;
}

static void sim_udp_transmit(struct sim_link *l, const uint8_t *pkt, size_t len,
			     const struct sim_peer *to, bool corrupt)
{
	struct sim_udp *u = (struct sim_udp *)l;

	if (!to || to->len == 0)
		return;
	if (sendto(u->fd, pkt, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&to->sa,
		   to->len) < 0)
		sim_log(SIM_LOG_DEBUG, l->where, "sendto: %s", strerror(errno));
	sim_link_count(l, len);
}

static void sim_udp_free(struct sim_link *l)
{
	struct sim_udp *u = (struct sim_udp *)l;

	sd_event_source_disable_unref(u->io);
	if (u->fd >= 0)
		close(u->fd);
	free(u->buf);
	sim_link_done(l);
	free(u);
}

static const struct sim_link_ops sim_udp_ops = {
    .kind = "udp",
    .transmit = sim_udp_transmit,
    .free = sim_udp_free,
};

int sim_udp_new(struct sim_node *n, sd_event *e, const struct sim_faults *faults, uint64_t seed,
		const char *host, uint16_t port, size_t mtu, struct sim_link **ret)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage sa;
	socklen_t sa_len = sizeof(sa);
	char service[8], addr[INET6_ADDRSTRLEN], where[INET6_ADDRSTRLEN + 16];
	struct sim_udp *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fd = -1;
	u->mtu = mtu;
	u->buf = malloc(mtu);
	if (!u->buf) {
		free(u);
		return -ENOMEM;
	}
	snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, &ai);
	if (r != 0) {
		sim_log(SIM_LOG_ERR, NULL, "bad UDP address %s: %s", host, gai_strerror(r));
		r = -EINVAL;
		goto fail;
	}
	u->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0 || bind(u->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		r = -errno;
		sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot bind UDP %s:%u", host, port);
		goto fail;
	}
	if (getsockname(u->fd, (struct sockaddr *)&sa, &sa_len) < 0) {
		r = -errno;
		goto fail;
	}
	if (sa.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr, sizeof(addr));
		snprintf(where, sizeof(where), "[%s]:%u", addr,
			 ntohs(((struct sockaddr_in6 *)&sa)->sin6_port));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr, sizeof(addr));
		snprintf(where, sizeof(where), "%s:%u", addr,
			 ntohs(((struct sockaddr_in *)&sa)->sin_port));
	}
	r = sim_link_init(&u->link, &sim_udp_ops, n, e, faults, seed, where);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(e, &u->io, u->fd, EPOLLIN, sim_udp_on_io, u);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(u->io, "sim-udp");
	freeaddrinfo(ai);
	*ret = &u->link;
	return 0;
fail:
	if (ai)
		freeaddrinfo(ai);
	sim_udp_free(&u->link);
	return r;
}
