#include "config.h"

#include <string.h>

#include <glib.h>

#include "relais-csv.h"

/* Parses @len bytes of @data (-1: a string) and asserts success. */
static GPtrArray *
parse_ok (const char *data,
          gssize      len)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *records;

  records = relais_csv_parse (data, len < 0 ? strlen (data) : (gsize) len, &error);
  g_assert_no_error (error);
  g_assert_nonnull (records);
  return records;
}

/* Parses and asserts failure with @code; returns the message. */
static char *
parse_fails (const char *data,
             gssize      len,
             int         code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) records = NULL;

  records = relais_csv_parse (data, len < 0 ? strlen (data) : (gsize) len, &error);
  g_assert_null (records);
  g_assert_error (error, RELAIS_CSV_ERROR, code);
  g_assert_cmpstr (error->message, !=, "");
  return g_strdup (error->message);
}

static RelaisCsvRecord *
record_at (GPtrArray *records,
           guint      i)
{
  g_assert_cmpuint (i, <, records->len);
  return g_ptr_array_index (records, i);
}

/* Asserts record @i is on @line and holds exactly the NULL-terminated
 * fields that follow. */
static void
assert_record (GPtrArray *records,
               guint      i,
               guint      line,
               ...)
{
  RelaisCsvRecord *record = record_at (records, i);
  va_list ap;
  guint n = 0;
  const char *expected;

  g_assert_cmpuint (record->line, ==, line);
  va_start (ap, line);
  while ((expected = va_arg (ap, const char *)) != NULL)
    {
      g_assert_cmpuint (n, <, record->fields->len);
      g_assert_cmpstr (g_ptr_array_index (record->fields, n), ==, expected);
      n++;
    }
  va_end (ap);
  g_assert_cmpuint (record->fields->len, ==, n);
}

static void
test_semicolon (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("Nom;Prénom;Ville\nDupont;Hélène;Bourg-en-Bresse\n", -1);

  g_assert_cmpuint (records->len, ==, 2);
  assert_record (records, 0, 1, "Nom", "Prénom", "Ville", NULL);
  assert_record (records, 1, 2, "Dupont", "Hélène", "Bourg-en-Bresse", NULL);
}

static void
test_comma (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("Last name,First name,City\nMartin,Chloé,Lyon\n", -1);

  g_assert_cmpuint (records->len, ==, 2);
  assert_record (records, 1, 2, "Martin", "Chloé", "Lyon", NULL);
}

static void
test_tab (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("Nom\tPrénom\nLe Goff\tAnne; Marie\n", -1);

  assert_record (records, 1, 2, "Le Goff", "Anne; Marie", NULL);
}

static void
test_separator_detection (void)
{
  g_autoptr(GPtrArray) a = NULL;
  g_autoptr(GPtrArray) b = NULL;
  g_autoptr(GPtrArray) c = NULL;

  /* Commas inside quotes do not count. */
  a = parse_ok ("\"Nom, usage\";\"a,b\";Prénom\nx,y;z\n", -1);
  assert_record (a, 0, 1, "Nom, usage", "a,b", "Prénom", NULL);
  assert_record (a, 1, 2, "x,y", "z", NULL);

  /* A tie goes to ';', the French default. */
  b = parse_ok ("a,b;c\n", -1);
  assert_record (b, 0, 1, "a,b", "c", NULL);

  /* Only the header decides: data lines full of commas do not. */
  c = parse_ok ("Nom;Prénom\nDupont, dit Martin;Jean, Paul, Marie\n", -1);
  assert_record (c, 1, 2, "Dupont, dit Martin", "Jean, Paul, Marie", NULL);
}

static void
test_explicit_separator (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) records = NULL;

  records = relais_csv_parse_with_separator ("a;b,c\n1;2,3\n", 12, ',', &error);
  g_assert_no_error (error);
  assert_record (records, 0, 1, "a;b", "c", NULL);
  assert_record (records, 1, 2, "1;2", "3", NULL);
}

static void
test_bom (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("\xEF\xBB\xBFNom;Prénom\r\nDupont;Hélène\r\n", -1);

  /* The BOM must not stick to the first header. */
  assert_record (records, 0, 1, "Nom", "Prénom", NULL);
  assert_record (records, 1, 2, "Dupont", "Hélène", NULL);
}

