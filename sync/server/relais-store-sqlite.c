#define G_LOG_DOMAIN "relais-store"

#include "config.h"

#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "relais-store-private.h"

/* The SQLite store ("sqlite:PATH"): a plain database file (the server
 * holds only ciphertext and public data, so no vault VFS), in WAL mode so
 * that pulls read while pushes write.
 *
 * Threads: libmicrohttpd calls from a pool of threads, and a SQLite
 * connection must not be used by two threads at once, so the store keeps
 * a pool of connections: a call takes an idle one (or opens one), runs its
 * one transaction on it, and gives it back.  Each connection caches its
 * prepared statements.
 *
 * Writes run in BEGIN IMMEDIATE transactions: SQLite then has one writer
 * at a time, which also makes change-set sequence numbers visible in
 * commit order with no further care (PROTOCOL.md §5.2).  Another process
 * on the same file (a second server, `relais-server user add` while one
 * serves) waits on the busy timeout. */

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 10000

typedef struct {
  sqlite3    *db;
  GHashTable *stmts;  /* SQL text (static strings) -> sqlite3_stmt */
} Conn;

typedef struct {
  RelaisStore parent;
  char       *path;
  GMutex      lock;   /* guards idle, secret */
  GPtrArray  *idle;   /* Conn */
  gboolean    have_secret;
  guint8      secret[32];
} RelaisStoreSqlite;

/* A statement taken from a connection's cache: reset when it goes out of
 * scope, so that no read stays open across COMMIT. */
typedef sqlite3_stmt CachedStmt;

static void
cached_stmt_done (CachedStmt *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CachedStmt, cached_stmt_done)

static const RelaisStoreVTable sqlite_vtable;

/* ---- Connections ----------------------------------------------------- */

static void
stmt_finalize (gpointer stmt)
{
  sqlite3_finalize (stmt);
}

static void
conn_free (Conn *conn)
{
  if (conn == NULL)
    return;
  g_clear_pointer (&conn->stmts, g_hash_table_destroy);
  sqlite3_close_v2 (conn->db);
  g_free (conn);
}

static void
set_db_error (sqlite3     *db,
              int          rc,
              const char  *what,
              GError     **error)
{
  int primary = rc & 0xff;

  if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
    g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                 "%s: the store file is not a valid SQLite database", what);
  else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                 "%s: the store is busy", what);
  else if (primary == SQLITE_FULL)
    g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                 "%s: the disk is full", what);
  else
    g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                 "%s: %s", what, db != NULL ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
}

static gboolean
conn_exec_what (Conn        *conn,
                const char  *sql,
                const char  *what,
                GError     **error)
{
  int rc = sqlite3_exec (conn->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    {
      set_db_error (conn->db, rc, what, error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
conn_exec (Conn        *conn,
           const char  *sql,
           GError     **error)
{
  return conn_exec_what (conn, sql, "SQLite store", error);
}

static CachedStmt *
conn_stmt (Conn        *conn,
           const char  *sql,
           GError     **error)
{
  sqlite3_stmt *stmt = g_hash_table_lookup (conn->stmts, sql);
  int rc;

  if (stmt != NULL)
    return stmt;
  rc = sqlite3_prepare_v3 (conn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      set_db_error (conn->db, rc, "SQLite store", error);
      return NULL;
    }
  g_hash_table_insert (conn->stmts, (gpointer) sql, stmt);
  return stmt;
}

static Conn *
conn_open (RelaisStoreSqlite  *self,
           GError            **error)
{
  g_autofree char *what = NULL;
  Conn *conn = g_new0 (Conn, 1);
  int rc;

  conn->stmts = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                       stmt_finalize);
  /* NOMUTEX: the pool hands a connection to one thread at a time. */
  rc = sqlite3_open_v2 (self->path, &conn->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                   "Cannot open the SQLite store %s: %s", self->path,
                   conn->db != NULL ? sqlite3_errmsg (conn->db) : sqlite3_errstr (rc));
      conn_free (conn);
      return NULL;
    }
  sqlite3_extended_result_codes (conn->db, 1);
  sqlite3_busy_timeout (conn->db, BUSY_TIMEOUT_MS);
  sqlite3_db_config (conn->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config (conn->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

  /* WAL: readers never wait for the writer.  synchronous FULL: a change
   * set the server answered "stored" for survives a power cut, since the
   * client then forgets it. */
  what = g_strdup_printf ("Cannot open the SQLite store %s", self->path);
  if (!conn_exec_what (conn,
                       "PRAGMA journal_mode = WAL;"
                       "PRAGMA synchronous = FULL;"
                       "PRAGMA temp_store = MEMORY;",
                       what, error))
    {
      conn_free (conn);
      return NULL;
    }
  return conn;
}

static Conn *
conn_acquire (RelaisStoreSqlite  *self,
              GError            **error)
{
  Conn *conn = NULL;

  g_mutex_lock (&self->lock);
  if (self->idle->len > 0)
    conn = g_ptr_array_steal_index_fast (self->idle, self->idle->len - 1);
  g_mutex_unlock (&self->lock);

  if (conn == NULL)
    conn = conn_open (self, error);
  return conn;
}

static void
conn_release (RelaisStoreSqlite *self,
              Conn              *conn)
{
  /* A connection goes back to the pool with no transaction open. */
  if (!sqlite3_get_autocommit (conn->db))
    sqlite3_exec (conn->db, "ROLLBACK", NULL, NULL, NULL);
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->idle, conn);
  g_mutex_unlock (&self->lock);
}

/* Takes a connection and opens a transaction on it: IMMEDIATE for calls
 * that write, so that their reads and writes see one state. */
static Conn *
txn_begin (RelaisStoreSqlite  *self,
           gboolean            write,
           GError            **error)
{
  Conn *conn = conn_acquire (self, error);

  if (conn == NULL)
    return NULL;
  if (!conn_exec (conn, write ? "BEGIN IMMEDIATE" : "BEGIN", error))
    {
      conn_release (self, conn);
      return NULL;
    }
  return conn;
}

/* Commits when @ok, rolls back otherwise, and gives the connection back.
 * Returns whether the transaction happened. */
static gboolean
txn_end (RelaisStoreSqlite  *self,
         Conn               *conn,
         gboolean            ok,
         GError            **error)
{
  if (ok)
    ok = conn_exec (conn, "COMMIT", error);
  else
    sqlite3_exec (conn->db, "ROLLBACK", NULL, NULL, NULL);
  conn_release (self, conn);
  return ok;
}

/* ---- Small helpers --------------------------------------------------- */

static gboolean
step_done (CachedStmt  *stmt,
           GError     **error)
{
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    {
      set_db_error (sqlite3_db_handle (stmt), rc, "SQLite store", error);
      return FALSE;
    }
  return TRUE;
}

/* Steps once: 1 for a row, 0 for none, -1 on error. */
static int
step_row (CachedStmt  *stmt,
          GError     **error)
{
  int rc = sqlite3_step (stmt);

  if (rc == SQLITE_ROW)
    return 1;
  if (rc == SQLITE_DONE)
    return 0;
  set_db_error (sqlite3_db_handle (stmt), rc, "SQLite store", error);
  return -1;
}

static void
bind_text (CachedStmt *stmt,
           int         i,
           const char *text)
{
  if (text == NULL)
    sqlite3_bind_null (stmt, i);
  else
    sqlite3_bind_text (stmt, i, text, -1, SQLITE_STATIC);
}

static void
bind_blob (CachedStmt  *stmt,
           int          i,
           const void  *data,
           gsize        len)
{
  /* A zero-length blob must stay a blob, not NULL. */
  sqlite3_bind_blob64 (stmt, i, data != NULL ? data : "", len, SQLITE_STATIC);
}

static void
bind_bytes (CachedStmt *stmt,
            int         i,
            GBytes     *bytes)
{
  gsize len;
  const void *data = g_bytes_get_data (bytes, &len);

  bind_blob (stmt, i, data, len);
}

static char *
column_text (CachedStmt *stmt,
             int         i)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, i));
}

static gboolean
column_key (CachedStmt *stmt,
            int         i,
            guint8      out[RELAIS_STORE_KEY_SIZE])
{
  if (sqlite3_column_type (stmt, i) != SQLITE_BLOB
      || sqlite3_column_bytes (stmt, i) != RELAIS_STORE_KEY_SIZE)
    {
      memset (out, 0, RELAIS_STORE_KEY_SIZE);
      return FALSE;
    }
  memcpy (out, sqlite3_column_blob (stmt, i), RELAIS_STORE_KEY_SIZE);
  return TRUE;
}

