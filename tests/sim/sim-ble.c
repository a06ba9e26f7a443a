/* sim-ble: the Bluetooth transport of a simulated device, through the fake BlueZ */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim-bluez.h"
#include "sim-transports.h"

struct sim_ble {
	struct sim_link link;
	struct sim_bluez *bluez;
	struct sim_bluez_device *dev;
};

static void sim_ble_on_smp(struct sim_bluez_device *dev, const uint8_t *pkt, size_t len,
			   void *userdata)
{
	struct sim_ble *b = userdata;

	sim_link_receive(&b->link, pkt, len, NULL, false);
}

static void sim_ble_on_link(struct sim_bluez_device *dev, bool connected, void *userdata)
{
	struct sim_ble *b = userdata;

	if (!connected) {
		/* Zephyr drops what was queued for the connection. */
		sim_link_flush(&b->link);
		sim_node_link_down(b->link.node, &b->link);
	}
	sim_node_link_event(b->link.node, &b->link, connected ? "connected" : "disconnected");
}

static void sim_ble_transmit(struct sim_link *l, const uint8_t *pkt, size_t len,
			     const struct sim_peer *to, bool corrupt)
{
	struct sim_ble *b = (struct sim_ble *)l;
	int r = sim_bluez_device_notify(b->dev, pkt, len);

	if (r < 0)
		sim_log(SIM_LOG_DEBUG, l->where, "notification of %zu bytes lost: %s", len,
			strerror(-r));
	else
		sim_link_count(l, len);
}

static void sim_ble_device_down(struct sim_link *l)
{
	struct sim_ble *b = (struct sim_ble *)l;

	/* A rebooting device drops its connection and does not advertise. */
	sim_link_flush(l);
	sim_bluez_device_set_unreachable(b->dev, true);
	sim_bluez_device_drop_connection(b->dev);
}

static void sim_ble_device_up(struct sim_link *l)
{
	if (!l->down)
		sim_bluez_device_set_unreachable(((struct sim_ble *)l)->dev, false);
}

/* The disconnect fault: the link is lost and the device stays out of
 * reach until the reconnect delay has passed. */
static void sim_ble_hang_up(struct sim_link *l)
{
	struct sim_ble *b = (struct sim_ble *)l;

	sim_bluez_device_set_unreachable(b->dev, true);
	sim_bluez_device_drop_connection(b->dev);
}

static void sim_ble_reconnect(struct sim_link *l)
{
	if (sim_node_is_up(l->node))
		sim_bluez_device_set_unreachable(((struct sim_ble *)l)->dev, false);
}

static void sim_ble_free(struct sim_link *l)
{
	struct sim_ble *b = (struct sim_ble *)l;

	if (b->dev)
		sim_bluez_remove_device(b->dev);
	sim_link_done(l);
	free(b);
}

static const struct sim_link_ops sim_ble_ops = {
    .kind = "ble",
    .transmit = sim_ble_transmit,
    .device_down = sim_ble_device_down,
    .device_up = sim_ble_device_up,
    .hang_up = sim_ble_hang_up,
    .reconnect = sim_ble_reconnect,
    .free = sim_ble_free,
};

int sim_ble_new(struct sim_node *n, sd_event *e, const struct sim_faults *faults, uint64_t seed,
		struct sim_bluez *bluez, const struct sim_ble_params *p, struct sim_link **ret)
{
	struct sim_device *d = sim_node_device(n);
	struct sim_ble *b = calloc(1, sizeof(*b));
	struct sim_bluez_device_config dc;
	int r;

	if (!b)
		return -ENOMEM;
	b->bluez = bluez;
	b->link.ordered = true;
	r = sim_link_init(&b->link, &sim_ble_ops, n, e, faults, seed, "");
	if (r < 0)
		goto fail;
	dc = (struct sim_bluez_device_config){
	    .address = sim_device_address(d),
	    .address_random = true,
	    .name = sim_device_name(d),
	    .att_mtu = p->att_mtu,
	    .reassembly = p->reassembly,
	    .buf_size = sim_device_config(d)->buf_size,
	    .conn_interval_us = p->conn_interval_us,
	    .packets_per_event = p->packets_per_event,
	    .on_smp_packet = sim_ble_on_smp,
	    .on_link = sim_ble_on_link,
	    .userdata = b,
	};
	r = sim_bluez_add_device(bluez, &dc, &b->dev);
	if (r < 0)
		goto fail;
	r = sim_link_set_where(&b->link, sim_bluez_device_get_path(b->dev));
	if (r < 0)
		goto fail;
	*ret = &b->link;
	return 0;
fail:
	sim_ble_free(&b->link);
	return r;
}