static void
test_cp1252 (void)
{
  /* "Prénom", "Hélène", "Œuvre", "€" in Windows-1252. */
  g_autoptr(GPtrArray) records = parse_ok ("Nom;Pr\xe9nom\r\n\x8c" "uvre;H\xe9l\xe8ne \x80\r\n", -1);

  assert_record (records, 0, 1, "Nom", "Prénom", NULL);
  assert_record (records, 1, 2, "Œuvre", "Hélène €", NULL);
}

static void
test_utf16 (void)
{
  /* "Nom\tÉ\r\n" in UTF-16LE with a BOM, as Excel's "Unicode text". */
  static const char data[] = "\xFF\xFEN\0o\0m\0\t\0\xC9\0\r\0\n\0";
  g_autoptr(GPtrArray) records = parse_ok (data, sizeof data - 1);

  g_assert_cmpuint (records->len, ==, 1);
  assert_record (records, 0, 1, "Nom", "É", NULL);
}

static void
test_line_endings (void)
{
  g_autoptr(GPtrArray) crlf = parse_ok ("a;b\r\n1;2\r\n3;4\r\n", -1);
  g_autoptr(GPtrArray) lf = parse_ok ("a;b\n1;2\n3;4\n", -1);
  g_autoptr(GPtrArray) cr = parse_ok ("a;b\r1;2\r3;4\r", -1);
  g_autoptr(GPtrArray) mixed = parse_ok ("a;b\r\n1;2\n3;4\r5;6", -1);

  g_assert_cmpuint (crlf->len, ==, 3);
  g_assert_cmpuint (lf->len, ==, 3);
  g_assert_cmpuint (cr->len, ==, 3);
  assert_record (crlf, 2, 3, "3", "4", NULL);
  assert_record (lf, 2, 3, "3", "4", NULL);
  assert_record (cr, 2, 3, "3", "4", NULL);

  g_assert_cmpuint (mixed->len, ==, 4);
  assert_record (mixed, 1, 2, "1", "2", NULL);
  assert_record (mixed, 2, 3, "3", "4", NULL);
  assert_record (mixed, 3, 4, "5", "6", NULL);
}

static void
test_quoted_separator (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("Nom;Ville\n\"Le Goff; épouse Martin\";\"Saint-Denis, La Réunion\"\n", -1);

  assert_record (records, 1, 2, "Le Goff; épouse Martin", "Saint-Denis, La Réunion", NULL);
}

static void
test_quoted_quotes (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("a;b\n\"dit \"\"le Grand\"\"\";\"\"\n\"\"\"\";x\n", -1);

  assert_record (records, 1, 2, "dit \"le Grand\"", "", NULL);
  assert_record (records, 2, 3, "\"", "x", NULL);
}

static void
test_quoted_newline (void)
{
  g_autoptr(GPtrArray) records =
    parse_ok ("Nom;Remarques\r\nA;\"un\r\ndeux\r\ntrois\"\r\nB;\"x\ny\rz\"\r\nC;fin\r\n", -1);

  /* One record per spreadsheet row, whatever the physical lines, and the
   * line breaks inside come back as "\n". */
  g_assert_cmpuint (records->len, ==, 4);
  assert_record (records, 1, 2, "A", "un\ndeux\ntrois", NULL);
  assert_record (records, 2, 3, "B", "x\ny\nz", NULL);
  assert_record (records, 3, 4, "C", "fin", NULL);
}

static void
test_blank_lines (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("a;b\n\n1;2\r\n\r\n\n3;4\n", -1);

  g_assert_cmpuint (records->len, ==, 6);
  assert_record (records, 1, 2, NULL);
  assert_record (records, 2, 3, "1", "2", NULL);
  assert_record (records, 3, 4, NULL);
  assert_record (records, 4, 5, NULL);
  assert_record (records, 5, 6, "3", "4", NULL);
}

