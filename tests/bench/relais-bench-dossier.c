#define G_LOG_DOMAIN "relais-bench"

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "relais-dossier.h"
#include "relais-oplog.h"
#include "relais-person.h"

/* The dossier list's filters and the overview page at 100,000 dossiers
 * (issue 3): each filter as the app runs it, beside the same query made
 * to scan its table (NOT INDEXED), so the line says what the index buys
 * on this machine.  One dossier in five has an appointment, an objective
 * with two actions, a note and an assessed theme.
 *
 *   relais-bench-dossier [--dossiers N] [--runs N] */

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

static int
compare_double (gconstpointer a,
                gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
percentile (GArray *times,
            double  p)
{
  g_array_sort (times, compare_double);
  return g_array_index (times, double, (guint) ((times->len - 1) * p));
}

/* Median time of @sql (bound with @arg) stepped to the end, over @runs. */
static double
time_query (RelaisVault *vault,
            const char  *sql,
            const char  *arg,
            guint        runs,
            guint       *out_rows)
{
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));

  for (guint r = 0; r < runs; r++)
    {
      g_autoptr(sqlite3_stmt) stmt = NULL;
      double start = now_ms ();
      double t;
      guint rows = 0;

      g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault), sql, -1, &stmt, NULL), ==, SQLITE_OK);
      sqlite3_bind_text (stmt, 1, arg, -1, SQLITE_STATIC);
      while (sqlite3_step (stmt) == SQLITE_ROW)
        rows++;
      t = now_ms () - start;
      g_array_append_val (times, t);
      *out_rows = rows;
    }
  return percentile (times, 0.5);
}

