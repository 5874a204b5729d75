#include "config.h"

#include "relais-import.h"
