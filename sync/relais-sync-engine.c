#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "relais-bundle.h"
#include "relais-changeset.h"
#include "relais-changeset-private.h"
#include "relais-keys.h"
#include "relais-oplog.h"
#include "relais-search.h"
#include "relais-sync-engine.h"

/* The vault's side of sync.  What it keeps (schema version 4,
 * app/relais-schema.c): sync_identity, sync_dossier (current epoch and
 * whether the server knows the dossier), sync_key (every epoch's key),
 * sync_member (members past and present) and sync_state (sealed_seq).
 *
 * Sealing reads this device's operations after sealed_seq, writes their
 * change sets to the spool, and only then advances sealed_seq: a crash in
 * between seals the same operations again under new change-set ids, which
 * is harmless because operation ids deduplicate on every replica.
 *
 * Applying batches envelopes into one transaction with a savepoint each:
 * every envelope is still all or nothing, but a pull of 10,000 change sets
 * does not pay 10,000 fsyncs of the journal. */

#define STATE_SEALED_SEQ "sealed_seq"

/* sync_dossier.registered: where the dossier stands on the server. */
typedef enum {
  REG_NONE = 0,     /* made here, its registration not yet queued */
  REG_QUEUED = 1,   /* its registration waits in spool/register */
  REG_KNOWN = 2,    /* the server has it (an exchange completed, or keys came from it) */
} RegState;

/* What one batch of received envelopes may hold before it is committed,
 * and what is read from spool/in at once. */
#define APPLY_BATCH_ENVELOPES 4096
#define APPLY_BATCH_OPS       50000
#define APPLY_READ_BYTES      (32 * 1024 * 1024)

/* The page cache while applying, in KiB (PRAGMA cache_size takes it
 * negative).  A batch of 1,024 envelopes dirties more pages than the
 * vault's everyday cache holds: SQLite then spills them to the WAL mid
 * transaction and reads them back, encrypting and decrypting each page
 * every time (measured: a third of a fresh device's initial pull).  The
 * everyday size comes back when the apply ends. */
#define APPLY_CACHE_KIB       (96 * 1024)
/* And the WAL may grow to this many pages (256 MiB) between checkpoints,
 * so that a page several batches write is copied to the database
 * (decrypted and encrypted again) once, not once per batch: a pull of
 * 10,000 dossiers then checkpoints once, at its end.  The file keeps that
 * size until the vault closes. */
#define APPLY_CHECKPOINT_PAGES 65536

/* An envelope's fixed overhead (header, tag, signature, author and device
 * ids) is below this; the rest of RELAIS_CHANGESET_MAX_SIZE is for ops. */
#define SEAL_OVERHEAD 1024

/* Dossier keys an opener keeps at once (see ring_key()). */
#define RING_MAX_KEYS 1024

#define RECOVERY_FILE_MAGIC "RELAIS-RECOVERY-KEY 1"

static gpointer
guarded_alloc (gsize size)
{
  gpointer p = sodium_malloc (size);

  if (p == NULL)
    g_error ("Out of guarded memory");
  return p;
}

static void
guarded_free (gpointer p)
{
  if (p != NULL)
    sodium_free (p);
}

/* ------------------------------------------------------------------------
 * Identity
 * ------------------------------------------------------------------------ */

typedef struct {
  char           *server;
  char           *cacert;
  char           *user_id;
  char           *org;
  char           *device_id;
  gboolean        admin;
  gboolean        has_recovery;
  guint8          recovery_pk[crypto_box_PUBLICKEYBYTES];
  RelaisUserKeys *user;        /* guarded */
  guint8         *device_sk;   /* guarded, crypto_sign_SECRETKEYBYTES */
} Identity;

static void
identity_free (Identity *identity)
{
  if (identity == NULL)
    return;
  g_free (identity->server);
  g_free (identity->cacert);
  g_free (identity->user_id);
  g_free (identity->org);
  g_free (identity->device_id);
  g_clear_pointer (&identity->user, relais_user_keys_free);
  g_clear_pointer (&identity->device_sk, guarded_free);
  g_free (identity);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Identity, identity_free)

static gboolean
db_failed (RelaisVault  *vault,
           int           rc,
           GError      **error)
{
  relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
  return FALSE;
}

static gboolean
copy_blob (sqlite3_stmt *stmt,
           int           column,
           guint8       *out,
           gsize         size)
{
  if (sqlite3_column_type (stmt, column) != SQLITE_BLOB ||
      (gsize) sqlite3_column_bytes (stmt, column) != size)
    return FALSE;
  memcpy (out, sqlite3_column_blob (stmt, column), size);
  return TRUE;
}

static char *
column_dup (sqlite3_stmt *stmt,
            int           column)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, column));
}

static void
set_not_enrolled (GError **error)
{
  g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                       _("This vault is not enrolled with a sync server: run “relaisctl enroll” first."));
}

/* Loads the identity, or returns NULL: with NULL *@error when the vault
 * is not enrolled and @quiet. */
static Identity *
identity_load_full (RelaisVault  *vault,
                    gboolean      quiet,
                    GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(Identity) identity = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT server, cacert, user_id, org, device_id, device_sk,"
                               " box_pk, box_sk, sign_pk, sign_sk, recovery_pk, admin"
                               " FROM sync_identity WHERE id = 1",
                               error);
  if (stmt == NULL)
    return NULL;
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    {
      if (!quiet)
        set_not_enrolled (error);
      return NULL;
    }
  if (rc != SQLITE_ROW)
    {
      db_failed (vault, rc, error);
      return NULL;
    }

  identity = g_new0 (Identity, 1);
  identity->server = column_dup (stmt, 0);
  identity->cacert = column_dup (stmt, 1);
  identity->user_id = column_dup (stmt, 2);
  identity->org = column_dup (stmt, 3);
  identity->device_id = column_dup (stmt, 4);
  identity->device_sk = guarded_alloc (crypto_sign_SECRETKEYBYTES);
  identity->user = guarded_alloc (sizeof *identity->user);
  identity->admin = sqlite3_column_int (stmt, 11) != 0;
  if (identity->server == NULL || identity->user_id == NULL || identity->device_id == NULL ||
      !copy_blob (stmt, 5, identity->device_sk, crypto_sign_SECRETKEYBYTES) ||
      !copy_blob (stmt, 6, identity->user->box_pk, crypto_box_PUBLICKEYBYTES) ||
      !copy_blob (stmt, 7, identity->user->box_sk, crypto_box_SECRETKEYBYTES) ||
      !copy_blob (stmt, 8, identity->user->sign_pk, crypto_sign_PUBLICKEYBYTES) ||
      !copy_blob (stmt, 9, identity->user->sign_sk, crypto_sign_SECRETKEYBYTES))
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("The vault's sync identity is damaged: enrol this device again."));
      return NULL;
    }
  if (sqlite3_column_type (stmt, 10) != SQLITE_NULL)
    identity->has_recovery = copy_blob (stmt, 10, identity->recovery_pk, crypto_box_PUBLICKEYBYTES);
  if (identity->org == NULL)
    identity->org = g_strdup ("");
  return g_steal_pointer (&identity);
}

static Identity *
identity_load (RelaisVault  *vault,
               GError      **error)
{
  return identity_load_full (vault, FALSE, error);
}

gboolean
relais_sync_is_enrolled (RelaisVault *vault)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (vault != NULL, FALSE);

  identity = identity_load_full (vault, TRUE, &error);
  return identity != NULL;
}

char *
relais_sync_get_user_id (RelaisVault *vault)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (vault != NULL, NULL);

  identity = identity_load_full (vault, TRUE, &error);
  return identity != NULL ? g_strdup (identity->user_id) : NULL;
}

/* Opens a transaction unless one is open; returns whether it did. */
static gboolean
begin_own (RelaisVault  *vault,
           gboolean     *out_own,
           GError      **error)
{
  *out_own = sqlite3_get_autocommit (relais_vault_get_db (vault)) != 0;
  return !*out_own || relais_vault_begin (vault, error);
}

static gboolean
commit_own (RelaisVault  *vault,
            gboolean      own,
            GError      **error)
{
  return !own || relais_vault_commit (vault, error);
}

static void
rollback_own (RelaisVault *vault,
              gboolean     own)
{
  if (own)
    relais_vault_rollback (vault);
}

