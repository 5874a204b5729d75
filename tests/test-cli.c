#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relais-test-util.h"

/* relaisctl as a script or an administrator runs it: a real process, its
 * exit status, its stdout and its one line of stderr. */

typedef struct {
  char *dir;
  char *vault;
} Fixture;

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
relaisctl (void)
{
  const char *path = g_getenv ("RELAISCTL");

  g_assert_nonnull (path);
  return path;
}

typedef struct {
  rlim_t file_limit;
} ChildSetup;

static void
child_setup (gpointer data)
{
  ChildSetup *setup = data;

  /* No controlling terminal: a prompt must fail, not wait. */
  setsid ();
  if (setup != NULL && setup->file_limit > 0)
    {
      struct rlimit limit = { setup->file_limit, setup->file_limit };
      signal (SIGXFSZ, SIG_IGN);
      setrlimit (RLIMIT_FSIZE, &limit);
    }
}

static char **
make_env (const char *passphrase,
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

static void
run_full (Run                *run,
          const char         *passphrase,
          const char *const  *extra_env,
          ChildSetup         *setup,
          const char         *first,
          ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) env = make_env (passphrase, extra_env);
  va_list args;
  int wait_status = 0;

  g_ptr_array_add (argv, (char *) relaisctl ());
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  memset (run, 0, sizeof *run);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, env, G_SPAWN_DEFAULT,
                               child_setup, setup, &run->out, &run->err, &wait_status, &error));
  g_assert_no_error (error);
  if (WIFEXITED (wait_status))
    run->status = WEXITSTATUS (wait_status);
  else
    run->status = 128 + WTERMSIG (wait_status);
}

#define run_ctl(run, pass, ...) run_full (run, pass, NULL, NULL, __VA_ARGS__, NULL)

static guint
count_lines (const char *text)
{
  guint n = 0;

  for (const char *p = text; p != NULL && *p != '\0'; p++)
    if (*p == '\n')
      n++;
  return n;
}

/* A refusal: exit status 1 and exactly one line on stderr. */
static void
assert_refused (Run        *run,
                const char *needle)
{
  if (run->status != 1 || count_lines (run->err) != 1)
    g_test_message ("stderr: %s", run->err);
  g_assert_cmpint (run->status, ==, 1);
  g_assert_cmpuint (count_lines (run->err), ==, 1);
  g_assert_true (g_str_has_prefix (run->err, "relaisctl: "));
  if (needle != NULL)
    g_assert_nonnull (strstr (run->err, needle));
}

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_auto(Run) run = { 0 };

  fx->dir = g_dir_make_tmp ("relais-cli-XXXXXX", &error);
  g_assert_no_error (error);
  fx->vault = g_build_filename (fx->dir, "vault", NULL);
  if (data == NULL)
    {
      run_ctl (&run, "s3cret passphrase", "init", "--vault", fx->vault);
      g_assert_cmpint (run.status, ==, 0);
    }
}

