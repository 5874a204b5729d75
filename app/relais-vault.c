#define G_LOG_DOMAIN "relais-vault"

#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "relais-oplog.h"
#include "relais-schema.h"
#include "relais-vault.h"
#include "relais-vfs.h"

struct _RelaisVault
{
  char          *dir;
  RelaisKeyfile *keyfile;
  RelaisVfs     *vfs;
  sqlite3       *db;
  char          *device_id;
  char          *author;
  guint64        hlc;
  gboolean       hlc_dirty;
};

char *
relais_vault_default_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "relais", NULL);
}

void
relais_vault_set_sqlite_error (RelaisVault  *self,
                               int           rc,
                               const char   *what,
                               GError      **error)
{
  int primary = rc & 0xff;
  RelaisVaultError code;
  g_autofree char *detail = NULL;

  if (rc == SQLITE_IOERR_DATA)
    {
      guint32 pgno = self != NULL && self->vfs != NULL ? relais_vfs_get_last_damaged_page (self->vfs) : 0;

      code = RELAIS_VAULT_ERROR_DAMAGED;
      if (pgno != 0)
        detail = g_strdup_printf (_("the vault is damaged: page %u failed its authentication check"), pgno);
      else
        detail = g_strdup (_("the vault is damaged: a page failed its authentication check"));
    }
  else if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
    {
      code = RELAIS_VAULT_ERROR_DAMAGED;
      detail = g_strdup (_("the vault is damaged"));
    }
  else if (primary == SQLITE_FULL)
    {
      code = RELAIS_VAULT_ERROR_FULL;
      detail = g_strdup (_("the disk is full; nothing was changed"));
    }
  else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    {
      code = RELAIS_VAULT_ERROR_BUSY;
      detail = g_strdup (_("the vault is open in another program"));
    }
  else if (primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_READONLY ||
           primary == SQLITE_PERM)
    {
      code = RELAIS_VAULT_ERROR_IO;
      detail = g_strdup_printf (_("could not read or write the vault (%s)"), sqlite3_errstr (rc));
    }
  else
    {
      code = RELAIS_VAULT_ERROR_FAILED;
      /* The connection's message names our SQL, never stored values. */
      detail = g_strdup (self != NULL && self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
    }

  if (what != NULL)
    g_set_error (error, RELAIS_VAULT_ERROR, code,
                 /* Translators: what failed, then why (“Could not read the vault: the disk is full”). */
                 _("%s: %s"), what, detail);
  else
    {
      detail[0] = g_ascii_toupper (detail[0]);
      g_set_error_literal (error, RELAIS_VAULT_ERROR, code, detail);
    }
}

gboolean
relais_vault_exec (RelaisVault  *self,
                   const char   *sql,
                   GError      **error)
{
  int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self, sqlite3_extended_errcode (self->db), NULL, error);
      return FALSE;
    }
  return TRUE;
}

static void
vault_free (RelaisVault *self)
{
  if (self->db != NULL)
    {
      sqlite3_stmt *stmt;
      int rc;

      relais_oplog_forget_db (self->db);
      /* With exclusive locking, closing the last connection checkpoints
       * the WAL into the database and deletes it.  A first try lets the
       * virtual tables (the FTS5 search index) finalize their own
       * statements: finalizing those here would free them twice.  What is
       * left after it was leaked by a caller. */
      rc = sqlite3_close (self->db);
      if (rc == SQLITE_BUSY)
        {
          while ((stmt = sqlite3_next_stmt (self->db, NULL)) != NULL)
            sqlite3_finalize (stmt);
          rc = sqlite3_close (self->db);
        }
      if (rc != SQLITE_OK)
        g_warning ("the vault did not close cleanly");
      self->db = NULL;
    }
  g_clear_pointer (&self->vfs, relais_vfs_free);
  g_clear_pointer (&self->keyfile, relais_keyfile_free);
  g_clear_pointer (&self->device_id, g_free);
  g_clear_pointer (&self->author, g_free);
  g_clear_pointer (&self->dir, g_free);
  g_free (self);
}

