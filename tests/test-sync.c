#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "relais-changeset.h"
#include "relais-client.h"
#include "relais-fault-proxy.h"
#include "relais-keyfile.h"
#include "relais-keys.h"
#include "relais-oplog.h"
#include "relais-test-util.h"

/* Sync from end to end, as people and administrators meet it: real
 * relais-server processes on loopback over SQLite and a real PostgreSQL,
 * real relaisctl processes on vaults of several devices of several
 * organisations, TLS with a certificate made here, and a proxy that
 * refuses, cuts, loses and delays.  Everything is black-box: commands
 * are spawned and their output read, as a script would.  Each scenario
 * runs on both stores. */

#define PASS "s3cret passphrase"

typedef enum {
  STORE_SQLITE,
  STORE_PG,
} StoreKind;

/* ---- Processes ---------------------------------------------------------- */

typedef struct {
  int    status;   /* exit status, or 128 + signal */
  char  *out;
  char  *err;
} Run;

static void
run_clear (Run *run)
{
  g_clear_pointer (&run->out, g_free);
  g_clear_pointer (&run->err, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static const char *
relaisctl_path (void)
{
  const char *path = g_getenv ("RELAISCTL");

  g_assert_nonnull (path);
  return path;
}

static const char *
server_path (void)
{
  const char *path = g_getenv ("RELAIS_SERVER");

  g_assert_nonnull (path);
  return path;
}

/* The largest file the next relaisctl may write (0: no limit): a full
 * disk, as far as it can tell. */
static rlim_t child_file_limit;

static void
child_setup (gpointer data)
{
  /* No controlling terminal: a prompt must fail, not wait. */
  setsid ();
  if (child_file_limit > 0)
    {
      struct rlimit limit = { child_file_limit, child_file_limit };

      /* A write past the limit fails with EFBIG instead of killing. */
      signal (SIGXFSZ, SIG_IGN);
      setrlimit (RLIMIT_FSIZE, &limit);
    }
}

/* A server dies with the test program, even when an assertion aborts it
 * before its teardown.  SIGXFSZ ignored: server_set_file_limit() can then
 * make its disk look full. */
static void
server_child_setup (gpointer data)
{
  setsid ();
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  signal (SIGXFSZ, SIG_IGN);
}

static guint
count_lines (const char *text)
{
  guint n = 0;

  for (const char *p = text; p != NULL && *p != '\0'; p++)
    if (*p == '\n')
      n++;
  return n;
}

static void
run_argv (Run        *run,
          GPtrArray  *argv,
          char      **env)
{
  g_autoptr(GError) error = NULL;
  int wait_status = 0;

  g_ptr_array_add (argv, NULL);
  memset (run, 0, sizeof *run);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, env, G_SPAWN_SEARCH_PATH,
                               child_setup, NULL, &run->out, &run->err, &wait_status, &error));
  g_assert_no_error (error);
  if (WIFEXITED (wait_status))
    run->status = WEXITSTATUS (wait_status);
  else
    run->status = 128 + WTERMSIG (wait_status);
}

/* ---- Stores ------------------------------------------------------------- */

#include "relais-test-pg.h"

static RelaisTestPg *pg_cluster;
static char         *pg_skip_reason;
static guint         pg_databases;
static volatile pid_t pg_postmaster;

/* A failed assertion aborts the program before relais_test_pg_stop():
 * stop the cluster then too (immediate shutdown, which is all a signal
 * handler can ask for), so that no postgres outlives the test. */
static void
pg_abort_handler (int sig)
{
  if (pg_postmaster > 0)
    kill (pg_postmaster, SIGQUIT);
  signal (sig, SIG_DFL);
  raise (sig);
}

/* The postmaster's pid, from postmaster.pid in the data directory the
 * cluster reports. */
static void
pg_watch (const char *uri)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(GStrv) env = g_get_environ ();
  g_autofree char *pid_file = NULL;
  g_autofree char *text = NULL;
  g_auto(Run) run = { 0 };

  g_ptr_array_add (argv, "psql");
  g_ptr_array_add (argv, "-XAtq");
  g_ptr_array_add (argv, "-c");
  g_ptr_array_add (argv, "SHOW data_directory");
  g_ptr_array_add (argv, (char *) uri);
  run_argv (&run, argv, env);
  if (run.status != 0)
    return;
  g_strstrip (run.out);
  pid_file = g_build_filename (run.out, "postmaster.pid", NULL);
  if (g_file_get_contents (pid_file, &text, NULL, NULL))
    {
      pg_postmaster = (pid_t) g_ascii_strtoll (text, NULL, 10);
      signal (SIGABRT, pg_abort_handler);
      signal (SIGTRAP, pg_abort_handler);
      signal (SIGSEGV, pg_abort_handler);
    }
}

/* The cluster is started once, at the first PostgreSQL test; every test
 * gets a database of its own. */
static gboolean
pg_available (void)
{
  g_autoptr(GError) error = NULL;

  if (pg_cluster != NULL)
    return TRUE;
  if (pg_skip_reason != NULL)
    return FALSE;
  if (!relais_test_pg_available (&pg_skip_reason))
    return FALSE;
  pg_cluster = relais_test_pg_start (&error);
  if (pg_cluster == NULL)
    {
      pg_skip_reason = g_strdup_printf ("PostgreSQL did not start: %s", error->message);
      return FALSE;
    }
  pg_watch (relais_test_pg_uri (pg_cluster));
  return TRUE;
}

/* ---- The server --------------------------------------------------------- */

typedef struct {
  GPid     pid;         /* 0 once it exited */
  int      out_fd;
  char    *url;
  guint16  port;
} Server;

static void
server_free (Server *server)
{
  if (server->pid > 0)
    {
      kill (server->pid, SIGKILL);
      waitpid (server->pid, NULL, 0);
    }
  if (server->out_fd >= 0)
    close (server->out_fd);
  g_free (server->url);
  g_free (server);
}

static gboolean
server_running (Server *server)
{
  return server->pid > 0;
}

/* Reads one line from @fd within @timeout_ms, or NULL. */
static char *
read_line_timeout (int  fd,
                   int  timeout_ms)
{
  g_autoptr(GString) line = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      char c;
      ssize_t n;

      if (left <= 0)
        return NULL;
      if (poll (&pfd, 1, (int) left) <= 0)
        continue;
      n = read (fd, &c, 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return NULL;
      if (c == '\n')
        return g_string_free (g_steal_pointer (&line), FALSE);
      g_string_append_c (line, c);
    }
}

/* Starts relais-server on @store_uri, on 127.0.0.1 and a free port, its
 * stderr in a file of @log_dir, and waits for its one line. */
static Server *
server_start_full (const char *store_uri,
                   const char *log_dir,
                   const char *cert,
                   const char *key)
{
  static guint n_logs;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *log_name = g_strdup_printf ("server-%03u.log", ++n_logs);
  g_autofree char *log = g_build_filename (log_dir, log_name, NULL);
  Server *server = g_new0 (Server, 1);
  const char *prefix = cert != NULL ? "relais-server: listening on https://" : "relais-server: listening on http://";
  const char *port_text;
  guint64 port = 0;
  int log_fd;

  g_ptr_array_add (argv, (char *) server_path ());
  g_ptr_array_add (argv, "serve");
  g_ptr_array_add (argv, "--store");
  g_ptr_array_add (argv, (char *) store_uri);
  g_ptr_array_add (argv, "--listen");
  g_ptr_array_add (argv, "127.0.0.1:0");
  if (cert != NULL)
    {
      g_ptr_array_add (argv, "--tls-cert");
      g_ptr_array_add (argv, (char *) cert);
      g_ptr_array_add (argv, "--tls-key");
      g_ptr_array_add (argv, (char *) key);
    }
  g_ptr_array_add (argv, NULL);

  /* Its log goes to a file: looked into for markers, shown when a test
   * fails. */
  log_fd = open (log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  g_assert_cmpint (log_fd, >=, 0);
  server->out_fd = -1;
  g_assert_true (g_spawn_async_with_pipes_and_fds (NULL, (const char * const *) argv->pdata, NULL,
                                                   G_SPAWN_DO_NOT_REAP_CHILD, server_child_setup, NULL,
                                                   -1, -1, log_fd, NULL, NULL, 0,
                                                   &server->pid, NULL, &server->out_fd, NULL,
                                                   &error));
  g_assert_no_error (error);
  close (log_fd);
  line = read_line_timeout (server->out_fd, 30000);
  if (line == NULL)
    {
      g_autofree char *text = NULL;

      g_file_get_contents (log, &text, NULL, NULL);
      g_error ("relais-server did not say it was listening: %s", text);
    }
  g_test_message ("%s", line);
  g_assert_true (g_str_has_prefix (line, prefix));
  port_text = strrchr (line, ':');
  g_assert_nonnull (port_text);
  g_assert_true (g_ascii_string_to_unsigned (port_text + 1, 10, 1, 65535, &port, NULL));
  server->port = (guint16) port;
  server->url = g_strdup (line + strlen ("relais-server: listening on "));
  return server;
}

static Server *
server_start (const char *store_uri,
              const char *log_dir)
{
  return server_start_full (store_uri, log_dir, NULL, NULL);
}

/* SIGTERM: the server stops cleanly, exit 0, within 30 s. */
static void
server_stop (Server *server)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  int status = 0;
  pid_t done;

  g_assert_true (server->pid > 0);
  kill (server->pid, SIGTERM);
  while ((done = waitpid (server->pid, &status, WNOHANG)) == 0)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("relais-server did not stop within 30 s of SIGTERM");
      g_usleep (10 * 1000);
    }
  g_assert_cmpint (done, ==, server->pid);
  server->pid = 0;
  if (!WIFEXITED (status))
    g_test_message ("relais-server ended by signal %d", WTERMSIG (status));
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}

/* Every write of the running server past @limit bytes fails (EFBIG, as
 * ENOSPC would); RLIM_INFINITY lifts it.  Only the soft limit: the hard
 * one could not be raised again. */
static void
server_set_file_limit (Server *server,
                       rlim_t  limit)
{
  struct rlimit l = { limit, RLIM_INFINITY };

  g_assert_cmpint (prlimit (server->pid, RLIMIT_FSIZE, &l, NULL), ==, 0);
}

static void
server_kill (Server *server)
{
  g_assert_true (server->pid > 0);
  kill (server->pid, SIGKILL);
  waitpid (server->pid, NULL, 0);
  server->pid = 0;
}

/* ---- A test's world: one store, one server, devices ------------------- */

typedef struct _Ctx Ctx;

typedef struct {
  Ctx  *ctx;
  char *label;
  char *vault;
  char *pass;
  char *user_id;
  char *device_id;
  char *user_name;
} Device;

struct _Ctx {
  StoreKind  kind;
  char      *dir;
  char      *store_uri;
  char      *sqlite_path;
  char      *pg_dbname;
  Server    *server;
  RelaisFaultProxy *proxy;  /* in front of the server, when a test wants one */
  GPtrArray *devices;   /* Device */
  GPtrArray *markers;   /* char *, written by devices, never to be seen by the server */
  guint      serial;
};

static void
device_free (Device *dev)
{
  g_free (dev->label);
  g_free (dev->vault);
  g_free (dev->pass);
  g_free (dev->user_id);
  g_free (dev->device_id);
  g_free (dev->user_name);
  g_free (dev);
}

static void check_markers_absent (Ctx *ctx);
static void admin_run (Ctx *ctx, Run *run, const char *first, ...) G_GNUC_NULL_TERMINATED;

/* The server logs of this test, in the order they were started. */
static GPtrArray *
server_logs (Ctx *ctx)
{
  g_autoptr(GDir) dir = g_dir_open (ctx->dir, 0, NULL);
  GPtrArray *logs = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, "server-") && g_str_has_suffix (name, ".log"))
      g_ptr_array_add (logs, g_build_filename (ctx->dir, name, NULL));
  g_ptr_array_sort (logs, (GCompareFunc) g_strcmp0);
  return logs;
}

static void
show_server_logs (Ctx *ctx)
{
  g_autoptr(GPtrArray) logs = server_logs (ctx);

  for (guint i = 0; i < logs->len; i++)
    {
      g_autofree char *text = NULL;

      if (g_file_get_contents (logs->pdata[i], &text, NULL, NULL))
        g_test_message ("%s:\n%s", (char *) logs->pdata[i], text);
    }
}

static void
ctx_setup (Ctx           *ctx,
           gconstpointer  data)
{
  ctx->kind = GPOINTER_TO_INT (data);
  ctx->dir = relais_test_make_tmpdir ("relais-test-sync");
  ctx->devices = g_ptr_array_new_with_free_func ((GDestroyNotify) device_free);
  ctx->markers = g_ptr_array_new_with_free_func (g_free);

  if (ctx->kind == STORE_PG)
    {
      g_autoptr(GError) error = NULL;

      if (!pg_available ())
        {
          g_test_skip (pg_skip_reason);
          return;
        }
      ctx->pg_dbname = g_strdup_printf ("relais_sync_%u", ++pg_databases);
      ctx->store_uri = relais_test_pg_create_database (pg_cluster, ctx->pg_dbname, &error);
      g_assert_no_error (error);
    }
  else
    {
      ctx->sqlite_path = g_build_filename (ctx->dir, "server.db", NULL);
      ctx->store_uri = g_strconcat ("sqlite:", ctx->sqlite_path, NULL);
    }
  ctx->server = server_start (ctx->store_uri, ctx->dir);
}

static void
ctx_teardown (Ctx           *ctx,
              gconstpointer  data)
{
  if (ctx->server != NULL)
    {
      if (server_running (ctx->server))
        server_stop (ctx->server);
      /* Whatever the scenario, the server never saw a marker in clear. */
      if (!g_test_failed ())
        check_markers_absent (ctx);
      server_free (ctx->server);
    }
  if (g_test_failed ())
    show_server_logs (ctx);
  g_clear_pointer (&ctx->proxy, relais_fault_proxy_free);
  g_ptr_array_unref (ctx->devices);
  g_ptr_array_unref (ctx->markers);
  relais_test_rm_rf (ctx->dir);
  g_free (ctx->dir);
  g_free (ctx->store_uri);
  g_free (ctx->sqlite_path);
  g_free (ctx->pg_dbname);
}

static gboolean
ctx_skipped (Ctx *ctx)
{
  return ctx->server == NULL;
}

/* A fault proxy in front of the server; its URL is what devices enrol
 * with when they are to meet faults, or a server restarted on another
 * port. */
static RelaisFaultProxy *
ctx_proxy (Ctx *ctx)
{
  g_autoptr(GError) error = NULL;

  if (ctx->proxy == NULL)
    {
      ctx->proxy = relais_fault_proxy_new (ctx->server->port, &error);
      g_assert_no_error (error);
    }
  return ctx->proxy;
}

/* Stops (SIGTERM, or SIGKILL when @kill) and starts the server again on
 * the same store; the proxy follows it to its new port. */
static void
ctx_restart_server (Ctx      *ctx,
                    gboolean  kill_it)
{
  Server *again;

  if (server_running (ctx->server))
    {
      if (kill_it)
        server_kill (ctx->server);
      else
        server_stop (ctx->server);
    }
  again = server_start (ctx->store_uri, ctx->dir);
  server_free (ctx->server);
  ctx->server = again;
  if (ctx->proxy != NULL)
    relais_fault_proxy_set_upstream (ctx->proxy, again->port);
}

/* A value no one could guess, remembered as a marker. */
static char *
marker (Ctx        *ctx,
        const char *prefix)
{
  char *m = g_strdup_printf ("%s%08x%08x", prefix, g_random_int (), g_random_int ());

  g_ptr_array_add (ctx->markers, g_strdup (m));
  return m;
}

/* ---- relais-server's administration ----------------------------------- */

/* Runs relais-server NOUN VERB --store URI ARGS... (every administration
 * command is two words). */
static void
admin_run (Ctx        *ctx,
           Run        *run,
           const char *first,
           ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(GStrv) env = g_get_environ ();
  va_list args;
  guint words = 0;

  g_ptr_array_add (argv, (char *) server_path ());
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    {
      g_ptr_array_add (argv, (char *) arg);
      if (++words == 2)
        {
          g_ptr_array_add (argv, "--store");
          g_ptr_array_add (argv, ctx->store_uri);
        }
    }
  va_end (args);
  g_assert_cmpuint (words, >=, 2);
  run_argv (run, argv, env);
  if (run->status != 0)
    g_test_message ("relais-server %s: %d %s", first, run->status, run->err);
}

static char *
one_line (const char *text)
{
  g_assert_nonnull (text);
  g_assert_cmpuint (count_lines (text), ==, 1);
  return g_strstrip (g_strdup (text));
}

/* A new user; returns the enrolment code. */
static char *
user_add (Ctx        *ctx,
          const char *name,
          const char *org,
          gboolean    admin)
{
  g_auto(Run) run = { 0 };

  if (admin)
    admin_run (ctx, &run, "user", "add", "--name", name, "--org", org, "--admin", NULL);
  else
    admin_run (ctx, &run, "user", "add", "--name", name, "--org", org, NULL);
  g_assert_cmpint (run.status, ==, 0);
  return one_line (run.out);
}