static void
test_final_newline (void)
{
  g_autoptr(GPtrArray) without = parse_ok ("a;b\n1;2", -1);
  g_autoptr(GPtrArray) with = parse_ok ("a;b\n1;2\n", -1);
  g_autoptr(GPtrArray) two = parse_ok ("a;b\n1;2\n\n", -1);

  g_assert_cmpuint (without->len, ==, 2);
  g_assert_cmpuint (with->len, ==, 2);
  /* A second line break is a blank line: the spreadsheet shows it. */
  g_assert_cmpuint (two->len, ==, 3);
  assert_record (two, 2, 3, NULL);
}

static void
test_empty_fields (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("a;b;c\n;;\n1;;\n;2;\n", -1);

  assert_record (records, 1, 2, "", "", "", NULL);
  assert_record (records, 2, 3, "1", "", "", NULL);
  assert_record (records, 3, 4, "", "2", "", NULL);
}

static void
test_space_after_quote (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("a;b\n\"x\"  ;\"y\" \n", -1);

  assert_record (records, 1, 2, "x", "y", NULL);
}

static void
test_quotes_in_unquoted (void)
{
  g_autoptr(GPtrArray) records = parse_ok ("a;b;c\nab\"c;d\";  \"e\"\n", -1);

  /* As spreadsheets read them: text. */
  assert_record (records, 1, 2, "ab\"c", "d\"", "  \"e\"", NULL);
}

static void
test_unterminated_quote (void)
{
  g_autofree char *message = parse_fails ("Nom;Prénom\nDupont;Hélène\n\"Secret;Marie\nX;Y\n", -1,
                                          RELAIS_CSV_ERROR_SYNTAX);

  g_assert_nonnull (strstr (message, "line 3"));
  /* No personal data in messages. */
  g_assert_null (strstr (message, "Secret"));
  g_assert_null (strstr (message, "Marie"));
}

static void
test_text_after_quote (void)
{
  g_autofree char *message = parse_fails ("a;b\n1;2\n\"Secret\"x;y\n", -1, RELAIS_CSV_ERROR_SYNTAX);

  g_assert_nonnull (strstr (message, "line 3"));
  g_assert_null (strstr (message, "Secret"));
}

static void
test_nul_bytes (void)
{
  static const char data[] = "Nom;Pr\0nom\nDupont;H\0l\0ne\n";
  g_autofree char *message = parse_fails (data, sizeof data - 1, RELAIS_CSV_ERROR_ENCODING);

  g_assert_null (strstr (message, "Dupont"));
}

static void
test_not_cp1252 (void)
{
  /* 0x81 is invalid UTF-8 and undefined in Windows-1252. */
  g_autofree char *message = parse_fails ("Nom;Pr\xe9nom\nDupont;\x81\n", -1, RELAIS_CSV_ERROR_ENCODING);
  g_autofree char *bad16 = NULL;
  static const char odd_utf16[] = "\xFF\xFEN\0o";

  g_assert_null (strstr (message, "Dupont"));
  /* A UTF-16 BOM in front of an odd number of bytes. */
  bad16 = parse_fails (odd_utf16, sizeof odd_utf16 - 1, RELAIS_CSV_ERROR_ENCODING);
}

static void
test_mixed_encodings (void)
{
  /* "Hélène" in UTF-8, then "Noël" in Windows-1252. */
  g_autofree char *message = parse_fails ("Nom;Pr\xc3\xa9nom\nDupont;H\xc3\xa9l\xc3\xa8ne\nNo\xebl;Luc\n", -1,
                                          RELAIS_CSV_ERROR_ENCODING);
  /* Windows-1252 capitals with accents are not mistaken for UTF-8. */
  g_autoptr(GPtrArray) records = parse_ok ("Nom;Pr\xc9NOM\n\xc9LO\xcfSE;\xc7" "A\n", -1);

  g_assert_null (strstr (message, "Dupont"));
  assert_record (records, 0, 1, "Nom", "PrÉNOM", NULL);
  assert_record (records, 1, 2, "ÉLOÏSE", "ÇA", NULL);
}

