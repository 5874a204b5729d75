#define G_LOG_DOMAIN "relais-person"

#include "config.h"

#include "relais-person.h"
