#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <curl/curl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>

#include "relais-changeset.h"
#include "relais-keys.h"
#include "relais-oplog.h"
#include "relais-server-api.h"
#include "relais-store.h"
#include "relais-test-util.h"
#if __has_include("relais-test-pg.h")
#include "relais-test-pg.h"
#define HAVE_TEST_PG 1
#endif

/* relais-server over HTTP, as devices meet it: the real binary on
 * loopback with a real store, requests signed here with libsodium (not
 * with the client library, so that the two are checked against the
 * protocol and not against each other), and the body parsers fed hostile
 * input directly. */

/* Whatever the log must never show: names, organisations, codes. */
static GPtrArray *secrets;

/* ---- The server process ---------------------------------------------- */

typedef struct {
  char        *dir;
  char        *store_uri;
  char        *url;
  char        *err_path;
  char        *cainfo;     /* the certificate to trust, for https */
  GSubprocess *process;
} Server;

static const char *
server_path (void)
{
  const char *path = g_getenv ("RELAIS_SERVER");

  g_assert_nonnull (path);
  return path;
}

static Server *
server_start_full (const char *dir, const char *store_uri, const char *err_name,
                   const char *cert, const char *key, const char *body_budget)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  Server *server = g_new0 (Server, 1);

  server->dir = g_strdup (dir);
  server->store_uri = g_strdup (store_uri);
  server->err_path = g_build_filename (dir, err_name, NULL);
  g_subprocess_launcher_set_stderr_file_path (launcher, server->err_path);
  if (body_budget != NULL)
    g_subprocess_launcher_setenv (launcher, "RELAIS_SERVER_BODY_BUDGET", body_budget, TRUE);
  if (cert != NULL)
    server->process = g_subprocess_launcher_spawn (launcher, &error, server_path (), "serve",
                                                   "--store", store_uri,
                                                   "--listen", "127.0.0.1:0",
                                                   "--tls-cert", cert, "--tls-key", key,
                                                   "--threads", "2", NULL);
  else
    server->process = g_subprocess_launcher_spawn (launcher, &error, server_path (), "serve",
                                                   "--store", store_uri,
                                                   "--listen", "127.0.0.1:0",
                                                   "--threads", "4", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server->process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, cert != NULL ? "relais-server: listening on https://127.0.0.1:"
                                                      : "relais-server: listening on http://127.0.0.1:"));
  g_assert_false (g_str_has_suffix (line, ":0"));
  server->url = g_strdup (line + strlen ("relais-server: listening on "));
  server->cainfo = g_strdup (cert);
  return server;
}

static Server *
server_start (const char *dir, const char *store_uri, const char *err_name)
{
  return server_start_full (dir, store_uri, err_name, NULL, NULL, NULL);
}

/* SIGTERM, and the exit status it ended with. */
static int
server_stop (Server *server)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_subprocess_send_signal (server->process, SIGTERM);
  g_subprocess_wait (server->process, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (server->process));
  status = g_subprocess_get_exit_status (server->process);
  g_clear_object (&server->process);
  return status;
}

static void
server_free (Server *server)
{
  if (server->process != NULL)
    server_stop (server);
  g_free (server->dir);
  g_free (server->store_uri);
  g_free (server->url);
  g_free (server->err_path);
  g_free (server->cainfo);
  g_free (server);
}

static char *
server_log (Server *server)
{
  char *text = NULL;

  g_assert_true (g_file_get_contents (server->err_path, &text, NULL, NULL));
  return text;
}

/* ---- Administration sub-commands ------------------------------------ */

typedef struct {
  int   status;
  char *out;
  char *err;
} Run;

static void
run_clear (Run *run)
{
  g_clear_pointer (&run->out, g_free);
  g_clear_pointer (&run->err, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static Run
admin_run (const char *const *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  Run run = { 0 };

  g_ptr_array_add (argv, (char *) server_path ());
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_newv ((const char *const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, NULL, NULL, &run.out, &run.err, &error);
  g_assert_no_error (error);
  run.status = g_subprocess_get_exit_status (process);
  /* libpq's notices while the PostgreSQL store makes its schema are not
   * the program's words: leave them out of what is checked. */
  if (strstr (run.err, "NOTICE:  ") != NULL)
    {
      g_auto(GStrv) lines = g_strsplit (run.err, "\n", -1);
      GString *kept = g_string_new (NULL);

      for (guint i = 0; lines[i] != NULL; i++)
        if (lines[i][0] != '\0' && !g_str_has_prefix (lines[i], "NOTICE:  "))
          g_string_append_printf (kept, "%s\n", lines[i]);
      g_free (run.err);
      run.err = g_string_free (kept, FALSE);
    }
  return run;
}

/* user add: exactly one line on stdout, the code. */
static char *
add_user (Server *server, const char *name, const char *org, gboolean admin)
{
  const char *args[] = { "user", "add", "--store", server->store_uri, "--name", name,
                         "--org", org, admin ? "--admin" : NULL, NULL };
  g_auto(Run) run = admin_run (args);
  g_autoptr(GRegex) shape = g_regex_new ("^[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}\n$", 0, 0, NULL);

  g_assert_cmpint (run.status, ==, 0);
  g_assert_true (g_regex_match (shape, run.out, 0, NULL));
  g_assert_cmpstr (run.err, ==, "");
  g_ptr_array_add (secrets, g_strndup (run.out, strlen (run.out) - 1));
  return g_strndup (run.out, strlen (run.out) - 1);
}

/* ---- HTTP ------------------------------------------------------------ */

typedef struct {
  char    *id;
  char    *user_id;
  guint8   pk[crypto_sign_PUBLICKEYBYTES];
  guint8   sk[crypto_sign_SECRETKEYBYTES];
} Device;

static void
device_free (Device *device)
{
  g_free (device->id);
  g_free (device->user_id);
  sodium_memzero (device->sk, sizeof device->sk);
  g_free (device);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Device, device_free)

/* Ways to spoil a signed request. */
typedef struct {
  gboolean     unsigned_;
  gboolean     bad_signature;
  gint64       time_offset;
  const char  *nonce;         /* a given nonce instead of a fresh one */
  const char  *signed_uri;    /* sign this instead of the URI sent */
  const char  *signed_body;   /* sign this instead of the body sent */
  const char  *device_id;     /* send this id instead of the device's */
} Tweak;

typedef struct {
  long       status;
  char      *body;
  JsonNode  *json;
  char      *retry_after;
} Reply;

static void
reply_free (Reply *reply)
{
  g_free (reply->body);
  if (reply->json != NULL)
    json_node_unref (reply->json);
  g_free (reply->retry_after);
  g_free (reply);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Reply, reply_free)

static size_t
collect (char *data, size_t size, size_t n, void *user_data)
{
  g_string_append_len (user_data, data, size * n);
  return size * n;
}

static size_t
collect_header (char *data, size_t size, size_t n, void *user_data)
{
  Reply *reply = user_data;

  if (g_ascii_strncasecmp (data, "Retry-After:", 12) == 0)
    {
      g_free (reply->retry_after);
      reply->retry_after = g_strstrip (g_strndup (data + 12, size * n - 12));
    }
  return size * n;
}

static char *
new_nonce (void)
{
  guint8 nonce[16];

  randombytes_buf (nonce, sizeof nonce);
  return relais_sync_base64_encode (nonce, sizeof nonce);
}

static char *
sign_request (const Device *device, const char *method, const char *uri, const char *time,
              const char *nonce, const char *body, gsize body_len)
{
  guint8 hash[crypto_hash_sha256_BYTES];
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  guint8 signature[crypto_sign_BYTES];
  g_autofree char *message = NULL;

  crypto_hash_sha256 (hash, (const guint8 *) body, body_len);
  sodium_bin2hex (hex, sizeof hex, hash, sizeof hash);
  message = g_strdup_printf ("relais-request-v1\n%s\n%s\n%s\n%s\n%s", method, uri, time, nonce, hex);
  crypto_sign_detached (signature, NULL, (const guint8 *) message, strlen (message), device->sk);
  return relais_sync_base64_encode (signature, sizeof signature);
}

static Reply *
request_tweaked (Server *server, const Device *device, const char *method, const char *uri,
                 const char *body, const Tweak *tweak)
{
  static const Tweak none = { 0 };
  CURL *curl = curl_easy_init ();
  struct curl_slist *headers = NULL;
  g_autoptr(GString) answer = g_string_new (NULL);
  g_autofree char *url = g_strconcat (server->url, uri, NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  Reply *reply = g_new0 (Reply, 1);
  gsize body_len = body != NULL ? strlen (body) : 0;
  CURLcode rc;

  if (tweak == NULL)
    tweak = &none;
  headers = curl_slist_append (headers, "Expect:");
  if (body != NULL)
    headers = curl_slist_append (headers, "Content-Type: application/json");
  if (device != NULL && !tweak->unsigned_)
    {
      g_autofree char *time = g_strdup_printf ("%" G_GINT64_FORMAT,
                                               g_get_real_time () / G_USEC_PER_SEC + tweak->time_offset);
      g_autofree char *nonce = tweak->nonce != NULL ? g_strdup (tweak->nonce) : new_nonce ();
      const char *signed_body = tweak->signed_body != NULL ? tweak->signed_body : (body != NULL ? body : "");
      g_autofree char *signature = sign_request (device, method,
                                                 tweak->signed_uri != NULL ? tweak->signed_uri : uri,
                                                 time, nonce, signed_body, strlen (signed_body));
      g_autofree char *h_device = g_strdup_printf ("Relais-Device: %s",
                                                   tweak->device_id != NULL ? tweak->device_id : device->id);
      g_autofree char *h_time = g_strdup_printf ("Relais-Time: %s", time);
      g_autofree char *h_nonce = g_strdup_printf ("Relais-Nonce: %s", nonce);
      g_autofree char *h_signature = NULL;

      if (tweak->bad_signature)
        signature[3] = signature[3] == 'A' ? 'B' : 'A';
      h_signature = g_strdup_printf ("Relais-Signature: %s", signature);
      headers = curl_slist_append (headers, h_device);
      headers = curl_slist_append (headers, h_time);
      headers = curl_slist_append (headers, h_nonce);
      headers = curl_slist_append (headers, h_signature);
    }
  curl_easy_setopt (curl, CURLOPT_URL, url);
  curl_easy_setopt (curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, answer);
  curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt (curl, CURLOPT_HEADERDATA, reply);
  curl_easy_setopt (curl, CURLOPT_TIMEOUT, 60L);
  if (server->cainfo != NULL)
    curl_easy_setopt (curl, CURLOPT_CAINFO, server->cainfo);
  if (body != NULL)
    {
      curl_easy_setopt (curl, CURLOPT_POSTFIELDS, body);
      curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
    }
  rc = curl_easy_perform (curl);
  g_assert_cmpint (rc, ==, CURLE_OK);
  curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &reply->status);
  curl_slist_free_all (headers);
  curl_easy_cleanup (curl);
  reply->body = g_strndup (answer->str, answer->len);
  if (answer->len > 0 && json_parser_load_from_data (parser, answer->str, answer->len, NULL))
    reply->json = json_node_copy (json_parser_get_root (parser));
  return reply;
}

static Reply *
request (Server *server, const Device *device, const char *method, const char *uri, const char *body)
{
  return request_tweaked (server, device, method, uri, body, NULL);
}

static JsonObject *
reply_object (Reply *reply)
{
  g_assert_nonnull (reply->json);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (reply->json));
  return json_node_get_object (reply->json);
}

/* An error answer is exactly {"error","message"} (and server_time for a
 * stale request), with the status of PROTOCOL.md §5.3. */
static void
assert_error (Reply *reply, long status, const char *code)
{
  JsonObject *object;

  if (reply->status != status)
    g_printerr ("unexpected answer %ld: %s\n", reply->status, reply->body);
  g_assert_cmpint (reply->status, ==, status);
  object = reply_object (reply);
  g_assert_cmpstr (json_object_get_string_member (object, "error"), ==, code);
  g_assert_cmpuint (strlen (json_object_get_string_member (object, "message")), >, 10);
  g_assert_cmpuint (json_object_get_size (object), ==,
                    strcmp (code, "stale_request") == 0 ? 3 : 2);
}

static void
assert_status (Reply *reply, long status)
{
  if (reply->status != status)
    g_printerr ("unexpected answer %ld: %s\n", reply->status, reply->body);
  g_assert_cmpint (reply->status, ==, status);
}

/* ---- Building requests ---------------------------------------------- */

static char *
b64 (const void *data, gsize len)
{
  return relais_sync_base64_encode (data, len);
}

static char *
b64_bytes (GBytes *bytes)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  return b64 (data, len);
}

static Device *
enrol_full (Server *server, const char *code, Reply **out_reply)
{
  Device *device = g_new0 (Device, 1);
  g_autofree char *key = NULL;
  g_autofree char *body = NULL;
  Reply *reply;

  crypto_sign_keypair (device->pk, device->sk);
  key = b64 (device->pk, sizeof device->pk);
  body = g_strdup_printf ("{\"code\":\"%s\",\"device_name\":\"laptop\",\"device_key\":\"%s\"}",
                          code, key);
  reply = request (server, NULL, "POST", "/v1/enrol", body);
  if (reply->status == 200)
    {
      JsonObject *object = reply_object (reply);

      device->id = g_strdup (json_object_get_string_member (object, "device_id"));
      device->user_id = g_strdup (json_object_get_string_member (object, "user_id"));
      g_assert_true (relais_server_id_is_valid (device->id));
      g_assert_true (relais_server_id_is_valid (device->user_id));
    }
  if (out_reply != NULL)
    *out_reply = reply;
  else
    reply_free (reply);
  return device;
}

static Device *
enrol (Server *server, const char *code)
{
  g_autoptr(Reply) reply = NULL;
  Device *device = enrol_full (server, code, &reply);

  assert_status (reply, 200);
  return device;
}

/* A user of @org with keys, and their first device. */
typedef struct {
  Device         *device;
  RelaisUserKeys *keys;
  GBytes         *wrapped;
} Person;

static void
person_free (Person *person)
{
  device_free (person->device);
  relais_user_keys_free (person->keys);
  g_bytes_unref (person->wrapped);
  g_free (person);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Person, person_free)

static void
put_keys (Server *server, Person *person)
{
  g_autofree char *box = b64 (person->keys->box_pk, sizeof person->keys->box_pk);
  g_autofree char *sign = b64 (person->keys->sign_pk, sizeof person->keys->sign_pk);
  g_autofree char *wrapped = b64_bytes (person->wrapped);
  g_autofree char *body = g_strdup_printf ("{\"box_pk\":\"%s\",\"sign_pk\":\"%s\",\"wrapped_user_keys\":\"%s\"}",
                                           box, sign, wrapped);
  g_autoptr(Reply) reply = request (server, person->device, "PUT", "/v1/me/keys", body);

  assert_status (reply, 204);
}

static Person *
person_new (Server *server, const char *name, const char *org, gboolean admin)
{
  g_autofree char *code = add_user (server, name, org, admin);
  Person *person = g_new0 (Person, 1);
  guint8 wrapped[208];

  person->device = enrol (server, code);
  person->keys = relais_user_keys_generate ();
  /* The server never opens the wrap: random bytes of its size do. */
  randombytes_buf (wrapped, sizeof wrapped);
  person->wrapped = g_bytes_new (wrapped, sizeof wrapped);
  put_keys (server, person);
  return person;
}

/* A second device of @person's user, through a new code. */
static Device *
second_device (Server *server, Person *person, Reply **out_reply)
{
  const char *args[] = { "user", "code", "--store", server->store_uri, person->device->user_id, NULL };
  g_auto(Run) run = admin_run (args);

  g_assert_cmpint (run.status, ==, 0);
  g_strchomp (run.out);
  g_assert_null (strchr (run.out, '\n'));
  return enrol_full (server, run.out, out_reply);
}

static char *
wrap_for (const guint8 *dossier_key, const char *dossier, guint32 epoch, const guint8 *box_pk)
{
  g_autoptr(GBytes) wrapped = relais_dossier_key_wrap (dossier_key, dossier, epoch, box_pk);

  return b64_bytes (wrapped);
}

static char *
create_dossier_body (const char *dossier, const guint8 *key, Person **members, guint n,
                     const guint8 *recovery_pk)
{
  GString *body = g_string_new (NULL);

  g_string_append_printf (body, "{\"dossier_id\":\"%s\",\"epoch\":1,\"members\":[", dossier);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *wrapped = wrap_for (key, dossier, 1, members[i]->keys->box_pk);

      g_string_append_printf (body, "%s{\"user_id\":\"%s\",\"wrapped_key\":\"%s\"}",
                              i > 0 ? "," : "", members[i]->device->user_id, wrapped);
    }
  g_string_append (body, "]");
  if (recovery_pk != NULL)
    {
      g_autofree char *wrapped = wrap_for (key, dossier, 1, recovery_pk);

      g_string_append_printf (body, ",\"recovery_wrapped_key\":\"%s\"", wrapped);
    }
  g_string_append (body, "}");
  return g_string_free (body, FALSE);
}

