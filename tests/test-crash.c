#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "crashvfs.h"
#include "relais-test-util.h"
#include "relais-vault.h"

/*
 * The vault under faults, the way SQLite tests itself: power loss (with
 * crashvfs under the encrypting VFS), bit flips in every file of the vault,
 * I/O errors, a full disk, and processes killed mid-transaction.
 *
 * Every test runs the same workload: numbered transactions that insert,
 * update and delete rows of crash_t (some with blobs that overflow pages),
 * each tagged with its number, and record the number in crash_meta.  What a
 * transaction does depends only on (seed, number, state before), so the
 * test replays it on an in-memory model and can tell, after any fault,
 * whether the vault holds exactly the state after transaction N.
 *
 * Environment: RELAIS_CRASH_SEED=S runs seed S only (to reproduce a
 * failure: every seed is printed); RELAIS_CRASH_SEEDS=N runs N seeds;
 * RELAIS_CRASH_SYNC=N makes the power fail at the N-th sync.
 */

#define PASSPHRASE "correct horse battery staple"
#define N_TXNS     40
#define BIG_TXN    1000000u

#define TEST_ERROR (test_error_quark ())
G_DEFINE_QUARK (relais-test-crash-error, test_error)

/* Model of the workload */

typedef struct {
  gint64 key;
  guint  txn;
} Row;

typedef struct {
  GArray *rows;      /* of Row, sorted by key */
  guint   last_txn;
} Model;

typedef enum {
  OP_INSERT,
  OP_UPDATE,
  OP_DELETE,
} OpKind;

typedef struct {
  OpKind kind;
  gint64 key;
} Op;

static Model *
model_new (void)
{
  Model *m = g_new0 (Model, 1);

  m->rows = g_array_new (FALSE, FALSE, sizeof (Row));
  return m;
}

static Model *
model_copy (const Model *m)
{
  Model *copy = g_new0 (Model, 1);

  copy->rows = g_array_copy (m->rows);
  copy->last_txn = m->last_txn;
  return copy;
}

static void
model_free (Model *m)
{
  g_array_unref (m->rows);
  g_free (m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Model, model_free)

static guint64
mix (guint64 x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static gsize
blob_len (gint64 key,
          guint  txn)
{
  guint64 h = mix ((guint64) key * 1000003u ^ ((guint64) txn << 32));

  if (txn >= BIG_TXN)
    return 12000 + h % 8000;
  if (h % 6 == 0)
    return 4096 + (h >> 8) % 12000;   /* overflow pages */
  return 1 + (h >> 8) % 600;
}

/* The value of row @key as written by transaction @txn. */
static guint8 *
blob_new (gint64  key,
          guint   txn,
          gsize  *out_len)
{
  gsize len = blob_len (key, txn);
  guint8 *buf = g_malloc (len);
  guint64 state = mix ((guint64) key ^ ((guint64) txn << 24) ^ 0x5EEDull);

  for (gsize i = 0; i < len; i += 8)
    {
      guint64 v = mix (state + i);
      memcpy (buf + i, &v, MIN (8, len - i));
    }
  *out_len = len;
  return buf;
}

/* What transaction @txn does, applied to @m. */
static GArray *
txn_plan (Model    *m,
          guint32   seed,
          guint     txn)
{
  guint32 s[2] = { seed, txn };
  GRand *rand = g_rand_new_with_seed_array (s, 2);
  GArray *ops = g_array_new (FALSE, FALSE, sizeof (Op));
  guint n = txn >= BIG_TXN ? 24 : (guint) g_rand_int_range (rand, 2, 9);

  for (guint i = 0; i < n; i++)
    {
      guint r = (guint) g_rand_int_range (rand, 0, 100);
      guint len = m->rows->len;
      Op op;

      if (txn >= BIG_TXN || len < 20 || r < (len > 150 ? 25u : 45u))
        {
          Row row = { len > 0 ? g_array_index (m->rows, Row, len - 1).key + 1 : 1, txn };

          op.kind = OP_INSERT;
          op.key = row.key;
          g_array_append_val (m->rows, row);
        }
      else if (r < 80)
        {
          guint idx = (guint) g_rand_int_range (rand, 0, (gint32) len);

          op.kind = OP_UPDATE;
          op.key = g_array_index (m->rows, Row, idx).key;
          g_array_index (m->rows, Row, idx).txn = txn;
        }
      else
        {
          guint idx = (guint) g_rand_int_range (rand, 0, (gint32) len);

          op.kind = OP_DELETE;
          op.key = g_array_index (m->rows, Row, idx).key;
          g_array_remove_index (m->rows, idx);
        }
      g_array_append_val (ops, op);
    }
  m->last_txn = txn;
  g_rand_free (rand);
  return ops;
}

/* Vault helpers */

static void
vault_options (RelaisVaultOptions *options,
               RelaisKdfParams    *kdf,
               const char         *base_vfs,
               const char         *mode)
{
  relais_kdf_params_insecure_for_tests (kdf);
  options->base_vfs = base_vfs;
  options->kdf = kdf;
  options->journal_mode = mode;
}

static RelaisVault *
open_vault (const char  *dir,
            const char  *base_vfs,
            const char  *mode,
            GError     **error)
{
  RelaisVaultOptions options;
  RelaisKdfParams kdf;

  vault_options (&options, &kdf, base_vfs, mode);
  return relais_vault_open (dir, PASSPHRASE, &options, error);
}

static RelaisVault *
create_vault (const char *dir,
              const char *base_vfs,
              const char *mode)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *recovery = NULL;
  RelaisVaultOptions options;
  RelaisKdfParams kdf;
  RelaisVault *vault;

  vault_options (&options, &kdf, base_vfs, mode);
  vault = relais_vault_create (dir, PASSPHRASE, &options, &recovery, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);

  relais_vault_exec (vault,
                     "CREATE TABLE crash_t (k INTEGER PRIMARY KEY, txn INTEGER NOT NULL,"
                     "                      v BLOB NOT NULL)", &error);
  g_assert_no_error (error);
  relais_vault_exec (vault, "CREATE INDEX crash_t_txn ON crash_t (txn)", &error);
  g_assert_no_error (error);
  relais_vault_exec (vault,
                     "CREATE TABLE crash_meta (id INTEGER PRIMARY KEY,"
                     "                         last_txn INTEGER NOT NULL)", &error);
  g_assert_no_error (error);
  return vault;
}

/* Where the workload runs: a vault, or a plain SQLite connection (to
 * check that crashvfs itself is fair: plain SQLite must survive it). */
typedef struct {
  RelaisVault *vault;
  sqlite3     *db;
} Conn;

static Conn
vault_conn (RelaisVault *vault)
{
  return (Conn) { vault, relais_vault_get_db (vault) };
}

static gboolean
conn_fail (Conn        conn,
           int         rc,
           const char *what,
           GError    **error)
{
  if (conn.vault != NULL)
    relais_vault_set_sqlite_error (conn.vault, rc, what, error);
  else
    g_set_error (error, TEST_ERROR, rc, "%s: %s", what, sqlite3_errmsg (conn.db));
  return FALSE;
}

static gboolean
step_done (Conn           conn,
           sqlite3_stmt  *stmt,
           const char    *what,
           GError       **error)
{
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    return conn_fail (conn, rc, what, error);
  return TRUE;
}

static gboolean
prepare (Conn            conn,
         const char     *sql,
         sqlite3_stmt  **stmt,
         GError        **error)
{
  int rc = sqlite3_prepare_v2 (conn.db, sql, -1, stmt, NULL);

  if (rc != SQLITE_OK)
    return conn_fail (conn, rc, "prepare", error);
  return TRUE;
}

static gboolean
conn_exec (Conn         conn,
           const char  *sql,
           GError     **error)
{
  int rc = sqlite3_exec (conn.db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    return conn_fail (conn, sqlite3_extended_errcode (conn.db), sql, error);
  return TRUE;
}

static gboolean
run_op (Conn          conn,
        const Op     *op,
        guint         txn,
        GError      **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  guint8 *blob;
  gsize len;

  switch (op->kind)
    {
    case OP_INSERT:
      if (!prepare (conn, "INSERT INTO crash_t (k, txn, v) VALUES (?1, ?2, ?3)", &stmt, error))
        return FALSE;
      blob = blob_new (op->key, txn, &len);
      sqlite3_bind_int64 (stmt, 1, op->key);
      sqlite3_bind_int64 (stmt, 2, txn);
      sqlite3_bind_blob (stmt, 3, blob, (int) len, g_free);
      return step_done (conn, stmt, "insert", error);

    case OP_UPDATE:
      if (!prepare (conn, "UPDATE crash_t SET txn = ?2, v = ?3 WHERE k = ?1", &stmt, error))
        return FALSE;
      blob = blob_new (op->key, txn, &len);
      sqlite3_bind_int64 (stmt, 1, op->key);
      sqlite3_bind_int64 (stmt, 2, txn);
      sqlite3_bind_blob (stmt, 3, blob, (int) len, g_free);
      break;

    case OP_DELETE:
      if (!prepare (conn, "DELETE FROM crash_t WHERE k = ?1", &stmt, error))
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, op->key);
      break;

    default:
      g_assert_not_reached ();
    }

  if (!step_done (conn, stmt, op->kind == OP_UPDATE ? "update" : "delete", error))
    return FALSE;
  if (sqlite3_changes (conn.db) != 1)
    {
      g_set_error (error, TEST_ERROR, 0,
                   "transaction %u: row %" G_GINT64_FORMAT " is not in the database",
                   txn, op->key);
      return FALSE;
    }
  return TRUE;
}

/* Runs transaction @txn on @conn and applies it to @m (whatever happens
 * to the database). */
static gboolean
run_txn_on (Conn          conn,
            Model        *m,
            guint32       seed,
            guint         txn,
            GError      **error)
{
  g_autoptr(GArray) ops = txn_plan (m, seed, txn);
  g_autoptr(sqlite3_stmt) stmt = NULL;

  if (conn.vault != NULL ? !relais_vault_begin (conn.vault, error)
                         : !conn_exec (conn, "BEGIN IMMEDIATE", error))
    return FALSE;
  for (guint i = 0; i < ops->len; i++)
    if (!run_op (conn, &g_array_index (ops, Op, i), txn, error))
      return FALSE;
  if (!prepare (conn, "INSERT OR REPLACE INTO crash_meta (id, last_txn) VALUES (1, ?1)",
                &stmt, error))
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, txn);
  if (!step_done (conn, stmt, "meta", error))
    return FALSE;
  if (conn.vault != NULL)
    return relais_vault_commit (conn.vault, error);
  return conn_exec (conn, "COMMIT", error);
}

