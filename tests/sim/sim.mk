# smp-sim: a simulated Zephyr SMP server under MCUboot (UDP, serial PTY, fake BlueZ)
# and its tests. Everything but main() is in libsim.a so the tests can link the
# device model directly.
noinst_LIBRARIES += tests/sim/libsim.a
tests_sim_libsim_a_SOURCES = \
	tests/sim/sim-util.c tests/sim/sim-util.h \
	tests/sim/sim-pace.c tests/sim/sim-pace.h \
	tests/sim/sim-config.c tests/sim/sim-config.h \
	tests/sim/sim-smp.c tests/sim/sim-smp.h \
	tests/sim/sim-image.c tests/sim/sim-image.h \
	tests/sim/sim-settings.c tests/sim/sim-settings.h \
	tests/sim/sim-fs.c tests/sim/sim-fs.h \
	tests/sim/sim-shell.c tests/sim/sim-shell.h \
	tests/sim/sim-device.c tests/sim/sim-device.h \
	tests/sim/sim-link.c tests/sim/sim-link.h \
	tests/sim/sim-node.c tests/sim/sim-node.h \
	tests/sim/sim-transports.h \
	tests/sim/sim-udp.c \
	tests/sim/sim-serial.c \
	tests/sim/sim-ble.c
tests_sim_libsim_a_CFLAGS = $(AM_CFLAGS) $(CBOR_CFLAGS) $(NETTLE_CFLAGS) $(SYSTEMD_CFLAGS)

SIM_LIBS = tests/sim/libsim.a tests/sim/libsimbluez.a $(LIBSMP_LIBS)

noinst_PROGRAMS += tests/sim/smp-sim
tests_sim_smp_sim_SOURCES = tests/sim/smp-sim.c
tests_sim_smp_sim_CFLAGS = $(AM_CFLAGS) $(CBOR_CFLAGS) $(SYSTEMD_CFLAGS)
tests_sim_smp_sim_LDADD = $(SIM_LIBS)

# Starting smp-sim from a test and talking to it synchronously.
check_LIBRARIES += tests/sim/libsimtest.a
tests_sim_libsimtest_a_SOURCES = tests/sim/sim-test.c tests/sim/sim-test.h
tests_sim_libsimtest_a_CFLAGS = $(TEST_CFLAGS)

# test-sim-device runs the device model in-process; the others start the real
# smp-sim (built by "make" as a noinst program) and drive it with libsmp.
SIM_TESTS = \
	tests/sim/test-sim-pace \
	tests/sim/test-sim-device \
	tests/sim/test-sim-udp \
	tests/sim/test-sim-serial \
	tests/sim/test-sim-ble
check_PROGRAMS += $(SIM_TESTS)
TESTS += $(SIM_TESTS)
SIM_TEST_LIBS = tests/sim/libsimtest.a tests/sim/libsim.a tests/sim/libsimbluez.a $(TEST_LIBS)
tests_sim_test_sim_pace_CFLAGS = $(TEST_CFLAGS)
tests_sim_test_sim_pace_LDADD = $(SIM_TEST_LIBS)
tests_sim_test_sim_device_CFLAGS = $(TEST_CFLAGS)
tests_sim_test_sim_device_LDADD = $(SIM_TEST_LIBS)
tests_sim_test_sim_udp_CFLAGS = $(TEST_CFLAGS)
tests_sim_test_sim_udp_LDADD = $(SIM_TEST_LIBS)
tests_sim_test_sim_serial_CFLAGS = $(TEST_CFLAGS)
tests_sim_test_sim_serial_LDADD = $(SIM_TEST_LIBS)
tests_sim_test_sim_ble_CFLAGS = $(TEST_CFLAGS)
tests_sim_test_sim_ble_LDADD = $(SIM_TEST_LIBS)

EXTRA_DIST += tests/sim/README.md
