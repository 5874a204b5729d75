#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "relais-test-util.h"
#include "relais-dossier.h"
#include "relais-oplog.h"
#include "relais-person.h"

/* The dossier's records: every entity, its validation, its statuses, the
 * diagnostic's history, merges between two vaults, and the list's
 * filters. */

typedef struct {
  char        *dir_a;
  char        *dir_b;
  RelaisVault *a;
  RelaisVault *b;
  char        *person;   /* a dossier in both vaults */
} Fixture;

static RelaisVault *
make_vault (char **out_dir)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = NULL;
  RelaisKdfParams params;
  RelaisVault *vault;

  parent = g_dir_make_tmp ("relais-dossier-XXXXXX", &error);
  g_assert_no_error (error);
  *out_dir = g_build_filename (parent, "vault", NULL);

  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_create (*out_dir, "pass",
                               &(RelaisVaultOptions) { .kdf = &params },
                               NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);
  return vault;
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir == NULL)
    {
      g_remove (path);
      return;
    }
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        remove_tree (child);
      else
        g_remove (child);
    }
  g_rmdir (path);
}

static void
remove_vault_dir (const char *dir)
{
  g_autofree char *parent = g_path_get_dirname (dir);

  remove_tree (parent);
}

static void
exchange (Fixture *fixture)
{
  relais_test_send_ops (fixture->a, fixture->b);
  relais_test_send_ops (fixture->b, fixture->a);
}

static char *
add_person (RelaisVault *vault,
            const char  *last,
            const char  *first)
{
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(GError) error = NULL;
  char *id;

  person->last_name = g_strdup (last);
  person->first_name = g_strdup (first);
  person->birth_date = g_strdup ("1985-04-12");
  id = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  return id;
}

static guint
count_ops (RelaisVault *vault)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ops = relais_oplog_list (vault, 0, 0, NULL, &error);

  g_assert_no_error (error);
  return ops->len;
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  fixture->a = make_vault (&fixture->dir_a);
  fixture->b = make_vault (&fixture->dir_b);
  relais_vault_set_author (fixture->a, "Alice Martin");
  relais_vault_set_author (fixture->b, "Bruno Petit");
  fixture->person = add_person (fixture->a, "Quenouillère", "Hélène");
  relais_test_send_ops (fixture->a, fixture->b);
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
  g_free (fixture->person);
}

#define assert_invalid(error) \
  G_STMT_START { \
    g_assert_error ((error), RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID); \
    g_clear_error (&(error)); \
  } G_STMT_END

#define assert_not_found(error) \
  G_STMT_START { \
    g_assert_error ((error), RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND); \
    g_clear_error (&(error)); \
  } G_STMT_END

/* An add that must succeed; the id is not needed. */
static void
assert_added (char *id)
{
  g_assert_nonnull (id);
  g_free (id);
}

static gboolean
ids_contain (GPtrArray  *ids,
             const char *id)
{
  for (guint i = 0; i < ids->len; i++)
    if (g_strcmp0 (g_ptr_array_index (ids, i), id) == 0)
      return TRUE;
  return FALSE;
}

/* ------------------------------------------------------------------------ */

static void
assert_table_well_formed (const RelaisChoice *choices,
                          guint               min)
{
  g_autoptr(GHashTable) keys = g_hash_table_new (g_str_hash, g_str_equal);
  guint n = 0;

  for (const RelaisChoice *c = choices; c->key != NULL; c++, n++)
    {
      g_assert_nonnull (c->label);
      g_assert_cmpstr (c->label, !=, "");
      /* Keys are stored and synced: plain ASCII without spaces. */
      for (const char *p = c->key; *p != '\0'; p++)
        g_assert_true (g_ascii_isalnum (*p) || *p == '-' || *p == '_');
      g_assert_false (g_hash_table_contains (keys, c->key));
      g_hash_table_add (keys, (gpointer) c->key);
    }
  g_assert_cmpuint (n, >=, min);
}

static void
test_reference (void)
{
  static const char * const themes[] = {
    "logement", "emploi", "formation", "difficulte_administrative", "difficulte_financiere",
    "mobilite", "sante", "contraintes_familiales", "maitrise_langue", "numerique",
  };
  guint n = 0;

  for (const RelaisChoice *c = relais_themes; c->key != NULL; c++, n++)
    {
      g_assert_cmpstr (c->key, ==, themes[n]);
      assert_table_well_formed (relais_theme_situations (c->key), 5);
    }
  g_assert_cmpuint (n, ==, G_N_ELEMENTS (themes));
  g_assert_null (relais_theme_situations ("cuisine"));
  g_assert_null (relais_theme_situations (NULL));

  assert_table_well_formed (relais_diagnostic_levels, 4);
  assert_table_well_formed (relais_rights, 5);
  assert_table_well_formed (relais_education_levels, 7);
  assert_table_well_formed (relais_work_situations, 4);
  assert_table_well_formed (relais_contract_types, 3);
  assert_table_well_formed (relais_working_times, 3);
  assert_table_well_formed (relais_objective_statuses, 3);
  assert_table_well_formed (relais_action_statuses, 5);
  assert_table_well_formed (relais_contract_kinds, 4);
  assert_table_well_formed (relais_appointment_statuses, 5);
  assert_table_well_formed (relais_orientation_statuses, 3);

  g_assert_cmpstr (relais_diagnostic_levels[0].key, ==, "non-aborde");
  g_assert_cmpstr (relais_diagnostic_levels[3].key, ==, "fort");
  g_assert_true (relais_choice_has (relais_theme_situations ("logement"), "sans-hebergement"));
  g_assert_cmpstr (relais_choice_label (relais_theme_situations ("logement"), "sans-hebergement"),
                   ==, "Sans hébergement");
  g_assert_cmpstr (relais_choice_label (relais_education_levels, "niveau-8"), ==, "Niveau 8 (doctorat)");
  g_assert_null (relais_choice_label (relais_rights, "rmi"));
  g_assert_false (relais_choice_has (relais_rights, NULL));
}

static void
test_hlc (void)
{
  /* 2026-11-25 09:30:00.250 UTC, counter 7. */
  guint64 ms = G_GUINT64_CONSTANT (1795599000250);
  g_autoptr(GDateTime) when = relais_hlc_to_date_time ((ms << 16) | 7);
  g_autoptr(GDateTime) utc = g_date_time_to_utc (when);

  g_assert_cmpint (g_date_time_to_unix (utc), ==, 1795599000);
  g_assert_cmpint (g_date_time_get_microsecond (utc), ==, 250000);
}

/* Records list in the order they were made, even within a millisecond. */
static void
test_ids_in_order (void)
{
  g_autofree char *previous = relais_oplog_new_id ();

  for (guint i = 0; i < 10000; i++)
    {
      char *id = relais_oplog_new_id ();

      g_assert_true (g_uuid_string_is_valid (id));
      g_assert_cmpint (id[14], ==, '7');
      g_assert_true (strchr ("89ab", id[19]) != NULL);
      g_assert_cmpstr (previous, <, id);
      g_free (previous);
      previous = id;
    }
}

