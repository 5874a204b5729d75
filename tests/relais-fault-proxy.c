#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relais-fault-proxy.h"

/* Plain sockets and one thread per connection rather than
 * GSocketService: the tests block in g_spawn_sync() while relaisctl talks
 * through the proxy, so nothing may depend on a main loop. */

#define MAX_HEAD (64 * 1024)

typedef struct _Conn Conn;

struct _RelaisFaultProxy {
  int        listen_fd;
  guint16    port;
  GThread   *accept_thread;

  GMutex     lock;
  gboolean   stopping;
  guint16    upstream_port;
  RelaisFaultMode mode;
  guint      param;
  char      *match;
  guint      skip;        /* matching requests to let pass first */
  guint      remaining;   /* 0: until changed */
  guint      counts[RELAIS_FAULT_N_MODES];
  guint      connections;
  GPtrArray *conns;       /* Conn, joined at free or when done */
};

/* Bytes read from a socket and not consumed yet. */
typedef struct {
  int         fd;
  GByteArray *buf;
  gboolean    eof;
} Reader;

struct _Conn {
  RelaisFaultProxy *proxy;
  GThread          *thread;
  int               client_fd;
  int               upstream_fd;
  gboolean          done;
  Reader            client;
  Reader            upstream;
};

/* One HTTP message as read: its raw head and body, forwarded verbatim
 * (but for the Expect header, see below). */
typedef struct {
  GByteArray *head;
  GByteArray *body;
  char       *first_line;
  int         status;           /* answers only */
  gsize       length;           /* Content-Length */
  gboolean    has_length;
  gboolean    chunked;
  gboolean    close;            /* Connection: close, or body ended by close */
  gboolean    expect_continue;
} Message;

static void
message_clear (Message *msg)
{
  g_clear_pointer (&msg->head, g_byte_array_unref);
  g_clear_pointer (&msg->body, g_byte_array_unref);
  g_clear_pointer (&msg->first_line, g_free);
  memset (msg, 0, sizeof *msg);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Message, message_clear)

/* ---- Sockets ---------------------------------------------------------- */

