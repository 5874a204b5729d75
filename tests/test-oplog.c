#include "config.h"

#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "relais-test-util.h"
#include "relais-oplog.h"
#include "relais-person.h"

/* Two vaults (two devices) in temporary directories. */
typedef struct {
  char        *dir_a;
  char        *dir_b;
  RelaisVault *a;
  RelaisVault *b;
} Fixture;

static RelaisVault *
make_vault (char **out_dir)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = NULL;
  RelaisKdfParams params;
  RelaisVault *vault;

  parent = g_dir_make_tmp ("relais-oplog-XXXXXX", &error);
  g_assert_no_error (error);
  *out_dir = g_build_filename (parent, "vault", NULL);
  g_clear_pointer (&parent, g_free);

  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_create (*out_dir, "pass",
                               &(RelaisVaultOptions) { .kdf = &params },
                               NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);
  return vault;
}

static void
remove_vault_dir (const char *dir)
{
  g_autofree char *parent = g_path_get_dirname (dir);

  relais_test_rm_rf (parent);
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  fixture->a = make_vault (&fixture->dir_a);
  fixture->b = make_vault (&fixture->dir_b);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_clear_pointer (&fixture->a, relais_vault_close);
  g_clear_pointer (&fixture->b, relais_vault_close);
  remove_vault_dir (fixture->dir_a);
  remove_vault_dir (fixture->dir_b);
  g_free (fixture->dir_a);
  g_free (fixture->dir_b);
}

static void
exchange (Fixture *fixture)
{
  relais_test_send_ops (fixture->a, fixture->b);
  relais_test_send_ops (fixture->b, fixture->a);
}

static guint
count_ops (RelaisVault *vault)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = relais_oplog_list (vault, 0, 0, NULL, &error);

  g_assert_no_error (error);
  return ops->len;
}

static RelaisOp *
last_op (RelaisVault *vault)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = relais_oplog_list (vault, 0, 0, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (ops->len, >, 0);
  return relais_op_copy (g_ptr_array_index (ops, ops->len - 1));
}

static char *
add_person (RelaisVault *vault,
            const char  *last,
            const char  *first,
            const char  *birth,
            const char  *phone)
{
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(GError) error = NULL;
  char *id;

  person->last_name = g_strdup (last);
  person->first_name = g_strdup (first);
  person->birth_date = g_strdup (birth);
  person->phone = g_strdup (phone);
  id = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  return id;
}

static void
edit_phone (RelaisVault *vault,
            const char  *id,
            const char  *phone)
{
  g_autoptr(RelaisPerson) changes = relais_person_new ();
  g_autoptr(GError) error = NULL;

  changes->phone = g_strdup (phone);
  g_assert_true (relais_person_edit (vault, id, changes, &error));
  g_assert_no_error (error);
}

static char *
get_phone (RelaisVault *vault,
           const char  *id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_get (vault, id, &error);

  g_assert_no_error (error);
  g_assert_nonnull (person);
  return g_strdup (person->phone);
}

static GPtrArray *
conflicts_of (RelaisVault *vault,
              const char  *dossier)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *conflicts = relais_oplog_conflicts (vault, dossier, &error);

  g_assert_no_error (error);
  g_assert_nonnull (conflicts);
  return conflicts;
}

static guint
n_conflicts (RelaisVault *vault,
             const char  *dossier)
{
  g_autoptr(GPtrArray) conflicts = conflicts_of (vault, dossier);

  return conflicts->len;
}

