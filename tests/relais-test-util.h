#pragma once

#include <glib.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* What every test program of the core needs: a fresh temporary directory
 * (a failure to make one fails the test) and its removal afterwards. */
char *relais_test_make_tmpdir (const char *prefix);
/* Removes @path and everything below it, without following links. */
void  relais_test_rm_rf       (const char *path);

/* Applies to @to, in one transaction, every operation of @from, in @from's
 * order, as a sync would; returns how many were new to @to. */
guint relais_test_send_ops    (RelaisVault *from,
                               RelaisVault *to);

G_END_DECLS
