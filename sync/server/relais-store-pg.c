#define G_LOG_DOMAIN "relais-store"

#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "relais-store-private.h"

/* The PostgreSQL store ("postgresql://…" or "postgres://…"), on libpq.
 *
 * Several servers may share one database (PROTOCOL.md §5): nothing is
 * cached but the cursor secret, which never changes once made.
 *
 * Threads: a pool of connections; a call takes an idle one (or connects),
 * runs its one transaction, and gives it back.  A connection that broke
 * is dropped; one found broken by the first statement of a call (a
 * database restart) is made again and the statement run once more.
 * Statements are prepared once per session; a push pipelines its
 * statements into two round trips.
 *
 * Isolation: READ COMMITTED, with explicit row locks where a call's
 * checks must still hold when it writes: change-set pushes lock the
 * dossier's row FOR SHARE, shares and rotations FOR UPDATE, so a push
 * never lands at an epoch a rotation has just retired.
 *
 * Sequence numbers: one sequence numbers change sets and joins
 * (members.joined_seq).  A pull may only ever see seq S once every
 * seq < S that will commit has committed, but nextval() hands numbers out
 * in call order, not commit order.  So a transaction takes the
 * transaction-level advisory lock SEQ_LOCK right before nextval() and
 * holds it until its commit: allocation and commit are serialized, and
 * commits become visible in seq order.  The lock is the last one a
 * transaction takes (row locks come first), so it cannot deadlock; it
 * costs one commit at a time for pushes and shares.  Creating a dossier
 * needs no lock: no change set of it can exist before it commits.
 *
 * Binary values travel as binary parameters and results (no hex). */

#define LOCK_CLASS  0x52454c53  /* "RELS" */
#define SCHEMA_LOCK 1
#define SEQ_LOCK    2
#define SCHEMA_VERSION 1
#define MAX_PARAMS 12

typedef struct {
  PGconn     *pg;
  GHashTable *prepared;  /* SQL text (static strings) -> statement number, from 1 */
} Conn;

typedef struct {
  RelaisStore parent;
  char       *uri;       /* never logged: it may hold a password */
  char       *password;  /* redacted from any message, just in case */
  GMutex      lock;      /* guards idle, secret */
  GPtrArray  *idle;      /* Conn */
  gboolean    have_secret;
  guint8      secret[32];
} RelaisStorePg;

/* The parameters of one statement: text, except bytea (binary). */
typedef struct {
  const char *values[MAX_PARAMS];
  int         lengths[MAX_PARAMS];
  int         formats[MAX_PARAMS];
  char        numbers[MAX_PARAMS][24];
  int         n;
} Params;

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PGresult, PQclear)

static const RelaisStoreVTable pg_vtable;

/* ---- Parameters and results ------------------------------------------ */

static void
p_text (Params     *p,
        const char *text)
{
  g_assert (p->n < MAX_PARAMS);
  p->values[p->n] = text;
  p->lengths[p->n] = 0;
  p->formats[p->n] = 0;
  p->n++;
}

static void
p_int (Params *p,
       gint64  value)
{
  g_assert (p->n < MAX_PARAMS);
  g_snprintf (p->numbers[p->n], sizeof p->numbers[p->n], "%" G_GINT64_FORMAT, value);
  p_text (p, p->numbers[p->n]);
}

static void
p_blob (Params     *p,
        const void *data,
        gsize       len)
{
  g_assert (p->n < MAX_PARAMS);
  g_assert (len <= G_MAXINT);
  /* libpq takes a NULL value for SQL NULL: an empty blob needs a pointer. */
  p->values[p->n] = data != NULL ? data : "";
  p->lengths[p->n] = (int) len;
  p->formats[p->n] = 1;
  p->n++;
}

static void
p_bytes (Params *p,
         GBytes *bytes)
{
  gsize len;
  const void *data = g_bytes_get_data (bytes, &len);

  p_blob (p, data, len);
}

/* Results come in binary: integers big-endian, of their type's width. */
static gint64
r_int (const PGresult *res,
       int             row,
       int             col)
{
  const guint8 *v = (const guint8 *) PQgetvalue (res, row, col);
  int len = PQgetlength (res, row, col);
  guint64 x = 0;

  if (PQgetisnull (res, row, col))
    return 0;
  for (int i = 0; i < len && i < 8; i++)
    x = (x << 8) | v[i];
  switch (len)
    {
    case 1: return (gint8) x;
    case 2: return (gint16) x;
    case 4: return (gint32) x;
    default: return (gint64) x;
    }
}

static gboolean
r_bool (const PGresult *res,
        int             row,
        int             col)
{
  return !PQgetisnull (res, row, col) && PQgetvalue (res, row, col)[0] != 0;
}

static char *
r_text (const PGresult *res,
        int             row,
        int             col)
{
  if (PQgetisnull (res, row, col))
    return NULL;
  return g_strndup (PQgetvalue (res, row, col), PQgetlength (res, row, col));
}

static gboolean
r_key (const PGresult *res,
       int             row,
       int             col,
       guint8          out[RELAIS_STORE_KEY_SIZE])
{
  if (PQgetisnull (res, row, col) || PQgetlength (res, row, col) != RELAIS_STORE_KEY_SIZE)
    {
      memset (out, 0, RELAIS_STORE_KEY_SIZE);
      return FALSE;
    }
  memcpy (out, PQgetvalue (res, row, col), RELAIS_STORE_KEY_SIZE);
  return TRUE;
}

static GBytes *
r_bytes (const PGresult *res,
         int             row,
         int             col)
{
  return g_bytes_new (PQgetvalue (res, row, col), PQgetlength (res, row, col));
}

/* ---- Errors ---------------------------------------------------------- */

/* libpq's messages name hosts and users, never passwords, but a message
 * could quote the connection string: cut the password out regardless. */
static char *
redact (RelaisStorePg *self,
        const char    *message)
{
  g_autoptr(GString) text = g_string_new (message != NULL ? message : "");

  g_strchomp (text->str);
  text->len = strlen (text->str);
  if (self->password != NULL && *self->password != '\0')
    g_string_replace (text, self->password, "***", 0);
  /* One line: the second of libpq's is a hint ("Is the server running…"). */
  {
    char *newline = strchr (text->str, '\n');

    if (newline != NULL)
      g_string_truncate (text, newline - text->str);
  }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static void
set_conn_error (RelaisStorePg  *self,
                Conn           *conn,
                const char     *what,
                GError        **error)
{
  g_autofree char *message = redact (self, PQerrorMessage (conn->pg));

  g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED, "%s: %s", what, message);
}

static void
set_result_error (RelaisStorePg   *self,
                  Conn            *conn,
                  const PGresult  *res,
                  GError         **error)
{
  const char *state = res != NULL ? PQresultErrorField (res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res != NULL ? PQresultErrorField (res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  g_autofree char *message = NULL;

  if (PQstatus (conn->pg) != CONNECTION_OK)
    {
      set_conn_error (self, conn, "The PostgreSQL store is unavailable", error);
      return;
    }
  if (state != NULL && (strcmp (state, "40001") == 0 || strcmp (state, "40P01") == 0))
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "The PostgreSQL store is busy: try again");
      return;
    }
  if (state != NULL && strcmp (state, "53100") == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "The PostgreSQL store's disk is full");
      return;
    }
  /* The primary message names constraints and types, not values (those
   * are in DETAIL, left out). */
  message = redact (self, primary != NULL ? primary : PQerrorMessage (conn->pg));
  if (state != NULL)
    g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                 "PostgreSQL store: %s (SQLSTATE %s)", message, state);
  else
    g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                 "PostgreSQL store: %s", message);
}

/* ---- Connections ----------------------------------------------------- */

static void
conn_free (Conn *conn)
{
  if (conn == NULL)
    return;
  PQfinish (conn->pg);
  g_clear_pointer (&conn->prepared, g_hash_table_destroy);
  g_free (conn);
}

/* Server notices ("relation already exists, skipping") are not for the
 * server's log at its default level. */
static void
notice_processor (void       *data,
                  const char *message)
{
  g_debug ("PostgreSQL: %s", message);
}

/* What every new session gets, also after a reconnection. */
static gboolean
conn_setup (RelaisStorePg  *self,
            Conn           *conn,
            GError        **error)
{
  PGresult *res;
  gboolean ok;

  /* A new session has none of the old one's prepared statements. */
  g_hash_table_remove_all (conn->prepared);
  PQsetNoticeProcessor (conn->pg, notice_processor, NULL);
  /* JIT compiling the pull (its cost estimate passes jit_above_cost with
   * 10,000 dossiers) took 35 ms of a 45 ms page: these are short
   * queries. */
  res = PQexec (conn->pg, "SET jit = off");
  ok = PQresultStatus (res) == PGRES_COMMAND_OK;
  if (!ok)
    set_result_error (self, conn, res, error);
  PQclear (res);
  return ok;
}

static Conn *
conn_open (RelaisStorePg  *self,
           GError        **error)
{
  /* expand_dbname: the URI gives everything; what follows it overrides. */
  const char *const keywords[] = { "dbname", "application_name", "client_encoding", NULL };
  const char *const values[] = { self->uri, "relais-server", "UTF8", NULL };
  Conn *conn = g_new0 (Conn, 1);

  conn->prepared = g_hash_table_new (g_direct_hash, g_direct_equal);
  conn->pg = PQconnectdbParams (keywords, values, 1);
  if (conn->pg == NULL)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "Cannot connect to the PostgreSQL store: out of memory");
      g_free (conn);
      return NULL;
    }
  if (PQstatus (conn->pg) != CONNECTION_OK)
    {
      set_conn_error (self, conn, "Cannot connect to the PostgreSQL store", error);
      conn_free (conn);
      return NULL;
    }
  if (!conn_setup (self, conn, error))
    {
      conn_free (conn);
      return NULL;
    }
  return conn;
}

