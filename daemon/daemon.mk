# daemon/: smpgwd.
noinst_LIBRARIES += daemon/libgw.a
daemon_libgw_a_SOURCES = daemon/gw-config.c daemon/gw-config.h daemon/gw-log.c daemon/gw-log.h \
	daemon/gw-manager.c daemon/gw-manager.h daemon/gw-registry.h daemon/gw-devices.h
daemon_libgw_a_CFLAGS = $(AM_CFLAGS) $(INIH_CFLAGS) $(SYSTEMD_CFLAGS) $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) $(CBOR_CFLAGS)
# The manager starts the REST API (api/) whose handlers call back into daemon/:
# libgw.a comes again after libapi.a so that either order of use links.
GW_LIBS = daemon/libgw.a $(API_LIBS) daemon/libgw.a $(DB_LIBS) $(INIH_LIBS) $(JANSSON_LIBS) \
	$(SYSTEMD_LIBS)
EXTRA_DIST += etc/smpgwd.conf

sbin_PROGRAMS += smpgwd
smpgwd_SOURCES = daemon/smpgwd.c
smpgwd_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS) $(JANSSON_CFLAGS)
smpgwd_LDADD = $(API_LIBS) $(GW_LIBS) $(LIBSMP_LIBS)

DAEMON_UNIT_TESTS = tests/daemon/test-gw-config tests/daemon/test-gw-log
check_PROGRAMS += $(DAEMON_UNIT_TESTS)
TESTS += $(DAEMON_UNIT_TESTS)
tests_daemon_test_gw_log_CFLAGS = $(TEST_CFLAGS)
tests_daemon_test_gw_log_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
tests_daemon_test_gw_config_CFLAGS = $(TEST_CFLAGS) $(INIH_CFLAGS)
tests_daemon_test_gw_config_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
