#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "relais-test-util.h"
#include "relais-csv.h"
#include "relais-import.h"
#include "relais-keyfile.h"
#include "relais-person.h"
#include "relais-vault.h"

typedef struct {
  char            *tmp;
  char            *dir;
  RelaisKdfParams  kdf;
  RelaisVault     *vault;
} Fixture;

static RelaisVaultOptions
fixture_options (Fixture *f)
{
  return (RelaisVaultOptions) { .kdf = &f->kdf };
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *recovery = NULL;
  RelaisVaultOptions options;

  f->tmp = g_dir_make_tmp ("relais-import-XXXXXX", &error);
  g_assert_no_error (error);
  f->dir = g_build_filename (f->tmp, "vault", NULL);
  relais_kdf_params_insecure_for_tests (&f->kdf);
  options = fixture_options (f);
  f->vault = relais_vault_create (f->dir, "pass", &options, &recovery, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->vault);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->vault, relais_vault_close);
  relais_test_rm_rf (f->tmp);
  g_free (f->dir);
  g_free (f->tmp);
}

static char *
load (const char *name,
      gsize      *out_len)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "data", "import", name, NULL);
  g_autoptr(GError) error = NULL;
  char *contents = NULL;

  g_file_get_contents (path, &contents, out_len, &error);
  g_assert_no_error (error);
  return contents;
}

static RelaisImportStats
import_ok (Fixture    *f,
           const char *data,
           gssize      len)
{
  g_autoptr(GError) error = NULL;
  RelaisImportStats stats = { 0 };
  gboolean ok;

  ok = relais_import_csv (f->vault, data, len < 0 ? strlen (data) : (gsize) len, &stats, &error);
  g_assert_no_error (error);
  g_assert_true (ok);
  return stats;
}

static RelaisImportStats
import_file_ok (Fixture    *f,
                const char *name)
{
  gsize len;
  g_autofree char *data = load (name, &len);

  return import_ok (f, data, (gssize) len);
}

/* Imports @data, asserts it is refused, returns the message. */
static char *
import_refused (Fixture    *f,
                const char *data,
                gssize      len)
{
  g_autoptr(GError) error = NULL;
  RelaisImportStats stats = { 1, 1, 1, 1 };
  gboolean ok;

  ok = relais_import_csv (f->vault, data, len < 0 ? strlen (data) : (gsize) len, &stats, &error);
  g_assert_false (ok);
  g_assert_nonnull (error);
  g_assert_cmpstr (error->message, !=, "");
  g_assert_cmpuint (stats.created + stats.updated + stats.unchanged, ==, 0);
  return g_strdup (error->message);
}

static guint
count_people (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) people = relais_person_search (f->vault, NULL, 0, &error);

  g_assert_no_error (error);
  g_assert_nonnull (people);
  return people->len;
}

static RelaisPerson *
find (Fixture    *f,
      const char *last_name,
      const char *first_name,
      const char *birth_date)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = relais_person_find_identity (f->vault, last_name, first_name, birth_date, &error);
  RelaisPerson *person;

  g_assert_no_error (error);
  if (id == NULL)
    return NULL;
  person = relais_person_get (f->vault, id, &error);
  g_assert_no_error (error);
  g_assert_nonnull (person);
  return person;
}

/* Stored empty optional fields may be NULL or "": both mean "none". */
static void
assert_empty (const char *value)
{
  g_assert_true (value == NULL || value[0] == '\0');
}

