#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "relais-bundle.h"
#include "relais-changeset.h"
#include "relais-dossier.h"
#include "relais-keys.h"
#include "relais-oplog.h"
#include "relais-person.h"
#include "relais-sync-engine.h"
#include "relais-test-util.h"

/* The vault's side of sync without a server: vaults in temporary
 * directories get identities and shared dossier keys directly, envelopes
 * travel from one spool's out/ to another's in/ as files, as an exchange
 * would carry them.  The client and server flows are tested in test-sync. */

#define PASS "pass"

typedef struct {
  char           *parent;
  char           *dir;
  RelaisVault    *vault;
  RelaisSpool    *spool;
  RelaisUserKeys *keys;
  char           *user_id;
} Device;

typedef struct {
  Device a;   /* user ua: makes the dossier */
  Device b;   /* user ub: a colleague it is shared with */
} Fixture;

static void
device_open (Device     *d,
             const char *user_id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDeviceKey) device_key = relais_device_key_generate ();
  RelaisKdfParams params;
  RelaisSyncIdentity identity = {
    .server = "http://127.0.0.1:9",
    .user_id = user_id,
    .org = "org-test",
    .device_id = NULL,
  };
  g_autofree char *device_id = g_strdup_printf ("dev-%s", user_id);

  d->parent = relais_test_make_tmpdir ("relais-sync-engine-XXXXXX");
  d->dir = g_build_filename (d->parent, "vault", NULL);
  relais_kdf_params_insecure_for_tests (&params);
  d->vault = relais_vault_create (d->dir, PASS, &(RelaisVaultOptions) { .kdf = &params }, NULL, &error);
  g_assert_no_error (error);
  d->spool = relais_spool_open (d->dir, &error);
  g_assert_no_error (error);
  d->keys = relais_user_keys_generate ();
  d->user_id = g_strdup (user_id);

  identity.device_id = device_id;
  g_assert_true (relais_sync_set_identity (d->vault, d->spool, &identity, d->keys, device_key->sk, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_is_enrolled (d->vault));
}

static void
device_close (Device *d)
{
  g_clear_pointer (&d->spool, relais_spool_free);
  g_clear_pointer (&d->vault, relais_vault_close);
  g_clear_pointer (&d->keys, relais_user_keys_free);
  if (d->parent != NULL)
    relais_test_rm_rf (d->parent);
  g_clear_pointer (&d->parent, g_free);
  g_clear_pointer (&d->dir, g_free);
  g_clear_pointer (&d->user_id, g_free);
}

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  device_open (&fx->a, "ua");
  device_open (&fx->b, "ub");
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  device_close (&fx->a);
  device_close (&fx->b);
}

static RelaisDossierMember *
member_new (const char   *user_id,
            const guint8 *sign_pk)
{
  RelaisDossierMember *m = g_new0 (RelaisDossierMember, 1);

  m->user_id = g_strdup (user_id);
  memcpy (m->sign_pk, sign_pk, crypto_sign_PUBLICKEYBYTES);
  m->since_epoch = 1;
  return m;
}

/* What a pull brings @to: @from's keys of @dossier wrapped for @to's
 * user, and both as members. */
static void
give_keys (Device     *from,
           Device     *to,
           const char *dossier)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDossierKeys) keys = g_new0 (RelaisDossierKeys, 1);
  g_autoptr(GPtrArray) wrapped = relais_sync_wrap_keys (from->vault, dossier, NULL, to->keys->box_pk, &error);

  g_assert_no_error (error);
  keys->dossier_id = g_strdup (dossier);
  keys->epoch = 0;
  for (guint i = 0; i < wrapped->len; i++)
    keys->epoch = MAX (keys->epoch, ((RelaisWrappedKey *) g_ptr_array_index (wrapped, i))->epoch);
  keys->keys = g_steal_pointer (&wrapped);
  keys->members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_member_free);
  g_ptr_array_add (keys->members, member_new (from->user_id, from->keys->sign_pk));
  g_ptr_array_add (keys->members, member_new (to->user_id, to->keys->sign_pk));
  g_assert_true (relais_spool_set_keys (to->spool, keys, &error));
  g_assert_no_error (error);
}

static char *
spool_path (Device     *d,
            const char *sub)
{
  return g_build_filename (d->dir, "spool", sub, NULL);
}

static GPtrArray *
list_files (Device     *d,
            const char *sub)
{
  g_autofree char *path = spool_path (d, sub);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".rlcs"))
      g_ptr_array_add (names, g_strdup (name));
  return names;
}

static guint in_counter;

/* Puts @data in @to's in/ as a pull would. */
static void
deliver_bytes (Device       *to,
               const guint8 *data,
               gsize         len)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = spool_path (to, "in");
  g_autofree char *name = g_strdup_printf ("%020u-%08x.rlcs", ++in_counter, g_random_int ());
  g_autofree char *path = g_build_filename (dir, name, NULL);

  g_assert_true (g_file_set_contents (path, (const char *) data, len, &error));
  g_assert_no_error (error);
}

/* Copies every envelope of @from's out/ to @to's in/; with @consume,
 * removes them from out/ as a push would.  Returns how many. */
static guint
deliver (Device   *from,
         Device   *to,
         gboolean  consume)
{
  g_autoptr(GPtrArray) names = list_files (from, "out");
  g_autofree char *out = spool_path (from, "out");

  for (guint i = 0; i < names->len; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *src = g_build_filename (out, g_ptr_array_index (names, i), NULL);
      g_autofree char *data = NULL;
      gsize len = 0;

      g_assert_true (g_file_get_contents (src, &data, &len, &error));
      g_assert_no_error (error);
      deliver_bytes (to, (const guint8 *) data, len);
      if (consume)
        g_assert_cmpint (g_unlink (src), ==, 0);
    }
  return names->len;
}

static guint
seal (Device *d)
{
  g_autoptr(GError) error = NULL;
  guint sealed = 0;

  g_assert_true (relais_sync_seal (d->vault, d->spool, &sealed, &error));
  g_assert_no_error (error);
  return sealed;
}

typedef struct {
  guint       count;
  GHashTable *codes;   /* code → count */
  char       *last_dossier;
} Refusals;

static void
on_refusal (const char   *dossier,
            const GError *reason,
            gpointer      user_data)
{
  Refusals *r = user_data;

  r->count++;
  g_assert_true (reason->domain == RELAIS_SYNC_ERROR);
  g_hash_table_insert (r->codes, GINT_TO_POINTER (reason->code),
                       GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (r->codes, GINT_TO_POINTER (reason->code))) + 1));
  g_free (r->last_dossier);
  r->last_dossier = g_strdup (dossier);
  /* The words relaisctl prints. */
  g_assert_nonnull (relais_sync_describe_refusal (reason));
}

static void
refusals_init (Refusals *r)
{
  memset (r, 0, sizeof *r);
  r->codes = g_hash_table_new (NULL, NULL);
}

static void
refusals_clear (Refusals *r)
{
  g_clear_pointer (&r->codes, g_hash_table_unref);
  g_clear_pointer (&r->last_dossier, g_free);
}

static guint
refused_with (Refusals        *r,
              RelaisSyncError  code)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (r->codes, GINT_TO_POINTER (code)));
}

