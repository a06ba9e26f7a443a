/* db-stmt: prepared statements kept by a data-access module, and the helpers its queries share */
#pragma once

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmts;

/* A set of n statements, each prepared (persistent) the first time it is
 * used and reset after every use; sql (n strings, static) is borrowed, db
 * too. Free before db_close(). Returns 0, -ENOMEM. */
int db_stmts_new(struct db *db, const char *const *sql, size_t n, struct db_stmts **ret);
struct db_stmts *db_stmts_free(struct db_stmts *s);
/* Statement number which, prepared; -EIO/-ENOMEM when sqlite refuses it. */
int db_stmts_get(struct db_stmts *s, size_t which, sqlite3_stmt **ret);
struct db *db_stmts_db(struct db_stmts *s);

/* Resets a statement and clears its bindings after use. */
void db_stmt_done(sqlite3_stmt *st);
/* An sqlite result code (extended codes are on, see db.c) as a negative
 * errno: a CHECK or NOT NULL violation -EINVAL, another constraint (unique,
 * primary key, foreign key) -EEXIST, busy
 * or locked -EBUSY, corrupt -EBADMSG, read-only -EACCES, no memory -ENOMEM,
 * anything else -EIO. */
int db_stmt_errno(int rc);
/* Runs a bound write statement to its end (bind_rc: the result of the
 * binding, SQLITE_OK to go on), counts it with db_count_write() and resets
 * it. Returns the number of rows changed or -errno. */
int db_stmt_write(struct db_stmts *s, sqlite3_stmt *st, int bind_rc);
/* Steps a query: 1 with a row, 0 at its end, or -errno (the statement is
 * reset on the end and on errors). */
int db_stmt_step(sqlite3_stmt *st);

/* Text column, "" for NULL; lives until the next step or reset. */
const char *db_column_text(sqlite3_stmt *st, int i);
/* NULL parameter for a NULL string. */
int db_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);
/* 0 is stored as NULL in the time columns ("never"), and read back as 0. */
int db_bind_time_or_null(sqlite3_stmt *st, int i, uint64_t ms);
uint64_t db_column_u64(sqlite3_stmt *st, int i);
