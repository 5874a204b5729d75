/* relais-bench-search: how fast the dossier list answers a search, at the
 * size of a large office (issue 3, "Benchmarks").
 *
 * Fills an encrypted vault with 100,000 generated dossiers through the real
 * importer (a generated CSV file, one transaction, as `relaisctl import`),
 * (in a process of its own, so that the peak memory measured afterwards is
 * the app's, not the importer's), then opens the vault and runs 1,000
 * queries the way the list runs
 * them as a person types: parts of real names of 1 to 8 letters, half with
 * their accents stripped, in random case, each asking for the first 50
 * matches in list order (relais_person_search (vault, q, 50, …)).
 *
 * Each query also runs as the scan the list used before it had an index
 * (instr() over every row in list order), right next to it: the two must
 * return the same dossiers in the same order, and the report gives both
 * timings:
 *
 *   import 100000 dossiers: 5.31 s
 *   search p95 1.20 ms (scan baseline 41.00 ms)
 *
 * Names are realistic and clearly fictional combinations: ~300 last names
 * and ~200 first names of France, with their accents, drawn with a
 * long-tailed frequency (a few names are very common) and one last name in
 * six double-barrelled, so the vault holds thousands of distinct names.
 * Timings are never pass/fail: --quick makes a small run for the smoke
 * test, which only checks that the lines are there (and that both searches
 * agree). */

#define G_LOG_DOMAIN "relais-bench"

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "relais-fold.h"
#include "relais-import.h"
#include "relais-keyfile.h"
#include "relais-person.h"
#include "relais-vault.h"

#define BENCH_PASSPHRASE "correct horse battery staple"
#define QUERY_LIMIT 50

static const char * const last_names[] = {
  "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
  "Moreau", "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David",
  "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
  "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc",
  "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia",
  "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu",
  "Gautier", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Marie", "Lemaire",
  "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly",
  "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez", "Gérard",
  "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron",
  "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
  "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet",
  "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot",
  "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps",
  "Huet", "Vasseur", "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet",
  "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré", "Charles",
  "Renault", "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé",
  "Schneider", "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost",
  "Millet", "Perrot", "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson",
  "Langlois", "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré",
  "Lebrun", "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier",
  "Michaud", "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier",
  "Chevallier", "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard",
  "Maréchal", "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy", "Cordier",
  "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier", "Laporte",
  "Quenouillère", "Çelik", "Yılmaz", "Nguyen", "Tran", "Le", "Pham", "N'Diaye",
  "Diallo", "Traoré", "Koné", "Camara", "Diop", "Sow", "Cissé", "Touré",
  "Benali", "Benmoussa", "Haddad", "Boukhari", "Mansouri", "Belkacem", "Hamidi", "Chérif",
  "Bouzid", "Zerrouki", "Ould Ahmed", "Ferreira", "Pereira", "Gonçalves", "Rodrigues", "Alves",
  "Da Costa", "Fernandes", "Lopes", "Martins", "Oliveira", "Santos", "Sousa", "Ribeiro",
  "Kowalski", "Nowak", "Wiśniewski", "Dąbrowski", "Schäfer", "Müller", "Østergaard", "Ødegård",
  "Lœuillet", "Cœurdacier", "Bælen", "Déjardin", "Châtelain", "Crépin", "Frémont", "Hénaff",
  "Kerléan", "Le Bihan", "Le Floch", "Morvan", "Quéré", "Tanguy", "Guéguen", "Le Meur",
  "Abélard", "Aïssaoui", "Bréchet", "Cazenave", "Darrieussecq", "Etchegaray", "Ibarra", "Oyharçabal",
  "Péré", "Sarrazin", "Théron", "Vézinet", "Wagner", "Xavier", "Yvon", "Zébulon",
  "d'Almeida", "de La Fontaine", "Dupré", "Lefort", "Mésange", "Pâris", "Bœuf", "Saint-Exupéry",
  "Hébert", "Gervais", "Jégou", "Kieffer", "Lhermitte", "Maupassant", "Nédélec", "Ozanne",
  "Quintin", "Raoult", "Thévenin", "Urvoy", "Valéry", "Zidane", "Ébrard", "Écuyer",
  "Vanhoutte", "Van den Berghe", "Desmoulins", "Marais", "Lévy", "Cohen", "Azoulay", "Benhamou",
  "Ouattara", "Bamba", "Coulibaly", "Keïta", "Sylla", "Fofana", "Kanté", "Doumbia",
};