static void
rm_rf (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        rm_rf (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  rm_rf (fx->dir);
  g_free (fx->vault);
  g_free (fx->dir);
}

#define PASS "s3cret passphrase"

static guint
count_people (Fixture *fx)
{
  g_auto(Run) run = { 0 };

  run_ctl (&run, PASS, "person", "list", "--vault", fx->vault);
  g_assert_cmpint (run.status, ==, 0);
  return count_lines (run.out);
}

static char *
add_person (Fixture    *fx,
            const char *last,
            const char *first,
            const char *birth)
{
  g_auto(Run) run = { 0 };

  run_ctl (&run, PASS, "person", "add", "--vault", fx->vault,
           "--last-name", last, "--first-name", first, "--birth-date", birth);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpuint (count_lines (run.out), ==, 1);
  g_strchomp (run.out);
  g_assert_true (g_uuid_string_is_valid (run.out));
  return g_steal_pointer (&run.out);
}

static void
test_init (Fixture       *fx,
           gconstpointer  data)
{
  g_auto(Run) run = { 0 };
  g_auto(Run) again = { 0 };
  g_auto(Run) wrong = { 0 };
  g_autofree char *key = g_build_filename (fx->vault, "vault.key", NULL);

  run_ctl (&run, PASS, "init", "--vault", fx->vault);
  g_assert_cmpint (run.status, ==, 0);
  /* The recovery key alone on stdout, shown once. */
  g_assert_cmpuint (count_lines (run.out), ==, 1);
  g_assert_cmpuint (strlen (run.out), >=, 50);
  g_assert_true (g_file_test (key, G_FILE_TEST_IS_REGULAR));

  run_ctl (&again, PASS, "init", "--vault", fx->vault);
  assert_refused (&again, "already exists");

  run_ctl (&wrong, "not it", "verify", "--vault", fx->vault);
  assert_refused (&wrong, "Wrong passphrase");
}

static void
test_person (Fixture       *fx,
             gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *other = NULL;
  g_auto(Run) search = { 0 };
  g_auto(Run) show = { 0 };
  g_auto(Run) edit = { 0 };
  g_auto(Run) list = { 0 };
  g_auto(Run) exported = { 0 };
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *obj;

  id = add_person (fx, "Quenouillère", "Hélène", "1984-03-12");
  other = add_person (fx, "Martin", "Paul", "1990-07-01");

  run_ctl (&search, PASS, "person", "search", "quenouillere", "--vault", fx->vault);
  g_assert_cmpint (search.status, ==, 0);
  g_assert_cmpuint (count_lines (search.out), ==, 1);
  {
    g_autofree char *line = g_strdup_printf ("%s\tQuenouillère\tHélène\t1984-03-12\n", id);
    g_assert_cmpstr (search.out, ==, line);
  }
  run_clear (&search);
  run_ctl (&search, PASS, "person", "search", "ELE", "--vault", fx->vault);
  g_assert_cmpuint (count_lines (search.out), ==, 1);
  run_clear (&search);
  run_ctl (&search, PASS, "person", "search", "zzz", "--vault", fx->vault);
  g_assert_cmpint (search.status, ==, 0);
  g_assert_cmpuint (count_lines (search.out), ==, 0);

  run_ctl (&edit, PASS, "person", "edit", id, "--vault", fx->vault,
           "--phone", "06 12 34 56 78", "--city", "Saint-Flour", "--postal-code", "15100");
  g_assert_cmpint (edit.status, ==, 0);

  run_ctl (&show, PASS, "person", "show", id, "--json", "--vault", fx->vault);
  g_assert_cmpint (show.status, ==, 0);
  g_assert_true (json_parser_load_from_data (parser, show.out, -1, &error));
  g_assert_no_error (error);
  obj = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (obj, "id"), ==, id);
  g_assert_cmpstr (json_object_get_string_member (obj, "last_name"), ==, "Quenouillère");
  g_assert_cmpstr (json_object_get_string_member (obj, "phone"), ==, "0612345678");
  g_assert_cmpstr (json_object_get_string_member (obj, "city"), ==, "Saint-Flour");

  /* List order: by last name. */
  run_ctl (&list, PASS, "person", "list", "--vault", fx->vault);
  g_assert_cmpuint (count_lines (list.out), ==, 2);
  g_assert_true (g_str_has_prefix (list.out, other));

  run_ctl (&exported, PASS, "export", "--vault", fx->vault);
  g_assert_cmpint (exported.status, ==, 0);
  g_assert_true (json_parser_load_from_data (parser, exported.out, -1, &error));
  g_assert_no_error (error);
  g_assert_nonnull (strstr (exported.out, "Saint-Flour"));
  g_assert_nonnull (strstr (exported.out, "Paul"));
}

static void
test_refusals (Fixture       *fx,
               gconstpointer  data)
{
  g_autofree char *id = add_person (fx, "Quenouillère", "Hélène", "1984-03-12");
  g_autofree char *nowhere = g_build_filename (fx->dir, "nowhere", NULL);
  g_autofree char *passfile = g_build_filename (fx->dir, "pass.txt", NULL);
  struct { const char *pass; const char *args[12]; const char *needle; } cases[] = {
    { "wrong", { "person", "list", NULL }, "Wrong passphrase" },
    { PASS, { "person", "add", "--last-name", "X", "--first-name", "Y", "--birth-date", "1984-02-30", NULL }, "birth" },
    { PASS, { "person", "add", "--last-name", "X", "--first-name", "Y", "--birth-date", "2999-01-01", NULL }, "birth" },
    { PASS, { "person", "add", "--last-name", "X", "--first-name", "Y", NULL }, "birth" },
    { PASS, { "person", "add", "--last-name", "QUENOUILLERE", "--first-name", "helene", "--birth-date", "12/03/1984", NULL }, id },
    { PASS, { "person", "edit", "00000000-0000-4000-8000-000000000000", "--city", "Aurillac", NULL }, "00000000-0000-4000-8000-000000000000" },
    { PASS, { "person", "edit", id, "--email", "not an address", NULL }, "mail" },
    { PASS, { "person", "show", "nope", NULL }, NULL },
    { PASS, { "person", "frobnicate", NULL }, NULL },
    { PASS, { "frobnicate", NULL }, "unknown command" },
    { PASS, { "import", "/nonexistent.csv", NULL }, NULL },
    { NULL, { "person", "list", NULL }, "RELAIS_PASSPHRASE" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GPtrArray) argv = g_ptr_array_new ();
      g_autoptr(GError) error = NULL;
      g_auto(GStrv) env = make_env (cases[i].pass, NULL);
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;
      int status = 0;
      Run run = { 0 };

      g_ptr_array_add (argv, (char *) relaisctl ());
      for (guint a = 0; cases[i].args[a] != NULL; a++)
        g_ptr_array_add (argv, (char *) cases[i].args[a]);
      g_ptr_array_add (argv, "--vault");
      g_ptr_array_add (argv, fx->vault);
      g_ptr_array_add (argv, NULL);
      g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, env, G_SPAWN_DEFAULT,
                                   child_setup, NULL, &out, &err, &status, &error));
      g_assert_no_error (error);
      g_test_message ("case %u: %s", i, err);
      g_assert_true (WIFEXITED (status));
      run.status = WEXITSTATUS (status);
      run.err = err;
      assert_refused (&run, cases[i].needle);
      /* No personal data in a refusal. */
      g_assert_null (strstr (err, "Quenouill"));
      g_assert_null (strstr (err, "1984"));
    }

  {
    g_auto(Run) run = { 0 };
    run_ctl (&run, PASS, "person", "list", "--vault", nowhere);
    assert_refused (&run, "relaisctl init");
  }

  /* --passphrase-file, first line only. */
  {
    g_auto(Run) run = { 0 };
    g_assert_true (g_file_set_contents (passfile, PASS "\nignored\n", -1, NULL));
    run_ctl (&run, NULL, "person", "list", "--vault", fx->vault, "--passphrase-file", passfile);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpuint (count_lines (run.out), ==, 1);
  }

  g_assert_cmpuint (count_people (fx), ==, 1);
}

