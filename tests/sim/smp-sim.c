/* smp-sim: simulated Zephyr SMP devices under MCUboot, over UDP, a serial PTY and a fake BlueZ */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim-bluez.h"
#include "sim-node.h"
#include "sim-transports.h"
#include "sim-util.h"

struct sim_manager {
	sd_event *event;
	struct sim_config cfg;
	struct sim_node **nodes;
	unsigned n_nodes;
	char *scratch;
	/* transports */
	char *udp_host;
	uint16_t udp_port;
	bool udp;
	size_t udp_mtu;
	bool serial;
	struct sim_serial_params serial_params;
	const char *pty_link;
	bool ble;
	const char *ble_bus;
	struct sim_ble_params ble_params;
	struct sim_bluez_config bluez_cfg;
	sd_bus *bus;
	struct sim_bluez *bluez;
	sd_event_source *sig_term;
	sd_event_source *sig_int;
	sd_event_source *sig_usr1;
	/* control on stdin */
	bool control;
	sd_event_source *stdin_src;
	char line[1024];
	size_t line_len;
};

static void help(void)
{
	printf(
	    "Usage: smp-sim [OPTION]...\n"
	    "Simulates Zephyr devices (SMP server, MCUboot underneath) for smpgw's tests,\n"
	    "demo and benchmarks. Prints one line per transport when ready:\n"
	    "  READY udp 127.0.0.1:1337 id=sim-0 sn=... addr=... version=1.0.0\n"
	    "  READY serial /dev/pts/5 link=/tmp/tty0 id=sim-0 ...\n"
	    "  READY ble /org/bluez/hci0/dev_C0_53_49_4D_00_00 id=sim-0 ...\n"
	    "then \"READY all count=N\", and later RESET, BOOT and LINK lines on events.\n"
	    "\n"
	    "Transports (at least one; a device is reachable over each one given):\n"
	    "  --udp HOST:PORT            UDP; device i listens on PORT+i (PORT 0: any free port)\n"
	    "  --udp-mtu N                device datagram buffer; longer datagrams are truncated\n"
	    "                             (default 1500)\n"
	    "  --serial                   a pseudo-terminal per device with console framing\n"
	    "  --pty-link PATH            symlink to the PTY; with --count > 1 PATH<i>, or a\n"
	    "                             printf pattern with %%u; removed on exit\n"
	    "  --baud N                   an 8N1 UART of N baud, both directions: a byte (10\n"
	    "                             bits with framing) reaches the device, or the PTY,\n"
	    "                             once its bits have passed, behind the earlier ones\n"
	    "  --serial-line-max N        longest input line the device takes, newline\n"
	    "                             included; longer lines are dropped (default 128)\n"
	    "  --console-log              Zephyr log lines on the serial port (boot banner,\n"
	    "                             events, a heartbeat)\n"
	    "  --console-interleave       ... also between the lines of a multi-line frame\n"
	    "  --console-interval MS      heartbeat period (default 1000)\n"
	    "  --ble                      Device1 objects on a fake BlueZ (org.bluez)\n"
	    "  --ble-bus ADDRESS          D-Bus address for it (default "
	    "$DBUS_SESSION_BUS_ADDRESS;\n"
	    "                             never the system bus unless given)\n"
	    "  --ble-max-connections N    LE connections the adapter accepts (default unlimited)\n"
	    "  --att-mtu N                ATT MTU after the exchange, 23..517 (default 247)\n"
	    "  --no-reassembly            each request must fit one ATT write\n"
	    "  --ble-conn-interval MS     throughput model: one connection event this often\n"
	    "                             (default 0: no limit)\n"
	    "  --ble-packets-per-event N  ATT packets per event and direction (default 4)\n"
	    "\n"
	    "Devices:\n"
	    "  --count N                  simulate N devices with their own state (default 1)\n"
	    "  --name-prefix P            device i is named P<i> (default \"sim-\")\n"
	    "  --app-version V            version of the factory image, build number = i\n"
	    "                             (default 1.0.0)\n"
	    "  --state DIR                keep slots, settings and files in DIR/<name>: killing\n"
	    "                             the process is a power cycle (default: in memory)\n"
	    "  --slot-size BYTES          MCUboot slot size (default 0x69000)\n"
	    "  --buf-size N, --buf-count N   SMP buffers (MCUmgr params; default 2048, 4): one\n"
	    "                             pool; a request takes one on arrival (none free:\n"
	    "                             dropped), its answer another while it is served\n"
	    "  --smp-version 1|2          2: Zephyr >= 3.4 (default); 1: an older server that\n"
	    "                             answers everything in v1 style\n"
	    "  --bootloader-mode N        1, 3, 9 (swap) or 2 (overwrite-only); default 3\n"
	    "  --no-image-check           no \"match\" in uploads "
	    "(CONFIG_IMG_ENABLE_IMAGE_CHECK=n)\n"
	    "  --no-mpstat                OS memory pool statistics unsupported\n"
	    "  --auto-confirm             the application confirms a test image at boot\n"
	    "  --info C=TEXT              OS info field C (s n r v b m p i o) reports TEXT\n"
	    "  --fs-mount PATH            file system mount point (default /lfs1)\n"
	    "  --flash-write-us-per-kib N flash write time (default 2000)\n"
	    "  --flash-erase-us-per-kib N flash erase time (default 1000)\n"
	    "  --swap-us-per-kib N        MCUboot copy time at a swap (default 2000)\n"
	    "  --reboot-delay MS          silence after a reset (default 500)\n"
	    "\n"
	    "Faults (combinable; random ones reproducible with --seed):\n"
	    "  --seed N                   seed of every random decision (default 1)\n"
	    "  --drop-rate P              frames lost, either direction\n"
	    "  --corrupt-rate P           frames with a damaged byte\n"
	    "  --dup-rate P               UDP responses sent twice\n"
	    "  --reorder-rate P           UDP responses overtaken by the next one\n"
	    "  --busy-rate P              requests refused with {\"rc\": 10} (EBUSY)\n"
	    "  --latency MS, --jitter MS  added to every response: the whole round trip\n"
	    "  --bandwidth BYTES/S        each link's throughput, each way: a packet passes\n"
	    "                             after the earlier ones (at most 1024 requests wait)\n"
	    "  --disconnect-after BYTES   the link drops after this many bytes, and comes back\n"
	    "  --reconnect-delay MS       ... after this long (default 1000)\n"
	    "  --reset-during-upload OFF  power loss once an image upload passes offset OFF\n"
	    "  --fail-boot[=VERSION]      a swapped-in image (or only VERSION) crashes at boot;\n"
	    "                             MCUboot reverts a test swap at once\n"
	    "  (slow reboot: --reboot-delay; small buffers: --buf-size; v1 only: --smp-version 1)\n"
	    "\n"
	    "Other:\n"
	    "  --control                  read commands on stdin: \"set OPTION VALUE\" for the\n"
	    "                             fault options above, \"reset N|all\", \"dump\", "
	    "\"quit\";\n"
	    "                             answers OK or ERR on stdout\n"
	    "  -v, --verbose              more log on stderr (repeat for more)\n"
	    "  -q, --quiet                errors only\n"
	    "  -h, --help                 this text\n"
	    "SIGTERM or SIGINT end it cleanly; SIGUSR1 writes each device's state to stderr.\n");
}

