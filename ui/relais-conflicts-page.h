#pragma once

#include <adwaita.h>

#include "relais-vault.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_CONFLICTS_PAGE (relais_conflicts_page_get_type ())

G_DECLARE_FINAL_TYPE (RelaisConflictsPage, relais_conflicts_page, RELAIS, CONFLICTS_PAGE, AdwBin)

/* The fields where devices disagree (relais_oplog_conflicts()): for each
 * one, the person, the field, and every competing value with its author
 * and time, the one shown now marked; the person keeps one, which
 * relais_oplog_resolve() records as a new operation that every device
 * then follows. */
RelaisConflictsPage *relais_conflicts_page_new             (void);
/* Reads the conflicts of @vault again; NULL empties the page (locked):
 * nothing of a dossier stays in its widgets.  @vault must stay open until
 * it is set again. */
void                 relais_conflicts_page_set_vault       (RelaisConflictsPage *self,
                                                            RelaisVault         *vault);
void                 relais_conflicts_page_refresh         (RelaisConflictsPage *self);
/* User id → name (relais_sync_controller_get_directory()), to name the
 * authors of synced values; NULL shows their ids. */
void                 relais_conflicts_page_set_directory   (RelaisConflictsPage *self,
                                                            GHashTable          *directory);
guint                relais_conflicts_page_get_n_conflicts (RelaisConflictsPage *self);

/* How the conflicts page names a field of the op log, and shows one of its
 * values: translated, with choice keys as their labels and dates in the
 * locale's format.  Exposed for the sync indicator and the tests. */
char *relais_conflicts_describe_field (RelaisVault *vault,
                                       const char  *entity,
                                       const char  *entity_id,
                                       const char  *field);
char *relais_conflicts_format_value   (const char  *entity,
                                       const char  *field,
                                       const char  *value);

G_END_DECLS