static RelaisSyncReport
apply_with (Device   *d,
            Refusals *refusals)
{
  g_autoptr(GError) error = NULL;
  RelaisSyncReport report = { 0 };

  g_assert_true (relais_sync_apply_full (d->vault, d->spool, &report,
                                         refusals != NULL ? on_refusal : NULL, refusals, &error));
  g_assert_no_error (error);
  return report;
}

static RelaisSyncReport
apply (Device *d)
{
  return apply_with (d, NULL);
}

static char *
dossiers_json (Device *d)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) root = relais_vault_export_json (d->vault, &error);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  JsonNode *dossiers;

  g_assert_no_error (error);
  dossiers = json_object_get_member (json_node_get_object (root), "dossiers");
  g_assert_nonnull (dossiers);
  json_generator_set_root (generator, dossiers);
  return json_generator_to_data (generator, NULL);
}

static gint64
count_rows (Device     *d,
            const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  gint64 n;

  g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (d->vault), sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  n = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  return n;
}

static char *
add_person (Device     *d,
            const char *last,
            const char *first)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) p = relais_person_new ();
  char *id;

  p->last_name = g_strdup (last);
  p->first_name = g_strdup (first);
  p->birth_date = g_strdup ("1980-02-03");
  p->city = g_strdup ("Lyon");
  id = relais_person_add (d->vault, p, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  return id;
}

static void
set_city (Device     *d,
          const char *id,
          const char *city)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) changes = relais_person_new ();

  changes->city = g_strdup (city);
  g_assert_true (relais_person_edit (d->vault, id, changes, &error));
  g_assert_no_error (error);
}

static void
add_note (Device     *d,
          const char *dossier,
          const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = relais_note_add (d->vault, dossier, text, &error);

  g_assert_no_error (error);
  g_assert_nonnull (id);
}

/* A's dossier reaches B: same projections; B's edit comes back. */
static void
test_roundtrip (Fixture       *fx,
                gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Quenouillère", "Zoé");
  g_autofree char *json_a = NULL;
  g_autofree char *json_b = NULL;
  RelaisSyncReport report;

  add_note (&fx->a, id, "premier entretien");
  g_assert_cmpuint (seal (&fx->a), ==, 1);
  /* Nothing new: nothing sealed. */
  g_assert_cmpuint (seal (&fx->a), ==, 0);
  /* A dossier made here is queued for registration, once. */
  g_assert_cmpuint (relais_spool_count_pending (fx->a.spool), ==, 2);
  g_assert_cmpint (count_rows (&fx->a, "SELECT registered FROM sync_dossier"), ==, 1);

  give_keys (&fx->a, &fx->b, id);
  g_assert_cmpuint (deliver (&fx->a, &fx->b, TRUE), ==, 1);
  report = apply (&fx->b);
  g_assert_cmpuint (report.applied, ==, count_rows (&fx->a, "SELECT count(*) FROM op"));
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpuint (report.waiting, ==, 0);
  g_assert_cmpuint (report.conflicts, ==, 0);
  /* Keys that came from the server: the dossier is known there. */
  g_assert_cmpint (count_rows (&fx->b, "SELECT registered FROM sync_dossier"), ==, 2);
  /* Applied envelopes leave in/. */
  g_assert_cmpuint (list_files (&fx->b, "in")->len, ==, 0);

  json_a = dossiers_json (&fx->a);
  json_b = dossiers_json (&fx->b);
  g_assert_cmpstr (json_a, ==, json_b);
  /* Their authors are the user ids, on both sides. */
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM op WHERE author <> 'ua'"), ==, 0);
  g_assert_cmpint (count_rows (&fx->a, "SELECT count(*) FROM op WHERE author <> 'ua'"), ==, 0);

  /* B's edit goes back to A, sealed with the key B took from its pull. */
  set_city (&fx->b, id, "Vienne");
  g_assert_cmpuint (seal (&fx->b), ==, 1);
  /* B did not make the dossier: no registration. */
  g_assert_cmpuint (relais_spool_count_pending (fx->b.spool), ==, 1);
  give_keys (&fx->b, &fx->a, id);
  deliver (&fx->b, &fx->a, TRUE);
  report = apply (&fx->a);
  g_assert_cmpuint (report.applied, ==, 1);
  g_clear_pointer (&json_a, g_free);
  g_clear_pointer (&json_b, g_free);
  json_a = dossiers_json (&fx->a);
  json_b = dossiers_json (&fx->b);
  g_assert_cmpstr (json_a, ==, json_b);
  g_assert_nonnull (strstr (json_a, "Vienne"));
}

/* Concurrent edits of one field: both vaults list the conflict with both
 * values, the same winner first; a second delivery changes nothing. */
static void
test_conflict (Fixture       *fx,
               gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Dupont", "Jean");
  g_autoptr(GPtrArray) ca = NULL;
  g_autoptr(GPtrArray) cb = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *json_a = NULL;
  g_autofree char *json_b = NULL;
  g_autofree char *json_again = NULL;
  RelaisSyncReport report;

  seal (&fx->a);
  give_keys (&fx->a, &fx->b, id);
  deliver (&fx->a, &fx->b, TRUE);
  apply (&fx->b);
  give_keys (&fx->b, &fx->a, id);

  /* Offline, both change the city. */
  set_city (&fx->a, id, "Grenoble");
  set_city (&fx->b, id, "Annecy");
  seal (&fx->a);
  seal (&fx->b);
  deliver (&fx->a, &fx->b, FALSE);
  deliver (&fx->b, &fx->a, FALSE);
  report = apply (&fx->a);
  g_assert_cmpuint (report.applied, ==, 1);
  g_assert_cmpuint (report.conflicts, ==, 1);
  report = apply (&fx->b);
  g_assert_cmpuint (report.applied, ==, 1);
  g_assert_cmpuint (report.conflicts, ==, 1);

  ca = relais_oplog_conflicts (fx->a.vault, NULL, &error);
  g_assert_no_error (error);
  cb = relais_oplog_conflicts (fx->b.vault, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ca->len, ==, 1);
  g_assert_cmpuint (cb->len, ==, 1);
  {
    RelaisConflict *x = g_ptr_array_index (ca, 0);
    RelaisConflict *y = g_ptr_array_index (cb, 0);
    g_autoptr(GHashTable) values = g_hash_table_new (g_str_hash, g_str_equal);

    g_assert_cmpstr (x->field, ==, "city");
    g_assert_cmpstr (x->dossier, ==, id);
    g_assert_cmpuint (x->values->len, ==, 2);
    g_assert_cmpuint (y->values->len, ==, 2);
    for (guint i = 0; i < 2; i++)
      {
        RelaisOp *ox = g_ptr_array_index (x->values, i);
        RelaisOp *oy = g_ptr_array_index (y->values, i);

        g_assert_cmpstr (ox->id, ==, oy->id);
        g_assert_cmpstr (ox->value, ==, oy->value);
        g_assert_cmpstr (ox->author, ==, oy->author);
        g_hash_table_add (values, ox->value);
      }
    g_assert_true (g_hash_table_contains (values, "Grenoble"));
    g_assert_true (g_hash_table_contains (values, "Annecy"));
  }
  json_a = dossiers_json (&fx->a);
  json_b = dossiers_json (&fx->b);
  g_assert_cmpstr (json_a, ==, json_b);

  /* Applying the same change sets again changes nothing. */
  deliver (&fx->b, &fx->a, TRUE);
  report = apply (&fx->a);
  g_assert_cmpuint (report.applied, ==, 0);
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpuint (report.conflicts, ==, 1);
  json_again = dossiers_json (&fx->a);
  g_assert_cmpstr (json_again, ==, json_a);

  /* Resolving on A closes it on B too. */
  g_assert_true (relais_oplog_resolve (fx->a.vault, "person", id, "city", "Annecy", &error));
  g_assert_no_error (error);
  seal (&fx->a);
  deliver (&fx->a, &fx->b, TRUE);
  report = apply (&fx->b);
  g_assert_cmpuint (report.conflicts, ==, 0);
}