gboolean
relais_sync_set_identity (RelaisVault               *vault,
                          RelaisSpool               *spool,
                          const RelaisSyncIdentity  *identity,
                          const RelaisUserKeys      *user_keys,
                          const guint8              *device_sk,
                          GError                   **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (identity != NULL && identity->server != NULL, FALSE);
  g_return_val_if_fail (identity->user_id != NULL && identity->device_id != NULL, FALSE);
  g_return_val_if_fail (user_keys != NULL && device_sk != NULL, FALSE);

  if (!relais_vault_begin (vault, error))
    return FALSE;
  if (!relais_vault_exec (vault, "DELETE FROM sync_identity", error))
    goto fail;
  stmt = relais_oplog_prepare (vault,
                               "INSERT INTO sync_identity (id, server, cacert, user_id, org, device_id,"
                               " device_sk, box_pk, box_sk, sign_pk, sign_sk, recovery_pk, admin)"
                               " VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                               error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, identity->server, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, identity->cacert, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, identity->user_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, identity->org != NULL ? identity->org : "", -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 5, identity->device_id, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 6, device_sk, crypto_sign_SECRETKEYBYTES, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 7, user_keys->box_pk, crypto_box_PUBLICKEYBYTES, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 8, user_keys->box_sk, crypto_box_SECRETKEYBYTES, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 9, user_keys->sign_pk, crypto_sign_PUBLICKEYBYTES, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 10, user_keys->sign_sk, crypto_sign_SECRETKEYBYTES, SQLITE_STATIC);
  if (identity->recovery_pk != NULL)
    sqlite3_bind_blob (stmt, 11, identity->recovery_pk, crypto_box_PUBLICKEYBYTES, SQLITE_STATIC);
  sqlite3_bind_int (stmt, 12, identity->admin ? 1 : 0);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    {
      db_failed (vault, rc, error);
      goto fail;
    }
  relais_stmt_release (g_steal_pointer (&stmt));

  /* Operations made before enrolment name the local account as their
   * author; their change sets will name the user id, so the log here says
   * the same as every replica will.  None of them has left the device. */
  stmt = relais_oplog_prepare (vault,
                               "UPDATE op SET author = ?1 WHERE device = ?2 AND author <> ?1",
                               error);
  if (stmt == NULL)
    goto fail;
  sqlite3_bind_text (stmt, 1, identity->user_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, relais_vault_get_device_id (vault), -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    {
      db_failed (vault, rc, error);
      goto fail;
    }
  relais_stmt_release (g_steal_pointer (&stmt));

  if (!relais_vault_commit (vault, error))
    return FALSE;
  relais_vault_set_author (vault, identity->user_id);

  if (spool != NULL)
    {
      RelaisSpoolIdentity sid = {
        .server = (char *) identity->server,
        .cacert = (char *) identity->cacert,
        .user_id = (char *) identity->user_id,
        .org = (char *) (identity->org != NULL ? identity->org : ""),
        .device_id = (char *) identity->device_id,
      };

      if (!relais_spool_set_identity (spool, &sid, device_sk, error))
        return FALSE;
    }
  return TRUE;

fail:
  relais_vault_rollback (vault);
  return FALSE;
}

/* ------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------ */

static gboolean
state_get_int (RelaisVault  *vault,
               const char   *name,
               gint64       *out_value,
               GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  *out_value = 0;
  stmt = relais_oplog_prepare (vault, "SELECT value FROM sync_state WHERE name = ?1", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    *out_value = sqlite3_column_int64 (stmt, 0);
  else if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

static gboolean
state_set_int (RelaisVault  *vault,
               const char   *name,
               gint64        value,
               GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "INSERT INTO sync_state (name, value) VALUES (?1, ?2)"
                               " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, value);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Dossier keys and members
 * ------------------------------------------------------------------------ */

/* The current epoch of @dossier, 0 when the vault holds no key of it.
 * *@out_reg: where it stands on the server. */
static gboolean
dossier_get (RelaisVault  *vault,
             const char   *dossier,
             guint32      *out_epoch,
             RegState     *out_reg,
             GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  *out_epoch = 0;
  if (out_reg != NULL)
    *out_reg = REG_NONE;
  stmt = relais_oplog_prepare (vault,
                               "SELECT epoch, registered FROM sync_dossier WHERE dossier = ?1",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      *out_epoch = (guint32) sqlite3_column_int64 (stmt, 0);
      if (out_reg != NULL)
        *out_reg = (RegState) CLAMP (sqlite3_column_int (stmt, 1), REG_NONE, REG_KNOWN);
    }
  else if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

/* The key of @dossier at @epoch in guarded memory, or NULL (no error)
 * when the vault does not hold it. */
static guint8 *
key_get (RelaisVault  *vault,
         const char   *dossier,
         guint32       epoch,
         GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  guint8 *key;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT key FROM sync_key WHERE dossier = ?1 AND epoch = ?2",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, epoch);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    return NULL;
  if (rc != SQLITE_ROW)
    {
      db_failed (vault, rc, error);
      return NULL;
    }
  /* From relais-keys.c's guarded slabs (overwritten here): a key per
   * dossier of a pull, cheaper than a guarded mapping each. */
  key = relais_dossier_key_new ();
  if (!copy_blob (stmt, 0, key, RELAIS_DOSSIER_KEY_SIZE))
    {
      relais_dossier_key_free (key);
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("A dossier key in the vault is damaged."));
      return NULL;
    }
  return key;
}

static gboolean
key_put (RelaisVault   *vault,
         const char    *dossier,
         guint32        epoch,
         const guint8  *key,
         GError       **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "INSERT OR REPLACE INTO sync_key (dossier, epoch, key) VALUES (?1, ?2, ?3)",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, epoch);
  sqlite3_bind_blob (stmt, 3, key, RELAIS_DOSSIER_KEY_SIZE, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

/* Records @epoch as the current one when it is newer. */
static gboolean
dossier_put (RelaisVault  *vault,
             const char   *dossier,
             guint32       epoch,
             RegState      reg,
             GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "INSERT INTO sync_dossier (dossier, epoch, registered) VALUES (?1, ?2, ?3)"
                               " ON CONFLICT (dossier) DO UPDATE SET"
                               "  epoch = max (epoch, excluded.epoch),"
                               "  registered = max (registered, excluded.registered)",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, epoch);
  sqlite3_bind_int (stmt, 3, reg);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

static gboolean
member_put (RelaisVault   *vault,
            const char    *dossier,
            const char    *user_id,
            const guint8  *sign_pk,
            guint32        since_epoch,
            guint32        until_epoch,
            GError       **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "INSERT OR REPLACE INTO sync_member"
                               " (dossier, user_id, sign_pk, since_epoch, until_epoch)"
                               " VALUES (?1, ?2, ?3, ?4, ?5)",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 3, sign_pk, crypto_sign_PUBLICKEYBYTES, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 4, since_epoch);
  sqlite3_bind_int64 (stmt, 5, until_epoch);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

/* Dossier keys unwrapped ahead, by another thread, from the wrapped keys
 * of pulled pages: an X25519 operation each, off the applying thread. */
typedef struct {
  GMutex      mutex;
  GHashTable *keys;   /* const RelaisWrappedKey * → guint8 * (relais_dossier_key_free) */
} Unwrapped;

/* The key unwrapped ahead from @wrapped (the caller frees it), or NULL. */
static guint8 *
unwrapped_take (Unwrapped              *unwrapped,
                const RelaisWrappedKey *wrapped)
{
  gpointer key = NULL;

  if (unwrapped == NULL)
    return NULL;
  g_mutex_lock (&unwrapped->mutex);
  g_hash_table_steal_extended (unwrapped->keys, wrapped, NULL, &key);
  g_mutex_unlock (&unwrapped->mutex);
  return key;
}

static gboolean
import_keys_full (RelaisVault              *vault,
                  const Identity           *identity,
                  const RelaisDossierKeys  *keys,
                  Unwrapped                *unwrapped,
                  GError                  **error)
{
  guint32 newest = 0;
  gboolean own;

  if (keys->dossier_id == NULL || keys->keys == NULL || keys->members == NULL)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                           _("The keys received for a dossier are incomplete."));
      return FALSE;
    }

  if (!begin_own (vault, &own, error))
    return FALSE;

  for (guint i = 0; i < keys->keys->len; i++)
    {
      const RelaisWrappedKey *wrapped = g_ptr_array_index (keys->keys, i);
      g_autoptr(GError) local_error = NULL;
      gsize len = 0;
      const guint8 *data;
      guint8 *key;

      if (wrapped->wrapped_key == NULL)
        continue;
      data = g_bytes_get_data (wrapped->wrapped_key, &len);
      key = unwrapped_take (unwrapped, wrapped);
      if (key == NULL)
        key = relais_dossier_key_unwrap (data, len, keys->dossier_id, wrapped->epoch,
                                         identity->user->box_pk, identity->user->box_sk,
                                         &local_error);
      if (key == NULL)
        {
          /* One bad wrap (another dossier's, or not for us) must not keep
           * the good ones out. */
          g_message ("A wrapped key of epoch %u did not open: %s",
                     wrapped->epoch, local_error->message);
          continue;
        }
      if (!key_put (vault, keys->dossier_id, wrapped->epoch, key, error))
        {
          relais_dossier_key_free (key);
          goto fail;
        }
      relais_dossier_key_free (key);
      newest = MAX (newest, wrapped->epoch);
    }

  for (guint i = 0; i < keys->members->len; i++)
    {
      const RelaisDossierMember *member = g_ptr_array_index (keys->members, i);

      if (member->user_id == NULL)
        continue;
      if (!member_put (vault, keys->dossier_id, member->user_id, member->sign_pk,
                       member->since_epoch, member->until_epoch, error))
        goto fail;
    }

  /* The current epoch is the newest one whose key we hold: sealing with
   * an epoch we cannot read would be pointless. */
  if (newest > 0 && !dossier_put (vault, keys->dossier_id, MIN (newest, MAX (keys->epoch, 1)),
                                  REG_KNOWN, error))
    goto fail;

  return commit_own (vault, own, error);

fail:
  rollback_own (vault, own);
  return FALSE;
}

static gboolean
import_keys_with (RelaisVault              *vault,
                  const Identity           *identity,
                  const RelaisDossierKeys  *keys,
                  GError                  **error)
{
  return import_keys_full (vault, identity, keys, NULL, error);
}

gboolean
relais_sync_import_keys (RelaisVault              *vault,
                         const RelaisDossierKeys  *keys,
                         GError                  **error)
{
  g_autoptr(Identity) identity = NULL;

  g_return_val_if_fail (vault != NULL && keys != NULL, FALSE);

  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;
  return import_keys_with (vault, identity, keys, error);
}

GPtrArray *
relais_sync_wrap_keys (RelaisVault   *vault,
                       const char    *dossier_id,
                       const char    *user_id,
                       const guint8  *box_pk,
                       GError       **error)
{
  g_autoptr(GArray) list = g_array_new (FALSE, FALSE, sizeof (guint32));
  g_autoptr(GPtrArray) wrapped = NULL;
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL && dossier_id != NULL && box_pk != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT epoch FROM sync_key WHERE dossier = ?1 ORDER BY epoch",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier_id, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      guint32 epoch = (guint32) sqlite3_column_int64 (stmt, 0);

      g_array_append_val (list, epoch);
    }
  if (rc != SQLITE_DONE)
    {
      db_failed (vault, rc, error);
      return NULL;
    }
  relais_stmt_release (g_steal_pointer (&stmt));
  if (list->len == 0)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                   _("This device holds no key of dossier %s."), dossier_id);
      return NULL;
    }

  wrapped = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  for (guint i = 0; i < list->len; i++)
    {
      guint32 epoch = g_array_index (list, guint32, i);
      guint8 *key = key_get (vault, dossier_id, epoch, error);
      g_autoptr(GBytes) blob = NULL;

      if (key == NULL)
        return NULL;
      blob = relais_dossier_key_wrap (key, dossier_id, epoch, box_pk);
      relais_dossier_key_free (key);
      g_ptr_array_add (wrapped, relais_wrapped_key_new (user_id, epoch, blob));
    }
  return g_steal_pointer (&wrapped);
}

/* ------------------------------------------------------------------------
 * Key ring: the callbacks of relais_changeset_open()
 * ------------------------------------------------------------------------ */

typedef struct {
  RelaisVault *vault;
  Identity    *identity;
  GHashTable  *keys;         /* "dossier/epoch" → guarded key */
  char        *author;       /* the last author_func answer */
  guint32      author_until; /* its until_epoch */
  GError      *error;        /* a vault failure inside a callback */
} Ring;

static void
ring_init (Ring        *ring,
           RelaisVault *vault,
           Identity    *identity)
{
  memset (ring, 0, sizeof *ring);
  ring->vault = vault;
  ring->identity = identity;
  ring->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) relais_dossier_key_free);
}

static void
ring_clear (Ring *ring)
{
  g_clear_pointer (&ring->keys, g_hash_table_unref);
  g_clear_pointer (&ring->author, g_free);
  g_clear_error (&ring->error);
}

static const guint8 *
ring_key (const char *dossier,
          guint32     epoch,
          gpointer    user_data)
{
  Ring *ring = user_data;
  g_autofree char *name = g_strdup_printf ("%s/%u", dossier, epoch);
  guint8 *key = g_hash_table_lookup (ring->keys, name);

  if (key != NULL)
    return key;
  key = key_get (ring->vault, dossier, epoch, ring->error == NULL ? &ring->error : NULL);
  if (key == NULL)
    return NULL;
  /* Keys sit in locked memory: a pull of 100,000 dossiers must not keep
   * them all. */
  if (g_hash_table_size (ring->keys) >= RING_MAX_KEYS)
    g_hash_table_remove_all (ring->keys);
  g_hash_table_insert (ring->keys, g_steal_pointer (&name), key);
  return key;
}

static const char *
ring_author (const char   *dossier,
             const guint8 *sign_pk,
             gpointer      user_data)
{
  Ring *ring = user_data;
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  g_clear_pointer (&ring->author, g_free);
  ring->author_until = 0;

  stmt = relais_oplog_prepare (ring->vault,
                               "SELECT user_id, until_epoch FROM sync_member"
                               " WHERE dossier = ?1 AND sign_pk = ?2",
                               ring->error == NULL ? &ring->error : NULL);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 2, sign_pk, crypto_sign_PUBLICKEYBYTES, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      ring->author = column_dup (stmt, 0);
      ring->author_until = (guint32) sqlite3_column_int64 (stmt, 1);
      return ring->author;
    }
  if (rc != SQLITE_DONE && ring->error == NULL)
    db_failed (ring->vault, rc, &ring->error);

  /* Our own change sets (re-sealing retired ones, a bundle made here). */
  if (sodium_memcmp (sign_pk, ring->identity->user->sign_pk, crypto_sign_PUBLICKEYBYTES) == 0)
    {
      ring->author = g_strdup (ring->identity->user_id);
      return ring->author;
    }
  return NULL;
}

/* ------------------------------------------------------------------------
 * Sealing
 * ------------------------------------------------------------------------ */

typedef struct {
  RelaisVault  *vault;
  RelaisSpool  *spool;
  Identity     *identity;
  guint         sealed;
} Sealer;

/* Seals @ops (all of @dossier) into as many change sets as the limits
 * want and queues them. */
