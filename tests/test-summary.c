#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <cairo.h>

#include "relais-dossier.h"
#include "relais-person.h"
#include "relais-summary.h"
#include "relais-test-util.h"

/* The person's summary: built through the core, written as a PDF, and read
 * back as a person would read it, with pdftotext. */

typedef struct {
  char        *dir;
  RelaisVault *vault;
  char        *person;
  char        *pdf;
} Fixture;

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autofree char *vault_dir = NULL;
  RelaisKdfParams params;

  fx->dir = relais_test_make_tmpdir ("relais-summary");
  vault_dir = g_build_filename (fx->dir, "vault", NULL);
  relais_kdf_params_insecure_for_tests (&params);
  fx->vault = relais_vault_create (vault_dir, "pass",
                                   &(RelaisVaultOptions) { .kdf = &params },
                                   NULL, &error);
  g_assert_no_error (error);
  relais_vault_set_author (fx->vault, "Camille Référente");

  person->last_name = g_strdup ("Quenouillère");
  person->first_name = g_strdup ("Hélène");
  person->birth_date = g_strdup ("1985-03-01");
  fx->person = relais_person_add (fx->vault, person, &error);
  g_assert_no_error (error);
  fx->pdf = g_build_filename (fx->dir, "restitution.pdf", NULL);
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  relais_vault_close (fx->vault);
  relais_test_rm_rf (fx->dir);
  g_free (fx->pdf);
  g_free (fx->person);
  g_free (fx->dir);
}

/* The test's own French dates, to check the renderer's against. */
static char *
french_date (GDateTime *when)
{
  static const char * const months[] = {
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet",
    "août", "septembre", "octobre", "novembre", "décembre",
  };
  int day = g_date_time_get_day_of_month (when);

  return g_strdup_printf ("%d%s %s %d", day, day == 1 ? "er" : "",
                          months[g_date_time_get_month (when) - 1],
                          g_date_time_get_year (when));
}

/* The PDF's text, pages separated by form feeds; NULL (and the test
 * skipped) without pdftotext. */
static char *
pdf_text (const char *pdf)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *program = g_find_program_in_path ("pdftotext");
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = 0;

  if (program == NULL)
    {
      g_test_skip ("pdftotext (poppler-utils) is not installed");
      return NULL;
    }
  {
    const char *argv[] = { program, "-layout", "-enc", "UTF-8", pdf, "-", NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                 &out, &err, &status, &error));
  }
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_test_message ("pdftotext: %s", err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_true (g_utf8_validate (out, -1, NULL));
  return g_steal_pointer (&out);
}

static void
assert_has (const char *text,
            const char *needle)
{
  if (strstr (text, needle) == NULL)
    g_error ("“%s” is not in the summary:\n%s", needle, text);
}

static void
assert_lacks (const char *text,
              const char *needle)
{
  if (strstr (text, needle) != NULL)
    g_error ("“%s” should not be in the summary:\n%s", needle, text);
}

static guint
count (const char *text,
       const char *needle)
{
  guint n = 0;

  for (const char *p = strstr (text, needle); p != NULL; p = strstr (p + 1, needle))
    n++;
  return n;
}

/* Occurrences of @needle, which ends with a number, not followed by
 * another digit: "Phrase 1" is not in "Phrase 12". */
static guint
count_number (const char *text,
              const char *needle)
{
  guint n = 0;

  for (const char *p = strstr (text, needle); p != NULL; p = strstr (p + 1, needle))
    if (!g_ascii_isdigit (p[strlen (needle)]))
      n++;
  return n;
}

/* The pages of the text, each ending with its footer "N / TOTAL"
 * (pdftotext may drop the spaces around the slash). */
static guint
assert_page_footers (const char *text)
{
  g_auto(GStrv) pages = g_strsplit (text, "\f", -1);
  guint n_pages = g_strv_length (pages);

  /* pdftotext ends the last page with a form feed too. */
  if (n_pages > 0 && g_strstrip (pages[n_pages - 1])[0] == '\0')
    n_pages--;
  g_assert_cmpuint (n_pages, >=, 1);

  for (guint i = 0; i < n_pages; i++)
    {
      g_autofree char *expected = g_strdup_printf ("%u/%u", i + 1, n_pages);
      g_autoptr(GString) last = g_string_new (g_strstrip (pages[i]));
      const char *line;

      g_string_replace (last, " ", "", 0);
      line = strrchr (last->str, '\n');
      line = line != NULL ? line + 1 : last->str;
      if (!g_str_has_suffix (line, expected))
        g_error ("page %u ends with “%s”, not with its number %s", i + 1, line, expected);
      g_assert_nonnull (strstr (line, "HélèneQUENOUILLÈRE"));
    }
  return n_pages;
}

