#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sodium.h>

#include "relais-changeset.h"
#include "relais-client.h"
#include "relais-keys.h"
#include "relais-keyfile.h"
#include "relais-oplog.h"
#include "relais-spool.h"
#include "relais-sync-engine.h"
#include "relais-test-util.h"

/* The sync client (PROTOCOL.md §5) and the spool (§7): the loopback rule,
 * errors of real TCP peers that misbehave, the answers' parsers against
 * broken, hostile and randomly mutated input, the spool's files, and,
 * when relais-server is built, everything against the real server on
 * loopback (enrolment, keys, dossiers, pushes, paged pulls, two devices of
 * two organisations sharing a dossier, a server killed mid-exchange). */

#define DOSSIER "018f2b6c-7d1e-7a00-8000-00000000d001"
#define PASSPHRASE "correct horse battery staple"

/* Envelopes ------------------------------------------------------------------ */

static guint op_counter;

static GPtrArray *
make_ops (const char *dossier,
          const char *author,
          const char *device,
          guint       n)
{
  GPtrArray *ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);

  for (guint i = 0; i < n; i++)
    {
      RelaisOp *op = g_new0 (RelaisOp, 1);
      guint k = ++op_counter;

      op->id = g_strdup_printf ("018f2b6c-7d1e-7a00-9000-%012u", k);
      op->dossier = g_strdup (dossier);
      op->entity = g_strdup ("note");
      op->entity_id = g_strdup_printf ("018f2b6c-7d1e-7a00-a000-%012u", k);
      op->field = g_strdup ("text");
      op->value = g_strdup_printf ("note %u", k);
      op->hlc = G_GUINT64_CONSTANT (0x0001900000000000) + k;
      op->author = g_strdup (author);
      op->device = g_strdup (device);
      g_ptr_array_add (ops, op);
    }
  return ops;
}

static GBytes *
seal_one (const char   *dossier,
          guint32       epoch,
          const guint8 *key,
          const char   *author,
          const char   *device,
          const guint8 *sign_sk,
          guint         n_ops)
{
  g_autoptr(GPtrArray) ops = make_ops (dossier, author, device, n_ops);
  g_autoptr(GError) error = NULL;
  GBytes *envelope = relais_changeset_seal (dossier, epoch, key, author, device, sign_sk,
                                            ops, &error);

  g_assert_no_error (error);
  g_assert_nonnull (envelope);
  return envelope;
}

static char *
envelope_hex_id (GBytes *envelope)
{
  g_auto(RelaisChangesetHeader) header = { 0 };
  char hex[33];

  g_assert_true (relais_changeset_peek (g_bytes_get_data (envelope, NULL),
                                        g_bytes_get_size (envelope), &header, NULL));
  sodium_bin2hex (hex, sizeof hex, header.id, sizeof header.id);
  return g_strdup (hex);
}

static char *
b64 (const guint8 *data,
     gsize         len)
{
  return relais_sync_base64_encode (data, len);
}

static char *
b64_random (gsize len)
{
  g_autofree guint8 *data = g_malloc (len);

  randombytes_buf (data, len);
  return b64 (data, len);
}

/* The loopback rule ---------------------------------------------------------- */

static void
test_loopback_rule (void)
{
  const char *accepted[] = {
    "http://127.0.0.1", "http://127.0.0.1:8080", "http://127.1.2.3:1/",
    "http://[::1]", "http://[::1]:4443", "http://localhost", "http://LOCALHOST:99",
    "https://example.org", "https://relais.example.org:8443", "https://192.0.2.7",
    "https://[2001:db8::1]:443/",
  };
  const char *refused[] = {
    "http://example.org", "http://10.0.0.1", "http://127.0.0.1.example.org",
    "http://localhost.example.org", "http://[::2]", "http://[::ffff:10.0.0.1]",
    "http://0.0.0.0", "ftp://127.0.0.1", "file:///etc/passwd", "gopher://localhost",
    "https://user:secret@example.org", "https://example.org/path",
    "https://example.org/?q=1", "https://example.org/#frag", "example.org", "",
    "http://", "https://", "http://127.0.0.1:99999",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (accepted); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(RelaisClient) client = relais_client_new (accepted[i], NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (client);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(RelaisClient) client = relais_client_new (refused[i], NULL, &error);

      g_test_message ("refused: %s", refused[i]);
      g_assert_null (client);
      g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID);
      g_assert_false (relais_client_error_is_transient (error));
    }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(RelaisClient) client = relais_client_new ("https://example.org",
                                                        "/nonexistent/ca.pem", &error);

    g_assert_null (client);
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID);
  }
}

static guint16
closed_port (void)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  g_assert_true (g_socket_bind (socket, any, FALSE, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  /* Bound, never listening: connecting is refused at once. */
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
test_connection_refused (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u", closed_port ());
  g_autoptr(RelaisClient) client = relais_client_new (url, NULL, &error);
  gint64 t0 = g_get_monotonic_time ();

  g_assert_no_error (error);
  g_assert_false (relais_client_health (client, NULL, &error));
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK);
  g_assert_true (relais_client_error_is_transient (error));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 5 * G_USEC_PER_SEC);
}

/* A TCP peer that answers one request with canned bytes ------------------------- */

typedef struct {
  GSocket *socket;
  guint16  port;
  GThread *thread;
  GBytes  *reply;
  guint    linger_ms;   /* wait this long after the reply before closing */
  guint    repeat;      /* connections to answer, one request each */
  GString *request;     /* the last one */
} Canned;

static gsize
content_length (const char *headers)
{
  g_auto(GStrv) lines = g_strsplit (headers, "\r\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_ascii_strncasecmp (lines[i], "content-length:", 15) == 0)
      return g_ascii_strtoull (lines[i] + 15, NULL, 10);
  return 0;
}

static void canned_answer (Canned *c, GSocket *conn);

static gpointer
canned_run (gpointer data)
{
  Canned *c = data;

  for (guint i = 0; i < MAX (c->repeat, 1u); i++)
    {
      g_autoptr(GSocket) conn = g_socket_accept (c->socket, NULL, NULL);

      if (conn == NULL)
        break;
      g_string_truncate (c->request, 0);
      canned_answer (c, conn);
    }
  return NULL;
}

static void
canned_answer (Canned  *c,
               GSocket *conn)
{
  gsize sent = 0, len;
  const char *reply;

  g_socket_set_timeout (conn, 20);
  for (;;)
    {
      char buf[65536];
      gssize n = g_socket_receive (conn, buf, sizeof buf, NULL, NULL);
      const char *end;

      if (n <= 0)
        break;
      g_string_append_len (c->request, buf, n);
      end = strstr (c->request->str, "\r\n\r\n");
      if (end != NULL)
        {
          g_autofree char *headers = g_strndup (c->request->str, end - c->request->str);
          gsize header_len = end - c->request->str + 4;

          if (c->request->len >= header_len + content_length (headers))
            break;
        }
    }
  reply = g_bytes_get_data (c->reply, &len);
  while (sent < len)
    {
      gssize n = g_socket_send (conn, reply + sent, len - sent, NULL, NULL);

      if (n <= 0)
        break;     /* the client gave up: expected for hostile answers */
      sent += n;
    }
  if (c->linger_ms > 0)
    g_usleep (c->linger_ms * 1000);
  g_socket_close (conn, NULL);
}

static Canned *
canned_new_bytes (GBytes *reply,
                  guint   linger_ms)
{
  Canned *c = g_new0 (Canned, 1);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  c->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_assert_true (g_socket_bind (c->socket, any, TRUE, NULL));
  g_assert_true (g_socket_listen (c->socket, NULL));
  bound = g_socket_get_local_address (c->socket, NULL);
  c->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  c->reply = g_bytes_ref (reply);
  c->linger_ms = linger_ms;
  c->request = g_string_new (NULL);
  c->thread = g_thread_new ("canned", canned_run, c);
  return c;
}

static Canned *
canned_new (const char *status_line,
            const char *extra_headers,
            const char *body)
{
  g_autofree char *text = g_strdup_printf ("HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                                           "Content-Length: %zu\r\n%s\r\n%s",
                                           status_line, strlen (body),
                                           extra_headers != NULL ? extra_headers : "", body);
  g_autoptr(GBytes) bytes = g_bytes_new (text, strlen (text));

  return canned_new_bytes (bytes, 0);
}

static RelaisClient *
canned_client (Canned *c)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u", c->port);
  RelaisClient *client = relais_client_new (url, NULL, &error);

  g_assert_no_error (error);
  return client;
}

/* Waits until the peer has answered: its request is then complete. */
static void
canned_wait (Canned *c)
{
  g_clear_pointer (&c->thread, g_thread_join);
}

static void
canned_free (Canned *c)
{
  canned_wait (c);
  g_socket_close (c->socket, NULL);
  g_object_unref (c->socket);
  g_bytes_unref (c->reply);
  g_string_free (c->request, TRUE);
  g_free (c);
}

/* Checks the request @c received is signed by @pk as PROTOCOL.md §5.1
 * says; returns its nonce. */
static char *
check_signed (Canned       *c,
              const char   *method,
              const char   *path,
              const char   *device_id,
              const guint8 *pk)
{
  const char *end = strstr (c->request->str, "\r\n\r\n");
  g_autofree char *head = NULL;
  g_auto(GStrv) lines = NULL;
  g_autofree char *request_line = NULL;
  const char *device = NULL, *time = NULL, *nonce = NULL, *signature = NULL;
  guint8 hash[crypto_hash_sha256_BYTES];
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  g_autofree char *message = NULL;
  g_autofree guint8 *sig = NULL;
  gsize sig_len = 0;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_nonnull (end);
  head = g_strndup (c->request->str, end - c->request->str);
  lines = g_strsplit (head, "\r\n", -1);
  request_line = g_strdup_printf ("%s %s HTTP/1.1", method, path);
  g_assert_cmpstr (lines[0], ==, request_line);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      if (g_str_has_prefix (lines[i], "Relais-Device: "))
        device = lines[i] + 15;
      else if (g_str_has_prefix (lines[i], "Relais-Time: "))
        time = lines[i] + 13;
      else if (g_str_has_prefix (lines[i], "Relais-Nonce: "))
        nonce = lines[i] + 14;
      else if (g_str_has_prefix (lines[i], "Relais-Signature: "))
        signature = lines[i] + 18;
    }
  g_assert_cmpstr (device, ==, device_id);
  g_assert_nonnull (time);
  g_assert_cmpint (ABS (g_ascii_strtoll (time, NULL, 10) - now), <=, 5);
  g_assert_nonnull (nonce);
  {
    g_autofree guint8 *raw = relais_sync_base64_decode (nonce, 64, &sig_len, NULL);

    g_assert_nonnull (raw);
    g_assert_cmpuint (sig_len, ==, 16);
  }
  crypto_hash_sha256 (hash, (const guint8 *) end + 4, c->request->len - (end + 4 - c->request->str));
  sodium_bin2hex (hex, sizeof hex, hash, sizeof hash);
  message = g_strdup_printf ("relais-request-v1\n%s\n%s\n%s\n%s\n%s", method, path, time, nonce, hex);
  g_assert_nonnull (signature);
  sig = relais_sync_base64_decode (signature, 64, &sig_len, NULL);
  g_assert_nonnull (sig);
  g_assert_cmpuint (sig_len, ==, crypto_sign_BYTES);
  g_assert_cmpint (crypto_sign_verify_detached (sig, (const guint8 *) message,
                                                strlen (message), pk), ==, 0);
  return g_strdup (nonce);
}

static void
test_signing (void)
{
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  g_autoptr(GError) error = NULL;
  g_autofree char *nonce1 = NULL;
  g_autofree char *nonce2 = NULL;

  /* A GET with a query that needs escaping. */
  {
    Canned *c = canned_new ("200 OK", NULL, "{\"users\":[]}");
    g_autoptr(RelaisClient) client = canned_client (c);
    g_autoptr(GPtrArray) users = NULL;

    relais_client_set_device (client, "device-1", dk->sk);
    users = relais_client_users (client, "CCAS de Sète", NULL, &error);
    g_assert_no_error (error);
    canned_wait (c);
    nonce1 = check_signed (c, "GET", "/v1/users?org=CCAS%20de%20S%C3%A8te", "device-1", dk->pk);
    canned_free (c);
  }
  /* A POST with a body: the signature covers the body's hash. */
  {
    Canned *c = canned_new ("201 Created", NULL, "");
    g_autoptr(RelaisClient) client = canned_client (c);
    g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
    g_autoptr(GBytes) wrapped = g_bytes_new_take (g_malloc0 (RELAIS_WRAPPED_DOSSIER_KEY_SIZE),
                                                  RELAIS_WRAPPED_DOSSIER_KEY_SIZE);

    g_ptr_array_add (members, relais_wrapped_key_new ("user-1", 1, wrapped));
    relais_client_set_device (client, "device-1", dk->sk);
    g_assert_true (relais_client_dossier_create (client, DOSSIER, members, NULL, NULL, &error));
    g_assert_no_error (error);
    canned_wait (c);
    nonce2 = check_signed (c, "POST", "/v1/dossiers", "device-1", dk->pk);
    g_assert_nonnull (strstr (c->request->str, "\"dossier_id\":\"" DOSSIER "\""));
    canned_free (c);
  }
  g_assert_cmpstr (nonce1, !=, nonce2);

  /* Health and enrol are not signed. */
  {
    Canned *c = canned_new ("200 OK", NULL, "{\"status\":\"ok\",\"version\":1}");
    g_autoptr(RelaisClient) client = canned_client (c);

    relais_client_set_device (client, "device-1", dk->sk);
    g_assert_true (relais_client_health (client, NULL, &error));
    g_assert_no_error (error);
    canned_free (c);
  }
}

/* Statuses and broken transfers map to the right codes. */
static void
expect_error_full (Canned             *c,
                   RelaisClientError   code,
                   gboolean            transient,
                   const char         *message)
{
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  g_autoptr(RelaisClient) client = canned_client (c);
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPullPage) page = NULL;

  relais_client_set_device (client, "device-1", dk->sk);
  relais_client_set_timeout (client, 2);
  page = relais_client_pull (client, NULL, 100, NULL, &error);
  g_assert_null (page);
  g_assert_error (error, RELAIS_CLIENT_ERROR, (gint) code);
  g_assert_cmpint (relais_client_error_is_transient (error), ==, transient);
  if (message != NULL)
    g_assert_cmpstr (error->message, ==, message);
  canned_free (c);
}

#define expect_error(c, code, transient) expect_error_full (c, code, transient, NULL)

