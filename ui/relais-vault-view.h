#pragma once

#include <adwaita.h>

#include "relais-dossier-list.h"
#include "relais-sync-indicator.h"
#include "relais-vault.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_VAULT_VIEW (relais_vault_view_get_type ())

G_DECLARE_FINAL_TYPE (RelaisVaultView, relais_vault_view, RELAIS, VAULT_VIEW, AdwBin)

/* What an open vault shows: the searchable list of dossiers beside the
 * dossier chosen, side by side on a wide window, one at a time on a narrow
 * one.  @vault must stay open until relais_vault_view_detach(). */
RelaisVaultView   *relais_vault_view_new            (RelaisVault     *vault,
                                                     GMenuModel      *menu);
/* Empties the list and every page and lets go of the vault. */
void               relais_vault_view_detach         (RelaisVaultView *self);

RelaisDossierList *relais_vault_view_get_list       (RelaisVaultView *self);
/* The dossier shown, or NULL. */
const char        *relais_vault_view_get_dossier_id (RelaisVaultView *self);
void               relais_vault_view_show_dossier   (RelaisVaultView *self,
                                                     const char      *id);
/* Reads the list and the dossier shown again, after a write. */
void               relais_vault_view_refresh        (RelaisVaultView *self);
/* As refresh, and every page of the dossier shown read again (but the
 * one the person is typing in): after changes from elsewhere (sync). */
void               relais_vault_view_reload         (RelaisVaultView *self);
void               relais_vault_view_focus_search   (RelaisVaultView *self);
/* Shows the dossier's side (a narrow window slides the list away) and
 * moves the keyboard focus there. */
void               relais_vault_view_open_dossier_pane (RelaisVaultView *self);
/* The sync state under the list of dossiers. */
RelaisSyncIndicator *relais_vault_view_get_sync_indicator (RelaisVaultView *self);

/* Shows the Team button of the dossier shown (the vault is enrolled). */
void               relais_vault_view_set_can_share  (RelaisVaultView *self,
                                                     gboolean         can_share);

G_END_DECLS