enum {
	OPT_UDP = 256,
	OPT_UDP_MTU,
	OPT_SERIAL,
	OPT_PTY_LINK,
	OPT_BAUD,
	OPT_LINE_MAX,
	OPT_CONSOLE_LOG,
	OPT_CONSOLE_INTERLEAVE,
	OPT_CONSOLE_INTERVAL,
	OPT_BLE,
	OPT_BLE_BUS,
	OPT_BLE_MAX_CONN,
	OPT_ATT_MTU,
	OPT_NO_REASSEMBLY,
	OPT_BLE_CONN_INTERVAL,
	OPT_BLE_PACKETS,
	OPT_COUNT,
	OPT_NAME_PREFIX,
	OPT_APP_VERSION,
	OPT_STATE,
	OPT_SLOT_SIZE,
	OPT_BUF_SIZE,
	OPT_BUF_COUNT,
	OPT_SMP_VERSION,
	OPT_BOOTLOADER_MODE,
	OPT_NO_IMAGE_CHECK,
	OPT_NO_MPSTAT,
	OPT_AUTO_CONFIRM,
	OPT_INFO,
	OPT_FS_MOUNT,
	OPT_FLASH_WRITE,
	OPT_FLASH_ERASE,
	OPT_SWAP_TIME,
	OPT_REBOOT_DELAY,
	OPT_SEED,
	OPT_DROP_RATE,
	OPT_CORRUPT_RATE,
	OPT_DUP_RATE,
	OPT_REORDER_RATE,
	OPT_BUSY_RATE,
	OPT_LATENCY,
	OPT_JITTER,
	OPT_BANDWIDTH,
	OPT_DISCONNECT_AFTER,
	OPT_RECONNECT_DELAY,
	OPT_RESET_DURING_UPLOAD,
	OPT_FAIL_BOOT,
	OPT_CONTROL,
};