static Conn *
conn_acquire (RelaisStorePg  *self,
              GError        **error)
{
  Conn *conn = NULL;

  g_mutex_lock (&self->lock);
  if (self->idle->len > 0)
    conn = g_ptr_array_steal_index_fast (self->idle, self->idle->len - 1);
  g_mutex_unlock (&self->lock);

  /* A connection the database dropped while idle (a restart): reconnect. */
  if (conn != NULL && PQstatus (conn->pg) != CONNECTION_OK)
    {
      PQreset (conn->pg);
      if (PQstatus (conn->pg) != CONNECTION_OK)
        {
          set_conn_error (self, conn, "Cannot connect to the PostgreSQL store", error);
          conn_free (conn);
          return NULL;
        }
      if (!conn_setup (self, conn, error))
        {
          conn_free (conn);
          return NULL;
        }
    }
  if (conn == NULL)
    conn = conn_open (self, error);
  return conn;
}

static void
conn_release (RelaisStorePg *self,
              Conn          *conn)
{
  /* A session left in pipeline mode (a pipeline cut short) is in an
   * unknown state: dropped. */
  if (PQpipelineStatus (conn->pg) != PQ_PIPELINE_OFF)
    {
      conn_free (conn);
      return;
    }
  if (PQstatus (conn->pg) == CONNECTION_OK && PQtransactionStatus (conn->pg) != PQTRANS_IDLE)
    PQclear (PQexec (conn->pg, "ROLLBACK"));
  if (PQstatus (conn->pg) != CONNECTION_OK || PQtransactionStatus (conn->pg) != PQTRANS_IDLE)
    {
      conn_free (conn);
      return;
    }
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->idle, conn);
  g_mutex_unlock (&self->lock);
}

/* Prepares @sql in the session, once; its name goes to @name. */
static gboolean
prepare (RelaisStorePg  *self,
         Conn           *conn,
         const char     *sql,
         int             n_params,
         char            name[32],
         GError        **error)
{
  guint number = GPOINTER_TO_UINT (g_hash_table_lookup (conn->prepared, sql));

  if (number == 0)
    {
      PGresult *res;

      number = g_hash_table_size (conn->prepared) + 1;
      g_snprintf (name, 32, "relais_%u", number);
      res = PQprepare (conn->pg, name, sql, n_params, NULL);
      if (PQresultStatus (res) != PGRES_COMMAND_OK)
        {
          set_result_error (self, conn, res, error);
          PQclear (res);
          return FALSE;
        }
      PQclear (res);
      g_hash_table_insert (conn->prepared, (gpointer) sql, GUINT_TO_POINTER (number));
    }
  g_snprintf (name, 32, "relais_%u", number);
  return TRUE;
}

/* Runs @sql with @params and checks the result: tuples (for statements
 * that return rows) or a command's completion.  Statements are prepared
 * once per session (parsing and planning them each time cost as much as
 * running most of them), unless @once: a generic plan of the pull could
 * not weigh how many dossiers the user has. */
static PGresult *
run_full (RelaisStorePg  *self,
          Conn           *conn,
          const char     *sql,
          const Params   *params,
          gboolean        once,
          GError        **error)
{
  int n_params = params != NULL ? params->n : 0;
  const char *const *values = params != NULL ? params->values : NULL;
  const int *lengths = params != NULL ? params->lengths : NULL;
  const int *formats = params != NULL ? params->formats : NULL;
  PGresult *res;
  ExecStatusType status;

  if (once)
    res = PQexecParams (conn->pg, sql, n_params, NULL, values, lengths, formats, 1);
  else
    {
      char name[32];

      if (!prepare (self, conn, sql, n_params, name, error))
        return NULL;
      res = PQexecPrepared (conn->pg, name, n_params, values, lengths, formats, 1);
    }
  status = PQresultStatus (res);
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
    return res;
  set_result_error (self, conn, res, error);
  PQclear (res);
  return NULL;
}

static PGresult *
run (RelaisStorePg  *self,
     Conn           *conn,
     const char     *sql,
     const Params   *params,
     GError        **error)
{
  return run_full (self, conn, sql, params, FALSE, error);
}

static gboolean
run_ok (RelaisStorePg  *self,
        Conn           *conn,
        const char     *sql,
        const Params   *params,
        GError        **error)
{
  g_autoptr(PGresult) res = run (self, conn, sql, params, error);

  return res != NULL;
}

typedef struct {
  const char   *sql;
  const Params *params;  /* NULL for none */
} Stmt;

/* Sends @n statements at once and reads their @results (NULL where a
 * statement failed or was skipped after an earlier failure): one round
 * trip instead of @n.  The server runs them in order, each with its own
 * snapshot, exactly as if sent one by one.  FALSE, with the first error,
 * when any failed. */
static gboolean
run_pipeline (RelaisStorePg  *self,
              Conn           *conn,
              const Stmt     *stmts,
              guint           n,
              PGresult      **results,
              GError        **error)
{
  char names[8][32];
  gboolean ok = TRUE;

  g_assert (n <= G_N_ELEMENTS (names));
  memset (results, 0, n * sizeof *results);
  for (guint i = 0; i < n; i++)
    if (!prepare (self, conn, stmts[i].sql, stmts[i].params != NULL ? stmts[i].params->n : 0,
                  names[i], error))
      return FALSE;

  if (!PQenterPipelineMode (conn->pg))
    {
      set_conn_error (self, conn, "PostgreSQL store", error);
      return FALSE;
    }
  for (guint i = 0; i < n && ok; i++)
    {
      const Params *p = stmts[i].params;

      ok = PQsendQueryPrepared (conn->pg, names[i], p != NULL ? p->n : 0,
                                p != NULL ? p->values : NULL, p != NULL ? p->lengths : NULL,
                                p != NULL ? p->formats : NULL, 1) == 1;
    }
  ok = ok && PQpipelineSync (conn->pg) == 1;
  if (!ok)
    {
      /* Left in pipeline mode with a transaction open: conn_release()
       * drops the session. */
      set_conn_error (self, conn, "The PostgreSQL store is unavailable", error);
      return FALSE;
    }

  for (guint i = 0; i < n; i++)
    {
      PGresult *res = PQgetResult (conn->pg);
      ExecStatusType status = PQresultStatus (res);

      if (res == NULL)
        {
          if (ok)
            set_conn_error (self, conn, "The PostgreSQL store is unavailable", error);
          ok = FALSE;
          break;
        }
      if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        results[i] = res;
      else
        {
          if (ok && status != PGRES_PIPELINE_ABORTED)
            set_result_error (self, conn, res, error);
          else if (ok)
            g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                                 "PostgreSQL store: a statement was not run");
          ok = FALSE;
          PQclear (res);
        }
      /* The end of this statement's results. */
      res = PQgetResult (conn->pg);
      if (res != NULL)
        PQclear (res);
    }
  /* The sync point. */
  for (PGresult *res; (res = PQgetResult (conn->pg)) != NULL; )
    {
      gboolean sync = PQresultStatus (res) == PGRES_PIPELINE_SYNC;

      PQclear (res);
      if (sync)
        break;
    }
  if (!PQexitPipelineMode (conn->pg) && ok)
    {
      set_conn_error (self, conn, "The PostgreSQL store is unavailable", error);
      ok = FALSE;
    }
  if (!ok)
    for (guint i = 0; i < n; i++)
      g_clear_pointer (&results[i], PQclear);
  return ok;
}

/* Rows changed by an INSERT, UPDATE or DELETE. */
static gint64
changed (const PGresult *res)
{
  return g_ascii_strtoll (PQcmdTuples ((PGresult *) res), NULL, 10);
}

/* Runs the first statement of a call.  A pooled connection whose server
 * went away (a restart, a failover) only shows it when used: it is then
 * made again and the statement run once more, which is safe as the
 * statement never reached the server or changed nothing (BEGIN, or a
 * call's single statement, each idempotent). */
static PGresult *
run_first (RelaisStorePg  *self,
           Conn           *conn,
           const char     *sql,
           const Params   *params,
           gboolean        once,
           GError        **error)
{
  g_autoptr(GError) local_error = NULL;
  PGresult *res = run_full (self, conn, sql, params, once, &local_error);

  if (res != NULL || PQstatus (conn->pg) == CONNECTION_OK)
    {
      if (res == NULL)
        g_propagate_error (error, g_steal_pointer (&local_error));
      return res;
    }
  g_debug ("The PostgreSQL connection broke; connecting again");
  PQreset (conn->pg);
  if (PQstatus (conn->pg) != CONNECTION_OK)
    {
      set_conn_error (self, conn, "Cannot connect to the PostgreSQL store", error);
      return NULL;
    }
  if (!conn_setup (self, conn, error))
    return NULL;
  return run_full (self, conn, sql, params, once, error);
}

static Conn *
txn_begin (RelaisStorePg  *self,
           GError        **error)
{
  Conn *conn = conn_acquire (self, error);
  PGresult *res;

  if (conn == NULL)
    return NULL;
  res = run_first (self, conn, "BEGIN", NULL, FALSE, error);
  if (res == NULL)
    {
      conn_release (self, conn);
      return NULL;
    }
  PQclear (res);
  return conn;
}

static gboolean
txn_end (RelaisStorePg  *self,
         Conn           *conn,
         gboolean        ok,
         GError        **error)
{
  if (ok)
    ok = run_ok (self, conn, "COMMIT", NULL, error);
  else if (PQstatus (conn->pg) == CONNECTION_OK)
    PQclear (PQexec (conn->pg, "ROLLBACK"));
  conn_release (self, conn);
  return ok;
}

/* A call that is one statement: no BEGIN needed. */
static PGresult *
run_one_full (RelaisStorePg  *self,
              const char     *sql,
              const Params   *params,
              gboolean        once,
              GError        **error)
{
  Conn *conn = conn_acquire (self, error);
  PGresult *res;

  if (conn == NULL)
    return NULL;
  res = run_first (self, conn, sql, params, once, error);
  conn_release (self, conn);
  return res;
}

static PGresult *
run_one (RelaisStorePg  *self,
         const char     *sql,
         const Params   *params,
         GError        **error)
{
  return run_one_full (self, sql, params, FALSE, error);
}

/* ---- Small helpers --------------------------------------------------- */

