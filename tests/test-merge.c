#include "config.h"

#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "relais-test-util.h"
#include "relais-oplog.h"
#include "relais-person.h"

/* Randomized convergence: three replicas edit a few dossiers, swap random
 * subsets of their ops in random orders (duplicates included), and must end
 * identical once everything is exchanged.  Beside the vaults, the test keeps
 * its own model: the set of ops each replica holds.  From a set alone it
 * computes every field's heads and winner, and checks the vaults against
 * that, so the incremental bookkeeping (head flags, conflict rows,
 * projections) is checked against the definition, not against itself.
 *
 * RELAIS_MERGE_SEED=N runs one more seed, to replay a failure. */

#define N_REPLICAS   3
#define N_STEPS      600
#define MAX_DOSSIERS 5

typedef struct {
  RelaisVault *vault;
  char        *dir;
  GHashTable  *known;      /* op id → RelaisOp (borrowed from Sim.universe) */
  gint64       last_seq;   /* local seq up to which ops are in @known */
} Replica;

typedef struct {
  GRand      *rand;
  Replica     replicas[N_REPLICAS];
  GHashTable *universe;    /* op id → RelaisOp, every op ever made */
  GPtrArray  *dossiers;    /* char * */
  guint       max_conflicts;
  guint       n_resolved;
  guint       n_applied;
} Sim;

/* Values already in normalised form, so the model can compare them with
 * what the vault stores.  "" clears an optional field. */
static const char * const pool_last[] = { "Dupont", "Quenouillère", "N'Diaye", "Lefèvre" };
static const char * const pool_first[] = { "Jean", "Hélène", "Aïcha", "Zoé" };
static const char * const pool_birth[] = { "1980-01-01", "1975-12-31", "2001-06-15" };
static const char * const pool_phone[] = { "0102030405", "0611111111", "+33612345678", "" };
static const char * const pool_email[] = { "a@example.fr", "b@example.org", "" };
static const char * const pool_postal[] = { "01000", "75011", "" };
static const char * const pool_city[] = { "Bourg-en-Bresse", "Paris", "Saint-Étienne", "" };

typedef struct {
  const char * const *values;
  guint               n;
} Pool;

static const Pool pools[RELAIS_PERSON_N_FIELDS] = {
  { pool_last, G_N_ELEMENTS (pool_last) },
  { pool_first, G_N_ELEMENTS (pool_first) },
  { pool_birth, G_N_ELEMENTS (pool_birth) },
  { pool_phone, G_N_ELEMENTS (pool_phone) },
  { pool_email, G_N_ELEMENTS (pool_email) },
  { pool_postal, G_N_ELEMENTS (pool_postal) },
  { pool_city, G_N_ELEMENTS (pool_city) },
};