static gboolean
run_txn (RelaisVault  *vault,
         Model        *m,
         guint32       seed,
         guint         txn,
         GError      **error)
{
  return run_txn_on (vault_conn (vault), m, seed, txn, error);
}

typedef enum {
  MATCH_OK,
  MATCH_DIFFERENT,
  MATCH_SQL_ERROR,
} Match;

/* Whether the vault holds exactly the state @m; @why says where not. */
static Match
db_matches (sqlite3     *db,
            const Model *m,
            GString     *why)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  guint i = 0;
  guint last_txn = 0;
  int rc;

  rc = sqlite3_prepare_v2 (db, "SELECT last_txn FROM crash_meta WHERE id = 1", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        last_txn = (guint) sqlite3_column_int64 (stmt, 0);
    }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      g_string_append_printf (why, "SQLite error %d (%s); ", rc, sqlite3_errmsg (db));
      return MATCH_SQL_ERROR;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);

  rc = sqlite3_prepare_v2 (db, "SELECT k, txn, v FROM crash_t ORDER BY k", -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      g_string_append_printf (why, "SQLite error %d (%s); ", rc, sqlite3_errmsg (db));
      return MATCH_SQL_ERROR;
    }

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64 key = sqlite3_column_int64 (stmt, 0);
      guint txn = (guint) sqlite3_column_int64 (stmt, 1);
      const guint8 *v = sqlite3_column_blob (stmt, 2);
      gsize v_len = (gsize) sqlite3_column_bytes (stmt, 2);
      g_autofree guint8 *expected = NULL;
      gsize expected_len;
      const Row *row;

      if (i >= m->rows->len)
        {
          g_string_append_printf (why, "extra row %" G_GINT64_FORMAT " (txn %u); ", key, txn);
          return MATCH_DIFFERENT;
        }
      row = &g_array_index (m->rows, Row, i);
      if (row->key != key || row->txn != txn)
        {
          g_string_append_printf (why, "row %" G_GINT64_FORMAT " (txn %u) where row %"
                                  G_GINT64_FORMAT " (txn %u) was expected; ",
                                  key, txn, row->key, row->txn);
          return MATCH_DIFFERENT;
        }
      expected = blob_new (key, txn, &expected_len);
      if (v_len != expected_len || (v_len > 0 && memcmp (v, expected, v_len) != 0))
        {
          g_string_append_printf (why, "row %" G_GINT64_FORMAT " (txn %u) holds wrong data; ",
                                  key, txn);
          return MATCH_DIFFERENT;
        }
      i++;
    }
  if (rc != SQLITE_DONE)
    {
      g_string_append_printf (why, "SQLite error %d (%s) after %u rows; ",
                              rc, sqlite3_errmsg (db), i);
      return MATCH_SQL_ERROR;
    }
  if (i != m->rows->len)
    {
      g_string_append_printf (why, "%u rows where %u were expected; ", i, m->rows->len);
      return MATCH_DIFFERENT;
    }
  if (last_txn != m->last_txn)
    {
      g_string_append_printf (why, "last transaction %u where %u was expected; ",
                              last_txn, m->last_txn);
      return MATCH_DIFFERENT;
    }
  return MATCH_OK;
}

static Model *
load_model (sqlite3 *db)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  Model *m = model_new ();

  if (sqlite3_prepare_v2 (db, "SELECT last_txn FROM crash_meta WHERE id = 1", -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_step (stmt) == SQLITE_ROW)
    m->last_txn = (guint) sqlite3_column_int64 (stmt, 0);
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (sqlite3_prepare_v2 (db, "SELECT k, txn FROM crash_t ORDER BY k", -1, &stmt, NULL) == SQLITE_OK)
    while (sqlite3_step (stmt) == SQLITE_ROW)
      {
        Row row = { sqlite3_column_int64 (stmt, 0), (guint) sqlite3_column_int64 (stmt, 1) };
        g_array_append_val (m->rows, row);
      }
  return m;
}

static char *
integrity_check (sqlite3 *db)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  GString *result = g_string_new (NULL);
  int rc;

  rc = sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
      g_string_append_printf (result, "%s%s", result->len > 0 ? "\n" : "",
                              (const char *) sqlite3_column_text (stmt, 0));
  if (rc != SQLITE_DONE)
    g_string_append_printf (result, "%sSQLite error %d (%s)", result->len > 0 ? "\n" : "",
                            rc, sqlite3_errmsg (db));
  return g_string_free (result, FALSE);
}

/* Where page @pgno stands in the database, for a failure's message. */
static const char *
describe_page (sqlite3 *db,
               guint    pgno)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  gint64 page_count = 0;

  if (sqlite3_prepare_v2 (db, "PRAGMA page_count", -1, &stmt, NULL) == SQLITE_OK &&
      sqlite3_step (stmt) == SQLITE_ROW)
    page_count = sqlite3_column_int64 (stmt, 0);
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (pgno > page_count)
    return "past the end of the database";

  if (sqlite3_prepare_v2 (db, "SELECT name FROM dbstat WHERE pageno = ?1", -1, &stmt, NULL) != SQLITE_OK)
    return "of unknown use (no dbstat)";
  sqlite3_bind_int64 (stmt, 1, pgno);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    return "in use by a table or an index";
  return "not in any table or index (free)";
}

/* Opens the vault with the real VFS and checks that it is whole and holds
 * exactly one of @candidates; returns which.  @label names the case. */
