#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "relais-test-pg.h"
#include "relais-test-util.h"

#define DEFAULT_BINDIR "/usr/lib/postgresql/15/bin"
#define START_ATTEMPTS 5

struct _RelaisTestPg {
  char    *dir;       /* the temporary directory: data/, the log, the socket */
  char    *datadir;
  char    *bindir;
  char    *role;
  char    *uri;
  guint16  port;
  gboolean as_postgres;
  gboolean running;
  int      watchdog_fd;  /* the write end of the watchdog's stdin */
};

static const char *
runuser_path (void)
{
  static const char *const paths[] = { "/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser" };

  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++)
    if (g_file_test (paths[i], G_FILE_TEST_IS_EXECUTABLE))
      return paths[i];
  return NULL;
}

static char *
pg_bindir (void)
{
  const char *env = g_getenv ("RELAIS_TEST_PG_BINDIR");

  return g_strdup (env != NULL && *env != '\0' ? env : DEFAULT_BINDIR);
}

gboolean
relais_test_pg_available (char **out_reason)
{
  static const char *const tools[] = { "initdb", "pg_ctl", "createdb", "postgres" };
  g_autofree char *bindir = pg_bindir ();

  for (gsize i = 0; i < G_N_ELEMENTS (tools); i++)
    {
      g_autofree char *path = g_build_filename (bindir, tools[i], NULL);

      if (!g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
        {
          if (out_reason != NULL)
            *out_reason = g_strdup_printf ("PostgreSQL is not installed (no %s)", path);
          return FALSE;
        }
    }
  if (geteuid () == 0 && getpwnam ("postgres") == NULL)
    {
      if (out_reason != NULL)
        *out_reason = g_strdup ("running as root, and there is no postgres user to run PostgreSQL as");
      return FALSE;
    }
  if (geteuid () == 0 && runuser_path () == NULL)
    {
      if (out_reason != NULL)
        *out_reason = g_strdup ("running as root, and runuser is missing");
      return FALSE;
    }
  return TRUE;
}

gboolean
relais_test_pg_skip_unless_available (void)
{
  g_autofree char *reason = NULL;

  if (relais_test_pg_available (&reason))
    return TRUE;
  g_test_skip (reason);
  return FALSE;
}

/* Runs @tool of the PostgreSQL binaries with @args, as the postgres user
 * when the cluster is run as it. */
static gboolean
run_tool (RelaisTestPg       *pg,
          const char         *tool,
          const char * const *args,
          GError            **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *err = NULL;
  int status = 0;

  if (pg->as_postgres)
    {
      g_ptr_array_add (argv, g_strdup (runuser_path ()));
      g_ptr_array_add (argv, g_strdup ("-u"));
      g_ptr_array_add (argv, g_strdup ("postgres"));
      g_ptr_array_add (argv, g_strdup ("--"));
    }
  g_ptr_array_add (argv, g_build_filename (pg->bindir, tool, NULL));
  for (gsize i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, g_strdup (args[i]));
  g_ptr_array_add (argv, NULL);

  /* The working directory is the cluster's own: the postgres user may not
   * be allowed into the test's. */
  if (!g_spawn_sync (pg->dir, (char **) argv->pdata, NULL,
                     G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, NULL))
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "%s failed: %s",
                   tool, err != NULL ? g_strstrip (err) : "");
      return FALSE;
    }
  return TRUE;
}

/* A port nobody listens on now.  Another program may take it before the
 * cluster does: the start is then retried on another. */
