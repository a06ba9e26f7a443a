/* smp-ble-link: SMP over Bluetooth LE GATT through BlueZ (D-Bus), or over two ATT sockets */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smp-ble-link.h"
#include "smp-ble.h"
#include "smp-chunk.h"
#include "smp-header.h"
#include "smp-transport-internal.h"

#define BLUEZ "org.bluez"
#define DEVICE_IFACE "org.bluez.Device1"
#define SERVICE_IFACE "org.bluez.GattService1"
#define CHAR_IFACE "org.bluez.GattCharacteristic1"
#define PROPS_IFACE "org.freedesktop.DBus.Properties"
#define OM_IFACE "org.freedesktop.DBus.ObjectManager"

/* The largest ATT value: no notification is longer. */
#define ATT_VALUE_MAX 512
#define ATT_MTU_MAX 517
#define MAX_SMP_SERVICES 8

enum ble_phase {
	BLE_DOWN,
	BLE_GET_PROPS,
	BLE_CONNECTING,
	BLE_RESOLVING,
	BLE_FIND_CHAR,
	BLE_ACQUIRE_NOTIFY,
	BLE_START_NOTIFY,
	BLE_ACQUIRE_WRITE,
	BLE_UP,
};

struct smp_ble_link {
	struct smp_transport t; /* first: the vtable's pointer is ours */
	sd_event *event;
	sd_bus *bus; /* NULL for a link made from fds */
	char *device_path;
	char *char_path;

	bool reassembly;
	unsigned gap_timeout_ms;
	unsigned setup_timeout_ms;
	bool no_acquire;
	smp_transport_log_fn log;
	void *log_userdata;

	enum ble_phase phase;
	bool services_resolved;
	sd_bus_slot *match_props;
	sd_bus_slot *match_char_props;
	sd_bus_slot *match_removed;
	sd_bus_slot *match_owner;
	sd_bus_slot *setup_call;
	sd_event_source *setup_timer;

	size_t att_mtu;
	size_t char_mtu; /* the MTU property, for the fallback path */
	int write_fd;
	int notify_fd;
	sd_event_source *write_io;
	sd_event_source *notify_io;
	bool notify_via_dbus;
	bool write_via_dbus;
	sd_bus_slot *write_call;
	struct smp_txq txq; /* one item per ATT write */

	struct smp_ble_reassembler *rx;
	sd_event_source *gap_timer;

	sd_event_source *state_defer;
	int pending_state;
	unsigned pin;
	bool dead;
};

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

#define ble_debug(l, ...) smp_transport_logf((l)->log, (l)->log_userdata, "smp-ble: " __VA_ARGS__)

static const struct smp_transport_ops ble_ops;

/* ---- lifetime ---- */

static void ble_release_io(struct smp_ble_link *l)
{
	l->write_io = sd_event_source_disable_unref(l->write_io);
	l->notify_io = sd_event_source_disable_unref(l->notify_io);
	if (l->write_fd >= 0 && l->write_fd != l->notify_fd)
		close(l->write_fd);
	if (l->notify_fd >= 0)
		close(l->notify_fd);
	l->write_fd = l->notify_fd = -1;
	l->write_call = sd_bus_slot_unref(l->write_call);
	smp_txq_clear(&l->txq);
	if (l->rx)
		smp_ble_reassembler_reset(l->rx);
	if (l->gap_timer)
		(void)sd_event_source_set_enabled(l->gap_timer, SD_EVENT_OFF);
}

/* StopNotify of a fallback notify session; nobody waits for the answer. */
static void ble_stop_notify(struct smp_ble_link *l)
{
	if (!l->notify_via_dbus)
		return;
	l->notify_via_dbus = false;
	if (l->bus && l->char_path)
		(void)sd_bus_call_method_async(l->bus, NULL, BLUEZ, l->char_path, CHAR_IFACE,
					       "StopNotify", NULL, NULL, NULL);
}

static int ble_add_props_match(struct smp_ble_link *l, const char *path, sd_bus_slot **ret);

static void ble_destroy(struct smp_ble_link *l)
{
	ble_release_io(l);
	l->match_props = sd_bus_slot_unref(l->match_props);
	l->match_char_props = sd_bus_slot_unref(l->match_char_props);
	l->match_removed = sd_bus_slot_unref(l->match_removed);
	l->match_owner = sd_bus_slot_unref(l->match_owner);
	l->setup_call = sd_bus_slot_unref(l->setup_call);
	l->setup_timer = sd_event_source_disable_unref(l->setup_timer);
	l->gap_timer = sd_event_source_disable_unref(l->gap_timer);
	l->state_defer = sd_event_source_disable_unref(l->state_defer);
	smp_ble_reassembler_free(l->rx);
	free(l->device_path);
	free(l->char_path);
	sd_bus_unref(l->bus);
	sd_event_unref(l->event);
	free(l);
}

static void ble_unpin(struct smp_ble_link *l)
{
	if (--l->pin == 0 && l->dead)
		ble_destroy(l);
}

static void ble_report(struct smp_ble_link *l, int state)
{
	if (l->dead || !l->t.on_state)
		return;
	l->pin++;
	l->t.on_state(&l->t, state, l->t.userdata);
	ble_unpin(l);
}

