#pragma once

#include <adwaita.h>

#include "relais-sync-controller.h"
#include "relais-vault.h"

G_BEGIN_DECLS

/* The two dialogs of sync a person needs besides the indicator: connecting
 * this computer to the organisation's server, and the team of a dossier.
 * Both run their network calls in a worker thread; while one uses the
 * vault there (enrolment, share, unshare), @sync is held
 * (relais_sync_controller_hold()), the dialog is modal and shows a
 * spinner, and the window must neither lock nor close (it checks
 * relais_sync_controller_is_held()). */

#define RELAIS_TYPE_ENROL_DIALOG (relais_enrol_dialog_get_type ())

G_DECLARE_FINAL_TYPE (RelaisEnrolDialog, relais_enrol_dialog, RELAIS, ENROL_DIALOG, AdwWindow)

/* Asks for the server's address, the enrolment code, a CA certificate
 * (optional) and the vault's passphrase, and enrols @vault.
 *
 * Signals:
 *   enrolled ()   the vault is enrolled; the dialog closes itself after */
RelaisEnrolDialog *relais_enrol_dialog_new     (GtkWindow            *parent,
                                                RelaisVault          *vault,
                                                RelaisSyncController *sync);
/* The CA certificate file to verify the server with (the Advanced row's
 * file chooser sets it), or NULL for the system's. */
void               relais_enrol_dialog_set_cacert (RelaisEnrolDialog *self,
                                                   const char        *path);
/* Whether the worker thread runs (tests wait for it to end). */
gboolean           relais_enrol_dialog_is_busy (RelaisEnrolDialog    *self);

#define RELAIS_TYPE_TEAM_DIALOG (relais_team_dialog_get_type ())

G_DECLARE_FINAL_TYPE (RelaisTeamDialog, relais_team_dialog, RELAIS, TEAM_DIALOG, AdwWindow)

/* The people who receive the dossier @dossier_id (the vault's sync_member
 * table), with Remove, and the server's directory to add a colleague. */
RelaisTeamDialog  *relais_team_dialog_new      (GtkWindow            *parent,
                                                RelaisVault          *vault,
                                                RelaisSyncController *sync,
                                                const char           *dossier_id);
/* Whether a worker thread runs (the directory, a share, an unshare). */
gboolean           relais_team_dialog_is_busy  (RelaisTeamDialog     *self);
/* The line the dialog shows last (an error or what was done), or NULL. */
const char        *relais_team_dialog_get_status (RelaisTeamDialog   *self);

G_END_DECLS
