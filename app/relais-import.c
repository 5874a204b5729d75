#define G_LOG_DOMAIN "relais-import"

#include "config.h"

#include "relais-import.h"

#include <glib/gi18n-lib.h>
#include <string.h>

#include "relais-csv.h"
#include "relais-error.h"
#include "relais-fold.h"
#include "relais-person.h"
#include "relais-search.h"
#include "relais-validate.h"

/* Beyond this, a list of bad rows stops helping: the file is wrong as a
 * whole (a wrong column, a wrong date format) and one look shows it. */
#define MAX_LISTED_BAD_ROWS 20

typedef enum {
  COLUMN_LAST_NAME,
  COLUMN_FIRST_NAME,
  COLUMN_BIRTH_DATE,
  COLUMN_PHONE,
  COLUMN_EMAIL,
  COLUMN_POSTAL_CODE,
  COLUMN_CITY,
  N_COLUMNS
} Column;

#define N_REQUIRED_COLUMNS (COLUMN_BIRTH_DATE + 1)

/* Headers as French offices and English-speaking tools write them.  They
 * are compared after header_key(), so accents, case, underscores, dashes,
 * apostrophes and parenthesised hints ("Prénom(s)", "Né(e) le",
 * "date_naissance", "nom_d_usage") do not matter. */
static const char * const column_synonyms[N_COLUMNS][16] = {
  [COLUMN_LAST_NAME] = {
    "nom", "nom de famille", "nom d'usage", "nom usuel", "last name", "lastname",
    "surname", "family name", NULL },
  [COLUMN_FIRST_NAME] = {
    "prénom", "prénoms", "prénom usuel", "first name", "firstname", "given name", NULL },
  [COLUMN_BIRTH_DATE] = {
    "date de naissance", "date naissance", "naissance", "né le", "née le", "né·e le",
    "ddn", "birth date", "birthdate", "date of birth", "dob", NULL },
  [COLUMN_PHONE] = {
    "téléphone", "tél", "tel", "portable", "mobile", "phone", "téléphone portable",
    "téléphone mobile", "tél portable", "numéro de téléphone", "n° de téléphone",
    "n° téléphone", "phone number", "mobile phone", NULL },
  [COLUMN_EMAIL] = {
    "courriel", "email", "e-mail", "mail", "adresse électronique", "adresse mail",
    "adresse e-mail", "adresse email", "adresse courriel", "email address",
    "e-mail address", NULL },
  [COLUMN_POSTAL_CODE] = {
    "code postal", "cp", "postal code", "postcode", "zip", "zip code", NULL },
  [COLUMN_CITY] = {
    "commune", "ville", "city", "town", "localité", "commune de résidence",
    "ville de résidence", NULL },
};

/* What a message calls each column: a field name, never a value. */
static const char *
column_label (Column column)
{
  switch (column)
    {
    case COLUMN_LAST_NAME: return _("last name");
    case COLUMN_FIRST_NAME: return _("first name");
    case COLUMN_BIRTH_DATE: return _("birth date");
    case COLUMN_PHONE: return _("phone number");
    case COLUMN_EMAIL: return _("e-mail address");
    case COLUMN_POSTAL_CODE: return _("postal code");
    case COLUMN_CITY: return _("city");
    case N_COLUMNS:
    default:
      g_assert_not_reached ();
    }
}

static char **
person_column_ptr (RelaisPerson *person,
                   Column        column)
{
  switch (column)
    {
    case COLUMN_LAST_NAME: return &person->last_name;
    case COLUMN_FIRST_NAME: return &person->first_name;
    case COLUMN_BIRTH_DATE: return &person->birth_date;
    case COLUMN_PHONE: return &person->phone;
    case COLUMN_EMAIL: return &person->email;
    case COLUMN_POSTAL_CODE: return &person->postal_code;
    case COLUMN_CITY: return &person->city;
    case N_COLUMNS:
    default:
      g_assert_not_reached ();
    }
}