static GBytes *
column_bytes (CachedStmt *stmt,
              int         i)
{
  const void *data = sqlite3_column_blob (stmt, i);

  return g_bytes_new (data, sqlite3_column_bytes (stmt, i));
}

/* The next number of the one sequence shared by change sets and joins. */
static gboolean
next_seq (Conn     *conn,
          gint64   *out_seq,
          GError  **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "UPDATE seq SET value = value + 1 RETURNING value", error);

  if (stmt == NULL || step_row (stmt, error) != 1)
    {
      if (error != NULL && *error == NULL)
        g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                             "SQLite store: the sequence row is missing");
      return FALSE;
    }
  *out_seq = sqlite3_column_int64 (stmt, 0);
  return TRUE;
}

static gboolean
dossier_epoch_in (Conn        *conn,
                  const char  *dossier_id,
                  guint32     *out_epoch,
                  GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT epoch FROM dossiers WHERE dossier_id = ?1", error);
  int row;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, dossier_id);
  row = step_row (stmt, error);
  if (row < 0)
    return FALSE;
  if (row == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such dossier");
      return FALSE;
    }
  *out_epoch = (guint32) sqlite3_column_int64 (stmt, 0);
  return TRUE;
}

static gboolean
is_member_in (Conn        *conn,
              const char  *dossier_id,
              const char  *user_id,
              gboolean    *out_member,
              GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT 1 FROM members"
      " WHERE dossier_id = ?1 AND user_id = ?2 AND until_epoch = 0", error);
  int row;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, dossier_id);
  bind_text (stmt, 2, user_id);
  row = step_row (stmt, error);
  if (row < 0)
    return FALSE;
  *out_member = row == 1;
  return TRUE;
}

static gboolean
user_exists_in (Conn        *conn,
                const char  *user_id,
                GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT 1 FROM users WHERE user_id = ?1", error);
  int row;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, user_id);
  row = step_row (stmt, error);
  if (row < 0)
    return FALSE;
  if (row == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such user");
      return FALSE;
    }
  return TRUE;
}

/* Stores one wrapped key: a member's, or an organisation's recovery wrap
 * when user_id is NULL.  A key given again for the same epoch replaces
 * the stored one (a retried share). */
static gboolean
put_wrapped_key (Conn                        *conn,
                 const char                  *dossier_id,
                 const RelaisStoreWrappedKey *key,
                 GError                     **error)
{
  g_autoptr(CachedStmt) stmt = NULL;

  if (key->user_id != NULL)
    stmt = conn_stmt (conn,
        "INSERT OR REPLACE INTO member_keys (dossier_id, user_id, epoch, wrapped_key)"
        " VALUES (?1, ?2, ?3, ?4)", error);
  else
    stmt = conn_stmt (conn,
        "INSERT OR REPLACE INTO recovery_wraps (dossier_id, org, epoch, wrapped_key)"
        " VALUES (?1, ?2, ?3, ?4)", error);
  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, dossier_id);
  bind_text (stmt, 2, key->user_id != NULL ? key->user_id : key->org);
  sqlite3_bind_int64 (stmt, 3, key->epoch);
  bind_bytes (stmt, 4, key->wrapped_key);
  return step_done (stmt, error);
}

static gboolean
bump_dossier_version (Conn        *conn,
                      const char  *dossier_id,
                      guint32      epoch,
                      GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "UPDATE dossiers SET epoch = ?2, version = version + 1 WHERE dossier_id = ?1", error);

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, dossier_id);
  sqlite3_bind_int64 (stmt, 2, epoch);
  return step_done (stmt, error);
}

/* ---- Schema ---------------------------------------------------------- */

/* Version 1.  Every table that grows with dossiers has dossier_id first
 * in its primary key.  One sequence (the seq table) numbers change sets
 * and joins alike (members.joined_seq, see relais_store_changeset_pull).
 * changesets_pull covers the pull's per-dossier range scan, so a pull
 * reads envelopes only for the change sets it returns; members_current
 * finds a user's dossiers. */
static const char schema_v1[] =
  "CREATE TABLE meta ("
  "  key TEXT PRIMARY KEY,"
  "  value BLOB NOT NULL);"
  "CREATE TABLE seq ("
  "  value INTEGER NOT NULL);"
  "INSERT INTO seq (value) VALUES (0);"
  "CREATE TABLE users ("
  "  user_id TEXT PRIMARY KEY,"
  "  name TEXT NOT NULL,"
  "  org TEXT NOT NULL,"
  "  admin INTEGER NOT NULL,"
  "  box_pk BLOB,"
  "  sign_pk BLOB,"
  "  wrapped_keys BLOB,"
  "  created INTEGER NOT NULL);"
  "CREATE INDEX users_org ON users (org, name);"
  "CREATE TABLE codes ("
  "  code_hash BLOB PRIMARY KEY,"
  "  user_id TEXT NOT NULL,"
  "  expires INTEGER NOT NULL,"
  "  used INTEGER NOT NULL DEFAULT 0);"
  "CREATE TABLE devices ("
  "  device_id TEXT PRIMARY KEY,"
  "  user_id TEXT NOT NULL,"
  "  name TEXT NOT NULL,"
  "  pk BLOB NOT NULL,"
  "  revoked INTEGER NOT NULL DEFAULT 0,"
  "  created INTEGER NOT NULL,"
  "  last_seen INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX devices_user ON devices (user_id);"
  "CREATE TABLE nonces ("
  "  device_id TEXT NOT NULL,"
  "  nonce BLOB NOT NULL,"
  "  expires INTEGER NOT NULL,"
  "  PRIMARY KEY (device_id, nonce)) WITHOUT ROWID;"
  "CREATE TABLE recovery_keys ("
  "  org TEXT PRIMARY KEY,"
  "  box_pk BLOB NOT NULL);"
  "CREATE TABLE dossiers ("
  "  dossier_id TEXT PRIMARY KEY,"
  "  epoch INTEGER NOT NULL,"
  "  version INTEGER NOT NULL,"
  "  created INTEGER NOT NULL);"
  "CREATE TABLE members ("
  "  dossier_id TEXT NOT NULL,"
  "  user_id TEXT NOT NULL,"
  "  since_epoch INTEGER NOT NULL,"
  "  until_epoch INTEGER NOT NULL DEFAULT 0,"
  "  joined_seq INTEGER NOT NULL,"
  "  PRIMARY KEY (dossier_id, user_id, since_epoch)) WITHOUT ROWID;"
  "CREATE INDEX members_current ON members (user_id, joined_seq, dossier_id)"
  "  WHERE until_epoch = 0;"
  "CREATE TABLE member_keys ("
  "  dossier_id TEXT NOT NULL,"
  "  user_id TEXT NOT NULL,"
  "  epoch INTEGER NOT NULL,"
  "  wrapped_key BLOB NOT NULL,"
  "  PRIMARY KEY (dossier_id, user_id, epoch)) WITHOUT ROWID;"
  "CREATE TABLE recovery_wraps ("
  "  dossier_id TEXT NOT NULL,"
  "  org TEXT NOT NULL,"
  "  epoch INTEGER NOT NULL,"
  "  wrapped_key BLOB NOT NULL,"
  "  PRIMARY KEY (dossier_id, org, epoch)) WITHOUT ROWID;"
  /* The envelope last: the other columns then sit at the start of the
   * row, before any overflow page. */
  "CREATE TABLE changesets ("
  "  dossier_id TEXT NOT NULL,"
  "  id BLOB NOT NULL,"
  "  seq INTEGER NOT NULL,"
  "  epoch INTEGER NOT NULL,"
  "  author_user TEXT NOT NULL,"
  "  device_id TEXT NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  created INTEGER NOT NULL,"
  "  envelope BLOB NOT NULL,"
  "  PRIMARY KEY (dossier_id, id));"
  "CREATE INDEX changesets_pull ON changesets (dossier_id, seq, device_id, size);"
  "CREATE INDEX changesets_seq ON changesets (seq, dossier_id, device_id, size);";

/* The migration ladder: migrations[v] takes the schema from version v to
 * v + 1.  Add a step for every schema change; never edit a shipped one. */
static const char *const migrations[SCHEMA_VERSION] = {
  schema_v1,
};

