#pragma once

#include <glib.h>
#include <sqlite3.h>

G_BEGIN_DECLS

/* Creates or upgrades the vault's tables to the current version
 * (PRAGMA user_version).  Called by the vault inside a write transaction
 * at creation and at every open. */
gboolean relais_schema_migrate (sqlite3  *db,
                                GError  **error);

G_END_DECLS
