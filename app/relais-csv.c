#define G_LOG_DOMAIN "relais-csv"

#include "config.h"

#include "relais-csv.h"

#include <glib/gi18n-lib.h>
#include <sodium.h>
#include <string.h>

#define MAX_FIELD_BYTES (1024 * 1024)
#define MAX_FIELDS 1000

G_DEFINE_QUARK (relais-csv-error-quark, relais_csv_error)

void
relais_csv_record_free (RelaisCsvRecord *record)
{
  if (record == NULL)
    return;

  g_clear_pointer (&record->fields, g_ptr_array_unref);
  g_free (record);
}

static gboolean
looks_like_utf8_accents (const char *data,
                         gsize       length)
{
  for (gsize i = 0; i + 1 < length; i++)
    if ((guchar) data[i] == 0xC3 && (guchar) data[i + 1] >= 0x80 && (guchar) data[i + 1] <= 0xBF)
      return TRUE;
  return FALSE;
}

/* Brings the file to UTF-8 without a BOM.  Returns a new buffer, its
 * length in @out_length. */
static char *
to_utf8 (const char  *data,
         gsize        length,
         gsize       *out_length,
         GError     **error)
{
  gsize written = 0;
  char *converted;

  /* Excel's "CSV UTF-8" starts with a BOM; nothing else should see it, or
   * the first header would never match. */
  if (length >= 3 && memcmp (data, "\xEF\xBB\xBF", 3) == 0)
    {
      data += 3;
      length -= 3;
    }
  else if (length >= 2 && (memcmp (data, "\xFF\xFE", 2) == 0 || memcmp (data, "\xFE\xFF", 2) == 0))
    {
      /* Excel's "Unicode text" is UTF-16 with a BOM.  Converted here, its
       * NUL bytes do not make it look like a binary file. */
      const char *charset = data[0] == '\xFF' ? "UTF-16LE" : "UTF-16BE";

      converted = g_convert (data + 2, length - 2, "UTF-8", charset, NULL, &written, NULL);
      if (converted == NULL || memchr (converted, '\0', written) != NULL ||
          !g_utf8_validate_len (converted, written, NULL))
        {
          g_free (converted);
          g_set_error_literal (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_ENCODING,
                               _("The file says it is UTF-16 but is not: save it again as CSV."));
          return NULL;
        }
      *out_length = written;
      return converted;
    }

  /* NUL never occurs in text, in any of the encodings we read: this is a
   * binary file (a spreadsheet saved as .xlsx and renamed, say). */
  if (memchr (data, '\0', length) != NULL)
    {
      g_set_error_literal (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_ENCODING,
                           _("The file is not a text file: save it from the spreadsheet as CSV."));
      return NULL;
    }

  if (g_utf8_validate_len (data, length, NULL))
    {
      /* g_strndup() stops at NUL, and there is none: a full copy, never
       * NULL, even for an empty file. */
      *out_length = length;
      return g_strndup (data, length);
    }

  /* A file that is mostly UTF-8 with a stray Windows-1252 byte (two tools
   * wrote it) would decode as Windows-1252 into "HÃ©lÃ¨ne" for every
   * accent: names silently spoilt.  "Ã" then a byte 0x80–0xBF is never
   * French in Windows-1252, and is how UTF-8 writes é, è, à, ç…. */
  if (looks_like_utf8_accents (data, length))
    {
      g_set_error_literal (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_ENCODING,
                           _("The file mixes two encodings (UTF-8 and Windows-1252): save it again as CSV (UTF-8)."));
      return NULL;
    }

  /* Not UTF-8: what French spreadsheets save by default is Windows-1252.
   * It leaves five bytes undefined; a file holding one of them is neither. */
  converted = g_convert (data, length, "UTF-8", "WINDOWS-1252", NULL, &written, NULL);
  if (converted == NULL)
    {
      g_set_error_literal (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_ENCODING,
                           _("The file is neither UTF-8 nor Windows-1252 text: save it again as CSV (UTF-8)."));
      return NULL;
    }

  *out_length = written;
  return converted;
}

