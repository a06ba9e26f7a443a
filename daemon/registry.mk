# daemon/: the device registry, persisted in db/db-devices.
daemon_libgw_a_SOURCES += daemon/gw-registry.c

check_PROGRAMS += tests/daemon/test-gw-registry
TESTS += tests/daemon/test-gw-registry
tests_daemon_test_gw_registry_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_registry_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