static JsonNode *
parse_json (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  if (!json_parser_load_from_data (parser, text, -1, &error))
    g_test_message ("not JSON: %s", text);
  g_assert_no_error (error);
  return json_node_copy (json_parser_get_root (parser));
}

static char *
user_id_of (Ctx        *ctx,
            const char *name)
{
  g_auto(Run) run = { 0 };
  g_autoptr(JsonNode) root = NULL;
  JsonArray *users;
  char *found = NULL;

  admin_run (ctx, &run, "user", "list", "--json", NULL);
  g_assert_cmpint (run.status, ==, 0);
  root = parse_json (run.out);
  users = json_node_get_array (root);
  for (guint i = 0; i < json_array_get_length (users); i++)
    {
      JsonObject *user = json_array_get_object_element (users, i);

      if (g_strcmp0 (json_object_get_string_member (user, "name"), name) == 0)
        {
          g_assert_null (found);
          found = g_strdup (json_object_get_string_member (user, "user_id"));
        }
    }
  g_assert_nonnull (found);
  return found;
}

/* ---- relaisctl on a device -------------------------------------------- */

static char **
make_env (const char        *passphrase,
          const char *const *extra)
{
  char **env = g_get_environ ();

  env = g_environ_unsetenv (env, "RELAIS_PASSPHRASE");
  env = g_environ_unsetenv (env, "RELAIS_NEW_PASSPHRASE");
  env = g_environ_setenv (env, "RELAIS_TEST_FAST_KDF", "1", TRUE);
  if (passphrase != NULL)
    env = g_environ_setenv (env, "RELAIS_PASSPHRASE", passphrase, TRUE);
  for (guint i = 0; extra != NULL && extra[i] != NULL; i += 2)
    env = g_environ_setenv (env, extra[i], extra[i + 1], TRUE);
  return env;
}

/* relaisctl ARGS... --vault DEV's vault, with @passphrase (NULL: none). */
static void
ctl_full (Run               *run,
          Device            *dev,
          const char        *passphrase,
          const char *const *extra_env,
          const char        *first,
          va_list            args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(GStrv) env = make_env (passphrase, extra_env);

  g_ptr_array_add (argv, (char *) relaisctl_path ());
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  if (dev != NULL)
    {
      g_ptr_array_add (argv, "--vault");
      g_ptr_array_add (argv, dev->vault);
    }
  run_argv (run, argv, env);
}

/* With the device's passphrase. */
static void
ctl (Run        *run,
     Device     *dev,
     const char *first,
     ...)
{
  va_list args;

  va_start (args, first);
  ctl_full (run, dev, dev != NULL ? dev->pass : NULL, NULL, first, args);
  va_end (args);
}

/* Without any passphrase. */
static void
ctl_nopass (Run        *run,
            Device     *dev,
            const char *first,
            ...)
{
  va_list args;

  va_start (args, first);
  ctl_full (run, dev, NULL, NULL, first, args);
  va_end (args);
}

/* The same, asserting success, returning stdout. */
static char *
ctl_ok (Device     *dev,
        const char *first,
        ...)
{
  Run run = { 0 };
  va_list args;

  va_start (args, first);
  ctl_full (&run, dev, dev->pass, NULL, first, args);
  va_end (args);
  if (run.status != 0)
    g_test_message ("relaisctl %s on %s: %d, stderr: %s", first, dev->label, run.status, run.err);
  g_assert_cmpint (run.status, ==, 0);
  g_free (run.err);
  return run.out;
}

/* A refusal: exit status 1 and one line on stderr. */
static void
assert_refused (Run        *run,
                const char *needle)
{
  if (run->status != 1 || count_lines (run->err) != 1)
    g_test_message ("status %d, stdout: %s, stderr: %s", run->status, run->out, run->err);
  g_assert_cmpint (run->status, ==, 1);
  g_assert_cmpuint (count_lines (run->err), ==, 1);
  if (needle != NULL)
    g_assert_nonnull (strcasestr (run->err, needle));
}

static Device *
device_new_pass (Ctx        *ctx,
                 const char *label,
                 const char *pass)
{
  Device *dev = g_new0 (Device, 1);
  g_auto(Run) run = { 0 };

  dev->ctx = ctx;
  dev->label = g_strdup (label);
  dev->vault = g_build_filename (ctx->dir, label, NULL);
  dev->pass = g_strdup (pass);
  ctl (&run, dev, "init", NULL);
  g_assert_cmpint (run.status, ==, 0);
  g_ptr_array_add (ctx->devices, dev);
  return dev;
}

static Device *
device_new (Ctx        *ctx,
            const char *label)
{
  return device_new_pass (ctx, label, PASS);
}

/* relaisctl enroll; returns the run for the caller to check. */
static void
enroll_run (Run        *run,
            Device     *dev,
            const char *url,
            const char *code,
            const char *cacert)
{
  g_autofree char *name = g_strdup_printf ("laptop %s", dev->label);

  if (cacert != NULL)
    ctl (run, dev, "enroll", "--server", url, "--code", code, "--name", name, "--cacert", cacert, NULL);
  else
    ctl (run, dev, "enroll", "--server", url, "--code", code, "--name", name, NULL);
}

static void
enroll (Device     *dev,
        const char *url,
        const char *code,
        const char *cacert)
{
  g_auto(Run) run = { 0 };
  g_auto(GStrv) words = NULL;

  enroll_run (&run, dev, url, code, cacert);
  if (run.status != 0)
    g_test_message ("enroll %s: %s", dev->label, run.err);
  g_assert_cmpint (run.status, ==, 0);
  /* enrolled as USER_ID, device DEVICE_ID */
  g_assert_cmpuint (count_lines (run.out), ==, 1);
  g_assert_true (g_str_has_prefix (run.out, "enrolled as "));
  g_strchomp (run.out);
  words = g_strsplit (run.out + strlen ("enrolled as "), ", device ", 2);
  g_assert_cmpuint (g_strv_length (words), ==, 2);
  g_free (dev->user_id);
  g_free (dev->device_id);
  dev->user_id = g_strdup (words[0]);
  dev->device_id = g_strdup (words[1]);
  g_assert_cmpstr (dev->user_id, !=, "");
  g_assert_cmpstr (dev->device_id, !=, "");
}

/* A new user of @org with one device enrolled at @url (NULL: the
 * server's). */
static Device *
member_new_at (Ctx        *ctx,
               const char *label,
               const char *org,
               const char *url,
               gboolean    admin)
{
  g_autofree char *name = g_strdup_printf ("User %s %u", label, ++ctx->serial);
  g_autofree char *code = user_add (ctx, name, org, admin);
  Device *dev = device_new (ctx, label);

  dev->user_name = g_strdup (name);
  enroll (dev, url != NULL ? url : ctx->server->url, code, NULL);
  {
    g_autofree char *listed = user_id_of (ctx, name);
    g_assert_cmpstr (listed, ==, dev->user_id);
  }
  return dev;
}

static Device *
member_new (Ctx        *ctx,
            const char *label,
            const char *org)
{
  return member_new_at (ctx, label, org, NULL, FALSE);
}

/* ---- Sync --------------------------------------------------------------- */

typedef struct {
  guint pushed;
  guint pulled;
  guint conflicts;
} SyncCounts;

static gboolean
parse_sync_line (const char  *out,
                 SyncCounts  *counts)
{
  SyncCounts c = { 0 };
  int end = 0;

  if (out == NULL
      || sscanf (out, "pushed %u, pulled %u, conflicts %u%n", &c.pushed, &c.pulled, &c.conflicts, &end) != 3
      || g_strcmp0 (out + end, "\n") != 0)
    return FALSE;
  if (counts != NULL)
    *counts = c;
  return TRUE;
}

static SyncCounts
sync_ok (Device *dev)
{
  g_auto(Run) run = { 0 };
  SyncCounts counts = { 0 };

  ctl (&run, dev, "sync", NULL);
  if (run.status != 0)
    g_test_message ("sync %s: %d, stdout: %s stderr: %s", dev->label, run.status, run.out, run.err);
  g_assert_cmpint (run.status, ==, 0);
  if (!parse_sync_line (run.out, &counts))
    g_test_message ("sync %s printed: %s", dev->label, run.out);
  g_assert_true (parse_sync_line (run.out, &counts));
  g_test_message ("sync %s: pushed %u, pulled %u, conflicts %u",
                  dev->label, counts.pushed, counts.pulled, counts.conflicts);
  return counts;
}

/* A sync that could not complete: not 0, and no claim of success. */
static void
assert_sync_failed (Run        *run,
                    const char *what)
{
  g_test_message ("%s: status %d, stdout: %s, stderr: %s", what, run->status, run->out, run->err);
  g_assert_cmpint (run->status, !=, 0);
  g_assert_cmpint (run->status, <, 128);
  g_assert_null (strstr (run->out, "pushed"));
  g_assert_cmpuint (count_lines (run->err), >=, 1);
}

static void
sync_fails (Device     *dev,
            const char *what)
{
  g_auto(Run) run = { 0 };

  ctl (&run, dev, "sync", NULL);
  assert_sync_failed (&run, what);
}

/* Every device syncs, in order, @times times. */
static void
sync_all (Device **devs,
          guint    n,
          guint    times)
{
  for (guint t = 0; t < times; t++)
    for (guint i = 0; i < n; i++)
      sync_ok (devs[i]);
}

/* ---- Dossiers ----------------------------------------------------------- */

static char *
person_add (Device *dev,
            char  **out_last)
{
  g_autofree char *last = marker (dev->ctx, "Nom");
  g_autofree char *out = NULL;
  char *id;

  out = ctl_ok (dev, "person", "add", "--last-name", last, "--first-name", "Hélène",
                "--birth-date", "1984-03-12", NULL);
  id = one_line (out);
  g_assert_true (g_uuid_string_is_valid (id));
  if (out_last != NULL)
    *out_last = g_steal_pointer (&last);
  return id;
}

static void
person_edit (Device     *dev,
             const char *id,
             const char *option,
             const char *value)
{
  g_autofree char *out = ctl_ok (dev, "person", "edit", id, option, value, NULL);
}

static char *
note_add (Device     *dev,
          const char *dossier,
          const char *text)
{
  g_autofree char *out = ctl_ok (dev, "note", "add", dossier, text, NULL);

  return one_line (out);
}

/* The texts of a dossier's journal (note list: date, author, text). */
static GPtrArray *
note_texts (Device     *dev,
            const char *dossier)
{
  g_autofree char *out = ctl_ok (dev, "note", "list", dossier, NULL);
  g_auto(GStrv) lines = g_strsplit (out, "\n", -1);
  GPtrArray *texts = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) cols = NULL;

      if (*lines[i] == '\0')
        continue;
      cols = g_strsplit (lines[i], "\t", 3);
      g_assert_cmpuint (g_strv_length (cols), ==, 3);
      g_ptr_array_add (texts, g_strdup (cols[2]));
    }
  return texts;
}

static guint
count_string (GPtrArray  *strings,
              const char *s)
{
  guint n = 0;

  for (guint i = 0; i < strings->len; i++)
    n += g_strcmp0 (g_ptr_array_index (strings, i), s) == 0;
  return n;
}

/* Every text of @expected in the journal exactly once, and nothing else. */
static void
assert_notes_exactly (Device     *dev,
                      const char *dossier,
                      GPtrArray  *expected)
{
  g_autoptr(GPtrArray) texts = note_texts (dev, dossier);

  for (guint i = 0; i < expected->len; i++)
    {
      guint n = count_string (texts, g_ptr_array_index (expected, i));

      if (n != 1)
        g_test_message ("%s: note %s found %u times", dev->label,
                        (char *) g_ptr_array_index (expected, i), n);
      g_assert_cmpuint (n, ==, 1);
    }
  g_assert_cmpuint (texts->len, ==, expected->len);
}

/* The export, without the time it was made: what two replicas that saw
 * the same operations must print identically. */
static JsonNode *
export_json (Device *dev)
{
  g_autofree char *out = ctl_ok (dev, "export", NULL);
  JsonNode *root = parse_json (out);

  json_object_remove_member (json_node_get_object (root), "exported_at");
  return root;
}

static char *
node_to_string (JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();

  json_generator_set_root (gen, node);
  json_generator_set_pretty (gen, TRUE);
  return json_generator_to_data (gen, NULL);
}

static char *
export_string (Device *dev)
{
  g_autoptr(JsonNode) root = export_json (dev);

  return node_to_string (root);
}

/* One dossier of the export as text, or NULL when the device lacks it. */
static char *
export_dossier (Device     *dev,
                const char *id)
{
  g_autoptr(JsonNode) root = export_json (dev);
  JsonArray *dossiers = json_object_get_array_member (json_node_get_object (root), "dossiers");

  for (guint i = 0; i < json_array_get_length (dossiers); i++)
    {
      JsonNode *node = json_array_get_element (dossiers, i);

      if (g_strcmp0 (json_object_get_string_member (json_node_get_object (node), "id"), id) == 0)
        return node_to_string (node);
    }
  return NULL;
}

static void
assert_same_exports (Device **devs,
                     guint    n)
{
  g_autofree char *first = export_string (devs[0]);

  for (guint i = 1; i < n; i++)
    {
      g_autofree char *other = export_string (devs[i]);

      if (g_strcmp0 (first, other) != 0)
        g_test_message ("%s:\n%s\n%s:\n%s", devs[0]->label, first, devs[i]->label, other);
      g_assert_cmpstr (first, ==, other);
    }
}

static JsonNode *
conflicts_json (Device *dev)
{
  g_autofree char *out = ctl_ok (dev, "conflicts", "--json", NULL);

  return parse_json (out);
}

static void
share_with_id (Device     *dev,
               const char *dossier,
               const char *user_id)
{
  g_autofree char *out = ctl_ok (dev, "share", dossier, "--with", user_id, NULL);
}

static void
share (Device     *dev,
       const char *dossier,
       Device     *with)
{
  share_with_id (dev, dossier, with->user_id);
}

/* ---- Markers: what the server holds is ciphertext --------------------- */

static void
assert_no_marker_in (Ctx          *ctx,
                     const char   *what,
                     const guint8 *data,
                     gsize         len)
{
  for (guint i = 0; i < ctx->markers->len; i++)
    {
      const char *m = g_ptr_array_index (ctx->markers, i);

      if (memmem (data, len, m, strlen (m)) != NULL)
        g_error ("marker %s found in %s", m, what);
    }
}

/* Every byte the server's store holds: the SQLite files as they are on
 * disk (database, WAL, shared memory), or every table of the PostgreSQL
 * database as pg_dump prints it. */
static void
check_markers_absent (Ctx *ctx)
{
  g_autoptr(GPtrArray) logs = server_logs (ctx);
  guint checked = 0;

  if (ctx->markers->len == 0)
    return;
  /* The server's logs: requests are logged without personal data. */
  g_assert_cmpuint (logs->len, >=, 1);
  for (guint i = 0; i < logs->len; i++)
    {
      g_autofree char *text = NULL;
      gsize len = 0;

      g_assert_true (g_file_get_contents (logs->pdata[i], &text, &len, NULL));
      assert_no_marker_in (ctx, logs->pdata[i], (const guint8 *) text, len);
    }
  if (ctx->kind == STORE_SQLITE)
    {
      const char *suffixes[] = { "", "-wal", "-shm", "-journal" };

      for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
        {
          g_autofree char *path = g_strconcat (ctx->sqlite_path, suffixes[i], NULL);
          g_autofree char *data = NULL;
          gsize len = 0;

          if (!g_file_get_contents (path, &data, &len, NULL))
            continue;
          assert_no_marker_in (ctx, path, (const guint8 *) data, len);
          checked++;
        }
      /* The database at least, with something in it. */
      g_assert_cmpuint (checked, >=, 1);
    }
  else
    {
      g_autoptr(GPtrArray) argv = g_ptr_array_new ();
      g_auto(GStrv) env = g_get_environ ();
      g_auto(Run) run = { 0 };

      g_ptr_array_add (argv, "pg_dump");
      g_ptr_array_add (argv, "--data-only");
      g_ptr_array_add (argv, "--inserts");
      g_ptr_array_add (argv, ctx->store_uri);
      run_argv (&run, argv, env);
      if (run.status != 0)
        g_test_message ("pg_dump: %s", run.err);
      g_assert_cmpint (run.status, ==, 0);
      /* The dump has the change sets in it (bytea as hex): not empty. */
      g_assert_nonnull (strstr (run.out, "INSERT INTO"));
      assert_no_marker_in (ctx, "pg_dump", (const guint8 *) run.out, strlen (run.out));
      /* bytea in hex would hide a marker from the search above: look for
       * each marker's hex too. */
      for (guint i = 0; i < ctx->markers->len; i++)
        {
          const char *m = g_ptr_array_index (ctx->markers, i);
          g_autoptr(GString) hex = g_string_new (NULL);

          for (const char *p = m; *p != '\0'; p++)
            g_string_append_printf (hex, "%02x", (guint8) *p);
          if (strstr (run.out, hex->str) != NULL)
            g_error ("marker %s found in pg_dump (hex)", m);
        }
    }
}

