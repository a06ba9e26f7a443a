/* db-migrations: the numbered schema migrations, embedded from the .sql files in db/migrations */
#pragma once

struct db_migration {
	unsigned version; /* PRAGMA user_version after applying it */
	const char *name;
	const char *sql;
};

extern const struct db_migration db_migrations[];
extern const unsigned db_migrations_count;
