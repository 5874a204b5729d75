#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <glib/gstdio.h>

#include "relais-oplog.h"
#include "relais-test-util.h"

char *
relais_test_make_tmpdir (const char *prefix)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmpl = g_strconcat (prefix, "-XXXXXX", NULL);
  char *dir = g_dir_make_tmp (tmpl, &error);

  g_assert_no_error (error);
  g_assert_nonnull (dir);
  return dir;
}

void
relais_test_rm_rf (const char *path)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (g_file_test (path, G_FILE_TEST_IS_SYMLINK) || !g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_unlink (path);
      return;
    }

  dir = g_dir_open (path, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      relais_test_rm_rf (child);
    }
  g_rmdir (path);
}

guint
relais_test_send_ops (RelaisVault *from,
                      RelaisVault *to)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = relais_oplog_list (from, 0, 0, NULL, &error);
  guint n_new = 0;

  g_assert_no_error (error);
  g_assert_true (relais_vault_begin (to, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < ops->len; i++)
    {
      gboolean is_new = FALSE;

      g_assert_true (relais_oplog_apply (to, g_ptr_array_index (ops, i), &is_new, &error));
      g_assert_no_error (error);
      n_new += is_new;
    }
  g_assert_true (relais_vault_commit (to, &error));
  g_assert_no_error (error);
  return n_new;
}