static guint16
free_port (GError **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return 0;
  loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  address = g_inet_socket_address_new (loopback, 0);
  if (!g_socket_bind (socket, address, FALSE, error))
    return 0;
  bound = g_socket_get_local_address (socket, error);
  if (bound == NULL)
    return 0;
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
watchdog_child_setup (gpointer data)
{
  /* Out of the test's process group: a signal to the group (a test
   * runner's timeout) must not take the watchdog with it. */
  setsid ();
}

/* A shell that waits for its stdin to close, then stops the cluster and
 * deletes its directory.  The test process holds the only write end, so
 * the shell wakes when that process ends however it ends: a crashed or
 * killed test leaves no cluster behind. */
static gboolean
start_watchdog (RelaisTestPg  *pg,
                GError       **error)
{
  g_autofree char *pg_ctl = g_build_filename (pg->bindir, "pg_ctl", NULL);
  g_autofree char *q_pg_ctl = g_shell_quote (pg_ctl);
  g_autofree char *q_datadir = g_shell_quote (pg->datadir);
  g_autofree char *q_dir = g_shell_quote (pg->dir);
  g_autofree char *q_runuser = g_shell_quote (pg->as_postgres ? runuser_path () : "");
  g_autofree char *script = NULL;
  const char *argv[] = { "/bin/sh", "-c", NULL, NULL };
  int flags;

  script = g_strdup_printf ("trap '' HUP INT TERM; read dummy; "
                            "if [ -f %s/postmaster.pid ]; then %s%s%s -D %s -m immediate -w stop; fi; "
                            "rm -rf %s",
                            q_datadir,
                            pg->as_postgres ? q_runuser : "",
                            pg->as_postgres ? " -u postgres -- " : "",
                            q_pg_ctl, q_datadir, q_dir);
  argv[2] = script;
  if (!g_spawn_async_with_pipes ("/", (char **) argv, NULL,
                                 G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                                 watchdog_child_setup, NULL, NULL,
                                 &pg->watchdog_fd, NULL, NULL, error))
    return FALSE;
  /* Programs the test starts must not inherit the write end. */
  flags = fcntl (pg->watchdog_fd, F_GETFD);
  fcntl (pg->watchdog_fd, F_SETFD, flags | FD_CLOEXEC);
  return TRUE;
}

static char *
log_tail (RelaisTestPg *pg)
{
  g_autofree char *path = g_build_filename (pg->dir, "postgres.log", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &text, &len, NULL))
    return g_strdup ("");
  return g_strdup (len > 2000 ? text + len - 2000 : text);
}

static gboolean
append_config (RelaisTestPg  *pg,
               GError       **error)
{
  g_autofree char *conf_path = g_build_filename (pg->datadir, "postgresql.conf", NULL);
  g_autofree char *conf = NULL;
  FILE *file;
  gboolean ok;

  /* The port comes on pg_ctl's command line, so that a retry can change
   * it.  fsync and friends off: a test's cluster never outlives it. */
  conf = g_strdup_printf ("\n"
                          "listen_addresses = '127.0.0.1'\n"
                          "unix_socket_directories = '%s'\n"
                          "fsync = off\n"
                          "synchronous_commit = off\n"
                          "full_page_writes = off\n"
                          "max_connections = 200\n"
                          "shared_buffers = 32MB\n"
                          "log_min_messages = warning\n",
                          pg->dir);
  /* Appended in place, so that the file keeps its owner (postgres, when
   * root). */
  file = g_fopen (conf_path, "a");
  if (file == NULL)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Cannot write %s: %s", conf_path, g_strerror (saved_errno));
      return FALSE;
    }
  ok = fputs (conf, file) >= 0;
  ok = fclose (file) == 0 && ok;
  if (!ok)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Cannot write %s", conf_path);
  return ok;
}

