#define G_LOG_DOMAIN "relais-server"

#include "config.h"

#include <locale.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "relais-changeset.h"
#include "relais-oplog.h"
#include "relais-server-api.h"
#include "relais-server-http.h"
#include "relais-store.h"

/*
 * relais-server: the central server (PROTOCOL.md §5) and its
 * administration.  Every sub-command opens the store itself, so that an
 * administrator can add users and revoke devices while a server runs on
 * the same store.  Exit status 0 on success, 1 with one line on stderr
 * otherwise.  Server messages are English, untranslated (like the wire's).
 */

static int
fail (const char *format, ...) G_GNUC_PRINTF (1, 2);

static int
fail (const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "relais-server: %s\n", message);
  return 1;
}

static int
fail_error (const GError *error)
{
  return fail ("%s", error->message);
}

/* Parses the sub-command's options; the remaining arguments are left in
 * @argv (the program's and sub-command's names first). */
static gboolean
parse_options (int *argc, char ***argv, const char *usage, const GOptionEntry *entries,
               int *out_status)
{
  g_autoptr(GOptionContext) context = g_option_context_new (usage);
  g_autoptr(GError) error = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      *out_status = fail ("%s", error->message);
      return FALSE;
    }
  return TRUE;
}

static RelaisStore *
open_store (const char *uri, int *out_status)
{
  g_autoptr(GError) error = NULL;
  RelaisStore *store;

  if (uri == NULL)
    {
      *out_status = fail ("--store is required (sqlite:PATH or postgresql://...).");
      return NULL;
    }
  store = relais_store_open (uri, &error);
  if (store == NULL)
    *out_status = fail_error (error);
  return store;
}

/* A name or organisation given on the command line: what the API accepts. */
static gboolean
text_is_valid (const char *text)
{
  if (text == NULL || *text == '\0' || strlen (text) > 200 || !g_utf8_validate (text, -1, NULL))
    return FALSE;
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;
  return TRUE;
}

static void
print_json (JsonBuilder *builder)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

/* ---- serve ----------------------------------------------------------- */

static int
cmd_serve (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autofree char *listen = NULL;
  g_autofree char *tls_cert = NULL;
  g_autofree char *tls_key = NULL;
  g_autofree char *host = NULL;
  g_autofree char *url = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  g_autoptr(RelaisServerApi) api = NULL;
  RelaisServerHttp *http;
  gboolean quiet = FALSE;
  int threads = 0;
  int status = 0;
  int sig;
  guint16 port;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen, "Address and port (port 0: any free one)", "HOST:PORT" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert, "TLS certificate chain (PEM)", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key, "TLS private key (PEM)", "FILE" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "Worker threads (default 8)", "N" },
    { "quiet", 0, 0, G_OPTION_ARG_NONE, &quiet, "Do not log each request", NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "- serve the sync API", entries, &status))
    return status;
  if (argc > 2)
    return fail ("serve takes no arguments besides its options.");
  if (listen == NULL)
    return fail ("--listen is required (HOST:PORT).");
  if (threads < 0 || threads > 256)
    return fail ("--threads takes a number from 1 to 256.");
  if (!relais_server_http_parse_listen (listen, &host, &port, &error))
    return fail_error (error);

  /* Before any thread exists (the store's, libmicrohttpd's): they inherit
   * the mask, and only the main thread takes SIGTERM. */
  relais_server_signals_block ();

  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  api = relais_server_api_new (store, &error);
  if (api == NULL)
    return fail_error (error);
  /* SQLite lets one writer in at a time; PostgreSQL many.  The variable
   * is there to measure the difference, not for production. */
  relais_server_api_set_serialize_writes (api, g_str_has_prefix (store_uri, "sqlite:")
                                               && g_getenv ("RELAIS_SERVER_NO_WRITE_LOCK") == NULL);
  http = relais_server_http_start (api, &(RelaisServerHttpConfig) {
                                     .host = host,
                                     .port = port,
                                     .tls_cert = tls_cert,
                                     .tls_key = tls_key,
                                     .threads = (guint) threads,
                                     .quiet = quiet,
                                   }, &error);
  if (http == NULL)
    return fail_error (error);
  url = relais_server_http_get_url (http);
  printf ("relais-server: listening on %s\n", url);
  fflush (stdout);

  sig = relais_server_signals_wait ();
  fprintf (stderr, "relais-server: stopping on %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  relais_server_http_stop (http);
  return 0;
}

/* ---- user ------------------------------------------------------------ */

/* Makes a code for @user_id, stores its hash, prints it alone. */
static int
issue_code (RelaisStore *store, const char *user_id)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *code = relais_server_code_new ();
  guint8 hash[RELAIS_STORE_HASH_SIZE];
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  relais_server_code_hash (code, hash);
  if (!relais_store_code_add (store, hash, user_id, now + RELAIS_SERVER_CODE_LIFETIME, &error))
    {
      sodium_memzero (code, strlen (code));
      return fail_error (error);
    }
  printf ("%s\n", code);
  fflush (stdout);
  sodium_memzero (code, strlen (code));
  return 0;
}