static int ble_on_state_defer(sd_event_source *s, void *userdata)
{
	struct smp_ble_link *l = userdata;

	(void)s;
	(void)sd_event_source_set_enabled(l->state_defer, SD_EVENT_OFF);
	ble_report(l, l->pending_state);
	return 0;
}

static void ble_report_later(struct smp_ble_link *l, int state)
{
	l->pending_state = state;
	(void)sd_event_source_set_enabled(l->state_defer, SD_EVENT_ONESHOT);
}

/* Ends the link or its setup; reports error when up or coming up. */
static void ble_down(struct smp_ble_link *l, int error, bool later)
{
	bool was_active = l->phase != BLE_DOWN;

	if (was_active)
		ble_debug(l, "link down: %s", strerror(-error));
	l->phase = BLE_DOWN;
	l->services_resolved = false;
	l->setup_call = sd_bus_slot_unref(l->setup_call);
	if (l->setup_timer)
		(void)sd_event_source_set_enabled(l->setup_timer, SD_EVENT_OFF);
	ble_release_io(l);
	l->write_via_dbus = false;
	if (!was_active)
		return;
	if (later)
		ble_report_later(l, error);
	else
		ble_report(l, error);
}

/* ---- D-Bus helpers ---- */

static int bluez_errno(const sd_bus_error *e)
{
	const char *name = e ? e->name : NULL;
	const char *msg = e && e->message ? e->message : "";

	if (!name)
		return -EIO;
	if (streq(name, "org.bluez.Error.NotConnected"))
		return -ENOTCONN;
	if (streq(name, "org.bluez.Error.InProgress"))
		return -EINPROGRESS;
	if (streq(name, "org.bluez.Error.NotSupported"))
		return -EOPNOTSUPP;
	if (streq(name, "org.bluez.Error.NotPermitted") ||
	    streq(name, "org.bluez.Error.NotAuthorized"))
		return -EACCES;
	if (streq(name, "org.bluez.Error.AlreadyConnected"))
		return -EISCONN;
	if (streq(name, "org.bluez.Error.DoesNotExist") ||
	    streq(name, "org.freedesktop.DBus.Error.UnknownObject") ||
	    streq(name, "org.freedesktop.DBus.Error.UnknownInterface"))
		return -ENODEV;
	if (streq(name, "org.freedesktop.DBus.Error.ServiceUnknown") ||
	    streq(name, "org.freedesktop.DBus.Error.NameHasNoOwner"))
		return -EHOSTDOWN;
	if (streq(name, "org.freedesktop.DBus.Error.NoReply") ||
	    streq(name, "org.freedesktop.DBus.Error.Timeout") ||
	    streq(name, "org.freedesktop.DBus.Error.TimedOut"))
		return -ETIMEDOUT;
	if (streq(name, "org.bluez.Error.Failed")) {
		if (strstr(msg, "connection") || strstr(msg, "abort"))
			return -ECONNABORTED;
		if (strcasestr(msg, "not connected"))
			return -ENOTCONN;
	}
	return -EIO;
}

/* Iterates an a{sv}: returns 1 with *key and the variant's signature, positioned
 * before the variant (the caller reads or skips it, then calls props_end), 0 at
 * the end. */
static int props_next(sd_bus_message *m, const char **key, const char **vsig)
{
	int r;

	r = sd_bus_message_enter_container(m, 'e', "sv");
	if (r <= 0)
		return r;
	r = sd_bus_message_read(m, "s", key);
	if (r < 0)
		return r;
	r = sd_bus_message_peek_type(m, NULL, vsig);
	if (r < 0)
		return r;
	return 1;
}

static int props_end(sd_bus_message *m)
{
	return sd_bus_message_exit_container(m);
}

static int read_bool_prop(sd_bus_message *m, const char *vsig, bool *ret)
{
	int v, r;

	if (!vsig || !streq(vsig, "b"))
		return sd_bus_message_skip(m, "v");
	r = sd_bus_message_read(m, "v", "b", &v);
	if (r < 0)
		return r;
	*ret = v;
	return 1;
}

static bool path_below(const char *path, const char *parent)
{
	size_t n = strlen(parent);

	return strncmp(path, parent, n) == 0 && path[n] == '/';
}

/* ---- receiving ---- */

static void ble_arm_gap_timer(struct smp_ble_link *l)
{
	uint64_t now;

	if (!smp_ble_reassembler_in_progress(l->rx)) {
		(void)sd_event_source_set_enabled(l->gap_timer, SD_EVENT_OFF);
		return;
	}
	if (sd_event_now(l->event, CLOCK_MONOTONIC, &now) < 0)
		return;
	(void)sd_event_source_set_time(l->gap_timer, now + (uint64_t)l->gap_timeout_ms * 1000);
	(void)sd_event_source_set_enabled(l->gap_timer, SD_EVENT_ONESHOT);
}

static int ble_on_gap_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct smp_ble_link *l = userdata;

	(void)s, (void)usec;
	ble_debug(l, "dropped a partial answer after %u ms without notification",
		  l->gap_timeout_ms);
	smp_ble_reassembler_reset(l->rx);
	return 0;
}

