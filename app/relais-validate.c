#define G_LOG_DOMAIN "relais-validate"

#include "config.h"

#include "relais-validate.h"

#include <string.h>

/* No field we validate is anywhere near this long; refusing early bounds
 * the work done on hostile input. */
#define MAX_INPUT_BYTES 1024
#define MAX_NAME_BYTES 200

/* White space as people and spreadsheets type it, the no-break spaces of
 * French typography included ("06 12 34 56 78" often carries U+202F). */
static gboolean
is_space (gunichar c)
{
  return g_unichar_isspace (c) || c == 0x00A0 || c == 0x202F || c == 0x2007;
}

/* A copy of @text without leading and trailing white space, or NULL when
 * @text is not valid UTF-8 or too long to be a field. */
static char *
strip_copy (const char *text)
{
  const char *start = text;
  const char *end;
  gsize len = strlen (text);

  if (len > MAX_INPUT_BYTES || !g_utf8_validate_len (text, len, NULL))
    return NULL;

  end = text + len;
  while (start < end && is_space (g_utf8_get_char (start)))
    start = g_utf8_next_char (start);
  while (end > start)
    {
      const char *prev = g_utf8_prev_char (end);

      if (!is_space (g_utf8_get_char (prev)))
        break;
      end = prev;
    }

  return g_strndup (start, end - start);
}

/* Reads between @min and @max ASCII digits at *@p. */
static gboolean
read_number (const char **p,
             guint        min_digits,
             guint        max_digits,
             guint       *out_value)
{
  guint n = 0;
  guint value = 0;

  while (g_ascii_isdigit ((*p)[n]) && n < max_digits)
    {
      value = value * 10 + (guint) ((*p)[n] - '0');
      n++;
    }
  if (n < min_digits || g_ascii_isdigit ((*p)[n]))
    return FALSE;

  *p += n;
  *out_value = value;
  return TRUE;
}

static gboolean
parse_date (const char *s,
            guint      *out_year,
            guint      *out_month,
            guint      *out_day)
{
  const char *p = s;
  guint first;

  if (!read_number (&p, 1, 4, &first))
    return FALSE;

  if (p - s == 4 && *p == '-')
    {
      /* YYYY-MM-DD: what databases and LibreOffice's ISO format give. */
      *out_year = first;
      p++;
      if (!read_number (&p, 1, 2, out_month) || *p != '-')
        return FALSE;
      p++;
      if (!read_number (&p, 1, 2, out_day))
        return FALSE;
    }
  else if (p - s <= 2 && *p == '/')
    {
      /* DD/MM/YYYY: the French spreadsheet default.  Two-digit years are
       * refused: 01/02/23 could be 1923 or 2023 for a birth date. */
      *out_day = first;
      p++;
      if (!read_number (&p, 1, 2, out_month) || *p != '/')
        return FALSE;
      p++;
      if (!read_number (&p, 4, 4, out_year))
        return FALSE;
    }
  else
    return FALSE;

  return *p == '\0';
}

/**
 * relais_normalize_date:
 * @text: a date as typed or exported
 *
 * Returns: (transfer full) (nullable): "YYYY-MM-DD", or %NULL when @text is
 *   not a date of the calendar in one of the accepted forms.
 */
char *
relais_normalize_date (const char *text)
{
  g_autofree char *s = NULL;
  guint year, month, day;

  g_return_val_if_fail (text != NULL, NULL);

  s = strip_copy (text);
  if (s == NULL || !parse_date (s, &year, &month, &day))
    return NULL;
  if (year > G_MAXUINT16 || month > 12 || day > 31 ||
      !g_date_valid_dmy ((GDateDay) day, (GDateMonth) month, (GDateYear) year))
    return NULL;

  return g_strdup_printf ("%04u-%02u-%02u", year, month, day);
}

/**
 * relais_normalize_birth_date:
 * @text: a date as typed or exported
 *
 * Returns: (transfer full) (nullable): "YYYY-MM-DD", or %NULL when @text is
 *   not a date, is in the future or is before 1900.
 */
char *
relais_normalize_birth_date (const char *text)
{
  g_autofree char *date = NULL;
  g_autoptr(GDateTime) now = NULL;
  g_autofree char *today = NULL;

  g_return_val_if_fail (text != NULL, NULL);

  date = relais_normalize_date (text);
  if (date == NULL)
    return NULL;

  /* ISO dates of four-digit years compare as strings. */
  now = g_date_time_new_now_local ();
  today = g_date_time_format (now, "%Y-%m-%d");
  if (strcmp (date, "1900-01-01") < 0 || strcmp (date, today) > 0)
    return NULL;

  return g_steal_pointer (&date);
}

/**
 * relais_normalize_phone:
 * @text: a phone number as typed or exported
 *
 * Returns: (transfer full) (nullable): the digits, with a leading "+" for
 *   an international number, or %NULL.
 */