void
relais_vault_close (RelaisVault *self)
{
  if (self == NULL)
    return;

  if (self->db != NULL && !sqlite3_get_autocommit (self->db))
    relais_vault_rollback (self);
  vault_free (self);
}

static gboolean
get_meta (RelaisVault  *self,
          const char   *key,
          char        **out,
          GError      **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (self->db, "SELECT value FROM meta WHERE key = ?", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
    }
  if (rc == SQLITE_ROW)
    {
      *out = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
      return TRUE;
    }
  if (rc == SQLITE_DONE)
    {
      *out = NULL;
      return TRUE;
    }
  relais_vault_set_sqlite_error (self, sqlite3_extended_errcode (self->db), NULL, error);
  return FALSE;
}

static gboolean
set_meta (RelaisVault  *self,
          const char   *key,
          const char   *value,
          GError      **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (self->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
    }
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (self, sqlite3_extended_errcode (self->db), NULL, error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
configure_connection (RelaisVault               *self,
                      const RelaisVaultOptions  *options,
                      gboolean                   creating,
                      GError                   **error)
{
  g_autofree char *journal = NULL;
  int reserve;
  int rc;

  sqlite3_extended_result_codes (self->db, 1);
  sqlite3_busy_timeout (self->db, 2000);
  sqlite3_db_config (self->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config (self->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

  /* Exclusive locking before WAL: the WAL index then lives in this
   * process's memory and there is no -shm file, whose frame checksums
   * would otherwise sit on disk in clear.  Temporary files stay in memory
   * (Debian's SQLite puts them on disk by default), and no mmap: every
   * read must go through the decrypting VFS. */
  if (!relais_vault_exec (self,
                          "PRAGMA locking_mode = EXCLUSIVE;"
                          "PRAGMA temp_store = MEMORY;"
                          "PRAGMA mmap_size = 0;"
                          "PRAGMA cache_size = -16384;",
                          error))
    return FALSE;

  if (creating)
    {
      /* Room for the nonce and the tag at the end of each page, fixed when
       * the first page is written. */
      if (!relais_vault_exec (self, "PRAGMA page_size = 4096;", error))
        return FALSE;
      reserve = RELAIS_RESERVE_BYTES;
      sqlite3_file_control (self->db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
    }

  /* Reading the schema reads page 1: a damaged database shows here. */
  rc = sqlite3_exec (self->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self, sqlite3_extended_errcode (self->db), NULL, error);
      return FALSE;
    }

  journal = g_strdup_printf ("PRAGMA journal_mode = %s; PRAGMA synchronous = FULL;",
                             options != NULL && options->journal_mode != NULL ? options->journal_mode : "WAL");
  if (!relais_vault_exec (self, journal, error))
    return FALSE;

  reserve = -1;
  sqlite3_file_control (self->db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
  if (reserve != RELAIS_RESERVE_BYTES)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("This database was not made by Relais"));
      return FALSE;
    }

  return TRUE;
}

static gboolean
load_identity (RelaisVault  *self,
               gboolean      creating,
               GError      **error)
{
  g_autofree char *hlc = NULL;

  if (!relais_vault_begin (self, error))
    return FALSE;

  if (!relais_schema_migrate (self->db, error))
    goto fail;

  if (creating)
    {
      g_autofree char *device = g_uuid_string_random ();
      const char *user = g_get_real_name ();

      if (user == NULL || g_strcmp0 (user, "Unknown") == 0)
        user = g_get_user_name ();
      if (!set_meta (self, "device_id", device, error) ||
          !set_meta (self, "author", user, error) ||
          !set_meta (self, "hlc", "0", error))
        goto fail;
    }

  if (!get_meta (self, "device_id", &self->device_id, error) ||
      !get_meta (self, "author", &self->author, error) ||
      !get_meta (self, "hlc", &hlc, error))
    goto fail;

  if (self->device_id == NULL)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("The vault is damaged: its device id is missing"));
      goto fail;
    }
  if (self->author == NULL)
    self->author = g_strdup (g_get_user_name ());
  self->hlc = hlc != NULL ? g_ascii_strtoull (hlc, NULL, 10) : 0;
  self->hlc_dirty = FALSE;

  return relais_vault_commit (self, error);

fail:
  relais_vault_rollback (self);
  return FALSE;
}

static RelaisVault *
open_with_keyfile (const char                *dir,
                   RelaisKeyfile             *keyfile,
                   const RelaisVaultOptions  *options,
                   gboolean                   creating,
                   GError                   **error)
{
  RelaisVault *self;
  g_autofree char *path = g_build_filename (dir, RELAIS_VAULT_DB_NAME, NULL);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc;

  self = g_new0 (RelaisVault, 1);
  self->dir = g_strdup (dir);
  self->keyfile = keyfile;
  self->vfs = relais_vfs_new (options != NULL ? options->base_vfs : NULL,
                              relais_keyfile_get_db_id (keyfile),
                              relais_keyfile_get_data_key (keyfile));
  if (self->vfs == NULL)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                           _("Could not set up the vault's encryption"));
      vault_free (self);
      return NULL;
    }

  if (creating)
    flags |= SQLITE_OPEN_CREATE;
  else if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                   _("The vault in %s has lost its database file"), dir);
      vault_free (self);
      return NULL;
    }

  rc = sqlite3_open_v2 (path, &self->db, flags, relais_vfs_get_name (self->vfs));
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self, rc, _("Could not open the vault"), error);
      vault_free (self);
      return NULL;
    }

  if (!configure_connection (self, options, creating, error) ||
      !load_identity (self, creating, error))
    {
      vault_free (self);
      return NULL;
    }

  return self;
}

