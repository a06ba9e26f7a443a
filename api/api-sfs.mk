# api/: the settings, file system and shell routes, and the text helpers they share.
api_libapi_a_SOURCES += \
	api/api-settings.c \
	api/api-fs.c \
	api/api-shell.c \
	api/api-text.c api/api-text.h

API_SFS_UNIT_TESTS = tests/api/test-api-text
check_PROGRAMS += $(API_SFS_UNIT_TESTS)
TESTS += $(API_SFS_UNIT_TESTS)
tests_api_test_api_text_CFLAGS = $(TEST_CFLAGS)
tests_api_test_api_text_LDADD = api/libapi.a $(TEST_LIBS)

# Black-box: smpgwd against smp-sim, every settings, file and shell route.
TESTS += tests/integration/test-api-settings-fs-shell.py
EXTRA_DIST += tests/integration/test-api-settings-fs-shell.py