static void
test_write (Fixture       *fixture,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(RelaisOp) first = NULL;
  g_autoptr(RelaisOp) second = NULL;
  g_autofree char *id = NULL;
  g_autofree char *phone = NULL;

  id = add_person (fixture->a, "Quenouillère", "Hélène", "03/02/1981", "06 12 34 56 78");
  g_assert_cmpuint (count_ops (fixture->a), ==, 4);

  person = relais_person_get (fixture->a, id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (person->id, ==, id);
  g_assert_cmpstr (person->last_name, ==, "Quenouillère");
  g_assert_cmpstr (person->first_name, ==, "Hélène");
  g_assert_cmpstr (person->birth_date, ==, "1981-02-03");
  g_assert_cmpstr (person->phone, ==, "0612345678");
  g_assert_null (person->email);

  first = last_op (fixture->a);
  g_assert_cmpstr (first->dossier, ==, id);
  g_assert_cmpstr (first->entity, ==, "person");
  g_assert_cmpstr (first->entity_id, ==, id);
  g_assert_cmpstr (first->field, ==, "phone");
  g_assert_cmpstr (first->value, ==, "0612345678");
  g_assert_cmpstr (first->device, ==, relais_vault_get_device_id (fixture->a));
  g_assert_null (first->parents);

  /* The same value again, even spelt differently, writes nothing. */
  edit_phone (fixture->a, id, "06.12.34.56.78");
  g_assert_cmpuint (count_ops (fixture->a), ==, 4);

  edit_phone (fixture->a, id, "0700000000");
  g_assert_cmpuint (count_ops (fixture->a), ==, 5);
  second = last_op (fixture->a);
  g_assert_cmpstr (second->parents, ==, first->id);
  g_assert_cmpuint (second->hlc, >, first->hlc);
  phone = get_phone (fixture->a, id);
  g_assert_cmpstr (phone, ==, "0700000000");

  /* "" clears an optional field: an op with a NULL value. */
  edit_phone (fixture->a, id, "");
  g_assert_cmpuint (count_ops (fixture->a), ==, 6);
  g_clear_pointer (&phone, g_free);
  phone = get_phone (fixture->a, id);
  g_assert_null (phone);
  g_clear_pointer (&second, relais_op_free);
  second = last_op (fixture->a);
  g_assert_null (second->value);

  /* Clearing what is already empty writes nothing either, whether it was
   * cleared or never set. */
  edit_phone (fixture->a, id, "");
  g_assert_cmpuint (count_ops (fixture->a), ==, 6);
  {
    g_autoptr(RelaisPerson) changes = relais_person_new ();

    changes->email = g_strdup ("");
    changes->city = g_strdup ("  ");
    g_assert_true (relais_person_edit (fixture->a, id, changes, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (count_ops (fixture->a), ==, 6);
  }
}

static void
test_validation (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(RelaisPerson) changes = relais_person_new ();
  g_autofree char *id = NULL;
  char *bad_id;

  person->last_name = g_strdup ("Martin");
  person->first_name = g_strdup ("Lucie");
  bad_id = relais_person_add (fixture->a, person, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_assert_null (bad_id);
  g_assert_null (strstr (error->message, "Martin"));
  g_clear_error (&error);

  person->birth_date = g_strdup ("31/02/1990");
  bad_id = relais_person_add (fixture->a, person, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_assert_null (bad_id);
  g_assert_null (strstr (error->message, "31/02"));
  g_clear_error (&error);
  g_assert_cmpuint (count_ops (fixture->a), ==, 0);

  id = add_person (fixture->a, "Martin", "Lucie", "1990-02-28", NULL);

  changes->last_name = g_strdup ("");
  g_assert_false (relais_person_edit (fixture->a, id, changes, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_clear_error (&error);
  g_clear_pointer (&changes->last_name, g_free);

  changes->email = g_strdup ("not an address");
  g_assert_false (relais_person_edit (fixture->a, id, changes, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_assert_null (strstr (error->message, "not an address"));
  g_clear_error (&error);

  g_assert_false (relais_person_edit (fixture->a, "no-such-id", changes, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "no-such-id"));
  g_clear_error (&error);

  g_assert_null (relais_person_get (fixture->a, "no-such-id", &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Nothing of the refused edits reached the log. */
  g_assert_cmpuint (count_ops (fixture->a), ==, 3);
}

static void
test_apply_idempotent (Fixture       *fixture,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(GPtrArray) ops = NULL;
  g_autofree char *id = NULL;
  g_autofree char *phone = NULL;
  gint64 last_seq = -1;

  id = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0102030405");
  edit_phone (fixture->a, id, "0203040506");

  g_assert_cmpuint (relais_test_send_ops (fixture->a, fixture->b), ==, 5);
  g_assert_cmpuint (relais_test_send_ops (fixture->a, fixture->b), ==, 0);
  g_assert_cmpuint (count_ops (fixture->b), ==, 5);
  /* B's copies go back to A as duplicates. */
  g_assert_cmpuint (relais_test_send_ops (fixture->b, fixture->a), ==, 0);
  g_assert_cmpuint (count_ops (fixture->a), ==, 5);

  person = relais_person_get (fixture->b, id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (person->last_name, ==, "Dupont");
  g_assert_cmpstr (person->phone, ==, "0203040506");
  g_assert_cmpuint (n_conflicts (fixture->b, NULL), ==, 0);

  /* Paging through the log. */
  ops = relais_oplog_list (fixture->b, 0, 2, &last_seq, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ops->len, ==, 2);
  g_clear_pointer (&ops, g_ptr_array_unref);
  ops = relais_oplog_list (fixture->b, last_seq, 0, &last_seq, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ops->len, ==, 3);
  g_clear_pointer (&ops, g_ptr_array_unref);
  ops = relais_oplog_list (fixture->b, last_seq, 0, &last_seq, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ops->len, ==, 0);

  /* B's next write follows A's clock: it supersedes A's value. */
  edit_phone (fixture->b, id, "0304050607");
  relais_test_send_ops (fixture->b, fixture->a);
  phone = get_phone (fixture->a, id);
  g_assert_cmpstr (phone, ==, "0304050607");
  g_assert_cmpuint (n_conflicts (fixture->a, NULL), ==, 0);
}

static void
test_concurrent (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(GPtrArray) conflicts_a = NULL;
  g_autoptr(GPtrArray) conflicts_b = NULL;
  g_autoptr(RelaisOp) op_a = NULL;
  g_autoptr(RelaisOp) op_b = NULL;
  g_autofree char *id = NULL;
  g_autofree char *phone_a = NULL;
  g_autofree char *phone_b = NULL;
  RelaisConflict *conflict;
  RelaisOp *winner;
  RelaisOp *loser;
  const RelaisOp *expected;

  id = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0102030405");
  exchange (fixture);

  /* Both edit offline, neither seeing the other. */
  edit_phone (fixture->a, id, "0611111111");
  edit_phone (fixture->b, id, "0622222222");
  op_a = last_op (fixture->a);
  op_b = last_op (fixture->b);
  g_assert_cmpstr (op_a->parents, ==, op_b->parents);
  exchange (fixture);

  conflicts_a = conflicts_of (fixture->a, id);
  conflicts_b = conflicts_of (fixture->b, NULL);
  g_assert_cmpuint (conflicts_a->len, ==, 1);
  g_assert_cmpuint (conflicts_b->len, ==, 1);

  conflict = g_ptr_array_index (conflicts_a, 0);
  g_assert_cmpstr (conflict->entity, ==, "person");
  g_assert_cmpstr (conflict->entity_id, ==, id);
  g_assert_cmpstr (conflict->dossier, ==, id);
  g_assert_cmpstr (conflict->field, ==, "phone");
  g_assert_cmpuint (conflict->values->len, ==, 2);
  winner = g_ptr_array_index (conflict->values, 0);
  loser = g_ptr_array_index (conflict->values, 1);

  /* The greatest (hlc, device) wins, on both sides. */
  if (op_a->hlc > op_b->hlc ||
      (op_a->hlc == op_b->hlc && strcmp (op_a->device, op_b->device) > 0))
    expected = op_a;
  else
    expected = op_b;
  g_assert_cmpstr (winner->id, ==, expected->id);
  g_assert_cmpstr (loser->id, ==, expected == op_a ? op_b->id : op_a->id);

  conflict = g_ptr_array_index (conflicts_b, 0);
  g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (conflict->values, 0))->id, ==, expected->id);
  g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (conflict->values, 1))->id, ==, loser->id);

  phone_a = get_phone (fixture->a, id);
  phone_b = get_phone (fixture->b, id);
  g_assert_cmpstr (phone_a, ==, expected->value);
  g_assert_cmpstr (phone_b, ==, expected->value);

  /* Other dossiers have no conflict. */
  g_assert_cmpuint (n_conflicts (fixture->a, "another-dossier"), ==, 0);
}

static void
test_sequential (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *phone_a = NULL;
  g_autofree char *phone_b = NULL;

  id = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0102030405");
  exchange (fixture);
  edit_phone (fixture->a, id, "0611111111");
  exchange (fixture);
  /* B saw A's value before writing its own: no conflict, B's value. */
  edit_phone (fixture->b, id, "0622222222");
  exchange (fixture);

  g_assert_cmpuint (n_conflicts (fixture->a, NULL), ==, 0);
  g_assert_cmpuint (n_conflicts (fixture->b, NULL), ==, 0);
  phone_a = get_phone (fixture->a, id);
  phone_b = get_phone (fixture->b, id);
  g_assert_cmpstr (phone_a, ==, "0622222222");
  g_assert_cmpstr (phone_b, ==, "0622222222");
}

static void
test_resolve (Fixture       *fixture,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autofree char *id = NULL;
  g_autofree char *loser_value = NULL;
  g_autofree char *phone_a = NULL;
  g_autofree char *phone_b = NULL;
  g_autoptr(RelaisOp) resolution = NULL;
  RelaisConflict *conflict;
  guint n_ops;

  id = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0102030405");
  exchange (fixture);
  edit_phone (fixture->a, id, "0611111111");
  edit_phone (fixture->b, id, "0622222222");
  exchange (fixture);

  conflicts = conflicts_of (fixture->b, id);
  g_assert_cmpuint (conflicts->len, ==, 1);
  conflict = g_ptr_array_index (conflicts, 0);
  loser_value = g_strdup (((RelaisOp *) g_ptr_array_index (conflict->values, 1))->value);

  /* A person on B picks the value that had lost. */
  n_ops = count_ops (fixture->b);
  g_assert_true (relais_oplog_resolve (fixture->b, "person", id, "phone", loser_value, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_ops (fixture->b), ==, n_ops + 1);
  resolution = last_op (fixture->b);
  g_assert_nonnull (strstr (resolution->parents, " "));
  g_assert_cmpuint (n_conflicts (fixture->b, NULL), ==, 0);
  g_assert_cmpuint (n_conflicts (fixture->a, NULL), ==, 1);

  exchange (fixture);
  g_assert_cmpuint (n_conflicts (fixture->a, NULL), ==, 0);
  g_assert_cmpuint (n_conflicts (fixture->b, NULL), ==, 0);
  phone_a = get_phone (fixture->a, id);
  phone_b = get_phone (fixture->b, id);
  g_assert_cmpstr (phone_a, ==, loser_value);
  g_assert_cmpstr (phone_b, ==, loser_value);

  /* Nothing left to resolve: no new op. */
  n_ops = count_ops (fixture->a);
  g_assert_true (relais_oplog_resolve (fixture->a, "person", id, "phone", loser_value, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_ops (fixture->a), ==, n_ops);

  g_assert_false (relais_oplog_resolve (fixture->a, "person", id, "email", "x@example.fr", &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND);
}

/* Three writes in a chain on A reach B newest first: each op arrives before
 * its parent. */
static void
test_out_of_order (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = NULL;
  g_autofree char *id = NULL;
  g_autofree char *phone = NULL;

  id = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0100000001");
  edit_phone (fixture->a, id, "0100000002");
  edit_phone (fixture->a, id, "0100000003");

  ops = relais_oplog_list (fixture->a, 0, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ops->len, ==, 6);

  g_assert_true (relais_vault_begin (fixture->b, &error));
  g_assert_no_error (error);
  for (guint i = ops->len; i > 0; i--)
    {
      RelaisOp *op = g_ptr_array_index (ops, i - 1);
      gboolean is_new = FALSE;

      g_assert_true (relais_oplog_apply (fixture->b, op, &is_new, &error));
      g_assert_no_error (error);
      g_assert_true (is_new);

      /* The newest value shows from the start and older ones never
       * replace it, nor show as conflicts. */
      if (strcmp (op->field, "phone") == 0)
        {
          g_clear_pointer (&phone, g_free);
          phone = get_phone (fixture->b, id);
          g_assert_cmpstr (phone, ==, "0100000003");
          g_assert_cmpuint (n_conflicts (fixture->b, NULL), ==, 0);
        }
    }
  g_assert_true (relais_vault_commit (fixture->b, &error));
  g_assert_no_error (error);

  g_clear_pointer (&phone, g_free);
  phone = get_phone (fixture->b, id);
  g_assert_cmpstr (phone, ==, "0100000003");
  g_assert_cmpuint (n_conflicts (fixture->b, NULL), ==, 0);

  /* B's next edit has exactly one parent: the newest. */
  edit_phone (fixture->b, id, "0100000004");
  {
    g_autoptr(RelaisOp) op = last_op (fixture->b);
    RelaisOp *newest = g_ptr_array_index (ops, ops->len - 1);

    g_assert_cmpstr (op->parents, ==, newest->id);
  }
}

static void
test_malformed (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  RelaisOp op = {
    .id = (char *) "op 1",
    .dossier = (char *) "d",
    .entity = (char *) "person",
    .entity_id = (char *) "d",
    .field = (char *) "phone",
    .value = (char *) "0102030405",
    .hlc = 1,
    .author = (char *) "someone",
    .device = (char *) "dev",
  };
  gboolean is_new = TRUE;

  g_assert_true (relais_vault_begin (fixture->a, &error));
  g_assert_no_error (error);

  /* A space would make the id impossible to name as a parent. */
  g_assert_false (relais_oplog_apply (fixture->a, &op, &is_new, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_assert_false (is_new);
  g_clear_error (&error);

  op.id = (char *) "op-1";
  op.device = NULL;
  g_assert_false (relais_oplog_apply (fixture->a, &op, &is_new, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_clear_error (&error);

  op.device = (char *) "dev";
  op.hlc = G_MAXUINT64;
  g_assert_false (relais_oplog_apply (fixture->a, &op, &is_new, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_clear_error (&error);

  op.value = (char *) "\xff\xfe";
  op.hlc = 1;
  g_assert_false (relais_oplog_apply (fixture->a, &op, &is_new, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
  g_clear_error (&error);

  /* An entity this version does not know is kept (and synced) but not
   * projected. */
  op.value = (char *) "x";
  op.entity = (char *) "appointment-v9";
  g_assert_true (relais_oplog_apply (fixture->a, &op, &is_new, &error));
  g_assert_no_error (error);
  g_assert_true (is_new);

  relais_vault_rollback (fixture->a);
}

static void
test_search (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) found = NULL;
  g_autofree char *helene = NULL;
  g_autofree char *jean = NULL;
  g_autofree char *emile = NULL;
  g_autofree char *other = NULL;
  g_autofree char *identity = NULL;

  helene = add_person (fixture->a, "Quenouillère", "Hélène", "1981-02-03", NULL);
  jean = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", NULL);
  emile = add_person (fixture->a, "Zola", "Émile", "1940-04-02", NULL);
  other = add_person (fixture->a, "Dupont", "Jean", "1969-05-05", NULL);

  found = relais_person_search (fixture->a, "quenouillere", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 1);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 0))->id, ==, helene);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 0))->last_name, ==, "Quenouillère");
  g_clear_pointer (&found, g_ptr_array_unref);

  found = relais_person_search (fixture->a, "ELE", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 1);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 0))->first_name, ==, "Hélène");
  g_clear_pointer (&found, g_ptr_array_unref);

  found = relais_person_search (fixture->a, "hélène QUEN", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 1);
  g_clear_pointer (&found, g_ptr_array_unref);

  found = relais_person_search (fixture->a, "emile", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 1);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 0))->id, ==, emile);
  g_clear_pointer (&found, g_ptr_array_unref);

  /* % and _ are letters like any other, not patterns. */
  found = relais_person_search (fixture->a, "%", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 0);
  g_clear_pointer (&found, g_ptr_array_unref);
  found = relais_person_search (fixture->a, "d_pont", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 0);
  g_clear_pointer (&found, g_ptr_array_unref);

  /* List order: last name, first name, birth date. */
  found = relais_person_search (fixture->a, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 4);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 0))->id, ==, other);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 1))->id, ==, jean);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 2))->id, ==, helene);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 3))->id, ==, emile);
  g_clear_pointer (&found, g_ptr_array_unref);

  found = relais_person_search (fixture->a, "dupont", 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 1);
  g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (found, 0))->id, ==, other);
  g_clear_pointer (&found, g_ptr_array_unref);

  identity = relais_person_find_identity (fixture->a, "QUENOUILLERE", " helene ", "03/02/1981", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (identity, ==, helene);
  g_clear_pointer (&identity, g_free);
  identity = relais_person_find_identity (fixture->a, "Quenouillère", "Hélène", "1981-02-04", &error);
  g_assert_no_error (error);
  g_assert_null (identity);
}

