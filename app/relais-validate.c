#include "config.h"

#include "relais-validate.h"