static void
test_passwd (Fixture       *fx,
             gconstpointer  data)
{
  g_auto(Run) init = { 0 };
  g_auto(Run) run = { 0 };
  const char *new_env[] = { "RELAIS_NEW_PASSPHRASE", "brand new", NULL };
  g_autofree char *recovery = NULL;

  run_ctl (&init, PASS, "init", "--vault", fx->vault);
  g_assert_cmpint (init.status, ==, 0);
  recovery = g_strstrip (g_strdup (init.out));
  g_free (add_person (fx, "Durand", "Léa", "2001-11-05"));

  run_full (&run, PASS, new_env, NULL, "passwd", "--vault", fx->vault, NULL);
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);

  run_ctl (&run, PASS, "person", "list", "--vault", fx->vault);
  assert_refused (&run, "Wrong passphrase");
  run_clear (&run);
  run_ctl (&run, "brand new", "person", "list", "--vault", fx->vault);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpuint (count_lines (run.out), ==, 1);
  run_clear (&run);

  /* The recovery key still opens it, and sets a passphrase again. */
  {
    const char *env[] = { "RELAIS_RECOVERY_KEY", recovery, "RELAIS_NEW_PASSPHRASE", PASS, NULL };
    run_full (&run, NULL, env, NULL, "passwd", "--recovery-key", "--vault", fx->vault, NULL);
    g_assert_cmpint (run.status, ==, 0);
    run_clear (&run);
  }
  g_assert_cmpuint (count_people (fx), ==, 1);
}

/* Runs `relais-server ARGS… --store STORE` and returns its first line. */
static char *
server_line (const char *store,
             ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  va_list args;
  int wait_status = 0;

  g_ptr_array_add (argv, (char *) g_getenv ("RELAIS_SERVER"));
  va_start (args, store);
  for (const char *arg = va_arg (args, const char *); arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, (char *) "--store");
  g_ptr_array_add (argv, (char *) store);
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDERR_TO_DEV_NULL,
                               NULL, NULL, &out, NULL, &wait_status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (wait_status, NULL));
  return g_strstrip (g_steal_pointer (&out));
}

/* On an enrolled vault, passwd also wraps the user's identity on the
 * server again: a second laptop then enrols with the new passphrase, and
 * no longer with the old one. */
static void
test_passwd_enrolled (Fixture       *fx,
                      gconstpointer  data)
{
  const char *server = g_getenv ("RELAIS_SERVER");
  const char *new_env[] = { "RELAIS_NEW_PASSPHRASE", "brand new", NULL };
  g_autofree char *store = NULL;
  g_autofree char *code = NULL;
  g_autofree char *url = NULL;
  g_autofree char *user_id = NULL;
  g_autofree char *second = g_build_filename (fx->dir, "second", NULL);
  g_autofree char *third = g_build_filename (fx->dir, "third", NULL);
  g_auto(Run) run = { 0 };
  GSubprocess *process;

  if (server == NULL || !g_file_test (server, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("relais-server is not built (RELAIS_SERVER)");
      return;
    }
  store = g_strdup_printf ("sqlite:%s/server.db", fx->dir);
  code = server_line (store, "user", "add", "--name", "Ana Test", "--org", "CCAS", NULL);
  {
    const char *argv[] = { server, "serve", "--store", store, "--listen", "127.0.0.1:0", NULL };

    process = relais_test_server_spawn (argv, &url);
  }

  run_ctl (&run, PASS, "enroll", "--vault", fx->vault, "--server", url, "--code", code);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (g_str_has_prefix (run.out, "enrolled as "));
  user_id = g_strndup (run.out + strlen ("enrolled as "),
                       strcspn (run.out + strlen ("enrolled as "), ","));
  run_clear (&run);

  run_full (&run, PASS, new_env, NULL, "passwd", "--vault", fx->vault, NULL);
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);

  /* A second laptop: the old passphrase no longer opens the identity… */
  g_free (code);
  code = server_line (store, "user", "code", user_id, NULL);
  run_ctl (&run, PASS, "init", "--vault", third);
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);
  run_ctl (&run, PASS, "enroll", "--vault", third, "--server", url, "--code", code);
  g_assert_cmpint (run.status, ==, 1);
  run_clear (&run);
  /* …the new one does. */
  g_free (code);
  code = server_line (store, "user", "code", user_id, NULL);
  run_ctl (&run, "brand new", "init", "--vault", second);
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);
  run_ctl (&run, "brand new", "enroll", "--vault", second, "--server", url, "--code", code);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_nonnull (strstr (run.out, user_id));

  relais_test_server_stop (process);
}

