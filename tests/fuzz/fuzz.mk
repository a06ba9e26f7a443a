# Fuzz targets (tests/fuzz/README.md). Under make check each target is linked
# with the replay driver and run over its corpus; with --enable-fuzzing the
# libFuzzer binaries are built too (tests/fuzz/fuzz-<target>-libfuzzer).
FUZZ_SOURCES_COMMON = tests/fuzz/fuzz.h

FUZZ_REPLAY_TESTS = \
	tests/fuzz/fuzz-response \
	tests/fuzz/fuzz-serial \
	tests/fuzz/fuzz-ble \
	tests/fuzz/fuzz-image \
	tests/fuzz/fuzz-json
check_PROGRAMS += $(FUZZ_REPLAY_TESTS)
TESTS += $(FUZZ_REPLAY_TESTS)

tests_fuzz_fuzz_response_SOURCES = tests/fuzz/fuzz-response.c tests/fuzz/fuzz-replay.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_response_CFLAGS = $(TEST_CFLAGS) -DFUZZ_TARGET='"response"'
tests_fuzz_fuzz_response_LDADD = $(TEST_LIBS)
tests_fuzz_fuzz_serial_SOURCES = tests/fuzz/fuzz-serial.c tests/fuzz/fuzz-replay.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_serial_CFLAGS = $(TEST_CFLAGS) -DFUZZ_TARGET='"serial"'
tests_fuzz_fuzz_serial_LDADD = $(TEST_LIBS)
tests_fuzz_fuzz_ble_SOURCES = tests/fuzz/fuzz-ble.c tests/fuzz/fuzz-replay.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_ble_CFLAGS = $(TEST_CFLAGS) -DFUZZ_TARGET='"ble"'
tests_fuzz_fuzz_ble_LDADD = $(TEST_LIBS)
tests_fuzz_fuzz_image_SOURCES = tests/fuzz/fuzz-image.c tests/fuzz/fuzz-replay.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_image_CFLAGS = $(TEST_CFLAGS) -DFUZZ_TARGET='"image"'
tests_fuzz_fuzz_image_LDADD = $(TEST_LIBS)
tests_fuzz_fuzz_json_SOURCES = tests/fuzz/fuzz-json.c tests/fuzz/fuzz-replay.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_json_CFLAGS = $(TEST_CFLAGS) -DFUZZ_TARGET='"json"'
tests_fuzz_fuzz_json_LDADD = $(TEST_LIBS)

FUZZ_DIST_FILES = \
	tests/fuzz/README.md \
	tests/fuzz/run.sh \
	tests/fuzz/seed-corpus.py \
	tests/fuzz/fuzz-response.dict \
	tests/fuzz/fuzz-serial.dict \
	tests/fuzz/fuzz-ble.dict \
	tests/fuzz/fuzz-image.dict \
	tests/fuzz/fuzz-json.dict \
	tests/fuzz/corpus
EXTRA_DIST += $(FUZZ_DIST_FILES)

if ENABLE_FUZZING
FUZZ_LIBFUZZER = \
	tests/fuzz/fuzz-response-libfuzzer \
	tests/fuzz/fuzz-serial-libfuzzer \
	tests/fuzz/fuzz-ble-libfuzzer \
	tests/fuzz/fuzz-image-libfuzzer \
	tests/fuzz/fuzz-json-libfuzzer
noinst_PROGRAMS += $(FUZZ_LIBFUZZER)

# libsmp gets coverage instrumentation and ASan/UBSan (FUZZ_CFLAGS), so every
# program that links it needs the sanitizer runtimes; the fuzz binaries add
# libFuzzer itself (FUZZ_LDFLAGS), which brings its own main().
lib_libsmp_a_CFLAGS += $(FUZZ_CFLAGS)
AM_LDFLAGS += -fsanitize=address,undefined

FUZZ_LIBFUZZER_CFLAGS = $(TEST_CFLAGS) $(FUZZ_CFLAGS)
tests_fuzz_fuzz_response_libfuzzer_SOURCES = tests/fuzz/fuzz-response.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_response_libfuzzer_CFLAGS = $(FUZZ_LIBFUZZER_CFLAGS)
tests_fuzz_fuzz_response_libfuzzer_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_response_libfuzzer_LDADD = $(LIBSMP_LIBS)
tests_fuzz_fuzz_serial_libfuzzer_SOURCES = tests/fuzz/fuzz-serial.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_serial_libfuzzer_CFLAGS = $(FUZZ_LIBFUZZER_CFLAGS)
tests_fuzz_fuzz_serial_libfuzzer_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_serial_libfuzzer_LDADD = $(LIBSMP_LIBS)
tests_fuzz_fuzz_ble_libfuzzer_SOURCES = tests/fuzz/fuzz-ble.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_ble_libfuzzer_CFLAGS = $(FUZZ_LIBFUZZER_CFLAGS)
tests_fuzz_fuzz_ble_libfuzzer_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_ble_libfuzzer_LDADD = $(LIBSMP_LIBS)
tests_fuzz_fuzz_image_libfuzzer_SOURCES = tests/fuzz/fuzz-image.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_image_libfuzzer_CFLAGS = $(FUZZ_LIBFUZZER_CFLAGS)
tests_fuzz_fuzz_image_libfuzzer_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_image_libfuzzer_LDADD = $(LIBSMP_LIBS)
tests_fuzz_fuzz_json_libfuzzer_SOURCES = tests/fuzz/fuzz-json.c $(FUZZ_SOURCES_COMMON)
tests_fuzz_fuzz_json_libfuzzer_CFLAGS = $(FUZZ_LIBFUZZER_CFLAGS)
tests_fuzz_fuzz_json_libfuzzer_LDFLAGS = $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_json_libfuzzer_LDADD = $(LIBSMP_LIBS)
endif

# make fuzz [FUZZ_TARGETS="json ble"] [FUZZ_SECONDS=600]: runs each libFuzzer
# binary for a while with its dictionary, merging new finds into the corpus.
FUZZ_TARGETS = response serial ble image json
FUZZ_SECONDS = 60
fuzz:
if ENABLE_FUZZING
	@$(MAKE) $(AM_MAKEFLAGS) $(FUZZ_LIBFUZZER)
	@for t in $(FUZZ_TARGETS); do \
		$(SHELL) $(top_srcdir)/tests/fuzz/run.sh $$t $(FUZZ_SECONDS) || exit 1; \
	done
else
	@echo "make fuzz needs a build configured with CC=clang --enable-fuzzing" >&2; exit 1
endif
.PHONY: fuzz