/* ---- Scenarios ---------------------------------------------------------- */

/* Three référents of three organisations.  A shares a dossier with B and
 * not with C: B gets all of it, and what B writes comes back to A; C gets
 * nothing of it, ever. */
static void
test_share_three_orgs (Ctx           *ctx,
                       gconstpointer  data)
{
  Device *a, *b, *c;
  g_autofree char *shared = NULL;
  g_autofree char *private = NULL;
  g_autofree char *shared_last = NULL;
  g_autofree char *private_last = NULL;
  g_autofree char *note_a = NULL;
  g_autofree char *note_b = NULL;
  g_autofree char *city = NULL;
  SyncCounts counts;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  c = member_new (ctx, "c", "Mission locale");

  shared = person_add (a, &shared_last);
  private = person_add (a, &private_last);
  note_a = marker (ctx, "note-a-");
  g_free (note_add (a, shared, note_a));
  city = marker (ctx, "Ville");
  person_edit (a, shared, "--city", city);

  counts = sync_ok (a);
  g_assert_cmpuint (counts.pushed, >=, 2);
  share (a, shared, b);
  sync_ok (a);

  /* B pulls the shared dossier whole, and nothing of the other. */
  counts = sync_ok (b);
  g_assert_cmpuint (counts.pulled, >=, 1);
  {
    g_autofree char *exported = export_string (b);
    g_autofree char *on_a = export_dossier (a, shared);
    g_autofree char *on_b = export_dossier (b, shared);

    g_assert_nonnull (strstr (exported, shared_last));
    g_assert_nonnull (strstr (exported, note_a));
    g_assert_nonnull (strstr (exported, city));
    g_assert_null (strstr (exported, private));
    g_assert_null (strstr (exported, private_last));
    g_assert_nonnull (on_b);
    g_assert_cmpstr (on_a, ==, on_b);
  }

  /* C pulls nothing at all. */
  counts = sync_ok (c);
  g_assert_cmpuint (counts.pulled, ==, 0);

  /* B writes, A reads it; C still pulls nothing. */
  note_b = marker (ctx, "note-b-");
  g_free (note_add (b, shared, note_b));
  counts = sync_ok (b);
  g_assert_cmpuint (counts.pushed, >=, 1);
  counts = sync_ok (a);
  g_assert_cmpuint (counts.pulled, >=, 1);
  counts = sync_ok (c);
  g_assert_cmpuint (counts.pulled, ==, 0);
  sync_ok (b);

  {
    g_autofree char *on_a = export_dossier (a, shared);
    g_autofree char *on_b = export_dossier (b, shared);
    g_autofree char *exported_c = export_string (c);

    g_assert_nonnull (strstr (on_a, note_b));
    g_assert_cmpstr (on_a, ==, on_b);
    g_assert_null (strstr (exported_c, shared));
    g_assert_null (strstr (exported_c, shared_last));
    g_assert_null (strstr (exported_c, note_a));
    g_assert_null (strstr (exported_c, note_b));
  }
}

/* Two référents edit the same field offline.  Both converge to one value;
 * both list the other as a conflict with its author; resolving it on one
 * closes it everywhere. */
static void
test_concurrent_edit (Ctx           *ctx,
                      gconstpointer  data)
{
  Device *a, *b;
  Device *both[2];
  g_autofree char *id = NULL;
  g_autofree char *city_a = NULL;
  g_autofree char *city_b = NULL;
  g_autofree char *winner = NULL;
  g_autofree char *loser = NULL;
  const char *loser_author = NULL;
  SyncCounts counts;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  both[0] = a;
  both[1] = b;
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_all (both, 2, 1);

  /* Offline, each writes its own city. */
  city_a = marker (ctx, "Aurillac-");
  city_b = marker (ctx, "Murat-");
  person_edit (a, id, "--city", city_a);
  person_edit (b, id, "--city", city_b);

  sync_ok (a);
  counts = sync_ok (b);
  g_assert_cmpuint (counts.conflicts, ==, 1);
  counts = sync_ok (a);
  g_assert_cmpuint (counts.conflicts, ==, 1);
  assert_same_exports (both, 2);

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(JsonNode) root = conflicts_json (both[i]);
      JsonArray *list = json_node_get_array (root);
      JsonObject *conflict;
      JsonArray *values;
      const char *first, *second;

      g_assert_cmpuint (json_array_get_length (list), ==, 1);
      conflict = json_array_get_object_element (list, 0);
      g_assert_cmpstr (json_object_get_string_member (conflict, "dossier"), ==, id);
      g_assert_cmpstr (json_object_get_string_member (conflict, "entity_id"), ==, id);
      g_assert_cmpstr (json_object_get_string_member (conflict, "field"), ==, "city");
      values = json_object_get_array_member (conflict, "values");
      g_assert_cmpuint (json_array_get_length (values), ==, 2);
      first = json_object_get_string_member (json_array_get_object_element (values, 0), "value");
      second = json_object_get_string_member (json_array_get_object_element (values, 1), "value");
      g_assert_true ((g_str_equal (first, city_a) && g_str_equal (second, city_b))
                     || (g_str_equal (first, city_b) && g_str_equal (second, city_a)));
      if (winner == NULL)
        {
          winner = g_strdup (first);
          loser = g_strdup (second);
          loser_author = g_str_equal (loser, city_a) ? a->user_id : b->user_id;
        }
      /* The same winner on both, the loser listed with its author. */
      g_assert_cmpstr (first, ==, winner);
      g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (values, 1), "author"),
                       ==, loser_author);
    }

  /* B picks the losing value: after syncs it wins everywhere, and no
   * conflict is left. */
  {
    g_autofree char *out = ctl_ok (b, "conflicts", "resolve", id, "city", "--pick", "2", NULL);
  }
  counts = sync_ok (b);
  g_assert_cmpuint (counts.conflicts, ==, 0);
  counts = sync_ok (a);
  g_assert_cmpuint (counts.conflicts, ==, 0);
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(JsonNode) root = conflicts_json (both[i]);
      g_autofree char *dossier = export_dossier (both[i], id);
      g_autofree char *expected = g_strdup_printf ("\"city\" : \"%s\"", loser);

      g_assert_cmpuint (json_array_get_length (json_node_get_array (root)), ==, 0);
      g_assert_nonnull (strstr (dossier, expected));
    }
  assert_same_exports (both, 2);
}

/* Dozens of notes written on both sides, offline, then synced in a tangle:
 * each is present exactly once everywhere. */
static void
test_many_notes (Ctx           *ctx,
                 gconstpointer  data)
{
  Device *a, *b;
  Device *both[2];
  g_autofree char *id = NULL;
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  both[0] = a;
  both[1] = b;
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_all (both, 2, 1);

  for (guint i = 0; i < 40; i++)
    {
      Device *dev = both[i % 2];
      char *text = marker (ctx, i % 2 ? "note-b-" : "note-a-");

      g_free (note_add (dev, id, text));
      g_ptr_array_add (texts, text);
      /* Syncs in between, on one side or the other. */
      if (i % 7 == 3)
        sync_ok (both[(i / 7) % 2]);
    }
  sync_all (both, 2, 2);
  assert_notes_exactly (a, id, texts);
  assert_notes_exactly (b, id, texts);
  assert_same_exports (both, 2);
}

/* A référent's second laptop: a new code for the same user, the same
 * passphrase, and every dossier they are in comes back (their own and one
 * a colleague shared).  A wrong passphrase is refused with one line. */
static void
test_second_device (Ctx           *ctx,
                    gconstpointer  data)
{
  Device *a, *b, *a2, *wrong;
  Device *pair[2];
  g_autofree char *own = NULL;
  g_autofree char *from_b = NULL;
  g_autofree char *code = NULL;
  g_autofree char *code2 = NULL;
  g_autofree char *note = NULL;
  SyncCounts counts;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  own = person_add (a, NULL);
  from_b = person_add (b, NULL);
  g_free (note_add (a, own, "premier entretien"));
  sync_ok (a);
  sync_ok (b);
  share (b, from_b, a);
  sync_ok (b);
  sync_ok (a);

  /* relais-server user code USER_ID: a new code, alone on its line. */
  {
    g_auto(Run) run = { 0 };

    admin_run (ctx, &run, "user", "code", a->user_id, NULL);
    g_assert_cmpint (run.status, ==, 0);
    code = one_line (run.out);
  }
  a2 = device_new (ctx, "a2");
  enroll (a2, ctx->server->url, code, NULL);
  g_assert_cmpstr (a2->user_id, ==, a->user_id);
  g_assert_cmpstr (a2->device_id, !=, a->device_id);
  counts = sync_ok (a2);
  g_assert_cmpuint (counts.pulled, >=, 2);
  pair[0] = a;
  pair[1] = a2;
  assert_same_exports (pair, 2);

  /* What the new laptop writes reaches the old one and the colleague. */
  note = marker (ctx, "note-a2-");
  g_free (note_add (a2, from_b, note));
  sync_ok (a2);
  sync_ok (a);
  sync_ok (b);
  {
    g_autofree char *on_a = export_dossier (a, from_b);
    g_autofree char *on_b = export_dossier (b, from_b);

    g_assert_nonnull (strstr (on_a, note));
    g_assert_cmpstr (on_a, ==, on_b);
  }

  /* Another laptop whose passphrase is not the user's: refused, one line. */
  {
    g_auto(Run) run = { 0 };

    admin_run (ctx, &run, "user", "code", a->user_id, NULL);
    g_assert_cmpint (run.status, ==, 0);
    code2 = one_line (run.out);
  }
  wrong = device_new_pass (ctx, "wrong", "not the passphrase");
  {
    g_auto(Run) run = { 0 };

    enroll_run (&run, wrong, ctx->server->url, code2, NULL);
    assert_refused (&run, "passphrase");
  }
  {
    g_auto(Run) run = { 0 };

    /* Not enrolled: sync refuses too, and the vault has no dossier. */
    ctl (&run, wrong, "sync", NULL);
    g_assert_cmpint (run.status, ==, 1);
    g_assert_null (strstr (run.out, "pushed"));
  }
  {
    g_autofree char *exported = export_string (wrong);

    g_assert_null (strstr (exported, own));
    g_assert_null (strstr (exported, from_b));
  }
}

/* Unshare: the removed member gets nothing written after the removal. */
static void
test_unshare (Ctx           *ctx,
              gconstpointer  data)
{
  Device *a, *b, *c;
  g_autofree char *id = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *city = NULL;
  SyncCounts counts;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  c = member_new (ctx, "c", "Mission locale");
  id = person_add (a, NULL);
  before = marker (ctx, "avant-");
  g_free (note_add (a, id, before));
  sync_ok (a);
  share (a, id, b);
  share (a, id, c);
  sync_ok (b);
  sync_ok (c);
  {
    g_autofree char *on_b = export_dossier (b, id);

    g_assert_nonnull (on_b);
    g_assert_nonnull (strstr (on_b, before));
  }

  {
    g_autofree char *out = ctl_ok (a, "unshare", id, "--with", b->user_id, NULL);
  }
  after = marker (ctx, "apres-");
  city = marker (ctx, "Ville");
  g_free (note_add (a, id, after));
  person_edit (a, id, "--city", city);
  counts = sync_ok (a);
  g_assert_cmpuint (counts.pushed, >=, 1);

  /* B pulls nothing new; C, still a member, gets it all. */
  counts = sync_ok (b);
  g_assert_cmpuint (counts.pulled, ==, 0);
  {
    g_autofree char *exported = export_string (b);

    g_assert_null (strstr (exported, after));
    g_assert_null (strstr (exported, city));
  }
  counts = sync_ok (c);
  g_assert_cmpuint (counts.pulled, >=, 1);
  {
    g_autofree char *on_a = export_dossier (a, id);
    g_autofree char *on_c = export_dossier (c, id);

    g_assert_nonnull (strstr (on_c, after));
    g_assert_cmpstr (on_a, ==, on_c);
  }

  /* C writes at the new epoch; A reads it; B still nothing. */
  {
    g_autofree char *later = marker (ctx, "plus-tard-");

    g_free (note_add (c, id, later));
    sync_ok (c);
    sync_ok (a);
    counts = sync_ok (b);
    g_assert_cmpuint (counts.pulled, ==, 0);
    {
      g_autofree char *on_a = export_dossier (a, id);
      g_autofree char *exported = export_string (b);

      g_assert_nonnull (strstr (on_a, later));
      g_assert_null (strstr (exported, later));
    }
  }
}

/* A forgotten passphrase: the administrator, holding the organisation's
 * recovery key made offline, re-grants the user's dossiers to their new
 * identity. */
static void
test_recovery (Ctx           *ctx,
               gconstpointer  data)
{
  g_autofree char *key_file = g_build_filename (ctx->dir, "recovery.key", NULL);
  g_autofree char *public_key = NULL;
  g_autofree char *own = NULL;
  g_autofree char *shared = NULL;
  g_autofree char *note = NULL;
  g_autofree char *code = NULL;
  g_autofree char *new_name = NULL;
  Device *admin, *u, *colleague, *u_new;
  GStatBuf st;

  if (ctx_skipped (ctx))
    return;

  /* Made offline, without a vault. */
  {
    g_auto(Run) run = { 0 };

    ctl_nopass (&run, NULL, "recovery-key", "new", "--out", key_file, NULL);
    if (run.status != 0)
      g_test_message ("recovery-key new: %s", run.err);
    g_assert_cmpint (run.status, ==, 0);
    public_key = one_line (run.out);
    g_assert_cmpuint (strlen (public_key), ==, 43);
    g_assert_cmpint (g_stat (key_file, &st), ==, 0);
    g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  }
  {
    g_auto(Run) run = { 0 };

    admin_run (ctx, &run, "org", "set-recovery-key", "--org", "CCAS Aurillac", "--key", public_key, NULL);
    g_assert_cmpint (run.status, ==, 0);
  }
  admin = member_new_at (ctx, "admin", "CCAS Aurillac", NULL, TRUE);
  u = member_new (ctx, "u", "CCAS Aurillac");
  colleague = member_new (ctx, "colleague", "France Travail Cantal");

  own = person_add (u, NULL);
  note = marker (ctx, "note-u-");
  g_free (note_add (u, own, note));
  sync_ok (u);
  shared = person_add (colleague, NULL);
  sync_ok (colleague);
  share (colleague, shared, u);
  sync_ok (colleague);
  sync_ok (u);

  /* The passphrase is forgotten: a new identity for the same person. */
  new_name = g_strdup_printf ("%s (new)", u->user_name);
  code = user_add (ctx, new_name, "CCAS Aurillac", FALSE);
  u_new = device_new_pass (ctx, "u-new", "a brand new passphrase");
  enroll (u_new, ctx->server->url, code, NULL);
  g_assert_cmpstr (u_new->user_id, !=, u->user_id);
  {
    SyncCounts counts = sync_ok (u_new);
    g_assert_cmpuint (counts.pulled, ==, 0);
  }

  /* Not an administrator: refused. */
  {
    g_auto(Run) run = { 0 };

    ctl (&run, u, "recover", "--recovery-key", key_file, "--from", u->user_id, "--to", u_new->user_id, NULL);
    assert_refused (&run, NULL);
  }
  {
    g_autofree char *out = ctl_ok (admin, "recover", "--recovery-key", key_file,
                                   "--from", u->user_id, "--to", u_new->user_id, NULL);
  }
  {
    SyncCounts counts = sync_ok (u_new);
    g_autofree char *on_new = export_dossier (u_new, own);
    g_autofree char *on_old = export_dossier (u, own);

    g_assert_cmpuint (counts.pulled, >=, 1);
    g_assert_nonnull (on_new);
    g_assert_nonnull (strstr (on_new, note));
    g_assert_cmpstr (on_new, ==, on_old);
  }
  /* A dossier of another organisation, shared with the user: the user's
   * syncs added this organisation's recovery wrap (PROTOCOL.md §5.2,
   * "Filling recovery wraps"), so it came back too.  Its team sharing it
   * again with the new identity is harmless. */
  {
    g_autofree char *shared_new = export_dossier (u_new, shared);
    g_autofree char *shared_col = export_dossier (colleague, shared);

    g_assert_nonnull (shared_new);
    g_assert_cmpstr (shared_new, ==, shared_col);
  }
  share (colleague, shared, u_new);
  sync_ok (u_new);
  {
    g_autofree char *shared_new = export_dossier (u_new, shared);
    g_autofree char *shared_col = export_dossier (colleague, shared);

    g_assert_nonnull (shared_new);
    g_assert_cmpstr (shared_new, ==, shared_col);
  }
  /* What the new identity writes reaches the team. */
  {
    g_autofree char *later = marker (ctx, "note-new-");

    g_free (note_add (u_new, own, later));
    sync_ok (u_new);
    sync_ok (u);
    {
      g_autofree char *on_old = export_dossier (u, own);

      g_assert_nonnull (strstr (on_old, later));
    }
  }
  /* The admin's own vault reads none of it. */
  {
    g_autofree char *exported = export_string (admin);

    g_assert_null (strstr (exported, note));
  }
}