static void
test_situation (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSituation) situation = NULL;
  RelaisSituation changes = { 0 };
  const char *rights[] = { "rqth", "rsa", NULL };
  const char *bad_rights[] = { "rsa", "rmi", NULL };
  const char *no_rights[] = { NULL };

  situation = relais_situation_get (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (situation->rights), ==, 0);
  g_assert_null (situation->education_level);
  g_assert_null (situation->sharing_informed_on);
  g_clear_pointer (&situation, relais_situation_free);

  changes.rights = (char **) rights;
  changes.education_level = (char *) "niveau-3";
  changes.work_situation = (char *) "sans-emploi";
  changes.sharing_informed_on = (char *) "2026-11-20";
  g_assert_true (relais_situation_edit (fixture->a, fixture->person, &changes, &error));
  g_assert_no_error (error);

  situation = relais_situation_get (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  /* In the order of the reference list. */
  g_assert_cmpuint (g_strv_length (situation->rights), ==, 2);
  g_assert_cmpstr (situation->rights[0], ==, "rsa");
  g_assert_cmpstr (situation->rights[1], ==, "rqth");
  g_assert_cmpstr (situation->education_level, ==, "niveau-3");
  g_assert_cmpstr (situation->work_situation, ==, "sans-emploi");
  g_assert_cmpstr (situation->sharing_informed_on, ==, "2026-11-20");
  g_clear_pointer (&situation, relais_situation_free);

  /* Bad keys and dates are refused whole. */
  memset (&changes, 0, sizeof changes);
  changes.rights = (char **) bad_rights;
  g_assert_false (relais_situation_edit (fixture->a, fixture->person, &changes, &error));
  assert_invalid (error);
  memset (&changes, 0, sizeof changes);
  changes.education_level = (char *) "bac";
  g_assert_false (relais_situation_edit (fixture->a, fixture->person, &changes, &error));
  assert_invalid (error);
  memset (&changes, 0, sizeof changes);
  changes.sharing_informed_on = (char *) "2026-02-30";
  g_assert_false (relais_situation_edit (fixture->a, fixture->person, &changes, &error));
  assert_invalid (error);
  g_assert_false (relais_situation_edit (fixture->a, "no-such-dossier", &changes, &error));
  assert_invalid (error);   /* the date is checked first */
  changes.sharing_informed_on = NULL;
  g_assert_false (relais_situation_edit (fixture->a, "no-such-dossier", &changes, &error));
  assert_not_found (error);

  /* NULL leaves, "" and an empty set clear. */
  memset (&changes, 0, sizeof changes);
  changes.rights = (char **) no_rights;
  changes.work_situation = (char *) "";
  g_assert_true (relais_situation_edit (fixture->a, fixture->person, &changes, &error));
  g_assert_no_error (error);
  situation = relais_situation_get (fixture->a, fixture->person, &error);
  g_assert_cmpuint (g_strv_length (situation->rights), ==, 0);
  g_assert_null (situation->work_situation);
  g_assert_cmpstr (situation->education_level, ==, "niveau-3");
  g_clear_pointer (&situation, relais_situation_free);

  /* One right at a time through the generic setter. */
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_SITUATION, fixture->person,
                                    "right_aah", "1", &error));
  g_assert_no_error (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_SITUATION, fixture->person,
                                     "right_aah", "yes", &error));
  assert_invalid (error);
  situation = relais_situation_get (fixture->a, fixture->person, &error);
  g_assert_cmpstr (situation->rights[0], ==, "aah");
  g_assert_null (situation->rights[1]);
}

