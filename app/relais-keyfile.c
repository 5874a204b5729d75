#define G_LOG_DOMAIN "relais-keyfile"

#include "config.h"

#include "relais-keyfile.h"
