#pragma once

#include <gio/gio.h>

#include "relais-client.h"
#include "relais-keys.h"
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

/* Opens and applies every envelope waiting in spool/in (each all or
 * nothing: a savepoint per envelope, a commit per batch of them), taking
 * dossier keys from spool/keys; refused envelopes are counted and deleted;
 * those waiting for a key stay.  Never touches the network. */
gboolean relais_sync_apply (RelaisVault       *vault,
                            RelaisSpool       *spool,
                            RelaisSyncReport  *report,
                            GError           **error);

/* seal, exchange, apply (and once more when keys that arrived let
 * retired change sets be sealed again, or envelopes wait for keys):
 * what `relaisctl sync` does.  With the vault open, pulled pages do not
 * go through spool/in: each is applied as it arrives, while the next is
 * fetched (relais_spool_exchange_direct()), and only envelopes waiting
 * for a key are kept there; what spool/in held before is applied first.  TRUE only when the exchange completed;
 * what arrived before a cut is applied all the same.  Fails with
 * RELAIS_CLIENT_ERROR_REVOKED for a revoked device: the caller closes the
 * vault and calls relais_sync_wipe(). */
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

/* Told about each received change set that was refused (@reason in
 * RELAIS_SYNC_ERROR: SIGNATURE, SEAL, AUTHOR_UNKNOWN, MALFORMED…), so that
 * the person hears which dossier and why.  @dossier is "?" when the header
 * itself is unreadable. */
typedef void (*RelaisSyncRefusalFunc) (const char   *dossier,
                                       const GError *reason,
                                       gpointer      user_data);

/* Why a change set was refused, in words for a person (translated, no
 * capital, no full stop): "the signature does not match its author". */
const char *relais_sync_describe_refusal (const GError *reason);

/* relais_sync_apply() and relais_sync_run() telling @refusal_func (may be
 * NULL) about every refused change set. */
gboolean relais_sync_apply_full (RelaisVault            *vault,
                                 RelaisSpool            *spool,
                                 RelaisSyncReport       *report,
                                 RelaisSyncRefusalFunc   refusal_func,
                                 gpointer                user_data,
                                 GError                **error);
gboolean relais_sync_run_full   (RelaisVault            *vault,
                                 RelaisSyncReport       *report,
                                 RelaisSyncRefusalFunc   refusal_func,
                                 gpointer                user_data,
                                 GCancellable           *cancellable,
                                 GError                **error);

/* What enrolment stores, in the vault and (without the user's keys) in
 * the spool.  Public so that tests can give vaults identities without a
 * server. */
typedef struct {
  const char   *server;
  const char   *cacert;       /* NULL: the system's CAs */
  const char   *user_id;
  const char   *org;
  const char   *device_id;    /* the server's id of this device */
  gboolean      admin;
  const guint8 *recovery_pk;  /* the organisation's recovery key, or NULL */
} RelaisSyncIdentity;

/* Stores the identity, the user's key pairs and the device's request key
 * (Ed25519, 64 bytes) in the vault and @spool (when not NULL), and makes
 * the user id the author of this device's operations. */
gboolean relais_sync_set_identity (RelaisVault               *vault,
                                   RelaisSpool               *spool,
                                   const RelaisSyncIdentity  *identity,
                                   const RelaisUserKeys      *user_keys,
                                   const guint8              *device_sk,
                                   GError                   **error);

/* After a change of the vault's passphrase: wraps the user's keys with
 * @passphrase again and puts them on the server (same public keys), so
 * that a new laptop enrols with the new passphrase.  Needs the network. */
gboolean relais_sync_rewrap_user_keys (RelaisVault   *vault,
                                       const char    *passphrase,
                                       GCancellable  *cancellable,
                                       GError       **error);

/* The enrolled user's id (NULL when not enrolled). */
char      *relais_sync_get_user_id (RelaisVault  *vault);

/* Every epoch's key of @dossier_id that the vault holds, wrapped for
 * @box_pk (element type RelaisWrappedKey, user_id @user_id): what share
 * sends, and what tests hand to another vault through its spool. */
GPtrArray *relais_sync_wrap_keys   (RelaisVault   *vault,
                                    const char    *dossier_id,
                                    const char    *user_id,
                                    const guint8  *box_pk,
                                    GError       **error);

/* Takes a dossier's wrapped keys and members (from a pull, or
 * GET /v1/dossiers/{id}/keys) into the vault: unwraps every epoch with the
 * user's box key, records the members, advances the current epoch. */
gboolean   relais_sync_import_keys (RelaisVault              *vault,
                                    const RelaisDossierKeys  *keys,
                                    GError                  **error);

/* Seals what is pending, then writes every envelope waiting in spool/out
 * to @path as a bundle (PROTOCOL.md §4). */
gboolean relais_sync_bundle_export (RelaisVault   *vault,
                                    RelaisSpool   *spool,
                                    const char    *path,
                                    guint         *out_count,
                                    GError       **error);
/* Opens and applies the change sets of the bundle @path as apply does
 * (idempotent): @report's pulled counts the change sets applied, applied
 * the operations new to the vault, rejected and waiting the others. */
gboolean relais_sync_bundle_import (RelaisVault            *vault,
                                    RelaisSpool            *spool,
                                    const char             *path,
                                    RelaisSyncReport       *report,
                                    RelaisSyncRefusalFunc   refusal_func,
                                    gpointer                user_data,
                                    GError                **error);

/* The organisation's recovery key, made offline: writes the secret half
 * to @path (created, mode 0600, never overwritten) and returns the public
 * half in base64url.  The file is two lines: "RELAIS-RECOVERY-KEY 1" and
 * the X25519 secret key in base64url. */
char    *relais_sync_recovery_key_new (const char  *path,
                                       GError     **error);

/* An administrator's device re-grants every dossier of @from_user to
 * @to_user (their new identity after a forgotten passphrase) with the
 * recovery secret key in @recovery_key_path.  Needs only the spool (the
 * device key signs the requests).  *@out_count: dossiers granted. */
gboolean relais_sync_recover (RelaisSpool   *spool,
                              const char    *recovery_key_path,
                              const char    *from_user,
                              const char    *to_user,
                              guint         *out_count,
                              GCancellable  *cancellable,
                              GError       **error);

G_END_DECLS