static void
test_diagnostic (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDiagnostic) diagnostic = NULL;
  g_autoptr(GPtrArray) list = NULL;
  const char *situations[] = { "permis-b", "aucun-transport", NULL };
  const char *wrong_theme[] = { "sans-hebergement", NULL };
  const char *none[] = { NULL };
  guint ops;

  diagnostic = relais_diagnostic_get (fixture->a, fixture->person, "mobilite", &error);
  g_assert_no_error (error);
  g_assert_null (diagnostic->level);
  g_assert_null (diagnostic->changed_at);
  g_assert_null (diagnostic->author);
  g_assert_cmpuint (g_strv_length (diagnostic->situations), ==, 0);
  g_clear_pointer (&diagnostic, relais_diagnostic_free);

  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "fort",
                                        situations, "Pas de bus le matin.", &error));
  g_assert_no_error (error);

  diagnostic = relais_diagnostic_get (fixture->a, fixture->person, "mobilite", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (diagnostic->theme, ==, "mobilite");
  g_assert_cmpstr (diagnostic->level, ==, "fort");
  /* Stored in the order of the reference list. */
  g_assert_cmpuint (g_strv_length (diagnostic->situations), ==, 2);
  g_assert_cmpstr (diagnostic->situations[0], ==, "permis-b");
  g_assert_cmpstr (diagnostic->situations[1], ==, "aucun-transport");
  g_assert_cmpstr (diagnostic->comment, ==, "Pas de bus le matin.");
  g_assert_cmpstr (diagnostic->author, ==, "Alice Martin");
  g_assert_nonnull (diagnostic->changed_at);
  g_assert_false (diagnostic->conflict);
  g_clear_pointer (&diagnostic, relais_diagnostic_free);

  /* Setting what is there already writes nothing. */
  ops = count_ops (fixture->a);
  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "fort",
                                        situations, "Pas de bus le matin.", &error));
  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "fort",
                                        NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_ops (fixture->a), ==, ops);

  /* Validation. */
  g_assert_false (relais_diagnostic_set (fixture->a, fixture->person, "cuisine", "fort",
                                         NULL, NULL, &error));
  assert_invalid (error);
  g_assert_false (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "tres-fort",
                                         NULL, NULL, &error));
  assert_invalid (error);
  g_assert_false (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", NULL,
                                         NULL, NULL, &error));
  assert_invalid (error);
  g_assert_false (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "moyen",
                                         wrong_theme, NULL, &error));
  assert_invalid (error);
  g_assert_false (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "moyen",
                                         NULL, "bell\a", &error));
  assert_invalid (error);
  g_assert_false (relais_diagnostic_set (fixture->a, "no-such-dossier", "mobilite", "moyen",
                                         NULL, NULL, &error));
  assert_not_found (error);
  g_assert_null (relais_diagnostic_get (fixture->a, fixture->person, "cuisine", &error));
  assert_invalid (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_DIAGNOSTIC, fixture->person,
                                     "level", "fort", &error));
  assert_invalid (error);
  g_assert_cmpuint (count_ops (fixture->a), ==, ops);

  /* Bruno changes the level and clears the situations, then Alice
   * rewrites the comment: three signed assessments. */
  relais_test_send_ops (fixture->a, fixture->b);
  g_assert_true (relais_diagnostic_set (fixture->b, fixture->person, "mobilite", "moyen",
                                        none, NULL, &error));
  g_assert_no_error (error);
  relais_test_send_ops (fixture->b, fixture->a);
  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "mobilite", "moyen",
                                        NULL, "Permis en vue.", &error));
  g_assert_no_error (error);

  list = relais_diagnostic_list (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 10);
  for (guint i = 0; i < list->len; i++)
    {
      RelaisDiagnostic *d = g_ptr_array_index (list, i);

      g_assert_cmpstr (d->theme, ==, relais_themes[i].key);
      if (g_str_equal (d->theme, "mobilite"))
        {
          g_assert_cmpstr (d->level, ==, "moyen");
          g_assert_cmpuint (g_strv_length (d->situations), ==, 0);
          g_assert_cmpstr (d->comment, ==, "Permis en vue.");
          g_assert_cmpstr (d->author, ==, "Alice Martin");
        }
      else
        g_assert_null (d->level);
    }
  g_clear_pointer (&list, g_ptr_array_unref);

  list = relais_diagnostic_history (fixture->a, fixture->person, "mobilite", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  {
    RelaisDiagnostic *first = g_ptr_array_index (list, 0);
    RelaisDiagnostic *second = g_ptr_array_index (list, 1);
    RelaisDiagnostic *third = g_ptr_array_index (list, 2);

    g_assert_cmpstr (first->level, ==, "fort");
    g_assert_cmpuint (g_strv_length (first->situations), ==, 2);
    g_assert_cmpstr (first->comment, ==, "Pas de bus le matin.");
    g_assert_cmpstr (first->author, ==, "Alice Martin");
    g_assert_cmpstr (second->level, ==, "moyen");
    g_assert_cmpuint (g_strv_length (second->situations), ==, 0);
    g_assert_cmpstr (second->comment, ==, "Pas de bus le matin.");
    g_assert_cmpstr (second->author, ==, "Bruno Petit");
    g_assert_cmpstr (third->level, ==, "moyen");
    g_assert_cmpstr (third->comment, ==, "Permis en vue.");
    g_assert_cmpstr (third->author, ==, "Alice Martin");
    g_assert_cmpint (g_date_time_compare (first->changed_at, second->changed_at), <=, 0);
    g_assert_cmpint (g_date_time_compare (second->changed_at, third->changed_at), <=, 0);
  }
  g_clear_pointer (&list, g_ptr_array_unref);

  /* The field's own history, as the op log keeps it. */
  {
    g_autofree char *id = g_strconcat (fixture->person, ":mobilite", NULL);
    g_autoptr(GPtrArray) level_ops = relais_oplog_history (fixture->a, "diagnostic", id,
                                                           "level", &error);

    g_assert_no_error (error);
    g_assert_cmpuint (level_ops->len, ==, 2);
    g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (level_ops, 0))->value, ==, "fort");
    g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (level_ops, 1))->value, ==, "moyen");
    g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (level_ops, 1))->author, ==, "Bruno Petit");
  }

  /* Person ops are not in the history index, but their history reads. */
  {
    g_autoptr(GPtrArray) name_ops = relais_oplog_history (fixture->a, "person", fixture->person,
                                                          "last_name", &error);

    g_assert_no_error (error);
    g_assert_cmpuint (name_ops->len, ==, 1);
    g_assert_cmpstr (((RelaisOp *) g_ptr_array_index (name_ops, 0))->value, ==, "Quenouillère");
  }

  /* A theme never assessed has no history. */
  list = relais_diagnostic_history (fixture->a, fixture->person, "sante", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 0);
}

static void
test_project (Fixture       *fixture,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autofree char *id = NULL;
  const char *types[] = { "interim", "cdi", NULL };
  const char *bad_types[] = { "cdi", "stage", NULL };
  RelaisProject project = { .mobility_km = 30, .working_time = (char *) "temps-plein" };
  RelaisProject *got;

  project.job_label = (char *) "Cariste";
  project.rome_code = (char *) "n1101";
  project.contract_types = (char **) types;
  id = relais_project_add (fixture->a, fixture->person, &project, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);

  list = relais_project_list (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  got = g_ptr_array_index (list, 0);
  g_assert_cmpstr (got->id, ==, id);
  g_assert_cmpstr (got->dossier, ==, fixture->person);
  g_assert_cmpstr (got->job_label, ==, "Cariste");
  g_assert_cmpstr (got->rome_code, ==, "N1101");
  g_assert_cmpint (got->mobility_km, ==, 30);
  g_assert_cmpstr (got->contract_types[0], ==, "cdi");
  g_assert_cmpstr (got->contract_types[1], ==, "interim");
  g_assert_null (got->contract_types[2]);
  g_assert_cmpstr (got->working_time, ==, "temps-plein");
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Validation. */
  project.rome_code = (char *) "N11";
  g_assert_null (relais_project_add (fixture->a, fixture->person, &project, &error));
  assert_invalid (error);
  project.rome_code = NULL;
  project.contract_types = (char **) bad_types;
  g_assert_null (relais_project_add (fixture->a, fixture->person, &project, &error));
  assert_invalid (error);
  project.contract_types = NULL;
  project.mobility_km = -5;
  g_assert_null (relais_project_add (fixture->a, fixture->person, &project, &error));
  assert_invalid (error);
  project.mobility_km = -1;
  project.job_label = (char *) "  ";
  g_assert_null (relais_project_add (fixture->a, fixture->person, &project, &error));
  assert_invalid (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_PROJECT, id, "mobility_km", "5000", &error));
  assert_invalid (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_PROJECT, id, "salary", "2000", &error));
  assert_invalid (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_PROJECT, "no-such-id", "mobility_km", "5", &error));
  assert_not_found (error);
  g_assert_false (relais_record_set (fixture->a, "spaceship", id, "mobility_km", "5", &error));
  assert_invalid (error);

  /* Edit, remove, undo. */
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_PROJECT, id, "mobility_km", "", &error));
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_PROJECT, id, "contract_types", "cdd, alternance", &error));
  g_assert_no_error (error);
  list = relais_project_list (fixture->a, fixture->person, &error);
  got = g_ptr_array_index (list, 0);
  g_assert_cmpint (got->mobility_km, ==, -1);
  g_assert_cmpstr (got->contract_types[0], ==, "cdd");
  g_assert_cmpstr (got->contract_types[1], ==, "alternance");
  g_clear_pointer (&list, g_ptr_array_unref);

  g_assert_true (relais_record_remove (fixture->a, RELAIS_ENTITY_PROJECT, id, &error));
  list = relais_project_list (fixture->a, fixture->person, &error);
  g_assert_cmpuint (list->len, ==, 0);
  g_clear_pointer (&list, g_ptr_array_unref);
  g_assert_true (relais_record_restore (fixture->a, RELAIS_ENTITY_PROJECT, id, &error));
  g_assert_no_error (error);
  list = relais_project_list (fixture->a, fixture->person, &error);
  g_assert_cmpuint (list->len, ==, 1);
}

