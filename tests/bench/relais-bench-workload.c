#include "relais-bench-workload.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double
relais_bench_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static uint64_t
splitmix64 (uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Deterministic text of @base_len ± 5 characters: the same rows in every
 * variant, and no run of zeros that a page would compress away. */
static int
fill_text (uint64_t *state, char *buf, int base_len)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz ";
  int len = base_len - 5 + (int) (splitmix64 (state) % 11);
  uint64_t r = 0;

  for (int i = 0; i < len; i++)
    {
      if (i % 8 == 0)
        r = splitmix64 (state);
      buf[i] = alphabet[(r & 0xff) % (sizeof alphabet - 1)];
      r >>= 8;
    }
  return len;
}

static double
fail (sqlite3 *db, const char *what, char **errmsg)
{
  *errmsg = sqlite3_mprintf ("%s: %s", what, sqlite3_errmsg (db));
  return -1.0;
}

static int
exec (sqlite3 *db, const char *sql, char **errmsg)
{
  char *msg = NULL;
  int rc = sqlite3_exec (db, sql, NULL, NULL, &msg);

  if (rc != SQLITE_OK)
    {
      *errmsg = sqlite3_mprintf ("%s: %s", sql, msg != NULL ? msg : sqlite3_errstr (rc));
      sqlite3_free (msg);
    }
  return rc;
}

int
relais_bench_check (sqlite3 *db, char **errmsg)
{
  static const struct { const char *pragma; const char *want; } checks[] = {
    { "PRAGMA page_size", "4096" },
    { "PRAGMA locking_mode", "exclusive" },
    { "PRAGMA journal_mode", "wal" },
    { "PRAGMA synchronous", "2" },
    { "PRAGMA temp_store", "2" },
    { "PRAGMA mmap_size", "0" },
    { "PRAGMA cache_size", "-16384" },
  };
  int rc = SQLITE_OK;

  for (size_t i = 0; rc == SQLITE_OK && i < sizeof checks / sizeof checks[0]; i++)
    {
      sqlite3_stmt *stmt = NULL;

      rc = sqlite3_prepare_v2 (db, checks[i].pragma, -1, &stmt, NULL);
      if (rc != SQLITE_OK)
        {
          *errmsg = sqlite3_mprintf ("%s: %s", checks[i].pragma, sqlite3_errmsg (db));
          break;
        }
      rc = sqlite3_step (stmt);
      /* mmap_size returns no row where memory-mapped I/O is compiled out. */
      if (rc == SQLITE_ROW &&
          strcmp ((const char *) sqlite3_column_text (stmt, 0), checks[i].want) != 0)
        {
          *errmsg = sqlite3_mprintf ("%s is %s, not %s", checks[i].pragma,
                                     sqlite3_column_text (stmt, 0), checks[i].want);
          rc = SQLITE_ERROR;
        }
      else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
      else
        *errmsg = sqlite3_mprintf ("%s: %s", checks[i].pragma, sqlite3_errmsg (db));
      sqlite3_finalize (stmt);
    }
  return rc;
}

int
relais_bench_configure (sqlite3 *db, char **errmsg)
{
  int rc = exec (db, RELAIS_BENCH_PRAGMAS, errmsg);

  return rc == SQLITE_OK ? relais_bench_check (db, errmsg) : rc;
}

int
relais_bench_create_schema (sqlite3 *db, char **errmsg)
{
  return exec (db, RELAIS_BENCH_SCHEMA, errmsg);
}

/* The rows of the insert workload, made before the clock starts: what is
 * timed is SQLite (and the encryption under it), not the data generator,
 * which would otherwise dilute the ratios. */
typedef struct {
  char    *text;    /* a then c of every row, back to back */
  int     *a_len;
  int     *c_len;
  int64_t *b;
} Rows;

static void
rows_clear (Rows *rows)
{
  free (rows->text);
  free (rows->a_len);
  free (rows->c_len);
  free (rows->b);
}

static int
rows_make (Rows *rows, int n_rows)
{
  uint64_t state = 1;
  char *p;

  rows->text = malloc ((size_t) n_rows * (45 + 65));
  rows->a_len = malloc ((size_t) n_rows * sizeof (int));
  rows->c_len = malloc ((size_t) n_rows * sizeof (int));
  rows->b = malloc ((size_t) n_rows * sizeof (int64_t));
  if (rows->text == NULL || rows->a_len == NULL || rows->c_len == NULL || rows->b == NULL)
    return -1;
  p = rows->text;
  for (int i = 0; i < n_rows; i++)
    {
      rows->a_len[i] = fill_text (&state, p, 40);
      p += rows->a_len[i];
      rows->b[i] = (int64_t) (splitmix64 (&state) >> 33);
      rows->c_len[i] = fill_text (&state, p, 60);
      p += rows->c_len[i];
    }
  return 0;
}