/* passwd killed at every step of replacing the key file: the old or the
 * new passphrase opens the vault, always. */
static void
test_passwd_killed (Fixture       *fx,
                    gconstpointer  data)
{
  const char *points[] = { "keyfile-partial", "keyfile-synced", "keyfile-renamed" };
  const char *current = PASS;
  g_autofree char *leftover = g_build_filename (fx->vault, "vault.key.new", NULL);

  g_free (add_person (fx, "Durand", "Léa", "2001-11-05"));

  for (guint round = 0; round < 2 * G_N_ELEMENTS (points); round++)
    {
      const char *point = points[round % G_N_ELEMENTS (points)];
      const char *next = g_strcmp0 (current, PASS) == 0 ? "second one" : PASS;
      const char *env[] = { "RELAIS_NEW_PASSPHRASE", next, "RELAIS_TEST_CRASH_POINT", point, NULL };
      g_auto(Run) run = { 0 };
      g_auto(Run) old_try = { 0 };
      g_auto(Run) new_try = { 0 };

      run_full (&run, current, env, NULL, "passwd", "--vault", fx->vault, NULL);
      g_assert_cmpint (run.status, ==, 128 + SIGKILL);

      run_ctl (&old_try, current, "verify", "--vault", fx->vault);
      run_ctl (&new_try, next, "verify", "--vault", fx->vault);
      g_test_message ("killed at %s: old %d new %d", point, old_try.status, new_try.status);
      /* Exactly one of them. */
      g_assert_true ((old_try.status == 0) != (new_try.status == 0));
      if (g_str_equal (point, "keyfile-renamed"))
        g_assert_cmpint (new_try.status, ==, 0);
      else
        g_assert_cmpint (old_try.status, ==, 0);
      if (new_try.status == 0)
        current = next;
      g_assert_false (g_file_test (leftover, G_FILE_TEST_EXISTS));
    }
}

static char *
write_csv (Fixture *fx,
           guint    rows,
           gboolean bad)
{
  g_autoptr(GString) csv = g_string_new ("Nom;Prénom;Date de naissance;Téléphone;Code postal;Commune\r\n");
  g_autofree char *path = g_build_filename (fx->dir, bad ? "bad.csv" : "people.csv", NULL);

  for (guint i = 0; i < rows; i++)
    {
      if (bad && i == 1)
        g_string_append (csv, "Sans;Date;;0612345678;15000;Aurillac\r\n");
      else if (bad && i == 3)
        g_string_append (csv, "Date;Fausse;31/02/1980;0612345678;15000;Aurillac\r\n");
      else
        g_string_append_printf (csv, "Nom%05u;Prénom%u;%02u/%02u/%04u;06 %02u %02u %02u %02u;15%03u;Commune %u\r\n",
                                i, i % 97, 1 + i % 28, 1 + i % 12, 1950 + i % 50,
                                i % 100, (i / 100) % 100, 12, 34, i % 1000, i % 50);
    }
  g_assert_true (g_file_set_contents (path, csv->str, csv->len, NULL));
  return g_steal_pointer (&path);
}

static void
test_import (Fixture       *fx,
             gconstpointer  data)
{
  g_autofree char *good = write_csv (fx, 300, FALSE);
  g_autofree char *bad = write_csv (fx, 10, TRUE);
  g_auto(Run) run = { 0 };
  g_auto(Run) again = { 0 };
  g_auto(Run) refused = { 0 };

  run_ctl (&run, PASS, "import", good, "--vault", fx->vault);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpstr (run.out, ==, "imported 300 rows: 300 created, 0 updated, 0 unchanged\n");
  g_assert_cmpuint (count_people (fx), ==, 300);

  run_ctl (&again, PASS, "import", good, "--vault", fx->vault);
  g_assert_cmpint (again.status, ==, 0);
  g_assert_cmpstr (again.out, ==, "imported 300 rows: 0 created, 0 updated, 300 unchanged\n");
  g_assert_cmpuint (count_people (fx), ==, 300);

  /* Bad rows: refused whole, each named by its spreadsheet line. */
  run_ctl (&refused, PASS, "import", bad, "--vault", fx->vault);
  g_assert_cmpint (refused.status, ==, 1);
  g_assert_nonnull (strstr (refused.err, "line 3"));
  g_assert_nonnull (strstr (refused.err, "line 5"));
  g_assert_null (strstr (refused.err, "Fausse"));
  g_assert_cmpuint (count_people (fx), ==, 300);
}