static JsonArray *
device_list (Ctx        *ctx,
             JsonNode  **out_root)
{
  g_auto(Run) run = { 0 };

  admin_run (ctx, &run, "device", "list", "--json", NULL);
  g_assert_cmpint (run.status, ==, 0);
  *out_root = parse_json (run.out);
  return json_node_get_array (*out_root);
}

/* A revoked device: refused at its next sync, which wipes its vault. */
static void
test_revoked (Ctx           *ctx,
              gconstpointer  data)
{
  Device *a, *b;
  g_autofree char *id = NULL;
  g_autoptr(JsonNode) root = NULL;
  JsonArray *devices;
  gboolean listed = FALSE;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_ok (b);
  g_assert_true (g_file_test (b->vault, G_FILE_TEST_IS_DIR));

  devices = device_list (ctx, &root);
  for (guint i = 0; i < json_array_get_length (devices); i++)
    {
      JsonObject *d = json_array_get_object_element (devices, i);

      if (g_strcmp0 (json_object_get_string_member (d, "device_id"), b->device_id) == 0)
        {
          listed = TRUE;
          g_assert_cmpstr (json_object_get_string_member (d, "user_id"), ==, b->user_id);
          g_assert_false (json_object_get_boolean_member (d, "revoked"));
        }
    }
  g_assert_true (listed);

  {
    g_auto(Run) run = { 0 };

    admin_run (ctx, &run, "device", "revoke", b->device_id, NULL);
    g_assert_cmpint (run.status, ==, 0);
  }
  {
    g_autoptr(JsonNode) again = NULL;
    JsonArray *list = device_list (ctx, &again);

    for (guint i = 0; i < json_array_get_length (list); i++)
      {
        JsonObject *d = json_array_get_object_element (list, i);

        if (g_strcmp0 (json_object_get_string_member (d, "device_id"), b->device_id) == 0)
          g_assert_true (json_object_get_boolean_member (d, "revoked"));
      }
  }

  {
    g_auto(Run) run = { 0 };

    ctl (&run, b, "sync", NULL);
    g_test_message ("revoked sync: %d %s %s", run.status, run.out, run.err);
    g_assert_cmpint (run.status, ==, 1);
    g_assert_null (strstr (run.out, "pushed"));
    g_assert_cmpuint (count_lines (run.err), >=, 1);
  }
  /* The vault and its spool are gone: no file of it is left. */
  {
    g_autoptr(GDir) dir = g_dir_open (b->vault, 0, NULL);

    g_assert_true (dir == NULL || g_dir_read_name (dir) == NULL);
  }
  {
    g_auto(Run) run = { 0 };

    ctl (&run, b, "export", NULL);
    g_assert_cmpint (run.status, ==, 1);
  }
  /* The others carry on. */
  sync_ok (a);
}

/* A USB stick from a place with no network: B's change sets exported to a
 * file, imported by A, the same dossier after; importing twice adds
 * nothing. */
static void
test_bundle (Ctx           *ctx,
             gconstpointer  data)
{
  g_autofree char *file = g_build_filename (ctx->dir, "stick.rlbundle", NULL);
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *id = NULL;
  g_autofree char *city = NULL;
  Device *a, *b;
  guint exported = 0, imported = 0, new_ops = 0;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_ok (b);

  /* B, out of reach of the network. */
  for (guint i = 0; i < 5; i++)
    {
      char *text = marker (ctx, "village-");

      g_free (note_add (b, id, text));
      g_ptr_array_add (texts, text);
    }
  city = marker (ctx, "Ville");
  person_edit (b, id, "--city", city);
  {
    g_autofree char *out = ctl_ok (b, "bundle", "export", file, NULL);

    g_assert_cmpint (sscanf (out, "exported %u change sets", &exported), ==, 1);
    g_assert_cmpuint (exported, >=, 1);
  }
  {
    g_autofree char *out = ctl_ok (a, "bundle", "import", file, NULL);

    g_assert_cmpint (sscanf (out, "imported %u change sets, %u new operations", &imported, &new_ops), ==, 2);
    g_assert_cmpuint (imported, ==, exported);
    g_assert_cmpuint (new_ops, >=, 6);
  }
  assert_notes_exactly (a, id, texts);
  {
    g_autofree char *on_a = export_dossier (a, id);
    g_autofree char *on_b = export_dossier (b, id);

    g_assert_cmpstr (on_a, ==, on_b);
  }
  /* Again: nothing new. */
  {
    g_autofree char *out = ctl_ok (a, "bundle", "import", file, NULL);

    g_assert_cmpint (sscanf (out, "imported %u change sets, %u new operations", &imported, &new_ops), ==, 2);
    g_assert_cmpuint (new_ops, ==, 0);
  }
  /* A damaged stick: refused whole, nothing changes. */
  {
    g_autofree char *bytes = NULL;
    g_autofree char *before = export_string (a);
    g_autofree char *after = NULL;
    g_autofree char *damaged = g_build_filename (ctx->dir, "damaged.rlbundle", NULL);
    gsize len = 0;
    g_auto(Run) run = { 0 };

    g_assert_true (g_file_get_contents (file, &bytes, &len, NULL));
    bytes[len / 2] ^= 0x40;
    g_assert_true (g_file_set_contents (damaged, bytes, len, NULL));
    ctl (&run, a, "bundle", "import", damaged, NULL);
    assert_refused (&run, NULL);
    after = export_string (a);
    g_assert_cmpstr (before, ==, after);
  }
  /* When the network comes back, nothing is doubled. */
  sync_ok (b);
  sync_ok (a);
  sync_ok (b);
  assert_notes_exactly (a, id, texts);
  assert_notes_exactly (b, id, texts);
}

static JsonNode *
sync_status (Device *dev)
{
  g_auto(Run) run = { 0 };

  ctl_nopass (&run, dev, "sync", "status", "--json", NULL);
  if (run.status != 0)
    g_test_message ("sync status: %s", run.err);
  g_assert_cmpint (run.status, ==, 0);
  return parse_json (run.out);
}

/* Background sync without the passphrase: what was sealed goes out, what
 * comes in waits in the spool until the next unlocked sync applies it. */
static void
test_background (Ctx           *ctx,
                 gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *note_a = NULL;
  g_autofree char *note_b = NULL;
  g_autofree char *url = NULL;
  RelaisFaultProxy *proxy;
  Device *a, *b;
  guint pushed = 0, pulled = 0;

  if (ctx_skipped (ctx))
    return;
  proxy = ctx_proxy (ctx);
  url = relais_fault_proxy_get_url (proxy);
  a = member_new_at (ctx, "a", "CCAS Aurillac", url, FALSE);
  b = member_new (ctx, "b", "France Travail Cantal");
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_ok (b);

  {
    g_autoptr(JsonNode) status = sync_status (a);
    JsonObject *obj = json_node_get_object (status);

    g_assert_true (json_object_get_boolean_member (obj, "enrolled"));
    g_assert_cmpstr (json_object_get_string_member (obj, "user_id"), ==, a->user_id);
    g_assert_cmpstr (json_object_get_string_member (obj, "device_id"), ==, a->device_id);
    g_assert_cmpstr (json_object_get_string_member (obj, "org"), ==, "CCAS Aurillac");
    g_assert_cmpstr (json_object_get_string_member (obj, "server"), ==, url);
    g_assert_cmpint (json_object_get_int_member (obj, "pending"), ==, 0);
    g_assert_cmpint (json_object_get_int_member (obj, "last_success"), >, 0);
  }

  /* A writes; its sync seals it but cannot reach the server. */
  note_a = marker (ctx, "note-a-");
  g_free (note_add (a, id, note_a));
  relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_REFUSE, 0, NULL, 0);
  sync_fails (a, "sync with the server out of reach");
  g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_REFUSE), >=, 1);
  {
    g_autoptr(JsonNode) status = sync_status (a);
    JsonObject *obj = json_node_get_object (status);

    g_assert_cmpint (json_object_get_int_member (obj, "pending"), >=, 1);
    g_assert_false (json_object_get_null_member (obj, "last_error"));
  }

  /* Back in reach: the background sync pushes it without the passphrase. */
  relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_PASS, 0, NULL, 0);
  {
    g_auto(Run) run = { 0 };

    ctl_nopass (&run, a, "sync", "--background", NULL);
    if (run.status != 0)
      g_test_message ("sync --background: %s", run.err);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpint (sscanf (run.out, "pushed %u, pulled %u", &pushed, &pulled), ==, 2);
    g_assert_cmpuint (pushed, >=, 1);
  }
  {
    g_autoptr(JsonNode) status = sync_status (a);
    JsonObject *obj = json_node_get_object (status);

    g_assert_cmpint (json_object_get_int_member (obj, "pending"), ==, 0);
    g_assert_true (json_object_get_null_member (obj, "last_error"));
  }
  sync_ok (b);
  {
    g_autofree char *on_b = export_dossier (b, id);

    g_assert_nonnull (strstr (on_b, note_a));
  }

  /* B writes; A's background sync pulls it into the spool; A's next
   * unlocked sync applies it. */
  note_b = marker (ctx, "note-b-");
  g_free (note_add (b, id, note_b));
  sync_ok (b);
  {
    g_auto(Run) run = { 0 };

    ctl_nopass (&run, a, "sync", "--background", NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpint (sscanf (run.out, "pushed %u, pulled %u", &pushed, &pulled), ==, 2);
    g_assert_cmpuint (pulled, >=, 1);
  }
  /* The spool holds it sealed: no marker in clear there either. */
  {
    g_autofree char *spool = g_build_filename (a->vault, "spool", NULL);
    g_autoptr(GDir) dir = NULL;
    g_autofree char *in = g_build_filename (spool, "in", NULL);
    const char *name;
    guint files = 0;

    dir = g_dir_open (in, 0, NULL);
    g_assert_nonnull (dir);
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *path = g_build_filename (in, name, NULL);
        g_autofree char *bytes = NULL;
        gsize len = 0;

        g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
        g_assert_null (memmem (bytes, len, note_b, strlen (note_b)));
        files++;
      }
    g_assert_cmpuint (files, >=, 1);
  }
  {
    SyncCounts counts = sync_ok (a);
    g_autofree char *on_a = export_dossier (a, id);
    g_autofree char *on_b = export_dossier (b, id);

    g_assert_cmpuint (counts.pulled, ==, 0);
    g_assert_nonnull (strstr (on_a, note_b));
    g_assert_cmpstr (on_a, ==, on_b);
  }
}

static Device *
member_new_full (Ctx        *ctx,
                 const char *label,
                 const char *org,
                 const char *url,
                 const char *cacert)
{
  g_autofree char *name = g_strdup_printf ("User %s %u", label, ++ctx->serial);
  g_autofree char *code = user_add (ctx, name, org, FALSE);
  Device *dev = device_new (ctx, label);

  dev->user_name = g_strdup (name);
  enroll (dev, url, code, cacert);
  return dev;
}

static void
openssl (Ctx        *ctx,
         const char *first,
         ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(GStrv) env = g_get_environ ();
  g_auto(Run) run = { 0 };
  va_list args;

  g_ptr_array_add (argv, "openssl");
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  run_argv (&run, argv, env);
  if (run.status != 0)
    g_test_message ("openssl %s: %s", first, run.err);
  g_assert_cmpint (run.status, ==, 0);
}

/* A CA of the test's own and a server certificate it signed, for
 * 127.0.0.1 and localhost. */
