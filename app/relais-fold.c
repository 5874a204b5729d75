#include "config.h"

#include "relais-fold.h"
