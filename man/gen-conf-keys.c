/* gen-conf-keys: writes smpgwd.conf(5) from its template, the key list taken from smpgwd's own table */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/gw-config.h"

#define KEYS_MARKER "@CONFIG_KEYS@"
#define VERSION_MARKER "@PACKAGE_VERSION@"

/* roff takes a backslash as an escape and a leading dot or quote as a
 * request; a plain '-' may become a hyphen. The key table's help texts are
 * sentence fragments: capitalise makes the first letter a capital. */
static void put_escaped(FILE *f, const char *s, bool capitalise)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	if (capitalise && *s >= 'a' && *s <= 'z')
		fputc(*s++ - 'a' + 'A', f);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

static void put_keys(FILE *f)
{
	const struct gw_config_key_info *k;
	const char *section = NULL;
	size_t n;

	k = gw_config_keys(&n);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(k[i].help);

		if (!section || strcmp(section, k[i].section) != 0) {
			section = k[i].section;
			fputs(".SS \"[", f);
			put_escaped(f, section, false);
			fputs("]\"\n", f);
		}
		fputs(".TP\n\\fB", f);
		put_escaped(f, k[i].key, false);
		fputs("\\fR = ", f);
		if (*k[i].default_value) {
			fputs("\\fI", f);
			put_escaped(f, k[i].default_value, false);
			fputs("\\fR\n", f);
		} else {
			fputs("(empty)\n", f);
		}
		put_escaped(f, k[i].help, true);
		fputs(len && k[i].help[len - 1] == '.' ? "\n" : ".\n", f);
		if (k[i].apply == GW_CONFIG_APPLY_RESTART)
			fputs("A reload leaves it as smpgwd started; it takes effect at the next start.\n",
			      f);
		else if (k[i].apply == GW_CONFIG_APPLY_NEW_LINKS)
			fputs("A reload reaches the device links opened after it.\n", f);
	}
}

int main(int argc, char **argv)
{
	char line[4096];
	unsigned markers = 0;
	FILE *in;

	if (argc != 3) {
		fprintf(stderr, "Usage: gen-conf-keys TEMPLATE VERSION > smpgwd.conf.5\n");
		return 2;
	}
	in = fopen(argv[1], "re");
	if (!in) {
		fprintf(stderr, "gen-conf-keys: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), in)) {
		char *v = strstr(line, VERSION_MARKER);

		if (strcmp(line, KEYS_MARKER "\n") == 0) {
			put_keys(stdout);
			markers++;
		} else if (v) {
			fwrite(line, 1, (size_t)(v - line), stdout);
			fputs(argv[2], stdout);
			fputs(v + strlen(VERSION_MARKER), stdout);
		} else {
			fputs(line, stdout);
		}
	}
	fclose(in);
	/* A template that lost its marker would give a page without keys. */
	if (markers != 1) {
		fprintf(stderr, "gen-conf-keys: %s: expected one line " KEYS_MARKER ", found %u\n",
			argv[1], markers);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
