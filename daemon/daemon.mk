# daemon/: smpgwd.
noinst_LIBRARIES += daemon/libgw.a
daemon_libgw_a_SOURCES = daemon/gw-config.c daemon/gw-config.h
daemon_libgw_a_CFLAGS = $(AM_CFLAGS) $(INIH_CFLAGS)
GW_LIBS = daemon/libgw.a $(INIH_LIBS)
EXTRA_DIST += etc/smpgwd.conf

check_PROGRAMS += tests/daemon/test-gw-config
TESTS += tests/daemon/test-gw-config
tests_daemon_test_gw_config_CFLAGS = $(TEST_CFLAGS) $(INIH_CFLAGS)
tests_daemon_test_gw_config_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
