#include "config.h"

#include "relais-oplog.h"