static guint
check_vault (const char   *dir,
             const char   *mode,
             Model       **candidates,
             guint         n_candidates,
             const char   *label,
             guint        *out_rejected)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) why = g_string_new (NULL);
  g_autofree char *integrity = NULL;
  RelaisVault *vault;
  guint pages = 0;
  gboolean verified;
  gint matched = -1;

  vault = open_vault (dir, NULL, mode, &error);
  if (error != NULL)
    g_test_message ("%s: reopening failed: %s", label, error->message);
  g_assert_no_error (error);
  g_assert_nonnull (vault);

  if (out_rejected != NULL)
    *out_rejected = relais_vault_get_rejected_frames (vault);

  integrity = integrity_check (relais_vault_get_db (vault));
  if (g_strcmp0 (integrity, "ok") != 0)
    g_test_message ("%s: integrity_check: %s", label, integrity);
  g_assert_cmpstr (integrity, ==, "ok");

  verified = relais_vault_verify (vault, &pages, &error);
  if (error != NULL)
    {
      const char *at = strstr (error->message, "page ");
      guint pgno = at != NULL ? (guint) g_ascii_strtoull (at + 5, NULL, 10) : 0;

      g_test_message ("%s: verify: %s", label, error->message);
      if (pgno != 0)
        g_test_message ("%s: page %u is %s", label, pgno,
                        describe_page (relais_vault_get_db (vault), pgno));
    }
  g_assert_no_error (error);
  g_assert_true (verified);
  g_assert_cmpuint (pages, >, 0);

  for (guint i = 0; i < n_candidates && matched < 0; i++)
    {
      g_string_append_printf (why, "[after txn %u] ", candidates[i]->last_txn);
      if (db_matches (relais_vault_get_db (vault), candidates[i], why) == MATCH_OK)
        matched = (gint) i;
    }
  if (matched < 0)
    g_test_message ("%s: the vault holds no expected state: %s", label, why->str);
  g_assert_cmpint (matched, >=, 0);

  relais_vault_close (vault);
  return (guint) matched;
}

/* Files */

/* Copies the vault's files from @from into @to (created if needed). */
static void
copy_vault (const char *from,
            const char *to)
{
  static const char * const names[] = {
    RELAIS_KEYFILE_NAME,
    RELAIS_VAULT_DB_NAME,
    RELAIS_VAULT_DB_NAME "-wal",
    RELAIS_VAULT_DB_NAME "-journal",
  };

  g_assert_cmpint (g_mkdir_with_parents (to, 0700), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *src = g_build_filename (from, names[i], NULL);
      g_autofree char *dst = g_build_filename (to, names[i], NULL);
      g_autofree char *contents = NULL;
      g_autoptr(GError) error = NULL;
      gsize len;

      g_unlink (dst);
      if (!g_file_test (src, G_FILE_TEST_EXISTS))
        continue;
      g_file_get_contents (src, &contents, &len, &error);
      g_assert_no_error (error);
      g_file_set_contents_full (dst, contents, (gssize) len, G_FILE_SET_CONTENTS_NONE,
                                0600, &error);
      g_assert_no_error (error);
    }
}

static gint64
file_size (const char *path)
{
  GStatBuf st;

  if (g_stat (path, &st) != 0)
    return 0;
  return st.st_size;
}

static void
flip_bit (const char *path,
          gint64      bit)
{
  int fd = open (path, O_RDWR);
  guint8 byte;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (pread (fd, &byte, 1, bit / 8), ==, 1);
  byte ^= (guint8) (1u << (bit % 8));
  g_assert_cmpint (pwrite (fd, &byte, 1, bit / 8), ==, 1);
  close (fd);
}

/* Seeds */

static guint
n_seeds (guint fallback)
{
  const char *env = g_getenv ("RELAIS_CRASH_SEEDS");

  if (g_getenv ("RELAIS_CRASH_SEED") != NULL)
    return 1;
  if (env != NULL)
    return (guint) g_ascii_strtoull (env, NULL, 10);
  return fallback;
}

static guint32
nth_seed (guint i)
{
  const char *env = g_getenv ("RELAIS_CRASH_SEED");

  if (env != NULL)
    return (guint32) g_ascii_strtoull (env, NULL, 10);
  return 1 + i;
}

static const char *
mode_label (const char *mode)
{
  return g_str_equal (mode, "WAL") ? "wal" : "delete";
}

/* crashvfs itself */

