#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "relais-strength.h"

/* Below this many bits a passphrase falls to an offline guessing attack on a
 * stolen laptop within days, even through Argon2id; above the second one it
 * takes centuries. */
#define FAIR_BITS   50.0
#define STRONG_BITS 70.0

/* log2 of an integer ≥ 1, bit by bit: enough precision for an estimate,
 * without linking libm for one call. */
static double
log2_of (guint n)
{
  double x = n;
  double result = 0;
  double bit = 0.5;

  while (x >= 2.0)
    {
      x /= 2.0;
      result += 1.0;
    }
  for (guint i = 0; i < 20; i++)
    {
      x *= x;
      if (x >= 2.0)
        {
          x /= 2.0;
          result += bit;
        }
      bit /= 2.0;
    }
  return result;
}

RelaisStrength
relais_strength_estimate (const char *passphrase,
                          double     *out_bits)
{
  gboolean lower = FALSE, upper = FALSE, digit = FALSE, space = FALSE;
  gboolean symbol = FALSE, other = FALSE;
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  guint length = 0;
  guint pool = 0;
  double effective;
  double bits;

  if (out_bits != NULL)
    *out_bits = 0;
  if (passphrase == NULL || *passphrase == '\0')
    return RELAIS_STRENGTH_EMPTY;

  for (const char *p = passphrase; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char_validated (p, -1);

      if (c == (gunichar) -1 || c == (gunichar) -2)
        break;
      length++;
      g_hash_table_add (seen, GUINT_TO_POINTER (c));

      if (c < 128 && g_ascii_islower (c))
        lower = TRUE;
      else if (c < 128 && g_ascii_isupper (c))
        upper = TRUE;
      else if (c < 128 && g_ascii_isdigit (c))
        digit = TRUE;
      else if (g_unichar_isspace (c))
        space = TRUE;
      else if (c < 128)
        symbol = TRUE;
      else
        other = TRUE;
    }

  pool = (lower ? 26 : 0) + (upper ? 26 : 0) + (digit ? 10 : 0)
       + (space ? 1 : 0) + (symbol ? 32 : 0) + (other ? 40 : 0);
  if (pool < 2)
    pool = 2;

  /* "aaaaaaaaaaaa" is not twelve characters of secret: count at most two
   * uses of each distinct character. */
  effective = MIN ((double) length, 2.0 * g_hash_table_size (seen));
  bits = effective * log2_of (pool);

  if (out_bits != NULL)
    *out_bits = bits;

  if (bits >= STRONG_BITS && length >= 12)
    return RELAIS_STRENGTH_STRONG;
  if (bits >= FAIR_BITS && length >= 10)
    return RELAIS_STRENGTH_FAIR;
  return RELAIS_STRENGTH_WEAK;
}

const char *
relais_strength_describe (RelaisStrength strength)
{
  switch (strength)
    {
    case RELAIS_STRENGTH_EMPTY:
      return _("Use several unrelated words, or a long sentence only you know");
    case RELAIS_STRENGTH_WEAK:
      return _("Weak: make it longer, for example with more words");
    case RELAIS_STRENGTH_FAIR:
      return _("Fair: a few more words would make it strong");
    case RELAIS_STRENGTH_STRONG:
      return _("Strong");
    default:
      g_return_val_if_reached (NULL);
    }
}