static void
create_dossier (Server *server, Person *creator, const char *dossier, const guint8 *key)
{
  g_autofree char *body = create_dossier_body (dossier, key, &creator, 1, NULL);
  g_autoptr(Reply) reply = request (server, creator->device, "POST", "/v1/dossiers", body);

  assert_status (reply, 201);
}

static GBytes *
seal (const char *dossier, guint32 epoch, const guint8 *key, Person *author, const char *value)
{
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  g_autoptr(GError) error = NULL;
  RelaisOp *op = g_new0 (RelaisOp, 1);
  GBytes *envelope;

  op->id = relais_oplog_new_id ();
  op->dossier = g_strdup (dossier);
  op->entity = g_strdup ("note");
  op->entity_id = relais_oplog_new_id ();
  op->field = g_strdup ("text");
  op->value = g_strdup (value);
  op->hlc = (guint64) g_get_real_time () << 16;
  op->author = g_strdup (author->device->user_id);
  op->device = g_strdup (author->device->id);
  g_ptr_array_add (ops, op);
  envelope = relais_changeset_seal (dossier, epoch, key, author->device->user_id,
                                    author->device->id, author->keys->sign_sk, ops, &error);
  g_assert_no_error (error);
  return envelope;
}

/* {"changesets":[…]} of the given envelopes, each base64url. */
static char *
push_body (GBytes **envelopes, guint n)
{
  GString *body = g_string_new ("{\"changesets\":[");

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *text = b64_bytes (envelopes[i]);

      g_string_append_printf (body, "%s\"%s\"", i > 0 ? "," : "", text);
    }
  g_string_append (body, "]}");
  return g_string_free (body, FALSE);
}

static Reply *
push (Server *server, Device *device, GBytes **envelopes, guint n)
{
  g_autofree char *body = push_body (envelopes, n);
  Reply *reply = request (server, device, "POST", "/v1/changesets", body);

  assert_status (reply, 200);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (reply_object (reply), "results")),
                    ==, n);
  return reply;
}

static JsonObject *
result_at (Reply *reply, guint i)
{
  return json_array_get_object_element (json_object_get_array_member (reply_object (reply), "results"), i);
}

static void
assert_result (Reply *reply, guint i, const char *status, const char *error_code)
{
  JsonObject *result = result_at (reply, i);

  g_assert_cmpstr (json_object_get_string_member (result, "status"), ==, status);
  if (error_code != NULL)
    g_assert_cmpstr (json_object_get_string_member (result, "error"), ==, error_code);
  else
    g_assert_false (json_object_has_member (result, "error"));
}

/* Pulls everything after @cursor, page by page; returns the envelopes
 * (base64url text) and leaves the last cursor in *@cursor. */
static GPtrArray *
pull_all (Server *server, Device *device, char **cursor, guint limit, guint *out_pages,
          JsonObject **out_last_keys)
{
  GPtrArray *all = g_ptr_array_new_with_free_func (g_free);
  gboolean more = TRUE;
  guint pages = 0;

  while (more)
    {
      g_autofree char *uri = NULL;
      g_autoptr(Reply) reply = NULL;
      JsonObject *object;
      JsonArray *changesets;

      uri = g_strdup_printf ("/v1/changesets?limit=%u%s%s", limit,
                             *cursor != NULL ? "&cursor=" : "", *cursor != NULL ? *cursor : "");
      reply = request (server, device, "GET", uri, NULL);
      assert_status (reply, 200);
      object = reply_object (reply);
      changesets = json_object_get_array_member (object, "changesets");
      g_assert_cmpuint (json_array_get_length (changesets), <=, limit);
      for (guint i = 0; i < json_array_get_length (changesets); i++)
        g_ptr_array_add (all, g_strdup (json_array_get_string_element (changesets, i)));
      g_free (*cursor);
      *cursor = g_strdup (json_object_get_string_member (object, "cursor"));
      more = json_object_get_boolean_member (object, "more");
      if (out_last_keys != NULL && json_array_get_length (json_object_get_array_member (object, "keys")) > 0)
        {
          if (*out_last_keys != NULL)
            json_object_unref (*out_last_keys);
          *out_last_keys = json_object_ref (json_array_get_object_element (
                             json_object_get_array_member (object, "keys"), 0));
        }
      pages++;
      g_assert_cmpuint (pages, <, 1000);
    }
  if (out_pages != NULL)
    *out_pages = pages;
  return all;
}

static gboolean
contains_envelope (GPtrArray *pulled, GBytes *envelope)
{
  g_autofree char *text = b64_bytes (envelope);

  for (guint i = 0; i < pulled->len; i++)
    if (strcmp (g_ptr_array_index (pulled, i), text) == 0)
      return TRUE;
  return FALSE;
}


static char *
marker (const char *what)
{
  char *text = g_strdup_printf ("%s%08x", what, g_random_int ());

  g_ptr_array_add (secrets, g_strdup (text));
  return text;
}

/* ---- Stores ---------------------------------------------------------- */

typedef struct {
  const char   *kind;       /* "sqlite" or "pg" */
  char         *dir;
  Server       *server;
#ifdef HAVE_TEST_PG
  RelaisTestPg *pg;
#endif
} Backend;

static Backend sqlite_backend = { "sqlite" };
static Backend pg_backend = { "pg" };

/* The backend's server, started on first use; NULL (and the test
 * skipped) when PostgreSQL is not there. */
static Server *
backend_server (Backend *backend)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uri = NULL;

  if (backend->server != NULL)
    return backend->server;
  if (backend->dir == NULL)
    backend->dir = relais_test_make_tmpdir ("relais-test-server-XXXXXX");
  if (strcmp (backend->kind, "sqlite") == 0)
    {
      g_autofree char *path = g_build_filename (backend->dir, "store.db", NULL);

      uri = g_strconcat ("sqlite:", path, NULL);
    }
  else
    {
#ifdef HAVE_TEST_PG
      if (!relais_test_pg_skip_unless_available ())
        return NULL;
      if (backend->pg == NULL)
        backend->pg = relais_test_pg_start (&error);
      g_assert_no_error (error);
      uri = relais_test_pg_create_database (backend->pg, "server", &error);
      g_assert_no_error (error);
#else
      g_test_skip ("tests/relais-test-pg.h is not there");
      return NULL;
#endif
    }
  backend->server = server_start (backend->dir, uri, "server.err");
  return backend->server;
}

#define SERVER_OR_SKIP(data) \
  Server *server = backend_server (data); \
  if (server == NULL) \
    return

/* ---- Tests ----------------------------------------------------------- */

static void
test_health (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autoptr(Reply) health = request (server, NULL, "GET", "/v1/health", NULL);
  g_autoptr(Reply) nothing = request (server, NULL, "GET", "/v1/nothing", NULL);
  g_autoptr(Reply) root = request (server, NULL, "GET", "/", NULL);
  g_autoptr(Reply) bad_id = request (server, NULL, "GET", "/v1/dossiers/a%20b/keys", NULL);
  g_autoptr(Reply) trailing = request (server, NULL, "GET", "/v1/health/", NULL);
  g_autoptr(Reply) method = request (server, NULL, "DELETE", "/v1/health", NULL);
  g_autoptr(Reply) method2 = request (server, NULL, "PUT", "/v1/changesets", "{}");
  JsonObject *object;

  assert_status (health, 200);
  object = reply_object (health);
  g_assert_cmpstr (json_object_get_string_member (object, "status"), ==, "ok");
  g_assert_cmpint (json_object_get_int_member (object, "version"), ==, 1);
  assert_error (nothing, 404, "not_found");
  assert_error (root, 404, "not_found");
  assert_error (bad_id, 404, "not_found");
  assert_error (trailing, 404, "not_found");
  assert_error (method, 405, "not_found");
  assert_error (method2, 405, "not_found");
}

static char *
spoil_code (const char *code)
{
  /* What a person types: lower case, no dashes. */
  g_autofree char *lower = g_ascii_strdown (code, -1);
  GString *out = g_string_new (NULL);

  for (const char *p = lower; *p != '\0'; p++)
    if (*p != '-')
      g_string_append_c (out, *p);
  return g_string_free (out, FALSE);
}

static void
test_enrol (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *name = marker ("Nameenrol");
  g_autofree char *org = marker ("Orgenrol");
  g_autofree char *code = add_user (server, name, org, FALSE);
  g_autofree char *typed = spoil_code (code);
  g_autoptr(Reply) first = NULL;
  g_autoptr(Reply) again = NULL;
  g_autoptr(Reply) unknown = NULL;
  g_autoptr(Reply) expired = NULL;
  g_autoptr(Reply) short_code = NULL;
  g_autoptr(Reply) bad_key = NULL;
  g_autoptr(Reply) not_json = NULL;
  g_autoptr(Device) device = enrol_full (server, typed, &first);
  g_autoptr(Device) device2 = NULL;
  g_autoptr(Device) device3 = NULL;
  g_autoptr(Device) device4 = NULL;
  g_autoptr(RelaisStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *expired_code = relais_server_code_new ();
  g_autofree char *unknown_code = relais_server_code_new ();
  g_autofree char *body = NULL;
  guint8 hash[RELAIS_STORE_HASH_SIZE];
  JsonObject *object;

  assert_status (first, 200);
  object = reply_object (first);
  g_assert_cmpstr (json_object_get_string_member (object, "name"), ==, name);
  g_assert_cmpstr (json_object_get_string_member (object, "org"), ==, org);
  g_assert_false (json_object_get_boolean_member (object, "admin"));
  g_assert_false (json_object_has_member (object, "wrapped_user_keys"));
  g_assert_false (json_object_has_member (object, "recovery_key"));

  /* Single use, even typed the other way. */
  device2 = enrol_full (server, code, &again);
  assert_error (again, 409, "code_used");
  device3 = enrol_full (server, unknown_code, &unknown);
  assert_error (unknown, 404, "not_found");

  /* Expired: made straight in the store, 24 h ago. */
  store = relais_store_open (server->store_uri, &error);
  g_assert_no_error (error);
  g_assert_true (relais_server_code_hash (expired_code, hash));
  g_assert_true (relais_store_code_add (store, hash, device->user_id,
                                        g_get_real_time () / G_USEC_PER_SEC - 1, &error));
  g_assert_no_error (error);
  device4 = enrol_full (server, expired_code, &expired);
  assert_error (expired, 410, "code_expired");
  {
    g_autoptr(GPtrArray) devices = relais_store_device_list (store, device->user_id, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (devices->len, ==, 1);
  }

  short_code = request (server, NULL, "POST", "/v1/enrol",
                        "{\"code\":\"ABC\",\"device_name\":\"x\",\"device_key\":\"AAAA\"}");
  assert_error (short_code, 400, "malformed");
  body = g_strdup_printf ("{\"code\":\"%s\",\"device_name\":\"x\",\"device_key\":\"!!!!\"}", unknown_code);
  bad_key = request (server, NULL, "POST", "/v1/enrol", body);
  assert_error (bad_key, 400, "bad_base64");
  not_json = request (server, NULL, "POST", "/v1/enrol", "code=1");
  assert_error (not_json, 400, "malformed");
}

static void
test_keys (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *name = marker ("Namekeys");
  g_autofree char *org = marker ("Orgkeys");
  g_autoptr(Person) person = person_new (server, name, org, FALSE);
  g_autoptr(RelaisUserKeys) other = relais_user_keys_generate ();
  g_autoptr(Reply) enrolled = NULL;
  g_autoptr(Device) laptop = NULL;
  g_autoptr(Reply) conflict = NULL;
  g_autoptr(Reply) short_key = NULL;
  g_autoptr(Reply) directory = NULL;
  g_autofree char *body = NULL;
  g_autofree char *box = b64 (other->box_pk, 32);
  g_autofree char *sign = b64 (other->sign_pk, 32);
  g_autofree char *wrapped = b64_bytes (person->wrapped);
  g_autofree char *escaped_org = g_uri_escape_string (org, NULL, FALSE);
  g_autofree char *uri = g_strdup_printf ("/v1/users?org=%s", escaped_org);
  g_autofree char *expected_box = b64 (person->keys->box_pk, 32);
  JsonArray *users;

  /* Again with the same public keys: a passphrase change. */
  put_keys (server, person);
  body = g_strdup_printf ("{\"box_pk\":\"%s\",\"sign_pk\":\"%s\",\"wrapped_user_keys\":\"%s\"}",
                          box, sign, wrapped);
  conflict = request (server, person->device, "PUT", "/v1/me/keys", body);
  assert_error (conflict, 409, "id_conflict");
  g_free (body);
  body = g_strdup_printf ("{\"box_pk\":\"%s\",\"sign_pk\":\"AAAA\",\"wrapped_user_keys\":\"%s\"}",
                          box, wrapped);
  short_key = request (server, person->device, "PUT", "/v1/me/keys", body);
  assert_error (short_key, 400, "malformed");

  /* A second laptop finds the wrapped key pair. */
  laptop = second_device (server, person, &enrolled);
  assert_status (enrolled, 200);
  g_assert_cmpstr (json_object_get_string_member (reply_object (enrolled), "wrapped_user_keys"), ==, wrapped);
  g_assert_cmpstr (laptop->user_id, ==, person->device->user_id);
  g_assert_cmpstr (laptop->id, !=, person->device->id);

  directory = request (server, laptop, "GET", uri, NULL);
  assert_status (directory, 200);
  users = json_object_get_array_member (reply_object (directory), "users");
  g_assert_cmpuint (json_array_get_length (users), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (users, 0), "box_pk"),
                   ==, expected_box);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (users, 0), "name"),
                   ==, name);
}