static void
make_certificates (Ctx        *ctx,
                   const char *name,
                   char      **out_ca,
                   char      **out_cert,
                   char      **out_key)
{
  g_autofree char *ca_key = g_strdup_printf ("%s/%s-ca.key", ctx->dir, name);
  g_autofree char *ca = g_strdup_printf ("%s/%s-ca.pem", ctx->dir, name);
  g_autofree char *key = g_strdup_printf ("%s/%s-server.key", ctx->dir, name);
  g_autofree char *csr = g_strdup_printf ("%s/%s-server.csr", ctx->dir, name);
  g_autofree char *cert = g_strdup_printf ("%s/%s-server.pem", ctx->dir, name);
  g_autofree char *ext = g_strdup_printf ("%s/%s-ext.cnf", ctx->dir, name);
  g_autofree char *serial = g_strdup_printf ("%s/%s-ca.srl", ctx->dir, name);
  g_autofree char *subject = g_strdup_printf ("/CN=Relais test CA %s", name);

  openssl (ctx, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", subject,
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL);
  openssl (ctx, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1", NULL);
  g_assert_true (g_file_set_contents (ext,
                                      "basicConstraints=CA:FALSE\n"
                                      "keyUsage=critical,digitalSignature,keyAgreement\n"
                                      "extendedKeyUsage=serverAuth\n"
                                      "subjectAltName=IP:127.0.0.1,DNS:localhost\n", -1, NULL));
  openssl (ctx, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAserial", serial,
           "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext, NULL);
  *out_ca = g_steal_pointer (&ca);
  *out_cert = g_steal_pointer (&cert);
  *out_key = g_steal_pointer (&key);
}

/* TLS with a certificate made by the test: devices that trust its CA sync
 * through it; one that does not is refused; plain http:// to a host that
 * is not loopback is refused before any connection. */
static void
test_tls (Ctx           *ctx,
          gconstpointer  data)
{
  g_autofree char *ca = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *other_ca = NULL;
  g_autofree char *other_cert = NULL;
  g_autofree char *other_key = NULL;
  g_autofree char *by_name = NULL;
  g_autofree char *id = NULL;
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  Device *a, *b;
  Device *both[2];

  if (ctx_skipped (ctx))
    return;
  make_certificates (ctx, "good", &ca, &cert, &key);
  make_certificates (ctx, "other", &other_ca, &other_cert, &other_key);

  server_stop (ctx->server);
  server_free (ctx->server);
  ctx->server = server_start_full (ctx->store_uri, ctx->dir, cert, key);
  g_assert_true (g_str_has_prefix (ctx->server->url, "https://127.0.0.1:"));
  by_name = g_strdup_printf ("https://localhost:%u", ctx->server->port);

  a = member_new_full (ctx, "a", "CCAS Aurillac", ctx->server->url, ca);
  b = member_new_full (ctx, "b", "France Travail Cantal", by_name, ca);
  both[0] = a;
  both[1] = b;
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_ok (b);
  for (guint i = 0; i < 6; i++)
    {
      char *text = marker (ctx, "tls-");

      g_free (note_add (both[i % 2], id, text));
      g_ptr_array_add (texts, text);
    }
  sync_all (both, 2, 2);
  assert_notes_exactly (a, id, texts);
  assert_notes_exactly (b, id, texts);
  assert_same_exports (both, 2);

  /* Verification is on: without the CA, or with another one, refused. */
  {
    g_autofree char *code = user_add (ctx, "No CA", "Mission locale", FALSE);
    Device *c = device_new (ctx, "c");
    g_auto(Run) run = { 0 };
    g_auto(Run) again = { 0 };

    enroll_run (&run, c, ctx->server->url, code, NULL);
    assert_refused (&run, NULL);
    enroll_run (&again, c, ctx->server->url, code, other_ca);
    assert_refused (&again, NULL);
    g_assert_false (g_str_has_prefix (again.out, "enrolled"));
  }

  /* http:// to a host that is not loopback: refused before connecting
   * (192.0.2.0/24 is reserved for documentation: a connection attempt
   * would hang until it timed out). */
  {
    g_autofree char *code = user_add (ctx, "Plain", "Mission locale", FALSE);
    Device *d = device_new (ctx, "d");
    g_auto(Run) run = { 0 };
    gint64 start = g_get_monotonic_time ();

    enroll_run (&run, d, "http://192.0.2.10:8080", code, NULL);
    assert_refused (&run, NULL);
    g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  }
}

/* Runs relaisctl sync on @dev without waiting. */
static GSubprocess *
sync_spawn (Device *dev)
{
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_auto(GStrv) env = make_env (dev->pass, NULL);
  g_autoptr(GError) error = NULL;
  GSubprocess *proc;

  g_subprocess_launcher_set_environ (launcher, env);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  proc = g_subprocess_launcher_spawn (launcher, &error, relaisctl_path (), "sync",
                                      "--vault", dev->vault, NULL);
  g_assert_no_error (error);
  return proc;
}

static void
sync_wait (GSubprocess *proc,
           Run         *run)
{
  g_autoptr(GError) error = NULL;

  memset (run, 0, sizeof *run);
  g_assert_true (g_subprocess_communicate_utf8 (proc, NULL, NULL, &run->out, &run->err, &error));
  g_assert_no_error (error);
  if (g_subprocess_get_if_exited (proc))
    run->status = g_subprocess_get_exit_status (proc);
  else
    run->status = 128 + g_subprocess_get_term_sig (proc);
}

/* Two members syncing through the proxy, a dossier shared, and the notes
 * each wrote. */
typedef struct {
  Device    *a;
  Device    *b;
  char      *id;
  GPtrArray *texts;
} Pair;

static void
pair_setup (Ctx  *ctx,
            Pair *pair)
{
  g_autofree char *url = relais_fault_proxy_get_url (ctx_proxy (ctx));

  pair->a = member_new_at (ctx, "a", "CCAS Aurillac", url, FALSE);
  pair->b = member_new_at (ctx, "b", "France Travail Cantal", url, FALSE);
  pair->id = person_add (pair->a, NULL);
  pair->texts = g_ptr_array_new_with_free_func (g_free);
  sync_ok (pair->a);
  share (pair->a, pair->id, pair->b);
  sync_ok (pair->b);
}

static void
pair_clear (Pair *pair)
{
  g_free (pair->id);
  g_ptr_array_unref (pair->texts);
}

/* A few notes on each side, B's pushed already: A's next sync has both
 * something to push and something to pull. */
static void
pair_write (Ctx  *ctx,
            Pair *pair,
            guint n)
{
  for (guint i = 0; i < 2 * n; i++)
    {
      Device *dev = i % 2 ? pair->b : pair->a;
      char *text = marker (ctx, i % 2 ? "note-b-" : "note-a-");

      g_free (note_add (dev, pair->id, text));
      g_ptr_array_add (pair->texts, text);
    }
  sync_ok (pair->b);
}

static void
pair_converge (Pair *pair)
{
  Device *both[2] = { pair->a, pair->b };

  sync_all (both, 2, 2);
  assert_notes_exactly (pair->a, pair->id, pair->texts);
  assert_notes_exactly (pair->b, pair->id, pair->texts);
  assert_same_exports (both, 2);
}

/* The fault proxy between relaisctl and the server: a refused connection,
 * an answer lost after the server acted, a request or an answer cut in
 * its body, a slow network.  A sync that met a fault fails and says
 * nothing of success; the next ones converge, every note exactly once. */
static void
test_faults (Ctx           *ctx,
             gconstpointer  data)
{
  struct {
    RelaisFaultMode mode;
    guint           param;
    const char     *match;
    const char     *what;
    gboolean        fails;
  } faults[] = {
    { RELAIS_FAULT_REFUSE, 0, NULL, "every connection refused", TRUE },
    { RELAIS_FAULT_REFUSE, 0, "GET /v1/changesets", "pulls refused", TRUE },
    { RELAIS_FAULT_LOSE_RESPONSE, 0, "POST /v1/changesets", "push stored, answer lost", TRUE },
    { RELAIS_FAULT_LOSE_RESPONSE, 0, "GET /v1/changesets", "pull answer lost", TRUE },
    { RELAIS_FAULT_CUT_REQUEST, 0, "POST /v1/changesets", "push cut mid-body", TRUE },
    { RELAIS_FAULT_CUT_RESPONSE, 0, "POST /v1/changesets", "push answer cut mid-body", TRUE },
    { RELAIS_FAULT_CUT_RESPONSE, 0, "GET /v1/changesets", "pull answer cut mid-body", TRUE },
    { RELAIS_FAULT_CUT_RESPONSE, 100, "GET /v1/changesets", "pull answer cut early", TRUE },
    { RELAIS_FAULT_DELAY, 400, NULL, "slow network", FALSE },
  };
  RelaisFaultProxy *proxy;
  Pair pair = { 0 };

  if (ctx_skipped (ctx))
    return;
  proxy = ctx_proxy (ctx);
  pair_setup (ctx, &pair);

  for (guint i = 0; i < G_N_ELEMENTS (faults); i++)
    {
      g_auto(Run) run = { 0 };

      g_test_message ("fault: %s", faults[i].what);
      pair_write (ctx, &pair, 3);
      relais_fault_proxy_reset_counts (proxy);
      relais_fault_proxy_set_fault (proxy, faults[i].mode, faults[i].param, faults[i].match, 0);
      ctl (&run, pair.a, "sync", NULL);
      relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_PASS, 0, NULL, 0);
      /* The fault really happened. */
      g_assert_cmpuint (relais_fault_proxy_get_count (proxy, faults[i].mode), >=, 1);
      if (faults[i].fails)
        assert_sync_failed (&run, faults[i].what);
      else
        {
          g_assert_cmpint (run.status, ==, 0);
          g_assert_true (parse_sync_line (run.out, NULL));
        }
      pair_converge (&pair);
    }
  pair_clear (&pair);
}

/* The server stopped, or killed, while a sync is between its push and its
 * pull, then started again on the same store: the sync fails honestly and
 * the next ones converge. */
static void
test_restart (Ctx           *ctx,
              gconstpointer  data)
{
  RelaisFaultProxy *proxy;
  Pair pair = { 0 };

  if (ctx_skipped (ctx))
    return;
  proxy = ctx_proxy (ctx);
  pair_setup (ctx, &pair);

  for (guint round = 0; round < 2; round++)
    {
      gboolean kill_it = round == 1;
      g_autoptr(GSubprocess) proc = NULL;
      g_auto(Run) run = { 0 };
      gint64 deadline;

      pair_write (ctx, &pair, 3);
      relais_fault_proxy_reset_counts (proxy);
      /* Hold the pull in the proxy: the push has been answered by then. */
      relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_DELAY, 1500, "GET /v1/changesets", 1);
      proc = sync_spawn (pair.a);
      deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
      while (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_DELAY) == 0)
        {
          g_assert_cmpint (g_get_monotonic_time (), <, deadline);
          g_usleep (10 * 1000);
        }
      if (kill_it)
        server_kill (ctx->server);
      else
        server_stop (ctx->server);
      sync_wait (proc, &run);
      assert_sync_failed (&run, kill_it ? "server killed mid-sync" : "server stopped mid-sync");
      ctx_restart_server (ctx, kill_it);
      pair_converge (&pair);
    }
  pair_clear (&pair);
}

/* A fresh laptop pulls hundreds of change sets, in pages; the answer for
 * the second page is cut: the next sync resumes after the first page
 * instead of starting again, and both laptops end with the same
 * dossiers. */
static void
test_paged_pull (Ctx           *ctx,
                 gconstpointer  data)
{
  const guint rows = 700;
  g_autofree char *csv_path = g_build_filename (ctx->dir, "people.csv", NULL);
  g_autofree char *url = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *code = NULL;
  g_autoptr(GString) csv = g_string_new ("Nom;Prénom;Date de naissance;Téléphone;Code postal;Commune\r\n");
  RelaisFaultProxy *proxy;
  Device *b1, *b2;
  Device *both[2];
  SyncCounts counts;
  g_auto(Run) run = { 0 };

  if (ctx_skipped (ctx))
    return;
  proxy = ctx_proxy (ctx);
  url = relais_fault_proxy_get_url (proxy);
  b1 = member_new_at (ctx, "b1", "France Travail Cantal", url, FALSE);

  /* One marker in every name. */
  prefix = marker (ctx, "Page");
  for (guint i = 0; i < rows; i++)
    g_string_append_printf (csv, "%s%04u;Prénom%u;%02u/%02u/%04u;06 %02u %02u %02u %02u;15%03u;Commune %u\r\n",
                            prefix, i, i % 97, 1 + i % 28, 1 + i % 12, 1950 + i % 50,
                            i % 100, (i / 100) % 100, 12, 34, i % 1000, i % 50);
  g_assert_true (g_file_set_contents (csv_path, csv->str, csv->len, NULL));
  {
    g_autofree char *out = ctl_ok (b1, "import", csv_path, NULL);
  }
  counts = sync_ok (b1);
  g_assert_cmpuint (counts.pushed, >=, rows);

  admin_run (ctx, &run, "user", "code", b1->user_id, NULL);
  g_assert_cmpint (run.status, ==, 0);
  code = one_line (run.out);
  b2 = device_new (ctx, "b2");
  enroll (b2, url, code, NULL);

  relais_fault_proxy_reset_counts (proxy);
  relais_fault_proxy_set_fault_after (proxy, RELAIS_FAULT_CUT_RESPONSE, 0, "GET /v1/changesets", 1, 0);
  sync_fails (b2, "second page of the pull cut");
  relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_PASS, 0, NULL, 0);
  g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_CUT_RESPONSE), ==, 1);

  /* Resumed after the first page: fewer than all, more than none. */
  counts = sync_ok (b2);
  g_assert_cmpuint (counts.pulled, >, 0);
  g_assert_cmpuint (counts.pulled, <, rows);
  counts = sync_ok (b2);
  g_assert_cmpuint (counts.pulled, ==, 0);
  both[0] = b1;
  both[1] = b2;
  assert_same_exports (both, 2);
  {
    g_autofree char *out = ctl_ok (b2, "person", "list", NULL);

    g_assert_cmpuint (count_lines (out), ==, rows);
  }
}

/* The server keeps no state of its own: two relais-server processes on
 * one store serve the same devices.  A's syncs go through a proxy that
 * switches between them at every sync (its cursor made by one is taken
 * by the other); B talks to the second one only. */
static void
test_two_servers (Ctx           *ctx,
                  gconstpointer  data)
{
  g_autofree char *url = NULL;
  RelaisFaultProxy *proxy;
  Server *second;
  Pair pair = { 0 };
  Device *b;

  if (ctx_skipped (ctx))
    return;
  second = server_start (ctx->store_uri, ctx->dir);
  proxy = ctx_proxy (ctx);
  url = relais_fault_proxy_get_url (proxy);
  pair.a = member_new_at (ctx, "a", "CCAS Aurillac", url, FALSE);
  b = pair.b = member_new_at (ctx, "b", "France Travail Cantal", second->url, FALSE);
  pair.id = person_add (pair.a, NULL);
  pair.texts = g_ptr_array_new_with_free_func (g_free);
  sync_ok (pair.a);
  share (pair.a, pair.id, b);
  sync_ok (b);

  for (guint round = 0; round < 6; round++)
    {
      relais_fault_proxy_set_upstream (proxy, round % 2 ? ctx->server->port : second->port);
      pair_write (ctx, &pair, 2);
      sync_ok (pair.a);
    }
  relais_fault_proxy_set_upstream (proxy, second->port);
  pair_converge (&pair);
  relais_fault_proxy_set_upstream (proxy, ctx->server->port);
  pair_converge (&pair);
  server_stop (second);
  server_free (second);
  pair_clear (&pair);
}

/* Devices syncing at the same moment: four devices of two users (two
 * each), one dossier of each user shared with the other, notes written on
 * every device, then all four syncs started together, round after round.
 * A change set committed out of order with its sequence number would be
 * passed by a cursor and never pulled: every note must arrive, once. */
static void
test_parallel (Ctx           *ctx,
               gconstpointer  data)
{
  Device *devs[4];
  char *ids[2];
  GPtrArray *texts[2];

  if (ctx_skipped (ctx))
    return;
  devs[0] = member_new (ctx, "p0", "CCAS Aurillac");
  devs[2] = member_new (ctx, "p2", "France Travail Cantal");
  for (guint u = 0; u < 2; u++)
    {
      g_auto(Run) run = { 0 };
      g_autofree char *code = NULL;
      g_autofree char *label = g_strdup_printf ("p%u", 2 * u + 1);

      admin_run (ctx, &run, "user", "code", devs[2 * u]->user_id, NULL);
      g_assert_cmpint (run.status, ==, 0);
      code = one_line (run.out);
      devs[2 * u + 1] = device_new (ctx, label);
      enroll (devs[2 * u + 1], ctx->server->url, code, NULL);
    }
  for (guint u = 0; u < 2; u++)
    {
      ids[u] = person_add (devs[2 * u], NULL);
      texts[u] = g_ptr_array_new_with_free_func (g_free);
      sync_ok (devs[2 * u]);
      share (devs[2 * u], ids[u], devs[2 * (1 - u)]);
    }
  sync_all (devs, 4, 1);

  for (guint round = 0; round < 8; round++)
    {
      GSubprocess *procs[4];

      for (guint i = 0; i < 4; i++)
        for (guint d = 0; d < 2; d++)
          {
            char *text = marker (ctx, "parallele-");

            g_free (note_add (devs[i], ids[d], text));
            g_ptr_array_add (texts[d], text);
          }
      for (guint i = 0; i < 4; i++)
        procs[i] = sync_spawn (devs[i]);
      for (guint i = 0; i < 4; i++)
        {
          g_auto(Run) run = { 0 };

          sync_wait (procs[i], &run);
          g_object_unref (procs[i]);
          if (run.status != 0)
            g_test_message ("parallel sync of %s: %d %s", devs[i]->label, run.status, run.err);
          g_assert_cmpint (run.status, ==, 0);
          g_assert_true (parse_sync_line (run.out, NULL));
        }
    }
  sync_all (devs, 4, 2);
  for (guint d = 0; d < 2; d++)
    for (guint i = 0; i < 4; i++)
      assert_notes_exactly (devs[i], ids[d], texts[d]);
  assert_same_exports (devs, 4);
  for (guint u = 0; u < 2; u++)
    {
      g_free (ids[u]);
      g_ptr_array_unref (texts[u]);
    }
}

/* A full disk on either side.  The client's: nothing can be written, then
 * only the small spool files (the pull lands, applying it into the vault
 * fails).  The server's (SQLite; the PostgreSQL store's files are the
 * database server's): every write fails.  Each sync that met it fails and
 * says no success; the vault stays whole; the next syncs converge. */
static void
test_full_disk (Ctx           *ctx,
                gconstpointer  data)
{
  Pair pair = { 0 };

  if (ctx_skipped (ctx))
    return;
  pair_setup (ctx, &pair);

  /* A's disk is full: its notes stay with it. */
  pair_write (ctx, &pair, 3);
  child_file_limit = 1;
  sync_fails (pair.a, "client disk full");
  child_file_limit = 0;
  pair_converge (&pair);

  /* B's disk has room for the spool, not for the vault. */
  pair_write (ctx, &pair, 3);
  sync_ok (pair.a);
  child_file_limit = 4096;
  sync_fails (pair.b, "client disk full for the vault");
  child_file_limit = 0;
  {
    g_autofree char *out = ctl_ok (pair.b, "verify", NULL);
  }
  pair_converge (&pair);

  if (ctx->kind == STORE_SQLITE)
    {
      pair_write (ctx, &pair, 3);
      server_set_file_limit (ctx->server, 1);
      sync_fails (pair.a, "server disk full, A");
      sync_fails (pair.b, "server disk full, B");
      server_set_file_limit (ctx->server, RLIM_INFINITY);
      pair_converge (&pair);
    }
  else
    g_test_message ("the PostgreSQL store's disk is PostgreSQL's: not filled here");
  pair_clear (&pair);
}

/* ---- Requests made by hand ---------------------------------------------- */

/* The device's request key, as the spool keeps it (PROTOCOL.md §7). */
static guint8 *
device_key (Device *dev)
{
  g_autofree char *path = g_build_filename (dev->vault, "spool", "device.key", NULL);
  g_autofree char *bytes = NULL;
  gsize len = 0;
  guint8 *sk;

  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  g_assert_cmpuint (len, ==, crypto_sign_SECRETKEYBYTES);
  sk = sodium_malloc (crypto_sign_SECRETKEYBYTES);
  memcpy (sk, bytes, len);
  sodium_memzero (bytes, len);
  return sk;
}

typedef struct {
  const char   *device_id;
  const guint8 *sk;              /* signs the request */
  gint64        time;            /* 0: now */
  const guint8 *nonce;           /* 16 bytes, NULL: random */
  gboolean      bad_signature;   /* flip one bit of it */
} Signer;

static size_t
collect (char   *data,
         size_t  size,
         size_t  n,
         void   *user_data)
{
  g_string_append_len (user_data, data, (gssize) (size * n));
  return size * n;
}

/* One request as PROTOCOL.md §5.1 says to sign it (@signer NULL: not
 * signed); returns libcurl's result, the HTTP status in *@out_status (0
 * when none came), the body in *@out_body. */