/* One notification's value. The caller holds a pin. */
static void ble_notification(struct smp_ble_link *l, const uint8_t *data, size_t len)
{
	const uint8_t *pkt;
	size_t pkt_len;
	int r;

	r = smp_ble_reassembler_feed(l->rx, data, len, &pkt, &pkt_len);
	if (r < 0)
		ble_debug(l, "dropped an answer: %s", strerror(-r));
	else if (r > 0 && l->t.on_packet)
		l->t.on_packet(&l->t, pkt, pkt_len, l->t.userdata);
	if (!l->dead)
		ble_arm_gap_timer(l);
}

static int ble_on_notify_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct smp_ble_link *l = userdata;
	uint8_t buf[ATT_VALUE_MAX + 1];

	(void)s;
	l->pin++;
	for (int i = 0; i < 64 && !l->dead && l->notify_io; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (revents & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
				ble_down(l, -ECONNRESET, false);
			break;
		}
		if (n <= 0) {
			/* BlueZ closes the socket when the device disconnects. */
			ble_down(l, -ECONNRESET, false);
			break;
		}
		ble_notification(l, buf, (size_t)n);
	}
	ble_unpin(l);
	return 0;
}

/* ---- sending ---- */

static void ble_flush(struct smp_ble_link *l);

static int ble_on_write_reply(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	(void)error;
	l->write_call = sd_bus_slot_unref(l->write_call);
	l->pin++;
	if (e) {
		int r = bluez_errno(e);

		ble_debug(l, "WriteValue failed: %s: %s", e->name, e->message ? e->message : "");
		if (r == -ENOTCONN || r == -ENODEV || r == -EHOSTDOWN)
			ble_down(l, -ECONNRESET, false);
		/* The rest of that request would only confuse the device's reassembly. */
		while (l->txq.head && !l->txq.head->first)
			smp_txq_pop(&l->txq);
	}
	if (!l->dead && l->phase == BLE_UP)
		ble_flush(l);
	ble_unpin(l);
	return 0;
}

static void ble_flush_dbus(struct smp_ble_link *l)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	struct smp_txq_item *it = l->txq.head;
	int r;

	/* One WriteValue at a time keeps the pieces of a request in order. */
	if (l->write_call || !it)
		return;
	r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, l->char_path, CHAR_IFACE,
					   "WriteValue");
	if (r >= 0)
		r = sd_bus_message_append_array(m, 'y', it->data, it->len);
	if (r >= 0)
		r = sd_bus_message_append(m, "a{sv}", 1, "type", "s", "command");
	if (r >= 0)
		r = sd_bus_call_async(l->bus, &l->write_call, m, ble_on_write_reply, l, 0);
	if (r < 0)
		ble_debug(l, "WriteValue not sent, piece dropped: %s", strerror(-r));
	smp_txq_pop(&l->txq);
}

static void ble_flush(struct smp_ble_link *l)
{
	if (l->write_via_dbus) {
		ble_flush_dbus(l);
		return;
	}
	while (l->txq.head) {
		struct smp_txq_item *it = l->txq.head;
		ssize_t n = send(l->write_fd, it->data, it->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			ble_down(l, -ECONNRESET, true);
			return;
		}
		smp_txq_pop(&l->txq);
	}
	(void)sd_event_source_set_io_events(l->write_io,
					    l->txq.head ? EPOLLOUT | EPOLLRDHUP : EPOLLRDHUP);
}

static int ble_on_write_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct smp_ble_link *l = userdata;

	(void)s, (void)fd;
	l->pin++;
	if (revents & (EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		ble_down(l, -ECONNRESET, false);
	else if (revents & EPOLLOUT)
		ble_flush(l);
	ble_unpin(l);
	return 0;
}

static int ble_send(struct smp_transport *t, const uint8_t *pkt, size_t len)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;
	size_t n, queued = 0;
	int r;

	if (l->phase != BLE_UP)
		return -ENOTCONN;
	if (len == 0 || len > SMP_PACKET_MAX)
		return -EMSGSIZE;
	n = smp_ble_fragment_count(len, l->att_mtu);
	if (n == 0 || (n > 1 && !l->reassembly))
		return -EMSGSIZE;
	if (l->txq.bytes + len > SMP_TXQ_LIMIT)
		return -ENOBUFS;
	for (size_t i = 0; i < n; i++) {
		size_t off, flen;

		r = smp_ble_fragment(len, l->att_mtu, i, &off, &flen);
		if (r >= 0)
			r = smp_txq_push(&l->txq, pkt + off, flen);
		if (r >= 0)
			l->txq.tail->first = i == 0;
		if (r < 0) {
			/* Never leave half a request queued: the device would take the next
			 * request's first piece as this one's continuation. */
			smp_txq_truncate(&l->txq, l->txq.count - queued);
			return r;
		}
		queued++;
	}
	ble_flush(l);
	return 0;
}

static size_t ble_packet_budget(struct smp_transport *t, size_t buf_size)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;

	return smp_chunk_budget_ble(buf_size, l->att_mtu, l->reassembly);
}

