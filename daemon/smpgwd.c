/* smpgwd: the SMP gateway daemon's entry point: options, then the manager's loop */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: smpgwd [OPTION]...\n"
		"The SMP gateway daemon: finds SMP (MCUmgr) devices over BLE, serial and UDP,\n"
		"and manages them through a REST API.\n\n"
		"  -c, --config FILE      configuration file (default " GW_DEFAULT_CONFIG ")\n"
		"  -s, --state-dir DIR    database and firmware files (overrides [daemon] state_dir)\n"
		"  -l, --listen ADDR      REST API address host:port (overrides [http] listen)\n"
		"      --log-level LEVEL  err, warning, notice, info or debug\n"
		"      --debug MODULES    comma-separated modules logged at debug level, or all\n"
		"  -h, --help             show this help\n"
		"      --version          show the version\n\n"
		"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the configuration.\n"
		"See smpgwd(8) and smpgwd.conf(5).\n");
}

int main(int argc, char **argv)
{
	enum { OPT_LOG_LEVEL = 256, OPT_DEBUG, OPT_VERSION };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "debug", required_argument, NULL, OPT_DEBUG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	struct gw_manager_overrides o = { 0 };
	const char *config = NULL;
	struct gw_manager *m = NULL;
	sigset_t mask;
	int c, r;

	/* A stop request during start-up is kept for the loop, not fatal. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	while ((c = getopt_long(argc, argv, "c:s:l:h", options, NULL)) >= 0) {
		switch (c) {
		case 'c': config = optarg; break;
		case 's': o.state_dir = optarg; break;
		case 'l': o.listen = optarg; break;
		case OPT_LOG_LEVEL: o.log_level = optarg; break;
		case OPT_DEBUG: o.debug = optarg; break;
		case 'h': usage(stdout); return EXIT_SUCCESS;
		case OPT_VERSION: printf("smpgwd %s\n", PACKAGE_VERSION); return EXIT_SUCCESS;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "smpgwd: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return 2;
	}

	r = gw_manager_new(config, &o, &m);
	if (r < 0)
		return EXIT_FAILURE;
	r = gw_manager_start(m);
	if (r == 0)
		r = gw_manager_run(m);
	gw_manager_free(m);
	gw_info("core", "stopped");
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
