#pragma once

/* The workloads of relais-bench-vault, compiled twice: once against the
 * system's SQLite (plain and encrypted variants, in relais-bench-vault) and
 * once against Debian's SQLCipher (relais-bench-sqlcipher), which exports the
 * same symbols and so cannot share a process with it.  One source for both
 * is what makes the four variants run the same SQL on the same data.
 *
 * Plain C and <sqlite3.h> only: the worker links nothing else. */

#include <stdint.h>
#include <sqlite3.h>

/* The vault's connection settings (configure_connection() in
 * relais-vault.c): 4096-byte pages, WAL with synchronous=FULL so that a
 * committed change survives a power cut, one process at a time, temporary
 * files in memory, no memory-mapped I/O, a 16 MiB page cache.  page_size
 * must come before the first write.  relais_bench_check() fails if the
 * vault's own connection ever differs from these. */
#define RELAIS_BENCH_PRAGMAS \
  "PRAGMA page_size = 4096;" \
  "PRAGMA locking_mode = EXCLUSIVE;" \
  "PRAGMA journal_mode = WAL;" \
  "PRAGMA synchronous = FULL;" \
  "PRAGMA temp_store = MEMORY;" \
  "PRAGMA mmap_size = 0;" \
  "PRAGMA cache_size = -16384;"

#define RELAIS_BENCH_SCHEMA \
  "CREATE TABLE rows (id INTEGER PRIMARY KEY, a TEXT NOT NULL, " \
  "b INTEGER NOT NULL, c TEXT NOT NULL)"

double relais_bench_now            (void);

/* Checks that @db runs with RELAIS_BENCH_PRAGMAS. */
int    relais_bench_check          (sqlite3     *db,
                                    char       **errmsg);
/* Applies RELAIS_BENCH_PRAGMAS and checks that they took (a keyed SQLCipher
 * database must not silently keep other values). */
int    relais_bench_configure      (sqlite3     *db,
                                    char       **errmsg);
/* Creates the table, outside any timing. */
int    relais_bench_create_schema  (sqlite3     *db,
                                    char       **errmsg);

/* BEGIN; @n_rows INSERTs through one prepared statement; COMMIT.  Returns
 * the elapsed seconds, or a negative value with @errmsg set (sqlite3_free). */
double relais_bench_insert         (sqlite3     *db,
                                    int          n_rows,
                                    char       **errmsg);
/* A full scan of a freshly opened connection; @out_sum receives the result
 * so that the caller can check that every variant read the same data. */
double relais_bench_scan           (sqlite3     *db,
                                    int64_t     *out_sum,
                                    char       **errmsg);
/* Commits number @first to @first + @n_commits - 1 of the commits workload:
 * each one a transaction (BEGIN IMMEDIATE, like the vault) with one small
 * UPDATE of a row among the first @n_rows, or one INSERT, then COMMIT.  The
 * caller runs the workload in slices, taking turns with the other variants,
 * so that they all meet the same disk (fsync latency drifts over seconds). */
double relais_bench_commits        (sqlite3     *db,
                                    int          n_rows,
                                    int          first,
                                    int          n_commits,
                                    char       **errmsg);
