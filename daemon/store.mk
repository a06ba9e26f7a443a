# daemon/ + db/: API tokens and the firmware store, with their tables.
db_libdb_a_SOURCES += db/db-tokens.c db/db-tokens.h db/db-firmware.c db/db-firmware.h
# Listed after 0003 (db/db.mk) and before any later migration: the order is the version order.
daemon_libgw_a_SOURCES += daemon/gw-tokens.c daemon/gw-tokens.h daemon/gw-firmware.c \
	daemon/gw-firmware.h
daemon_libgw_a_CFLAGS += $(NETTLE_CFLAGS)

STORE_TESTS = tests/daemon/test-gw-tokens tests/daemon/test-gw-firmware
check_PROGRAMS += $(STORE_TESTS)
TESTS += $(STORE_TESTS)
tests_daemon_test_gw_tokens_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_tokens_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
tests_daemon_test_gw_firmware_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_daemon_test_gw_firmware_LDADD = tests/libtesthelp.a $(GW_LIBS) $(LIBSMP_LIBS)
