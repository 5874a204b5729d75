/* relais-bench-vault: what page-level encryption costs the vault, measured
 * side by side in one run.
 *
 * Three workloads (a bulk insert in one transaction, a full scan of a freshly
 * opened connection, small durable commits) on four variants of the same
 * database, with the same rows and the vault's settings everywhere:
 *
 *   plain       the system's SQLite, no VFS
 *   encrypted   a real vault (relais_vault_create/open): the same SQLite
 *               through RelaisVfs
 *   sqlcipher   Debian's SQLCipher with a raw key (no key derivation) and
 *   no-key      the same SQLCipher binary without a key
 *
 * SQLCipher runs in relais-bench-sqlcipher, next to this program: it exports
 * SQLite's symbols and cannot share a process with the system's SQLite.  The
 * variants take turns, in an order that changes every round so that none
 * always follows the same neighbour, and each line gives the ratio of the
 * medians:
 *
 *   insert: encrypted/plain 1.09 sqlcipher key/no-key 1.25
 *
 * then a last line gives the time to unlock a vault with the default key
 * derivation.
 * Timings are never pass/fail: --quick makes a small run for the smoke test,
 * which only checks that the lines are there. */

#define G_LOG_DOMAIN "relais-bench"

#include "config.h"

#include <errno.h>
#include <linux/magic.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <glib.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "relais-keyfile.h"
#include "relais-vault.h"

#include "relais-bench-workload.h"

typedef enum {
  VARIANT_PLAIN,
  VARIANT_ENCRYPTED,
  VARIANT_SQLCIPHER_KEY,
  VARIANT_SQLCIPHER_NO_KEY,
  N_VARIANTS
} Variant;

static const char *variant_names[N_VARIANTS] = {
  "plain", "encrypted", "sqlcipher-key", "sqlcipher-no-key",
};

typedef enum {
  WORKLOAD_INSERT,
  WORKLOAD_SCAN,
  WORKLOAD_COMMITS,
  N_WORKLOADS
} Workload;

static const char *workload_names[N_WORKLOADS] = { "insert", "scan", "commits" };

/* One database of one variant in one round. */
typedef struct {
  Variant  variant;
  char    *dir;
  char    *path;
  char     key_hex[2 * 32 + 1];  /* SQLCipher's raw key */
} BenchDb;

#define BENCH_PASSPHRASE "correct horse battery staple"

typedef struct {
  int     n_rows;
  int     n_commits;
  int     n_rounds;
  int     n_commit_rounds;
  int     n_slices;  /* of the commits workload */
  char   *worker;    /* NULL: no SQLCipher column */
  GArray *seconds[N_WORKLOADS][N_VARIANTS];
  gint64  scan_sum;  /* the first variant's, that all others must match */
  gboolean have_scan_sum;
} Bench;

static gboolean opt_quick;
static gboolean opt_verbose;
static char *opt_dir;

static const GOptionEntry entries[] = {
  { "quick", 0, 0, G_OPTION_ARG_NONE, &opt_quick,
    "A small run (10,000 rows, 200 commits, 2 rounds) for the smoke test", NULL },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
    "Print the median of every variant to stderr", NULL },
  { "dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_dir,
    "Work under DIR (default: $TMPDIR or /var/tmp; not a tmpfs, where fsync is free)", "DIR" },
  { NULL }
};

static void
bench_db_free (BenchDb *db)
{
  sodium_memzero (db->key_hex, sizeof db->key_hex);
  g_free (db->dir);
  g_free (db->path);
  g_free (db);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchDb, bench_db_free)

static BenchDb *
bench_db_new (const char *round_dir, Variant variant, GError **error)
{
  g_autoptr(BenchDb) db = g_new0 (BenchDb, 1);
  guint8 key[32];

  db->variant = variant;
  db->dir = g_build_filename (round_dir, variant_names[variant], NULL);
  db->path = g_build_filename (db->dir, variant == VARIANT_ENCRYPTED ? RELAIS_VAULT_DB_NAME : "bench.db",
                               NULL);
  if (g_mkdir (db->dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "%s: %s", db->dir, g_strerror (saved_errno));
      return NULL;
    }
  randombytes_buf (key, sizeof key);
  sodium_bin2hex (db->key_hex, sizeof db->key_hex, key, sizeof key);
  sodium_memzero (key, sizeof key);
  return g_steal_pointer (&db);
}

/* A connection of the plain or the encrypted variant. */
typedef struct {
  sqlite3     *conn;
  RelaisVault *vault;  /* encrypted: the connection is the vault's */
} LocalConn;

