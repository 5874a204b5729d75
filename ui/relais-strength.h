#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  RELAIS_STRENGTH_EMPTY,
  RELAIS_STRENGTH_WEAK,
  RELAIS_STRENGTH_FAIR,
  RELAIS_STRENGTH_STRONG,
} RelaisStrength;

/* A deliberately simple estimate of how hard a passphrase is to guess, from
 * its length and the kinds of characters it uses, with repeated characters
 * counted less.  It cannot see dictionary words, so it errs towards caution
 * in its thresholds.  @out_bits (nullable) receives the estimate in bits. */
RelaisStrength relais_strength_estimate (const char *passphrase,
                                         double     *out_bits);

/* A sentence telling the person what the estimate means, translated. */
const char    *relais_strength_describe (RelaisStrength strength);

G_END_DECLS
