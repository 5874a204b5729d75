#pragma once

#include <gio/gio.h>

#include "relais-sync-indicator.h"
#include "relais-vault.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_SYNC_CONTROLLER (relais_sync_controller_get_type ())

G_DECLARE_FINAL_TYPE (RelaisSyncController, relais_sync_controller, RELAIS, SYNC_CONTROLLER, GObject)

/* The app's side of sync, for one window: seals on the main thread (the
 * vault's), exchanges the spool with the server in a worker thread, applies
 * what came on the main thread; one sync at a time, cancelled when the
 * vault locks.  Syncs when the network returns (never on a metered link),
 * every few minutes while unlocked, and on demand; applies what the
 * background service pulled as soon as the vault is unlocked.
 *
 * Signals:
 *   changed ()                 the state to show changed
 *   applied (guint ops)        operations from elsewhere are in the vault:
 *                              read the list, the dossier and the conflicts again
 *   finished (gboolean manual, const char *failure)
 *                              a sync ended; @failure NULL when it completed
 *   revoked ()                 the server refused this device for good: the
 *                              spool is wiped, the vault must be
 *   refused (guint n, const char *dossier, const char *reason)
 *                              @n received change sets failed their checks
 *                              (signature, seal…) and were dropped; the
 *                              first one's dossier ("?" when unreadable) and
 *                              reason, in words */
RelaisSyncController *relais_sync_controller_new        (void);
/* Watches @monitor instead of the default network monitor (a sync starts
 * when it says the network is back, never on a metered link).  For
 * embedding and for tests. */
void             relais_sync_controller_set_network_monitor (RelaisSyncController *self,
                                                             GNetworkMonitor      *monitor);

/* Follows @vault until it is set to NULL (locking):
 * then seals what is pending, so that the background service can send it,
 * and cancels the exchange under way. */
void             relais_sync_controller_set_vault     (RelaisSyncController *self,
                                                       RelaisVault          *vault);
/* Once the window shows the unlocked vault: applies what the background
 * service pulled while it was locked (seconds, for a new laptop's first
 * pull: not before the list is on screen), then syncs if the network
 * allows. */
void             relais_sync_controller_begin         (RelaisSyncController *self);
/* Starts a sync unless one runs or the vault is not enrolled.  @manual:
 * the person asked (also on a metered link, or offline). */
void             relais_sync_controller_sync          (RelaisSyncController *self,
                                                       gboolean              manual);
/* A local write happened: seals it a few seconds later, so that the
 * pending count includes it and a lock can never strand it. */
void             relais_sync_controller_note_write    (RelaisSyncController *self);

gboolean         relais_sync_controller_is_enrolled   (RelaisSyncController *self);
gboolean         relais_sync_controller_is_busy       (RelaisSyncController *self);
RelaisSyncState  relais_sync_controller_get_state     (RelaisSyncController *self);
guint            relais_sync_controller_get_pending   (RelaisSyncController *self);
gint64           relais_sync_controller_get_last_success (RelaisSyncController *self);
/* User id → the name and organisation the server's directory gives, or
 * NULL before the first complete exchange since unlock. */
GHashTable      *relais_sync_controller_get_directory (RelaisSyncController *self);
/* While a worker thread uses the vault (enrolment, sharing): see the
 * functions' comments. */
void             relais_sync_controller_hold          (RelaisSyncController *self);
void             relais_sync_controller_release       (RelaisSyncController *self);
gboolean         relais_sync_controller_is_held       (RelaisSyncController *self);
/* After a complete sync, a worker thread may fill the recovery wraps
 * other organisations lack (as relaisctl sync does), with the vault:
 * meanwhile the window takes no input and does not lock or close; a
 * cancel makes it end within a second, then "changed" is emitted. */
gboolean         relais_sync_controller_is_filling    (RelaisSyncController *self);
void             relais_sync_controller_cancel_fill   (RelaisSyncController *self);
/* The vault was enrolled meanwhile: reads its identity again. */
void             relais_sync_controller_reload        (RelaisSyncController *self);
/* The last failure's message, or NULL. */
const char      *relais_sync_controller_get_error     (RelaisSyncController *self);

G_END_DECLS