/* The encrypted variant is a real vault, opened the way the app opens it
 * (only the key derivation is cut short, outside the timings): what is
 * measured is what people get.  Its settings must be the ones the other
 * variants are given, or the comparison is off: check them. */
static gboolean
local_open (BenchDb *db, gboolean creating, LocalConn *local, GError **error)
{
  char *errmsg = NULL;
  int rc;

  local->vault = NULL;
  local->conn = NULL;
  if (db->variant == VARIANT_ENCRYPTED)
    {
      RelaisKdfParams kdf;
      RelaisVaultOptions options = { .kdf = &kdf };

      relais_kdf_params_insecure_for_tests (&kdf);
      if (creating)
        local->vault = relais_vault_create (db->dir, BENCH_PASSPHRASE, &options, NULL, error);
      else
        local->vault = relais_vault_open (db->dir, BENCH_PASSPHRASE, &options, error);
      if (local->vault == NULL)
        return FALSE;
      local->conn = relais_vault_get_db (local->vault);
      rc = relais_bench_check (local->conn, &errmsg);
    }
  else
    {
      /* NOMUTEX, as the vault: one connection, one thread. */
      rc = sqlite3_open_v2 (db->path, &local->conn,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
      if (rc == SQLITE_OK)
        rc = relais_bench_configure (local->conn, &errmsg);
    }
  if (rc != SQLITE_OK)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: open: %s",
                   variant_names[db->variant],
                   errmsg != NULL ? errmsg : (local->conn != NULL ? sqlite3_errmsg (local->conn)
                                                                  : sqlite3_errstr (rc)));
      sqlite3_free (errmsg);
      if (local->vault != NULL)
        g_clear_pointer (&local->vault, relais_vault_close);
      else
        sqlite3_close (local->conn);
      local->conn = NULL;
      return FALSE;
    }
  return TRUE;
}

/* Closing checkpoints the WAL into the database (exclusive locking): the
 * vault does it on close too, and it is never timed. */
static gboolean
local_close (BenchDb *db, LocalConn *local, GError **error)
{
  gboolean ok = TRUE;

  if (local->vault != NULL)
    g_clear_pointer (&local->vault, relais_vault_close);
  else if (local->conn != NULL && sqlite3_close (local->conn) != SQLITE_OK)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: close: %s",
                   variant_names[db->variant], sqlite3_errmsg (local->conn));
      ok = FALSE;
    }
  local->conn = NULL;
  return ok;
}

static double
run_local (Bench *bench, BenchDb *db, Workload workload, gint64 *out_sum, GError **error)
{
  LocalConn local;
  char *errmsg = NULL;
  double elapsed = -1.0;

  if (!local_open (db, workload == WORKLOAD_INSERT, &local, error))
    return -1.0;

  switch (workload)
    {
    case WORKLOAD_INSERT:
      if (relais_bench_create_schema (local.conn, &errmsg) == SQLITE_OK)
        elapsed = relais_bench_insert (local.conn, bench->n_rows, &errmsg);
      break;
    case WORKLOAD_SCAN:
      elapsed = relais_bench_scan (local.conn, out_sum, &errmsg);
      break;
    default:
      g_assert_not_reached ();
    }

  if (elapsed < 0)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s: %s",
                 variant_names[db->variant], workload_names[workload], errmsg);
  sqlite3_free (errmsg);
  if (!local_close (db, &local, elapsed < 0 ? NULL : error))
    elapsed = -1.0;
  return elapsed;
}

static double
run_worker (Bench *bench, BenchDb *db, Workload workload, gint64 *out_sum, GError **error)
{
  g_autofree char *rows = g_strdup_printf ("%d", bench->n_rows);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *argv[] = {
    bench->worker,
    workload_names[workload],
    db->dir,
    db->variant == VARIANT_SQLCIPHER_KEY ? db->key_hex : "none",
    rows,
    NULL
  };
  double elapsed;
  long long sum;
  int status;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     &out, &err, &status, error))
    return -1.0;
  if (!g_spawn_check_wait_status (status, NULL) ||
      sscanf (out, "%lf %lld", &elapsed, &sum) != 2)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s: %s",
                   variant_names[db->variant], workload_names[workload],
                   g_strstrip (err));
      return -1.0;
    }
  *out_sum = sum;
  return elapsed;
}

/* The encrypted variants must not leave SQLite's plaintext header on disk,
 * and the others must: otherwise the ratios measure nothing. */