static const char * const first_names[] = {
  "Hélène", "Bénédicte", "Anaïs", "Noël", "Zoé", "François", "Françoise", "Jérôme",
  "Cédric", "Gaëlle", "Maëlys", "Chloé", "Léa", "Raphaël", "Joël", "Benoît",
  "Loïc", "Agnès", "Inès", "Clémence", "Mégane", "Séverine", "Véronique", "Frédéric",
  "Stéphane", "Sébastien", "Aurélie", "Élodie", "Émilie", "Célia", "Noémie", "Maïwenn",
  "Thaïs", "Éloïse", "Héloïse", "Gaël", "Mathéo", "Timothée", "Léo", "Théo",
  "Jean-François", "Marie-Hélène", "Anne-Sophie", "Jean-Pierre", "Marie", "Jean", "Pierre", "Michel",
  "Nathalie", "Isabelle", "Sylvie", "Catherine", "Philippe", "Alain", "Nicolas", "Christophe",
  "Patrick", "Christine", "Sandrine", "Laurent", "Valérie", "Thierry", "David", "Céline",
  "Julien", "Éric", "Sophie", "Stéphanie", "Pascal", "Olivier", "Emmanuel", "Laurence",
  "Daniel", "Martine", "Caroline", "Vincent", "Thomas", "Camille", "Julie", "Alexandre",
  "Mélanie", "Antoine", "Maxime", "Romain", "Guillaume", "Claire", "Lucas", "Hugo",
  "Louis", "Gabriel", "Arthur", "Jules", "Adam", "Emma", "Jade", "Louise",
  "Alice", "Lina", "Rose", "Ambre", "Mia", "Anna", "Léna", "Manon",
  "Mohamed", "Ahmed", "Youssef", "Karim", "Rachid", "Samir", "Nadia", "Fatima",
  "Khadija", "Yasmine", "Leïla", "Aïcha", "Mériem", "Sofiane", "Mehdi", "Bilal",
  "Ibrahima", "Mamadou", "Moussa", "Fatoumata", "Aminata", "Mariam", "Oumar", "Seydou",
  "João", "José", "António", "Conceição", "Gonçalo", "Inês", "Zeynep", "Ayşe",
  "Mustafa", "Emre", "Elif", "Thi Hoa", "Văn Minh", "Linh", "Quang", "Thu",
  "Bérénice", "Capucine", "Domitille", "Eugénie", "Félicie", "Geneviève", "Honorine", "Irène",
  "Joséphine", "Léonie", "Madeleine", "Mathilde", "Océane", "Pénélope", "Rébecca", "Solène",
  "Thérèse", "Ursule", "Victoire", "Yaëlle", "Zélie", "Adèle", "Anaëlle", "Maïlys",
  "Nolwenn", "Gwenaëlle", "Erwan", "Yannick", "Loïs", "Noa", "Sacha", "Éléonore",
  "Aurélien", "Baptiste", "Clément", "Damien", "Fabien", "Grégoire", "Hervé", "Ismaël",
  "Jérémie", "Kévin", "Ludovic", "Mickaël", "Nathanaël", "Quentin", "Rémi", "Ségolène",
  "Tristan", "Ulysse", "Valentin", "Wilfried", "Xavier", "Yves", "Zacharie", "Cyrielle",
  "Lætitia", "Chloë", "Jean-Noël", "Marie-Thérèse", "Pierre-Yves", "Anne-Laure", "Ève", "Noëlle",
};

static const struct { const char *postal_code; const char *city; } cities[] = {
  { "75011", "Paris" }, { "75019", "Paris" }, { "93200", "Saint-Denis" },
  { "69003", "Lyon" }, { "13001", "Marseille" }, { "31000", "Toulouse" },
  { "59000", "Lille" }, { "44000", "Nantes" }, { "67000", "Strasbourg" },
  { "33000", "Bordeaux" }, { "35000", "Rennes" }, { "29200", "Brest" },
  { "63000", "Clermont-Ferrand" }, { "97400", "Saint-Denis" }, { "64100", "Bayonne" },
  { "01000", "Bourg-en-Bresse" }, { "80000", "Amiens" }, { "87000", "Limoges" },
  { "21000", "Dijon" }, { "42000", "Saint-Étienne" },
};