static sqlite3_file *
raw_open (const char *path)
{
  sqlite3_vfs *vfs = sqlite3_vfs_find (CRASHVFS_NAME);
  sqlite3_file *file = g_malloc0 (vfs->szOsFile);
  int rc;

  rc = vfs->xOpen (vfs, path, file,
                   SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  return file;
}

static void
raw_close (sqlite3_file *file)
{
  file->pMethods->xClose (file);
  g_free (file);
}

static int
raw_write (sqlite3_file *file,
           guint8        fill,
           int           len,
           gint64        offset)
{
  g_autofree guint8 *buf = g_malloc (len);

  memset (buf, fill, len);
  return file->pMethods->xWrite (file, buf, len, offset);
}

/* Unsynced writes come back old, new or torn on sector bounds, never
 * anything else; synced ones stay; after the crash nothing gets through. */
static void
test_crashvfs_model (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *path = g_build_filename (tmp, "file", NULL);
  sqlite3_vfs *vfs = sqlite3_vfs_find (CRASHVFS_NAME);
  guint old_sectors = 0, new_sectors = 0, grown = 0, not_grown = 0;
  guint n = n_seeds (200);

  for (guint i = 0; i < n; i++)
    {
      guint32 seed = nth_seed (i);
      g_autofree char *contents = NULL;
      g_autoptr(GError) error = NULL;
      sqlite3_file *file;
      guint8 byte;
      gsize len;
      int out;

      crashvfs_reset (seed);
      g_unlink (path);
      file = raw_open (path);
      g_assert_cmpint (raw_write (file, 'A', 8192, 0), ==, SQLITE_OK);
      g_assert_cmpint (file->pMethods->xSync (file, SQLITE_SYNC_NORMAL), ==, SQLITE_OK);
      g_assert_cmpint (raw_write (file, 'B', 8192 - 1024, 512), ==, SQLITE_OK);
      g_assert_cmpint (raw_write (file, 'C', 4096, 8192), ==, SQLITE_OK);
      g_assert_cmpint (raw_write (file, 'D', 512, 1024), ==, SQLITE_OK);

      crashvfs_arm (1);
      g_assert_cmpint (file->pMethods->xSync (file, SQLITE_SYNC_NORMAL), ==, SQLITE_IOERR_FSYNC);
      g_assert_true (crashvfs_has_crashed ());

      /* Nothing reaches the disk any more. */
      g_assert_cmpint (file->pMethods->xRead (file, &byte, 1, 0), ==, SQLITE_IOERR_READ);
      g_assert_cmpint (raw_write (file, 'E', 512, 0), ==, SQLITE_IOERR_WRITE);
      g_assert_cmpint (file->pMethods->xTruncate (file, 0), ==, SQLITE_IOERR_TRUNCATE);
      g_assert_cmpint (file->pMethods->xSync (file, 0), ==, SQLITE_IOERR_FSYNC);
      g_assert_cmpint (vfs->xDelete (vfs, path, 0), ==, SQLITE_IOERR_DELETE);
      raw_close (file);
      g_assert_cmpint (vfs->xAccess (vfs, path, SQLITE_ACCESS_EXISTS, &out), ==, SQLITE_OK);
      g_assert_cmpint (out, ==, 1);

      g_file_get_contents (path, &contents, &len, &error);
      g_assert_no_error (error);
      g_assert_true (len == 8192 || len == 12288);
      if (len == 8192)
        not_grown++;
      else
        grown++;
      for (gsize s = 0; s < len; s += 512)
        {
          /* Every sector is one version of itself, whole. */
          char first = contents[s];
          for (gsize b = s; b < s + 512; b++)
            g_assert_cmpint (contents[b], ==, first);
          if (s < 512 || (s >= 7680 && s < 8192))
            g_assert_cmpint (first, ==, 'A');
          else if (s == 1024)
            g_assert_true (first == 'A' || first == 'B' || first == 'D');
          else if (s < 8192)
            g_assert_true (first == 'A' || first == 'B');
          else
            g_assert_true (first == 'C' || first == 0);
          if (s > 0 && s < 7680)
            {
              if (first == 'A')
                old_sectors++;
              else
                new_sectors++;
            }
        }
    }
  g_test_message ("crashvfs model: %u runs, %u sectors old, %u new; grown %u, not grown %u",
                  n, old_sectors, new_sectors, grown, not_grown);
  if (n >= 50)
    {
      g_assert_cmpuint (old_sectors, >, 0);
      g_assert_cmpuint (new_sectors, >, 0);
      g_assert_cmpuint (grown, >, 0);
      g_assert_cmpuint (not_grown, >, 0);
    }
  crashvfs_reset (0);
  relais_test_rm_rf (tmp);
}

/* Injected errors hit exactly the operations asked for. */
static void
test_crashvfs_faults (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *path = g_build_filename (tmp, "file", NULL);
  sqlite3_file *file;
  guint8 byte;

  crashvfs_reset (1);
  file = raw_open (path);

  crashvfs_set_fail_ops (CRASHVFS_OP_WRITE, FALSE);
  crashvfs_fail_after (2, FALSE);
  g_assert_cmpint (raw_write (file, 'A', 512, 0), ==, SQLITE_OK);
  g_assert_cmpint (file->pMethods->xRead (file, &byte, 1, 0), ==, SQLITE_OK);
  g_assert_cmpint (raw_write (file, 'A', 512, 0), ==, SQLITE_IOERR_WRITE);
  g_assert_cmpint (raw_write (file, 'A', 512, 0), ==, SQLITE_OK);
  g_assert_cmpuint (crashvfs_get_failures (), ==, 1);

  crashvfs_set_fail_ops (CRASHVFS_OP_WRITE, TRUE);
  crashvfs_fail_after (1, TRUE);
  g_assert_cmpint (raw_write (file, 'A', 512, 0), ==, SQLITE_FULL);
  g_assert_cmpint (raw_write (file, 'A', 512, 0), ==, SQLITE_FULL);
  crashvfs_fail_after (0, FALSE);
  g_assert_cmpint (raw_write (file, 'A', 512, 0), ==, SQLITE_OK);

  crashvfs_set_fail_ops (CRASHVFS_OP_READ | CRASHVFS_OP_SYNC, FALSE);
  crashvfs_fail_after (2, TRUE);
  g_assert_cmpint (file->pMethods->xRead (file, &byte, 1, 0), ==, SQLITE_OK);
  g_assert_cmpint (file->pMethods->xSync (file, 0), ==, SQLITE_IOERR_FSYNC);
  g_assert_cmpint (file->pMethods->xRead (file, &byte, 1, 0), ==, SQLITE_IOERR_READ);
  crashvfs_fail_after (0, FALSE);

  /* 512 bytes on the disk; 1024 more may come. */
  crashvfs_set_disk_budget (1024);
  g_assert_cmpint (raw_write (file, 'B', 1024, 256), ==, SQLITE_OK);   /* grows 768 */
  g_assert_cmpint (raw_write (file, 'B', 512, 1280), ==, SQLITE_FULL); /* 512 more: no */
  g_assert_cmpint (raw_write (file, 'B', 256, 1280), ==, SQLITE_OK);   /* 256 more: yes */
  g_assert_cmpint (raw_write (file, 'B', 1536, 0), ==, SQLITE_OK);     /* overwrite */
  g_assert_cmpint (raw_write (file, 'B', 1, 1536), ==, SQLITE_FULL);
  g_assert_cmpint (crashvfs_get_disk_growth (), ==, 1024);

  raw_close (file);
  crashvfs_reset (0);
  relais_test_rm_rf (tmp);
}

/* Plain SQLite, configured like the vault (but in clear), to check that
 * crashvfs is fair: what SQLite itself survives, the vault must too. */

static sqlite3 *
plain_open (const char *dir,
            const char *vfs,
            const char *mode,
            gboolean    creating)
{
  g_autofree char *path = g_build_filename (dir, "plain.db", NULL);
  g_autofree char *pragmas = g_strdup_printf ("PRAGMA locking_mode = EXCLUSIVE;"
                                              "PRAGMA temp_store = MEMORY;"
                                              "PRAGMA page_size = 4096;"
                                              "PRAGMA journal_mode = %s;"
                                              "PRAGMA synchronous = FULL;", mode);
  sqlite3 *db = NULL;
  int reserve = RELAIS_RESERVE_BYTES;
  int rc;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | (creating ? SQLITE_OPEN_CREATE : 0),
                        vfs);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  sqlite3_extended_result_codes (db, 1);
  if (creating)
    sqlite3_file_control (db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
  rc = sqlite3_exec (db, pragmas, NULL, NULL, NULL);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  if (creating)
    {
      rc = sqlite3_exec (db,
                         "CREATE TABLE crash_t (k INTEGER PRIMARY KEY, txn INTEGER NOT NULL,"
                         "                      v BLOB NOT NULL);"
                         "CREATE INDEX crash_t_txn ON crash_t (txn);"
                         "CREATE TABLE crash_meta (id INTEGER PRIMARY KEY,"
                         "                         last_txn INTEGER NOT NULL);",
                         NULL, NULL, NULL);
      g_assert_cmpint (rc, ==, SQLITE_OK);
    }
  return db;
}

static guint
check_plain (const char  *dir,
             const char  *mode,
             Model      **candidates,
             guint        n_candidates,
             const char  *label)
{
  g_autoptr(GString) why = g_string_new (NULL);
  g_autofree char *integrity = NULL;
  sqlite3 *db = plain_open (dir, NULL, mode, FALSE);
  gint matched = -1;

  integrity = integrity_check (db);
  if (g_strcmp0 (integrity, "ok") != 0)
    g_test_message ("%s: integrity_check: %s", label, integrity);
  g_assert_cmpstr (integrity, ==, "ok");

  for (guint i = 0; i < n_candidates && matched < 0; i++)
    {
      g_string_append_printf (why, "[after txn %u] ", candidates[i]->last_txn);
      if (db_matches (db, candidates[i], why) == MATCH_OK)
        matched = (gint) i;
    }
  if (matched < 0)
    g_test_message ("%s: the database holds no expected state: %s", label, why->str);
  g_assert_cmpint (matched, >=, 0);

  sqlite3_close (db);
  return (guint) matched;
}

/* Power loss */

typedef struct {
  const char *mode;
  gboolean    plain;   /* plain SQLite, not the vault */
} PowerLossCase;

static const PowerLossCase power_loss_wal = { "WAL", FALSE };
static const PowerLossCase power_loss_delete = { "DELETE", FALSE };
static const PowerLossCase power_loss_plain_wal = { "WAL", TRUE };
static const PowerLossCase power_loss_plain_delete = { "DELETE", TRUE };

typedef struct {
  guint syncs;        /* syncs the workload made after arming */
  guint committed;    /* last transaction whose COMMIT returned */
  gboolean in_flight; /* committed + 1 had started */
  guint matched;      /* 0: committed state, 1: in-flight one whole */
  guint rejected;
  CrashvfsCrashStats stats;
} CrashOutcome;

/* One run: a workload over crashvfs that loses power at sync @crash_sync
 * (0: at the end), then the checks. */
static void
power_loss_run (const PowerLossCase *pl,
                guint32              seed,
                guint                crash_sync,
                CrashOutcome        *out)
{
  const char *mode = pl->mode;
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autofree char *label = g_strdup_printf ("power loss %s%s seed %u at sync %u",
                                            pl->plain ? "plain SQLite " : "",
                                            mode_label (mode), seed, crash_sync);
  g_autoptr(Model) committed = model_new ();
  g_autoptr(Model) in_flight = NULL;
  g_autoptr(GError) error = NULL;
  RelaisVault *vault = NULL;
  Conn conn;
  Model *candidates[2];
  guint syncs_before;

  memset (out, 0, sizeof *out);
  g_test_message ("%s", label);

  crashvfs_reset (seed);
  if (pl->plain)
    conn = (Conn) { NULL, plain_open (dir, CRASHVFS_NAME, mode, TRUE) };
  else
    {
      vault = create_vault (dir, CRASHVFS_NAME, mode);
      conn = vault_conn (vault);
    }
  conn_exec (conn, "PRAGMA wal_autocheckpoint = 20", &error);
  g_assert_no_error (error);

  syncs_before = crashvfs_get_sync_count ();
  crashvfs_arm (crash_sync);

  for (guint txn = 1; txn <= N_TXNS; txn++)
    {
      g_autoptr(Model) next = model_copy (committed);

      if (!run_txn_on (conn, next, seed, txn, &error))
        {
          if (!crashvfs_has_crashed ())
            g_test_message ("%s: transaction %u failed before the crash: %s",
                            label, txn, error->message);
          g_assert_true (crashvfs_has_crashed ());
          if (!pl->plain)
            g_assert_error (error, RELAIS_VAULT_ERROR, error->code);
          in_flight = g_steal_pointer (&next);
          break;
        }
      g_clear_pointer (&committed, model_free);
      committed = g_steal_pointer (&next);
    }

  out->syncs = crashvfs_get_sync_count () - syncs_before;
  if (!crashvfs_has_crashed ())
    crashvfs_crash_now ();
  crashvfs_get_crash_stats (&out->stats);

  /* Every I/O fails now: closing must cope, and write nothing. */
  if (pl->plain)
    sqlite3_close_v2 (conn.db);
  else
    relais_vault_close (vault);
  crashvfs_reset (0);

  candidates[0] = committed;
  candidates[1] = in_flight;
  out->committed = committed->last_txn;
  out->in_flight = in_flight != NULL;
  if (pl->plain)
    out->matched = check_plain (dir, mode, candidates, in_flight != NULL ? 2 : 1, label);
  else
    out->matched = check_vault (dir, mode, candidates, in_flight != NULL ? 2 : 1, label,
                                &out->rejected);

  g_test_message ("%s: %u committed, %s, %u syncs; crash: %u files, %u kept, %u dropped, "
                  "%u torn, %u cut back; %u frames rejected",
                  label, out->committed,
                  !out->in_flight ? "none in flight" :
                  out->matched == 1 ? "in-flight one whole" : "in-flight one absent",
                  out->syncs, out->stats.files, out->stats.kept, out->stats.dropped,
                  out->stats.torn, out->stats.cut_back, out->rejected);
  relais_test_rm_rf (tmp);
}

static void
test_power_loss (gconstpointer data)
{
  const PowerLossCase *pl = data;
  const char *mode = pl->mode;
  CrashOutcome outcome;
  guint total_syncs;
  guint n = n_seeds (pl->plain ? 150 : 500);
  guint crashed_mid = 0, in_flight_whole = 0, in_flight_absent = 0, rejected = 0;
  gint64 start = g_get_monotonic_time ();

  /* A run that loses power only at the end tells how many syncs the
   * workload makes, so the crashes below fall anywhere in it.  Always
   * seed 0, so that RELAIS_CRASH_SEED=S reproduces the crash point too. */
  power_loss_run (pl, 0, 0, &outcome);
  g_assert_cmpuint (outcome.committed, ==, N_TXNS);
  total_syncs = outcome.syncs;
  g_assert_cmpuint (total_syncs, >, N_TXNS);

  for (guint i = 0; i < n; i++)
    {
      guint32 seed = nth_seed (i);
      GRand *rand = g_rand_new_with_seed (seed ^ 0xC0FFEEu);
      guint crash_sync = (guint) g_rand_int_range (rand, 1, (gint32) (total_syncs + 1));

      g_rand_free (rand);
      if (g_getenv ("RELAIS_CRASH_SYNC") != NULL)
        crash_sync = (guint) g_ascii_strtoull (g_getenv ("RELAIS_CRASH_SYNC"), NULL, 10);
      power_loss_run (pl, seed, crash_sync, &outcome);
      if (outcome.committed < N_TXNS)
        crashed_mid++;
      if (outcome.in_flight)
        {
          if (outcome.matched == 1)
            in_flight_whole++;
          else
            in_flight_absent++;
        }
      if (outcome.rejected > 0)
        rejected++;
    }

  g_test_message ("power loss %s%s: %u seeds, %u syncs per run, %u crashed mid-run, "
                  "in-flight transaction whole %u / absent %u, %u runs with rejected frames, "
                  "%.1f s",
                  pl->plain ? "plain SQLite " : "", mode_label (mode), n, total_syncs,
                  crashed_mid, in_flight_whole,
                  in_flight_absent, rejected,
                  (g_get_monotonic_time () - start) / 1e6);
  /* The crash points must really land inside the workload. */
  if (n >= 20)
    g_assert_cmpuint (crashed_mid, >=, n / 2);
}

/* Bit flips */

/* Vault with transactions 1..n committed, closed (and so checkpointed). */
static Model *
make_closed_vault (const char *dir,
                   const char *mode,
                   guint32     seed,
                   guint       n)
{
  g_autoptr(GError) error = NULL;
  Model *m = model_new ();
  RelaisVault *vault = create_vault (dir, NULL, mode);

  for (guint txn = 1; txn <= n; txn++)
    {
      run_txn (vault, m, seed, txn, &error);
      g_assert_no_error (error);
    }
  relais_vault_close (vault);
  return m;
}

static void
test_bitflip_db (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *golden = g_build_filename (tmp, "golden", NULL);
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autofree char *db_path = g_build_filename (dir, RELAIS_VAULT_DB_NAME, NULL);
  g_autoptr(Model) m = make_closed_vault (golden, "WAL", 7, 30);
  guint n = n_seeds (60);
  guint at_open = 0, at_read = 0, at_verify = 0, free_passed = 0;
  g_autoptr(GHashTable) in_use = NULL;
  gint64 size;

  copy_vault (golden, dir);
  size = file_size (db_path);
  g_assert_cmpint (size, >, 0);
  g_assert_cmpint (size % RELAIS_PAGE_SIZE, ==, 0);

  /* Which pages hold a table or an index (page 1 included).  The others
   * are free: SQLite reuses a free page without journaling its old
   * content, so after a power loss in rollback mode a free page may
   * legitimately hold a torn write, and a bit flipped there cannot be told
   * from one.  Whether verify reports those is the vault's choice (the
   * power loss tests want it not to); what matters is that no data is
   * wrong. */
  in_use = g_hash_table_new (NULL, NULL);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(sqlite3_stmt) stmt = NULL;
    RelaisVault *vault = open_vault (dir, NULL, "WAL", &error);

    g_assert_no_error (error);
    g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault),
                                         "SELECT DISTINCT pageno FROM dbstat", -1, &stmt, NULL),
                     ==, SQLITE_OK);
    while (sqlite3_step (stmt) == SQLITE_ROW)
      g_hash_table_add (in_use, GINT_TO_POINTER (sqlite3_column_int (stmt, 0)));
    g_clear_pointer (&stmt, sqlite3_finalize);
    relais_vault_close (vault);
  }
  g_test_message ("bit flips in vault.db: %" G_GINT64_FORMAT " pages, %u in use",
                  size / RELAIS_PAGE_SIZE, g_hash_table_size (in_use));
  g_assert_true (g_hash_table_contains (in_use, GINT_TO_POINTER (1)));

  for (guint i = 0; i < n; i++)
    {
      guint32 seed = nth_seed (i);
      GRand *rand = g_rand_new_with_seed (seed);
      gint64 page = g_rand_int_range (rand, 0, (gint32) (size / RELAIS_PAGE_SIZE));
      gint64 bit = page * RELAIS_PAGE_SIZE * 8 + g_rand_int_range (rand, 0, RELAIS_PAGE_SIZE * 8);
      g_autoptr(GError) error = NULL;
      g_autoptr(GString) why = g_string_new (NULL);
      gboolean page_in_use = g_hash_table_contains (in_use, GINT_TO_POINTER (page + 1));
      RelaisVault *vault;
      gboolean ok;

      g_rand_free (rand);
      g_test_message ("bit flip db seed %u: page %" G_GINT64_FORMAT " (%s), byte %"
                      G_GINT64_FORMAT ", bit %d", seed, page + 1, page_in_use ? "in use" : "free",
                      (bit / 8) % RELAIS_PAGE_SIZE, (int) (bit % 8));
      copy_vault (golden, dir);
      flip_bit (db_path, bit);

      vault = open_vault (dir, NULL, "WAL", &error);
      if (vault == NULL)
        {
          g_test_message ("  open: %s", error->message);
          g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
          at_open++;
          continue;
        }
      g_assert_no_error (error);

      /* Whatever can still be read must be the real data. */
      switch (db_matches (relais_vault_get_db (vault), m, why))
        {
        case MATCH_OK:
          break;
        case MATCH_SQL_ERROR:
          at_read++;
          break;
        case MATCH_DIFFERENT:
        default:
          g_test_message ("  garbage read back: %s", why->str);
          g_assert_not_reached ();
        }

      ok = relais_vault_verify (vault, NULL, &error);
      if (error != NULL)
        g_test_message ("  verify: %s", error->message);
      if (ok && !page_in_use)
        {
          g_autofree char *integrity = integrity_check (relais_vault_get_db (vault));

          g_assert_cmpstr (integrity, ==, "ok");
          g_assert_cmpint (db_matches (relais_vault_get_db (vault), m, why), ==, MATCH_OK);
          free_passed++;
          relais_vault_close (vault);
          continue;
        }
      g_assert_false (ok);
      g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
      at_verify++;
      relais_vault_close (vault);
    }

  g_test_message ("bit flips in vault.db: %u flips, %u refused at open, %u at verify "
                  "(%u of them also failed to read the table), %u in free pages passed "
                  "with the data intact", n, at_open, at_verify, at_read, free_passed);
  relais_test_rm_rf (tmp);
}