static gboolean
migrate (RelaisStoreSqlite  *self,
         Conn               *conn,
         GError            **error)
{
  g_autofree char *what = g_strdup_printf ("Cannot open the SQLite store %s", self->path);
  g_autoptr(CachedStmt) version_stmt = NULL;
  g_autoptr(CachedStmt) secret_stmt = NULL;
  guint8 secret[32];
  gint64 version;
  gboolean ok;
  int row;

  /* IMMEDIATE: two servers opening a new file at once take turns, and the
   * second sees the first's schema. */
  if (!conn_exec_what (conn, "BEGIN IMMEDIATE", what, error))
    return FALSE;

  version_stmt = conn_stmt (conn, "PRAGMA user_version", error);
  if (version_stmt == NULL || (row = step_row (version_stmt, error)) < 0)
    goto fail;
  version = row == 1 ? sqlite3_column_int64 (version_stmt, 0) : 0;
  g_clear_pointer (&version_stmt, cached_stmt_done);

  if (version > SCHEMA_VERSION)
    {
      g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                   "The SQLite store %s has schema version %" G_GINT64_FORMAT
                   ", newer than this server knows (%d)",
                   self->path, version, SCHEMA_VERSION);
      goto fail;
    }
  if (version < 0)
    {
      g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                   "The SQLite store %s has an invalid schema version", self->path);
      goto fail;
    }
  for (; version < SCHEMA_VERSION; version++)
    {
      g_autofree char *set_version = NULL;

      if (!conn_exec_what (conn, migrations[version], what, error))
        goto fail;
      set_version = g_strdup_printf ("PRAGMA user_version = %d", (int) version + 1);
      if (!conn_exec_what (conn, set_version, what, error))
        goto fail;
    }

  /* The cursor secret, made once by whichever server opens first. */
  randombytes_buf (secret, sizeof secret);
  secret_stmt = conn_stmt (conn,
      "INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor_secret', ?1)", error);
  if (secret_stmt == NULL)
    goto fail;
  bind_blob (secret_stmt, 1, secret, sizeof secret);
  ok = step_done (secret_stmt, error);
  /* The statement reads the bound buffer when stepped: wipe it after. */
  g_clear_pointer (&secret_stmt, cached_stmt_done);
  sodium_memzero (secret, sizeof secret);
  if (!ok)
    goto fail;

  return conn_exec_what (conn, "COMMIT", what, error);

fail:
  g_clear_pointer (&version_stmt, cached_stmt_done);
  g_clear_pointer (&secret_stmt, cached_stmt_done);
  sqlite3_exec (conn->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* ---- Open, close, secret --------------------------------------------- */

static void
sqlite_close (RelaisStore *store)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;

  g_clear_pointer (&self->idle, g_ptr_array_unref);
  g_mutex_clear (&self->lock);
  sodium_memzero (self->secret, sizeof self->secret);
  g_free (self->path);
  g_free (self);
}

RelaisStore *
relais_store_sqlite_open (const char  *uri,
                          GError     **error)
{
  g_autoptr(RelaisStore) store = NULL;
  RelaisStoreSqlite *self;
  const char *path = uri + strlen ("sqlite:");
  Conn *conn;

  g_return_val_if_fail (g_str_has_prefix (uri, "sqlite:"), NULL);

  /* ":memory:" and "" would give every pooled connection its own empty
   * database. */
  if (*path == '\0' || strcmp (path, ":memory:") == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_URI,
                           "The SQLite store needs a file: sqlite:PATH");
      return NULL;
    }
  if (sodium_init () < 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "libsodium failed to initialise");
      return NULL;
    }

  self = g_new0 (RelaisStoreSqlite, 1);
  self->parent.vtable = &sqlite_vtable;
  self->path = g_strdup (path);
  g_mutex_init (&self->lock);
  self->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);
  store = &self->parent;

  conn = conn_open (self, error);
  if (conn == NULL)
    return NULL;
  if (!migrate (self, conn, error))
    {
      conn_free (conn);
      return NULL;
    }
  conn_release (self, conn);
  return g_steal_pointer (&store);
}

static gboolean
read_secret (Conn     *conn,
             guint8    out_secret[32],
             GError  **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT value FROM meta WHERE key = 'cursor_secret'", error);
  int row;

  if (stmt == NULL || (row = step_row (stmt, error)) < 0)
    return FALSE;
  if (row == 0 || sqlite3_column_bytes (stmt, 0) != 32)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "The SQLite store has no valid cursor secret");
      return FALSE;
    }
  memcpy (out_secret, sqlite3_column_blob (stmt, 0), 32);
  return TRUE;
}

static gboolean
sqlite_get_secret (RelaisStore  *store,
                   guint8        out_secret[32],
                   GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  guint8 secret[32];
  Conn *conn;
  gboolean ok;

  /* The secret never changes once made, so it is safe to keep. */
  g_mutex_lock (&self->lock);
  if (self->have_secret)
    {
      memcpy (out_secret, self->secret, 32);
      g_mutex_unlock (&self->lock);
      return TRUE;
    }
  g_mutex_unlock (&self->lock);

  conn = txn_begin (self, FALSE, error);
  if (conn == NULL)
    return FALSE;
  ok = read_secret (conn, secret, error);
  if (!txn_end (self, conn, ok, error))
    return FALSE;

  g_mutex_lock (&self->lock);
  memcpy (self->secret, secret, 32);
  self->have_secret = TRUE;
  g_mutex_unlock (&self->lock);
  memcpy (out_secret, secret, 32);
  sodium_memzero (secret, sizeof secret);
  return TRUE;
}

/* ---- Users ----------------------------------------------------------- */

static gboolean
user_add_in (Conn        *conn,
             const char  *user_id,
             const char  *name,
             const char  *org,
             gboolean     admin,
             gint64       now,
             GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "INSERT OR IGNORE INTO users (user_id, name, org, admin, created)"
      " VALUES (?1, ?2, ?3, ?4, ?5)", error);

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, user_id);
  bind_text (stmt, 2, name);
  bind_text (stmt, 3, org);
  sqlite3_bind_int (stmt, 4, admin ? 1 : 0);
  sqlite3_bind_int64 (stmt, 5, now);
  if (!step_done (stmt, error))
    return FALSE;
  if (sqlite3_changes (conn->db) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "A user with this id exists");
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_user_add (RelaisStore  *store,
                 const char   *user_id,
                 const char   *name,
                 const char   *org,
                 gboolean      admin,
                 gint64        now,
                 GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, user_add_in (conn, user_id, name, org, admin, now, error), error);
}

/* Columns: user_id, name, org, admin, box_pk, sign_pk, created[, wrapped_keys] */
static RelaisStoreUser *
user_from_row (CachedStmt *stmt,
               gboolean    with_wrapped)
{
  RelaisStoreUser *user = g_new0 (RelaisStoreUser, 1);

  user->user_id = column_text (stmt, 0);
  user->name = column_text (stmt, 1);
  user->org = column_text (stmt, 2);
  user->admin = sqlite3_column_int (stmt, 3) != 0;
  user->has_keys = column_key (stmt, 4, user->box_pk) & column_key (stmt, 5, user->sign_pk);
  user->created = sqlite3_column_int64 (stmt, 6);
  if (with_wrapped && user->has_keys && sqlite3_column_type (stmt, 7) == SQLITE_BLOB)
    user->wrapped_keys = column_bytes (stmt, 7);
  else if (with_wrapped && user->has_keys)
    user->wrapped_keys = g_bytes_new (NULL, 0);
  return user;
}

static RelaisStoreUser *
user_get_in (Conn        *conn,
             const char  *user_id,
             GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT user_id, name, org, admin, box_pk, sign_pk, created, wrapped_keys"
      " FROM users WHERE user_id = ?1", error);
  int row;

  if (stmt == NULL)
    return NULL;
  bind_text (stmt, 1, user_id);
  row = step_row (stmt, error);
  if (row < 0)
    return NULL;
  if (row == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such user");
      return NULL;
    }
  return user_from_row (stmt, TRUE);
}

static RelaisStoreUser *
sqlite_user_get (RelaisStore  *store,
                 const char   *user_id,
                 GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(RelaisStoreUser) user = NULL;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return NULL;
  user = user_get_in (conn, user_id, error);
  if (!txn_end (self, conn, user != NULL, error))
    return NULL;
  return g_steal_pointer (&user);
}

static GPtrArray *
user_list_in (Conn        *conn,
              const char  *org,
              GError     **error)
{
  g_autoptr(GPtrArray) users = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_user_free);
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT user_id, name, org, admin, box_pk, sign_pk, created FROM users"
      " WHERE ?1 IS NULL OR org = ?1 ORDER BY org, name, user_id", error);
  int row;

  if (stmt == NULL)
    return NULL;
  bind_text (stmt, 1, org);
  while ((row = step_row (stmt, error)) == 1)
    g_ptr_array_add (users, user_from_row (stmt, FALSE));
  if (row < 0)
    return NULL;
  return g_steal_pointer (&users);
}