/* A header reduced to what identifies it. */
static char *
header_key (const char *header)
{
  g_autofree char *folded = relais_fold (header);
  GString *key = g_string_sized_new (strlen (folded));
  guint depth = 0;

  for (const char *p = folded; *p != '\0'; p++)
    {
      char c = *p;

      if (c == '(')
        depth++;
      else if (c == ')' && depth > 0)
        depth--;
      else if (depth > 0)
        continue;
      else if (strchr ("_-.:*/'", c) != NULL || g_ascii_isspace (c))
        {
          if (key->len > 0 && key->str[key->len - 1] != ' ')
            g_string_append_c (key, ' ');
        }
      else
        g_string_append_c (key, c);
    }

  if (key->len > 0 && key->str[key->len - 1] == ' ')
    g_string_truncate (key, key->len - 1);

  return g_string_free (key, FALSE);
}

/* Header keys of every synonym, to their column: made once per import, so
 * a header of a thousand columns costs a thousand look-ups. */
static GHashTable *
synonym_table_new (void)
{
  GHashTable *table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint column = 0; column < N_COLUMNS; column++)
    for (guint i = 0; column_synonyms[column][i] != NULL; i++)
      g_hash_table_insert (table, header_key (column_synonyms[column][i]),
                           GUINT_TO_POINTER (column + 1));

  return table;
}

static int
column_for_header (GHashTable *synonyms,
                   const char *header)
{
  g_autofree char *key = header_key (header);

  return (int) GPOINTER_TO_UINT (g_hash_table_lookup (synonyms, key)) - 1;
}

/* Spreadsheets name columns A, B, … Z, AA…: that is what a person looks
 * for in the file. */
static char *
column_letters (guint index)
{
  char buf[8];
  guint pos = G_N_ELEMENTS (buf) - 1;

  buf[pos] = '\0';
  index++;
  while (index > 0 && pos > 0)
    {
      buf[--pos] = (char) ('A' + (index - 1) % 26);
      index = (index - 1) / 26;
    }

  return g_strdup (buf + pos);
}

/* Finds the columns in the header record.  @positions gets each column's
 * field index, or -1.  On a duplicate, sets @error.  Returns whether the
 * required columns are all there (FALSE without @error when only that is
 * wrong). */
static gboolean
map_header (GHashTable       *synonyms,
            RelaisCsvRecord  *header,
            int               positions[N_COLUMNS],
            GError          **error)
{
  for (guint column = 0; column < N_COLUMNS; column++)
    positions[column] = -1;

  for (guint i = 0; i < header->fields->len; i++)
    {
      int column = column_for_header (synonyms, g_ptr_array_index (header->fields, i));

      if (column < 0)
        continue;   /* columns we do not store: notes, ids of other tools… */

      if (positions[column] >= 0)
        {
          g_autofree char *first = column_letters ((guint) positions[column]);
          g_autofree char *second = column_letters (i);

          /* Taking either one would silently drop the other's values. */
          g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                       _("line 1: columns %s and %s both give the %s; keep only one"),
                       first, second, column_label ((Column) column));
          return FALSE;
        }
      positions[column] = (int) i;
    }

  for (guint column = 0; column < N_REQUIRED_COLUMNS; column++)
    if (positions[column] < 0)
      return FALSE;

  return TRUE;
}

/* The header a French office would write for each required column. */
static const char *
column_example (Column column)
{
  return column_synonyms[column][0];
}

static void
set_missing_columns_error (const int   positions[N_COLUMNS],
                           GError    **error)
{
  g_autoptr(GString) missing = g_string_new (NULL);
  guint n = 0;

  for (guint column = 0; column < N_REQUIRED_COLUMNS; column++)
    {
      g_autofree char *example = NULL;

      if (positions[column] >= 0)
        continue;
      if (n > 0)
        g_string_append (missing, ", ");
      /* Headers are capitalised in files: "Nom", "Prénom". */
      example = g_strdup (column_example ((Column) column));
      example[0] = g_ascii_toupper (example[0]);
      g_string_append_printf (missing, _("%s (header “%s”)"),
                              column_label ((Column) column), example);
      n++;
    }

  g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
               g_dngettext (GETTEXT_PACKAGE,
                            "line 1: missing column: %s",
                            "line 1: missing columns: %s",
                            n),
               missing->str);
}