static gboolean
seal_ops (Sealer        *sealer,
          const char    *dossier,
          guint32        epoch,
          const guint8  *key,
          GPtrArray     *ops,
          guint          from,
          guint          to,
          GError       **error)
{
  g_autoptr(GPtrArray) slice = g_ptr_array_new ();
  g_autoptr(GBytes) envelope = NULL;
  g_autoptr(GError) local_error = NULL;

  for (guint i = from; i < to; i++)
    g_ptr_array_add (slice, g_ptr_array_index (ops, i));

  envelope = relais_changeset_seal (dossier, epoch, key, sealer->identity->user_id,
                                    relais_vault_get_device_id (sealer->vault),
                                    sealer->identity->user->sign_sk, slice, &local_error);
  if (envelope == NULL)
    {
      /* The size estimate is close but not exact: halve and try again. */
      if (g_error_matches (local_error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE) &&
          to - from > 1)
        {
          guint mid = from + (to - from) / 2;

          return seal_ops (sealer, dossier, epoch, key, ops, from, mid, error) &&
                 seal_ops (sealer, dossier, epoch, key, ops, mid, to, error);
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (!relais_spool_add_out (sealer->spool, envelope, error))
    return FALSE;
  sealer->sealed++;
  return TRUE;
}

static gsize
op_size (const RelaisOp *op)
{
  /* As encoded: four short strings, the clock, two long strings. */
  return 4 + strlen (op->id) + strlen (op->entity) + strlen (op->entity_id) + strlen (op->field) +
         8 + 4 + (op->value != NULL ? strlen (op->value) : 0) +
         4 + (op->parents != NULL ? strlen (op->parents) : 0);
}

/* Splits @ops at the protocol's limits and seals each part. */
static gboolean
seal_dossier_ops (Sealer        *sealer,
                  const char    *dossier,
                  guint32        epoch,
                  const guint8  *key,
                  GPtrArray     *ops,
                  GError       **error)
{
  guint start = 0;
  gsize bytes = 0;

  for (guint i = 0; i < ops->len; i++)
    {
      gsize size = op_size (g_ptr_array_index (ops, i));

      if (i > start &&
          (i - start >= RELAIS_CHANGESET_MAX_OPS ||
           bytes + size > RELAIS_CHANGESET_MAX_SIZE - SEAL_OVERHEAD))
        {
          if (!seal_ops (sealer, dossier, epoch, key, ops, start, i, error))
            return FALSE;
          start = i;
          bytes = 0;
        }
      bytes += size;
    }
  if (start < ops->len)
    return seal_ops (sealer, dossier, epoch, key, ops, start, ops->len, error);
  return TRUE;
}

/* Queues the registration of @dossier (at epoch 1, its key wrapped for
 * the user and the organisation's recovery key).  The vault records it
 * queued in the transaction that advances sealed_seq: after a crash before
 * that, it is queued again, which the server takes (a retried creation by
 * a member). */
static gboolean
queue_registration (Sealer      *sealer,
                    const char  *dossier,
                    GError     **error)
{
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GBytes) recovery = NULL;
  guint8 *key;

  members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  key = key_get (sealer->vault, dossier, 1, error);
  if (key == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_FAILED,
                     _("The key of dossier %s is missing from the vault."), dossier);
      return FALSE;
    }
  {
    g_autoptr(GBytes) mine = relais_dossier_key_wrap (key, dossier, 1, sealer->identity->user->box_pk);

    g_ptr_array_add (members, relais_wrapped_key_new (sealer->identity->user_id, 1, mine));
  }
  if (sealer->identity->has_recovery)
    recovery = relais_dossier_key_wrap (key, dossier, 1, sealer->identity->recovery_pk);
  relais_dossier_key_free (key);

  return relais_spool_add_registration (sealer->spool, dossier, members, recovery, error);
}

/* Makes sure the vault holds a current key of every dossier of
 * @dossiers: the one pulls brought, or a fresh one at epoch 1 for a
 * dossier made here.  Fresh keys are committed (in one transaction: an
 * import may bring thousands of dossiers) before anything sealed with them
 * is written, so that a crash never leaves envelopes whose key is lost.
 * Adds to @unregistered the dossiers whose registration is not queued. */
static gboolean
ensure_dossier_keys (Sealer     *sealer,
                     GPtrArray  *dossiers,
                     GPtrArray  *unregistered,
                     GError    **error)
{
  g_autoptr(GPtrArray) fresh = g_ptr_array_new ();

  for (guint i = 0; i < dossiers->len; i++)
    {
      const char *dossier = g_ptr_array_index (dossiers, i);
      RegState reg = REG_NONE;
      guint32 epoch = 0;

      if (!dossier_get (sealer->vault, dossier, &epoch, &reg, error))
        return FALSE;
      if (epoch == 0)
        {
          g_autoptr(RelaisDossierKeys) pulled = relais_spool_get_keys (sealer->spool, dossier, NULL);

          if (pulled != NULL &&
              (!import_keys_with (sealer->vault, sealer->identity, pulled, error) ||
               !dossier_get (sealer->vault, dossier, &epoch, &reg, error)))
            return FALSE;
        }
      if (epoch == 0)
        g_ptr_array_add (fresh, (gpointer) dossier);
      if (reg == REG_NONE)
        g_ptr_array_add (unregistered, (gpointer) dossier);
    }
  if (fresh->len == 0)
    return TRUE;

  if (!relais_vault_begin (sealer->vault, error))
    return FALSE;
  for (guint i = 0; i < fresh->len; i++)
    {
      const char *dossier = g_ptr_array_index (fresh, i);
      guint8 *key = relais_dossier_key_new ();
      gboolean ok;

      ok = key_put (sealer->vault, dossier, 1, key, error) &&
           dossier_put (sealer->vault, dossier, 1, REG_NONE, error) &&
           member_put (sealer->vault, dossier, sealer->identity->user_id,
                       sealer->identity->user->sign_pk, 1, 0, error);
      relais_dossier_key_free (key);
      if (!ok)
        {
          relais_vault_rollback (sealer->vault);
          return FALSE;
        }
    }
  if (!relais_vault_commit (sealer->vault, error))
    {
      relais_vault_rollback (sealer->vault);
      return FALSE;
    }
  return TRUE;
}

static gboolean
current_key (RelaisVault  *vault,
             const char   *dossier,
             guint32      *out_epoch,
             guint8      **out_key,
             GError      **error)
{
  if (!dossier_get (vault, dossier, out_epoch, NULL, error))
    return FALSE;
  *out_key = *out_epoch > 0 ? key_get (vault, dossier, *out_epoch, error) : NULL;
  if (*out_key == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_EPOCH_UNKNOWN,
                     _("This device does not hold the current key of dossier %s."), dossier);
      return FALSE;
    }
  return TRUE;
}

/* Re-seals the envelopes the server retired after a rotation, once the
 * vault holds the newer key; the others wait for it. */
static gboolean
reseal_retired (Sealer  *sealer,
                GError **error)
{
  g_autoptr(GPtrArray) names = relais_spool_list_retired (sealer->spool, error);
  Ring ring;
  gboolean ok = TRUE;

  if (names == NULL)
    return FALSE;
  ring_init (&ring, sealer->vault, sealer->identity);

  for (guint i = 0; ok && i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      g_autoptr(GBytes) data = relais_spool_read_retired (sealer->spool, name, error);
      g_auto(RelaisChangesetHeader) header = { 0 };
      g_autoptr(RelaisChangeset) cs = NULL;
      g_autoptr(GError) local_error = NULL;
      guint32 epoch = 0;
      guint8 *key = NULL;

      if (data == NULL)
        {
          ok = FALSE;
          break;
        }
      if (!relais_changeset_peek (g_bytes_get_data (data, NULL), g_bytes_get_size (data),
                                  &header, &local_error))
        {
          g_message ("A retired change set is unreadable and is dropped: %s", local_error->message);
          ok = relais_spool_remove_retired (sealer->spool, name, error);
          continue;
        }

      if (!dossier_get (sealer->vault, header.dossier, &epoch, NULL, error))
        {
          ok = FALSE;
          break;
        }
      if (epoch <= header.epoch)
        {
          g_autoptr(RelaisDossierKeys) pulled = relais_spool_get_keys (sealer->spool, header.dossier, NULL);

          if (pulled != NULL &&
              (!import_keys_with (sealer->vault, sealer->identity, pulled, error) ||
               !dossier_get (sealer->vault, header.dossier, &epoch, NULL, error)))
            {
              ok = FALSE;
              break;
            }
          if (epoch <= header.epoch)
            {
              /* The next exchange fetches the dossier's keys again. */
              relais_spool_forget_keys (sealer->spool, header.dossier, NULL);
              continue;
            }
        }

      cs = relais_changeset_open (g_bytes_get_data (data, NULL), g_bytes_get_size (data),
                                  NULL, ring_key, ring_author, &ring, &local_error);
      if (cs == NULL)
        {
          if (ring.error != NULL)
            {
              g_propagate_error (error, g_steal_pointer (&ring.error));
              ok = FALSE;
              break;
            }
          if (g_error_matches (local_error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_EPOCH_UNKNOWN))
            continue;
          g_message ("A retired change set does not open and is dropped: %s", local_error->message);
          ok = relais_spool_remove_retired (sealer->spool, name, error);
          continue;
        }

      for (guint j = 0; j < cs->ops->len; j++)
        {
          RelaisOp *op = g_ptr_array_index (cs->ops, j);

          /* The envelope names them; the new one names them again. */
          g_clear_pointer (&op->author, g_free);
        }
      if (!current_key (sealer->vault, header.dossier, &epoch, &key, error))
        {
          ok = FALSE;
          break;
        }
      ok = seal_dossier_ops (sealer, header.dossier, epoch, key, cs->ops, error) &&
           relais_spool_remove_retired (sealer->spool, name, error);
      relais_dossier_key_free (key);
    }

  ring_clear (&ring);
  return ok;
}

static gboolean
set_queued (RelaisVault  *vault,
            const char   *dossier,
            GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "UPDATE sync_dossier SET registered = 1"
                               " WHERE dossier = ?1 AND registered = 0",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  return TRUE;
}

static RelaisOp *
own_op_from_row (sqlite3_stmt *stmt)
{
  RelaisOp *op = g_new0 (RelaisOp, 1);

  op->id = column_dup (stmt, 0);
  op->dossier = column_dup (stmt, 1);
  op->entity = column_dup (stmt, 2);
  op->entity_id = column_dup (stmt, 3);
  op->field = column_dup (stmt, 4);
  op->value = column_dup (stmt, 5);
  op->hlc = (guint64) sqlite3_column_int64 (stmt, 6);
  op->parents = column_dup (stmt, 7);
  op->device = column_dup (stmt, 8);
  /* author stays NULL: the envelope names the user, whatever the local
   * profile calls itself. */
  return op;
}

/* Queues the registrations of @unregistered and seals this device's
 * operations of (@sealed_seq, @max_seq] into the spool. */
static gboolean
seal_range (Sealer     *sealer,
            GPtrArray  *unregistered,
            gint64      sealed_seq,
            gint64      max_seq,
            GError    **error)
{
  g_autoptr(GPtrArray) ops = NULL;
  g_autofree char *current = NULL;
  g_auto(RelaisStmt) stmt = NULL;
  const char *device = relais_vault_get_device_id (sealer->vault);
  int rc;

  for (guint i = 0; i < unregistered->len; i++)
    if (!queue_registration (sealer, g_ptr_array_index (unregistered, i), error))
      return FALSE;

  stmt = relais_oplog_prepare (sealer->vault,
                               "SELECT id, dossier, entity, entity_id, field, value, hlc, parents, device"
                               " FROM op WHERE seq > ?1 AND seq <= ?2 AND device = ?3"
                               " ORDER BY dossier, seq",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, sealed_seq);
  sqlite3_bind_int64 (stmt, 2, max_seq);
  sqlite3_bind_text (stmt, 3, device, -1, SQLITE_STATIC);

  ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  for (;;)
    {
      RelaisOp *op = NULL;

      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        op = own_op_from_row (stmt);
      else if (rc != SQLITE_DONE)
        return db_failed (sealer->vault, rc, error);

      if (current != NULL && (op == NULL || strcmp (op->dossier, current) != 0))
        {
          guint8 *key = NULL;
          guint32 epoch = 0;
          gboolean ok;

          if (!current_key (sealer->vault, current, &epoch, &key, error))
            {
              g_clear_pointer (&op, relais_op_free);
              return FALSE;
            }
          ok = seal_dossier_ops (sealer, current, epoch, key, ops, error);
          relais_dossier_key_free (key);
          if (!ok)
            {
              g_clear_pointer (&op, relais_op_free);
              return FALSE;
            }
          g_ptr_array_set_size (ops, 0);
        }
      if (op == NULL)
        break;
      if (current == NULL || strcmp (op->dossier, current) != 0)
        {
          g_free (current);
          current = g_strdup (op->dossier);
        }
      g_ptr_array_add (ops, op);
    }
  relais_stmt_release (g_steal_pointer (&stmt));

  return TRUE;
}

