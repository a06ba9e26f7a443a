# libsmp generic CBOR<->JSON translation (jansson), for user groups and unknown fields.
lib_libsmp_a_SOURCES += \
	lib/smp-json.c lib/smp-json.h

JSON_UNIT_TESTS = \
	tests/unit/test-smp-json
check_PROGRAMS += $(JSON_UNIT_TESTS)
TESTS += $(JSON_UNIT_TESTS)
tests_unit_test_smp_json_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smp_json_LDADD = $(TEST_LIBS)
