#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "relais-store.h"
#include "relais-test-pg.h"
#include "relais-test-util.h"

/* One contract suite for the server's two stores: every case runs on a
 * SQLite file in a temporary directory and on a real PostgreSQL cluster
 * (relais-test-pg), each case in a fresh database.  Envelopes are opaque
 * random bytes: the store never parses them. */

typedef enum {
  BACKEND_SQLITE,
  BACKEND_PG,
} Backend;

static const char *const backend_names[] = { "sqlite", "pg" };

/* One cluster for the whole program: starting one takes seconds. */
static RelaisTestPg *shared_pg;
static guint n_databases;

typedef struct {
  Backend      backend;
  char        *tmpdir;
  char        *uri;
  RelaisStore *store;
} Fixture;

static char *
new_store_uri (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  if (f->backend == BACKEND_SQLITE)
    {
      g_autofree char *path = g_build_filename (f->tmpdir, "store.db", NULL);

      return g_strconcat ("sqlite:", path, NULL);
    }
  else
    {
      g_autofree char *name = g_strdup_printf ("store_%u", ++n_databases);
      char *uri;

      if (shared_pg == NULL)
        {
          shared_pg = relais_test_pg_start (&error);
          g_assert_no_error (error);
        }
      uri = relais_test_pg_create_database (shared_pg, name, &error);
      g_assert_no_error (error);
      return uri;
    }
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->backend = GPOINTER_TO_INT (data);
  if (f->backend == BACKEND_PG && !relais_test_pg_skip_unless_available ())
    return;
  f->tmpdir = relais_test_make_tmpdir ("relais-test-store");
  f->uri = new_store_uri (f);
  f->store = relais_store_open (f->uri, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->store);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->store, relais_store_close);
  if (f->tmpdir != NULL)
    relais_test_rm_rf (f->tmpdir);
  g_free (f->tmpdir);
  g_free (f->uri);
}

/* Reads one integer straight from the database, behind the store's back. */
static gint64
query_int (Fixture    *f,
           const char *sql)
{
  gint64 value = -1;

  if (f->backend == BACKEND_SQLITE)
    {
      sqlite3 *db = NULL;
      sqlite3_stmt *stmt = NULL;

      g_assert_cmpint (sqlite3_open_v2 (f->uri + strlen ("sqlite:"), &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
      value = sqlite3_column_int64 (stmt, 0);
      sqlite3_finalize (stmt);
      sqlite3_close (db);
    }
  else
    {
      PGconn *conn = PQconnectdb (f->uri);
      PGresult *res;

      g_assert_cmpint (PQstatus (conn), ==, CONNECTION_OK);
      res = PQexec (conn, sql);
      g_assert_cmpint (PQresultStatus (res), ==, PGRES_TUPLES_OK);
      g_assert_cmpint (PQntuples (res), ==, 1);
      value = g_ascii_strtoll (PQgetvalue (res, 0, 0), NULL, 10);
      PQclear (res);
      PQfinish (conn);
    }
  return value;
}

static void
exec_sql (Fixture    *f,
          const char *sql)
{
  if (f->backend == BACKEND_SQLITE)
    {
      sqlite3 *db = NULL;

      g_assert_cmpint (sqlite3_open (f->uri + strlen ("sqlite:"), &db), ==, SQLITE_OK);
      g_assert_cmpint (sqlite3_exec (db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
      sqlite3_close (db);
    }
  else
    {
      PGconn *conn = PQconnectdb (f->uri);
      PGresult *res;

      g_assert_cmpint (PQstatus (conn), ==, CONNECTION_OK);
      res = PQexec (conn, sql);
      g_assert_cmpint (PQresultStatus (res), ==, PGRES_COMMAND_OK);
      PQclear (res);
      PQfinish (conn);
    }
}

/* ---- Helpers --------------------------------------------------------- */

static void
fill_key (guint8 key[RELAIS_STORE_KEY_SIZE],
          guint8 value)
{
  memset (key, value, RELAIS_STORE_KEY_SIZE);
}

static RelaisStoreWrappedKey *
wrapped_key (const char *user_id,
             const char *org,
             guint32     epoch,
             guint8      fill)
{
  RelaisStoreWrappedKey *key = g_new0 (RelaisStoreWrappedKey, 1);
  guint8 bytes[80];

  memset (bytes, fill, sizeof bytes);
  bytes[0] = (guint8) epoch;
  key->user_id = g_strdup (user_id);
  key->org = g_strdup (org);
  key->epoch = epoch;
  key->wrapped_key = g_bytes_new (bytes, sizeof bytes);
  return key;
}

static GPtrArray *
key_list (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
}

/* A user with keys, whose sign_pk is filled with @fill. */
static void
add_user (RelaisStore *store,
          const char  *user_id,
          const char  *name,
          const char  *org,
          guint8       fill)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) wrapped = g_bytes_new_static ("wrapped", 7);
  guint8 box[RELAIS_STORE_KEY_SIZE], sign[RELAIS_STORE_KEY_SIZE];

  fill_key (box, fill ^ 0xff);
  fill_key (sign, fill);
  g_assert_true (relais_store_user_add (store, user_id, name, org, FALSE, 1000, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_user_set_keys (store, user_id, box, sign, wrapped, &error));
  g_assert_no_error (error);
}

static void
add_device (RelaisStore *store,
            const char  *device_id,
            const char  *user_id)
{
  g_autoptr(GError) error = NULL;
  guint8 pk[RELAIS_STORE_KEY_SIZE];

  fill_key (pk, 7);
  g_assert_true (relais_store_device_add (store, device_id, user_id, "laptop", pk, 1000, &error));
  g_assert_no_error (error);
}

/* A dossier whose members are the NULL-terminated user ids, with a
 * recovery wrap for "org-a". */
static void
create_dossier (RelaisStore *store,
                const char  *dossier_id,
                ...)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = key_list ();
  const char *user_id;
  va_list ap;

  va_start (ap, dossier_id);
  while ((user_id = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (keys, wrapped_key (user_id, NULL, 1, 0x11));
  va_end (ap);
  g_ptr_array_add (keys, wrapped_key (NULL, "org-a", 1, 0x22));
  g_assert_true (relais_store_dossier_create (store, dossier_id, keys, 1000, &error));
  g_assert_no_error (error);
}

/* A change-set id that is unique in the program, its first bytes @tag. */
static void
make_id (guint8   id[16],
         guint32  tag)
{
  static gint counter;
  guint32 n = (guint32) g_atomic_int_add (&counter, 1);

  memcpy (id, &tag, 4);
  memcpy (id + 4, &n, 4);
  for (int i = 8; i < 16; i++)
    id[i] = (guint8) g_random_int ();
}

static GBytes *
random_envelope (gsize size)
{
  guint8 *data = g_malloc (size);

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) g_random_int ();
  return g_bytes_new_take (data, size);
}

static gboolean
put (RelaisStore  *store,
     const char   *dossier_id,
     const guint8 *id,
     guint32       epoch,
     const char   *author,
     const char   *device,
     GBytes       *envelope,
     guint64      *out_seq,
     gboolean     *out_duplicate,
     GError      **error)
{
  RelaisStoreChangeset cs = {
    .dossier_id = dossier_id,
    .id = id,
    .epoch = epoch,
    .author_user = author,
    .device_id = device,
    .envelope = envelope,
  };
  guint64 seq = 0;
  gboolean duplicate = FALSE;
  gboolean ok = relais_store_changeset_put (store, &cs, 2000, &seq, &duplicate, error);

  if (out_seq != NULL)
    *out_seq = seq;
  if (out_duplicate != NULL)
    *out_duplicate = duplicate;
  return ok;
}

/* Pushes a new change set and returns its seq. */
static guint64
push_new (RelaisStore *store,
          const char  *dossier_id,
          guint32      epoch,
          const char  *author,
          const char  *device,
          gsize        size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) envelope = random_envelope (size);
  guint8 id[16];
  guint64 seq;
  gboolean duplicate;

  make_id (id, 0);
  g_assert_true (put (store, dossier_id, id, epoch, author, device, envelope, &seq, &duplicate, &error));
  g_assert_no_error (error);
  g_assert_false (duplicate);
  g_assert_cmpuint (seq, >, 0);
  return seq;
}

/* Pulls until the end, @limit at a time; returns every change set pulled
 * and moves @cursor along. */
static GPtrArray *
pull_all (RelaisStore       *store,
          const char        *user_id,
          const char        *exclude_device,
          RelaisStoreCursor *cursor,
          guint              limit,
          gsize              max_bytes)
{
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_pulled_free);
  gboolean more = TRUE;

  while (more)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) page = relais_store_changeset_pull (store, user_id, exclude_device, cursor,
                                                                limit, max_bytes, &more, &error);

      g_assert_no_error (error);
      g_assert_nonnull (page);
      g_assert_cmpuint (page->len, <=, limit);
      if (more)
        g_assert_cmpuint (page->len, >, 0);
      for (guint i = 0; i < page->len; i++)
        {
          RelaisStorePulled *p = g_ptr_array_index (page, i);

          /* Strictly after the cursor, in (vis, seq) order. */
          g_assert_true (p->position.vis > cursor->vis
                         || (p->position.vis == cursor->vis && p->position.seq > cursor->seq));
          g_assert_cmpuint (p->position.vis, >=, p->position.seq);
          *cursor = p->position;
          g_ptr_array_add (all, g_ptr_array_steal_index (page, i--));
        }
    }
  return g_steal_pointer (&all);
}

static gboolean
pulled_has_seq (GPtrArray *pulled,
                guint64    seq)
{
  for (guint i = 0; i < pulled->len; i++)
    if (((RelaisStorePulled *) g_ptr_array_index (pulled, i))->position.seq == seq)
      return TRUE;
  return FALSE;
}

/* ---- Users, codes, devices, nonces, recovery keys -------------------- */