RelaisVault *
relais_vault_create (const char                *dir,
                     const char                *passphrase,
                     const RelaisVaultOptions  *options,
                     char                     **out_recovery_key,
                     GError                   **error)
{
  g_autofree char *db_path = NULL;
  g_autofree char *recovery = NULL;
  RelaisKeyfile *keyfile;
  RelaisVault *self;

  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (passphrase != NULL, NULL);

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_IO,
                   _("Could not create the directory %s: %s"), dir, g_strerror (errno));
      return NULL;
    }

  db_path = g_build_filename (dir, RELAIS_VAULT_DB_NAME, NULL);
  if (g_file_test (db_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_EXISTS,
                   _("A vault already exists in %s"), dir);
      return NULL;
    }

  keyfile = relais_keyfile_create (dir, passphrase, options != NULL ? options->kdf : NULL,
                                   &recovery, error);
  if (keyfile == NULL)
    return NULL;

  self = open_with_keyfile (dir, keyfile, options, TRUE, error);
  if (self == NULL)
    {
      g_autofree char *key_path = g_build_filename (dir, RELAIS_KEYFILE_NAME, NULL);
      g_autofree char *wal_path = g_strconcat (db_path, "-wal", NULL);
      g_autofree char *journal_path = g_strconcat (db_path, "-journal", NULL);

      /* Leave no half-made vault behind. */
      g_unlink (db_path);
      g_unlink (wal_path);
      g_unlink (journal_path);
      g_unlink (key_path);
      if (recovery != NULL)
        sodium_memzero (recovery, strlen (recovery));
      return NULL;
    }

  if (out_recovery_key != NULL)
    *out_recovery_key = g_steal_pointer (&recovery);
  else if (recovery != NULL)
    sodium_memzero (recovery, strlen (recovery));

  return self;
}

static gboolean
check_dir (const char  *dir,
           GError     **error)
{
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NO_VAULT,
                   _("No vault in %s: create one with 'relaisctl init'"), dir);
      return FALSE;
    }
  return TRUE;
}

RelaisVault *
relais_vault_open (const char                *dir,
                   const char                *passphrase,
                   const RelaisVaultOptions  *options,
                   GError                   **error)
{
  RelaisKeyfile *keyfile;

  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (passphrase != NULL, NULL);

  if (!check_dir (dir, error))
    return NULL;
  keyfile = relais_keyfile_unlock (dir, passphrase, error);
  if (keyfile == NULL)
    return NULL;
  return open_with_keyfile (dir, keyfile, options, FALSE, error);
}