static void
test_plan (Fixture       *fixture,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autofree char *housing = NULL;
  g_autofree char *job = NULL;
  g_autofree char *late = NULL;
  g_autofree char *later = NULL;
  g_autofree char *undated = NULL;
  g_autofree char *other_person = NULL;
  g_autofree char *other_objective = NULL;
  RelaisAction *action;

  job = relais_objective_add (fixture->a, fixture->person, "emploi", "Trouver un emploi de cariste", &error);
  g_assert_no_error (error);
  housing = relais_objective_add (fixture->a, fixture->person, "logement", "Accéder à un logement", &error);
  g_assert_no_error (error);

  late = relais_action_add (fixture->a, job, "Passer le CACES 1", "2026-11-01", "AFPA", &error);
  g_assert_no_error (error);
  later = relais_action_add (fixture->a, job, "Mettre à jour le CV", "2026-12-15", NULL, &error);
  g_assert_no_error (error);
  undated = relais_action_add (fixture->a, housing, "Déposer une demande de logement social", NULL, NULL, &error);
  g_assert_no_error (error);

  /* Objectives in theme order (logement before emploi). */
  list = relais_objective_list (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((RelaisObjective *) g_ptr_array_index (list, 0))->id, ==, housing);
  g_assert_cmpstr (((RelaisObjective *) g_ptr_array_index (list, 0))->status, ==, "en-cours");
  g_assert_cmpstr (((RelaisObjective *) g_ptr_array_index (list, 1))->theme, ==, "emploi");
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Actions by due date, undated last; late ones flagged. */
  list = relais_action_list (fixture->a, fixture->person, "2026-11-25", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  action = g_ptr_array_index (list, 0);
  g_assert_cmpstr (action->id, ==, late);
  g_assert_cmpstr (action->objective, ==, job);
  g_assert_cmpstr (action->status, ==, "planifiee");
  g_assert_cmpstr (action->carrier, ==, "AFPA");
  g_assert_true (action->late);
  g_assert_false (((RelaisAction *) g_ptr_array_index (list, 1))->late);
  g_assert_cmpstr (((RelaisAction *) g_ptr_array_index (list, 2))->id, ==, undated);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Statuses: each list its own. */
  g_assert_true (relais_plan_set_status (fixture->a, later, "realisee", &error));
  g_assert_no_error (error);
  g_assert_true (relais_plan_set_status (fixture->a, housing, "realise", &error));
  g_assert_no_error (error);
  g_assert_false (relais_plan_set_status (fixture->a, housing, "realisee", &error));
  assert_invalid (error);
  g_assert_false (relais_plan_set_status (fixture->a, later, "realise", &error));
  assert_invalid (error);
  g_assert_false (relais_plan_set_status (fixture->a, "no-such-id", "realise", &error));
  assert_not_found (error);

  list = relais_action_list_open (fixture->a, fixture->person, "2026-11-25", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((RelaisAction *) g_ptr_array_index (list, 0))->id, ==, late);
  g_assert_cmpstr (((RelaisAction *) g_ptr_array_index (list, 1))->id, ==, undated);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Every status of an action can be set; an annulled one is not open. */
  for (const RelaisChoice *c = relais_action_statuses; c->key != NULL; c++)
    {
      g_assert_true (relais_plan_set_status (fixture->a, undated, c->key, &error));
      g_assert_no_error (error);
    }
  list = relais_action_list_open (fixture->a, fixture->person, "2026-11-25", &error);
  g_assert_cmpuint (list->len, ==, 1);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Validation. */
  g_assert_null (relais_objective_add (fixture->a, fixture->person, "cuisine", "x", &error));
  assert_invalid (error);
  g_assert_null (relais_objective_add (fixture->a, fixture->person, "emploi", "", &error));
  assert_invalid (error);
  g_assert_null (relais_objective_add (fixture->a, fixture->person, "emploi", "deux\nlignes", &error));
  assert_invalid (error);
  g_assert_null (relais_objective_add (fixture->a, "no-such-dossier", "emploi", "x", &error));
  assert_not_found (error);
  g_assert_null (relais_action_add (fixture->a, "no-such-objective", "x", NULL, NULL, &error));
  assert_not_found (error);
  g_assert_null (relais_action_add (fixture->a, job, "x", "15/12/2026", NULL, &error));
  assert_invalid (error);
  g_assert_null (relais_action_add (fixture->a, job, "x", "2026-13-01", NULL, &error));
  assert_invalid (error);
  g_assert_null (relais_action_list (fixture->a, fixture->person, "today", &error));
  assert_invalid (error);

  /* An action cannot move to another dossier's objective. */
  other_person = add_person (fixture->a, "Dupont", "Marc");
  other_objective = relais_objective_add (fixture->a, other_person, "sante", "Bilan de santé", &error);
  g_assert_no_error (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_ACTION, late, "objective",
                                     other_objective, &error));
  assert_invalid (error);
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_ACTION, late, "objective",
                                    housing, &error));
  g_assert_no_error (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_ACTION, late, "status", NULL, &error));
  assert_invalid (error);
}

