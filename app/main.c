#include "config.h"

#include "relais-ui.h"

int
main (int argc, char **argv)
{
  return relais_ui_run (argc, argv);
}