/* Tampered, forged or misdirected envelopes are refused, each with its
 * own reason, and removed; the good one beside them is applied. */
static void
test_refused (Fixture       *fx,
              gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Martin", "Luc");
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = spool_path (&fx->a, "out");
  g_autofree char *src = NULL;
  g_autofree char *good = NULL;
  g_autoptr(RelaisUserKeys) stranger = relais_user_keys_generate ();
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  guint8 *wrong_key = relais_dossier_key_new ();
  RelaisOp *op;
  gsize len = 0;
  Refusals refusals;
  RelaisSyncReport report;

  seal (&fx->a);
  give_keys (&fx->a, &fx->b, id);
  names = list_files (&fx->a, "out");
  g_assert_cmpuint (names->len, ==, 1);
  src = g_build_filename (out, g_ptr_array_index (names, 0), NULL);
  g_assert_true (g_file_get_contents (src, &good, &len, &error));
  g_assert_no_error (error);

  /* A flipped byte in the ciphertext: the signature covers it. */
  {
    g_autofree guint8 *bad = g_memdup2 (good, len);

    bad[len - 100] ^= 0x01;
    deliver_bytes (&fx->b, bad, len);
  }
  /* A flipped byte in the signature itself. */
  {
    g_autofree guint8 *bad = g_memdup2 (good, len);

    bad[len - 1] ^= 0x80;
    deliver_bytes (&fx->b, bad, len);
  }
  /* Garbage, and a truncated envelope. */
  deliver_bytes (&fx->b, (const guint8 *) "not an envelope at all", 22);
  deliver_bytes (&fx->b, (const guint8 *) good, 60);

  op = g_new0 (RelaisOp, 1);
  op->id = relais_oplog_new_id ();
  op->dossier = g_strdup (id);
  op->entity = g_strdup ("person");
  op->entity_id = g_strdup (id);
  op->field = g_strdup ("city");
  op->value = g_strdup ("Forged");
  op->hlc = (guint64) 1 << 40;
  g_ptr_array_add (ops, op);

  /* Signed by a member, sealed with a key that is not the dossier's. */
  {
    g_autoptr(GBytes) env = relais_changeset_seal (id, 1, wrong_key, "ua", "dev-x",
                                                   fx->a.keys->sign_sk, ops, &error);

    g_assert_no_error (error);
    deliver_bytes (&fx->b, g_bytes_get_data (env, NULL), g_bytes_get_size (env));
  }
  /* Signed by a stranger (with the right key: the server could hold
   * nothing of it, but say a former colleague leaked it). */
  {
    g_autoptr(GPtrArray) wrapped = relais_sync_wrap_keys (fx->a.vault, id, NULL, fx->a.keys->box_pk, &error);
    RelaisWrappedKey *w = g_ptr_array_index (wrapped, 0);
    g_autofree guint8 *plain = NULL;
    guint8 *key = relais_dossier_key_unwrap (g_bytes_get_data (w->wrapped_key, NULL),
                                             g_bytes_get_size (w->wrapped_key), id, 1,
                                             fx->a.keys->box_pk, fx->a.keys->box_sk, &error);
    g_autoptr(GBytes) env = NULL;

    g_assert_no_error (error);
    env = relais_changeset_seal (id, 1, key, "ux", "dev-x", stranger->sign_sk, ops, &error);
    g_assert_no_error (error);
    deliver_bytes (&fx->b, g_bytes_get_data (env, NULL), g_bytes_get_size (env));

    /* A member's key naming another author than its owner. */
    g_clear_pointer (&env, g_bytes_unref);
    env = relais_changeset_seal (id, 1, key, "ub", "dev-x", fx->a.keys->sign_sk, ops, &error);
    g_assert_no_error (error);
    deliver_bytes (&fx->b, g_bytes_get_data (env, NULL), g_bytes_get_size (env));
    relais_dossier_key_free (key);
  }
  /* And the genuine one. */
  deliver_bytes (&fx->b, (const guint8 *) good, len);

  refusals_init (&refusals);
  report = apply_with (&fx->b, &refusals);
  g_assert_cmpuint (report.rejected, ==, 7);
  g_assert_cmpuint (refusals.count, ==, 7);
  g_assert_cmpuint (refused_with (&refusals, RELAIS_SYNC_ERROR_SIGNATURE), ==, 2);
  g_assert_cmpuint (refused_with (&refusals, RELAIS_SYNC_ERROR_MALFORMED), ==, 3);
  g_assert_cmpuint (refused_with (&refusals, RELAIS_SYNC_ERROR_SEAL), ==, 1);
  g_assert_cmpuint (refused_with (&refusals, RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN), ==, 1);
  g_assert_cmpuint (report.waiting, ==, 0);
  g_assert_cmpuint (report.applied, >, 0);
  /* Refused ones are removed, not retried forever. */
  g_assert_cmpuint (list_files (&fx->b, "in")->len, ==, 0);
  /* Nothing forged got in. */
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM op WHERE value = 'Forged'"), ==, 0);
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM op"), ==,
                   count_rows (&fx->a, "SELECT count(*) FROM op"));
  g_assert_cmpstr (relais_sync_describe_refusal (&(GError) { RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SIGNATURE, (char *) "" }),
                   ==, "the signature does not match its author");
  refusals_clear (&refusals);
  relais_dossier_key_free (wrong_key);
}

/* An envelope sealed with an epoch this device does not hold waits in
 * in/ (its dossier's keys forgotten so that they are fetched again), and
 * opens once the keys come. */