static void
test_contract (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autofree char *id = NULL;
  RelaisContract contract = { 0 };
  RelaisContract *got;

  for (const RelaisChoice *c = relais_contract_kinds; c->key != NULL; c++)
    {
      g_autofree char *each = NULL;

      contract.kind = (char *) c->key;
      each = relais_contract_add (fixture->a, fixture->person, &contract, &error);
      g_assert_no_error (error);
      g_assert_true (relais_record_remove (fixture->a, RELAIS_ENTITY_CONTRACT, each, &error));
    }

  contract.kind = (char *) "cer";
  contract.signed_on = (char *) "2026-11-20";
  contract.starts_on = (char *) "2026-12-01";
  contract.ends_on = (char *) "2027-05-31";
  id = relais_contract_add (fixture->a, fixture->person, &contract, &error);
  g_assert_no_error (error);

  list = relais_contract_list (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  got = g_ptr_array_index (list, 0);
  g_assert_cmpstr (got->id, ==, id);
  g_assert_cmpstr (got->kind, ==, "cer");
  g_assert_cmpstr (got->signed_on, ==, "2026-11-20");
  g_assert_cmpstr (got->starts_on, ==, "2026-12-01");
  g_assert_cmpstr (got->ends_on, ==, "2027-05-31");

  contract.kind = (char *) "cdi";
  g_assert_null (relais_contract_add (fixture->a, fixture->person, &contract, &error));
  assert_invalid (error);
  contract.kind = (char *) "cej";
  contract.ends_on = (char *) "2026-06-01";
  g_assert_null (relais_contract_add (fixture->a, fixture->person, &contract, &error));
  assert_invalid (error);
  contract.ends_on = (char *) "2027-02-29";
  g_assert_null (relais_contract_add (fixture->a, fixture->person, &contract, &error));
  assert_invalid (error);
}

static void
test_appointment (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(RelaisAppointment) next = NULL;
  g_autofree char *early = NULL;
  g_autofree char *late = NULL;
  g_autofree char *past = NULL;

  late = relais_appointment_add (fixture->a, fixture->person, "2026-12-03 14:30",
                                 "Mme Leroy, conseillère", "Agence de Guéret", &error);
  g_assert_no_error (error);
  early = relais_appointment_add (fixture->a, fixture->person, "2026-12-01T09:00",
                                  "M. Bernard", NULL, &error);
  g_assert_no_error (error);
  past = relais_appointment_add (fixture->a, fixture->person, "2026-11-02 10:00",
                                 "M. Bernard", NULL, &error);
  g_assert_no_error (error);

  list = relais_appointment_list (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  g_assert_cmpstr (((RelaisAppointment *) g_ptr_array_index (list, 0))->id, ==, past);
  g_assert_cmpstr (((RelaisAppointment *) g_ptr_array_index (list, 1))->at, ==, "2026-12-01 09:00");
  g_assert_cmpstr (((RelaisAppointment *) g_ptr_array_index (list, 1))->status, ==, "planned");
  g_assert_null (((RelaisAppointment *) g_ptr_array_index (list, 1))->place);
  g_assert_cmpstr (((RelaisAppointment *) g_ptr_array_index (list, 2))->place, ==, "Agence de Guéret");

  next = relais_appointment_next (fixture->a, fixture->person, "2026-11-25 08:00", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (next->id, ==, early);
  g_clear_pointer (&next, relais_appointment_free);

  /* A cancelled appointment is not the next one. */
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_APPOINTMENT, early, "status", "cancelled", &error));
  g_assert_no_error (error);
  next = relais_appointment_next (fixture->a, fixture->person, "2026-11-25 08:00", &error);
  g_assert_cmpstr (next->id, ==, late);
  g_clear_pointer (&next, relais_appointment_free);
  next = relais_appointment_next (fixture->a, fixture->person, "2027-01-01 00:00", &error);
  g_assert_no_error (error);
  g_assert_null (next);

  for (const RelaisChoice *c = relais_appointment_statuses; c->key != NULL; c++)
    {
      g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_APPOINTMENT, past, "status", c->key, &error));
      g_assert_no_error (error);
    }
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_APPOINTMENT, past, "status", "vu", &error));
  assert_invalid (error);

  g_assert_null (relais_appointment_add (fixture->a, fixture->person, "2026-12-01", "x", NULL, &error));
  assert_invalid (error);
  g_assert_null (relais_appointment_add (fixture->a, fixture->person, "2026-12-01 25:00", "x", NULL, &error));
  assert_invalid (error);
  g_assert_null (relais_appointment_add (fixture->a, fixture->person, "2026-12-01 10:00", NULL, NULL, &error));
  assert_invalid (error);
  g_assert_null (relais_appointment_next (fixture->a, fixture->person, "tomorrow", &error));
  assert_invalid (error);
}

static void
test_note (Fixture       *fixture,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  RelaisNote *note;

  first = relais_note_add (fixture->a, fixture->person, "Premier entretien.\nMotivée.", &error);
  g_assert_no_error (error);
  second = relais_note_add (fixture->a, fixture->person, "Appel : rendez-vous décalé.", &error);
  g_assert_no_error (error);

  list = relais_note_list (fixture->a, fixture->person, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  /* Newest first (same second: the later id). */
  note = g_ptr_array_index (list, 0);
  g_assert_cmpstr (note->id, ==, second);
  note = g_ptr_array_index (list, 1);
  g_assert_cmpstr (note->id, ==, first);
  g_assert_cmpstr (note->text, ==, "Premier entretien.\nMotivée.");
  g_assert_cmpstr (note->author, ==, "Alice Martin");
  g_assert_cmpuint (strlen (note->written_at), ==, 20);
  g_assert_true (g_str_has_suffix (note->written_at, "Z"));
  g_clear_pointer (&list, g_ptr_array_unref);

  list = relais_note_list (fixture->a, fixture->person, 1, &error);
  g_assert_cmpuint (list->len, ==, 1);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* The text can be corrected, not the signature. */
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_NOTE, first, "text", "Premier entretien.", &error));
  g_assert_no_error (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_NOTE, first, "author", "Mallory", &error));
  assert_invalid (error);
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_NOTE, first, "written_at", "2020-01-01T00:00:00Z", &error));
  assert_invalid (error);

  g_assert_null (relais_note_add (fixture->a, fixture->person, " \n ", &error));
  assert_invalid (error);
  g_assert_null (relais_note_add (fixture->a, fixture->person, "nul\x01", &error));
  assert_invalid (error);
  g_assert_null (relais_note_add (fixture->a, "no-such-dossier", "x", &error));
  assert_not_found (error);
  {
    g_autofree char *huge = g_strnfill (20001, 'a');

    g_assert_null (relais_note_add (fixture->a, fixture->person, huge, &error));
    assert_invalid (error);
  }

  g_assert_true (relais_record_remove (fixture->a, RELAIS_ENTITY_NOTE, second, &error));
  list = relais_note_list (fixture->a, fixture->person, 0, &error);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpstr (((RelaisNote *) g_ptr_array_index (list, 0))->text, ==, "Premier entretien.");
}

static void
test_orientation (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autofree char *id = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *today = g_date_time_format (now, "%Y-%m-%d");
  RelaisOrientation *got;

  id = relais_orientation_add (fixture->a, fixture->person, "Mission locale de Guéret",
                               "Accompagnement CEJ", &error);
  g_assert_no_error (error);

  list = relais_orientation_list (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  got = g_ptr_array_index (list, 0);
  g_assert_cmpstr (got->structure, ==, "Mission locale de Guéret");
  g_assert_cmpstr (got->reason, ==, "Accompagnement CEJ");
  g_assert_cmpstr (got->status, ==, "proposee");
  g_assert_cmpstr (got->oriented_on, ==, today);
  g_clear_pointer (&list, g_ptr_array_unref);

  for (const RelaisChoice *c = relais_orientation_statuses; c->key != NULL; c++)
    {
      g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_ORIENTATION, id, "status", c->key, &error));
      g_assert_no_error (error);
    }
  g_assert_false (relais_record_set (fixture->a, RELAIS_ENTITY_ORIENTATION, id, "status", "done", &error));
  assert_invalid (error);
  g_assert_null (relais_orientation_add (fixture->a, fixture->person, "", NULL, &error));
  assert_invalid (error);
}