/* Killed mid-import: all or nothing. */
static void
test_import_killed (Fixture       *fx,
                    gconstpointer  data)
{
  g_autofree char *big = write_csv (fx, 20000, FALSE);
  g_autofree char *scratch = g_build_filename (fx->dir, "scratch", NULL);
  guint seen_none = 0, seen_all = 0;
  gint64 full_ms;

  /* How long a whole import takes here, so that kills land all along it. */
  {
    g_auto(Run) run = { 0 };
    g_auto(Run) timed = { 0 };
    gint64 start;

    run_ctl (&run, PASS, "init", "--vault", scratch);
    g_assert_cmpint (run.status, ==, 0);
    start = g_get_monotonic_time ();
    run_ctl (&timed, PASS, "import", big, "--vault", scratch);
    if (timed.status != 0)
      g_test_message ("%s", timed.err);
    g_assert_cmpint (timed.status, ==, 0);
    full_ms = (g_get_monotonic_time () - start) / 1000;
    g_test_message ("a whole import takes %" G_GINT64_FORMAT " ms", full_ms);
  }

  for (guint round = 0; round < 8; round++)
    {
      const char *argv[] = { relaisctl (), "import", big, "--vault", fx->vault, NULL };
      g_auto(GStrv) env = make_env (PASS, NULL);
      g_autoptr(GError) error = NULL;
      GPid pid;
      int status = 0;
      guint people;

      g_assert_true (g_spawn_async (NULL, (char **) argv, env, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                    child_setup, NULL, &pid, &error));
      g_assert_no_error (error);
      g_usleep ((gulong) g_test_rand_int_range ((gint) (full_ms / 5), (gint) (full_ms * 6 / 5) + 1) * 1000);
      kill (pid, SIGKILL);
      waitpid (pid, &status, 0);
      g_spawn_close_pid (pid);

      people = count_people (fx);
      g_test_message ("round %u: %u people", round, people);
      g_assert_true (people == 0 || people == 20000);
      if (people == 0)
        seen_none++;
      else
        {
          seen_all++;
          break;
        }
    }
  g_assert_cmpuint (seen_none + seen_all, >, 0);
  g_test_message ("killed imports left nothing %u times, everything %u times", seen_none, seen_all);

  {
    g_auto(Run) verify = { 0 };
    run_ctl (&verify, PASS, "verify", "--vault", fx->vault);
    g_assert_cmpint (verify.status, ==, 0);
  }
}

/* A full disk (here: a file size limit) in the middle of an import: one
 * clear line, exit 1, and the vault as it was. */
static void
test_disk_full (Fixture       *fx,
                gconstpointer  data)
{
  g_autofree char *small = write_csv (fx, 50, FALSE);
  g_autofree char *big = NULL;
  ChildSetup setup = { .file_limit = 256 * 1024 };
  g_auto(Run) run = { 0 };
  g_auto(Run) full = { 0 };
  g_auto(Run) verify = { 0 };

  run_ctl (&run, PASS, "import", small, "--vault", fx->vault);
  g_assert_cmpint (run.status, ==, 0);
  big = write_csv (fx, 20000, FALSE);

  run_full (&full, PASS, NULL, &setup, "import", big, "--vault", fx->vault, NULL);
  g_test_message ("%s", full.err);
  assert_refused (&full, NULL);

  g_assert_cmpuint (count_people (fx), ==, 50);
  run_ctl (&verify, PASS, "verify", "--vault", fx->vault);
  g_assert_cmpint (verify.status, ==, 0);
}

/* The dossier's records from the shell (relais-dossier.h). */

static JsonObject *
export_dossier (Fixture    *fx,
                const char *id,
                JsonParser *parser)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GError) error = NULL;
  JsonArray *dossiers;

  run_ctl (&run, PASS, "export", "--vault", fx->vault);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (json_parser_load_from_data (parser, run.out, -1, &error));
  g_assert_no_error (error);
  dossiers = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "dossiers");
  for (guint i = 0; i < json_array_get_length (dossiers); i++)
    {
      JsonObject *dossier = json_array_get_object_element (dossiers, i);

      if (g_strcmp0 (json_object_get_string_member (dossier, "id"), id) == 0)
        return dossier;
    }
  g_assert_not_reached ();
}