static GPtrArray *
sqlite_user_list (RelaisStore  *store,
                  const char   *org,
                  GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(GPtrArray) users = NULL;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return NULL;
  users = user_list_in (conn, org, error);
  if (!txn_end (self, conn, users != NULL, error))
    return NULL;
  return g_steal_pointer (&users);
}

static gboolean
user_set_keys_in (Conn          *conn,
                  const char    *user_id,
                  const guint8  *box_pk,
                  const guint8  *sign_pk,
                  GBytes        *wrapped_keys,
                  GError       **error)
{
  g_autoptr(CachedStmt) get = conn_stmt (conn,
      "SELECT box_pk, sign_pk FROM users WHERE user_id = ?1", error);
  g_autoptr(CachedStmt) set = NULL;
  guint8 old_box[RELAIS_STORE_KEY_SIZE], old_sign[RELAIS_STORE_KEY_SIZE];
  int row;

  if (get == NULL)
    return FALSE;
  bind_text (get, 1, user_id);
  row = step_row (get, error);
  if (row < 0)
    return FALSE;
  if (row == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such user");
      return FALSE;
    }
  if (column_key (get, 0, old_box) && column_key (get, 1, old_sign)
      && (memcmp (old_box, box_pk, RELAIS_STORE_KEY_SIZE) != 0
          || memcmp (old_sign, sign_pk, RELAIS_STORE_KEY_SIZE) != 0))
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_KEYS_SET,
                           "The user's keys are already set to other public keys");
      return FALSE;
    }

  set = conn_stmt (conn,
      "UPDATE users SET box_pk = ?2, sign_pk = ?3, wrapped_keys = ?4 WHERE user_id = ?1", error);
  if (set == NULL)
    return FALSE;
  bind_text (set, 1, user_id);
  bind_blob (set, 2, box_pk, RELAIS_STORE_KEY_SIZE);
  bind_blob (set, 3, sign_pk, RELAIS_STORE_KEY_SIZE);
  bind_bytes (set, 4, wrapped_keys);
  return step_done (set, error);
}

static gboolean
sqlite_user_set_keys (RelaisStore   *store,
                      const char    *user_id,
                      const guint8  *box_pk,
                      const guint8  *sign_pk,
                      GBytes        *wrapped_keys,
                      GError       **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  user_set_keys_in (conn, user_id, box_pk, sign_pk, wrapped_keys, error),
                  error);
}

/* ---- Enrolment codes ------------------------------------------------- */

static gboolean
code_add_in (Conn          *conn,
             const guint8  *code_hash,
             const char    *user_id,
             gint64         expires,
             GError       **error)
{
  g_autoptr(CachedStmt) stmt = NULL;

  if (!user_exists_in (conn, user_id, error))
    return FALSE;
  stmt = conn_stmt (conn,
      "INSERT OR IGNORE INTO codes (code_hash, user_id, expires) VALUES (?1, ?2, ?3)", error);
  if (stmt == NULL)
    return FALSE;
  bind_blob (stmt, 1, code_hash, RELAIS_STORE_HASH_SIZE);
  bind_text (stmt, 2, user_id);
  sqlite3_bind_int64 (stmt, 3, expires);
  if (!step_done (stmt, error))
    return FALSE;
  if (sqlite3_changes (conn->db) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "This enrolment code exists");
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_code_add (RelaisStore   *store,
                 const guint8  *code_hash,
                 const char    *user_id,
                 gint64         expires,
                 GError       **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, code_add_in (conn, code_hash, user_id, expires, error), error);
}

static char *
code_use_in (Conn          *conn,
             const guint8  *code_hash,
             gint64         now,
             GError       **error)
{
  g_autoptr(CachedStmt) get = conn_stmt (conn,
      "SELECT user_id, expires, used FROM codes WHERE code_hash = ?1", error);
  g_autoptr(CachedStmt) use = NULL;
  g_autofree char *user_id = NULL;
  int row;

  if (get == NULL)
    return NULL;
  bind_blob (get, 1, code_hash, RELAIS_STORE_HASH_SIZE);
  row = step_row (get, error);
  if (row < 0)
    return NULL;
  if (row == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "Unknown enrolment code");
      return NULL;
    }
  if (sqlite3_column_int (get, 2) != 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_USED,
                           "This enrolment code has been used");
      return NULL;
    }
  if (sqlite3_column_int64 (get, 1) <= now)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_EXPIRED,
                           "This enrolment code has expired");
      return NULL;
    }
  user_id = column_text (get, 0);

  use = conn_stmt (conn, "UPDATE codes SET used = 1 WHERE code_hash = ?1", error);
  if (use == NULL)
    return NULL;
  bind_blob (use, 1, code_hash, RELAIS_STORE_HASH_SIZE);
  if (!step_done (use, error))
    return NULL;
  return g_steal_pointer (&user_id);
}

static char *
sqlite_code_use (RelaisStore   *store,
                 const guint8  *code_hash,
                 gint64         now,
                 GError       **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autofree char *user_id = NULL;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return NULL;
  user_id = code_use_in (conn, code_hash, now, error);
  if (!txn_end (self, conn, user_id != NULL, error))
    return NULL;
  return g_steal_pointer (&user_id);
}

/* ---- Devices --------------------------------------------------------- */

static gboolean
device_add_in (Conn          *conn,
               const char    *device_id,
               const char    *user_id,
               const char    *name,
               const guint8  *pk,
               gint64         now,
               GError       **error)
{
  g_autoptr(CachedStmt) stmt = NULL;

  if (!user_exists_in (conn, user_id, error))
    return FALSE;
  stmt = conn_stmt (conn,
      "INSERT OR IGNORE INTO devices (device_id, user_id, name, pk, created)"
      " VALUES (?1, ?2, ?3, ?4, ?5)", error);
  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, device_id);
  bind_text (stmt, 2, user_id);
  bind_text (stmt, 3, name);
  bind_blob (stmt, 4, pk, RELAIS_STORE_KEY_SIZE);
  sqlite3_bind_int64 (stmt, 5, now);
  if (!step_done (stmt, error))
    return FALSE;
  if (sqlite3_changes (conn->db) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "A device with this id exists");
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_device_add (RelaisStore   *store,
                   const char    *device_id,
                   const char    *user_id,
                   const char    *name,
                   const guint8  *pk,
                   gint64         now,
                   GError       **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  device_add_in (conn, device_id, user_id, name, pk, now, error), error);
}

/* Columns: device_id, user_id, name, pk, revoked, created, last_seen */
static RelaisStoreDevice *
device_from_row (CachedStmt *stmt)
{
  RelaisStoreDevice *device = g_new0 (RelaisStoreDevice, 1);

  device->device_id = column_text (stmt, 0);
  device->user_id = column_text (stmt, 1);
  device->name = column_text (stmt, 2);
  column_key (stmt, 3, device->pk);
  device->revoked = sqlite3_column_int (stmt, 4) != 0;
  device->created = sqlite3_column_int64 (stmt, 5);
  device->last_seen = sqlite3_column_int64 (stmt, 6);
  return device;
}

static RelaisStoreDevice *
sqlite_device_get (RelaisStore  *store,
                   const char   *device_id,
                   GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(RelaisStoreDevice) device = NULL;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return NULL;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT device_id, user_id, name, pk, revoked, created, last_seen"
        " FROM devices WHERE device_id = ?1", error);
    int row = -1;

    if (stmt != NULL)
      {
        bind_text (stmt, 1, device_id);
        row = step_row (stmt, error);
      }
    if (row == 0)
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such device");
    else if (row == 1)
      device = device_from_row (stmt);
  }
  if (!txn_end (self, conn, device != NULL, error))
    return NULL;
  return g_steal_pointer (&device);
}

static GPtrArray *
sqlite_device_list (RelaisStore  *store,
                    const char   *user_id,
                    GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_device_free);
  gboolean ok = FALSE;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return NULL;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT device_id, user_id, name, pk, revoked, created, last_seen FROM devices"
        " WHERE ?1 IS NULL OR user_id = ?1 ORDER BY user_id, created, device_id", error);
    int row = -1;

    if (stmt != NULL)
      {
        bind_text (stmt, 1, user_id);
        while ((row = step_row (stmt, error)) == 1)
          g_ptr_array_add (devices, device_from_row (stmt));
      }
    ok = row == 0;
  }
  if (!txn_end (self, conn, ok, error))
    return NULL;
  return g_steal_pointer (&devices);
}