static void ble_free(struct smp_transport *t)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;

	ble_stop_notify(l);
	ble_release_io(l);
	if (l->pin > 0) {
		/* Inside one of our callbacks: finish when it returns. */
		l->dead = true;
		l->phase = BLE_DOWN;
		l->match_props = sd_bus_slot_unref(l->match_props);
		l->match_char_props = sd_bus_slot_unref(l->match_char_props);
		l->match_removed = sd_bus_slot_unref(l->match_removed);
		l->match_owner = sd_bus_slot_unref(l->match_owner);
		l->setup_call = sd_bus_slot_unref(l->setup_call);
		l->setup_timer = sd_event_source_disable_unref(l->setup_timer);
		l->gap_timer = sd_event_source_disable_unref(l->gap_timer);
		l->state_defer = sd_event_source_disable_unref(l->state_defer);
		return;
	}
	ble_destroy(l);
}

static const struct smp_transport_ops ble_ops = {
    .name = "ble",
    .send = ble_send,
    .packet_budget = ble_packet_budget,
    .free = ble_free,
};

/* ---- setup state machine ---- */

static void ble_fail(struct smp_ble_link *l, int error)
{
	ble_down(l, error, false);
}

static void ble_up(struct smp_ble_link *l)
{
	if (l->write_via_dbus)
		l->att_mtu = l->char_mtu ? l->char_mtu : SMP_BLE_ATT_MTU_MIN;
	l->phase = BLE_UP;
	(void)sd_event_source_set_enabled(l->setup_timer, SD_EVENT_OFF);
	ble_debug(l, "up: ATT MTU %zu, writes via %s, notifications via %s", l->att_mtu,
		  l->write_via_dbus ? "WriteValue" : "AcquireWrite",
		  l->notify_via_dbus ? "StartNotify" : "AcquireNotify");
	ble_report(l, 0);
	if (!l->dead && l->phase == BLE_UP && l->txq.head)
		ble_flush(l);
}

static int ble_call(struct smp_ble_link *l, const char *path, const char *iface, const char *member,
		    sd_bus_message_handler_t cb, const char *types, ...)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	va_list ap;
	uint64_t timeout = (uint64_t)l->setup_timeout_ms * 1000;
	int r;

	r = sd_bus_message_new_method_call(l->bus, &m, BLUEZ, path, iface, member);
	if (r < 0)
		return r;
	if (types) {
		va_start(ap, types);
		r = sd_bus_message_appendv(m, types, ap);
		va_end(ap);
		if (r < 0)
			return r;
	}
	l->setup_call = sd_bus_slot_unref(l->setup_call);
	return sd_bus_call_async(l->bus, &l->setup_call, m, cb, l, timeout);
}

static void ble_step_find_char(struct smp_ble_link *l);
static void ble_step_acquire_notify(struct smp_ble_link *l);
static void ble_step_start_notify(struct smp_ble_link *l);
static void ble_step_acquire_write(struct smp_ble_link *l);

/* Ends a setup callback: drops the slot of the finished call. Returns the error the
 * reply carries (0 for a method return). */
static int ble_reply_begin(struct smp_ble_link *l, sd_bus_message *m, const sd_bus_error **ret)
{
	const sd_bus_error *e = sd_bus_message_get_error(m);

	l->setup_call = sd_bus_slot_unref(l->setup_call);
	*ret = e;
	if (!e)
		return 0;
	ble_debug(l, "call failed: %s: %s", e->name, e->message ? e->message : "");
	return bluez_errno(e);
}

static void ble_step_resolved(struct smp_ble_link *l)
{
	if (l->services_resolved)
		ble_step_find_char(l);
	else
		l->phase = BLE_RESOLVING; /* ServicesResolved arrives by signal */
}

static int ble_on_connect_reply(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e;
	int r = ble_reply_begin(l, m, &e);

	(void)error;
	l->pin++;
	/* Someone else's Connect is under way, or it already completed: wait for
	 * ServicesResolved either way. */
	if (r == 0 || r == -EINPROGRESS || r == -EISCONN)
		ble_step_resolved(l);
	else
		ble_fail(l, r);
	ble_unpin(l);
	return 0;
}

static int ble_on_get_props(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e;
	const char *key, *vsig;
	bool connected = false, resolved = false;
	int r = ble_reply_begin(l, m, &e);

	(void)error;
	l->pin++;
	if (r < 0) {
		ble_fail(l, r);
		goto out;
	}
	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = props_next(m, &key, &vsig)) > 0) {
		if (streq(key, "Connected"))
			r = read_bool_prop(m, vsig, &connected);
		else if (streq(key, "ServicesResolved"))
			r = read_bool_prop(m, vsig, &resolved);
		else
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = props_end(m);
	}
	if (r < 0) {
		ble_fail(l, -EIO);
		goto out;
	}
	l->services_resolved = connected && resolved;
	if (!connected) {
		l->phase = BLE_CONNECTING;
		r = ble_call(l, l->device_path, DEVICE_IFACE, "Connect", ble_on_connect_reply,
			     NULL);
		if (r < 0)
			ble_fail(l, r);
	} else
		ble_step_resolved(l);
out:
	ble_unpin(l);
	return 0;
}