static void
replica_open (Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = NULL;
  RelaisKdfParams params;

  parent = g_dir_make_tmp ("relais-merge-XXXXXX", &error);
  g_assert_no_error (error);
  replica->dir = g_build_filename (parent, "vault", NULL);

  relais_kdf_params_insecure_for_tests (&params);
  replica->vault = relais_vault_create (replica->dir, "pass",
                                        &(RelaisVaultOptions) { .kdf = &params },
                                        NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (replica->vault);
  replica->known = g_hash_table_new (g_str_hash, g_str_equal);
  replica->last_seq = 0;
}

static void
replica_close (Replica *replica)
{
  g_autofree char *parent = g_path_get_dirname (replica->dir);

  g_clear_pointer (&replica->vault, relais_vault_close);
  g_clear_pointer (&replica->known, g_hash_table_unref);
  relais_test_rm_rf (parent);
  g_clear_pointer (&replica->dir, g_free);
}

/* Records the ops @replica stored since the last call.  Returns those
 * that no replica had before (made by this one), element type RelaisOp
 * (borrowed). */
static GPtrArray *
collect (Sim     *sim,
         Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = NULL;
  GPtrArray *made = g_ptr_array_new ();

  ops = relais_oplog_list (replica->vault, replica->last_seq, 0, &replica->last_seq, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < ops->len; i++)
    {
      RelaisOp *op = g_ptr_array_index (ops, i);
      RelaisOp *stored = g_hash_table_lookup (sim->universe, op->id);

      if (stored == NULL)
        {
          stored = relais_op_copy (op);
          g_hash_table_insert (sim->universe, stored->id, stored);
          g_ptr_array_add (made, stored);
        }
      else
        {
          /* The same id always carries the same op. */
          g_assert_cmpstr (stored->value, ==, op->value);
          g_assert_cmpstr (stored->field, ==, op->field);
          g_assert_cmpuint (stored->hlc, ==, op->hlc);
          g_assert_cmpstr (stored->parents, ==, op->parents);
        }
      /* A vault stores an op once. */
      g_assert_false (g_hash_table_contains (replica->known, op->id));
      g_hash_table_insert (replica->known, stored->id, stored);
    }

  return made;
}

/* ---- The model: heads and winners computed from a set of ops ---------- */

static char *
field_key (const RelaisOp *op)
{
  return g_strconcat (op->entity, "\x1f", op->entity_id, "\x1f", op->field, NULL);
}

static gboolean
op_beats (const RelaisOp *a,
          const RelaisOp *b)
{
  int c;

  if (a->hlc != b->hlc)
    return a->hlc > b->hlc;
  c = strcmp (a->device, b->device);
  if (c != 0)
    return c > 0;
  return strcmp (a->id, b->id) > 0;
}

/* field key → GPtrArray of heads (RelaisOp, borrowed), the winner first. */
static GHashTable *
model_heads (GHashTable *ops)
{
  g_autoptr(GHashTable) named = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTable *heads = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                             (GDestroyNotify) g_ptr_array_unref);
  GHashTableIter iter;
  RelaisOp *op;

  g_hash_table_iter_init (&iter, ops);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &op))
    {
      g_auto(GStrv) parents = NULL;

      if (op->parents == NULL)
        continue;
      parents = g_strsplit (op->parents, " ", -1);
      for (guint i = 0; parents[i] != NULL; i++)
        g_hash_table_add (named, g_strdup (parents[i]));
    }

  g_hash_table_iter_init (&iter, ops);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &op))
    {
      char *key;
      GPtrArray *list;

      if (g_hash_table_contains (named, op->id))
        continue;
      key = field_key (op);
      list = g_hash_table_lookup (heads, key);
      if (list == NULL)
        {
          list = g_ptr_array_new ();
          g_hash_table_insert (heads, key, list);
        }
      else
        g_free (key);

      if (list->len > 0 && op_beats (op, g_ptr_array_index (list, 0)))
        g_ptr_array_insert (list, 0, op);
      else
        g_ptr_array_add (list, op);
    }

  return heads;
}

