# api/: rollouts, jobs, single-device uploads and auto-update rules, and their black-box tests.
api_libapi_a_SOURCES += api/api-rollouts.c

TESTS += tests/integration/test-api-rollouts.py tests/integration/test-api-auto-updates.py \
	tests/integration/test-rollout-chaos.py
EXTRA_DIST += tests/integration/test-api-rollouts.py tests/integration/test-api-auto-updates.py \
	tests/integration/test-rollout-chaos.py