static void
test_waiting (Fixture       *fx,
              gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Bernard", "Anne");
  g_autoptr(RelaisDossierKeys) keys = g_new0 (RelaisDossierKeys, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  g_autoptr(GBytes) env = NULL;
  g_autoptr(RelaisDossierKeys) forgotten = NULL;
  guint8 *key2 = relais_dossier_key_new ();
  RelaisOp *op;
  RelaisSyncReport report;

  /* Without any key: it waits. */
  seal (&fx->a);
  deliver (&fx->a, &fx->b, TRUE);
  report = apply (&fx->b);
  g_assert_cmpuint (report.waiting, ==, 1);
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpuint (list_files (&fx->b, "in")->len, ==, 1);
  /* The keys come: it opens. */
  give_keys (&fx->a, &fx->b, id);
  report = apply (&fx->b);
  g_assert_cmpuint (report.waiting, ==, 0);
  g_assert_cmpuint (report.applied, >, 0);
  g_assert_cmpuint (list_files (&fx->b, "in")->len, ==, 0);

  /* Epoch 2, which B has not heard of. */
  op = g_new0 (RelaisOp, 1);
  op->id = relais_oplog_new_id ();
  op->dossier = g_strdup (id);
  op->entity = g_strdup ("person");
  op->entity_id = g_strdup (id);
  op->field = g_strdup ("city");
  op->value = g_strdup ("Épinal");
  op->hlc = relais_vault_hlc_tick (fx->a.vault);
  g_ptr_array_add (ops, op);
  env = relais_changeset_seal (id, 2, key2, "ua", "dev-a2", fx->a.keys->sign_sk, ops, &error);
  g_assert_no_error (error);
  give_keys (&fx->a, &fx->b, id);
  deliver_bytes (&fx->b, g_bytes_get_data (env, NULL), g_bytes_get_size (env));
  report = apply (&fx->b);
  g_assert_cmpuint (report.waiting, ==, 1);
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpuint (list_files (&fx->b, "in")->len, ==, 1);
  forgotten = relais_spool_get_keys (fx->b.spool, id, &error);
  g_assert_no_error (error);
  g_assert_null (forgotten);

  /* The rotation's keys arrive with epoch 2. */
  {
    g_autoptr(GPtrArray) wrapped = relais_sync_wrap_keys (fx->a.vault, id, NULL, fx->b.keys->box_pk, &error);
    g_autoptr(GBytes) w2 = relais_dossier_key_wrap (key2, id, 2, fx->b.keys->box_pk);

    g_assert_no_error (error);
    g_ptr_array_add (wrapped, relais_wrapped_key_new (NULL, 2, w2));
    keys->dossier_id = g_strdup (id);
    keys->epoch = 2;
    keys->keys = g_steal_pointer (&wrapped);
    keys->members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_member_free);
    g_ptr_array_add (keys->members, member_new ("ua", fx->a.keys->sign_pk));
    g_ptr_array_add (keys->members, member_new ("ub", fx->b.keys->sign_pk));
    g_assert_true (relais_spool_set_keys (fx->b.spool, keys, &error));
    g_assert_no_error (error);
  }
  report = apply (&fx->b);
  g_assert_cmpuint (report.waiting, ==, 0);
  g_assert_cmpuint (report.applied, ==, 1);

  /* B now seals its own edits at epoch 2. */
  set_city (&fx->b, id, "Nancy");
  seal (&fx->b);
  {
    g_autoptr(GPtrArray) names = list_files (&fx->b, "out");
    g_autofree char *dir = spool_path (&fx->b, "out");
    g_autofree char *path = g_build_filename (dir, g_ptr_array_index (names, 0), NULL);
    g_autofree char *bytes = NULL;
    g_auto(RelaisChangesetHeader) header = { 0 };
    gsize len = 0;

    g_assert_cmpuint (names->len, ==, 1);
    g_assert_true (g_file_get_contents (path, &bytes, &len, &error));
    g_assert_true (relais_changeset_peek ((const guint8 *) bytes, len, &header, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (header.epoch, ==, 2);
    g_assert_cmpstr (header.dossier, ==, id);
  }
  relais_dossier_key_free (key2);
}

/* A crash after the envelopes are written but before sealed_seq moves
 * seals the same operations again: the receiver stores each once. */
static void
test_reseal_after_crash (Fixture       *fx,
                         gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Petit", "Marc");
  g_autoptr(GError) error = NULL;
  RelaisSyncReport report;

  for (int i = 0; i < 12; i++)
    {
      g_autofree char *text = g_strdup_printf ("note %d", i);

      add_note (&fx->a, id, text);
    }
  g_assert_cmpuint (seal (&fx->a), ==, 1);
  /* What a crash before the commit of sealed_seq leaves. */
  g_assert_true (relais_vault_exec (fx->a.vault, "UPDATE sync_state SET value = 0 WHERE name = 'sealed_seq'",
                                    &error));
  g_assert_no_error (error);
  g_assert_cmpuint (seal (&fx->a), ==, 1);
  g_assert_cmpuint (list_files (&fx->a, "out")->len, ==, 2);

  give_keys (&fx->a, &fx->b, id);
  deliver (&fx->a, &fx->b, TRUE);
  report = apply (&fx->b);
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpuint (report.applied, ==, count_rows (&fx->a, "SELECT count(*) FROM op"));
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM op"), ==,
                   count_rows (&fx->a, "SELECT count(*) FROM op"));
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM note"), ==, 12);
}

/* More operations than a change set may hold are split. */
static void
test_split (Fixture       *fx,
            gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Grand", "Lot");
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (60000, 'x');
  RelaisSyncReport report;

  g_assert_true (relais_vault_begin (fx->a.vault, &error));
  for (guint i = 0; i < RELAIS_CHANGESET_MAX_OPS + 5; i++)
    {
      g_autofree char *value = g_strdup_printf ("%u", i);

      g_assert_true (relais_oplog_write (fx->a.vault, id, "note", value, "text", value, &error));
      g_assert_no_error (error);
    }
  /* And enough bytes to pass 1 MiB on their own. */
  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *entity_id = g_strdup_printf ("big-%u", i);

      g_assert_true (relais_oplog_write (fx->a.vault, id, "note", entity_id, "text", big, &error));
      g_assert_no_error (error);
    }
  g_assert_true (relais_vault_commit (fx->a.vault, &error));

  g_assert_cmpuint (seal (&fx->a), ==, 3);
  give_keys (&fx->a, &fx->b, id);
  deliver (&fx->a, &fx->b, TRUE);
  report = apply (&fx->b);
  g_assert_cmpuint (report.rejected, ==, 0);
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM op"), ==,
                   count_rows (&fx->a, "SELECT count(*) FROM op"));
}

/* A pull of many dossiers at once: signatures are checked and keys read
 * ahead on a second thread, applied files unlinked on a third; one forged
 * signature among them is still refused, and the rest all land. */
static void
test_many_dossiers (Fixture       *fx,
                    gconstpointer  data)
{
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) names = NULL;
  g_autofree char *out = spool_path (&fx->a, "out");
  g_autofree char *forged = NULL;
  g_autofree char *forged_dossier = NULL;
  gsize forged_len = 0;
  Refusals refusals;
  RelaisSyncReport report;

  for (guint i = 0; i < 40; i++)
    {
      g_autofree char *last = g_strdup_printf ("Nom%02u", i);

      g_ptr_array_add (ids, add_person (&fx->a, last, "Lot"));
    }
  g_assert_cmpuint (seal (&fx->a), >=, 40);
  for (guint i = 0; i < ids->len; i++)
    give_keys (&fx->a, &fx->b, g_ptr_array_index (ids, i));

  /* The 20th envelope's signature, one bit off. */
  names = list_files (&fx->a, "out");
  {
    g_autofree char *path = g_build_filename (out, g_ptr_array_index (names, 20), NULL);
    g_auto(RelaisChangesetHeader) header = { 0 };
    g_autoptr(GError) error = NULL;

    g_assert_true (g_file_get_contents (path, &forged, &forged_len, &error));
    g_assert_true (relais_changeset_peek ((const guint8 *) forged, forged_len, &header, &error));
    forged_dossier = g_strdup (header.dossier);
    forged[forged_len - 1] ^= 1;
    g_assert_true (g_file_set_contents (path, forged, forged_len, &error));
  }
  g_assert_cmpuint (deliver (&fx->a, &fx->b, TRUE), ==, names->len);

  refusals_init (&refusals);
  report = apply_with (&fx->b, &refusals);
  g_assert_cmpuint (report.rejected, ==, 1);
  g_assert_cmpuint (refused_with (&refusals, RELAIS_SYNC_ERROR_SIGNATURE), ==, 1);
  g_assert_cmpstr (refusals.last_dossier, ==, forged_dossier);
  g_assert_cmpuint (report.waiting, ==, 0);
  refusals_clear (&refusals);

  /* Applied and refused files are gone. */
  g_assert_cmpuint (list_files (&fx->b, "in")->len, ==, 0);
  /* Every dossier but the forged one's. */
  for (guint i = 0; i < ids->len; i++)
    {
      const char *id = g_ptr_array_index (ids, i);
      g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM person WHERE id = '%s'", id);

      g_assert_cmpint (count_rows (&fx->b, sql), ==, strcmp (id, forged_dossier) == 0 ? 0 : 1);
    }
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM person"), ==, 39);
}

