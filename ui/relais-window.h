#pragma once

#include <adwaita.h>

#include "relais-application.h"
#include "relais-sync-controller.h"
#include "relais-vault.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_WINDOW (relais_window_get_type ())

G_DECLARE_FINAL_TYPE (RelaisWindow, relais_window, RELAIS, WINDOW, AdwApplicationWindow)

RelaisWindow *relais_window_new       (RelaisApplication *application,
                                       const char        *vault_dir);

/* "create", "recovery", "unlock", "vault" or "conflicts": what the window
 * shows. */
const char   *relais_window_get_state (RelaisWindow      *self);
/* The open vault, or NULL while locked. */
RelaisVault  *relais_window_get_vault (RelaisWindow      *self);
/* The view of the open vault (a RelaisVaultView), or NULL while locked. */
GtkWidget    *relais_window_get_view  (RelaisWindow      *self);
/* The last thing the window said about sync ("Synced", "Not synced: …",
 * a refused change), or NULL. */
const char   *relais_window_get_sync_notice (RelaisWindow  *self);
/* Whether a worker thread uses the vault (enrolment, sharing): the
 * window neither locks nor closes meanwhile. */
gboolean      relais_window_is_vault_in_use (RelaisWindow  *self);
/* The window's sync: state, Sync Now, the network it watches. */
RelaisSyncController *relais_window_get_sync_controller (RelaisWindow *self);
/* Closes the vault, wipes its keys and every view, and asks for the
 * passphrase again. */
void          relais_window_lock      (RelaisWindow      *self);
/* Prints the open dossier's summary to a PDF at @path through the same
 * GtkPrintOperation as the Print action, without its dialog. */
gboolean      relais_window_print_to_file (RelaisWindow  *self,
                                           const char    *path,
                                           GError       **error);

G_END_DECLS
