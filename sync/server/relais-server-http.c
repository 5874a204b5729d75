#define G_LOG_DOMAIN "relais-server"

#include "config.h"

#include "relais-server-http.h"

#include <arpa/inet.h>
#include <gio/gio.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Why a pool of threads and not a thread per connection: the stores keep
 * one database connection per thread, so a bounded pool bounds them, and
 * 200 devices syncing every few seconds keep each pool thread's epoll set
 * small.  More threads than the two cores, because handlers block on the
 * database (a commit) more than they compute (one signature check). */
#define DEFAULT_THREADS     8
#define CONNECTION_LIMIT    2048
#define CONNECTION_TIMEOUT  120     /* seconds of silence before a connection is dropped */
/* An endless chunked body past the limit is read and dropped for a while,
 * to answer 413 properly, then cut. */
#define DISCARD_LIMIT       (4 * (gsize) RELAIS_SERVER_MAX_BODY)
/* Request bodies held at once, all connections together: a crowd of
 * 110 MiB uploads gets 429 slow_down instead of the memory of the host.
 * Parsing takes about twice a body again, briefly. */
#define BODY_BUDGET         ((gsize) 768 * 1024 * 1024)

struct _RelaisServerHttp {
  struct MHD_Daemon *daemon;
  RelaisServerApi   *api;
  char              *url_host;   /* as the URL shows it: brackets around IPv6 */
  guint16            port;
  gboolean           tls;
  gboolean           quiet;
  char              *cert_pem;
  char              *key_pem;    /* wiped on stop */
  gsize              body_bytes; /* held by every request, atomic */
  gsize              body_budget;
};

/* One request, from its first line to the end of its answer. */
typedef struct {
  RelaisServerHttp *http;
  char             *uri;         /* path and query exactly as sent */
  gint64            start;       /* monotonic µs */
  gboolean          started;
  const char       *method;      /* one of a fixed set, for the log */
  const char       *route;
  GByteArray       *body;
  gsize             received;
  gboolean          too_large;
  gboolean          over_budget;
  gsize             held;        /* of http->body_bytes */
  guint             status;
  const char       *error_code;
  gsize             out_bytes;
} Request;

static void
request_release_body (Request *request)
{
  if (request->held > 0)
    __atomic_sub_fetch (&request->http->body_bytes, request->held, __ATOMIC_RELAXED);
  request->held = 0;
  if (request->body != NULL)
    g_byte_array_set_size (request->body, 0);
}

static void
request_free (Request *request)
{
  request_release_body (request);
  g_free (request->uri);
  if (request->body != NULL)
    g_byte_array_unref (request->body);
  g_free (request);
}

/* What the log may show of a method: clients choose it, so only names we
 * know, never their text. */
static const char *
method_name (const char *method)
{
  static const char *const known[] = { "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS" };

  for (guint i = 0; i < G_N_ELEMENTS (known); i++)
    if (g_strcmp0 (method, known[i]) == 0)
      return known[i];
  return "OTHER";
}

/* MHD calls this with the request line's URI before unescaping it: the
 * signature covers exactly these bytes. */
static void *
uri_logger (void *cls, const char *uri, struct MHD_Connection *connection)
{
  Request *request = g_new0 (Request, 1);

  request->http = cls;
  request->uri = g_strdup (uri != NULL ? uri : "");
  request->start = g_get_monotonic_time ();
  request->route = "other";
  return request;
}

static void
mhd_logger (void *cls, const char *format, va_list args)
{
  g_autofree char *message = g_strdup_vprintf (format, args);

  g_strchomp (message);
  fprintf (stderr, "relais-server: %s\n", message);
}

static void
request_completed (void                            *cls,
                   struct MHD_Connection           *connection,
                   void                           **req_cls,
                   enum MHD_RequestTerminationCode  toe)
{
  Request *request = *req_cls;
  RelaisServerHttp *http = cls;

