#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* A fault-injecting HTTP/1.1 proxy for the sync tests: it listens on
 * 127.0.0.1 (a free port), forwards each request of a client to one
 * upstream server and its answer back, and misbehaves on demand, the way
 * a bad network and an unlucky timing do.  It reads the HTTP framing
 * (Content-Length, chunked bodies, keep-alive, Expect: 100-continue), so
 * that "after the server acted" means after the server's whole answer was
 * read, not after some bytes happened to pass.  Plain HTTP only.
 *
 * It runs in its own threads (one accepting, one per connection) and
 * needs no main loop: the tests spawn relaisctl synchronously. */

typedef enum {
  /* Forward everything unchanged. */
  RELAIS_FAULT_PASS,
  /* Close the client's connection at once, forwarding nothing. */
  RELAIS_FAULT_REFUSE,
  /* Forward the request whole, read the server's whole answer, then close
   * the client's connection without sending a byte of it: the server
   * acted, the client cannot know. */
  RELAIS_FAULT_LOSE_RESPONSE,
  /* Forward the headers and part of the request's body (the first
   * @param bytes, or half when @param is 0), then close both sides. */
  RELAIS_FAULT_CUT_REQUEST,
  /* Forward the request whole, then the answer's headers and part of its
   * body (@param bytes, or half), then close the client's connection. */
  RELAIS_FAULT_CUT_RESPONSE,
  /* Wait @param ms before forwarding the request, and again before
   * forwarding the answer; otherwise pass. */
  RELAIS_FAULT_DELAY,
  RELAIS_FAULT_N_MODES
} RelaisFaultMode;

typedef struct _RelaisFaultProxy RelaisFaultProxy;

/* Starts a proxy to http://127.0.0.1:@upstream_port.  Mode PASS. */
RelaisFaultProxy *relais_fault_proxy_new      (guint16            upstream_port,
                                               GError           **error);
/* Stops accepting, closes every connection, joins the threads. */
void              relais_fault_proxy_free     (RelaisFaultProxy  *proxy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisFaultProxy, relais_fault_proxy_free)

guint16           relais_fault_proxy_get_port (RelaisFaultProxy  *proxy);
/* "http://127.0.0.1:PORT", the URL clients enrol with. */
char             *relais_fault_proxy_get_url  (RelaisFaultProxy  *proxy);

/* Points the proxy at another upstream port (a restarted server). */
void              relais_fault_proxy_set_upstream (RelaisFaultProxy *proxy,
                                                   guint16           upstream_port);

/* From now on, applies @mode to requests whose "METHOD PATH" starts with
 * @match (e.g. "POST /v1/changesets", "GET /v1/changesets"; NULL: every
 * request), @count times (0: until the mode is changed again), then goes
 * back to PASS.  @param: the delay in ms, or the bytes to let through
 * before a cut (0: half).  Requests that do not match pass. */
void              relais_fault_proxy_set_fault (RelaisFaultProxy *proxy,
                                                RelaisFaultMode   mode,
                                                guint             param,
                                                const char       *match,
                                                guint             count);
/* The same, letting the first @skip matching requests pass (to cut the
 * second page of a pull, say). */
void              relais_fault_proxy_set_fault_after (RelaisFaultProxy *proxy,
                                                      RelaisFaultMode   mode,
                                                      guint             param,
                                                      const char       *match,
                                                      guint             skip,
                                                      guint             count);

/* How many times @mode was applied (PASS: requests forwarded whole both
 * ways; DELAY: counted when the wait starts, so a test can act while a
 * request is held), and how many connections were accepted in all. */
guint             relais_fault_proxy_get_count       (RelaisFaultProxy *proxy,
                                                      RelaisFaultMode   mode);
guint             relais_fault_proxy_get_connections (RelaisFaultProxy *proxy);
/* Resets every count. */
void              relais_fault_proxy_reset_counts    (RelaisFaultProxy *proxy);

G_END_DECLS