/* Parses and finds the columns.  The separator is detected from the
 * header line; when that leaves required columns unfound (a header such
 * as "Nom, prénom;Date de naissance;…" has a comma in a name), the other
 * separators get their chance before the file is refused. */
static GPtrArray *
parse_with_columns (const char  *data,
                    gsize        length,
                    int          positions[N_COLUMNS],
                    GError     **error)
{
  static const char separators[] = { ';', ',', '\t' };
  g_autoptr(GHashTable) synonyms = synonym_table_new ();
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GError) first_error = NULL;

  records = relais_csv_parse (data, length, &first_error);
  if (records != NULL && map_header (synonyms, g_ptr_array_index (records, 0), positions, &first_error))
    return g_steal_pointer (&records);

  for (guint i = 0; i < G_N_ELEMENTS (separators); i++)
    {
      g_autoptr(GPtrArray) other = NULL;
      int other_positions[N_COLUMNS];

      other = relais_csv_parse_with_separator (data, length, separators[i], NULL);
      if (other != NULL && map_header (synonyms, g_ptr_array_index (other, 0), other_positions, NULL))
        {
          memcpy (positions, other_positions, sizeof other_positions);
          return g_steal_pointer (&other);
        }
    }

  if (first_error != NULL)
    g_propagate_error (error, g_steal_pointer (&first_error));
  else
    set_missing_columns_error (positions, error);
  return NULL;
}

static gboolean
is_blank (const char *text)
{
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (!g_unichar_isspace (c) && c != 0x00A0 && c != 0x202F && c != 0x2007)
        return FALSE;
    }
  return TRUE;
}

static gboolean
record_is_blank (RelaisCsvRecord *record)
{
  for (guint i = 0; i < record->fields->len; i++)
    if (!is_blank (g_ptr_array_index (record->fields, i)))
      return FALSE;
  return TRUE;
}

static const char *
cell (RelaisCsvRecord *record,
      int              position)
{
  if (position < 0 || (guint) position >= record->fields->len)
    return "";
  return g_ptr_array_index (record->fields, position);
}

/* Validates one column's cell into @person.  Appends the reason to
 * @reasons when it is bad. */
static void
take_cell (RelaisPerson    *person,
           RelaisCsvRecord *record,
           const int        positions[N_COLUMNS],
           Column           column,
           GPtrArray       *reasons)
{
  const char *text = cell (record, positions[column]);
  char *value = NULL;

  if (is_blank (text))
    {
      /* An empty optional cell leaves what the vault holds as it is. */
      if (column < N_REQUIRED_COLUMNS)
        g_ptr_array_add (reasons, g_strdup_printf (_("the %s is missing"), column_label (column)));
      return;
    }

  switch (column)
    {
    case COLUMN_LAST_NAME:
    case COLUMN_FIRST_NAME:
    case COLUMN_CITY:
      value = relais_normalize_name (text);
      break;
    case COLUMN_BIRTH_DATE:
      value = relais_normalize_birth_date (text);
      if (value == NULL)
        {
          g_autofree char *date = relais_normalize_date (text);

          /* Tell a typo in the date from a date that cannot be a birth
           * date: the fixes differ. */
          if (date == NULL)
            g_ptr_array_add (reasons, g_strdup (_("the birth date is not a date of the calendar written DD/MM/YYYY or YYYY-MM-DD")));
          else if (strcmp (date, "1900-01-01") < 0)
            g_ptr_array_add (reasons, g_strdup (_("the birth date is before 1900")));
          else
            g_ptr_array_add (reasons, g_strdup (_("the birth date is in the future")));
          return;
        }
      break;
    case COLUMN_PHONE:
      value = relais_normalize_phone (text);
      break;
    case COLUMN_EMAIL:
      value = relais_normalize_email (text);
      break;
    case COLUMN_POSTAL_CODE:
      value = relais_normalize_postal_code (text);
      break;
    case N_COLUMNS:
    default:
      g_assert_not_reached ();
    }

  if (value == NULL)
    {
      g_ptr_array_add (reasons, g_strdup_printf (_("the %s is not valid"), column_label (column)));
      return;
    }

  *person_column_ptr (person, column) = value;
}