static char *
run_for_id (Fixture    *fx,
            const char *first,
            ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) env = make_env (PASS, NULL);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  va_list args;
  int wait_status = 0;

  g_ptr_array_add (argv, (char *) relaisctl ());
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, (char *) "--vault");
  g_ptr_array_add (argv, fx->vault);
  g_ptr_array_add (argv, NULL);

  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, env, G_SPAWN_DEFAULT,
                               child_setup, NULL, &out, &err, &wait_status, &error));
  g_assert_no_error (error);
  if (!WIFEXITED (wait_status) || WEXITSTATUS (wait_status) != 0)
    g_test_message ("stderr: %s", err);
  g_assert_true (WIFEXITED (wait_status) && WEXITSTATUS (wait_status) == 0);
  g_assert_cmpuint (count_lines (out), ==, 1);
  g_strchomp (out);
  g_assert_true (g_uuid_string_is_valid (out));
  return g_steal_pointer (&out);
}

static void
test_diagnostic_cli (Fixture       *fx,
                     gconstpointer  data)
{
  g_autofree char *id = add_person (fx, "Quenouillère", "Hélène", "1981-02-03");
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_auto(Run) run = { 0 };
  JsonObject *dossier;
  JsonObject *theme;

  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "logement", "fort",
           "--comment", "Hébergée chez sa sœur", "--situations", "heberge-tiers, impayes-loyer");
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpstr (run.out, ==, "");
  run_clear (&run);

  /* Bad keys and ids: one line each, without the comment typed. */
  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "cuisine", "fort",
           "--comment", "Hébergée chez sa sœur");
  assert_refused (&run, "theme");
  g_assert_null (strstr (run.err, "sœur"));
  run_clear (&run);
  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "logement", "tres-fort");
  assert_refused (&run, "non-aborde");
  run_clear (&run);
  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "logement", "moyen",
           "--situations", "permis-b");
  assert_refused (&run, "situations");
  run_clear (&run);
  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, "no-such-id", "logement", "fort");
  assert_refused (&run, "No dossier");
  run_clear (&run);
  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "logement");
  assert_refused (&run, NULL);
  run_clear (&run);
  run_ctl (&run, PASS, "diagnostic", "--vault", fx->vault);
  assert_refused (&run, "set");
  run_clear (&run);

  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "logement", "moyen");
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);

  run_ctl (&run, PASS, "diagnostic", "show", "--vault", fx->vault, id);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpuint (count_lines (run.out), ==, 10);
  g_assert_true (g_str_has_prefix (run.out, "logement\tmoyen\theberge-tiers,impayes-loyer\t"));
  g_assert_nonnull (strstr (run.out, "\nnumerique\t\t\t\t\n"));

  dossier = export_dossier (fx, id, parser);
  theme = json_object_get_object_member (json_object_get_object_member (dossier, "diagnostic"), "logement");
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (theme, "current"), "comment"),
                   ==, "Hébergée chez sa sœur");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (theme, "history")), ==, 2);
}

static void
test_plan_cli (Fixture       *fx,
               gconstpointer  data)
{
  g_autofree char *id = add_person (fx, "Martin", "Léa", "1999-07-14");
  g_autofree char *objective = NULL;
  g_autofree char *action = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_auto(Run) run = { 0 };
  JsonObject *dossier;
  JsonObject *got;

  objective = run_for_id (fx, "plan", "add-objective", id, "emploi", "Trouver un emploi de cariste", NULL);
  action = run_for_id (fx, "plan", "add-action", objective, "Passer le CACES", "--due", "2026-12-15", NULL);

  run_ctl (&run, PASS, "plan", "add-objective", "--vault", fx->vault, id, "cuisine", "x");
  assert_refused (&run, "theme");
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "add-objective", "--vault", fx->vault, "no-such-id", "emploi", "x");
  assert_refused (&run, "No dossier");
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "add-action", "--vault", fx->vault, objective, "x", "--due", "15/12/2026");
  assert_refused (&run, "YYYY-MM-DD");
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "add-action", "--vault", fx->vault, "no-such-id", "x");
  assert_refused (&run, "No objective");
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "set-status", "--vault", fx->vault, action, "done");
  assert_refused (&run, "realisee");
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "set-status", "--vault", fx->vault, objective, "realisee");
  assert_refused (&run, "realise");
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "set-status", "--vault", fx->vault, "no-such-id", "realise");
  assert_refused (&run, "No objective or action");
  run_clear (&run);

  run_ctl (&run, PASS, "plan", "set-status", "--vault", fx->vault, action, "realisee");
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);
  run_ctl (&run, PASS, "plan", "set-status", "--vault", fx->vault, objective, "realise");
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);

  dossier = export_dossier (fx, id, parser);
  got = json_array_get_object_element (json_object_get_array_member (dossier, "objectives"), 0);
  g_assert_cmpstr (json_object_get_string_member (got, "id"), ==, objective);
  g_assert_cmpstr (json_object_get_string_member (got, "theme"), ==, "emploi");
  g_assert_cmpstr (json_object_get_string_member (got, "status"), ==, "realise");
  got = json_array_get_object_element (json_object_get_array_member (dossier, "actions"), 0);
  g_assert_cmpstr (json_object_get_string_member (got, "objective"), ==, objective);
  g_assert_cmpstr (json_object_get_string_member (got, "status"), ==, "realisee");
  g_assert_cmpstr (json_object_get_string_member (got, "due"), ==, "2026-12-15");
}