static void
test_signing (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *name = marker ("Namesign");
  g_autofree char *org = marker ("Orgsign");
  g_autoptr(Person) person = person_new (server, name, org, FALSE);
  g_autoptr(Reply) ok = request (server, person->device, "GET", "/v1/users", NULL);
  g_autoptr(Reply) unsigned_ = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                                 &(Tweak) { .unsigned_ = TRUE });
  g_autoptr(Reply) forged = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                              &(Tweak) { .bad_signature = TRUE });
  g_autoptr(Reply) other_uri = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                                 &(Tweak) { .signed_uri = "/v1/users?org=x" });
  g_autoptr(Reply) late = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                            &(Tweak) { .time_offset = -400 });
  g_autoptr(Reply) early = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                             &(Tweak) { .time_offset = 400 });
  g_autoptr(Reply) unknown = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                               &(Tweak) { .device_id = "nosuchdevice" });
  g_autoptr(Reply) odd_id = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                              &(Tweak) { .device_id = "a/b" });
  g_autoptr(Reply) bad_nonce = request_tweaked (server, person->device, "GET", "/v1/users", NULL,
                                                 &(Tweak) { .nonce = "c2hvcnQ" });
  g_autofree char *nonce = new_nonce ();
  g_autoptr(Reply) once = NULL;
  g_autoptr(Reply) twice = NULL;
  g_autoptr(Reply) forged_create = NULL;
  g_autoptr(Reply) body_swapped = NULL;
  g_autoptr(Reply) replayed_create = NULL;
  g_autoptr(Reply) keys = NULL;
  g_autoptr(Reply) revoked = NULL;
  g_autoptr(Reply) still = NULL;
  g_autoptr(Reply) enrolled = NULL;
  g_autoptr(Device) laptop = NULL;
  g_autofree char *dossier = relais_oplog_new_id ();
  g_autofree char *dossier2 = relais_oplog_new_id ();
  g_autofree char *keys_uri = g_strdup_printf ("/v1/dossiers/%s/keys", dossier);
  guint8 *key = relais_dossier_key_new ();
  g_autofree char *create = create_dossier_body (dossier, key, &person, 1, NULL);
  g_autofree char *create2 = create_dossier_body (dossier2, key, &person, 1, NULL);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 server_time;

  assert_status (ok, 200);
  assert_error (unsigned_, 401, "bad_signature");
  assert_error (forged, 401, "bad_signature");
  assert_error (other_uri, 401, "bad_signature");
  assert_error (late, 401, "stale_request");
  assert_error (early, 401, "stale_request");
  server_time = json_object_get_int_member (reply_object (late), "server_time");
  g_assert_cmpint (ABS (server_time - now), <, 30);
  assert_error (unknown, 401, "unknown_device");
  assert_error (odd_id, 401, "unknown_device");
  assert_error (bad_nonce, 401, "bad_signature");

  once = request_tweaked (server, person->device, "GET", "/v1/users", NULL, &(Tweak) { .nonce = nonce });
  twice = request_tweaked (server, person->device, "GET", "/v1/users", NULL, &(Tweak) { .nonce = nonce });
  assert_status (once, 200);
  assert_error (twice, 409, "replayed");

  /* Forged, tampered or replayed requests change nothing. */
  forged_create = request_tweaked (server, person->device, "POST", "/v1/dossiers", create,
                                   &(Tweak) { .bad_signature = TRUE });
  assert_error (forged_create, 401, "bad_signature");
  body_swapped = request_tweaked (server, person->device, "POST", "/v1/dossiers", create,
                                  &(Tweak) { .signed_body = create2 });
  assert_error (body_swapped, 401, "bad_signature");
  keys = request (server, person->device, "GET", keys_uri, NULL);
  g_assert_cmpint (keys->status, !=, 200);
  g_clear_pointer (&nonce, g_free);
  nonce = new_nonce ();
  g_clear_pointer (&keys, reply_free);
  keys = request_tweaked (server, person->device, "POST", "/v1/dossiers", create2, &(Tweak) { .nonce = nonce });
  assert_status (keys, 201);
  replayed_create = request_tweaked (server, person->device, "POST", "/v1/dossiers", create,
                                     &(Tweak) { .nonce = nonce, .signed_body = NULL });
  assert_error (replayed_create, 409, "replayed");
  g_clear_pointer (&keys, reply_free);
  keys = request (server, person->device, "GET", keys_uri, NULL);
  g_assert_cmpint (keys->status, !=, 200);

  /* Revoked from its next request; the user's other device goes on. */
  laptop = second_device (server, person, &enrolled);
  assert_status (enrolled, 200);
  {
    const char *args[] = { "device", "revoke", "--store", server->store_uri, laptop->id, NULL };
    g_auto(Run) run = admin_run (args);

    g_assert_cmpint (run.status, ==, 0);
  }
  revoked = request (server, laptop, "GET", "/v1/users", NULL);
  assert_error (revoked, 403, "device_revoked");
  still = request (server, person->device, "GET", "/v1/users", NULL);
  assert_status (still, 200);
  relais_dossier_key_free (key);
}

static GBytes *
seal_with_id (const char *dossier, guint32 epoch, const guint8 *key, Person *author,
              const char *value, const guint8 *id)
{
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  g_autoptr(GError) error = NULL;
  RelaisOp *op = g_new0 (RelaisOp, 1);
  guint8 nonce[24];
  GBytes *envelope;

  randombytes_buf (nonce, sizeof nonce);
  op->id = relais_oplog_new_id ();
  op->dossier = g_strdup (dossier);
  op->entity = g_strdup ("note");
  op->entity_id = relais_oplog_new_id ();
  op->field = g_strdup ("text");
  op->value = g_strdup (value);
  op->hlc = 1;
  op->author = g_strdup (author->device->user_id);
  op->device = g_strdup (author->device->id);
  g_ptr_array_add (ops, op);
  envelope = relais_changeset_seal_with_nonce (dossier, epoch, key, author->device->user_id,
                                               author->device->id, author->keys->sign_sk, ops,
                                               id, nonce, &error);
  g_assert_no_error (error);
  return envelope;
}

static void
test_push_pull (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org = marker ("Orgpush");
  g_autofree char *name_a = marker ("Namepusha");
  g_autofree char *name_b = marker ("Namepushb");
  g_autoptr(Person) alice = person_new (server, name_a, org, FALSE);
  g_autoptr(Person) bob = person_new (server, name_b, org, FALSE);
  g_autoptr(Reply) enrolled = NULL;
  g_autoptr(Device) laptop = second_device (server, alice, &enrolled);
  g_autofree char *dossier = relais_oplog_new_id ();
  g_autofree char *keys_uri = g_strdup_printf ("/v1/dossiers/%s/keys", dossier);
  guint8 *key = relais_dossier_key_new ();
  g_autofree char *create = create_dossier_body (dossier, key, &alice, 1, NULL);
  GBytes *envelopes[5];
  guint64 seqs[5];
  g_autoptr(Reply) created = NULL;
  g_autoptr(Reply) retried = NULL;
  g_autoptr(Reply) keys = NULL;
  g_autoptr(Reply) pushed = NULL;
  g_autoptr(Reply) again = NULL;
  g_autoptr(GPtrArray) own = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GPtrArray) paged = NULL;
  g_autoptr(GPtrArray) after = NULL;
  g_autoptr(GPtrArray) bobs = NULL;
  g_autofree char *cursor = NULL;
  g_autofree char *cursor2 = NULL;
  g_autofree char *cursor3 = NULL;
  g_autofree char *cursor4 = NULL;
  g_autoptr(JsonObject) page_keys = NULL;
  guint pages = 0;
  JsonObject *object;
  JsonArray *epochs, *members;

  assert_status (enrolled, 200);
  created = request (server, alice->device, "POST", "/v1/dossiers", create);
  assert_status (created, 201);
  /* A retried creation by a member is fine; anyone else is refused. */
  retried = request (server, alice->device, "POST", "/v1/dossiers", create);
  assert_status (retried, 204);
  {
    g_autofree char *bobs_create = create_dossier_body (dossier, key, &bob, 1, NULL);
    g_autoptr(Reply) taken = request (server, bob->device, "POST", "/v1/dossiers", bobs_create);
    g_autofree char *other_id = relais_oplog_new_id ();
    g_autofree char *no_self = create_dossier_body (other_id, key, &alice, 1, NULL);
    g_autoptr(Reply) without_self = request (server, bob->device, "POST", "/v1/dossiers", no_self);

    assert_error (taken, 403, "not_member");
    assert_error (without_self, 400, "malformed");
  }

  /* The keys: only the caller's wrap, which opens with their key. */
  keys = request (server, laptop, "GET", keys_uri, NULL);
  assert_status (keys, 200);
  object = reply_object (keys);
  g_assert_cmpint (json_object_get_int_member (object, "epoch"), ==, 1);
  epochs = json_object_get_array_member (object, "epochs");
  members = json_object_get_array_member (object, "members");
  g_assert_cmpuint (json_array_get_length (epochs), ==, 1);
  g_assert_cmpuint (json_array_get_length (members), ==, 1);
  {
    JsonObject *wrap = json_array_get_object_element (epochs, 0);
    JsonObject *member = json_array_get_object_element (members, 0);
    g_autofree guint8 *wrapped = NULL;
    g_autofree char *sign_pk = b64 (alice->keys->sign_pk, 32);
    g_autoptr(GError) error = NULL;
    guint8 *opened;
    gsize len = 0;

    g_assert_cmpint (json_object_get_int_member (wrap, "epoch"), ==, 1);
    wrapped = relais_sync_base64_decode (json_object_get_string_member (wrap, "wrapped_key"), 1024, &len, &error);
    g_assert_no_error (error);
    opened = relais_dossier_key_unwrap (wrapped, len, dossier, 1, alice->keys->box_pk, alice->keys->box_sk, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (opened, 32, key, 32);
    relais_dossier_key_free (opened);
    g_assert_cmpstr (json_object_get_string_member (member, "user_id"), ==, alice->device->user_id);
    g_assert_cmpstr (json_object_get_string_member (member, "sign_pk"), ==, sign_pk);
    g_assert_cmpint (json_object_get_int_member (member, "since_epoch"), ==, 1);
    g_assert_cmpint (json_object_get_int_member (member, "until_epoch"), ==, 0);
  }
  {
    g_autoptr(Reply) outsider = request (server, bob->device, "GET", keys_uri, NULL);

    assert_error (outsider, 403, "not_member");
  }

  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    envelopes[i] = seal (dossier, 1, key, alice, "a note");
  pushed = push (server, alice->device, envelopes, G_N_ELEMENTS (envelopes));
  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    {
      g_auto(RelaisChangesetHeader) header = { 0 };
      g_autofree char *id = NULL;

      assert_result (pushed, i, "stored", NULL);
      seqs[i] = json_object_get_int_member (result_at (pushed, i), "seq");
      g_assert_true (i == 0 || seqs[i] > seqs[i - 1]);
      g_assert_true (relais_changeset_peek (g_bytes_get_data (envelopes[i], NULL),
                                            g_bytes_get_size (envelopes[i]), &header, NULL));
      id = b64 (header.id, 16);
      g_assert_cmpstr (json_object_get_string_member (result_at (pushed, i), "id"), ==, id);
    }
  /* A retried push (its answer lost): duplicates, the same seqs. */
  again = push (server, alice->device, envelopes, G_N_ELEMENTS (envelopes));
  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    {
      assert_result (again, i, "duplicate", NULL);
      g_assert_cmpint (json_object_get_int_member (result_at (again, i), "seq"), ==, seqs[i]);
    }

  /* The pushing device has them; its user's other device gets them. */
  own = pull_all (server, alice->device, &cursor, 500, NULL, NULL);
  g_assert_cmpuint (own->len, ==, 0);
  all = pull_all (server, laptop, &cursor2, 500, &pages, &page_keys);
  g_assert_cmpuint (all->len, ==, G_N_ELEMENTS (envelopes));
  g_assert_cmpuint (pages, ==, 1);
  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    {
      g_autofree char *text = b64_bytes (envelopes[i]);

      g_assert_cmpstr (g_ptr_array_index (all, i), ==, text);
    }
  g_assert_nonnull (page_keys);
  g_assert_cmpstr (json_object_get_string_member (page_keys, "dossier_id"), ==, dossier);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (page_keys, "epochs")), ==, 1);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (page_keys, "members")), ==, 1);

  /* Paged by two: three pages, each change set once. */
  paged = pull_all (server, laptop, &cursor3, 2, &pages, NULL);
  g_assert_cmpuint (pages, ==, 3);
  g_assert_cmpuint (paged->len, ==, G_N_ELEMENTS (envelopes));
  for (guint i = 0; i < paged->len; i++)
    g_assert_cmpstr (g_ptr_array_index (paged, i), ==, g_ptr_array_index (all, i));
  after = pull_all (server, laptop, &cursor3, 2, &pages, NULL);
  g_assert_cmpuint (after->len, ==, 0);
  g_assert_cmpuint (pages, ==, 1);
  /* Not a member: nothing of the dossier. */
  bobs = pull_all (server, bob->device, &cursor4, 500, NULL, NULL);
  g_assert_cmpuint (bobs->len, ==, 0);

  /* Forged and broken cursors and limits. */
  {
    g_autofree char *forged = g_strdup (cursor2);
    g_autofree char *uri = NULL;
    g_autoptr(Reply) bad = NULL;
    g_autoptr(Reply) garbage = request (server, laptop, "GET", "/v1/changesets?cursor=zzz", NULL);
    g_autoptr(Reply) zero = request (server, laptop, "GET", "/v1/changesets?limit=0", NULL);
    g_autoptr(Reply) word = request (server, laptop, "GET", "/v1/changesets?limit=ten", NULL);
    g_autoptr(Reply) huge = request (server, laptop, "GET", "/v1/changesets?limit=100000", NULL);
    g_autoptr(Reply) twice = request (server, laptop, "GET", "/v1/changesets?limit=1&limit=2", NULL);
    g_autoptr(Reply) escape = request (server, laptop, "GET", "/v1/changesets?cursor=%zz", NULL);

    forged[3] = forged[3] == 'A' ? 'B' : 'A';
    uri = g_strdup_printf ("/v1/changesets?cursor=%s", forged);
    bad = request (server, laptop, "GET", uri, NULL);
    assert_error (bad, 400, "malformed");
    assert_error (garbage, 400, "malformed");
    assert_error (zero, 400, "malformed");
    assert_error (word, 400, "malformed");
    assert_status (huge, 200);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (reply_object (huge), "changesets")),
                      ==, G_N_ELEMENTS (envelopes));
    assert_error (twice, 400, "malformed");
    assert_error (escape, 400, "malformed");
  }

  /* Each envelope judged on its own. */
  {
    guint8 junk[200];
    g_autofree char *junk_text = NULL;
    g_autofree char *fresh_text = NULL;
    g_autofree char *tampered_text = NULL;
    g_autofree char *bobs_text = NULL;
    g_autofree char *conflict_text = NULL;
    g_autofree char *body = NULL;
    g_autoptr(GBytes) fresh = seal (dossier, 1, key, alice, "another");
    g_autoptr(GBytes) bobs_envelope = seal (dossier, 1, key, bob, "intruder");
    g_autoptr(GBytes) conflict = NULL;
    g_autoptr(Reply) mixed = NULL;
    g_autoptr(Reply) intruder = NULL;
    g_autoptr(GPtrArray) later = NULL;
    g_auto(RelaisChangesetHeader) header = { 0 };
    guint8 *tampered;
    gsize len;

    randombytes_buf (junk, sizeof junk);
    junk_text = b64 (junk, sizeof junk);
    fresh_text = b64_bytes (fresh);
    len = g_bytes_get_size (fresh);
    tampered = g_memdup2 (g_bytes_get_data (fresh, NULL), len);
    tampered[len - 80] ^= 1;   /* inside the ciphertext: the signature fails */
    tampered_text = b64 (tampered, len);
    g_free (tampered);
    bobs_text = b64_bytes (bobs_envelope);
    g_assert_true (relais_changeset_peek (g_bytes_get_data (envelopes[0], NULL),
                                          g_bytes_get_size (envelopes[0]), &header, NULL));
    conflict = seal_with_id (dossier, 1, key, alice, "not the same", header.id);
    conflict_text = b64_bytes (conflict);
    body = g_strdup_printf ("{\"changesets\":[\"%s\",\"!!!\",\"%s\",\"%s\",\"%s\",\"%s\"]}",
                            fresh_text, junk_text, tampered_text, bobs_text, conflict_text);
    mixed = request (server, alice->device, "POST", "/v1/changesets", body);
    assert_status (mixed, 200);
    assert_result (mixed, 0, "stored", NULL);
    assert_result (mixed, 1, "refused", "bad_base64");
    assert_result (mixed, 2, "refused", "malformed");
    assert_result (mixed, 3, "refused", "bad_signature");
    assert_result (mixed, 4, "refused", "author_mismatch");
    assert_result (mixed, 5, "refused", "id_conflict");

    /* Bob signs his own, but is no member. */
    g_clear_pointer (&body, g_free);
    body = g_strdup_printf ("{\"changesets\":[\"%s\"]}", bobs_text);
    intruder = request (server, bob->device, "POST", "/v1/changesets", body);
    assert_status (intruder, 200);
    assert_result (intruder, 0, "refused", "not_member");

    /* Only the one stored arrives; the refused ones left no trace. */
    later = pull_all (server, laptop, &cursor2, 500, NULL, NULL);
    g_assert_cmpuint (later->len, ==, 1);
    g_assert_cmpstr (g_ptr_array_index (later, 0), ==, fresh_text);
  }

  /* At most 100 envelopes a push; the body must be a push. */
  {
    GString *body = g_string_new ("{\"changesets\":[");
    g_autoptr(Reply) too_many = NULL;
    g_autoptr(Reply) not_strings = request (server, alice->device, "POST", "/v1/changesets",
                                            "{\"changesets\":[1,2]}");
    g_autoptr(Reply) empty = request (server, alice->device, "POST", "/v1/changesets",
                                      "{\"changesets\":[]}");

    for (guint i = 0; i < 101; i++)
      g_string_append_printf (body, "%s\"AAAA\"", i > 0 ? "," : "");
    g_string_append (body, "]}");
    too_many = request (server, alice->device, "POST", "/v1/changesets", body->str);
    g_string_free (body, TRUE);
    assert_error (too_many, 413, "too_large");
    assert_error (not_strings, 400, "malformed");
    assert_status (empty, 200);
  }

  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    g_bytes_unref (envelopes[i]);
  relais_dossier_key_free (key);
}

