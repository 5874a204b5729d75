#define G_LOG_DOMAIN "relais-fold"

#include "config.h"

#include "relais-fold.h"
