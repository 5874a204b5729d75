#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>
#include <stdlib.h>

#include "relais-application.h"
#include "relais-resources.h"
#include "relais-ui-build.h"
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
  static gsize initialized = 0;
  static char *build_dir = NULL;

  if (g_once_init_enter (&initialized))
    {
      g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
      /* /proc/self/exe has no symbolic links left: compare like with like. */
      g_autofree char *root = realpath (RELAIS_BUILD_ROOT, NULL);

      if (exe != NULL && root != NULL)
        {
          g_autofree char *prefix = g_strconcat (root, G_DIR_SEPARATOR_S, NULL);

          if (g_str_has_prefix (exe, prefix))
            build_dir = g_steal_pointer (&root);
        }

      g_once_init_leave (&initialized, 1);
    }

  return build_dir;
}

void
relais_ui_init_i18n (void)
{
  const char *localedir = g_getenv ("RELAIS_LOCALEDIR");
  const char *build_dir = relais_ui_get_build_dir ();
  g_autofree char *build_localedir = NULL;

  /* Uninstalled, meson's i18n module leaves the catalogues in
   * <build>/po/LANG/LC_MESSAGES/relais.mo: the layout bindtextdomain wants. */
  if (localedir == NULL && build_dir != NULL)
    {
      build_localedir = g_build_filename (build_dir, "po", NULL);
      if (g_file_test (build_localedir, G_FILE_TEST_IS_DIR))
        localedir = build_localedir;
    }
  if (localedir == NULL)
    localedir = LOCALEDIR;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
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