gboolean
relais_sync_seal (RelaisVault  *vault,
                  RelaisSpool  *spool,
                  guint        *out_sealed,
                  GError      **error)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(GPtrArray) dossiers = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) unregistered = g_ptr_array_new ();
  g_auto(RelaisStmt) stmt = NULL;
  const char *device;
  Sealer sealer = { 0 };
  gint64 sealed_seq = 0;
  gint64 max_seq = 0;
  gboolean ok;
  int rc;

  g_return_val_if_fail (vault != NULL && spool != NULL, FALSE);

  if (out_sealed != NULL)
    *out_sealed = 0;
  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;
  sealer.vault = vault;
  sealer.spool = spool;
  sealer.identity = identity;
  device = relais_vault_get_device_id (vault);

  if (!state_get_int (vault, STATE_SEALED_SEQ, &sealed_seq, error))
    return FALSE;
  stmt = relais_oplog_prepare (vault, "SELECT coalesce (max (seq), 0) FROM op", error);
  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    return db_failed (vault, rc, error);
  max_seq = sqlite3_column_int64 (stmt, 0);
  relais_stmt_release (g_steal_pointer (&stmt));

  /* Keys first, each in its own transaction, so that the scan of the log
   * below runs with no write in the middle of it. */
  stmt = relais_oplog_prepare (vault,
                               "SELECT DISTINCT dossier FROM op"
                               " WHERE seq > ?1 AND seq <= ?2 AND device = ?3",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, sealed_seq);
  sqlite3_bind_int64 (stmt, 2, max_seq);
  sqlite3_bind_text (stmt, 3, device, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (dossiers, column_dup (stmt, 0));
  if (rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  relais_stmt_release (g_steal_pointer (&stmt));

  if (!ensure_dossier_keys (&sealer, dossiers, unregistered, error))
    return FALSE;
  /* One sync of the disk for the whole lot, before sealed_seq says it
   * is there.  After a failure the batch is committed all the same, to
   * close it: what it holds is sealed again next time, which is harmless. */
  relais_spool_begin_batch (spool);
  ok = seal_range (&sealer, unregistered, sealed_seq, max_seq, error);
  if (!relais_spool_commit_batch (spool, ok ? error : NULL))
    ok = FALSE;
  if (!ok)
    return FALSE;

  /* Only now that every envelope and registration is on disk. */
  if (max_seq > sealed_seq)
    {
      if (!relais_vault_begin (vault, error))
        return FALSE;
      ok = state_set_int (vault, STATE_SEALED_SEQ, max_seq, error);
      for (guint i = 0; ok && i < unregistered->len; i++)
        ok = set_queued (vault, g_ptr_array_index (unregistered, i), error);
      if (!ok || !relais_vault_commit (vault, error))
        {
          relais_vault_rollback (vault);
          return FALSE;
        }
    }

  if (!reseal_retired (&sealer, error))
    return FALSE;

  if (out_sealed != NULL)
    *out_sealed = sealer.sealed;
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Applying
 * ------------------------------------------------------------------------ */

const char *
relais_sync_describe_refusal (const GError *reason)
{
  if (reason == NULL || reason->domain != RELAIS_SYNC_ERROR)
    return _("it could not be applied");
  switch ((RelaisSyncError) reason->code)
    {
    case RELAIS_SYNC_ERROR_SIGNATURE:
      return _("the signature does not match its author");
    case RELAIS_SYNC_ERROR_SEAL:
      return _("it does not open with the dossier's key");
    case RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN:
      return _("its author is not in the dossier's team");
    case RELAIS_SYNC_ERROR_DOSSIER_MISMATCH:
      return _("it belongs to another dossier");
    case RELAIS_SYNC_ERROR_TOO_LARGE:
      return _("it is larger than the protocol allows");
    case RELAIS_SYNC_ERROR_EPOCH_UNKNOWN:
      return _("this device does not hold its key");
    case RELAIS_SYNC_ERROR_MALFORMED:
    default:
      return _("it is not well formed");
    }
}

typedef enum {
  OUTCOME_APPLIED,
  OUTCOME_REFUSED,
  OUTCOME_WAITING,
} Outcome;

typedef struct {
  RelaisVault           *vault;
  RelaisSpool           *spool;       /* NULL: no pulled keys to take */
  Identity              *identity;
  Ring                   ring;
  GHashTable            *tried_keys;  /* dossier → GINT_TO_POINTER (spool had keys) */
  RelaisSyncRefusalFunc  refusal_func;
  gpointer               user_data;
  RelaisSyncReport      *report;
  guint                  opened;      /* envelopes applied */
  gint                   position;    /* (atomic) the item being applied */
  GPtrArray             *to_remove;   /* names in spool/in applied and committed, or NULL:
                                       * remove them at once */
  /* Applying pulled pages directly (relais_spool_exchange_direct()): the
   * page's keys by dossier (borrowed), taken before spool/keys; and where
   * envelopes waiting for a key go (GBytes), for the spool to keep in
   * spool/in.  Both NULL otherwise. */
  GHashTable            *page_keys;
  GPtrArray             *keep;
  Unwrapped             *unwrapped;   /* filled by verify_ahead() from page_keys */
} Applier;

static void
applier_init (Applier          *applier,
              RelaisVault      *vault,
              RelaisSpool      *spool,
              Identity         *identity,
              RelaisSyncReport *report,
              RelaisSyncRefusalFunc refusal_func,
              gpointer          user_data)
{
  memset (applier, 0, sizeof *applier);
  applier->vault = vault;
  applier->spool = spool;
  applier->identity = identity;
  ring_init (&applier->ring, vault, identity);
  applier->tried_keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  applier->refusal_func = refusal_func;
  applier->user_data = user_data;
  applier->report = report;
}

static void
applier_clear (Applier *applier)
{
  ring_clear (&applier->ring);
  g_clear_pointer (&applier->tried_keys, g_hash_table_unref);
}

static gboolean
member_known (RelaisVault   *vault,
              const char    *dossier,
              const guint8  *sign_pk,
              gboolean      *out_known,
              GError       **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT 1 FROM sync_member WHERE dossier = ?1 AND sign_pk = ?2",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 2, sign_pk, crypto_sign_PUBLICKEYBYTES, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return db_failed (vault, rc, error);
  *out_known = rc == SQLITE_ROW;
  return TRUE;
}

typedef struct {
  char    *name;    /* in spool/in, or NULL */
  GBytes  *data;
  /* Its dossier's pulled keys, read ahead by verify_ahead(): valid once
   * keys_read (atomic) is set. */
  RelaisDossierKeys *keys;
  GError            *keys_error;
  gint               keys_read;
} Item;

static void
item_free (Item *item)
{
  g_free (item->name);
  g_clear_pointer (&item->data, g_bytes_unref);
  g_clear_pointer (&item->keys, relais_dossier_keys_free);
  g_clear_error (&item->keys_error);
  g_free (item);
}

/* Takes the keys a pull brought for @dossier when the vault lacks the
 * epoch or the author; once per dossier and run.  Sets *@out_had_keys to
 * whether the spool had any for it (then an unknown author is refused:
 * the server sends a dossier's keys with its change sets). */
static gboolean
take_pulled_keys (Applier                     *applier,
                  Item                        *item,
                  const RelaisChangesetHeader *header,
                  gboolean                    *out_had_keys,
                  GError                     **error)
{
  g_autoptr(RelaisDossierKeys) pulled = NULL;
  g_autoptr(GError) local_error = NULL;
  gpointer had;
  gboolean known = FALSE;
  const guint8 *key;

  if (g_hash_table_lookup_extended (applier->tried_keys, header->dossier, NULL, &had))
    {
      *out_had_keys = GPOINTER_TO_INT (had);
      return TRUE;
    }
  *out_had_keys = FALSE;

  key = ring_key (header->dossier, header->epoch, &applier->ring);
  if (applier->ring.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&applier->ring.error));
      return FALSE;
    }
  if (!member_known (applier->vault, header->dossier, header->author_key, &known, error))
    return FALSE;
  if (key != NULL && known)
    return TRUE;

  if (applier->page_keys != NULL
      && g_hash_table_lookup (applier->page_keys, header->dossier) != NULL)
    {
      if (!import_keys_full (applier->vault, applier->identity,
                             g_hash_table_lookup (applier->page_keys, header->dossier),
                             applier->unwrapped, error))
        return FALSE;
      g_hash_table_remove_all (applier->ring.keys);
      *out_had_keys = TRUE;
    }
  else if (applier->spool != NULL && g_atomic_int_get (&item->keys_read))
    {
      pulled = g_steal_pointer (&item->keys);
      local_error = g_steal_pointer (&item->keys_error);
    }
  else if (applier->spool != NULL)
    pulled = relais_spool_get_keys (applier->spool, header->dossier, &local_error);
  if (local_error != NULL)
    g_message ("The pulled keys of a dossier are unreadable: %s", local_error->message);
  if (pulled != NULL)
    {
      if (!import_keys_with (applier->vault, applier->identity, pulled, error))
        return FALSE;
      g_hash_table_remove_all (applier->ring.keys);
      *out_had_keys = TRUE;
    }
  g_hash_table_insert (applier->tried_keys, g_strdup (header->dossier),
                       GINT_TO_POINTER (*out_had_keys));
  return TRUE;
}

/* Opens @data and applies it inside the open transaction, all of it or
 * nothing.  FALSE only for a failure of the vault, which stops
 * everything. */
static gboolean
apply_one (Applier   *applier,
           Item      *item,
           Outcome   *out_outcome,
           char     **out_dossier,
           GError   **out_reason,
           guint     *out_new,
           GError   **error)
{
  g_auto(RelaisChangesetHeader) header = { 0 };
  g_autoptr(RelaisChangeset) cs = NULL;
  g_autoptr(GError) reason = NULL;
  g_autoptr(GError) op_error = NULL;
  const guint8 *bytes = g_bytes_get_data (item->data, NULL);
  gsize len = g_bytes_get_size (item->data);
  gboolean had_keys = FALSE;
  guint n_new = 0;

  *out_new = 0;
  *out_dossier = NULL;
  if (!relais_changeset_peek (bytes, len, &header, &reason))
    {
      *out_outcome = OUTCOME_REFUSED;
      *out_reason = g_steal_pointer (&reason);
      return TRUE;
    }
  *out_dossier = g_strdup (header.dossier);

  if (!take_pulled_keys (applier, item, &header, &had_keys, error))
    return FALSE;

  cs = relais_changeset_open (bytes, len, NULL, ring_key, ring_author, &applier->ring, &reason);
  if (applier->ring.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&applier->ring.error));
      return FALSE;
    }
  if (cs == NULL)
    {
      if (g_error_matches (reason, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_EPOCH_UNKNOWN) ||
          (g_error_matches (reason, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN) && !had_keys))
        {
          /* Not refused: a key or a member this device has not heard of
           * yet.  The next exchange fetches the dossier's keys again. */
          if (applier->spool != NULL)
            relais_spool_forget_keys (applier->spool, header.dossier, NULL);
          *out_outcome = OUTCOME_WAITING;
          return TRUE;
        }
      *out_outcome = OUTCOME_REFUSED;
      *out_reason = g_steal_pointer (&reason);
      return TRUE;
    }

  /* A former member's key only vouches for what was sealed while they
   * were in the team. */
  if (applier->ring.author_until != 0 && cs->header.epoch > applier->ring.author_until)
    {
      *out_outcome = OUTCOME_REFUSED;
      g_set_error_literal (out_reason, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN,
                           "The change set is signed by a former member.");
      return TRUE;
    }

  /* No savepoint: the batch checks every op before it stores any, and
   * any other failure rolls the whole transaction back (apply_items()). */
  if (!relais_oplog_apply_batch (applier->vault, cs->ops, &n_new, &op_error))
    {
      if (g_error_matches (op_error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID))
        {
          /* Sealed and signed by a member, yet not operations the merge
           * can take: the whole change set is refused. */
          *out_outcome = OUTCOME_REFUSED;
          g_set_error_literal (out_reason, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                               op_error->message);
          return TRUE;
        }
      g_propagate_error (error, g_steal_pointer (&op_error));
      return FALSE;
    }

  *out_new = n_new;
  *out_outcome = OUTCOME_APPLIED;
  return TRUE;
}