static gboolean opt_quick;
static int opt_dossiers;
static int opt_queries;
static int opt_seed = 1;
static gboolean opt_verbose;
static char *opt_dir;
static char *opt_fill_dir;  /* internal: the filling half, in its own process */

static const GOptionEntry entries[] = {
  { "quick", 0, 0, G_OPTION_ARG_NONE, &opt_quick,
    "A small run (10,000 dossiers, 200 queries) for the smoke test", NULL },
  { "dossiers", 'n', 0, G_OPTION_ARG_INT, &opt_dossiers,
    "Number of dossiers (default 100,000)", "N" },
  { "queries", 'q', 0, G_OPTION_ARG_INT, &opt_queries,
    "Number of queries (default 1,000)", "N" },
  { "seed", 0, 0, G_OPTION_ARG_INT, &opt_seed,
    "Seed of the generator (default 1): the same seed makes the same vault and queries", "N" },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
    "Print the queries that took more than 2 ms to stderr", NULL },
  { "dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_dir,
    "Work under DIR (default: $TMPDIR or /var/tmp)", "DIR" },
  { "fill-dir", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &opt_fill_dir,
    NULL, NULL },
  { NULL }
};

/* ------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------ */

/* Index in [0, n) drawn with weight 1 / (rank + 3): a long tail, with
 * "Martin" a few percent of everyone as in France. */
typedef struct {
  double *cumulative;
  guint   n;
} Weighted;

static void
weighted_init (Weighted *w, guint n)
{
  double total = 0;

  w->n = n;
  w->cumulative = g_new (double, n);
  for (guint i = 0; i < n; i++)
    {
      total += 1.0 / (i + 3);
      w->cumulative[i] = total;
    }
  for (guint i = 0; i < n; i++)
    w->cumulative[i] /= total;
}

