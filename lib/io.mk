# (filled in by its area)

# --- transports (UDP, serial, BLE through BlueZ), the fake BlueZ and the private bus ---
lib_libsmp_a_SOURCES += \
	lib/smp-transport.c lib/smp-transport.h lib/smp-transport-internal.h \
	lib/smp-udp.c lib/smp-udp.h \
	lib/smp-serial-link.c lib/smp-serial-link.h \
	lib/smp-ble-link.c lib/smp-ble-link.h

# The fake BlueZ is a noinst library: the simulator (tests/sim) links it too.
noinst_LIBRARIES += tests/sim/libsimbluez.a
tests_sim_libsimbluez_a_SOURCES = tests/sim/sim-bluez.c tests/sim/sim-bluez.h
tests_sim_libsimbluez_a_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS)

tests_libtesthelp_a_SOURCES += tests/dbus-helper.c tests/dbus-helper.h
EXTRA_DIST += tests/dbus/session.conf

TRANSPORT_UNIT_TESTS = \
	tests/unit/test-smp-udp \
	tests/unit/test-smp-serial-link \
	tests/unit/test-smp-ble-link
check_PROGRAMS += $(TRANSPORT_UNIT_TESTS)
TESTS += $(TRANSPORT_UNIT_TESTS)
tests_unit_test_smp_udp_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_udp_LDADD = $(TEST_LIBS)
tests_unit_test_smp_serial_link_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_serial_link_LDADD = $(TEST_LIBS)
tests_unit_test_smp_ble_link_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_ble_link_LDADD = tests/sim/libsimbluez.a $(TEST_LIBS)

# --- the per-device client and the upload/download operations ---
lib_libsmp_a_SOURCES += \
	lib/smp-client.c lib/smp-client.h \
	lib/smp-upload.c lib/smp-upload.h

# Scripted SEQPACKET link and device shared by the client tests.
check_LIBRARIES += tests/unit/libclienttest.a
tests_unit_libclienttest_a_SOURCES = tests/unit/client-test.c tests/unit/client-test.h
tests_unit_libclienttest_a_CFLAGS = $(TEST_CFLAGS)

CLIENT_UNIT_TESTS = \
	tests/unit/test-smp-client \
	tests/unit/test-smp-upload
check_PROGRAMS += $(CLIENT_UNIT_TESTS)
TESTS += $(CLIENT_UNIT_TESTS)
CLIENT_TEST_LIBS = tests/unit/libclienttest.a $(TEST_LIBS)
tests_unit_test_smp_client_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_client_LDADD = $(CLIENT_TEST_LIBS)
tests_unit_test_smp_upload_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_upload_LDADD = $(CLIENT_TEST_LIBS)
