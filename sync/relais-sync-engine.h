#pragma once

#include <gio/gio.h>

#include "relais-client.h"
#include "relais-spool.h"
#include "relais-vault.h"

G_BEGIN_DECLS

/* The vault's side of sync: identity and keys kept in the vault, local
 * operations sealed into change sets in the spool, pulled change sets
 * opened and applied.  Sealing and applying use the vault's connection:
 * call them on the thread that owns the vault (the app's main thread); the
 * exchange in between (relais_spool_exchange()) needs no vault and runs in
 * a worker thread.
 *
 *   seal (vault → spool/out)  ·  exchange (spool ↔ server)  ·  apply (spool/in → vault)
 */

typedef struct {
  guint pushed;      /* change sets the server took */
  guint pulled;      /* change sets received */
  guint applied;     /* operations new to this vault */
  guint conflicts;   /* fields with competing values after the sync */
  guint rejected;    /* received change sets refused (signature, seal…) */
  guint waiting;     /* received change sets kept for a key still missing */
} RelaisSyncReport;

/* Whether this vault is enrolled with a server. */
gboolean relais_sync_is_enrolled (RelaisVault *vault);

/* Enrols the vault (POST /v1/enrol), then either makes the user's key
 * pair and puts it on the server wrapped by @passphrase (first device), or
 * unwraps the one the server holds with @passphrase (another device of the
 * same user: BAD_PASSPHRASE when it does not open).  Stores the identity
 * in the vault and the spool. */
gboolean relais_sync_enroll (RelaisVault   *vault,
                             const char    *server_url,
                             const char    *cacert,
                             const char    *code,
                             const char    *passphrase,
                             const char    *device_name,
                             GCancellable  *cancellable,
                             GError       **error);

/* Seals this device's operations not yet sealed, one change set per
 * dossier (split at the protocol's limits), into spool/out; queues the
 * registration of dossiers the server does not know yet; re-seals what
 * the server retired after a rotation.  Never touches the network. */
gboolean relais_sync_seal  (RelaisVault       *vault,
                            RelaisSpool       *spool,
                            guint             *out_sealed,
                            GError           **error);

/* Opens and applies every envelope waiting in spool/in (one transaction
 * per envelope), taking dossier keys from spool/keys; refused envelopes
 * are counted and deleted; those waiting for a key stay.  Never touches
 * the network. */
gboolean relais_sync_apply (RelaisVault       *vault,
                            RelaisSpool       *spool,
                            RelaisSyncReport  *report,
                            GError           **error);

/* seal, exchange, apply (and once more when applying re-sealed anything):
 * what `relaisctl sync` does.  TRUE only when the exchange completed. */
gboolean relais_sync_run   (RelaisVault       *vault,
                            RelaisSyncReport  *report,
                            GCancellable      *cancellable,
                            GError           **error);

/* Grants @user_id (an id, or a name the directory knows once) access to
 * @dossier_id, with every epoch's key. */
gboolean relais_sync_share   (RelaisVault   *vault,
                              const char    *dossier_id,
                              const char    *user,
                              GCancellable  *cancellable,
                              GError       **error);
/* Removes @user from the dossier and rotates its key for what follows. */
gboolean relais_sync_unshare (RelaisVault   *vault,
                              const char    *dossier_id,
                              const char    *user,
                              GCancellable  *cancellable,
                              GError       **error);

/* Deletes the vault's files and its spool (a revoked device). */
gboolean relais_sync_wipe (const char  *vault_dir,
                           GError     **error);

G_END_DECLS
