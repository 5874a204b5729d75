#define G_LOG_DOMAIN "relais-schema"

#include "config.h"

#include "relais-schema.h"
#include "relais-error.h"

gboolean
relais_schema_migrate (sqlite3 *db, GError **error)
{
  g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED, "not implemented");
  return FALSE;
}