double
relais_bench_insert (sqlite3 *db, int n_rows, char **errmsg)
{
  sqlite3_stmt *stmt = NULL;
  Rows rows = { 0 };
  const char *p;
  double start, elapsed = -1.0;

  if (rows_make (&rows, n_rows) != 0)
    {
      *errmsg = sqlite3_mprintf ("insert: out of memory");
      goto out;
    }
  if (sqlite3_prepare_v2 (db, "INSERT INTO rows (id, a, b, c) VALUES (?1, ?2, ?3, ?4)",
                          -1, &stmt, NULL) != SQLITE_OK)
    {
      fail (db, "insert", errmsg);
      goto out;
    }

  start = relais_bench_now ();
  if (exec (db, "BEGIN", errmsg) != SQLITE_OK)
    goto out;
  p = rows.text;
  for (int i = 0; i < n_rows; i++)
    {
      sqlite3_bind_int64 (stmt, 1, i + 1);
      sqlite3_bind_text (stmt, 2, p, rows.a_len[i], SQLITE_STATIC);
      p += rows.a_len[i];
      sqlite3_bind_int64 (stmt, 3, rows.b[i]);
      sqlite3_bind_text (stmt, 4, p, rows.c_len[i], SQLITE_STATIC);
      p += rows.c_len[i];
      if (sqlite3_step (stmt) != SQLITE_DONE)
        {
          fail (db, "insert", errmsg);
          sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
          goto out;
        }
      sqlite3_reset (stmt);
    }
  if (exec (db, "COMMIT", errmsg) != SQLITE_OK)
    {
      sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
      goto out;
    }
  elapsed = relais_bench_now () - start;

out:
  sqlite3_finalize (stmt);
  rows_clear (&rows);
  return elapsed;
}

double
relais_bench_scan (sqlite3 *db, int64_t *out_sum, char **errmsg)
{
  sqlite3_stmt *stmt = NULL;
  double start = relais_bench_now ();
  double elapsed;

  if (sqlite3_prepare_v2 (db, "SELECT sum(length(a) + b + length(c)) FROM rows",
                          -1, &stmt, NULL) != SQLITE_OK)
    return fail (db, "scan", errmsg);
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      fail (db, "scan", errmsg);
      sqlite3_finalize (stmt);
      return -1.0;
    }
  *out_sum = sqlite3_column_int64 (stmt, 0);
  elapsed = relais_bench_now () - start;
  sqlite3_finalize (stmt);
  return elapsed;
}

double
relais_bench_commits (sqlite3 *db, int n_rows, int first, int n_commits, char **errmsg)
{
  sqlite3_stmt *update = NULL;
  sqlite3_stmt *insert = NULL;
  char text[80];
  double start;

  if (sqlite3_prepare_v2 (db, "UPDATE rows SET b = b + 1, c = ?1 WHERE id = ?2",
                          -1, &update, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2 (db, "INSERT INTO rows (a, b, c) VALUES (?1, ?2, ?1)",
                          -1, &insert, NULL) != SQLITE_OK)
    {
      fail (db, "commits", errmsg);
      goto error;
    }

  start = relais_bench_now ();
  for (int i = first; i < first + n_commits; i++)
    {
      /* Seeded by the commit's index: the same changes in every variant,
       * however the run is cut into slices. */
      uint64_t state = 0x5eed0000u + (uint64_t) i;
      sqlite3_stmt *stmt;
      int len;

      if (exec (db, "BEGIN IMMEDIATE", errmsg) != SQLITE_OK)
        goto error;
      /* Mostly updates of one row anywhere in the table (a dossier edited),
       * one in four an append (a new operation in the log). */
      len = fill_text (&state, text, 60);
      if (i % 4 != 3)
        {
          stmt = update;
          sqlite3_bind_text (stmt, 1, text, len, SQLITE_STATIC);
          sqlite3_bind_int64 (stmt, 2, 1 + (int64_t) (splitmix64 (&state) % (uint64_t) n_rows));
        }
      else
        {
          stmt = insert;
          sqlite3_bind_text (stmt, 1, text, len, SQLITE_STATIC);
          sqlite3_bind_int64 (stmt, 2, i);
        }
      if (sqlite3_step (stmt) != SQLITE_DONE)
        {
          fail (db, "commits", errmsg);
          goto error;
        }
      sqlite3_reset (stmt);
      if (exec (db, "COMMIT", errmsg) != SQLITE_OK)
        goto error;
    }
  sqlite3_finalize (update);
  sqlite3_finalize (insert);
  return relais_bench_now () - start;

error:
  sqlite3_finalize (update);
  sqlite3_finalize (insert);
  if (!sqlite3_get_autocommit (db))
    sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return -1.0;
}
