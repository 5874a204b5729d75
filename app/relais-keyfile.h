#pragma once

#include <glib.h>

#include "relais-vfs.h"

G_BEGIN_DECLS

/* The key file (vault.key) beside the database: the per-database id, the
 * Argon2id parameters and salt, and the random data key wrapped twice, by the
 * passphrase and by the recovery key.  A keyed MAC over the whole file
 * (keyed by a subkey of the data key) detects any change to it. */

#define RELAIS_KEYFILE_NAME "vault.key"

typedef struct {
  guint64 opslimit;
  gsize   memlimit;
} RelaisKdfParams;

/* Argon2id at about 256 MiB: under a second on the target laptops. */
void      relais_kdf_params_default     (RelaisKdfParams *params);
/* The smallest parameters libsodium accepts.  For tests only: never for a
 * vault that holds real data. */
void      relais_kdf_params_insecure_for_tests (RelaisKdfParams *params);

typedef struct _RelaisKeyfile RelaisKeyfile;

/* Creates a new key file in @dir (which must exist) for a new random data
 * key.  Writes the recovery key, formatted for a person to copy, to
 * @out_recovery_key. */
RelaisKeyfile *relais_keyfile_create        (const char             *dir,
                                             const char             *passphrase,
                                             const RelaisKdfParams  *params,
                                             char                  **out_recovery_key,
                                             GError                **error);
/* Reads @dir/vault.key and unwraps the data key with @passphrase. */
RelaisKeyfile *relais_keyfile_unlock        (const char             *dir,
                                             const char             *passphrase,
                                             GError                **error);
/* Same with the recovery key printed at creation. */
RelaisKeyfile *relais_keyfile_unlock_recovery (const char           *dir,
                                             const char             *recovery_key,
                                             GError                **error);
/* Re-wraps the data key for @new_passphrase (fresh salt) and replaces the
 * key file atomically: killed at any instant, either the old or the new
 * passphrase opens the vault.  The database is not touched. */
gboolean       relais_keyfile_rewrap        (RelaisKeyfile          *self,
                                             const char             *new_passphrase,
                                             const RelaisKdfParams  *params,
                                             GError                **error);

const guint8  *relais_keyfile_get_db_id     (RelaisKeyfile          *self);
/* Guarded memory, valid until relais_keyfile_free(). */
const guint8  *relais_keyfile_get_data_key  (RelaisKeyfile          *self);
void           relais_keyfile_get_kdf_params (RelaisKeyfile         *self,
                                             RelaisKdfParams        *params);
/* Wipes the keys. */
void           relais_keyfile_free          (RelaisKeyfile          *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisKeyfile, relais_keyfile_free)

G_END_DECLS