static gboolean
check_header (BenchDb *db, GError **error)
{
  static const char magic[16] = "SQLite format 3";
  gboolean want_plain = db->variant == VARIANT_PLAIN || db->variant == VARIANT_SQLCIPHER_NO_KEY;
  char header[16] = { 0 };
  FILE *f = g_fopen (db->path, "rb");
  size_t n = 0;

  if (f != NULL)
    {
      n = fread (header, 1, sizeof header, f);
      fclose (f);
    }
  if (n != sizeof header)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: cannot read %s",
                   variant_names[db->variant], db->path);
      return FALSE;
    }
  if ((memcmp (header, magic, sizeof magic) == 0) != want_plain)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: the database is %s",
                   variant_names[db->variant], want_plain ? "not plain SQLite" : "not encrypted");
      return FALSE;
    }
  return TRUE;
}

/* The @i-th variant to run in turn @turn, in a Williams design: over @n
 * turns (@n even) each variant goes first once and follows every other
 * variant exactly once, so that no variant always pays for, or profits
 * from, the same neighbour (writeback, the disk's cache, the CPU's). */
static int
turn_order (int n, int turn, int i)
{
  int base = i % 2 == 1 ? (i + 1) / 2 : (n - i / 2) % n;

  return (base + turn) % n;
}

static gboolean
run_one (Bench *bench, BenchDb *db, Workload workload, GError **error)
{
  gboolean local = db->variant == VARIANT_PLAIN || db->variant == VARIANT_ENCRYPTED;
  gint64 sum = 0;
  double elapsed;

  if (local)
    elapsed = run_local (bench, db, workload, &sum, error);
  else
    elapsed = run_worker (bench, db, workload, &sum, error);
  if (elapsed < 0)
    return FALSE;

  if (workload == WORKLOAD_INSERT && !check_header (db, error))
    return FALSE;
  if (workload == WORKLOAD_SCAN)
    {
      if (!bench->have_scan_sum)
        {
          bench->scan_sum = sum;
          bench->have_scan_sum = TRUE;
        }
      else if (sum != bench->scan_sum)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "%s: the scan read other data (%" G_GINT64_FORMAT ", not %" G_GINT64_FORMAT ")",
                       variant_names[db->variant], sum, bench->scan_sum);
          return FALSE;
        }
    }
  g_array_append_val (bench->seconds[workload][db->variant], elapsed);
  return TRUE;
}

/* The commits workload keeps every variant's database open and runs it in
 * slices, the variants taking turns: fsync latency drifts over seconds, and
 * whole runs one after the other would compare different disks.  Each slice
 * is one sample: the median of many short ones shrugs off a burst of
 * writeback from elsewhere on the machine. */
typedef struct {
  BenchDb *db;
  LocalConn local;   /* plain and encrypted */
  GPid     pid;      /* SQLCipher: the worker, fed "FIRST COUNT" lines */
  FILE    *to;
  FILE    *from;
} CommitsSession;

static gboolean
commits_session_open (Bench *bench, CommitsSession *session, BenchDb *db, GError **error)
{
  g_autofree char *rows = g_strdup_printf ("%d", bench->n_rows);
  const char *argv[] = {
    bench->worker,
    "commits",
    db->dir,
    db->variant == VARIANT_SQLCIPHER_KEY ? db->key_hex : "none",
    rows,
    NULL
  };
  int to_fd, from_fd;

  session->db = db;
  session->pid = 0;
  if (db->variant == VARIANT_PLAIN || db->variant == VARIANT_ENCRYPTED)
    {
      return local_open (db, FALSE, &session->local, error);
    }

  if (!g_spawn_async_with_pipes (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                 NULL, NULL, &session->pid, &to_fd, &from_fd, NULL, error))
    return FALSE;
  session->to = fdopen (to_fd, "w");
  session->from = fdopen (from_fd, "r");
  if (session->to == NULL || session->from == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: fdopen: %s",
                   variant_names[db->variant], g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static gboolean
commits_session_run (Bench *bench, CommitsSession *session, int first, int count, GError **error)
{
  Variant variant = session->db->variant;
  char *errmsg = NULL;
  char line[64];
  double elapsed = -1.0;

  if (session->local.conn != NULL)
    {
      elapsed = relais_bench_commits (session->local.conn, bench->n_rows, first, count, &errmsg);
      if (elapsed < 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: commits: %s",
                       variant_names[variant], errmsg);
          sqlite3_free (errmsg);
          return FALSE;
        }
    }
  else if (fprintf (session->to, "%d %d\n", first, count) < 0 ||
           fflush (session->to) != 0 ||
           fgets (line, sizeof line, session->from) == NULL ||
           sscanf (line, "%lf", &elapsed) != 1)
    {
      /* The worker said why on stderr. */
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: commits: the worker failed",
                   variant_names[variant]);
      return FALSE;
    }
  g_array_append_val (bench->seconds[WORKLOAD_COMMITS][variant], elapsed);
  return TRUE;
}