/* The next seq, under SEQ_LOCK until the transaction ends (see the top). */
static gboolean
next_seq (RelaisStorePg  *self,
          Conn           *conn,
          gint64         *out_seq,
          GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_int (&p, LOCK_CLASS);
  p_int (&p, SEQ_LOCK);
  /* The lock's subquery is evaluated before the outer nextval(): it holds
   * a volatile function, so the planner keeps it apart. */
  res = run (self, conn,
             "SELECT nextval ('changeset_seq')"
             "  FROM (SELECT pg_advisory_xact_lock ($1::int4, $2::int4)) AS l",
             &p, error);
  if (res == NULL)
    return FALSE;
  *out_seq = r_int (res, 0, 0);
  return TRUE;
}

/* The dossier's epoch, its row locked as @lock says ("", "FOR SHARE" or
 * "FOR UPDATE"). */
static gboolean
dossier_epoch_in (RelaisStorePg  *self,
                  Conn           *conn,
                  const char     *dossier_id,
                  const char     *sql,
                  guint32        *out_epoch,
                  GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, dossier_id);
  res = run (self, conn, sql, &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such dossier");
      return FALSE;
    }
  *out_epoch = (guint32) r_int (res, 0, 0);
  return TRUE;
}

#define EPOCH_SQL            "SELECT epoch FROM dossiers WHERE dossier_id = $1"
#define EPOCH_SQL_SHARE      EPOCH_SQL " FOR SHARE"
#define EPOCH_SQL_UPDATE     EPOCH_SQL " FOR UPDATE"
#define IS_MEMBER_SQL \
  "SELECT 1 FROM members WHERE dossier_id = $1 AND user_id = $2 AND until_epoch = 0"

static gboolean
is_member_in (RelaisStorePg  *self,
              Conn           *conn,
              const char     *dossier_id,
              const char     *user_id,
              gboolean       *out_member,
              GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, dossier_id);
  p_text (&p, user_id);
  res = run (self, conn, IS_MEMBER_SQL, &p, error);
  if (res == NULL)
    return FALSE;
  *out_member = PQntuples (res) > 0;
  return TRUE;
}

static gboolean
user_exists_in (RelaisStorePg  *self,
                Conn           *conn,
                const char     *user_id,
                GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, user_id);
  res = run (self, conn, "SELECT 1 FROM users WHERE user_id = $1", &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such user");
      return FALSE;
    }
  return TRUE;
}

static gboolean
put_wrapped_key (RelaisStorePg                *self,
                 Conn                         *conn,
                 const char                   *dossier_id,
                 const RelaisStoreWrappedKey  *key,
                 GError                      **error)
{
  Params p = { 0 };

  p_text (&p, dossier_id);
  p_text (&p, key->user_id != NULL ? key->user_id : key->org);
  p_int (&p, key->epoch);
  p_bytes (&p, key->wrapped_key);
  if (key->user_id != NULL)
    return run_ok (self, conn,
                   "INSERT INTO member_keys (dossier_id, user_id, epoch, wrapped_key)"
                   " VALUES ($1, $2, $3::bigint, $4::bytea)"
                   " ON CONFLICT (dossier_id, user_id, epoch) DO UPDATE SET wrapped_key = EXCLUDED.wrapped_key",
                   &p, error);
  return run_ok (self, conn,
                 "INSERT INTO recovery_wraps (dossier_id, org, epoch, wrapped_key)"
                 " VALUES ($1, $2, $3::bigint, $4::bytea)"
                 " ON CONFLICT (dossier_id, org, epoch) DO UPDATE SET wrapped_key = EXCLUDED.wrapped_key",
                 &p, error);
}

static gboolean
bump_dossier (RelaisStorePg  *self,
              Conn           *conn,
              const char     *dossier_id,
              guint32         epoch,
              GError        **error)
{
  Params p = { 0 };

  p_text (&p, dossier_id);
  p_int (&p, epoch);
  return run_ok (self, conn,
                 "UPDATE dossiers SET epoch = $2::bigint, version = version + 1 WHERE dossier_id = $1",
                 &p, error);
}

/* ---- Schema ---------------------------------------------------------- */

/* Version 1: the same tables as the SQLite store.  Every table that grows
 * with dossiers has dossier_id first in its primary key, so that it can be
 * partitioned by dossier (hash partitions on dossier_id).  Two indexes
 * span dossiers: members_user, by user, and changesets_seq, by seq (on a
 * partitioned table each partition has its own, merged in seq order). */
static const char schema_v1[] =
  "CREATE TABLE meta ("
  "  key text PRIMARY KEY,"
  "  value bytea NOT NULL);"
  "CREATE SEQUENCE changeset_seq;"
  "CREATE TABLE users ("
  "  user_id text PRIMARY KEY,"
  "  name text NOT NULL,"
  "  org text NOT NULL,"
  "  admin boolean NOT NULL,"
  "  box_pk bytea,"
  "  sign_pk bytea,"
  "  wrapped_keys bytea,"
  "  created bigint NOT NULL);"
  "CREATE INDEX users_org ON users (org, name);"
  "CREATE TABLE codes ("
  "  code_hash bytea PRIMARY KEY,"
  "  user_id text NOT NULL,"
  "  expires bigint NOT NULL,"
  "  used boolean NOT NULL DEFAULT false);"
  "CREATE TABLE devices ("
  "  device_id text PRIMARY KEY,"
  "  user_id text NOT NULL,"
  "  name text NOT NULL,"
  "  pk bytea NOT NULL,"
  "  revoked boolean NOT NULL DEFAULT false,"
  "  created bigint NOT NULL,"
  "  last_seen bigint NOT NULL DEFAULT 0);"
  "CREATE INDEX devices_user ON devices (user_id);"
  "CREATE TABLE nonces ("
  "  device_id text NOT NULL,"
  "  nonce bytea NOT NULL,"
  "  expires bigint NOT NULL,"
  "  PRIMARY KEY (device_id, nonce));"
  "CREATE TABLE recovery_keys ("
  "  org text PRIMARY KEY,"
  "  box_pk bytea NOT NULL);"
  "CREATE TABLE dossiers ("
  "  dossier_id text PRIMARY KEY,"
  "  epoch bigint NOT NULL,"
  "  version bigint NOT NULL,"
  "  created bigint NOT NULL);"
  "CREATE TABLE members ("
  "  dossier_id text NOT NULL,"
  "  user_id text NOT NULL,"
  "  since_epoch bigint NOT NULL,"
  "  until_epoch bigint NOT NULL DEFAULT 0,"
  "  joined_seq bigint NOT NULL,"
  "  PRIMARY KEY (dossier_id, user_id, since_epoch));"
  /* Not a partial index on until_epoch = 0: without statistics yet, the
   * planner took such an index for a member check of one dossier
   * (dossier_id and user_id given) and walked all of the user's rows. */
  "CREATE INDEX members_user ON members (user_id, joined_seq) INCLUDE (dossier_id, until_epoch);"
  "CREATE TABLE member_keys ("
  "  dossier_id text NOT NULL,"
  "  user_id text NOT NULL,"
  "  epoch bigint NOT NULL,"
  "  wrapped_key bytea NOT NULL,"
  "  PRIMARY KEY (dossier_id, user_id, epoch));"
  "CREATE TABLE recovery_wraps ("
  "  dossier_id text NOT NULL,"
  "  org text NOT NULL,"
  "  epoch bigint NOT NULL,"
  "  wrapped_key bytea NOT NULL,"
  "  PRIMARY KEY (dossier_id, org, epoch));"
  "CREATE TABLE changesets ("
  "  dossier_id text NOT NULL,"
  "  id bytea NOT NULL,"
  "  seq bigint NOT NULL,"
  "  epoch bigint NOT NULL,"
  "  author_user text NOT NULL,"
  "  device_id text NOT NULL,"
  "  size integer NOT NULL,"
  "  created bigint NOT NULL,"
  "  envelope bytea NOT NULL,"
  "  PRIMARY KEY (dossier_id, id));"
  /* Envelopes are random bytes: compressing them only costs time. */
  "ALTER TABLE changesets ALTER COLUMN envelope SET STORAGE EXTERNAL;"
  "CREATE INDEX changesets_pull ON changesets (dossier_id, seq) INCLUDE (device_id, size);"
  "CREATE INDEX changesets_seq ON changesets (seq) INCLUDE (dossier_id, device_id, size);";

/* The migration ladder: migrations[v] takes the schema from version v to
 * v + 1.  Add a step for every schema change; never edit a shipped one. */
static const char *const migrations[SCHEMA_VERSION] = {
  schema_v1,
};

static gboolean
migrate (RelaisStorePg  *self,
         Conn           *conn,
         GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };
  guint8 secret[32];
  gint64 version = 0;
  gboolean ok;

  /* Two servers starting together on a new database: the first creates
   * the schema under the lock, the second then finds it there. */
  p_int (&p, LOCK_CLASS);
  p_int (&p, SCHEMA_LOCK);
  if (!run_ok (self, conn, "BEGIN", NULL, error)
      || !run_ok (self, conn, "SELECT pg_advisory_xact_lock ($1::int4, $2::int4)", &p, error)
      || !run_ok (self, conn, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
                  NULL, error))
    return FALSE;
  res = run (self, conn, "SELECT version FROM schema_version", NULL, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) > 1)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "The PostgreSQL store's schema_version table is damaged");
      return FALSE;
    }
  if (PQntuples (res) == 1)
    version = r_int (res, 0, 0);
  else if (!run_ok (self, conn, "INSERT INTO schema_version (version) VALUES (0)", NULL, error))
    return FALSE;
  g_clear_pointer (&res, PQclear);

  if (version > SCHEMA_VERSION || version < 0)
    {
      g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                   "The PostgreSQL store has schema version %" G_GINT64_FORMAT
                   ", newer than this server knows (%d)", version, SCHEMA_VERSION);
      return FALSE;
    }
  for (; version < SCHEMA_VERSION; version++)
    {
      Params v = { 0 };

      /* Several statements at once: the simple query protocol. */
      res = PQexec (conn->pg, migrations[version]);
      if (PQresultStatus (res) != PGRES_COMMAND_OK)
        {
          set_result_error (self, conn, res, error);
          return FALSE;
        }
      g_clear_pointer (&res, PQclear);
      p_int (&v, version + 1);
      if (!run_ok (self, conn, "UPDATE schema_version SET version = $1::int4", &v, error))
        return FALSE;
    }

  /* The cursor secret, made once by whichever server opens first. */
  {
    Params s = { 0 };

    randombytes_buf (secret, sizeof secret);
    p_blob (&s, secret, sizeof secret);
    ok = run_ok (self, conn,
                 "INSERT INTO meta (key, value) VALUES ('cursor_secret', $1::bytea)"
                 " ON CONFLICT (key) DO NOTHING",
                 &s, error);
    sodium_memzero (secret, sizeof secret);
    if (!ok)
      return FALSE;
  }
  return run_ok (self, conn, "COMMIT", NULL, error);
}