/* The server retired an envelope (epoch_retired after a rotation): once
 * the new key is in, it is sealed again at the new epoch. */
static void
test_retired (Fixture       *fx,
              gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Roux", "Paul");
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = spool_path (&fx->a, "out");
  g_autofree char *retired = spool_path (&fx->a, "retired");
  g_autoptr(RelaisDossierKeys) keys = g_new0 (RelaisDossierKeys, 1);
  guint8 *key2 = relais_dossier_key_new ();

  seal (&fx->a);
  names = list_files (&fx->a, "out");
  g_assert_cmpuint (names->len, ==, 1);
  {
    g_autofree char *from = g_build_filename (out, g_ptr_array_index (names, 0), NULL);
    g_autofree char *to = g_build_filename (retired, g_ptr_array_index (names, 0), NULL);

    g_assert_cmpint (g_mkdir_with_parents (retired, 0700), ==, 0);
    g_assert_cmpint (g_rename (from, to), ==, 0);
  }

  /* Without the new key, it stays retired. */
  g_assert_cmpuint (seal (&fx->a), ==, 0);
  g_assert_cmpuint (list_files (&fx->a, "retired")->len, ==, 1);

  {
    g_autoptr(GPtrArray) wrapped = relais_sync_wrap_keys (fx->a.vault, id, NULL, fx->a.keys->box_pk, &error);
    g_autoptr(GBytes) w2 = relais_dossier_key_wrap (key2, id, 2, fx->a.keys->box_pk);

    g_assert_no_error (error);
    g_ptr_array_add (wrapped, relais_wrapped_key_new (NULL, 2, w2));
    keys->dossier_id = g_strdup (id);
    keys->epoch = 2;
    keys->keys = g_steal_pointer (&wrapped);
    keys->members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_member_free);
    g_ptr_array_add (keys->members, member_new ("ua", fx->a.keys->sign_pk));
    g_assert_true (relais_spool_set_keys (fx->a.spool, keys, &error));
    g_assert_no_error (error);
  }
  g_assert_cmpuint (seal (&fx->a), ==, 1);
  g_assert_cmpuint (list_files (&fx->a, "retired")->len, ==, 0);
  g_clear_pointer (&names, g_ptr_array_unref);
  names = list_files (&fx->a, "out");
  g_assert_cmpuint (names->len, ==, 1);
  {
    g_autofree char *path = g_build_filename (out, g_ptr_array_index (names, 0), NULL);
    g_autofree char *bytes = NULL;
    g_auto(RelaisChangesetHeader) header = { 0 };
    gsize len = 0;

    g_assert_true (g_file_get_contents (path, &bytes, &len, &error));
    g_assert_true (relais_changeset_peek ((const guint8 *) bytes, len, &header, &error));
    g_assert_cmpuint (header.epoch, ==, 2);
  }
  relais_dossier_key_free (key2);
}

/* Hostile keys from a pull: a key wrapped for another dossier, and one
 * not wrapped for us, are left out; nothing crashes. */
static void
test_hostile_keys (Fixture       *fx,
                   gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Leroy", "Eva");
  g_autoptr(RelaisDossierKeys) keys = g_new0 (RelaisDossierKeys, 1);
  g_autoptr(GError) error = NULL;
  guint8 *key = relais_dossier_key_new ();
  RelaisSyncReport report;

  seal (&fx->a);
  deliver (&fx->a, &fx->b, TRUE);
  keys->dossier_id = g_strdup (id);
  keys->epoch = 1;
  keys->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  {
    g_autoptr(GBytes) other = relais_dossier_key_wrap (key, "another-dossier", 1, fx->b.keys->box_pk);
    g_autoptr(GBytes) garbage = g_bytes_new_static ("0123456789", 10);

    g_ptr_array_add (keys->keys, relais_wrapped_key_new (NULL, 1, other));
    g_ptr_array_add (keys->keys, relais_wrapped_key_new (NULL, 1, garbage));
  }
  keys->members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_member_free);
  g_ptr_array_add (keys->members, member_new ("ua", fx->a.keys->sign_pk));
  g_assert_true (relais_sync_import_keys (fx->b.vault, keys, &error));
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (&fx->b, "SELECT count(*) FROM sync_key"), ==, 0);

  g_assert_true (relais_spool_set_keys (fx->b.spool, keys, &error));
  report = apply (&fx->b);
  g_assert_cmpuint (report.waiting, ==, 1);
  g_assert_cmpuint (report.applied, ==, 0);
  relais_dossier_key_free (key);
}

/* relaisctl bundle export / import between two vaults, idempotent. */

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

static void
run_ctl (Run        *run,
         const char *first,
         ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) env = g_get_environ ();
  const char *relaisctl = g_getenv ("RELAISCTL");
  va_list args;
  int wait_status = 0;

  g_assert_nonnull (relaisctl);
  env = g_environ_setenv (env, "RELAIS_PASSPHRASE", PASS, TRUE);
  env = g_environ_setenv (env, "RELAIS_TEST_FAST_KDF", "1", TRUE);
  g_ptr_array_add (argv, (char *) relaisctl);
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  memset (run, 0, sizeof *run);
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, env, G_SPAWN_DEFAULT, NULL, NULL,
                               &run->out, &run->err, &wait_status, &error));
  g_assert_no_error (error);
  run->status = WIFEXITED (wait_status) ? WEXITSTATUS (wait_status) : 128;
  if (run->status != 0)
    g_test_message ("stderr: %s", run->err);
}