static JsonObject *
find_dossier (JsonArray  *dossiers,
              const char *id)
{
  for (guint i = 0; i < json_array_get_length (dossiers); i++)
    {
      JsonObject *dossier = json_array_get_object_element (dossiers, i);

      if (g_strcmp0 (json_object_get_string_member (dossier, "id"), id) == 0)
        return dossier;
    }
  return NULL;
}

static void
test_export (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) full = relais_person_new ();
  g_autoptr(RelaisPerson) stored = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *id = NULL;
  g_autofree char *other = NULL;
  g_autofree char *text = NULL;
  JsonObject *object;
  JsonObject *dossier;
  JsonArray *dossiers;
  JsonArray *conflicts;
  JsonArray *values;

  full->last_name = g_strdup ("Quenouillère");
  full->first_name = g_strdup ("Hélène");
  full->birth_date = g_strdup ("1981-02-03");
  full->phone = g_strdup ("0612345678");
  full->email = g_strdup ("helene@example.fr");
  full->postal_code = g_strdup ("01000");
  full->city = g_strdup ("Bourg-en-Bresse");
  id = relais_person_add (fixture->a, full, &error);
  g_assert_no_error (error);
  other = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0102030405");

  /* A conflict on Jean's phone. */
  exchange (fixture);
  edit_phone (fixture->a, other, "0611111111");
  edit_phone (fixture->b, other, "0622222222");
  exchange (fixture);

  root = relais_vault_export_json (fixture->a, &error);
  g_assert_no_error (error);
  g_assert_nonnull (root);
  text = json_to_string (root, FALSE);
  g_assert_nonnull (strstr (text, "Quenouill\xc3\xa8re"));

  object = json_node_get_object (root);
  g_assert_cmpstr (json_object_get_string_member (object, "format"), ==, "relais-export");
  g_assert_cmpint (json_object_get_int_member (object, "version"), ==, 1);
  g_assert_nonnull (json_object_get_string_member (object, "exported_at"));
  dossiers = json_object_get_array_member (object, "dossiers");
  g_assert_cmpuint (json_array_get_length (dossiers), ==, 2);

  stored = relais_person_get (fixture->a, id, &error);
  g_assert_no_error (error);
  dossier = find_dossier (dossiers, id);
  g_assert_nonnull (dossier);
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      const char *field = relais_person_fields[i];

      g_assert_true (json_object_has_member (dossier, field));
      g_assert_cmpstr (json_object_get_string_member (dossier, field), ==,
                       *relais_person_field_ptr (stored, i));
    }
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (dossier, "conflicts")), ==, 0);

  dossier = find_dossier (dossiers, other);
  g_assert_nonnull (dossier);
  g_assert_true (json_object_get_null_member (dossier, "email"));
  conflicts = json_object_get_array_member (dossier, "conflicts");
  g_assert_cmpuint (json_array_get_length (conflicts), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (conflicts, 0), "field"),
                   ==, "phone");
  values = json_object_get_array_member (json_array_get_object_element (conflicts, 0), "values");
  g_assert_cmpuint (json_array_get_length (values), ==, 2);
  /* The winner first, and the loser is there too. */
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (values, 0), "value"),
                   ==, json_object_get_string_member (dossier, "phone"));
  {
    const char *v0 = json_object_get_string_member (json_array_get_object_element (values, 0), "value");
    const char *v1 = json_object_get_string_member (json_array_get_object_element (values, 1), "value");

    g_assert_true ((g_strcmp0 (v0, "0611111111") == 0 && g_strcmp0 (v1, "0622222222") == 0) ||
                   (g_strcmp0 (v0, "0622222222") == 0 && g_strcmp0 (v1, "0611111111") == 0));
  }
  for (guint i = 0; i < 2; i++)
    {
      JsonObject *value = json_array_get_object_element (values, i);

      g_assert_nonnull (json_object_get_string_member (value, "author"));
      g_assert_nonnull (json_object_get_string_member (value, "device"));
      g_assert_nonnull (json_object_get_string_member (value, "op"));
      g_assert_cmpint (json_object_get_int_member (value, "hlc"), >, 0);
    }

  /* One dossier alone. */
  g_clear_pointer (&root, json_node_unref);
  root = relais_person_to_json (fixture->a, id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (root), "city"),
                   ==, "Bourg-en-Bresse");
}

