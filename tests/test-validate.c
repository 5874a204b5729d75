#include "config.h"

#include <string.h>

#include <glib.h>

#include "relais-fold.h"
#include "relais-validate.h"

typedef char *(*NormalizeFunc) (const char *text);

/* Checks @func maps @input to @expected (NULL: refused). */
static void
check (NormalizeFunc  func,
       const char    *input,
       const char    *expected)
{
  g_autofree char *got = func (input);

  if (g_strcmp0 (got, expected) != 0)
    g_test_message ("input \"%s\": expected \"%s\", got \"%s\"",
                    input, expected ? expected : "(null)", got ? got : "(null)");
  g_assert_cmpstr (got, ==, expected);
}

static void
test_fold_accents (void)
{
  check (relais_fold, "Quenouillère", "quenouillere");
  check (relais_fold, "QUENOUILLERE", "quenouillere");
  check (relais_fold, "Hélène", "helene");
  check (relais_fold, "HÉLÈNE", "helene");
  check (relais_fold, "Françoise", "francoise");
  check (relais_fold, "Noël Zoë Anaïs", "noel zoe anais");
  /* Decomposed input, as macOS writes it. */
  check (relais_fold, "He\xcc\x81le\xcc\x80ne", "helene");
  check (relais_fold, "", "");
}

static void
test_fold_ligatures (void)
{
  check (relais_fold, "Œuvre", "oeuvre");
  check (relais_fold, "cœur", "coeur");
  check (relais_fold, "Lætitia", "laetitia");
  check (relais_fold, "LÆTITIA", "laetitia");
  check (relais_fold, "Straße", "strasse");
}

static void
test_fold_space_and_apostrophe (void)
{
  check (relais_fold, "  Jean \t  Pierre \n", "jean pierre");
  check (relais_fold, "Jean\xc2\xa0Pierre", "jean pierre");        /* U+00A0 */
  check (relais_fold, "Jean\xe2\x80\xaf" "Pierre", "jean pierre");  /* U+202F */
  check (relais_fold, "N’Diaye", "n'diaye");
  check (relais_fold, "Nom d’usage", "nom d'usage");
  check (relais_fold, "   ", "");
}

static void
test_fold_invalid_utf8 (void)
{
  g_autofree char *folded = relais_fold ("Ab\xff\xfe" "C\xc3");

  g_assert_nonnull (folded);
  g_assert_true (g_utf8_validate (folded, -1, NULL));
  g_assert_true (g_str_has_prefix (folded, "ab"));
}

static void
test_date (void)
{
  check (relais_normalize_date, "03/04/1985", "1985-04-03");
  check (relais_normalize_date, "3/4/1985", "1985-04-03");
  check (relais_normalize_date, " 03/04/1985 ", "1985-04-03");
  check (relais_normalize_date, "1985-04-03", "1985-04-03");
  check (relais_normalize_date, "1985-4-3", "1985-04-03");
  check (relais_normalize_date, "29/02/2000", "2000-02-29");
  check (relais_normalize_date, "2024-02-29", "2024-02-29");

  check (relais_normalize_date, "29/02/1900", NULL);
  check (relais_normalize_date, "31/02/2000", NULL);
  check (relais_normalize_date, "2000-02-30", NULL);
  check (relais_normalize_date, "31/04/2000", NULL);
  check (relais_normalize_date, "2000-13-01", NULL);
  check (relais_normalize_date, "00/01/2000", NULL);
  check (relais_normalize_date, "01/00/2000", NULL);
  check (relais_normalize_date, "0000-01-01", NULL);
  check (relais_normalize_date, "01/02/85", NULL);
  check (relais_normalize_date, "01-02-1985", NULL);
  check (relais_normalize_date, "1985/02/01", NULL);
  check (relais_normalize_date, "001/02/1985", NULL);
  check (relais_normalize_date, "01/02/19850", NULL);
  check (relais_normalize_date, "19850-01-01", NULL);
  check (relais_normalize_date, "01/02/1985x", NULL);
  check (relais_normalize_date, "01/02/1985 12:00", NULL);
  check (relais_normalize_date, "4294967297-01-01", NULL);
  check (relais_normalize_date, "", NULL);
  check (relais_normalize_date, "abc", NULL);
  check (relais_normalize_date, "/", NULL);
}

static void
test_birth_date (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autoptr(GDateTime) tomorrow = g_date_time_add_days (now, 1);
  g_autofree char *today_iso = g_date_time_format (now, "%Y-%m-%d");
  g_autofree char *today_fr = g_date_time_format (now, "%d/%m/%Y");
  g_autofree char *tomorrow_fr = g_date_time_format (tomorrow, "%d/%m/%Y");

  check (relais_normalize_birth_date, "01/01/1900", "1900-01-01");
  check (relais_normalize_birth_date, "31/12/1899", NULL);
  check (relais_normalize_birth_date, today_fr, today_iso);
  check (relais_normalize_birth_date, tomorrow_fr, NULL);
  check (relais_normalize_birth_date, "01/01/2999", NULL);
  check (relais_normalize_birth_date, "31/02/1980", NULL);
}