typedef struct {
  guint         line;
  RelaisPerson *person;
} Row;

static void
row_clear (Row *row)
{
  g_clear_pointer (&row->person, relais_person_free);
}

static char *
identity_key (const RelaisPerson *person)
{
  g_autofree char *last = relais_fold (person->last_name);
  g_autofree char *first = relais_fold (person->first_name);

  /* \x1f cannot occur in a validated name: the key is unambiguous. */
  return g_strjoin ("\x1f", last, first, person->birth_date, NULL);
}

/* Validates every data row.  Returns the rows to store, or NULL with
 * @error listing every bad row. */
static GArray *
validate_rows (GPtrArray  *records,
               const int   positions[N_COLUMNS],
               GError    **error)
{
  g_autoptr(GArray) rows = g_array_new (FALSE, TRUE, sizeof (Row));
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GString) message = g_string_new (NULL);
  RelaisCsvRecord *header = g_ptr_array_index (records, 0);
  guint n_bad = 0;

  g_array_set_clear_func (rows, (GDestroyNotify) row_clear);

  for (guint i = 1; i < records->len; i++)
    {
      RelaisCsvRecord *record = g_ptr_array_index (records, i);
      g_autoptr(GPtrArray) reasons = NULL;
      g_autoptr(RelaisPerson) person = NULL;

      /* Blank lines, and the ";;;;" lines spreadsheets write for empty
       * rows, are no one. */
      if (record_is_blank (record))
        continue;

      reasons = g_ptr_array_new_with_free_func (g_free);
      person = relais_person_new ();

      for (guint column = 0; column < N_COLUMNS; column++)
        if (positions[column] >= 0)
          take_cell (person, record, positions, (Column) column, reasons);

      /* Extra empty cells are what a trailing separator leaves; extra
       * text means an unquoted separator split a value and every column
       * after it is shifted. */
      for (guint f = header->fields->len; f < record->fields->len; f++)
        if (!is_blank (g_ptr_array_index (record->fields, f)))
          {
            g_ptr_array_add (reasons, g_strdup (_("more fields than the header has columns (a separator inside a value that is not quoted?)")));
            break;
          }

      if (reasons->len == 0)
        {
          g_autofree char *key = identity_key (person);
          gpointer first_line;

          if (g_hash_table_lookup_extended (seen, key, NULL, &first_line))
            g_ptr_array_add (reasons, g_strdup_printf (_("same person as line %u"),
                                                       GPOINTER_TO_UINT (first_line)));
          else
            g_hash_table_insert (seen, g_steal_pointer (&key), GUINT_TO_POINTER (record->line));
        }

      if (reasons->len > 0)
        {
          n_bad++;
          if (n_bad <= MAX_LISTED_BAD_ROWS)
            {
              g_autofree char *joined = NULL;

              g_ptr_array_add (reasons, NULL);
              joined = g_strjoinv ("; ", (char **) reasons->pdata);
              if (message->len > 0)
                g_string_append_c (message, '\n');
              g_string_append_printf (message, _("line %u: %s"), record->line, joined);
            }
          continue;
        }

      g_array_append_val (rows, ((Row) { record->line, g_steal_pointer (&person) }));
    }

  if (n_bad > 0)
    {
      if (n_bad > MAX_LISTED_BAD_ROWS)
        g_string_append_printf (message,
                                g_dngettext (GETTEXT_PACKAGE,
                                             "\n… and %u more bad row",
                                             "\n… and %u more bad rows",
                                             n_bad - MAX_LISTED_BAD_ROWS),
                                n_bad - MAX_LISTED_BAD_ROWS);
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID, message->str);
      return NULL;
    }

  return g_steal_pointer (&rows);
}