/* Closes the connection, or ends the worker's input and waits for it to
 * close its database; FALSE if that went wrong (an error is set only if
 * none was). */
static gboolean
commits_session_close (CommitsSession *session, GError **error)
{
  gboolean ok = TRUE;

  if (session->local.conn != NULL)
    ok = local_close (session->db, &session->local, error);
  if (session->pid != 0)
    {
      int status;

      g_clear_pointer (&session->to, fclose);
      g_clear_pointer (&session->from, fclose);
      if (waitpid (session->pid, &status, 0) < 0 || !g_spawn_check_wait_status (status, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: the worker failed",
                       variant_names[session->db->variant]);
          ok = FALSE;
        }
      g_spawn_close_pid (session->pid);
      session->pid = 0;
    }
  return ok;
}

static gboolean
run_commits (Bench *bench, BenchDb **dbs, int n_variants, int round, GError **error)
{
  CommitsSession sessions[N_VARIANTS] = { { 0 } };
  int slice = bench->n_commits / bench->n_slices;
  gboolean ok = TRUE;

  for (int i = 0; ok && i < n_variants; i++)
    ok = commits_session_open (bench, &sessions[i], dbs[i], error);

  for (int s = 0; ok && s < bench->n_slices; s++)
    for (int i = 0; ok && i < n_variants; i++)
      ok = commits_session_run (bench, &sessions[turn_order (n_variants, s + round, i)],
                                s * slice, slice, error);

  for (int i = 0; i < n_variants; i++)
    if (!commits_session_close (&sessions[i], ok ? error : NULL))
      ok = FALSE;
  return ok;
}

static gboolean
remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
      const char *name;

      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          remove_tree (child);
        }
    }
  return g_remove (path) == 0;
}

static gboolean
run_round (Bench *bench, const char *work_dir, int round, GError **error)
{
  g_autofree char *round_dir = g_strdup_printf ("%s/round-%d", work_dir, round);
  BenchDb *dbs[N_VARIANTS] = { NULL };
  int n_variants = bench->worker != NULL ? N_VARIANTS : VARIANT_SQLCIPHER_KEY;
  gboolean ok = TRUE;

  if (g_mkdir (round_dir, 0700) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", round_dir, g_strerror (errno));
      return FALSE;
    }
  for (int i = 0; ok && i < n_variants; i++)
    {
      dbs[i] = bench_db_new (round_dir, (Variant) i, error);
      ok = dbs[i] != NULL;
    }

  for (Workload w = WORKLOAD_INSERT; ok && w <= WORKLOAD_SCAN; w++)
    for (int i = 0; ok && i < n_variants; i++)
      ok = run_one (bench, dbs[turn_order (n_variants, round, i)], w, error);
  if (ok && round < bench->n_commit_rounds)
    ok = run_commits (bench, dbs, n_variants, round, error);

  for (int i = 0; i < n_variants; i++)
    g_clear_pointer (&dbs[i], bench_db_free);
  remove_tree (round_dir);
  return ok;
}

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a;
  double y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
median (GArray *values)
{
  guint n = values->len;

  if (n == 0)
    return 0.0;
  g_array_sort (values, compare_doubles);
  if (n % 2 == 1)
    return g_array_index (values, double, n / 2);
  return (g_array_index (values, double, n / 2 - 1) + g_array_index (values, double, n / 2)) / 2;
}

static void
print_results (Bench *bench)
{
  for (Workload w = 0; w < N_WORKLOADS; w++)
    {
      double m[N_VARIANTS];
      char sqlcipher[32] = "n/a";

      for (int v = 0; v < N_VARIANTS; v++)
        m[v] = median (bench->seconds[w][v]);
      if (bench->worker != NULL)
        g_snprintf (sqlcipher, sizeof sqlcipher, "%.2f",
                    m[VARIANT_SQLCIPHER_KEY] / m[VARIANT_SQLCIPHER_NO_KEY]);
      g_print ("%s: encrypted/plain %.2f sqlcipher key/no-key %s\n", workload_names[w],
               m[VARIANT_ENCRYPTED] / m[VARIANT_PLAIN], sqlcipher);

      if (opt_verbose)
        {
          fflush (stdout);
          g_printerr ("  %-8s", workload_names[w]);
          for (int v = 0; v < N_VARIANTS; v++)
            if (bench->seconds[w][v]->len > 0)
              g_printerr ("  %s %.1f ms", variant_names[v], m[v] * 1e3);
          if (w == WORKLOAD_COMMITS)
            g_printerr ("  (median of %u slices of %d commits)\n",
                        bench->seconds[w][VARIANT_PLAIN]->len, bench->n_commits / bench->n_slices);
          else
            g_printerr ("  (median of %u runs)\n", bench->seconds[w][VARIANT_PLAIN]->len);
        }
    }
}

