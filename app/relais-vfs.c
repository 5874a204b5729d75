#define G_LOG_DOMAIN "relais-vfs"

#include "config.h"

#include "relais-vfs.h"
