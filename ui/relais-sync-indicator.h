#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

/* What the sidebar says about sync, under the list of dossiers: one line
 * of state ("Synced 5 minutes ago", "3 changes waiting to be sent",
 * "Offline", the last error), a button to the conflicts when there are
 * any, and Sync Now.  It only shows what it is told
 * (relais_sync_indicator_update()); the window runs the sync. */

typedef enum {
  RELAIS_SYNC_STATE_NOT_ENROLLED,  /* the vault has no server */
  RELAIS_SYNC_STATE_IDLE,          /* last sync and pending count */
  RELAIS_SYNC_STATE_OFFLINE,       /* no network */
  RELAIS_SYNC_STATE_SYNCING,
  RELAIS_SYNC_STATE_ERROR,         /* the last exchange did not complete */
} RelaisSyncState;

#define RELAIS_TYPE_SYNC_INDICATOR (relais_sync_indicator_get_type ())

G_DECLARE_FINAL_TYPE (RelaisSyncIndicator, relais_sync_indicator, RELAIS, SYNC_INDICATOR, GtkBox)

GtkWidget       *relais_sync_indicator_new       (void);
/* @last_success: Unix seconds of the last complete exchange, 0 if never;
 * @error_message: the last failure's, for RELAIS_SYNC_STATE_ERROR. */
void             relais_sync_indicator_update    (RelaisSyncIndicator *self,
                                                  RelaisSyncState      state,
                                                  guint                pending,
                                                  gint64               last_success,
                                                  const char          *error_message,
                                                  guint                conflicts);
RelaisSyncState  relais_sync_indicator_get_state (RelaisSyncIndicator *self);
/* The line shown, and what a screen reader reads (the line and the
 * conflicts). */
const char      *relais_sync_indicator_get_text  (RelaisSyncIndicator *self);
char            *relais_sync_indicator_get_accessible_text (RelaisSyncIndicator *self);

/* The line for a state, @now in Unix seconds (for the relative time). */
char            *relais_sync_describe            (RelaisSyncState  state,
                                                  guint            pending,
                                                  gint64           last_success,
                                                  const char      *error_message,
                                                  gint64           now);

G_END_DECLS