static void
test_statuses (void)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autofree char *ok = g_strdup ("{\"changesets\":[],\"cursor\":\"abc\",\"more\":false}");

  expect_error (canned_new ("503 Service Unavailable", NULL,
                            "{\"error\":\"unavailable\",\"message\":\"The store is down.\"}"),
                RELAIS_CLIENT_ERROR_UNAVAILABLE, TRUE);
  expect_error (canned_new ("500 Internal Server Error", NULL, "not json"),
                RELAIS_CLIENT_ERROR_UNAVAILABLE, TRUE);
  expect_error (canned_new ("429 Too Many Requests", "Retry-After: 3\r\n",
                            "{\"error\":\"slow_down\",\"message\":\"Slow down.\"}"),
                RELAIS_CLIENT_ERROR_UNAVAILABLE, TRUE);
  expect_error (canned_new ("403 Forbidden", NULL,
                            "{\"error\":\"device_revoked\",\"message\":\"This device was revoked.\"}"),
                RELAIS_CLIENT_ERROR_REVOKED, FALSE);
  /* A revocation code under another status must not wipe anything. */
  expect_error (canned_new ("409 Conflict", NULL,
                            "{\"error\":\"device_revoked\",\"message\":\"x\"}"),
                RELAIS_CLIENT_ERROR_CONFLICT, FALSE);
  /* The person reads a sentence in their language, not the server's
   * English for its operator; a code the client does not know keeps the
   * server's words. */
  expect_error_full (canned_new ("403 Forbidden", NULL, "{\"error\":\"not_member\",\"message\":\"No.\"}"),
                     RELAIS_CLIENT_ERROR_FORBIDDEN, FALSE,
                     "You are not, or no longer, in this dossier's team.");
  expect_error_full (canned_new ("403 Forbidden", NULL, "{\"error\":\"future_code\",\"message\":\"No.\"}"),
                     RELAIS_CLIENT_ERROR_FORBIDDEN, FALSE, "The server refused the request: No.");
  expect_error (canned_new ("401 Unauthorized", NULL,
                            "{\"error\":\"stale_request\",\"message\":\"Clock.\",\"server_time\":1}"),
                RELAIS_CLIENT_ERROR_CLOCK, FALSE);
  /* The message says by how much the clock is off. */
  {
    g_autofree char *body = g_strdup_printf ("{\"error\":\"stale_request\",\"message\":\"Stale.\","
                                             "\"server_time\":%" G_GINT64_FORMAT "}",
                                             g_get_real_time () / G_USEC_PER_SEC + 3600);
    Canned *c = canned_new ("401 Unauthorized", NULL, body);
    g_autoptr(RelaisClient) client = canned_client (c);
    g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
    g_autoptr(GError) error = NULL;

    relais_client_set_device (client, "device-1", dk->sk);
    g_assert_false (relais_client_dossier_share (client, DOSSIER, "user-2", NULL, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_CLOCK);
    g_assert_nonnull (strstr (error->message, "60 minutes behind"));
    canned_free (c);
  }
  expect_error (canned_new ("401 Unauthorized", NULL,
                            "{\"error\":\"bad_signature\",\"message\":\"Bad.\"}"),
                RELAIS_CLIENT_ERROR_BAD_SIGNATURE, FALSE);
  expect_error (canned_new ("409 Conflict", NULL, "{\"error\":\"replayed\",\"message\":\"Again.\"}"),
                RELAIS_CLIENT_ERROR_REPLAYED, TRUE);
  expect_error (canned_new ("404 Not Found", NULL, ""), RELAIS_CLIENT_ERROR_NOT_FOUND, FALSE);
  expect_error (canned_new ("413 Payload Too Large", NULL, "{}"), RELAIS_CLIENT_ERROR_TOO_LARGE, FALSE);
  /* Redirections are not followed, not even to loopback. */
  expect_error (canned_new ("302 Found", "Location: http://127.0.0.1:1/v1/changesets\r\n", ok),
                RELAIS_CLIENT_ERROR_PROTOCOL, FALSE);
  /* A success that is not the answer. */
  expect_error (canned_new ("200 OK", NULL, "{\"changesets\":[],\"cursor\":\"abc\"}"),
                RELAIS_CLIENT_ERROR_PROTOCOL, FALSE);
  expect_error (canned_new ("200 OK", NULL, "<html>captive portal</html>"),
                RELAIS_CLIENT_ERROR_PROTOCOL, FALSE);

  /* Cut mid-body: never a success, even when what came parses. */
  {
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n"
                      "{\"changesets\":[],\"cursor\":\"abc\",\"more\":false}";

    bytes = g_bytes_new_static (cut, strlen (cut));
    expect_error (canned_new_bytes (bytes, 0), RELAIS_CLIENT_ERROR_NETWORK, TRUE);
    g_clear_pointer (&bytes, g_bytes_unref);
  }
  /* Stalled mid-body: the timeout fails it. */
  {
    const char *stall = "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n{\"changesets\":";
    gint64 t0 = g_get_monotonic_time ();

    bytes = g_bytes_new_static (stall, strlen (stall));
    expect_error (canned_new_bytes (bytes, 4000), RELAIS_CLIENT_ERROR_NETWORK, TRUE);
    g_clear_pointer (&bytes, g_bytes_unref);
    g_assert_cmpint (g_get_monotonic_time () - t0, <, 10 * G_USEC_PER_SEC);
  }
  /* Answers beyond the cap, announced or not. */
  {
    gsize n = 17 * 1024 * 1024;
    g_autofree char *head = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    GString *s = g_string_new (head);

    g_string_append_c (s, '"');
    for (gsize i = 0; i < n - 2; i++)
      g_string_append_c (s, 'a');
    g_string_append_c (s, '"');
    bytes = g_bytes_new_take (s->str, s->len);
    g_string_free (s, FALSE);
    expect_error (canned_new_bytes (bytes, 0), RELAIS_CLIENT_ERROR_PROTOCOL, FALSE);
    g_clear_pointer (&bytes, g_bytes_unref);
  }
  {
    gsize n = 17 * 1024 * 1024;
    GString *s = g_string_new ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n\"");

    for (gsize i = 0; i < n; i++)
      g_string_append_c (s, 'a');
    bytes = g_bytes_new_take (s->str, s->len);
    g_string_free (s, FALSE);
    expect_error (canned_new_bytes (bytes, 0), RELAIS_CLIENT_ERROR_PROTOCOL, FALSE);
    g_clear_pointer (&bytes, g_bytes_unref);
  }
}

/* A push answer about other change sets than those sent deletes nothing. */
static void
test_push_answer_mismatch (void)
{
  g_autoptr(RelaisUserKeys) user = relais_user_keys_generate ();
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  guint8 *key = relais_dossier_key_new ();
  g_autoptr(GBytes) envelope = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 2);
  g_autofree char *other = b64_random (16);
  g_autofree char *body = g_strdup_printf ("{\"results\":[{\"id\":\"%s\",\"status\":\"stored\",\"seq\":1}]}",
                                           other);
  Canned *c = canned_new ("200 OK", NULL, body);
  g_autoptr(RelaisClient) client = canned_client (c);
  g_autoptr(GPtrArray) envelopes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) results = NULL;
  g_autoptr(GError) error = NULL;

  relais_client_set_device (client, "device-1", dk->sk);
  g_ptr_array_add (envelopes, g_bytes_ref (envelope));
  results = relais_client_push (client, envelopes, NULL, &error);
  g_assert_null (results);
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL);
  canned_free (c);
  relais_dossier_key_free (key);
}

/* A stalled request ends soon after it is cancelled, as cancelled. */
static gpointer
cancel_later (gpointer data)
{
  g_usleep (300 * 1000);
  g_cancellable_cancel (data);
  return NULL;
}

static void
test_cancel (void)
{
  const char *stall = "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n{";
  g_autoptr(GBytes) bytes = g_bytes_new_static (stall, strlen (stall));
  Canned *c = canned_new_bytes (bytes, 4000);
  g_autoptr(RelaisClient) client = canned_client (c);
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPullPage) page = NULL;
  GThread *thread = g_thread_new ("cancel", cancel_later, cancellable);
  gint64 t0 = g_get_monotonic_time ();

  relais_client_set_device (client, "device-1", dk->sk);
  page = relais_client_pull (client, NULL, 10, cancellable, &error);
  g_assert_null (page);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (relais_client_error_is_transient (error));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 3 * G_USEC_PER_SEC);
  g_thread_join (thread);
  canned_free (c);
}

/* A server whose pages say "more" without moving the cursor would keep an
 * exchange pulling for ever: it is refused after the first such page. */
static void
test_spool_cursor_stuck (void)
{
  const char *body = "{\"changesets\":[],\"cursor\":\"abc\",\"more\":true}";
  g_autofree char *text = g_strdup_printf ("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                           "Content-Length: %zu\r\n\r\n%s", strlen (body), body);
  g_autoptr(GBytes) bytes = g_bytes_new (text, strlen (text));
  Canned *c = canned_new_bytes (bytes, 0);
  g_autofree char *vault = relais_test_make_tmpdir ("relais-spool-stuck");
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u", c->port);
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = relais_spool_open (vault, &error);
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  RelaisSpoolIdentity identity = { url, NULL, "user-1", "org", "device-1" };
  RelaisExchangeReport report;
  g_autofree char *last = NULL;

  c->repeat = 2;
  g_assert_true (relais_spool_set_identity (spool, &identity, dk->sk, &error));
  g_assert_false (relais_spool_exchange (spool, &report, NULL, &error));
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL);
  g_assert_false (relais_client_error_is_transient (error));
  last = relais_spool_get_last_error (spool);
  g_assert_cmpstr (last, ==, error->message);
  g_assert_cmpint (relais_spool_get_last_success (spool), ==, 0);
  canned_free (c);
  relais_test_rm_rf (vault);
}

/* The direct pull of `relaisctl sync` ------------------------------------------ */

/* A peer answering each request by its path: pulls from a queue of pages
 * (an empty queue: the connection is cut without an answer, a dropped
 * network), the keys of one dossier, 404 for anything else.  Records each
 * request line. */
typedef struct {
  GSocket   *socket;
  guint16    port;
  GThread   *thread;
  GMutex     mutex;
  GQueue     pages;        /* char * bodies of GET /v1/changesets */
  char      *keys_path;    /* "GET /v1/dossiers/ID/keys" */
  char      *keys_body;
  GPtrArray *requests;     /* char * request lines */
  gint       stop;
} Scripted;

static gpointer
scripted_run (gpointer data)
{
  Scripted *sc = data;

  while (!g_atomic_int_get (&sc->stop))
    {
      g_autoptr(GSocket) conn = g_socket_accept (sc->socket, NULL, NULL);
      g_autoptr(GString) request = g_string_new (NULL);
      g_autofree char *line = NULL;
      g_autofree char *body = NULL;
      g_autofree char *reply = NULL;
      const char *status = "200 OK";
      const char *eol;
      gsize sent = 0;

      if (conn == NULL || g_atomic_int_get (&sc->stop))
        break;
      g_socket_set_timeout (conn, 20);
      for (;;)
        {
          char buf[8192];
          gssize n = g_socket_receive (conn, buf, sizeof buf, NULL, NULL);

          if (n <= 0)
            break;
          g_string_append_len (request, buf, n);
          if (strstr (request->str, "\r\n\r\n") != NULL)
            break;     /* GETs only: no body */
        }
      eol = strstr (request->str, " HTTP/");
      if (eol == NULL)
        continue;
      line = g_strndup (request->str, eol - request->str);
      g_mutex_lock (&sc->mutex);
      g_ptr_array_add (sc->requests, g_strdup (line));
      if (g_str_has_prefix (line, "GET /v1/changesets"))
        body = g_queue_pop_head (&sc->pages);
      else if (sc->keys_path != NULL && g_str_equal (line, sc->keys_path))
        body = g_strdup (sc->keys_body);
      else
        {
          status = "404 Not Found";
          body = g_strdup ("{\"error\":\"not_found\",\"message\":\"No such thing.\"}");
        }
      g_mutex_unlock (&sc->mutex);
      if (body == NULL)
        {
          g_socket_close (conn, NULL);
          continue;
        }
      reply = g_strdup_printf ("HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                               "Content-Length: %zu\r\n\r\n%s", status, strlen (body), body);
      while (sent < strlen (reply))
        {
          gssize n = g_socket_send (conn, reply + sent, strlen (reply) - sent, NULL, NULL);

          if (n <= 0)
            break;
          sent += n;
        }
      g_socket_close (conn, NULL);
    }
  return NULL;
}

static Scripted *
scripted_new (void)
{
  Scripted *sc = g_new0 (Scripted, 1);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  sc->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_assert_true (g_socket_bind (sc->socket, any, TRUE, NULL));
  g_assert_true (g_socket_listen (sc->socket, NULL));
  bound = g_socket_get_local_address (sc->socket, NULL);
  sc->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_mutex_init (&sc->mutex);
  g_queue_init (&sc->pages);
  sc->requests = g_ptr_array_new_with_free_func (g_free);
  sc->thread = g_thread_new ("scripted", scripted_run, sc);
  return sc;
}

static void
scripted_free (Scripted *sc)
{
  g_autoptr(GSocket) poke = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                          G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) addr = g_inet_socket_address_new (lo, sc->port);

  g_atomic_int_set (&sc->stop, 1);
  g_socket_connect (poke, addr, NULL, NULL);    /* wakes the accept */
  g_thread_join (sc->thread);
  g_socket_close (sc->socket, NULL);
  g_object_unref (sc->socket);
  g_queue_clear_full (&sc->pages, g_free);
  g_ptr_array_unref (sc->requests);
  g_free (sc->keys_path);
  g_free (sc->keys_body);
  g_mutex_clear (&sc->mutex);
  g_free (sc);
}

/* @n ops of dossier (person) @dossier, each on its own field. */
static GBytes *
seal_person_ops (const char   *dossier,
                 guint32       epoch,
                 const guint8 *key,
                 const guint8 *sign_sk,
                 guint         n,
                 GPtrArray    *ids)
{
  static const char *fields[] = { "last_name", "first_name", "city", "phone", "email", "postal_code" };
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  g_autoptr(GError) error = NULL;
  GBytes *envelope;

  g_assert_cmpuint (n, <=, G_N_ELEMENTS (fields));
  for (guint i = 0; i < n; i++)
    {
      RelaisOp *op = g_new0 (RelaisOp, 1);

      op->id = relais_oplog_new_id ();
      op->dossier = g_strdup (dossier);
      op->entity = g_strdup ("person");
      op->entity_id = g_strdup (dossier);
      op->field = g_strdup (fields[i]);
      op->value = g_strdup_printf ("value %u", ++op_counter);
      op->hlc = G_GUINT64_CONSTANT (0x0001900000000000) + op_counter;
      op->author = g_strdup ("ua");
      op->device = g_strdup ("dev-a");
      g_ptr_array_add (ops, op);
      if (ids != NULL)
        g_ptr_array_add (ids, g_strdup (op->id));
    }
  envelope = relais_changeset_seal (dossier, epoch, key, "ua", "dev-a", sign_sk, ops, &error);
  g_assert_no_error (error);
  return envelope;
}

/* The keys of @dossier as a pull (or GET …/keys) gives them to "ub":
 * @keys[e - 1] wrapped at epoch e, for e ≤ @epochs; "ua" and "ub" members. */
