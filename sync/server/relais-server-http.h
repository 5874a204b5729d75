#pragma once

#include <glib.h>

#include "relais-server-api.h"

G_BEGIN_DECLS

/* The HTTP side of relais-server: a libmicrohttpd daemon with a pool of
 * threads, optional TLS, whole request bodies up to 110 MiB handed to
 * relais_server_api_handle(), one log line per request on stderr (route
 * pattern, status, sizes, time: never an id in full, a name or a body). */

typedef struct {
  const char *host;        /* a numeric address or a name; "[::1]" allowed */
  guint16     port;        /* 0: any free port */
  const char *tls_cert;    /* PEM files, both or neither */
  const char *tls_key;
  guint       threads;     /* 0: the default */
  gboolean    quiet;       /* no per-request log lines */
} RelaisServerHttpConfig;

typedef struct _RelaisServerHttp RelaisServerHttp;

/* Parses "HOST:PORT" ("[::1]:8443", "127.0.0.1:0", "localhost:8080"). */
gboolean          relais_server_http_parse_listen (const char        *listen,
                                                   char             **out_host,
                                                   guint16           *out_port,
                                                   GError           **error);

/* Binds and starts serving; @api must outlive the daemon. */
RelaisServerHttp *relais_server_http_start (RelaisServerApi               *api,
                                            const RelaisServerHttpConfig  *config,
                                            GError                       **error);
/* "http://HOST:PORT" or "https://…", with the port actually bound. */
char             *relais_server_http_get_url (RelaisServerHttp *http);
/* Stops accepting, lets requests in flight end, frees everything. */
void              relais_server_http_stop (RelaisServerHttp *http);

/* Blocks SIGTERM and SIGINT in the calling thread (call it before any
 * thread starts, so that they all inherit the mask and only
 * relais_server_signals_wait() sees them) and ignores SIGPIPE. */
void              relais_server_signals_block (void);
/* Waits for SIGTERM or SIGINT; returns the signal. */
int               relais_server_signals_wait  (void);

G_END_DECLS
