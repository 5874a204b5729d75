#include "config.h"

#include "relais-vfs.h"
