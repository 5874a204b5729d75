/* relais-bench-sqlcipher: runs one workload of relais-bench-vault on one
 * database with Debian's SQLCipher, and prints the elapsed seconds.
 *
 *   relais-bench-sqlcipher insert  DIR KEY ROWS
 *   relais-bench-sqlcipher scan    DIR KEY
 *   relais-bench-sqlcipher commits DIR KEY ROWS
 *
 * The commits workload runs in slices, to take turns with the other
 * variants: it reads "FIRST COUNT" lines on stdin, makes those commits and
 * prints the seconds they took, one line each, until end of input.
 *
 * KEY is 64 hexadecimal digits (a raw key: no key derivation) or "none" for
 * the same binary without encryption.  SQLCipher exports the same symbols as
 * SQLite, so it runs in a process of its own, linked to nothing else.  The
 * key is a throwaway one for throwaway rows: it may sit on the command line. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relais-bench-workload.h"

static int
usage (void)
{
  fprintf (stderr, "usage: relais-bench-sqlcipher insert|scan|commits DIR KEY|none [ROWS]\n");
  return 2;
}

static int
is_raw_key (const char *key)
{
  if (strlen (key) != 64)
    return 0;
  for (const char *p = key; *p != '\0'; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
      return 0;
  return 1;
}

static int
die (sqlite3 *db, const char *what, char *errmsg)
{
  fprintf (stderr, "relais-bench-sqlcipher: %s: %s\n", what,
           errmsg != NULL ? errmsg : (db != NULL ? sqlite3_errmsg (db) : "failed"));
  sqlite3_free (errmsg);
  sqlite3_close (db);
  return 1;
}

/* Keys the connection (or not), then applies the vault's settings.  The key
 * comes first and cipher_page_size before the first read: SQLCipher 3 keeps
 * 1024-byte pages otherwise. */
static int
open_db (const char *dir, const char *key, sqlite3 **out_db, char **errmsg)
{
  char *path = sqlite3_mprintf ("%s/bench.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  sqlite3_free (path);
  *out_db = db;
  if (rc != SQLITE_OK)
    return rc;

  /* The same binary with and without a key: make sure it is SQLCipher. */
  rc = sqlite3_prepare_v2 (db, "PRAGMA cipher_version", -1, &stmt, NULL);
  if (rc == SQLITE_OK && sqlite3_step (stmt) != SQLITE_ROW)
    rc = SQLITE_ERROR;
  sqlite3_finalize (stmt);
  if (rc != SQLITE_OK)
    {
      *errmsg = sqlite3_mprintf ("this is not SQLCipher");
      return rc;
    }

  if (strcmp (key, "none") != 0)
    {
      char *sql = sqlite3_mprintf ("PRAGMA key = \"x'%s'\";"
                                   "PRAGMA cipher_page_size = 4096;", key);

      rc = sqlite3_exec (db, sql, NULL, NULL, errmsg);
      sqlite3_free (sql);
      if (rc != SQLITE_OK)
        return rc;
    }
  return relais_bench_configure (db, errmsg);
}

int
main (int argc, char **argv)
{
  const char *workload, *dir, *key;
  sqlite3 *db = NULL;
  char *errmsg = NULL;
  int n_rows = 0;
  double elapsed;
  int64_t sum = 0;

  if (argc < 4)
    return usage ();
  workload = argv[1];
  dir = argv[2];
  key = argv[3];
  if (strcmp (key, "none") != 0 && !is_raw_key (key))
    return usage ();
  if (argc > 4)
    n_rows = atoi (argv[4]);

  if (open_db (dir, key, &db, &errmsg) != SQLITE_OK)
    return die (db, "open", errmsg);

  if (strcmp (workload, "insert") == 0 && n_rows > 0)
    {
      if (relais_bench_create_schema (db, &errmsg) != SQLITE_OK)
        return die (db, "schema", errmsg);
      elapsed = relais_bench_insert (db, n_rows, &errmsg);
    }
  else if (strcmp (workload, "scan") == 0)
    elapsed = relais_bench_scan (db, &sum, &errmsg);
  else if (strcmp (workload, "commits") == 0 && n_rows > 0)
    {
      char line[64];
      int first, count;

      elapsed = 0;
      while (elapsed >= 0 && fgets (line, sizeof line, stdin) != NULL)
        {
          if (sscanf (line, "%d %d", &first, &count) != 2 || count <= 0)
            {
              sqlite3_close (db);
              return usage ();
            }
          elapsed = relais_bench_commits (db, n_rows, first, count, &errmsg);
          if (elapsed >= 0)
            {
              printf ("%.9f 0\n", elapsed);
              fflush (stdout);
            }
        }
    }
  else
    {
      sqlite3_close (db);
      return usage ();
    }
  if (elapsed < 0)
    return die (db, workload, errmsg);

  /* A clean close checkpoints the WAL, as the vault does; it is not timed. */
  if (sqlite3_close (db) != SQLITE_OK)
    return die (db, "close", NULL);

  if (strcmp (workload, "commits") != 0)
    printf ("%.9f %lld\n", elapsed, (long long) sum);
  return 0;
}