static void
test_excel_utf8_bom (Fixture       *f,
                     gconstpointer  data)
{
  RelaisImportStats stats = import_file_ok (f, "excel-utf8-bom.csv");
  g_autoptr(RelaisPerson) dupont = NULL;
  g_autoptr(RelaisPerson) ndiaye = NULL;
  g_autoptr(RelaisPerson) lefevre = NULL;

  g_assert_cmpuint (stats.rows, ==, 3);
  g_assert_cmpuint (stats.created, ==, 3);
  g_assert_cmpuint (stats.updated, ==, 0);
  g_assert_cmpuint (stats.unchanged, ==, 0);
  g_assert_cmpuint (count_people (f), ==, 3);

  dupont = find (f, "Dupont", "Hélène", "1985-04-03");
  g_assert_nonnull (dupont);
  g_assert_cmpstr (dupont->last_name, ==, "Dupont");
  g_assert_cmpstr (dupont->first_name, ==, "Hélène");
  g_assert_cmpstr (dupont->birth_date, ==, "1985-04-03");
  g_assert_cmpstr (dupont->phone, ==, "0612345678");
  g_assert_cmpstr (dupont->email, ==, "helene.dupont@exemple.fr");
  g_assert_cmpstr (dupont->postal_code, ==, "01000");
  g_assert_cmpstr (dupont->city, ==, "Bourg-en-Bresse");

  /* D/M/YYYY, and a typographic apostrophe. */
  ndiaye = find (f, "N’Diaye", "Moussa", "1990-02-01");
  g_assert_nonnull (ndiaye);
  g_assert_cmpstr (ndiaye->phone, ==, "0712345678");
  assert_empty (ndiaye->email);
  g_assert_cmpstr (ndiaye->postal_code, ==, "75011");

  lefevre = find (f, "Lefèvre", "Jean-Pierre", "1960-12-31");
  g_assert_nonnull (lefevre);
  assert_empty (lefevre->phone);
  g_assert_cmpstr (lefevre->email, ==, "jp.lefevre@exemple.fr");
  assert_empty (lefevre->postal_code);
  assert_empty (lefevre->city);
}

static void
test_cp1252 (Fixture       *f,
              gconstpointer  data)
{
  RelaisImportStats stats = import_file_ok (f, "excel-cp1252.csv");
  g_autoptr(RelaisPerson) dupont = NULL;
  g_autoptr(RelaisPerson) lefevre = NULL;

  g_assert_cmpuint (stats.created, ==, 2);
  dupont = find (f, "Dupont", "Hélène", "1985-04-03");
  g_assert_nonnull (dupont);
  g_assert_cmpstr (dupont->first_name, ==, "Hélène");
  lefevre = find (f, "Lefèvre", "Jean-Pierre", "1960-12-31");
  g_assert_nonnull (lefevre);
  g_assert_cmpstr (lefevre->last_name, ==, "Lefèvre");

  /* The same people saved as UTF-8 are the same people. */
  stats = import_file_ok (f, "excel-utf8-bom.csv");
  g_assert_cmpuint (stats.created, ==, 1);
  g_assert_cmpuint (stats.unchanged, ==, 2);
  g_assert_cmpuint (count_people (f), ==, 3);
}

static void
test_cp1252_inline (Fixture       *f,
                    gconstpointer  data)
{
  RelaisImportStats stats = import_ok (f, "Nom;Pr\xe9nom;Date de naissance;Commune\r\n"
                                          "No\xebl;H\xe9l\xe8ne;14/07/1995;\xc9vry\r\n", -1);
  g_autoptr(RelaisPerson) person = NULL;

  g_assert_cmpuint (stats.created, ==, 1);
  person = find (f, "Noël", "Hélène", "1995-07-14");
  g_assert_nonnull (person);
  g_assert_cmpstr (person->city, ==, "Évry");
}

static void
test_english_comma (Fixture       *f,
                    gconstpointer  data)
{
  RelaisImportStats stats = import_file_ok (f, "english-comma.csv");
  g_autoptr(RelaisPerson) martin = NULL;
  g_autoptr(RelaisPerson) bernard = NULL;

  g_assert_cmpuint (stats.rows, ==, 2);
  g_assert_cmpuint (stats.created, ==, 2);

  martin = find (f, "Martin", "Chloé", "2001-09-15");
  g_assert_nonnull (martin);
  g_assert_cmpstr (martin->phone, ==, "0698765432");
  g_assert_cmpstr (martin->postal_code, ==, "69003");
  g_assert_cmpstr (martin->city, ==, "Lyon");

  bernard = find (f, "Bernard", "Luc", "1975-05-20");
  g_assert_nonnull (bernard);
  g_assert_cmpstr (bernard->phone, ==, "+33611223344");
  assert_empty (bernard->email);
}