static void
refuse (Applier      *applier,
        const char   *dossier,
        const GError *reason)
{
  applier->report->rejected++;
  if (applier->refusal_func != NULL)
    applier->refusal_func (dossier != NULL ? dossier : "?", reason, applier->user_data);
  else
    g_message ("Refused a change set of dossier %s: %s", dossier != NULL ? dossier : "?",
               reason != NULL ? reason->message : "");
}

/* Applies @items in batches; removes from spool/in (when named) those
 * applied or refused, after the batch that decided them is committed. */
static gboolean
apply_items (Applier    *applier,
             GPtrArray  *items,
             GError    **error)
{
  guint i = 0;

  while (i < items->len)
    {
      g_autoptr(GPtrArray) done = g_ptr_array_new ();
      guint ops = 0;

      if (!relais_vault_begin (applier->vault, error))
        return FALSE;
      /* New people enter the search index together, in its order, before
       * the commit (relais-search.h). */
      relais_search_defer (applier->vault, TRUE);
      for (; i < items->len && done->len < APPLY_BATCH_ENVELOPES && ops < APPLY_BATCH_OPS; i++)
        {
          Item *item = g_ptr_array_index (items, i);
          g_autofree char *dossier = NULL;
          g_autoptr(GError) reason = NULL;
          Outcome outcome = OUTCOME_WAITING;
          guint n_new = 0;

          g_atomic_int_set (&applier->position, (gint) i);
          if (!apply_one (applier, item, &outcome, &dossier, &reason, &n_new, error))
            {
              relais_search_defer (applier->vault, FALSE);
              relais_vault_rollback (applier->vault);
              return FALSE;
            }
          switch (outcome)
            {
            case OUTCOME_APPLIED:
              applier->report->applied += n_new;
              applier->opened++;
              ops += MAX (n_new, 1);
              g_ptr_array_add (done, item);
              break;
            case OUTCOME_REFUSED:
              refuse (applier, dossier, reason);
              g_ptr_array_add (done, item);
              break;
            case OUTCOME_WAITING:
              applier->report->waiting++;
              if (applier->keep != NULL)
                g_ptr_array_add (applier->keep, g_bytes_ref (item->data));
              break;
            }
        }
      if (!relais_search_index_deferred (applier->vault, error))
        {
          relais_vault_rollback (applier->vault);
          return FALSE;
        }
      if (!relais_vault_commit (applier->vault, error))
        return FALSE;

      for (guint j = 0; j < done->len; j++)
        {
          Item *item = g_ptr_array_index (done, j);

          if (item->name == NULL || applier->spool == NULL)
            continue;
          if (applier->to_remove != NULL)
            g_ptr_array_add (applier->to_remove, g_strdup (item->name));
          else if (!relais_spool_remove_in (applier->spool, item->name, error))
            return FALSE;
        }
    }
  return TRUE;
}

/* Checking signatures on a second core while this thread applies
 * (relais-changeset-private.h): a tenth of a large pull.  The vault is
 * only ever touched by the applying thread. */
typedef struct {
  GPtrArray *items;
  Applier   *applier;
  gint       stop;       /* (atomic) */
} Ahead;

#define AHEAD_MIN_ITEMS 8

/* Unwraps ahead the keys @page_keys holds for @dossier, once per run of
 * verify_ahead(): the applier imports them when the vault lacks the
 * dossier (every dossier of a first pull). */
static void
unwrap_ahead (Applier     *applier,
              const char  *dossier,
              GHashTable  *seen)
{
  const RelaisDossierKeys *keys = g_hash_table_lookup (applier->page_keys, dossier);

  if (keys == NULL || keys->keys == NULL || g_hash_table_contains (seen, dossier))
    return;
  g_hash_table_add (seen, g_strdup (dossier));
  for (guint i = 0; i < keys->keys->len; i++)
    {
      const RelaisWrappedKey *wrapped = g_ptr_array_index (keys->keys, i);
      gsize len = 0;
      const guint8 *data;
      guint8 *key;

      if (wrapped->wrapped_key == NULL)
        continue;
      data = g_bytes_get_data (wrapped->wrapped_key, &len);
      key = relais_dossier_key_unwrap (data, len, keys->dossier_id, wrapped->epoch,
                                       applier->identity->user->box_pk,
                                       applier->identity->user->box_sk, NULL);
      /* One that did not open is left to the applier, to say so. */
      if (key == NULL)
        continue;
      g_mutex_lock (&applier->unwrapped->mutex);
      if (g_hash_table_contains (applier->unwrapped->keys, wrapped))
        relais_dossier_key_free (key);
      else
        g_hash_table_insert (applier->unwrapped->keys, (gpointer) wrapped, key);
      g_mutex_unlock (&applier->unwrapped->mutex);
    }
}

static gpointer
verify_ahead (gpointer data)
{
  Ahead *ahead = data;
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < ahead->items->len && !g_atomic_int_get (&ahead->stop); i++)
    {
      Item *item = g_ptr_array_index (ahead->items, i);
      gint applying = g_atomic_int_get (&ahead->applier->position);

      /* Behind the applier: it checked those itself. */
      if (applying >= 0 && i <= (guint) applying)
        {
          i = (guint) applying;
          continue;
        }
      const guint8 *bytes = g_bytes_get_data (item->data, NULL);
      gsize len = g_bytes_get_size (item->data);
      g_auto(RelaisChangesetHeader) header = { 0 };

      relais_changeset_verify_ahead (bytes, len);
      /* The dossier's keys, which its first change set makes the applier
       * read (a file and its JSON). */
      if (ahead->applier->unwrapped != NULL && relais_changeset_peek (bytes, len, &header, NULL))
        unwrap_ahead (ahead->applier, header.dossier, seen);
      else if (ahead->applier->spool != NULL && ahead->applier->page_keys == NULL
               && relais_changeset_peek (bytes, len, &header, NULL))
        {
          item->keys = relais_spool_get_keys (ahead->applier->spool, header.dossier,
                                              &item->keys_error);
          g_atomic_int_set (&item->keys_read, 1);
        }
    }
  return NULL;
}

static gboolean
apply_items_ahead (Applier    *applier,
                   GPtrArray  *items,
                   GError    **error)
{
  Ahead ahead = { items, applier, 0 };
  GThread *thread = NULL;
  gboolean ok;

  g_atomic_int_set (&applier->position, -1);
  if (items->len >= AHEAD_MIN_ITEMS)
    thread = g_thread_try_new ("relais-verify", verify_ahead, &ahead, NULL);
  ok = apply_items (applier, items, error);
  if (thread != NULL)
    {
      g_atomic_int_set (&ahead.stop, 1);
      g_thread_join (thread);
    }
  return ok;
}

/* Removing the files of a committed batch from spool/in (an unlink each)
 * while the next batch applies. */
typedef struct {
  RelaisSpool *spool;
  GPtrArray   *names;
  GError      *error;
} Removal;

static gpointer
remove_applied (gpointer data)
{
  Removal *removal = data;

  for (guint i = 0; i < removal->names->len; i++)
    if (!relais_spool_remove_in (removal->spool, g_ptr_array_index (removal->names, i),
                                 &removal->error))
      break;
  return NULL;
}

/* Waits for the removal under way, if any; FALSE with its error. */
static gboolean
removal_finish (GThread   **thread,
                Removal   **removal,
                GError    **error)
{
  gboolean ok = TRUE;

  if (*thread != NULL)
    g_thread_join (g_steal_pointer (thread));
  if (*removal != NULL)
    {
      if ((*removal)->error != NULL)
        {
          g_propagate_error (error, (*removal)->error);
          ok = FALSE;
        }
      g_ptr_array_unref ((*removal)->names);
      g_clear_pointer (removal, g_free);
    }
  return ok;
}

/* Starts removing what the applier set aside (or removes it here when no
 * thread can be had). */
static gboolean
removal_start (Applier    *applier,
               GThread   **thread,
               Removal   **removal,
               GError    **error)
{
  if (applier->to_remove->len == 0)
    return TRUE;
  *removal = g_new0 (Removal, 1);
  (*removal)->spool = applier->spool;
  (*removal)->names = g_steal_pointer (&applier->to_remove);
  applier->to_remove = g_ptr_array_new_with_free_func (g_free);
  *thread = g_thread_try_new ("relais-remove", remove_applied, *removal, NULL);
  if (*thread == NULL)
    remove_applied (*removal);
  return TRUE;
}

static gboolean
count_conflicts (RelaisVault       *vault,
                 RelaisSyncReport  *report,
                 GError           **error)
{
  g_autoptr(GPtrArray) conflicts = relais_oplog_conflicts (vault, NULL, error);

  if (conflicts == NULL)
    return FALSE;
  report->conflicts = conflicts->len;
  return TRUE;
}

/* Sets the page cache to APPLY_CACHE_KIB for a bulk apply; *@out_kib: the
 * size to give back to cache_restore() (0: nothing to restore). */
static gboolean
cache_grow (RelaisVault  *vault,
            gint64       *out_kib,
            GError      **error)
{
  g_auto(RelaisStmt) stmt = relais_oplog_prepare (vault, "PRAGMA cache_size", error);
  g_autofree char *sql = NULL;
  gint64 pages;

  *out_kib = 0;
  if (stmt == NULL)
    return FALSE;
  if (sqlite3_step (stmt) != SQLITE_ROW)
    return TRUE;   /* keep the cache as it is */
  pages = sqlite3_column_int64 (stmt, 0);
  relais_stmt_release (g_steal_pointer (&stmt));
  /* Negative: KiB; positive: pages (of 4 KiB in a vault). */
  *out_kib = pages < 0 ? -pages : pages * 4;
  if (*out_kib >= APPLY_CACHE_KIB)
    {
      *out_kib = 0;
      return TRUE;
    }
  sql = g_strdup_printf ("PRAGMA cache_size = -%d; PRAGMA wal_autocheckpoint = %d",
                         APPLY_CACHE_KIB, APPLY_CHECKPOINT_PAGES);
  return relais_vault_exec (vault, sql, error);
}

static void
cache_restore (RelaisVault *vault,
               gint64       kib)
{
  g_autofree char *sql = NULL;

  if (kib <= 0)
    return;
  /* SQLite's default, which the vault keeps; and the checkpoint the
   * batches put off, paid here rather than by whoever commits next. */
  sql = g_strdup_printf ("PRAGMA cache_size = -%" G_GINT64_FORMAT "; PRAGMA wal_autocheckpoint = 1000;"
                         " PRAGMA wal_checkpoint (PASSIVE)", kib);
  relais_vault_exec (vault, sql, NULL);
}