static void
test_bundle_cli (Fixture       *fx,
                 gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Moreau", "Léa");
  g_autofree char *bundle = g_build_filename (fx->a.parent, "stick.rlbundle", NULL);
  g_autofree char *json_a = NULL;
  g_autofree char *json_b = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;

  g_autofree char *expected = NULL;

  add_note (&fx->a, id, "rendez-vous manqué");
  /* The dossier's key is made at the first seal; export seals too, and
   * finds nothing more. */
  seal (&fx->a);
  give_keys (&fx->a, &fx->b, id);
  json_a = dossiers_json (&fx->a);
  expected = g_strdup_printf ("imported 1 change sets, %" G_GINT64_FORMAT " new operations\n",
                              count_rows (&fx->a, "SELECT count(*) FROM op"));
  /* relaisctl opens the vaults itself. */
  g_clear_pointer (&fx->a.spool, relais_spool_free);
  g_clear_pointer (&fx->a.vault, relais_vault_close);
  g_clear_pointer (&fx->b.spool, relais_spool_free);
  g_clear_pointer (&fx->b.vault, relais_vault_close);

  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "bundle", "export", "--vault", fx->a.dir, bundle, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpstr (run.out, ==, "exported 1 change sets\n");
  }
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "--vault", fx->b.dir, "bundle", "import", bundle, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpstr (run.out, ==, expected);
  }
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "bundle", "import", "--vault", fx->b.dir, bundle, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpstr (run.out, ==, "imported 1 change sets, 0 new operations\n");
  }
  /* A bundle whose checksum is right but whose change set was tampered
   * with: the change set is refused, with its dossier and the reason. */
  {
    g_auto(Run) run = { 0 };
    g_autofree char *forged_path = g_build_filename (fx->a.parent, "forged.rlbundle", NULL);
    g_autofree char *raw = NULL;
    g_autoptr(GPtrArray) envelopes = NULL;
    g_autoptr(GPtrArray) tampered = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
    g_autoptr(GBytes) forged = NULL;
    g_autofree char *expected_err = NULL;
    gsize raw_len = 0;

    g_assert_true (g_file_get_contents (bundle, &raw, &raw_len, &error));
    envelopes = relais_bundle_parse ((const guint8 *) raw, raw_len, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (envelopes->len, ==, 1);
    {
      gsize n = 0;
      const guint8 *d = g_bytes_get_data (g_ptr_array_index (envelopes, 0), &n);
      guint8 *copy = g_memdup2 (d, n);

      copy[n - 70] ^= 0x04;
      g_ptr_array_add (tampered, g_bytes_new_take (copy, n));
    }
    forged = relais_bundle_build (tampered, &error);
    g_assert_no_error (error);
    g_assert_true (g_file_set_contents (forged_path, g_bytes_get_data (forged, NULL),
                                        g_bytes_get_size (forged), &error));
    run_ctl (&run, "bundle", "import", "--vault", fx->b.dir, forged_path, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpstr (run.out, ==, "imported 0 change sets, 0 new operations\n");
    expected_err = g_strdup_printf ("relaisctl: refused a change set of dossier %s: "
                                    "the signature does not match its author\n", id);
    g_assert_cmpstr (run.err, ==, expected_err);
  }
  /* A damaged stick: refused whole, nothing changes. */
  g_assert_true (g_file_get_contents (bundle, &contents, &len, &error));
  contents[len / 2] ^= 0x10;
  g_assert_true (g_file_set_contents (bundle, contents, len, &error));
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "bundle", "import", "--vault", fx->b.dir, bundle, NULL);
    g_assert_cmpint (run.status, ==, 1);
    g_assert_true (g_str_has_prefix (run.err, "relaisctl: "));
    g_assert_cmpstr (run.out, ==, "");
  }
  {
    g_auto(Run) run = { 0 };
    g_autofree char *missing = g_build_filename (fx->a.parent, "missing", NULL);

    run_ctl (&run, "bundle", "import", "--vault", fx->b.dir, missing, NULL);
    g_assert_cmpint (run.status, ==, 1);
  }

  fx->b.vault = relais_vault_open (fx->b.dir, PASS, NULL, &error);
  g_assert_no_error (error);
  json_b = dossiers_json (&fx->b);
  g_assert_cmpstr (json_a, ==, json_b);
}

/* relaisctl's sync commands on a vault without a server. */
static void
test_cli_offline (Fixture       *fx,
                  gconstpointer  data)
{
  g_autofree char *key_file = g_build_filename (fx->a.parent, "recovery.key", NULL);
  g_autofree char *fresh = g_build_filename (fx->a.parent, "fresh", NULL);
  g_autofree char *id = add_person (&fx->a, "Simon", "Inès");
  GStatBuf st;

  g_clear_pointer (&fx->a.spool, relais_spool_free);
  g_clear_pointer (&fx->a.vault, relais_vault_close);

  {
    g_auto(Run) run = { 0 };
    g_autofree char *contents = NULL;
    guint8 pk[32];
    gsize pk_len = 0;

    run_ctl (&run, "recovery-key", "new", "--out", key_file, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_strchomp (run.out);
    g_assert_null (strchr (run.out, '\n'));
    g_assert_cmpint (sodium_base642bin (pk, sizeof pk, run.out, strlen (run.out), NULL, &pk_len, NULL,
                                        sodium_base64_VARIANT_URLSAFE_NO_PADDING), ==, 0);
    g_assert_cmpuint (pk_len, ==, 32);
    g_assert_cmpint (g_stat (key_file, &st), ==, 0);
    g_assert_cmpint (st.st_mode & 0777, ==, 0600);
    /* Never overwritten. */
    run_clear (&run);
    run_ctl (&run, "recovery-key", "new", "--out", key_file, NULL);
    g_assert_cmpint (run.status, ==, 1);
  }
  {
    g_auto(Run) run = { 0 };
    g_autoptr(JsonParser) parser = json_parser_new ();
    g_autoptr(GError) error = NULL;
    JsonObject *o;

    run_ctl (&run, "sync", "status", "--json", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_true (json_parser_load_from_data (parser, run.out, -1, &error));
    o = json_node_get_object (json_parser_get_root (parser));
    g_assert_true (json_object_get_boolean_member (o, "enrolled"));
    g_assert_cmpstr (json_object_get_string_member (o, "user_id"), ==, "ua");
    g_assert_cmpstr (json_object_get_string_member (o, "org"), ==, "org-test");
    g_assert_cmpstr (json_object_get_string_member (o, "device_id"), ==, "dev-ua");
    g_assert_true (json_object_has_member (o, "pending"));
    g_assert_true (json_object_has_member (o, "last_success"));
    g_assert_true (json_object_has_member (o, "last_error"));
  }
  {
    g_auto(Run) run = { 0 };

    /* A vault never enrolled: no spool made by asking. */
    run_ctl (&run, "sync", "status", "--json", "--vault", fresh, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "\"enrolled\" : false"));
    g_assert_false (g_file_test (fresh, G_FILE_TEST_EXISTS));
    run_clear (&run);
    run_ctl (&run, "sync", "--background", "--vault", fresh, NULL);
    g_assert_cmpint (run.status, ==, 1);
    g_assert_nonnull (strstr (run.err, "not enrolled"));
    g_assert_false (g_file_test (fresh, G_FILE_TEST_EXISTS));
  }
  {
    g_auto(Run) run = { 0 };

    /* The server is not there: one line, exit 1, never "synced". */
    run_ctl (&run, "sync", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 1);
    g_assert_cmpstr (run.out, ==, "");
    g_assert_true (g_str_has_prefix (run.err, "relaisctl: "));
  }
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "conflicts", "--json", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_cmpstr (g_strstrip (run.out), ==, "[]");
  }
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "conflicts", "resolve", id, "city", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 1);
    run_clear (&run);
    run_ctl (&run, "conflicts", "resolve", id, "city", "--pick", "1", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 1);
    g_assert_nonnull (strstr (run.err, "no conflict"));
  }
}