static gboolean
reader_fill (Reader *r)
{
  guint8 chunk[16384];
  ssize_t n;

  if (r->eof || r->fd < 0)
    return FALSE;
  do
    n = recv (r->fd, chunk, sizeof chunk, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    {
      r->eof = TRUE;
      return FALSE;
    }
  g_byte_array_append (r->buf, chunk, (guint) n);
  return TRUE;
}

/* Moves @n bytes from @r to @out (reading as needed). */
static gboolean
reader_take (Reader     *r,
             gsize       n,
             GByteArray *out)
{
  while (r->buf->len < n)
    if (!reader_fill (r))
      return FALSE;
  g_byte_array_append (out, r->buf->data, (guint) n);
  g_byte_array_remove_range (r->buf, 0, (guint) n);
  return TRUE;
}

static gssize
find_bytes (const GByteArray *buf,
            const char       *needle)
{
  gsize len = strlen (needle);

  for (gsize i = 0; i + len <= buf->len; i++)
    if (memcmp (buf->data + i, needle, len) == 0)
      return (gssize) i;
  return -1;
}

/* Moves one line (with its CRLF) to @out. */
static gboolean
reader_take_line (Reader     *r,
                  GByteArray *out,
                  char      **out_line)
{
  gssize end;

  while ((end = find_bytes (r->buf, "\r\n")) < 0)
    {
      if (r->buf->len > MAX_HEAD || !reader_fill (r))
        return FALSE;
    }
  if (out_line != NULL)
    *out_line = g_strndup ((const char *) r->buf->data, (gsize) end);
  return reader_take (r, (gsize) end + 2, out);
}

static gboolean
send_all (int           fd,
          const guint8 *data,
          gsize         len)
{
  while (len > 0)
    {
      ssize_t n = send (fd, data, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= (gsize) n;
    }
  return TRUE;
}

static int
connect_upstream (guint16 port)
{
  struct sockaddr_in addr = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;

  if (fd < 0)
    return -1;
  addr.sin_family = AF_INET;
  addr.sin_port = htons (port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    {
      close (fd);
      return -1;
    }
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---- HTTP framing ----------------------------------------------------- */

/* Reads a message's head, up to the empty line, and notes its framing:
 * Content-Length, chunked transfer coding, or (answers only) the end of
 * the connection. */
static gboolean
read_head (Reader  *r,
           Message *msg)
{
  g_autofree char *first = NULL;

  msg->head = g_byte_array_new ();

  if (!reader_take_line (r, msg->head, &first))
    return FALSE;
  msg->first_line = g_steal_pointer (&first);
  for (;;)
    {
      g_autofree char *line = NULL;
      char *colon;
      guint before = msg->head->len;

      if (!reader_take_line (r, msg->head, &line))
        return FALSE;
      if (msg->head->len > MAX_HEAD)
        return FALSE;
      if (*line == '\0')
        break;
      colon = strchr (line, ':');
      if (colon == NULL)
        continue;
      *colon = '\0';
      g_strstrip (colon + 1);
      if (g_ascii_strcasecmp (line, "Content-Length") == 0)
        {
          guint64 n = 0;

          if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, G_MAXUINT32, &n, NULL))
            return FALSE;
          msg->length = (gsize) n;
          msg->has_length = TRUE;
        }
      else if (g_ascii_strcasecmp (line, "Transfer-Encoding") == 0
               && g_ascii_strcasecmp (colon + 1, "chunked") == 0)
        msg->chunked = TRUE;
      else if (g_ascii_strcasecmp (line, "Connection") == 0
               && g_ascii_strcasecmp (colon + 1, "close") == 0)
        msg->close = TRUE;
      else if (g_ascii_strcasecmp (line, "Expect") == 0
               && g_ascii_strcasecmp (colon + 1, "100-continue") == 0)
        {
          /* The proxy says "continue" itself and drops the header, so
           * that it holds the whole request before the server sees any
           * of it (the faults need the request whole). */
          msg->expect_continue = TRUE;
          g_byte_array_set_size (msg->head, before);
        }
    }
  return TRUE;
}

static gboolean
read_body (Reader   *r,
           Message  *msg,
           gsize     length,
           gboolean  chunked,
           gboolean  until_close)
{
  msg->body = g_byte_array_new ();
  if (chunked)
    {
      for (;;)
        {
          g_autofree char *line = NULL;
          guint64 size = 0;
          char *end = NULL;

          if (!reader_take_line (r, msg->body, &line))
            return FALSE;
          size = g_ascii_strtoull (line, &end, 16);
          if (end == line || size > G_MAXUINT32)
            return FALSE;
          if (size == 0)
            {
              /* Trailers, up to the empty line. */
              for (;;)
                {
                  g_autofree char *trailer = NULL;

                  if (!reader_take_line (r, msg->body, &trailer))
                    return FALSE;
                  if (*trailer == '\0')
                    return TRUE;
                }
            }
          if (!reader_take (r, (gsize) size + 2, msg->body))
            return FALSE;
        }
    }
  if (until_close)
    {
      while (reader_fill (r))
        ;
      g_byte_array_append (msg->body, r->buf->data, r->buf->len);
      g_byte_array_set_size (r->buf, 0);
      msg->close = TRUE;
      return TRUE;
    }
  return reader_take (r, length, msg->body);
}

/* Requests without a length have no body. */
static gboolean
read_request_body (Reader  *r,
                   Message *msg)
{
  return read_body (r, msg, msg->length, msg->chunked, FALSE);
}

/* An answer to HEAD, or 1xx/204/304, has no body. */
static gboolean
read_answer (Reader     *r,
             Message    *msg,
             gboolean    is_head)
{
  g_auto(GStrv) parts = NULL;

  if (!read_head (r, msg))
    return FALSE;
  parts = g_strsplit (msg->first_line, " ", 3);
  msg->status = parts[0] != NULL && parts[1] != NULL ? atoi (parts[1]) : 0;
  if (msg->status < 100)
    return FALSE;
  if (is_head || msg->status < 200 || msg->status == 204 || msg->status == 304)
    {
      msg->body = g_byte_array_new ();
      return TRUE;
    }
  return read_body (r, msg, msg->length, msg->chunked, !msg->chunked && !msg->has_length);
}

/* ---- Faults ----------------------------------------------------------- */

static RelaisFaultMode
take_fault (RelaisFaultProxy *proxy,
            const char       *request_line,
            guint            *out_param)
{
  RelaisFaultMode mode = RELAIS_FAULT_PASS;
  gboolean matches;

  g_mutex_lock (&proxy->lock);
  matches = proxy->mode != RELAIS_FAULT_PASS
            && (proxy->match == NULL
                || (request_line != NULL && g_str_has_prefix (request_line, proxy->match)));
  if (matches && proxy->skip > 0)
    proxy->skip--;
  else if (matches)
    {
      mode = proxy->mode;
      *out_param = proxy->param;
      if (proxy->remaining > 0 && --proxy->remaining == 0)
        {
          proxy->mode = RELAIS_FAULT_PASS;
          g_clear_pointer (&proxy->match, g_free);
        }
    }
  g_mutex_unlock (&proxy->lock);
  return mode;
}

static void
count (RelaisFaultProxy *proxy,
       RelaisFaultMode   mode)
{
  g_mutex_lock (&proxy->lock);
  proxy->counts[mode]++;
  g_mutex_unlock (&proxy->lock);
}

static void
conn_close_fds (Conn *conn)
{
  g_mutex_lock (&conn->proxy->lock);
  if (conn->client_fd >= 0)
    close (conn->client_fd);
  if (conn->upstream_fd >= 0)
    close (conn->upstream_fd);
  conn->client_fd = -1;
  conn->upstream_fd = -1;
  conn->client.fd = -1;
  conn->upstream.fd = -1;
  g_mutex_unlock (&conn->proxy->lock);
}

static void
conn_drop_upstream (Conn *conn)
{
  g_mutex_lock (&conn->proxy->lock);
  if (conn->upstream_fd >= 0)
    close (conn->upstream_fd);
  conn->upstream_fd = -1;
  conn->upstream.fd = -1;
  conn->upstream.eof = FALSE;
  g_byte_array_set_size (conn->upstream.buf, 0);
  g_mutex_unlock (&conn->proxy->lock);
}

static gboolean
conn_connect (Conn *conn)
{
  guint16 port;
  int fd;

  if (conn->upstream_fd >= 0)
    return TRUE;
  g_mutex_lock (&conn->proxy->lock);
  port = conn->proxy->upstream_port;
  g_mutex_unlock (&conn->proxy->lock);
  fd = connect_upstream (port);
  if (fd < 0)
    return FALSE;
  g_mutex_lock (&conn->proxy->lock);
  if (conn->proxy->stopping)
    {
      close (fd);
      fd = -1;
    }
  conn->upstream_fd = fd;
  conn->upstream.fd = fd;
  conn->upstream.eof = FALSE;
  g_mutex_unlock (&conn->proxy->lock);
  return fd >= 0;
}

/* Bytes to let through before a cut: @param, or half of @len. */
static gsize
cut_point (guint param,
           gsize len)
{
  if (param > 0)
    return MIN ((gsize) param, len > 0 ? len - 1 : 0);
  return len / 2;
}

/* One request and its answer.  FALSE: the connection is over. */
static gboolean
conn_exchange (Conn *conn)
{
  RelaisFaultProxy *proxy = conn->proxy;
  g_auto(Message) request = { 0 };
  g_auto(Message) answer = { 0 };
  RelaisFaultMode mode;
  guint param = 0;
  gboolean is_head;
  gboolean sent = FALSE;

  if (!read_head (&conn->client, &request))
    return FALSE;
  mode = take_fault (proxy, request.first_line, &param);
  if (mode == RELAIS_FAULT_REFUSE)
    {
      count (proxy, mode);
      return FALSE;
    }
  if (request.expect_continue)
    {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

      if (!send_all (conn->client_fd, (const guint8 *) cont, sizeof cont - 1))
        return FALSE;
    }
  if (!read_request_body (&conn->client, &request))
    return FALSE;
  if (mode == RELAIS_FAULT_DELAY)
    {
      /* Counted before waiting, so that a test can act while a request
       * is held here. */
      count (proxy, mode);
      g_usleep ((gulong) param * 1000);
    }

  /* A kept-alive upstream connection may have been closed by the server
   * meanwhile: then connect again, once. */
  for (guint attempt = 0; attempt < 2 && !sent; attempt++)
    {
      gboolean reused = conn->upstream_fd >= 0;

      if (!conn_connect (conn))
        return FALSE;
      if (mode == RELAIS_FAULT_CUT_REQUEST)
        {
          gsize cut;

          if (request.body->len > 0)
            {
              cut = cut_point (param, request.body->len);
              send_all (conn->upstream_fd, request.head->data, request.head->len);
              send_all (conn->upstream_fd, request.body->data, cut);
            }
          else
            {
              cut = cut_point (param, request.head->len);
              send_all (conn->upstream_fd, request.head->data, cut);
            }
          /* Let the server read what was sent before the cut. */
          g_usleep (50 * 1000);
          count (proxy, mode);
          return FALSE;
        }
      if (send_all (conn->upstream_fd, request.head->data, request.head->len)
          && send_all (conn->upstream_fd, request.body->data, request.body->len))
        {
          is_head = g_str_has_prefix (request.first_line, "HEAD ");
          for (;;)
            {
              message_clear (&answer);
              if (!read_answer (&conn->upstream, &answer, is_head))
                break;
              if (answer.status >= 200)
                {
                  sent = TRUE;
                  break;
                }
              /* 1xx: the proxy has already said continue. */
              if (!request.expect_continue
                  && !send_all (conn->client_fd, answer.head->data, answer.head->len))
                return FALSE;
            }
          if (sent)
            break;
          /* Nothing came back: on a fresh connection the server is gone
           * (or cut us); on a reused one, try once more. */
          if (answer.head != NULL && answer.head->len > 0)
            return FALSE;
        }
      conn_drop_upstream (conn);
      if (!reused)
        return FALSE;
    }
  if (!sent)
    return FALSE;

  switch (mode)
    {
    case RELAIS_FAULT_LOSE_RESPONSE:
      count (proxy, mode);
      return FALSE;
    case RELAIS_FAULT_CUT_RESPONSE:
      if (answer.body->len > 0)
        {
          send_all (conn->client_fd, answer.head->data, answer.head->len);
          send_all (conn->client_fd, answer.body->data, cut_point (param, answer.body->len));
        }
      else
        send_all (conn->client_fd, answer.head->data, cut_point (param, answer.head->len));
      count (proxy, mode);
      return FALSE;
    case RELAIS_FAULT_DELAY:
      g_usleep ((gulong) param * 1000);
      break;
    case RELAIS_FAULT_PASS:
    case RELAIS_FAULT_REFUSE:
    case RELAIS_FAULT_CUT_REQUEST:
    case RELAIS_FAULT_N_MODES:
    default:
      break;
    }

  /* Counted before the client can see the answer, so that a test that
   * reads the count after its request finds it. */
  if (mode == RELAIS_FAULT_PASS)
    count (proxy, mode);
  if (!send_all (conn->client_fd, answer.head->data, answer.head->len)
      || !send_all (conn->client_fd, answer.body->data, answer.body->len))
    return FALSE;
  return !answer.close && !request.close;
}

static gpointer
conn_thread (gpointer data)
{
  Conn *conn = data;

  while (conn_exchange (conn))
    ;
  conn_close_fds (conn);
  g_mutex_lock (&conn->proxy->lock);
  conn->done = TRUE;
  g_mutex_unlock (&conn->proxy->lock);
  return NULL;
}

static void
conn_free (Conn *conn)
{
  if (conn->thread != NULL)
    g_thread_join (conn->thread);
  if (conn->client_fd >= 0)
    close (conn->client_fd);
  if (conn->upstream_fd >= 0)
    close (conn->upstream_fd);
  g_byte_array_unref (conn->client.buf);
  g_byte_array_unref (conn->upstream.buf);
  g_free (conn);
}

/* Joins the threads of connections that are over. */
static void
reap (RelaisFaultProxy *proxy)
{
  g_autoptr(GPtrArray) finished = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);

  g_mutex_lock (&proxy->lock);
  for (guint i = proxy->conns->len; i > 0; i--)
    {
      Conn *conn = g_ptr_array_index (proxy->conns, i - 1);

      if (conn->done)
        g_ptr_array_add (finished, g_ptr_array_steal_index_fast (proxy->conns, i - 1));
    }
  g_mutex_unlock (&proxy->lock);
}

static gpointer
accept_thread (gpointer data)
{
  RelaisFaultProxy *proxy = data;

  for (;;)
    {
      int fd = accept4 (proxy->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      gboolean stopping, refuse;
      Conn *conn;
      int one = 1;

      g_mutex_lock (&proxy->lock);
      stopping = proxy->stopping;
      g_mutex_unlock (&proxy->lock);
      if (stopping)
        {
          if (fd >= 0)
            close (fd);
          break;
        }
      if (fd < 0)
        {
          if (errno == EINTR || errno == ECONNABORTED)
            continue;
          break;
        }
      reap (proxy);
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

      g_mutex_lock (&proxy->lock);
      proxy->connections++;
      /* Refusing every request: close at once, before reading anything. */
      refuse = proxy->mode == RELAIS_FAULT_REFUSE && proxy->match == NULL && proxy->skip == 0;
      g_mutex_unlock (&proxy->lock);
      if (refuse)
        {
          guint param;

          take_fault (proxy, NULL, &param);
          count (proxy, RELAIS_FAULT_REFUSE);
          close (fd);
          continue;
        }

      conn = g_new0 (Conn, 1);
      conn->proxy = proxy;
      conn->client_fd = fd;
      conn->upstream_fd = -1;
      conn->client.fd = fd;
      conn->client.buf = g_byte_array_new ();
      conn->upstream.fd = -1;
      conn->upstream.buf = g_byte_array_new ();
      g_mutex_lock (&proxy->lock);
      g_ptr_array_add (proxy->conns, conn);
      conn->thread = g_thread_new ("fault-proxy-conn", conn_thread, conn);
      g_mutex_unlock (&proxy->lock);
    }
  return NULL;
}

/* ---- Public ----------------------------------------------------------- */

RelaisFaultProxy *
relais_fault_proxy_new (guint16   upstream_port,
                        GError  **error)
{
  g_autofree RelaisFaultProxy *proxy = g_new0 (RelaisFaultProxy, 1);
  struct sockaddr_in addr = { 0 };
  socklen_t addr_len = sizeof addr;
  int one = 1;

  proxy->listen_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (proxy->listen_fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "socket: %s", g_strerror (errno));
      return NULL;
    }
  setsockopt (proxy->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (bind (proxy->listen_fd, (struct sockaddr *) &addr, sizeof addr) != 0
      || listen (proxy->listen_fd, 64) != 0
      || getsockname (proxy->listen_fd, (struct sockaddr *) &addr, &addr_len) != 0)
    {
      int saved = errno;

      close (proxy->listen_fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "listen: %s", g_strerror (saved));
      return NULL;
    }
  proxy->port = ntohs (addr.sin_port);
  proxy->upstream_port = upstream_port;
  proxy->mode = RELAIS_FAULT_PASS;
  g_mutex_init (&proxy->lock);
  proxy->conns = g_ptr_array_new ();
  proxy->accept_thread = g_thread_new ("fault-proxy", accept_thread, proxy);
  return g_steal_pointer (&proxy);
}

void
relais_fault_proxy_free (RelaisFaultProxy *proxy)
{
  if (proxy == NULL)
    return;

  g_mutex_lock (&proxy->lock);
  proxy->stopping = TRUE;
  /* shutdown() wakes the threads blocked in accept() and recv(). */
  shutdown (proxy->listen_fd, SHUT_RDWR);
  for (guint i = 0; i < proxy->conns->len; i++)
    {
      Conn *conn = g_ptr_array_index (proxy->conns, i);

      if (conn->client_fd >= 0)
        shutdown (conn->client_fd, SHUT_RDWR);
      if (conn->upstream_fd >= 0)
        shutdown (conn->upstream_fd, SHUT_RDWR);
    }
  g_mutex_unlock (&proxy->lock);

  g_thread_join (proxy->accept_thread);
  close (proxy->listen_fd);
  /* No new connection can appear now. */
  for (guint i = 0; i < proxy->conns->len; i++)
    conn_free (g_ptr_array_index (proxy->conns, i));
  g_ptr_array_unref (proxy->conns);
  g_free (proxy->match);
  g_mutex_clear (&proxy->lock);
  g_free (proxy);
}

guint16
relais_fault_proxy_get_port (RelaisFaultProxy *proxy)
{
  return proxy->port;
}

char *
relais_fault_proxy_get_url (RelaisFaultProxy *proxy)
{
  return g_strdup_printf ("http://127.0.0.1:%u", proxy->port);
}

void
relais_fault_proxy_set_upstream (RelaisFaultProxy *proxy,
                                 guint16           upstream_port)
{
  g_mutex_lock (&proxy->lock);
  proxy->upstream_port = upstream_port;
  g_mutex_unlock (&proxy->lock);
}

void
relais_fault_proxy_set_fault_after (RelaisFaultProxy *proxy,
                                    RelaisFaultMode   mode,
                                    guint             param,
                                    const char       *match,
                                    guint             skip,
                                    guint             n)
{
  g_return_if_fail (mode < RELAIS_FAULT_N_MODES);

  g_mutex_lock (&proxy->lock);
  proxy->mode = mode;
  proxy->param = param;
  g_free (proxy->match);
  proxy->match = g_strdup (match);
  proxy->skip = skip;
  proxy->remaining = n;
  g_mutex_unlock (&proxy->lock);
}

void
relais_fault_proxy_set_fault (RelaisFaultProxy *proxy,
                              RelaisFaultMode   mode,
                              guint             param,
                              const char       *match,
                              guint             n)
{
  relais_fault_proxy_set_fault_after (proxy, mode, param, match, 0, n);
}

guint
relais_fault_proxy_get_count (RelaisFaultProxy *proxy,
                              RelaisFaultMode   mode)
{
  guint n;

  g_return_val_if_fail (mode < RELAIS_FAULT_N_MODES, 0);

  g_mutex_lock (&proxy->lock);
  n = proxy->counts[mode];
  g_mutex_unlock (&proxy->lock);
  return n;
}

guint
relais_fault_proxy_get_connections (RelaisFaultProxy *proxy)
{
  guint n;

  g_mutex_lock (&proxy->lock);
  n = proxy->connections;
  g_mutex_unlock (&proxy->lock);
  return n;
}

void
relais_fault_proxy_reset_counts (RelaisFaultProxy *proxy)
{
  g_mutex_lock (&proxy->lock);
  memset (proxy->counts, 0, sizeof proxy->counts);
  proxy->connections = 0;
  g_mutex_unlock (&proxy->lock);
}