/* Unlocking a vault as a person does: Argon2id with the default parameters,
 * unwrapping the data key, opening the database. */
static gboolean
measure_unlock (const char *work_dir, GError **error)
{
  g_autofree char *dir = g_build_filename (work_dir, "unlock", NULL);
  RelaisVault *vault;
  RelaisKdfParams params;
  double start, elapsed;

  relais_kdf_params_default (&params);
  vault = relais_vault_create (dir, BENCH_PASSPHRASE, NULL, NULL, error);
  if (vault == NULL)
    return FALSE;
  relais_vault_close (vault);

  start = relais_bench_now ();
  vault = relais_vault_open (dir, BENCH_PASSPHRASE, NULL, error);
  elapsed = relais_bench_now () - start;
  if (vault == NULL)
    return FALSE;
  relais_vault_close (vault);

  g_print ("unlock: %.0f ms (Argon2id, %zu MiB, %" G_GUINT64_FORMAT " passes)\n",
           elapsed * 1e3, params.memlimit >> 20, params.opslimit);
  return TRUE;
}

static char *
find_worker (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;
  char *worker;

  if (self == NULL)
    return NULL;
  dir = g_path_get_dirname (self);
  worker = g_build_filename (dir, "relais-bench-sqlcipher", NULL);
  if (!g_file_test (worker, G_FILE_TEST_IS_EXECUTABLE))
    g_clear_pointer (&worker, g_free);
  return worker;
}

static const char *
default_base_dir (void)
{
  const char *tmpdir = g_getenv ("TMPDIR");

  return tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/var/tmp";
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- measure what encrypting the vault costs");
  g_autoptr(GError) error = NULL;
  g_autofree char *work_dir = NULL;
  const char *base;
  struct statfs fs;
  Bench bench = { 0 };
  gboolean ok = TRUE;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("relais-bench-vault: %s\n", error->message);
      return 2;
    }
  /* A worker that dies must be an error message, not a SIGPIPE. */
  signal (SIGPIPE, SIG_IGN);
  if (sodium_init () < 0)
    {
      g_printerr ("relais-bench-vault: cannot initialise libsodium\n");
      return 1;
    }

  bench.n_rows = opt_quick ? 10000 : 100000;
  bench.n_commits = opt_quick ? 200 : 2000;
  bench.n_rounds = opt_quick ? 2 : 9;
  bench.n_commit_rounds = opt_quick ? 2 : 3;
  bench.n_slices = opt_quick ? 4 : 20;
  bench.worker = find_worker ();
  for (Workload w = 0; w < N_WORKLOADS; w++)
    for (int v = 0; v < N_VARIANTS; v++)
      bench.seconds[w][v] = g_array_new (FALSE, FALSE, sizeof (double));
  if (bench.worker == NULL)
    g_printerr ("relais-bench-vault: relais-bench-sqlcipher not built: no SQLCipher column\n");

  base = opt_dir != NULL ? opt_dir : default_base_dir ();
  if (statfs (base, &fs) == 0 && fs.f_type == TMPFS_MAGIC)
    g_printerr ("relais-bench-vault: %s is a tmpfs: fsync costs nothing there, "
                "the commits line means little (use --dir)\n", base);
  work_dir = g_build_filename (base, "relais-bench-XXXXXX", NULL);
  if (g_mkdtemp_full (work_dir, 0700) == NULL)
    {
      g_printerr ("relais-bench-vault: %s: %s\n", work_dir, g_strerror (errno));
      return 1;
    }

  for (int round = 0; ok && round < bench.n_rounds; round++)
    ok = run_round (&bench, work_dir, round, &error);
  if (ok)
    {
      print_results (&bench);
      ok = measure_unlock (work_dir, &error);
    }
  if (!ok)
    g_printerr ("relais-bench-vault: %s\n", error->message);

  remove_tree (work_dir);
  for (Workload w = 0; w < N_WORKLOADS; w++)
    for (int v = 0; v < N_VARIANTS; v++)
      g_array_unref (bench.seconds[w][v]);
  g_free (bench.worker);
  g_free (opt_dir);
  return ok ? 0 : 1;
}
