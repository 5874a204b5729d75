#pragma once

#include <adwaita.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* The pages of a dossier beyond identity: each function builds a fresh
 * AdwPreferencesPage from the store, with its editing controls wired to
 * the core.  The vault view owns one RelaisPagesContext for the dossier it
 * shows and rebuilds a page after a write that adds or removes rows;
 * in-place edits (a level, a status) only update their own row. */

typedef struct _RelaisPagesContext RelaisPagesContext;

/* Called after a write, with the name of the page that wrote (the others
 * may show it too), or with @page NULL and the message of a write that
 * failed. */
typedef void (*RelaisPagesChanged) (const char *page,
                                    const char *error_message,
                                    gpointer    user_data);

/* Called after a record of @entity was removed from @page, so that the
 * person can undo it (relais_record_restore()). */
typedef void (*RelaisPagesRemoved) (const char *entity,
                                    const char *id,
                                    const char *page,
                                    gpointer    user_data);

RelaisPagesContext *relais_pages_context_new        (RelaisPagesChanged  changed,
                                                     RelaisPagesRemoved  removed,
                                                     gpointer            user_data);
void                relais_pages_context_free       (RelaisPagesContext *context);
/* @vault NULL once the vault is locked: every control then does nothing. */
void                relais_pages_context_set        (RelaisPagesContext *context,
                                                     RelaisVault        *vault,
                                                     const char         *dossier);

/* Fills @group, the overview's "at a glance", with the next appointment,
 * the open actions, the last notes and the themes that hold the person
 * back; @rows holds the rows it added last time, which it removes. */
void       relais_pages_fill_glance        (RelaisPagesContext  *context,
                                            AdwPreferencesGroup *group,
                                            GPtrArray           *rows);
GtkWidget *relais_pages_build_diagnostic   (RelaisPagesContext *context);
GtkWidget *relais_pages_build_plan         (RelaisPagesContext *context);
GtkWidget *relais_pages_build_journal      (RelaisPagesContext *context);
GtkWidget *relais_pages_build_appointments (RelaisPagesContext *context);
GtkWidget *relais_pages_build_situation    (RelaisPagesContext *context);

G_END_DECLS