static char *
share_body (const char *user_id, const char *dossier, const guint8 *const *keys, guint n_epochs,
            const guint8 *box_pk)
{
  GString *body = g_string_new (NULL);

  g_string_append_printf (body, "{\"user_id\":\"%s\",\"wrapped_keys\":[", user_id);
  for (guint e = 1; e <= n_epochs; e++)
    {
      g_autofree char *wrapped = wrap_for (keys[e - 1], dossier, e, box_pk);

      g_string_append_printf (body, "%s{\"epoch\":%u,\"wrapped_key\":\"%s\"}", e > 1 ? "," : "", e, wrapped);
    }
  g_string_append (body, "]}");
  return g_string_free (body, FALSE);
}

static void
test_share_unshare (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org_a = marker ("Orgsharea");
  g_autofree char *org_b = marker ("Orgshareb");
  g_autofree char *name_a = marker ("Namesharea");
  g_autofree char *name_b = marker ("Nameshareb");
  g_autofree char *name_c = marker ("Namesharec");
  g_autoptr(Person) alice = person_new (server, name_a, org_a, FALSE);
  g_autoptr(Person) bob = person_new (server, name_b, org_b, FALSE);
  g_autoptr(Person) carol = person_new (server, name_c, org_b, FALSE);
  g_autofree char *dossier = relais_oplog_new_id ();
  g_autofree char *share_uri = g_strdup_printf ("/v1/dossiers/%s/share", dossier);
  g_autofree char *unshare_uri = g_strdup_printf ("/v1/dossiers/%s/unshare", dossier);
  g_autofree char *keys_uri = g_strdup_printf ("/v1/dossiers/%s/keys", dossier);
  guint8 *key1 = relais_dossier_key_new ();
  guint8 *key2 = relais_dossier_key_new ();
  const guint8 *keys[] = { key1, key2 };
  g_autoptr(GBytes) first = NULL;
  g_autoptr(GBytes) from_bob = NULL;
  g_autoptr(Reply) pushed = NULL;
  g_autoptr(Reply) shared = NULL;
  g_autoptr(GPtrArray) before = NULL;
  g_autoptr(GPtrArray) after = NULL;
  g_autoptr(GPtrArray) back = NULL;
  g_autoptr(JsonObject) page_keys = NULL;
  g_autofree char *bob_cursor = NULL;
  g_autofree char *alice_cursor = NULL;
  g_autofree char *body = NULL;

  create_dossier (server, alice, dossier, key1);
  first = seal (dossier, 1, key1, alice, "first");
  pushed = push (server, alice->device, &first, 1);
  assert_result (pushed, 0, "stored", NULL);
  before = pull_all (server, bob->device, &bob_cursor, 500, NULL, NULL);
  g_assert_cmpuint (before->len, ==, 0);

  /* Only a member shares, and with the current epoch's key. */
  {
    g_autofree char *to_carol = share_body (carol->device->user_id, dossier, keys, 1, carol->keys->box_pk);
    g_autofree char *ahead = share_body (bob->device->user_id, dossier, keys, 2, bob->keys->box_pk);
    g_autoptr(Reply) by_outsider = request (server, carol->device, "POST", share_uri, to_carol);
    g_autoptr(Reply) too_far = request (server, alice->device, "POST", share_uri, ahead);
    g_autoptr(Reply) nobody = request (server, alice->device, "POST", share_uri,
                                       "{\"user_id\":\"nosuchuser\",\"wrapped_keys\":[{\"epoch\":1,"
                                       "\"wrapped_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}");

    assert_error (by_outsider, 403, "not_member");
    assert_error (too_far, 409, "epoch_retired");
    assert_error (nobody, 404, "not_found");
  }

  body = share_body (bob->device->user_id, dossier, keys, 1, bob->keys->box_pk);
  shared = request (server, alice->device, "POST", share_uri, body);
  assert_status (shared, 204);

  /* The whole dossier arrives, with its keys, after what Bob had. */
  after = pull_all (server, bob->device, &bob_cursor, 500, NULL, &page_keys);
  g_assert_cmpuint (after->len, ==, 1);
  g_assert_true (contains_envelope (after, first));
  g_assert_nonnull (page_keys);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (page_keys, "members")), ==, 2);
  {
    JsonArray *epochs = json_object_get_array_member (page_keys, "epochs");
    g_autofree guint8 *wrapped = NULL;
    g_autoptr(GError) error = NULL;
    guint8 *opened;
    gsize len = 0;

    g_assert_cmpuint (json_array_get_length (epochs), ==, 1);
    wrapped = relais_sync_base64_decode (json_object_get_string_member (json_array_get_object_element (epochs, 0),
                                                                        "wrapped_key"), 1024, &len, &error);
    opened = relais_dossier_key_unwrap (wrapped, len, dossier, 1, bob->keys->box_pk, bob->keys->box_sk, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (opened, 32, key1, 32);
    relais_dossier_key_free (opened);
  }

  from_bob = seal (dossier, 1, key1, bob, "from bob");
  {
    g_autoptr(Reply) bob_pushed = push (server, bob->device, &from_bob, 1);
    g_autoptr(GPtrArray) at_alice = pull_all (server, alice->device, &alice_cursor, 500, NULL, NULL);

    assert_result (bob_pushed, 0, "stored", NULL);
    g_assert_cmpuint (at_alice->len, ==, 1);
    g_assert_true (contains_envelope (at_alice, from_bob));
  }

  /* Unshare Bob: removal and rotation in one step, checked first. */
  {
    g_autofree char *alice_wrap = wrap_for (key2, dossier, 2, alice->keys->box_pk);
    g_autofree char *bob_wrap = wrap_for (key2, dossier, 2, bob->keys->box_pk);
    g_autofree char *good = g_strdup_printf ("{\"user_id\":\"%s\",\"epoch\":2,\"members\":"
                                             "[{\"user_id\":\"%s\",\"wrapped_key\":\"%s\"}]}",
                                             bob->device->user_id, alice->device->user_id, alice_wrap);
    g_autofree char *skipped = g_strdup_printf ("{\"user_id\":\"%s\",\"epoch\":3,\"members\":"
                                                "[{\"user_id\":\"%s\",\"wrapped_key\":\"%s\"}]}",
                                                bob->device->user_id, alice->device->user_id, alice_wrap);
    g_autofree char *nobody_left = g_strdup_printf ("{\"user_id\":\"%s\",\"epoch\":2,\"members\":[]}",
                                                    bob->device->user_id);
    g_autofree char *keeps_bob = g_strdup_printf ("{\"user_id\":\"%s\",\"epoch\":2,\"members\":"
                                                  "[{\"user_id\":\"%s\",\"wrapped_key\":\"%s\"},"
                                                  "{\"user_id\":\"%s\",\"wrapped_key\":\"%s\"}]}",
                                                  bob->device->user_id, alice->device->user_id, alice_wrap,
                                                  bob->device->user_id, bob_wrap);
    g_autoptr(Reply) r_skipped = request (server, alice->device, "POST", unshare_uri, skipped);
    g_autoptr(Reply) r_nobody = request (server, alice->device, "POST", unshare_uri, nobody_left);
    g_autoptr(Reply) r_keeps = request (server, alice->device, "POST", unshare_uri, keeps_bob);
    g_autoptr(Reply) r_outsider = request (server, carol->device, "POST", unshare_uri, good);
    g_autoptr(Reply) r_good = NULL;
    g_autoptr(Reply) r_again = NULL;

    assert_error (r_skipped, 409, "epoch_retired");
    assert_error (r_nobody, 400, "malformed");
    assert_error (r_keeps, 400, "malformed");
    assert_error (r_outsider, 403, "not_member");
    r_good = request (server, alice->device, "POST", unshare_uri, good);
    assert_status (r_good, 204);
    r_again = request (server, alice->device, "POST", unshare_uri, good);
    g_assert_cmpint (r_again->status, ==, 409);
  }

  /* After: Bob is refused, epoch 1 is retired, epoch 2 goes on. */
  {
    g_autoptr(GBytes) bob_late = seal (dossier, 1, key1, bob, "too late");
    g_autoptr(GBytes) alice_old = seal (dossier, 1, key1, alice, "old key");
    g_autoptr(GBytes) alice_new = seal (dossier, 2, key2, alice, "new key");
    g_autoptr(Reply) r_bob = push (server, bob->device, &bob_late, 1);
    g_autoptr(Reply) r_old = push (server, alice->device, &alice_old, 1);
    g_autoptr(Reply) r_new = push (server, alice->device, &alice_new, 1);
    g_autoptr(Reply) r_keys = request (server, bob->device, "GET", keys_uri, NULL);
    g_autoptr(Reply) a_keys = request (server, alice->device, "GET", keys_uri, NULL);
    g_autoptr(GPtrArray) nothing = NULL;
    JsonArray *members;

    assert_result (r_bob, 0, "refused", "not_member");
    assert_result (r_old, 0, "refused", "epoch_retired");
    assert_result (r_new, 0, "stored", NULL);
    assert_error (r_keys, 403, "not_member");
    nothing = pull_all (server, bob->device, &bob_cursor, 500, NULL, NULL);
    g_assert_cmpuint (nothing->len, ==, 0);
    assert_status (a_keys, 200);
    g_assert_cmpint (json_object_get_int_member (reply_object (a_keys), "epoch"), ==, 2);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (reply_object (a_keys), "epochs")), ==, 2);
    members = json_object_get_array_member (reply_object (a_keys), "members");
    g_assert_cmpuint (json_array_get_length (members), ==, 2);
    for (guint i = 0; i < 2; i++)
      {
        JsonObject *member = json_array_get_object_element (members, i);
        gboolean is_bob = strcmp (json_object_get_string_member (member, "user_id"), bob->device->user_id) == 0;

        g_assert_cmpint (json_object_get_int_member (member, "until_epoch"), ==, is_bob ? 2 : 0);
      }
  }

  /* Shared again: Bob reads the history again, with both epochs. */
  {
    g_autofree char *both = share_body (bob->device->user_id, dossier, keys, 2, bob->keys->box_pk);
    g_autoptr(Reply) reshared = request (server, alice->device, "POST", share_uri, both);

    assert_status (reshared, 204);
    back = pull_all (server, bob->device, &bob_cursor, 500, NULL, NULL);
    g_assert_cmpuint (back->len, >=, 2);
    g_assert_true (contains_envelope (back, first));
  }
  relais_dossier_key_free (key1);
  relais_dossier_key_free (key2);
}