static GPtrArray *
model_heads_of (GHashTable *ops,
                const char *entity_id,
                const char *field)
{
  g_autoptr(GHashTable) heads = model_heads (ops);
  g_autofree char *key = g_strconcat ("person", "\x1f", entity_id, "\x1f", field, NULL);
  GPtrArray *list = g_hash_table_lookup (heads, key);
  GPtrArray *copy = g_ptr_array_new ();

  for (guint i = 0; list != NULL && i < list->len; i++)
    g_ptr_array_add (copy, g_ptr_array_index (list, i));
  return copy;
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* Ids of @ops (RelaisOp), sorted, space-separated: comparable sets. */
static char *
id_set (GPtrArray *ops)
{
  g_autoptr(GPtrArray) ids = g_ptr_array_new ();

  for (guint i = 0; i < ops->len; i++)
    g_ptr_array_add (ids, ((RelaisOp *) g_ptr_array_index (ops, i))->id);
  g_ptr_array_sort (ids, compare_strings);
  g_ptr_array_add (ids, NULL);
  return g_strjoinv (" ", (char **) ids->pdata);
}

static char *
parent_set (const char *parents)
{
  g_auto(GStrv) ids = NULL;

  if (parents == NULL)
    return g_strdup ("");
  ids = g_strsplit (parents, " ", -1);
  qsort (ids, g_strv_length (ids), sizeof (char *), compare_strings);
  return g_strjoinv (" ", ids);
}

/* The vault of @replica must show exactly what its set of ops defines. */
static void
check_replica (Sim     *sim,
               Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) heads = model_heads (replica->known);
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autoptr(GHashTable) vault_conflicts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter iter;
  const char *key;
  GPtrArray *list;
  guint n_model_conflicts = 0;

  conflicts = relais_oplog_conflicts (replica->vault, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < conflicts->len; i++)
    {
      RelaisConflict *conflict = g_ptr_array_index (conflicts, i);

      g_hash_table_insert (vault_conflicts,
                           g_strconcat (conflict->entity, "\x1f", conflict->entity_id,
                                        "\x1f", conflict->field, NULL),
                           conflict);
    }

  g_hash_table_iter_init (&iter, heads);
  while (g_hash_table_iter_next (&iter, (gpointer *) &key, (gpointer *) &list))
    {
      RelaisOp *winner = g_ptr_array_index (list, 0);
      RelaisConflict *conflict = g_hash_table_lookup (vault_conflicts, key);
      g_autoptr(RelaisPerson) person = NULL;
      guint field_index = RELAIS_PERSON_N_FIELDS;

      for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
        if (strcmp (relais_person_fields[i], winner->field) == 0)
          field_index = i;
      g_assert_cmpuint (field_index, <, RELAIS_PERSON_N_FIELDS);

      person = relais_person_get (replica->vault, winner->entity_id, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (*relais_person_field_ptr (person, field_index), ==, winner->value);

      if (list->len > 1)
        {
          g_autofree char *expected = id_set (list);
          g_autofree char *actual = NULL;

          n_model_conflicts++;
          /* Every concurrent value survives, the winner first. */
          g_assert_nonnull (conflict);
          actual = id_set (conflict->values);
          g_assert_cmpstr (actual, ==, expected);
          g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (conflict->values, 0))->id, ==, winner->id);
          g_assert_cmpstr (conflict->dossier, ==, winner->dossier);
        }
      else
        g_assert_null (conflict);
    }

  g_assert_cmpuint (conflicts->len, ==, n_model_conflicts);
  sim->max_conflicts = MAX (sim->max_conflicts, n_model_conflicts);
}

/* ---- Actions --------------------------------------------------------- */

static void
action_add (Sim     *sim,
            Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(GPtrArray) made = NULL;
  char *id;

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      const Pool *pool = &pools[i];

      if (i > 2 && g_rand_boolean (sim->rand))
        continue;
      *relais_person_field_ptr (person, i) =
        g_strdup (pool->values[g_rand_int_range (sim->rand, 0, pool->n)]);
    }

  id = relais_person_add (replica->vault, person, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  g_ptr_array_add (sim->dossiers, id);

  made = collect (sim, replica);
  for (guint i = 0; i < made->len; i++)
    {
      RelaisOp *op = g_ptr_array_index (made, i);

      g_assert_cmpstr (op->dossier, ==, id);
      g_assert_null (op->parents);
      g_assert_nonnull (op->value);
    }
}

