#define G_LOG_DOMAIN "relais-import"

#include "config.h"

#include "relais-import.h"
