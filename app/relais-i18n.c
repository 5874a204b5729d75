#define G_LOG_DOMAIN "relais-i18n"

#include "config.h"

#include <glib/gi18n.h>
#include <stdlib.h>

#include "relais-build.h"
#include "relais-i18n.h"

const char *
relais_get_build_dir (void)
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

char *
relais_i18n_get_localedir (void)
{
  const char *localedir = g_getenv ("RELAIS_LOCALEDIR");
  const char *build_dir = relais_get_build_dir ();

  if (localedir != NULL && localedir[0] != '\0')
    return g_strdup (localedir);

  /* Uninstalled, meson's i18n module leaves the catalogues in
   * <build>/po/LANG/LC_MESSAGES/relais.mo: the layout bindtextdomain wants. */
  if (build_dir != NULL)
    {
      g_autofree char *build_localedir = g_build_filename (build_dir, "po", NULL);

      if (g_file_test (build_localedir, G_FILE_TEST_IS_DIR))
        return g_steal_pointer (&build_localedir);
    }

  return g_strdup (LOCALEDIR);
}

void
relais_i18n_init (void)
{
  g_autofree char *localedir = relais_i18n_get_localedir ();

  bindtextdomain (GETTEXT_PACKAGE, localedir);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}