  if (request == NULL)
    return;
  *req_cls = NULL;
  if (!http->quiet && request->started)
    {
      double ms = (g_get_monotonic_time () - request->start) / 1000.0;

      /* One fprintf: stdio locks the stream per call, so the lines of the
       * pool's threads do not interleave. */
      fprintf (stderr, "relais-server: %s %s %u%s%s in=%zu out=%zu %.1fms%s\n",
               request->method, request->route, request->status,
               request->error_code != NULL ? " " : "",
               request->error_code != NULL ? request->error_code : "",
               request->received, request->out_bytes, ms,
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (cut)");
    }
  request_free (request);
}

static enum MHD_Result
send_response (struct MHD_Connection *connection,
               Request               *request,
               RelaisServerResponse  *answer,
               gboolean               close)
{
  struct MHD_Response *response;
  enum MHD_Result ret;
  gsize len = answer->body_len;

  if (answer->body != NULL)
    {
      response = MHD_create_response_from_buffer_with_free_callback (answer->body_len, answer->body,
                                                                     g_free);
      answer->body = NULL;
      answer->body_len = 0;
      MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    }
  else
    response = MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
  if (response == NULL)
    return MHD_NO;
  MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (answer->allow != NULL)
    MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, answer->allow);
  if (answer->retry_after > 0)
    {
      char seconds[16];

      g_snprintf (seconds, sizeof seconds, "%u", answer->retry_after);
      MHD_add_response_header (response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
  if (close)
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONNECTION, "close");
  request->status = answer->status;
  request->error_code = answer->error_code;
  request->out_bytes = len;
  ret = MHD_queue_response (connection, answer->status, response);
  MHD_destroy_response (response);
  return ret;
}

static enum MHD_Result
send_error (struct MHD_Connection *connection,
            Request               *request,
            RelaisServerError      code,
            const char            *message,
            gboolean               close)
{
  RelaisServerResponse answer = { 0 };
  g_autoptr(GError) error = g_error_new_literal (RELAIS_SERVER_ERROR, code, message);
  enum MHD_Result ret;

  relais_server_response_set_error (&answer, error);
  ret = send_response (connection, request, &answer, close);
  relais_server_response_clear (&answer);
  return ret;
}

static enum MHD_Result
access_handler (void                  *cls,
                struct MHD_Connection *connection,
                const char            *url,
                const char            *method,
                const char            *version,
                const char            *upload_data,
                size_t                *upload_data_size,
                void                 **req_cls)
{
  RelaisServerHttp *http = cls;
  Request *request = *req_cls;
  RelaisServerRequest api_request;
  RelaisServerResponse answer = { 0 };
  enum MHD_Result ret;

  if (request == NULL)
    {
      request = uri_logger (http, url, connection);
      *req_cls = request;
    }

  if (!request->started)
    {
      const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND,
                                                        MHD_HTTP_HEADER_CONTENT_LENGTH);
      guint64 declared;

      request->started = TRUE;
      request->method = method_name (method);
      request->route = relais_server_api_route_name (request->uri);
      request->body = g_byte_array_new ();
      /* Said too large before it is sent: answer at once, read nothing
       * (MHD then closes the connection, the body being unread). */
      if (length != NULL
          && g_ascii_string_to_unsigned (length, 10, 0, G_MAXUINT64, &declared, NULL)
          && declared > RELAIS_SERVER_MAX_BODY)
        return send_error (connection, request, RELAIS_SERVER_ERROR_TOO_LARGE,
                           "The request body is larger than 110 MiB.", TRUE);
      return MHD_YES;
    }

  if (*upload_data_size > 0)
    {
      gsize size = *upload_data_size;

      request->received += size;
      *upload_data_size = 0;
      if (!request->too_large && request->body->len + size > RELAIS_SERVER_MAX_BODY)
        {
          request->too_large = TRUE;
          request_release_body (request);
        }
      if (!request->too_large && !request->over_budget)
        {
          if (__atomic_add_fetch (&http->body_bytes, size, __ATOMIC_RELAXED) > http->body_budget)
            {
              __atomic_sub_fetch (&http->body_bytes, size, __ATOMIC_RELAXED);
              request->over_budget = TRUE;
              request_release_body (request);
            }
          else
            {
              request->held += size;
              g_byte_array_append (request->body, (const guint8 *) upload_data, size);
            }
        }
      if ((request->too_large || request->over_budget) && request->received > DISCARD_LIMIT)
        return MHD_NO;
      return MHD_YES;
    }

  if (request->too_large)
    return send_error (connection, request, RELAIS_SERVER_ERROR_TOO_LARGE,
                       "The request body is larger than 110 MiB.", TRUE);
  if (request->over_budget)
    return send_error (connection, request, RELAIS_SERVER_ERROR_SLOW_DOWN,
                       "The server is receiving too much at once; try again shortly.", FALSE);

  api_request = (RelaisServerRequest) {
    .method = method,
    .uri = request->uri,
    .device = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Relais-Device"),
    .time = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Relais-Time"),
    .nonce = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Relais-Nonce"),
    .signature = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Relais-Signature"),
    .body = request->body->data,
    .body_len = request->body->len,
  };
  relais_server_api_handle (http->api, &api_request, &answer);
  request->route = answer.route;
  /* An enrolment body holds a code: single use, but no need to leave it
   * in freed memory. */
  if (strcmp (request->route, "/v1/enrol") == 0)
    sodium_memzero (request->body->data, request->body->len);
  /* The body is no longer needed while the answer is sent. */
  request_release_body (request);
  ret = send_response (connection, request, &answer, FALSE);
  relais_server_response_clear (&answer);
  return ret;
}

gboolean
relais_server_http_parse_listen (const char  *listen,
                                 char       **out_host,
                                 guint16     *out_port,
                                 GError     **error)
{
  const char *colon = listen != NULL ? strrchr (listen, ':') : NULL;
  g_autofree char *host = NULL;
  guint64 port;

  if (colon == NULL || colon == listen
      || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           "--listen takes HOST:PORT, for example 127.0.0.1:8443.");
      return FALSE;
    }
  host = g_strndup (listen, colon - listen);
  if (host[0] == '[')
    {
      gsize len = strlen (host);

      if (len < 3 || host[len - 1] != ']')
        {
          g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                               "--listen takes HOST:PORT, with an IPv6 address in brackets.");
          return FALSE;
        }
      memmove (host, host + 1, len - 2);
      host[len - 2] = '\0';
    }
  *out_host = g_steal_pointer (&host);
  *out_port = (guint16) port;
  return TRUE;
}

