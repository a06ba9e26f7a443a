# daemon/: shared per-device clients with the BLE connection budget, and background polling.
daemon_libgw_a_SOURCES += daemon/gw-devices.c daemon/gw-poller.c daemon/gw-poller.h

DEVICES_TESTS = tests/daemon/test-gw-devices tests/daemon/test-gw-poller
check_PROGRAMS += $(DEVICES_TESTS)
TESTS += $(DEVICES_TESTS)
DEVICES_TEST_LIBS = tests/sim/libsimtest.a tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
tests_daemon_test_gw_devices_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_devices_LDADD = $(DEVICES_TEST_LIBS)
tests_daemon_test_gw_poller_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_poller_LDADD = $(DEVICES_TEST_LIBS)
