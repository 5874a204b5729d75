#include "config.h"

#include "relais-keyfile.h"