/* Closing drops the statement cache; a reopened vault (perhaps at the same
 * connection address) prepares afresh and finds everything again. */
static void
test_reopen (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *phone = NULL;
  g_autofree char *device = NULL;
  RelaisKdfParams params;

  id = add_person (fixture->a, "Dupont", "Jean", "1970-01-01", "0102030405");
  device = g_strdup (relais_vault_get_device_id (fixture->a));
  g_clear_pointer (&fixture->a, relais_vault_close);

  relais_kdf_params_insecure_for_tests (&params);
  fixture->a = relais_vault_open (fixture->dir_a, "pass",
                                  &(RelaisVaultOptions) { .kdf = &params }, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->a);
  g_assert_cmpstr (relais_vault_get_device_id (fixture->a), ==, device);

  phone = get_phone (fixture->a, id);
  g_assert_cmpstr (phone, ==, "0102030405");
  edit_phone (fixture->a, id, "0203040506");
  g_assert_cmpuint (count_ops (fixture->a), ==, 5);
}

/* Every row of what the apply derives from the ops, as text. */
static char *
dump_derived (RelaisVault *vault)
{
  static const char * const queries[] = {
    "SELECT id, head FROM op ORDER BY id",
    "SELECT id, dossier, text, author, updated_hlc FROM note ORDER BY id",
    "SELECT id, last_name, fold_last, updated_hlc FROM person ORDER BY id",
    "SELECT entity, entity_id, field, dossier FROM conflict ORDER BY 1, 2, 3",
    "SELECT dossier, hlc FROM dossier_activity ORDER BY dossier",
    "SELECT name, person FROM person_search ORDER BY person",
  };
  GString *out = g_string_new (NULL);
  sqlite3 *db = relais_vault_get_db (vault);

  for (guint q = 0; q < G_N_ELEMENTS (queries); q++)
    {
      sqlite3_stmt *stmt = NULL;

      g_assert_cmpint (sqlite3_prepare_v2 (db, queries[q], -1, &stmt, NULL), ==, SQLITE_OK);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        {
          for (int c = 0; c < sqlite3_column_count (stmt); c++)
            {
              const char *text = (const char *) sqlite3_column_text (stmt, c);

              g_string_append_printf (out, "%s|", text != NULL ? text : "NULL");
            }
          g_string_append_c (out, '\n');
        }
      sqlite3_finalize (stmt);
      g_string_append (out, "--\n");
    }
  return g_string_free (out, FALSE);
}