/* ---- Open, close, secret --------------------------------------------- */

static void
pg_close (RelaisStore *store)
{
  RelaisStorePg *self = (RelaisStorePg *) store;

  g_clear_pointer (&self->idle, g_ptr_array_unref);
  g_mutex_clear (&self->lock);
  sodium_memzero (self->secret, sizeof self->secret);
  if (self->uri != NULL)
    sodium_memzero (self->uri, strlen (self->uri));
  if (self->password != NULL)
    sodium_memzero (self->password, strlen (self->password));
  g_free (self->uri);
  g_free (self->password);
  g_free (self);
}

RelaisStore *
relais_store_pg_open (const char  *uri,
                      GError     **error)
{
  g_autoptr(RelaisStore) store = NULL;
  RelaisStorePg *self;
  PQconninfoOption *options;
  char *parse_error = NULL;
  Conn *conn;

  /* libpq's parse errors quote the URI, password included: say only that
   * it does not parse. */
  options = PQconninfoParse (uri, &parse_error);
  if (options == NULL)
    {
      PQfreemem (parse_error);
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_URI,
                           "The PostgreSQL store URI does not parse (postgresql://USER@HOST:PORT/DATABASE)");
      return NULL;
    }
  if (sodium_init () < 0)
    {
      PQconninfoFree (options);
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "libsodium failed to initialise");
      return NULL;
    }

  self = g_new0 (RelaisStorePg, 1);
  self->parent.vtable = &pg_vtable;
  self->uri = g_strdup (uri);
  for (PQconninfoOption *o = options; o->keyword != NULL; o++)
    if (strcmp (o->keyword, "password") == 0 && o->val != NULL)
      self->password = g_strdup (o->val);
  PQconninfoFree (options);
  g_mutex_init (&self->lock);
  self->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);
  store = &self->parent;

  conn = conn_open (self, error);
  if (conn == NULL)
    return NULL;
  if (!migrate (self, conn, error))
    {
      g_prefix_error (error, "Cannot open the PostgreSQL store: ");
      conn_free (conn);
      return NULL;
    }
  conn_release (self, conn);
  return g_steal_pointer (&store);
}

static gboolean
pg_get_secret (RelaisStore  *store,
               guint8        out_secret[32],
               GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;

  /* The secret never changes once made, so it is safe to keep. */
  g_mutex_lock (&self->lock);
  if (self->have_secret)
    {
      memcpy (out_secret, self->secret, 32);
      g_mutex_unlock (&self->lock);
      return TRUE;
    }
  g_mutex_unlock (&self->lock);

  res = run_one (self, "SELECT value FROM meta WHERE key = 'cursor_secret'", NULL, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) != 1 || PQgetlength (res, 0, 0) != 32)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "The PostgreSQL store has no valid cursor secret");
      return FALSE;
    }
  g_mutex_lock (&self->lock);
  memcpy (self->secret, PQgetvalue (res, 0, 0), 32);
  self->have_secret = TRUE;
  g_mutex_unlock (&self->lock);
  memcpy (out_secret, PQgetvalue (res, 0, 0), 32);
  return TRUE;
}

/* ---- Users ----------------------------------------------------------- */

static gboolean
user_add_in (RelaisStorePg  *self,
             Conn           *conn,
             const char     *user_id,
             const char     *name,
             const char     *org,
             gboolean        admin,
             gint64          now,
             GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, user_id);
  p_text (&p, name);
  p_text (&p, org);
  p_text (&p, admin ? "true" : "false");
  p_int (&p, now);
  res = run (self, conn,
             "INSERT INTO users (user_id, name, org, admin, created)"
             " VALUES ($1, $2, $3, $4::boolean, $5::bigint) ON CONFLICT (user_id) DO NOTHING",
             &p, error);
  if (res == NULL)
    return FALSE;
  if (changed (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "A user with this id exists");
      return FALSE;
    }
  return TRUE;
}

/* In a transaction of its own, although one statement: run_first() may
 * run a call's single statement twice, and this one is not idempotent. */
static gboolean
pg_user_add (RelaisStore  *store,
             const char   *user_id,
             const char   *name,
             const char   *org,
             gboolean      admin,
             gint64        now,
             GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, user_add_in (self, conn, user_id, name, org, admin, now, error), error);
}

#define USER_COLUMNS "user_id, name, org, admin, box_pk, sign_pk, created"

static RelaisStoreUser *
user_from_row (const PGresult *res,
               int             row,
               gboolean        with_wrapped)
{
  RelaisStoreUser *user = g_new0 (RelaisStoreUser, 1);

  user->user_id = r_text (res, row, 0);
  user->name = r_text (res, row, 1);
  user->org = r_text (res, row, 2);
  user->admin = r_bool (res, row, 3);
  user->has_keys = r_key (res, row, 4, user->box_pk) & r_key (res, row, 5, user->sign_pk);
  user->created = r_int (res, row, 6);
  if (with_wrapped && user->has_keys)
    user->wrapped_keys = PQgetisnull (res, row, 7) ? g_bytes_new (NULL, 0) : r_bytes (res, row, 7);
  return user;
}

static RelaisStoreUser *
pg_user_get (RelaisStore  *store,
             const char   *user_id,
             GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, user_id);
  res = run_one (self, "SELECT " USER_COLUMNS ", wrapped_keys FROM users WHERE user_id = $1",
                 &p, error);
  if (res == NULL)
    return NULL;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such user");
      return NULL;
    }
  return user_from_row (res, 0, TRUE);
}

static GPtrArray *
pg_user_list (RelaisStore  *store,
              const char   *org,
              GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  GPtrArray *users;
  Params p = { 0 };

  p_text (&p, org);
  /* COLLATE "C": the same order as SQLite's, whatever the database's
   * locale. */
  res = run_one (self,
                 "SELECT " USER_COLUMNS " FROM users WHERE $1::text IS NULL OR org = $1"
                 " ORDER BY org COLLATE \"C\", name COLLATE \"C\", user_id COLLATE \"C\"",
                 &p, error);
  if (res == NULL)
    return NULL;
  users = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_user_free);
  for (int i = 0; i < PQntuples (res); i++)
    g_ptr_array_add (users, user_from_row (res, i, FALSE));
  return users;
}

static gboolean
user_set_keys_in (RelaisStorePg  *self,
                  Conn           *conn,
                  const char     *user_id,
                  const guint8   *box_pk,
                  const guint8   *sign_pk,
                  GBytes         *wrapped_keys,
                  GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  guint8 old_box[RELAIS_STORE_KEY_SIZE], old_sign[RELAIS_STORE_KEY_SIZE];
  Params p = { 0 };

  p_text (&p, user_id);
  res = run (self, conn, "SELECT box_pk, sign_pk FROM users WHERE user_id = $1 FOR UPDATE", &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such user");
      return FALSE;
    }
  if (r_key (res, 0, 0, old_box) && r_key (res, 0, 1, old_sign)
      && (memcmp (old_box, box_pk, RELAIS_STORE_KEY_SIZE) != 0
          || memcmp (old_sign, sign_pk, RELAIS_STORE_KEY_SIZE) != 0))
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_KEYS_SET,
                           "The user's keys are already set to other public keys");
      return FALSE;
    }

  p_blob (&p, box_pk, RELAIS_STORE_KEY_SIZE);
  p_blob (&p, sign_pk, RELAIS_STORE_KEY_SIZE);
  p_bytes (&p, wrapped_keys);
  return run_ok (self, conn,
                 "UPDATE users SET box_pk = $2::bytea, sign_pk = $3::bytea, wrapped_keys = $4::bytea"
                 " WHERE user_id = $1",
                 &p, error);
}

static gboolean
pg_user_set_keys (RelaisStore   *store,
                  const char    *user_id,
                  const guint8  *box_pk,
                  const guint8  *sign_pk,
                  GBytes        *wrapped_keys,
                  GError       **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  user_set_keys_in (self, conn, user_id, box_pk, sign_pk, wrapped_keys, error),
                  error);
}

/* ---- Enrolment codes ------------------------------------------------- */

static gboolean
code_add_in (RelaisStorePg  *self,
             Conn           *conn,
             const guint8   *code_hash,
             const char     *user_id,
             gint64          expires,
             GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  if (!user_exists_in (self, conn, user_id, error))
    return FALSE;
  p_blob (&p, code_hash, RELAIS_STORE_HASH_SIZE);
  p_text (&p, user_id);
  p_int (&p, expires);
  res = run (self, conn,
             "INSERT INTO codes (code_hash, user_id, expires) VALUES ($1::bytea, $2, $3::bigint)"
             " ON CONFLICT (code_hash) DO NOTHING",
             &p, error);
  if (res == NULL)
    return FALSE;
  if (changed (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "This enrolment code exists");
      return FALSE;
    }
  return TRUE;
}

static gboolean
pg_code_add (RelaisStore   *store,
             const guint8  *code_hash,
             const char    *user_id,
             gint64         expires,
             GError       **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, code_add_in (self, conn, code_hash, user_id, expires, error), error);
}