/* Runs one UPDATE on a device: NOT_FOUND when no row changed. */
static gboolean
device_update (RelaisStoreSqlite  *self,
               const char         *sql,
               const char         *device_id,
               gint64              now,
               GError            **error)
{
  gboolean ok = FALSE;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn, sql, error);

    if (stmt != NULL)
      {
        bind_text (stmt, 1, device_id);
        if (sqlite3_bind_parameter_count (stmt) >= 2)
          sqlite3_bind_int64 (stmt, 2, now);
        ok = step_done (stmt, error);
      }
    if (ok && sqlite3_changes (conn->db) == 0)
      {
        g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                             "No such device");
        ok = FALSE;
      }
  }
  return txn_end (self, conn, ok, error);
}

static gboolean
sqlite_device_revoke (RelaisStore  *store,
                      const char   *device_id,
                      GError      **error)
{
  return device_update ((RelaisStoreSqlite *) store,
                        "UPDATE devices SET revoked = 1 WHERE device_id = ?1",
                        device_id, 0, error);
}

static gboolean
sqlite_device_seen (RelaisStore  *store,
                    const char   *device_id,
                    gint64        now,
                    GError      **error)
{
  return device_update ((RelaisStoreSqlite *) store,
                        "UPDATE devices SET last_seen = MAX(last_seen, ?2) WHERE device_id = ?1",
                        device_id, now, error);
}

/* ---- Request nonces -------------------------------------------------- */

static gboolean
nonce_use_in (Conn          *conn,
              const char    *device_id,
              const guint8  *nonce,
              gsize          nonce_len,
              gint64         expires,
              gint64         now,
              GError       **error)
{
  g_autoptr(CachedStmt) purge = conn_stmt (conn,
      "DELETE FROM nonces WHERE device_id = ?1 AND expires <= ?2", error);
  g_autoptr(CachedStmt) add = NULL;

  if (purge == NULL)
    return FALSE;
  bind_text (purge, 1, device_id);
  sqlite3_bind_int64 (purge, 2, now);
  if (!step_done (purge, error))
    return FALSE;

  add = conn_stmt (conn,
      "INSERT OR IGNORE INTO nonces (device_id, nonce, expires) VALUES (?1, ?2, ?3)", error);
  if (add == NULL)
    return FALSE;
  bind_text (add, 1, device_id);
  bind_blob (add, 2, nonce, nonce_len);
  sqlite3_bind_int64 (add, 3, expires);
  if (!step_done (add, error))
    return FALSE;
  if (sqlite3_changes (conn->db) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_REPLAYED,
                           "This request nonce has been seen");
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_nonce_use (RelaisStore   *store,
                  const char    *device_id,
                  const guint8  *nonce,
                  gsize          nonce_len,
                  gint64         expires,
                  gint64         now,
                  GError       **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  nonce_use_in (conn, device_id, nonce, nonce_len, expires, now, error), error);
}

/* ---- Organisations' recovery public keys ----------------------------- */

static gboolean
sqlite_recovery_key_set (RelaisStore   *store,
                         const char    *org,
                         const guint8  *box_pk,
                         GError       **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  gboolean ok = FALSE;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "INSERT OR REPLACE INTO recovery_keys (org, box_pk) VALUES (?1, ?2)", error);

    if (stmt != NULL)
      {
        bind_text (stmt, 1, org);
        bind_blob (stmt, 2, box_pk, RELAIS_STORE_KEY_SIZE);
        ok = step_done (stmt, error);
      }
  }
  return txn_end (self, conn, ok, error);
}

static gboolean
sqlite_recovery_key_get (RelaisStore  *store,
                         const char   *org,
                         guint8        out_box_pk[RELAIS_STORE_KEY_SIZE],
                         GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  gboolean ok = FALSE;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return FALSE;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT box_pk FROM recovery_keys WHERE org = ?1", error);
    int row = -1;

    if (stmt != NULL)
      {
        bind_text (stmt, 1, org);
        row = step_row (stmt, error);
      }
    if (row == 1)
      ok = column_key (stmt, 0, out_box_pk);
    if (row == 0 || (row == 1 && !ok))
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "The organisation has no recovery key");
  }
  return txn_end (self, conn, ok, error);
}

/* ---- Dossiers, members and wrapped keys ------------------------------ */

static gboolean
dossier_create_in (Conn        *conn,
                   const char  *dossier_id,
                   GPtrArray   *wrapped_keys,
                   gint64       now,
                   GError     **error)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  gint64 joined_seq;

  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "INSERT OR IGNORE INTO dossiers (dossier_id, epoch, version, created)"
        " VALUES (?1, 1, 1, ?2)", error);

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, dossier_id);
    sqlite3_bind_int64 (stmt, 2, now);
    if (!step_done (stmt, error))
      return FALSE;
    if (sqlite3_changes (conn->db) == 0)
      {
        g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                             "A dossier with this id exists");
        return FALSE;
      }
  }

  if (!next_seq (conn, &joined_seq, error))
    return FALSE;

  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (key->epoch != 1)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A new dossier's keys are at epoch 1");
          return FALSE;
        }
      if (key->user_id != NULL)
        {
          g_autoptr(CachedStmt) stmt = NULL;

          if (!g_hash_table_add (seen, key->user_id))
            {
              g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                                   "A member is listed twice");
              return FALSE;
            }
          if (!user_exists_in (conn, key->user_id, error))
            return FALSE;
          stmt = conn_stmt (conn,
              "INSERT INTO members (dossier_id, user_id, since_epoch, until_epoch, joined_seq)"
              " VALUES (?1, ?2, 1, 0, ?3)", error);
          if (stmt == NULL)
            return FALSE;
          bind_text (stmt, 1, dossier_id);
          bind_text (stmt, 2, key->user_id);
          sqlite3_bind_int64 (stmt, 3, joined_seq);
          if (!step_done (stmt, error))
            return FALSE;
        }
      if (!put_wrapped_key (conn, dossier_id, key, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_dossier_create (RelaisStore  *store,
                       const char   *dossier_id,
                       GPtrArray    *wrapped_keys,
                       gint64        now,
                       GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, dossier_create_in (conn, dossier_id, wrapped_keys, now, error), error);
}

static gboolean
sqlite_dossier_epoch (RelaisStore  *store,
                      const char   *dossier_id,
                      guint32      *out_epoch,
                      GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, dossier_epoch_in (conn, dossier_id, out_epoch, error), error);
}

static gboolean
sqlite_is_member (RelaisStore  *store,
                  const char   *dossier_id,
                  const char   *user_id,
                  gboolean     *out_member,
                  GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, is_member_in (conn, dossier_id, user_id, out_member, error), error);
}

static gboolean
dossier_keys_in (Conn        *conn,
                 const char  *dossier_id,
                 const char  *user_id,
                 GPtrArray   *keys,
                 GPtrArray   *members,
                 GError     **error)
{
  guint32 epoch;
  gboolean member;
  int row;

  if (!dossier_epoch_in (conn, dossier_id, &epoch, error)
      || !is_member_in (conn, dossier_id, user_id, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The user is not a member of this dossier");
      return FALSE;
    }

  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT epoch, wrapped_key FROM member_keys"
        " WHERE dossier_id = ?1 AND user_id = ?2 ORDER BY epoch", error);

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, dossier_id);
    bind_text (stmt, 2, user_id);
    while ((row = step_row (stmt, error)) == 1)
      g_ptr_array_add (keys, relais_store_wrapped_key_new (user_id, NULL,
                                                           sqlite3_column_int64 (stmt, 0),
                                                           sqlite3_column_blob (stmt, 1),
                                                           sqlite3_column_bytes (stmt, 1)));
    if (row < 0)
      return FALSE;
  }
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT m.user_id, u.sign_pk, m.since_epoch, m.until_epoch"
        " FROM members m LEFT JOIN users u ON u.user_id = m.user_id"
        " WHERE m.dossier_id = ?1 ORDER BY m.since_epoch, m.user_id", error);

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, dossier_id);
    while ((row = step_row (stmt, error)) == 1)
      {
        guint8 sign_pk[RELAIS_STORE_KEY_SIZE];

        column_key (stmt, 1, sign_pk);
        g_ptr_array_add (members, relais_store_member_new ((const char *) sqlite3_column_text (stmt, 0),
                                                           sign_pk,
                                                           sqlite3_column_int64 (stmt, 2),
                                                           sqlite3_column_int64 (stmt, 3)));
      }
    if (row < 0)
      return FALSE;
  }
  return TRUE;
}

static gboolean
sqlite_dossier_keys (RelaisStore  *store,
                     const char   *dossier_id,
                     const char   *user_id,
                     GPtrArray   **out_keys,
                     GPtrArray   **out_members,
                     GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_member_free);
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return FALSE;
  if (!txn_end (self, conn, dossier_keys_in (conn, dossier_id, user_id, keys, members, error), error))
    return FALSE;
  *out_keys = g_steal_pointer (&keys);
  *out_members = g_steal_pointer (&members);
  return TRUE;
}