static guint
weighted_pick (const Weighted *w, GRand *rand)
{
  double x = g_rand_double (rand);
  guint lo = 0, hi = w->n - 1;

  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;

      if (w->cumulative[mid] < x)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

typedef struct {
  char *last_name;
  char *first_name;
} Name;

static void
name_clear (Name *name)
{
  g_free (name->last_name);
  g_free (name->first_name);
}

/* Lowercase ASCII for an e-mail address. */
static char *
ascii_mail_part (const char *name)
{
  g_autofree char *folded = relais_fold (name);
  GString *out = g_string_new (NULL);

  for (const char *p = folded; *p != '\0'; p++)
    if (g_ascii_isalnum (*p) || *p == '-')
      g_string_append_c (out, *p);
  return g_string_free (out, FALSE);
}

/* Writes the CSV a French office's spreadsheet would export and keeps the
 * names, from which the queries are taken.  Identities (names and birth
 * date) are unique, so that every row makes a dossier. */
static GString *
generate_csv (int n, GRand *rand, GArray *names)
{
  g_autoptr(GHashTable) identities = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GString *csv = g_string_sized_new ((gsize) n * 100);
  Weighted last_w, first_w;

  weighted_init (&last_w, G_N_ELEMENTS (last_names));
  weighted_init (&first_w, G_N_ELEMENTS (first_names));

  g_string_append (csv, "Nom;Prénom;Date de naissance;Téléphone;Courriel;Code postal;Commune\r\n");
  while ((int) names->len < n)
    {
      Name name;
      int day = g_rand_int_range (rand, 1, 29);
      int month = g_rand_int_range (rand, 1, 13);
      int year = g_rand_int_range (rand, 1940, 2007);
      guint city = g_rand_int_range (rand, 0, G_N_ELEMENTS (cities));
      g_autofree char *key = NULL;
      g_autofree char *fold_last = NULL;
      g_autofree char *fold_first = NULL;

      if (g_rand_int_range (rand, 0, 6) == 0)
        name.last_name = g_strdup_printf ("%s-%s",
                                          last_names[weighted_pick (&last_w, rand)],
                                          last_names[g_rand_int_range (rand, 0, G_N_ELEMENTS (last_names))]);
      else
        name.last_name = g_strdup (last_names[weighted_pick (&last_w, rand)]);
      name.first_name = g_strdup (first_names[weighted_pick (&first_w, rand)]);

      fold_last = relais_fold (name.last_name);
      fold_first = relais_fold (name.first_name);
      key = g_strdup_printf ("%s|%s|%04d-%02d-%02d", fold_last, fold_first, year, month, day);
      if (!g_hash_table_add (identities, g_steal_pointer (&key)))
        {
          name_clear (&name);
          continue;
        }

      g_string_append_printf (csv, "%s;%s;%02d/%02d/%04d;0%d %02d %02d %02d %02d;",
                              name.last_name, name.first_name, day, month, year,
                              g_rand_int_range (rand, 6, 8), g_rand_int_range (rand, 0, 100),
                              g_rand_int_range (rand, 0, 100), g_rand_int_range (rand, 0, 100),
                              g_rand_int_range (rand, 0, 100));
      if (g_rand_boolean (rand))
        {
          g_autofree char *first = ascii_mail_part (name.first_name);
          g_autofree char *last = ascii_mail_part (name.last_name);

          g_string_append_printf (csv, "%s.%s%d@exemple.fr", first, last, g_rand_int_range (rand, 1, 100));
        }
      g_string_append_printf (csv, ";%s;%s\r\n", cities[city].postal_code, cities[city].city);
      g_array_append_val (names, name);
    }

  g_free (last_w.cumulative);
  g_free (first_w.cumulative);
  return csv;
}

/* @text without its accents (ç → c, ë → e), case kept: what a person types
 * on a keyboard without them. */
static char *
strip_accents (const char *text)
{
  g_autofree char *decomposed = g_utf8_normalize (text, -1, G_NORMALIZE_NFD);
  GString *out = g_string_new (NULL);

  for (const char *p = decomposed; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c < 0x0300 || c > 0x036F)
        g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

/* A part of one of the generated names, of 1 to 8 letters, as someone
 * types it: half the time without accents, in lower, upper or the name's
 * own case. */
static char *
make_query (GRand *rand, GArray *names)
{
  const Name *name = &g_array_index (names, Name, g_rand_int_range (rand, 0, names->len));
  const char *whole = g_rand_boolean (rand) ? name->last_name : name->first_name;
  glong length = g_utf8_strlen (whole, -1);
  glong want = g_rand_int_range (rand, 1, 9);
  glong start;
  g_autofree char *part = NULL;

  if (want > length)
    want = length;
  start = g_rand_int_range (rand, 0, (gint32) (length - want + 1));
  part = g_utf8_substring (whole, start, start + want);
  if (g_rand_boolean (rand))
    {
      char *stripped = strip_accents (part);

      g_free (part);
      part = stripped;
    }
  switch (g_rand_int_range (rand, 0, 3))
    {
    case 0:  return g_utf8_strdown (part, -1);
    case 1:  return g_utf8_strup (part, -1);
    default: return g_steal_pointer (&part);
    }
}

/* Letters at random: most find nobody, the case that made the old scan
 * read every row. */
static char *
make_miss (GRand *rand)
{
  int length = g_rand_int_range (rand, 3, 7);
  GString *out = g_string_new (NULL);

  for (int i = 0; i < length; i++)
    g_string_append_c (out, "bcdfghjklmnpqrstvwxz"[g_rand_int_range (rand, 0, 20)]);
  return g_string_free (out, FALSE);
}

/* ------------------------------------------------------------------------
 * Measurement
 * ------------------------------------------------------------------------ */

static double
now_ms (void)
{
  return (double) g_get_monotonic_time () / 1000.0;
}

/* This thread's CPU time: what the search costs, whatever else the
 * machine runs (wall time is what a person waits for, on an idle laptop the
 * two are the same). */
static double
cpu_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static double
peak_rss_mib (void)
{
  struct rusage usage;

  getrusage (RUSAGE_SELF, &usage);
  return (double) usage.ru_maxrss / 1024.0;
}

static int
compare_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of @ms (sorted in place). */
static double
percentile (GArray *ms, double p)
{
  guint rank;

  if (ms->len == 0)
    return 0;
  g_array_sort (ms, compare_double);
  rank = (guint) (p / 100.0 * ms->len + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > ms->len)
    rank = ms->len;
  return g_array_index (ms, double, rank - 1);
}

/* The search the list ran before it had an index, kept here as the
 * baseline: instr() over every row, in list order, up to the limit. */
#define SCAN_BASELINE_SQL \
  "SELECT id FROM person" \
  " WHERE instr (coalesce (fold_last, '') || ' ' || coalesce (fold_first, ''), ?1) > 0" \
  "    OR instr (coalesce (fold_first, '') || ' ' || coalesce (fold_last, ''), ?1) > 0" \
  " ORDER BY fold_last, fold_first, birth_date, id LIMIT ?2"

static GPtrArray *
scan_baseline (sqlite3 *db, sqlite3_stmt *stmt, const char *query, GError **error)
{
  g_autofree char *folded = relais_fold (query);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  int rc;

  sqlite3_bind_text (stmt, 1, folded, -1, SQLITE_STATIC);
  sqlite3_bind_int (stmt, 2, QUERY_LIMIT);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (ids, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
  if (rc != SQLITE_DONE)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "scan baseline: %s", sqlite3_errmsg (db));
      return NULL;
    }
  return g_steal_pointer (&ids);
}

static gboolean
same_ids (GPtrArray *people, GPtrArray *ids)
{
  if (people->len != ids->len)
    return FALSE;
  for (guint i = 0; i < ids->len; i++)
    if (g_strcmp0 (((RelaisPerson *) g_ptr_array_index (people, i))->id,
                   g_ptr_array_index (ids, i)) != 0)
      return FALSE;
  return TRUE;
}

typedef struct {
  GArray *count;         /* ms, relais_person_count() */
  GArray *search;        /* ms */
  GArray *baseline;      /* ms */
  GArray *search_cpu;    /* ms */
  GArray *baseline_cpu;  /* ms */
} Timings;

static void
timings_init (Timings *t)
{
  t->count = g_array_new (FALSE, FALSE, sizeof (double));
  t->search = g_array_new (FALSE, FALSE, sizeof (double));
  t->baseline = g_array_new (FALSE, FALSE, sizeof (double));
  t->search_cpu = g_array_new (FALSE, FALSE, sizeof (double));
  t->baseline_cpu = g_array_new (FALSE, FALSE, sizeof (double));
}

static void
timings_clear (Timings *t)
{
  g_array_unref (t->count);
  g_array_unref (t->search);
  g_array_unref (t->baseline);
  g_array_unref (t->search_cpu);
  g_array_unref (t->baseline_cpu);
}

/* Runs @queries through relais_person_search() and the baseline, taking
 * turns on which goes first. */
static gboolean
run_queries (RelaisVault *vault, char **queries, Timings *all, Timings *by_length,
             guint *out_mismatches, guint *out_empty, GError **error)
{
  sqlite3 *db = relais_vault_get_db (vault);
  g_autoptr(sqlite3_stmt) stmt = NULL;

  if (sqlite3_prepare_v2 (db, SCAN_BASELINE_SQL, -1, &stmt, NULL) != SQLITE_OK)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "scan baseline: %s", sqlite3_errmsg (db));
      return FALSE;
    }

  *out_mismatches = 0;
  *out_empty = 0;
  for (guint i = 0; queries[i] != NULL; i++)
    {
      g_autoptr(GPtrArray) people = NULL;
      g_autoptr(GPtrArray) ids = NULL;
      g_autofree char *folded = relais_fold (queries[i]);
      glong length = MIN (g_utf8_strlen (folded, -1), 8);
      double search_ms = 0, baseline_ms = 0, search_cpu = 0, baseline_cpu = 0, count_ms = 0;

      for (int turn = 0; turn < 2; turn++)
        {
          double start = now_ms ();
          double start_cpu = cpu_ms ();

          if ((turn + i) % 2 == 0)
            {
              people = relais_person_search (vault, queries[i], QUERY_LIMIT, error);
              if (people == NULL)
                return FALSE;
              search_ms = now_ms () - start;
              search_cpu = cpu_ms () - start_cpu;
            }
          else
            {
              ids = scan_baseline (db, stmt, queries[i], error);
              if (ids == NULL)
                return FALSE;
              baseline_ms = now_ms () - start;
              baseline_cpu = cpu_ms () - start_cpu;
            }
        }

      /* The list view also counts the matches, to size itself. */
      {
        double start = now_ms ();
        guint n = 0;

        if (!relais_person_count (vault, queries[i], &n, error))
          return FALSE;
        count_ms = now_ms () - start;
        if (ids->len < QUERY_LIMIT ? n != ids->len : n < QUERY_LIMIT)
          {
            (*out_mismatches)++;
            g_printerr ("relais-bench-search: “%s”: counts %u dossiers, finds %u\n",
                        queries[i], n, ids->len);
          }
      }

      if (!same_ids (people, ids))
        {
          (*out_mismatches)++;
          g_printerr ("relais-bench-search: “%s”: %u dossiers, the scan finds %u%s\n",
                      queries[i], people->len, ids->len,
                      people->len == ids->len ? " (other ones or in another order)" : "");
        }
      if (ids->len == 0)
        (*out_empty)++;
      if (opt_verbose && search_ms > 2.0)
        g_printerr ("relais-bench-search: “%s”: %.2f ms, %u dossiers (scan baseline %.2f ms)\n",
                    queries[i], search_ms, people->len, baseline_ms);
      g_array_append_val (all->count, count_ms);
      g_array_append_val (all->search, search_ms);
      g_array_append_val (all->baseline, baseline_ms);
      g_array_append_val (all->search_cpu, search_cpu);
      g_array_append_val (all->baseline_cpu, baseline_cpu);
      if (by_length != NULL)
        {
          g_array_append_val (by_length[length].search, search_ms);
          g_array_append_val (by_length[length].baseline, baseline_ms);
        }
    }
  return TRUE;
}