static CURLcode
http_request_full (const char   *base_url,
                   const Signer *signer,
                   const char   *method,
                   const char   *path,
                   const char   *body,
                   long         *out_status,
                   char        **out_body)
{
  CURLcode code;
  g_autofree char *url = g_strconcat (base_url, path, NULL);
  g_autoptr(GString) answer = g_string_new (NULL);
  struct curl_slist *headers = NULL;
  long status = 0;
  CURL *curl = curl_easy_init ();

  g_assert_nonnull (curl);
  if (signer != NULL)
    {
      guint8 hash[crypto_hash_sha256_BYTES];
      char hash_hex[crypto_hash_sha256_BYTES * 2 + 1];
      guint8 nonce[16];
      guint8 signature[crypto_sign_BYTES];
      gint64 now = signer->time != 0 ? signer->time : g_get_real_time () / G_USEC_PER_SEC;
      g_autofree char *nonce_text = NULL;
      g_autofree char *message = NULL;
      g_autofree char *signature_text = NULL;
      g_autofree char *h1 = NULL, *h2 = NULL, *h3 = NULL, *h4 = NULL;

      crypto_hash_sha256 (hash, (const guint8 *) (body != NULL ? body : ""), body != NULL ? strlen (body) : 0);
      sodium_bin2hex (hash_hex, sizeof hash_hex, hash, sizeof hash);
      if (signer->nonce != NULL)
        memcpy (nonce, signer->nonce, sizeof nonce);
      else
        randombytes_buf (nonce, sizeof nonce);
      nonce_text = relais_sync_base64_encode (nonce, sizeof nonce);
      message = g_strdup_printf ("relais-request-v1\n%s\n%s\n%" G_GINT64_FORMAT "\n%s\n%s",
                                 method, path, now, nonce_text, hash_hex);
      crypto_sign_detached (signature, NULL, (const guint8 *) message, strlen (message), signer->sk);
      if (signer->bad_signature)
        signature[10] ^= 0x01;
      signature_text = relais_sync_base64_encode (signature, sizeof signature);
      h1 = g_strdup_printf ("Relais-Device: %s", signer->device_id);
      h2 = g_strdup_printf ("Relais-Time: %" G_GINT64_FORMAT, now);
      h3 = g_strdup_printf ("Relais-Nonce: %s", nonce_text);
      h4 = g_strdup_printf ("Relais-Signature: %s", signature_text);
      headers = curl_slist_append (headers, h1);
      headers = curl_slist_append (headers, h2);
      headers = curl_slist_append (headers, h3);
      headers = curl_slist_append (headers, h4);
    }
  if (body != NULL)
    {
      headers = curl_slist_append (headers, "Content-Type: application/json");
      curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
    }
  headers = curl_slist_append (headers, "Expect:");
  curl_easy_setopt (curl, CURLOPT_URL, url);
  curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, answer);
  curl_easy_setopt (curl, CURLOPT_TIMEOUT, 30L);
  code = curl_easy_perform (curl);
  curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all (headers);
  curl_easy_cleanup (curl);
  if (out_body != NULL)
    *out_body = g_strdup (answer->str);
  *out_status = status;
  return code;
}

static long
http_request (const char   *base_url,
              const Signer *signer,
              const char   *method,
              const char   *path,
              const char   *body,
              char        **out_body)
{
  long status = 0;

  g_assert_cmpint (http_request_full (base_url, signer, method, path, body, &status, out_body), ==, CURLE_OK);
  return status;
}

/* The "error" code of an error answer. */
static char *
error_code (const char *body)
{
  g_autoptr(JsonNode) root = parse_json (body);

  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  return g_strdup (json_object_get_string_member (json_node_get_object (root), "error"));
}

static void
assert_http_error (long        status,
                   const char *body,
                   long        expected_status,
                   const char *expected_code)
{
  g_autofree char *code = NULL;

  if (status != expected_status)
    g_test_message ("expected %ld %s, got %ld: %s", expected_status, expected_code, status, body);
  g_assert_cmpint (status, ==, expected_status);
  code = error_code (body);
  g_assert_cmpstr (code, ==, expected_code);
}

/* The proxy itself, against a real server: each mode does what it says,
 * and "lose the answer" means after the server acted (an enrolment code
 * it consumed), "cut the request" before (the code still works). */
static void
test_proxy (Ctx           *ctx,
            gconstpointer  data)
{
  RelaisFaultProxy *proxy;
  g_autofree char *url = NULL;
  g_autofree char *body = NULL;
  long status = 0;
  CURLcode code;

  if (ctx_skipped (ctx))
    return;
  proxy = ctx_proxy (ctx);
  url = relais_fault_proxy_get_url (proxy);

  g_assert_cmpint (http_request (url, NULL, "GET", "/v1/health", NULL, &body), ==, 200);
  g_assert_nonnull (strstr (body, "ok"));
  g_clear_pointer (&body, g_free);
  g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_PASS), ==, 1);
  g_assert_cmpuint (relais_fault_proxy_get_connections (proxy), ==, 1);

  /* Delay: before the request and before the answer. */
  {
    gint64 start = g_get_monotonic_time ();

    relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_DELAY, 300, NULL, 1);
    g_assert_cmpint (http_request (url, NULL, "GET", "/v1/health", NULL, NULL), ==, 200);
    g_assert_cmpint (g_get_monotonic_time () - start, >=, 600 * 1000);
    g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_DELAY), ==, 1);
  }

  /* Refused, then passing again once the count is spent. */
  relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_REFUSE, 0, NULL, 1);
  code = http_request_full (url, NULL, "GET", "/v1/health", NULL, &status, NULL);
  g_assert_cmpint (code, !=, CURLE_OK);
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_REFUSE), ==, 1);
  g_assert_cmpint (http_request (url, NULL, "GET", "/v1/health", NULL, NULL), ==, 200);

  /* Skip: the first matching request passes, the second is refused. */
  relais_fault_proxy_set_fault_after (proxy, RELAIS_FAULT_REFUSE, 0, "GET /v1/health", 1, 1);
  g_assert_cmpint (http_request (url, NULL, "GET", "/v1/health", NULL, NULL), ==, 200);
  code = http_request_full (url, NULL, "GET", "/v1/health", NULL, &status, NULL);
  g_assert_cmpint (code, !=, CURLE_OK);
  g_assert_cmpint (http_request (url, NULL, "GET", "/v1/health", NULL, NULL), ==, 200);

  /* An answer cut after its first bytes. */
  relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_CUT_RESPONSE, 5, "GET /v1/health", 1);
  code = http_request_full (url, NULL, "GET", "/v1/health", NULL, &status, NULL);
  g_assert_cmpint (code, !=, CURLE_OK);
  g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_CUT_RESPONSE), ==, 1);

  /* An enrolment cut mid-body: the server did nothing, the code is still
   * good.  Its answer lost: the server used the code. */
  {
    g_autofree char *enrol_code = user_add (ctx, "Proxy", "CCAS Aurillac", FALSE);
    g_autoptr(RelaisDeviceKey) key = relais_device_key_generate ();
    g_autofree char *pk = relais_sync_base64_encode (key->pk, sizeof key->pk);
    g_autofree char *enrol = g_strdup_printf ("{\"code\":\"%s\",\"device_name\":\"proxy test\",\"device_key\":\"%s\"}",
                                              enrol_code, pk);

    relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_CUT_REQUEST, 0, "POST /v1/enrol", 1);
    code = http_request_full (url, NULL, "POST", "/v1/enrol", enrol, &status, NULL);
    g_assert_cmpint (code, !=, CURLE_OK);
    g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_CUT_REQUEST), ==, 1);

    relais_fault_proxy_set_fault (proxy, RELAIS_FAULT_LOSE_RESPONSE, 0, "POST /v1/enrol", 1);
    code = http_request_full (url, NULL, "POST", "/v1/enrol", enrol, &status, NULL);
    g_assert_cmpint (code, !=, CURLE_OK);
    g_assert_cmpint (status, ==, 0);
    g_assert_cmpuint (relais_fault_proxy_get_count (proxy, RELAIS_FAULT_LOSE_RESPONSE), ==, 1);

    status = http_request (url, NULL, "POST", "/v1/enrol", enrol, &body);
    assert_http_error (status, body, 409, "code_used");
    g_clear_pointer (&body, g_free);
  }
  g_assert_cmpuint (relais_fault_proxy_get_connections (proxy), >=, 10);
}

/* A pulled envelope of @dev's spool, waiting to be applied. */
static GBytes *
spooled_envelope (Device *dev)
{
  g_autofree char *in = g_build_filename (dev->vault, "spool", "in", NULL);
  g_autoptr(GDir) dir = g_dir_open (in, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (in, name, NULL);
      g_autofree char *bytes = NULL;
      gsize len = 0;

      if (!g_str_has_suffix (name, ".rlcs"))
        continue;
      g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
      return g_bytes_new_take (g_steal_pointer (&bytes), len);
    }
  return NULL;
}

static char *
push_body (GBytes *envelope)
{
  gsize len = 0;
  const guint8 *data = g_bytes_get_data (envelope, &len);
  g_autofree char *b64 = relais_sync_base64_encode (data, len);

  return g_strdup_printf ("{\"changesets\":[\"%s\"]}", b64);
}

/* The status of the one result of a push answered 200. */
static char *
push_result (long        status,
             const char *body)
{
  g_autoptr(JsonNode) root = NULL;
  JsonArray *results;

  if (status != 200)
    g_test_message ("push: %ld %s", status, body);
  g_assert_cmpint (status, ==, 200);
  root = parse_json (body);
  results = json_object_get_array_member (json_node_get_object (root), "results");
  g_assert_cmpuint (json_array_get_length (results), ==, 1);
  return g_strdup (json_object_get_string_member (json_array_get_object_element (results, 0), "status"));
}

/* Requests made by hand with a device's own key: a non-member cannot read
 * a dossier's keys nor pull it, nor push into it; a replayed request, a
 * forged or stale signature, an unknown device, someone else's change set
 * and a tampered one are refused, and none of it changes what members
 * see.  (The server helper's tests go through every endpoint; these use
 * keys enrolled by relaisctl, end to end.) */
static void
test_requests (Ctx           *ctx,
               gconstpointer  data)
{
  Device *a, *b, *c;
  g_autofree char *id = NULL;
  g_autofree char *keys_path = NULL;
  g_autofree char *body = NULL;
  g_autoptr(GBytes) envelope = NULL;
  guint8 *sk_b, *sk_c;
  const char *url;
  long status;

  if (ctx_skipped (ctx))
    return;
  url = ctx->server->url;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  c = member_new (ctx, "c", "Mission locale");
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  sync_ok (b);
  g_free (note_add (a, id, "entretien"));
  sync_ok (a);
  /* B's background sync leaves A's change set in its spool: a real
   * envelope to misuse. */
  {
    g_auto(Run) run = { 0 };

    ctl_nopass (&run, b, "sync", "--background", NULL);
    g_assert_cmpint (run.status, ==, 0);
  }
  envelope = spooled_envelope (b);
  g_assert_nonnull (envelope);
  sk_b = device_key (b);
  sk_c = device_key (c);
  keys_path = g_strdup_printf ("/v1/dossiers/%s/keys", id);

  /* Unsigned health; signed requests as a member: the signing is right. */
  status = http_request (url, NULL, "GET", "/v1/health", NULL, &body);
  g_assert_cmpint (status, ==, 200);
  g_clear_pointer (&body, g_free);
  {
    Signer s = { b->device_id, sk_b, 0, NULL, FALSE };

    status = http_request (url, &s, "GET", keys_path, NULL, &body);
    if (status != 200)
      g_test_message ("member keys: %ld %s", status, body);
    g_assert_cmpint (status, ==, 200);
    g_clear_pointer (&body, g_free);
  }

  /* A non-member: no keys, nothing pulled, no push into the dossier. */
  {
    Signer s = { c->device_id, sk_c, 0, NULL, FALSE };
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *pushed = NULL;
    g_autofree char *push = push_body (envelope);
    g_autofree char *status_text = NULL;

    status = http_request (url, &s, "GET", keys_path, NULL, &body);
    assert_http_error (status, body, 403, "not_member");
    g_clear_pointer (&body, g_free);

    status = http_request (url, &s, "GET", "/v1/changesets?limit=500", NULL, &body);
    g_assert_cmpint (status, ==, 200);
    root = parse_json (body);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (root), "changesets")), ==, 0);
    g_assert_null (strstr (body, id));
    g_clear_pointer (&body, g_free);

    status = http_request (url, &s, "POST", "/v1/changesets", push, &body);
    if (status == 200)
      {
        status_text = push_result (status, body);
        g_assert_cmpstr (status_text, ==, "refused");
      }
    else
      g_assert_cmpint (status, ==, 403);
    g_clear_pointer (&body, g_free);
  }

  /* Replayed: the same signed request twice. */
  {
    guint8 nonce[16];
    Signer s = { b->device_id, sk_b, 0, nonce, FALSE };

    randombytes_buf (nonce, sizeof nonce);
    s.time = g_get_real_time () / G_USEC_PER_SEC;
    status = http_request (url, &s, "GET", keys_path, NULL, &body);
    g_assert_cmpint (status, ==, 200);
    g_clear_pointer (&body, g_free);
    status = http_request (url, &s, "GET", keys_path, NULL, &body);
    assert_http_error (status, body, 409, "replayed");
    g_clear_pointer (&body, g_free);
  }

  /* Forged: a flipped bit; another device's key under B's id; a stale
   * clock; a device the server never enrolled. */
  {
    Signer flipped = { b->device_id, sk_b, 0, NULL, TRUE };
    Signer other = { b->device_id, sk_c, 0, NULL, FALSE };
    Signer stale = { b->device_id, sk_b, g_get_real_time () / G_USEC_PER_SEC - 3600, NULL, FALSE };
    Signer unknown = { "00000000-0000-7000-8000-000000000000", sk_b, 0, NULL, FALSE };

    status = http_request (url, &flipped, "GET", keys_path, NULL, &body);
    assert_http_error (status, body, 401, "bad_signature");
    g_clear_pointer (&body, g_free);
    status = http_request (url, &other, "GET", keys_path, NULL, &body);
    assert_http_error (status, body, 401, "bad_signature");
    g_clear_pointer (&body, g_free);
    status = http_request (url, &stale, "GET", keys_path, NULL, &body);
    assert_http_error (status, body, 401, "stale_request");
    g_clear_pointer (&body, g_free);
    status = http_request (url, &unknown, "GET", keys_path, NULL, &body);
    g_assert_cmpint (status, ==, 401);
    g_clear_pointer (&body, g_free);
    status = http_request (url, NULL, "GET", keys_path, NULL, &body);
    g_assert_cmpint (status, ==, 401);
    g_clear_pointer (&body, g_free);
  }

  /* A member pushing A's change set as its own, and a tampered one. */
  {
    Signer s = { b->device_id, sk_b, 0, NULL, FALSE };
    g_autofree char *push = push_body (envelope);
    g_autofree char *result = NULL;
    gsize len = 0;
    g_autofree guint8 *tampered = g_bytes_unref_to_data (g_bytes_ref (envelope), &len);
    g_autoptr(GBytes) bad = NULL;
    g_autofree char *bad_push = NULL;
    g_autofree char *bad_result = NULL;

    status = http_request (url, &s, "POST", "/v1/changesets", push, &body);
    result = push_result (status, body);
    g_assert_cmpstr (result, ==, "refused");
    g_clear_pointer (&body, g_free);

    tampered[len - 80] ^= 0x01;
    bad = g_bytes_new (tampered, len);
    bad_push = push_body (bad);
    status = http_request (url, &s, "POST", "/v1/changesets", bad_push, &body);
    if (status == 200)
      {
        bad_result = push_result (status, body);
        g_assert_cmpstr (bad_result, ==, "refused");
      }
    else
      g_assert_cmpint (status, ==, 400);
    g_clear_pointer (&body, g_free);

    status = http_request (url, &s, "POST", "/v1/changesets", "{\"changesets\": [", &body);
    assert_http_error (status, body, 400, "malformed");
    g_clear_pointer (&body, g_free);
  }

  /* None of it reached anyone: B's sync applies A's note, once. */
  {
    g_autoptr(GPtrArray) texts = g_ptr_array_new ();
    Device *both[2] = { a, b };

    g_ptr_array_add (texts, "entretien");
    sync_all (both, 2, 1);
    assert_notes_exactly (b, id, texts);
    assert_same_exports (both, 2);
  }
  sodium_free (sk_b);
  sodium_free (sk_c);
}

/* A member made in this process, with keys the test holds: it can seal
 * change sets the way no honest device would. */
typedef struct {
  RelaisClient   *client;
  RelaisUserKeys *keys;
  char           *user_id;
  char           *device_id;
} Insider;

static void
insider_clear (Insider *in)
{
  g_clear_pointer (&in->client, relais_client_free);
  g_clear_pointer (&in->keys, relais_user_keys_free);
  g_clear_pointer (&in->user_id, g_free);
  g_clear_pointer (&in->device_id, g_free);
}

static void
insider_enrol (Ctx     *ctx,
               Insider *in,
               const char *org)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDeviceKey) device = relais_device_key_generate ();
  g_autoptr(RelaisEnrolment) enrolment = NULL;
  g_autoptr(GBytes) wrapped = NULL;
  g_autofree char *code = user_add (ctx, "Insider", org, FALSE);
  RelaisKdfParams params;

  in->client = relais_client_new (ctx->server->url, NULL, &error);
  g_assert_no_error (error);
  enrolment = relais_client_enrol (in->client, code, "insider", device->pk, NULL, &error);
  g_assert_no_error (error);
  in->user_id = g_strdup (enrolment->user_id);
  in->device_id = g_strdup (enrolment->device_id);
  relais_client_set_device (in->client, in->device_id, device->sk);
  in->keys = relais_user_keys_generate ();
  relais_kdf_params_insecure_for_tests (&params);
  wrapped = relais_user_keys_wrap (in->keys, PASS, &params, &error);
  g_assert_no_error (error);
  g_assert_true (relais_client_put_keys (in->client, in->keys->box_pk, in->keys->sign_pk, wrapped, NULL, &error));
  g_assert_no_error (error);
}