static void
test_admin (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org = marker ("Orgadmin");
  g_autofree char *other_org = marker ("Orgadminother");
  g_autofree char *name_admin = marker ("Nameadmin");
  g_autofree char *name_user = marker ("Nameadminuser");
  g_autofree char *name_new = marker ("Nameadminnew");
  g_autofree char *name_other = marker ("Nameadminother");
  g_autoptr(Person) admin = person_new (server, name_admin, org, TRUE);
  g_autoptr(Person) user = person_new (server, name_user, org, FALSE);
  g_autoptr(Person) renewed = person_new (server, name_new, org, FALSE);
  g_autoptr(Person) other = person_new (server, name_other, other_org, TRUE);
  guint8 recovery_pk[crypto_box_PUBLICKEYBYTES], recovery_sk[crypto_box_SECRETKEYBYTES];
  g_autofree char *recovery_text = NULL;
  g_autofree char *body = NULL;
  g_autofree char *other_body = NULL;
  g_autofree char *dossier = relais_oplog_new_id ();
  g_autofree char *recovery_uri = g_strdup_printf ("/v1/admin/recovery/%s", user->device->user_id);
  g_autofree char *grant_uri = g_strdup_printf ("/v1/admin/dossiers/%s/grant", dossier);
  g_autofree char *keys_uri = g_strdup_printf ("/v1/dossiers/%s/keys", dossier);
  guint8 *key = relais_dossier_key_new ();

  crypto_box_keypair (recovery_pk, recovery_sk);
  recovery_text = b64 (recovery_pk, sizeof recovery_pk);
  body = g_strdup_printf ("{\"org\":\"%s\",\"box_pk\":\"%s\"}", org, recovery_text);
  other_body = g_strdup_printf ("{\"org\":\"%s\",\"box_pk\":\"%s\"}", other_org, recovery_text);
  {
    g_autoptr(Reply) by_user = request (server, user->device, "POST", "/v1/admin/recovery-key", body);
    g_autoptr(Reply) other_org_key = request (server, admin->device, "POST", "/v1/admin/recovery-key", other_body);
    g_autoptr(Reply) set = request (server, admin->device, "POST", "/v1/admin/recovery-key", body);
    g_autoptr(Reply) enrolled = NULL;
    g_autoptr(Device) laptop = second_device (server, user, &enrolled);

    assert_error (by_user, 403, "not_admin");
    assert_error (other_org_key, 403, "not_admin");
    assert_status (set, 204);
    /* New devices learn the organisation's recovery key. */
    assert_status (enrolled, 200);
    g_assert_cmpstr (json_object_get_string_member (reply_object (enrolled), "recovery_key"), ==, recovery_text);
  }

  /* A dossier of the user, with a recovery wrap. */
  {
    Person *members[] = { user };
    g_autofree char *create = create_dossier_body (dossier, key, members, 1, recovery_pk);
    g_autoptr(Reply) created = request (server, user->device, "POST", "/v1/dossiers", create);

    assert_status (created, 201);
  }
  {
    g_autoptr(Reply) by_user = request (server, user->device, "GET", recovery_uri, NULL);
    g_autoptr(Reply) by_other = request (server, other->device, "GET", recovery_uri, NULL);
    g_autoptr(Reply) recovery = request (server, admin->device, "GET", recovery_uri, NULL);
    g_autoptr(Reply) unknown = request (server, admin->device, "GET", "/v1/admin/recovery/nosuchuser", NULL);
    JsonArray *dossiers;
    JsonObject *entry;
    JsonArray *epochs;
    g_autofree guint8 *wrapped = NULL;
    g_autoptr(GError) error = NULL;
    guint8 *opened;
    gsize len = 0;

    assert_error (by_user, 403, "not_admin");
    assert_error (by_other, 403, "not_admin");
    assert_error (unknown, 404, "not_found");
    assert_status (recovery, 200);
    dossiers = json_object_get_array_member (reply_object (recovery), "dossiers");
    g_assert_cmpuint (json_array_get_length (dossiers), ==, 1);
    entry = json_array_get_object_element (dossiers, 0);
    g_assert_cmpstr (json_object_get_string_member (entry, "dossier_id"), ==, dossier);
    g_assert_cmpint (json_object_get_int_member (entry, "epoch"), ==, 1);
    epochs = json_object_get_array_member (entry, "epochs");
    g_assert_cmpuint (json_array_get_length (epochs), ==, 1);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (entry, "members")), ==, 1);
    wrapped = relais_sync_base64_decode (json_object_get_string_member (json_array_get_object_element (epochs, 0),
                                                                        "wrapped_key"), 1024, &len, &error);
    opened = relais_dossier_key_unwrap (wrapped, len, dossier, 1, recovery_pk, recovery_sk, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (opened, 32, key, 32);
    relais_dossier_key_free (opened);
  }

  /* Grant the dossier to the user's new identity. */
  {
    const guint8 *keys[] = { key };
    g_autofree char *grant = share_body (renewed->device->user_id, dossier, keys, 1, renewed->keys->box_pk);
    g_autofree char *grant_other = share_body (other->device->user_id, dossier, keys, 1, other->keys->box_pk);
    g_autoptr(Reply) before = request (server, renewed->device, "GET", keys_uri, NULL);
    g_autoptr(Reply) by_user = request (server, user->device, "POST", grant_uri, grant);
    g_autoptr(Reply) across = request (server, admin->device, "POST", grant_uri, grant_other);
    g_autoptr(Reply) granted = request (server, admin->device, "POST", grant_uri, grant);
    g_autoptr(Reply) after = request (server, renewed->device, "GET", keys_uri, NULL);

    assert_error (before, 403, "not_member");
    assert_error (by_user, 403, "not_admin");
    assert_error (across, 403, "not_admin");
    assert_status (granted, 204);
    assert_status (after, 200);
  }

  /* Revocation by an administrator of the device's organisation only. */
  {
    g_autofree char *revoke_user = g_strdup_printf ("/v1/admin/devices/%s/revoke", user->device->id);
    g_autoptr(Reply) across = request (server, other->device, "POST", revoke_user, NULL);
    g_autoptr(Reply) by_user = request (server, renewed->device, "POST", revoke_user, NULL);
    g_autoptr(Reply) unknown = request (server, admin->device, "POST", "/v1/admin/devices/nosuchdevice/revoke", NULL);
    g_autoptr(Reply) revoked = NULL;
    g_autoptr(Reply) refused = NULL;

    assert_error (across, 403, "not_admin");
    assert_error (by_user, 403, "not_admin");
    assert_error (unknown, 404, "not_found");
    revoked = request (server, admin->device, "POST", revoke_user, NULL);
    assert_status (revoked, 204);
    refused = request (server, user->device, "GET", "/v1/users", NULL);
    assert_error (refused, 403, "device_revoked");
  }
  relais_dossier_key_free (key);
  sodium_memzero (recovery_sk, sizeof recovery_sk);
}

static char *
recovery_add_body (const char *org, const char *dossier, const guint8 *key, guint32 epoch,
                   const guint8 *box_pk)
{
  g_autofree char *wrapped = wrap_for (key, dossier, epoch, box_pk);

  return g_strdup_printf ("{\"org\":\"%s\",\"wrapped_keys\":[{\"epoch\":%u,\"wrapped_key\":\"%s\"}]}",
                          org, epoch, wrapped);
}

static JsonArray *
missing_of (Reply *reply)
{
  assert_status (reply, 200);
  return json_object_get_array_member (reply_object (reply), "missing");
}

/* PROTOCOL.md §5.2: another organisation's recovery wraps, added by any
 * member once that organisation has a recovery key. */
static void
test_recovery_fill (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org_a = marker ("Orgfilla");
  g_autofree char *org_b = marker ("Orgfillb");
  g_autofree char *org_c = marker ("Orgfillc");
  g_autofree char *name_aa = marker ("Namefilladmina");
  g_autofree char *name_ab = marker ("Namefilladminb");
  g_autofree char *name_a = marker ("Namefilla");
  g_autofree char *name_b = marker ("Namefillb");
  g_autofree char *name_o = marker ("Namefillo");
  g_autoptr(Person) admin_a = person_new (server, name_aa, org_a, TRUE);
  g_autoptr(Person) admin_b = person_new (server, name_ab, org_b, TRUE);
  g_autoptr(Person) alice = person_new (server, name_a, org_a, FALSE);
  g_autoptr(Person) bob = person_new (server, name_b, org_b, FALSE);
  g_autoptr(Person) outsider = person_new (server, name_o, org_b, FALSE);
  g_autofree char *dossier = relais_oplog_new_id ();
  g_autofree char *recovery_uri = g_strdup_printf ("/v1/dossiers/%s/recovery", dossier);
  g_autofree char *admin_uri = g_strdup_printf ("/v1/admin/recovery/%s", bob->device->user_id);
  guint8 pk_a[crypto_box_PUBLICKEYBYTES], sk_a[crypto_box_SECRETKEYBYTES];
  guint8 pk_b[crypto_box_PUBLICKEYBYTES], sk_b[crypto_box_SECRETKEYBYTES];
  g_autofree char *pk_b_text = NULL;
  guint8 *key = relais_dossier_key_new ();

  crypto_box_keypair (pk_a, sk_a);
  crypto_box_keypair (pk_b, sk_b);
  pk_b_text = b64 (pk_b, sizeof pk_b);
  {
    g_autofree char *pk_a_text = b64 (pk_a, sizeof pk_a);
    g_autofree char *body = g_strdup_printf ("{\"org\":\"%s\",\"box_pk\":\"%s\"}", org_a, pk_a_text);
    g_autoptr(Reply) set = request (server, admin_a->device, "POST", "/v1/admin/recovery-key", body);

    assert_status (set, 204);
  }
  /* Alice (org A) creates the dossier with org A's wrap and shares it
   * with Bob (org B), whose organisation has no recovery key yet. */
  {
    Person *members[] = { alice };
    const guint8 *keys[] = { key };
    g_autofree char *create = create_dossier_body (dossier, key, members, 1, pk_a);
    g_autofree char *share = share_body (bob->device->user_id, dossier, keys, 1, bob->keys->box_pk);
    g_autofree char *share_uri = g_strdup_printf ("/v1/dossiers/%s/share", dossier);
    g_autoptr(Reply) created = request (server, alice->device, "POST", "/v1/dossiers", create);
    g_autoptr(Reply) shared = request (server, alice->device, "POST", share_uri, share);
    g_autoptr(Reply) missing = request (server, alice->device, "GET", "/v1/recovery/missing", NULL);

    assert_status (created, 201);
    assert_status (shared, 204);
    g_assert_cmpuint (json_array_get_length (missing_of (missing)), ==, 0);
  }

  /* Org B's administrator sets its key after Bob joined. */
  {
    g_autofree char *body = g_strdup_printf ("{\"org\":\"%s\",\"box_pk\":\"%s\"}", org_b, pk_b_text);
    g_autoptr(Reply) set = request (server, admin_b->device, "POST", "/v1/admin/recovery-key", body);
    g_autoptr(Reply) by_alice = NULL;
    g_autoptr(Reply) by_bob = NULL;
    g_autoptr(Reply) by_outsider = NULL;
    g_autoptr(Reply) bad_query = NULL;
    JsonObject *entry;
    JsonArray *epochs;

    assert_status (set, 204);
    by_alice = request (server, alice->device, "GET", "/v1/recovery/missing", NULL);
    by_bob = request (server, bob->device, "GET", "/v1/recovery/missing", NULL);
    by_outsider = request (server, outsider->device, "GET", "/v1/recovery/missing", NULL);
    bad_query = request (server, alice->device, "GET", "/v1/recovery/missing?after=x", NULL);
    g_assert_cmpuint (json_array_get_length (missing_of (by_alice)), ==, 1);
    g_assert_cmpuint (json_array_get_length (missing_of (by_bob)), ==, 1);
    g_assert_cmpuint (json_array_get_length (missing_of (by_outsider)), ==, 0);
    assert_error (bad_query, 400, "malformed");
    entry = json_array_get_object_element (missing_of (by_alice), 0);
    g_assert_cmpstr (json_object_get_string_member (entry, "dossier_id"), ==, dossier);
    g_assert_cmpstr (json_object_get_string_member (entry, "org"), ==, org_b);
    g_assert_cmpstr (json_object_get_string_member (entry, "recovery_key"), ==, pk_b_text);
    epochs = json_object_get_array_member (entry, "epochs");
    g_assert_cmpuint (json_array_get_length (epochs), ==, 1);
    g_assert_cmpint (json_array_get_int_element (epochs, 0), ==, 1);
    /* Resuming after the last entry given: nothing more. */
    {
      g_autofree char *org_q = g_uri_escape_string (org_b, NULL, TRUE);
      g_autofree char *uri = g_strdup_printf ("/v1/recovery/missing?after=%s&after_org=%s", dossier, org_q);
      g_autoptr(Reply) after = request (server, alice->device, "GET", uri, NULL);

      g_assert_cmpuint (json_array_get_length (missing_of (after)), ==, 0);
    }
  }

  /* Refusals. */
  {
    g_autofree char *good = recovery_add_body (org_b, dossier, key, 1, pk_b);
    g_autofree char *future = recovery_add_body (org_b, dossier, key, 2, pk_b);
    g_autofree char *keyless = recovery_add_body (org_c, dossier, key, 1, pk_b);
    g_autofree char *short_wrap = g_strdup_printf ("{\"org\":\"%s\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"%s\"}]}",
                                                   org_b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    g_autoptr(Reply) by_outsider = request (server, outsider->device, "POST", recovery_uri, good);
    g_autoptr(Reply) empty = request (server, alice->device, "POST", recovery_uri, "{}");
    g_autoptr(Reply) no_keys = NULL;
    g_autoptr(Reply) not_json = request (server, alice->device, "POST", recovery_uri, "{\"org\":");
    g_autoptr(Reply) too_short = request (server, alice->device, "POST", recovery_uri, short_wrap);
    g_autoptr(Reply) duplicate = NULL;
    g_autoptr(Reply) beyond = request (server, alice->device, "POST", recovery_uri, future);
    g_autoptr(Reply) no_key = request (server, alice->device, "POST", recovery_uri, keyless);
    g_autoptr(Reply) unknown = request (server, alice->device, "POST", "/v1/dossiers/nosuchdossier/recovery", good);
    g_autoptr(Reply) still = NULL;
    g_autofree char *no_keys_body = g_strdup_printf ("{\"org\":\"%s\",\"wrapped_keys\":[]}", org_b);

    {
      g_autofree char *wrapped = wrap_for (key, dossier, 1, pk_b);
      g_autofree char *doubled = g_strdup_printf ("{\"org\":\"%s\",\"wrapped_keys\":["
                                                  "{\"epoch\":1,\"wrapped_key\":\"%s\"},"
                                                  "{\"epoch\":1,\"wrapped_key\":\"%s\"}]}",
                                                  org_b, wrapped, wrapped);

      duplicate = request (server, alice->device, "POST", recovery_uri, doubled);
    }
    no_keys = request (server, alice->device, "POST", recovery_uri, no_keys_body);
    assert_error (by_outsider, 403, "not_member");
    assert_error (empty, 400, "malformed");
    assert_error (no_keys, 400, "malformed");
    assert_error (not_json, 400, "malformed");
    assert_error (too_short, 400, "malformed");
    assert_error (duplicate, 400, "malformed");
    assert_error (beyond, 409, "epoch_retired");
    assert_error (no_key, 404, "not_found");
    assert_error (unknown, 404, "not_found");
    still = request (server, alice->device, "GET", "/v1/recovery/missing", NULL);
    g_assert_cmpuint (json_array_get_length (missing_of (still)), ==, 1);
  }

  /* Alice adds org B's wrap; again is harmless; nothing is missing. */
  {
    g_autofree char *good = recovery_add_body (org_b, dossier, key, 1, pk_b);
    g_autofree char *other = recovery_add_body (org_b, dossier, key, 1, pk_a);
    g_autoptr(Reply) added = request (server, alice->device, "POST", recovery_uri, good);
    g_autoptr(Reply) again = request (server, bob->device, "POST", recovery_uri, other);
    g_autoptr(Reply) by_alice = request (server, alice->device, "GET", "/v1/recovery/missing", NULL);
    g_autoptr(Reply) by_bob = request (server, bob->device, "GET", "/v1/recovery/missing", NULL);
    g_autoptr(Reply) recovery = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree guint8 *wrapped = NULL;
    JsonArray *dossiers, *epochs;
    guint8 *opened;
    gsize len = 0;

    assert_status (added, 204);
    assert_status (again, 204);
    g_assert_cmpuint (json_array_get_length (missing_of (by_alice)), ==, 0);
    g_assert_cmpuint (json_array_get_length (missing_of (by_bob)), ==, 0);

    /* Org B's administrator can now recover Bob's dossier: the first
     * wrap stayed (the second, sealed to another key, did not replace it). */
    recovery = request (server, admin_b->device, "GET", admin_uri, NULL);
    assert_status (recovery, 200);
    dossiers = json_object_get_array_member (reply_object (recovery), "dossiers");
    g_assert_cmpuint (json_array_get_length (dossiers), ==, 1);
    epochs = json_object_get_array_member (json_array_get_object_element (dossiers, 0), "epochs");
    g_assert_cmpuint (json_array_get_length (epochs), ==, 1);
    wrapped = relais_sync_base64_decode (json_object_get_string_member (json_array_get_object_element (epochs, 0),
                                                                        "wrapped_key"), 1024, &len, &error);
    g_assert_no_error (error);
    opened = relais_dossier_key_unwrap (wrapped, len, dossier, 1, pk_b, sk_b, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (opened, 32, key, 32);
    relais_dossier_key_free (opened);
  }
  relais_dossier_key_free (key);
  sodium_memzero (sk_a, sizeof sk_a);
  sodium_memzero (sk_b, sizeof sk_b);
}

static char *
repeat_char (char c, gsize n)
{
  char *text = g_malloc (n + 1);

  memset (text, c, n);
  text[n] = '\0';
  return text;
}

static guint16
server_port (Server *server)
{
  const char *colon = strrchr (server->url, ':');

  return (guint16) g_ascii_strtoull (colon + 1, NULL, 10);
}

/* Raw bytes to the server; returns what it answers until it closes. */
static char *
raw_exchange (Server *server, const char *head)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  GString *answer = g_string_new (NULL);
  char buffer[4096];
  gssize n;

  g_socket_client_set_timeout (client, 30);
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", server_port (server), NULL, &error);
  g_assert_no_error (error);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                             head, strlen (head), NULL, NULL, &error);
  g_assert_no_error (error);
  while ((n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                   buffer, sizeof buffer, NULL, NULL)) > 0)
    g_string_append_len (answer, buffer, n);
  return g_string_free (answer, FALSE);
}

