#include "config.h"

#include "relais-person.h"
