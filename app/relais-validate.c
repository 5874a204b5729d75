#define G_LOG_DOMAIN "relais-validate"

#include "config.h"

#include "relais-validate.h"