/* Counts @c in the header line, outside quotes. */
static guint
count_in_header (const char *text,
                 gsize       length,
                 char        c)
{
  gboolean quoted = FALSE;
  guint n = 0;

  for (gsize i = 0; i < length; i++)
    {
      if (text[i] == '"')
        quoted = !quoted;
      else if (!quoted && (text[i] == '\n' || text[i] == '\r'))
        break;
      else if (!quoted && text[i] == c)
        n++;
    }

  return n;
}

static char
detect_separator (const char *text,
                  gsize       length)
{
  guint semicolons = count_in_header (text, length, ';');
  guint commas = count_in_header (text, length, ',');
  guint tabs = count_in_header (text, length, '\t');

  /* On a tie, ';': French spreadsheets use it because ',' is the decimal
   * separator. */
  if (tabs > semicolons && tabs > commas)
    return '\t';
  if (commas > semicolons)
    return ',';
  return ';';
}

static RelaisCsvRecord *
record_new (guint line)
{
  RelaisCsvRecord *record = g_new0 (RelaisCsvRecord, 1);

  record->line = line;
  record->fields = g_ptr_array_new_with_free_func (g_free);
  return record;
}

typedef struct {
  const char *text;
  gsize       length;
  gsize       pos;
  char        separator;
  guint       line;      /* of the record being read */
} Parser;

/* Consumes a line break at the current position, if any: CRLF, LF, or a
 * lone CR (old Mac files). */
static gboolean
eat_line_break (Parser *p)
{
  if (p->pos >= p->length)
    return FALSE;
  if (p->text[p->pos] == '\n')
    {
      p->pos++;
      return TRUE;
    }
  if (p->text[p->pos] == '\r')
    {
      p->pos++;
      if (p->pos < p->length && p->text[p->pos] == '\n')
        p->pos++;
      return TRUE;
    }
  return FALSE;
}

static void
set_field_too_large (Parser  *p,
                     GError **error)
{
  g_set_error (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_TOO_LARGE,
               _("line %u: a field is longer than 1 MiB"), p->line);
}

/* Reads one field; leaves the position on the separator, the line break or
 * the end. */
static char *
read_field (Parser  *p,
            GError **error)
{
  g_autoptr(GString) field = g_string_new (NULL);

  if (p->pos < p->length && p->text[p->pos] == '"')
    {
      p->pos++;
      for (;;)
        {
          gsize start = p->pos;
          const char *quote;

          if (p->pos >= p->length)
            {
              g_set_error (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_SYNTAX,
                           _("line %u: a quoted field is never closed"), p->line);
              return NULL;
            }

          quote = memchr (p->text + start, '"', p->length - start);
          if (quote == NULL)
            quote = p->text + p->length;
          /* Checked before copying, so a hostile file never makes us copy
           * more than the limit. */
          if (field->len + (gsize) (quote - (p->text + start)) > MAX_FIELD_BYTES)
            {
              set_field_too_large (p, error);
              return NULL;
            }

          /* Line breaks inside a field are kept, as "\n" whatever the file
           * used, so a note reads the same on every system. */
          for (const char *c = p->text + start; c < quote; c++)
            {
              if (*c == '\r')
                {
                  g_string_append_c (field, '\n');
                  if (c + 1 < quote && c[1] == '\n')
                    c++;
                }
              else
                g_string_append_c (field, *c);
            }
          p->pos = quote - p->text;

          if (p->pos >= p->length)
            continue;   /* reports the unterminated quote */

          p->pos++;     /* the quote */
          if (p->pos < p->length && p->text[p->pos] == '"')
            {
              g_string_append_c (field, '"');
              p->pos++;
              continue;
            }
          break;
        }

      /* Some exports pad with spaces after the closing quote; anything
       * else there means the quoting is broken and the columns would shift. */
      while (p->pos < p->length && (p->text[p->pos] == ' ' ||
                                    (p->text[p->pos] == '\t' && p->separator != '\t')))
        p->pos++;
      if (p->pos < p->length && p->text[p->pos] != p->separator &&
          p->text[p->pos] != '\r' && p->text[p->pos] != '\n')
        {
          g_set_error (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_SYNTAX,
                       _("line %u: text after the closing quote of a field"), p->line);
          return NULL;
        }
    }
  else
    {
      gsize start = p->pos;

      /* A quote inside an unquoted field is text, as spreadsheets read it. */
      while (p->pos < p->length && p->text[p->pos] != p->separator &&
             p->text[p->pos] != '\r' && p->text[p->pos] != '\n')
        p->pos++;
      if (p->pos - start > MAX_FIELD_BYTES)
        {
          set_field_too_large (p, error);
          return NULL;
        }
      g_string_append_len (field, p->text + start, p->pos - start);
    }

  return g_string_free (g_steal_pointer (&field), FALSE);
}