gboolean
relais_sync_apply_full (RelaisVault            *vault,
                        RelaisSpool            *spool,
                        RelaisSyncReport       *report,
                        RelaisSyncRefusalFunc   refusal_func,
                        gpointer                user_data,
                        GError                **error)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(GPtrArray) names = NULL;
  RelaisSyncReport local_report = { 0 };
  Applier applier;
  gboolean ok = TRUE;
  guint next = 0;
  gint64 cache_kib = 0;
  GThread *removing = NULL;
  Removal *removal = NULL;

  g_return_val_if_fail (vault != NULL && spool != NULL, FALSE);

  if (report == NULL)
    report = &local_report;
  memset (report, 0, sizeof *report);
  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;
  names = relais_spool_list_in (spool, error);
  if (names == NULL)
    return FALSE;

  if (names->len > 0 && !cache_grow (vault, &cache_kib, error))
    return FALSE;
  applier_init (&applier, vault, spool, identity, report, refusal_func, user_data);
  applier.to_remove = g_ptr_array_new_with_free_func (g_free);
  /* Read a batch's worth of files at a time: a fresh laptop's first pull
   * may be gigabytes. */
  while (ok && next < names->len)
    {
      g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func ((GDestroyNotify) item_free);

      gsize bytes = 0;

      for (; next < names->len && items->len < APPLY_BATCH_ENVELOPES && bytes < APPLY_READ_BYTES; next++)
        {
          const char *name = g_ptr_array_index (names, next);
          GBytes *data = relais_spool_read_in (spool, name, error);
          Item *item;

          if (data == NULL)
            {
              ok = FALSE;
              break;
            }
          bytes += g_bytes_get_size (data);
          item = g_new0 (Item, 1);
          item->name = g_strdup (name);
          item->data = data;
          g_ptr_array_add (items, item);
        }
      if (ok)
        ok = apply_items_ahead (&applier, items, error);
      if (ok)
        ok = removal_finish (&removing, &removal, error) &&
             removal_start (&applier, &removing, &removal, error);
    }
  if (!removal_finish (&removing, &removal, ok ? error : NULL))
    ok = FALSE;
  g_clear_pointer (&applier.to_remove, g_ptr_array_unref);
  applier_clear (&applier);
  relais_changeset_forget_verified ();
  cache_restore (vault, cache_kib);

  return ok && count_conflicts (vault, report, error);
}

gboolean
relais_sync_apply (RelaisVault       *vault,
                   RelaisSpool       *spool,
                   RelaisSyncReport  *report,
                   GError           **error)
{
  return relais_sync_apply_full (vault, spool, report, NULL, NULL, error);
}

/* ------------------------------------------------------------------------
 * Running a sync
 * ------------------------------------------------------------------------ */

/* Every registration queued before a complete exchange has reached the
 * server. */
static gboolean
mark_registered (RelaisVault  *vault,
                 GError      **error)
{
  return relais_vault_exec (vault, "UPDATE sync_dossier SET registered = 2 WHERE registered = 1", error);
}

/* The vault's spool, its identity written again from the vault's when it
 * lacks one (a spool deleted by hand, or a crash during enrolment after
 * the vault's commit): the vault is the authority. */
static RelaisSpool *
open_spool (RelaisVault  *vault,
            GError      **error)
{
  g_autoptr(RelaisSpool) spool = relais_spool_open (relais_vault_get_dir (vault), error);
  g_autoptr(Identity) identity = NULL;
  RelaisSpoolIdentity sid = { 0 };

  if (spool == NULL)
    return NULL;
  if (relais_spool_is_enrolled (spool))
    return g_steal_pointer (&spool);
  identity = identity_load (vault, error);
  if (identity == NULL)
    return NULL;
  sid.server = identity->server;
  sid.cacert = identity->cacert;
  sid.user_id = identity->user_id;
  sid.org = identity->org;
  sid.device_id = identity->device_id;
  if (!relais_spool_set_identity (spool, &sid, identity->device_sk, error))
    return NULL;
  return g_steal_pointer (&spool);
}

/* Retired envelopes wait for the dossier's newer key, which pulls bring
 * only with a change set of that dossier: ask the server for it. */
static gboolean
fetch_keys_for_retired (RelaisVault   *vault,
                        RelaisSpool   *spool,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GPtrArray) names = relais_spool_list_retired (spool, error);
  g_autoptr(GHashTable) asked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(Identity) identity = NULL;

  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      g_autoptr(GBytes) data = relais_spool_read_retired (spool, name, NULL);
      g_auto(RelaisChangesetHeader) header = { 0 };
      g_autoptr(RelaisDossierKeys) keys = NULL;
      g_autoptr(GError) local_error = NULL;
      guint32 epoch = 0;

      if (data == NULL ||
          !relais_changeset_peek (g_bytes_get_data (data, NULL), g_bytes_get_size (data), &header, NULL) ||
          g_hash_table_contains (asked, header.dossier))
        continue;
      g_hash_table_add (asked, g_strdup (header.dossier));
      if (!dossier_get (vault, header.dossier, &epoch, NULL, error))
        return FALSE;
      if (epoch > header.epoch)
        continue;

      if (client == NULL)
        {
          identity = identity_load (vault, error);
          if (identity == NULL)
            return FALSE;
          client = relais_spool_make_client (spool, error);
          if (client == NULL)
            return FALSE;
        }
      keys = relais_client_dossier_keys (client, header.dossier, cancellable, &local_error);
      if (keys == NULL)
        {
          if (g_error_matches (local_error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_REVOKED))
            {
              g_propagate_error (error, g_steal_pointer (&local_error));
              return FALSE;
            }
          /* Tried again at the next sync. */
          g_debug ("Could not fetch the keys of a dossier: %s", local_error->message);
          continue;
        }
      if (!import_keys_with (vault, identity, keys, error))
        return FALSE;
    }
  return TRUE;
}

/* Applying pulled pages as they arrive (relais_spool_exchange_direct()),
 * rather than through files in spool/in: what `relaisctl sync` does with
 * the vault unlocked.  The pages fetched by then (up to about 4,000
 * envelopes: one commit) are applied and committed before the spool saves
 * the last one's cursor; a crash in between only pulls them again, which
 * then apply as nothing (operations are known by their ids). */
typedef struct {
  Applier           applier;
  RelaisSyncReport  report;
  gboolean          vault_failed;   /* the error is the vault's, not the network's */
} Direct;

static gboolean
apply_pages (GPtrArray  *pages,
             GPtrArray  *keep,
             gpointer    user_data,
             GError    **error)
{
  Direct *direct = user_data;
  Applier *applier = &direct->applier;
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func ((GDestroyNotify) item_free);
  g_autoptr(GHashTable) page_keys = g_hash_table_new (g_str_hash, g_str_equal);
  Unwrapped unwrapped = { 0 };
  gboolean ok;

  for (guint p = 0; p < pages->len; p++)
    {
      RelaisPullPage *page = g_ptr_array_index (pages, p);

      /* A later page's keys are the newer (a rotation, a new member). */
      for (guint i = 0; i < page->keys->len; i++)
        {
          RelaisDossierKeys *keys = g_ptr_array_index (page->keys, i);

          g_hash_table_insert (page_keys, keys->dossier_id, keys);
        }
      for (guint i = 0; i < page->changesets->len; i++)
        {
          Item *item = g_new0 (Item, 1);

          item->data = g_bytes_ref (g_ptr_array_index (page->changesets, i));
          g_ptr_array_add (items, item);
        }
    }
  /* Keys taken for an earlier page may have been replaced since. */
  g_hash_table_remove_all (applier->tried_keys);
  applier->page_keys = page_keys;
  applier->keep = keep;
  applier->unwrapped = &unwrapped;
  g_mutex_init (&unwrapped.mutex);
  unwrapped.keys = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                          (GDestroyNotify) relais_dossier_key_free);
  ok = apply_items_ahead (applier, items, error);
  /* The thread that filled it has ended. */
  g_hash_table_unref (unwrapped.keys);
  g_mutex_clear (&unwrapped.mutex);
  applier->page_keys = NULL;
  applier->keep = NULL;
  applier->unwrapped = NULL;
  if (!ok)
    direct->vault_failed = TRUE;
  return ok;
}

gboolean
relais_sync_run_full (RelaisVault            *vault,
                      RelaisSyncReport       *report,
                      RelaisSyncRefusalFunc   refusal_func,
                      gpointer                user_data,
                      GCancellable           *cancellable,
                      GError                **error)
{
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(GError) exchange_error = NULL;
  RelaisSyncReport local_report = { 0 };
  RelaisExchangeReport xr = { 0 };
  RelaisSyncReport first = { 0 };
  guint sealed = 0;
  gboolean complete;

  g_return_val_if_fail (vault != NULL, FALSE);

  if (report == NULL)
    report = &local_report;
  memset (report, 0, sizeof *report);

  if (!relais_sync_is_enrolled (vault))
    {
      set_not_enrolled (error);
      return FALSE;
    }
  spool = open_spool (vault, error);
  if (spool == NULL)
    return FALSE;

  if (!relais_sync_seal (vault, spool, &sealed, error))
    return FALSE;

  /* Pulled envelopes a background sync left in spool/in come first, as
   * they would in pull order. */
  {
    g_autoptr(GPtrArray) names = relais_spool_list_in (spool, error);

    if (names == NULL)
      return FALSE;
    if (names->len > 0)
      {
        RelaisSyncReport before = { 0 };

        if (!relais_sync_apply_full (vault, spool, &before, refusal_func, user_data, error))
          return FALSE;
        report->applied += before.applied;
        report->rejected += before.rejected;
      }
  }

  {
    g_autoptr(Identity) identity = identity_load (vault, error);
    Direct direct = { 0 };
    gint64 cache_kib = 0;

    if (identity == NULL)
      return FALSE;
    if (!cache_grow (vault, &cache_kib, error))
      return FALSE;
    applier_init (&direct.applier, vault, spool, identity, &direct.report, refusal_func, user_data);
    complete = relais_spool_exchange_direct (spool, &xr, apply_pages, &direct, cancellable,
                                             &exchange_error);
    applier_clear (&direct.applier);
    relais_changeset_forget_verified ();
    cache_restore (vault, cache_kib);
    report->pushed += xr.pushed;
    report->pulled += xr.pulled;
    report->applied += direct.report.applied;
    report->rejected += direct.report.rejected;
    if (!complete && (direct.vault_failed
                      || g_error_matches (exchange_error, RELAIS_CLIENT_ERROR,
                                          RELAIS_CLIENT_ERROR_REVOKED)))
      {
        g_propagate_error (error, g_steal_pointer (&exchange_error));
        return FALSE;
      }
  }
  if (complete && !mark_registered (vault, error))
    return FALSE;

  /* What had to wait for a key (and what arrived before a cut) is
   * applied all the same. */
  if (!relais_sync_apply_full (vault, spool, &first, refusal_func, user_data, error))
    return FALSE;
  report->applied += first.applied;
  report->rejected += first.rejected;
  report->waiting = first.waiting;
  report->conflicts = first.conflicts;

  if (!complete)
    {
      g_propagate_error (error, g_steal_pointer (&exchange_error));
      return FALSE;
    }

  /* Keys that arrived may let retired change sets be sealed again, and
   * envelopes waiting for a key had theirs forgotten so that this second
   * exchange fetches them. */
  if (!fetch_keys_for_retired (vault, spool, cancellable, error))
    return FALSE;
  if (!relais_sync_seal (vault, spool, &sealed, error))
    return FALSE;
  if (sealed > 0 || first.waiting > 0)
    {
      RelaisSyncReport second = { 0 };

      memset (&xr, 0, sizeof xr);
      complete = relais_spool_exchange (spool, &xr, cancellable, error);
      report->pushed += xr.pushed;
      report->pulled += xr.pulled;
      if (complete && !mark_registered (vault, error))
        return FALSE;
      if (!relais_sync_apply_full (vault, spool, &second, refusal_func, user_data,
                                   complete ? error : NULL))
        return FALSE;
      report->applied += second.applied;
      report->rejected += second.rejected;
      report->waiting = second.waiting;
      report->conflicts = second.conflicts;
      if (!complete)
        return FALSE;
    }
  return TRUE;
}