/* The search half: what the app's process holds after unlocking and
 * searching (ru_maxrss counts this process only, not the filling one). */
static int
search_main (const char *dir)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *queries_path = g_build_filename (dir, "queries.txt", NULL);
  g_autofree char *misses_path = g_build_filename (dir, "misses.txt", NULL);
  g_autofree char *text = NULL;
  g_autofree char *miss_text = NULL;
  g_auto(GStrv) queries = NULL;
  g_auto(GStrv) misses = NULL;
  g_autoptr(GPtrArray) first = NULL;
  RelaisKdfParams kdf;
  RelaisVaultOptions options = { .kdf = &kdf };
  RelaisVault *vault;
  Timings all, miss, by_length[9];
  guint mismatches = 0, miss_mismatches = 0, empty = 0, miss_empty = 0;
  double start, open_ms, first_ms;

  if (!g_file_get_contents (queries_path, &text, NULL, &error) ||
      !g_file_get_contents (misses_path, &miss_text, NULL, &error))
    {
      g_printerr ("relais-bench-search: %s\n", error->message);
      return 1;
    }
  queries = g_strsplit (g_strchomp (text), "\n", -1);
  misses = g_strsplit (g_strchomp (miss_text), "\n", -1);

  relais_kdf_params_insecure_for_tests (&kdf);
  start = now_ms ();
  vault = relais_vault_open (dir, BENCH_PASSPHRASE, &options, &error);
  open_ms = now_ms () - start;
  if (vault == NULL)
    {
      g_printerr ("relais-bench-search: %s\n", error->message);
      return 1;
    }
  start = now_ms ();
  first = relais_person_search (vault, NULL, QUERY_LIMIT, &error);
  first_ms = now_ms () - start;
  if (first == NULL)
    {
      g_printerr ("relais-bench-search: %s\n", error->message);
      relais_vault_close (vault);
      return 1;
    }
  g_print ("open (key derivation cut short): %.1f ms, first %d rows: %.2f ms\n",
           open_ms, QUERY_LIMIT, first_ms);
  g_print ("peak rss after open: %.1f MiB\n", peak_rss_mib ());

  timings_init (&all);
  timings_init (&miss);
  for (guint l = 0; l < G_N_ELEMENTS (by_length); l++)
    timings_init (&by_length[l]);

  if (!run_queries (vault, queries, &all, by_length, &mismatches, &empty, &error) ||
      !run_queries (vault, misses, &miss, NULL, &miss_mismatches, &miss_empty, &error))
    {
      g_printerr ("relais-bench-search: %s\n", error->message);
      relais_vault_close (vault);
      return 1;
    }

  for (guint l = 1; l < G_N_ELEMENTS (by_length); l++)
    if (by_length[l].search->len > 0)
      g_print ("  %u letter%s (%u queries): p50 %.2f ms, p95 %.2f ms, max %.2f ms"
               " (scan baseline p50 %.2f ms, p95 %.2f ms)\n",
               l, l > 1 ? "s" : " ", by_length[l].search->len,
               percentile (by_length[l].search, 50), percentile (by_length[l].search, 95),
               percentile (by_length[l].search, 100),
               percentile (by_length[l].baseline, 50), percentile (by_length[l].baseline, 95));
  g_print ("random letters (%u queries, %u find nobody): p50 %.2f ms, p95 %.2f ms, max %.2f ms"
           " (scan baseline p50 %.2f ms, p95 %.2f ms)\n",
           miss.search->len, miss_empty,
           percentile (miss.search, 50), percentile (miss.search, 95), percentile (miss.search, 100),
           percentile (miss.baseline, 50), percentile (miss.baseline, 95));
  g_print ("search p50 %.2f ms, max %.2f ms (scan baseline p50 %.2f ms, max %.2f ms)\n",
           percentile (all.search, 50), percentile (all.search, 100),
           percentile (all.baseline, 50), percentile (all.baseline, 100));
  g_print ("cpu time: search p50 %.2f ms, p95 %.2f ms (scan baseline p50 %.2f ms, p95 %.2f ms)\n",
           percentile (all.search_cpu, 50), percentile (all.search_cpu, 95),
           percentile (all.baseline_cpu, 50), percentile (all.baseline_cpu, 95));
  g_print ("count (the list's size) p50 %.2f ms, p95 %.2f ms, max %.2f ms\n",
           percentile (all.count, 50), percentile (all.count, 95), percentile (all.count, 100));
  g_print ("search p95 %.2f ms (scan baseline %.2f ms)\n",
           percentile (all.search, 95), percentile (all.baseline, 95));
  g_print ("same results as the scan: %u of %u queries\n",
           all.search->len + miss.search->len - mismatches - miss_mismatches,
           all.search->len + miss.search->len);
  g_print ("peak rss after search: %.1f MiB\n", peak_rss_mib ());

  timings_clear (&all);
  timings_clear (&miss);
  for (guint l = 0; l < G_N_ELEMENTS (by_length); l++)
    timings_clear (&by_length[l]);
  relais_vault_close (vault);
  return mismatches + miss_mismatches == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * Filling
 * ------------------------------------------------------------------------ */