static const struct option options[] = {
    {"udp", required_argument, NULL, OPT_UDP},
    {"udp-mtu", required_argument, NULL, OPT_UDP_MTU},
    {"serial", no_argument, NULL, OPT_SERIAL},
    {"pty-link", required_argument, NULL, OPT_PTY_LINK},
    {"baud", required_argument, NULL, OPT_BAUD},
    {"serial-line-max", required_argument, NULL, OPT_LINE_MAX},
    {"console-log", no_argument, NULL, OPT_CONSOLE_LOG},
    {"console-interleave", no_argument, NULL, OPT_CONSOLE_INTERLEAVE},
    {"console-interval", required_argument, NULL, OPT_CONSOLE_INTERVAL},
    {"ble", no_argument, NULL, OPT_BLE},
    {"ble-bus", required_argument, NULL, OPT_BLE_BUS},
    {"ble-max-connections", required_argument, NULL, OPT_BLE_MAX_CONN},
    {"att-mtu", required_argument, NULL, OPT_ATT_MTU},
    {"no-reassembly", no_argument, NULL, OPT_NO_REASSEMBLY},
    {"ble-conn-interval", required_argument, NULL, OPT_BLE_CONN_INTERVAL},
    {"ble-packets-per-event", required_argument, NULL, OPT_BLE_PACKETS},
    {"count", required_argument, NULL, OPT_COUNT},
    {"name-prefix", required_argument, NULL, OPT_NAME_PREFIX},
    {"app-version", required_argument, NULL, OPT_APP_VERSION},
    {"state", required_argument, NULL, OPT_STATE},
    {"slot-size", required_argument, NULL, OPT_SLOT_SIZE},
    {"buf-size", required_argument, NULL, OPT_BUF_SIZE},
    {"buf-count", required_argument, NULL, OPT_BUF_COUNT},
    {"smp-version", required_argument, NULL, OPT_SMP_VERSION},
    {"bootloader-mode", required_argument, NULL, OPT_BOOTLOADER_MODE},
    {"no-image-check", no_argument, NULL, OPT_NO_IMAGE_CHECK},
    {"no-mpstat", no_argument, NULL, OPT_NO_MPSTAT},
    {"auto-confirm", no_argument, NULL, OPT_AUTO_CONFIRM},
    {"info", required_argument, NULL, OPT_INFO},
    {"fs-mount", required_argument, NULL, OPT_FS_MOUNT},
    {"flash-write-us-per-kib", required_argument, NULL, OPT_FLASH_WRITE},
    {"flash-erase-us-per-kib", required_argument, NULL, OPT_FLASH_ERASE},
    {"swap-us-per-kib", required_argument, NULL, OPT_SWAP_TIME},
    {"reboot-delay", required_argument, NULL, OPT_REBOOT_DELAY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"drop-rate", required_argument, NULL, OPT_DROP_RATE},
    {"corrupt-rate", required_argument, NULL, OPT_CORRUPT_RATE},
    {"dup-rate", required_argument, NULL, OPT_DUP_RATE},
    {"reorder-rate", required_argument, NULL, OPT_REORDER_RATE},
    {"busy-rate", required_argument, NULL, OPT_BUSY_RATE},
    {"latency", required_argument, NULL, OPT_LATENCY},
    {"jitter", required_argument, NULL, OPT_JITTER},
    {"bandwidth", required_argument, NULL, OPT_BANDWIDTH},
    {"disconnect-after", required_argument, NULL, OPT_DISCONNECT_AFTER},
    {"reconnect-delay", required_argument, NULL, OPT_RECONNECT_DELAY},
    {"reset-during-upload", required_argument, NULL, OPT_RESET_DURING_UPLOAD},
    {"fail-boot", optional_argument, NULL, OPT_FAIL_BOOT},
    {"control", no_argument, NULL, OPT_CONTROL},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {},
};