static int
cmd_user_add (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autofree char *name = NULL;
  g_autofree char *org = NULL;
  g_autofree char *user_id = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  gboolean admin = FALSE;
  int status = 0;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { "name", 0, 0, G_OPTION_ARG_STRING, &name, "The person's name", "NAME" },
    { "org", 0, 0, G_OPTION_ARG_STRING, &org, "Their organisation", "ORG" },
    { "admin", 0, 0, G_OPTION_ARG_NONE, &admin, "An administrator of their organisation", NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "- add a user and print their enrolment code", entries, &status))
    return status;
  if (argc > 2)
    return fail ("user add takes no arguments besides its options.");
  if (!text_is_valid (name))
    return fail ("--name is required: printable text of at most 200 bytes.");
  if (!text_is_valid (org))
    return fail ("--org is required: printable text of at most 200 bytes.");
  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  user_id = relais_oplog_new_id ();
  if (!relais_store_user_add (store, user_id, name, org, admin,
                              g_get_real_time () / G_USEC_PER_SEC, &error))
    return fail_error (error);
  return issue_code (store, user_id);
}

static int
cmd_user_code (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  g_autoptr(RelaisStoreUser) user = NULL;
  int status = 0;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "USER_ID - print a new enrolment code for a user", entries, &status))
    return status;
  if (argc != 3 || !relais_server_id_is_valid (argv[2]))
    return fail ("user code takes one user id.");
  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  user = relais_store_user_get (store, argv[2], &error);
  if (user == NULL)
    {
      if (g_error_matches (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        return fail ("No user is known under that id.");
      return fail_error (error);
    }
  return issue_code (store, user->user_id);
}

static int
cmd_user_list (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  g_autoptr(GPtrArray) users = NULL;
  gboolean json = FALSE;
  int status = 0;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "- list the users", entries, &status))
    return status;
  if (argc > 2)
    return fail ("user list takes no arguments besides its options.");
  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  users = relais_store_user_list (store, NULL, &error);
  if (users == NULL)
    return fail_error (error);
  if (json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (guint i = 0; i < users->len; i++)
        {
          RelaisStoreUser *user = g_ptr_array_index (users, i);

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "user_id");
          json_builder_add_string_value (builder, user->user_id);
          json_builder_set_member_name (builder, "name");
          json_builder_add_string_value (builder, user->name);
          json_builder_set_member_name (builder, "org");
          json_builder_add_string_value (builder, user->org);
          json_builder_set_member_name (builder, "admin");
          json_builder_add_boolean_value (builder, user->admin);
          json_builder_set_member_name (builder, "has_keys");
          json_builder_add_boolean_value (builder, user->has_keys);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      print_json (builder);
      return 0;
    }
  for (guint i = 0; i < users->len; i++)
    {
      RelaisStoreUser *user = g_ptr_array_index (users, i);

      printf ("%s\t%s\t%s%s%s\n", user->user_id, user->org, user->name,
              user->admin ? "\tadmin" : "", user->has_keys ? "" : "\t(no keys yet)");
    }
  return 0;
}

/* ---- device ---------------------------------------------------------- */

static int
cmd_device_list (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autofree char *user_id = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  gboolean json = FALSE;
  int status = 0;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { "user", 0, 0, G_OPTION_ARG_STRING, &user_id, "Only this user's devices", "USER_ID" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "- list the devices", entries, &status))
    return status;
  if (argc > 2)
    return fail ("device list takes no arguments besides its options.");
  if (user_id != NULL && !relais_server_id_is_valid (user_id))
    return fail ("--user takes a user id.");
  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  devices = relais_store_device_list (store, user_id, &error);
  if (devices == NULL)
    return fail_error (error);
  if (json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();

      json_builder_begin_array (builder);
      for (guint i = 0; i < devices->len; i++)
        {
          RelaisStoreDevice *device = g_ptr_array_index (devices, i);

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "device_id");
          json_builder_add_string_value (builder, device->device_id);
          json_builder_set_member_name (builder, "user_id");
          json_builder_add_string_value (builder, device->user_id);
          json_builder_set_member_name (builder, "name");
          json_builder_add_string_value (builder, device->name);
          json_builder_set_member_name (builder, "revoked");
          json_builder_add_boolean_value (builder, device->revoked);
          json_builder_set_member_name (builder, "last_seen");
          json_builder_add_int_value (builder, device->last_seen);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      print_json (builder);
      return 0;
    }
  for (guint i = 0; i < devices->len; i++)
    {
      RelaisStoreDevice *device = g_ptr_array_index (devices, i);
      g_autofree char *seen = NULL;

      if (device->last_seen > 0)
        {
          g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc (device->last_seen);

          seen = time != NULL ? g_date_time_format (time, "%Y-%m-%d %H:%M:%SZ") : NULL;
        }
      printf ("%s\t%s\t%s\t%s\t%s\n", device->device_id, device->user_id, device->name,
              device->revoked ? "revoked" : "active", seen != NULL ? seen : "never seen");
    }
  return 0;
}