static void ble_step_get_props(struct smp_ble_link *l)
{
	int r;

	l->phase = BLE_GET_PROPS;
	r = ble_call(l, l->device_path, PROPS_IFACE, "GetAll", ble_on_get_props, "s", DEVICE_IFACE);
	if (r < 0)
		ble_fail(l, r);
}

/* Reads the properties of one GattService1/GattCharacteristic1 entry. */
static int read_gatt_props(sd_bus_message *m, const char **uuid, const char **service,
			   uint16_t *mtu)
{
	const char *key, *vsig;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	while ((r = props_next(m, &key, &vsig)) > 0) {
		if (streq(key, "UUID") && vsig && streq(vsig, "s"))
			r = sd_bus_message_read(m, "v", "s", uuid);
		else if (service && streq(key, "Service") && vsig && streq(vsig, "o"))
			r = sd_bus_message_read(m, "v", "o", service);
		else if (mtu && streq(key, "MTU") && vsig && streq(vsig, "q"))
			r = sd_bus_message_read(m, "v", "q", mtu);
		else
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = props_end(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* One pass over GetManagedObjects. Pass 1 collects the SMP services below the
 * device, pass 2 picks the SMP characteristic in one of them. */
static int scan_objects(struct smp_ble_link *l, sd_bus_message *m, bool chars,
			const char **services, size_t *n_services, const char **ret_char,
			uint16_t *ret_mtu)
{
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	if (r < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
		const char *path;

		r = sd_bus_message_read(m, "o", &path);
		if (r < 0)
			return r;
		r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
		if (r < 0)
			return r;
		while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
			const char *iface, *uuid = NULL, *service = NULL;
			uint16_t mtu = 0;
			bool below = path_below(path, l->device_path);

			r = sd_bus_message_read(m, "s", &iface);
			if (r < 0)
				return r;
			if (below && !chars && streq(iface, SERVICE_IFACE)) {
				r = read_gatt_props(m, &uuid, NULL, NULL);
				if (r >= 0 && uuid &&
				    strcasecmp(uuid, SMP_BLE_SMP_SERVICE_UUID) == 0 &&
				    *n_services < MAX_SMP_SERVICES)
					services[(*n_services)++] = path;
			} else if (below && chars && streq(iface, CHAR_IFACE) && !*ret_char) {
				r = read_gatt_props(m, &uuid, &service, &mtu);
				if (r >= 0 && uuid && service &&
				    strcasecmp(uuid, SMP_BLE_SMP_CHAR_UUID) == 0)
					for (size_t i = 0; i < *n_services; i++)
						if (streq(services[i], service)) {
							*ret_char = path;
							*ret_mtu = mtu;
						}
			} else
				r = sd_bus_message_skip(m, "a{sv}");
			if (r < 0)
				return r;
			r = sd_bus_message_exit_container(m);
			if (r < 0)
				return r;
		}
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

static int ble_on_managed_objects(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e;
	const char *services[MAX_SMP_SERVICES], *chr = NULL;
	size_t n_services = 0;
	uint16_t mtu = 0;
	int r = ble_reply_begin(l, m, &e);

	(void)error;
	l->pin++;
	if (r < 0) {
		ble_fail(l, r);
		goto out;
	}
	r = scan_objects(l, m, false, services, &n_services, &chr, &mtu);
	if (r >= 0)
		r = sd_bus_message_rewind(m, true);
	if (r >= 0)
		r = scan_objects(l, m, true, services, &n_services, &chr, &mtu);
	if (r < 0) {
		ble_fail(l, -EIO);
		goto out;
	}
	if (!chr) {
		ble_debug(l, "no SMP characteristic below %s", l->device_path);
		ble_fail(l, -EPROTONOSUPPORT);
		goto out;
	}
	free(l->char_path);
	l->char_path = strdup(chr);
	if (!l->char_path) {
		ble_fail(l, -ENOMEM);
		goto out;
	}
	l->char_mtu = mtu >= SMP_BLE_ATT_MTU_MIN && mtu <= ATT_MTU_MAX ? mtu : 0;
	/* Value notifications of the fallback path come from the characteristic:
	 * a match on its exact path (see ble_add_props_match). */
	l->match_char_props = sd_bus_slot_unref(l->match_char_props);
	if (ble_add_props_match(l, l->char_path, &l->match_char_props) < 0) {
		ble_fail(l, -ENOMEM);
		goto out;
	}
	if (l->no_acquire)
		ble_step_start_notify(l);
	else
		ble_step_acquire_notify(l);
out:
	ble_unpin(l);
	return 0;
}

static void ble_step_find_char(struct smp_ble_link *l)
{
	int r;

	l->phase = BLE_FIND_CHAR;
	r = ble_call(l, "/", OM_IFACE, "GetManagedObjects", ble_on_managed_objects, NULL);
	if (r < 0)
		ble_fail(l, r);
}

/* Takes the fd out of an Acquire* reply. */
static int read_acquired(sd_bus_message *m, int *ret_fd, size_t *ret_mtu)
{
	int fd, r;
	uint16_t mtu;

	r = sd_bus_message_read(m, "hq", &fd, &mtu);
	if (r < 0)
		return r;
	if (mtu < SMP_BLE_ATT_MTU_MIN || mtu > ATT_MTU_MAX)
		return -EBADMSG;
	/* The message owns its fd. */
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, O_NONBLOCK | fcntl(fd, F_GETFL)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	*ret_mtu = mtu;
	return 0;
}

static bool acquire_refused(int r)
{
	return r == -EOPNOTSUPP || r == -EACCES || r == -EINPROGRESS;
}

static int ble_on_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e;
	size_t mtu;
	int r = ble_reply_begin(l, m, &e);

	(void)error;
	l->pin++;
	if (acquire_refused(r)) {
		ble_step_start_notify(l);
		goto out;
	}
	if (r >= 0)
		r = read_acquired(m, &l->notify_fd, &mtu);
	if (r >= 0)
		r = sd_event_add_io(l->event, &l->notify_io, l->notify_fd, EPOLLIN | EPOLLRDHUP,
				    ble_on_notify_io, l);
	if (r < 0) {
		ble_fail(l, r);
		goto out;
	}
	(void)sd_event_source_set_description(l->notify_io, "smp-ble-notify");
	ble_step_acquire_write(l);
out:
	ble_unpin(l);
	return 0;
}

static void ble_step_acquire_notify(struct smp_ble_link *l)
{
	int r;

	l->phase = BLE_ACQUIRE_NOTIFY;
	r = ble_call(l, l->char_path, CHAR_IFACE, "AcquireNotify", ble_on_acquire_notify, "a{sv}",
		     0);
	if (r < 0)
		ble_fail(l, r);
}

static int ble_on_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e;
	int r = ble_reply_begin(l, m, &e);

	(void)error;
	l->pin++;
	if (r < 0)
		ble_fail(l, r);
	else {
		l->notify_via_dbus = true;
		if (l->no_acquire) {
			l->write_via_dbus = true;
			ble_up(l);
		} else
			ble_step_acquire_write(l);
	}
	ble_unpin(l);
	return 0;
}

static void ble_step_start_notify(struct smp_ble_link *l)
{
	int r;

	l->phase = BLE_START_NOTIFY;
	r = ble_call(l, l->char_path, CHAR_IFACE, "StartNotify", ble_on_start_notify, NULL);
	if (r < 0)
		ble_fail(l, r);
}

static int ble_on_acquire_write(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const sd_bus_error *e;
	int r = ble_reply_begin(l, m, &e);

	(void)error;
	l->pin++;
	if (acquire_refused(r)) {
		l->write_via_dbus = true;
		ble_up(l);
		goto out;
	}
	if (r >= 0)
		r = read_acquired(m, &l->write_fd, &l->att_mtu);
	if (r >= 0)
		r = sd_event_add_io(l->event, &l->write_io, l->write_fd, EPOLLRDHUP,
				    ble_on_write_io, l);
	if (r < 0) {
		ble_fail(l, r);
		goto out;
	}
	(void)sd_event_source_set_description(l->write_io, "smp-ble-write");
	ble_up(l);
out:
	ble_unpin(l);
	return 0;
}

static void ble_step_acquire_write(struct smp_ble_link *l)
{
	int r;

	l->phase = BLE_ACQUIRE_WRITE;
	r = ble_call(l, l->char_path, CHAR_IFACE, "AcquireWrite", ble_on_acquire_write, "a{sv}", 0);
	if (r < 0)
		ble_fail(l, r);
}

static int ble_on_setup_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct smp_ble_link *l = userdata;

	(void)s, (void)usec;
	if (l->phase != BLE_DOWN && l->phase != BLE_UP) {
		l->pin++;
		ble_fail(l, -ETIMEDOUT);
		ble_unpin(l);
	}
	return 0;
}

/* ---- signals ---- */

static void ble_on_device_props(struct smp_ble_link *l, sd_bus_message *m)
{
	const char *key, *vsig;
	bool connected = true, resolved = l->services_resolved, seen_resolved = false;
	int r;

	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && (r = props_next(m, &key, &vsig)) > 0) {
		if (streq(key, "Connected"))
			r = read_bool_prop(m, vsig, &connected);
		else if (streq(key, "ServicesResolved")) {
			r = read_bool_prop(m, vsig, &resolved);
			seen_resolved = true;
		} else
			r = sd_bus_message_skip(m, "v");
		if (r >= 0)
			r = props_end(m);
	}
	if (r < 0)
		return;
	if (seen_resolved)
		l->services_resolved = resolved;

	switch (l->phase) {
	case BLE_DOWN:
	case BLE_GET_PROPS:
		/* The GetAll answer decides. */
		break;
	case BLE_CONNECTING:
		/* BlueZ reports Connected=false for a failed attempt; its reply tells why. */
		break;
	case BLE_RESOLVING:
		if (!connected)
			ble_fail(l, -ENOTCONN);
		else if (l->services_resolved)
			ble_step_find_char(l);
		break;
	default:
		if (!connected || (seen_resolved && !resolved))
			ble_down(l, l->phase == BLE_UP ? -ECONNRESET : -ENOTCONN, false);
		break;
	}
}