void
relais_server_http_stop (RelaisServerHttp *http)
{
  if (http == NULL)
    return;
  if (http->daemon != NULL)
    MHD_stop_daemon (http->daemon);
  g_free (http->url_host);
  g_free (http->cert_pem);
  if (http->key_pem != NULL)
    {
      sodium_memzero (http->key_pem, strlen (http->key_pem));
      g_free (http->key_pem);
    }
  g_free (http);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisServerHttp, relais_server_http_stop)

RelaisServerHttp *
relais_server_http_start (RelaisServerApi               *api,
                          const RelaisServerHttpConfig  *config,
                          GError                       **error)
{
  g_autoptr(RelaisServerHttp) http = g_new0 (RelaisServerHttp, 1);
  struct addrinfo hints = { 0 };
  struct addrinfo *found = NULL;
  struct sockaddr_storage address = { 0 };
  struct MHD_OptionItem options[16];
  const union MHD_DaemonInfo *info;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  guint n = 0;
  int rc;

  http->api = api;
  http->quiet = config->quiet;
  http->body_budget = BODY_BUDGET;
  /* For tests: a budget small enough to reach with one request. */
  if (g_getenv ("RELAIS_SERVER_BODY_BUDGET") != NULL)
    {
      guint64 budget;

      if (g_ascii_string_to_unsigned (g_getenv ("RELAIS_SERVER_BODY_BUDGET"), 10, 1, G_MAXSIZE,
                                      &budget, NULL))
        http->body_budget = budget;
    }

  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  rc = getaddrinfo (config->host, NULL, &hints, &found);
  if (rc != 0 || found == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "Cannot resolve the address to listen on: %s.", gai_strerror (rc));
      return NULL;
    }
  memcpy (&address, found->ai_addr, MIN (found->ai_addrlen, sizeof address));
  freeaddrinfo (found);
  if (address.ss_family == AF_INET6)
    {
      ((struct sockaddr_in6 *) &address)->sin6_port = htons (config->port);
      flags |= MHD_USE_IPv6;
      http->url_host = g_strdup_printf ("[%s]", config->host);
    }
  else
    {
      ((struct sockaddr_in *) &address)->sin_port = htons (config->port);
      http->url_host = g_strdup (config->host);
    }

  if (MHD_is_feature_supported (MHD_FEATURE_EPOLL) == MHD_YES)
    flags |= MHD_USE_EPOLL;

  if ((config->tls_cert != NULL) != (config->tls_key != NULL))
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           "--tls-cert and --tls-key go together.");
      return NULL;
    }
  if (config->tls_cert != NULL)
    {
      if (MHD_is_feature_supported (MHD_FEATURE_TLS) != MHD_YES)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                               "This libmicrohttpd has no TLS support.");
          return NULL;
        }
      if (!g_file_get_contents (config->tls_cert, &http->cert_pem, NULL, error)
          || !g_file_get_contents (config->tls_key, &http->key_pem, NULL, error))
        return NULL;
      flags |= MHD_USE_TLS;
      http->tls = TRUE;
      options[n++] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_CERT, 0, http->cert_pem };
      options[n++] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_KEY, 0, http->key_pem };
    }

  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_SOCK_ADDR, 0, &address };
  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_THREAD_POOL_SIZE,
                                           config->threads > 0 ? config->threads : DEFAULT_THREADS,
                                           NULL };
  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, NULL };
  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT, NULL };
  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL };
  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL };
  options[n++] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };
  g_assert (n <= G_N_ELEMENTS (options));

  http->daemon = MHD_start_daemon (flags, 0, NULL, NULL,
                                   access_handler, http,
                                   MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, http,
                                   MHD_OPTION_URI_LOG_CALLBACK, uri_logger, http,
                                   MHD_OPTION_NOTIFY_COMPLETED, request_completed, http,
                                   MHD_OPTION_ARRAY, options,
                                   MHD_OPTION_END);
  if (http->daemon == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "Cannot listen on %s:%u (is the address in use, or the certificate wrong?).",
                   http->url_host, config->port);
      return NULL;
    }
  info = MHD_get_daemon_info (http->daemon, MHD_DAEMON_INFO_BIND_PORT);
  http->port = info != NULL && info->port != 0 ? info->port : config->port;
  return g_steal_pointer (&http);
}

char *
relais_server_http_get_url (RelaisServerHttp *http)
{
  return g_strdup_printf ("%s://%s:%u", http->tls ? "https" : "http", http->url_host, http->port);
}

void
relais_server_signals_block (void)
{
  sigset_t set;

  signal (SIGPIPE, SIG_IGN);
  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
}

int
relais_server_signals_wait (void)
{
  sigset_t set;
  int sig = 0;

  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  while (sigwait (&set, &sig) != 0)
    ;
  return sig;
}