static char *
code_use_in (RelaisStorePg  *self,
             Conn           *conn,
             const guint8   *code_hash,
             gint64          now,
             GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  /* One UPDATE takes the code: two devices racing with one code cannot
   * both get it. */
  p_blob (&p, code_hash, RELAIS_STORE_HASH_SIZE);
  p_int (&p, now);
  res = run (self, conn,
             "UPDATE codes SET used = true WHERE code_hash = $1::bytea AND NOT used AND expires > $2::bigint"
             " RETURNING user_id",
             &p, error);
  if (res == NULL)
    return NULL;
  if (PQntuples (res) == 1)
    return r_text (res, 0, 0);
  g_clear_pointer (&res, PQclear);

  p.n = 1;
  res = run (self, conn, "SELECT used FROM codes WHERE code_hash = $1::bytea", &p, error);
  if (res == NULL)
    return NULL;
  if (PQntuples (res) == 0)
    g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                         "Unknown enrolment code");
  else if (r_bool (res, 0, 0))
    g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_USED,
                         "This enrolment code has been used");
  else
    g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_EXPIRED,
                         "This enrolment code has expired");
  return NULL;
}

static char *
pg_code_use (RelaisStore   *store,
             const guint8  *code_hash,
             gint64         now,
             GError       **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autofree char *user_id = NULL;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return NULL;
  user_id = code_use_in (self, conn, code_hash, now, error);
  if (!txn_end (self, conn, user_id != NULL, error))
    return NULL;
  return g_steal_pointer (&user_id);
}

/* ---- Devices --------------------------------------------------------- */

static gboolean
device_add_in (RelaisStorePg  *self,
               Conn           *conn,
               const char     *device_id,
               const char     *user_id,
               const char     *name,
               const guint8   *pk,
               gint64          now,
               GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  if (!user_exists_in (self, conn, user_id, error))
    return FALSE;
  p_text (&p, device_id);
  p_text (&p, user_id);
  p_text (&p, name);
  p_blob (&p, pk, RELAIS_STORE_KEY_SIZE);
  p_int (&p, now);
  res = run (self, conn,
             "INSERT INTO devices (device_id, user_id, name, pk, created)"
             " VALUES ($1, $2, $3, $4::bytea, $5::bigint) ON CONFLICT (device_id) DO NOTHING",
             &p, error);
  if (res == NULL)
    return FALSE;
  if (changed (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "A device with this id exists");
      return FALSE;
    }
  return TRUE;
}

static gboolean
pg_device_add (RelaisStore   *store,
               const char    *device_id,
               const char    *user_id,
               const char    *name,
               const guint8  *pk,
               gint64         now,
               GError       **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  device_add_in (self, conn, device_id, user_id, name, pk, now, error), error);
}

#define DEVICE_COLUMNS "device_id, user_id, name, pk, revoked, created, last_seen"

static RelaisStoreDevice *
device_from_row (const PGresult *res,
                 int             row)
{
  RelaisStoreDevice *device = g_new0 (RelaisStoreDevice, 1);

  device->device_id = r_text (res, row, 0);
  device->user_id = r_text (res, row, 1);
  device->name = r_text (res, row, 2);
  r_key (res, row, 3, device->pk);
  device->revoked = r_bool (res, row, 4);
  device->created = r_int (res, row, 5);
  device->last_seen = r_int (res, row, 6);
  return device;
}

static RelaisStoreDevice *
pg_device_get (RelaisStore  *store,
               const char   *device_id,
               GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, device_id);
  res = run_one (self, "SELECT " DEVICE_COLUMNS " FROM devices WHERE device_id = $1", &p, error);
  if (res == NULL)
    return NULL;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such device");
      return NULL;
    }
  return device_from_row (res, 0);
}

static GPtrArray *
pg_device_list (RelaisStore  *store,
                const char   *user_id,
                GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  GPtrArray *devices;
  Params p = { 0 };

  p_text (&p, user_id);
  res = run_one (self,
                 "SELECT " DEVICE_COLUMNS " FROM devices WHERE $1::text IS NULL OR user_id = $1"
                 " ORDER BY user_id COLLATE \"C\", created, device_id COLLATE \"C\"",
                 &p, error);
  if (res == NULL)
    return NULL;
  devices = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_device_free);
  for (int i = 0; i < PQntuples (res); i++)
    g_ptr_array_add (devices, device_from_row (res, i));
  return devices;
}

static gboolean
device_update (RelaisStorePg  *self,
               const char     *sql,
               Params         *p,
               GError        **error)
{
  g_autoptr(PGresult) res = run_one (self, sql, p, error);

  if (res == NULL)
    return FALSE;
  if (changed (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such device");
      return FALSE;
    }
  return TRUE;
}

static gboolean
pg_device_revoke (RelaisStore  *store,
                  const char   *device_id,
                  GError      **error)
{
  Params p = { 0 };

  p_text (&p, device_id);
  return device_update ((RelaisStorePg *) store,
                        "UPDATE devices SET revoked = true WHERE device_id = $1", &p, error);
}

static gboolean
pg_device_seen (RelaisStore  *store,
                const char   *device_id,
                gint64        now,
                GError      **error)
{
  Params p = { 0 };

  p_text (&p, device_id);
  p_int (&p, now);
  return device_update ((RelaisStorePg *) store,
                        "UPDATE devices SET last_seen = GREATEST (last_seen, $2::bigint) WHERE device_id = $1",
                        &p, error);
}

/* ---- Request nonces -------------------------------------------------- */

static gboolean
nonce_use_in (RelaisStorePg  *self,
              Conn           *conn,
              const char     *device_id,
              const guint8   *nonce,
              gsize           nonce_len,
              gint64          expires,
              gint64          now,
              GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  Params purge = { 0 };
  Params add = { 0 };

  p_text (&purge, device_id);
  p_int (&purge, now);
  if (!run_ok (self, conn, "DELETE FROM nonces WHERE device_id = $1 AND expires <= $2::bigint",
               &purge, error))
    return FALSE;

  p_text (&add, device_id);
  p_blob (&add, nonce, nonce_len);
  p_int (&add, expires);
  res = run (self, conn,
             "INSERT INTO nonces (device_id, nonce, expires) VALUES ($1, $2::bytea, $3::bigint)"
             " ON CONFLICT (device_id, nonce) DO NOTHING",
             &add, error);
  if (res == NULL)
    return FALSE;
  if (changed (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_REPLAYED,
                           "This request nonce has been seen");
      return FALSE;
    }
  return TRUE;
}

static gboolean
pg_nonce_use (RelaisStore   *store,
              const char    *device_id,
              const guint8  *nonce,
              gsize          nonce_len,
              gint64         expires,
              gint64         now,
              GError       **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  nonce_use_in (self, conn, device_id, nonce, nonce_len, expires, now, error), error);
}

/* ---- Organisations' recovery public keys ----------------------------- */

static gboolean
pg_recovery_key_set (RelaisStore   *store,
                     const char    *org,
                     const guint8  *box_pk,
                     GError       **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, org);
  p_blob (&p, box_pk, RELAIS_STORE_KEY_SIZE);
  res = run_one (self,
                 "INSERT INTO recovery_keys (org, box_pk) VALUES ($1, $2::bytea)"
                 " ON CONFLICT (org) DO UPDATE SET box_pk = EXCLUDED.box_pk",
                 &p, error);
  return res != NULL;
}

static gboolean
pg_recovery_key_get (RelaisStore  *store,
                     const char   *org,
                     guint8        out_box_pk[RELAIS_STORE_KEY_SIZE],
                     GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, org);
  res = run_one (self, "SELECT box_pk FROM recovery_keys WHERE org = $1", &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0 || !r_key (res, 0, 0, out_box_pk))
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "The organisation has no recovery key");
      return FALSE;
    }
  return TRUE;
}

/* ---- Dossiers, members and wrapped keys ------------------------------ */

static gboolean
dossier_create_in (RelaisStorePg  *self,
                   Conn           *conn,
                   const char     *dossier_id,
                   GPtrArray      *wrapped_keys,
                   gint64          now,
                   GError        **error)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };
  gint64 joined_seq;

  p_text (&p, dossier_id);
  p_int (&p, now);
  res = run (self, conn,
             "INSERT INTO dossiers (dossier_id, epoch, version, created) VALUES ($1, 1, 1, $2::bigint)"
             " ON CONFLICT (dossier_id) DO NOTHING",
             &p, error);
  if (res == NULL)
    return FALSE;
  if (changed (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                           "A dossier with this id exists");
      return FALSE;
    }
  g_clear_pointer (&res, PQclear);

  /* No SEQ_LOCK: no change set of this dossier can commit before it does,
   * so every one gets a seq above joined_seq whatever the commit order. */
  res = run (self, conn, "SELECT nextval ('changeset_seq')", NULL, error);
  if (res == NULL)
    return FALSE;
  joined_seq = r_int (res, 0, 0);

  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (key->epoch != 1)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A new dossier's keys are at epoch 1");
          return FALSE;
        }
      if (key->user_id != NULL)
        {
          Params m = { 0 };

          if (!g_hash_table_add (seen, key->user_id))
            {
              g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS,
                                   "A member is listed twice");
              return FALSE;
            }
          if (!user_exists_in (self, conn, key->user_id, error))
            return FALSE;
          p_text (&m, dossier_id);
          p_text (&m, key->user_id);
          p_int (&m, joined_seq);
          if (!run_ok (self, conn,
                       "INSERT INTO members (dossier_id, user_id, since_epoch, until_epoch, joined_seq)"
                       " VALUES ($1, $2, 1, 0, $3::bigint)",
                       &m, error))
            return FALSE;
        }
      if (!put_wrapped_key (self, conn, dossier_id, key, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
pg_dossier_create (RelaisStore  *store,
                   const char   *dossier_id,
                   GPtrArray    *wrapped_keys,
                   gint64        now,
                   GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, dossier_create_in (self, conn, dossier_id, wrapped_keys, now, error),
                  error);
}

static gboolean
pg_dossier_epoch (RelaisStore  *store,
                  const char   *dossier_id,
                  guint32      *out_epoch,
                  GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, dossier_id);
  res = run_one (self, EPOCH_SQL, &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "No such dossier");
      return FALSE;
    }
  *out_epoch = (guint32) r_int (res, 0, 0);
  return TRUE;
}

