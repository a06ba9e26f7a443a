/* db: the sqlite database: opening, pragmas, migrations, and refusing corrupt files */
#pragma once

#include <sqlite3.h>
#include <stddef.h>

struct db;

/* Opens (creating when missing) the database at path, sets WAL, foreign keys
 * and a busy timeout, checks that it is an smpgw database in good health, and
 * applies the pending migrations in order, each in its own transaction.
 *
 * Returns 0, or a negative errno with a sentence for people in err (size
 * errlen): -EBADMSG for a corrupt or foreign file ("... is not a valid
 * database: ..."), -EPROTO for a database newer than this program, -EIO,
 * -ENOMEM, -EACCES. */
int db_open(const char *path, struct db **ret, char *err, size_t errlen);
struct db *db_close(struct db *db);

/* The schema version the database is at, and the one this program writes. */
int db_schema_version(struct db *db);
unsigned db_schema_latest(void);

/* The underlying handle, for the data-access modules under db/ only. */
sqlite3 *db_handle(struct db *db);

/* Short transactions around a batch of writes; nested use is refused (-EBUSY). */
int db_begin(struct db *db);
int db_commit(struct db *db);
int db_rollback(struct db *db);

/* Counts sqlite write statements (INSERT/UPDATE/DELETE) executed through the
 * data-access modules, for benchmarks and metrics. */
unsigned long long db_write_count(struct db *db);
void db_count_write(struct db *db);
