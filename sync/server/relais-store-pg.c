#define G_LOG_DOMAIN "relais-store"

#include "config.h"

#include "relais-store-private.h"

/* Not written yet: the PostgreSQL store comes in a later commit.  Until then
 * opening it fails with a clear message, so that the server builds. */
RelaisStore *
relais_store_pg_open (const char  *uri,
                        GError     **error)
{
  g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                       "The PostgreSQL store is not available in this build yet");
  return NULL;
}