typedef struct {
  gsize sent;
  gsize total;
} Feed;

static size_t
feed_zeros (char *buffer, size_t size, size_t n, void *user_data)
{
  Feed *feed = user_data;
  size_t len = MIN (size * n, feed->total - feed->sent);

  memset (buffer, ' ', len);
  feed->sent += len;
  return len;
}

static void
test_limits (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *declared = raw_exchange (server,
                                            "POST /v1/changesets HTTP/1.1\r\n"
                                            "Host: 127.0.0.1\r\n"
                                            "Content-Type: application/json\r\n"
                                            "Content-Length: 120000000\r\n"
                                            "\r\n");
  g_autofree char *garbage = raw_exchange (server, "NOT HTTP AT ALL\r\n\r\n");
  CURL *curl = curl_easy_init ();
  struct curl_slist *headers = NULL;
  g_autoptr(GString) answer = g_string_new (NULL);
  g_autofree char *url = g_strconcat (server->url, "/v1/changesets", NULL);
  Feed feed = { 0, (gsize) RELAIS_SERVER_MAX_BODY + 1024 * 1024 };
  long status = 0;

  /* Said too large: 413 before the body is sent. */
  g_assert_true (g_str_has_prefix (declared, "HTTP/1.1 413"));
  g_assert_nonnull (strstr (declared, "\"too_large\""));
  g_assert_true (g_str_has_prefix (garbage, "HTTP/1.1 400") || garbage[0] == '\0');

  /* Chunked, so found too large while reading. */
  headers = curl_slist_append (headers, "Transfer-Encoding: chunked");
  headers = curl_slist_append (headers, "Expect:");
  curl_easy_setopt (curl, CURLOPT_URL, url);
  curl_easy_setopt (curl, CURLOPT_POST, 1L);
  curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt (curl, CURLOPT_READFUNCTION, feed_zeros);
  curl_easy_setopt (curl, CURLOPT_READDATA, &feed);
  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, answer);
  curl_easy_setopt (curl, CURLOPT_TIMEOUT, 120L);
  g_assert_cmpint (curl_easy_perform (curl), ==, CURLE_OK);
  curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all (headers);
  curl_easy_cleanup (curl);
  g_assert_cmpint (status, ==, 413);
  g_assert_nonnull (strstr (answer->str, "\"too_large\""));

  /* And the server still answers. */
  {
    g_autoptr(Reply) health = request (server, NULL, "GET", "/v1/health", NULL);

    assert_status (health, 200);
  }

  /* More bodies at once than the memory allowed for them: 429, later. */
  {
    Server *tight = server_start_full (server->dir, server->store_uri, "tight.err", NULL, NULL, "100000");
    g_autofree char *org = marker ("Orgtight");
    g_autofree char *name = marker ("Nametight");
    g_autoptr(Person) person = person_new (tight, name, org, FALSE);
    g_autofree char *padding = repeat_char (' ', 200000);
    g_autofree char *body = g_strdup_printf ("{\"changesets\":[]%s}", padding);
    g_autoptr(Reply) refused = request (tight, person->device, "POST", "/v1/changesets", body);
    g_autoptr(Reply) small = request (tight, person->device, "POST", "/v1/changesets", "{\"changesets\":[]}");

    assert_error (refused, 429, "slow_down");
    g_assert_cmpstr (refused->retry_after, ==, "10");
    assert_status (small, 200);
    g_assert_cmpint (server_stop (tight), ==, 0);
    server_free (tight);
  }
}

static void
test_malformed (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org = marker ("Orgmalformed");
  g_autofree char *name = marker ("Namemalformed");
  g_autoptr(Person) person = person_new (server, name, org, FALSE);
  g_autofree char *deep = NULL;
  GString *nest = g_string_new (NULL);
  const char *bodies[] = {
    "", "{", "[]", "null", "\"x\"", "{\"dossier_id\":5,\"epoch\":1,\"members\":[]}",
    "{\"dossier_id\":\"malformed1\",\"epoch\":1e400,\"members\":[]}",
    "{\"dossier_id\":\"malformed1\",\"epoch\":99999999999999999999999,\"members\":[]}",
    "{\"dossier_id\":\"malformed1\",\"epoch\":2,\"members\":[]}",
    "{\"dossier_id\":\"malformed1\",\"epoch\":1,\"members\":{}}",
    "{\"dossier_id\":\"malformed1\",\"epoch\":1,\"members\":[1]}",
    "{\"dossier_id\":\"malformed1\",\"epoch\":1,\"members\":[{\"user_id\":\"x\",\"wrapped_key\":\"@@@\"}]}",
    "{\"dossier_id\":\"../etc\",\"epoch\":1,\"members\":[]}",
    "{\"dossier_id\":\"malformed1\"",
    "\xff\xfe{}",
  };

  for (guint i = 0; i < 100000; i++)
    g_string_append_c (nest, '[');
  deep = g_string_free (nest, FALSE);
  for (guint i = 0; i < G_N_ELEMENTS (bodies) + 1; i++)
    {
      const char *body = i < G_N_ELEMENTS (bodies) ? bodies[i] : deep;
      g_autoptr(Reply) reply = request (server, person->device, "POST", "/v1/dossiers", body);

      g_assert_cmpint (reply->status, >=, 400);
      g_assert_cmpint (reply->status, <, 500);
      g_assert_true (strcmp (json_object_get_string_member (reply_object (reply), "error"), "malformed") == 0
                     || strcmp (json_object_get_string_member (reply_object (reply), "error"), "bad_base64") == 0
                     || strcmp (json_object_get_string_member (reply_object (reply), "error"), "too_large") == 0);
    }
  {
    g_autoptr(Reply) keys = request (server, person->device, "GET", "/v1/dossiers/malformed1/keys", NULL);

    g_assert_cmpint (keys->status, !=, 200);
  }
}

static void
test_cli (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org = marker ("Orgcli");
  g_autofree char *name = marker ("Namecli");
  g_autoptr(Person) person = person_new (server, name, org, TRUE);
  g_autoptr(JsonParser) parser = json_parser_new ();
  gboolean found = FALSE;

  {
    const char *args[] = { "user", "list", "--store", server->store_uri, "--json", NULL };
    g_auto(Run) run = admin_run (args);
    JsonArray *users;

    g_assert_cmpint (run.status, ==, 0);
    g_assert_true (json_parser_load_from_data (parser, run.out, -1, NULL));
    users = json_node_get_array (json_parser_get_root (parser));
    for (guint i = 0; i < json_array_get_length (users); i++)
      {
        JsonObject *user = json_array_get_object_element (users, i);

        if (strcmp (json_object_get_string_member (user, "user_id"), person->device->user_id) != 0)
          continue;
        found = TRUE;
        g_assert_cmpstr (json_object_get_string_member (user, "name"), ==, name);
        g_assert_cmpstr (json_object_get_string_member (user, "org"), ==, org);
        g_assert_true (json_object_get_boolean_member (user, "admin"));
        g_assert_true (json_object_get_boolean_member (user, "has_keys"));
      }
    g_assert_true (found);
  }
  {
    const char *args[] = { "device", "list", "--store", server->store_uri, "--user",
                           person->device->user_id, "--json", NULL };
    g_auto(Run) run = admin_run (args);
    JsonArray *devices;
    JsonObject *device;

    g_assert_cmpint (run.status, ==, 0);
    g_assert_true (json_parser_load_from_data (parser, run.out, -1, NULL));
    devices = json_node_get_array (json_parser_get_root (parser));
    g_assert_cmpuint (json_array_get_length (devices), ==, 1);
    device = json_array_get_object_element (devices, 0);
    g_assert_cmpstr (json_object_get_string_member (device, "device_id"), ==, person->device->id);
    g_assert_cmpstr (json_object_get_string_member (device, "user_id"), ==, person->device->user_id);
    g_assert_cmpstr (json_object_get_string_member (device, "name"), ==, "laptop");
    g_assert_false (json_object_get_boolean_member (device, "revoked"));
    /* It made signed requests: seen within the last minutes. */
    g_assert_cmpint (json_object_get_int_member (device, "last_seen"), >,
                     g_get_real_time () / G_USEC_PER_SEC - 600);
  }
  {
    const char *args[] = { "user", "list", "--store", server->store_uri, NULL };
    g_auto(Run) run = admin_run (args);

    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, person->device->user_id));
  }

  /* Refusals: one line on stderr, exit 1, nothing on stdout. */
  {
    const char *bad[][10] = {
      { "device", "revoke", "--store", server->store_uri, "nosuchdevice", NULL },
      { "user", "code", "--store", server->store_uri, "nosuchuser", NULL },
      { "user", "add", "--store", server->store_uri, "--org", "x", NULL },
      { "user", "add", "--store", "mysql://nowhere", "--name", "x", "--org", "y", NULL },
      { "org", "set-recovery-key", "--store", server->store_uri, "--org", "x", "--key", "short", NULL },
      { "serve", "--store", server->store_uri, "--listen", "nowhere", NULL },
      { "frobnicate", NULL },
    };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_auto(Run) run = admin_run (bad[i]);

        g_assert_cmpint (run.status, ==, 1);
        g_assert_cmpstr (run.out, ==, "");
        g_assert_true (g_str_has_prefix (run.err, i + 1 == G_N_ELEMENTS (bad) ? "usage:" : "relais-server: "));
        if (i + 1 < G_N_ELEMENTS (bad))
          g_assert_cmpuint (strchr (run.err, '\n') - run.err + 1, ==, strlen (run.err));
      }
  }
  {
    guint8 pk[32];
    g_autofree char *text = NULL;

    randombytes_buf (pk, sizeof pk);
    text = b64 (pk, sizeof pk);
    {
      const char *args[] = { "org", "set-recovery-key", "--store", server->store_uri, "--org", org,
                             "--key", text, NULL };
      g_auto(Run) run = admin_run (args);
      g_autoptr(Reply) enrolled = NULL;
      g_autoptr(Device) laptop = NULL;

      g_assert_cmpint (run.status, ==, 0);
      laptop = second_device (server, person, &enrolled);
      assert_status (enrolled, 200);
      g_assert_cmpstr (json_object_get_string_member (reply_object (enrolled), "recovery_key"), ==, text);
    }
  }
}