static void
test_many_columns (void)
{
  g_autoptr(GString) data = g_string_new ("h");
  g_autofree char *message = NULL;
  g_autoptr(GPtrArray) ok = NULL;

  /* 1,000 columns is the limit, not one less. */
  for (guint i = 1; i < 1000; i++)
    g_string_append (data, ";h");
  g_string_append (data, "\n");
  ok = parse_ok (data->str, (gssize) data->len);
  g_assert_cmpuint (record_at (ok, 0)->fields->len, ==, 1000);

  g_string_truncate (data, 0);
  g_string_append (data, "a;b\n1");
  for (guint i = 1; i < 10000; i++)
    g_string_append (data, ";x");
  g_string_append (data, "\n");
  message = parse_fails (data->str, (gssize) data->len, RELAIS_CSV_ERROR_TOO_LARGE);
  g_assert_nonnull (strstr (message, "line 2"));
}

static void
test_huge_field (void)
{
  gsize big = 2 * 1024 * 1024;
  g_autoptr(GString) data = g_string_new ("a;b\n1;");
  g_autofree char *unquoted = NULL;
  g_autofree char *quoted = NULL;
  g_autoptr(GPtrArray) at_limit = NULL;

  for (gsize i = 0; i < big; i++)
    g_string_append_c (data, 'x');
  g_string_append_c (data, '\n');
  unquoted = parse_fails (data->str, (gssize) data->len, RELAIS_CSV_ERROR_TOO_LARGE);
  g_assert_nonnull (strstr (unquoted, "line 2"));

  g_string_assign (data, "a;b\n1;\"");
  for (gsize i = 0; i < big / 2; i++)
    g_string_append (data, "y\"\"");
  g_string_append (data, "\"\n");
  quoted = parse_fails (data->str, (gssize) data->len, RELAIS_CSV_ERROR_TOO_LARGE);
  g_assert_nonnull (strstr (quoted, "line 2"));

  /* Exactly 1 MiB is allowed. */
  g_string_assign (data, "a;b\n1;");
  for (gsize i = 0; i < 1024 * 1024; i++)
    g_string_append_c (data, 'z');
  at_limit = parse_ok (data->str, (gssize) data->len);
  g_assert_cmpuint (strlen (g_ptr_array_index (record_at (at_limit, 1)->fields, 1)), ==, 1024 * 1024);
}

static void
test_empty (void)
{
  g_autofree char *empty = parse_fails ("", 0, RELAIS_CSV_ERROR_EMPTY);
  g_autofree char *null_data = parse_fails (NULL, 0, RELAIS_CSV_ERROR_EMPTY);
  g_autofree char *only_bom = parse_fails ("\xEF\xBB\xBF", -1, RELAIS_CSV_ERROR_EMPTY);
  g_autofree char *only_newlines = parse_fails ("\r\n\n\n", -1, RELAIS_CSV_ERROR_EMPTY);
  g_autofree char *blank_header = parse_fails ("\nNom;Prénom\n", -1, RELAIS_CSV_ERROR_EMPTY);
}

static void
test_only_separators (void)
{
  g_autofree char *semicolons = parse_fails (";;;;\n;;;;\n", -1, RELAIS_CSV_ERROR_EMPTY);
  g_autofree char *commas = parse_fails (",,,,", -1, RELAIS_CSV_ERROR_EMPTY);
  g_autofree char *spaces = parse_fails ("  ;  ;\" \"\n", -1, RELAIS_CSV_ERROR_EMPTY);
}

/* Whatever the input, the parser returns records or an error with a
 * message, never both, never neither; records are numbered 1, 2, 3… and
 * hold valid UTF-8 within the limits. */
static gboolean
check_any_input (const char *data,
                 gsize       len)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) records = relais_csv_parse (data, len, &error);

  if (records == NULL)
    {
      g_assert_nonnull (error);
      g_assert_true (error->domain == RELAIS_CSV_ERROR);
      g_assert_nonnull (error->message);
      g_assert_cmpstr (error->message, !=, "");
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      return FALSE;
    }

  g_assert_no_error (error);
  g_assert_cmpuint (records->len, >=, 1);
  for (guint i = 0; i < records->len; i++)
    {
      RelaisCsvRecord *record = g_ptr_array_index (records, i);

      g_assert_cmpuint (record->line, ==, i + 1);
      g_assert_cmpuint (record->fields->len, <=, 1000);
      for (guint f = 0; f < record->fields->len; f++)
        g_assert_true (g_utf8_validate (g_ptr_array_index (record->fields, f), -1, NULL));
    }
  return TRUE;
}