static gboolean
dossier_share_in (Conn        *conn,
                  const char  *dossier_id,
                  const char  *user_id,
                  GPtrArray   *wrapped_keys,
                  GError     **error)
{
  guint32 epoch;
  gboolean member;

  if (!dossier_epoch_in (conn, dossier_id, &epoch, error)
      || !user_exists_in (conn, user_id, error)
      || !is_member_in (conn, dossier_id, user_id, &member, error))
    return FALSE;

  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (g_strcmp0 (key->user_id, user_id) != 0)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                               "A shared key is wrapped for someone else");
          return FALSE;
        }
      if (key->epoch > epoch)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A shared key is at an epoch the dossier has not reached");
          return FALSE;
        }
      if (!put_wrapped_key (conn, dossier_id, key, error))
        return FALSE;
    }

  /* Sharing again with a current member (a retried share) only refreshes
   * the keys: a fresh joined_seq would send the whole dossier again. */
  if (!member)
    {
      g_autoptr(CachedStmt) stmt = NULL;
      gint64 joined_seq;

      if (!next_seq (conn, &joined_seq, error))
        return FALSE;
      stmt = conn_stmt (conn,
          "INSERT INTO members (dossier_id, user_id, since_epoch, until_epoch, joined_seq)"
          " VALUES (?1, ?2, ?3, 0, ?4)", error);
      if (stmt == NULL)
        return FALSE;
      bind_text (stmt, 1, dossier_id);
      bind_text (stmt, 2, user_id);
      sqlite3_bind_int64 (stmt, 3, epoch);
      sqlite3_bind_int64 (stmt, 4, joined_seq);
      if (!step_done (stmt, error))
        return FALSE;
    }
  return bump_dossier_version (conn, dossier_id, epoch, error);
}

static gboolean
sqlite_dossier_share (RelaisStore  *store,
                      const char   *dossier_id,
                      const char   *user_id,
                      GPtrArray    *wrapped_keys,
                      GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, dossier_share_in (conn, dossier_id, user_id, wrapped_keys, error), error);
}

static gboolean
dossier_unshare_in (Conn        *conn,
                    const char  *dossier_id,
                    const char  *user_id,
                    guint32      new_epoch,
                    GPtrArray   *wrapped_keys,
                    GError     **error)
{
  guint32 epoch;
  gboolean member;

  if (!dossier_epoch_in (conn, dossier_id, &epoch, error)
      || !is_member_in (conn, dossier_id, user_id, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The user is not a member of this dossier");
      return FALSE;
    }
  if (new_epoch != (guint64) epoch + 1)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                           "The rotation is not to the epoch after the current one");
      return FALSE;
    }

  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "UPDATE members SET until_epoch = ?3"
        " WHERE dossier_id = ?1 AND user_id = ?2 AND until_epoch = 0", error);

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, dossier_id);
    bind_text (stmt, 2, user_id);
    sqlite3_bind_int64 (stmt, 3, new_epoch);
    if (!step_done (stmt, error))
      return FALSE;
  }

  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (key->epoch != new_epoch)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A rotated key is not at the new epoch");
          return FALSE;
        }
      /* The retired member is no longer current: no key for them. */
      if (key->user_id != NULL)
        {
          if (!is_member_in (conn, dossier_id, key->user_id, &member, error))
            return FALSE;
          if (!member)
            {
              g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                                   "A rotated key is wrapped for a non-member");
              return FALSE;
            }
        }
      if (!put_wrapped_key (conn, dossier_id, key, error))
        return FALSE;
    }
  return bump_dossier_version (conn, dossier_id, new_epoch, error);
}

static gboolean
sqlite_dossier_unshare (RelaisStore  *store,
                        const char   *dossier_id,
                        const char   *user_id,
                        guint32       new_epoch,
                        GPtrArray    *wrapped_keys,
                        GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  dossier_unshare_in (conn, dossier_id, user_id, new_epoch, wrapped_keys, error),
                  error);
}

static gboolean
sqlite_recovery_wraps (RelaisStore  *store,
                       const char   *user_id,
                       const char   *org,
                       GPtrArray   **out_keys,
                       GPtrArray   **out_dossiers,
                       GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  g_autoptr(GPtrArray) dossiers = g_ptr_array_new_with_free_func (g_free);
  gboolean ok = FALSE;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return FALSE;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT r.dossier_id, r.epoch, r.wrapped_key"
        " FROM members m JOIN recovery_wraps r ON r.dossier_id = m.dossier_id AND r.org = ?2"
        " WHERE m.user_id = ?1 AND m.until_epoch = 0"
        " ORDER BY r.dossier_id, r.epoch", error);
    int row = -1;

    if (stmt != NULL)
      {
        bind_text (stmt, 1, user_id);
        bind_text (stmt, 2, org);
        while ((row = step_row (stmt, error)) == 1)
          {
            g_ptr_array_add (dossiers, column_text (stmt, 0));
            g_ptr_array_add (keys, relais_store_wrapped_key_new (NULL, org,
                                                                 sqlite3_column_int64 (stmt, 1),
                                                                 sqlite3_column_blob (stmt, 2),
                                                                 sqlite3_column_bytes (stmt, 2)));
          }
      }
    ok = row == 0;
  }
  if (!txn_end (self, conn, ok, error))
    return FALSE;
  *out_keys = g_steal_pointer (&keys);
  *out_dossiers = g_steal_pointer (&dossiers);
  return TRUE;
}

/* ---- Missing recovery wraps ------------------------------------------ */

/* The pairs (dossier, organisation) where the organisation has a recovery
 * key and a current member, and fewer wraps than the dossier has epochs;
 * the caller must be a current member.  Bytewise order, as the cursor. */
#define MISSING_PAIRS_SQL \
  "SELECT m.dossier_id, u.org, k.box_pk, d.epoch" \
  "  FROM members m" \
  "  JOIN dossiers d ON d.dossier_id = m.dossier_id" \
  "  JOIN members o ON o.dossier_id = m.dossier_id AND o.until_epoch = 0" \
  "  JOIN users u ON u.user_id = o.user_id" \
  "  JOIN recovery_keys k ON k.org = u.org" \
  " WHERE m.user_id = ?1 AND m.until_epoch = 0" \
  "   AND (?2 IS NULL OR m.dossier_id > ?2 OR (m.dossier_id = ?2 AND u.org > ?3))" \
  " GROUP BY m.dossier_id, u.org" \
  " HAVING (SELECT count(*) FROM recovery_wraps r" \
  "          WHERE r.dossier_id = m.dossier_id AND r.org = u.org" \
  "            AND r.epoch BETWEEN 1 AND d.epoch) < d.epoch" \
  " ORDER BY m.dossier_id, u.org" \
  " LIMIT ?4"

/* Fills @missing->epochs with the epochs 1..@epoch that have no wrap. */
static gboolean
missing_epochs_in (Conn                        *conn,
                   RelaisStoreRecoveryMissing  *missing,
                   guint32                      epoch,
                   GError                     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT epoch FROM recovery_wraps"
      " WHERE dossier_id = ?1 AND org = ?2 AND epoch BETWEEN 1 AND ?3"
      " ORDER BY epoch", error);
  guint32 next = 1;
  int row;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, missing->dossier_id);
  bind_text (stmt, 2, missing->org);
  sqlite3_bind_int64 (stmt, 3, epoch);
  while (missing->epochs->len < RELAIS_STORE_MISSING_EPOCHS_MAX)
    {
      guint32 have;

      row = step_row (stmt, error);
      if (row < 0)
        return FALSE;
      have = row == 1 ? (guint32) sqlite3_column_int64 (stmt, 0) : epoch + 1;
      for (; next < have && missing->epochs->len < RELAIS_STORE_MISSING_EPOCHS_MAX; next++)
        g_array_append_val (missing->epochs, next);
      if (row == 0)
        break;
      next = have + 1;
    }
  return TRUE;
}

