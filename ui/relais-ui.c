#include "config.h"

#include <adwaita.h>

#include "relais-ui.h"

int
relais_ui_run (int argc, char **argv)
{
  return 0;
}
