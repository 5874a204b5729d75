#define G_LOG_DOMAIN "relais-vault"

#include "config.h"

#include "relais-vault.h"