static void
report_filter (RelaisVault *vault,
               const char  *name,
               double       app_ms,
               guint        ids,
               const char  *scan_sql,
               const char  *arg,
               guint        runs)
{
  guint rows = 0;
  double scan_ms = time_query (vault, scan_sql, arg, runs, &rows);

  /* The scan must find what the filter found, or the comparison is void. */
  g_assert_cmpuint (rows, >=, ids);
  printf ("filter %s: %u dossiers in %.2f ms; full scan %.2f ms; scan/index %.1f\n",
          name, ids, app_ms, scan_ms, scan_ms / MAX (app_ms, 0.001));
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GArray) overview = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GDateTime) hour_ago = NULL;
  g_autofree char *parent = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *since_hlc = NULL;
  RelaisKdfParams params;
  RelaisVault *vault;
  int n_dossiers = 100000;
  int runs = 20;
  double start, app_ms;
  GOptionEntry entries[] = {
    { "dossiers", 0, 0, G_OPTION_ARG_INT, &n_dossiers, "Number of dossiers (100000)", "N" },
    { "runs", 0, 0, G_OPTION_ARG_INT, &runs, "Runs of each filter (20)", "N" },
    { NULL }
  };

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || n_dossiers < 10 || runs < 1)
    {
      g_printerr ("relais-bench-dossier: %s\n", error != NULL ? error->message : "bad arguments");
      return 1;
    }

  parent = g_dir_make_tmp ("relais-bench-dossier-XXXXXX", &error);
  g_assert_no_error (error);
  dir = g_build_filename (parent, "vault", NULL);
  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_create (dir, "bench", &(RelaisVaultOptions) { .kdf = &params }, NULL, &error);
  g_assert_no_error (error);

  start = now_ms ();
  g_assert_true (relais_vault_begin (vault, &error));
  for (int i = 0; i < n_dossiers; i++)
    {
      g_autofree char *last = g_strdup_printf ("Nom%05d", g_random_int_range (0, 50000));
      g_autofree char *first = g_strdup_printf ("Prénom%d", i);
      RelaisPerson person = { .last_name = last, .first_name = first,
                              .birth_date = (char *) "1980-01-01", .city = (char *) "Guéret" };

      g_ptr_array_add (ids, relais_person_add_in_transaction (vault, &person, &error));
      g_assert_no_error (error);
    }
  g_assert_true (relais_vault_commit (vault, &error));
  printf ("fill: %d dossiers in %.1f s\n", n_dossiers, (now_ms () - start) / 1000);

  start = now_ms ();
  g_assert_true (relais_vault_begin (vault, &error));
  for (int i = 0; i < n_dossiers; i += 5)
    {
      const char *dossier = g_ptr_array_index (ids, i);
      g_autofree char *at = g_strdup_printf ("2026-%02d-%02d 10:00", 1 + i % 12, 1 + i % 28);
      g_autofree char *due = g_strdup_printf ("2026-%02d-%02d", 1 + i % 12, 1 + (i / 7) % 28);
      g_autofree char *objective = NULL;

      g_free (relais_appointment_add (vault, dossier, at, "Référente", NULL, &error));
      objective = relais_objective_add (vault, dossier, "emploi", "Retrouver un emploi", &error);
      g_free (relais_action_add (vault, objective, "Mettre à jour le CV", due, NULL, &error));
      g_free (relais_action_add (vault, objective, "S'inscrire à une formation", NULL, NULL, &error));
      g_free (relais_note_add (vault, dossier, "Entretien de suivi.", &error));
      g_assert_true (relais_diagnostic_set (vault, dossier, "mobilite", "moyen", NULL, NULL, &error));
      g_assert_no_error (error);
    }
  g_assert_true (relais_vault_commit (vault, &error));
  printf ("fill: records of %d dossiers in %.1f s\n", n_dossiers / 5, (now_ms () - start) / 1000);

  /* Each filter as the app calls it (median of the runs), then the same
   * rows read by a scan of the table. */
  {
    g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
    guint n = 0;

    for (int r = 0; r < runs; r++)
      {
        g_autoptr(GPtrArray) found = NULL;
        double t = now_ms ();

        found = relais_dossier_ids_with_appointment_on (vault, "2026-01-01", &error);
        g_assert_no_error (error);
        t = now_ms () - t;
        g_array_append_val (times, t);
        n = found->len;
      }
    app_ms = percentile (times, 0.5);
    report_filter (vault, "appointments-on-day", app_ms, n,
                   "SELECT dossier FROM appointment NOT INDEXED"
                   " WHERE removed IS NULL AND status IS NOT 'cancelled'"
                   "   AND at BETWEEN ?1 || ' 00:00' AND ?1 || ' 23:59'",
                   "2026-01-01", runs);
  }
  {
    g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
    guint n = 0;

    for (int r = 0; r < runs; r++)
      {
        g_autoptr(GPtrArray) found = NULL;
        double t = now_ms ();

        found = relais_dossier_ids_with_late_actions (vault, "2026-03-01", &error);
        g_assert_no_error (error);
        t = now_ms () - t;
        g_array_append_val (times, t);
        n = found->len;
      }
    app_ms = percentile (times, 0.5);
    report_filter (vault, "late-actions", app_ms, n,
                   "SELECT dossier FROM action NOT INDEXED"
                   " WHERE removed IS NULL AND status IN ('planifiee', 'en-cours') AND due < ?1",
                   "2026-03-01", runs);
  }
  {
    g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
    g_autoptr(GDateTime) now = g_date_time_new_now_local ();
    guint n = 0;

    hour_ago = g_date_time_add_minutes (now, -60);
    for (int r = 0; r < runs; r++)
      {
        g_autoptr(GPtrArray) found = NULL;
        double t = now_ms ();

        found = relais_dossier_ids_changed_since (vault, hour_ago, 200, &error);
        g_assert_no_error (error);
        t = now_ms () - t;
        g_array_append_val (times, t);
        n = found->len;
      }
    app_ms = percentile (times, 0.5);
    since_hlc = g_strdup_printf ("%" G_GINT64_FORMAT,
                                 (g_date_time_to_unix (hour_ago) * 1000) << 16);
    report_filter (vault, "changed-since (first 200)", app_ms, n,
                   /* NOT INDEXED does not stop SQLite from using an index of
                    * a WITHOUT ROWID table; "+" does. */
                   "SELECT dossier FROM dossier_activity"
                   " WHERE +hlc >= CAST (?1 AS INTEGER) ORDER BY +hlc DESC LIMIT 200",
                   since_hlc, runs);
  }

  /* The overview page of one dossier: diagnostic, next appointment, open
   * actions, last notes. */
  for (int k = 0; k < 1000; k++)
    {
      const char *dossier = g_ptr_array_index (ids, g_random_int_range (0, n_dossiers));
      g_autoptr(GPtrArray) diagnostic = NULL;
      g_autoptr(RelaisAppointment) next = NULL;
      g_autoptr(GPtrArray) actions = NULL;
      g_autoptr(GPtrArray) notes = NULL;
      double t = now_ms ();

      diagnostic = relais_diagnostic_list (vault, dossier, &error);
      next = relais_appointment_next (vault, dossier, "2026-01-01 00:00", &error);
      actions = relais_action_list_open (vault, dossier, "2026-03-01", &error);
      notes = relais_note_list (vault, dossier, 3, &error);
      g_assert_no_error (error);
      t = now_ms () - t;
      g_array_append_val (overview, t);
    }
  printf ("overview p95 %.3f ms (diagnostic, next appointment, open actions, last 3 notes)\n",
          percentile (overview, 0.95));

  relais_vault_close (vault);
  {
    g_autofree char *db = g_build_filename (dir, RELAIS_VAULT_DB_NAME, NULL);
    g_autofree char *key = g_build_filename (dir, "vault.key", NULL);

    g_unlink (db);
    g_unlink (key);
    g_rmdir (dir);
    g_rmdir (parent);
  }
  return 0;
}
