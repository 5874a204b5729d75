#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A real PostgreSQL 15 cluster for tests and benchmarks, made in a fresh
 * temporary directory and listening on 127.0.0.1 only, on a free port,
 * with trust authentication and fsync off (fast, and nothing to keep).
 *
 *   if (!relais_test_pg_skip_unless_available ())
 *     return;                                   // g_test_skip() was called
 *   g_autoptr(RelaisTestPg) pg = relais_test_pg_start (&error);
 *   g_assert_no_error (error);
 *   uri = relais_test_pg_uri (pg);              // postgresql://USER@127.0.0.1:PORT/postgres
 *   db = relais_test_pg_create_database (pg, "t1", &error);  // a fresh, empty database
 *   ...
 *   relais_test_pg_stop (pg);                   // or let g_autoptr do it
 *
 * The binaries are looked for in $RELAIS_TEST_PG_BINDIR, else
 * /usr/lib/postgresql/15/bin.  initdb refuses root: when run as root, the
 * server runs as the "postgres" user (the directory is handed to it), and
 * the URIs name the "postgres" role; otherwise everything runs as the
 * current user, whose name is the role.  Starting takes about 0.5 s:
 * start one cluster per test program and give each test its own database.
 * A watchdog process stops the cluster and deletes its directory when the
 * program ends without stopping it (a failed assertion, a crash, a kill). */

typedef struct _RelaisTestPg RelaisTestPg;

/* Whether initdb, pg_ctl and createdb are there (and, as root, the
 * postgres user); when not, *@out_reason (if not NULL) says why. */
gboolean      relais_test_pg_available            (char        **out_reason);
/* For a GTest case: returns TRUE when PostgreSQL is available; otherwise
 * calls g_test_skip() with the reason and returns FALSE. */
gboolean      relais_test_pg_skip_unless_available (void);

RelaisTestPg *relais_test_pg_start                (GError      **error);
/* The URI of the "postgres" database; valid until stop. */
const char   *relais_test_pg_uri                  (RelaisTestPg *pg);
/* The port the cluster listens on (127.0.0.1). */
guint16       relais_test_pg_port                 (RelaisTestPg *pg);
/* Creates the database @name ([a-z0-9_]) and returns its URI. */
char         *relais_test_pg_create_database      (RelaisTestPg *pg,
                                                   const char   *name,
                                                   GError      **error);
/* Restarts the cluster on the same port (a fast shutdown: every session
 * is cut), as an operator or a failover would. */
gboolean      relais_test_pg_restart              (RelaisTestPg *pg,
                                                   GError      **error);
/* Stops the cluster (immediate shutdown) and deletes its directory. */
void          relais_test_pg_stop                 (RelaisTestPg *pg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisTestPg, relais_test_pg_stop)

G_END_DECLS