static void
test_quoted (Fixture       *f,
             gconstpointer  data)
{
  RelaisImportStats stats = import_file_ok (f, "quoted.csv");
  g_autoptr(RelaisPerson) legoff = NULL;
  g_autoptr(RelaisPerson) payet = NULL;

  /* Two people; the blank line and the ";;;;;;" row are no one. */
  g_assert_cmpuint (stats.rows, ==, 2);
  g_assert_cmpuint (stats.created, ==, 2);
  g_assert_cmpuint (count_people (f), ==, 2);

  legoff = find (f, "Le Goff; épouse Martin", "Anne-Sophie", "1979-06-12");
  g_assert_nonnull (legoff);
  g_assert_cmpstr (legoff->city, ==, "Nantes");
  g_assert_cmpstr (legoff->phone, ==, "0240000000");

  payet = find (f, "Payet", "Éric", "1988-02-29");
  g_assert_nonnull (payet);
  g_assert_cmpstr (payet->city, ==, "Saint-Denis, La Réunion");
  g_assert_cmpstr (payet->phone, ==, "0692000000");
}

static void
test_reimport (Fixture       *f,
               gconstpointer  data)
{
  RelaisImportStats stats;

  import_file_ok (f, "excel-utf8-bom.csv");
  stats = import_file_ok (f, "excel-utf8-bom.csv");
  g_assert_cmpuint (stats.rows, ==, 3);
  g_assert_cmpuint (stats.created, ==, 0);
  g_assert_cmpuint (stats.updated, ==, 0);
  g_assert_cmpuint (stats.unchanged, ==, 3);
  g_assert_cmpuint (count_people (f), ==, 3);
}

static void
test_update (Fixture       *f,
             gconstpointer  data)
{
  RelaisImportStats stats;
  g_autoptr(RelaisPerson) dupont = NULL;
  g_autoptr(RelaisPerson) lefevre = NULL;

  import_file_ok (f, "excel-utf8-bom.csv");
  /* Upper case, no accents, another separator, ISO dates: the same
   * people.  Dupont has a new phone; her empty e-mail cell keeps the
   * address. */
  stats = import_file_ok (f, "update.csv");
  g_assert_cmpuint (stats.rows, ==, 3);
  g_assert_cmpuint (stats.created, ==, 0);
  g_assert_cmpuint (stats.updated, ==, 1);
  g_assert_cmpuint (stats.unchanged, ==, 2);
  g_assert_cmpuint (count_people (f), ==, 3);

  dupont = find (f, "Dupont", "Hélène", "1985-04-03");
  g_assert_nonnull (dupont);
  g_assert_cmpstr (dupont->phone, ==, "0700000001");
  g_assert_cmpstr (dupont->email, ==, "helene.dupont@exemple.fr");
  g_assert_cmpstr (dupont->postal_code, ==, "01000");
  /* The accents the file lost stay in the vault. */
  g_assert_cmpstr (dupont->last_name, ==, "Dupont");
  g_assert_cmpstr (dupont->first_name, ==, "Hélène");

  lefevre = find (f, "LEFEVRE", "jean-pierre", "1960-12-31");
  g_assert_nonnull (lefevre);
  g_assert_cmpstr (lefevre->last_name, ==, "Lefèvre");
  g_assert_cmpstr (lefevre->email, ==, "jp.lefevre@exemple.fr");
}