gboolean
relais_sync_run (RelaisVault       *vault,
                 RelaisSyncReport  *report,
                 GCancellable      *cancellable,
                 GError           **error)
{
  return relais_sync_run_full (vault, report, NULL, NULL, cancellable, error);
}

/* ------------------------------------------------------------------------
 * Enrolment
 * ------------------------------------------------------------------------ */

static void
enrol_kdf_params (RelaisKdfParams *params)
{
  /* As relaisctl init does for test suites: never for real data. */
  if (g_strcmp0 (g_getenv ("RELAIS_TEST_FAST_KDF"), "1") == 0)
    relais_kdf_params_insecure_for_tests (params);
  else
    relais_kdf_params_default (params);
}

gboolean
relais_sync_enroll (RelaisVault   *vault,
                    const char    *server_url,
                    const char    *cacert,
                    const char    *code,
                    const char    *passphrase,
                    const char    *device_name,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(RelaisDeviceKey) device = NULL;
  g_autoptr(RelaisEnrolment) enrolment = NULL;
  g_autoptr(RelaisUserKeys) user = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autofree char *cacert_path = NULL;
  RelaisSyncIdentity identity = { 0 };

  g_return_val_if_fail (vault != NULL && server_url != NULL && code != NULL, FALSE);
  g_return_val_if_fail (passphrase != NULL, FALSE);

  if (relais_sync_is_enrolled (vault))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("This vault is enrolled already."));
      return FALSE;
    }
  /* The spool keeps the path for background syncs run from elsewhere. */
  if (cacert != NULL)
    {
      if (!g_file_test (cacert, G_FILE_TEST_IS_REGULAR))
        {
          g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                       _("The certificate file %s does not exist."), cacert);
          return FALSE;
        }
      cacert_path = g_canonicalize_filename (cacert, NULL);
    }

  client = relais_client_new (server_url, cacert_path, error);
  if (client == NULL)
    return FALSE;
  spool = relais_spool_open (relais_vault_get_dir (vault), error);
  if (spool == NULL)
    return FALSE;

  device = relais_device_key_generate ();
  enrolment = relais_client_enrol (client, code,
                                   device_name != NULL ? device_name : g_get_host_name (),
                                   device->pk, cancellable, error);
  if (enrolment == NULL)
    return FALSE;
  relais_client_set_device (client, enrolment->device_id, device->sk);

  if (enrolment->wrapped_user_keys != NULL)
    {
      g_autoptr(GError) local_error = NULL;
      gsize len = 0;
      const guint8 *data = g_bytes_get_data (enrolment->wrapped_user_keys, &len);

      user = relais_user_keys_unwrap (data, len, passphrase, &local_error);
      if (user == NULL)
        {
          if (g_error_matches (local_error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_BAD_PASSPHRASE))
            g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_BAD_PASSPHRASE,
                                 _("The passphrase does not open your keys on the server: use the "
                                   "passphrase of the first device you enrolled (this code is now "
                                   "used; ask for a new one)."));
          else
            g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }
  else
    {
      g_autoptr(GBytes) wrapped = NULL;
      RelaisKdfParams params;

      user = relais_user_keys_generate ();
      enrol_kdf_params (&params);
      wrapped = relais_user_keys_wrap (user, passphrase, &params, error);
      if (wrapped == NULL)
        return FALSE;
      if (!relais_client_put_keys (client, user->box_pk, user->sign_pk, wrapped, cancellable, error))
        return FALSE;
    }

  identity.server = server_url;
  identity.cacert = cacert_path;
  identity.user_id = enrolment->user_id;
  identity.org = enrolment->org;
  identity.device_id = enrolment->device_id;
  identity.admin = enrolment->admin;
  identity.recovery_pk = enrolment->has_recovery_key ? enrolment->recovery_key : NULL;
  return relais_sync_set_identity (vault, spool, &identity, user, device->sk, error);
}

gboolean
relais_sync_rewrap_user_keys (RelaisVault   *vault,
                              const char    *passphrase,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GBytes) wrapped = NULL;
  RelaisKdfParams params;

  g_return_val_if_fail (vault != NULL && passphrase != NULL, FALSE);

  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;
  spool = open_spool (vault, error);
  if (spool == NULL)
    return FALSE;
  client = relais_spool_make_client (spool, error);
  if (client == NULL)
    return FALSE;
  enrol_kdf_params (&params);
  wrapped = relais_user_keys_wrap (identity->user, passphrase, &params, error);
  if (wrapped == NULL)
    return FALSE;
  /* The server takes the same public keys again (PROTOCOL.md §5.2). */
  return relais_client_put_keys (client, identity->user->box_pk, identity->user->sign_pk,
                                 wrapped, cancellable, error);
}

/* ------------------------------------------------------------------------
 * Sharing
 * ------------------------------------------------------------------------ */

/* The directory's entry for @user: its id, or a name it has once. */
static RelaisDirectoryUser *
resolve_user (GPtrArray   *users,
              const char  *user,
              GError     **error)
{
  RelaisDirectoryUser *found = NULL;
  guint by_name = 0;

  for (guint i = 0; i < users->len; i++)
    {
      RelaisDirectoryUser *u = g_ptr_array_index (users, i);

      if (g_strcmp0 (u->user_id, user) == 0)
        {
          found = u;
          by_name = 1;
          break;
        }
      if (g_strcmp0 (u->name, user) == 0)
        {
          found = u;
          by_name++;
        }
    }
  if (found == NULL)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                   _("No user %s in the directory."), user);
      return NULL;
    }
  if (by_name > 1)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                   _("Several users are named %s: give the user id instead."), user);
      return NULL;
    }
  if (!found->has_keys)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                   _("%s has not enrolled a device yet: the dossier cannot be shared with them before."),
                   user);
      return NULL;
    }
  return found;
}

static GPtrArray *
fetch_directory (RelaisClient  *client,
                 GCancellable  *cancellable,
                 GError       **error)
{
  return relais_client_users (client, NULL, cancellable, error);
}

/* The dossier is on the server with its key held here: registered first
 * (seal and exchange) when it was made here and not yet sent. */
static gboolean
ensure_registered (RelaisVault   *vault,
                   RelaisSpool   *spool,
                   Identity      *identity,
                   const char    *dossier,
                   GCancellable  *cancellable,
                   GError       **error)
{
  guint32 epoch = 0;
  RegState reg = REG_NONE;

  if (!dossier_get (vault, dossier, &epoch, &reg, error))
    return FALSE;
  if (epoch == 0)
    {
      g_autoptr(RelaisDossierKeys) pulled = relais_spool_get_keys (spool, dossier, NULL);

      if (pulled != NULL &&
          (!import_keys_with (vault, identity, pulled, error) ||
           !dossier_get (vault, dossier, &epoch, &reg, error)))
        return FALSE;
    }
  if (epoch == 0 || reg != REG_KNOWN)
    {
      RelaisExchangeReport xr = { 0 };

      if (!relais_sync_seal (vault, spool, NULL, error))
        return FALSE;
      if (!dossier_get (vault, dossier, &epoch, &reg, error))
        return FALSE;
      if (epoch == 0)
        {
          g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND,
                       _("No dossier %s in this vault."), dossier);
          return FALSE;
        }
      if (reg != REG_KNOWN)
        {
          if (!relais_spool_exchange (spool, &xr, cancellable, error))
            return FALSE;
          if (!mark_registered (vault, error))
            return FALSE;
        }
    }
  return TRUE;
}

gboolean
relais_sync_share (RelaisVault   *vault,
                   const char    *dossier_id,
                   const char    *user,
                   GCancellable  *cancellable,
                   GError       **error)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GPtrArray) users = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  RelaisDirectoryUser *member;
  guint32 epoch = 0;

  g_return_val_if_fail (vault != NULL && dossier_id != NULL && user != NULL, FALSE);

  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;
  spool = open_spool (vault, error);
  if (spool == NULL)
    return FALSE;
  client = relais_spool_make_client (spool, error);
  if (client == NULL)
    return FALSE;
  users = fetch_directory (client, cancellable, error);
  if (users == NULL)
    return FALSE;
  member = resolve_user (users, user, error);
  if (member == NULL)
    return FALSE;

  if (!ensure_registered (vault, spool, identity, dossier_id, cancellable, error))
    return FALSE;
  keys = relais_sync_wrap_keys (vault, dossier_id, member->user_id, member->box_pk, error);
  if (keys == NULL)
    return FALSE;
  if (!relais_client_dossier_share (client, dossier_id, member->user_id, keys, cancellable, error))
    return FALSE;

  if (!dossier_get (vault, dossier_id, &epoch, NULL, error))
    return FALSE;
  return member_put (vault, dossier_id, member->user_id, member->sign_pk, epoch, 0, error);
}

gboolean
relais_sync_unshare (RelaisVault   *vault,
                     const char    *dossier_id,
                     const char    *user,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GPtrArray) users = NULL;
  g_autoptr(RelaisDossierKeys) current = NULL;
  g_autoptr(GPtrArray) wraps = NULL;
  g_autoptr(GBytes) recovery = NULL;
  RelaisDirectoryUser *leaving;
  gboolean was_member = FALSE;
  guint32 epoch = 0;
  guint8 *key;
  gboolean ok;

  g_return_val_if_fail (vault != NULL && dossier_id != NULL && user != NULL, FALSE);

  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;
  spool = open_spool (vault, error);
  if (spool == NULL)
    return FALSE;
  client = relais_spool_make_client (spool, error);
  if (client == NULL)
    return FALSE;
  users = fetch_directory (client, cancellable, error);
  if (users == NULL)
    return FALSE;
  leaving = resolve_user (users, user, error);
  if (leaving == NULL)
    return FALSE;
  if (g_strcmp0 (leaving->user_id, identity->user_id) == 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("You cannot remove yourself from a dossier's team."));
      return FALSE;
    }

  if (!ensure_registered (vault, spool, identity, dossier_id, cancellable, error))
    return FALSE;
  /* The team and epoch as the server has them now, not as this vault last
   * heard: a rotation must reach every remaining member. */
  current = relais_client_dossier_keys (client, dossier_id, cancellable, error);
  if (current == NULL)
    return FALSE;
  if (!import_keys_with (vault, identity, current, error))
    return FALSE;
  epoch = MAX (current->epoch, 1);

  wraps = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  key = relais_dossier_key_new ();
  for (guint i = 0; i < current->members->len; i++)
    {
      const RelaisDossierMember *m = g_ptr_array_index (current->members, i);
      const RelaisDirectoryUser *found = NULL;
      g_autoptr(GBytes) blob = NULL;

      if (m->until_epoch != 0 || m->user_id == NULL)
        continue;
      if (g_strcmp0 (m->user_id, leaving->user_id) == 0)
        {
          was_member = TRUE;
          continue;
        }
      for (guint j = 0; j < users->len && found == NULL; j++)
        {
          const RelaisDirectoryUser *u = g_ptr_array_index (users, j);

          if (g_strcmp0 (u->user_id, m->user_id) == 0)
            found = u;
        }
      if (found == NULL || !found->has_keys)
        {
          relais_dossier_key_free (key);
          g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_FAILED,
                       _("Member %s of the dossier is missing from the directory: the key cannot be "
                         "renewed for them."), m->user_id);
          return FALSE;
        }
      blob = relais_dossier_key_wrap (key, dossier_id, epoch + 1, found->box_pk);
      g_ptr_array_add (wraps, relais_wrapped_key_new (m->user_id, epoch + 1, blob));
    }
  if (!was_member)
    {
      relais_dossier_key_free (key);
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                   _("%s is not in the team of dossier %s."), user, dossier_id);
      return FALSE;
    }
  if (identity->has_recovery)
    recovery = relais_dossier_key_wrap (key, dossier_id, epoch + 1, identity->recovery_pk);

  if (!relais_client_dossier_unshare (client, dossier_id, leaving->user_id, epoch + 1,
                                      wraps, recovery, cancellable, error))
    {
      relais_dossier_key_free (key);
      return FALSE;
    }

  /* Should this fail or be cut, the next pull brings the new key back:
   * the server holds it wrapped for this user too. */
  ok = relais_vault_begin (vault, error);
  if (ok)
    {
      ok = key_put (vault, dossier_id, epoch + 1, key, error) &&
           dossier_put (vault, dossier_id, epoch + 1, REG_KNOWN, error) &&
           member_put (vault, dossier_id, leaving->user_id, leaving->sign_pk, 1, epoch + 1, error) &&
           relais_vault_commit (vault, error);
      if (!ok)
        relais_vault_rollback (vault);
    }
  relais_dossier_key_free (key);
  return ok;
}