/* HTTPS with a certificate made here: verified by the client, and the
 * same API behind it. */
static void
test_tls (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *cert = g_build_filename (server->dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (server->dir, "key.pem", NULL);
  g_autofree char *org = marker ("Orgtls");
  g_autofree char *name = marker ("Nametls");
  g_autoptr(GError) error = NULL;
  Server *tls;

  if (openssl == NULL)
    {
      g_test_skip ("openssl is not installed: no certificate to test with");
      return;
    }
  {
    const char *argv[] = { openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                           "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", NULL };
    g_autoptr(GSubprocess) process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                        | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error);

    g_assert_no_error (error);
    g_assert_true (g_subprocess_wait_check (process, NULL, &error));
    g_assert_no_error (error);
  }
  tls = server_start_full (server->dir, server->store_uri, "tls.err", cert, key, NULL);
  {
    g_autoptr(Reply) health = request (tls, NULL, "GET", "/v1/health", NULL);
    g_autoptr(Person) person = person_new (tls, name, org, FALSE);
    g_autoptr(Reply) users = request (tls, person->device, "GET", "/v1/users", NULL);
    g_autoptr(Reply) forged = request_tweaked (tls, person->device, "GET", "/v1/users", NULL,
                                               &(Tweak) { .bad_signature = TRUE });
    /* Plain HTTP to the TLS port gets no answer of the API. */
    g_autofree char *plain = raw_exchange (tls, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n");

    assert_status (health, 200);
    assert_status (users, 200);
    assert_error (forged, 401, "bad_signature");
    g_assert_null (strstr (plain, "\"status\":\"ok\""));
  }
  g_assert_cmpint (server_stop (tls), ==, 0);
  server_free (tls);
}

/* Last on a backend: the log tells nothing personal, and SIGTERM ends the
 * server cleanly. */
static void
test_log_and_stop (gconstpointer data)
{
  Backend *backend = (Backend *) data;
  SERVER_OR_SKIP (backend);
  g_autofree char *log = NULL;
  g_auto(GStrv) lines = NULL;
  guint requests = 0;

  g_assert_cmpint (server_stop (server), ==, 0);
  log = server_log (server);
  for (guint i = 0; i < secrets->len; i++)
    if (strstr (log, g_ptr_array_index (secrets, i)) != NULL)
      g_error ("the server's log shows \"%s\"", (char *) g_ptr_array_index (secrets, i));
  lines = g_strsplit (log, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (g_str_has_prefix (lines[i], "relais-server: POST /v1/enrol 200 ")
          || g_str_has_prefix (lines[i], "relais-server: GET /v1/dossiers/{id}/keys 403 not_member "))
        requests++;
      /* No id in full, no body: every request line names a route pattern. */
      g_assert_null (strstr (lines[i], "/v1/dossiers/0"));
    }
  g_assert_cmpuint (requests, >=, 2);
  g_assert_nonnull (strstr (log, "relais-server: stopping on SIGTERM"));
  server_free (server);
  backend->server = NULL;
}

/* Two servers on one PostgreSQL database serve the same devices: push
 * through one, pull through the other, cursors good on both, a nonce
 * spent on one refused by the other. */
static void
test_two_servers (gconstpointer data)
{
  SERVER_OR_SKIP ((Backend *) data);
  g_autofree char *org = marker ("Orgtwo");
  g_autofree char *name = marker ("Nametwo");
  g_autoptr(Person) person = person_new (server, name, org, FALSE);
  g_autoptr(Reply) enrolled = NULL;
  g_autoptr(Device) laptop = second_device (server, person, &enrolled);
  Server *twin = server_start (server->dir, server->store_uri, "twin.err");
  g_autofree char *dossier = relais_oplog_new_id ();
  guint8 *key = relais_dossier_key_new ();
  GBytes *envelopes[4];
  g_autofree char *cursor = NULL;
  g_autofree char *nonce = new_nonce ();

  assert_status (enrolled, 200);
  create_dossier (twin, person, dossier, key);
  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    envelopes[i] = seal (dossier, 1, key, person, "twin");
  {
    g_autoptr(Reply) pushed = push (server, person->device, envelopes, 2);
    g_autoptr(Reply) pushed2 = push (twin, person->device, envelopes + 2, 2);
    g_autoptr(Reply) again = push (twin, person->device, envelopes, 2);

    assert_result (pushed, 0, "stored", NULL);
    assert_result (pushed2, 1, "stored", NULL);
    assert_result (again, 0, "duplicate", NULL);
  }
  /* Page by page, alternating servers. */
  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    {
      g_autofree char *uri = g_strdup_printf ("/v1/changesets?limit=1%s%s", cursor != NULL ? "&cursor=" : "",
                                              cursor != NULL ? cursor : "");
      g_autoptr(Reply) page = request (i % 2 == 0 ? twin : server, laptop, "GET", uri, NULL);
      JsonArray *changesets;
      g_autofree char *expected = b64_bytes (envelopes[i]);

      assert_status (page, 200);
      changesets = json_object_get_array_member (reply_object (page), "changesets");
      g_assert_cmpuint (json_array_get_length (changesets), ==, 1);
      g_assert_cmpstr (json_array_get_string_element (changesets, 0), ==, expected);
      g_free (cursor);
      cursor = g_strdup (json_object_get_string_member (reply_object (page), "cursor"));
    }
  {
    g_autoptr(Reply) once = request_tweaked (server, laptop, "GET", "/v1/users", NULL, &(Tweak) { .nonce = nonce });
    g_autoptr(Reply) twice = request_tweaked (twin, laptop, "GET", "/v1/users", NULL, &(Tweak) { .nonce = nonce });

    assert_status (once, 200);
    assert_error (twice, 409, "replayed");
  }
  /* Revoked through one, refused by the other. */
  {
    const char *args[] = { "device", "revoke", "--store", server->store_uri, laptop->id, NULL };
    g_auto(Run) run = admin_run (args);
    g_autoptr(Reply) refused = NULL;

    g_assert_cmpint (run.status, ==, 0);
    refused = request (twin, laptop, "GET", "/v1/users", NULL);
    assert_error (refused, 403, "device_revoked");
  }
  g_assert_cmpint (server_stop (twin), ==, 0);
  server_free (twin);
  for (guint i = 0; i < G_N_ELEMENTS (envelopes); i++)
    g_bytes_unref (envelopes[i]);
  relais_dossier_key_free (key);
}

/* ---- The parsers, directly ------------------------------------------ */

typedef gpointer (*ParseFunc) (const char *body, gsize len, GError **error);

typedef struct {
  const char     *name;
  ParseFunc       parse;
  GDestroyNotify  free;
  const char     *valid;   /* a body it accepts */
} Parser;

#define K32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define W64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
/* 154 bytes: a wrapped dossier key (PROTOCOL.md §2.1). */
#define W154 W64 W64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static const Parser parsers[] = {
  { "enrol", (ParseFunc) relais_server_parse_enrol, (GDestroyNotify) relais_enrol_request_free,
    "{\"code\":\"abcde-fghjk-mnpqr-stvwx\",\"device_name\":\"Portable de l'équipe\",\"device_key\":\"" K32 "\"}" },
  { "keys", (ParseFunc) relais_server_parse_keys, (GDestroyNotify) relais_keys_request_free,
    "{\"box_pk\":\"" K32 "\",\"sign_pk\":\"" K32 "\",\"wrapped_user_keys\":\"" W64 "\"}" },
  { "dossier", (ParseFunc) relais_server_parse_dossier, (GDestroyNotify) relais_dossier_request_free,
    "{\"dossier_id\":\"d-1\",\"epoch\":1,\"members\":[{\"user_id\":\"u1\",\"wrapped_key\":\"" W64 "\"},"
    "{\"user_id\":\"u2\",\"wrapped_key\":\"" W64 "\"}],\"recovery_wrapped_key\":\"" W64 "\"}" },
  { "unshare", (ParseFunc) relais_server_parse_unshare, (GDestroyNotify) relais_dossier_request_free,
    "{\"user_id\":\"u2\",\"epoch\":2,\"members\":[{\"user_id\":\"u1\",\"wrapped_key\":\"" W64 "\"}],"
    "\"recovery_wrapped_key\":null}" },
  { "share", (ParseFunc) relais_server_parse_share, (GDestroyNotify) relais_share_request_free,
    "{\"user_id\":\"u3\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W64 "\"},"
    "{\"epoch\":2,\"wrapped_key\":\"" W64 "\"}]}" },
  { "push", (ParseFunc) relais_server_parse_push, (GDestroyNotify) relais_push_request_free,
    "{\"changesets\":[\"UkxDUw\",\"!!\",\"\"]}" },
  { "recovery-key", (ParseFunc) relais_server_parse_recovery_key,
    (GDestroyNotify) relais_recovery_key_request_free,
    "{\"org\":\"Mission locale\",\"box_pk\":\"" K32 "\"}" },
  { "recovery-add", (ParseFunc) relais_server_parse_recovery_add,
    (GDestroyNotify) relais_recovery_add_request_free,
    "{\"org\":\"Mission locale\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W154 "\"},"
    "{\"epoch\":3,\"wrapped_key\":\"" W154 "\"}]}" },
};

/* Either a result or a RELAIS_SERVER_ERROR of the parser's kinds, never
 * both, never neither. */
static void
check_parse (const Parser *parser, const char *body, gsize len)
{
  g_autoptr(GError) error = NULL;
  gpointer result = parser->parse (body, len, &error);

  if (result != NULL)
    {
      g_assert_no_error (error);
      parser->free (result);
      return;
    }
  g_assert_nonnull (error);
  g_assert_true (error->domain == RELAIS_SERVER_ERROR);
  g_assert_true (error->code == RELAIS_SERVER_ERROR_MALFORMED
                 || error->code == RELAIS_SERVER_ERROR_BAD_BASE64
                 || error->code == RELAIS_SERVER_ERROR_TOO_LARGE);
  g_assert_cmpuint (strlen (error->message), >, 10);
}

static void
test_parsers_valid (void)
{
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (parsers); i++)
    {
      gpointer result = parsers[i].parse (parsers[i].valid, strlen (parsers[i].valid), &error);

      g_assert_no_error (error);
      g_assert_nonnull (result);
      parsers[i].free (result);
    }
  {
    const char *body = parsers[0].valid;
    g_autoptr(RelaisEnrolRequest) enrol = relais_server_parse_enrol (body, strlen (body), &error);

    g_assert_no_error (error);
    g_assert_cmpstr (enrol->code, ==, "ABCDEFGHJKMNPQRSTVWX");
    g_assert_cmpstr (enrol->device_name, ==, "Portable de l'équipe");
  }
  {
    const char *body = parsers[2].valid;
    g_autoptr(RelaisDossierRequest) dossier = relais_server_parse_dossier (body, strlen (body), &error);
    RelaisStoreWrappedKey *recovery;

    g_assert_no_error (error);
    g_assert_cmpstr (dossier->dossier_id, ==, "d-1");
    g_assert_cmpuint (dossier->keys->len, ==, 3);
    recovery = g_ptr_array_index (dossier->keys, 2);
    g_assert_null (recovery->user_id);
    g_assert_cmpuint (recovery->epoch, ==, 1);
    g_assert_cmpuint (g_bytes_get_size (recovery->wrapped_key), ==, 64);
  }
  {
    const char *body = parsers[5].valid;
    g_autoptr(RelaisPushRequest) push = relais_server_parse_push (body, strlen (body), &error);

    g_assert_no_error (error);
    g_assert_cmpuint (push->envelopes->len, ==, 3);
    g_assert_cmpuint (g_bytes_get_size (g_ptr_array_index (push->envelopes, 0)), ==, 4);
    g_assert_null (g_ptr_array_index (push->envelopes, 1));
    g_assert_cmpuint (g_bytes_get_size (g_ptr_array_index (push->envelopes, 2)), ==, 0);
  }
  {
    const char *body = parsers[4].valid;
    g_autoptr(RelaisShareRequest) share = relais_server_parse_share (body, strlen (body), &error);

    g_assert_no_error (error);
    g_assert_cmpuint (share->keys->len, ==, 2);
    g_assert_cmpstr (((RelaisStoreWrappedKey *) g_ptr_array_index (share->keys, 1))->user_id, ==, "u3");
    g_assert_cmpuint (((RelaisStoreWrappedKey *) g_ptr_array_index (share->keys, 1))->epoch, ==, 2);
  }
}

static void
expect_error (const Parser *parser, const char *body, gsize len, RelaisServerError code)
{
  g_autoptr(GError) error = NULL;
  gpointer result = parser->parse (body, len, &error);

  if (result != NULL)
    g_error ("%s accepted %.*s", parser->name, (int) MIN (len, 200), body);
  g_assert_error (error, RELAIS_SERVER_ERROR, (gint) code);
}

static char *
repeat (const char *unit, guint n)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < n; i++)
    g_string_append (out, unit);
  return g_string_free (out, FALSE);
}