static gboolean
remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
      const char *name;

      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          remove_tree (child);
        }
    }
  return g_remove (path) == 0;
}

static gboolean
write_lines (const char *path, GPtrArray *lines, GError **error)
{
  g_autoptr(GString) text = g_string_new (NULL);

  for (guint i = 0; i < lines->len; i++)
    {
      g_string_append (text, g_ptr_array_index (lines, i));
      g_string_append_c (text, '\n');
    }
  return g_file_set_contents (path, text->str, (gssize) text->len, error);
}

static gboolean
fill (const char *dir, int n_dossiers, int n_queries, GError **error)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed ((guint32) opt_seed);
  g_autoptr(GArray) names = g_array_new (FALSE, FALSE, sizeof (Name));
  g_autoptr(GString) csv = NULL;
  g_autoptr(GPtrArray) queries = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) misses = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) distinct_last = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GHashTable) distinct_first = g_hash_table_new (g_str_hash, g_str_equal);
  g_autofree char *queries_path = g_build_filename (dir, "queries.txt", NULL);
  g_autofree char *misses_path = g_build_filename (dir, "misses.txt", NULL);
  RelaisImportStats stats = { 0 };
  RelaisKdfParams kdf;
  RelaisVaultOptions options = { .kdf = &kdf };
  RelaisVault *vault;
  double start, import_s;
  gboolean ok;

  g_array_set_clear_func (names, (GDestroyNotify) name_clear);
  csv = generate_csv (n_dossiers, rand, names);
  for (guint i = 0; i < names->len; i++)
    {
      g_hash_table_add (distinct_last, g_array_index (names, Name, i).last_name);
      g_hash_table_add (distinct_first, g_array_index (names, Name, i).first_name);
    }
  for (int i = 0; i < n_queries; i++)
    g_ptr_array_add (queries, make_query (rand, names));
  for (int i = 0; i < n_queries / 10; i++)
    g_ptr_array_add (misses, make_miss (rand));
  if (!write_lines (queries_path, queries, error) || !write_lines (misses_path, misses, error))
    return FALSE;

  relais_kdf_params_insecure_for_tests (&kdf);
  vault = relais_vault_create (dir, BENCH_PASSPHRASE, &options, NULL, error);
  if (vault == NULL)
    return FALSE;

  start = now_ms ();
  ok = relais_import_csv (vault, csv->str, csv->len, &stats, error);
  import_s = (now_ms () - start) / 1000.0;
  relais_vault_close (vault);
  if (!ok)
    return FALSE;
  if ((int) stats.created != n_dossiers)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "the import made %u dossiers, not %d",
                   stats.created, n_dossiers);
      return FALSE;
    }

  g_print ("dossiers: %d (%u distinct last names, %u distinct first names)\n",
           n_dossiers, g_hash_table_size (distinct_last), g_hash_table_size (distinct_first));
  g_print ("import %d dossiers: %.2f s\n", n_dossiers, import_s);
  g_print ("peak rss after import: %.1f MiB\n", peak_rss_mib ());
  return TRUE;
}

