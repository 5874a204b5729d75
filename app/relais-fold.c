#define G_LOG_DOMAIN "relais-fold"

#include "config.h"

#include "relais-fold.h"

#include <string.h>

/* Appends the folded form of one character that has already been case
 * folded and decomposed.  Returns FALSE for characters that fold to
 * nothing (combining marks). */
static gboolean
append_folded (GString  *out,
               gunichar  c)
{
  /* Combining diacritical marks: the accents that NFD split off. */
  if (c >= 0x0300 && c <= 0x036F)
    return FALSE;

  switch (c)
    {
    /* Case folding keeps ligatures, but a French name is spelt either way
     * ("Lætitia", "Laetitia"; "Œuvre", "Oeuvre"). */
    case 0x0153: /* œ */
      g_string_append (out, "oe");
      return TRUE;
    case 0x00E6: /* æ */
      g_string_append (out, "ae");
      return TRUE;
    case 0x00DF: /* ß: case folding already gives "ss", but not in every GLib */
      g_string_append (out, "ss");
      return TRUE;
    /* Word processors and phones turn the apostrophe of "d'Usage" or
     * "N'Diaye" into a typographic one. */
    case 0x2019: /* ’ */
    case 0x2018: /* ‘ */
    case 0x02BC: /* ʼ */
      g_string_append_c (out, '\'');
      return TRUE;
    default:
      g_string_append_unichar (out, c);
      return TRUE;
    }
}

/**
 * relais_fold:
 * @text: UTF-8 text (invalid sequences are replaced, not trusted)
 *
 * Returns: (transfer full): the folded text, never %NULL.
 */
char *
relais_fold (const char *text)
{
  g_autofree char *valid = NULL;
  g_autofree char *folded = NULL;
  g_autofree char *decomposed = NULL;
  GString *out;
  gboolean pending_space = FALSE;

  g_return_val_if_fail (text != NULL, NULL);

  /* Callers fold what people typed and what files hold: never trust it to
   * be valid UTF-8. */
  valid = g_utf8_make_valid (text, -1);
  /* Case folding first, then decomposition: some folded characters (İ)
   * decompose into a base letter and a mark that must go too. */
  folded = g_utf8_casefold (valid, -1);
  decomposed = g_utf8_normalize (folded, -1, G_NORMALIZE_NFD);
  if (decomposed == NULL)
    return g_strdup ("");

  out = g_string_sized_new (strlen (decomposed));
  for (const char *p = decomposed; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      /* Runs of white space (tabs, line breaks, the no-break spaces of
       * French typography) become one space; leading and trailing ones go. */
      if (g_unichar_isspace (c) || c == 0x00A0 || c == 0x202F || c == 0x2007)
        {
          pending_space = out->len > 0;
          continue;
        }

      if (pending_space && !(c >= 0x0300 && c <= 0x036F))
        {
          g_string_append_c (out, ' ');
          pending_space = FALSE;
        }
      append_folded (out, c);
    }

  return g_string_free (out, FALSE);
}
