#define G_LOG_DOMAIN "relais-oplog"

#include "config.h"

#include "relais-oplog.h"