static void
test_appointment_cli (Fixture       *fx,
                      gconstpointer  data)
{
  g_autofree char *id = add_person (fx, "Durand", "Marc", "1970-01-30");
  g_autofree char *appointment = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_auto(Run) run = { 0 };
  JsonObject *got;

  appointment = run_for_id (fx, "appointment", "add", id, "--at", "2026-12-01 09:30",
                            "--with", "Mme Leroy", "--place", "Agence de Guéret", NULL);

  run_ctl (&run, PASS, "appointment", "add", "--vault", fx->vault, id, "--at", "2026-12-01",
           "--with", "Mme Leroy");
  assert_refused (&run, "YYYY-MM-DD HH:MM");
  run_clear (&run);
  run_ctl (&run, PASS, "appointment", "add", "--vault", fx->vault, id, "--at", "2026-12-01 24:00",
           "--with", "Mme Leroy");
  assert_refused (&run, "YYYY-MM-DD HH:MM");
  run_clear (&run);
  run_ctl (&run, PASS, "appointment", "add", "--vault", fx->vault, id, "--at", "2026-12-01 09:30");
  assert_refused (&run, "--with");
  run_clear (&run);
  run_ctl (&run, PASS, "appointment", "add", "--vault", fx->vault, "no-such-id",
           "--at", "2026-12-01 09:30", "--with", "Mme Leroy");
  assert_refused (&run, "No dossier");
  run_clear (&run);

  got = json_array_get_object_element (json_object_get_array_member (export_dossier (fx, id, parser),
                                                                     "appointments"), 0);
  g_assert_cmpstr (json_object_get_string_member (got, "id"), ==, appointment);
  g_assert_cmpstr (json_object_get_string_member (got, "at"), ==, "2026-12-01 09:30");
  g_assert_cmpstr (json_object_get_string_member (got, "with_whom"), ==, "Mme Leroy");
  g_assert_cmpstr (json_object_get_string_member (got, "place"), ==, "Agence de Guéret");
  g_assert_cmpstr (json_object_get_string_member (got, "status"), ==, "planned");
}

static void
test_note_cli (Fixture       *fx,
               gconstpointer  data)
{
  g_autofree char *id = add_person (fx, "Petit", "Zoé", "2001-05-05");
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_auto(GStrv) lines = NULL;
  g_auto(GStrv) fields = NULL;
  g_auto(Run) run = { 0 };

  run_ctl (&run, PASS, "note", "list", "--vault", fx->vault, id);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpstr (run.out, ==, "");
  run_clear (&run);

  first = run_for_id (fx, "note", "add", id, "Premier entretien.\nA\ttab \\ fin", NULL);
  second = run_for_id (fx, "note", "add", id, "Rappeler lundi.", NULL);

  /* Oldest first, one line each: date, author, text, escaped. */
  run_ctl (&run, PASS, "note", "list", "--vault", fx->vault, id);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpuint (count_lines (run.out), ==, 2);
  lines = g_strsplit (run.out, "\n", -1);
  fields = g_strsplit (lines[0], "\t", -1);
  g_assert_cmpuint (g_strv_length (fields), ==, 3);
  g_assert_cmpuint (strlen (fields[0]), ==, 20);
  g_assert_true (g_str_has_suffix (fields[0], "Z"));
  g_assert_cmpstr (fields[1], !=, "");
  g_assert_cmpstr (fields[2], ==, "Premier entretien.\\nA\\ttab \\\\ fin");
  g_assert_true (g_str_has_suffix (lines[1], "\tRappeler lundi."));
  run_clear (&run);

  run_ctl (&run, PASS, "note", "add", "--vault", fx->vault, id, "   ");
  assert_refused (&run, "required");
  run_clear (&run);
  run_ctl (&run, PASS, "note", "add", "--vault", fx->vault, "no-such-id", "Confidentiel : dettes");
  assert_refused (&run, "No dossier");
  g_assert_null (strstr (run.err, "dettes"));
  run_clear (&run);
  run_ctl (&run, PASS, "note", "list", "--vault", fx->vault, "no-such-id");
  assert_refused (&run, "No dossier");
  run_clear (&run);
  run_ctl (&run, PASS, "note", "add", "--vault", fx->vault, id);
  assert_refused (&run, NULL);
  run_clear (&run);
  run_ctl (&run, PASS, "note", "delete", "--vault", fx->vault, id);
  assert_refused (&run, "add, list");
}

