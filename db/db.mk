# db/: the sqlite schema, migrations and data access. No SQL outside this folder.
noinst_LIBRARIES += db/libdb.a
db_libdb_a_SOURCES = db/db.c db/db.h db/db-migrations.h db/db-stmt.c db/db-stmt.h \
	db/db-devices.c db/db-devices.h
nodist_db_libdb_a_SOURCES = db/migrations.c
db_libdb_a_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
# Every migration, here and nowhere else: make expands a rule's prerequisites
# when it reads the rule, so one appended by a later fragment would not
# rebuild db/migrations.c.
DB_MIGRATIONS = db/migrations/0001-initial.sql db/migrations/0002-auto-updates.sql \
	db/migrations/0003-device-baud-pinned.sql db/migrations/0004-firmware-deleted.sql \
	db/migrations/0005-rollouts.sql db/migrations/0006-auto-update-image-name.sql
EXTRA_DIST += db/schema.sql db/embed-migrations.sh $(DB_MIGRATIONS) tests/data/db/v1.sql
CLEANFILES += db/migrations.c
BUILT_SOURCES = db/migrations.c
db/migrations.c: $(DB_MIGRATIONS) db/embed-migrations.sh
	$(AM_V_GEN)$(MKDIR_P) db && $(SHELL) $(srcdir)/db/embed-migrations.sh $@ $(srcdir) $(DB_MIGRATIONS)
DB_LIBS = db/libdb.a $(SQLITE_LIBS)

check_PROGRAMS += tests/db/test-db
TESTS += tests/db/test-db
tests_db_test_db_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_db_test_db_LDADD = tests/libtesthelp.a $(DB_LIBS) $(LIBSMP_LIBS)