/* The fields of @row that the file gives and the vault holds otherwise.
 * Names are left out on purpose: they matched without case and accents,
 * and a file exported without accents must not strip them from the
 * vault. */
static RelaisPerson *
changes_for (const RelaisPerson *row,
             RelaisPerson       *stored,
             gboolean           *out_changed)
{
  g_autoptr(RelaisPerson) changes = relais_person_new ();
  static const Column contact[] = { COLUMN_PHONE, COLUMN_EMAIL, COLUMN_POSTAL_CODE, COLUMN_CITY };

  *out_changed = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (contact); i++)
    {
      const char *value = *person_column_ptr ((RelaisPerson *) row, contact[i]);
      const char *current = *person_column_ptr (stored, contact[i]);

      if (value == NULL || g_strcmp0 (value, current) == 0)
        continue;
      *person_column_ptr (changes, contact[i]) = g_strdup (value);
      *out_changed = TRUE;
    }

  return g_steal_pointer (&changes);
}

static gboolean
store_row (RelaisVault       *vault,
           const Row         *row,
           RelaisImportStats *stats,
           GError           **error)
{
  const RelaisPerson *person = row->person;
  g_autofree char *id = NULL;
  g_autoptr(GError) local_error = NULL;

  id = relais_person_find_identity (vault, person->last_name, person->first_name,
                                    person->birth_date, &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  if (id != NULL)
    {
      g_autoptr(RelaisPerson) stored = NULL;
      g_autoptr(RelaisPerson) changes = NULL;
      gboolean changed;

      stored = relais_person_get (vault, id, error);
      if (stored == NULL)
        return FALSE;

      changes = changes_for (person, stored, &changed);
      if (!changed)
        {
          stats->unchanged++;
          return TRUE;
        }
      if (!relais_person_edit_in_transaction (vault, id, changes, error))
        return FALSE;
      stats->updated++;
      return TRUE;
    }
  else
    {
      g_autofree char *new_id = relais_person_add_in_transaction (vault, person, error);

      if (new_id == NULL)
        return FALSE;
      stats->created++;
      return TRUE;
    }
}

/**
 * relais_import_csv:
 * @vault: an open vault, not in a transaction
 * @data: the file's bytes
 * @length: their number
 * @out_stats: (out) (optional): what the import did
 * @error: return location for an error
 *
 * Returns: %TRUE when every row was stored; %FALSE with the vault as it
 *   was before.
 */
gboolean
relais_import_csv (RelaisVault        *vault,
                   const char         *data,
                   gsize               length,
                   RelaisImportStats  *out_stats,
                   GError            **error)
{
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GArray) rows = NULL;
  RelaisImportStats stats = { 0 };
  int positions[N_COLUMNS];

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (data != NULL || length == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (out_stats != NULL)
    *out_stats = stats;

  records = parse_with_columns (data, length, positions, error);
  if (records == NULL)
    return FALSE;

  /* Every row is checked before the vault is touched: a file is taken
   * whole or not at all, and the person fixing it sees every problem at
   * once. */
  rows = validate_rows (records, positions, error);
  if (rows == NULL)
    return FALSE;
  stats.rows = rows->len;

  if (!relais_vault_begin (vault, error))
    return FALSE;

  /* New dossiers enter the search index together at the end, in its
   * order: one at a time they would cost a third of the import. */
  relais_search_defer (vault, TRUE);
  for (guint i = 0; i < rows->len; i++)
    {
      const Row *row = &g_array_index (rows, Row, i);

      if (!store_row (vault, row, &stats, error))
        {
          relais_search_defer (vault, FALSE);
          relais_vault_rollback (vault);
          g_prefix_error (error, _("line %u: "), row->line);
          return FALSE;
        }
    }

  if (!relais_search_index_deferred (vault, error) ||
      !relais_vault_commit (vault, error))
    {
      relais_vault_rollback (vault);
      return FALSE;
    }

  g_debug ("imported %u rows: %u created, %u updated, %u unchanged",
           stats.rows, stats.created, stats.updated, stats.unchanged);
  if (out_stats != NULL)
    *out_stats = stats;
  return TRUE;
}
