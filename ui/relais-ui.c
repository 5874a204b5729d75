#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "relais-application.h"
#include "relais-i18n.h"
#include "relais-resources.h"
#include "relais-ui.h"

void
relais_ui_register_resources (void)
{
  static gsize registered = 0;

  if (g_once_init_enter (&registered))
    {
      relais_register_resource ();
      g_once_init_leave (&registered, 1);
    }
}

const char *
relais_ui_get_build_dir (void)
{
  return relais_get_build_dir ();
}

void
relais_ui_init_i18n (void)
{
  setlocale (LC_ALL, "");
  relais_i18n_init ();
}

int
relais_ui_run (int    argc,
               char **argv)
{
  g_autoptr(RelaisApplication) app = NULL;

  relais_ui_init_i18n ();
  g_set_application_name (_("Relais"));

  app = relais_application_new ();

  return g_application_run (G_APPLICATION (app), argc, argv);
}