/* conflicts and conflicts resolve through relaisctl. */
static void
test_cli_conflicts (Fixture       *fx,
                    gconstpointer  data)
{
  g_autofree char *id = add_person (&fx->a, "Faure", "Tom");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) left = NULL;

  seal (&fx->a);
  give_keys (&fx->a, &fx->b, id);
  deliver (&fx->a, &fx->b, TRUE);
  apply (&fx->b);
  give_keys (&fx->b, &fx->a, id);
  set_city (&fx->a, id, "Brest");
  set_city (&fx->b, id, "Quimper");
  seal (&fx->b);
  deliver (&fx->b, &fx->a, TRUE);
  apply (&fx->a);
  g_clear_pointer (&fx->a.spool, relais_spool_free);
  g_clear_pointer (&fx->a.vault, relais_vault_close);

  {
    g_auto(Run) run = { 0 };
    g_autoptr(JsonParser) parser = json_parser_new ();
    JsonArray *list, *values;
    JsonObject *c, *v;

    run_ctl (&run, "conflicts", "--json", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_true (json_parser_load_from_data (parser, run.out, -1, &error));
    list = json_node_get_array (json_parser_get_root (parser));
    g_assert_cmpuint (json_array_get_length (list), ==, 1);
    c = json_array_get_object_element (list, 0);
    g_assert_cmpstr (json_object_get_string_member (c, "dossier"), ==, id);
    g_assert_cmpstr (json_object_get_string_member (c, "entity"), ==, "person");
    g_assert_cmpstr (json_object_get_string_member (c, "entity_id"), ==, id);
    g_assert_cmpstr (json_object_get_string_member (c, "field"), ==, "city");
    values = json_object_get_array_member (c, "values");
    g_assert_cmpuint (json_array_get_length (values), ==, 2);
    v = json_array_get_object_element (values, 1);
    g_assert_true (json_object_has_member (v, "value"));
    g_assert_true (json_object_has_member (v, "author"));
    g_assert_true (json_object_has_member (v, "device"));
    g_assert_true (json_object_get_int_member (v, "hlc") > 0);
    g_assert_true (json_object_has_member (v, "op"));
  }
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "conflicts", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 0);
    g_assert_nonnull (strstr (run.out, "Brest"));
    g_assert_nonnull (strstr (run.out, "Quimper"));
  }
  {
    g_auto(Run) run = { 0 };

    run_ctl (&run, "conflicts", "resolve", id, "city", "--pick", "3", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 1);
    run_clear (&run);
    run_ctl (&run, "conflicts", "resolve", id, "city", "--value", "Morlaix", "--vault", fx->a.dir, NULL);
    g_assert_cmpint (run.status, ==, 0);
  }
  fx->a.vault = relais_vault_open (fx->a.dir, PASS, NULL, &error);
  g_assert_no_error (error);
  left = relais_oplog_conflicts (fx->a.vault, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (left->len, ==, 0);
  {
    g_autoptr(RelaisPerson) p = relais_person_get (fx->a.vault, id, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (p->city, ==, "Morlaix");
  }
}

/* The recovery key file: what recovery-key new writes is read back;
 * broken and hostile files get one clear error before any request. */
static void
test_recovery_key_file (Fixture       *fx,
                        gconstpointer  data)
{
  g_autofree char *good = g_build_filename (fx->a.parent, "good.key", NULL);
  g_autofree char *bad = g_build_filename (fx->a.parent, "bad.key", NULL);
  g_autofree char *public_key = NULL;
  g_autofree char *huge = g_strnfill (100000, 'A');
  g_autoptr(GError) error = NULL;
  const char *broken[] = {
    "",
    "RELAIS-RECOVERY-KEY 1\n",
    "RELAIS-RECOVERY-KEY 2\nvBfiDO-RFYehEu5dgWTEgie_2PDqpsqBr-6ZaQi1snw\n",
    "RELAIS-RECOVERY-KEY 1\nvBfiDO-RFYehEu5dgWTEgie_2PDqpsqBr-6ZaQi1sn\n",
    "RELAIS-RECOVERY-KEY 1\nvBfiDO-RFYehEu5dgWTEgie_2PDqpsqBr-6ZaQi1snwAAAA\n",
    "RELAIS-RECOVERY-KEY 1\nvBfiDO+RFYehEu5dgWTEgie/2PDqpsqBr-6ZaQi1snw=\n",
    "RELAIS-RECOVERY-KEY 1\n\xff\xfe\x00\n",
    huge,
  };
  guint granted = 99;

  public_key = relais_sync_recovery_key_new (good, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (public_key), ==, 43);
  /* Never overwritten. */
  g_assert_null (relais_sync_recovery_key_new (good, &error));
  g_assert_true (g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_EXIST));
  g_clear_error (&error);

  /* A good file gets as far as the server (none here). */
  g_assert_false (relais_sync_recover (fx->a.spool, good, "old", "new", &granted, NULL, &error));
  g_assert_true (error->domain == RELAIS_CLIENT_ERROR);
  g_assert_cmpuint (granted, ==, 0);
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (broken); i++)
    {
      g_assert_true (g_file_set_contents (bad, broken[i], -1, &error));
      g_assert_false (relais_sync_recover (fx->a.spool, bad, "old", "new", NULL, NULL, &error));
      g_assert_true (g_error_matches (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED));
      g_clear_error (&error);
    }
  g_assert_false (relais_sync_recover (fx->a.spool, "/nonexistent/key", "old", "new", NULL, NULL, &error));
  g_assert_true (error->domain == G_FILE_ERROR);
}