/* Edits one to three fields of a dossier in one go. */
static void
action_edit (Sim     *sim,
             Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) stored = NULL;
  g_autoptr(RelaisPerson) changes = relais_person_new ();
  g_autoptr(GPtrArray) made = NULL;
  GPtrArray *heads[RELAIS_PERSON_N_FIELDS] = { NULL, };
  guint n_fields = g_rand_int_range (sim->rand, 1, 4);
  guint n_expected = 0;
  const char *id;

  id = g_ptr_array_index (sim->dossiers, g_rand_int_range (sim->rand, 0, sim->dossiers->len));
  stored = relais_person_get (replica->vault, id, &error);
  if (stored == NULL)
    {
      /* Not arrived here yet. */
      g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND);
      return;
    }

  for (guint i = 0; i < n_fields; i++)
    {
      guint field = g_rand_int_range (sim->rand, 0, RELAIS_PERSON_N_FIELDS);
      char **ptr = relais_person_field_ptr (changes, field);

      if (*ptr != NULL)
        continue;
      *ptr = g_strdup (pools[field].values[g_rand_int_range (sim->rand, 0, pools[field].n)]);
      heads[field] = model_heads_of (replica->known, id, relais_person_fields[field]);
    }

  g_assert_true (relais_person_edit (replica->vault, id, changes, &error));
  g_assert_no_error (error);
  made = collect (sim, replica);

  for (guint field = 0; field < RELAIS_PERSON_N_FIELDS; field++)
    {
      g_autoptr(GPtrArray) field_heads = g_steal_pointer (&heads[field]);
      const char *value = *relais_person_field_ptr (changes, field);
      RelaisOp *op = NULL;

      if (field_heads == NULL)
        continue;
      if (*value == '\0')
        value = NULL;
      for (guint i = 0; i < made->len; i++)
        if (strcmp (((RelaisOp *) g_ptr_array_index (made, i))->field, relais_person_fields[field]) == 0)
          {
            g_assert_null (op);
            op = g_ptr_array_index (made, i);
          }

      if (field_heads->len <= 1 &&
          g_strcmp0 (field_heads->len == 1 ? ((RelaisOp *) g_ptr_array_index (field_heads, 0))->value : NULL,
                     value) == 0)
        {
          /* Unchanged: nothing written. */
          g_assert_null (op);
        }
      else
        {
          g_autofree char *expected = id_set (field_heads);
          g_autofree char *actual = NULL;

          g_assert_nonnull (op);
          n_expected++;
          /* Its parents are exactly the heads the replica held. */
          actual = parent_set (op->parents);
          g_assert_cmpstr (actual, ==, expected);
          g_assert_cmpstr (op->value, ==, value);
          g_assert_cmpstr (op->dossier, ==, id);
        }
    }
  g_assert_cmpuint (made->len, ==, n_expected);
}

static void
action_resolve (Sim     *sim,
                Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autoptr(GPtrArray) after = NULL;
  g_autoptr(GPtrArray) made = NULL;
  g_autoptr(GPtrArray) heads = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *actual = NULL;
  RelaisConflict *conflict;
  RelaisOp *choice;
  RelaisOp *op;

  conflicts = relais_oplog_conflicts (replica->vault, NULL, &error);
  g_assert_no_error (error);
  if (conflicts->len == 0)
    return;

  conflict = g_ptr_array_index (conflicts, g_rand_int_range (sim->rand, 0, conflicts->len));
  choice = g_ptr_array_index (conflict->values,
                              g_rand_int_range (sim->rand, 0, conflict->values->len));
  heads = model_heads_of (replica->known, conflict->entity_id, conflict->field);
  g_assert_cmpuint (heads->len, >, 1);

  g_assert_true (relais_oplog_resolve (replica->vault, conflict->entity, conflict->entity_id,
                                       conflict->field, choice->value, &error));
  g_assert_no_error (error);
  sim->n_resolved++;

  made = collect (sim, replica);
  g_assert_cmpuint (made->len, ==, 1);
  op = g_ptr_array_index (made, 0);
  expected = id_set (heads);
  actual = parent_set (op->parents);
  g_assert_cmpstr (actual, ==, expected);
  g_assert_cmpstr (op->value, ==, choice->value);

  after = relais_oplog_conflicts (replica->vault, conflict->dossier, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < after->len; i++)
    {
      RelaisConflict *other = g_ptr_array_index (after, i);

      g_assert_false (strcmp (other->entity_id, conflict->entity_id) == 0 &&
                      strcmp (other->field, conflict->field) == 0);
    }
}

/* Sends @from's ops to @to.  @partial: a random subset, shuffled, with some
 * sent twice. */