static gboolean
pg_is_member (RelaisStore  *store,
              const char   *dossier_id,
              const char   *user_id,
              gboolean     *out_member,
              GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };

  p_text (&p, dossier_id);
  p_text (&p, user_id);
  res = run_one (self, IS_MEMBER_SQL, &p, error);
  if (res == NULL)
    return FALSE;
  *out_member = PQntuples (res) > 0;
  return TRUE;
}

static gboolean
dossier_keys_in (RelaisStorePg  *self,
                 Conn           *conn,
                 const char     *dossier_id,
                 const char     *user_id,
                 GPtrArray      *keys,
                 GPtrArray      *members,
                 GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  guint32 epoch;
  gboolean member;
  Params p = { 0 };

  if (!dossier_epoch_in (self, conn, dossier_id, EPOCH_SQL, &epoch, error)
      || !is_member_in (self, conn, dossier_id, user_id, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The user is not a member of this dossier");
      return FALSE;
    }

  p_text (&p, dossier_id);
  p_text (&p, user_id);
  res = run (self, conn,
             "SELECT epoch, wrapped_key FROM member_keys WHERE dossier_id = $1 AND user_id = $2"
             " ORDER BY epoch",
             &p, error);
  if (res == NULL)
    return FALSE;
  for (int i = 0; i < PQntuples (res); i++)
    g_ptr_array_add (keys, relais_store_wrapped_key_new (user_id, NULL, r_int (res, i, 0),
                                                         PQgetvalue (res, i, 1),
                                                         PQgetlength (res, i, 1)));
  g_clear_pointer (&res, PQclear);

  p.n = 1;
  res = run (self, conn,
             "SELECT m.user_id, u.sign_pk, m.since_epoch, m.until_epoch"
             "  FROM members m LEFT JOIN users u ON u.user_id = m.user_id"
             " WHERE m.dossier_id = $1 ORDER BY m.since_epoch, m.user_id COLLATE \"C\"",
             &p, error);
  if (res == NULL)
    return FALSE;
  for (int i = 0; i < PQntuples (res); i++)
    {
      guint8 sign_pk[RELAIS_STORE_KEY_SIZE];
      g_autofree char *member_id = r_text (res, i, 0);

      r_key (res, i, 1, sign_pk);
      g_ptr_array_add (members, relais_store_member_new (member_id, sign_pk,
                                                         r_int (res, i, 2), r_int (res, i, 3)));
    }
  return TRUE;
}

static gboolean
pg_dossier_keys (RelaisStore  *store,
                 const char   *dossier_id,
                 const char   *user_id,
                 GPtrArray   **out_keys,
                 GPtrArray   **out_members,
                 GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_member_free);
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  if (!txn_end (self, conn, dossier_keys_in (self, conn, dossier_id, user_id, keys, members, error),
                error))
    return FALSE;
  *out_keys = g_steal_pointer (&keys);
  *out_members = g_steal_pointer (&members);
  return TRUE;
}

static gboolean
dossier_share_in (RelaisStorePg  *self,
                  Conn           *conn,
                  const char     *dossier_id,
                  const char     *user_id,
                  GPtrArray      *wrapped_keys,
                  GError        **error)
{
  guint32 epoch;
  gboolean member;

  /* FOR UPDATE: pushes (FOR SHARE) and other membership changes of this
   * dossier wait for this one. */
  if (!dossier_epoch_in (self, conn, dossier_id, EPOCH_SQL_UPDATE, &epoch, error)
      || !user_exists_in (self, conn, user_id, error)
      || !is_member_in (self, conn, dossier_id, user_id, &member, error))
    return FALSE;

  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (g_strcmp0 (key->user_id, user_id) != 0)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                               "A shared key is wrapped for someone else");
          return FALSE;
        }
      if (key->epoch > epoch)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A shared key is at an epoch the dossier has not reached");
          return FALSE;
        }
      if (!put_wrapped_key (self, conn, dossier_id, key, error))
        return FALSE;
    }

  if (!bump_dossier (self, conn, dossier_id, epoch, error))
    return FALSE;

  /* Sharing again with a current member (a retried share) only refreshes
   * the keys: a fresh joined_seq would send the whole dossier again. */
  if (!member)
    {
      Params p = { 0 };
      gint64 joined_seq;

      /* Last, as SEQ_LOCK must be: held until the commit. */
      if (!next_seq (self, conn, &joined_seq, error))
        return FALSE;
      p_text (&p, dossier_id);
      p_text (&p, user_id);
      p_int (&p, epoch);
      p_int (&p, joined_seq);
      if (!run_ok (self, conn,
                   "INSERT INTO members (dossier_id, user_id, since_epoch, until_epoch, joined_seq)"
                   " VALUES ($1, $2, $3::bigint, 0, $4::bigint)",
                   &p, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
pg_dossier_share (RelaisStore  *store,
                  const char   *dossier_id,
                  const char   *user_id,
                  GPtrArray    *wrapped_keys,
                  GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn, dossier_share_in (self, conn, dossier_id, user_id, wrapped_keys, error),
                  error);
}

static gboolean
dossier_unshare_in (RelaisStorePg  *self,
                    Conn           *conn,
                    const char     *dossier_id,
                    const char     *user_id,
                    guint32         new_epoch,
                    GPtrArray      *wrapped_keys,
                    GError        **error)
{
  guint32 epoch;
  gboolean member;
  Params p = { 0 };

  if (!dossier_epoch_in (self, conn, dossier_id, EPOCH_SQL_UPDATE, &epoch, error)
      || !is_member_in (self, conn, dossier_id, user_id, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The user is not a member of this dossier");
      return FALSE;
    }
  if (new_epoch != (guint64) epoch + 1)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                           "The rotation is not to the epoch after the current one");
      return FALSE;
    }

  p_text (&p, dossier_id);
  p_text (&p, user_id);
  p_int (&p, new_epoch);
  if (!run_ok (self, conn,
               "UPDATE members SET until_epoch = $3::bigint"
               " WHERE dossier_id = $1 AND user_id = $2 AND until_epoch = 0",
               &p, error))
    return FALSE;

  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (key->epoch != new_epoch)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A rotated key is not at the new epoch");
          return FALSE;
        }
      /* The retired member is no longer current: no key for them. */
      if (key->user_id != NULL)
        {
          if (!is_member_in (self, conn, dossier_id, key->user_id, &member, error))
            return FALSE;
          if (!member)
            {
              g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                                   "A rotated key is wrapped for a non-member");
              return FALSE;
            }
        }
      if (!put_wrapped_key (self, conn, dossier_id, key, error))
        return FALSE;
    }
  return bump_dossier (self, conn, dossier_id, new_epoch, error);
}

static gboolean
pg_dossier_unshare (RelaisStore  *store,
                    const char   *dossier_id,
                    const char   *user_id,
                    guint32       new_epoch,
                    GPtrArray    *wrapped_keys,
                    GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  dossier_unshare_in (self, conn, dossier_id, user_id, new_epoch, wrapped_keys, error),
                  error);
}

static gboolean
pg_recovery_wraps (RelaisStore  *store,
                   const char   *user_id,
                   const char   *org,
                   GPtrArray   **out_keys,
                   GPtrArray   **out_dossiers,
                   GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(PGresult) res = NULL;
  GPtrArray *keys, *dossiers;
  Params p = { 0 };

  p_text (&p, user_id);
  p_text (&p, org);
  res = run_one (self,
                 "SELECT r.dossier_id, r.epoch, r.wrapped_key"
                 "  FROM members m JOIN recovery_wraps r ON r.dossier_id = m.dossier_id AND r.org = $2"
                 " WHERE m.user_id = $1 AND m.until_epoch = 0"
                 " ORDER BY r.dossier_id COLLATE \"C\", r.epoch",
                 &p, error);
  if (res == NULL)
    return FALSE;
  keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  dossiers = g_ptr_array_new_with_free_func (g_free);
  for (int i = 0; i < PQntuples (res); i++)
    {
      g_ptr_array_add (dossiers, r_text (res, i, 0));
      g_ptr_array_add (keys, relais_store_wrapped_key_new (NULL, org, r_int (res, i, 1),
                                                           PQgetvalue (res, i, 2),
                                                           PQgetlength (res, i, 2)));
    }
  *out_keys = keys;
  *out_dossiers = dossiers;
  return TRUE;
}

/* ---- Missing recovery wraps ------------------------------------------ */

/* As in relais-store-sqlite.c: the pairs (dossier, organisation) where the
 * organisation has a recovery key and a current member, and fewer wraps
 * than the dossier has epochs; the caller must be a current member.
 * Bytewise order (COLLATE "C"), as the cursor. */
#define MISSING_PAIRS_SQL \
  "SELECT m.dossier_id, u.org, k.box_pk, d.epoch" \
  "  FROM members m" \
  "  JOIN dossiers d ON d.dossier_id = m.dossier_id" \
  "  JOIN members o ON o.dossier_id = m.dossier_id AND o.until_epoch = 0" \
  "  JOIN users u ON u.user_id = o.user_id" \
  "  JOIN recovery_keys k ON k.org = u.org" \
  " WHERE m.user_id = $1 AND m.until_epoch = 0" \
  "   AND ($2::text IS NULL OR m.dossier_id > $2::text COLLATE \"C\"" \
  "        OR (m.dossier_id = $2::text AND u.org > $3::text COLLATE \"C\"))" \
  " GROUP BY m.dossier_id, u.org, k.box_pk, d.epoch" \
  " HAVING (SELECT count(*) FROM recovery_wraps r" \
  "          WHERE r.dossier_id = m.dossier_id AND r.org = u.org" \
  "            AND r.epoch BETWEEN 1 AND d.epoch) < d.epoch" \
  " ORDER BY m.dossier_id COLLATE \"C\", u.org COLLATE \"C\"" \
  " LIMIT $4::bigint"