static void ble_on_char_props(struct smp_ble_link *l, sd_bus_message *m)
{
	const char *key, *vsig;
	int r;

	if (!l->notify_via_dbus || l->phase != BLE_UP)
		return;
	r = sd_bus_message_enter_container(m, 'a', "{sv}");
	while (r >= 0 && !l->dead && (r = props_next(m, &key, &vsig)) > 0) {
		if (streq(key, "Value") && vsig && streq(vsig, "ay")) {
			const void *p;
			size_t n;

			r = sd_bus_message_enter_container(m, 'v', "ay");
			if (r >= 0)
				r = sd_bus_message_read_array(m, 'y', &p, &n);
			if (r >= 0)
				r = sd_bus_message_exit_container(m);
			if (r >= 0 && n <= ATT_VALUE_MAX)
				ble_notification(l, p, n);
		} else
			r = sd_bus_message_skip(m, "v");
		if (r >= 0 && !l->dead)
			r = props_end(m);
	}
}

static int ble_on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const char *path = sd_bus_message_get_path(m), *iface;

	(void)error;
	if (!path || sd_bus_message_read(m, "s", &iface) < 0)
		return 0;
	l->pin++;
	if (streq(path, l->device_path) && streq(iface, DEVICE_IFACE))
		ble_on_device_props(l, m);
	else if (l->char_path && streq(path, l->char_path) && streq(iface, CHAR_IFACE))
		ble_on_char_props(l, m);
	ble_unpin(l);
	return 0;
}