/* ------------------------------------------------------------------------ */

static void
test_merge_lists (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) notes_a = NULL;
  g_autoptr(GPtrArray) notes_b = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autofree char *note_a = NULL;
  g_autofree char *note_b = NULL;
  g_autofree char *objective = NULL;
  g_autofree char *action = NULL;
  g_autofree char *appointment_a = NULL;
  g_autofree char *appointment_b = NULL;
  g_autoptr(GPtrArray) actions = NULL;
  RelaisAction *merged;

  objective = relais_objective_add (fixture->a, fixture->person, "emploi", "Emploi", &error);
  action = relais_action_add (fixture->a, objective, "CV", "2026-12-01", NULL, &error);
  g_assert_no_error (error);
  exchange (fixture);

  /* Offline on both laptops: a note each, an appointment each, and each
   * edits a different field of the same action. */
  note_a = relais_note_add (fixture->a, fixture->person, "Vu à l'agence.", &error);
  note_b = relais_note_add (fixture->b, fixture->person, "Appel de la mission locale.", &error);
  appointment_a = relais_appointment_add (fixture->a, fixture->person, "2026-12-02 10:00", "Alice", NULL, &error);
  appointment_b = relais_appointment_add (fixture->b, fixture->person, "2026-12-02 10:00", "Bruno", NULL, &error);
  g_assert_true (relais_plan_set_status (fixture->a, action, "en-cours", &error));
  g_assert_true (relais_record_set (fixture->b, RELAIS_ENTITY_ACTION, action, "due", "2026-12-20", &error));
  g_assert_no_error (error);
  exchange (fixture);

  notes_a = relais_note_list (fixture->a, fixture->person, 0, &error);
  notes_b = relais_note_list (fixture->b, fixture->person, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (notes_a->len, ==, 2);
  g_assert_cmpuint (notes_b->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    g_assert_cmpstr (((RelaisNote *) g_ptr_array_index (notes_a, i))->id, ==,
                     ((RelaisNote *) g_ptr_array_index (notes_b, i))->id);
  {
    g_autoptr(GPtrArray) appointments = relais_appointment_list (fixture->a, fixture->person, &error);

    g_assert_cmpuint (appointments->len, ==, 2);
  }

  actions = relais_action_list (fixture->b, fixture->person, "2026-11-25", &error);
  g_assert_cmpuint (actions->len, ==, 1);
  merged = g_ptr_array_index (actions, 0);
  g_assert_cmpstr (merged->status, ==, "en-cours");
  g_assert_cmpstr (merged->due, ==, "2026-12-20");

  conflicts = relais_oplog_conflicts (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (conflicts->len, ==, 0);
}

static void
test_merge_diagnostic (Fixture       *fixture,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDiagnostic) on_a = NULL;
  g_autoptr(RelaisDiagnostic) on_b = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  RelaisConflict *conflict;

  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "logement", "moyen", NULL, NULL, &error));
  exchange (fixture);

  /* Concurrent assessments of one theme: a conflict, not two diagnostics. */
  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "logement", "fort", NULL, NULL, &error));
  g_assert_true (relais_diagnostic_set (fixture->b, fixture->person, "logement", "sans-impact", NULL, NULL, &error));
  g_assert_no_error (error);
  exchange (fixture);

  on_a = relais_diagnostic_get (fixture->a, fixture->person, "logement", &error);
  on_b = relais_diagnostic_get (fixture->b, fixture->person, "logement", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (on_a->level, ==, on_b->level);
  g_assert_true (on_a->conflict);
  g_assert_true (on_b->conflict);

  conflicts = relais_oplog_conflicts (fixture->a, fixture->person, &error);
  g_assert_cmpuint (conflicts->len, ==, 1);
  conflict = g_ptr_array_index (conflicts, 0);
  g_assert_cmpstr (conflict->entity, ==, "diagnostic");
  g_assert_cmpstr (conflict->field, ==, "level");
  g_assert_cmpuint (conflict->values->len, ==, 2);
  g_clear_pointer (&conflicts, g_ptr_array_unref);

  /* A person settles it by assessing again, even with the winning value. */
  g_assert_true (relais_diagnostic_set (fixture->b, fixture->person, "logement", on_b->level, NULL, NULL, &error));
  g_assert_no_error (error);
  exchange (fixture);
  g_clear_pointer (&on_a, relais_diagnostic_free);
  on_a = relais_diagnostic_get (fixture->a, fixture->person, "logement", &error);
  g_assert_false (on_a->conflict);
  g_assert_cmpstr (on_a->author, ==, "Bruno Petit");
  conflicts = relais_oplog_conflicts (fixture->a, fixture->person, &error);
  g_assert_cmpuint (conflicts->len, ==, 0);

  /* Every assessment stays in the history, on both sides. */
  {
    g_autoptr(GPtrArray) history_a = relais_diagnostic_history (fixture->a, fixture->person, "logement", &error);
    g_autoptr(GPtrArray) history_b = relais_diagnostic_history (fixture->b, fixture->person, "logement", &error);

    g_assert_cmpuint (history_a->len, ==, 4);
    g_assert_cmpuint (history_b->len, ==, 4);
    for (guint i = 0; i < history_a->len; i++)
      g_assert_cmpstr (((RelaisDiagnostic *) g_ptr_array_index (history_a, i))->level, ==,
                       ((RelaisDiagnostic *) g_ptr_array_index (history_b, i))->level);
  }

  /* Applying everything again changes nothing. */
  g_assert_cmpuint (relais_test_send_ops (fixture->a, fixture->b), ==, 0);
  g_assert_cmpuint (relais_test_send_ops (fixture->b, fixture->a), ==, 0);
}

/* ------------------------------------------------------------------------ */