static const char *
default_base_dir (void)
{
  const char *tmpdir = g_getenv ("TMPDIR");

  return tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/var/tmp";
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- measure the dossier search at 100,000 dossiers");
  g_autoptr(GError) error = NULL;
  g_autofree char *work_dir = NULL;
  g_autofree char *self = NULL;
  g_autofree char *dossiers = NULL;
  g_autofree char *queries = NULL;
  g_autofree char *seed = NULL;
  int status = 0;
  int rc = 1;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("relais-bench-search: %s\n", error->message);
      return 2;
    }

  if (opt_dossiers <= 0)
    opt_dossiers = opt_quick ? 10000 : 100000;
  if (opt_queries <= 0)
    opt_queries = opt_quick ? 200 : 1000;

  if (opt_fill_dir != NULL)
    {
      if (!fill (opt_fill_dir, opt_dossiers, opt_queries, &error))
        {
          g_printerr ("relais-bench-search: %s\n", error->message);
          return 1;
        }
      return 0;
    }

  work_dir = g_build_filename (opt_dir != NULL ? opt_dir : default_base_dir (),
                               "relais-bench-search-XXXXXX", NULL);
  if (g_mkdtemp_full (work_dir, 0700) == NULL)
    {
      g_printerr ("relais-bench-search: %s: %s\n", work_dir, g_strerror (errno));
      return 1;
    }

  /* The importer holds the whole file and one big transaction: it runs in
   * a child, and this process, which searches, never grows that large. */
  self = g_file_read_link ("/proc/self/exe", &error);
  dossiers = g_strdup_printf ("%d", opt_dossiers);
  queries = g_strdup_printf ("%d", opt_queries);
  seed = g_strdup_printf ("%d", opt_seed);
  if (self != NULL)
    {
      const char *child_argv[] = {
        self, "--fill-dir", work_dir, "--dossiers", dossiers, "--queries", queries,
        "--seed", seed, NULL
      };

      if (g_spawn_sync (NULL, (char **) child_argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN,
                        NULL, NULL, NULL, NULL, &status, &error) &&
          g_spawn_check_wait_status (status, &error))
        rc = search_main (work_dir);
    }
  if (error != NULL)
    g_printerr ("relais-bench-search: %s\n", error->message);

  remove_tree (work_dir);
  g_free (opt_dir);
  return rc;
}