static GPtrArray *
pg_recovery_missing (RelaisStore  *store,
                     const char   *user_id,
                     const char   *after_dossier,
                     const char   *after_org,
                     guint         limit,
                     GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(GPtrArray) result =
    g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_recovery_missing_free);
  g_autoptr(GArray) epochs = g_array_new (FALSE, FALSE, sizeof (guint32));
  g_autoptr(PGresult) res = NULL;
  gboolean ok = TRUE;
  Params p = { 0 };
  Conn *conn;

  /* Read committed is enough: an epoch listed that another device fills
   * meanwhile is filled again harmlessly (the add is idempotent). */
  conn = txn_begin (self, error);
  if (conn == NULL)
    return NULL;
  p_text (&p, user_id);
  p_text (&p, after_dossier);
  p_text (&p, after_org);
  p_int (&p, limit);
  res = run (self, conn, MISSING_PAIRS_SQL, &p, error);
  if (res == NULL)
    ok = FALSE;
  for (int i = 0; ok && i < PQntuples (res); i++)
    {
      g_autofree char *dossier_id = r_text (res, i, 0);
      g_autofree char *org = r_text (res, i, 1);
      guint8 box_pk[RELAIS_STORE_KEY_SIZE];
      guint32 epoch = (guint32) r_int (res, i, 3);

      if (!r_key (res, i, 2, box_pk))
        continue;
      g_ptr_array_add (result, relais_store_recovery_missing_new (dossier_id, org, box_pk));
      g_array_append_val (epochs, epoch);
    }
  for (guint i = 0; ok && i < result->len; i++)
    {
      RelaisStoreRecoveryMissing *missing = g_ptr_array_index (result, i);
      guint32 epoch = g_array_index (epochs, guint32, i);
      g_autoptr(PGresult) have = NULL;
      Params q = { 0 };
      guint32 next = 1;

      p_text (&q, missing->dossier_id);
      p_text (&q, missing->org);
      p_int (&q, epoch);
      have = run (self, conn,
                  "SELECT epoch FROM recovery_wraps"
                  " WHERE dossier_id = $1 AND org = $2 AND epoch BETWEEN 1 AND $3::bigint"
                  " ORDER BY epoch",
                  &q, error);
      if (have == NULL)
        {
          ok = FALSE;
          break;
        }
      for (int row = 0; row <= PQntuples (have); row++)
        {
          guint32 stop = row < PQntuples (have) ? (guint32) r_int (have, row, 0) : epoch + 1;

          for (; next < stop && missing->epochs->len < RELAIS_STORE_MISSING_EPOCHS_MAX; next++)
            g_array_append_val (missing->epochs, next);
          next = stop + 1;
        }
    }
  if (!txn_end (self, conn, ok, ok ? error : NULL))
    return NULL;
  return g_steal_pointer (&result);
}

static gboolean
recovery_add_in (RelaisStorePg  *self,
                 Conn           *conn,
                 const char     *dossier_id,
                 const char     *user_id,
                 const char     *org,
                 GPtrArray      *wrapped_keys,
                 GError        **error)
{
  g_autoptr(PGresult) res = NULL;
  guint32 epoch;
  gboolean member;
  Params p = { 0 };

  /* FOR SHARE: a rotation waits, so the epoch checked stays current. */
  if (!dossier_epoch_in (self, conn, dossier_id, EPOCH_SQL_SHARE, &epoch, error)
      || !is_member_in (self, conn, dossier_id, user_id, &member, error))
    return FALSE;
  if (!member)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The user is not a member of this dossier");
      return FALSE;
    }
  p_text (&p, org);
  res = run (self, conn, "SELECT 1 FROM recovery_keys WHERE org = $1", &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND,
                           "The organisation has no recovery key");
      return FALSE;
    }
  g_clear_pointer (&res, PQclear);
  p = (Params) { 0 };
  p_text (&p, dossier_id);
  p_text (&p, org);
  res = run (self, conn,
             "SELECT 1 FROM members m JOIN users u ON u.user_id = m.user_id"
             " WHERE m.dossier_id = $1 AND m.until_epoch = 0 AND u.org = $2 LIMIT 1",
             &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The organisation has no member in this dossier");
      return FALSE;
    }
  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);
      Params q = { 0 };

      if (key->epoch < 1 || key->epoch > epoch)
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                               "A recovery wrap is beyond the dossier's current epoch");
          return FALSE;
        }
      p_text (&q, dossier_id);
      p_text (&q, org);
      p_int (&q, key->epoch);
      p_bytes (&q, key->wrapped_key);
      /* DO NOTHING: a wrap already stored stays; a retry changes nothing. */
      if (!run_ok (self, conn,
                   "INSERT INTO recovery_wraps (dossier_id, org, epoch, wrapped_key)"
                   " VALUES ($1, $2, $3::bigint, $4::bytea)"
                   " ON CONFLICT (dossier_id, org, epoch) DO NOTHING",
                   &q, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
pg_recovery_add (RelaisStore  *store,
                 const char   *dossier_id,
                 const char   *user_id,
                 const char   *org,
                 GPtrArray    *wrapped_keys,
                 GError      **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = txn_begin (self, error);

  if (conn == NULL)
    return FALSE;
  return txn_end (self, conn,
                  recovery_add_in (self, conn, dossier_id, user_id, org, wrapped_keys, error),
                  error);
}

/* ---- Change sets ----------------------------------------------------- */

/* A change set is stored under the pushed id: the same bytes make the push
 * a duplicate.  @res ends with the stored seq and envelope. */
static gboolean
same_envelope (const PGresult  *res,
               const guint8    *env,
               gsize            env_len,
               guint64         *out_seq,
               gboolean        *out_duplicate,
               GError         **error)
{
  int seq_col = PQnfields (res) - 2;

  if ((gsize) PQgetlength (res, 0, seq_col + 1) != env_len
      || memcmp (PQgetvalue (res, 0, seq_col + 1), env, env_len) != 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_ID_CONFLICT,
                           "Another change set is stored under this id");
      return FALSE;
    }
  *out_seq = r_int (res, 0, seq_col);
  *out_duplicate = TRUE;
  return TRUE;
}

#define PUT_CHECK_SQL \
  "SELECT EXISTS (SELECT 1 FROM members" \
  "                WHERE dossier_id = $1 AND user_id = $2 AND until_epoch = 0)," \
  "       c.seq, c.envelope" \
  "  FROM (SELECT 1) AS one" \
  "  LEFT JOIN changesets c ON c.dossier_id = $1 AND c.id = $3::bytea"

/* SEQ_LOCK, then nextval(), in one statement: the lock's subquery holds a
 * volatile function, so the planner keeps it apart and runs it before the
 * row is built.  Held until the commit (see the top). */
#define PUT_INSERT_SQL \
  "INSERT INTO changesets" \
  " (dossier_id, id, seq, epoch, author_user, device_id, size, created, envelope)" \
  " SELECT $3, $4::bytea, nextval ('changeset_seq'), $5::bigint, $6, $7, $8::int4," \
  "        $9::bigint, $10::bytea" \
  "   FROM (SELECT pg_advisory_xact_lock ($1::int4, $2::int4)) AS l" \
  " ON CONFLICT (dossier_id, id) DO NOTHING RETURNING seq"

/* The first round trip of a push: BEGIN, the dossier's row locked FOR
 * SHARE (a rotation of it waits for this push, or this push for it), then
 * the author's membership and a change set stored under this id, read
 * after the lock is held. */
static gboolean
put_check (RelaisStorePg               *self,
           Conn                        *conn,
           const RelaisStoreChangeset  *cs,
           PGresult                   **out_epoch,
           PGresult                   **out_check,
           GError                     **error)
{
  PGresult *results[3];
  Params lock = { 0 };
  Params check = { 0 };
  const Stmt stmts[] = {
    { "BEGIN", NULL },
    { EPOCH_SQL_SHARE, &lock },
    { PUT_CHECK_SQL, &check },
  };

  p_text (&lock, cs->dossier_id);
  p_text (&check, cs->dossier_id);
  p_text (&check, cs->author_user);
  p_blob (&check, cs->id, 16);
  if (!run_pipeline (self, conn, stmts, G_N_ELEMENTS (stmts), results, error))
    return FALSE;
  PQclear (results[0]);
  *out_epoch = results[1];
  *out_check = results[2];
  return TRUE;
}

static gboolean
changeset_put_in (RelaisStorePg               *self,
                  Conn                        *conn,
                  const RelaisStoreChangeset  *cs,
                  gint64                       now,
                  guint64                     *out_seq,
                  gboolean                    *out_duplicate,
                  GError                     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(PGresult) epoch_res = NULL;
  g_autoptr(PGresult) res = NULL;
  gsize env_len;
  const guint8 *env = g_bytes_get_data (cs->envelope, &env_len);
  guint32 epoch;
  Params p = { 0 };

  /* A pooled session whose server went away: once more on a new one
   * (nothing was written). */
  if (!put_check (self, conn, cs, &epoch_res, &res, &local_error))
    {
      if (PQstatus (conn->pg) == CONNECTION_OK)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      g_clear_error (&local_error);
      PQreset (conn->pg);
      if (PQstatus (conn->pg) != CONNECTION_OK)
        {
          set_conn_error (self, conn, "Cannot connect to the PostgreSQL store", error);
          return FALSE;
        }
      if (!conn_setup (self, conn, error)
          || !put_check (self, conn, cs, &epoch_res, &res, error))
        return FALSE;
    }

  /* An unknown dossier and a dossier of others look the same to the
   * pusher: NOT_MEMBER, so that ids cannot be probed. */
  if (PQntuples (epoch_res) == 0 || !r_bool (res, 0, 0))
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER,
                           "The author is not a member of this dossier");
      return FALSE;
    }
  epoch = (guint32) r_int (epoch_res, 0, 0);
  /* A retried push answers with the stored seq, even after a rotation. */
  if (!PQgetisnull (res, 0, 1))
    {
      if (!same_envelope (res, env, env_len, out_seq, out_duplicate, error))
        return FALSE;
      return run_ok (self, conn, "COMMIT", NULL, error);
    }
  g_clear_pointer (&res, PQclear);

  if (cs->epoch != epoch)
    {
      g_set_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED,
                   "The change set is sealed at epoch %u, the dossier is at epoch %u",
                   cs->epoch, epoch);
      return FALSE;
    }

  /* The second round trip: the insert and the commit. */
  {
    PGresult *results[2];
    Params ins = { 0 };
    const Stmt stmts[] = {
      { PUT_INSERT_SQL, &ins },
      { "COMMIT", NULL },
    };

    p_int (&ins, LOCK_CLASS);
    p_int (&ins, SEQ_LOCK);
    p_text (&ins, cs->dossier_id);
    p_blob (&ins, cs->id, 16);
    p_int (&ins, cs->epoch);
    p_text (&ins, cs->author_user);
    p_text (&ins, cs->device_id);
    p_int (&ins, (gint64) env_len);
    p_int (&ins, now);
    p_blob (&ins, env, env_len);
    if (!run_pipeline (self, conn, stmts, G_N_ELEMENTS (stmts), results, error))
      return FALSE;
    res = results[0];
    PQclear (results[1]);
  }
  if (PQntuples (res) == 1)
    {
      *out_seq = r_int (res, 0, 0);
      *out_duplicate = FALSE;
      return TRUE;
    }
  g_clear_pointer (&res, PQclear);

  /* The same id, pushed at the same moment through another connection,
   * committed first: a duplicate or a conflict after all. */
  p_text (&p, cs->dossier_id);
  p_blob (&p, cs->id, 16);
  res = run (self, conn,
             "SELECT seq, envelope FROM changesets WHERE dossier_id = $1 AND id = $2::bytea",
             &p, error);
  if (res == NULL)
    return FALSE;
  if (PQntuples (res) == 0)
    {
      g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED,
                           "PostgreSQL store: a change set was neither stored nor found");
      return FALSE;
    }
  return same_envelope (res, env, env_len, out_seq, out_duplicate, error);
}

