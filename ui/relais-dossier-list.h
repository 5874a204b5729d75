#pragma once

#include <gio/gio.h>

#include "relais-vault.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_DOSSIER_LIST (relais_dossier_list_get_type ())

G_DECLARE_FINAL_TYPE (RelaisDossierList, relais_dossier_list, RELAIS, DOSSIER_LIST, GObject)

typedef enum {
  RELAIS_DOSSIER_FILTER_ALL,
  RELAIS_DOSSIER_FILTER_APPOINTMENT_TODAY,
  RELAIS_DOSSIER_FILTER_LATE_ACTIONS,
  RELAIS_DOSSIER_FILTER_RECENTLY_CHANGED,
} RelaisDossierFilter;

/* A GListModel of RelaisPersonObject over the dossiers of an open vault that
 * match a search, in list order.  It knows how many there are and fetches
 * them from the store a page at a time, only when asked for: a list view
 * showing 20 rows of 100,000 dossiers holds a page or two.  @vault must stay
 * open until relais_dossier_list_detach() or the last reference. */
RelaisDossierList *relais_dossier_list_new         (RelaisVault        *vault);

const char        *relais_dossier_list_get_query   (RelaisDossierList  *self);
/* Counts the matches of @query and announces the new contents. */
gboolean           relais_dossier_list_set_query   (RelaisDossierList  *self,
                                                    const char         *query,
                                                    GError            **error);
/* Only the dossiers with an appointment today, with a late action, or
 * changed in the last 7 days (most recent first), still narrowed by the
 * query.  These come from the store's indexes as lists of ids, short
 * enough to hold whole. */
gboolean           relais_dossier_list_set_filter  (RelaisDossierList  *self,
                                                    RelaisDossierFilter filter,
                                                    GError            **error);
/* Forgets every fetched row and counts again: after a write. */
gboolean           relais_dossier_list_refresh     (RelaisDossierList  *self,
                                                    GError            **error);
/* Empties the list and lets go of the vault, before it closes. */
void               relais_dossier_list_detach      (RelaisDossierList  *self);
/* How many rows are held in memory now. */
guint              relais_dossier_list_get_n_cached (RelaisDossierList *self);

G_END_DECLS
