# libsmp group codecs: typed request builders and response parsers for every
# standard SMP group, and the dispatcher that picks one by header.
lib_libsmp_a_SOURCES += \
	lib/smp-groups-internal.h \
	lib/smp-groups.c lib/smp-groups.h \
	lib/smp-os.c lib/smp-os.h \
	lib/smp-image.c lib/smp-image.h \
	lib/smp-stat.c lib/smp-stat.h \
	lib/smp-settings.c lib/smp-settings.h \
	lib/smp-fs.c lib/smp-fs.h \
	lib/smp-shell.c lib/smp-shell.h \
	lib/smp-enum.c lib/smp-enum.h \
	lib/smp-zephyr.c lib/smp-zephyr.h

# Real Zephyr 4.1 smp_svr request/response pairs, read by the group tests.
dist_noinst_DATA += \
	tests/data/zephyr-4.1/udp-v1.json \
	tests/data/zephyr-4.1/udp-v2.json

# Helpers shared by the group tests: recordings, malformed-field tables.
check_LIBRARIES += tests/unit/libgrouptest.a
tests_unit_libgrouptest_a_SOURCES = tests/unit/group-test.c tests/unit/group-test.h
tests_unit_libgrouptest_a_CFLAGS = $(TEST_CFLAGS)

GROUPS_UNIT_TESTS = \
	tests/unit/test-smp-os \
	tests/unit/test-smp-image \
	tests/unit/test-smp-stat \
	tests/unit/test-smp-settings \
	tests/unit/test-smp-fs \
	tests/unit/test-smp-shell \
	tests/unit/test-smp-enum \
	tests/unit/test-smp-zephyr \
	tests/unit/test-smp-groups
check_PROGRAMS += $(GROUPS_UNIT_TESTS)
TESTS += $(GROUPS_UNIT_TESTS)
GROUPS_TEST_LIBS = tests/unit/libgrouptest.a $(TEST_LIBS)
tests_unit_test_smp_os_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_os_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_image_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_image_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_stat_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_stat_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_settings_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_settings_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_fs_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_fs_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_shell_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_shell_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_enum_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_enum_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_zephyr_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_zephyr_LDADD = $(GROUPS_TEST_LIBS)
tests_unit_test_smp_groups_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_groups_LDADD = $(GROUPS_TEST_LIBS)