static int
cmd_device_revoke (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  int status = 0;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "DEVICE_ID - revoke a device", entries, &status))
    return status;
  if (argc != 3 || !relais_server_id_is_valid (argv[2]))
    return fail ("device revoke takes one device id.");
  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  if (!relais_store_device_revoke (store, argv[2], &error))
    {
      if (g_error_matches (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        return fail ("No device is known under that id.");
      return fail_error (error);
    }
  return 0;
}

/* ---- org ------------------------------------------------------------- */

static int
cmd_org_set_recovery_key (int argc, char **argv)
{
  g_autofree char *store_uri = NULL;
  g_autofree char *org = NULL;
  g_autofree char *key_text = NULL;
  g_autofree guint8 *key = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;
  gsize len = 0;
  int status = 0;
  const GOptionEntry entries[] = {
    { "store", 0, 0, G_OPTION_ARG_STRING, &store_uri, "Store: sqlite:PATH or postgresql://...", "URI" },
    { "org", 0, 0, G_OPTION_ARG_STRING, &org, "The organisation", "ORG" },
    { "key", 0, 0, G_OPTION_ARG_STRING, &key_text, "Its recovery public key (base64url)", "BASE64URL" },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "- set an organisation's recovery public key", entries, &status))
    return status;
  if (argc > 2)
    return fail ("org set-recovery-key takes no arguments besides its options.");
  if (!text_is_valid (org))
    return fail ("--org is required: printable text of at most 200 bytes.");
  if (key_text != NULL)
    key = relais_sync_base64_decode (key_text, RELAIS_STORE_KEY_SIZE, &len, NULL);
  if (key == NULL || len != RELAIS_STORE_KEY_SIZE)
    return fail ("--key takes the recovery public key as 32 bytes of base64url "
                 "(what 'relaisctl recovery-key new' prints).");
  store = open_store (store_uri, &status);
  if (store == NULL)
    return status;
  if (!relais_store_recovery_key_set (store, org, key, &error))
    return fail_error (error);
  return 0;
}

/* ---- main ------------------------------------------------------------ */

static const struct {
  const char *group;
  const char *name;
  int       (*run) (int argc, char **argv);
} commands[] = {
  { "serve",  NULL,               cmd_serve },
  { "user",   "add",              cmd_user_add },
  { "user",   "code",             cmd_user_code },
  { "user",   "list",             cmd_user_list },
  { "device", "list",             cmd_device_list },
  { "device", "revoke",           cmd_device_revoke },
  { "org",    "set-recovery-key", cmd_org_set_recovery_key },
};

static int
usage (void)
{
  fprintf (stderr,
           "usage: relais-server serve --store URI --listen HOST:PORT [--tls-cert FILE --tls-key FILE]\n"
           "       relais-server user add --store URI --name NAME --org ORG [--admin]\n"
           "       relais-server user code --store URI USER_ID\n"
           "       relais-server user list --store URI [--json]\n"
           "       relais-server device list --store URI [--user ID] [--json]\n"
           "       relais-server device revoke --store URI DEVICE_ID\n"
           "       relais-server org set-recovery-key --store URI --org ORG --key BASE64URL\n");
  return 1;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (sodium_init () < 0)
    return fail ("libsodium failed to start.");
  if (argc < 2)
    return usage ();
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "help") == 0)
    {
      usage ();
      return 0;
    }

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *prog = NULL;
      g_autofree char **sub_argv = NULL;
      int sub_argc, skip;

      if (strcmp (argv[1], commands[i].group) != 0)
        continue;
      if (commands[i].name != NULL && (argc < 3 || strcmp (argv[2], commands[i].name) != 0))
        continue;
      /* The sub-command sees "relais-server user add" as its argv[0..1],
       * so that its options start at argv[2]. */
      skip = commands[i].name != NULL ? 1 : 0;
      sub_argc = argc - skip;
      sub_argv = g_new0 (char *, sub_argc + 1);
      prog = skip ? g_strdup_printf ("%s %s %s", argv[0], argv[1], argv[2])
                  : g_strdup_printf ("%s %s", argv[0], argv[1]);
      sub_argv[0] = prog;
      sub_argv[1] = skip ? argv[2] : argv[1];
      for (int a = 2 + skip; a < argc; a++)
        sub_argv[a - skip] = argv[a];
      return commands[i].run (sub_argc, sub_argv);
    }
  return usage ();
}