static RelaisCsvRecord *
read_record (Parser  *p,
             GError **error)
{
  RelaisCsvRecord *record = record_new (p->line);

  /* A line with nothing on it is a blank record: zero fields, not one
   * empty field, so callers can skip it and still count it. */
  if (eat_line_break (p))
    return record;

  for (;;)
    {
      char *field;

      if (record->fields->len >= MAX_FIELDS)
        {
          g_set_error (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_TOO_LARGE,
                       _("line %u: more than %u columns"), p->line, (guint) MAX_FIELDS);
          relais_csv_record_free (record);
          return NULL;
        }

      field = read_field (p, error);
      if (field == NULL)
        {
          relais_csv_record_free (record);
          return NULL;
        }
      g_ptr_array_add (record->fields, field);

      if (p->pos < p->length && p->text[p->pos] == p->separator)
        {
          p->pos++;
          continue;
        }

      eat_line_break (p);
      return record;
    }
}

static gboolean
record_is_blank (RelaisCsvRecord *record)
{
  for (guint i = 0; i < record->fields->len; i++)
    {
      const char *field = g_ptr_array_index (record->fields, i);

      for (const char *c = field; *c != '\0'; c++)
        if (!g_ascii_isspace (*c))
          return FALSE;
    }
  return TRUE;
}

/**
 * relais_csv_parse_with_separator:
 * @data: the file's bytes
 * @length: their number
 * @separator: ';', ',' or '\t', or 0 to detect it from the header line
 * @error: return location for a #RELAIS_CSV_ERROR
 *
 * Returns: (transfer full) (element-type RelaisCsvRecord) (nullable): every
 *   record, the header first, or %NULL with @error set.
 */
/* The decoded copy of the file holds everyone in it: wiped, like the
 * caller's buffer, rather than left in freed memory. */
static void
wipe_text (Parser *p)
{
  if (p->text == NULL)
    return;
  sodium_memzero ((char *) p->text, p->length);
  g_free ((char *) p->text);
  p->text = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Parser, wipe_text)

GPtrArray *
relais_csv_parse_with_separator (const char  *data,
                                 gsize        length,
                                 char         separator,
                                 GError     **error)
{
  g_autoptr(GPtrArray) records = NULL;
  g_auto(Parser) p = { 0 };

  g_return_val_if_fail (data != NULL || length == 0, NULL);
  g_return_val_if_fail (separator == 0 || separator == ';' || separator == ',' ||
                        separator == '\t', NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  p.text = to_utf8 (data != NULL ? data : "", length, &p.length, error);
  if (p.text == NULL)
    return NULL;

  p.separator = separator != 0 ? separator : detect_separator (p.text, p.length);
  p.line = 1;

  records = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_csv_record_free);
  /* A final line break ends the last record; it does not open a new one. */
  while (p.pos < p.length)
    {
      RelaisCsvRecord *record = read_record (&p, error);

      if (record == NULL)
        return NULL;
      g_ptr_array_add (records, record);
      p.line++;
    }

  if (records->len == 0 || record_is_blank (g_ptr_array_index (records, 0)))
    {
      g_set_error_literal (error, RELAIS_CSV_ERROR, RELAIS_CSV_ERROR_EMPTY,
                           records->len == 0
                           ? _("The file is empty.")
                           : _("line 1: no header: the first line must name the columns"));
      return NULL;
    }

  return g_steal_pointer (&records);
}

/**
 * relais_csv_parse:
 * @data: the file's bytes
 * @length: their number
 * @error: return location for a #RELAIS_CSV_ERROR
 *
 * Same as relais_csv_parse_with_separator() with the separator detected.
 *
 * Returns: (transfer full) (element-type RelaisCsvRecord) (nullable): every
 *   record, the header first, or %NULL with @error set.
 */
GPtrArray *
relais_csv_parse (const char  *data,
                  gsize        length,
                  GError     **error)
{
  return relais_csv_parse_with_separator (data, length, 0, error);
}
