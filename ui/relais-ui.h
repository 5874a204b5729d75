#pragma once

/* The desktop program's entry point.  This header has no GTK type so that
 * app/main.c stays free of GTK. */

/* Binds the text domain: to the build tree's translations when the program
 * runs uninstalled, to LOCALEDIR otherwise.  Tests call it too. */
void        relais_ui_init_i18n          (void);

/* Registers the program's GResource (templates, icons) once; safe to call
 * from any thread, any number of times. */
void        relais_ui_register_resources (void);

/* The build tree this program runs from, or NULL once installed. */
const char *relais_ui_get_build_dir      (void);

int         relais_ui_run                (int    argc,
                                          char **argv);
