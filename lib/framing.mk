# libsmp framing codecs: serial console framing, BLE reassembly, chunk sizing, MCUboot images.
lib_libsmp_a_SOURCES += \
	lib/smp-serial.c lib/smp-serial.h \
	lib/smp-ble.c lib/smp-ble.h \
	lib/smp-chunk.c lib/smp-chunk.h \
	lib/smp-mcuboot.c lib/smp-mcuboot.h

FRAMING_UNIT_TESTS = \
	tests/unit/test-smp-chunk \
	tests/unit/test-smp-ble \
	tests/unit/test-smp-serial \
	tests/unit/test-smp-mcuboot
check_PROGRAMS += $(FRAMING_UNIT_TESTS)
TESTS += $(FRAMING_UNIT_TESTS)
tests_unit_test_smp_chunk_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_chunk_LDADD = $(TEST_LIBS)
tests_unit_test_smp_ble_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_ble_LDADD = $(TEST_LIBS)
tests_unit_test_smp_serial_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_serial_LDADD = $(TEST_LIBS)
tests_unit_test_smp_mcuboot_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_mcuboot_LDADD = $(TEST_LIBS)

# imgtool-signed images with their expected sizes, hashes and versions.
EXTRA_DIST += \
	tests/data/images/expected.json \
	tests/data/images/hash-only-1.2.3+4.bin \
	tests/data/images/ecdsa-p256-2.0.0.bin
