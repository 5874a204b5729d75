#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* What every test program of the core needs: a fresh temporary directory
 * (a failure to make one fails the test) and its removal afterwards. */
char *relais_test_make_tmpdir (const char *prefix);
/* Removes @path and everything below it, without following links. */
void  relais_test_rm_rf       (const char *path);

G_END_DECLS