static void
test_parsers_hostile (void)
{
  g_autofree char *deep_arrays = repeat ("[", 1000000);
  g_autofree char *deep_objects = repeat ("{\"a\":", 100000);
  g_autofree char *many_values = NULL;
  g_autofree char *many_members = NULL;
  g_autofree char *many_changesets = NULL;
  g_autofree char *long_name = NULL;
  const Parser *enrol = &parsers[0], *keys = &parsers[1], *dossier = &parsers[2];
  const Parser *unshare = &parsers[3], *share = &parsers[4], *push = &parsers[5];
  static const char nul_body[] = "{\"org\":\"a\0b\",\"box_pk\":\"" K32 "\"}";
  const char *broken[] = {
    "", " ", "{", "}", "[", "]", "{}", "[]", "null", "true", "0", "\"s\"", "{\"a\"}", "{\"a\":}",
    "{,}", "{\"a\":1,}", "{'a':1}", "{\"a\":1}{}", "{\"a\":\"\\u\"}", "{\"a\":\"\\ud800\"}",
    "{\"a\":01}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":NaN}", "{\"a\":Infinity}", "/*x*/{}",
    "{\"a\":\"unterminated}", "\xef\xbb\xbf{}", "\xc3\x28", "{\"\xff\":1}",
  };

  /* Broken JSON, for every parser. */
  for (guint p = 0; p < G_N_ELEMENTS (parsers); p++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (broken); i++)
        expect_error (&parsers[p], broken[i], strlen (broken[i]),
                      RELAIS_SERVER_ERROR_MALFORMED);
      expect_error (&parsers[p], deep_arrays, strlen (deep_arrays), RELAIS_SERVER_ERROR_MALFORMED);
      expect_error (&parsers[p], deep_objects, strlen (deep_objects), RELAIS_SERVER_ERROR_MALFORMED);
      /* A NUL inside, and the valid body cut short at every byte. */
      expect_error (&parsers[p], nul_body, sizeof nul_body - 1, RELAIS_SERVER_ERROR_MALFORMED);
      for (gsize cut = 0; cut < strlen (parsers[p].valid); cut++)
        expect_error (&parsers[p], parsers[p].valid, cut, RELAIS_SERVER_ERROR_MALFORMED);
    }

  /* Too many values for the memory they would take. */
  {
    GString *values = g_string_new ("{\"changesets\":[");

    for (guint i = 0; i < 200000; i++)
      g_string_append (values, i > 0 ? ",1" : "1");
    g_string_append (values, "]}");
    many_values = g_string_free (values, FALSE);
  }
  for (guint p = 0; p < G_N_ELEMENTS (parsers); p++)
    expect_error (&parsers[p], many_values, strlen (many_values), RELAIS_SERVER_ERROR_TOO_LARGE);
  {
    g_autofree char *list = repeat ("\"AAAA\",", 100);

    many_changesets = g_strdup_printf ("{\"changesets\":[%s\"AAAA\"]}", list);
    expect_error (push, many_changesets, strlen (many_changesets), RELAIS_SERVER_ERROR_TOO_LARGE);
  }
  {
    g_autofree char *list = repeat ("{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"},", 1001);

    many_members = g_strdup_printf ("{\"dossier_id\":\"d\",\"epoch\":1,\"members\":[%s{}]}", list);
    expect_error (dossier, many_members, strlen (many_members), RELAIS_SERVER_ERROR_TOO_LARGE);
  }

  /* Wrong types, numbers, ids, lengths and base64. */
  {
    static const struct { guint parser; const char *body; RelaisServerError code; } cases[] = {
      { 0, "{\"code\":12,\"device_name\":\"x\",\"device_key\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWU\",\"device_name\":\"x\",\"device_key\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWXY\",\"device_name\":\"x\",\"device_key\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"\",\"device_key\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"a\\nb\",\"device_key\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"a\\u0000b\",\"device_key\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"x\",\"device_key\":\"" K32 "A\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"x\",\"device_key\":\"AAAA+AAA\"}", RELAIS_SERVER_ERROR_BAD_BASE64 },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"x\",\"device_key\":\"AAA=\"}", RELAIS_SERVER_ERROR_BAD_BASE64 },
      { 0, "{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"x\",\"device_key\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 1, "{\"box_pk\":\"" K32 "\",\"sign_pk\":\"" K32 "\",\"wrapped_user_keys\":\"AAAA\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 1, "{\"box_pk\":\"" K32 "\",\"sign_pk\":null,\"wrapped_user_keys\":\"" W64 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":1.0,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":\"1\",\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":true,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":-1,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":4294967297,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":18446744073709551617,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":1,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"\",\"epoch\":1,\"members\":[{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d d\",\"epoch\":1,\"members\":[{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "\",\"epoch\":1,\"members\":[{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":1,\"members\":[{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"},{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":1,\"members\":[{\"user_id\":\"u\",\"wrapped_key\":\"AAAA\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":1,\"members\":[{\"user_id\":\"u\",\"wrapped_key\":\"" W64 "\"}],\"recovery_wrapped_key\":7}", RELAIS_SERVER_ERROR_MALFORMED },
      { 2, "{\"dossier_id\":\"d\",\"epoch\":1,\"members\":[[]]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 3, "{\"user_id\":\"u\",\"epoch\":1,\"members\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 3, "{\"user_id\":\"u\",\"epoch\":2}", RELAIS_SERVER_ERROR_MALFORMED },
      { 4, "{\"user_id\":\"u\",\"wrapped_keys\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 4, "{\"user_id\":\"u\",\"wrapped_keys\":[{\"epoch\":0,\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 4, "{\"user_id\":\"u\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W64 "\"},{\"epoch\":1,\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 4, "{\"user_id\":\"u\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"#" W64 "\"}]}", RELAIS_SERVER_ERROR_BAD_BASE64 },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W154 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"a\\tb\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W154 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":[{\"epoch\":0,\"wrapped_key\":\"" W154 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W64 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W154 "AAAA\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W154 "\"},{\"epoch\":1,\"wrapped_key\":\"" W154 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"#" W154 "\"}]}", RELAIS_SERVER_ERROR_BAD_BASE64 },
      { 7, "{\"org\":7,\"wrapped_keys\":[{\"epoch\":1,\"wrapped_key\":\"" W154 "\"}]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 7, "{\"org\":\"o\",\"wrapped_keys\":{}}", RELAIS_SERVER_ERROR_MALFORMED },
      { 5, "{\"changesets\":\"AAAA\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 5, "{\"changesets\":[null]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 5, "{\"changesets\":[[\"AAAA\"]]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 5, "{\"other\":[]}", RELAIS_SERVER_ERROR_MALFORMED },
      { 6, "{\"org\":\"\",\"box_pk\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
      { 6, "{\"org\":\"a\\tb\",\"box_pk\":\"" K32 "\"}", RELAIS_SERVER_ERROR_MALFORMED },
    };

    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      expect_error (&parsers[cases[i].parser], cases[i].body, strlen (cases[i].body), cases[i].code);
  }
  long_name = g_strdup_printf ("{\"code\":\"ABCDE-FGHJK-MNPQR-STVWX\",\"device_name\":\"%s\",\"device_key\":\"" K32 "\"}",
                               deep_arrays + 999000);
  for (char *p = long_name; *p != '\0'; p++)
    if (*p == '[')
      *p = 'x';
  expect_error (enrol, long_name, strlen (long_name), RELAIS_SERVER_ERROR_MALFORMED);
  (void) keys;
  (void) unshare;
  (void) share;
}

/* Seeded mutations of the valid bodies and random bytes: thousands of
 * inputs, each answered with a result or an error (ASan watches). */
static void
test_parsers_fuzz (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (20261125);
  static const char alphabet[] = "{}[]\":,\\ 0123456789-eE.+tfnul\"AZaz_!\x00\xff\xc3";

  for (guint p = 0; p < G_N_ELEMENTS (parsers); p++)
    for (guint round = 0; round < 3000; round++)
      {
        g_autoptr(GByteArray) body = g_byte_array_new ();
        guint edits = g_rand_int_range (rand, 1, 8);

        if (round % 10 == 9)
          {
            /* Pure noise. */
            guint len = g_rand_int_range (rand, 0, 300);

            for (guint i = 0; i < len; i++)
              {
                guint8 c = g_rand_int_range (rand, 0, 256);

                g_byte_array_append (body, &c, 1);
              }
          }
        else
          g_byte_array_append (body, (const guint8 *) parsers[p].valid, strlen (parsers[p].valid));
        for (guint e = 0; e < edits && body->len > 0; e++)
          {
            guint at = g_rand_int_range (rand, 0, body->len);
            guint8 c = alphabet[g_rand_int_range (rand, 0, sizeof alphabet - 1)];

            switch (g_rand_int_range (rand, 0, 4))
              {
              case 0:
                body->data[at] = c;
                break;
              case 1:
                g_array_insert_vals ((GArray *) body, at, &c, 1);
                break;
              case 2:
                g_byte_array_remove_index (body, at);
                break;
              default:
                /* Duplicate a slice: nesting, repeated members. */
                {
                  guint len = g_rand_int_range (rand, 1, MIN (body->len - at, 40) + 1);
                  g_autofree guint8 *slice = g_memdup2 (body->data + at, len);

                  g_array_insert_vals ((GArray *) body, at, slice, len);
                }
              }
          }
        check_parse (&parsers[p], (const char *) body->data, body->len);
      }
}

static void
test_query (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) empty = relais_server_parse_query (NULL, &error);
  g_autoptr(GHashTable) params = relais_server_parse_query ("org=Mission+locale%20de%20Pau&limit=5&x", &error);
  const char *bad[] = { "a=%", "a=%zz", "a=%00", "a=1&a=2", "=1", "a=%ff", "a&b&c&d&e&f&g&h&i" };

  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (empty), ==, 0);
  g_assert_cmpstr (g_hash_table_lookup (params, "org"), ==, "Mission locale de Pau");
  g_assert_cmpstr (g_hash_table_lookup (params, "limit"), ==, "5");
  g_assert_cmpstr (g_hash_table_lookup (params, "x"), ==, "");
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) local = NULL;
      g_autoptr(GHashTable) none = relais_server_parse_query (bad[i], &local);

      g_assert_null (none);
      g_assert_error (local, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED);
    }
}

static void
test_cursor (void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  guint8 secret[32], other[32];
  RelaisStoreCursor cursor = { G_MAXUINT64 - 1, 12345 }, out = { 0 };
  g_autofree char *text = NULL;
  g_autofree char *other_text = NULL;
  g_autoptr(GError) error = NULL;
  const char *bad[] = { "", "A", "AAAA", "!!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==" };

  randombytes_buf (secret, sizeof secret);
  randombytes_buf (other, sizeof other);
  text = relais_server_cursor_encode (secret, &cursor);
  g_assert_true (relais_server_cursor_decode (secret, text, &out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out.vis, ==, cursor.vis);
  g_assert_cmpuint (out.seq, ==, cursor.seq);
  /* Another server's secret, or any changed character: refused. */
  other_text = relais_server_cursor_encode (other, &cursor);
  g_assert_false (relais_server_cursor_decode (secret, other_text, &out, &error));
  g_assert_error (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED);
  for (gsize i = 0; i < strlen (text); i++)
    {
      g_autofree char *spoiled = g_strdup (text);
      g_autoptr(GError) local = NULL;

      spoiled[i] = spoiled[i] == 'B' ? 'C' : 'B';
      g_assert_false (relais_server_cursor_decode (secret, spoiled, &out, &local));
      g_assert_error (local, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) local = NULL;

      g_assert_false (relais_server_cursor_decode (secret, bad[i], &out, &local));
      g_assert_error (local, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED);
    }
  for (guint round = 0; round < 5000; round++)
    {
      char noise[80];
      guint len = g_rand_int_range (rand, 0, sizeof noise);
      g_autoptr(GError) local = NULL;

      for (guint i = 0; i < len; i++)
        noise[i] = g_rand_int_range (rand, 1, 256);
      noise[len] = '\0';
      g_assert_false (relais_server_cursor_decode (secret, noise, &out, &local));
      g_assert_nonnull (local);
    }
}

static void
test_codes (void)
{
  g_autofree char *code = relais_server_code_new ();
  g_autofree char *typed = spoil_code (code);
  g_autofree char *canonical = relais_server_code_normalize (code);
  g_autofree char *confusable = relais_server_code_normalize ("OIL00-11111-22222-33333");
  g_autofree char *spaced = relais_server_code_normalize (" abcde fghjk mnpqr stvwx ");
  guint8 a[32], b[32];
  const char *bad[] = { "", "ABCDE", "ABCDE-FGHJK-MNPQR-STVWXY", "ABCDE-FGHJK-MNPQR-STVWU",
                        "ABCDE-FGHJK-MNPQR-STVW!", "ÀBCDE-FGHJK-MNPQR-STVWX" };

  g_assert_cmpuint (strlen (code), ==, 23);
  g_assert_cmpuint (strlen (canonical), ==, 20);
  g_assert_cmpstr (confusable, ==, "01100111112222233333");
  g_assert_cmpstr (spaced, ==, "ABCDEFGHJKMNPQRSTVWX");
  g_assert_true (relais_server_code_hash (code, a));
  g_assert_true (relais_server_code_hash (typed, b));
  g_assert_cmpmem (a, 32, b, 32);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *none = relais_server_code_normalize (bad[i]);

      g_assert_null (none);
      g_assert_false (relais_server_code_hash (bad[i], a));
    }
}

int
main (int argc, char **argv)
{
  static Backend *backends[] = { &sqlite_backend, &pg_backend };
  static const struct {
    const char *name;
    GTestDataFunc func;
  } http_tests[] = {
    { "health", test_health },
    { "enrol", test_enrol },
    { "keys", test_keys },
    { "signing", test_signing },
    { "push-pull", test_push_pull },
    { "share-unshare", test_share_unshare },
    { "admin", test_admin },
    { "recovery-fill", test_recovery_fill },
    { "limits", test_limits },
    { "malformed", test_malformed },
    { "cli", test_cli },
    { "tls", test_tls },
  };
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  curl_global_init (CURL_GLOBAL_DEFAULT);
  secrets = g_ptr_array_new_with_free_func (g_free);

  g_test_add_func ("/server/codes", test_codes);
  g_test_add_func ("/server/cursor", test_cursor);
  g_test_add_func ("/server/query", test_query);
  g_test_add_func ("/server/parsers/valid", test_parsers_valid);
  g_test_add_func ("/server/parsers/hostile", test_parsers_hostile);
  g_test_add_func ("/server/parsers/fuzz", test_parsers_fuzz);
  for (guint b = 0; b < G_N_ELEMENTS (backends); b++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (http_tests); i++)
        {
          g_autofree char *path = g_strdup_printf ("/server/%s/%s", backends[b]->kind, http_tests[i].name);

          /* The PostgreSQL run repeats the protocol, not the 110 MiB upload. */
          if (b == 1 && (strcmp (http_tests[i].name, "limits") == 0
                         || strcmp (http_tests[i].name, "tls") == 0))
            continue;
          g_test_add_data_func (path, backends[b], http_tests[i].func);
        }
      if (b == 1)
        g_test_add_data_func ("/server/pg/two-servers", backends[b], test_two_servers);
      {
        g_autofree char *path = g_strdup_printf ("/server/%s/log-and-stop", backends[b]->kind);

        g_test_add_data_func (path, backends[b], test_log_and_stop);
      }
    }

  status = g_test_run ();

  for (guint b = 0; b < G_N_ELEMENTS (backends); b++)
    {
      if (backends[b]->server != NULL)
        server_free (backends[b]->server);
#ifdef HAVE_TEST_PG
      if (backends[b]->pg != NULL)
        relais_test_pg_stop (backends[b]->pg);
#endif
      if (backends[b]->dir != NULL)
        {
          relais_test_rm_rf (backends[b]->dir);
          g_free (backends[b]->dir);
        }
    }
  g_ptr_array_unref (secrets);
  curl_global_cleanup ();
  return status;
}