static void
test_users (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStoreUser) user = NULL;
  g_autoptr(GPtrArray) users = NULL;
  g_autoptr(GBytes) wrapped1 = g_bytes_new_static ("wrapped-1", 9);
  g_autoptr(GBytes) wrapped2 = g_bytes_new_static ("wrapped-22", 10);
  guint8 box[RELAIS_STORE_KEY_SIZE], sign[RELAIS_STORE_KEY_SIZE], other[RELAIS_STORE_KEY_SIZE];

  if (f->store == NULL)
    return;

  g_assert_true (relais_store_user_add (f->store, "u1", "Zoé", "org-b", TRUE, 1000, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_user_add (f->store, "u2", "Anne", "org-b", FALSE, 1001, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_user_add (f->store, "u3", "Marc", "org-a", FALSE, 1002, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_user_add (f->store, "u1", "Other", "org-c", FALSE, 1003, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS);
  g_clear_error (&error);

  user = relais_store_user_get (f->store, "u1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (user->user_id, ==, "u1");
  g_assert_cmpstr (user->name, ==, "Zoé");
  g_assert_cmpstr (user->org, ==, "org-b");
  g_assert_true (user->admin);
  g_assert_false (user->has_keys);
  g_assert_null (user->wrapped_keys);
  g_assert_cmpint (user->created, ==, 1000);
  g_clear_pointer (&user, relais_store_user_free);

  g_assert_null (relais_store_user_get (f->store, "nobody", &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Ordered by organisation, then name. */
  users = relais_store_user_list (f->store, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (users->len, ==, 3);
  g_assert_cmpstr (((RelaisStoreUser *) users->pdata[0])->user_id, ==, "u3");
  g_assert_cmpstr (((RelaisStoreUser *) users->pdata[1])->user_id, ==, "u2");
  g_assert_cmpstr (((RelaisStoreUser *) users->pdata[2])->user_id, ==, "u1");
  g_clear_pointer (&users, g_ptr_array_unref);
  users = relais_store_user_list (f->store, "org-b", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (users->len, ==, 2);
  g_clear_pointer (&users, g_ptr_array_unref);
  users = relais_store_user_list (f->store, "org-none", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (users->len, ==, 0);
  g_clear_pointer (&users, g_ptr_array_unref);

  /* Keys: once, again with the same public keys (a re-wrap), never others. */
  fill_key (box, 1);
  fill_key (sign, 2);
  fill_key (other, 3);
  g_assert_true (relais_store_user_set_keys (f->store, "u1", box, sign, wrapped1, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_user_set_keys (f->store, "u1", box, sign, wrapped2, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_user_set_keys (f->store, "u1", other, sign, wrapped1, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_KEYS_SET);
  g_clear_error (&error);
  g_assert_false (relais_store_user_set_keys (f->store, "u1", box, other, wrapped1, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_KEYS_SET);
  g_clear_error (&error);
  g_assert_false (relais_store_user_set_keys (f->store, "nobody", box, sign, wrapped1, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  user = relais_store_user_get (f->store, "u1", &error);
  g_assert_no_error (error);
  g_assert_true (user->has_keys);
  g_assert_cmpmem (user->box_pk, RELAIS_STORE_KEY_SIZE, box, RELAIS_STORE_KEY_SIZE);
  g_assert_cmpmem (user->sign_pk, RELAIS_STORE_KEY_SIZE, sign, RELAIS_STORE_KEY_SIZE);
  g_assert_nonnull (user->wrapped_keys);
  g_assert_true (g_bytes_equal (user->wrapped_keys, wrapped2));

  users = relais_store_user_list (f->store, "org-b", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (((RelaisStoreUser *) users->pdata[1])->user_id, ==, "u1");
  g_assert_true (((RelaisStoreUser *) users->pdata[1])->has_keys);
  g_assert_null (((RelaisStoreUser *) users->pdata[1])->wrapped_keys);
  g_assert_false (((RelaisStoreUser *) users->pdata[0])->has_keys);
}

static void
test_codes (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  guint8 h1[RELAIS_STORE_HASH_SIZE], h2[RELAIS_STORE_HASH_SIZE], h3[RELAIS_STORE_HASH_SIZE];
  char *user_id;

  if (f->store == NULL)
    return;

  memset (h1, 1, sizeof h1);
  memset (h2, 2, sizeof h2);
  memset (h3, 3, sizeof h3);
  g_assert_true (relais_store_user_add (f->store, "u1", "A", "org-a", FALSE, 1000, &error));
  g_assert_no_error (error);

  g_assert_true (relais_store_code_add (f->store, h1, "u1", 5000, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_code_add (f->store, h2, "u1", 5000, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_code_add (f->store, h3, "nobody", 5000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Single use. */
  user_id = relais_store_code_use (f->store, h1, 4999, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (user_id, ==, "u1");
  g_free (user_id);
  g_assert_null (relais_store_code_use (f->store, h1, 4999, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_USED);
  g_clear_error (&error);
  /* Used and expired: used. */
  g_assert_null (relais_store_code_use (f->store, h1, 6000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_USED);
  g_clear_error (&error);

  /* Expired at its expiry time, and an expired code stays unused. */
  g_assert_null (relais_store_code_use (f->store, h2, 5000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_EXPIRED);
  g_clear_error (&error);
  g_assert_null (relais_store_code_use (f->store, h2, 5001, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_CODE_EXPIRED);
  g_clear_error (&error);

  g_assert_null (relais_store_code_use (f->store, h3, 1000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Only hashes are stored: the table holds two rows of 32-byte keys. */
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM codes"), ==, 2);
}

static void
test_devices (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStoreDevice) device = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  guint8 pk[RELAIS_STORE_KEY_SIZE];

  if (f->store == NULL)
    return;

  fill_key (pk, 9);
  add_user (f->store, "u1", "A", "org-a", 1);
  add_user (f->store, "u2", "B", "org-a", 2);
  g_assert_true (relais_store_device_add (f->store, "d1", "u1", "Laptop", pk, 1000, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_device_add (f->store, "d2", "u1", "Desk", pk, 1001, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_device_add (f->store, "d3", "u2", "Other", pk, 1002, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_device_add (f->store, "d1", "u2", "Again", pk, 1003, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (relais_store_device_add (f->store, "d9", "nobody", "X", pk, 1003, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  device = relais_store_device_get (f->store, "d1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (device->device_id, ==, "d1");
  g_assert_cmpstr (device->user_id, ==, "u1");
  g_assert_cmpstr (device->name, ==, "Laptop");
  g_assert_cmpmem (device->pk, RELAIS_STORE_KEY_SIZE, pk, RELAIS_STORE_KEY_SIZE);
  g_assert_false (device->revoked);
  g_assert_cmpint (device->created, ==, 1000);
  g_assert_cmpint (device->last_seen, ==, 0);
  g_clear_pointer (&device, relais_store_device_free);
  g_assert_null (relais_store_device_get (f->store, "d9", &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  devices = relais_store_device_list (f->store, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, ==, 3);
  g_clear_pointer (&devices, g_ptr_array_unref);
  devices = relais_store_device_list (f->store, "u1", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, ==, 2);
  g_clear_pointer (&devices, g_ptr_array_unref);

  g_assert_true (relais_store_device_seen (f->store, "d1", 1500, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_device_seen (f->store, "d9", 1500, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (relais_store_device_revoke (f->store, "d1", &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_device_revoke (f->store, "d1", &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_device_revoke (f->store, "d9", &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  device = relais_store_device_get (f->store, "d1", &error);
  g_assert_no_error (error);
  g_assert_true (device->revoked);
  g_assert_cmpint (device->last_seen, ==, 1500);
  g_clear_pointer (&device, relais_store_device_free);
  device = relais_store_device_get (f->store, "d2", &error);
  g_assert_no_error (error);
  g_assert_false (device->revoked);
}

static void
test_nonces (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  guint8 n1[16], n2[16], n3[16];

  if (f->store == NULL)
    return;

  memset (n1, 1, sizeof n1);
  memset (n2, 2, sizeof n2);
  memset (n3, 3, sizeof n3);

  g_assert_true (relais_store_nonce_use (f->store, "d1", n1, 16, 1600, 1000, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_nonce_use (f->store, "d1", n1, 16, 1610, 1010, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_REPLAYED);
  g_clear_error (&error);
  /* Another device's nonce space. */
  g_assert_true (relais_store_nonce_use (f->store, "d2", n1, 16, 1600, 1000, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_nonce_use (f->store, "d1", n2, 16, 1700, 1100, &error));
  g_assert_no_error (error);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM nonces"), ==, 3);

  /* At its expiry the nonce is purged by the device's next request, and
   * may be seen again; the other device's is left alone. */
  g_assert_true (relais_store_nonce_use (f->store, "d1", n3, 16, 2200, 1600, &error));
  g_assert_no_error (error);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM nonces WHERE device_id = 'd1'"), ==, 2);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM nonces WHERE device_id = 'd2'"), ==, 1);
  g_assert_true (relais_store_nonce_use (f->store, "d1", n1, 16, 2200, 1600, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_nonce_use (f->store, "d1", n2, 16, 2300, 1699, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_REPLAYED);
  g_clear_error (&error);
}

static void
test_recovery_key (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  guint8 k1[RELAIS_STORE_KEY_SIZE], k2[RELAIS_STORE_KEY_SIZE], out[RELAIS_STORE_KEY_SIZE];

  if (f->store == NULL)
    return;

  fill_key (k1, 1);
  fill_key (k2, 2);
  g_assert_false (relais_store_recovery_key_get (f->store, "org-a", out, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (relais_store_recovery_key_set (f->store, "org-a", k1, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_recovery_key_get (f->store, "org-a", out, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, sizeof out, k1, sizeof k1);
  /* A new key replaces the old one. */
  g_assert_true (relais_store_recovery_key_set (f->store, "org-a", k2, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_recovery_key_get (f->store, "org-a", out, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, sizeof out, k2, sizeof k2);
  g_assert_false (relais_store_recovery_key_get (f->store, "org-b", out, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
}

/* ---- Dossiers -------------------------------------------------------- */

static void
test_dossiers (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) bad = NULL;
  RelaisStoreWrappedKey *key;
  RelaisStoreMember *member;
  guint8 sign[RELAIS_STORE_KEY_SIZE];
  gboolean is_member;
  guint32 epoch = 0;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-b", 2);
  add_user (f->store, "uc", "C", "org-a", 3);
  create_dossier (f->store, "D1", "ua", "ub", NULL);

  g_assert_true (relais_store_dossier_epoch (f->store, "D1", &epoch, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (epoch, ==, 1);
  g_assert_false (relais_store_dossier_epoch (f->store, "D9", &epoch, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Creating it again: EXISTS, and nothing changes. */
  bad = key_list ();
  g_ptr_array_add (bad, wrapped_key ("uc", NULL, 1, 0x33));
  g_assert_false (relais_store_dossier_create (f->store, "D1", bad, 1000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS);
  g_clear_error (&error);

  g_assert_true (relais_store_is_member (f->store, "D1", "ua", &is_member, &error));
  g_assert_no_error (error);
  g_assert_true (is_member);
  g_assert_true (relais_store_is_member (f->store, "D1", "uc", &is_member, &error));
  g_assert_no_error (error);
  g_assert_false (is_member);
  g_assert_true (relais_store_is_member (f->store, "D9", "ua", &is_member, &error));
  g_assert_no_error (error);
  g_assert_false (is_member);

  g_assert_true (relais_store_dossier_keys (f->store, "D1", "ub", &keys, &members, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 1);
  key = g_ptr_array_index (keys, 0);
  g_assert_cmpuint (key->epoch, ==, 1);
  g_assert_cmpstr (key->user_id, ==, "ub");
  g_assert_cmpuint (g_bytes_get_size (key->wrapped_key), ==, 80);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (key->wrapped_key, NULL))[1], ==, 0x11);
  g_assert_cmpuint (members->len, ==, 2);
  member = g_ptr_array_index (members, 0);
  g_assert_cmpstr (member->user_id, ==, "ua");
  fill_key (sign, 1);
  g_assert_cmpmem (member->sign_pk, RELAIS_STORE_KEY_SIZE, sign, RELAIS_STORE_KEY_SIZE);
  g_assert_cmpuint (member->since_epoch, ==, 1);
  g_assert_cmpuint (member->until_epoch, ==, 0);
  member = g_ptr_array_index (members, 1);
  g_assert_cmpstr (member->user_id, ==, "ub");
  g_clear_pointer (&keys, g_ptr_array_unref);
  g_clear_pointer (&members, g_ptr_array_unref);

  /* A non-member gets nothing. */
  g_assert_false (relais_store_dossier_keys (f->store, "D1", "uc", &keys, &members, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_null (keys);
  g_assert_false (relais_store_dossier_keys (f->store, "D9", "ua", &keys, &members, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* A creation that names an unknown user, or a key at another epoch,
   * fails whole: no dossier is left behind. */
  g_clear_pointer (&bad, g_ptr_array_unref);
  bad = key_list ();
  g_ptr_array_add (bad, wrapped_key ("ua", NULL, 1, 0x11));
  g_ptr_array_add (bad, wrapped_key ("nobody", NULL, 1, 0x11));
  g_assert_false (relais_store_dossier_create (f->store, "D2", bad, 1000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_pointer (&bad, g_ptr_array_unref);
  bad = key_list ();
  g_ptr_array_add (bad, wrapped_key ("ua", NULL, 1, 0x11));
  g_ptr_array_add (bad, wrapped_key ("ub", NULL, 2, 0x11));
  g_assert_false (relais_store_dossier_create (f->store, "D2", bad, 1000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED);
  g_clear_error (&error);
  g_clear_pointer (&bad, g_ptr_array_unref);
  bad = key_list ();
  g_ptr_array_add (bad, wrapped_key ("ua", NULL, 1, 0x11));
  g_ptr_array_add (bad, wrapped_key ("ua", NULL, 1, 0x12));
  g_assert_false (relais_store_dossier_create (f->store, "D2", bad, 1000, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (relais_store_dossier_epoch (f->store, "D2", &epoch, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM members WHERE dossier_id = 'D2'"), ==, 0);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM member_keys WHERE dossier_id = 'D2'"), ==, 0);
}

static void
test_share (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) share_keys = key_list ();
  RelaisStoreCursor cursor_c = { 0, 0 };
  guint64 s1, s2, s3, s_other;
  gboolean is_member;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "uc", "C", "org-b", 3);
  add_device (f->store, "da", "ua");
  add_device (f->store, "dc", "uc");
  create_dossier (f->store, "D1", "ua", NULL);
  create_dossier (f->store, "D2", "uc", NULL);
  s1 = push_new (f->store, "D1", 1, "ua", "da", 100);
  s2 = push_new (f->store, "D1", 1, "ua", "da", 100);
  s_other = push_new (f->store, "D2", 1, "uc", "dc", 100);
  g_assert_cmpuint (s1, <, s2);
  g_assert_cmpuint (s2, <, s_other);

  /* C sees only its own dossier, and its cursor is past D1's change sets. */
  pulled = pull_all (f->store, "uc", NULL, &cursor_c, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 1);
  g_assert_true (pulled_has_seq (pulled, s_other));
  g_clear_pointer (&pulled, g_ptr_array_unref);

  g_ptr_array_add (share_keys, wrapped_key ("uc", NULL, 1, 0x44));
  g_assert_true (relais_store_dossier_share (f->store, "D1", "uc", share_keys, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_is_member (f->store, "D1", "uc", &is_member, &error));
  g_assert_no_error (error);
  g_assert_true (is_member);

  /* The whole dossier appears after C's cursor, in seq order. */
  pulled = pull_all (f->store, "uc", NULL, &cursor_c, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 2);
  g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[0])->position.seq, ==, s1);
  g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[1])->position.seq, ==, s2);
  g_assert_cmpstr (((RelaisStorePulled *) pulled->pdata[0])->dossier_id, ==, "D1");
  g_clear_pointer (&pulled, g_ptr_array_unref);

  g_assert_true (relais_store_dossier_keys (f->store, "D1", "uc", &keys, &members, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 1);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (((RelaisStoreWrappedKey *) keys->pdata[0])->wrapped_key, NULL))[1], ==, 0x44);
  g_assert_cmpuint (members->len, ==, 2);

  /* A retried share sends nothing again; what follows arrives once. */
  g_assert_true (relais_store_dossier_share (f->store, "D1", "uc", share_keys, &error));
  g_assert_no_error (error);
  s3 = push_new (f->store, "D1", 1, "ua", "da", 100);
  pulled = pull_all (f->store, "uc", NULL, &cursor_c, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 1);
  g_assert_true (pulled_has_seq (pulled, s3));
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* Bad shares change nothing. */
  g_assert_false (relais_store_dossier_share (f->store, "D1", "nobody", share_keys, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (relais_store_dossier_share (f->store, "D9", "uc", share_keys, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (relais_store_dossier_share (f->store, "D2", "ua", share_keys, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_true (relais_store_is_member (f->store, "D2", "ua", &is_member, &error));
  g_assert_no_error (error);
  g_assert_false (is_member);
}

static void
test_unshare (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) rotation = key_list ();
  g_autoptr(GPtrArray) bad = NULL;
  g_autoptr(GPtrArray) reshare = key_list ();
  g_autoptr(GBytes) envelope = random_envelope (50);
  RelaisStoreCursor cursor_b = { 0, 0 };
  gboolean is_member;
  guint32 epoch;
  guint8 id[16];
  guint64 s_new;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-b", 2);
  add_device (f->store, "da", "ua");
  add_device (f->store, "db", "ub");
  create_dossier (f->store, "D1", "ua", "ub", NULL);
  push_new (f->store, "D1", 1, "ua", "da", 100);
  pulled = pull_all (f->store, "ub", NULL, &cursor_b, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 1);
  g_clear_pointer (&pulled, g_ptr_array_unref);

  g_ptr_array_add (rotation, wrapped_key ("ua", NULL, 2, 0x55));
  g_ptr_array_add (rotation, wrapped_key (NULL, "org-a", 2, 0x66));

  /* Only to the next epoch. */
  g_assert_false (relais_store_dossier_unshare (f->store, "D1", "ub", 3, rotation, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED);
  g_clear_error (&error);
  g_assert_false (relais_store_dossier_unshare (f->store, "D1", "ub", 1, rotation, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED);
  g_clear_error (&error);
  /* No new key for the member who leaves. */
  bad = key_list ();
  g_ptr_array_add (bad, wrapped_key ("ua", NULL, 2, 0x55));
  g_ptr_array_add (bad, wrapped_key ("ub", NULL, 2, 0x55));
  g_assert_false (relais_store_dossier_unshare (f->store, "D1", "ub", 2, bad, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_false (relais_store_dossier_unshare (f->store, "D1", "uc", 2, rotation, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_false (relais_store_dossier_unshare (f->store, "D9", "ub", 2, rotation, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  /* ... and every refusal left the dossier as it was. */
  g_assert_true (relais_store_dossier_epoch (f->store, "D1", &epoch, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (epoch, ==, 1);
  g_assert_true (relais_store_is_member (f->store, "D1", "ub", &is_member, &error));
  g_assert_no_error (error);
  g_assert_true (is_member);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM member_keys WHERE epoch = 2"), ==, 0);

  g_assert_true (relais_store_dossier_unshare (f->store, "D1", "ub", 2, rotation, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_dossier_epoch (f->store, "D1", &epoch, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (epoch, ==, 2);
  g_assert_true (relais_store_is_member (f->store, "D1", "ub", &is_member, &error));
  g_assert_no_error (error);
  g_assert_false (is_member);
  g_assert_false (relais_store_dossier_keys (f->store, "D1", "ub", &keys, &members, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);

  /* Pushes at the old epoch are refused, also from the remaining member. */
  make_id (id, 1);
  g_assert_false (put (f->store, "D1", id, 1, "ua", "da", envelope, NULL, NULL, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED);
  g_clear_error (&error);
  g_assert_false (put (f->store, "D1", id, 2, "ub", "db", envelope, NULL, NULL, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  s_new = push_new (f->store, "D1", 2, "ua", "da", 100);

  /* The retired member sees nothing new. */
  pulled = pull_all (f->store, "ub", NULL, &cursor_b, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 0);
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* The remaining member has both epochs; the member list keeps B, retired. */
  g_assert_true (relais_store_dossier_keys (f->store, "D1", "ua", &keys, &members, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 2);
  g_assert_cmpuint (((RelaisStoreWrappedKey *) keys->pdata[0])->epoch, ==, 1);
  g_assert_cmpuint (((RelaisStoreWrappedKey *) keys->pdata[1])->epoch, ==, 2);
  g_assert_cmpuint (members->len, ==, 2);
  g_assert_cmpstr (((RelaisStoreMember *) members->pdata[1])->user_id, ==, "ub");
  g_assert_cmpuint (((RelaisStoreMember *) members->pdata[1])->until_epoch, ==, 2);
  g_assert_cmpuint (((RelaisStoreMember *) members->pdata[0])->until_epoch, ==, 0);
  g_clear_pointer (&keys, g_ptr_array_unref);
  g_clear_pointer (&members, g_ptr_array_unref);

  /* Shared again: B is a member since epoch 2, the whole dossier comes
   * back after B's cursor, and both membership periods are listed. */
  g_ptr_array_add (reshare, wrapped_key ("ub", NULL, 1, 0x77));
  g_ptr_array_add (reshare, wrapped_key ("ub", NULL, 2, 0x77));
  g_assert_true (relais_store_dossier_share (f->store, "D1", "ub", reshare, &error));
  g_assert_no_error (error);
  pulled = pull_all (f->store, "ub", NULL, &cursor_b, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 2);
  g_assert_true (pulled_has_seq (pulled, s_new));
  g_clear_pointer (&pulled, g_ptr_array_unref);
  g_assert_true (relais_store_dossier_keys (f->store, "D1", "ub", &keys, &members, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 2);
  g_assert_cmpuint (members->len, ==, 3);
  g_assert_cmpstr (((RelaisStoreMember *) members->pdata[2])->user_id, ==, "ub");
  g_assert_cmpuint (((RelaisStoreMember *) members->pdata[2])->since_epoch, ==, 2);
  g_assert_cmpuint (((RelaisStoreMember *) members->pdata[2])->until_epoch, ==, 0);
}

static void
test_recovery_wraps (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) dossiers = NULL;
  g_autoptr(GPtrArray) rotation = key_list ();

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-a", 2);
  create_dossier (f->store, "D2", "ua", NULL);
  create_dossier (f->store, "D1", "ua", "ub", NULL);
  create_dossier (f->store, "D3", "ub", NULL);
  g_ptr_array_add (rotation, wrapped_key ("ua", NULL, 2, 0x55));
  g_ptr_array_add (rotation, wrapped_key (NULL, "org-a", 2, 0x66));
  g_assert_true (relais_store_dossier_unshare (f->store, "D1", "ub", 2, rotation, &error));
  g_assert_no_error (error);

  g_assert_true (relais_store_recovery_wraps (f->store, "ua", "org-a", &keys, &dossiers, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 3);
  g_assert_cmpuint (dossiers->len, ==, 3);
  g_assert_cmpstr (dossiers->pdata[0], ==, "D1");
  g_assert_cmpuint (((RelaisStoreWrappedKey *) keys->pdata[0])->epoch, ==, 1);
  g_assert_cmpstr (dossiers->pdata[1], ==, "D1");
  g_assert_cmpuint (((RelaisStoreWrappedKey *) keys->pdata[1])->epoch, ==, 2);
  g_assert_cmpstr (dossiers->pdata[2], ==, "D2");
  g_assert_null (((RelaisStoreWrappedKey *) keys->pdata[2])->user_id);
  g_assert_cmpstr (((RelaisStoreWrappedKey *) keys->pdata[2])->org, ==, "org-a");
  g_clear_pointer (&keys, g_ptr_array_unref);
  g_clear_pointer (&dossiers, g_ptr_array_unref);

  /* B left D1: only D3. */
  g_assert_true (relais_store_recovery_wraps (f->store, "ub", "org-a", &keys, &dossiers, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 1);
  g_assert_cmpstr (dossiers->pdata[0], ==, "D3");
  g_clear_pointer (&keys, g_ptr_array_unref);
  g_clear_pointer (&dossiers, g_ptr_array_unref);

  g_assert_true (relais_store_recovery_wraps (f->store, "ua", "org-b", &keys, &dossiers, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 0);
}

/* The epochs of @missing's entry @i, as "D/org:1,2". */
static char *
missing_entry (GPtrArray *missing,
               guint      i)
{
  RelaisStoreRecoveryMissing *entry = g_ptr_array_index (missing, i);
  GString *text = g_string_new (NULL);

  g_string_append_printf (text, "%s/%s:", entry->dossier_id, entry->org);
  for (guint j = 0; j < entry->epochs->len; j++)
    g_string_append_printf (text, "%s%u", j > 0 ? "," : "", g_array_index (entry->epochs, guint32, j));
  return g_string_free (text, FALSE);
}

static void
assert_missing (RelaisStore *store,
                const char  *user_id,
                const char  *expected)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) missing = relais_store_recovery_missing (store, user_id, NULL, NULL, 500, &error);
  g_autoptr(GString) text = g_string_new (NULL);

  g_assert_no_error (error);
  g_assert_nonnull (missing);
  for (guint i = 0; i < missing->len; i++)
    {
      g_autofree char *entry = missing_entry (missing, i);

      g_string_append_printf (text, "%s%s", i > 0 ? " " : "", entry);
    }
  g_assert_cmpstr (text->str, ==, expected);
}

static void
test_recovery_missing (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) share = key_list ();
  g_autoptr(GPtrArray) rotation = key_list ();
  g_autoptr(GPtrArray) add = key_list ();
  g_autoptr(GPtrArray) missing = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) dossiers = NULL;
  g_autofree char *entry = NULL;
  guint8 ka[RELAIS_STORE_KEY_SIZE], kb[RELAIS_STORE_KEY_SIZE];

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-b", 2);
  add_user (f->store, "uc", "C", "org-c", 3);
  add_user (f->store, "ud", "D", "org-b", 4);
  fill_key (ka, 0xa1);
  fill_key (kb, 0xb1);
  g_assert_true (relais_store_recovery_key_set (f->store, "org-a", ka, &error));
  g_assert_no_error (error);
  create_dossier (f->store, "D1", "ua", "ub", NULL);
  create_dossier (f->store, "D2", "ua", NULL);
  create_dossier (f->store, "D3", "ub", NULL);

  /* org-b has no recovery key yet: nothing is missing; org-a's wraps are
   * all there, and org-a has no member in D3. */
  assert_missing (f->store, "ua", "");
  assert_missing (f->store, "ub", "");

  /* org-b sets its key after its users joined. */
  g_assert_true (relais_store_recovery_key_set (f->store, "org-b", kb, &error));
  g_assert_no_error (error);
  assert_missing (f->store, "ua", "D1/org-b:1");
  assert_missing (f->store, "ub", "D1/org-b:1 D3/org-b:1");
  missing = relais_store_recovery_missing (f->store, "ua", NULL, NULL, 10, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (((RelaisStoreRecoveryMissing *) missing->pdata[0])->recovery_key,
                   RELAIS_STORE_KEY_SIZE, kb, sizeof kb);
  g_clear_pointer (&missing, g_ptr_array_unref);

  /* A rotation by an org-a member wraps only for org-a. */
  g_ptr_array_add (share, wrapped_key ("uc", NULL, 1, 0x33));
  g_assert_true (relais_store_dossier_share (f->store, "D1", "uc", share, &error));
  g_assert_no_error (error);
  g_ptr_array_add (rotation, wrapped_key ("ua", NULL, 2, 0x55));
  g_ptr_array_add (rotation, wrapped_key ("ub", NULL, 2, 0x56));
  g_ptr_array_add (rotation, wrapped_key (NULL, "org-a", 2, 0x66));
  g_assert_true (relais_store_dossier_unshare (f->store, "D1", "uc", 2, rotation, &error));
  g_assert_no_error (error);
  assert_missing (f->store, "ua", "D1/org-b:1,2");

  /* Paging: one entry at a time, after the last one given. */
  missing = relais_store_recovery_missing (f->store, "ub", NULL, NULL, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (missing->len, ==, 1);
  entry = missing_entry (missing, 0);
  g_assert_cmpstr (entry, ==, "D1/org-b:1,2");
  g_clear_pointer (&entry, g_free);
  g_clear_pointer (&missing, g_ptr_array_unref);
  missing = relais_store_recovery_missing (f->store, "ub", "D1", "org-b", 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (missing->len, ==, 1);
  entry = missing_entry (missing, 0);
  g_assert_cmpstr (entry, ==, "D3/org-b:1");
  g_clear_pointer (&entry, g_free);
  g_clear_pointer (&missing, g_ptr_array_unref);
  missing = relais_store_recovery_missing (f->store, "ub", "D3", "org-b", 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (missing->len, ==, 0);
  g_clear_pointer (&missing, g_ptr_array_unref);

  /* Refusals change nothing. */
  g_ptr_array_add (add, wrapped_key (NULL, NULL, 2, 0x77));
  g_ptr_array_add (add, wrapped_key (NULL, NULL, 3, 0x77));
  g_assert_false (relais_store_recovery_add (f->store, "D1", "ua", "org-b", add, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED);
  g_clear_error (&error);
  g_ptr_array_remove_index (add, 1);
  g_assert_false (relais_store_recovery_add (f->store, "D1", "ud", "org-b", add, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_false (relais_store_recovery_add (f->store, "D1", "uc", "org-b", add, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_false (relais_store_recovery_add (f->store, "D1", "ua", "org-c", add, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (relais_store_recovery_add (f->store, "D9", "ua", "org-b", add, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND);
  g_clear_error (&error);
  /* org-c has a key now, but no current member in D1 (uc was removed). */
  g_assert_true (relais_store_recovery_key_set (f->store, "org-c", ka, &error));
  g_assert_no_error (error);
  g_assert_false (relais_store_recovery_add (f->store, "D1", "ua", "org-c", add, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  assert_missing (f->store, "ua", "D1/org-b:1,2");

  /* A member of another organisation fills org-b's epoch 2, then 1. */
  g_assert_true (relais_store_recovery_add (f->store, "D1", "ua", "org-b", add, &error));
  g_assert_no_error (error);
  assert_missing (f->store, "ua", "D1/org-b:1");
  g_ptr_array_set_size (add, 0);
  g_ptr_array_add (add, wrapped_key (NULL, NULL, 1, 0x78));
  g_ptr_array_add (add, wrapped_key (NULL, NULL, 2, 0x79));
  g_assert_true (relais_store_recovery_add (f->store, "D1", "ua", "org-b", add, &error));
  g_assert_no_error (error);
  assert_missing (f->store, "ua", "");
  assert_missing (f->store, "ub", "D3/org-b:1");

  /* Idempotent: the wrap stored first stays. */
  g_assert_true (relais_store_recovery_add (f->store, "D1", "ub", "org-b", add, &error));
  g_assert_no_error (error);
  g_assert_true (relais_store_recovery_wraps (f->store, "ub", "org-b", &keys, &dossiers, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (keys->len, ==, 2);
  g_assert_cmpstr (dossiers->pdata[0], ==, "D1");
  g_assert_cmpuint (((RelaisStoreWrappedKey *) keys->pdata[0])->epoch, ==, 1);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (((RelaisStoreWrappedKey *) keys->pdata[0])->wrapped_key, NULL))[1], ==, 0x78);
  g_assert_cmpuint (((RelaisStoreWrappedKey *) keys->pdata[1])->epoch, ==, 2);
  g_assert_cmpuint (((const guint8 *) g_bytes_get_data (((RelaisStoreWrappedKey *) keys->pdata[1])->wrapped_key, NULL))[1], ==, 0x77);
}

/* ---- Change sets ----------------------------------------------------- */

static void
test_changeset_put (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) envelope = random_envelope (300);
  g_autoptr(GBytes) other = random_envelope (300);
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr(GPtrArray) pulled = NULL;
  RelaisStoreCursor cursor = { 0, 0 };
  guint8 id[16];
  guint64 seq, seq2;
  gboolean duplicate;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "uc", "C", "org-a", 3);
  create_dossier (f->store, "D1", "ua", NULL);
  create_dossier (f->store, "D2", "ua", NULL);
  make_id (id, 2);

  g_assert_true (put (f->store, "D1", id, 1, "ua", "da", envelope, &seq, &duplicate, &error));
  g_assert_no_error (error);
  g_assert_false (duplicate);
  /* The same bytes again: a retried push. */
  g_assert_true (put (f->store, "D1", id, 1, "ua", "da", envelope, &seq2, &duplicate, &error));
  g_assert_no_error (error);
  g_assert_true (duplicate);
  g_assert_cmpuint (seq2, ==, seq);
  /* Other bytes under the same id. */
  g_assert_false (put (f->store, "D1", id, 1, "ua", "da", other, &seq2, &duplicate, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_ID_CONFLICT);
  g_clear_error (&error);
  g_assert_false (put (f->store, "D1", id, 1, "ua", "da", empty, &seq2, &duplicate, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_ID_CONFLICT);
  g_clear_error (&error);
  /* The same id in another dossier is another change set. */
  g_assert_true (put (f->store, "D2", id, 1, "ua", "da", other, &seq2, &duplicate, &error));
  g_assert_no_error (error);
  g_assert_false (duplicate);
  g_assert_cmpuint (seq2, >, seq);

  /* Non-members, and unknown dossiers, are refused alike. */
  make_id (id, 3);
  g_assert_false (put (f->store, "D1", id, 1, "uc", "dc", envelope, NULL, NULL, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_false (put (f->store, "D9", id, 1, "ua", "da", envelope, NULL, NULL, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER);
  g_clear_error (&error);
  g_assert_false (put (f->store, "D1", id, 2, "ua", "da", envelope, NULL, NULL, &error));
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED);
  g_clear_error (&error);

  g_assert_cmpint (query_int (f, "SELECT count(*) FROM changesets"), ==, 2);

  /* The envelope comes back byte for byte. */
  pulled = pull_all (f->store, "ua", NULL, &cursor, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 2);
  g_assert_true (g_bytes_equal (((RelaisStorePulled *) pulled->pdata[0])->envelope, envelope));
  g_assert_true (g_bytes_equal (((RelaisStorePulled *) pulled->pdata[1])->envelope, other));
}

static void
test_pull_paging (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GPtrArray) page = NULL;
  g_autoptr(GArray) seqs = g_array_new (FALSE, FALSE, sizeof (guint64));
  RelaisStoreCursor cursor = { 0, 0 };
  gboolean more;
  guint n_by_b = 0;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-a", 2);
  add_user (f->store, "uc", "C", "org-a", 3);
  for (int d = 0; d < 5; d++)
    {
      g_autofree char *id = g_strdup_printf ("D%d", d);

      create_dossier (f->store, id, "ua", "ub", NULL);
    }
  create_dossier (f->store, "DC", "uc", NULL);
  for (int i = 0; i < 50; i++)
    {
      g_autofree char *id = g_strdup_printf ("D%d", i % 5);
      gboolean by_b = i % 3 == 0;
      guint64 seq = push_new (f->store, id, 1, by_b ? "ub" : "ua", by_b ? "db" : "da", 1000);

      g_array_append_val (seqs, seq);
      n_by_b += by_b;
      push_new (f->store, "DC", 1, "uc", "dc", 10);
    }

  /* Pages of 7: every change set once, in seq order, "more" until the end. */
  pulled = pull_all (f->store, "ua", NULL, &cursor, 7, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 50);
  for (guint i = 0; i < pulled->len; i++)
    g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[i])->position.seq, ==,
                      g_array_index (seqs, guint64, i));
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* Nothing after the end. */
  page = relais_store_changeset_pull (f->store, "ua", NULL, &cursor, 7, 1 << 20, &more, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 0);
  g_assert_false (more);
  g_clear_pointer (&page, g_ptr_array_unref);

  /* max_bytes: about that many bytes per page, and at least one. */
  memset (&cursor, 0, sizeof cursor);
  page = relais_store_changeset_pull (f->store, "ua", NULL, &cursor, 100, 3500, &more, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 3);
  g_assert_true (more);
  g_clear_pointer (&page, g_ptr_array_unref);
  page = relais_store_changeset_pull (f->store, "ua", NULL, &cursor, 100, 10, &more, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 1);
  g_assert_true (more);
  g_clear_pointer (&page, g_ptr_array_unref);
  pulled = pull_all (f->store, "ua", NULL, &cursor, 100, 10);
  g_assert_cmpuint (pulled->len, ==, 50);
  g_clear_pointer (&pulled, g_ptr_array_unref);
  /* A limit of exactly what remains: "more" is false. */
  memset (&cursor, 0, sizeof cursor);
  page = relais_store_changeset_pull (f->store, "ua", NULL, &cursor, 50, 1 << 20, &more, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 50);
  g_assert_false (more);
  g_clear_pointer (&page, g_ptr_array_unref);

  /* B's device does not get back what it pushed; B's other device does. */
  memset (&cursor, 0, sizeof cursor);
  pulled = pull_all (f->store, "ub", "db", &cursor, 7, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 50 - n_by_b);
  g_clear_pointer (&pulled, g_ptr_array_unref);
  memset (&cursor, 0, sizeof cursor);
  pulled = pull_all (f->store, "ub", "db-other", &cursor, 7, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 50);
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* A user with no dossier gets nothing. */
  memset (&cursor, 0, sizeof cursor);
  pulled = pull_all (f->store, "nobody", NULL, &cursor, 7, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 0);
}

/* More change sets since the cursor than a pull scans in seq order: the
 * first pages go dossier by dossier, the last ones by seq (see
 * RELAIS_STORE_PULL_SCAN_BUDGET); both give every change set once, in
 * order, with the same filters. */
static void
test_pull_strategies (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GArray) mine = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr(GArray) mine_not_by_a2 = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr(GPtrArray) pulled = NULL;
  RelaisStoreCursor cursor = { 0, 0 };

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "uc", "C", "org-a", 3);
  for (int d = 0; d < 4; d++)
    {
      g_autofree char *id = g_strdup_printf ("D%d", d);

      create_dossier (f->store, id, "ua", NULL);
    }
  create_dossier (f->store, "DX", "uc", NULL);
  for (int i = 0; i < 500; i++)
    {
      g_autofree char *id = g_strdup_printf ("D%d", i % 4);
      const char *device = i % 5 == 0 ? "a2" : "a1";
      guint64 seq;

      /* Others' change sets between the user's: scanned, not returned. */
      push_new (f->store, "DX", 1, "uc", "c1", 20);
      if (i % 2 == 0)
        continue;
      seq = push_new (f->store, id, 1, "ua", device, 20 + i % 13);
      g_array_append_val (mine, seq);
      if (strcmp (device, "a2") != 0)
        g_array_append_val (mine_not_by_a2, seq);
    }

  pulled = pull_all (f->store, "ua", NULL, &cursor, 7, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, mine->len);
  for (guint i = 0; i < pulled->len; i++)
    g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[i])->position.seq, ==,
                      g_array_index (mine, guint64, i));
  g_clear_pointer (&pulled, g_ptr_array_unref);

  memset (&cursor, 0, sizeof cursor);
  pulled = pull_all (f->store, "ua", "a2", &cursor, 7, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, mine_not_by_a2->len);
  for (guint i = 0; i < pulled->len; i++)
    g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[i])->position.seq, ==,
                      g_array_index (mine_not_by_a2, guint64, i));
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* Byte-limited pages, from the middle. */
  cursor.vis = cursor.seq = g_array_index (mine, guint64, 100);
  pulled = pull_all (f->store, "ua", NULL, &cursor, 50, 100);
  g_assert_cmpuint (pulled->len, ==, mine->len - 101);
  g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[0])->position.seq, ==,
                    g_array_index (mine, guint64, 101));
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* A user with many dossiers, each with one change set: more pushed
   * since the cursor than the budget, but fewer than 4 per dossier of
   * theirs, so the pages go by seq from the start. */
  {
    g_autoptr(GArray) theirs = g_array_new (FALSE, FALSE, sizeof (guint64));

    add_user (f->store, "ub", "B", "org-a", 2);
    for (int d = 0; d < 500; d++)
      {
        g_autofree char *id = g_strdup_printf ("B%03d", d);
        guint64 seq;

        create_dossier (f->store, id, "ub", NULL);
        seq = push_new (f->store, id, 1, "ub", "b1", 20);
        g_array_append_val (theirs, seq);
      }
    memset (&cursor, 0, sizeof cursor);
    pulled = pull_all (f->store, "ub", NULL, &cursor, 7, 1 << 20);
    g_assert_cmpuint (pulled->len, ==, theirs->len);
    for (guint i = 0; i < pulled->len; i++)
      g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[i])->position.seq, ==,
                        g_array_index (theirs, guint64, i));
  }
}

static void
test_cursor_resume (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_int64_hash, g_int64_equal);
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_pulled_free);
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GPtrArray) share_keys = key_list ();
  RelaisStoreCursor cursor = { 0, 0 };
  gboolean more = TRUE;
  guint pages = 0;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-a", 2);
  create_dossier (f->store, "D1", "ua", NULL);
  create_dossier (f->store, "D2", "ub", NULL);
  for (int i = 0; i < 20; i++)
    {
      push_new (f->store, "D1", 1, "ua", "da", 64);
      push_new (f->store, "D2", 1, "ub", "db", 64);
    }

  /* Every other page is "lost" (the answer never arrived): the client asks
   * again with its last cursor and gets the same page. */
  while (more)
    {
      g_autoptr(GPtrArray) page = relais_store_changeset_pull (f->store, "ua", NULL, &cursor, 6, 1 << 20,
                                                                &more, &error);
      g_assert_no_error (error);
      if (pages++ % 2 == 0)
        {
          g_autoptr(GPtrArray) again = relais_store_changeset_pull (f->store, "ua", NULL, &cursor, 6, 1 << 20,
                                                                     &more, &error);
          g_assert_no_error (error);
          g_assert_cmpuint (again->len, ==, page->len);
          for (guint i = 0; i < page->len; i++)
            g_assert_cmpuint (((RelaisStorePulled *) again->pdata[i])->position.seq, ==,
                              ((RelaisStorePulled *) page->pdata[i])->position.seq);
        }
      for (guint i = 0; i < page->len; i++)
        {
          RelaisStorePulled *p = g_ptr_array_index (page, i);

          g_assert_true (g_hash_table_add (seen, &p->position.seq));
          cursor = p->position;
          g_ptr_array_add (all, g_ptr_array_steal_index (page, i--));
        }

      /* Midway, D2 is shared with A and A pushes more: the shared dossier
       * comes whole after the cursor, the new change sets once. */
      if (pages == 2)
        {
          g_ptr_array_add (share_keys, wrapped_key ("ua", NULL, 1, 0x44));
          g_assert_true (relais_store_dossier_share (f->store, "D2", "ua", share_keys, &error));
          g_assert_no_error (error);
          push_new (f->store, "D1", 1, "ua", "da", 64);
          push_new (f->store, "D2", 1, "ub", "db", 64);
          more = TRUE;
        }
    }
  /* D1's 21 and D2's 21. */
  g_assert_cmpuint (g_hash_table_size (seen), ==, 42);

  /* Resuming from the last cursor gives only what follows. */
  pulled = pull_all (f->store, "ua", NULL, &cursor, 6, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 0);
  g_clear_pointer (&pulled, g_ptr_array_unref);
  push_new (f->store, "D2", 1, "ub", "db", 64);
  pulled = pull_all (f->store, "ua", NULL, &cursor, 6, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 1);
}

/* ---- Concurrency: two handles on one database, as two servers ------- */

#define N_PUSHERS 4
#define N_PER_PUSHER 150

typedef struct {
  RelaisStore *store;
  int          index;
  GPtrArray   *pushed;   /* seqs (as pointers) */
} Pusher;

typedef struct {
  RelaisStore *stores[2];
  gint         pushers_left;
  GHashTable  *seen;     /* seq -> count */
  guint        n_pulls;
  gboolean     failed;
} Puller;

static gpointer
pusher_thread (gpointer data)
{
  Pusher *p = data;

  for (int i = 0; i < N_PER_PUSHER; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) envelope = random_envelope (200 + (i % 7) * 100);
      g_autofree char *dossier = g_strdup_printf ("D%d", (p->index + i) % 6);
      guint8 id[16];
      guint64 seq = 0;
      gboolean duplicate = TRUE;

      make_id (id, (guint32) p->index);
      if (!put (p->store, dossier, id, 1, "ua", p->index % 2 ? "d1" : "d2", envelope,
                &seq, &duplicate, &error))
        g_error ("push failed: %s", error->message);
      g_assert_false (duplicate);
      g_ptr_array_add (p->pushed, GSIZE_TO_POINTER ((gsize) seq));
    }
  return NULL;
}

static gboolean
puller_pass (Puller            *p,
             RelaisStoreCursor *cursor)
{
  gboolean more = TRUE;

  while (more)
    {
      g_autoptr(GError) error = NULL;
      /* Alternate between the two "servers". */
      RelaisStore *store = p->stores[p->n_pulls++ % 2];
      g_autoptr(GPtrArray) page = relais_store_changeset_pull (store, "ub", NULL, cursor, 37, 1 << 20,
                                                                &more, &error);
      if (page == NULL)
        g_error ("pull failed: %s", error->message);
      for (guint i = 0; i < page->len; i++)
        {
          RelaisStorePulled *pulled = g_ptr_array_index (page, i);
          gpointer key = GSIZE_TO_POINTER ((gsize) pulled->position.seq);
          guint count = GPOINTER_TO_UINT (g_hash_table_lookup (p->seen, key));

          g_hash_table_insert (p->seen, key, GUINT_TO_POINTER (count + 1));
          *cursor = pulled->position;
        }
    }
  return TRUE;
}

static gpointer
puller_thread (gpointer data)
{
  Puller *p = data;
  RelaisStoreCursor cursor = { 0, 0 };

  while (g_atomic_int_get (&p->pushers_left) > 0)
    puller_pass (p, &cursor);
  /* One last pass once every push has committed. */
  puller_pass (p, &cursor);
  return NULL;
}

static void
test_concurrency (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) second = NULL;
  Pusher pushers[N_PUSHERS];
  GThread *threads[N_PUSHERS];
  GThread *puller_th;
  Puller puller = { { NULL, NULL }, N_PUSHERS, NULL, 0, FALSE };
  GHashTableIter iter;
  gpointer key, value;
  guint total = 0;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-a", 2);
  for (int d = 0; d < 6; d++)
    {
      g_autofree char *id = g_strdup_printf ("D%d", d);

      create_dossier (f->store, id, "ua", "ub", NULL);
    }
  second = relais_store_open (f->uri, &error);
  g_assert_no_error (error);

  puller.stores[0] = f->store;
  puller.stores[1] = second;
  puller.seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  puller_th = g_thread_new ("puller", puller_thread, &puller);
  for (int i = 0; i < N_PUSHERS; i++)
    {
      pushers[i].store = i % 2 ? second : f->store;
      pushers[i].index = i;
      pushers[i].pushed = g_ptr_array_new ();
      threads[i] = g_thread_new ("pusher", pusher_thread, &pushers[i]);
    }
  for (int i = 0; i < N_PUSHERS; i++)
    {
      g_thread_join (threads[i]);
      g_atomic_int_add (&puller.pushers_left, -1);
    }
  g_thread_join (puller_th);

  /* Every change set was seen exactly once, even those committed while the
   * puller was between pages. */
  g_hash_table_iter_init (&iter, puller.seen);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_assert_cmpuint (GPOINTER_TO_UINT (value), ==, 1);
  for (int i = 0; i < N_PUSHERS; i++)
    {
      for (guint j = 0; j < pushers[i].pushed->len; j++)
        g_assert_true (g_hash_table_contains (puller.seen, pushers[i].pushed->pdata[j]));
      total += pushers[i].pushed->len;
      g_ptr_array_unref (pushers[i].pushed);
    }
  g_assert_cmpuint (g_hash_table_size (puller.seen), ==, total);
  g_assert_cmpuint (total, ==, N_PUSHERS * N_PER_PUSHER);
  g_test_message ("%u pulls while %u change sets were pushed", puller.n_pulls, total);
  g_hash_table_unref (puller.seen);
}

/* Membership changes racing pushes and pulls, on two handles: pushers
 * write to DS at its current epoch (reading it again when refused), one
 * thread rotates DS's key (removing uc) and then shares DS with ub, while
 * another pushes to ub's own dossier all along (moving ub's cursor on)
 * and ub pulls.  ub must get the whole of DS exactly once, those pushed
 * before the share too (the share's joined_seq must become visible in
 * order), and no change set at epoch 1 may be stored after one at epoch 2
 * (a push must not land at an epoch a rotation just retired). */

/* The last one pushes to ub's own dossier. */
#define N_SHARE_PUSHERS 4
#define N_PER_SHARE_PUSHER 120

typedef struct {
  RelaisStore *store;
  int          index;
  const char  *dossier;
  const char  *author;
  gint        *progress;  /* pushes done by all pushers */
  GPtrArray   *pushed;    /* seqs (as pointers) */
} SharePusher;

static gpointer
share_pusher_thread (gpointer data)
{
  SharePusher *p = data;
  guint32 epoch = 1;

  for (int i = 0; i < N_PER_SHARE_PUSHER; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) bytes = NULL;
      guint8 envelope[64];
      guint8 id[16];
      guint64 seq = 0;
      gboolean duplicate = TRUE;

      make_id (id, 100 + (guint32) p->index);
      memset (envelope, i, sizeof envelope);
      memcpy (envelope, &epoch, sizeof epoch);
      bytes = g_bytes_new (envelope, sizeof envelope);
      if (!put (p->store, p->dossier, id, epoch, p->author, "d", bytes, &seq, &duplicate, &error))
        {
          if (!g_error_matches (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EPOCH_RETIRED))
            g_error ("push failed: %s", error->message);
          g_clear_error (&error);
          if (!relais_store_dossier_epoch (p->store, p->dossier, &epoch, &error))
            g_error ("epoch failed: %s", error->message);
          i--;
          continue;
        }
      g_assert_false (duplicate);
      g_ptr_array_add (p->pushed, GSIZE_TO_POINTER ((gsize) seq));
      g_atomic_int_inc (p->progress);
      /* Spread the pushes over the membership changes. */
      g_usleep (1000);
    }
  return NULL;
}

typedef struct {
  RelaisStore *store;
  gint        *progress;
} Sharer;

static void
wait_progress (gint *progress,
               gint  n)
{
  while (g_atomic_int_get (progress) < n)
    g_usleep (500);
}

static gpointer
sharer_thread (gpointer data)
{
  Sharer *s = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) rotation = key_list ();
  g_autoptr(GPtrArray) share_keys = key_list ();

  wait_progress (s->progress, 80);
  g_ptr_array_add (rotation, wrapped_key ("ua", NULL, 2, 0x55));
  g_ptr_array_add (rotation, wrapped_key (NULL, "org-a", 2, 0x66));
  if (!relais_store_dossier_unshare (s->store, "DS", "uc", 2, rotation, &error))
    g_error ("unshare failed: %s", error->message);
  wait_progress (s->progress, 240);
  g_ptr_array_add (share_keys, wrapped_key ("ub", NULL, 1, 0x44));
  g_ptr_array_add (share_keys, wrapped_key ("ub", NULL, 2, 0x44));
  if (!relais_store_dossier_share (s->store, "DS", "ub", share_keys, &error))
    g_error ("share failed: %s", error->message);
  return NULL;
}

static void
test_concurrency_share (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) second = NULL;
  g_autoptr(GPtrArray) all = NULL;
  SharePusher pushers[N_SHARE_PUSHERS];
  GThread *threads[N_SHARE_PUSHERS];
  GThread *puller_th, *sharer_th;
  Puller puller = { { NULL, NULL }, N_SHARE_PUSHERS, NULL, 0, FALSE };
  Sharer sharer = { NULL, NULL };
  RelaisStoreCursor cursor = { 0, 0 };
  guint64 last_epoch1 = 0, first_epoch2 = G_MAXUINT64;
  gint progress = 0;
  guint total = 0;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-a", 2);
  add_user (f->store, "uc", "C", "org-a", 3);
  create_dossier (f->store, "DS", "ua", "uc", NULL);
  create_dossier (f->store, "DB", "ub", NULL);
  second = relais_store_open (f->uri, &error);
  g_assert_no_error (error);

  puller.stores[0] = f->store;
  puller.stores[1] = second;
  puller.seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  sharer.store = second;
  sharer.progress = &progress;
  puller_th = g_thread_new ("puller", puller_thread, &puller);
  sharer_th = g_thread_new ("sharer", sharer_thread, &sharer);
  for (int i = 0; i < N_SHARE_PUSHERS; i++)
    {
      gboolean own = i == N_SHARE_PUSHERS - 1;

      pushers[i].store = i % 2 ? second : f->store;
      pushers[i].index = i;
      pushers[i].dossier = own ? "DB" : "DS";
      pushers[i].author = own ? "ub" : "ua";
      pushers[i].progress = &progress;
      pushers[i].pushed = g_ptr_array_new ();
      threads[i] = g_thread_new ("pusher", share_pusher_thread, &pushers[i]);
    }
  g_thread_join (sharer_th);
  for (int i = 0; i < N_SHARE_PUSHERS; i++)
    {
      g_thread_join (threads[i]);
      g_atomic_int_add (&puller.pushers_left, -1);
    }
  g_thread_join (puller_th);

  /* ub saw each change set of DS and DB once. */
  for (int i = 0; i < N_SHARE_PUSHERS; i++)
    {
      for (guint j = 0; j < pushers[i].pushed->len; j++)
        g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (puller.seen, pushers[i].pushed->pdata[j])), ==, 1);
      total += pushers[i].pushed->len;
      g_ptr_array_unref (pushers[i].pushed);
    }
  g_assert_cmpuint (g_hash_table_size (puller.seen), ==, total);
  g_hash_table_unref (puller.seen);

  /* In seq order, every epoch-1 change set of DS before every epoch-2 one
   * (ua is not in DB). */
  all = pull_all (f->store, "ua", NULL, &cursor, 100, 1 << 20);
  g_assert_cmpuint (all->len, ==, total - N_PER_SHARE_PUSHER);
  for (guint i = 0; i < all->len; i++)
    {
      RelaisStorePulled *p = g_ptr_array_index (all, i);
      guint32 epoch;

      memcpy (&epoch, g_bytes_get_data (p->envelope, NULL), sizeof epoch);
      if (epoch == 1)
        last_epoch1 = MAX (last_epoch1, p->position.seq);
      else
        first_epoch2 = MIN (first_epoch2, p->position.seq);
    }
  g_assert_cmpuint (first_epoch2, <, G_MAXUINT64);
  g_assert_cmpuint (last_epoch1, <, first_epoch2);
  g_test_message ("%u pulls; last epoch-1 seq %" G_GUINT64_FORMAT ", first epoch-2 seq %" G_GUINT64_FORMAT,
                  puller.n_pulls, last_epoch1, first_epoch2);
}

/* ---- Lifetime, schema, hostile input --------------------------------- */

static void
test_reopen (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStoreUser) user = NULL;
  g_autoptr(RelaisStore) second = NULL;
  g_autoptr(GPtrArray) pulled = NULL;
  RelaisStoreCursor cursor = { 0, 0 };
  guint8 secret1[32], secret2[32], secret3[32], zero[32] = { 0 };
  guint64 seq;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  create_dossier (f->store, "D1", "ua", NULL);
  seq = push_new (f->store, "D1", 1, "ua", "da", 500);
  g_assert_true (relais_store_get_secret (f->store, secret1, &error));
  g_assert_no_error (error);
  g_assert_true (memcmp (secret1, zero, 32) != 0);

  /* Another server on the same database has the same secret. */
  second = relais_store_open (f->uri, &error);
  g_assert_no_error (error);
  g_assert_true (relais_store_get_secret (second, secret2, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (secret1, 32, secret2, 32);
  g_clear_pointer (&second, relais_store_close);

  g_clear_pointer (&f->store, relais_store_close);
  f->store = relais_store_open (f->uri, &error);
  g_assert_no_error (error);
  g_assert_true (relais_store_get_secret (f->store, secret3, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (secret1, 32, secret3, 32);
  user = relais_store_user_get (f->store, "ua", &error);
  g_assert_no_error (error);
  g_assert_true (user->has_keys);
  pulled = pull_all (f->store, "ua", NULL, &cursor, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 1);
  g_assert_cmpuint (((RelaisStorePulled *) pulled->pdata[0])->position.seq, ==, seq);
  /* Sequence numbers go on from where they were. */
  g_assert_cmpuint (push_new (f->store, "D1", 1, "ua", "da", 500), >, seq);
}

typedef struct {
  const char *uri;
  gboolean    ok;
  char       *message;
} Opener;

static gpointer
opener_thread (gpointer data)
{
  Opener *o = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = relais_store_open (o->uri, &error);

  o->ok = store != NULL;
  if (error != NULL)
    o->message = g_strdup (error->message);
  return NULL;
}

/* A fresh database gets the schema from whichever opener comes first;
 * openers at the same time do not trip over each other. */
static void
test_schema_fresh (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uri = NULL;
  Opener openers[4];
  GThread *threads[4];

  if (f->store == NULL)
    return;

  if (f->backend == BACKEND_SQLITE)
    {
      /* An empty file is an empty database. */
      g_autofree char *path = g_build_filename (f->tmpdir, "fresh.db", NULL);

      g_assert_true (g_file_set_contents (path, "", 0, &error));
      uri = g_strconcat ("sqlite:", path, NULL);
    }
  else
    {
      g_autofree char *name = g_strdup_printf ("fresh_%u", ++n_databases);

      uri = relais_test_pg_create_database (shared_pg, name, &error);
      g_assert_no_error (error);
    }

  for (int i = 0; i < 4; i++)
    {
      openers[i] = (Opener) { uri, FALSE, NULL };
      threads[i] = g_thread_new ("opener", opener_thread, &openers[i]);
    }
  for (int i = 0; i < 4; i++)
    {
      g_thread_join (threads[i]);
      if (!openers[i].ok)
        g_error ("opener %d: %s", i, openers[i].message);
      g_free (openers[i].message);
    }

  /* The schema is there and works. */
  g_clear_pointer (&f->store, relais_store_close);
  g_free (f->uri);
  f->uri = g_steal_pointer (&uri);
  f->store = relais_store_open (f->uri, &error);
  g_assert_no_error (error);
  add_user (f->store, "ua", "A", "org-a", 1);
  create_dossier (f->store, "D1", "ua", NULL);
  push_new (f->store, "D1", 1, "ua", "da", 10);
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM changesets"), ==, 1);
}

/* The database restarts under an open store: every pooled connection is
 * cut, and the next calls connect again instead of failing. */
static void
test_pg_restart (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(RelaisStoreUser) user = NULL;
  RelaisStoreCursor cursor = { 0, 0 };
  gboolean is_member;
  guint32 epoch;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  create_dossier (f->store, "D1", "ua", NULL);
  push_new (f->store, "D1", 1, "ua", "da", 100);

  g_assert_true (relais_test_pg_restart (shared_pg, &error));
  g_assert_no_error (error);
  /* A call of one statement, then calls in a transaction. */
  g_assert_true (relais_store_dossier_epoch (f->store, "D1", &epoch, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (epoch, ==, 1);

  g_assert_true (relais_test_pg_restart (shared_pg, &error));
  g_assert_no_error (error);
  push_new (f->store, "D1", 1, "ua", "da", 100);
  g_assert_true (relais_store_is_member (f->store, "D1", "ua", &is_member, &error));
  g_assert_no_error (error);
  g_assert_true (is_member);

  g_assert_true (relais_test_pg_restart (shared_pg, &error));
  g_assert_no_error (error);
  user = relais_store_user_get (f->store, "ua", &error);
  g_assert_no_error (error);
  g_assert_nonnull (user);
  pulled = pull_all (f->store, "ua", NULL, &cursor, 10, 1 << 20);
  g_assert_cmpuint (pulled->len, ==, 2);
}

/* A database from a newer server is refused, and left as it is. */
static void
test_schema_newer (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisStore) store = NULL;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  g_clear_pointer (&f->store, relais_store_close);
  if (f->backend == BACKEND_SQLITE)
    exec_sql (f, "PRAGMA user_version = 99");
  else
    exec_sql (f, "UPDATE schema_version SET version = 99");

  store = relais_store_open (f->uri, &error);
  g_assert_null (store);
  g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "newer"));
  g_assert_cmpint (query_int (f, "SELECT count(*) FROM users"), ==, 1);
}

static void
test_hostile_uri (void)
{
  static const char *const bad_uris[] = {
    "", "sqlite:", "sqlite::memory:", "mysql://u@h/db", "SQLITE:/tmp/x", " sqlite:/tmp/x",
    "postgres", "file:/tmp/x.db", "/tmp/x.db",
  };
  g_autofree char *tmpdir = relais_test_make_tmpdir ("relais-test-store");
  g_autofree char *garbage_path = g_build_filename (tmpdir, "garbage.db", NULL);
  g_autofree char *garbage_uri = g_strconcat ("sqlite:", garbage_path, NULL);
  g_autofree char *missing_uri = g_strconcat ("sqlite:", tmpdir, "/no/such/dir/store.db", NULL);
  g_autofree char *dir_uri = g_strconcat ("sqlite:", tmpdir, NULL);
  g_autofree char *garbage = NULL;
  g_autofree char *after = NULL;
  gsize after_len;

  for (gsize i = 0; i < G_N_ELEMENTS (bad_uris); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(RelaisStore) store = relais_store_open (bad_uris[i], &error);

      g_assert_null (store);
      g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_URI);
    }

  /* A PostgreSQL URI that cannot connect, or does not parse: one error,
   * which never repeats the password. */
  {
    static const char *const pg_uris[] = {
      "postgresql://u:s3cr3t-pw@127.0.0.1:1/db",
      "postgres://u:s3cr3t-pw@[::1/db",
      "postgresql://u:s3cr3t-pw@127.0.0.1:1/db?sslmode=nonsense",
      "postgresql://u:s3cr3t-pw@127.0.0.1:99999/db",
    };

    for (gsize i = 0; i < G_N_ELEMENTS (pg_uris); i++)
      {
        g_autoptr(GError) error = NULL;
        g_autoptr(RelaisStore) store = relais_store_open (pg_uris[i], &error);

        g_assert_null (store);
        g_assert_nonnull (error);
        g_assert_true (error->domain == RELAIS_STORE_ERROR);
        g_assert_null (strstr (error->message, "s3cr3t"));
      }
  }

  /* A directory that does not exist, a directory, a file that is not a
   * database (which is left untouched). */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(RelaisStore) store = relais_store_open (missing_uri, &error);

    g_assert_null (store);
    g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(RelaisStore) store = relais_store_open (dir_uri, &error);

    g_assert_null (store);
    g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED);
  }
  garbage = g_strnfill (8192, 'x');
  memcpy (garbage, "not a database at all\n", 22);
  g_assert_true (g_file_set_contents (garbage_path, garbage, 8192, NULL));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(RelaisStore) store = relais_store_open (garbage_uri, &error);

    g_assert_null (store);
    g_assert_error (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_FAILED);
    g_assert_nonnull (strstr (error->message, "not a valid SQLite database"));
  }
  g_assert_true (g_file_get_contents (garbage_path, &after, &after_len, NULL));
  g_assert_cmpmem (after, after_len, garbage, 8192);

  relais_test_rm_rf (tmpdir);
}

/* ---- Measurement (run with -m perf) ---------------------------------- */

#define PERF_DOSSIERS 10000

static void
test_perf_pull (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GTimer) timer = g_timer_new ();
  RelaisStoreCursor cursor = { 0, 0 };
  double push_s, pull_s, incr_s;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  add_user (f->store, "ub", "B", "org-a", 2);
  for (int d = 0; d < PERF_DOSSIERS; d++)
    {
      g_autofree char *id = g_strdup_printf ("dossier-%05d", d);

      create_dossier (f->store, id, "ua", "ub", NULL);
    }
  g_timer_start (timer);
  for (int d = 0; d < PERF_DOSSIERS; d++)
    {
      g_autofree char *id = g_strdup_printf ("dossier-%05d", d);

      push_new (f->store, id, 1, "ua", "da", 3000);
    }
  push_s = g_timer_elapsed (timer, NULL);

  g_timer_start (timer);
  pulled = pull_all (f->store, "ub", NULL, &cursor, 500, 8 << 20);
  pull_s = g_timer_elapsed (timer, NULL);
  g_assert_cmpuint (pulled->len, ==, PERF_DOSSIERS);
  g_clear_pointer (&pulled, g_ptr_array_unref);

  /* An incremental pull with nothing new, across 10,000 dossiers. */
  g_timer_start (timer);
  for (int i = 0; i < 20; i++)
    {
      pulled = pull_all (f->store, "ub", NULL, &cursor, 500, 8 << 20);
      g_assert_cmpuint (pulled->len, ==, 0);
      g_clear_pointer (&pulled, g_ptr_array_unref);
    }
  incr_s = g_timer_elapsed (timer, NULL) / 20;

  g_test_minimized_result (pull_s, "pull of %d change sets of 3 KB", PERF_DOSSIERS);
  g_printerr ("# %s: push %.0f change sets/s, pull %.0f change sets/s (%.2f s), empty incremental pull %.1f ms\n",
              backend_names[f->backend], PERF_DOSSIERS / push_s, PERF_DOSSIERS / pull_s, pull_s,
              incr_s * 1000);
}

/* One dossier with a long history: each page must not cost the whole of
 * what remains of it. */
static void
test_perf_long_history (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GTimer) timer = g_timer_new ();
  RelaisStoreCursor cursor = { 0, 0 };
  double pull_s;

  if (f->store == NULL)
    return;

  add_user (f->store, "ua", "A", "org-a", 1);
  create_dossier (f->store, "D1", "ua", NULL);
  for (int i = 0; i < 20000; i++)
    push_new (f->store, "D1", 1, "ua", "da", 100);

  g_timer_start (timer);
  pulled = pull_all (f->store, "ua", NULL, &cursor, 500, 8 << 20);
  pull_s = g_timer_elapsed (timer, NULL);
  g_assert_cmpuint (pulled->len, ==, 20000);
  g_printerr ("# %s: one dossier of 20,000 change sets pulled at %.0f change sets/s\n",
              backend_names[f->backend], 20000 / pull_s);
}

static void
add_case (const char *name,
          void      (*func) (Fixture *, gconstpointer))
{
  for (int b = BACKEND_SQLITE; b <= BACKEND_PG; b++)
    {
      g_autofree char *path = g_strdup_printf ("/store/%s/%s", backend_names[b], name);

      g_test_add (path, Fixture, GINT_TO_POINTER (b), fixture_setup, func, fixture_teardown);
    }
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  add_case ("users", test_users);
  add_case ("codes", test_codes);
  add_case ("devices", test_devices);
  add_case ("nonces", test_nonces);
  add_case ("recovery-key", test_recovery_key);
  add_case ("dossiers", test_dossiers);
  add_case ("share", test_share);
  add_case ("unshare", test_unshare);
  add_case ("recovery-wraps", test_recovery_wraps);
  add_case ("recovery-missing", test_recovery_missing);
  add_case ("changeset-put", test_changeset_put);
  add_case ("pull-paging", test_pull_paging);
  add_case ("pull-strategies", test_pull_strategies);
  add_case ("cursor-resume", test_cursor_resume);
  add_case ("concurrency", test_concurrency);
  add_case ("concurrency-share", test_concurrency_share);
  add_case ("reopen", test_reopen);
  add_case ("schema-fresh", test_schema_fresh);
  add_case ("schema-newer", test_schema_newer);
  g_test_add ("/store/pg/restart", Fixture, GINT_TO_POINTER (BACKEND_PG),
              fixture_setup, test_pg_restart, fixture_teardown);
  g_test_add_func ("/store/hostile-uri", test_hostile_uri);
  if (g_test_perf ())
    {
      add_case ("perf-pull", test_perf_pull);
      add_case ("perf-long-history", test_perf_long_history);
    }

  ret = g_test_run ();
  g_clear_pointer (&shared_pg, relais_test_pg_stop);
  return ret;
}