static void
test_bad_rows (Fixture       *f,
               gconstpointer  data)
{
  gsize len;
  g_autofree char *bad = load ("bad-rows.csv", &len);
  g_autofree char *message = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(RelaisPerson) before = NULL;
  g_autoptr(RelaisPerson) after = NULL;
  g_autoptr(RelaisPerson) riviere = NULL;
  static const char * const personal[] = {
    "Moreau", "Paul", "31/02/1980", "Fontaine", "Hugo", "12 34", "Rivière", "Léa", "Girard",
  };

  import_file_ok (f, "excel-utf8-bom.csv");
  before = find (f, "Dupont", "Hélène", "1985-04-03");
  g_assert_nonnull (before);

  message = import_refused (f, bad, (gssize) len);
  lines = g_strsplit (message, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  g_assert_true (g_str_has_prefix (lines[0], "line 3: "));
  g_assert_nonnull (strstr (lines[0], "birth date"));
  g_assert_true (g_str_has_prefix (lines[1], "line 5: "));
  g_assert_nonnull (strstr (lines[1], "phone"));
  for (guint i = 0; i < G_N_ELEMENTS (personal); i++)
    g_assert_null (strstr (message, personal[i]));

  /* Nothing of the file reached the vault, the good rows included. */
  g_assert_cmpuint (count_people (f), ==, 3);
  riviere = find (f, "Rivière", "Léa", "1995-07-14");
  g_assert_null (riviere);
  after = find (f, "Dupont", "Hélène", "1985-04-03");
  g_assert_nonnull (after);
  g_assert_cmpstr (after->id, ==, before->id);
  g_assert_cmpstr (after->phone, ==, before->phone);
}

static void
test_bad_row_reasons (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autoptr(GDateTime) next_year = g_date_time_add_years (now, 1);
  g_autofree char *future = g_date_time_format (next_year, "%d/%m/%Y");
  g_autofree char *file = g_strdup_printf (
    "Nom;Prénom;Date de naissance;Courriel;Code postal;Téléphone\n"
    ";Léa;14/07/1995;;;\n"                           /* 2: no last name */
    "Rivière;  ;14/07/1995;;;\n"                     /* 3: no first name */
    "Rivière;Léa;;;;\n"                              /* 4: no birth date */
    "Rivière;Léa;%s;;;\n"                            /* 5: future */
    "Rivière;Léa;31/12/1899;;;\n"                    /* 6: before 1900 */
    "Rivière;Léa;14/07/95;;;\n"                      /* 7: not a date */
    "Rivière;Léa;14/07/1995;lea@;;\n"                /* 8: e-mail */
    "Rivière;Léa;14/07/1995;;750;\n"                 /* 9: postal code */
    "Rivière;Léa;14/07/1995;;;;extra\n"              /* 10: too many fields */
    "Rivière;Léa;14/07/1995;;75001;0612345678;\n"    /* 11: good, trailing separator */
    "RIVIERE;lea;1995-07-14;;;\n"                    /* 12: same as 11 */
    ";;;;;\n"                                        /* 13: empty row, skipped */
    "Rivière;Léa;;lea@;;abc\n",                      /* 14: three reasons */
    future);
  g_autofree char *message = import_refused (f, file, -1);
  g_auto(GStrv) lines = g_strsplit (message, "\n", -1);

  g_test_message ("%s", message);
  g_assert_cmpuint (g_strv_length (lines), ==, 11);
  g_assert_cmpstr (lines[0], ==, "line 2: the last name is missing");
  g_assert_cmpstr (lines[1], ==, "line 3: the first name is missing");
  g_assert_cmpstr (lines[2], ==, "line 4: the birth date is missing");
  g_assert_cmpstr (lines[3], ==, "line 5: the birth date is in the future");
  g_assert_cmpstr (lines[4], ==, "line 6: the birth date is before 1900");
  g_assert_true (g_str_has_prefix (lines[5], "line 7: the birth date is not a date"));
  g_assert_cmpstr (lines[6], ==, "line 8: the e-mail address is not valid");
  g_assert_cmpstr (lines[7], ==, "line 9: the postal code is not valid");
  g_assert_true (g_str_has_prefix (lines[8], "line 10: more fields than the header"));
  g_assert_cmpstr (lines[9], ==, "line 12: same person as line 11");
  g_assert_true (g_str_has_prefix (lines[10], "line 14: "));
  g_assert_nonnull (strstr (lines[10], "birth date"));
  g_assert_nonnull (strstr (lines[10], "e-mail"));
  g_assert_nonnull (strstr (lines[10], "phone"));
  g_assert_cmpuint (count_people (f), ==, 0);
}

static void
test_many_bad_rows (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GString) file = g_string_new ("Nom;Prénom;Date de naissance\n");
  g_autofree char *message = NULL;
  g_auto(GStrv) lines = NULL;

  for (guint i = 0; i < 30; i++)
    g_string_append_printf (file, "Nom%u;Prénom;32/01/1980\n", i);
  message = import_refused (f, file->str, (gssize) file->len);
  lines = g_strsplit (message, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 21);
  g_assert_true (g_str_has_prefix (lines[0], "line 2: "));
  g_assert_true (g_str_has_prefix (lines[19], "line 21: "));
  g_assert_cmpstr (lines[20], ==, "… and 10 more bad rows");
}

static void
test_missing_column (Fixture       *f,
                     gconstpointer  data)
{
  gsize len;
  g_autofree char *file = load ("missing-column.csv", &len);
  g_autofree char *message = import_refused (f, file, (gssize) len);
  g_autofree char *two = import_refused (f, "Nom;Ville\nDupont;Lyon\n", -1);

  g_assert_null (strchr (message, '\n'));
  g_assert_true (g_str_has_prefix (message, "line 1: "));
  g_assert_nonnull (strstr (message, "birth date"));
  g_assert_nonnull (strstr (message, "“Date de naissance”"));
  g_assert_null (strstr (message, "first name"));
  g_assert_null (strstr (message, "Rivière"));

  g_test_message ("%s", two);
  g_assert_null (strchr (two, '\n'));
  g_assert_nonnull (strstr (two, "first name"));
  g_assert_nonnull (strstr (two, "birth date"));
  g_assert_null (strstr (two, "last name"));
  g_assert_cmpuint (count_people (f), ==, 0);
}