static void
test_phone (void)
{
  check (relais_normalize_phone, "0612345678", "0612345678");
  check (relais_normalize_phone, "06 12 34 56 78", "0612345678");
  check (relais_normalize_phone, "06.12.34.56.78", "0612345678");
  check (relais_normalize_phone, "06-12-34-56-78", "0612345678");
  check (relais_normalize_phone, "(06) 12 34 56 78", "0612345678");
  check (relais_normalize_phone, " 01 40 00 00 00 ", "0140000000");
  check (relais_normalize_phone, "06\xe2\x80\xaf" "12\xe2\x80\xaf" "34\xc2\xa0" "56 78", "0612345678");
  /* What a spreadsheet leaves of 06 12 34 56 78 when it took it for a number. */
  check (relais_normalize_phone, "612345678", "0612345678");
  check (relais_normalize_phone, "140000000", "0140000000");
  check (relais_normalize_phone, "+33 6 12 34 56 78", "+33612345678");
  check (relais_normalize_phone, "+33 (0)6 12 34 56 78", "+33612345678");
  check (relais_normalize_phone, "0033 6 12 34 56 78", "+33612345678");
  check (relais_normalize_phone, "+262 692 00 00 00", "+262692000000");
  check (relais_normalize_phone, "+12345678", "+12345678");
  check (relais_normalize_phone, "+123456789012345", "+123456789012345");

  check (relais_normalize_phone, "", NULL);
  check (relais_normalize_phone, "   ", NULL);
  check (relais_normalize_phone, "06 12 34 56", NULL);
  check (relais_normalize_phone, "06 12 34 56 78 9", NULL);
  check (relais_normalize_phone, "0012345", NULL);
  check (relais_normalize_phone, "812345678", NULL);
  check (relais_normalize_phone, "012345678", NULL);
  check (relais_normalize_phone, "+1234567", NULL);
  check (relais_normalize_phone, "+1234567890123456", NULL);
  check (relais_normalize_phone, "06 12 34 56 78 poste 12", NULL);
  check (relais_normalize_phone, "06+12345678", NULL);
  check (relais_normalize_phone, "++33612345678", NULL);
  check (relais_normalize_phone, "0612345678\xff", NULL);
  check (relais_normalize_phone, "abc", NULL);
}

static void
test_email (void)
{
  check (relais_normalize_email, "jean.dupont@exemple.fr", "jean.dupont@exemple.fr");
  check (relais_normalize_email, " Jean.Dupont@Exemple.FR ", "Jean.Dupont@exemple.fr");
  check (relais_normalize_email, "a+tag@sous.domaine.gouv.fr", "a+tag@sous.domaine.gouv.fr");

  check (relais_normalize_email, "", NULL);
  check (relais_normalize_email, "jean", NULL);
  check (relais_normalize_email, "jean@exemple", NULL);
  check (relais_normalize_email, "@exemple.fr", NULL);
  check (relais_normalize_email, "jean@", NULL);
  check (relais_normalize_email, "jean@@exemple.fr", NULL);
  check (relais_normalize_email, "jean@a@exemple.fr", NULL);
  check (relais_normalize_email, "jean dupont@exemple.fr", NULL);
  check (relais_normalize_email, "jean@exemple..fr", NULL);
  check (relais_normalize_email, "jean@.exemple.fr", NULL);
  check (relais_normalize_email, "jean@exemple.fr.", NULL);
  check (relais_normalize_email, ".jean@exemple.fr", NULL);
  check (relais_normalize_email, "jean.@exemple.fr", NULL);
  check (relais_normalize_email, "Jean <jean@exemple.fr>", NULL);
  check (relais_normalize_email, "a@exemple.fr;b@exemple.fr", NULL);
  check (relais_normalize_email, "a@exemple.fr,b@exemple.fr", NULL);
  check (relais_normalize_email, "jean\x01@exemple.fr", NULL);
}

static void
test_email_long (void)
{
  g_autofree char *local = g_strnfill (65, 'a');
  g_autofree char *address = g_strconcat (local, "@exemple.fr", NULL);
  g_autofree char *label = g_strnfill (250, 'b');
  g_autofree char *long_domain = g_strconcat ("a@", label, ".fr", NULL);

  check (relais_normalize_email, address, NULL);
  check (relais_normalize_email, long_domain, NULL);
  /* 64 bytes is the limit, not one less. */
  local[64] = '\0';
  g_free (address);
  address = g_strconcat (local, "@exemple.fr", NULL);
  check (relais_normalize_email, address, address);
}