/* A revoked device's wipe leaves no vault file and no spool. */
static void
test_wipe (Fixture       *fx,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = add_person (&fx->a, "Blanc", "Rose");
  g_autofree char *key = g_build_filename (fx->a.dir, RELAIS_KEYFILE_NAME, NULL);
  g_autofree char *spool = g_build_filename (fx->a.dir, "spool", NULL);

  seal (&fx->a);
  g_clear_pointer (&fx->a.spool, relais_spool_free);
  g_clear_pointer (&fx->a.vault, relais_vault_close);
  g_assert_true (relais_sync_wipe (fx->a.dir, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (key, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (spool, G_FILE_TEST_EXISTS));
  g_assert_null (relais_vault_open (fx->a.dir, PASS, NULL, &error));
  g_assert_true (g_error_matches (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NO_VAULT));
}

/* Against a real relais-server: enrolment of a first and a second
 * device, the passphrase change that re-wraps the user's keys on the
 * server, and full runs of seal, exchange and apply. */

static char *
server_admin (const char *store,
              const char *noun,
              const char *verb,
              const char *arg1,
              const char *arg2,
              const char *arg3,
              const char *arg4)
{
  const char *argv[] = { g_getenv ("RELAIS_SERVER"), noun, verb, "--store", store, arg1, arg2, arg3, arg4, NULL };
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  int status = 0;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                               &out, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return g_strstrip (out);
}

static RelaisVault *
new_vault (const char *dir,
           const char *passphrase)
{
  g_autoptr(GError) error = NULL;
  RelaisKdfParams params;
  RelaisVault *vault;

  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_create (dir, passphrase, &(RelaisVaultOptions) { .kdf = &params }, NULL, &error);
  g_assert_no_error (error);
  return vault;
}

static void
test_server_enrol_rewrap (void)
{
  g_autofree char *parent = NULL;
  g_autofree char *store = NULL;
  g_autofree char *code = NULL;
  g_autofree char *user_id = NULL;
  g_autofree char *url = NULL;
  g_autofree char *dir1 = NULL;
  g_autofree char *dir2 = NULL;
  g_autofree char *spool1 = NULL;
  g_autofree char *id = NULL;
  g_autoptr(GError) error = NULL;
  const char *server = g_getenv ("RELAIS_SERVER");
  GSubprocess *process;
  RelaisVault *v1, *v2;
  RelaisSyncReport report = { 0 };

  if (server == NULL || !g_file_test (server, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("RELAIS_SERVER is not set");
      return;
    }
  g_setenv ("RELAIS_TEST_FAST_KDF", "1", TRUE);
  parent = relais_test_make_tmpdir ("relais-sync-engine-server-XXXXXX");
  store = g_strdup_printf ("sqlite:%s/server.db", parent);
  code = server_admin (store, "user", "add", "--name", "Ana Test", "--org", "Mission locale");
  g_assert_cmpuint (strlen (code), >, 0);

  {
    const char *argv[] = { server, "serve", "--store", store, "--listen", "127.0.0.1:0", NULL };

    process = relais_test_server_spawn (argv, &url);
    g_assert_true (g_str_has_prefix (url, "http://127.0.0.1:"));
  }

  /* The first device makes the user's keys, wrapped by its passphrase. */
  dir1 = g_build_filename (parent, "one", NULL);
  v1 = new_vault (dir1, "first passphrase");
  id = add_person (&(Device) { .vault = v1 }, "Lambert", "Noé");
  g_assert_true (relais_sync_enroll (v1, url, NULL, code, "first passphrase", "one", NULL, &error));
  g_assert_no_error (error);
  user_id = relais_sync_get_user_id (v1);
  g_assert_nonnull (user_id);
  g_assert_cmpstr (relais_vault_get_author (v1), ==, user_id);
  /* Enrolled once only. */
  g_assert_false (relais_sync_enroll (v1, url, NULL, code, "first passphrase", "one", NULL, &error));
  g_assert_true (g_error_matches (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID));
  g_clear_error (&error);
  g_assert_true (relais_sync_run (v1, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.pushed, ==, 1);

  /* The passphrase changes; until the keys are wrapped again, a second
   * device with the new one is refused with the words that say why. */
  dir2 = g_build_filename (parent, "two", NULL);
  v2 = new_vault (dir2, "new passphrase");
  g_free (code);
  code = server_admin (store, "user", "code", user_id, NULL, NULL, NULL);
  g_assert_false (relais_sync_enroll (v2, url, NULL, code, "new passphrase", "two", NULL, &error));
  g_assert_true (g_error_matches (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_BAD_PASSPHRASE));
  g_assert_nonnull (strstr (error->message, "first device"));
  g_clear_error (&error);
  g_assert_false (relais_sync_is_enrolled (v2));

  g_assert_true (relais_sync_rewrap_user_keys (v1, "new passphrase", NULL, &error));
  g_assert_no_error (error);
  g_free (code);
  code = server_admin (store, "user", "code", user_id, NULL, NULL, NULL);
  g_assert_true (relais_sync_enroll (v2, url, NULL, code, "new passphrase", "two", NULL, &error));
  g_assert_no_error (error);
  {
    g_autofree char *user2 = relais_sync_get_user_id (v2);

    g_assert_cmpstr (user2, ==, user_id);
  }

  /* The second device finds the dossier. */
  memset (&report, 0, sizeof report);
  g_assert_true (relais_sync_run (v2, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.pulled, ==, 1);
  g_assert_cmpuint (report.applied, >, 0);
  {
    g_autofree char *json1 = dossiers_json (&(Device) { .vault = v1 });
    g_autofree char *json2 = dossiers_json (&(Device) { .vault = v2 });

    g_assert_cmpstr (json1, ==, json2);
  }

  /* A spool deleted by hand gets the vault's identity back. */
  spool1 = g_build_filename (dir1, "spool", NULL);
  relais_test_rm_rf (spool1);
  set_city (&(Device) { .vault = v1 }, id, "Rodez");
  memset (&report, 0, sizeof report);
  g_assert_true (relais_sync_run (v1, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.pushed, ==, 1);
  memset (&report, 0, sizeof report);
  g_assert_true (relais_sync_run (v2, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.applied, ==, 1);

  relais_vault_close (v1);
  relais_vault_close (v2);
  relais_test_server_stop (process);
  relais_test_rm_rf (parent);
}

/* The systemd units parse (when systemd-analyze is here) and run the
 * background sync. */
static void
test_units (void)
{
  const char *srcdir = g_getenv ("G_TEST_SRCDIR");
  g_autofree char *service = NULL;
  g_autofree char *timer = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GKeyFile) keys = g_key_file_new ();
  g_autofree char *exec = NULL;

  g_assert_nonnull (srcdir);
  service = g_build_filename (srcdir, "..", "data", "relais-sync.service", NULL);
  timer = g_build_filename (srcdir, "..", "data", "relais-sync.timer", NULL);

  g_assert_true (g_key_file_load_from_file (keys, service, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  {
    g_autofree char *type = g_key_file_get_string (keys, "Service", "Type", NULL);

    g_assert_cmpstr (type, ==, "oneshot");
  }
  exec = g_key_file_get_string (keys, "Service", "ExecStart", &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (exec, "relaisctl sync --background"));
  g_key_file_free (g_steal_pointer (&keys));

  keys = g_key_file_new ();
  g_assert_true (g_key_file_load_from_file (keys, timer, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);
  g_assert_true (g_key_file_has_key (keys, "Timer", "OnCalendar", NULL));
  g_assert_true (g_key_file_has_key (keys, "Timer", "OnBootSec", NULL));
  {
    g_autofree char *persistent = g_key_file_get_string (keys, "Timer", "Persistent", NULL);
    g_autofree char *wanted_by = g_key_file_get_string (keys, "Install", "WantedBy", NULL);

    g_assert_cmpstr (persistent, ==, "true");
    g_assert_cmpstr (wanted_by, ==, "timers.target");
  }

  text = g_find_program_in_path ("systemd-analyze");
  if (text != NULL)
    {
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;
      g_autofree char *service_at = g_strconcat (service, ":", NULL);
      g_autofree char *timer_at = g_strconcat (timer, ":", NULL);
      int status = 0;
      const char *argv[] = { text, "verify", "--man=no", service, timer, NULL };

      /* Its exit status also reflects what the units cannot change here
       * (relaisctl not installed, no user manager in a container); a
       * syntax problem is reported as "FILE:LINE: …". */
      g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                   &out, &err, &status, &error));
      g_assert_no_error (error);
      g_test_message ("systemd-analyze: %s", err);
      g_assert_null (strstr (err, service_at));
      g_assert_null (strstr (err, timer_at));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

#define ADD(path, fn) g_test_add ("/sync-engine/" path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("roundtrip", test_roundtrip);
  ADD ("conflict", test_conflict);
  ADD ("refused", test_refused);
  ADD ("waiting", test_waiting);
  ADD ("reseal-after-crash", test_reseal_after_crash);
  ADD ("split", test_split);
  ADD ("retired", test_retired);
  ADD ("many-dossiers", test_many_dossiers);
  ADD ("hostile-keys", test_hostile_keys);
  ADD ("bundle-cli", test_bundle_cli);
  ADD ("cli-offline", test_cli_offline);
  ADD ("cli-conflicts", test_cli_conflicts);
  ADD ("recovery-key-file", test_recovery_key_file);
  ADD ("wipe", test_wipe);
#undef ADD
  g_test_add_func ("/sync-engine/units", test_units);
  g_test_add_func ("/sync-engine/server-enrol-rewrap", test_server_enrol_rewrap);
  return g_test_run ();
}