static void
test_duplicate_column (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *message = import_refused (f, "Nom;Prénom;Date de naissance;Ville;Commune\n"
                                                "Dupont;Hélène;03/04/1985;Lyon;Lyon\n", -1);

  g_assert_true (g_str_has_prefix (message, "line 1: "));
  g_assert_nonnull (strstr (message, "D and E"));
  g_assert_nonnull (strstr (message, "city"));
  g_assert_cmpuint (count_people (f), ==, 0);
}

static void
test_header_variants (Fixture       *f,
                      gconstpointer  data)
{
  static const char * const files[] = {
    "NOM DE FAMILLE;PRÉNOM(S);NÉ(E) LE;N° de téléphone;E-mail;CP;Localité\n"
    "Martin;Léo;01/02/2003;0601020304;leo@exemple.fr;59000;Lille\n",
    "nom_d_usage,prenom,date_naissance,tel_portable,adresse_electronique,code_postal,ville\n"
    "Martin,Léo,2003-02-01,06 01 02 03 04,leo@exemple.fr,59000,Lille\n",
    "Surname;Given name;DOB;Mobile;Mail;ZIP;Town\n"
    "Martin;Léo;01/02/2003;+33 6 01 02 03 04;leo@exemple.fr;59000;Lille\n",
    "Date de naissance : ;Nom d’usage *;Prénom *;Portable;Courriel;Code postal;Commune\n"
    "01/02/2003;Martin;Léo;06.01.02.03.04;leo@exemple.fr;59000;Lille\n",
  };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      RelaisImportStats stats = import_ok (f, files[i], -1);
      g_autoptr(RelaisPerson) person = find (f, "Martin", "Léo", "2003-02-01");

      g_assert_cmpuint (stats.rows, ==, 1);
      g_assert_cmpuint (stats.created, ==, i == 0 ? 1 : 0);
      g_assert_nonnull (person);
      g_assert_cmpstr (person->city, ==, "Lille");
      g_assert_cmpstr (person->postal_code, ==, "59000");
      g_assert_cmpstr (person->email, ==, "leo@exemple.fr");
      /* The third file gives the number in international form. */
      g_assert_cmpstr (person->phone, ==, i == 2 ? "+33601020304" : "0601020304");
    }
  g_assert_cmpuint (count_people (f), ==, 1);
}

static void
test_separator_fallback (Fixture       *f,
                         gconstpointer  data)
{
  /* More commas than semicolons in the header, yet ';' is the separator. */
  RelaisImportStats stats = import_ok (f, "Nom;Prénom;Date de naissance;Suivi (emploi, logement, santé, mobilité, etc.)\n"
                                          "Durand;Zoé;05/06/2007;a, b\n", -1);
  g_autoptr(RelaisPerson) person = NULL;

  g_assert_cmpuint (stats.created, ==, 1);
  person = find (f, "Durand", "Zoé", "2007-06-05");
  g_assert_nonnull (person);
}

static void
test_duplicate_in_file (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *message = import_refused (f, "Nom;Prénom;Date de naissance\n"
                                                "Dupont;Hélène;03/04/1985\n"
                                                "Martin;Léo;01/02/2003\n"
                                                "DUPONT;helene;1985-04-03\n", -1);

  g_assert_cmpstr (message, ==, "line 4: same person as line 2");
  g_assert_cmpuint (count_people (f), ==, 0);
}

static void
test_header_only (Fixture       *f,
                  gconstpointer  data)
{
  RelaisImportStats stats = import_ok (f, "Nom;Prénom;Date de naissance\r\n\r\n;;\r\n", -1);

  g_assert_cmpuint (stats.rows, ==, 0);
  g_assert_cmpuint (count_people (f), ==, 0);
}

static const char nul_file[] = "Nom;Prénom;Date de naissance\nDu\0pont;Hélène;03/04/1985\n";

