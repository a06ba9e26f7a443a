/* gw-static: the devices of the configuration, and those the API registers at run time */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-device.h>
#include <unistd.h>

#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-registry.h"
#include "daemon/gw-static.h"
#include "lib/macro.h"

#define LOG_MODULE "static"

int gw_static_parse_udp(const char *address, char **ret_canonical,
			struct sockaddr_storage *ret_sa, socklen_t *ret_len)
{
	struct addrinfo hints = {
		.ai_family = AF_INET6,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
		.ai_socktype = SOCK_DGRAM,
	};
	struct sockaddr_storage sa = { 0 };
	socklen_t len;
	_cleanup_free_ char *host = NULL;
	char h[NI_MAXHOST], *canonical = NULL;
	const char *port;
	unsigned long p;
	bool v6 = address && address[0] == '[';

	if (!address || !*address)
		return -EINVAL;
	if (v6) {
		const char *end = strchr(address, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		host = strndup(address + 1, (size_t)(end - address - 1));
		port = end + 2;
	} else {
		const char *colon = strrchr(address, ':');

		/* An IPv6 literal needs its brackets: "::1:1337" has no one reading. */
		if (!colon || memchr(address, ':', (size_t)(colon - address)))
			return -EINVAL;
		host = strndup(address, (size_t)(colon - address));
		port = colon + 1;
	}
	if (!host)
		return -ENOMEM;
	if (!*host || !*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
		return -EINVAL;
	p = strtoul(port, NULL, 10);
	if (p == 0 || p > 65535)
		return -EINVAL;
	if (!v6) {
		/* inet_pton, not getaddrinfo: only the dotted quad, no "127.1". */
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;

		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -EINVAL;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)p);
		len = sizeof(*in);
	} else {
		/* getaddrinfo for the scope of a link-local address (fe80::1%eth0). */
		struct addrinfo *ai = NULL;
		int k;

		if (strpbrk(host, " \t\r\n"))
			return -EINVAL;
		k = getaddrinfo(host, port, &hints, &ai);
		if (k == EAI_MEMORY)
			return -ENOMEM;
		if (k != 0 || !ai || ai->ai_addrlen > sizeof(sa)) {
			if (ai)
				freeaddrinfo(ai);
			return -EINVAL;
		}
		memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
		len = ai->ai_addrlen;
		freeaddrinfo(ai);
	}
	if (getnameinfo((struct sockaddr *)&sa, len, h, sizeof(h), NULL, 0, NI_NUMERICHOST) != 0)
		return -EINVAL;
	if (ret_canonical && asprintf(&canonical, v6 ? "[%s]:%lu" : "%s:%lu", h, p) < 0)
		return -ENOMEM;
	if (ret_canonical)
		*ret_canonical = canonical;
	if (ret_sa)
		*ret_sa = sa;
	if (ret_len)
		*ret_len = len;
	return 0;
}

/* A terminal, or a link to one, without opening it when sysfs can tell: an
 * open raises DTR, which resets some boards. PTYs have no sysfs device. */
static int check_tty(const char *path)
{
	_cleanup_(sd_device_unrefp) sd_device *dev = NULL;
	const char *subsystem;
	struct stat st;
	int fd, k;

	if (path[0] != '/')
		return -EINVAL;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENOTTY;
	if (sd_device_new_from_stat_rdev(&dev, &st) >= 0 &&
	    sd_device_get_subsystem(dev, &subsystem) >= 0)
		return strcmp(subsystem, "tty") == 0 ? 0 : -ENOTTY;
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	k = isatty(fd) ? 0 : -ENOTTY;
	close(fd);
	return k;
}

/* The identity and canonical address of a UDP or serial device. */
static int static_identity(enum gw_transport t, const char *address, char **ret_identity,
			   char **ret_address)
{
	_cleanup_free_ char *canonical = NULL;
	char *identity;
	int k;

	if (!address)
		return -EINVAL;
	if (t == GW_TRANSPORT_UDP) {
		k = gw_static_parse_udp(address, &canonical, NULL, NULL);
		if (k < 0)
			return k;
	} else if (t == GW_TRANSPORT_SERIAL) {
		if (address[0] != '/')
			return -EINVAL;
		canonical = strdup(address);
		if (!canonical)
			return -ENOMEM;
	} else {
		return -EINVAL;
	}
	if (asprintf(&identity, "%s:%s", t == GW_TRANSPORT_UDP ? "udp" : "tty", canonical) < 0)
		return -ENOMEM;
	*ret_identity = identity;
	*ret_address = TAKE_PTR(canonical);
	return 0;
}

static bool strv_contains(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && strcmp(v[i], s) == 0)
			return true;
	return false;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Removes the devices of source config whose identity is not in keep. */