static char *
person_keys_json (const char           *dossier,
                  guint8              **keys,
                  guint                 epochs,
                  const RelaisUserKeys *a,
                  const RelaisUserKeys *b)
{
  g_autoptr(GString) s = g_string_new (NULL);
  g_autofree char *pka = b64 (a->sign_pk, crypto_sign_PUBLICKEYBYTES);
  g_autofree char *pkb = b64 (b->sign_pk, crypto_sign_PUBLICKEYBYTES);

  g_string_append_printf (s, "{\"dossier_id\":\"%s\",\"epoch\":%u,\"epochs\":[", dossier, epochs);
  for (guint e = 1; e <= epochs; e++)
    {
      g_autoptr(GBytes) w = relais_dossier_key_wrap (keys[e - 1], dossier, e, b->box_pk);
      g_autofree char *wt = b64 (g_bytes_get_data (w, NULL), g_bytes_get_size (w));

      g_string_append_printf (s, "%s{\"epoch\":%u,\"wrapped_key\":\"%s\"}", e > 1 ? "," : "", e, wt);
    }
  g_string_append_printf (s, "],\"members\":[{\"user_id\":\"ua\",\"sign_pk\":\"%s\",\"since_epoch\":1,\"until_epoch\":0},"
                          "{\"user_id\":\"ub\",\"sign_pk\":\"%s\",\"since_epoch\":1,\"until_epoch\":0}]}", pka, pkb);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static char *
page_json (GBytes     **envelopes,
           guint        n,
           const char  *cursor,
           gboolean     more,
           const char  *keys)
{
  g_autoptr(GString) s = g_string_new ("{\"changesets\":[");

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *t = b64 (g_bytes_get_data (envelopes[i], NULL), g_bytes_get_size (envelopes[i]));

      g_string_append_printf (s, "%s\"%s\"", i > 0 ? "," : "", t);
    }
  g_string_append_printf (s, "],\"cursor\":\"%s\",\"more\":%s,\"keys\":[%s]}", cursor,
                          more ? "true" : "false", keys);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static guint
count_op_ids (RelaisVault *vault,
              GPtrArray   *ids)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = relais_oplog_list (vault, 0, 0, NULL, &error);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  g_assert_no_error (error);
  for (guint i = 0; i < ops->len; i++)
    {
      RelaisOp *op = g_ptr_array_index (ops, i);

      /* Each exactly once. */
      g_assert_false (g_hash_table_contains (seen, op->id));
      g_hash_table_add (seen, op->id);
    }
  for (guint i = 0; i < ids->len; i++)
    g_assert_true (g_hash_table_contains (seen, g_ptr_array_index (ids, i)));
  return ops->len;
}

static guint
count_in (const char *vault_dir)
{
  g_autofree char *in = g_build_filename (vault_dir, "spool", "in", NULL);
  g_autoptr(GDir) d = g_dir_open (in, 0, NULL);
  guint n = 0;

  while (d != NULL && g_dir_read_name (d) != NULL)
    n++;
  return n;
}

/* `relaisctl sync` applies pulled pages as they arrive: a cut after two
 * pages leaves them applied with the cursor past them, the next sync
 * resumes there and ends with every operation once; an envelope whose key
 * has not come waits in spool/in and is applied when it comes; a page
 * pulled again applies as nothing. */
static void
test_direct_pull (void)
{
  Scripted *sc = scripted_new ();
  g_autofree char *parent = relais_test_make_tmpdir ("relais-direct-pull-XXXXXX");
  g_autofree char *dir = g_build_filename (parent, "vault", NULL);
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u", sc->port);
  g_autofree char *d1 = relais_oplog_new_id ();
  g_autofree char *d2 = relais_oplog_new_id ();
  g_autofree char *d3 = relais_oplog_new_id ();
  g_autoptr(RelaisUserKeys) a = relais_user_keys_generate ();
  g_autoptr(RelaisUserKeys) b = relais_user_keys_generate ();
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) late_ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  guint8 *k1[2] = { relais_dossier_key_new (), relais_dossier_key_new () };
  guint8 *k2[1] = { relais_dossier_key_new () };
  guint8 *k3[1] = { relais_dossier_key_new () };
  RelaisSyncIdentity identity = { .server = url, .user_id = "ub", .org = "org-b", .device_id = "dev-b" };
  RelaisSyncReport report = { 0 };
  RelaisKdfParams params;
  RelaisVault *vault;
  GBytes *e[6];
  /* Enough more in page 1 for the applier's second thread to check
   * signatures and unwrap keys ahead. */
  GBytes *more[10];
  g_autoptr(GString) more_keys = g_string_new (NULL);

  /* Page 1: D1 and D2.  Page 2: D3, and D1 at epoch 2, whose key the
   * pull does not bring (it waits).  Then the network drops. */
  e[0] = seal_person_ops (d1, 1, k1[0], a->sign_sk, 3, ids);
  e[1] = seal_person_ops (d2, 1, k2[0], a->sign_sk, 2, ids);
  e[2] = seal_person_ops (d3, 1, k3[0], a->sign_sk, 4, ids);
  e[3] = seal_person_ops (d1, 2, k1[1], a->sign_sk, 1, late_ids);
  /* Page 3, after the cut: D2 again, and page 1's first envelope again. */
  e[4] = seal_person_ops (d2, 1, k2[0], a->sign_sk, 5, late_ids);
  e[5] = g_bytes_ref (e[0]);
  {
    g_autofree char *kj1 = person_keys_json (d1, k1, 1, a, b);
    g_autofree char *kj2 = person_keys_json (d2, k2, 1, a, b);
    g_autofree char *kj3 = person_keys_json (d3, k3, 1, a, b);
    g_autofree char *keys12 = g_strdup_printf ("%s,%s", kj1, kj2);
    g_autofree char *keys31 = g_strdup_printf ("%s,%s", kj3, kj1);

    GBytes *page1[2 + G_N_ELEMENTS (more)] = { e[0], e[1] };

    for (guint i = 0; i < G_N_ELEMENTS (more); i++)
      {
        g_autofree char *d = relais_oplog_new_id ();
        guint8 *k[1] = { relais_dossier_key_new () };
        g_autofree char *kj = person_keys_json (d, k, 1, a, b);

        more[i] = seal_person_ops (d, 1, k[0], a->sign_sk, 2, ids);
        page1[2 + i] = more[i];
        g_string_append_printf (more_keys, ",%s", kj);
        relais_dossier_key_free (k[0]);
      }
    g_string_prepend (more_keys, keys12);
    g_queue_push_tail (&sc->pages, page_json (page1, G_N_ELEMENTS (page1), "Y3Vyc29yMQ", TRUE,
                                              more_keys->str));
    g_queue_push_tail (&sc->pages, page_json (e + 2, 2, "Y3Vyc29yMg", TRUE, keys31));
  }

  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_create (dir, "pass", &(RelaisVaultOptions) { .kdf = &params }, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (relais_sync_set_identity (vault, NULL, &identity, b, dk->sk, &error));
  g_assert_no_error (error);

  g_assert_false (relais_sync_run (vault, &report, NULL, &error));
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK);
  g_clear_error (&error);
  g_assert_cmpuint (report.pulled, ==, 4 + G_N_ELEMENTS (more));
  g_assert_cmpuint (report.applied, ==, 3 + 2 + 4 + 2 * G_N_ELEMENTS (more));
  g_assert_cmpuint (report.waiting, ==, 1);
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpuint (count_op_ids (vault, ids), ==, 3 + 2 + 4 + 2 * G_N_ELEMENTS (more));
  g_assert_cmpuint (count_in (dir), ==, 1);

  /* The next sync resumes after page 2; the missing key comes with
   * GET …/keys for the envelope waiting in spool/in. */
  g_ptr_array_set_size (sc->requests, 0);
  {
    g_autofree char *kj1 = person_keys_json (d1, k1, 2, a, b);
    g_autofree char *kj2 = person_keys_json (d2, k2, 1, a, b);
    g_autofree char *keys21 = g_strdup_printf ("%s,%s", kj2, kj1);

    g_queue_push_tail (&sc->pages, page_json (e + 4, 2, "Y3Vyc29yMw", FALSE, keys21));
    sc->keys_path = g_strdup_printf ("GET /v1/dossiers/%s/keys", d1);
    sc->keys_body = person_keys_json (d1, k1, 2, a, b);
  }
  memset (&report, 0, sizeof report);
  g_assert_true (relais_sync_run (vault, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (sc->requests->len, >=, 1);
  g_assert_cmpstr (g_ptr_array_index (sc->requests, 0), ==,
                   "GET /v1/changesets?cursor=Y3Vyc29yMg&limit=500");
  g_assert_cmpuint (report.pulled, ==, 2);
  g_assert_cmpuint (report.applied, ==, 5 + 1);
  g_assert_cmpuint (report.waiting, ==, 0);
  g_assert_cmpuint (report.rejected, ==, 0);
  for (guint i = 0; i < late_ids->len; i++)
    g_ptr_array_add (ids, g_strdup (g_ptr_array_index (late_ids, i)));
  g_assert_cmpuint (count_op_ids (vault, ids), ==, 3 + 2 + 4 + 2 * G_N_ELEMENTS (more) + 1 + 5);
  g_assert_cmpuint (count_in (dir), ==, 0);

  relais_vault_close (vault);
  for (guint i = 0; i < G_N_ELEMENTS (e); i++)
    g_bytes_unref (e[i]);
  for (guint i = 0; i < G_N_ELEMENTS (more); i++)
    g_bytes_unref (more[i]);
  relais_dossier_key_free (k1[0]);
  relais_dossier_key_free (k1[1]);
  relais_dossier_key_free (k2[0]);
  relais_dossier_key_free (k3[0]);
  scripted_free (sc);
  relais_test_rm_rf (parent);
}

/* The parsers ------------------------------------------------------------------ */

typedef struct {
  const char *what;
  char       *body;
} Answer;

static char *
keys_entry (const char *dossier,
            guint32     epoch)
{
  g_autofree char *w1 = b64_random (RELAIS_WRAPPED_DOSSIER_KEY_SIZE);
  g_autofree char *w2 = b64_random (RELAIS_WRAPPED_DOSSIER_KEY_SIZE);
  g_autofree char *pk1 = b64_random (32);
  g_autofree char *pk2 = b64_random (32);

  return g_strdup_printf ("{\"dossier_id\":\"%s\",\"epoch\":%u,\"epochs\":["
                          "{\"epoch\":1,\"wrapped_key\":\"%s\"},{\"epoch\":%u,\"wrapped_key\":\"%s\"}],"
                          "\"members\":[{\"user_id\":\"user-1\",\"sign_pk\":\"%s\",\"since_epoch\":1,\"until_epoch\":0},"
                          "{\"user_id\":\"user-2\",\"sign_pk\":\"%s\",\"since_epoch\":1,\"until_epoch\":%u}]}",
                          dossier, epoch, w1, epoch, w2, pk1, pk2, epoch);
}

static void
answer_free (Answer *a)
{
  g_free (a->body);
  g_free (a);
}

static GPtrArray *
valid_answers (void)
{
  GPtrArray *answers = g_ptr_array_new_with_free_func ((GDestroyNotify) answer_free);
  g_autoptr(RelaisUserKeys) user = relais_user_keys_generate ();
  guint8 *key = relais_dossier_key_new ();
  g_autoptr(GBytes) e1 = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 3);
  g_autoptr(GBytes) e2 = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 1);
  g_autofree char *e1t = b64 (g_bytes_get_data (e1, NULL), g_bytes_get_size (e1));
  g_autofree char *e2t = b64 (g_bytes_get_data (e2, NULL), g_bytes_get_size (e2));
  g_autofree char *k1 = keys_entry (DOSSIER, 2);
  g_autofree char *k2 = keys_entry ("dossier-2", 3);
  g_autofree char *uk = b64_random (208);
  g_autofree char *rk = b64_random (32);
  g_autofree char *pk1 = b64_random (32);
  g_autofree char *pk2 = b64_random (32);
  g_autofree char *id1 = b64_random (16);
  g_autofree char *id2 = b64_random (16);
  g_autofree char *id3 = b64_random (16);
  Answer *a;

#define ADD_ANSWER(w, ...) \
  a = g_new0 (Answer, 1); a->what = w; a->body = g_strdup_printf (__VA_ARGS__); g_ptr_array_add (answers, a)

  ADD_ANSWER ("enrol", "{\"user_id\":\"018f2b6c-user\",\"device_id\":\"dev_1\",\"name\":\"Aïcha B.\","
              "\"org\":\"CCAS\",\"admin\":false,\"wrapped_user_keys\":\"%s\",\"recovery_key\":\"%s\"}", uk, rk);
  ADD_ANSWER ("enrol", "{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true}");
  ADD_ANSWER ("users", "{\"users\":[{\"user_id\":\"u1\",\"name\":\"A\",\"org\":\"O\",\"has_keys\":true,"
              "\"box_pk\":\"%s\",\"sign_pk\":\"%s\"},{\"user_id\":\"u2\",\"name\":\"B\",\"org\":\"O\","
              "\"has_keys\":false}]}", pk1, pk2);
  ADD_ANSWER ("keys", "%s", k1);
  ADD_ANSWER ("push", "{\"results\":[{\"id\":\"%s\",\"status\":\"stored\",\"seq\":5},"
              "{\"id\":\"%s\",\"status\":\"duplicate\",\"seq\":3},"
              "{\"id\":\"%s\",\"status\":\"refused\",\"error\":\"epoch_retired\"}]}", id1, id2, id3);
  ADD_ANSWER ("pull", "{\"changesets\":[\"%s\",\"%s\"],\"cursor\":\"AAAAAAAAAAEAAAAAAAAAAQ\","
              "\"more\":true,\"keys\":[%s,%s]}", e1t, e2t, k1, k2);
  ADD_ANSWER ("pull", "{\"changesets\":[],\"cursor\":\"x\",\"more\":false,\"keys\":[]}");
  ADD_ANSWER ("recovery", "{\"dossiers\":[%s,%s]}", k1, k2);
  ADD_ANSWER ("missing", "{\"missing\":[]}");
  ADD_ANSWER ("missing", "{\"missing\":[{\"dossier_id\":\"d1\",\"org\":\"CCAS Nord\",\"recovery_key\":\"%s\","
              "\"epochs\":[1,2,5]},{\"dossier_id\":\"d1\",\"org\":\"Mission locale\",\"recovery_key\":\"%s\","
              "\"epochs\":[3]},{\"dossier_id\":\"d2\",\"org\":\"CCAS Nord\",\"recovery_key\":\"%s\","
              "\"epochs\":[4294967295]}]}", rk, pk1, rk);
  ADD_ANSWER ("error", "{\"error\":\"not_member\",\"message\":\"You are not a member of this dossier.\"}");
#undef ADD_ANSWER
  relais_dossier_key_free (key);
  return answers;
}


static void
assert_refused (const char *what,
                const char *body,
                gsize       len)
{
  g_autoptr(GError) error = NULL;

  if (relais_client_parse_answer (what, body, len, &error))
    g_error ("%s accepted: %.*s", what, (int) MIN (len, 300), body);
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL);
}

static void
test_parse_valid (void)
{
  g_autoptr(GPtrArray) answers = valid_answers ();

  for (guint i = 0; i < answers->len; i++)
    {
      Answer *a = g_ptr_array_index (answers, i);
      g_autoptr(GError) error = NULL;

      relais_client_parse_answer (a->what, a->body, strlen (a->body), &error);
      g_assert_no_error (error);
    }

  /* Keys survive the spool's JSON form. */
  {
    g_autofree char *entry = keys_entry (DOSSIER, 3);
    g_autoptr(GError) error = NULL;
    g_autoptr(RelaisDossierKeys) keys = relais_dossier_keys_from_json (entry, strlen (entry), &error);
    g_autofree char *again = NULL;
    g_autoptr(RelaisDossierKeys) keys2 = NULL;

    g_assert_no_error (error);
    g_assert_cmpstr (keys->dossier_id, ==, DOSSIER);
    g_assert_cmpuint (keys->epoch, ==, 3);
    g_assert_cmpuint (keys->keys->len, ==, 2);
    g_assert_cmpuint (keys->members->len, ==, 2);
    g_assert_cmpuint (((RelaisDossierMember *) g_ptr_array_index (keys->members, 1))->until_epoch, ==, 3);
    again = relais_dossier_keys_to_json (keys);
    keys2 = relais_dossier_keys_from_json (again, strlen (again), &error);
    g_assert_no_error (error);
    g_assert_cmpuint (keys2->epoch, ==, 3);
    g_assert_cmpmem (((RelaisDossierMember *) g_ptr_array_index (keys->members, 0))->sign_pk, 32,
                     ((RelaisDossierMember *) g_ptr_array_index (keys2->members, 0))->sign_pk, 32);
    g_assert_true (g_bytes_equal (((RelaisWrappedKey *) g_ptr_array_index (keys->keys, 1))->wrapped_key,
                                  ((RelaisWrappedKey *) g_ptr_array_index (keys2->keys, 1))->wrapped_key));
  }
}