/* The dossier's current key, as a member unwraps it. */
static guint8 *
insider_dossier_key (Insider    *in,
                     const char *dossier,
                     guint32    *out_epoch)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDossierKeys) keys = relais_client_dossier_keys (in->client, dossier, NULL, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < keys->keys->len; i++)
    {
      RelaisWrappedKey *wk = g_ptr_array_index (keys->keys, i);
      gsize len = 0;
      const guint8 *data;
      guint8 *key;

      if (wk->epoch != keys->epoch)
        continue;
      data = g_bytes_get_data (wk->wrapped_key, &len);
      key = relais_dossier_key_unwrap (data, len, dossier, wk->epoch, in->keys->box_pk, in->keys->box_sk, &error);
      g_assert_no_error (error);
      *out_epoch = wk->epoch;
      return key;
    }
  g_assert_not_reached ();
}

/* One edit of the person's city, sealed with @key at @epoch, its
 * operation claiming @author, signed by the insider. */
static GBytes *
insider_seal (Insider      *in,
              const char   *dossier,
              guint32       epoch,
              const guint8 *key,
              const char   *author,
              const char   *city)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  RelaisOp *op = g_new0 (RelaisOp, 1);
  GBytes *envelope;

  op->id = relais_oplog_new_id ();
  op->dossier = g_strdup (dossier);
  op->entity = g_strdup ("person");
  op->entity_id = g_strdup (dossier);
  op->field = g_strdup ("city");
  op->value = g_strdup (city);
  op->hlc = (guint64) g_get_real_time () << 16;
  op->author = g_strdup (author);
  op->device = g_strdup (in->device_id);
  g_ptr_array_add (ops, op);
  envelope = relais_changeset_seal (dossier, epoch, key, author, in->device_id, in->keys->sign_sk, ops, &error);
  g_assert_no_error (error);
  return envelope;
}

static RelaisPushStatus
insider_push (Insider *in,
              GBytes  *envelope)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) envelopes = g_ptr_array_new ();
  g_autoptr(GPtrArray) results = NULL;

  g_ptr_array_add (envelopes, envelope);
  results = relais_client_push (in->client, envelopes, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (results->len, ==, 1);
  return ((RelaisPushResult *) g_ptr_array_index (results, 0))->status;
}

/* A member that seals what no honest device would: a change set sealed
 * with a key that is not the dossier's, one whose operations claim
 * another author, one at an epoch that does not exist.  The server takes
 * what it cannot check (it holds no key); the peers refuse it, and their
 * dossiers stay the same and equal. */
static void
test_forged_changesets (Ctx           *ctx,
                        gconstpointer  data)
{
  Insider in = { 0 };
  Device *a, *b;
  Device *both[2];
  g_autofree char *id = NULL;
  g_autofree char *good = NULL;
  g_autofree char *bad_seal = NULL;
  g_autofree char *bad_author = NULL;
  g_autofree char *bad_epoch = NULL;
  guint8 *key;
  guint8 *wrong_key;
  guint32 epoch = 0;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  both[0] = a;
  both[1] = b;
  insider_enrol (ctx, &in, "Mission locale");
  id = person_add (a, NULL);
  sync_ok (a);
  share (a, id, b);
  share_with_id (a, id, in.user_id);
  sync_ok (b);
  key = insider_dossier_key (&in, id, &epoch);

  /* An honest change set from the insider reaches both: the harness is
   * right. */
  good = marker (ctx, "Vrai-");
  {
    g_autoptr(GBytes) envelope = insider_seal (&in, id, epoch, key, in.user_id, good);

    g_assert_cmpint (insider_push (&in, envelope), ==, RELAIS_PUSH_STORED);
  }
  sync_all (both, 2, 1);
  {
    g_autofree char *on_a = export_dossier (a, id);
    g_autofree char *on_b = export_dossier (b, id);

    g_assert_nonnull (strstr (on_a, good));
    g_assert_cmpstr (on_a, ==, on_b);
  }

  /* Sealed with another key; claiming A as the author; at epoch 9. */
  bad_seal = marker (ctx, "Faux-sceau-");
  bad_author = marker (ctx, "Faux-auteur-");
  bad_epoch = marker (ctx, "Fausse-epoque-");
  wrong_key = relais_dossier_key_new ();
  {
    g_autoptr(GBytes) sealed = insider_seal (&in, id, epoch, wrong_key, in.user_id, bad_seal);
    g_autoptr(GBytes) authored = insider_seal (&in, id, epoch, key, a->user_id, bad_author);
    g_autoptr(GBytes) epoch9 = insider_seal (&in, id, 9, key, in.user_id, bad_epoch);

    /* The server cannot open a seal: it stores it. */
    g_assert_cmpint (insider_push (&in, sealed), ==, RELAIS_PUSH_STORED);
    g_assert_cmpint (insider_push (&in, authored), !=, RELAIS_PUSH_REFUSED);
    /* An epoch that is not the dossier's current one is refused. */
    g_assert_cmpint (insider_push (&in, epoch9), ==, RELAIS_PUSH_REFUSED);
  }
  for (guint i = 0; i < 2; i++)
    {
      g_auto(Run) run = { 0 };

      ctl (&run, both[i], "sync", NULL);
      g_test_message ("%s after forged change sets: %d, %s%s", both[i]->label, run.status, run.out, run.err);
      g_assert_cmpint (run.status, <, 128);
      /* Says so. */
      g_assert_cmpuint (strlen (run.err), >, 0);
    }
  sync_all (both, 2, 1);
  {
    g_autofree char *on_a = export_string (a);
    g_autofree char *on_b = export_string (b);

    g_assert_null (strstr (on_a, bad_seal));
    g_assert_null (strstr (on_a, bad_author));
    g_assert_null (strstr (on_a, bad_epoch));
    g_assert_nonnull (strstr (on_a, good));
    g_assert_cmpstr (on_a, ==, on_b);
  }
  relais_dossier_key_free (key);
  relais_dossier_key_free (wrong_key);
  insider_clear (&in);
}

/* ---- Randomized convergence ------------------------------------------- */

/* A value written to one field of one dossier, and the values its writer
 * had seen on that field (which it supersedes, as an operation's parents
 * do). */
typedef struct {
  guint       dossier;
  guint       field;
  char       *value;
  GHashTable *superseded;   /* Write *, set */
} Write;

static void
write_free (Write *w)
{
  g_free (w->value);
  g_hash_table_unref (w->superseded);
  g_free (w);
}

#define R_DOSSIERS 3
#define R_DEVICES  4
#define R_FIELDS   3

static const char *r_options[R_FIELDS] = { "--city", "--phone", "--email" };
static const char *r_fields[R_FIELDS] = { "city", "phone", "email" };

typedef struct {
  Device     *dev;
  guint       user;          /* 0, 1 or 2 */
  GHashTable *seen;          /* Write * the device holds */
  GPtrArray  *unpushed;      /* Write * written here, not yet on the server */
  gboolean    has[R_DOSSIERS];
} Replica;

typedef struct {
  Replica     replicas[R_DEVICES];
  char       *dossiers[R_DOSSIERS];
  gboolean    members[R_DOSSIERS][3];  /* [dossier][user] */
  GPtrArray  *writes;                  /* Write *, owns */
  GHashTable *on_server;               /* Write * */
  GPtrArray  *notes[R_DOSSIERS];       /* char *, texts written, owns */
  gboolean    registered[R_DOSSIERS];
  GString    *trace;                   /* what happened, shown on a failure */
} World;

/* A complete sync in the model: what the replica wrote goes to the server,
 * and the replica gets everything the server has of its dossiers. */
static void
model_sync (World   *w,
            Replica *r)
{
  GHashTableIter iter;
  gpointer key;

  for (guint i = 0; i < r->unpushed->len; i++)
    g_hash_table_add (w->on_server, g_ptr_array_index (r->unpushed, i));
  g_ptr_array_set_size (r->unpushed, 0);
  g_hash_table_iter_init (&iter, w->on_server);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      Write *wr = key;

      if (w->members[wr->dossier][r->user])
        g_hash_table_add (r->seen, wr);
    }
  for (guint d = 0; d < R_DOSSIERS; d++)
    if (w->members[d][r->user] && w->registered[d])
      r->has[d] = TRUE;
}

static void
model_write (World      *w,
             Replica    *r,
             guint       d,
             guint       f,
             const char *value)
{
  Write *wr = g_new0 (Write, 1);
  GHashTableIter iter;
  gpointer key;

  wr->dossier = d;
  wr->field = f;
  wr->value = g_strdup (value);
  wr->superseded = g_hash_table_new (NULL, NULL);
  g_hash_table_iter_init (&iter, r->seen);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      Write *seen = key;

      if (seen->dossier == d && seen->field == f)
        g_hash_table_add (wr->superseded, seen);
    }
  g_hash_table_add (r->seen, wr);
  g_ptr_array_add (r->unpushed, wr);
  g_ptr_array_add (w->writes, wr);
}

/* The values of (@d, @f) that no write superseded: the winner and every
 * concurrent value must be exactly these. */
static GPtrArray *
model_live (World *w,
            guint  d,
            guint  f)
{
  GPtrArray *live = g_ptr_array_new ();

  for (guint i = 0; i < w->writes->len; i++)
    {
      Write *cand = g_ptr_array_index (w->writes, i);
      gboolean superseded = FALSE;

      if (cand->dossier != d || cand->field != f)
        continue;
      for (guint j = 0; j < w->writes->len && !superseded; j++)
        {
          Write *other = g_ptr_array_index (w->writes, j);

          superseded = g_hash_table_contains (other->superseded, cand);
        }
      /* Two writes of one value (concurrent resolutions that picked the
       * same one) are two heads: the export lists both. */
      if (!superseded)
        g_ptr_array_add (live, cand->value);
    }
  return live;
}

/* The same strings, as many times each. */
static gboolean
string_sets_equal (GPtrArray *a,
                   GPtrArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    {
      const char *s = g_ptr_array_index (a, i);

      if (count_string (a, s) != count_string (b, s))
        return FALSE;
    }
  return TRUE;
}

static JsonObject *
export_find_dossier (JsonNode   *root,
                     const char *id)
{
  JsonArray *dossiers = json_object_get_array_member (json_node_get_object (root), "dossiers");

  for (guint i = 0; i < json_array_get_length (dossiers); i++)
    {
      JsonObject *obj = json_array_get_object_element (dossiers, i);

      if (g_strcmp0 (json_object_get_string_member (obj, "id"), id) == 0)
        return obj;
    }
  return NULL;
}

/* The conflict values of (@id, @field) in a dossier of the export, or an
 * empty array when there is no conflict. */
static GPtrArray *
export_conflict_values (JsonObject *dossier,
                        const char *id,
                        const char *field)
{
  JsonArray *conflicts = json_object_get_array_member (dossier, "conflicts");
  GPtrArray *values = g_ptr_array_new ();

  for (guint i = 0; i < json_array_get_length (conflicts); i++)
    {
      JsonObject *c = json_array_get_object_element (conflicts, i);
      JsonArray *vals;

      if (g_strcmp0 (json_object_get_string_member (c, "entity_id"), id) != 0
          || g_strcmp0 (json_object_get_string_member (c, "field"), field) != 0)
        continue;
      g_assert_cmpuint (values->len, ==, 0);
      vals = json_object_get_array_member (c, "values");
      for (guint j = 0; j < json_array_get_length (vals); j++)
        g_ptr_array_add (values, (char *) json_object_get_string_member (json_array_get_object_element (vals, j), "value"));
    }
  return values;
}

static guint
env_uint (const char *name,
          guint       fallback)
{
  const char *text = g_getenv (name);
  guint64 n;

  if (text != NULL && g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT32, &n, NULL))
    return (guint) n;
  return fallback;
}

/* Four replicas (two devices of one user, one device each of two more, in
 * three organisations) and three dossiers shared among them in different
 * teams; a seeded sequence of random edits of the same few fields, notes,
 * appointments, conflict resolutions, background and full syncs in random
 * order; then everyone syncs twice.  Every replica of a dossier's team
 * shows it identically, no one else has it, and every value that no later
 * write superseded is still there: as the winner or as a conflict. */
