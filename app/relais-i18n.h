#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Where the programs find their translations.  No GTK here: relaisctl and
 * the desktop program share it. */

/* The build tree this program runs from (its executable lies under it), or
 * NULL once installed. */
const char *relais_get_build_dir      (void);

/* The directory of the message catalogues: $RELAIS_LOCALEDIR when set, the
 * build tree's po/ when the program runs uninstalled, LOCALEDIR otherwise.
 * Free with g_free(). */
char       *relais_i18n_get_localedir (void);

/* Binds GETTEXT_PACKAGE to relais_i18n_get_localedir(), in UTF-8, and makes
 * it the default text domain.  Call it right after setlocale(). */
void        relais_i18n_init          (void);

G_END_DECLS
