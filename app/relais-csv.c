#include "config.h"

#include "relais-csv.h"
