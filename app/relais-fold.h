#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Folds text for comparison and search: Unicode decomposition with the
 * combining marks dropped, case folded, ligatures expanded (œ → oe, æ → ae,
 * ß → ss), typographic apostrophes made plain (’ → '), white space
 * collapsed to one space and trimmed.  "Quenouillère" and "QUENOUILLERE"
 * both fold to "quenouillere".  Invalid UTF-8 is replaced, never trusted.
 * Never returns NULL. */
char *relais_fold (const char *text);

G_END_DECLS