static GPtrArray *
sqlite_recovery_missing (RelaisStore  *store,
                         const char   *user_id,
                         const char   *after_dossier,
                         const char   *after_org,
                         guint         limit,
                         GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_recovery_missing_free);
  g_autoptr(GArray) epochs = g_array_new (FALSE, FALSE, sizeof (guint32));
  gboolean ok = FALSE;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return NULL;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn, MISSING_PAIRS_SQL, error);
    int row = -1;

    if (stmt != NULL)
      {
        guint8 box_pk[RELAIS_STORE_KEY_SIZE];

        bind_text (stmt, 1, user_id);
        bind_text (stmt, 2, after_dossier);
        bind_text (stmt, 3, after_org);
        sqlite3_bind_int64 (stmt, 4, limit);
        while ((row = step_row (stmt, error)) == 1)
          {
            guint32 epoch = (guint32) sqlite3_column_int64 (stmt, 3);
            g_autofree char *dossier_id = column_text (stmt, 0);
            g_autofree char *org = column_text (stmt, 1);

            if (!column_key (stmt, 2, box_pk))
              continue;
            g_ptr_array_add (result, relais_store_recovery_missing_new (dossier_id, org, box_pk));
            g_array_append_val (epochs, epoch);
          }
      }
    ok = row == 0;
  }
  for (guint i = 0; ok && i < result->len; i++)
    ok = missing_epochs_in (conn, g_ptr_array_index (result, i),
                            g_array_index (epochs, guint32, i), error);
  if (!txn_end (self, conn, ok, error))
    return NULL;
  return g_steal_pointer (&result);
}

/* Whether @org has a current member in @dossier_id. */
static gboolean
org_is_member_in (Conn        *conn,
                  const char  *dossier_id,
                  const char  *org,
                  gboolean    *out_member,
                  GError     **error)
{
  g_autoptr(CachedStmt) stmt = conn_stmt (conn,
      "SELECT 1 FROM members m JOIN users u ON u.user_id = m.user_id"
      " WHERE m.dossier_id = ?1 AND m.until_epoch = 0 AND u.org = ?2 LIMIT 1", error);
  int row;

  if (stmt == NULL)
    return FALSE;
  bind_text (stmt, 1, dossier_id);
  bind_text (stmt, 2, org);
  row = step_row (stmt, error);
  if (row < 0)
    return FALSE;
  *out_member = row == 1;
  return TRUE;
}

static gboolean
recovery_add_in (Conn        *conn,
                 const char  *dossier_id,
                 const char  *user_id,
                 const char  *org,
                 GPtrArray   *wrapped_keys,
                 GError     **error)
{
  guint32 epoch;
  gboolean member;

  if (!dossier_epoch_in (conn, dossier_id, &epoch, error)
      || !is_member_in (conn, dossier_id, user_id, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The user is not a member of this dossier");
      return FALSE;
    }
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT 1 FROM recovery_keys WHERE org = ?1", error);
    int row;

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, org);
    row = step_row (stmt, error);
    if (row < 0)
      return FALSE;
    if (row == 0)
      {
        g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                             "The organisation has no recovery key");
        return FALSE;
      }
  }
  if (!org_is_member_in (conn, dossier_id, org, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The organisation has no member in this dossier");
      return FALSE;
    }
  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);
      g_autoptr(CachedStmt) stmt = NULL;

      if (key->epoch < 1 || key->epoch > epoch)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A recovery wrap is beyond the dossier's current epoch");
          return FALSE;
        }
      /* OR IGNORE: a wrap already stored stays; a retry changes nothing. */
      stmt = conn_stmt (conn,
          "INSERT OR IGNORE INTO recovery_wraps (dossier_id, org, epoch, wrapped_key)"
          " VALUES (?1, ?2, ?3, ?4)", error);
      if (stmt == NULL)
        return FALSE;
      bind_text (stmt, 1, dossier_id);
      bind_text (stmt, 2, org);
      sqlite3_bind_int64 (stmt, 3, key->epoch);
      bind_bytes (stmt, 4, key->wrapped_key);
      if (!step_done (stmt, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_recovery_add (RelaisStore  *store,
                     const char   *dossier_id,
                     const char   *user_id,
                     const char   *org,
                     GPtrArray    *wrapped_keys,
                     GError      **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  recovery_add_in (conn, dossier_id, user_id, org, wrapped_keys, error), error);
}

/* ---- Change sets ----------------------------------------------------- */

static gboolean
changeset_put_in (Conn                        *conn,
                  const RelaisStoreChangeset  *cs,
                  gint64                       now,
                  guint64                     *out_seq,
                  gboolean                    *out_duplicate,
                  GError                     **error)
{
  g_autoptr(GError) local_error = NULL;
  gsize env_len;
  const guint8 *env = g_bytes_get_data (cs->envelope, &env_len);
  guint32 epoch;
  gboolean member;
  gint64 seq;

  /* An unknown dossier and a dossier of others look the same to the
   * pusher: NOT_MEMBER, so that ids cannot be probed. */
  if (!dossier_epoch_in (conn, cs->dossier_id, &epoch, &local_error))
    {
      if (g_error_matches (local_error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                             "The author is not a member of this dossier");
      else
        g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (!is_member_in (conn, cs->dossier_id, cs->author_user, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The author is not a member of this dossier");
      return FALSE;
    }

  /* A retried push answers with the stored seq, even after a rotation. */
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "SELECT seq, envelope FROM changesets WHERE dossier_id = ?1 AND id = ?2", error);
    int row;

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, cs->dossier_id);
    bind_blob (stmt, 2, cs->id, 16);
    row = step_row (stmt, error);
    if (row < 0)
      return FALSE;
    if (row == 1)
      {
        if ((gsize) sqlite3_column_bytes (stmt, 1) != env_len
            || memcmp (sqlite3_column_blob (stmt, 1), env, env_len) != 0)
          {
            g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_ID_CONFLICT,
                                 "Another change set is stored under this id");
            return FALSE;
          }
        *out_seq = sqlite3_column_int64 (stmt, 0);
        *out_duplicate = TRUE;
        return TRUE;
      }
  }

  if (cs->epoch != epoch)
    {
      g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                   "The change set is sealed at epoch %u, the dossier is at epoch %u",
                   cs->epoch, epoch);
      return FALSE;
    }

  if (!next_seq (conn, &seq, error))
    return FALSE;
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn,
        "INSERT INTO changesets"
        " (dossier_id, id, seq, epoch, author_user, device_id, size, created, envelope)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", error);

    if (stmt == NULL)
      return FALSE;
    bind_text (stmt, 1, cs->dossier_id);
    bind_blob (stmt, 2, cs->id, 16);
    sqlite3_bind_int64 (stmt, 3, seq);
    sqlite3_bind_int64 (stmt, 4, cs->epoch);
    bind_text (stmt, 5, cs->author_user);
    bind_text (stmt, 6, cs->device_id);
    sqlite3_bind_int64 (stmt, 7, env_len);
    sqlite3_bind_int64 (stmt, 8, now);
    bind_blob (stmt, 9, env, env_len);
    if (!step_done (stmt, error))
      return FALSE;
  }
  *out_seq = seq;
  *out_duplicate = FALSE;
  return TRUE;
}

static gboolean
sqlite_changeset_put (RelaisStore                 *store,
                      const RelaisStoreChangeset  *changeset,
                      gint64                       now,
                      guint64                     *out_seq,
                      gboolean                    *out_duplicate,
                      GError                     **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  Conn *conn = txn_begin (self, TRUE, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  changeset_put_in (conn, changeset, now, out_seq, out_duplicate, error),
                  error);
}

/* The pull in two steps: first the positions and sizes of the next change
 * sets, from indexes alone, then the envelopes of those that fit.  The
 * first query is the union of
 *  - change sets pushed after the user joined (vis = seq), from the
 *    cursor on, found one of two ways that give the same rows, whichever
 *    is cheaper (chosen before the query):
 *    - when few change sets at all were pushed since the cursor (fewer
 *      than RELAIS_STORE_PULL_SCAN_BUDGET, or than 4 times the user's
 *      dossiers; judged from the sequence), by scanning them in seq order
 *      (changesets_seq) and keeping those of the user's dossiers: an
 *      incremental pull costs what was pushed since, not how many
 *      dossiers the user has, and a fresh device of a user who has most
 *      of the store reads little more than it gets;
 *    - otherwise by a range scan per dossier of the user (changesets_pull);
 *  - change sets pushed before the user joined a dossier (vis =
 *    joined_seq), only for dossiers joined at or after the cursor.
 * Per dossier, each takes at most a page's worth of rows (up to the seq
 * of the dossier's limit-th candidate, with the same filters), so that a
 * dossier with a long history does not make every page sort all of it. */
/* The change sets pushed before the user joined a dossier, for dossiers
 * joined at or after the cursor (both pulls end with it). */