static void
test_parse_hostile (void)
{
  const char *whats[] = { "enrol", "users", "keys", "push", "pull", "recovery", "missing", "error" };
  g_autofree char *k31 = b64_random (31);
  g_autofree char *k33 = b64_random (33);
  g_autofree char *k32 = b64_random (32);
  g_autofree char *w153 = b64_random (RELAIS_WRAPPED_DOSSIER_KEY_SIZE - 1);
  g_autofree char *w = b64_random (RELAIS_WRAPPED_DOSSIER_KEY_SIZE);
  g_autofree char *id15 = b64_random (15);
  g_autofree char *id16 = b64_random (16);
  g_autofree char *garbage_env = b64_random (300);
  g_autofree char *uk207 = b64_random (207);
  const char *generic[] = {
    "", "{", "}", "[]", "null", "true", "0", "\"text\"", "{\"a\":}", "{} {}",
    "{\"users\":[],}", "\xff\xfe{}", "{\"error\":\"x\",\"message\":\"\xc3\x28\"}",
  };
  GPtrArray *bad = g_ptr_array_new_with_free_func (g_free);

  for (gsize w_i = 0; w_i < G_N_ELEMENTS (whats); w_i++)
    for (gsize i = 0; i < G_N_ELEMENTS (generic); i++)
      assert_refused (whats[w_i], generic[i], strlen (generic[i]));

  /* NUL bytes, inside a string and between tokens. */
  {
    const char with_nul[] = "{\"error\":\"not_member\",\"message\":\"a\0b\"}";
    const char with_nul2[] = "{\"users\":[]}\0garbage";

    assert_refused ("error", with_nul, sizeof with_nul - 1);
    assert_refused ("users", with_nul2, sizeof with_nul2 - 1);
  }

  /* Deep nesting: refused before json-glib recurses. */
  {
    GString *deep = g_string_new (NULL);

    for (guint i = 0; i < 200000; i++)
      g_string_append_c (deep, '[');
    assert_refused ("pull", deep->str, deep->len);
    g_string_truncate (deep, 0);
    g_string_append (deep, "{\"users\":");
    for (guint i = 0; i < 100000; i++)
      g_string_append (deep, "{\"a\":");
    assert_refused ("users", deep->str, deep->len);
    g_string_free (deep, TRUE);
  }

  /* Huge arrays. */
  {
    GString *s = g_string_new ("{\"changesets\":[");

    for (guint i = 0; i < 501; i++)
      g_string_append_printf (s, "%s\"%s\"", i ? "," : "", garbage_env);
    g_string_append (s, "],\"cursor\":\"x\",\"more\":false}");
    assert_refused ("pull", s->str, s->len);
    g_string_assign (s, "{\"results\":[");
    for (guint i = 0; i < 101; i++)
      g_string_append_printf (s, "%s{\"id\":\"%s\",\"status\":\"stored\"}", i ? "," : "", id16);
    g_string_append (s, "]}");
    assert_refused ("push", s->str, s->len);
    g_string_assign (s, "{\"epochs\":[");
    for (guint i = 0; i < 70000; i++)
      g_string_append_printf (s, "%s0", i ? "," : "");
    g_string_append (s, "],\"members\":[]}");
    assert_refused ("keys", s->str, s->len);
    g_string_free (s, TRUE);
  }

#define BAD(...) g_ptr_array_add (bad, g_strdup_printf (__VA_ARGS__))
  /* enrol */
  BAD ("{\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true}");
  BAD ("{\"user_id\":7,\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true}");
  BAD ("{\"user_id\":\"u/../x\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true}");
  BAD ("{\"user_id\":\"\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true}");
  BAD ("{\"user_id\":\"%0100d\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true}", 1);
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":\"true\"}");
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":[],\"org\":\"o\",\"admin\":true}");
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true,\"recovery_key\":\"%s\"}", k31);
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true,\"recovery_key\":\"%s\"}", k33);
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true,\"recovery_key\":\"%s=\"}", k32);
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true,\"recovery_key\":\"!!%s\"}", k32);
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true,\"wrapped_user_keys\":\"%s\"}", uk207);
  BAD ("{\"user_id\":\"u\",\"device_id\":\"d\",\"name\":\"n\",\"org\":\"o\",\"admin\":true,\"wrapped_user_keys\":1}");
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("enrol", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);

  /* users */
  BAD ("{\"users\":{}}");
  BAD ("{\"users\":[1]}");
  BAD ("{\"users\":[{\"user_id\":\"u\",\"name\":\"n\",\"org\":\"o\",\"box_pk\":\"%s\"}]}", k32);
  BAD ("{\"users\":[{\"user_id\":\"u\",\"name\":\"n\",\"org\":\"o\",\"box_pk\":\"%s\",\"sign_pk\":\"%s\"}]}", k32, k31);
  BAD ("{\"users\":[{\"user_id\":\"u\",\"name\":\"n\",\"org\":\"o\",\"box_pk\":\"%s\",\"sign_pk\":\"%s\"}]}", k33, k32);
  BAD ("{\"users\":[{\"user_id\":\"u u\",\"name\":\"n\",\"org\":\"o\"}]}");
  BAD ("{\"users\":[{\"name\":\"n\",\"org\":\"o\"}]}");
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("users", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);

  /* keys */
  BAD ("{\"epochs\":[{\"epoch\":1,\"wrapped_key\":\"%s\"}]}", w);
  BAD ("{\"epochs\":[{\"epoch\":1,\"wrapped_key\":\"%s\"}],\"members\":{}}", w);
  BAD ("{\"epochs\":[{\"epoch\":0,\"wrapped_key\":\"%s\"}],\"members\":[]}", w);
  BAD ("{\"epochs\":[{\"epoch\":-1,\"wrapped_key\":\"%s\"}],\"members\":[]}", w);
  BAD ("{\"epochs\":[{\"epoch\":4294967296,\"wrapped_key\":\"%s\"}],\"members\":[]}", w);
  BAD ("{\"epochs\":[{\"epoch\":1.5,\"wrapped_key\":\"%s\"}],\"members\":[]}", w);
  BAD ("{\"epochs\":[{\"epoch\":1e400,\"wrapped_key\":\"%s\"}],\"members\":[]}", w);
  BAD ("{\"epochs\":[{\"epoch\":1,\"wrapped_key\":\"%s\"}],\"members\":[]}", w153);
  BAD ("{\"epochs\":[{\"epoch\":1,\"wrapped_key\":\"%s\"},{\"epoch\":1,\"wrapped_key\":\"%s\"}],\"members\":[]}", w, w);
  BAD ("{\"epoch\":1,\"epochs\":[{\"epoch\":2,\"wrapped_key\":\"%s\"}],\"members\":[]}", w);
  BAD ("{\"epochs\":[],\"members\":[{\"user_id\":\"u\",\"sign_pk\":\"%s\",\"since_epoch\":1}]}", k31);
  BAD ("{\"epochs\":[],\"members\":[{\"user_id\":\"u\",\"sign_pk\":\"%s\",\"since_epoch\":0}]}", k32);
  BAD ("{\"epochs\":[],\"members\":[{\"user_id\":\"u\",\"sign_pk\":\"%s\",\"since_epoch\":3,\"until_epoch\":2}]}", k32);
  BAD ("{\"epochs\":[],\"members\":[{\"user_id\":\"u\",\"sign_pk\":\"%s\",\"since_epoch\":\"1\"}]}", k32);
  BAD ("{\"epochs\":[],\"members\":[{\"user_id\":null,\"sign_pk\":\"%s\",\"since_epoch\":1}]}", k32);
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("keys", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);

  /* push */
  BAD ("{\"results\":[{\"id\":\"%s\",\"status\":\"stored\"}]}", id15);
  BAD ("{\"results\":[{\"id\":\"%s\",\"status\":\"kept\"}]}", id16);
  BAD ("{\"results\":[{\"id\":\"%s\",\"status\":\"refused\"}]}", id16);
  BAD ("{\"results\":[{\"id\":\"%s\",\"status\":\"refused\",\"error\":\"Not A Code\"}]}", id16);
  BAD ("{\"results\":[{\"id\":\"%s\",\"status\":\"stored\",\"seq\":-4}]}", id16);
  BAD ("{\"results\":[{\"id\":\"%s\",\"status\":\"stored\",\"seq\":\"4\"}]}", id16);
  BAD ("{\"results\":[{\"status\":\"stored\"}]}");
  BAD ("{\"results\":[null]}");
  BAD ("{\"results\":null}");
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("push", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);

  /* pull */
  BAD ("{\"changesets\":[\"%s\"],\"cursor\":\"x\",\"more\":false}", garbage_env);
  BAD ("{\"changesets\":[\"not base64!\"],\"cursor\":\"x\",\"more\":false}");
  BAD ("{\"changesets\":[1],\"cursor\":\"x\",\"more\":false}");
  BAD ("{\"changesets\":[],\"cursor\":\"\",\"more\":false}");
  BAD ("{\"changesets\":[],\"cursor\":\"a/b\",\"more\":false}");
  BAD ("{\"changesets\":[],\"cursor\":\"a&limit=9\",\"more\":false}");
  BAD ("{\"changesets\":[],\"cursor\":7,\"more\":false}");
  BAD ("{\"changesets\":[],\"cursor\":\"x\",\"more\":0}");
  BAD ("{\"changesets\":[],\"cursor\":\"x\"}");
  BAD ("{\"changesets\":[],\"cursor\":\"x\",\"more\":false,\"keys\":[{\"epochs\":[],\"members\":[]}]}");
  BAD ("{\"changesets\":[],\"cursor\":\"x\",\"more\":false,\"keys\":{}}");
  BAD ("{\"changesets\":[],\"cursor\":\"%0600d\",\"more\":false}", 0);
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("pull", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);

  /* recovery and error */
  BAD ("{\"dossiers\":[{\"epochs\":[],\"members\":[]}]}");
  BAD ("{\"dossiers\":[{\"dossier_id\":\"d\",\"epochs\":[],\"members\":[]}]}");
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("recovery", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);
  /* missing: every field checked, entries and epochs strictly in order
   * (a server repeating itself cannot keep the caller's loop going). */
#define MISSING(id, org, key, epochs) "{\"dossier_id\":" id ",\"org\":" org ",\"recovery_key\":" key ",\"epochs\":" epochs "}"
  BAD ("{\"missing\":{}}");
  BAD ("{\"missing\":[1]}");
  BAD ("{\"missing\":[null]}");
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[1]") "],\"x\":", k32);
  BAD ("{\"missing\":[" MISSING ("\"d d\"", "\"o\"", "\"%s\"", "[1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"../x\"", "\"o\"", "\"%s\"", "[1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("7", "\"o\"", "\"%s\"", "[1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"\"", "\"%s\"", "[1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "null", "\"%s\"", "[1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"%01100d\"", "\"%s\"", "[1]") "]}", 0, k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[1]") "]}", k31);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[1]") "]}", k33);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"!%s\"", "[1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[0]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[-1]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[4294967296]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[1.5]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[\"1\"]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[2,2]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[3,2]") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "{}") "]}", k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"o\"", "\"%s\"", "[1]") "," MISSING ("\"d\"", "\"o\"", "\"%s\"", "[2]") "]}", k32, k32);
  BAD ("{\"missing\":[" MISSING ("\"d\"", "\"p\"", "\"%s\"", "[1]") "," MISSING ("\"d\"", "\"o\"", "\"%s\"", "[2]") "]}", k32, k32);
  BAD ("{\"missing\":[" MISSING ("\"e\"", "\"o\"", "\"%s\"", "[1]") "," MISSING ("\"d\"", "\"o\"", "\"%s\"", "[2]") "]}", k32, k32);
#undef MISSING
  {
    GString *many = g_string_new ("{\"missing\":[");

    for (guint i = 0; i < 501; i++)
      g_string_append_printf (many, "%s{\"dossier_id\":\"d%04u\",\"org\":\"o\",\"recovery_key\":\"%s\",\"epochs\":[1]}",
                              i ? "," : "", i, k32);
    g_string_append (many, "]}");
    g_ptr_array_add (bad, g_string_free (many, FALSE));
    many = g_string_new ("{\"missing\":[{\"dossier_id\":\"d\",\"org\":\"o\",\"recovery_key\":\"");
    g_string_append_printf (many, "%s\",\"epochs\":[", k32);
    for (guint i = 1; i <= 1001; i++)
      g_string_append_printf (many, "%s%u", i > 1 ? "," : "", i);
    g_string_append (many, "]}]}");
    g_ptr_array_add (bad, g_string_free (many, FALSE));
  }
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("missing", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
  g_ptr_array_set_size (bad, 0);
  BAD ("{\"error\":\"not_member\"}");
  BAD ("{\"error\":\"\",\"message\":\"m\"}");
  BAD ("{\"error\":\"NOT MEMBER\",\"message\":\"m\"}");
  BAD ("{\"error\":1,\"message\":\"m\"}");
  for (guint i = 0; i < bad->len; i++)
    assert_refused ("error", g_ptr_array_index (bad, i), strlen (g_ptr_array_index (bad, i)));
#undef BAD
  g_ptr_array_free (bad, TRUE);

  /* An unknown answer name is the caller's mistake, not the server's. */
  {
    g_autoptr(GError) error = NULL;

    g_assert_false (relais_client_parse_answer ("nope", "{}", 2, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID);
  }
}

static void
test_parse_mutations (void)
{
  g_autoptr(GPtrArray) answers = valid_answers ();
  g_autoptr(GRand) rand = g_rand_new_with_seed (20261125);
  const char *tokens[] = { "null", "[", "]", "{", "}", "\"", ",", ":", "0", "-1", "1e999",
                           "4294967296", "true", "\\u0000", "\\", "\"\":", "[[[[", "\xc3" };
  guint refused = 0, total = 0;

  for (guint i = 0; i < answers->len; i++)
    {
      Answer *a = g_ptr_array_index (answers, i);

      for (guint round = 0; round < 1500; round++)
        {
          GString *s = g_string_new (a->body);
          guint edits = g_rand_int_range (rand, 1, 4);
          g_autoptr(GError) error = NULL;

          for (guint e = 0; e < edits && s->len > 0; e++)
            {
              guint pos = g_rand_int_range (rand, 0, s->len);

              switch (g_rand_int_range (rand, 0, 6))
                {
                case 0:
                  s->str[pos] = (char) g_rand_int_range (rand, 1, 256);
                  break;
                case 1:
                  {
                    gsize n = g_rand_int_range (rand, 1, 16);

                    g_string_erase (s, pos, MIN (s->len - pos, n));
                  }
                  break;
                case 2:
                  g_string_truncate (s, pos);
                  break;
                case 3:
                  g_string_insert (s, pos, tokens[g_rand_int_range (rand, 0, G_N_ELEMENTS (tokens))]);
                  break;
                case 4:
                  {
                    gsize want = g_rand_int_range (rand, 1, 64);
                    gsize len = MIN (s->len - pos, want);
                    g_autofree char *copy = g_strndup (s->str + pos, len);

                    g_string_insert (s, g_rand_int_range (rand, 0, s->len), copy);
                  }
                  break;
                default:
                  s->str[pos] ^= 1 << g_rand_int_range (rand, 0, 8);
                  break;
                }
            }
          total++;
          if (!relais_client_parse_answer (a->what, s->str, s->len, &error))
            {
              refused++;
              g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL);
            }
          g_string_free (s, TRUE);
        }
    }
  g_test_message ("%u of %u mutated answers refused", refused, total);
  g_assert_cmpuint (total, >=, 10000);
  /* Mutations inside a name's text still parse; most do not. */
  g_assert_cmpuint (refused, >, total / 2);
}