RelaisVault *
relais_vault_open_recovery (const char                *dir,
                            const char                *recovery_key,
                            const RelaisVaultOptions  *options,
                            GError                   **error)
{
  RelaisKeyfile *keyfile;

  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (recovery_key != NULL, NULL);

  if (!check_dir (dir, error))
    return NULL;
  keyfile = relais_keyfile_unlock_recovery (dir, recovery_key, error);
  if (keyfile == NULL)
    return NULL;
  return open_with_keyfile (dir, keyfile, options, FALSE, error);
}

gboolean
relais_vault_change_passphrase (RelaisVault  *self,
                                const char   *new_passphrase,
                                GError      **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (new_passphrase != NULL, FALSE);

  return relais_keyfile_rewrap (self->keyfile, new_passphrase, NULL, error);
}

static gboolean
relais_vault_in_wal_mode (RelaisVault *self)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;

  return sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode", -1, &stmt, NULL) == SQLITE_OK &&
         sqlite3_step (stmt) == SQLITE_ROW &&
         g_ascii_strcasecmp ((const char *) sqlite3_column_text (stmt, 0), "wal") == 0;
}

static guint32
be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

/* Marks the leaves of the free list (index = page number), reading page 1
 * and every trunk page (which must all authenticate). */
static gboolean *
find_free_leaves (RelaisVault   *self,
                  sqlite3_file  *file,
                  guint          pages,
                  guint8        *page,
                  GError       **error)
{
  g_autofree gboolean *leaves = g_new0 (gboolean, pages + 1);
  guint32 trunk;
  guint hops = 0;
  int rc;

  if (pages == 0)
    return g_steal_pointer (&leaves);

  rc = file->pMethods->xRead (file, page, RELAIS_PAGE_SIZE, 0);
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self, rc, NULL, error);
      return NULL;
    }

  for (trunk = be32 (page + 32); trunk != 0; trunk = be32 (page))
    {
      guint32 n;

      if (trunk > pages || ++hops > pages)
        goto damaged;
      rc = file->pMethods->xRead (file, page, RELAIS_PAGE_SIZE, (sqlite3_int64) (trunk - 1) * RELAIS_PAGE_SIZE);
      if (rc != SQLITE_OK)
        {
          relais_vault_set_sqlite_error (self, rc, NULL, error);
          return NULL;
        }
      n = be32 (page + 4);
      if (n > (RELAIS_PAGE_SIZE - RELAIS_RESERVE_BYTES) / 4 - 2)
        goto damaged;
      for (guint32 i = 0; i < n; i++)
        {
          guint32 leaf = be32 (page + 8 + 4 * i);
          if (leaf == 0 || leaf > pages)
            goto damaged;
          leaves[leaf] = TRUE;
        }
    }
  return g_steal_pointer (&leaves);

damaged:
  g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                       _("The vault is damaged: its list of free pages is broken"));
  return NULL;
}