static void
exchange (Sim      *sim,
          Replica  *from,
          Replica  *to,
          gboolean  partial)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = NULL;
  g_autoptr(GPtrArray) chosen = g_ptr_array_new ();
  g_autoptr(GPtrArray) made = NULL;

  ops = relais_oplog_list (from->vault, 0, 0, NULL, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < ops->len; i++)
    if (!partial || g_rand_boolean (sim->rand))
      g_ptr_array_add (chosen, g_ptr_array_index (ops, i));
  if (partial)
    {
      guint n = chosen->len;

      for (guint i = 0; i < n / 4; i++)
        g_ptr_array_add (chosen, g_ptr_array_index (chosen, g_rand_int_range (sim->rand, 0, n)));
      for (guint i = chosen->len; i > 1; i--)
        {
          guint j = g_rand_int_range (sim->rand, 0, i);
          gpointer tmp = chosen->pdata[i - 1];

          chosen->pdata[i - 1] = chosen->pdata[j];
          chosen->pdata[j] = tmp;
        }
    }

  g_assert_true (relais_vault_begin (to->vault, &error));
  g_assert_no_error (error);
  /* Half the exchanges go through relais_oplog_apply_batch() in random
   * slices (a pull's change sets), which must end where applying the ops
   * one by one does. */
  if (g_rand_boolean (sim->rand))
    {
      for (guint i = 0; i < chosen->len;)
        {
          guint want = (guint) g_rand_int_range (sim->rand, 1, 40);
          guint n = MIN (want, chosen->len - i);
          g_autoptr(GPtrArray) slice = g_ptr_array_new ();
          guint expect_new = 0;
          guint n_new = 0;

          for (guint j = i; j < i + n; j++)
            {
              RelaisOp *op = g_ptr_array_index (chosen, j);

              g_ptr_array_add (slice, op);
              if (!g_hash_table_contains (to->known, op->id))
                {
                  RelaisOp *stored = g_hash_table_lookup (sim->universe, op->id);

                  g_assert_nonnull (stored);
                  g_hash_table_insert (to->known, stored->id, stored);
                  expect_new++;
                }
            }
          g_assert_true (relais_oplog_apply_batch (to->vault, slice, &n_new, &error));
          g_assert_no_error (error);
          g_assert_cmpuint (n_new, ==, expect_new);
          sim->n_applied += n_new;
          i += n;
        }
    }
  else for (guint i = 0; i < chosen->len; i++)
    {
      RelaisOp *op = g_ptr_array_index (chosen, i);
      gboolean was_known = g_hash_table_contains (to->known, op->id);
      gboolean is_new = FALSE;

      g_assert_true (relais_oplog_apply (to->vault, op, &is_new, &error));
      g_assert_no_error (error);
      if (is_new)
        {
          /* Keep the model in step for duplicates within this batch. */
          g_assert_false (was_known);
          RelaisOp *stored = g_hash_table_lookup (sim->universe, op->id);

          g_assert_nonnull (stored);
          g_hash_table_insert (to->known, stored->id, stored);
          sim->n_applied++;
        }
      else
        g_assert_true (was_known);
    }
  g_assert_true (relais_vault_commit (to->vault, &error));
  g_assert_no_error (error);

  /* Advance the replica's seq past what it just stored: collect() would
   * see those ops as already known. */
  {
    g_autoptr(GPtrArray) stored = relais_oplog_list (to->vault, to->last_seq, 0, &to->last_seq, &error);

    g_assert_no_error (error);
    for (guint i = 0; i < stored->len; i++)
      g_assert_true (g_hash_table_contains (to->known, ((RelaisOp *) g_ptr_array_index (stored, i))->id));
  }
}

static char *
export_without_date (Replica *replica)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) root = relais_vault_export_json (replica->vault, &error);

  g_assert_no_error (error);
  g_assert_nonnull (root);
  json_object_remove_member (json_node_get_object (root), "exported_at");
  return json_to_string (root, TRUE);
}

