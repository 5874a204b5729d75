#define G_LOG_DOMAIN "relais-csv"

#include "config.h"

#include "relais-csv.h"