static void
test_bitflip_wal (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *live = g_build_filename (tmp, "live", NULL);
  g_autofree char *golden = g_build_filename (tmp, "golden", NULL);
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autofree char *wal_path = g_build_filename (dir, RELAIS_VAULT_DB_NAME "-wal", NULL);
  g_autofree char *live_wal = g_build_filename (live, RELAIS_VAULT_DB_NAME "-wal", NULL);
  g_autoptr(GPtrArray) models = g_ptr_array_new_with_free_func ((GDestroyNotify) model_free);
  g_autoptr(GArray) frames_after = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GError) error = NULL;
  const guint32 seed = 11;
  const guint base_txns = 5, wal_txns = 12;
  const gint64 frame_size = 24 + RELAIS_PAGE_SIZE;
  Model *m = model_new ();
  RelaisVault *vault;
  gint64 wal_size, n_frames;
  guint n = n_seeds (60);
  guint in_header = 0, in_page = 0;

  /* Transactions 1..5 in the database file, 6..17 in the WAL only. */
  vault = create_vault (live, NULL, "WAL");
  for (guint txn = 1; txn <= base_txns; txn++)
    {
      run_txn (vault, m, seed, txn, &error);
      g_assert_no_error (error);
    }
  relais_vault_exec (vault, "PRAGMA wal_checkpoint(TRUNCATE)", &error);
  g_assert_no_error (error);
  relais_vault_exec (vault, "PRAGMA wal_autocheckpoint = 0", &error);
  g_assert_no_error (error);
  g_assert_cmpint (file_size (live_wal), ==, 0);

  g_ptr_array_add (models, model_copy (m));   /* index 0: state in vault.db */
  for (guint txn = base_txns + 1; txn <= base_txns + wal_txns; txn++)
    {
      gint64 frames;

      run_txn (vault, m, seed, txn, &error);
      g_assert_no_error (error);
      g_ptr_array_add (models, model_copy (m));
      frames = (file_size (live_wal) - 32) / frame_size;
      g_array_append_val (frames_after, frames);
    }

  /* What a process killed now would leave: the WAL is not checkpointed. */
  copy_vault (live, golden);
  relais_vault_close (vault);
  model_free (m);

  {
    g_autofree char *golden_wal = g_build_filename (golden, RELAIS_VAULT_DB_NAME "-wal", NULL);
    wal_size = file_size (golden_wal);
  }
  g_assert_cmpint ((wal_size - 32) % frame_size, ==, 0);
  n_frames = (wal_size - 32) / frame_size;
  g_assert_cmpint (n_frames, ==, g_array_index (frames_after, gint64, wal_txns - 1));
  g_test_message ("bit flips in the WAL: %" G_GINT64_FORMAT " frames for %u transactions",
                  n_frames, wal_txns);

  /* Untouched, it holds everything. */
  copy_vault (golden, dir);
  {
    Model *all = g_ptr_array_index (models, wal_txns);
    guint rejected = 0;

    check_vault (dir, "WAL", &all, 1, "bit flip wal: no flip", &rejected);
    g_assert_cmpuint (rejected, ==, 0);
  }

  for (guint i = 0; i < n; i++)
    {
      guint32 s = nth_seed (i);
      GRand *rand = g_rand_new_with_seed (s);
      g_autofree char *label = NULL;
      gint64 frame = -1, byte;
      guint expected = 0;
      guint rejected = 0;
      gboolean page_part = FALSE;
      Model *want;

      if (g_rand_int_range (rand, 0, 10) == 0)
        byte = g_rand_int_range (rand, 0, 32);   /* the WAL header: the whole WAL goes */
      else
        {
          frame = g_rand_int_range (rand, 0, (gint32) n_frames);
          page_part = g_rand_int_range (rand, 0, 4) != 0;
          byte = 32 + frame * frame_size +
                 (page_part ? 24 + g_rand_int_range (rand, 0, RELAIS_PAGE_SIZE)
                            : g_rand_int_range (rand, 0, 24));
          /* The frame's transaction and every later one are lost. */
          while (g_array_index (frames_after, gint64, expected) <= frame)
            expected++;
        }
      want = g_ptr_array_index (models, expected);
      label = g_strdup_printf ("bit flip wal seed %u: frame %" G_GINT64_FORMAT " (%s), byte %"
                               G_GINT64_FORMAT ", expect state after txn %u",
                               s, frame, frame < 0 ? "header" : page_part ? "page" : "frame header",
                               byte, want->last_txn);
      g_test_message ("%s", label);

      copy_vault (golden, dir);
      flip_bit (wal_path, byte * 8 + g_rand_int_range (rand, 0, 8));
      g_rand_free (rand);

      check_vault (dir, "WAL", &want, 1, label, &rejected);
      if (page_part)
        {
          g_assert_cmpuint (rejected, >, 0);
          in_page++;
        }
      else
        in_header++;
    }

  g_test_message ("bit flips in the WAL: %u flips (%u in page images, %u in headers)",
                  n, in_page, in_header);
  relais_test_rm_rf (tmp);
}