RelaisTestPg *
relais_test_pg_start (GError **error)
{
  g_autoptr(RelaisTestPg) pg = g_new0 (RelaisTestPg, 1);

  pg->watchdog_fd = -1;
  g_autofree char *reason = NULL;
  g_autofree char *log_path = NULL;
  g_autofree char *auth = NULL;
  g_autoptr(GError) start_error = NULL;

  if (!relais_test_pg_available (&reason))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, reason);
      return NULL;
    }

  pg->bindir = pg_bindir ();
  pg->as_postgres = geteuid () == 0;
  pg->role = g_strdup (pg->as_postgres ? "postgres" : g_get_user_name ());
  pg->dir = g_dir_make_tmp ("relais-pg-XXXXXX", error);
  if (pg->dir == NULL)
    return NULL;
  pg->datadir = g_build_filename (pg->dir, "data", NULL);
  log_path = g_build_filename (pg->dir, "postgres.log", NULL);
  if (!start_watchdog (pg, error))
    {
      relais_test_rm_rf (pg->dir);
      g_clear_pointer (&pg->dir, g_free);
      return NULL;
    }

  if (pg->as_postgres)
    {
      struct passwd *pw = getpwnam ("postgres");

      if (pw == NULL || chown (pg->dir, pw->pw_uid, pw->pw_gid) != 0)
        {
          int saved_errno = errno;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "Cannot hand %s to the postgres user: %s", pg->dir, g_strerror (saved_errno));
          return NULL;
        }
    }

  {
    const char *args[] = { "-D", pg->datadir, "-U", pg->role, "-A", "trust", "-E", "UTF8",
                           "--no-locale", "--no-sync", NULL };

    if (!run_tool (pg, "initdb", args, error))
      return NULL;
  }
  if (!append_config (pg, error))
    return NULL;

  for (int attempt = 0; attempt < START_ATTEMPTS && !pg->running; attempt++)
    {
      g_autofree char *options = NULL;

      g_clear_error (&start_error);
      pg->port = free_port (error);
      if (pg->port == 0)
        return NULL;
      options = g_strdup_printf ("-p %u", pg->port);
      {
        const char *args[] = { "-D", pg->datadir, "-l", log_path, "-o", options,
                               "-w", "-t", "60", "start", NULL };

        pg->running = run_tool (pg, "pg_ctl", args, &start_error);
      }
    }
  if (!pg->running)
    {
      g_autofree char *tail = log_tail (pg);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "PostgreSQL did not start: %s\n%s",
                   start_error != NULL ? start_error->message : "", tail);
      return NULL;
    }

  pg->uri = g_strdup_printf ("postgresql://%s@127.0.0.1:%u/postgres", pg->role, pg->port);
  return g_steal_pointer (&pg);
}

const char *
relais_test_pg_uri (RelaisTestPg *pg)
{
  g_return_val_if_fail (pg != NULL, NULL);
  return pg->uri;
}

guint16
relais_test_pg_port (RelaisTestPg *pg)
{
  g_return_val_if_fail (pg != NULL, 0);
  return pg->port;
}

char *
relais_test_pg_create_database (RelaisTestPg  *pg,
                                const char    *name,
                                GError       **error)
{
  g_autofree char *port = NULL;

  g_return_val_if_fail (pg != NULL && name != NULL, NULL);
  for (const char *p = name; *p != '\0'; p++)
    g_return_val_if_fail (g_ascii_islower (*p) || g_ascii_isdigit (*p) || *p == '_', NULL);

  port = g_strdup_printf ("%u", pg->port);
  {
    const char *args[] = { "-h", "127.0.0.1", "-p", port, "-U", pg->role, name, NULL };

    if (!run_tool (pg, "createdb", args, error))
      return NULL;
  }
  return g_strdup_printf ("postgresql://%s@127.0.0.1:%u/%s", pg->role, pg->port, name);
}

gboolean
relais_test_pg_restart (RelaisTestPg  *pg,
                        GError       **error)
{
  g_autofree char *options = NULL;
  g_autofree char *log_path = NULL;

  g_return_val_if_fail (pg != NULL && pg->running, FALSE);
  options = g_strdup_printf ("-p %u", pg->port);
  log_path = g_build_filename (pg->dir, "postgres.log", NULL);
  {
    const char *args[] = { "-D", pg->datadir, "-l", log_path, "-o", options,
                           "-m", "fast", "-w", "-t", "60", "restart", NULL };

    return run_tool (pg, "pg_ctl", args, error);
  }
}

void
relais_test_pg_stop (RelaisTestPg *pg)
{
  if (pg == NULL)
    return;
  if (pg->running)
    {
      g_autoptr(GError) error = NULL;
      const char *args[] = { "-D", pg->datadir, "-m", "immediate", "-w", "stop", NULL };

      if (!run_tool (pg, "pg_ctl", args, &error))
        g_warning ("Cannot stop the test cluster in %s: %s", pg->dir, error->message);
    }
  if (pg->dir != NULL)
    relais_test_rm_rf (pg->dir);
  /* Nothing left for the watchdog to do: it wakes and finds nothing. */
  if (pg->watchdog_fd >= 0)
    close (pg->watchdog_fd);
  g_free (pg->dir);
  g_free (pg->datadir);
  g_free (pg->bindir);
  g_free (pg->role);
  g_free (pg->uri);
  g_free (pg);
}