/* relais_oplog_apply_batch() ends where relais_oplog_apply() one op after
 * the other does, also for ops honest devices never make (parents in
 * another field, a field no column holds, a parent that arrives after its
 * child, one batch across dossiers); a malformed op anywhere in a batch
 * stores nothing of it. */
static void
test_apply_batch (Fixture       *fixture,
                  gconstpointer  data)
{
#define OP(id, dossier, entity, entity_id, field, value, hlc, device, parents) \
  { (char *) id, (char *) dossier, (char *) entity, (char *) entity_id, (char *) field, \
    (char *) value, hlc, (char *) "Author", (char *) device, (char *) parents }
  RelaisOp ops[] = {
    OP ("o01", "D1", "note", "N1", "text", "a", 10, "d1", NULL),
    OP ("o02", "D1", "note", "N1", "text", "b", 11, "d2", NULL),
    OP ("o03", "D1", "note", "N1", "author", "x", 12, "d1", "o01"),
    OP ("o04", "D2", "note", "N2", "text", "c", 13, "d1", NULL),
    OP ("o05", "D1", "note", "N1", "mystery", "z", 14, "d1", NULL),
    OP ("o06", "D1", "note", "N1", "mystery", "y", 15, "d2", NULL),
    OP ("o02", "D1", "note", "N1", "text", "b", 11, "d2", NULL),
    OP ("o07", "D1", "person", "D1", "last_name", "Lefèvre", 16, "d1", NULL),
    OP ("o08", "D2", "note", "N3", "text", "t", 17, "d1", "o09"),
    OP ("o09", "D2", "note", "N3", "text", "s", 9, "d2", NULL),
    OP ("o10", "D3", "note", "N4", "text", "u", 18, "d2", "o04"),
    OP ("o11", "D1", "person", "D1", "first_name", "Zoé", 19, "d2", NULL),
    OP ("o12", "D1", "person", "D1", "last_name", "Dupont", 20, "d2", "o07"),
    OP ("o13", "D1", "widget", "W1", "size", "9", 21, "d1", NULL),
    OP ("o14", "D1", "note", "N1", "text", "d", 22, "d1", "o02"),
  };
  RelaisOp bad = OP ("o99", "D1", "note", "N1", "text", "e", 23, "d1 with spaces", NULL);
#undef OP
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) batch = g_ptr_array_new ();
  g_autofree char *one_by_one = NULL;
  g_autofree char *batched = NULL;
  guint n_new = 0;
  guint expect_new = 0;

  g_assert_true (relais_vault_begin (fixture->a, &error));
  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    {
      gboolean is_new = FALSE;

      g_assert_true (relais_oplog_apply (fixture->a, &ops[i], &is_new, &error));
      g_assert_no_error (error);
      expect_new += is_new;
    }
  g_assert_true (relais_vault_commit (fixture->a, &error));
  g_assert_cmpuint (expect_new, ==, G_N_ELEMENTS (ops) - 1);

  /* In two batches, the second starting mid-record. */
  g_assert_true (relais_vault_begin (fixture->b, &error));
  for (guint i = 0; i < 9; i++)
    g_ptr_array_add (batch, &ops[i]);
  g_assert_true (relais_oplog_apply_batch (fixture->b, batch, &n_new, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n_new, ==, 8);
  g_ptr_array_set_size (batch, 0);
  for (guint i = 6; i < G_N_ELEMENTS (ops); i++)
    g_ptr_array_add (batch, &ops[i]);
  g_assert_true (relais_oplog_apply_batch (fixture->b, batch, &n_new, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n_new, ==, expect_new - 8);
  g_assert_true (relais_vault_commit (fixture->b, &error));

  one_by_one = dump_derived (fixture->a);
  batched = dump_derived (fixture->b);
  g_assert_cmpstr (batched, ==, one_by_one);
  /* The cases are there: a conflict in a column and one in no column. */
  g_assert_nonnull (strstr (batched, "note|N1|mystery|D1|"));
  g_assert_nonnull (strstr (batched, "Dupont"));

  /* A malformed op after good new ones: nothing of the batch stays. */
  {
    RelaisOp fresh = ops[0];

    fresh.id = (char *) "o50";
    fresh.hlc = 30;
    g_ptr_array_set_size (batch, 0);
    g_ptr_array_add (batch, &fresh);
    g_ptr_array_add (batch, &bad);
    g_assert_true (relais_vault_begin (fixture->b, &error));
    g_assert_false (relais_oplog_apply_batch (fixture->b, batch, &n_new, &error));
    g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID);
    g_assert_true (relais_vault_commit (fixture->b, NULL));
    g_clear_pointer (&batched, g_free);
    batched = dump_derived (fixture->b);
    g_assert_cmpstr (batched, ==, one_by_one);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("/oplog/write", test_write);
  ADD ("/oplog/validation", test_validation);
  ADD ("/oplog/apply-idempotent", test_apply_idempotent);
  ADD ("/oplog/concurrent", test_concurrent);
  ADD ("/oplog/sequential", test_sequential);
  ADD ("/oplog/resolve", test_resolve);
  ADD ("/oplog/out-of-order", test_out_of_order);
  ADD ("/oplog/malformed", test_malformed);
  ADD ("/oplog/search", test_search);
  ADD ("/oplog/export", test_export);
  ADD ("/oplog/reopen", test_reopen);
  ADD ("/oplog/apply-batch", test_apply_batch);

#undef ADD

  return g_test_run ();
}
