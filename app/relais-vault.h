#pragma once

#include <glib.h>
#include <sqlite3.h>

#include "relais-error.h"
#include "relais-keyfile.h"

G_BEGIN_DECLS

/* A vault: one directory per user profile holding vault.key and the
 * encrypted database vault.db (and, while open, its WAL).  One process at a
 * time holds it (exclusive locking: the WAL index stays in memory and never
 * reaches the disk). */

#define RELAIS_VAULT_DB_NAME "vault.db"

typedef struct _RelaisVault RelaisVault;

typedef struct {
  /* VFS under the encrypting one; NULL for SQLite's default.  Tests put a
   * crash-simulating VFS here. */
  const char *base_vfs;
  /* NULL: relais_kdf_params_default(). */
  const RelaisKdfParams *kdf;
  /* "WAL" (default) or "DELETE": tests run the crash suite in both. */
  const char *journal_mode;
} RelaisVaultOptions;

/* The default directory: $XDG_DATA_HOME/relais. */
char        *relais_vault_default_dir   (void);

/* Creates the directory (mode 0700) if needed, the key file and an empty
 * database with the current schema.  Fails with EXISTS if a vault is there. */
RelaisVault *relais_vault_create        (const char                *dir,
                                         const char                *passphrase,
                                         const RelaisVaultOptions  *options,
                                         char                     **out_recovery_key,
                                         GError                   **error);
RelaisVault *relais_vault_open          (const char                *dir,
                                         const char                *passphrase,
                                         const RelaisVaultOptions  *options,
                                         GError                   **error);
RelaisVault *relais_vault_open_recovery (const char                *dir,
                                         const char                *recovery_key,
                                         const RelaisVaultOptions  *options,
                                         GError                   **error);
/* Checkpoints the WAL (a clean close leaves none behind), closes the
 * database and wipes every key. */
void         relais_vault_close         (RelaisVault               *self);

/* Changes the passphrase: re-wraps the data key only. */
gboolean     relais_vault_change_passphrase (RelaisVault           *self,
                                         const char                *new_passphrase,
                                         GError                   **error);

/* Authenticates every page of the database (reading each one through the
 * encrypting VFS) and runs PRAGMA integrity_check. */
gboolean     relais_vault_verify        (RelaisVault               *self,
                                         guint                     *out_pages,
                                         GError                   **error);

sqlite3     *relais_vault_get_db        (RelaisVault               *self);
const char  *relais_vault_get_dir       (RelaisVault               *self);
/* Stable random id of this device, made at creation. */
const char  *relais_vault_get_device_id (RelaisVault               *self);
/* Who writes: the profile's user name (set at creation, may change). */
const char  *relais_vault_get_author    (RelaisVault               *self);
void         relais_vault_set_author    (RelaisVault               *self,
                                         const char                *author);
guint        relais_vault_get_rejected_frames (RelaisVault        *self);

/* Transactions.  begin() takes the write lock at once (BEGIN IMMEDIATE). */
gboolean     relais_vault_begin         (RelaisVault               *self,
                                         GError                   **error);
gboolean     relais_vault_commit        (RelaisVault               *self,
                                         GError                   **error);
void         relais_vault_rollback      (RelaisVault               *self);

/* Hybrid logical clock: 48 bits of milliseconds since the epoch, then a
 * 16-bit counter.  tick() returns a value greater than every value it
 * returned or observed before; observe() takes in a remote clock. */
guint64      relais_vault_hlc_tick      (RelaisVault               *self);
void         relais_vault_hlc_observe   (RelaisVault               *self,
                                         guint64                    remote);

/* Sets @error from the connection's last SQLite error @rc with a message a
 * person understands (disk full, damaged vault, busy…) prefixed by @what. */
void         relais_vault_set_sqlite_error (RelaisVault            *self,
                                         int                        rc,
                                         const char                *what,
                                         GError                   **error);

/* Runs SQL with no result rows; sets @error on failure. */
gboolean     relais_vault_exec          (RelaisVault               *self,
                                         const char                *sql,
                                         GError                   **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

G_END_DECLS