static int parse_u64_max(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	int r = sim_parse_u64(s, &v);

	if (r < 0)
		return r;
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

/* The options that may also change at run time (--control "set"). */
static int set_fault(struct sim_config *c, int opt, const char *arg)
{
	struct sim_faults *f = &c->faults;
	uint64_t v;
	int r = 0;

	switch (opt) {
	case OPT_DROP_RATE:
		return sim_parse_rate(arg, &f->drop_rate);
	case OPT_CORRUPT_RATE:
		return sim_parse_rate(arg, &f->corrupt_rate);
	case OPT_DUP_RATE:
		return sim_parse_rate(arg, &f->dup_rate);
	case OPT_REORDER_RATE:
		return sim_parse_rate(arg, &f->reorder_rate);
	case OPT_BUSY_RATE:
		return sim_parse_rate(arg, &f->busy_rate);
	case OPT_LATENCY:
	case OPT_JITTER:
	case OPT_RECONNECT_DELAY:
	case OPT_REBOOT_DELAY:
		r = parse_u64_max(arg, 24ULL * 3600 * 1000, &v);
		if (r < 0)
			return r;
		v *= 1000;
		if (opt == OPT_LATENCY)
			f->latency_us = v;
		else if (opt == OPT_JITTER)
			f->jitter_us = v;
		else if (opt == OPT_RECONNECT_DELAY)
			f->reconnect_delay_us = v;
		else
			c->reboot_delay_us = v;
		return 0;
	case OPT_BANDWIDTH:
		return sim_parse_u64(arg, &f->bandwidth);
	case OPT_DISCONNECT_AFTER:
		return sim_parse_u64(arg, &f->disconnect_after);
	case OPT_RESET_DURING_UPLOAD:
		if (!strcmp(arg, "-1") || !strcmp(arg, "off")) {
			f->reset_during_upload = -1;
			return 0;
		}
		r = parse_u64_max(arg, INT64_MAX, &v);
		if (r == 0)
			f->reset_during_upload = (int64_t)v;
		return r;
	case OPT_FAIL_BOOT:
		if (arg && !strcmp(arg, "off")) {
			f->fail_boot = false;
			return 0;
		}
		f->fail_boot = true;
		f->has_fail_boot_version = arg && *arg;
		if (f->has_fail_boot_version)
			return smp_mcuboot_version_parse(arg, &f->fail_boot_version);
		return 0;
	}
	return -EINVAL;
}

static const char *option_name(int val)
{
	for (const struct option *o = options; o->name; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

static int parse_host_port(const char *s, char **host, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	uint64_t p;
	size_t n;

	if (!colon || sim_parse_u64(colon + 1, &p) < 0 || p > 65535)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0)
		return -EINVAL;
	*host = strndup(s, n);
	*port = (uint16_t)p;
	return *host ? 0 : -ENOMEM;
}

static int parse_args(struct sim_manager *m, int argc, char **argv)
{
	struct sim_config *c = &m->cfg;
	int opt;

	while ((opt = getopt_long(argc, argv, "vqh", options, NULL)) >= 0) {
		uint64_t v = 0;
		int r = 0;

		switch (opt) {
		case OPT_UDP:
			m->udp = true;
			free(m->udp_host);
			r = parse_host_port(optarg, &m->udp_host, &m->udp_port);
			break;
		case OPT_UDP_MTU:
			r = parse_u64_max(optarg, 65535 + 8, &v);
			if (r == 0 && v < 8)
				r = -ERANGE;
			m->udp_mtu = (size_t)v;
			break;
		case OPT_SERIAL:
			m->serial = true;
			break;
		case OPT_PTY_LINK:
			m->pty_link = optarg;
			break;
		case OPT_BAUD:
			r = parse_u64_max(optarg, 100000000, &v);
			m->serial_params.baud = (uint32_t)v;
			break;
		case OPT_LINE_MAX:
			r = parse_u64_max(optarg, 65536, &v);
			if (r == 0 && v < 8)
				r = -ERANGE;
			m->serial_params.line_max = (size_t)v;
			break;
		case OPT_CONSOLE_LOG:
			m->serial_params.console_log = true;
			break;
		case OPT_CONSOLE_INTERLEAVE:
			m->serial_params.console_log = true;
			m->serial_params.interleave = true;
			break;
		case OPT_CONSOLE_INTERVAL:
			r = parse_u64_max(optarg, 3600000, &v);
			m->serial_params.log_interval_ms = (uint32_t)v;
			break;
		case OPT_BLE:
			m->ble = true;
			break;
		case OPT_BLE_BUS:
			m->ble_bus = optarg;
			break;
		case OPT_BLE_MAX_CONN:
			r = parse_u64_max(optarg, 1000, &v);
			m->bluez_cfg.max_connections = (unsigned)v;
			break;
		case OPT_ATT_MTU:
			r = parse_u64_max(optarg, 517, &v);
			if (r == 0 && v < 23)
				r = -ERANGE;
			m->ble_params.att_mtu = (uint16_t)v;
			break;
		case OPT_NO_REASSEMBLY:
			m->ble_params.reassembly = false;
			break;
		case OPT_BLE_CONN_INTERVAL:
			r = parse_u64_max(optarg, 4000, &v);
			m->ble_params.conn_interval_us = (uint32_t)(v * 1000);
			break;
		case OPT_BLE_PACKETS:
			r = parse_u64_max(optarg, 1000, &v);
			m->ble_params.packets_per_event = (unsigned)v;
			break;
		case OPT_COUNT:
			r = parse_u64_max(optarg, 10000, &v);
			if (r == 0 && v == 0)
				r = -ERANGE;
			c->count = (unsigned)v;
			break;
		case OPT_NAME_PREFIX:
			c->name_prefix = optarg;
			if (!*optarg || strchr(optarg, '/'))
				r = -EINVAL;
			break;
		case OPT_APP_VERSION:
			r = smp_mcuboot_version_parse(optarg, &c->app_version);
			break;
		case OPT_STATE:
			c->state_dir = optarg;
			break;
		case OPT_SLOT_SIZE:
			r = parse_u64_max(optarg, 64ULL << 20, &v);
			if (r == 0 && v < 16384)
				r = -ERANGE;
			c->slot_size = (uint32_t)v;
			break;
		case OPT_BUF_SIZE:
			r = parse_u64_max(optarg, 65535 + 8, &v);
			if (r == 0 && v < 64)
				r = -ERANGE;
			c->buf_size = (uint32_t)v;
			break;
		case OPT_BUF_COUNT:
			r = parse_u64_max(optarg, 64, &v);
			if (r == 0 && v == 0)
				r = -ERANGE;
			c->buf_count = (uint32_t)v;
			break;
		case OPT_SMP_VERSION:
			r = parse_u64_max(optarg, 2, &v);
			if (r == 0 && v == 0)
				r = -ERANGE;
			c->smp_version = (unsigned)v;
			break;
		case OPT_BOOTLOADER_MODE:
			r = parse_u64_max(optarg, 9, &v);
			if (r == 0 && v != 1 && v != 2 && v != 3 && v != 9)
				r = -EOPNOTSUPP;
			c->bootloader_mode = (int)v;
			break;
		case OPT_NO_IMAGE_CHECK:
			c->image_check = false;
			break;
		case OPT_NO_MPSTAT:
			c->mpstat = false;
			break;
		case OPT_AUTO_CONFIRM:
			c->auto_confirm = true;
			break;
		case OPT_INFO: {
			static const char chars[] = "snrvbmpio";
			const char *p = strchr(chars, optarg[0]);

			if (!optarg[0] || !p || optarg[1] != '=')
				r = -EINVAL;
			else
				c->info[p - chars] = optarg + 2;
			break;
		}
		case OPT_FS_MOUNT:
			c->fs_mount = optarg;
			if (optarg[0] != '/' || strlen(optarg) < 2 ||
			    optarg[strlen(optarg) - 1] == '/')
				r = -EINVAL;
			break;
		case OPT_FLASH_WRITE:
			r = sim_parse_u64(optarg, &c->flash_write_us_per_kib);
			break;
		case OPT_FLASH_ERASE:
			r = sim_parse_u64(optarg, &c->flash_erase_us_per_kib);
			break;
		case OPT_SWAP_TIME:
			r = sim_parse_u64(optarg, &c->swap_us_per_kib);
			break;
		case OPT_SEED:
			r = sim_parse_u64(optarg, &c->seed);
			break;
		case OPT_CONTROL:
			m->control = true;
			break;
		case 'v':
			if (sim_log_max < SIM_LOG_TRACE)
				sim_log_max++;
			break;
		case 'q':
			sim_log_max = SIM_LOG_ERR;
			break;
		case 'h':
			help();
			exit(EXIT_SUCCESS);
		case '?':
			return -EINVAL;
		default:
			r = set_fault(c, opt, optarg);
			break;
		}
		if (r < 0) {
			sim_log(SIM_LOG_ERR, NULL, "invalid value for --%s: %s", option_name(opt),
				optarg ? optarg : "");
			return r;
		}
	}
	if (optind < argc) {
		sim_log(SIM_LOG_ERR, NULL, "unexpected argument: %s", argv[optind]);
		return -EINVAL;
	}
	if (!m->udp && !m->serial && !m->ble) {
		sim_log(SIM_LOG_ERR, NULL,
			"no transport: give --udp, --serial or --ble (see --help)");
		return -EINVAL;
	}
	if (m->udp && m->udp_port != 0 && (unsigned)m->udp_port + c->count - 1 > 65535) {
		sim_log(SIM_LOG_ERR, NULL, "%u devices do not fit above port %u", c->count,
			m->udp_port);
		return -ERANGE;
	}
	if (m->ble && !m->ble_bus)
		m->ble_bus = getenv("DBUS_SESSION_BUS_ADDRESS");
	if (m->ble && !m->ble_bus) {
		sim_log(SIM_LOG_ERR, NULL, "--ble needs --ble-bus or DBUS_SESSION_BUS_ADDRESS");
		return -EINVAL;
	}
	return 0;
}

static void on_node_event(struct sim_node *n, enum sim_node_event ev, const char *text,
			  void *userdata)
{
	printf("%s\n", text);
	fflush(stdout);
	sim_log(SIM_LOG_INFO, NULL, "%s", text);
}

static char *pty_link_for(const struct sim_manager *m, unsigned i)
{
	const char *p;

	if (!m->pty_link)
		return NULL;
	/* A pattern: the index replaces its %u (or %d). */
	p = strstr(m->pty_link, "%u");
	if (!p)
		p = strstr(m->pty_link, "%d");
	if (p)
		return sim_strdup_printf("%.*s%u%s", (int)(p - m->pty_link), m->pty_link, i, p + 2);
	if (m->cfg.count == 1)
		return strdup(m->pty_link);
	return sim_strdup_printf("%s%u", m->pty_link, i);
}

static int setup_ble(struct sim_manager *m)
{
	int r;

	r = sd_bus_new(&m->bus);
	if (r < 0)
		return r;
	r = sd_bus_set_address(m->bus, m->ble_bus);
	if (r < 0)
		return sim_log_errno(SIM_LOG_ERR, r, NULL, "bad D-Bus address %s", m->ble_bus);
	sd_bus_set_bus_client(m->bus, 1);
	r = sd_bus_start(m->bus);
	if (r < 0)
		return sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot connect to %s", m->ble_bus);
	r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return r;
	r = sim_bluez_new(m->event, m->bus, &m->bluez_cfg, &m->bluez);
	if (r == -EEXIST)
		return sim_log_errno(SIM_LOG_ERR, r, NULL, "org.bluez is taken on %s", m->ble_bus);
	if (r < 0)
		return sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot start the fake BlueZ");
	return 0;
}

static int setup_nodes(struct sim_manager *m)
{
	struct sim_config *c = &m->cfg;
	int r;

	m->nodes = calloc(c->count, sizeof(*m->nodes));
	if (!m->nodes)
		return -ENOMEM;
	for (unsigned i = 0; i < c->count; i++) {
		struct sim_node *n;
		struct sim_link *l;
		uint64_t seed = c->seed * 1000003ULL + i;

		r = sim_node_new(m->event, c, i, m->scratch, on_node_event, m, &n);
		if (r < 0)
			return sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot create device %u", i);
		m->nodes[m->n_nodes++] = n;
		if (m->udp) {
			r = sim_udp_new(n, m->event, &c->faults, seed * 3 + 0, m->udp_host,
					m->udp_port ? (uint16_t)(m->udp_port + i) : 0, m->udp_mtu,
					&l);
			if (r < 0)
				return r;
			r = sim_node_add_link(n, l);
			if (r < 0) {
				sim_link_free(l);
				return r;
			}
		}
		if (m->serial) {
			struct sim_serial_params p = m->serial_params;
			_cleanup_free_ char *link = pty_link_for(m, i);

			if (m->pty_link && !link)
				return -ENOMEM;
			p.link_path = link;
			r = sim_serial_new(n, m->event, &c->faults, seed * 3 + 1, &p, &l);
			if (r < 0)
				return sim_log_errno(SIM_LOG_ERR, r, NULL,
						     "cannot set up the serial port");
			r = sim_node_add_link(n, l);
			if (r < 0) {
				sim_link_free(l);
				return r;
			}
		}
		if (m->ble) {
			r = sim_ble_new(n, m->event, &c->faults, seed * 3 + 2, m->bluez,
					&m->ble_params, &l);
			if (r < 0)
				return sim_log_errno(SIM_LOG_ERR, r, NULL,
						     "cannot add the BLE device");
			r = sim_node_add_link(n, l);
			if (r < 0) {
				sim_link_free(l);
				return r;
			}
		}
	}
	return 0;
}

static void print_ready(struct sim_manager *m)
{
	for (unsigned i = 0; i < m->n_nodes; i++) {
		struct sim_device *d = sim_node_device(m->nodes[i]);
		char ver[SMP_MCUBOOT_VERSION_STRING_MAX];

		sim_image_running_version(sim_device_image(d), ver);
		for (size_t k = 0; k < sim_node_n_links(m->nodes[i]); k++) {
			struct sim_link *l = sim_node_link(m->nodes[i], k);
			_cleanup_free_ char *link =
			    !strcmp(l->ops->kind, "serial") ? pty_link_for(m, i) : NULL;

			printf("READY %s %s%s%s id=%s sn=%s addr=%s version=%s\n", l->ops->kind,
			       l->where, link ? " link=" : "", link ? link : "", sim_device_name(d),
			       sim_device_serial(d), sim_device_address(d), ver);
		}
	}
	printf("READY all count=%u\n", m->n_nodes);
	fflush(stdout);
}

static void control_reply(const char *fmt, ...) _printf_(1, 2);
static void control_reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void control_command(struct sim_manager *m, char *line)
{
	char *save = NULL, *cmd = strtok_r(line, " \t", &save), *a = strtok_r(NULL, " \t", &save);
	char *b = strtok_r(NULL, " \t", &save);

	if (!cmd)
		return;
	if (!strcmp(cmd, "set") && a && b) {
		for (const struct option *o = options; o->name; o++) {
			if (strcmp(o->name, a))
				continue;
			if (set_fault(&m->cfg, o->val, b) < 0)
				break;
			control_reply("OK set %s %s", a, b);
			return;
		}
		control_reply("ERR set %s", a);
	} else if (!strcmp(cmd, "reset") && a) {
		uint64_t i;

		if (!strcmp(a, "all")) {
			for (unsigned k = 0; k < m->n_nodes; k++)
				sim_node_reset(m->nodes[k], "control");
		} else if (sim_parse_u64(a, &i) == 0 && i < m->n_nodes)
			sim_node_reset(m->nodes[i], "control");
		else {
			control_reply("ERR reset %s", a);
			return;
		}
		control_reply("OK reset %s", a);
	} else if (!strcmp(cmd, "dump")) {
		for (unsigned k = 0; k < m->n_nodes; k++)
			sim_node_dump(m->nodes[k]);
		control_reply("OK dump");
	} else if (!strcmp(cmd, "quit")) {
		control_reply("OK quit");
		sd_event_exit(m->event, 0);
	} else
		control_reply("ERR unknown command %s", cmd);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct sim_manager *m = userdata;
	ssize_t n = read(fd, m->line + m->line_len, sizeof(m->line) - 1 - m->line_len);
	char *nl;

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			/* Nobody controls us any more; keep simulating. */
			m->stdin_src = sd_event_source_disable_unref(m->stdin_src);
		return 0;
	}
	m->line_len += (size_t)n;
	m->line[m->line_len] = 0;
	while ((nl = strchr(m->line, '\n'))) {
		*nl = 0;
		control_command(m, m->line);
		memmove(m->line, nl + 1, m->line_len - (size_t)(nl + 1 - m->line) + 1);
		m->line_len -= (size_t)(nl + 1 - m->line);
	}
	if (m->line_len == sizeof(m->line) - 1)
		m->line_len = 0; /* an overlong line is thrown away */
	return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct sim_manager *m = userdata;

	sim_log(SIM_LOG_INFO, NULL, "signal %u: exiting", si->ssi_signo);
	sd_event_exit(m->event, 0);
	return 0;
}

static int on_usr1(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct sim_manager *m = userdata;

	for (unsigned i = 0; i < m->n_nodes; i++)
		sim_node_dump(m->nodes[i]);
	return 0;
}

static void manager_free(struct sim_manager *m)
{
	for (unsigned i = 0; i < m->n_nodes; i++)
		sim_node_free(m->nodes[i]);
	free(m->nodes);
	sim_bluez_free(m->bluez);
	if (m->bus)
		sd_bus_flush_close_unref(m->bus);
	sd_event_source_disable_unref(m->stdin_src);
	sd_event_source_disable_unref(m->sig_term);
	sd_event_source_disable_unref(m->sig_int);
	sd_event_source_disable_unref(m->sig_usr1);
	if (m->scratch) {
		sim_rm_rf(m->scratch);
		free(m->scratch);
	}
	free(m->udp_host);
	sd_event_unref(m->event);
}

int main(int argc, char **argv)
{
	struct sim_manager m = {.udp_mtu = 1500};
	sigset_t mask;
	int r;

	sim_config_init(&m.cfg);
	m.ble_params = (struct sim_ble_params){.att_mtu = 247, .reassembly = true};
	m.serial_params = (struct sim_serial_params){.line_max = 128, .log_interval_ms = 1000};
	r = parse_args(&m, argc, argv);
	if (r < 0) {
		manager_free(&m);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_default(&m.event);
	if (r < 0)
		goto fail;
	r = sd_event_add_signal(m.event, &m.sig_term, SIGTERM, on_exit_signal, &m);
	if (r >= 0)
		r = sd_event_add_signal(m.event, &m.sig_int, SIGINT, on_exit_signal, &m);
	if (r >= 0)
		r = sd_event_add_signal(m.event, &m.sig_usr1, SIGUSR1, on_usr1, &m);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(m.sig_term, "sim-sigterm");
	sd_event_source_set_description(m.sig_int, "sim-sigint");
	sd_event_source_set_description(m.sig_usr1, "sim-sigusr1");
	if (!m.cfg.state_dir) {
		const char *tmp = getenv("TMPDIR");
		_cleanup_free_ char *tmpl =
		    sim_strdup_printf("%s/smp-sim-XXXXXX", tmp && *tmp ? tmp : "/tmp");

		if (!tmpl || !mkdtemp(tmpl)) {
			r = -errno;
			sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot create a scratch directory");
			goto fail;
		}
		m.scratch = TAKE_PTR(tmpl);
	} else {
		r = sim_mkdir_p(m.cfg.state_dir);
		if (r < 0) {
			sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot create %s", m.cfg.state_dir);
			goto fail;
		}
	}
	if (m.ble) {
		r = setup_ble(&m);
		if (r < 0)
			goto fail;
	}
	r = setup_nodes(&m);
	if (r < 0)
		goto fail;
	if (m.control) {
		fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
		r = sd_event_add_io(m.event, &m.stdin_src, STDIN_FILENO, EPOLLIN, on_stdin, &m);
		if (r < 0)
			goto fail;
		sd_event_source_set_description(m.stdin_src, "sim-control");
	}
	print_ready(&m);
	r = sd_event_loop(m.event);
	if (r < 0)
		sim_log_errno(SIM_LOG_ERR, r, NULL, "event loop failed");
	manager_free(&m);
	return r < 0 ? 1 : 0;
fail:
	if (r < 0)
		sim_log_errno(SIM_LOG_ERR, r, NULL, "cannot start");
	manager_free(&m);
	return 1;
}