/* Two round trips (see put_check), committed within changeset_put_in. */
static gboolean
pg_changeset_put (RelaisStore                 *store,
                  const RelaisStoreChangeset  *changeset,
                  gint64                       now,
                  guint64                     *out_seq,
                  gboolean                    *out_duplicate,
                  GError                     **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  Conn *conn = conn_acquire (self, error);
  gboolean ok;

  if (conn == NULL)
    return FALSE;
  ok = changeset_put_in (self, conn, changeset, now, out_seq, out_duplicate, error);
  /* On failure the transaction is rolled back here. */
  conn_release (self, conn);
  return ok;
}

/* The pull, in one statement (its own snapshot):
 *  - cand: change sets pushed after the user joined (vis = seq) from the
 *    cursor on, and those pushed before the user joined a dossier (vis =
 *    joined_seq) for dossiers joined at or after the cursor;
 *  - page: the first $6 of those in (vis, seq) order, with their running
 *    size;
 *  - the envelopes of those within $7 bytes (the first always): the others
 *    are read from the indexes only.
 * The vis = seq change sets are found one of two ways, which give the same
 * rows; the cheaper runs (the other is cut by a one-time filter):
 *  - when few change sets at all were pushed since the cursor (fewer than
 *    $8, or than 4 times the user's dossiers: a fresh device of a user
 *    who has most of the store; judged from the sequence; the count runs
 *    only when the first test fails), by scanning them in seq order
 *    (changesets_seq) and keeping those of the user's dossiers, each
 *    looked up by the primary key (a scalar subquery, which the planner
 *    does not turn into a hash of all the user's memberships): an
 *    incremental pull costs what was pushed since, not how many dossiers
 *    the user has;
 *  - otherwise by a LATERAL range scan of changesets_pull per dossier of
 *    the user (from members_user), at most $6 rows each, so that a dossier
 *    with a long history does not make every page sort all of it.
 * The pre-join change sets are always found per dossier: only dossiers
 * joined since the cursor are read. */
static const char pull_sql[] =
  "WITH horizon AS ("
  "  SELECT last_value - $2::bigint < $8::bigint"
  "         OR last_value - $2::bigint < 4 * (SELECT count(*) FROM members"
  "                                            WHERE user_id = $1 AND until_epoch = 0) AS recent"
  "    FROM changeset_seq"
  "), cand AS ("
  "  SELECT c.dossier_id, c.seq, c.seq AS vis, c.size"
  "    FROM (SELECT c.dossier_id, c.seq, c.size FROM changesets c"
  "           WHERE c.seq >= $2::bigint AND c.device_id IS DISTINCT FROM $3::text"
  "             AND (SELECT m.joined_seq FROM members m"
  "                   WHERE m.dossier_id = c.dossier_id AND m.user_id = $1"
  "                     AND m.until_epoch = 0 LIMIT 1) < c.seq"
  "           ORDER BY c.seq LIMIT $6::bigint) c"
  "   WHERE (SELECT recent FROM horizon)"
  "  UNION ALL"
  "  SELECT m.dossier_id, c.seq, c.seq AS vis, c.size"
  "    FROM members m CROSS JOIN LATERAL ("
  "      SELECT c.seq, c.size FROM changesets c"
  "       WHERE c.dossier_id = m.dossier_id AND c.seq >= GREATEST ($2::bigint, m.joined_seq + 1)"
  "         AND c.device_id IS DISTINCT FROM $3::text"
  "       ORDER BY c.seq LIMIT $6::bigint) c"
  "   WHERE m.user_id = $1 AND m.until_epoch = 0 AND NOT (SELECT recent FROM horizon)"
  "  UNION ALL"
  "  SELECT m.dossier_id, c.seq, m.joined_seq AS vis, c.size"
  "    FROM members m CROSS JOIN LATERAL ("
  "      SELECT c.seq, c.size FROM changesets c"
  "       WHERE c.dossier_id = m.dossier_id AND c.seq < m.joined_seq"
  "         AND (m.joined_seq > $4::bigint OR c.seq > $5::bigint)"
  "         AND c.device_id IS DISTINCT FROM $3::text"
  "       ORDER BY c.seq LIMIT $6::bigint) c"
  "   WHERE m.user_id = $1 AND m.until_epoch = 0 AND m.joined_seq >= $4::bigint"
  "), page AS ("
  "  SELECT dossier_id, seq, vis,"
  "         row_number () OVER w AS n, sum (size) OVER w AS total"
  "    FROM (SELECT * FROM cand ORDER BY vis, seq LIMIT $6::bigint) AS first"
  "  WINDOW w AS (ORDER BY vis, seq ROWS UNBOUNDED PRECEDING)"
  ")"
  "SELECT p.vis, p.seq, p.dossier_id,"
  "       CASE WHEN p.n = 1 OR p.total <= $7::bigint THEN c.envelope END"
  "  FROM page p JOIN changesets c ON c.dossier_id = p.dossier_id AND c.seq = p.seq"
  " ORDER BY p.vis, p.seq";

static GPtrArray *
pg_changeset_pull (RelaisStore              *store,
                   const char               *user_id,
                   const char               *exclude_device,
                   const RelaisStoreCursor  *after,
                   guint                     limit,
                   gsize                     max_bytes,
                   gboolean                 *out_more,
                   GError                  **error)
{
  RelaisStorePg *self = (RelaisStorePg *) store;
  g_autoptr(GPtrArray) pulled = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_pulled_free);
  g_autoptr(PGresult) res = NULL;
  Params p = { 0 };
  gint64 lo;
  int n;

  if (after->vis >= G_MAXINT64 || after->seq >= G_MAXINT64)
    {
      *out_more = FALSE;
      return g_steal_pointer (&pulled);
    }
  /* See relais-store-sqlite.c: the first seq of a vis = seq row after the
   * cursor. */
  lo = after->seq < after->vis ? (gint64) after->vis : (gint64) after->vis + 1;

  p_text (&p, user_id);
  p_int (&p, lo);
  p_text (&p, exclude_device);
  p_int (&p, (gint64) after->vis);
  p_int (&p, (gint64) after->seq);
  p_int (&p, (gint64) limit + 1);
  p_int (&p, (gint64) MIN (max_bytes, (gsize) G_MAXINT64));
  p_int (&p, RELAIS_STORE_PULL_SCAN_BUDGET (limit));
  res = run_one_full (self, pull_sql, &p, TRUE, error);
  if (res == NULL)
    return NULL;

  n = PQntuples (res);
  for (int i = 0; i < n && (guint) i < limit && !PQgetisnull (res, i, 3); i++)
    {
      g_autofree char *dossier_id = r_text (res, i, 2);

      g_ptr_array_add (pulled, relais_store_pulled_new (r_int (res, i, 0), r_int (res, i, 1),
                                                        dossier_id, PQgetvalue (res, i, 3),
                                                        PQgetlength (res, i, 3)));
    }
  *out_more = (guint) n > pulled->len;
  return g_steal_pointer (&pulled);
}

static const RelaisStoreVTable pg_vtable = {
  .close = pg_close,
  .get_secret = pg_get_secret,
  .user_add = pg_user_add,
  .user_get = pg_user_get,
  .user_list = pg_user_list,
  .user_set_keys = pg_user_set_keys,
  .code_add = pg_code_add,
  .code_use = pg_code_use,
  .device_add = pg_device_add,
  .device_get = pg_device_get,
  .device_list = pg_device_list,
  .device_revoke = pg_device_revoke,
  .device_seen = pg_device_seen,
  .nonce_use = pg_nonce_use,
  .recovery_key_set = pg_recovery_key_set,
  .recovery_key_get = pg_recovery_key_get,
  .dossier_create = pg_dossier_create,
  .dossier_epoch = pg_dossier_epoch,
  .is_member = pg_is_member,
  .dossier_keys = pg_dossier_keys,
  .dossier_share = pg_dossier_share,
  .dossier_unshare = pg_dossier_unshare,
  .recovery_wraps = pg_recovery_wraps,
  .recovery_missing = pg_recovery_missing,
  .recovery_add = pg_recovery_add,
  .changeset_put = pg_changeset_put,
  .changeset_pull = pg_changeset_pull,
};