static void
test_bitflip_key (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autofree char *key_path = g_build_filename (dir, RELAIS_KEYFILE_NAME, NULL);
  g_autoptr(Model) m = make_closed_vault (dir, "WAL", 3, 3);
  g_autofree char *original = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  guint n = n_seeds (64);
  guint damaged = 0, bad_pass = 0;

  g_file_get_contents (key_path, &original, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, >, 0);

  for (guint i = 0; i < n; i++)
    {
      guint32 seed = nth_seed (i);
      GRand *rand = g_rand_new_with_seed (seed);
      gint64 bit = g_rand_int_range (rand, 0, (gint32) (len * 8));
      RelaisVault *vault;

      g_rand_free (rand);
      g_test_message ("bit flip key seed %u: byte %" G_GINT64_FORMAT " of %" G_GSIZE_FORMAT
                      ", bit %d", seed, bit / 8, len, (int) (bit % 8));
      g_file_set_contents (key_path, original, (gssize) len, &error);
      g_assert_no_error (error);
      flip_bit (key_path, bit);

      vault = open_vault (dir, NULL, "WAL", &error);
      if (vault != NULL)
        relais_vault_close (vault);
      g_assert_null (vault);
      g_assert_nonnull (error);
      g_test_message ("  %s", error->message);
      if (g_error_matches (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED))
        damaged++;
      else
        {
          g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE);
          bad_pass++;
        }
      g_clear_error (&error);
    }

  /* And the untouched file still opens the vault, with its data. */
  g_file_set_contents (key_path, original, (gssize) len, &error);
  g_assert_no_error (error);
  check_vault (dir, "WAL", (Model *[]) { m }, 1, "bit flip key: restored", NULL);

  g_test_message ("bit flips in vault.key: %u flips, %u damaged, %u bad passphrase",
                  n, damaged, bad_pass);
  relais_test_rm_rf (tmp);
}

