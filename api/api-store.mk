# api/: the routes of the token and firmware stores, and their black-box test.
api_libapi_a_SOURCES += api/api-tokens.c api/api-firmware.c

TESTS += tests/integration/test-api-tokens-firmware.py
EXTRA_DIST += tests/integration/test-api-tokens-firmware.py
