#define G_LOG_DOMAIN "relais-error"

#include "config.h"

#include "relais-error.h"

G_DEFINE_QUARK (relais-vault-error-quark, relais_vault_error)