/* The text of the pages without their footers, in one line, so that a
 * sentence reads whole across line and page breaks. */
static char *
body_text (const char *text)
{
  g_auto(GStrv) pages = g_strsplit (text, "\f", -1);
  g_autoptr(GString) body = g_string_new (NULL);
  g_auto(GStrv) words = NULL;

  for (guint i = 0; pages[i] != NULL; i++)
    {
      char *end = strrchr (g_strchomp (pages[i]), '\n');

      if (end != NULL)
        *end = '\0';
      g_string_append_printf (body, "%s\n", pages[i]);
    }
  words = g_strsplit_set (body->str, " \n", -1);
  g_string_truncate (body, 0);
  for (guint i = 0; words[i] != NULL; i++)
    if (*words[i] != '\0')
      g_string_append_printf (body, "%s ", words[i]);
  return g_string_free (g_steal_pointer (&body), FALSE);
}

static void
write_pdf (Fixture        *fx,
           RelaisSummary **out_summary)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSummary) summary = relais_summary_new (fx->vault, fx->person, &error);
  GStatBuf st;

  g_assert_no_error (error);
  g_assert_nonnull (summary);
  g_assert_true (relais_summary_write_pdf (summary, fx->pdf, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (fx->pdf, &st), ==, 0);
  /* Personal data: for its owner's eyes only until handed over. */
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  if (out_summary != NULL)
    *out_summary = g_steal_pointer (&summary);
}

