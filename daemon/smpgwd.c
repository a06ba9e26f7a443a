/* smpgwd: the SMP gateway daemon's entry point: options, then the manager's loop */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/gw-config.h"
#include "daemon/gw-log.h"
#include "daemon/gw-manager.h"
#include "daemon/gw-tokens.h"
#include "db/db.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: smpgwd [OPTION]...\n"
		"       smpgwd [OPTION]... token create NAME --role viewer|operator|admin\n"
		"       smpgwd [OPTION]... token list\n"
		"       smpgwd [OPTION]... token revoke NAME\n"
		"The SMP gateway daemon: finds SMP (MCUmgr) devices over BLE, serial and UDP,\n"
		"and manages them through a REST API.\n\n"
		"The token commands manage the API's bearer tokens in the database of the\n"
		"state directory, also while the daemon runs. \"token create\" prints the\n"
		"secret once, as the last line of its output: it is stored only as a hash.\n\n"
		"  -c, --config FILE      configuration file (default " GW_DEFAULT_CONFIG ")\n"
		"  -s, --state-dir DIR    database and firmware files (overrides [daemon] state_dir)\n"
		"  -l, --listen ADDR      REST API address host:port (overrides [http] listen)\n"
		"      --log-level LEVEL  err, warning, notice, info or debug\n"
		"      --debug MODULES    comma-separated modules logged at debug level, or all\n"
		"  -h, --help             show this help\n"
		"      --version          show the version\n"
		"      --role ROLE        the new token's role (token create)\n\n"
		"Exit status: 0 success, 1 failure (with a message), 2 bad usage.\n"
		"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the configuration.\n"
		"See smpgwd(8) and smpgwd.conf(5).\n");
}

static void token_on_config_warning(const char *msg, void *userdata)
{
	fprintf(stderr, "smpgwd: %s\n", msg);
}

/* The configuration as the daemon would read it, for its state directory. */
static int token_read_config(const char *path, const struct gw_manager_overrides *o,
			     struct gw_config *c)
{
	int r;

	r = gw_config_init(c);
	if (r < 0)
		return r;
	r = gw_config_load(c, path ? path : GW_DEFAULT_CONFIG, token_on_config_warning, NULL);
	if (r < 0 && !(r == -ENOENT && !path)) {
		fprintf(stderr, "smpgwd: cannot read %s: %s\n", path ? path : GW_DEFAULT_CONFIG,
			strerror(-r));
		return r;
	}
	if (o->state_dir) {
		r = gw_config_set(c, "daemon", "state_dir", o->state_dir);
		if (r < 0) {
			fprintf(stderr, "smpgwd: bad value \"%s\" for --state-dir\n", o->state_dir);
			return r;
		}
	}
	return 0;
}