static void
test_fuzz (void)
{
  static const char valid[] =
    "\xEF\xBB\xBFNom;Prénom;Date de naissance;Remarques\r\n"
    "Dupont;Hélène;03/04/1985;\"a; b\r\nc \"\"d\"\"\"\r\n"
    "\r\n"
    "Le Goff;Anne;1979-06-12;x\r\n";
  static const char interesting[] = "\"\";;,,\r\n\n\t\xEF\xBB\xBF\x81\xC3\xA9\xE9\x80\xFF";
  guint n_parsed = 0;
  guint n_refused = 0;

  for (guint iteration = 0; iteration < 4000; iteration++)
    {
      g_autoptr(GByteArray) data = g_byte_array_new ();

      if (iteration % 4 == 0)
        {
          guint len = (guint) g_test_rand_int_range (0, 300);

          for (guint i = 0; i < len; i++)
            {
              guint8 byte = (guint8) g_test_rand_int_range (0, 256);

              g_byte_array_append (data, &byte, 1);
            }
        }
      else
        {
          guint mutations = (guint) g_test_rand_int_range (1, 8);

          g_byte_array_append (data, (const guint8 *) valid, sizeof valid - 1);
          for (guint m = 0; m < mutations && data->len > 0; m++)
            {
              guint at = (guint) g_test_rand_int_range (0, (gint32) data->len);
              guint8 byte = g_test_rand_bit ()
                ? (guint8) interesting[g_test_rand_int_range (0, sizeof interesting - 1)]
                : (guint8) g_test_rand_int_range (0, 256);

              switch (g_test_rand_int_range (0, 4))
                {
                case 0: data->data[at] = byte; break;
                case 1: g_array_insert_val ((GArray *) data, at, byte); break;
                case 2: g_byte_array_remove_index (data, at); break;
                default: g_byte_array_set_size (data, at); break;
                }
            }
        }

      if (check_any_input ((const char *) data->data, data->len))
        n_parsed++;
      else
        n_refused++;
    }

  /* Both paths must have been exercised, or the loop tested nothing. */
  g_test_message ("%u parsed, %u refused", n_parsed, n_refused);
  g_assert_cmpuint (n_parsed, >, 100);
  g_assert_cmpuint (n_refused, >, 100);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/csv/semicolon", test_semicolon);
  g_test_add_func ("/csv/comma", test_comma);
  g_test_add_func ("/csv/tab", test_tab);
  g_test_add_func ("/csv/separator-detection", test_separator_detection);
  g_test_add_func ("/csv/explicit-separator", test_explicit_separator);
  g_test_add_func ("/csv/bom", test_bom);
  g_test_add_func ("/csv/cp1252", test_cp1252);
  g_test_add_func ("/csv/utf16", test_utf16);
  g_test_add_func ("/csv/line-endings", test_line_endings);
  g_test_add_func ("/csv/quoted-separator", test_quoted_separator);
  g_test_add_func ("/csv/quoted-quotes", test_quoted_quotes);
  g_test_add_func ("/csv/quoted-newline", test_quoted_newline);
  g_test_add_func ("/csv/blank-lines", test_blank_lines);
  g_test_add_func ("/csv/final-newline", test_final_newline);
  g_test_add_func ("/csv/empty-fields", test_empty_fields);
  g_test_add_func ("/csv/space-after-quote", test_space_after_quote);
  g_test_add_func ("/csv/quotes-in-unquoted", test_quotes_in_unquoted);
  g_test_add_func ("/csv/unterminated-quote", test_unterminated_quote);
  g_test_add_func ("/csv/text-after-quote", test_text_after_quote);
  g_test_add_func ("/csv/nul-bytes", test_nul_bytes);
  g_test_add_func ("/csv/not-cp1252", test_not_cp1252);
  g_test_add_func ("/csv/mixed-encodings", test_mixed_encodings);
  g_test_add_func ("/csv/many-columns", test_many_columns);
  g_test_add_func ("/csv/huge-field", test_huge_field);
  g_test_add_func ("/csv/empty", test_empty);
  g_test_add_func ("/csv/only-separators", test_only_separators);
  g_test_add_func ("/csv/fuzz", test_fuzz);

  return g_test_run ();
}