/* PropertiesChanged of exactly one object. Exact paths, not path_namespace:
 * dbus-daemon 1.14 (Debian 12) ignores the path when it compares
 * path_namespace rules in RemoveMatch, so one link closing could remove
 * another link's rule and leave it deaf to Connected/ServicesResolved. */
static int ble_add_props_match(struct smp_ble_link *l, const char *path, sd_bus_slot **ret)
{
	char match[512];

	snprintf(match, sizeof(match),
		 "type='signal',sender='" BLUEZ "',interface='" PROPS_IFACE "',"
		 "member='PropertiesChanged',path='%s'",
		 path);
	return sd_bus_add_match_async(l->bus, ret, match, ble_on_properties_changed, NULL, l);
}

static int ble_on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const char *path;

	(void)error;
	if (sd_bus_message_read(m, "o", &path) < 0 || l->phase == BLE_DOWN)
		return 0;
	/* The device, or the GATT objects we use, went away. */
	if (streq(path, l->device_path) ||
	    (l->phase >= BLE_ACQUIRE_NOTIFY && l->char_path &&
	     (streq(path, l->char_path) || path_below(l->char_path, path)))) {
		l->pin++;
		ble_down(l, l->phase == BLE_UP ? -ECONNRESET : -ENOTCONN, false);
		ble_unpin(l);
	}
	return 0;
}

static int ble_on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct smp_ble_link *l = userdata;
	const char *name, *old_owner, *new_owner;

	(void)error;
	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
		return 0;
	if (streq(name, BLUEZ) && old_owner[0] && l->phase != BLE_DOWN) {
		l->pin++;
		ble_down(l, l->phase == BLE_UP ? -ECONNRESET : -EHOSTDOWN, false);
		ble_unpin(l);
	}
	return 0;
}

/* ---- public API ---- */