static void
test_postal_code (void)
{
  check (relais_normalize_postal_code, "75011", "75011");
  check (relais_normalize_postal_code, " 69003 ", "69003");
  check (relais_normalize_postal_code, "1000", "01000");
  check (relais_normalize_postal_code, "01000", "01000");
  check (relais_normalize_postal_code, "97400", "97400");

  check (relais_normalize_postal_code, "", NULL);
  check (relais_normalize_postal_code, "750", NULL);
  check (relais_normalize_postal_code, "750011", NULL);
  check (relais_normalize_postal_code, "7500A", NULL);
  check (relais_normalize_postal_code, "75 011", NULL);
  check (relais_normalize_postal_code, "00123", NULL);
  check (relais_normalize_postal_code, "0123", NULL);
  check (relais_normalize_postal_code, "-7501", NULL);
}

static void
test_name (void)
{
  g_autofree char *limit = g_strnfill (200, 'a');
  g_autofree char *over = g_strnfill (201, 'a');

  check (relais_normalize_name, "Dupont", "Dupont");
  check (relais_normalize_name, "  Jean   Pierre\t", "Jean Pierre");
  check (relais_normalize_name, "Le\xc2\xa0Goff", "Le Goff");
  check (relais_normalize_name, "He\xcc\x81le\xcc\x80ne", "Hélène");
  check (relais_normalize_name, "N’Diaye", "N’Diaye");
  check (relais_normalize_name, limit, limit);

  check (relais_normalize_name, "", NULL);
  check (relais_normalize_name, " \t ", NULL);
  check (relais_normalize_name, over, NULL);
  check (relais_normalize_name, "Dup\xffont", NULL);
  check (relais_normalize_name, "Dup\x01ont", NULL);
  check (relais_normalize_name, "Dup\x7font", NULL);
}

/* Random bytes, and mutations of valid values, through every function:
 * none may crash, and whatever they accept must be valid UTF-8 that they
 * accept again unchanged. */
static void
test_fuzz (void)
{
  static const NormalizeFunc funcs[] = {
    relais_normalize_date, relais_normalize_birth_date, relais_normalize_phone,
    relais_normalize_email, relais_normalize_postal_code, relais_normalize_name,
  };
  static const char * const seeds[] = {
    "03/04/1985", "1985-04-03", "+33 (0)6 12 34 56 78", "06 12 34 56 78",
    "jean.dupont@exemple.fr", "1000", "Hélène N’Diaye",
  };
  static const char interesting[] = "0123456789/-+.()@ \t\n\xc2\xa0\xc3\xa9\xff\x01";

  for (guint iteration = 0; iteration < 5000; iteration++)
    {
      g_autoptr(GString) input = g_string_new (NULL);

      if (iteration % 2 == 0)
        {
          guint len = (guint) g_test_rand_int_range (0, 40);

          for (guint i = 0; i < len; i++)
            g_string_append_c (input, (char) g_test_rand_int_range (1, 256));
        }
      else
        {
          guint mutations = (guint) g_test_rand_int_range (1, 4);

          g_string_assign (input, seeds[g_test_rand_int_range (0, G_N_ELEMENTS (seeds))]);
          for (guint m = 0; m < mutations && input->len > 0; m++)
            {
              gsize at = (gsize) g_test_rand_int_range (0, (gint32) input->len);
              char c = interesting[g_test_rand_int_range (0, sizeof interesting - 1)];

              switch (g_test_rand_int_range (0, 3))
                {
                case 0: input->str[at] = c; break;
                case 1: g_string_insert_c (input, (gssize) at, c); break;
                default: g_string_erase (input, (gssize) at, 1); break;
                }
            }
        }

      for (guint f = 0; f < G_N_ELEMENTS (funcs); f++)
        {
          g_autofree char *out = funcs[f] (input->str);
          g_autofree char *again = NULL;
          g_autofree char *folded = relais_fold (input->str);

          g_assert_nonnull (folded);
          g_assert_true (g_utf8_validate (folded, -1, NULL));
          if (out == NULL)
            continue;
          g_assert_true (g_utf8_validate (out, -1, NULL));
          again = funcs[f] (out);
          g_assert_cmpstr (again, ==, out);
        }
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fold/accents", test_fold_accents);
  g_test_add_func ("/fold/ligatures", test_fold_ligatures);
  g_test_add_func ("/fold/space-and-apostrophe", test_fold_space_and_apostrophe);
  g_test_add_func ("/fold/invalid-utf8", test_fold_invalid_utf8);
  g_test_add_func ("/validate/date", test_date);
  g_test_add_func ("/validate/birth-date", test_birth_date);
  g_test_add_func ("/validate/phone", test_phone);
  g_test_add_func ("/validate/email", test_email);
  g_test_add_func ("/validate/email-long", test_email_long);
  g_test_add_func ("/validate/postal-code", test_postal_code);
  g_test_add_func ("/validate/name", test_name);
  g_test_add_func ("/validate/fuzz", test_fuzz);

  return g_test_run ();
}