gboolean
relais_vault_verify (RelaisVault  *self,
                     guint        *out_pages,
                     GError      **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  sqlite3_file *file = NULL;
  sqlite3_int64 size = 0;
  g_autofree guint8 *page = NULL;
  g_autofree gboolean *free_leaves = NULL;
  gboolean wal;
  guint pages;
  int rc;

  g_return_val_if_fail (self != NULL, FALSE);

  /* Everything into the database file first, so that reading the file
   * page by page authenticates every page of the current state. */
  rc = sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self, sqlite3_extended_errcode (self->db), NULL, error);
      return FALSE;
    }

  rc = sqlite3_file_control (self->db, "main", SQLITE_FCNTL_FILE_POINTER, &file);
  if (rc != SQLITE_OK || file == NULL || file->pMethods == NULL)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                           _("Could not read the vault's database file"));
      return FALSE;
    }
  rc = file->pMethods->xFileSize (file, &size);
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self, rc, NULL, error);
      return FALSE;
    }
  if (size % RELAIS_PAGE_SIZE != 0)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("The vault is damaged: its database file was cut short"));
      return FALSE;
    }

  pages = (guint) (size / RELAIS_PAGE_SIZE);
  page = g_malloc (RELAIS_PAGE_SIZE);
  free_leaves = find_free_leaves (self, file, pages, page, error);
  if (free_leaves == NULL)
    return FALSE;

  wal = relais_vault_in_wal_mode (self);
  for (guint i = 0; i < pages; i++)
    {
      rc = file->pMethods->xRead (file, page, RELAIS_PAGE_SIZE, (sqlite3_int64) i * RELAIS_PAGE_SIZE);
      /* In rollback-journal mode a leaf of the free list may keep a write
       * that a power cut tore: SQLite reuses such pages without reading
       * them and does not journal them, so it never restores them.  They
       * hold nothing.  In WAL mode, the vault's, every page is restored
       * from the WAL, so every page must authenticate. */
      if (rc == SQLITE_IOERR_DATA && !wal && free_leaves[i + 1])
        continue;
      if (rc != SQLITE_OK)
        {
          relais_vault_set_sqlite_error (self, rc, NULL, error);
          return FALSE;
        }
    }
  sodium_memzero (page, RELAIS_PAGE_SIZE);

  rc = sqlite3_prepare_v2 (self->db, "PRAGMA integrity_check", -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  for (; rc == SQLITE_ROW; rc = sqlite3_step (stmt))
    {
      const char *line = (const char *) sqlite3_column_text (stmt, 0);

      if (g_strcmp0 (line, "ok") != 0)
        {
          g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                               _("The vault is damaged: its integrity check failed"));
          return FALSE;
        }
    }
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (self, sqlite3_extended_errcode (self->db), NULL, error);
      return FALSE;
    }

  if (out_pages != NULL)
    *out_pages = pages;
  return TRUE;
}

sqlite3 *
relais_vault_get_db (RelaisVault *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->db;
}

const char *
relais_vault_get_dir (RelaisVault *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->dir;
}

const char *
relais_vault_get_device_id (RelaisVault *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->device_id;
}

const char *
relais_vault_get_author (RelaisVault *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->author;
}

void
relais_vault_set_author (RelaisVault *self,
                         const char  *author)
{
  g_autoptr(GError) error = NULL;

  g_return_if_fail (self != NULL);
  g_return_if_fail (author != NULL);

  if (!set_meta (self, "author", author, &error))
    {
      g_warning ("could not store the author: %s", error->message);
      return;
    }
  g_free (self->author);
  self->author = g_strdup (author);
}

guint
relais_vault_get_rejected_frames (RelaisVault *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return relais_vfs_get_rejected_frames (self->vfs);
}

gboolean
relais_vault_begin (RelaisVault  *self,
                    GError      **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return relais_vault_exec (self, "BEGIN IMMEDIATE", error);
}

gboolean
relais_vault_commit (RelaisVault  *self,
                     GError      **error)
{
  g_return_val_if_fail (self != NULL, FALSE);

  if (self->hlc_dirty)
    {
      char buf[32];

      g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT, self->hlc);
      if (!set_meta (self, "hlc", buf, error))
        {
          relais_vault_rollback (self);
          return FALSE;
        }
      self->hlc_dirty = FALSE;
    }

  if (!relais_vault_exec (self, "COMMIT", error))
    {
      /* Leave no transaction open behind a failed commit. */
      relais_vault_rollback (self);
      return FALSE;
    }
  return TRUE;
}

void
relais_vault_rollback (RelaisVault *self)
{
  g_return_if_fail (self != NULL);

  if (!sqlite3_get_autocommit (self->db))
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
}

static guint64
hlc_now (void)
{
  return ((guint64) (g_get_real_time () / 1000)) << 16;
}

guint64
relais_vault_hlc_tick (RelaisVault *self)
{
  guint64 now = hlc_now ();

  self->hlc = MAX (now, self->hlc + 1);
  self->hlc_dirty = TRUE;
  return self->hlc;
}

void
relais_vault_hlc_observe (RelaisVault *self,
                          guint64      remote)
{
  if (remote > self->hlc)
    {
      self->hlc = remote;
      self->hlc_dirty = TRUE;
    }
}
