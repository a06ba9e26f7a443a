/* fuzz-replay: runs a fuzz target over corpus files, as a TAP test, without libFuzzer */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "tests/fuzz/fuzz.h"
#include "tests/tap.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the corpus directory under tests/fuzz/corpus/"
#endif

/* The path without the source tree in front, for shorter test names. */
static const char *short_name(const char *path)
{
	const char *top = getenv("top_srcdir");
	size_t n = top ? strlen(top) : 0;

	if (n > 0 && strncmp(path, top, n) == 0 && path[n] == '/')
		return path + n + 1;
	return path;
}

/* A crash aborts the whole program; the name printed before each input tells
 * which file did it (in the test's .log). */
static void replay_file(const char *path)
{
	size_t n;
	_cleanup_free_ uint8_t *data = NULL;

	tap_diag("replaying %s", short_name(path));
	fflush(stdout);
	data = tap_read_file(path, &n);
	LLVMFuzzerTestOneInput(data, n);
}

static int skip_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* One test per file given, one per directory (a corpus holds hundreds of files). */
static void replay_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	int n;

	if (stat(path, &st) < 0) {
		ok(false, "%s: %s", short_name(path), strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(path);
		ok(true, "%s", short_name(path));
		return;
	}
	/* Sorted, so that runs are reproducible. */
	n = scandir(path, &names, skip_hidden, alphasort);
	if (n < 0) {
		ok(false, "%s: %s", short_name(path), strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *file = NULL;

		if (asprintf(&file, "%s/%s", path, names[i]->d_name) < 0)
			abort();
		replay_file(file);
		free(names[i]);
	}
	free(names);
	ok(n > 0, "%s: %d inputs", short_name(path), n);
}

/* Arguments: files or directories to replay; none means the target's corpus
 * in $top_srcdir/tests/fuzz/corpus/. */
int main(int argc, char **argv)
{
	if (argc < 2)
		replay_path(tap_srcpath("tests/fuzz/corpus/" FUZZ_TARGET));
	for (int i = 1; i < argc; i++)
		replay_path(argv[i]);
	return tap_done();
}
