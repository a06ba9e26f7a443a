# daemon/: BLE discovery through BlueZ.
daemon_libgw_a_SOURCES += daemon/gw-bluez.c daemon/gw-bluez.h

BLUEZ_DAEMON_TESTS = tests/daemon/test-gw-bluez
check_PROGRAMS += $(BLUEZ_DAEMON_TESTS)
TESTS += $(BLUEZ_DAEMON_TESTS)
tests_daemon_test_gw_bluez_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_bluez_LDADD = tests/libtesthelp.a tests/sim/libsimbluez.a $(GW_LIBS) $(LIBSMP_LIBS)
