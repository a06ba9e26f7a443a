/* test-smp-udp: the UDP transport against an in-process peer on loopback (IPv4 and IPv6) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "smp-udp.h"
#include "tests/tap.h"

/* smp-protocol.md §15.1 V1/V2 and a real Zephyr 4.1 smp_svr exchange (os taskstat). */
#define ECHO_REQ "0a000009 00000100 a161646568656c6c6f"
#define ECHO_RSP "0b00000a 00000100 bf61726568656c6c6fff"
#define TASKSTAT_REQ "0800000100000202a0"
#define TASKSTAT_RSP                                                                               \
	"0900013300000202bf657461736b73bf6a6d63756d677220736d70bf647072696f0363746964006573746174" \
	"651880ff68736d705f75647034bf647072696f00637469640165737461746502ff70636f6e6e5f6d67725f6d" \
	"6f6e69746f72bf647072696f20637469640265737461746502ff6772785f715b305dbf647072696f20637469" \
	"640365737461746502ff686e65745f6d676d74bf647072696f20637469640465737461746502ff6a7368656c" \
	"6c5f75617274bf647072696f0e637469640565737461746502ff68737973776f726b71bf647072696f206374" \
	"69640665737461746502ff6b7368656c6c5f64756d6d79bf647072696f0e637469640765737461746502ff64" \
	"69646c65bf647072696f0f637469640865737461746500ff646d61696ebf647072696f006374696409657374" \
	"61"                                                                                       \
	"746504ffffff"

struct peer {
	int fd;
	sd_event_source *src;
	struct sockaddr_storage last_from;
	socklen_t last_from_len;
	size_t received;
	size_t last_len;
	/* Answers the recorded requests with the recorded responses, echoes the rest. */
	bool answer;
};

struct sink {
	size_t packets;
	uint8_t last[2048];
	size_t last_len;
	int states[8];
	size_t n_states;
	bool free_in_callback;
	struct smp_transport *t;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until *count reaches want or ms pass; returns whether it did. */
static bool run_until(sd_event *e, const size_t *count, size_t want, int ms)
{
	long long end = now_ms() + ms;

	while (*count < want && now_ms() < end)
		if (sd_event_run(e, 20 * 1000) < 0)
			return false;
	return *count >= want;
}

static int peer_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct peer *p = userdata;
	uint8_t buf[65536];
	ssize_t n;

	(void)s, (void)revents;
	p->last_from_len = sizeof(p->last_from);
	n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&p->last_from,
		     &p->last_from_len);
	if (n < 0)
		return 0;
	p->received++;
	p->last_len = (size_t)n;
	if (!p->answer)
		return 0;

	size_t qlen, alen;
	uint8_t *q = tap_unhex(ECHO_REQ, &qlen), *a = NULL;
	if ((size_t)n == qlen && memcmp(buf, q, qlen) == 0)
		a = tap_unhex(ECHO_RSP, &alen);
	free(q);
	q = tap_unhex(TASKSTAT_REQ, &qlen);
	if ((size_t)n == qlen && memcmp(buf, q, qlen) == 0)
		a = tap_unhex(TASKSTAT_RSP, &alen);
	free(q);
	if (a)
		sendto(fd, a, alen, 0, (struct sockaddr *)&p->last_from, p->last_from_len);
	else
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&p->last_from, p->last_from_len);
	free(a);
	return 0;
}

static int peer_open(sd_event *e, int family, uint16_t port, struct peer *p, uint16_t *ret_port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;

	memset(p, 0, sizeof(*p));
	p->answer = true;
	p->fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->fd < 0)
		return -errno;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	}
	if (bind(p->fd, (struct sockaddr *)&ss, len) < 0) {
		int r = -errno;

		close(p->fd);
		return r;
	}
	len = sizeof(ss);
	getsockname(p->fd, (struct sockaddr *)&ss, &len);
	*ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return sd_event_add_io(e, &p->src, p->fd, EPOLLIN, peer_on_io, p);
}