static void
test_random (Ctx           *ctx,
             gconstpointer  data)
{
  guint32 seed = env_uint ("RELAIS_TEST_SEED", g_random_int ());
  guint steps = env_uint ("RELAIS_TEST_STEPS", 100);
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  /* Teams: X {0,1,2}, Y {0,1}, Z {1,2}. */
  const gboolean teams[R_DOSSIERS][3] = { { TRUE, TRUE, TRUE }, { TRUE, TRUE, FALSE }, { FALSE, TRUE, TRUE } };
  const guint creators[R_DOSSIERS] = { 0, 2, 3 };
  World w = { 0 };
  Device *users[3];

  if (ctx_skipped (ctx))
    return;
  g_test_message ("random seed %u (replay: RELAIS_TEST_SEED=%u)", seed, seed);
  g_printerr ("# random convergence: seed %u (replay with RELAIS_TEST_SEED=%u)\n", seed, seed);

  users[0] = member_new (ctx, "r0", "CCAS Aurillac");
  users[1] = member_new (ctx, "r2", "France Travail Cantal");
  users[2] = member_new (ctx, "r3", "Mission locale");
  w.replicas[0].dev = users[0];
  w.replicas[0].user = 0;
  {
    g_auto(Run) run = { 0 };
    g_autofree char *code = NULL;
    Device *second;

    admin_run (ctx, &run, "user", "code", users[0]->user_id, NULL);
    g_assert_cmpint (run.status, ==, 0);
    code = one_line (run.out);
    second = device_new (ctx, "r1");
    enroll (second, ctx->server->url, code, NULL);
    w.replicas[1].dev = second;
    w.replicas[1].user = 0;
  }
  w.replicas[2].dev = users[1];
  w.replicas[2].user = 1;
  w.replicas[3].dev = users[2];
  w.replicas[3].user = 2;
  w.writes = g_ptr_array_new_with_free_func ((GDestroyNotify) write_free);
  w.trace = g_string_new (NULL);
  w.on_server = g_hash_table_new (NULL, NULL);
  for (guint i = 0; i < R_DEVICES; i++)
    {
      w.replicas[i].seen = g_hash_table_new (NULL, NULL);
      w.replicas[i].unpushed = g_ptr_array_new ();
    }

  /* The dossiers, shared with their teams, known to everyone in them. */
  memcpy (w.members, teams, sizeof teams);
  for (guint d = 0; d < R_DOSSIERS; d++)
    {
      Replica *r = &w.replicas[creators[d]];

      w.dossiers[d] = person_add (r->dev, NULL);
      w.notes[d] = g_ptr_array_new_with_free_func (g_free);
      sync_ok (r->dev);
      w.registered[d] = TRUE;
      for (guint u = 0; u < 3; u++)
        if (teams[d][u] && u != r->user)
          share (r->dev, w.dossiers[d], users[u]);
      r->has[d] = TRUE;
    }
  for (guint i = 0; i < R_DEVICES; i++)
    {
      sync_ok (w.replicas[i].dev);
      model_sync (&w, &w.replicas[i]);
    }

  for (guint step = 0; step < steps; step++)
    {
      Replica *r = &w.replicas[g_rand_int_range (rand, 0, R_DEVICES)];
      guint action = g_rand_int_range (rand, 0, 100);
      guint d = g_rand_int_range (rand, 0, R_DOSSIERS);

      if (action >= 70)
        {
          /* Sync, now and then in the background first (what it pulls
           * waits in the spool; the full sync right after applies it, so
           * that the model knows what the vault holds). */
          if (action >= 95)
            {
              g_auto(Run) run = { 0 };

              ctl_nopass (&run, r->dev, "sync", "--background", NULL);
              g_assert_cmpint (run.status, ==, 0);
            }
          {
            SyncCounts c = sync_ok (r->dev);

            g_string_append_printf (w.trace, "%u: %s sync%s: pushed %u pulled %u\n", step, r->dev->label,
                                    action >= 95 ? " (after background)" : "", c.pushed, c.pulled);
          }
          model_sync (&w, r);
          continue;
        }
      if (!r->has[d])
        continue;
      if (action < 40)
        {
          guint f = g_rand_int_range (rand, 0, R_FIELDS);
          g_autofree char *value = NULL;

          if (f == 0)
            value = marker (ctx, "Ville-");
          else if (f == 1)
            value = g_strdup_printf ("06%08u", g_rand_int_range (rand, 0, 100000000));
          else
            {
              g_autofree char *local = marker (ctx, "m");

              value = g_strdup_printf ("%s@example.org", local);
            }
          person_edit (r->dev, w.dossiers[d], r_options[f], value);
          model_write (&w, r, d, f, value);
          g_string_append_printf (w.trace, "%u: %s edit %u.%s = %s\n", step, r->dev->label, d, r_fields[f], value);
        }
      else if (action < 55)
        {
          char *text = marker (ctx, "note-");

          g_free (note_add (r->dev, w.dossiers[d], text));
          g_ptr_array_add (w.notes[d], text);
        }
      else if (action < 65)
        {
          g_autofree char *with = marker (ctx, "RDV-");
          g_autofree char *at = g_strdup_printf ("2027-%02d-%02d 10:%02d", g_rand_int_range (rand, 1, 13),
                                                 g_rand_int_range (rand, 1, 29), g_rand_int_range (rand, 0, 60));
          g_autofree char *out = ctl_ok (r->dev, "appointment", "add", w.dossiers[d], "--at", at,
                                         "--with", with, NULL);
        }
      else
        {
          /* Resolve a conflict on this replica, if it shows one: pick the
           * winner, which supersedes every value it holds. */
          g_autoptr(JsonNode) root = conflicts_json (r->dev);
          JsonArray *list = json_node_get_array (root);

          for (guint i = 0; i < json_array_get_length (list); i++)
            {
              JsonObject *c = json_array_get_object_element (list, i);
              const char *field = json_object_get_string_member (c, "field");
              const char *entity_id = json_object_get_string_member (c, "entity_id");
              JsonArray *vals = json_object_get_array_member (c, "values");
              const char *picked = json_object_get_string_member (json_array_get_object_element (vals, 0), "value");
              g_autofree char *out = NULL;
              guint dd = R_DOSSIERS, ff = R_FIELDS;

              for (guint k = 0; k < R_DOSSIERS; k++)
                if (g_strcmp0 (entity_id, w.dossiers[k]) == 0)
                  dd = k;
              for (guint k = 0; k < R_FIELDS; k++)
                if (g_strcmp0 (field, r_fields[k]) == 0)
                  ff = k;
              g_assert_cmpuint (dd, <, R_DOSSIERS);
              g_assert_cmpuint (ff, <, R_FIELDS);
              out = ctl_ok (r->dev, "conflicts", "resolve", entity_id, field, "--pick", "1", NULL);
              model_write (&w, r, dd, ff, picked);
              g_string_append_printf (w.trace, "%u: %s resolve %u.%s = %s (of %u)\n", step, r->dev->label,
                                      dd, field, picked, json_array_get_length (vals));
              break;
            }
        }
    }

  /* Everyone syncs twice, in a random order each time. */
  for (guint round = 0; round < 2; round++)
    {
      guint order[R_DEVICES] = { 0, 1, 2, 3 };

      for (guint i = R_DEVICES - 1; i > 0; i--)
        {
          guint j = g_rand_int_range (rand, 0, i + 1);
          guint t = order[i];

          order[i] = order[j];
          order[j] = t;
        }
      for (guint i = 0; i < R_DEVICES; i++)
        {
          sync_ok (w.replicas[order[i]].dev);
          model_sync (&w, &w.replicas[order[i]]);
        }
    }

  /* Each dossier: identical on its team's replicas, absent elsewhere, and
   * every live value kept. */
  {
    guint in_conflict = 0;

    for (guint d = 0; d < R_DOSSIERS; d++)
      for (guint f = 0; f < R_FIELDS; f++)
        {
          g_autoptr(GPtrArray) live = model_live (&w, d, f);

          in_conflict += live->len > 1;
        }
    g_test_message ("seed %u: %u writes, %u fields left in conflict", seed, w.writes->len, in_conflict);
  }
  {
    JsonNode *exports[R_DEVICES];

    for (guint i = 0; i < R_DEVICES; i++)
      exports[i] = export_json (w.replicas[i].dev);
    for (guint d = 0; d < R_DOSSIERS; d++)
      {
        g_autofree char *reference = NULL;

        for (guint i = 0; i < R_DEVICES; i++)
          {
            Replica *r = &w.replicas[i];
            JsonObject *obj = export_find_dossier (exports[i], w.dossiers[d]);
            g_autofree char *text = NULL;
            JsonNode *node;

            if (!w.members[d][r->user])
              {
                g_assert_null (obj);
                continue;
              }
            g_assert_nonnull (obj);
            node = json_node_alloc ();
            json_node_init_object (node, obj);
            text = node_to_string (node);
            json_node_unref (node);
            if (reference == NULL)
              reference = g_strdup (text);
            if (g_strcmp0 (reference, text) != 0)
              g_test_message ("seed %u: dossier %u differs on %s:\n%s\nvs\n%s", seed, d, r->dev->label, reference, text);
            g_assert_cmpstr (reference, ==, text);

            for (guint f = 0; f < R_FIELDS; f++)
              {
                g_autoptr(GPtrArray) live = model_live (&w, d, f);
                g_autoptr(GPtrArray) shown = export_conflict_values (obj, w.dossiers[d], r_fields[f]);
                const char *current = json_object_get_string_member (obj, r_fields[f]);

                if (live->len == 0)
                  continue;
                g_assert_cmpuint (count_string (live, current), >=, 1);
                if (live->len == 1)
                  g_assert_cmpuint (shown->len, ==, 0);
                else
                  {
                    if (!string_sets_equal (live, shown))
                      {
                        g_test_message ("seed %u: dossier %u field %s: %u live values, %u shown",
                                        seed, d, r_fields[f], live->len, shown->len);
                        for (guint k = 0; k < live->len; k++)
                          g_test_message ("live: %s", (char *) live->pdata[k]);
                        for (guint k = 0; k < shown->len; k++)
                          g_test_message ("shown: %s", (char *) shown->pdata[k]);
                        g_test_message ("%s", w.trace->str);
                      }
                    g_assert_true (string_sets_equal (live, shown));
                    g_assert_cmpstr (g_ptr_array_index (shown, 0), ==, current);
                  }
              }
          }
      }
    for (guint i = 0; i < R_DEVICES; i++)
      json_node_unref (exports[i]);
  }
  for (guint d = 0; d < R_DOSSIERS; d++)
    for (guint i = 0; i < R_DEVICES; i++)
      if (w.members[d][w.replicas[i].user])
        assert_notes_exactly (w.replicas[i].dev, w.dossiers[d], w.notes[d]);

  for (guint i = 0; i < R_DEVICES; i++)
    {
      g_hash_table_unref (w.replicas[i].seen);
      g_ptr_array_unref (w.replicas[i].unpushed);
    }
  for (guint d = 0; d < R_DOSSIERS; d++)
    {
      g_free (w.dossiers[d]);
      g_ptr_array_unref (w.notes[d]);
    }
  g_hash_table_unref (w.on_server);
  g_ptr_array_unref (w.writes);
  g_string_free (w.trace, TRUE);
}

/* Markers in every kind of record a référent writes, synced between two
 * organisations: none appears in the server's files or tables, nor in its
 * log.  (Every other scenario ends with the same check.) */
static void
test_markers (Ctx           *ctx,
              gconstpointer  data)
{
  Device *a, *b;
  Device *both[2];
  g_autofree char *id = NULL;
  g_autofree char *last = NULL;

  if (ctx_skipped (ctx))
    return;
  a = member_new (ctx, "a", "CCAS Aurillac");
  b = member_new (ctx, "b", "France Travail Cantal");
  both[0] = a;
  both[1] = b;
  id = person_add (a, &last);
  {
    g_autofree char *city = marker (ctx, "Ville");
    g_autofree char *email = marker (ctx, "courriel");
    g_autofree char *address = g_strdup_printf ("%s@example.org", email);
    g_autofree char *out = ctl_ok (a, "person", "edit", id, "--city", city, "--email", address,
                                   "--first-name", last, NULL);
  }
  g_free (note_add (a, id, ctx->markers->pdata[0]));
  {
    g_autofree char *comment = marker (ctx, "diag-");
    g_autofree char *out = ctl_ok (a, "diagnostic", "set", id, "logement", "fort",
                                   "--comment", comment, NULL);
  }
  {
    g_autofree char *with = marker (ctx, "RDV-");
    g_autofree char *place = marker (ctx, "Lieu-");
    g_autofree char *out = ctl_ok (a, "appointment", "add", id, "--at", "2027-01-15 14:30",
                                   "--with", with, "--place", place, NULL);
  }
  sync_ok (a);
  share (a, id, b);
  sync_ok (b);
  {
    g_autofree char *text = marker (ctx, "note-b-");

    g_free (note_add (b, id, text));
  }
  sync_all (both, 2, 2);
  assert_same_exports (both, 2);
  /* The devices hold every marker in clear (the check would pass
   * vacuously otherwise), the server none. */
  {
    g_autofree char *exported = export_string (b);

    for (guint i = 0; i < ctx->markers->len; i++)
      g_assert_nonnull (strstr (exported, ctx->markers->pdata[i]));
  }
  server_stop (ctx->server);
  check_markers_absent (ctx);
}

/* ---- Recovery wraps for every organisation (PROTOCOL.md §5.2) ---------- */

/* A sync that completes without a warning: the recovery wraps were
 * filled too. */
static void
sync_quiet (Device *dev)
{
  g_auto(Run) run = { 0 };

  ctl (&run, dev, "sync", NULL);
  if (run.status != 0 || strstr (run.err, "warning") != NULL)
    g_test_message ("sync %s: %d, stdout: %s stderr: %s", dev->label, run.status, run.out, run.err);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (parse_sync_line (run.out, NULL));
  g_assert_null (strstr (run.err, "warning"));
}

/* relaisctl recover by @admin; returns how many dossiers it granted. */
static guint
recover (Device     *admin,
         const char *key_file,
         Device     *from,
         Device     *to)
{
  g_autofree char *out = ctl_ok (admin, "recover", "--recovery-key", key_file,
                                 "--from", from->user_id, "--to", to->user_id, NULL);
  guint count = G_MAXUINT;

  g_assert_cmpint (sscanf (out, "granted %u dossier", &count), ==, 1);
  return count;
}

/* A new identity of @old's person, in @org (a forgotten passphrase). */
static Device *
new_identity (Ctx        *ctx,
              Device     *old,
              const char *org,
              const char *label)
{
  g_autofree char *name = g_strdup_printf ("%s (%s)", old->user_name, label);
  g_autofree char *code = user_add (ctx, name, org, FALSE);
  Device *dev = device_new_pass (ctx, label, "another new passphrase");

  dev->user_name = g_strdup (name);
  enroll (dev, ctx->server->url, code, NULL);
  g_assert_cmpstr (dev->user_id, !=, old->user_id);
  return dev;
}

/* A dossier of organisation A shared with a user of organisation B, whose
 * administrator sets B's recovery key only after everyone enrolled: the
 * next sync of a member adds B's recovery wraps, B's administrator then
 * recovers B's user, and a rotation gets B's wrap too. */
static void
test_recovery_other_org (Ctx           *ctx,
                         gconstpointer  data)
{
  const char *org_a = "Mission locale Mauriac";
  const char *org_b = "CCAS Saint-Flour";
  g_autofree char *key_file = g_build_filename (ctx->dir, "recovery-b.key", NULL);
  g_autofree char *public_key = NULL;
  g_autofree char *dossier = NULL;
  g_autofree char *note = NULL;
  g_autofree char *later = NULL;
  Device *a, *b, *admin_b, *b_new, *b_newer;

  if (ctx_skipped (ctx))
    return;

  a = member_new (ctx, "a", org_a);
  b = member_new (ctx, "b", org_b);
  admin_b = member_new_at (ctx, "admin-b", org_b, NULL, TRUE);

  dossier = person_add (a, NULL);
  note = marker (ctx, "note-a-");
  g_free (note_add (a, dossier, note));
  sync_quiet (a);
  share (a, dossier, b);
  sync_quiet (b);
  {
    g_autofree char *on_b = export_dossier (b, dossier);

    g_assert_nonnull (on_b);
    g_assert_nonnull (strstr (on_b, note));
  }

  /* Organisation B gets its recovery key only now. */
  {
    g_auto(Run) run = { 0 };

    ctl_nopass (&run, NULL, "recovery-key", "new", "--out", key_file, NULL);
    g_assert_cmpint (run.status, ==, 0);
    public_key = one_line (run.out);
  }
  {
    g_auto(Run) run = { 0 };

    admin_run (ctx, &run, "org", "set-recovery-key", "--org", org_b, "--key", public_key, NULL);
    g_assert_cmpint (run.status, ==, 0);
  }

  /* B forgets the passphrase.  Before any member synced, B's
   * administrator finds nothing to recover: the gap this closes. */
  b_new = new_identity (ctx, b, org_b, "b-new");
  g_assert_cmpuint (recover (admin_b, key_file, b, b_new), ==, 0);

  /* A's next sync (A's organisation has no recovery key at all) wraps the
   * dossier's key for B's organisation. */
  sync_quiet (a);
  g_assert_cmpuint (recover (admin_b, key_file, b, b_new), ==, 1);
  {
    SyncCounts counts = sync_ok (b_new);
    g_autofree char *on_new = export_dossier (b_new, dossier);
    g_autofree char *on_a = export_dossier (a, dossier);

    g_assert_cmpuint (counts.pulled, >=, 1);
    g_assert_nonnull (on_new);
    g_assert_nonnull (strstr (on_new, note));
    g_assert_cmpstr (on_new, ==, on_a);
  }

  /* A removes B's old identity: the key rotates (epoch 2), wrapped by A
   * for A's organisation only; B's wrap of epoch 2 follows. */
  {
    g_autofree char *out = ctl_ok (a, "unshare", dossier, "--with", b->user_id, NULL);
  }
  later = marker (ctx, "note-epoch2-");
  g_free (note_add (a, dossier, later));
  sync_quiet (a);
  sync_quiet (b_new);
  {
    g_autofree char *on_new = export_dossier (b_new, dossier);

    g_assert_nonnull (strstr (on_new, later));
  }

  /* B forgets the new passphrase too: the recovered identity reads what
   * was written after the rotation, so B's wrap of epoch 2 is there. */
  b_newer = new_identity (ctx, b_new, org_b, "b-newer");
  g_assert_cmpuint (recover (admin_b, key_file, b_new, b_newer), ==, 1);
  sync_ok (b_newer);
  {
    g_autofree char *on_newer = export_dossier (b_newer, dossier);
    g_autofree char *on_a = export_dossier (a, dossier);

    g_assert_nonnull (on_newer);
    g_assert_nonnull (strstr (on_newer, note));
    g_assert_nonnull (strstr (on_newer, later));
    g_assert_cmpstr (on_newer, ==, on_a);
  }
  /* B's administrator's vault reads none of it. */
  {
    g_autofree char *exported = export_string (admin_b);

    g_assert_null (strstr (exported, note));
    g_assert_null (strstr (exported, later));
  }
  check_markers_absent (ctx);
}

/* ---- Main ---------------------------------------------------------------- */

typedef void (*ScenarioFunc) (Ctx *ctx, gconstpointer data);

int
main (int argc, char **argv)
{
  static const struct { const char *name; ScenarioFunc func; } scenarios[] = {
    { "share", test_share_three_orgs },
    { "concurrent-edit", test_concurrent_edit },
    { "many-notes", test_many_notes },
    { "second-device", test_second_device },
    { "unshare", test_unshare },
    { "recovery", test_recovery },
    { "revoked", test_revoked },
    { "bundle", test_bundle },
    { "background", test_background },
    { "tls", test_tls },
    { "faults", test_faults },
    { "restart", test_restart },
    { "paged-pull", test_paged_pull },
    { "requests", test_requests },
    { "two-servers", test_two_servers },
    { "forged-changesets", test_forged_changesets },
    { "full-disk", test_full_disk },
    { "parallel", test_parallel },
    { "random", test_random },
    { "markers", test_markers },
    { "recovery-other-org", test_recovery_other_org },
  };
  static const struct { const char *name; StoreKind kind; } stores[] = {
    { "sqlite", STORE_SQLITE },
    { "pg", STORE_PG },
  };
  int status;

  /* Messages quoted from relaisctl print as they are, not as '?'. */
  setlocale (LC_ALL, "");
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  curl_global_init (CURL_GLOBAL_DEFAULT);

  /* The fault proxy, once, in front of a server on SQLite. */
  g_test_add ("/sync/proxy", Ctx, GINT_TO_POINTER (STORE_SQLITE), ctx_setup, test_proxy, ctx_teardown);
  for (guint s = 0; s < G_N_ELEMENTS (stores); s++)
    for (guint i = 0; i < G_N_ELEMENTS (scenarios); i++)
      {
        g_autofree char *path = g_strdup_printf ("/sync/%s/%s", stores[s].name, scenarios[i].name);

        g_test_add (path, Ctx, GINT_TO_POINTER (stores[s].kind),
                    ctx_setup, scenarios[i].func, ctx_teardown);
      }

  status = g_test_run ();
  if (pg_cluster != NULL)
    {
      pg_postmaster = 0;
      relais_test_pg_stop (pg_cluster);
    }
  g_free (pg_skip_reason);
  curl_global_cleanup ();
  return status;
}
