# libsmp core codec: buffers, header, CBOR, errors, request/response messages.
lib_libsmp_a_SOURCES += \
	lib/macro.h \
	lib/smp-buf.c lib/smp-buf.h \
	lib/smp-header.c lib/smp-header.h \
	lib/smp-cbor.c lib/smp-cbor.h \
	lib/smp-error.c lib/smp-error.h \
	lib/smp-request.c lib/smp-request.h \
	lib/smp-response.c lib/smp-response.h

CORE_UNIT_TESTS = \
	tests/unit/test-smp-header \
	tests/unit/test-smp-cbor \
	tests/unit/test-smp-error \
	tests/unit/test-smp-message
check_PROGRAMS += $(CORE_UNIT_TESTS)
TESTS += $(CORE_UNIT_TESTS)
tests_unit_test_smp_header_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_header_LDADD = $(TEST_LIBS)
tests_unit_test_smp_cbor_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_cbor_LDADD = $(TEST_LIBS)
tests_unit_test_smp_error_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_error_LDADD = $(TEST_LIBS)
tests_unit_test_smp_message_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_message_LDADD = $(TEST_LIBS)