#define PULL_JOINED_SQL \
  "SELECT c.rowid, c.dossier_id, c.seq, m.joined_seq AS vis, c.size" \
  "  FROM members m JOIN changesets c" \
  "    ON c.dossier_id = m.dossier_id AND c.seq < m.joined_seq" \
  "   AND c.seq <= IFNULL((SELECT b.seq FROM changesets b" \
  "                         WHERE b.dossier_id = m.dossier_id AND b.seq < m.joined_seq" \
  "                           AND (m.joined_seq > ?4 OR b.seq > ?5)" \
  "                           AND b.device_id IS NOT ?3" \
  "                         ORDER BY b.seq LIMIT 1 OFFSET ?6 - 1), 9223372036854775807)" \
  "  WHERE m.user_id = ?1 AND m.until_epoch = 0 AND m.joined_seq >= ?4" \
  "    AND (m.joined_seq > ?4 OR c.seq > ?5) AND c.device_id IS NOT ?3" \
  " ORDER BY 4, 3 LIMIT ?6"

/* +m.user_id: the member is looked up by the primary key (dossier, user),
 * never by walking the user's rows in members_current. */
static const char pull_by_seq_sql[] =
  "SELECT c.rowid, c.dossier_id, c.seq, c.seq AS vis, c.size"
  "  FROM changesets c INDEXED BY changesets_seq"
  "  WHERE c.seq >= ?2 AND c.device_id IS NOT ?3"
  "    AND EXISTS (SELECT 1 FROM members m"
  "                 WHERE m.dossier_id = c.dossier_id AND +m.user_id = ?1"
  "                   AND m.until_epoch = 0 AND m.joined_seq < c.seq)"
  " UNION ALL "
  PULL_JOINED_SQL;

static const char pull_by_dossier_sql[] =
  "SELECT c.rowid, c.dossier_id, c.seq, c.seq AS vis, c.size"
  "  FROM members m JOIN changesets c"
  "    ON c.dossier_id = m.dossier_id AND c.seq >= MAX(?2, m.joined_seq + 1)"
  "   AND c.seq <= IFNULL((SELECT b.seq FROM changesets b"
  "                         WHERE b.dossier_id = m.dossier_id"
  "                           AND b.seq >= MAX(?2, m.joined_seq + 1)"
  "                           AND b.device_id IS NOT ?3"
  "                         ORDER BY b.seq LIMIT 1 OFFSET ?6 - 1), 9223372036854775807)"
  "  WHERE m.user_id = ?1 AND m.until_epoch = 0 AND c.device_id IS NOT ?3"
  " UNION ALL "
  PULL_JOINED_SQL;

static GPtrArray *
changeset_pull_in (Conn                     *conn,
                   const char               *user_id,
                   const char               *exclude_device,
                   const RelaisStoreCursor  *after,
                   guint                     limit,
                   gsize                     max_bytes,
                   gboolean                 *out_more,
                   GError                  **error)
{
  g_autoptr(GPtrArray) pulled = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_pulled_free);
  g_autoptr(GArray) rowids = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64 lo;
  gsize total = 0;
  gboolean more = FALSE;
  gboolean by_seq;
  gint64 since;
  int row;

  /* Cursors come from this server (MACed), but stay within SQLite's
   * integers all the same. */
  if (after->vis >= G_MAXINT64 || after->seq >= G_MAXINT64)
    {
      *out_more = FALSE;
      return g_steal_pointer (&pulled);
    }
  /* vis = seq rows after (after.vis, after.seq): seq > after.vis, or
   * seq = after.vis when that position was a join's and not yet passed. */
  lo = after->seq < after->vis ? (gint64) after->vis : (gint64) after->vis + 1;

  /* The way to find the vis = seq change sets, from how many change sets
   * at all were pushed since the cursor. */
  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn, "SELECT value FROM seq", error);

    if (stmt == NULL || step_row (stmt, error) != 1)
      {
        if (error != NULL && *error == NULL)
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                               "SQLite store: the sequence row is missing");
        return NULL;
      }
    since = sqlite3_column_int64 (stmt, 0) - lo;
    by_seq = since < RELAIS_STORE_PULL_SCAN_BUDGET (limit);
  }
  /* Also when the user has a good part of the store (a fresh device of
   * theirs): the scan then keeps most of what it reads. */
  if (!by_seq)
    {
      g_autoptr(CachedStmt) stmt = conn_stmt (conn,
          "SELECT count(*) FROM members WHERE user_id = ?1 AND until_epoch = 0", error);

      if (stmt == NULL)
        return NULL;
      bind_text (stmt, 1, user_id);
      if (step_row (stmt, error) != 1)
        return NULL;
      by_seq = since < 4 * sqlite3_column_int64 (stmt, 0);
    }

  {
    g_autoptr(CachedStmt) stmt = conn_stmt (conn, by_seq ? pull_by_seq_sql : pull_by_dossier_sql,
                                            error);

    if (stmt == NULL)
      return NULL;
    bind_text (stmt, 1, user_id);
    sqlite3_bind_int64 (stmt, 2, lo);
    bind_text (stmt, 3, exclude_device);
    sqlite3_bind_int64 (stmt, 4, after->vis);
    sqlite3_bind_int64 (stmt, 5, after->seq);
    sqlite3_bind_int64 (stmt, 6, (gint64) limit + 1);
    while ((row = step_row (stmt, error)) == 1)
      {
        gint64 size = sqlite3_column_int64 (stmt, 4);
        gint64 rowid;

        if (pulled->len == limit || (pulled->len > 0 && total + size > max_bytes))
          {
            more = TRUE;
            break;
          }
        total += size;
        rowid = sqlite3_column_int64 (stmt, 0);
        g_array_append_val (rowids, rowid);
        /* The envelope comes in the second step. */
        g_ptr_array_add (pulled, relais_store_pulled_new (sqlite3_column_int64 (stmt, 3),
                                                          sqlite3_column_int64 (stmt, 2),
                                                          (const char *) sqlite3_column_text (stmt, 1),
                                                          NULL, 0));
      }
    if (row < 0)
      return NULL;
  }

  for (guint i = 0; i < pulled->len; i++)
    {
      g_autoptr(CachedStmt) stmt = conn_stmt (conn,
          "SELECT envelope FROM changesets WHERE rowid = ?1", error);
      RelaisStorePulled *p = g_ptr_array_index (pulled, i);

      if (stmt == NULL)
        return NULL;
      sqlite3_bind_int64 (stmt, 1, g_array_index (rowids, gint64, i));
      row = step_row (stmt, error);
      if (row < 0)
        return NULL;
      if (row == 0)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                               "SQLite store: a change set vanished during a pull");
          return NULL;
        }
      g_bytes_unref (p->envelope);
      p->envelope = column_bytes (stmt, 0);
    }
  *out_more = more;
  return g_steal_pointer (&pulled);
}

static GPtrArray *
sqlite_changeset_pull (RelaisStore              *store,
                       const char               *user_id,
                       const char               *exclude_device,
                       const RelaisStoreCursor  *after,
                       guint                     limit,
                       gsize                     max_bytes,
                       gboolean                 *out_more,
                       GError                  **error)
{
  RelaisStoreSqlite *self = (RelaisStoreSqlite *) store;
  g_autoptr(GPtrArray) pulled = NULL;
  Conn *conn = txn_begin (self, FALSE, error);

  if (conn == NULL)
    return NULL;
  pulled = changeset_pull_in (conn, user_id, exclude_device, after, limit, max_bytes,
                              out_more, error);
  if (!txn_end (self, conn, pulled != NULL, error))
    return NULL;
  return g_steal_pointer (&pulled);
}

static const RelaisStoreVTable sqlite_vtable = {
  .close = sqlite_close,
  .get_secret = sqlite_get_secret,
  .user_add = sqlite_user_add,
  .user_get = sqlite_user_get,
  .user_list = sqlite_user_list,
  .user_set_keys = sqlite_user_set_keys,
  .code_add = sqlite_code_add,
  .code_use = sqlite_code_use,
  .device_add = sqlite_device_add,
  .device_get = sqlite_device_get,
  .device_list = sqlite_device_list,
  .device_revoke = sqlite_device_revoke,
  .device_seen = sqlite_device_seen,
  .nonce_use = sqlite_nonce_use,
  .recovery_key_set = sqlite_recovery_key_set,
  .recovery_key_get = sqlite_recovery_key_get,
  .dossier_create = sqlite_dossier_create,
  .dossier_epoch = sqlite_dossier_epoch,
  .is_member = sqlite_is_member,
  .dossier_keys = sqlite_dossier_keys,
  .dossier_share = sqlite_dossier_share,
  .dossier_unshare = sqlite_dossier_unshare,
  .recovery_wraps = sqlite_recovery_wraps,
  .recovery_missing = sqlite_recovery_missing,
  .recovery_add = sqlite_recovery_add,
  .changeset_put = sqlite_changeset_put,
  .changeset_pull = sqlite_changeset_pull,
};
