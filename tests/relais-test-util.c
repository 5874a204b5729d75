#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

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

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

GSubprocess *
relais_test_server_spawn (const char *const  *argv,
                          char              **out_url)
{
  const char *prefix = "relais-server: listening on ";
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  GSubprocess *process;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                        | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, prefix));
  *out_url = g_strdup (line + strlen (prefix));
  return process;
}

void
relais_test_server_stop (GSubprocess *process)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_send_signal (process, SIGTERM);
  g_assert_true (g_subprocess_wait (process, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (process));
  g_object_unref (process);
}
