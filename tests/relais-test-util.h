#pragma once

#include <gio/gio.h>

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

/* Starts a real relais-server: @argv is its whole command line
 * ("…/relais-server", "serve", "--store", …).  Its stderr is silenced and
 * it dies with the test, even one that fails half-way.  Waits for the
 * ready line ("relais-server: listening on URL") and sets *@out_url.  A
 * server that does not start fails the test. */
GSubprocess *relais_test_server_spawn (const char *const  *argv,
                                       char              **out_url);
/* Stops it with SIGTERM and checks that it exited 0. */
void         relais_test_server_stop  (GSubprocess        *process);

G_END_DECLS