static void
test_broken_files (Fixture       *f,
                   gconstpointer  data)
{
  static const struct {
    const char *data;
    gssize      len;
  } files[] = {
    { "", 0 },
    { "\xEF\xBB\xBF", 3 },
    { ";;;;\r\n;;;;\r\n", -1 },
    { "Nom;Prénom;Date de naissance\nDupont;\"Hélène;03/04/1985\n", -1 },
    { "Nom;Pr\xe9nom;Date de naissance\nDupont;\x81;03/04/1985\n", -1 },
    { nul_file, sizeof nul_file - 1 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *message = import_refused (f, files[i].data, files[i].len);

      g_assert_null (strstr (message, "Dupont"));
      g_assert_null (strstr (message, "Hélène"));
    }
  g_assert_cmpuint (count_people (f), ==, 0);
}

#define KILLED_MIDWAY_ROWS 300

static GString *
batch_file (guint batch,
            guint n)
{
  GString *file = g_string_new ("Nom;Prénom;Date de naissance;Téléphone;Commune\r\n");

  for (guint i = 0; i < n; i++)
    g_string_append_printf (file, "Lot%u-%u;Personne;%02u/%02u/19%02u;06 00 %02u %02u %02u;Rennes\r\n",
                            batch, i, 1 + i % 28, 1 + i % 12, 40 + i % 60,
                            batch % 100, (i / 100) % 100, i % 100);
  return file;
}

static guint
count_in_closed_vault (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  RelaisVaultOptions options = fixture_options (f);
  guint n;

  f->vault = relais_vault_open (f->dir, "pass", &options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->vault);
  n = count_people (f);
  g_clear_pointer (&f->vault, relais_vault_close);
  return n;
}

static gpointer
kill_after (gpointer data)
{
  g_usleep (GPOINTER_TO_UINT (data));
  kill (getpid (), SIGKILL);
  return NULL;
}

/* The child of /import/killed-midway: a fresh process (not a fork, whose
 * random generator would repeat its parent's ids) that imports one batch
 * into the vault the parent names, and is killed after the delay it
 * gives, wherever the import is then. */
static void
killed_midway_child (void)
{
  const char *dir = g_getenv ("RELAIS_TEST_IMPORT_VAULT");
  guint batch = (guint) g_ascii_strtoull (g_getenv ("RELAIS_TEST_IMPORT_BATCH"), NULL, 10);
  guint delay = (guint) g_ascii_strtoull (g_getenv ("RELAIS_TEST_IMPORT_DELAY"), NULL, 10);
  g_autoptr(GString) file = batch_file (batch, KILLED_MIDWAY_ROWS);
  RelaisKdfParams kdf;
  RelaisVaultOptions options = { .kdf = &kdf };
  RelaisVault *vault;

  relais_kdf_params_insecure_for_tests (&kdf);
  if (delay > 0)
    g_thread_unref (g_thread_new ("killer", kill_after, GUINT_TO_POINTER (delay)));
  vault = relais_vault_open (dir, "pass", &options, NULL);
  g_assert_nonnull (vault);
  g_assert_true (relais_import_csv (vault, file->str, file->len, NULL, NULL));
  /* Leave without closing, as a crash would. */
  _exit (0);
}

/* Runs the child on @batch; returns whether it was killed. */
static gboolean
run_child (Fixture *f,
           guint    batch,
           guint    delay)
{
  g_autofree char *batch_text = g_strdup_printf ("%u", batch);
  g_autofree char *delay_text = g_strdup_printf ("%u", delay);

  g_setenv ("RELAIS_TEST_IMPORT_VAULT", f->dir, TRUE);
  g_setenv ("RELAIS_TEST_IMPORT_BATCH", batch_text, TRUE);
  g_setenv ("RELAIS_TEST_IMPORT_DELAY", delay_text, TRUE);
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  if (g_test_trap_has_passed ())
    return FALSE;
  /* Our SIGKILL leaves nothing on stderr; a failed assertion, a critical
   * or a sanitizer report in the child is a failure, not a kill. */
  g_test_trap_assert_stderr_unmatched ("*ERROR*");
  g_test_trap_assert_stderr_unmatched ("*CRITICAL*");
  g_test_trap_assert_stderr_unmatched ("*WARNING*");
  return TRUE;
}

/* A process killed in the middle of an import leaves all of the file or
 * none of it. */
static void
test_killed_midway (void)
{
  const guint n = KILLED_MIDWAY_ROWS;
  const guint rounds = 10;
  Fixture fixture = { 0 };
  Fixture *f = &fixture;
  gint64 start, duration;
  guint expected, killed = 0;

  /* Not a g_test_add() fixture: the child runs this same test path and
   * must not make (and, killed, leak) a vault of its own. */
  if (g_test_subprocess ())
    {
      killed_midway_child ();
      return;
    }

  fixture_setup (f, NULL);
  g_clear_pointer (&f->vault, relais_vault_close);

  /* How long a whole child takes here, to aim the kills at every part of
   * its import. */
  start = g_get_monotonic_time ();
  g_assert_false (run_child (f, 0, 0));
  duration = g_get_monotonic_time () - start;
  g_test_message ("one child importing %u rows: %" G_GINT64_FORMAT " µs", n, duration);
  expected = count_in_closed_vault (f);
  g_assert_cmpuint (expected, ==, n);

  for (guint round = 1; round <= rounds; round++)
    {
      guint delay = (guint) (duration * round / rounds);
      guint count;

      if (run_child (f, round, delay))
        killed++;
      count = count_in_closed_vault (f);
      g_test_message ("round %u: %u people", round, count);
      g_assert_true (count == expected || count == expected + n);
      expected = count;
    }

  g_test_message ("%u of %u children killed; %u people stored", killed, rounds, expected);
  fixture_teardown (f, NULL);
}

/* Mutations of a good file: every import either stores the file or is
 * refused with a message and leaves the vault as it was. */
static void
test_fuzz (Fixture       *f,
           gconstpointer  data)
{
  gsize len;
  g_autofree char *good = load ("quoted.csv", &len);
  static const char interesting[] = "\";,\r\n/0123456789 \xe9\xc3\x81";
  guint imported = 0, refused = 0;

  for (guint iteration = 0; iteration < 300; iteration++)
    {
      g_autoptr(GByteArray) file = g_byte_array_new ();
      g_autoptr(GError) error = NULL;
      guint mutations = (guint) g_test_rand_int_range (1, 5);
      guint before = count_people (f);
      RelaisImportStats stats = { 0 };

      g_byte_array_append (file, (const guint8 *) good, (guint) len);
      for (guint m = 0; m < mutations; m++)
        {
          guint at = (guint) g_test_rand_int_range (0, (gint32) file->len);
          guint8 byte = (guint8) interesting[g_test_rand_int_range (0, sizeof interesting - 1)];

          if (g_test_rand_bit ())
            file->data[at] = byte;
          else
            g_array_insert_val ((GArray *) file, at, byte);
        }

      if (relais_import_csv (f->vault, (const char *) file->data, file->len, &stats, &error))
        {
          g_assert_no_error (error);
          g_assert_cmpuint (count_people (f), ==, before + stats.created);
          imported++;
        }
      else
        {
          g_assert_nonnull (error);
          g_assert_cmpstr (error->message, !=, "");
          g_assert_cmpuint (count_people (f), ==, before);
          refused++;
        }
    }

  g_test_message ("%u imported, %u refused", imported, refused);
  g_assert_cmpuint (imported, >, 0);
  g_assert_cmpuint (refused, >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)

  ADD ("/import/excel-utf8-bom", test_excel_utf8_bom);
  ADD ("/import/cp1252", test_cp1252);
  ADD ("/import/cp1252-inline", test_cp1252_inline);
  ADD ("/import/english-comma", test_english_comma);
  ADD ("/import/quoted", test_quoted);
  ADD ("/import/reimport", test_reimport);
  ADD ("/import/update", test_update);
  ADD ("/import/bad-rows", test_bad_rows);
  ADD ("/import/bad-row-reasons", test_bad_row_reasons);
  ADD ("/import/many-bad-rows", test_many_bad_rows);
  ADD ("/import/missing-column", test_missing_column);
  ADD ("/import/duplicate-column", test_duplicate_column);
  ADD ("/import/header-variants", test_header_variants);
  ADD ("/import/separator-fallback", test_separator_fallback);
  ADD ("/import/duplicate-in-file", test_duplicate_in_file);
  ADD ("/import/header-only", test_header_only);
  ADD ("/import/broken-files", test_broken_files);
  g_test_add_func ("/import/killed-midway", test_killed_midway);
  ADD ("/import/fuzz", test_fuzz);

#undef ADD

  return g_test_run ();
}