static void
test_filters (Fixture       *fixture,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) ids = NULL;
  g_autofree char *other = NULL;
  g_autofree char *quiet = NULL;
  g_autofree char *cancelled = NULL;
  g_autofree char *objective = NULL;
  g_autofree char *action = NULL;
  g_autoptr(GDateTime) start = NULL;
  g_autoptr(GDateTime) later = NULL;

  other = add_person (fixture->a, "Dupont", "Marc");
  quiet = add_person (fixture->a, "Martin", "Léa");

  assert_added (relais_appointment_add (fixture->a, fixture->person, "2026-11-25 09:00", "Alice", NULL, &error));
  assert_added (relais_appointment_add (fixture->a, fixture->person, "2026-11-25 16:00", "Alice", NULL, &error));
  assert_added (relais_appointment_add (fixture->a, other, "2026-11-26 00:00", "Alice", NULL, &error));
  cancelled = relais_appointment_add (fixture->a, quiet, "2026-11-25 11:00", "Alice", NULL, &error);
  g_assert_true (relais_record_set (fixture->a, RELAIS_ENTITY_APPOINTMENT, cancelled, "status", "cancelled", &error));
  g_assert_no_error (error);

  ids = relais_dossier_ids_with_appointment_on (fixture->a, "2026-11-25", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, 1);
  g_assert_true (ids_contain (ids, fixture->person));
  g_clear_pointer (&ids, g_ptr_array_unref);
  ids = relais_dossier_ids_with_appointment_on (fixture->a, "2026-11-26", &error);
  g_assert_cmpuint (ids->len, ==, 1);
  g_assert_true (ids_contain (ids, other));
  g_clear_pointer (&ids, g_ptr_array_unref);
  g_assert_null (relais_dossier_ids_with_appointment_on (fixture->a, "25/11/2026", &error));
  assert_invalid (error);

  objective = relais_objective_add (fixture->a, other, "emploi", "Emploi", &error);
  action = relais_action_add (fixture->a, objective, "Inscription", "2026-11-20", NULL, &error);
  assert_added (relais_action_add (fixture->a, objective, "Plus tard", "2026-12-20", NULL, &error));
  g_assert_no_error (error);
  ids = relais_dossier_ids_with_late_actions (fixture->a, "2026-11-25", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, 1);
  g_assert_true (ids_contain (ids, other));
  g_clear_pointer (&ids, g_ptr_array_unref);
  /* Due today is not late yet; done is never late. */
  ids = relais_dossier_ids_with_late_actions (fixture->a, "2026-11-20", &error);
  g_assert_cmpuint (ids->len, ==, 0);
  g_clear_pointer (&ids, g_ptr_array_unref);
  g_assert_true (relais_plan_set_status (fixture->a, action, "realisee", &error));
  ids = relais_dossier_ids_with_late_actions (fixture->a, "2026-11-25", &error);
  g_assert_cmpuint (ids->len, ==, 0);
  g_clear_pointer (&ids, g_ptr_array_unref);

  /* Recently changed: here, and by ops from another device. */
  g_usleep (5000);
  start = g_date_time_new_now_local ();
  assert_added (relais_note_add (fixture->a, quiet, "Nouvelle.", &error));
  ids = relais_dossier_ids_changed_since (fixture->a, start, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, 1);
  g_assert_true (ids_contain (ids, quiet));
  g_clear_pointer (&ids, g_ptr_array_unref);

  relais_test_send_ops (fixture->a, fixture->b);
  g_usleep (5000);
  later = g_date_time_new_now_local ();
  g_assert_true (relais_diagnostic_set (fixture->b, other, "sante", "moyen", NULL, NULL, &error));
  g_assert_no_error (error);
  relais_test_send_ops (fixture->b, fixture->a);
  ids = relais_dossier_ids_changed_since (fixture->a, later, 0, &error);
  g_assert_cmpuint (ids->len, ==, 1);
  g_assert_true (ids_contain (ids, other));
  g_clear_pointer (&ids, g_ptr_array_unref);
  /* Most recent first. */
  ids = relais_dossier_ids_changed_since (fixture->a, start, 0, &error);
  g_assert_cmpuint (ids->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (ids, 0), ==, other);
  g_assert_cmpstr (g_ptr_array_index (ids, 1), ==, quiet);
  g_clear_pointer (&ids, g_ptr_array_unref);
  ids = relais_dossier_ids_changed_since (fixture->a, start, 1, &error);
  g_assert_cmpuint (ids->len, ==, 1);
}

/* The filters must read an index, not scan 100,000 dossiers. */
static void
assert_plan_uses (RelaisVault *vault,
                  const char  *sql,
                  const char  *index)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autofree char *explain = g_strconcat ("EXPLAIN QUERY PLAN ", sql, NULL);
  GString *plan = g_string_new (NULL);
  g_autofree char *text = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault), explain, -1, &stmt, NULL), ==, SQLITE_OK);
  while (sqlite3_step (stmt) == SQLITE_ROW)
    g_string_append_printf (plan, "%s\n", sqlite3_column_text (stmt, 3));
  text = g_string_free (plan, FALSE);
  if (strstr (text, index) == NULL)
    g_test_message ("plan of %s:\n%s", sql, text);
  g_assert_nonnull (strstr (text, index));
}

static void
test_indexes (Fixture       *fixture,
              gconstpointer  data)
{
  assert_plan_uses (fixture->a,
                    "SELECT dossier FROM action"
                    " WHERE removed IS NULL AND status IN ('planifiee', 'en-cours')"
                    "   AND due < ?1",
                    "action_late");
  assert_plan_uses (fixture->a,
                    "SELECT dossier FROM appointment"
                    " WHERE removed IS NULL AND status IS NOT 'cancelled'"
                    "   AND at BETWEEN ?1 AND ?2",
                    "appointment_day");
  assert_plan_uses (fixture->a,
                    "SELECT a.dossier FROM dossier_activity AS a"
                    " WHERE a.hlc >= ?1"
                    "   AND EXISTS (SELECT 1 FROM person WHERE id = a.dossier)"
                    " ORDER BY a.hlc DESC LIMIT ?2",
                    "dossier_activity_hlc");
  assert_plan_uses (fixture->a,
                    "SELECT id FROM note WHERE dossier = ?1 AND removed IS NULL"
                    " ORDER BY written_at DESC, id DESC LIMIT ?2",
                    "note_dossier");
  assert_plan_uses (fixture->a,
                    "SELECT id FROM op"
                    " WHERE entity <> 'person' AND entity = ?1 AND entity_id = ?2"
                    "   AND (?3 IS NULL OR field = ?3)"
                    " ORDER BY hlc, device, id",
                    "op_history");
}

static void
test_reopen (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisDiagnostic) diagnostic = NULL;
  g_autoptr(GPtrArray) notes = NULL;

  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "numerique", "fort", NULL, "Sans ordinateur", &error));
  assert_added (relais_note_add (fixture->a, fixture->person, "Note", &error));
  g_assert_no_error (error);

  relais_vault_close (fixture->a);
  fixture->a = relais_vault_open (fixture->dir_a, "pass", NULL, &error);
  g_assert_no_error (error);

  diagnostic = relais_diagnostic_get (fixture->a, fixture->person, "numerique", &error);
  g_assert_cmpstr (diagnostic->level, ==, "fort");
  g_assert_cmpstr (diagnostic->comment, ==, "Sans ordinateur");
  notes = relais_note_list (fixture->a, fixture->person, 0, &error);
  g_assert_cmpuint (notes->len, ==, 1);
}

/* tests/data/vault-v1: a vault at schema version 1, before the dossier's
 * records (made by the current code, then stripped of what step 1 → 2
 * adds; passphrase "pass", weak test KDF), with two people:
 * 01a21215-6acc-7995-8603-0bd3a2ef0d79 and
 * 01a21215-6acd-7edc-93bf-ab6fe3818acd).  Opening it climbs the migration
 * ladder; what it held must be there, and in the new tables' filters. */