/* The spool --------------------------------------------------------------------- */

static guint
file_mode (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_mode & 0777;
}

static guint
count_entries (const char *spool_dir,
               const char *sub)
{
  g_autofree char *dir = g_build_filename (spool_dir, sub, NULL);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  while (d != NULL && g_dir_read_name (d) != NULL)
    n++;
  return n;
}

static void
write_raw (const char *path,
           const char *data,
           gssize      len)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (path, data, len, &error));
  g_assert_no_error (error);
}

static void
test_spool_files (void)
{
  g_autofree char *vault = relais_test_make_tmpdir ("relais-spool");
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = relais_spool_open (vault, &error);
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  g_autoptr(RelaisUserKeys) user = relais_user_keys_generate ();
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  RelaisSpoolIdentity identity = { "http://127.0.0.1:9", NULL, "user-1", "CCAS Nord", "device-1" };
  guint8 *key = relais_dossier_key_new ();

  g_assert_no_error (error);
  dir = g_strdup (relais_spool_get_dir (spool));
  g_assert_cmpuint (file_mode (dir), ==, 0700);
  for (guint i = 0; i < 5; i++)
    {
      const char *subs[] = { "out", "in", "keys", "register", "retired" };
      g_autofree char *sub = g_build_filename (dir, subs[i], NULL);

      g_assert_cmpuint (file_mode (sub), ==, 0700);
    }

  /* Identity */
  g_assert_false (relais_spool_is_enrolled (spool));
  g_assert_null (relais_spool_get_identity (spool, &error));
  g_assert_no_error (error);
  g_assert_true (relais_spool_set_identity (spool, &identity, dk->sk, &error));
  g_assert_no_error (error);
  g_assert_true (relais_spool_is_enrolled (spool));
  path = g_build_filename (dir, "device.key", NULL);
  g_assert_cmpuint (file_mode (path), ==, 0600);
  {
    g_autofree char *raw = NULL;
    gsize len;

    g_assert_true (g_file_get_contents (path, &raw, &len, NULL));
    g_assert_cmpmem (raw, len, dk->sk, sizeof dk->sk);
  }
  {
    g_autoptr(RelaisSpool) again = relais_spool_open (vault, &error);
    g_autoptr(RelaisSpoolIdentity) got = relais_spool_get_identity (again, &error);
    g_autoptr(RelaisClient) client = relais_spool_make_client (again, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (got->server, ==, identity.server);
    g_assert_null (got->cacert);
    g_assert_cmpstr (got->user_id, ==, "user-1");
    g_assert_cmpstr (got->org, ==, "CCAS Nord");
    g_assert_cmpstr (got->device_id, ==, "device-1");
    g_assert_nonnull (client);
  }
  g_assert_cmpint (relais_spool_get_last_success (spool), ==, 0);
  g_assert_null (relais_spool_get_last_error (spool));

  /* out/ and registrations */
  g_assert_cmpuint (relais_spool_count_pending (spool), ==, 0);
  {
    g_autoptr(GBytes) e1 = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 2);
    g_autoptr(GBytes) e2 = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 2);
    g_autofree char *hex = envelope_hex_id (e1);
    g_autofree char *name = g_strconcat (hex, ".rlcs", NULL);
    g_autofree char *out = g_build_filename (dir, "out", name, NULL);
    g_autoptr(GBytes) junk = g_bytes_new_static ("RLCS-no", 7);
    g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
    g_autoptr(GBytes) wrapped = relais_dossier_key_wrap (key, DOSSIER, 1, user->box_pk);
    g_autofree char *raw = NULL;
    gsize len;

    g_assert_true (relais_spool_add_out (spool, e1, &error));
    g_assert_true (relais_spool_add_out (spool, e1, &error));   /* idempotent */
    g_assert_true (relais_spool_add_out (spool, e2, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
    g_assert_true (g_file_get_contents (out, &raw, &len, NULL));
    g_assert_cmpmem (raw, len, g_bytes_get_data (e1, NULL), g_bytes_get_size (e1));
    g_assert_false (relais_spool_add_out (spool, junk, &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
    g_clear_error (&error);
    g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);

    /* Many at once: all or nothing. */
    {
      g_autoptr(GPtrArray) many = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_autoptr(GPtrArray) names = NULL;

      for (guint i = 0; i < 3; i++)
        g_ptr_array_add (many, seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 1));
      g_ptr_array_add (many, g_bytes_ref (junk));
      g_assert_false (relais_spool_add_out_many (spool, many, &error));
      g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
      g_clear_error (&error);
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
      g_ptr_array_remove_index (many, 3);
      g_assert_true (relais_spool_add_out_many (spool, many, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 5);
      for (guint i = 0; i < 3; i++)
        {
          g_autofree char *hex2 = envelope_hex_id (g_ptr_array_index (many, i));
          g_autofree char *name2 = g_strconcat (hex2, ".rlcs", NULL);
          g_autofree char *path2 = g_build_filename (dir, "out", name2, NULL);
          g_autofree char *raw2 = NULL;
          gsize len2;

          g_assert_true (g_file_get_contents (path2, &raw2, &len2, NULL));
          g_assert_cmpmem (raw2, len2, g_bytes_get_data (g_ptr_array_index (many, i), NULL),
                           g_bytes_get_size (g_ptr_array_index (many, i)));
          g_assert_cmpuint (file_mode (path2), ==, 0600);
        }
      /* No hidden file is left behind. */
      g_assert_cmpuint (count_entries (dir, "out"), ==, 5);
      for (guint i = 0; i < 3; i++)
        {
          g_autofree char *hex2 = envelope_hex_id (g_ptr_array_index (many, i));
          g_autofree char *name2 = g_strconcat (hex2, ".rlcs", NULL);
          g_autofree char *path2 = g_build_filename (dir, "out", name2, NULL);

          g_assert_cmpint (g_unlink (path2), ==, 0);
        }
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
    }

    /* A batch: nothing visible until committed; dropped if never. */
    {
      g_autoptr(GBytes) e3 = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 1);
      g_autoptr(GPtrArray) reg = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
      g_autoptr(GBytes) w2 = relais_dossier_key_wrap (key, "dossier-batch", 1, user->box_pk);
      g_autofree char *hex3 = envelope_hex_id (e3);
      g_autofree char *name3 = g_strconcat (hex3, ".rlcs", NULL);
      g_autofree char *path3 = g_build_filename (dir, "out", name3, NULL);
      RelaisSpool *other = relais_spool_open (vault, &error);

      g_ptr_array_add (reg, relais_wrapped_key_new ("user-1", 1, w2));
      relais_spool_begin_batch (other);
      g_assert_true (relais_spool_add_out (other, e3, &error));
      g_assert_true (relais_spool_add_registration (other, "dossier-batch", reg, NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
      relais_spool_free (other);
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
      g_assert_cmpuint (count_entries (dir, "out"), ==, 2);
      g_assert_cmpuint (count_entries (dir, "register"), ==, 0);

      relais_spool_begin_batch (spool);
      g_assert_true (relais_spool_add_out (spool, e3, &error));
      g_assert_true (relais_spool_add_registration (spool, "dossier-batch", reg, NULL, &error));
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
      g_assert_true (relais_spool_commit_batch (spool, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 4);
      g_assert_true (g_file_test (path3, G_FILE_TEST_IS_REGULAR));
      g_assert_cmpuint (count_entries (dir, "out"), ==, 3);
      g_assert_cmpuint (count_entries (dir, "register"), ==, 1);
      g_assert_cmpint (g_unlink (path3), ==, 0);
      {
        g_autofree char *regpath = g_build_filename (dir, "register", "dossier-batch.json", NULL);

        g_assert_cmpint (g_unlink (regpath), ==, 0);
      }
      g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
    }

    g_ptr_array_add (members, relais_wrapped_key_new ("user-1", 1, wrapped));
    g_assert_true (relais_spool_add_registration (spool, DOSSIER, members, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (relais_spool_count_pending (spool), ==, 3);
    g_assert_false (relais_spool_add_registration (spool, "../evil", members, NULL, &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID);
    g_clear_error (&error);
  }

  /* in/ and retired/: written by pulls and pushes; read, listed in order,
   * removed by the engine. */
  {
    g_autoptr(GBytes) e = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 1);
    g_autofree char *in2 = g_build_filename (dir, "in", "00000000000000000002-bb.rlcs", NULL);
    g_autofree char *in1 = g_build_filename (dir, "in", "00000000000000000001-aa.rlcs", NULL);
    g_autofree char *tmp = g_build_filename (dir, "in", ".tmp-123456", NULL);
    g_autofree char *ret = g_build_filename (dir, "retired", "cc.rlcs", NULL);
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(GBytes) got = NULL;

    write_raw (in2, g_bytes_get_data (e, NULL), g_bytes_get_size (e));
    write_raw (in1, "one", 3);
    write_raw (tmp, "half", 4);
    names = relais_spool_list_in (spool, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (names->len, ==, 2);
    g_assert_cmpstr (g_ptr_array_index (names, 0), ==, "00000000000000000001-aa.rlcs");
    g_assert_cmpstr (g_ptr_array_index (names, 1), ==, "00000000000000000002-bb.rlcs");
    got = relais_spool_read_in (spool, "00000000000000000002-bb.rlcs", &error);
    g_assert_no_error (error);
    g_assert_true (g_bytes_equal (got, e));
    g_assert_true (relais_spool_remove_in (spool, "00000000000000000001-aa.rlcs", &error));
    g_assert_no_error (error);
    g_assert_false (g_file_test (in1, G_FILE_TEST_EXISTS));
    /* Names from outside never leave in/. */
    g_assert_null (relais_spool_read_in (spool, "../state.json", &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_false (relais_spool_remove_in (spool, "../device.key", &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));

    write_raw (ret, g_bytes_get_data (e, NULL), g_bytes_get_size (e));
    g_assert_cmpuint (relais_spool_count_pending (spool), ==, 4);
    g_clear_pointer (&names, g_ptr_array_unref);
    names = relais_spool_list_retired (spool, &error);
    g_assert_cmpuint (names->len, ==, 1);
    g_clear_pointer (&got, g_bytes_unref);
    got = relais_spool_read_retired (spool, "cc.rlcs", &error);
    g_assert_true (g_bytes_equal (got, e));
    g_assert_true (relais_spool_remove_retired (spool, "cc.rlcs", &error));
    g_assert_no_error (error);
    g_assert_cmpuint (relais_spool_count_pending (spool), ==, 3);
  }

  /* keys/ */
  {
    g_autofree char *entry = keys_entry (DOSSIER, 2);
    g_autoptr(RelaisDossierKeys) keys = relais_dossier_keys_from_json (entry, strlen (entry), &error);
    g_autoptr(RelaisDossierKeys) got = NULL;

    g_assert_no_error (error);
    g_assert_null (relais_spool_get_keys (spool, DOSSIER, &error));
    g_assert_no_error (error);
    g_assert_true (relais_spool_set_keys (spool, keys, &error));
    g_assert_no_error (error);
    got = relais_spool_get_keys (spool, DOSSIER, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (got->epoch, ==, 2);
    g_assert_cmpuint (got->keys->len, ==, 2);
    g_assert_cmpuint (got->members->len, ==, 2);
    g_assert_cmpstr (((RelaisDossierMember *) g_ptr_array_index (got->members, 0))->user_id, ==, "user-1");
    g_assert_true (relais_spool_forget_keys (spool, DOSSIER, &error));
    g_assert_null (relais_spool_get_keys (spool, DOSSIER, &error));
    g_assert_no_error (error);
    g_assert_null (relais_spool_get_keys (spool, "../x", &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID);
    g_clear_error (&error);
  }

  /* Wipe */
  g_assert_true (relais_spool_wipe (spool, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  relais_dossier_key_free (key);
  relais_test_rm_rf (vault);
}

static void
test_spool_hostile (void)
{
  g_autofree char *vault = relais_test_make_tmpdir ("relais-spool-hostile");
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = relais_spool_open (vault, &error);
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  RelaisSpoolIdentity identity = { "http://127.0.0.1:9", NULL, "user-1", "org", "device-1" };
  const char *dir = relais_spool_get_dir (spool);
  g_autofree char *state = g_build_filename (dir, "state.json", NULL);
  g_autofree char *keyfile = g_build_filename (dir, "device.key", NULL);
  g_autofree char *keys = g_build_filename (dir, "keys", DOSSIER ".json", NULL);
  g_autofree char *good = NULL;
  gsize good_len;
  const char *bad_states[] = {
    "", "{", "[]", "{\"server\":1}", "{\"device_id\":\"d\"}", "\"x\"",
    "{\"server\":\"http://127.0.0.1:9\",\"user_id\":\"u\",\"device_id\":\"a/b\"}",
    "{\"last_success\":\"yesterday\"}", "{\"in_counter\":-1}",
  };

  g_assert_no_error (error);
  g_assert_true (relais_spool_set_identity (spool, &identity, dk->sk, &error));
  g_assert_true (g_file_get_contents (state, &good, &good_len, NULL));

  /* Truncated and otherwise damaged state.json: one clear error. */
  for (gsize cut = 1; cut < good_len; cut += 7)
    {
      RelaisExchangeReport report;

      write_raw (state, good, cut);
      g_assert_null (relais_spool_get_identity (spool, &error));
      g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
      g_assert_nonnull (strstr (error->message, "damaged"));
      g_clear_error (&error);
      g_assert_false (relais_spool_is_enrolled (spool));
      g_assert_false (relais_spool_exchange (spool, &report, NULL, &error));
      g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
      g_clear_error (&error);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad_states); i++)
    {
      write_raw (state, bad_states[i], -1);
      g_assert_null (relais_spool_get_identity (spool, &error));
      g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
      g_clear_error (&error);
    }
  {
    GString *deep = g_string_new (NULL);

    for (guint i = 0; i < 30000; i++)
      g_string_append (deep, "{\"a\":");
    write_raw (state, deep->str, deep->len);
    g_string_free (deep, TRUE);
    g_assert_null (relais_spool_get_identity (spool, &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
    g_clear_error (&error);
  }
  write_raw (state, good, good_len);
  g_assert_true (relais_spool_is_enrolled (spool));

  /* A device key of the wrong size. */
  write_raw (keyfile, "short", 5);
  g_assert_false (relais_spool_is_enrolled (spool));
  g_assert_null (relais_spool_make_client (spool, &error));
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
  g_clear_error (&error);

  /* Garbage keys files. */
  {
    g_autofree char *other = keys_entry ("another-dossier", 2);
    const char *garbage[] = { "", "garbage", "{\"dossier_id\":\"" DOSSIER "\"}", "\x00\x01" };

    for (gsize i = 0; i < G_N_ELEMENTS (garbage); i++)
      {
        write_raw (keys, garbage[i], -1);
        g_assert_null (relais_spool_get_keys (spool, DOSSIER, &error));
        g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
        g_assert_nonnull (strstr (error->message, "damaged"));
        g_clear_error (&error);
      }
    write_raw (keys, other, -1);
    g_assert_null (relais_spool_get_keys (spool, DOSSIER, &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
    g_clear_error (&error);
  }
  relais_test_rm_rf (vault);
}

/* A spool whose server is not there: the exchange fails as NETWORK,
 * records the failure, and keeps everything queued. */
static void
test_spool_offline (void)
{
  g_autofree char *vault = relais_test_make_tmpdir ("relais-spool-offline");
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = relais_spool_open (vault, &error);
  g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
  g_autoptr(RelaisUserKeys) user = relais_user_keys_generate ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u", closed_port ());
  RelaisSpoolIdentity identity = { url, NULL, "user-1", "org", "device-1" };
  RelaisExchangeReport report;
  guint8 *key = relais_dossier_key_new ();
  g_autoptr(GBytes) e = seal_one (DOSSIER, 1, key, "user-1", "device-1", user->sign_sk, 1);
  g_autofree char *last = NULL;

  g_assert_true (relais_spool_set_identity (spool, &identity, dk->sk, &error));
  g_assert_true (relais_spool_add_out (spool, e, &error));
  g_assert_no_error (error);
  /* A damaged registration is kept and passed over: the exchange goes
   * on to the network (and fails there). */
  {
    g_autofree char *reg = g_build_filename (relais_spool_get_dir (spool), "register", "d.json", NULL);

    write_raw (reg, "{\"dossier_id\":\"d\",\"members\":[{\"user_id\":1}]}", -1);
  }
  g_assert_false (relais_spool_exchange (spool, &report, NULL, &error));
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK);
  g_assert_cmpuint (report.refused, ==, 1);
  g_assert_cmpuint (relais_spool_count_pending (spool), ==, 2);
  g_assert_true (relais_client_error_is_transient (error));
  g_assert_cmpuint (report.pushed, ==, 0);
  last = relais_spool_get_last_error (spool);
  g_assert_cmpstr (last, ==, error->message);
  g_assert_cmpint (relais_spool_get_last_success (spool), ==, 0);
  g_clear_error (&error);

  /* Another exchange of the same spool holds the lock: this one waits
   * for a later turn, and records nothing. */
  {
    g_autofree char *lock = g_build_filename (relais_spool_get_dir (spool), "lock", NULL);
    int fd = g_open (lock, O_RDWR | O_CREAT, 0600);
    g_autofree char *last2 = NULL;

    g_assert_cmpint (fd, >=, 0);
    g_assert_cmpint (flock (fd, LOCK_EX), ==, 0);
    g_assert_false (relais_spool_exchange (spool, &report, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_UNAVAILABLE);
    g_assert_true (relais_client_error_is_transient (error));
    last2 = relais_spool_get_last_error (spool);
    g_assert_cmpstr (last2, ==, last);
    close (fd);
  }
  relais_dossier_key_free (key);
  relais_test_rm_rf (vault);
}

/* The real server ----------------------------------------------------------------- */

typedef struct {
  char        *dir;
  char        *store;
  GSubprocess *process;
  char        *url;
  guint16      port;
  char        *tls_cert;   /* NULL: plain http on loopback */
  char        *tls_key;
} Server;

static const char *
server_binary (void)
{
  const char *path = g_getenv ("RELAIS_SERVER");

  if (path == NULL || !g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
    return NULL;
  return path;
}

static void
server_start (Server  *s,
              guint16  port)
{
  g_autofree char *listen = g_strdup_printf ("127.0.0.1:%u", port);
  const char *argv[] = { server_binary (), "serve", "--store", s->store, "--listen", listen,
                         s->tls_cert != NULL ? "--tls-cert" : NULL, s->tls_cert,
                         "--tls-key", s->tls_key, NULL };

  g_free (s->url);
  s->process = relais_test_server_spawn (argv, &s->url);
  s->port = (guint16) g_ascii_strtoull (strrchr (s->url, ':') + 1, NULL, 10);
  g_assert_cmpuint (s->port, >, 0);
}

static void
server_stop (Server *s,
             int     signum)
{
  if (s->process == NULL)
    return;
  g_subprocess_send_signal (s->process, signum);
  g_subprocess_wait (s->process, NULL, NULL);
  g_clear_object (&s->process);
}

static Server *
server_new (void)
{
  Server *s = g_new0 (Server, 1);

  s->dir = relais_test_make_tmpdir ("relais-client-server");
  s->store = g_strdup_printf ("sqlite:%s/store.db", s->dir);
  server_start (s, 0);
  return s;
}

static void
server_free (Server *s)
{
  server_stop (s, SIGTERM);
  relais_test_rm_rf (s->dir);
  g_free (s->dir);
  g_free (s->store);
  g_free (s->url);
  g_free (s->tls_cert);
  g_free (s->tls_key);
  g_free (s);
}

/* Runs `relais-server WORD WORD --store STORE ARGS…` and returns its
 * stdout, trimmed. */
static char *
server_admin (Server     *s,
              const char *first,
              ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  va_list args;
  const char *arg;

  g_ptr_array_add (argv, (char *) server_binary ());
  va_start (args, first);
  for (arg = first; arg != NULL; arg = va_arg (args, const char *))
    {
      g_ptr_array_add (argv, (char *) arg);
      /* Every command is two words ("user add"), then the store. */
      if (argv->len == 3)
        {
          g_ptr_array_add (argv, (char *) "--store");
          g_ptr_array_add (argv, s->store);
        }
    }
  va_end (args);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (process, NULL, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
  g_strchomp (out);
  return g_steal_pointer (&out);
}

typedef struct {
  char            *user_id;
  char            *device_id;
  char            *org;
  RelaisDeviceKey *device;
  RelaisUserKeys  *keys;
  RelaisClient    *client;
} Device;

static void
device_free (Device *d)
{
  g_free (d->user_id);
  g_free (d->device_id);
  g_free (d->org);
  relais_device_key_free (d->device);
  relais_user_keys_free (d->keys);
  relais_client_free (d->client);
  g_free (d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Device, device_free)

/* Enrols a device with @code; a user's first device makes and puts the
 * user's keys, a later one unwraps them with the passphrase. */
static Device *
device_enrol (Server     *s,
              const char *code)
{
  Device *d = g_new0 (Device, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisEnrolment) e = NULL;

  d->client = relais_client_new (s->url, NULL, &error);
  g_assert_no_error (error);
  d->device = relais_device_key_generate ();
  e = relais_client_enrol (d->client, code, "laptop", d->device->pk, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (e);
  d->user_id = g_strdup (e->user_id);
  d->device_id = g_strdup (e->device_id);
  d->org = g_strdup (e->org);
  relais_client_set_device (d->client, d->device_id, d->device->sk);
  if (e->wrapped_user_keys == NULL)
    {
      RelaisKdfParams params;
      g_autoptr(GBytes) wrapped = NULL;

      relais_kdf_params_insecure_for_tests (&params);
      d->keys = relais_user_keys_generate ();
      wrapped = relais_user_keys_wrap (d->keys, PASSPHRASE, &params, &error);
      g_assert_no_error (error);
      g_assert_true (relais_client_put_keys (d->client, d->keys->box_pk, d->keys->sign_pk,
                                             wrapped, NULL, &error));
      g_assert_no_error (error);
    }
  else
    {
      d->keys = relais_user_keys_unwrap (g_bytes_get_data (e->wrapped_user_keys, NULL),
                                         g_bytes_get_size (e->wrapped_user_keys),
                                         PASSPHRASE, &error);
      g_assert_no_error (error);
      g_assert_nonnull (d->keys);
    }
  return d;
}

static Device *
new_user (Server     *s,
          const char *name,
          const char *org)
{
  g_autofree char *code = server_admin (s, "user", "add", "--name", name, "--org", org, NULL);

  g_assert_cmpuint (strlen (code), >, 0);
  g_assert_null (strchr (code, '\n'));
  return device_enrol (s, code);
}

static GPtrArray *
member_wraps (const guint8 *key,
              const char   *dossier,
              Device       *d)
{
  GPtrArray *members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  g_autoptr(GBytes) wrapped = relais_dossier_key_wrap (key, dossier, 1, d->keys->box_pk);

  g_ptr_array_add (members, relais_wrapped_key_new (d->user_id, 1, wrapped));
  return members;
}

#define SKIP_WITHOUT_SERVER() \
  G_STMT_START { \
    if (server_binary () == NULL) \
      { \
        g_test_skip ("relais-server is not built (RELAIS_SERVER)"); \
        return; \
      } \
  } G_STMT_END

static void
test_server_client (void)
{
  Server *s;
  g_autoptr(Device) a = NULL;
  g_autoptr(Device) a2 = NULL;
  g_autoptr(GError) error = NULL;
  guint8 *key = relais_dossier_key_new ();
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) envelopes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) results = NULL;
  g_autoptr(GPtrArray) again = NULL;
  g_autoptr(GHashTable) pushed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(RelaisDossierKeys) keys = NULL;
  g_autofree char *code = NULL;
  g_autofree char *cursor1 = NULL;
  guint pulled = 0, pages = 0;

  SKIP_WITHOUT_SERVER ();
  s = server_new ();

  {
    g_autoptr(RelaisClient) anonymous = relais_client_new (s->url, NULL, &error);

    g_assert_true (relais_client_health (anonymous, NULL, &error));
    g_assert_no_error (error);
  }

  /* Enrolment: the code is single use. */
  code = server_admin (s, "user", "add", "--name", "Aïcha Benali", "--org", "CCAS Nord", NULL);
  a = device_enrol (s, code);
  g_assert_cmpstr (a->org, ==, "CCAS Nord");
  {
    g_autoptr(RelaisDeviceKey) dk = relais_device_key_generate ();
    g_autoptr(RelaisEnrolment) e = relais_client_enrol (a->client, code, "thief", dk->pk, NULL, &error);

    g_assert_null (e);
    g_assert_nonnull (error);
    g_assert_false (relais_client_error_is_transient (error));
    g_clear_error (&error);
    e = relais_client_enrol (a->client, "not-a-code", "thief", dk->pk, NULL, &error);
    g_assert_null (e);
    g_assert_nonnull (error);
    g_assert_false (relais_client_error_is_transient (error));
    g_clear_error (&error);
  }

  /* A dossier; a retried creation succeeds. */
  members = member_wraps (key, DOSSIER, a);
  g_assert_true (relais_client_dossier_create (a->client, DOSSIER, members, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_client_dossier_create (a->client, DOSSIER, members, NULL, NULL, &error));
  g_assert_no_error (error);

  /* Recovery wraps missing once the organisation has a key, then added
   * (PROTOCOL.md §5.2). */
  {
    g_autoptr(GPtrArray) missing = relais_client_recovery_missing (a->client, NULL, NULL, NULL, &error);
    g_autoptr(GPtrArray) wraps = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
    guint8 rpk[crypto_box_PUBLICKEYBYTES], rsk[crypto_box_SECRETKEYBYTES];
    g_autofree char *rpk_text = NULL;
    g_autofree char *set = NULL;
    RelaisRecoveryMissing *entry;

    g_assert_no_error (error);
    g_assert_cmpuint (missing->len, ==, 0);
    g_clear_pointer (&missing, g_ptr_array_unref);
    crypto_box_keypair (rpk, rsk);
    sodium_memzero (rsk, sizeof rsk);
    rpk_text = b64 (rpk, sizeof rpk);
    set = server_admin (s, "org", "set-recovery-key", "--org", "CCAS Nord", "--key", rpk_text, NULL);
    missing = relais_client_recovery_missing (a->client, NULL, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (missing->len, ==, 1);
    entry = g_ptr_array_index (missing, 0);
    g_assert_cmpstr (entry->dossier_id, ==, DOSSIER);
    g_assert_cmpstr (entry->org, ==, "CCAS Nord");
    g_assert_cmpmem (entry->recovery_key, 32, rpk, 32);
    g_assert_cmpuint (entry->epochs->len, ==, 1);
    g_assert_cmpuint (g_array_index (entry->epochs, guint32, 0), ==, 1);
    /* Resuming after it (an organisation name with a space, escaped). */
    {
      g_autoptr(GPtrArray) after = relais_client_recovery_missing (a->client, DOSSIER, "CCAS Nord", NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpuint (after->len, ==, 0);
    }
    g_assert_null (relais_client_recovery_missing (a->client, DOSSIER, NULL, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID);
    g_clear_error (&error);
    {
      g_autoptr(GBytes) wrapped = relais_dossier_key_wrap (key, DOSSIER, 1, rpk);

      g_ptr_array_add (wraps, relais_wrapped_key_new (NULL, 1, wrapped));
    }
    g_assert_true (relais_client_recovery_add (a->client, DOSSIER, "CCAS Nord", wraps, NULL, &error));
    g_assert_no_error (error);
    g_assert_true (relais_client_recovery_add (a->client, DOSSIER, "CCAS Nord", wraps, NULL, &error));
    g_assert_no_error (error);
    g_assert_false (relais_client_recovery_add (a->client, DOSSIER, "Nobody", wraps, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NOT_FOUND);
    g_clear_error (&error);
    g_clear_pointer (&missing, g_ptr_array_unref);
    missing = relais_client_recovery_missing (a->client, NULL, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (missing->len, ==, 0);
  }
  keys = relais_client_dossier_keys (a->client, DOSSIER, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (keys->dossier_id, ==, DOSSIER);
  g_assert_cmpuint (keys->epoch, ==, 1);
  g_assert_cmpuint (keys->keys->len, ==, 1);
  g_assert_cmpuint (keys->members->len, ==, 1);
  g_assert_cmpmem (((RelaisDossierMember *) g_ptr_array_index (keys->members, 0))->sign_pk, 32,
                   a->keys->sign_pk, 32);
  {
    RelaisWrappedKey *w = g_ptr_array_index (keys->keys, 0);
    guint8 *unwrapped = relais_dossier_key_unwrap (g_bytes_get_data (w->wrapped_key, NULL),
                                                   g_bytes_get_size (w->wrapped_key), DOSSIER, 1,
                                                   a->keys->box_pk, a->keys->box_sk, &error);

    g_assert_no_error (error);
    g_assert_cmpmem (unwrapped, 32, key, 32);
    relais_dossier_key_free (unwrapped);
  }

  /* Push, then push again: duplicates with the same seqs. */
  for (guint i = 0; i < 3; i++)
    {
      GBytes *e = seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 2);

      g_hash_table_add (pushed, envelope_hex_id (e));
      g_ptr_array_add (envelopes, e);
    }
  results = relais_client_push (a->client, envelopes, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (results->len, ==, 3);
  again = relais_client_push (a->client, envelopes, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 3; i++)
    {
      RelaisPushResult *r = g_ptr_array_index (results, i), *r2 = g_ptr_array_index (again, i);

      g_assert_cmpint (r->status, ==, RELAIS_PUSH_STORED);
      g_assert_cmpint (r2->status, ==, RELAIS_PUSH_DUPLICATE);
      g_assert_cmpuint (r->seq, >, 0);
      g_assert_cmpuint (r->seq, ==, r2->seq);
    }
  /* A change set for a dossier nobody registered is refused alone. */
  {
    g_autoptr(GPtrArray) mixed = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
    g_autoptr(GPtrArray) r = NULL;
    GBytes *good = seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 1);

    g_ptr_array_add (mixed, seal_one ("no-such-dossier", 1, key, a->user_id, a->device_id,
                                      a->keys->sign_sk, 1));
    g_hash_table_add (pushed, envelope_hex_id (good));
    g_ptr_array_add (mixed, good);
    r = relais_client_push (a->client, mixed, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (((RelaisPushResult *) g_ptr_array_index (r, 0))->status, ==, RELAIS_PUSH_REFUSED);
    g_assert_nonnull (((RelaisPushResult *) g_ptr_array_index (r, 0))->error);
    g_assert_cmpint (((RelaisPushResult *) g_ptr_array_index (r, 1))->status, ==, RELAIS_PUSH_STORED);
  }
  /* 250 more, in batches of 100. */
  for (guint b = 0; b < 3; b++)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_autoptr(GPtrArray) r = NULL;

      for (guint i = 0; i < (b < 2 ? 100u : 50u); i++)
        {
          GBytes *e = seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 1);

          g_hash_table_add (pushed, envelope_hex_id (e));
          g_ptr_array_add (batch, e);
        }
      r = relais_client_push (a->client, batch, NULL, &error);
      g_assert_no_error (error);
      for (guint i = 0; i < r->len; i++)
        g_assert_cmpint (((RelaisPushResult *) g_ptr_array_index (r, i))->status, ==, RELAIS_PUSH_STORED);
    }
  g_assert_cmpuint (g_hash_table_size (pushed), ==, 254);

  /* The same user's second laptop: a new code, the keys back with the
   * passphrase, and every change set by pages of 100. */
  {
    g_autofree char *code2 = server_admin (s, "user", "code", a->user_id, NULL);
    g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *cursor = NULL;
    gboolean more = TRUE;

    a2 = device_enrol (s, code2);
    g_assert_cmpstr (a2->user_id, ==, a->user_id);
    g_assert_cmpstr (a2->device_id, !=, a->device_id);
    g_assert_cmpmem (a2->keys->sign_pk, 32, a->keys->sign_pk, 32);
    g_assert_cmpmem (a2->keys->box_sk, 32, a->keys->box_sk, 32);

    while (more)
      {
        g_autoptr(RelaisPullPage) page = relais_client_pull (a2->client, cursor, 100, NULL, &error);

        g_assert_no_error (error);
        g_assert_cmpuint (page->changesets->len, <=, 100);
        for (guint i = 0; i < page->changesets->len; i++)
          {
            char *hex = envelope_hex_id (g_ptr_array_index (page->changesets, i));

            g_assert_true (g_hash_table_contains (pushed, hex));
            g_assert_false (g_hash_table_contains (seen, hex));
            g_hash_table_add (seen, hex);
          }
        if (page->changesets->len > 0)
          {
            g_assert_cmpuint (page->keys->len, ==, 1);
            g_assert_cmpstr (((RelaisDossierKeys *) g_ptr_array_index (page->keys, 0))->dossier_id, ==, DOSSIER);
          }
        pulled += page->changesets->len;
        pages++;
        if (pages == 1)
          cursor1 = g_strdup (page->cursor);
        g_free (cursor);
        cursor = g_strdup (page->cursor);
        more = page->more;
      }
    g_assert_cmpuint (pulled, ==, 254);
    g_assert_cmpuint (pages, >=, 3);

    /* Nothing new: an empty page at the end. */
    {
      g_autoptr(RelaisPullPage) page = relais_client_pull (a2->client, cursor, 100, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpuint (page->changesets->len, ==, 0);
      g_assert_false (page->more);
    }
  }
  /* Resumed from a saved cursor, by a fresh client: the rest, exactly. */
  {
    g_autoptr(RelaisClient) fresh = relais_client_new (s->url, NULL, &error);
    g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *cursor = g_strdup (cursor1);
    gboolean more = TRUE;

    relais_client_set_device (fresh, a2->device_id, a2->device->sk);
    while (more)
      {
        g_autoptr(RelaisPullPage) page = relais_client_pull (fresh, cursor, 500, NULL, &error);

        g_assert_no_error (error);
        for (guint i = 0; i < page->changesets->len; i++)
          {
            char *hex = envelope_hex_id (g_ptr_array_index (page->changesets, i));

            g_assert_false (g_hash_table_contains (seen, hex));
            g_hash_table_add (seen, hex);
          }
        g_free (cursor);
        cursor = g_strdup (page->cursor);
        more = page->more;
      }
    g_assert_cmpuint (g_hash_table_size (seen), ==, 254 - 100);
  }
  /* The pushing device does not get its own change sets back. */
  {
    g_autoptr(RelaisPullPage) page = relais_client_pull (a->client, NULL, 500, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (page->changesets->len, ==, 0);
  }

  /* A forged signature; a tampered cursor. */
  {
    g_autoptr(RelaisClient) forger = relais_client_new (s->url, NULL, &error);
    g_autoptr(RelaisDeviceKey) other = relais_device_key_generate ();
    g_autoptr(RelaisPullPage) page = NULL;

    relais_client_set_device (forger, a->device_id, other->sk);
    page = relais_client_pull (forger, NULL, 10, NULL, &error);
    g_assert_null (page);
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_BAD_SIGNATURE);
    g_assert_false (relais_client_error_is_transient (error));
    g_clear_error (&error);
    page = relais_client_pull (a2->client, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 10, NULL, &error);
    g_assert_null (page);
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_MALFORMED);
    g_clear_error (&error);
  }

  /* Revocation: refused from the next request on. */
  g_free (server_admin (s, "device", "revoke", a2->device_id, NULL));
  {
    g_autoptr(RelaisPullPage) page = relais_client_pull (a2->client, NULL, 10, NULL, &error);

    g_assert_null (page);
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_REVOKED);
    g_clear_error (&error);
  }

  relais_dossier_key_free (key);
  server_free (s);
}

/* What the spool's key lookups give relais_changeset_open(). */
typedef struct {
  const char        *dossier;
  guint8            *key;
  RelaisDossierKeys *keys;
} OpenContext;

static const guint8 *
open_key (const char *dossier,
          guint32     epoch,
          gpointer    user_data)
{
  OpenContext *c = user_data;

  return strcmp (dossier, c->dossier) == 0 && epoch == 1 ? c->key : NULL;
}

static const char *
open_author (const char   *dossier,
             const guint8 *sign_pk,
             gpointer      user_data)
{
  OpenContext *c = user_data;

  for (guint i = 0; i < c->keys->members->len; i++)
    {
      RelaisDossierMember *m = g_ptr_array_index (c->keys->members, i);

      if (memcmp (m->sign_pk, sign_pk, 32) == 0)
        return m->user_id;
    }
  return NULL;
}

static RelaisSpool *
device_spool (Server     *s,
              Device     *d,
              const char *vault)
{
  g_autoptr(GError) error = NULL;
  RelaisSpool *spool = relais_spool_open (vault, &error);
  RelaisSpoolIdentity identity = { s->url, NULL, d->user_id, d->org, d->device_id };

  g_assert_no_error (error);
  g_assert_true (relais_spool_set_identity (spool, &identity, d->device->sk, &error));
  g_assert_no_error (error);
  return spool;
}

/* Opens every envelope in @spool's in/ with the keys the spool holds:
 * returns the number of operations, and the ids seen in @ids. */
static guint
open_in (RelaisSpool *spool,
         Device      *d,
         const char  *dossier,
         GHashTable  *ids)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) names = relais_spool_list_in (spool, &error);
  g_autoptr(RelaisDossierKeys) keys = relais_spool_get_keys (spool, dossier, &error);
  RelaisWrappedKey *w;
  OpenContext c = { dossier, NULL, keys };
  guint n_ops = 0;

  g_assert_no_error (error);
  g_assert_nonnull (keys);
  w = g_ptr_array_index (keys->keys, 0);
  c.key = relais_dossier_key_unwrap (g_bytes_get_data (w->wrapped_key, NULL),
                                     g_bytes_get_size (w->wrapped_key), dossier, w->epoch,
                                     d->keys->box_pk, d->keys->box_sk, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < names->len; i++)
    {
      g_autoptr(GBytes) e = relais_spool_read_in (spool, g_ptr_array_index (names, i), &error);
      g_autoptr(RelaisChangeset) cs = NULL;
      char *hex;

      g_assert_no_error (error);
      cs = relais_changeset_open (g_bytes_get_data (e, NULL), g_bytes_get_size (e), dossier,
                                  open_key, open_author, &c, &error);
      g_assert_no_error (error);
      n_ops += cs->ops->len;
      hex = envelope_hex_id (e);
      g_assert_false (g_hash_table_contains (ids, hex));
      g_hash_table_add (ids, hex);
    }
  relais_dossier_key_free (c.key);
  return n_ops;
}

static guint count_files (const char *spool_dir, const char *sub);

static void
test_server_spool_share (void)
{
  Server *s;
  g_autoptr(Device) a = NULL;
  g_autoptr(Device) b = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *va = relais_test_make_tmpdir ("relais-spool-a");
  g_autofree char *vb = relais_test_make_tmpdir ("relais-spool-b");
  g_autoptr(RelaisSpool) sa = NULL;
  g_autoptr(RelaisSpool) sb = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint8 *key = relais_dossier_key_new ();
  RelaisExchangeReport report;
  RelaisDirectoryUser *found = NULL;
  g_autoptr(GPtrArray) users = NULL;

  SKIP_WITHOUT_SERVER ();
  s = server_new ();
  a = new_user (s, "Aïcha Benali", "CCAS Nord");
  b = new_user (s, "Bruno Carré", "Mission Locale Sud");
  sa = device_spool (s, a, va);
  sb = device_spool (s, b, vb);

  /* A registers a dossier and writes 30 change sets, offline first. */
  members = member_wraps (key, DOSSIER, a);
  g_assert_true (relais_spool_add_registration (sa, DOSSIER, members, NULL, &error));
  for (guint i = 0; i < 30; i++)
    {
      g_autoptr(GBytes) e = seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 3);

      g_assert_true (relais_spool_add_out (sa, e, &error));
    }
  g_assert_no_error (error);
  g_assert_cmpuint (relais_spool_count_pending (sa), ==, 31);
  g_assert_true (relais_spool_exchange (sa, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.registered, ==, 1);
  g_assert_cmpuint (report.pushed, ==, 30);
  g_assert_cmpuint (report.refused, ==, 0);
  g_assert_cmpuint (report.pulled, ==, 0);
  g_assert_cmpuint (relais_spool_count_pending (sa), ==, 0);
  g_assert_cmpint (relais_spool_get_last_success (sa), >, 0);
  g_assert_null (relais_spool_get_last_error (sa));

  /* B is not a member yet: nothing reaches B. */
  g_assert_true (relais_spool_exchange (sb, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.pulled, ==, 0);

  /* A finds B in the directory of B's organisation and shares. */
  users = relais_client_users (a->client, "Mission Locale Sud", NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < users->len; i++)
    if (g_strcmp0 (((RelaisDirectoryUser *) g_ptr_array_index (users, i))->user_id, b->user_id) == 0)
      found = g_ptr_array_index (users, i);
  g_assert_nonnull (found);
  g_assert_true (found->has_keys);
  g_assert_cmpstr (found->name, ==, "Bruno Carré");
  g_assert_cmpmem (found->box_pk, 32, b->keys->box_pk, 32);
  {
    g_autoptr(GPtrArray) share = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
    g_autoptr(GBytes) wrapped = relais_dossier_key_wrap (key, DOSSIER, 1, found->box_pk);

    g_ptr_array_add (share, relais_wrapped_key_new (NULL, 1, wrapped));
    g_assert_true (relais_client_dossier_share (a->client, DOSSIER, b->user_id, share, NULL, &error));
    g_assert_no_error (error);
  }

  /* B pulls the whole dossier with its keys, and opens every change set. */
  g_assert_true (relais_spool_exchange (sb, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.pulled, ==, 30);
  g_assert_cmpuint (open_in (sb, b, DOSSIER, ids), ==, 90);
  g_assert_cmpuint (g_hash_table_size (ids), ==, 30);
  /* Again: nothing new, nothing doubled. */
  g_assert_true (relais_spool_exchange (sb, &report, NULL, &error));
  g_assert_cmpuint (report.pulled, ==, 0);
  {
    g_autoptr(GPtrArray) names = relais_spool_list_in (sb, &error);

    g_assert_cmpuint (names->len, ==, 30);
  }

  /* B answers with a change set of its own; A pulls exactly that one. */
  {
    g_autoptr(GBytes) e = seal_one (DOSSIER, 1, key, b->user_id, b->device_id, b->keys->sign_sk, 2);
    g_autoptr(GHashTable) ids_a = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

    g_assert_true (relais_spool_add_out (sb, e, &error));
    g_assert_true (relais_spool_exchange (sb, &report, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (report.pushed, ==, 1);
    g_assert_true (relais_spool_exchange (sa, &report, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (report.pulled, ==, 1);
    g_assert_cmpuint (open_in (sa, a, DOSSIER, ids_a), ==, 2);
  }

  /* A change set the server refuses for good moves to refused/, is
   * counted, and this exchange does not claim success; the next one, with
   * nothing refused left to send, does. */
  {
    g_autoptr(GBytes) forged = seal_one (DOSSIER, 1, key, a->user_id, a->device_id,
                                         b->keys->sign_sk, 1);
    g_autofree char *last = NULL;
    gint64 before = relais_spool_get_last_success (sa);

    g_assert_true (relais_spool_add_out (sa, forged, &error));
    g_assert_false (relais_spool_exchange (sa, &report, NULL, &error));
    g_assert_nonnull (error);
    g_assert_false (relais_client_error_is_transient (error));
    g_assert_cmpuint (report.refused, ==, 1);
    g_assert_cmpuint (relais_spool_count_pending (sa), ==, 0);
    g_assert_cmpuint (count_files (relais_spool_get_dir (sa), "refused"), ==, 1);
    last = relais_spool_get_last_error (sa);
    g_assert_cmpstr (last, ==, error->message);
    g_assert_cmpint (relais_spool_get_last_success (sa), ==, before);
    g_clear_error (&error);
    g_assert_true (relais_spool_exchange (sa, &report, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (report.refused, ==, 0);
  }

  /* B queues the registration of a dossier A already made alone: refused
   * (not a member), set aside, counted; the pull goes on all the same. */
  {
    g_autoptr(GPtrArray) a_only = member_wraps (key, "dossier-of-a-alone", a);
    g_autoptr(GPtrArray) b_claims = member_wraps (key, "dossier-of-a-alone", b);
    g_autoptr(GBytes) e = seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 1);

    g_assert_true (relais_client_dossier_create (a->client, "dossier-of-a-alone", a_only, NULL,
                                                 NULL, &error));
    g_assert_no_error (error);
    /* The forged one was set aside: A's exchange completes. */
    g_assert_true (relais_spool_add_out (sa, e, &error));
    g_assert_true (relais_spool_exchange (sa, &report, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (report.pushed, ==, 1);
    g_assert_true (relais_spool_add_registration (sb, "dossier-of-a-alone", b_claims, NULL, &error));
    g_assert_false (relais_spool_exchange (sb, &report, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_FORBIDDEN);
    g_clear_error (&error);
    g_assert_cmpuint (report.registered, ==, 0);
    g_assert_cmpuint (report.refused, ==, 1);
    g_assert_cmpuint (report.pulled, ==, 1);
    g_assert_cmpuint (relais_spool_count_pending (sb), ==, 0);
    g_assert_cmpuint (count_files (relais_spool_get_dir (sb), "refused"), ==, 1);
  }

  /* Revoked: the exchange wipes the spool and says so. */
  g_free (server_admin (s, "device", "revoke", b->device_id, NULL));
  g_assert_false (relais_spool_exchange (sb, &report, NULL, &error));
  g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_REVOKED);
  g_assert_false (g_file_test (relais_spool_get_dir (sb), G_FILE_TEST_EXISTS));

  relais_dossier_key_free (key);
  server_free (s);
  relais_test_rm_rf (va);
  relais_test_rm_rf (vb);
}

typedef struct {
  RelaisSpool          *spool;
  RelaisExchangeReport  report;
  gboolean              ok;
  GError               *error;
} ExchangeThread;

static gpointer
exchange_thread (gpointer data)
{
  ExchangeThread *t = data;

  t->ok = relais_spool_exchange (t->spool, &t->report, NULL, &t->error);
  return NULL;
}

static guint
count_files (const char *spool_dir,
             const char *sub)
{
  g_autofree char *dir = g_build_filename (spool_dir, sub, NULL);
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  while (d != NULL && g_dir_read_name (d) != NULL)
    n++;
  return n;
}

/* The server dies (SIGKILL) in the middle of a push and of a pull; after
 * a restart the next exchanges converge: every change set once on the
 * other side, nothing left behind. */
static void
test_server_killed (void)
{
  Server *s;
  g_autoptr(Device) a = NULL;
  g_autoptr(Device) a2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *va = relais_test_make_tmpdir ("relais-kill-a");
  g_autofree char *vb = relais_test_make_tmpdir ("relais-kill-b");
  g_autoptr(RelaisSpool) sa = NULL;
  g_autoptr(RelaisSpool) sb = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GHashTable) written = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint8 *key = relais_dossier_key_new ();
  const guint n = 1200;
  RelaisExchangeReport report;
  ExchangeThread t = { 0 };
  GThread *thread;
  guint pushed_total = 0, pulled_total = 0;
  guint16 port;

  SKIP_WITHOUT_SERVER ();
  s = server_new ();
  port = s->port;
  a = new_user (s, "Aïcha Benali", "CCAS Nord");
  {
    g_autofree char *code2 = server_admin (s, "user", "code", a->user_id, NULL);

    a2 = device_enrol (s, code2);
  }
  sa = device_spool (s, a, va);
  sb = device_spool (s, a2, vb);
  members = member_wraps (key, DOSSIER, a);
  g_assert_true (relais_spool_add_registration (sa, DOSSIER, members, NULL, &error));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GBytes) e = seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 2);

      g_assert_true (relais_spool_add_out (sa, e, &error));
      g_hash_table_add (written, envelope_hex_id (e));
    }
  g_assert_no_error (error);

  /* Kill during the push, once some batch has left out/. */
  t.spool = sa;
  thread = g_thread_new ("exchange", exchange_thread, &t);
  while (count_files (relais_spool_get_dir (sa), "out") == n
         && count_files (relais_spool_get_dir (sa), "register") == 1)
    g_usleep (1000);
  while (count_files (relais_spool_get_dir (sa), "out") == n && !t.ok && t.error == NULL)
    g_usleep (1000);
  server_stop (s, SIGKILL);
  g_thread_join (thread);
  g_test_message ("push killed: ok %d, pushed %u, %s", t.ok, t.report.pushed,
                  t.error != NULL ? t.error->message : "");
  if (!t.ok)
    {
      g_assert_true (relais_client_error_is_transient (t.error));
      g_assert_cmpint (relais_spool_get_last_success (sa), ==, 0);
    }
  pushed_total += t.report.pushed;
  g_clear_error (&t.error);

  server_start (s, port);
  g_assert_true (relais_spool_exchange (sa, &report, NULL, &error));
  g_assert_no_error (error);
  pushed_total += report.pushed;
  g_assert_cmpuint (relais_spool_count_pending (sa), ==, 0);
  /* A change set whose answer was lost is pushed again and counted once
   * more as a duplicate: at least n, never fewer. */
  g_assert_cmpuint (pushed_total, >=, n);

  /* Kill during the pull, once some envelopes are in in/. */
  memset (&t, 0, sizeof t);
  t.spool = sb;
  thread = g_thread_new ("exchange", exchange_thread, &t);
  while (count_files (relais_spool_get_dir (sb), "in") == 0 && !t.ok && t.error == NULL)
    g_usleep (500);
  server_stop (s, SIGKILL);
  g_thread_join (thread);
  g_test_message ("pull killed: ok %d, pulled %u, %s", t.ok, t.report.pulled,
                  t.error != NULL ? t.error->message : "");
  pulled_total += t.report.pulled;
  g_clear_error (&t.error);

  server_start (s, port);
  g_assert_true (relais_spool_exchange (sb, &report, NULL, &error));
  g_assert_no_error (error);
  pulled_total += report.pulled;
  g_assert_cmpuint (pulled_total, ==, n);
  g_assert_cmpuint (open_in (sb, a2, DOSSIER, ids), ==, 2 * n);
  g_assert_cmpuint (g_hash_table_size (ids), ==, n);
  {
    GHashTableIter iter;
    gpointer id;

    g_hash_table_iter_init (&iter, written);
    while (g_hash_table_iter_next (&iter, &id, NULL))
      g_assert_true (g_hash_table_contains (ids, id));
  }
  /* And once more: nothing new. */
  g_assert_true (relais_spool_exchange (sb, &report, NULL, &error));
  g_assert_cmpuint (report.pulled, ==, 0);
  g_assert_cmpuint (count_files (relais_spool_get_dir (sb), "in"), ==, n);

  relais_dossier_key_free (key);
  server_free (s);
  relais_test_rm_rf (va);
  relais_test_rm_rf (vb);
}

/* A disk that refuses the pulled envelopes (here a file size limit, as a
 * full disk would): the exchange fails, nothing half-written is left under
 * a name, the cursor stays; with room again, the next one converges. */
static void
test_server_disk_full (void)
{
  Server *s;
  g_autoptr(Device) a = NULL;
  g_autoptr(Device) a2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) results = NULL;
  g_autofree char *vault = relais_test_make_tmpdir ("relais-client-full");
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint8 *key = relais_dossier_key_new ();
  RelaisExchangeReport report;
  struct rlimit saved, small;
  void (*old_handler) (int);

  SKIP_WITHOUT_SERVER ();
  s = server_new ();
  a = new_user (s, "Aïcha Benali", "CCAS Nord");
  {
    g_autofree char *code2 = server_admin (s, "user", "code", a->user_id, NULL);

    a2 = device_enrol (s, code2);
  }
  members = member_wraps (key, DOSSIER, a);
  g_assert_true (relais_client_dossier_create (a->client, DOSSIER, members, NULL, NULL, &error));
  for (guint i = 0; i < 50; i++)
    g_ptr_array_add (batch, seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 20));
  results = relais_client_push (a->client, batch, NULL, &error);
  g_assert_no_error (error);
  spool = device_spool (s, a2, vault);

  /* Envelopes of 20 operations pass 2,000 bytes; state.json does not. */
  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved), ==, 0);
  small = saved;
  small.rlim_cur = 2000;
  old_handler = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &small), ==, 0);
  g_assert_false (relais_spool_exchange (spool, &report, NULL, &error));
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved), ==, 0);
  signal (SIGXFSZ, old_handler);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_cmpuint (report.pulled, ==, 0);
  g_assert_cmpuint (count_files (relais_spool_get_dir (spool), "in"), ==, 0);
  g_assert_cmpint (relais_spool_get_last_success (spool), ==, 0);
  {
    g_autofree char *last = relais_spool_get_last_error (spool);

    g_assert_nonnull (last);
  }

  g_assert_true (relais_spool_exchange (spool, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.pulled, ==, 50);
  g_assert_cmpuint (open_in (spool, a2, DOSSIER, ids), ==, 50 * 20);
  {
    g_autofree char *last = relais_spool_get_last_error (spool);

    g_assert_null (last);
  }

  relais_dossier_key_free (key);
  server_free (s);
  relais_test_rm_rf (vault);
}

/* Client throughput against the real server (SQLite store): pushes of 100
 * change sets of 20 operations, then pulls of 500 by another device. */
static void
test_server_throughput (void)
{
  Server *s;
  g_autoptr(Device) a = NULL;
  g_autoptr(Device) a2 = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  guint8 *key = relais_dossier_key_new ();
  const guint n = g_test_slow () ? 10000 : 2000;
  g_autofree char *cursor = NULL;
  gboolean more = TRUE;
  guint pulled = 0;
  gint64 t0, t1, t2;

  SKIP_WITHOUT_SERVER ();
  s = server_new ();
  a = new_user (s, "Aïcha Benali", "CCAS Nord");
  {
    g_autofree char *code2 = server_admin (s, "user", "code", a->user_id, NULL);

    a2 = device_enrol (s, code2);
  }
  members = member_wraps (key, DOSSIER, a);
  g_assert_true (relais_client_dossier_create (a->client, DOSSIER, members, NULL, NULL, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (all, seal_one (DOSSIER, 1, key, a->user_id, a->device_id, a->keys->sign_sk, 20));

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i += 100)
    {
      g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_autoptr(GPtrArray) results = NULL;

      for (guint j = i; j < MIN (n, i + 100); j++)
        g_ptr_array_add (batch, g_bytes_ref (g_ptr_array_index (all, j)));
      results = relais_client_push (a->client, batch, NULL, &error);
      g_assert_no_error (error);
      for (guint j = 0; j < results->len; j++)
        g_assert_cmpint (((RelaisPushResult *) g_ptr_array_index (results, j))->status, ==, RELAIS_PUSH_STORED);
    }
  t1 = g_get_monotonic_time ();
  while (more)
    {
      g_autoptr(RelaisPullPage) page = relais_client_pull (a2->client, cursor, 500, NULL, &error);

      g_assert_no_error (error);
      pulled += page->changesets->len;
      g_free (cursor);
      cursor = g_strdup (page->cursor);
      more = page->more;
    }
  t2 = g_get_monotonic_time ();
  g_assert_cmpuint (pulled, ==, n);
  g_test_message ("client push %u change sets (20 ops, %zu bytes each): %.0f change sets/s",
                  n, g_bytes_get_size (g_ptr_array_index (all, 0)), n / ((t1 - t0) / 1e6));
  g_test_message ("client pull %u change sets: %.0f change sets/s", n, n / ((t2 - t1) / 1e6));

  /* The same pull through the spool: every envelope written whole to in/. */
  {
    g_autofree char *vault = relais_test_make_tmpdir ("relais-client-bench");
    g_autoptr(RelaisSpool) spool = device_spool (s, a2, vault);
    RelaisExchangeReport report;

    t1 = g_get_monotonic_time ();
    g_assert_true (relais_spool_exchange (spool, &report, NULL, &error));
    g_assert_no_error (error);
    t2 = g_get_monotonic_time ();
    g_assert_cmpuint (report.pulled, ==, n);
    g_test_message ("spool exchange pulling %u change sets into in/: %.0f change sets/s",
                    n, n / ((t2 - t1) / 1e6));
    /* An exchange with nothing new still looks at what waits in in/. */
    t1 = g_get_monotonic_time ();
    g_assert_true (relais_spool_exchange (spool, &report, NULL, &error));
    t2 = g_get_monotonic_time ();
    g_assert_cmpuint (report.pulled, ==, 0);
    g_test_message ("spool exchange with nothing new and %u envelopes waiting in in/: %.0f ms",
                    n, (t2 - t1) / 1e3);
    relais_test_rm_rf (vault);
  }
  relais_dossier_key_free (key);
  server_free (s);
}

/* HTTPS with a certificate made here: verified against --cacert, refused
 * without it, refused for a host name the certificate does not carry. */
static void
test_server_tls (void)
{
  Server *s;
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  g_autofree char *openssl_path = g_find_program_in_path ("openssl");
  g_autoptr(GSubprocess) openssl = NULL;
  int status;

  SKIP_WITHOUT_SERVER ();
  if (openssl_path == NULL)
    {
      g_test_skip ("openssl is not installed");
      return;
    }
  s = g_new0 (Server, 1);
  s->dir = relais_test_make_tmpdir ("relais-client-tls");
  s->store = g_strdup_printf ("sqlite:%s/store.db", s->dir);
  s->tls_cert = g_build_filename (s->dir, "cert.pem", NULL);
  s->tls_key = g_build_filename (s->dir, "key.pem", NULL);
  openssl = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                              &error, "openssl", "req", "-x509", "-newkey", "ec",
                              "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                              "-keyout", s->tls_key, "-out", s->tls_cert, "-days", "1",
                              "-subj", "/CN=relais-test", "-addext", "subjectAltName=IP:127.0.0.1",
                              NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_wait (openssl, NULL, &error));
  status = g_subprocess_get_exit_status (openssl);
  g_assert_cmpint (status, ==, 0);
  server_start (s, 0);
  g_assert_true (g_str_has_prefix (s->url, "https://"));

  {
    g_autoptr(RelaisClient) client = relais_client_new (s->url, s->tls_cert, &error);

    g_assert_no_error (error);
    g_assert_true (relais_client_health (client, NULL, &error));
    g_assert_no_error (error);
    /* The same handle again: the connection is kept alive. */
    g_assert_true (relais_client_health (client, NULL, &error));
    g_assert_no_error (error);
  }
  {
    g_autoptr(RelaisClient) client = relais_client_new (s->url, NULL, &error);

    g_assert_no_error (error);
    g_assert_false (relais_client_health (client, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK);
    g_clear_error (&error);
  }
  {
    g_autoptr(RelaisClient) client = NULL;

    url = g_strdup_printf ("https://localhost:%u", s->port);
    client = relais_client_new (url, s->tls_cert, &error);
    g_assert_no_error (error);
    g_assert_false (relais_client_health (client, NULL, &error));
    g_assert_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK);
    g_clear_error (&error);
  }
  server_free (s);
}

int
main (int argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  /* A killed server must not take the test with it through SIGPIPE. */
  signal (SIGPIPE, SIG_IGN);

  g_test_add_func ("/client/url/loopback-rule", test_loopback_rule);
  g_test_add_func ("/client/network/refused", test_connection_refused);
  g_test_add_func ("/client/network/signing", test_signing);
  g_test_add_func ("/client/network/statuses", test_statuses);
  g_test_add_func ("/client/network/push-answer-mismatch", test_push_answer_mismatch);
  g_test_add_func ("/client/network/cancel", test_cancel);
  g_test_add_func ("/client/parse/valid", test_parse_valid);
  g_test_add_func ("/client/parse/hostile", test_parse_hostile);
  g_test_add_func ("/client/parse/mutations", test_parse_mutations);
  g_test_add_func ("/client/spool/files", test_spool_files);
  g_test_add_func ("/client/spool/hostile", test_spool_hostile);
  g_test_add_func ("/client/spool/offline", test_spool_offline);
  g_test_add_func ("/client/spool/cursor-stuck", test_spool_cursor_stuck);
  g_test_add_func ("/client/spool/direct-pull", test_direct_pull);
  g_test_add_func ("/client/server/endpoints", test_server_client);
  g_test_add_func ("/client/server/spool-share", test_server_spool_share);
  g_test_add_func ("/client/server/killed-mid-exchange", test_server_killed);
  g_test_add_func ("/client/server/disk-full", test_server_disk_full);
  g_test_add_func ("/client/server/tls", test_server_tls);
  g_test_add_func ("/client/server/throughput", test_server_throughput);
  return g_test_run ();
}