static void
run_seed (guint32 seed)
{
  Sim sim = { 0, };
  g_autofree char *first_export = NULL;
  g_autoptr(GHashTable) final_heads = NULL;
  guint n_conflicts = 0;

  g_test_message ("seed %u", seed);
  sim.rand = g_rand_new_with_seed (seed);
  sim.universe = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                        (GDestroyNotify) relais_op_free);
  sim.dossiers = g_ptr_array_new_with_free_func (g_free);
  for (guint r = 0; r < N_REPLICAS; r++)
    replica_open (&sim.replicas[r]);

  for (guint step = 0; step < N_STEPS; step++)
    {
      Replica *replica = &sim.replicas[g_rand_int_range (sim.rand, 0, N_REPLICAS)];
      double dice = g_rand_double (sim.rand);

      if (sim.dossiers->len == 0 || (dice < 0.06 && sim.dossiers->len < MAX_DOSSIERS))
        action_add (&sim, replica);
      else if (dice < 0.55)
        action_edit (&sim, replica);
      else if (dice < 0.62)
        action_resolve (&sim, replica);
      else
        {
          guint to = g_rand_int_range (sim.rand, 0, N_REPLICAS - 1);

          if (&sim.replicas[to] == replica)
            to = N_REPLICAS - 1;
          exchange (&sim, replica, &sim.replicas[to], TRUE);
        }

      if (step % 20 == 19)
        check_replica (&sim, &sim.replicas[g_rand_int_range (sim.rand, 0, N_REPLICAS)]);
    }

  /* Everything to everyone: two rounds reach every pair transitively. */
  for (guint round = 0; round < 2; round++)
    for (guint from = 0; from < N_REPLICAS; from++)
      for (guint to = 0; to < N_REPLICAS; to++)
        if (from != to)
          exchange (&sim, &sim.replicas[from], &sim.replicas[to], FALSE);

  final_heads = model_heads (sim.universe);
  {
    GHashTableIter iter;
    GPtrArray *list;

    g_hash_table_iter_init (&iter, final_heads);
    while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &list))
      n_conflicts += list->len > 1;
  }

  for (guint r = 0; r < N_REPLICAS; r++)
    {
      Replica *replica = &sim.replicas[r];
      g_autofree char *export = NULL;

      g_assert_cmpuint (g_hash_table_size (replica->known), ==, g_hash_table_size (sim.universe));
      check_replica (&sim, replica);

      export = export_without_date (replica);
      if (first_export == NULL)
        first_export = g_steal_pointer (&export);
      else
        g_assert_cmpstr (export, ==, first_export);
    }

  g_test_message ("seed %u: %u ops, %u dossiers, %u applied remotely, %u resolutions, "
                  "%u conflicts at most, %u at the end",
                  seed, g_hash_table_size (sim.universe), sim.dossiers->len,
                  sim.n_applied, sim.n_resolved, sim.max_conflicts, n_conflicts);
  /* A run without concurrent writes would prove nothing. */
  g_assert_cmpuint (sim.max_conflicts, >, 0);
  g_assert_cmpuint (g_hash_table_size (sim.universe), >=, 100);

  for (guint r = 0; r < N_REPLICAS; r++)
    replica_close (&sim.replicas[r]);
  g_ptr_array_unref (sim.dossiers);
  g_hash_table_unref (sim.universe);
  g_rand_free (sim.rand);
}

static void
test_seed (gconstpointer data)
{
  run_seed (GPOINTER_TO_UINT (data));
}

int
main (int argc, char **argv)
{
  static const guint32 seeds[] = { 1, 2, 3, 42, 20240601 };
  const char *env_seed;

  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (seeds); i++)
    {
      g_autofree char *path = g_strdup_printf ("/merge/seed-%u", seeds[i]);

      g_test_add_data_func (path, GUINT_TO_POINTER (seeds[i]), test_seed);
    }

  env_seed = g_getenv ("RELAIS_MERGE_SEED");
  if (env_seed != NULL)
    {
      guint32 seed = (guint32) g_ascii_strtoull (env_seed, NULL, 10);
      g_autofree char *path = g_strdup_printf ("/merge/seed-%u", seed);

      g_test_add_data_func (path, GUINT_TO_POINTER (seed), test_seed);
    }

  return g_test_run ();
}
