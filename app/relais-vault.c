#include "config.h"

#include "relais-vault.h"
