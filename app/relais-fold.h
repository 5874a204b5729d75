#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Folds text for comparison and search: Unicode decomposition with the
 * combining marks dropped, case folded, ligatures expanded (œ → oe, æ → ae),
 * white space collapsed.  "Quenouillère" and "QUENOUILLERE" both fold to
 * "quenouillere". */
char *relais_fold (const char *text);

G_END_DECLS