/* ------------------------------------------------------------------------
 * Bundles
 * ------------------------------------------------------------------------ */

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

gboolean
relais_sync_bundle_export (RelaisVault   *vault,
                           RelaisSpool   *spool,
                           const char    *path,
                           guint         *out_count,
                           GError       **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) envelopes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GBytes) bundle = NULL;
  g_autoptr(GDir) dir = NULL;
  g_autofree char *out_dir = NULL;
  const char *name;

  g_return_val_if_fail (vault != NULL && spool != NULL && path != NULL, FALSE);

  if (out_count != NULL)
    *out_count = 0;
  if (!relais_sync_seal (vault, spool, NULL, error))
    return FALSE;

  /* The spool's layout (relais-spool.h): out/ID.rlcs. */
  out_dir = g_build_filename (relais_spool_get_dir (spool), "out", NULL);
  dir = g_dir_open (out_dir, 0, error);
  if (dir == NULL)
    return FALSE;
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".rlcs"))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);

  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *file = g_build_filename (out_dir, g_ptr_array_index (names, i), NULL);
      g_autofree char *data = NULL;
      gsize len = 0;

      if (!g_file_get_contents (file, &data, &len, error))
        return FALSE;
      g_ptr_array_add (envelopes, g_bytes_new_take (g_steal_pointer (&data), len));
    }

  bundle = relais_bundle_build (envelopes, error);
  if (bundle == NULL)
    return FALSE;
  if (!g_file_set_contents_full (path, g_bytes_get_data (bundle, NULL), g_bytes_get_size (bundle),
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;
  if (out_count != NULL)
    *out_count = envelopes->len;
  return TRUE;
}

gboolean
relais_sync_bundle_import (RelaisVault            *vault,
                           RelaisSpool            *spool,
                           const char             *path,
                           RelaisSyncReport       *report,
                           RelaisSyncRefusalFunc   refusal_func,
                           gpointer                user_data,
                           GError                **error)
{
  g_autoptr(Identity) identity = NULL;
  g_autoptr(GMappedFile) file = NULL;
  g_autoptr(GPtrArray) envelopes = NULL;
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func ((GDestroyNotify) item_free);
  RelaisSyncReport local_report = { 0 };
  Applier applier;
  gboolean ok;

  g_return_val_if_fail (vault != NULL && path != NULL, FALSE);

  if (report == NULL)
    report = &local_report;
  memset (report, 0, sizeof *report);
  identity = identity_load (vault, error);
  if (identity == NULL)
    return FALSE;

  file = g_mapped_file_new (path, FALSE, error);
  if (file == NULL)
    return FALSE;
  envelopes = relais_bundle_parse ((const guint8 *) g_mapped_file_get_contents (file),
                                   g_mapped_file_get_length (file), error);
  if (envelopes == NULL)
    return FALSE;

  for (guint i = 0; i < envelopes->len; i++)
    {
      Item *item = g_new0 (Item, 1);

      item->data = g_bytes_ref (g_ptr_array_index (envelopes, i));
      g_ptr_array_add (items, item);
    }

  applier_init (&applier, vault, spool, identity, report, refusal_func, user_data);
  ok = apply_items (&applier, items, error);
  report->pulled = applier.opened;
  applier_clear (&applier);
  return ok && count_conflicts (vault, report, error);
}

/* ------------------------------------------------------------------------
 * Recovery
 * ------------------------------------------------------------------------ */

char *
relais_sync_recovery_key_new (const char  *path,
                              GError     **error)
{
  guint8 pk[crypto_box_PUBLICKEYBYTES];
  guint8 *sk = guarded_alloc (crypto_box_SECRETKEYBYTES);
  gsize text_size = sodium_base64_ENCODED_LEN (crypto_box_SECRETKEYBYTES,
                                               sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *text = guarded_alloc (text_size);
  g_autofree char *dir = NULL;
  gboolean ok = TRUE;
  int fd;

  g_return_val_if_fail (path != NULL, NULL);

  crypto_box_keypair (pk, sk);
  sodium_bin2base64 (text, text_size, sk, crypto_box_SECRETKEYBYTES,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  guarded_free (sk);

  fd = g_open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    {
      int saved = errno;

      guarded_free (text);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Could not create %s: %s"), path, g_strerror (saved));
      return NULL;
    }
  {
    g_autofree char *head = g_strdup (RECOVERY_FILE_MAGIC "\n");
    struct { const char *b; gsize n; } parts[] = {
      { head, strlen (head) }, { text, strlen (text) }, { "\n", 1 },
    };

    for (guint i = 0; ok && i < G_N_ELEMENTS (parts); i++)
      {
        const char *p = parts[i].b;
        gsize left = parts[i].n;

        while (ok && left > 0)
          {
            gssize n = write (fd, p, left);

            if (n < 0 && errno == EINTR)
              continue;
            if (n <= 0)
              ok = FALSE;
            else
              {
                p += n;
                left -= (gsize) n;
              }
          }
      }
  }
  guarded_free (text);
  if (!ok || fsync (fd) != 0)
    ok = FALSE;
  if (close (fd) != 0)
    ok = FALSE;
  if (!ok)
    {
      int saved = errno;

      g_unlink (path);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Could not write %s: %s"), path, g_strerror (saved));
      return NULL;
    }
  return relais_sync_base64_encode (pk, sizeof pk);
}

/* Reads the recovery secret key written by relais_sync_recovery_key_new()
 * into @sk (guarded) and derives the public half. */
static gboolean
read_recovery_key (const char  *path,
                   guint8      *sk,
                   guint8      *pk,
                   GError     **error)
{
  char *text = guarded_alloc (4096);
  gboolean ok = FALSE;
  gsize bin_len = 0;
  char *line;
  int fd;
  gssize n;
  gsize len = 0;

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int saved = errno;

      guarded_free (text);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Could not read the recovery key %s: %s"), path, g_strerror (saved));
      return FALSE;
    }
  while (len < 4095 && (n = read (fd, text + len, 4095 - len)) != 0)
    {
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          break;
        }
      len += (gsize) n;
    }
  close (fd);
  text[len] = '\0';

  if (g_str_has_prefix (text, RECOVERY_FILE_MAGIC "\n"))
    {
      line = text + strlen (RECOVERY_FILE_MAGIC "\n");
      line[strcspn (line, "\r\n")] = '\0';
      ok = sodium_base642bin (sk, crypto_box_SECRETKEYBYTES, line, strlen (line), NULL,
                              &bin_len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           bin_len == crypto_box_SECRETKEYBYTES;
    }
  guarded_free (text);
  if (!ok)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                   _("%s is not a recovery key made by “relaisctl recovery-key new”."), path);
      return FALSE;
    }
  crypto_scalarmult_base (pk, sk);
  return TRUE;
}

gboolean
relais_sync_recover (RelaisSpool   *spool,
                     const char    *recovery_key_path,
                     const char    *from_user,
                     const char    *to_user,
                     guint         *out_count,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GPtrArray) users = NULL;
  g_autoptr(GPtrArray) dossiers = NULL;
  RelaisDirectoryUser *target;
  guint8 pk[crypto_box_PUBLICKEYBYTES];
  guint8 *sk;
  gboolean ok = TRUE;
  guint granted = 0;

  g_return_val_if_fail (spool != NULL && recovery_key_path != NULL, FALSE);
  g_return_val_if_fail (from_user != NULL && to_user != NULL, FALSE);

  if (out_count != NULL)
    *out_count = 0;
  if (!relais_spool_is_enrolled (spool))
    {
      set_not_enrolled (error);
      return FALSE;
    }
  sk = guarded_alloc (crypto_box_SECRETKEYBYTES);
  if (!read_recovery_key (recovery_key_path, sk, pk, error))
    {
      guarded_free (sk);
      return FALSE;
    }

  client = relais_spool_make_client (spool, error);
  if (client != NULL)
    users = fetch_directory (client, cancellable, error);
  target = users != NULL ? resolve_user (users, to_user, error) : NULL;
  if (target != NULL)
    dossiers = relais_client_admin_recovery (client, from_user, cancellable, error);
  if (dossiers == NULL)
    {
      guarded_free (sk);
      return FALSE;
    }

  for (guint i = 0; ok && i < dossiers->len; i++)
    {
      const RelaisDossierKeys *d = g_ptr_array_index (dossiers, i);
      g_autoptr(GPtrArray) wraps = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);

      for (guint j = 0; ok && j < d->keys->len; j++)
        {
          const RelaisWrappedKey *w = g_ptr_array_index (d->keys, j);
          g_autoptr(GBytes) blob = NULL;
          gsize len = 0;
          const guint8 *data = g_bytes_get_data (w->wrapped_key, &len);
          guint8 *key = relais_dossier_key_unwrap (data, len, d->dossier_id, w->epoch, pk, sk, error);

          if (key == NULL)
            {
              ok = FALSE;
              break;
            }
          blob = relais_dossier_key_wrap (key, d->dossier_id, w->epoch, target->box_pk);
          relais_dossier_key_free (key);
          g_ptr_array_add (wraps, relais_wrapped_key_new (target->user_id, w->epoch, blob));
        }
      if (ok && wraps->len > 0)
        {
          ok = relais_client_admin_grant (client, d->dossier_id, target->user_id, wraps,
                                          cancellable, error);
          if (ok)
            granted++;
        }
    }
  guarded_free (sk);
  if (out_count != NULL)
    *out_count = granted;
  return ok;
}

/* ------------------------------------------------------------------------
 * Wiping
 * ------------------------------------------------------------------------ */

static gboolean
remove_tree (const char  *path,
             GError     **error)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (!g_file_test (path, G_FILE_TEST_IS_DIR) || g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      if (g_unlink (path) != 0 && errno != ENOENT)
        {
          int saved = errno;

          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                       _("Could not delete %s: %s"), path, g_strerror (saved));
          return FALSE;
        }
      return TRUE;
    }
  dir = g_dir_open (path, 0, error);
  if (dir == NULL)
    return FALSE;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (!remove_tree (child, error))
        return FALSE;
    }
  if (g_rmdir (path) != 0)
    {
      int saved = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Could not delete %s: %s"), path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

gboolean
relais_sync_wipe (const char  *vault_dir,
                  GError     **error)
{
  static const char * const files[] = {
    RELAIS_KEYFILE_NAME, RELAIS_VAULT_DB_NAME,
    RELAIS_VAULT_DB_NAME "-wal", RELAIS_VAULT_DB_NAME "-shm", RELAIS_VAULT_DB_NAME "-journal",
  };
  g_autofree char *spool = NULL;

  g_return_val_if_fail (vault_dir != NULL, FALSE);

  /* The key file first: without it the database is noise. */
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (vault_dir, files[i], NULL);

      if (!remove_tree (path, error))
        return FALSE;
    }
  spool = g_build_filename (vault_dir, "spool", NULL);
  return remove_tree (spool, error);
}