static void
test_summary_cli (Fixture       *fx,
                  gconstpointer  data)
{
  g_autofree char *id = add_person (fx, "Quenouillère", "Hélène", "1981-02-03");
  g_autofree char *objective = NULL;
  g_autofree char *action = NULL;
  g_autofree char *appointment = NULL;
  g_autofree char *pdf = g_build_filename (fx->dir, "restitution.pdf", NULL);
  g_autofree char *missing = g_build_filename (fx->dir, "Quenouillère", "restitution.pdf", NULL);
  g_autofree char *pdftotext = g_find_program_in_path ("pdftotext");
  g_autofree char *contents = NULL;
  g_auto(Run) run = { 0 };
  GStatBuf st;

  run_ctl (&run, PASS, "diagnostic", "set", "--vault", fx->vault, id, "logement", "fort");
  g_assert_cmpint (run.status, ==, 0);
  run_clear (&run);
  objective = run_for_id (fx, "plan", "add-objective", id, "logement", "Trouver un logement", NULL);
  action = run_for_id (fx, "plan", "add-action", objective, "Déposer une demande", NULL);
  appointment = run_for_id (fx, "appointment", "add", id, "--at", "2099-06-01 09:30",
                            "--with", "Mme Leroy", NULL);

  run_ctl (&run, PASS, "summary", "--vault", fx->vault, id, "--pdf", pdf);
  if (run.status != 0)
    g_test_message ("stderr: %s", run.err);
  g_assert_cmpint (run.status, ==, 0);
  g_assert_cmpstr (run.out, ==, "");
  g_assert_true (g_file_get_contents (pdf, &contents, NULL, NULL));
  g_assert_true (g_str_has_prefix (contents, "%PDF-"));
  g_assert_cmpint (g_stat (pdf, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  run_clear (&run);

  if (pdftotext != NULL)
    {
      g_autofree char *text = NULL;
      const char *argv[] = { pdftotext, "-enc", "UTF-8", pdf, "-", NULL };

      g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL,
                                   NULL, NULL, &text, NULL, NULL, NULL));
      g_assert_nonnull (strstr (text, "Hélène QUENOUILLÈRE"));
      g_assert_nonnull (strstr (text, "Logement — Frein fort"));
      g_assert_nonnull (strstr (text, "Déposer une demande"));
      g_assert_nonnull (strstr (text, "lundi 1er juin 2099"));
      g_assert_nonnull (strstr (text, "Mme Leroy"));
    }

  g_unlink (pdf);
  run_ctl (&run, PASS, "summary", "--vault", fx->vault, "no-such-id", "--pdf", pdf);
  assert_refused (&run, "No dossier");
  g_assert_false (g_file_test (pdf, G_FILE_TEST_EXISTS));
  run_clear (&run);
  run_ctl (&run, PASS, "summary", "--vault", fx->vault, id);
  assert_refused (&run, "--pdf");
  run_clear (&run);
  run_ctl (&run, PASS, "summary", "--vault", fx->vault, "--pdf", pdf);
  assert_refused (&run, "dossier id");
  run_clear (&run);
  /* The path may name the person: the refusal does not repeat it. */
  run_ctl (&run, PASS, "summary", "--vault", fx->vault, id, "--pdf", missing);
  assert_refused (&run, "PDF");
  g_assert_null (strstr (run.err, "Quenouillère"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/cli/init", Fixture, "empty", fixture_setup, test_init, fixture_teardown);
  g_test_add ("/cli/person", Fixture, NULL, fixture_setup, test_person, fixture_teardown);
  g_test_add ("/cli/refusals", Fixture, NULL, fixture_setup, test_refusals, fixture_teardown);
  g_test_add ("/cli/passwd", Fixture, "empty", fixture_setup, test_passwd, fixture_teardown);
  g_test_add ("/cli/passwd-enrolled", Fixture, NULL, fixture_setup, test_passwd_enrolled,
              fixture_teardown);
  g_test_add ("/cli/passwd-killed", Fixture, NULL, fixture_setup, test_passwd_killed, fixture_teardown);
  g_test_add ("/cli/import", Fixture, NULL, fixture_setup, test_import, fixture_teardown);
  g_test_add ("/cli/import-killed", Fixture, NULL, fixture_setup, test_import_killed, fixture_teardown);
  g_test_add ("/cli/disk-full", Fixture, NULL, fixture_setup, test_disk_full, fixture_teardown);
  g_test_add ("/cli/diagnostic", Fixture, NULL, fixture_setup, test_diagnostic_cli, fixture_teardown);
  g_test_add ("/cli/plan", Fixture, NULL, fixture_setup, test_plan_cli, fixture_teardown);
  g_test_add ("/cli/appointment", Fixture, NULL, fixture_setup, test_appointment_cli, fixture_teardown);
  g_test_add ("/cli/note", Fixture, NULL, fixture_setup, test_note_cli, fixture_teardown);
  g_test_add ("/cli/summary", Fixture, NULL, fixture_setup, test_summary_cli, fixture_teardown);

  return g_test_run ();
}