/* I/O errors and a full disk */

typedef struct {
  const char   *name;
  CrashvfsOps   ops;
} OpClass;

static const OpClass op_classes[] = {
  { "read", CRASHVFS_OP_READ },
  { "write", CRASHVFS_OP_WRITE },
  { "sync", CRASHVFS_OP_SYNC },
  { "any", CRASHVFS_OP_ALL },
};

#define GOLDEN_TXNS 30

/* A vault in @golden with transactions 1..GOLDEN_TXNS (closed), and its
 * model: big enough that a transaction reads pages all over the file. */
static Model *
make_golden (const char *golden,
             const char *mode,
             guint32     seed)
{
  return make_closed_vault (golden, mode, seed, GOLDEN_TXNS);
}

static RelaisVault *
open_over_crashvfs (const char *dir,
                    const char *mode,
                    guint32     seed)
{
  g_autoptr(GError) error = NULL;
  RelaisVault *vault;

  crashvfs_reset (seed);
  vault = open_vault (dir, CRASHVFS_NAME, mode, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);
  return vault;
}

/* Runs @txn over @vault with the faults armed; on failure checks the error
 * is @expected_code, rolls back, and (for a fault that passed) checks the
 * connection still works: it sees a whole state and can redo @txn.
 * Returns which of before/after the vault must now hold (1: after), or -1
 * if either may (a COMMIT that failed). */
static gint
txn_under_fault (RelaisVault *vault,
                 const Model *before,
                 guint32      seed,
                 guint        txn,
                 gboolean     persistent,
                 gint         expected_code,
                 const char  *label,
                 gboolean    *out_failed)
{
  g_autoptr(Model) after = model_copy (before);
  g_autoptr(Model) retry = NULL;
  g_autoptr(GString) why = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  Match seen;

  *out_failed = FALSE;
  if (run_txn (vault, after, seed, txn, &error))
    return 1;

  *out_failed = TRUE;
  g_test_message ("%s: %s", label, error->message);
  g_assert_error (error, RELAIS_VAULT_ERROR, expected_code);
  relais_vault_rollback (vault);

  if (persistent)
    return -1;

  /* The fault has passed: the same connection carries on. */
  crashvfs_fail_after (0, FALSE);
  crashvfs_set_disk_budget (-1);
  seen = db_matches (relais_vault_get_db (vault), before, why);
  if (seen == MATCH_OK)
    {
      retry = model_copy (before);
      g_clear_error (&error);
      run_txn (vault, retry, seed, txn, &error);
      if (error != NULL)
        g_test_message ("%s: retry: %s", label, error->message);
      g_assert_no_error (error);
      return 1;
    }
  seen = db_matches (relais_vault_get_db (vault), after, why);
  if (seen != MATCH_OK)
    g_test_message ("%s: after the fault the connection sees: %s", label, why->str);
  g_assert_cmpint (seen, ==, MATCH_OK);
  return 1;
}