static int static_drop_unlisted(struct gw_registry *r, char **keep, size_t n_keep)
{
	char **ids = NULL;
	size_t n = 0;
	int k = 0;

	/* Ids first: removing while walking the sorted index would skip one. */
	ids = calloc(gw_registry_count(r) + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (struct gw_device *d = gw_registry_next(r, NULL); d; d = gw_registry_next(r, d->id))
		if (d->source == GW_SOURCE_CONFIG && !strv_contains(keep, n_keep, d->identity)) {
			ids[n] = strdup(d->id);
			if (!ids[n]) {
				strv_free(ids, n);
				return -ENOMEM;
			}
			n++;
		}
	for (size_t i = 0; i < n; i++) {
		struct gw_device *d = gw_registry_find(r, ids[i]);
		int e;

		if (!d)
			continue;
		gw_info(LOG_MODULE, "%s: no longer in the configuration, removed", d->id);
		e = gw_registry_remove(r, d);
		if (e < 0) {
			gw_log_errno(LOG_ERR, e, LOG_MODULE, "%s: removing: %m", ids[i]);
			if (k == 0)
				k = e;
		}
	}
	strv_free(ids, n);
	return k;
}

int gw_static_reload(struct gw_manager *m)
{
	const struct gw_config *c = &m->config;
	struct gw_registry *r = m->registry;
	char **identities = NULL, **addresses = NULL;
	size_t *sections = NULL, n = 0;
	int k, err = 0;

	if (!r)
		return -ENXIO;
	identities = calloc(c->n_devices + 1, sizeof(*identities));
	addresses = calloc(c->n_devices + 1, sizeof(*addresses));
	sections = calloc(c->n_devices + 1, sizeof(*sections));
	if (!identities || !addresses || !sections) {
		err = -ENOMEM;
		goto out;
	}
	/* Every usable section first: a section whose upsert fails below
	 * still keeps its device, a passing database error drops nothing. */
	for (size_t i = 0; i < c->n_devices; i++) {
		const struct gw_config_device *cd = &c->devices[i];
		int t = gw_transport_from_string(cd->transport);

		k = t < 0 ? -EINVAL
			  : static_identity(t, cd->address, &identities[n], &addresses[n]);
		if (k == -ENOMEM) {
			err = k;
			goto out;
		}
		if (k < 0) {
			gw_warn(LOG_MODULE, "[device %s]: address \"%s\" is not usable for %s, "
				"ignoring the device", cd->name, cd->address ? cd->address : "",
				cd->transport ? cd->transport : "no transport");
			continue;
		}
		if (strv_contains(identities, n, identities[n])) {
			gw_warn(LOG_MODULE, "[device %s]: %s is listed by an earlier section, "
				"ignoring this one", cd->name, identities[n]);
			free(identities[n]);
			free(addresses[n]);
			identities[n] = addresses[n] = NULL;
			continue;
		}
		sections[n++] = i;
	}
	for (size_t i = 0; i < n; i++) {
		const struct gw_config_device *cd = &c->devices[sections[i]];
		enum gw_transport t = (enum gw_transport)gw_transport_from_string(cd->transport);
		struct gw_device_spec spec = {
			.transport = t,
			.identity = identities[i],
			.address = addresses[i],
			.name = cd->name,
			/* No labels in the file means none: pinned empty, not "keep". */
			.labels = cd->labels ? cd->labels : "",
			.source = GW_SOURCE_CONFIG,
			.baud = t == GW_TRANSPORT_SERIAL ? cd->baud : 0,
		};

		k = gw_registry_upsert(r, &spec, NULL);
		if (k < 0) {
			gw_log_errno(LOG_ERR, k, LOG_MODULE, "[device %s]: registering: %m",
				     cd->name);
			if (err == 0)
				err = k;
		}
	}
	k = static_drop_unlisted(r, identities, n);
	if (k < 0 && err == 0)
		err = k;
	if (err == 0)
		gw_info(LOG_MODULE, "%zu devices from the configuration", n);
out:
	strv_free(identities, n + 1);
	strv_free(addresses, n + 1);
	free(sections);
	return err < 0 ? err : (int)n;
}

int gw_static_register(struct gw_manager *m, const struct gw_device_spec *spec,
		       struct gw_device **ret)
{
	_cleanup_free_ char *identity = NULL, *address = NULL;
	struct gw_device_spec s;
	struct gw_device *d;
	int k;

	if (!m->registry)
		return -ENXIO;
	if (!spec || !spec->address ||
	    (spec->transport != GW_TRANSPORT_UDP && spec->transport != GW_TRANSPORT_SERIAL) ||
	    (spec->transport == GW_TRANSPORT_UDP && spec->baud))
		return -EINVAL;
	k = static_identity(spec->transport, spec->address, &identity, &address);
	if (k < 0)
		return k;
	if (spec->transport == GW_TRANSPORT_SERIAL) {
		k = check_tty(address);
		if (k < 0)
			return k;
	}
	s = *spec;
	s.identity = spec->identity ? spec->identity : identity;
	s.address = address;
	s.source = GW_SOURCE_API;
	d = gw_registry_find_identity(m->registry, s.identity);
	if (d && d->source != GW_SOURCE_DISCOVERED)
		return -EEXIST;
	k = gw_registry_upsert(m->registry, &s, &d);
	if (k < 0)
		return k;
	gw_info(LOG_MODULE, "%s: registered (%s %s)", d->id, gw_transport_to_string(d->transport),
		d->address);
	if (ret)
		*ret = d;
	return 0;
}

int gw_static_unregister(struct gw_manager *m, struct gw_device *d)
{
	char id[128];
	int k;

	if (!m->registry)
		return -ENXIO;
	if (!d)
		return -EINVAL;
	if (d->source == GW_SOURCE_CONFIG)
		return -EPERM;
	snprintf(id, sizeof(id), "%s", d->id);
	k = gw_registry_remove(m->registry, d);
	if (k < 0)
		return k;
	gw_info(LOG_MODULE, "%s: unregistered", id);
	return 0;
}