char *
relais_normalize_phone (const char *text)
{
  g_autofree char *s = NULL;
  g_autoptr(GString) digits = g_string_new (NULL);
  gboolean plus = FALSE;

  g_return_val_if_fail (text != NULL, NULL);

  s = strip_copy (text);
  if (s == NULL)
    return NULL;

  for (const char *p = s; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c >= '0' && c <= '9')
        g_string_append_c (digits, (char) c);
      else if (c == '+' && digits->len == 0 && !plus)
        plus = TRUE;
      else if (plus && strncmp (p, "(0)", 3) == 0)
        {
          /* "+33 (0)6 12 34 56 78": the bracketed 0 is dialled only from
           * inside the country; keeping it would make a wrong number. */
          p += 2;
        }
      else if (is_space (c) || c == '.' || c == '-' || c == '(' || c == ')')
        continue;
      else
        return NULL;
    }

  if (plus)
    {
      if (digits->len < 8 || digits->len > 15)
        return NULL;
      g_string_prepend_c (digits, '+');
      return g_string_free (g_steal_pointer (&digits), FALSE);
    }

  /* "00" is how a French phone dials abroad: 0044… is +44…. */
  if (digits->len >= 10 && digits->str[0] == '0' && digits->str[1] == '0')
    {
      if (digits->len - 2 < 8 || digits->len - 2 > 15)
        return NULL;
      g_string_erase (digits, 0, 2);
      g_string_prepend_c (digits, '+');
      return g_string_free (g_steal_pointer (&digits), FALSE);
    }

  if (digits->len == 10 && digits->str[0] == '0')
    return g_string_free (g_steal_pointer (&digits), FALSE);

  /* A spreadsheet that took 06 12 34 56 78 for a number stored 612345678.
   * 08 numbers are left out: a nine-digit number starting with 8 is more
   * likely something else than a lost 0. */
  if (digits->len == 9 && digits->str[0] != '0' && digits->str[0] != '8')
    {
      g_string_prepend_c (digits, '0');
      return g_string_free (g_steal_pointer (&digits), FALSE);
    }

  return NULL;
}

/**
 * relais_normalize_email:
 * @text: an e-mail address as typed or exported
 *
 * Returns: (transfer full) (nullable): the address with its domain in
 *   lower case, or %NULL when it is not a plausible address.
 */
char *
relais_normalize_email (const char *text)
{
  g_autofree char *s = NULL;
  g_autofree char *domain = NULL;
  const char *at;
  gsize local_len;

  g_return_val_if_fail (text != NULL, NULL);

  s = strip_copy (text);
  if (s == NULL || strlen (s) > 254)
    return NULL;

  for (const char *p = s; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      /* Characters that are legal only inside quoted local parts, which no
       * one in a social office uses, and that signal a list or a display
       * name ("Name <a@b.fr>", "a@b.fr; c@d.fr") pasted into the cell. */
      if (is_space (c) || g_unichar_iscntrl (c) || strchr ("\",;:<>()[]\\", (int) c) != NULL)
        return NULL;
    }

  at = strchr (s, '@');
  if (at == NULL || strchr (at + 1, '@') != NULL)
    return NULL;

  local_len = at - s;
  if (local_len == 0 || local_len > 64 || s[0] == '.' || at[-1] == '.')
    return NULL;

  domain = g_utf8_strdown (at + 1, -1);
  if (domain[0] == '\0' || domain[0] == '.' || domain[strlen (domain) - 1] == '.' ||
      strchr (domain, '.') == NULL || strstr (domain, "..") != NULL || strstr (s, "..") != NULL)
    return NULL;

  return g_strdup_printf ("%.*s@%s", (int) local_len, s, domain);
}

/**
 * relais_normalize_postal_code:
 * @text: a French postal code as typed or exported
 *
 * Returns: (transfer full) (nullable): five digits, or %NULL.
 */
char *
relais_normalize_postal_code (const char *text)
{
  g_autofree char *s = NULL;
  g_autofree char *code = NULL;
  gsize len;

  g_return_val_if_fail (text != NULL, NULL);

  s = strip_copy (text);
  if (s == NULL)
    return NULL;

  len = strlen (s);
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isdigit (s[i]))
      return NULL;

  if (len == 5)
    code = g_steal_pointer (&s);
  else if (len == 4)
    code = g_strconcat ("0", s, NULL);
  else
    return NULL;

  /* Departments start at 01: 00xxx is no French postal code. */
  if (code[0] == '0' && code[1] == '0')
    return NULL;

  return g_steal_pointer (&code);
}

/**
 * relais_normalize_name:
 * @text: a name (or a city) as typed or exported
 *
 * Returns: (transfer full) (nullable): the name in NFC with its white
 *   space collapsed, or %NULL.
 */
char *
relais_normalize_name (const char *text)
{
  g_autofree char *s = NULL;
  g_autofree char *nfc = NULL;
  g_autoptr(GString) out = NULL;
  gboolean pending_space = FALSE;

  g_return_val_if_fail (text != NULL, NULL);

  s = strip_copy (text);
  if (s == NULL)
    return NULL;

  /* A name typed on a Mac arrives decomposed; stored composed, it sorts
   * and displays like every other. */
  nfc = g_utf8_normalize (s, -1, G_NORMALIZE_NFC);
  if (nfc == NULL)
    return NULL;

  out = g_string_sized_new (strlen (nfc));
  for (const char *p = nfc; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (is_space (c))
        {
          pending_space = TRUE;
          continue;
        }
      /* Control characters in a name come from a broken file, never from
       * a person; stored, they would corrupt every list and printout. */
      if (g_unichar_iscntrl (c) || c == 0xFFFD)
        return NULL;
      if (pending_space)
        {
          g_string_append_c (out, ' ');
          pending_space = FALSE;
        }
      g_string_append_unichar (out, c);
    }

  if (out->len == 0 || out->len > MAX_NAME_BYTES)
    return NULL;

  return g_string_free (g_steal_pointer (&out), FALSE);
}