static void
test_upgrade (void)
{
  static const char * const ids[] = {
    "01a21215-6acc-7995-8603-0bd3a2ef0d79",
    "01a21215-6acd-7edc-93bf-ab6fe3818acd",
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = g_dir_make_tmp ("relais-dossier-XXXXXX", &error);
  g_autofree char *dir = g_build_filename (parent, "vault", NULL);
  g_autoptr(GDateTime) epoch = g_date_time_new_from_unix_utc (0);
  g_autoptr(GPtrArray) changed = NULL;
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(RelaisDiagnostic) diagnostic = NULL;
  g_autoptr(sqlite3_stmt) stmt = NULL;
  RelaisVault *vault;

  g_assert_no_error (error);
  g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
  for (guint i = 0; i < 2; i++)
    {
      const char *name = i == 0 ? "vault.key" : RELAIS_VAULT_DB_NAME;
      g_autofree char *from = g_test_build_filename (G_TEST_DIST, "data", "vault-v1", name, NULL);
      g_autofree char *to = g_build_filename (dir, name, NULL);
      g_autofree char *contents = NULL;
      gsize length = 0;

      g_assert_true (g_file_get_contents (from, &contents, &length, &error));
      g_assert_true (g_file_set_contents_full (to, contents, length, G_FILE_SET_CONTENTS_NONE, 0600, &error));
      g_assert_no_error (error);
    }

  vault = relais_vault_open (dir, "pass", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);

  g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault), "PRAGMA user_version", -1, &stmt, NULL),
                   ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (stmt, 0), >=, 2);
  g_clear_pointer (&stmt, sqlite3_finalize);

  person = relais_person_get (vault, ids[0], &error);
  g_assert_no_error (error);
  g_assert_cmpstr (person->last_name, ==, "Quenouillère");

  /* The dossiers of before count as changed when they were. */
  changed = relais_dossier_ids_changed_since (vault, epoch, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (changed->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (changed, 0), ==, ids[1]);
  g_assert_cmpstr (g_ptr_array_index (changed, 1), ==, ids[0]);

  g_assert_true (relais_diagnostic_set (vault, ids[0], "emploi", "moyen", NULL, NULL, &error));
  g_assert_no_error (error);
  diagnostic = relais_diagnostic_get (vault, ids[0], "emploi", &error);
  g_assert_cmpstr (diagnostic->level, ==, "moyen");

  g_assert_true (relais_vault_verify (vault, NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (vault);
  remove_vault_dir (dir);
}

static JsonObject *
find_dossier (JsonNode   *root,
              const char *id)
{
  JsonArray *dossiers = json_object_get_array_member (json_node_get_object (root), "dossiers");

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
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) single = NULL;
  g_autofree char *objective = NULL;
  g_autofree char *note = NULL;
  RelaisSituation situation = { .education_level = (char *) "niveau-4" };
  RelaisProject project = { .job_label = (char *) "Aide à domicile", .mobility_km = 10 };
  RelaisContract contract = { .kind = (char *) "cer" };
  JsonObject *dossier;
  JsonObject *diagnostic;
  JsonArray *array;

  g_assert_true (relais_situation_edit (fixture->a, fixture->person, &situation, &error));
  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "sante", "moyen", NULL, "Suivi", &error));
  g_assert_true (relais_diagnostic_set (fixture->a, fixture->person, "sante", "fort", NULL, NULL, &error));
  assert_added (relais_project_add (fixture->a, fixture->person, &project, &error));
  objective = relais_objective_add (fixture->a, fixture->person, "sante", "Bilan", &error);
  assert_added (relais_action_add (fixture->a, objective, "Prendre rendez-vous", NULL, NULL, &error));
  assert_added (relais_contract_add (fixture->a, fixture->person, &contract, &error));
  assert_added (relais_appointment_add (fixture->a, fixture->person, "2026-12-01 10:00", "Alice", NULL, &error));
  note = relais_note_add (fixture->a, fixture->person, "Retirée", &error);
  g_assert_true (relais_record_remove (fixture->a, RELAIS_ENTITY_NOTE, note, &error));
  assert_added (relais_orientation_add (fixture->a, fixture->person, "CMP", NULL, &error));
  g_assert_no_error (error);

  root = relais_vault_export_json (fixture->a, &error);
  g_assert_no_error (error);
  dossier = find_dossier (root, fixture->person);
  g_assert_nonnull (dossier);

  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (dossier, "situation"),
                                                  "education_level"), ==, "niveau-4");
  diagnostic = json_object_get_object_member (json_object_get_object_member (dossier, "diagnostic"), "sante");
  g_assert_nonnull (diagnostic);
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (diagnostic, "current"), "level"),
                   ==, "fort");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (diagnostic, "history")), ==, 2);
  g_assert_false (json_object_has_member (json_object_get_object_member (dossier, "diagnostic"), "logement"));

  static const char * const lists[] = {
    "projects", "objectives", "actions", "contracts", "appointments", "notes", "orientations",
  };
  for (guint i = 0; i < G_N_ELEMENTS (lists); i++)
    {
      array = json_object_get_array_member (dossier, lists[i]);
      g_assert_nonnull (array);
      g_assert_cmpuint (json_array_get_length (array), ==, 1);
    }
  /* A removed note still belongs to the person. */
  array = json_object_get_array_member (dossier, "notes");
  g_assert_true (json_object_get_boolean_member (json_array_get_object_element (array, 0), "removed"));
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (array, 0), "text"), ==, "Retirée");

  single = relais_person_to_json (fixture->a, fixture->person, &error);
  g_assert_no_error (error);
  g_assert_true (json_object_has_member (json_node_get_object (single), "diagnostic"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  g_test_add_func ("/dossier/reference", test_reference);
  g_test_add_func ("/dossier/hlc", test_hlc);
  g_test_add_func ("/dossier/ids-in-order", test_ids_in_order);
  ADD ("/dossier/situation", test_situation);
  ADD ("/dossier/diagnostic", test_diagnostic);
  ADD ("/dossier/project", test_project);
  ADD ("/dossier/plan", test_plan);
  ADD ("/dossier/contract", test_contract);
  ADD ("/dossier/appointment", test_appointment);
  ADD ("/dossier/note", test_note);
  ADD ("/dossier/orientation", test_orientation);
  ADD ("/dossier/merge-lists", test_merge_lists);
  ADD ("/dossier/merge-diagnostic", test_merge_diagnostic);
  ADD ("/dossier/filters", test_filters);
  ADD ("/dossier/indexes", test_indexes);
  ADD ("/dossier/reopen", test_reopen);
  ADD ("/dossier/export", test_export);
  g_test_add_func ("/dossier/upgrade", test_upgrade);

#undef ADD

  return g_test_run ();
}