static void peer_close(struct peer *p)
{
	p->src = sd_event_source_disable_unref(p->src);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

static void on_packet(struct smp_transport *t, const uint8_t *pkt, size_t len, void *userdata)
{
	struct sink *s = userdata;

	s->packets++;
	s->last_len = len < sizeof(s->last) ? len : sizeof(s->last);
	memcpy(s->last, pkt, s->last_len);
	if (s->free_in_callback) {
		smp_transport_free(t);
		s->t = NULL;
	}
}

static void on_state(struct smp_transport *t, int state, void *userdata)
{
	struct sink *s = userdata;

	(void)t;
	if (s->n_states < sizeof(s->states) / sizeof(s->states[0]))
		s->states[s->n_states++] = state;
}

static int send_hex(struct smp_transport *t, const char *hex)
{
	size_t n;
	uint8_t *p = tap_unhex(hex, &n);
	int r = smp_transport_send(t, p, n);

	free(p);
	return r;
}

static void test_exchange(sd_event *e, int family, const char *host)
{
	struct peer p;
	struct sink s = {0};
	struct smp_transport *t = NULL;
	uint16_t port;
	size_t n;
	uint8_t *want;
	int r;

	r = peer_open(e, family, 0, &p, &port);
	if (r < 0) {
		tap_skip("no loopback for this family", "%s exchange", host);
		return;
	}
	is_int(smp_udp_new(e, host, port, NULL, &t), 0, "%s: transport created", host);
	smp_transport_set_handlers(t, on_packet, on_state, &s);
	is_str(t->ops->name, "udp", "%s: vtable name", host);
	ok(t->link == SMP_LINK_UDP, "%s: link type", host);

	is_int(send_hex(t, ECHO_REQ), 0, "%s: echo request queued", host);
	ok(run_until(e, &s.packets, 1, 2000), "%s: echo answer arrived", host);
	want = tap_unhex(ECHO_RSP, &n);
	is_mem(s.last, s.last_len, want, n, "%s: answer is V2 byte for byte", host);
	free(want);

	uint16_t local = smp_udp_get_local_port(t);
	uint16_t seen = ntohs(family == AF_INET ? ((struct sockaddr_in *)&p.last_from)->sin_port
						: ((struct sockaddr_in6 *)&p.last_from)->sin6_port);
	ok(local != 0 && local != port, "%s: bound to an ephemeral port (%u)", host, local);
	is_int(seen, local, "%s: the device sees the bound port as source", host);

	is_int(send_hex(t, TASKSTAT_REQ), 0, "%s: taskstat request queued", host);
	ok(run_until(e, &s.packets, 2, 2000), "%s: 315-byte Zephyr answer arrived", host);
	want = tap_unhex(TASKSTAT_RSP, &n);
	is_mem(s.last, s.last_len, want, n, "%s: recorded Zephyr answer intact", host);
	free(want);

	size_t dmax = family == AF_INET ? SMP_UDP_DATAGRAM_MAX_IPV4 : SMP_UDP_DATAGRAM_MAX_IPV6;
	is_int(smp_transport_packet_budget(t, 0), 384, "%s: budget with unknown buf_size", host);
	is_int(smp_transport_packet_budget(t, 2048), dmax, "%s: budget capped by datagram", host);
	is_int(smp_transport_packet_budget(t, 512), 512, "%s: budget capped by buf_size", host);

	/* The largest datagram goes out whole; one byte more is refused. */
	uint8_t *big = calloc(1, dmax + 1);
	big[0] = 0x0a;
	big[2] = (uint8_t)((dmax - 8) >> 8);
	big[3] = (uint8_t)(dmax - 8);
	is_int(smp_transport_send(t, big, dmax + 1), -EMSGSIZE, "%s: %zu bytes refused", host,
	       dmax + 1);
	p.answer = false;
	size_t before = p.received;
	is_int(smp_transport_send(t, big, dmax), 0, "%s: %zu bytes accepted", host, dmax);
	ok(run_until(e, &p.received, before + 1, 2000) && p.last_len == dmax,
	   "%s: the device got one %zu-byte datagram", host, dmax);
	free(big);

	smp_transport_free(t);
	peer_close(&p);
}

static size_t n_logs;
static char last_log[256];

static void on_log(int prio, const char *msg, void *userdata)
{
	(void)userdata;
	if (prio == 7)
		n_logs++;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static void test_filtering_and_malformed(sd_event *e)
{
	struct smp_udp_config cfg = {.log = on_log};
	struct peer p;
	struct sink s = {0};
	struct smp_transport *t = NULL;
	struct sockaddr_in to = {.sin_family = AF_INET};
	uint16_t port;
	size_t n;
	uint8_t *rsp = tap_unhex(ECHO_RSP, &n);
	int stranger;

	peer_open(e, AF_INET, 0, &p, &port);
	is_int(smp_udp_new(e, "127.0.0.1", port, &cfg, &t), 0, "filter: transport created");
	smp_transport_set_handlers(t, on_packet, on_state, &s);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons(smp_udp_get_local_port(t));

	/* A stranger's valid answer never reaches the client. */
	stranger = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sendto(stranger, rsp, n, 0, (struct sockaddr *)&to, sizeof(to));
	close(stranger);

	/* The device's own garbage: too short, wrong length field, then a good one. */
	sendto(p.fd, "\x0b\x00\x00", 3, 0, (struct sockaddr *)&to, sizeof(to));
	uint8_t bad[64];
	memcpy(bad, rsp, n);
	bad[3] = (uint8_t)(n - 8 + 1); /* announces one byte more than sent */
	sendto(p.fd, bad, n, 0, (struct sockaddr *)&to, sizeof(to));
	bad[3] = (uint8_t)(n - 8 - 1); /* one byte less */
	sendto(p.fd, bad, n, 0, (struct sockaddr *)&to, sizeof(to));
	sendto(p.fd, rsp, n, 0, (struct sockaddr *)&to, sizeof(to));

	ok(run_until(e, &s.packets, 1, 2000), "filter: the device's good datagram arrived");
	/* Loopback keeps order: everything sent before it has been handled by now. */
	sd_event_run(e, 0);
	is_int(s.packets, 1, "filter: stranger, short and mislabelled datagrams dropped");
	is_mem(s.last, s.last_len, rsp, n, "filter: delivered bytes intact");
	ok(n_logs >= 4, "filter: drops told to the debug hook at LOG_DEBUG (%zu)", n_logs);
	ok(strstr(last_log, "smp-udp: dropped") != NULL, "filter: last debug message: %s",
	   last_log);

	/* A callback may free the transport. */
	s.free_in_callback = true;
	s.t = t;
	sendto(p.fd, rsp, n, 0, (struct sockaddr *)&to, sizeof(to));
	sendto(p.fd, rsp, n, 0, (struct sockaddr *)&to, sizeof(to));
	ok(run_until(e, &s.packets, 2, 2000), "filter: packet delivered to a freeing callback");
	sd_event_run(e, 10 * 1000);
	is_int(s.packets, 2, "filter: nothing delivered after free");
	ok(s.t == NULL, "filter: freed from inside on_packet");

	free(rsp);
	peer_close(&p);
}

static void test_refused(sd_event *e)
{
	struct peer p;
	struct sink s = {0};
	struct smp_transport *t = NULL;
	uint16_t port, port2;

	peer_open(e, AF_INET, 0, &p, &port);
	is_int(smp_udp_new(e, "127.0.0.1", port, NULL, &t), 0, "refused: transport created");
	smp_transport_set_handlers(t, on_packet, on_state, &s);
	peer_close(&p);

	is_int(send_hex(t, ECHO_REQ), 0, "refused: request to a closed port queued");
	ok(run_until(e, &s.n_states, 1, 2000), "refused: state reported");
	is_int(s.states[0], -ECONNREFUSED, "refused: on_state(-ECONNREFUSED)");

	/* The device comes back on the same port: the same socket reaches it. */
	is_int(peer_open(e, AF_INET, port, &p, &port2), 0, "refused: device back on its port");
	is_int(send_hex(t, ECHO_REQ), 0, "refused: request sent again");
	ok(run_until(e, &s.packets, 1, 2000), "refused: answer after the device came back");
	ok(s.n_states >= 2 && s.states[s.n_states - 1] == 0,
	   "refused: on_state(0) when it answers");

	smp_transport_free(t);
	peer_close(&p);
}

static void test_arguments(sd_event *e)
{
	struct smp_transport *t = NULL;
	struct smp_udp_config cfg = {.datagram_max = 1000};
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1337)};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	is_int(smp_udp_new(e, "", 1337, NULL, &t), -EINVAL, "args: empty host");
	is_int(smp_udp_new(e, "127.0.0.1", 0, NULL, &t), -EINVAL, "args: port 0");
	cfg.datagram_max = 70000;
	is_int(smp_udp_new(e, "127.0.0.1", 1337, &cfg, &t), -EINVAL, "args: datagram_max too big");
	is_int(smp_udp_new_sockaddr(e, (struct sockaddr *)&sin, 4, NULL, &t), -EINVAL,
	       "args: short sockaddr");
	ok(t == NULL, "args: ret untouched on failure");
	cfg.datagram_max = 1000;
	is_int(smp_udp_new_sockaddr(e, (struct sockaddr *)&sin, sizeof(sin), &cfg, &t), 0,
	       "args: sockaddr variant");
	is_int(smp_transport_packet_budget(t, 2048), 1000, "args: configured datagram limit");
	t = smp_transport_free(t);
	is_int(smp_udp_new(e, "localhost", 1337, NULL, &t), 0, "args: a name resolves");
	t = smp_transport_free(t);
	is_int(smp_udp_new(e, "::1", 1337, NULL, &t), 0, "args: IPv6 literal");
	is_int(smp_transport_packet_budget(t, 4096), SMP_UDP_DATAGRAM_MAX_IPV6,
	       "args: IPv6 default datagram limit");
	smp_transport_free(t);
}

int main(void)
{
	sd_event *e = NULL;

	if (sd_event_new(&e) < 0)
		return 1;
	test_exchange(e, AF_INET, "127.0.0.1");
	test_exchange(e, AF_INET6, "::1");
	test_filtering_and_malformed(e);
	test_refused(e);
	test_arguments(e);
	sd_event_unref(e);
	return tap_done();
}