static void
test_io_errors (gconstpointer data)
{
  const char *mode = data;
  const guint32 seed = 5;
  const guint txn = GOLDEN_TXNS + 1;
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *golden = g_build_filename (tmp, "golden", NULL);
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autoptr(Model) before = make_golden (golden, mode, seed);
  g_autoptr(Model) after = model_copy (before);
  g_autoptr(GArray) ops = txn_plan (after, seed, txn);
  guint cases = 0, failed = 0;
  gint64 start = g_get_monotonic_time ();

  for (guint c = 0; c < G_N_ELEMENTS (op_classes); c++)
    for (guint persistent = 0; persistent < 2; persistent++)
      {
        g_autoptr(GError) error = NULL;
        RelaisVault *vault;
        guint total;
        guint step;

        /* How many operations of that class the transaction makes, from a
         * cold cache (so that it reads too). */
        copy_vault (golden, dir);
        vault = open_over_crashvfs (dir, mode, seed);
        crashvfs_set_fail_ops (op_classes[c].ops, FALSE);
        crashvfs_fail_after (0, FALSE);
        {
          g_autoptr(Model) m = model_copy (before);
          run_txn (vault, m, seed, txn, &error);
          g_assert_no_error (error);
        }
        total = crashvfs_get_op_count ();
        relais_vault_close (vault);
        g_assert_cmpuint (total, >, 0);

        /* Every operation up to 16, then a spread of the rest. */
        step = MAX (1, total / 16);
        for (guint k = 1; k <= total; k += (k < 16 ? 1 : step))
          {
            g_autofree char *label = g_strdup_printf ("io error %s: %s %s error at op %u of %u",
                                                      mode_label (mode), persistent ? "persistent" : "one",
                                                      op_classes[c].name, k, total);
            Model *candidates[2] = { before, after };
            gboolean txn_failed;
            gint want;
            guint got;

            copy_vault (golden, dir);
            vault = open_over_crashvfs (dir, mode, seed);
            crashvfs_set_fail_ops (op_classes[c].ops, FALSE);
            crashvfs_fail_after (k, persistent);

            want = txn_under_fault (vault, before, seed, txn, persistent,
                                    RELAIS_VAULT_ERROR_IO, label, &txn_failed);
            if (txn_failed)
              failed++;
            /* A persistent fault fails the close too, which must cope. */
            relais_vault_close (vault);
            crashvfs_reset (0);

            if (want >= 0)
              {
                Model *expected = candidates[want];
                got = check_vault (dir, mode, &expected, 1, label, NULL);
              }
            else
              got = check_vault (dir, mode, candidates, 2, label, NULL);
            g_test_message ("%s: %s; vault holds the state %s txn %u", label,
                            txn_failed ? "failed" : "passed",
                            want >= 0 ? "after" : got == 0 ? "before" : "after", txn);
            cases++;
          }
      }

  g_test_message ("io errors %s: %u cases, %u transactions failed, %.1f s",
                  mode_label (mode), cases, failed, (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpuint (failed, >, cases / 2);
  relais_test_rm_rf (tmp);
}

static void
test_disk_full (gconstpointer data)
{
  const char *mode = data;
  const guint32 seed = 9;
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *golden = g_build_filename (tmp, "golden", NULL);
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autoptr(Model) before = make_golden (golden, mode, seed);
  g_autoptr(GError) error = NULL;
  RelaisVault *vault;
  gint64 growth;
  guint n = n_seeds (24);
  guint full = 0;

  /* How much the big transaction makes the files grow. */
  copy_vault (golden, dir);
  vault = open_over_crashvfs (dir, mode, seed);
  crashvfs_set_disk_budget (-1);
  {
    g_autoptr(Model) m = model_copy (before);
    run_txn (vault, m, seed, BIG_TXN, &error);
    g_assert_no_error (error);
  }
  growth = crashvfs_get_disk_growth ();
  relais_vault_close (vault);
  g_test_message ("disk full %s: the transaction grows the files by %" G_GINT64_FORMAT " bytes",
                  mode_label (mode), growth);
  g_assert_cmpint (growth, >, 0);

  for (guint i = 0; i < n; i++)
    {
      guint32 s = nth_seed (i);
      GRand *rand = g_rand_new_with_seed (s);
      gint64 budget = (gint64) g_rand_double_range (rand, 0, (double) growth);
      gboolean persistent = g_rand_boolean (rand);
      g_autofree char *label = g_strdup_printf ("disk full %s seed %u: %" G_GINT64_FORMAT
                                                " bytes free, %s", mode_label (mode), s, budget,
                                                persistent ? "stays full" : "space comes back");
      g_autoptr(Model) after = model_copy (before);
      g_autoptr(GArray) ops = txn_plan (after, seed, BIG_TXN);
      Model *candidates[2] = { before, after };
      gboolean txn_failed;
      gint want;

      g_rand_free (rand);
      copy_vault (golden, dir);
      vault = open_over_crashvfs (dir, mode, seed);
      crashvfs_set_disk_budget (budget);

      want = txn_under_fault (vault, before, seed, BIG_TXN, persistent,
                              RELAIS_VAULT_ERROR_FULL, label, &txn_failed);
      if (txn_failed)
        full++;
      relais_vault_close (vault);
      crashvfs_reset (0);

      if (want >= 0)
        check_vault (dir, mode, &candidates[want], 1, label, NULL);
      else
        check_vault (dir, mode, candidates, 2, label, NULL);
    }

  g_test_message ("disk full %s: %u cases, %u transactions refused with FULL",
                  mode_label (mode), n, full);
  if (n >= 8)
    g_assert_cmpuint (full, >=, n / 2);
  relais_test_rm_rf (tmp);
}

/* Processes killed mid-transaction */

/* The writer, in a process of its own: commits transactions after the last
 * one in the vault, forever, and prints each number once committed. */
static int
crash_writer_main (int    argc,
                   char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Model) m = NULL;
  RelaisVault *vault;
  guint32 seed;

  if (argc != 5)
    {
      fprintf (stderr, "usage: %s --crash-writer DIR MODE SEED\n", argv[0]);
      return 2;
    }
  seed = (guint32) g_ascii_strtoull (argv[4], NULL, 10);

  vault = open_vault (argv[2], NULL, argv[3], &error);
  if (vault == NULL)
    {
      fprintf (stderr, "crash writer: open: %s\n", error->message);
      return 1;
    }
  /* Checkpoints often, so that kills land in them too. */
  if (!relais_vault_exec (vault, "PRAGMA wal_autocheckpoint = 20", &error))
    {
      fprintf (stderr, "crash writer: %s\n", error->message);
      return 1;
    }
  m = load_model (relais_vault_get_db (vault));

  for (guint txn = m->last_txn + 1; txn < m->last_txn + 1000000; txn++)
    {
      char line[32];
      int len;

      if (!run_txn (vault, m, seed, txn, &error))
        {
          fprintf (stderr, "crash writer: transaction %u: %s\n", txn, error->message);
          return 1;
        }
      len = g_snprintf (line, sizeof line, "%u\n", txn);
      if (write (STDOUT_FILENO, line, len) != len)
        return 1;
    }
  relais_vault_close (vault);
  return 0;
}

static void
test_kill (gconstpointer data)
{
  const char *mode = data;
  const guint32 seed = 21;
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-crash");
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autofree char *self = NULL;
  g_autofree char *seed_str = g_strdup_printf ("%u", seed);
  g_autoptr(Model) verified = model_new ();
  g_autoptr(GError) error = NULL;
  GRand *rand = g_rand_new_with_seed (seed);
  guint rounds = n_seeds (60);
  guint in_flight_whole = 0;
  gint64 start = g_get_monotonic_time ();

  relais_vault_close (create_vault (dir, NULL, mode));

  /* The writer is this very program, exec'd anew: no state shared. */
  self = g_file_read_link ("/proc/self/exe", &error);
  g_assert_no_error (error);

  for (guint round = 0; round < rounds; round++)
    {
      const char *argv[] = { self, "--crash-writer", dir, mode, seed_str, NULL };
      g_autoptr(Model) last = NULL;
      g_autoptr(Model) next = NULL;
      g_autofree char *label = NULL;
      Model *candidates[2];
      guint target = (guint) g_rand_int_range (rand, 0, 40);
      gulong delay = (gulong) g_rand_int_range (rand, 0, 3000);
      guint reported = verified->last_txn;
      guint n_lines = 0;
      GPid pid;
      int out_fd;
      int status;
      FILE *in;
      char line[32];

      g_spawn_async_with_pipes (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &pid, NULL, &out_fd, NULL, &error);
      g_assert_no_error (error);
      in = fdopen (out_fd, "r");
      g_assert_nonnull (in);

      /* target 0: killed while it opens (recovery included). */
      while (n_lines < target && fgets (line, sizeof line, in) != NULL)
        {
          reported = (guint) g_ascii_strtoull (line, NULL, 10);
          n_lines++;
        }
      g_usleep (delay);
      g_assert_cmpint (kill (pid, SIGKILL), ==, 0);
      g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
      /* What it printed before dying was committed too. */
      while (fgets (line, sizeof line, in) != NULL)
        reported = (guint) g_ascii_strtoull (line, NULL, 10);
      fclose (in);
      g_spawn_close_pid (pid);

      label = g_strdup_printf ("kill %s seed %u round %u: killed %lu us after %u commits, "
                               "last reported %u",
                               mode_label (mode), seed, round, delay, n_lines, reported);
      g_test_message ("%s", label);
      if (!WIFSIGNALED (status))
        g_test_message ("%s: the writer exited with %d instead", label, WEXITSTATUS (status));
      g_assert_true (WIFSIGNALED (status));
      g_assert_cmpint (WTERMSIG (status), ==, SIGKILL);

      last = model_copy (verified);
      for (guint txn = verified->last_txn + 1; txn <= reported; txn++)
        g_array_unref (txn_plan (last, seed, txn));
      next = model_copy (last);
      g_array_unref (txn_plan (next, seed, reported + 1));

      candidates[0] = last;
      candidates[1] = next;
      if (check_vault (dir, mode, candidates, 2, label, NULL) == 1)
        {
          in_flight_whole++;
          g_clear_pointer (&verified, model_free);
          verified = g_steal_pointer (&next);
        }
      else
        {
          g_clear_pointer (&verified, model_free);
          verified = g_steal_pointer (&last);
        }
    }

  g_test_message ("kill %s: %u rounds, %u transactions committed in all, "
                  "%u times the unreported one was whole, %.1f s",
                  mode_label (mode), rounds, verified->last_txn, in_flight_whole,
                  (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpuint (verified->last_txn, >, 0);
  g_rand_free (rand);
  relais_test_rm_rf (tmp);
}

int
main (int    argc,
      char **argv)
{
  if (argc >= 2 && g_str_equal (argv[1], "--crash-writer"))
    return crash_writer_main (argc, argv);

  g_test_init (&argc, &argv, NULL);
  crashvfs_register (NULL);

  g_test_add_func ("/crash/crashvfs/model", test_crashvfs_model);
  g_test_add_func ("/crash/crashvfs/faults", test_crashvfs_faults);
  g_test_add_data_func ("/crash/crashvfs/plain-sqlite-wal", &power_loss_plain_wal, test_power_loss);
  g_test_add_data_func ("/crash/crashvfs/plain-sqlite-delete", &power_loss_plain_delete,
                        test_power_loss);
  g_test_add_data_func ("/crash/power-loss/wal", &power_loss_wal, test_power_loss);
  g_test_add_data_func ("/crash/power-loss/delete", &power_loss_delete, test_power_loss);
  g_test_add_func ("/crash/bitflip/db", test_bitflip_db);
  g_test_add_func ("/crash/bitflip/wal", test_bitflip_wal);
  g_test_add_func ("/crash/bitflip/key", test_bitflip_key);
  g_test_add_data_func ("/crash/io-error/wal", "WAL", test_io_errors);
  g_test_add_data_func ("/crash/io-error/delete", "DELETE", test_io_errors);
  g_test_add_data_func ("/crash/disk-full/wal", "WAL", test_disk_full);
  g_test_add_data_func ("/crash/disk-full/delete", "DELETE", test_disk_full);
  g_test_add_data_func ("/crash/kill/wal", "WAL", test_kill);
  g_test_add_data_func ("/crash/kill/delete", "DELETE", test_kill);

  return g_test_run ();
}