static int token_open_db(const struct gw_config *c, struct db **ret)
{
	char path[4096], err[512] = "";
	int r;

	if (mkdir(c->state_dir, 0750) < 0 && errno != EEXIST) {
		fprintf(stderr, "smpgwd: cannot create state directory %s: %s\n", c->state_dir,
			strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/" GW_DB_FILE, c->state_dir);
	r = db_open(path, ret, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "smpgwd: %s\n", err[0] ? err : strerror(-r));
	return r;
}

static bool token_role_known(const char *role)
{
	return strcmp(role, "viewer") == 0 || strcmp(role, "operator") == 0 ||
	       strcmp(role, "admin") == 0;
}

static int token_create(struct gw_tokens *t, const char *name, const char *role)
{
	char *secret = NULL;
	int r;

	r = gw_tokens_create(t, name, role, &secret);
	if (r == -EEXIST) {
		fprintf(stderr, "smpgwd: a token named \"%s\" exists already (revoked names stay taken)\n",
			name);
		return EXIT_FAILURE;
	}
	if (r == -EINVAL) {
		fprintf(stderr, "smpgwd: bad token name \"%s\": 1 to 64 characters of A-Z, a-z, 0-9, "
			"'.', '_' and '-'\n", name);
		return EXIT_FAILURE;
	}
	if (r < 0) {
		fprintf(stderr, "smpgwd: cannot create the token: %s\n", strerror(-r));
		return EXIT_FAILURE;
	}
	fprintf(stderr, "Token \"%s\" (role %s) created. Its secret follows; it is not stored and "
		"cannot be shown again:\n", name, role);
	fflush(stderr);
	printf("%s\n", secret);
	r = fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return r;
}

static void token_time(const json_t *v, char *buf, size_t len)
{
	time_t t;
	struct tm tm;

	if (!json_is_integer(v)) {
		snprintf(buf, len, "-");
		return;
	}
	t = (time_t)(json_integer_value(v) / 1000);
	if (!localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
}

static int token_list(struct gw_tokens *t)
{
	static const char *const head[] = { "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED" };
	enum { COLS = 5 };
	char cell[COLS][64];
	int w[COLS];
	json_t *list = NULL, *tok;
	size_t i;
	int r;

	r = gw_tokens_list(t, &list);
	if (r < 0) {
		fprintf(stderr, "smpgwd: cannot list the tokens: %s\n", strerror(-r));
		return EXIT_FAILURE;
	}
	/* Two passes: the widths, then the rows. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1], w[2],
			       head[2], w[3], head[3], head[4]);
		else
			for (int c = 0; c < COLS; c++)
				w[c] = (int)strlen(head[c]);
		json_array_foreach(list, i, tok) {
			snprintf(cell[0], sizeof(cell[0]), "%s",
				 json_string_value(json_object_get(tok, "name")));
			snprintf(cell[1], sizeof(cell[1]), "%s",
				 json_string_value(json_object_get(tok, "role")));
			token_time(json_object_get(tok, "created_at"), cell[2], sizeof(cell[2]));
			token_time(json_object_get(tok, "last_used_at"), cell[3], sizeof(cell[3]));
			token_time(json_object_get(tok, "revoked_at"), cell[4], sizeof(cell[4]));
			if (pass == 1) {
				printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], cell[0], w[1], cell[1],
				       w[2], cell[2], w[3], cell[3], cell[4]);
				continue;
			}
			for (int c = 0; c < COLS; c++)
				w[c] = MAX(w[c], (int)strlen(cell[c]));
		}
	}
	json_decref(list);
	return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int token_revoke(struct gw_tokens *t, const char *name)
{
	int r = gw_tokens_revoke(t, name);

	if (r == -ENOENT)
		fprintf(stderr, "smpgwd: no token named \"%s\"\n", name);
	else if (r == -EALREADY)
		fprintf(stderr, "smpgwd: token \"%s\" is revoked already\n", name);
	else if (r < 0)
		fprintf(stderr, "smpgwd: cannot revoke \"%s\": %s\n", name, strerror(-r));
	else
		fprintf(stderr, "Token \"%s\" revoked.\n", name);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* "token create NAME --role ROLE", "token list", "token revoke NAME": on the
 * database directly, without the daemon (sqlite's WAL and busy timeout let
 * both write). */
static int token_main(const char *config, const struct gw_manager_overrides *o,
		      const char *role, int argc, char **argv)
{
	struct gw_config c = { 0 };
	struct gw_tokens *t = NULL;
	struct db *db = NULL;
	const char *cmd = argc > 0 ? argv[0] : "";
	int want = strcmp(cmd, "list") == 0 ? 1 : 2, r;

	if ((strcmp(cmd, "create") != 0 && strcmp(cmd, "list") != 0 &&
	     strcmp(cmd, "revoke") != 0) || argc != want) {
		fprintf(stderr, "smpgwd: usage: token create NAME --role ROLE | token list | "
			"token revoke NAME\n");
		return 2;
	}
	if (strcmp(cmd, "create") == 0) {
		if (!role) {
			fprintf(stderr, "smpgwd: token create needs --role viewer, operator or admin\n");
			return 2;
		}
		if (!token_role_known(role)) {
			fprintf(stderr, "smpgwd: unknown role \"%s\": viewer, operator or admin\n", role);
			return EXIT_FAILURE;
		}
	} else if (role) {
		fprintf(stderr, "smpgwd: --role belongs to token create\n");
		return 2;
	}

	r = token_read_config(config, o, &c);
	if (r >= 0)
		r = token_open_db(&c, &db);
	if (r >= 0) {
		r = gw_tokens_new(db, &t);
		if (r < 0)
			fprintf(stderr, "smpgwd: %s\n", strerror(-r));
	}
	if (r < 0)
		r = EXIT_FAILURE;
	else if (strcmp(cmd, "create") == 0)
		r = token_create(t, argv[1], role);
	else if (strcmp(cmd, "list") == 0)
		r = token_list(t);
	else
		r = token_revoke(t, argv[1]);
	gw_tokens_free(t);
	db_close(db);
	gw_config_clear(&c);
	return r;
}

int main(int argc, char **argv)
{
	enum { OPT_LOG_LEVEL = 256, OPT_DEBUG, OPT_VERSION, OPT_ROLE };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "debug", required_argument, NULL, OPT_DEBUG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ 0 },
	};
	struct gw_manager_overrides o = { 0 };
	const char *config = NULL, *role = NULL;
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
		case OPT_ROLE: role = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	/* getopt_long moved the options after a subcommand in front of it. */
	if (optind < argc && strcmp(argv[optind], "token") == 0) {
		/* No loop to hand signals to: Ctrl-C ends a command at once. */
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
		return token_main(config, &o, role, argc - optind - 1, argv + optind + 1);
	}
	if (role) {
		fprintf(stderr, "smpgwd: --role belongs to token create\n");
		return 2;
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