static void
test_full (Fixture       *fx,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autoptr(GDateTime) in_a_week = g_date_time_add_days (now, 7);
  g_autofree char *at = g_date_time_format (in_a_week, "%Y-%m-%d 14:30");
  g_autofree char *at_day = french_date (in_a_week);
  g_autofree char *today = french_date (now);
  g_autofree char *handed = g_strdup_printf ("Document remis le %s par Camille Référente", today);
  g_autofree char *objective = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *appointment = NULL;
  g_autofree char *project = NULL;
  g_autofree char *contract = NULL;
  g_autofree char *text = NULL;
  const char *housing[] = { "heberge-tiers", "demande-logement", NULL };
  char *rights[] = { (char *) "rsa", NULL };
  char *contract_types[] = { (char *) "cdi", (char *) "cdd", NULL };
  RelaisSituation situation = { .rights = rights, .education_level = (char *) "niveau-3",
                                .work_situation = (char *) "sans-emploi" };
  RelaisProject wanted = { .job_label = (char *) "Agent d’entretien", .rome_code = (char *) "K2204",
                           .mobility_km = 20, .contract_types = contract_types,
                           .working_time = (char *) "temps-plein" };
  RelaisContract signed_contract = { .kind = (char *) "cer", .signed_on = (char *) "2026-10-01",
                                     .starts_on = (char *) "2026-10-01", .ends_on = (char *) "2027-03-31" };

  g_assert_true (relais_situation_edit (fx->vault, fx->person, &situation, &error));
  g_assert_no_error (error);
  g_assert_true (relais_diagnostic_set (fx->vault, fx->person, "logement", "fort", housing,
                                        "Hébergée chez sa sœur ; cherche un T2 à Roubaix.", &error));
  g_assert_no_error (error);
  g_assert_true (relais_diagnostic_set (fx->vault, fx->person, "mobilite", "moyen", NULL,
                                        "Pas de permis, bus seulement.", &error));
  g_assert_no_error (error);
  /* Discussed as not discussed: nothing to tell the person. */
  g_assert_true (relais_diagnostic_set (fx->vault, fx->person, "sante", "non-aborde", NULL, NULL, &error));
  g_assert_no_error (error);

  objective = relais_objective_add (fx->vault, fx->person, "logement", "Trouver un logement autonome", &error);
  g_assert_no_error (error);
  first = relais_action_add (fx->vault, objective, "Déposer une demande de logement social",
                             "2027-01-15", "CCAS de Roubaix", &error);
  g_assert_no_error (error);
  second = relais_action_add (fx->vault, objective, "Ouvrir un dossier FSL", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (relais_plan_set_status (fx->vault, second, "realisee", &error));
  g_assert_no_error (error);

  appointment = relais_appointment_add (fx->vault, fx->person, at, "Mme Martin, conseillère",
                                        "Maison de l’emploi", &error);
  g_assert_no_error (error);
  project = relais_project_add (fx->vault, fx->person, &wanted, &error);
  g_assert_no_error (error);
  contract = relais_contract_add (fx->vault, fx->person, &signed_contract, &error);
  g_assert_no_error (error);

  write_pdf (fx, NULL);
  text = pdf_text (fx->pdf);
  if (text == NULL)
    return;

  assert_has (text, "Votre parcours — restitution");
  assert_has (text, "Hélène QUENOUILLÈRE");
  assert_has (text, "1er mars 1985");
  assert_has (text, handed);

  assert_has (text, "Votre situation");
  assert_has (text, "RSA (revenu de solidarité active)");
  assert_has (text, "Niveau 3 (CAP, BEP)");
  assert_has (text, "CER (contrat d’engagements réciproques)");
  assert_has (text, "31 mars 2027");

  assert_has (text, "Logement — Frein fort");
  assert_has (text, "Hébergé chez un tiers");
  assert_has (text, "Demande de logement social en cours");
  assert_has (text, "cherche un T2 à Roubaix");
  assert_has (text, "Mobilité — Frein moyen");
  assert_lacks (text, "Santé");

  assert_has (text, "Votre plan d’action");
  assert_has (text, "Trouver un logement autonome");
  assert_has (text, "Déposer une demande de logement social");
  assert_has (text, "planifiée");
  assert_has (text, "15 janvier 2027");
  assert_has (text, "CCAS de Roubaix");
  assert_has (text, "Ouvrir un dossier FSL");
  assert_has (text, "réalisée");

  assert_has (text, "Agent d’entretien");
  assert_has (text, "K2204");
  assert_has (text, "CDI, CDD");

  assert_has (text, "Votre prochain rendez-vous");
  assert_has (text, at_day);
  assert_has (text, "14 h 30");
  assert_has (text, "Mme Martin, conseillère");
  assert_has (text, "Maison de l’emploi");
  assert_lacks (text, "Aucun rendez-vous prévu");

  assert_page_footers (text);
}

static void
test_long (Fixture       *fx,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSummary) summary = NULL;
  g_autofree char *text = NULL;
  g_autofree char *body = NULL;
  g_autoptr(GString) comment = g_string_new (NULL);
  guint n_pages;

  /* A comment longer than a page must flow over pages too. */
  for (guint i = 0; i < 120; i++)
    g_string_append_printf (comment, "Phrase %u du commentaire, assez longue pour revenir à la ligne. ", i);
  g_assert_true (relais_diagnostic_set (fx->vault, fx->person, "emploi", "fort", NULL, comment->str, &error));
  g_assert_no_error (error);

  for (guint o = 0; o < 10; o++)
    {
      g_autofree char *objective_text = g_strdup_printf ("Objectif numéro %02u", o);
      g_autofree char *objective = relais_objective_add (fx->vault, fx->person,
                                                         relais_themes[o].key, objective_text, &error);

      g_assert_no_error (error);
      for (guint a = 0; a < 5; a++)
        {
          g_autofree char *action_text = g_strdup_printf ("Étape %02u-%u", o, a);
          g_autofree char *due = g_strdup_printf ("2027-%02u-%02u", a + 1, o + 1);
          g_autofree char *action = relais_action_add (fx->vault, objective, action_text, due, NULL, &error);

          g_assert_no_error (error);
        }
    }
  /* The journal is the référent's: it is not in the person's summary. */
  for (guint n = 0; n < 40; n++)
    {
      g_autofree char *note_text = g_strdup_printf ("Note de suivi %02u", n);
      g_autofree char *note = relais_note_add (fx->vault, fx->person, note_text, &error);

      g_assert_no_error (error);
    }

  write_pdf (fx, &summary);
  text = pdf_text (fx->pdf);
  if (text == NULL)
    return;

  n_pages = assert_page_footers (text);
  body = body_text (text);
  g_test_message ("%u pages", n_pages);
  g_assert_cmpuint (n_pages, >=, 3);
  g_assert_cmpuint (relais_summary_get_n_pages (summary), ==, n_pages);

  /* Every line once: none lost or doubled at a page break. */
  for (guint o = 0; o < 10; o++)
    {
      g_autofree char *objective_text = g_strdup_printf ("Objectif numéro %02u", o);

      g_assert_cmpuint (count (body, objective_text), ==, 1);
      for (guint a = 0; a < 5; a++)
        {
          g_autofree char *action_text = g_strdup_printf ("Étape %02u-%u", o, a);
          g_assert_cmpuint (count (body, action_text), ==, 1);
        }
    }
  for (guint i = 0; i < 120; i++)
    {
      g_autofree char *sentence = g_strdup_printf ("Phrase %u", i);

      g_assert_cmpuint (count_number (body, sentence), ==, 1);
    }
  assert_lacks (text, "Note de suivi");
  assert_has (text, "Aucun rendez-vous prévu");
}