static int ble_alloc(sd_event *e, const struct smp_ble_link_config *cfg, struct smp_ble_link **ret)
{
	static const struct smp_ble_link_config defaults = {0};
	struct smp_ble_link *l;
	int r;

	if (!cfg)
		cfg = &defaults;
	if (cfg->max_packet && cfg->max_packet < SMP_HEADER_SIZE)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->t.ops = &ble_ops;
	l->t.link = SMP_LINK_BLE;
	l->event = sd_event_ref(e);
	l->write_fd = l->notify_fd = -1;
	l->reassembly = cfg->reassembly;
	l->gap_timeout_ms =
	    cfg->gap_timeout_ms ? cfg->gap_timeout_ms : SMP_BLE_LINK_DEFAULT_GAP_TIMEOUT_MS;
	l->setup_timeout_ms =
	    cfg->setup_timeout_ms ? cfg->setup_timeout_ms : SMP_BLE_LINK_DEFAULT_SETUP_TIMEOUT_MS;
	l->no_acquire = cfg->no_acquire;
	l->log = cfg->log;
	l->log_userdata = cfg->log_userdata;

	r = smp_ble_reassembler_new(cfg->max_packet ? cfg->max_packet : SMP_PACKET_MAX, &l->rx);
	if (r < 0)
		goto fail;
	r = sd_event_add_time(e, &l->gap_timer, CLOCK_MONOTONIC, 0, 1000, ble_on_gap_timeout, l);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(l->gap_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(l->gap_timer, "smp-ble-gap");
	r = sd_event_add_defer(e, &l->state_defer, ble_on_state_defer, l);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(l->state_defer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(l->state_defer, "smp-ble-state");
	*ret = l;
	return 0;

fail:
	ble_destroy(l);
	return r;
}

int smp_ble_link_new(sd_event *e, sd_bus *bus, const char *device_path,
		     const struct smp_ble_link_config *cfg, struct smp_transport **ret)
{
	struct smp_ble_link *l;
	char match[512];
	int r;

	if (!e || !bus || !device_path || !ret || !sd_bus_object_path_is_valid(device_path) ||
	    strlen(device_path) > 256)
		return -EINVAL;
	r = ble_alloc(e, cfg, &l);
	if (r < 0)
		return r;
	l->bus = sd_bus_ref(bus);
	l->device_path = strdup(device_path);
	if (!l->device_path) {
		r = -ENOMEM;
		goto fail;
	}
	r = sd_event_add_time(e, &l->setup_timer, CLOCK_MONOTONIC, 0, 1000, ble_on_setup_timeout,
			      l);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(l->setup_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(l->setup_timer, "smp-ble-setup");

	/* The matches are installed before any call is sent: the bus handles our
	 * messages in order, so no signal between a reply and the match is lost. */
	r = ble_add_props_match(l, device_path, &l->match_props);
	if (r < 0)
		goto fail;
	r = sd_bus_match_signal_async(bus, &l->match_removed, BLUEZ, "/", OM_IFACE,
				      "InterfacesRemoved", ble_on_interfaces_removed, NULL, l);
	if (r < 0)
		goto fail;
	snprintf(match, sizeof(match),
		 "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
		 "member='NameOwnerChanged',arg0='" BLUEZ "'");
	r = sd_bus_add_match_async(bus, &l->match_owner, match, ble_on_name_owner_changed, NULL, l);
	if (r < 0)
		goto fail;

	if (!(cfg && cfg->no_autoconnect)) {
		r = smp_ble_link_connect(&l->t);
		if (r < 0)
			goto fail;
	}
	*ret = &l->t;
	return 0;

fail:
	ble_destroy(l);
	return r;
}

int smp_ble_link_new_fds(sd_event *e, int write_fd, int notify_fd, size_t att_mtu,
			 const struct smp_ble_link_config *cfg, struct smp_transport **ret)
{
	struct smp_ble_link *l;
	int r;

	if (!e || write_fd < 0 || notify_fd < 0 || !ret || att_mtu < SMP_BLE_ATT_MTU_MIN ||
	    att_mtu > ATT_MTU_MAX)
		return -EINVAL;
	r = ble_alloc(e, cfg, &l);
	if (r < 0)
		return r;
	if (fcntl(write_fd, F_SETFL, fcntl(write_fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(notify_fd, F_SETFL, fcntl(notify_fd, F_GETFL) | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	l->att_mtu = att_mtu;
	r = sd_event_add_io(e, &l->notify_io, notify_fd, EPOLLIN | EPOLLRDHUP, ble_on_notify_io, l);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(l->notify_io, "smp-ble-notify");
	if (write_fd != notify_fd) {
		r = sd_event_add_io(e, &l->write_io, write_fd, EPOLLRDHUP, ble_on_write_io, l);
		if (r < 0)
			goto fail;
		(void)sd_event_source_set_description(l->write_io, "smp-ble-write");
	}
	l->write_fd = write_fd;
	l->notify_fd = notify_fd;
	l->phase = BLE_UP;
	ble_report_later(l, 0);
	*ret = &l->t;
	return 0;

fail:
	/* The fds stay the caller's. */
	l->write_io = sd_event_source_disable_unref(l->write_io);
	l->notify_io = sd_event_source_disable_unref(l->notify_io);
	ble_destroy(l);
	return r;
}

int smp_ble_link_connect(struct smp_transport *t)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;
	uint64_t now;

	if (!t || t->ops != &ble_ops)
		return -EINVAL;
	if (!l->bus)
		return -EOPNOTSUPP;
	if (l->phase != BLE_DOWN)
		return 0;
	if (sd_event_now(l->event, CLOCK_MONOTONIC, &now) >= 0) {
		(void)sd_event_source_set_time(l->setup_timer,
					       now + (uint64_t)l->setup_timeout_ms * 1000);
		(void)sd_event_source_set_enabled(l->setup_timer, SD_EVENT_ONESHOT);
	}
	/* Pending reports of an earlier session are stale now. */
	(void)sd_event_source_set_enabled(l->state_defer, SD_EVENT_OFF);
	/* A failure to send even the first call is reported through on_state. */
	ble_step_get_props(l);
	return 0;
}

int smp_ble_link_disconnect(struct smp_transport *t)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;

	if (!t || t->ops != &ble_ops)
		return -EINVAL;
	ble_stop_notify(l);
	ble_down(l, -ENOTCONN, true);
	if (l->bus)
		(void)sd_bus_call_method_async(l->bus, NULL, BLUEZ, l->device_path, DEVICE_IFACE,
					       "Disconnect", NULL, NULL, NULL);
	return 0;
}

size_t smp_ble_link_get_att_mtu(struct smp_transport *t)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;

	return t && t->ops == &ble_ops ? l->att_mtu : 0;
}

bool smp_ble_link_write_acquired(struct smp_transport *t)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;

	return t && t->ops == &ble_ops && l->write_fd >= 0;
}

bool smp_ble_link_notify_acquired(struct smp_transport *t)
{
	struct smp_ble_link *l = (struct smp_ble_link *)t;

	return t && t->ops == &ble_ops && l->notify_fd >= 0;
}