static void
test_empty (Fixture       *fx,
            gconstpointer  data)
{
  g_autofree char *text = NULL;

  write_pdf (fx, NULL);
  text = pdf_text (fx->pdf);
  if (text == NULL)
    return;

  assert_has (text, "Hélène QUENOUILLÈRE");
  assert_has (text, "Aucun rendez-vous prévu");
  assert_has (text, "Aucun thème n’a encore été abordé");
  assert_has (text, "Aucun objectif n’a encore été fixé");
  g_assert_cmpuint (assert_page_footers (text), ==, 1);
}

static void
test_not_found (Fixture       *fx,
                gconstpointer  data)
{
  const char *ids[] = { "01a21210-0000-7000-8000-000000000000", "not-an-id", "" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(RelaisSummary) summary = relais_summary_new (fx->vault, ids[i], &error);

      g_assert_null (summary);
      g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND);
    }
  g_assert_false (g_file_test (fx->pdf, G_FILE_TEST_EXISTS));
}

static void
test_write_error (Fixture       *fx,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSummary) summary = relais_summary_new (fx->vault, fx->person, &error);
  g_autofree char *path = g_build_filename (fx->dir, "Quenouillère", "restitution.pdf", NULL);

  g_assert_no_error (error);
  g_assert_false (relais_summary_write_pdf (summary, path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  /* The path may name the person: the message does not quote it. */
  g_assert_null (strstr (error->message, "Quenouillère"));
}

/* The same renderer on another page size, as a printer asks for it. */
static void
test_page_size (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSummary) summary = NULL;
  cairo_surface_t *surface;
  cairo_t *cr;
  guint a4, a5, again;

  for (guint o = 0; o < 6; o++)
    {
      g_autofree char *objective = relais_objective_add (fx->vault, fx->person, "emploi",
                                                         "Préparer des candidatures", &error);
      g_assert_no_error (error);
      for (guint a = 0; a < 4; a++)
        {
          g_autofree char *action = relais_action_add (fx->vault, objective, "Relancer un employeur",
                                                       NULL, NULL, &error);
          g_assert_no_error (error);
        }
    }
  summary = relais_summary_new (fx->vault, fx->person, &error);
  g_assert_no_error (error);

  surface = cairo_recording_surface_create (CAIRO_CONTENT_COLOR_ALPHA, NULL);
  cr = cairo_create (surface);
  a4 = relais_summary_paginate (summary, cr, 595.276, 841.89);
  a5 = relais_summary_paginate (summary, cr, 419.528, 595.276);
  g_assert_cmpuint (a5, >, a4);
  for (guint page = 0; page < a5; page++)
    relais_summary_draw_page (summary, cr, page);
  g_assert_cmpint (cairo_status (cr), ==, CAIRO_STATUS_SUCCESS);
  again = relais_summary_paginate (summary, cr, 595.276, 841.89);
  g_assert_cmpuint (again, ==, a4);
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
}

static void
test_dates (void)
{
  const struct { const char *date; gboolean weekday; const char *expected; } cases[] = {
    { "2026-11-25", FALSE, "25 novembre 2026" },
    { "2026-12-01", FALSE, "1er décembre 2026" },
    { "2026-12-01", TRUE,  "mardi 1er décembre 2026" },
    { "2027-08-15", TRUE,  "dimanche 15 août 2027" },
    { "2028-02-29", FALSE, "29 février 2028" },
    { "2027-02-29", FALSE, NULL },
    { "2026-13-01", FALSE, NULL },
    { "25/11/2026", FALSE, NULL },
    { "", FALSE, NULL },
    { NULL, FALSE, NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = relais_summary_format_date (cases[i].date, cases[i].weekday);
      g_assert_cmpstr (text, ==, cases[i].expected);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/summary/full", Fixture, NULL, fixture_setup, test_full, fixture_teardown);
  g_test_add ("/summary/long", Fixture, NULL, fixture_setup, test_long, fixture_teardown);
  g_test_add ("/summary/empty", Fixture, NULL, fixture_setup, test_empty, fixture_teardown);
  g_test_add ("/summary/not-found", Fixture, NULL, fixture_setup, test_not_found, fixture_teardown);
  g_test_add ("/summary/write-error", Fixture, NULL, fixture_setup, test_write_error, fixture_teardown);
  g_test_add ("/summary/page-size", Fixture, NULL, fixture_setup, test_page_size, fixture_teardown);
  g_test_add_func ("/summary/dates", test_dates);

  return g_test_run ();
}
