#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <string.h>
#include <sys/wait.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "relais-test-util.h"
#include "relais-fold.h"
#include "relais-import.h"
#include "relais-oplog.h"
#include "relais-person.h"

/* The dossier list's search (relais_person_search(), relais-search.c).
 * Besides the cases written out, every search here is compared with the
 * plain scan the index replaced: the same dossiers, in the same order. */

typedef struct {
  char        *parent;
  char        *dir;
  RelaisVault *vault;
} Fixture;

#define PASSPHRASE "pass"

static RelaisVault *
open_vault (const char *dir)
{
  g_autoptr(GError) error = NULL;
  RelaisKdfParams params;
  RelaisVault *vault;

  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_open (dir, PASSPHRASE, &(RelaisVaultOptions) { .kdf = &params }, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);
  return vault;
}

static void
fixture_set_up (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  RelaisKdfParams params;

  fx->parent = relais_test_make_tmpdir ("relais-search-XXXXXX");
  fx->dir = g_build_filename (fx->parent, "vault", NULL);
  relais_kdf_params_insecure_for_tests (&params);
  fx->vault = relais_vault_create (fx->dir, PASSPHRASE,
                                   &(RelaisVaultOptions) { .kdf = &params }, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fx->vault);
}

static void
fixture_tear_down (Fixture       *fx,
                   gconstpointer  data)
{
  g_clear_pointer (&fx->vault, relais_vault_close);
  relais_test_rm_rf (fx->parent);
  g_free (fx->dir);
  g_free (fx->parent);
}

static char *
add_person (RelaisVault *vault,
            const char  *last,
            const char  *first,
            const char  *birth)
{
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(GError) error = NULL;
  char *id;

  person->last_name = g_strdup (last);
  person->first_name = g_strdup (first);
  person->birth_date = g_strdup (birth);
  id = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  return id;
}

static void
rename_person (RelaisVault *vault,
               const char  *id,
               const char  *last,
               const char  *first)
{
  g_autoptr(RelaisPerson) changes = relais_person_new ();
  g_autoptr(GError) error = NULL;

  changes->last_name = g_strdup (last);
  changes->first_name = g_strdup (first);
  g_assert_true (relais_person_edit (vault, id, changes, &error));
  g_assert_no_error (error);
}

/* The search before the index: instr() on every row, in list order. */
static GPtrArray *
scan_ids (RelaisVault *vault,
          const char  *query,
          guint        limit)
{
  g_autofree char *folded = relais_fold (query != NULL ? query : "");
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  sqlite3 *db = relais_vault_get_db (vault);
  sqlite3_stmt *stmt = NULL;
  int rc;

  rc = sqlite3_prepare_v2 (db,
                           "SELECT id FROM person"
                           " WHERE ?1 = '' "
                           "    OR instr (coalesce (fold_last, '') || ' ' || coalesce (fold_first, ''), ?1) > 0"
                           "    OR instr (coalesce (fold_first, '') || ' ' || coalesce (fold_last, ''), ?1) > 0"
                           " ORDER BY fold_last, fold_first, birth_date, id LIMIT ?2",
                           -1, &stmt, NULL);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  sqlite3_bind_text (stmt, 1, folded, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, limit == 0 ? -1 : (sqlite3_int64) limit);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (ids, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
  g_assert_cmpint (rc, ==, SQLITE_DONE);
  sqlite3_finalize (stmt);
  return g_steal_pointer (&ids);
}

/* relais_person_search(), checked against the scan; returns the ids. */
static GPtrArray *
search (RelaisVault *vault,
        const char  *query,
        guint        limit)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) people = relais_person_search (vault, query, limit, &error);
  g_autoptr(GPtrArray) expected = scan_ids (vault, query, limit);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);

  g_assert_no_error (error);
  g_assert_nonnull (people);
  for (guint i = 0; i < people->len; i++)
    g_ptr_array_add (ids, g_strdup (((RelaisPerson *) g_ptr_array_index (people, i))->id));

  if (ids->len != expected->len)
    g_test_message ("query “%s” limit %u: %u dossiers, the scan finds %u",
                    query, limit, ids->len, expected->len);
  g_assert_cmpuint (ids->len, ==, expected->len);
  for (guint i = 0; i < ids->len; i++)
    g_assert_cmpstr (g_ptr_array_index (ids, i), ==, g_ptr_array_index (expected, i));

  /* What the list view asks for: how many, and a page further down. */
  {
    g_autoptr(GPtrArray) every = scan_ids (vault, query, 0);
    guint n = G_MAXUINT;

    g_assert_true (relais_person_count (vault, query, &n, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (n, ==, every->len);
    for (guint offset = 1; offset < 40; offset += 13)
      {
        g_autoptr(GPtrArray) page = relais_person_search_page (vault, query, offset, limit, &error);
        guint want = offset >= every->len ? 0 : every->len - offset;

        g_assert_no_error (error);
        g_assert_nonnull (page);
        if (limit > 0)
          want = MIN (want, limit);
        g_assert_cmpuint (page->len, ==, want);
        for (guint i = 0; i < page->len; i++)
          g_assert_cmpstr (((RelaisPerson *) g_ptr_array_index (page, i))->id, ==,
                           g_ptr_array_index (every, offset + i));
      }
  }
  return g_steal_pointer (&ids);
}

static guint
count (RelaisVault *vault,
       const char  *query)
{
  g_autoptr(GPtrArray) ids = search (vault, query, 0);

  return ids->len;
}

static gboolean
finds (RelaisVault *vault,
       const char  *query,
       const char  *id)
{
  g_autoptr(GPtrArray) ids = search (vault, query, 0);

  for (guint i = 0; i < ids->len; i++)
    if (strcmp (g_ptr_array_index (ids, i), id) == 0)
      return TRUE;
  return FALSE;
}

/* The index holds one entry per person, each linked from its row, and
 * FTS5 finds its own structure sound. */
static void
assert_index_sound (RelaisVault *vault)
{
  sqlite3 *db = relais_vault_get_db (vault);
  sqlite3_stmt *stmt = NULL;

  g_assert_cmpint (sqlite3_exec (db, "INSERT INTO person_search (person_search) VALUES ('integrity-check')",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db,
                                       "SELECT (SELECT count(*) FROM person),"
                                       "       (SELECT count(*) FROM person_search),"
                                       "       (SELECT count(*) FROM person p JOIN person_search s"
                                       "          ON s.rowid = p.search_rowid AND s.person = p.rowid"
                                       "          AND s.last IS p.fold_last AND s.first IS p.fold_first)",
                                       -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (stmt, 1), ==, sqlite3_column_int (stmt, 0));
  g_assert_cmpint (sqlite3_column_int (stmt, 2), ==, sqlite3_column_int (stmt, 0));
  sqlite3_finalize (stmt);
}

static void
test_lengths (Fixture       *fx,
              gconstpointer  data)
{
  g_autofree char *helene = add_person (fx->vault, "Quenouillère", "Hélène", "1981-02-03");
  g_autofree char *jean = add_person (fx->vault, "Dupont", "Jean", "1970-01-01");
  g_autofree char *zoe = add_person (fx->vault, "Wagner", "Zoé", "1990-06-07");

  /* One letter, two, three and more. */
  g_assert_cmpuint (count (fx->vault, "q"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "e"), ==, 3);
  g_assert_cmpuint (count (fx->vault, "w"), ==, 1);
  g_assert_true (finds (fx->vault, "qu", helene));
  g_assert_cmpuint (count (fx->vault, "qu"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "ea"), ==, 1);
  g_assert_true (finds (fx->vault, "zo", zoe));
  g_assert_cmpuint (count (fx->vault, "oe"), ==, 1);   /* zoe */
  g_assert_cmpuint (count (fx->vault, "ne"), ==, 2);   /* helene, wagner */
  g_assert_true (finds (fx->vault, "dup", jean));
  g_assert_cmpuint (count (fx->vault, "dup"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "ouillèr"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "quenouillere"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "quenouilleres"), ==, 0);
  /* Trigrams all there, but not in a row. */
  g_assert_cmpuint (count (fx->vault, "dupjean"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "zz"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "xyz"), ==, 0);
  assert_index_sound (fx->vault);
}

static void
test_accents_and_case (Fixture       *fx,
                       gconstpointer  data)
{
  g_autofree char *helene = add_person (fx->vault, "Lefèvre", "Hélène", "1981-02-03");
  g_autofree char *plain = add_person (fx->vault, "Lefevre", "Helene", "1982-02-03");
  g_autofree char *celik = add_person (fx->vault, "Çelik", "Anaïs", "1990-01-01");
  g_autofree char *laetitia = add_person (fx->vault, "Noël", "Lætitia", "1991-01-01");
  g_autofree char *oster = add_person (fx->vault, "Østergaard", "Bénédicte", "1992-01-01");

  /* Accents both ways: in the query and not in the name, and the reverse. */
  g_assert_cmpuint (count (fx->vault, "hélène"), ==, 2);
  g_assert_cmpuint (count (fx->vault, "HELENE"), ==, 2);
  g_assert_cmpuint (count (fx->vault, "LeFÈvRe"), ==, 2);
  g_assert_cmpuint (count (fx->vault, "fè"), ==, 2);
  g_assert_true (finds (fx->vault, "cel", celik));
  g_assert_true (finds (fx->vault, "ÇEL", celik));
  g_assert_true (finds (fx->vault, "ïs", celik));
  g_assert_true (finds (fx->vault, "anais", celik));
  g_assert_true (finds (fx->vault, "NOEL", laetitia));
  g_assert_true (finds (fx->vault, "laet", laetitia));
  g_assert_true (finds (fx->vault, "læt", laetitia));
  g_assert_true (finds (fx->vault, "benedicte", oster));
  /* ø is not a letter the index spells: it still finds it, and only it. */
  g_assert_true (finds (fx->vault, "øs", oster));
  g_assert_true (finds (fx->vault, "østerg", oster));
  g_assert_cmpuint (count (fx->vault, "øs"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "os"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "*s"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "*ster"), ==, 0);
  (void) helene;
  (void) plain;
}

static void
test_across_names (Fixture       *fx,
                   gconstpointer  data)
{
  g_autofree char *helene = add_person (fx->vault, "Quenouillère", "Hélène", "1981-02-03");
  g_autofree char *goff = add_person (fx->vault, "Le Goff", "Jean-Noël", "1960-01-01");

  g_assert_true (finds (fx->vault, "hélène QUEN", helene));
  g_assert_true (finds (fx->vault, "quenouillere h", helene));
  g_assert_true (finds (fx->vault, "e q", helene));
  g_assert_true (finds (fx->vault, "re h", helene));
  g_assert_true (finds (fx->vault, "ne q", helene));
  g_assert_true (finds (fx->vault, "  hélène   quenouillère ", helene));
  g_assert_cmpuint (count (fx->vault, "hélène quenouillère"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "helene  x"), ==, 0);
  /* A space inside the last name, a hyphen in the first. */
  g_assert_true (finds (fx->vault, "le g", goff));
  g_assert_true (finds (fx->vault, "goff jean-n", goff));
  g_assert_true (finds (fx->vault, "noel le goff", goff));
  g_assert_true (finds (fx->vault, "l le", goff));
  g_assert_true (finds (fx->vault, "n-n", goff));
  g_assert_cmpuint (count (fx->vault, "lle"), ==, 1);    /* quenouillere */
  g_assert_cmpuint (count (fx->vault, "e g"), ==, 1);    /* le goff */
}

static void
test_order_and_limit (Fixture       *fx,
                      gconstpointer  data)
{
  g_autoptr(GPtrArray) ids = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autofree char *first = NULL;

  /* Many people whose names share more than the index's first bytes, some
   * with the very same name and birth date (the id decides), and long
   * names that only differ after them. */
  for (int i = 0; i < 120; i++)
    {
      g_autofree char *birth = g_strdup_printf ("19%02d-0%d-1%d", 40 + i % 50, 1 + i % 9, i % 10);
      g_autofree char *id = NULL;
      const char *firsts[] = { "Anne", "Anne-Sophie", "Annie", "Bénédicte", "Benoît" };
      const char *lasts[] = { "Rousseau", "Rousseau-Martin", "Rousseaux", "Chevalier", "Chevallier" };

      id = add_person (fx->vault, lasts[i % 5], firsts[(i / 5) % 5], i % 7 == 0 ? "1980-01-01" : birth);
      if (i == 0)
        first = g_steal_pointer (&id);
    }

  for (guint limit = 0; limit <= 60; limit += limit < 10 ? 1 : 7)
    {
      g_clear_pointer (&ids, g_ptr_array_unref);
      ids = search (fx->vault, "rousseau", limit);
      g_assert_cmpuint (ids->len, ==, limit == 0 ? 72 : MIN (limit, 72));
      g_clear_pointer (&ids, g_ptr_array_unref);
      ids = search (fx->vault, "ann", limit);
      g_clear_pointer (&ids, g_ptr_array_unref);
      ids = search (fx->vault, "be", limit);
      g_clear_pointer (&ids, g_ptr_array_unref);
      ids = search (fx->vault, "cheval", limit);
      g_clear_pointer (&ids, g_ptr_array_unref);
      ids = search (fx->vault, "e", limit);
      g_clear_pointer (&ids, g_ptr_array_unref);
      ids = search (fx->vault, "", limit);
    }

  all = search (fx->vault, NULL, 0);
  g_assert_cmpuint (all->len, ==, 120);
  assert_index_sound (fx->vault);
  (void) first;
}

static void
test_rename (Fixture       *fx,
             gconstpointer  data)
{
  g_autofree char *id = add_person (fx->vault, "Quenouillère", "Hélène", "1981-02-03");
  g_autofree char *other = add_person (fx->vault, "Martin", "Paul", "1970-01-01");

  g_assert_true (finds (fx->vault, "quenou", id));

  /* Into another group of the list order. */
  rename_person (fx->vault, id, "Zidane", NULL);
  g_assert_cmpuint (count (fx->vault, "quenou"), ==, 0);
  g_assert_true (finds (fx->vault, "zidane", id));
  g_assert_true (finds (fx->vault, "hélène zid", id));
  assert_index_sound (fx->vault);

  /* Within the same group: only letters after the ninth byte change. */
  rename_person (fx->vault, id, "Zidane-Dupontel", NULL);
  rename_person (fx->vault, id, "Zidane-Dupontex", NULL);
  g_assert_cmpuint (count (fx->vault, "dupontel"), ==, 0);
  g_assert_true (finds (fx->vault, "dupontex", id));
  rename_person (fx->vault, id, NULL, "Bénédicte");
  g_assert_cmpuint (count (fx->vault, "helene"), ==, 0);
  g_assert_true (finds (fx->vault, "benedicte zidane", id));
  g_assert_true (finds (fx->vault, "martin", other));
  assert_index_sound (fx->vault);

  /* A rename rolled back leaves the index as it was. */
  {
    g_autoptr(RelaisPerson) changes = relais_person_new ();
    g_autoptr(GError) error = NULL;

    changes->last_name = g_strdup ("Abélard");
    g_assert_true (relais_vault_begin (fx->vault, &error));
    g_assert_true (relais_person_edit_in_transaction (fx->vault, id, changes, &error));
    g_assert_no_error (error);
    g_assert_true (finds (fx->vault, "abelard", id));
    relais_vault_rollback (fx->vault);
  }
  g_assert_cmpuint (count (fx->vault, "abelard"), ==, 0);
  g_assert_true (finds (fx->vault, "dupontex", id));
  assert_index_sound (fx->vault);
}

static void
test_synced_names (Fixture       *fx,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gboolean is_new = FALSE;
  RelaisOp op = {
    .id = (char *) "op-1", .dossier = (char *) "d-1", .entity = (char *) "person",
    .entity_id = (char *) "d-1", .field = (char *) "phone", .value = (char *) "0601020304",
    .hlc = 1, .author = (char *) "someone", .device = (char *) "elsewhere",
  };

  /* A dossier from another device, its phone first: no name yet. */
  g_assert_true (relais_vault_begin (fx->vault, &error));
  g_assert_true (relais_oplog_apply (fx->vault, &op, &is_new, &error));
  g_assert_no_error (error);
  g_assert_true (relais_vault_commit (fx->vault, &error));
  g_assert_cmpuint (count (fx->vault, "ri"), ==, 0);
  g_assert_cmpuint (count (fx->vault, NULL), ==, 1);

  /* Then its first name alone, then its last name. */
  op.id = (char *) "op-2";
  op.field = (char *) "first_name";
  op.value = (char *) "Mériem";
  op.hlc = 2;
  g_assert_true (relais_vault_begin (fx->vault, &error));
  g_assert_true (relais_oplog_apply (fx->vault, &op, &is_new, &error));
  g_assert_true (relais_vault_commit (fx->vault, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count (fx->vault, "meri"), ==, 1);
  g_assert_cmpuint (count (fx->vault, " meri"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "m m"), ==, 0);

  op.id = (char *) "op-3";
  op.field = (char *) "last_name";
  op.value = (char *) "Mansouri";
  op.hlc = 3;
  g_assert_true (relais_vault_begin (fx->vault, &error));
  g_assert_true (relais_oplog_apply (fx->vault, &op, &is_new, &error));
  g_assert_true (relais_vault_commit (fx->vault, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count (fx->vault, "mansouri meriem"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "m m"), ==, 1);
  assert_index_sound (fx->vault);
}

static void
test_metacharacters (Fixture       *fx,
                     gconstpointer  data)
{
  g_autofree char *pct = add_person (fx->vault, "Cent%Pour", "Anne_Marie", "1980-01-01");
  g_autofree char *quote = add_person (fx->vault, "O\"Hara", "Star*", "1980-01-02");
  g_autofree char *apos = add_person (fx->vault, "N'Diaye", "Moussa", "1980-01-03");
  g_autofree char *dupont = add_person (fx->vault, "Dupont", "Paul", "1980-01-04");

  /* % and _ are letters like any other, not patterns; " and * are not
   * FTS5 syntax. */
  g_assert_true (finds (fx->vault, "%", pct));
  g_assert_cmpuint (count (fx->vault, "%"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "t%p"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "e_m"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "d_pont"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "d%"), ==, 0);
  g_assert_true (finds (fx->vault, "\"", quote));
  g_assert_true (finds (fx->vault, "o\"h", quote));
  g_assert_true (finds (fx->vault, "o\"", quote));
  g_assert_cmpuint (count (fx->vault, "\"\""), ==, 0);
  g_assert_cmpuint (count (fx->vault, "\" OR \""), ==, 0);
  g_assert_cmpuint (count (fx->vault, "NEAR(a b)"), ==, 0);
  g_assert_true (finds (fx->vault, "r*", quote));
  g_assert_cmpuint (count (fx->vault, "*"), ==, 1);
  g_assert_cmpuint (count (fx->vault, "**"), ==, 0);
  g_assert_true (finds (fx->vault, "n'd", apos));
  g_assert_true (finds (fx->vault, "N’DIAYE", apos));
  g_assert_cmpuint (count (fx->vault, "'"), ==, 1);
  g_assert_true (finds (fx->vault, "dupont", dupont));
}

static void
test_hostile (Fixture       *fx,
              gconstpointer  data)
{
  g_autoptr(GString) long_query = g_string_new (NULL);
  g_autofree char *id = add_person (fx->vault, "Dupont", "Jean", "1970-01-01");
  gint64 start;

  /* Very long, made of a real name: many trigrams, still exact. */
  for (int i = 0; i < 2000; i++)
    g_string_append (long_query, "dupont jean ");
  start = g_get_monotonic_time ();
  g_assert_cmpuint (count (fx->vault, long_query->str), ==, 0);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  g_assert_cmpuint (count (fx->vault, "dupont jean dupont"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "jean dupont"), ==, 1);

  /* Only spaces: nothing typed, the whole list. */
  g_assert_cmpuint (count (fx->vault, "   "), ==, 1);
  g_assert_cmpuint (count (fx->vault, "\t \n"), ==, 1);
  g_assert_cmpuint (count (fx->vault, ""), ==, 1);

  /* Invalid UTF-8 and control characters: replaced or plain characters,
   * never the index's own separators. */
  g_assert_cmpuint (count (fx->vault, "\xff\xfe"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "dup\xc3"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "\x01"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "t\x01"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "\x01" "du"), ==, 0);
  g_assert_cmpuint (count (fx->vault, "n\x01"), ==, 0);
  g_assert_true (finds (fx->vault, "ont jea", id));
}

/* relaisctl person search QUERY, whatever bytes QUERY holds. */
static void
test_cli_invalid_utf8 (Fixture       *fx,
                       gconstpointer  data)
{
  const char *relaisctl = g_getenv ("RELAISCTL");
  g_autofree char *id = add_person (fx->vault, "Dupont", "Jean", "1970-01-01");
  const char *queries[] = { "\xff\xfe", "du\xc3", "\xe9" "dupont", "dup" };
  guint expected_lines[] = { 0, 0, 0, 1 };

  if (relaisctl == NULL)
    {
      g_test_skip ("RELAISCTL is not set");
      return;
    }
  g_clear_pointer (&fx->vault, relais_vault_close);

  for (guint i = 0; i < G_N_ELEMENTS (queries); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;
      g_auto(GStrv) env = g_get_environ ();
      const char *argv[] = { relaisctl, "person", "search", queries[i], "--vault", fx->dir, NULL };
      guint lines = 0;
      int status;

      env = g_environ_setenv (env, "RELAIS_PASSPHRASE", PASSPHRASE, TRUE);
      g_assert_true (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_DEFAULT, NULL, NULL,
                                   &out, &err, &status, &error));
      g_assert_no_error (error);
      if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        g_test_message ("stderr: %s", err);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 0);
      for (const char *p = out; *p != '\0'; p++)
        lines += *p == '\n';
      g_assert_cmpuint (lines, ==, expected_lines[i]);
    }
  fx->vault = open_vault (fx->dir);
  (void) id;
}

/* Names drawn from small lists, so that they share prefixes, with every
 * kind of character the index treats apart; queries cut from them. */
static const char * const random_lasts[] = {
  "Martin", "Martinez", "Martins", "Rousseau", "Rousseau-Martin", "Le Goff", "Le Gall",
  "Lefèvre", "Lefebvre", "Quenouillère", "Çelik", "Yılmaz", "Østergaard", "N'Diaye",
  "d'Almeida", "Chevalier", "Chevallier", "Wiśniewski", "Nguyen Van", "Lœuillet", "A",
  "Ba", "Abcdefghijklmno", "Abcdefghijklmnp", "Mc*Gill", "Zoë",
};
static const char * const random_firsts[] = {
  "Hélène", "Anaïs", "Noël", "Zoé", "François", "Jean-Pierre", "Marie Claire", "A",
  "Bénédicte", "Lætitia", "İlkay", "Ødegård", "Li", "Jo", "Anne", "Anne-Sophie",
};

static char *
random_query (GRand *rand)
{
  const char *name = g_rand_boolean (rand)
                     ? random_lasts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_lasts))]
                     : random_firsts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_firsts))];
  const char *other = random_firsts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_firsts))];
  g_autofree char *text = g_rand_int_range (rand, 0, 4) == 0 ? g_strdup_printf ("%s %s", name, other)
                                                             : g_strdup (name);
  glong length = g_utf8_strlen (text, -1);
  glong want = g_rand_int_range (rand, 1, 10);
  glong start;
  g_autofree char *part = NULL;

  want = MIN (want, length);
  start = g_rand_int_range (rand, 0, (gint32) (length - want + 1));
  part = g_utf8_substring (text, start, start + want);

  if (g_rand_boolean (rand))
    return g_utf8_strup (part, -1);
  return g_steal_pointer (&part);
}

/* Hundreds of people, through the importer (which indexes them all at the
 * end), the one-by-one path and renames; every query checked against the
 * scan at several limits; then an upgrade from a vault without the index. */
static void
test_against_scan (Fixture       *fx,
                   gconstpointer  data)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  g_autoptr(GString) csv = g_string_new ("Nom;Prénom;Date de naissance\n");
  g_autoptr(GPtrArray) ids = NULL;
  g_autoptr(GError) error = NULL;
  const guint limits[] = { 0, 1, 3, 50 };
  sqlite3 *db;

  for (int i = 0; i < 600; i++)
    g_string_append_printf (csv, "%s;%s;%02d/%02d/19%02d\n",
                            random_lasts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_lasts))],
                            random_firsts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_firsts))],
                            g_rand_int_range (rand, 1, 29), g_rand_int_range (rand, 1, 13),
                            g_rand_int_range (rand, 40, 99));
  g_assert_true (relais_import_csv (fx->vault, csv->str, csv->len, NULL, &error));
  g_assert_no_error (error);
  for (int i = 0; i < 100; i++)
    {
      g_autofree char *birth = g_strdup_printf ("2001-%02d-%02d", 1 + i % 12, 1 + i % 28);
      g_autofree char *id = add_person (fx->vault,
                                        random_lasts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_lasts))],
                                        random_firsts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_firsts))],
                                        birth);
    }
  ids = search (fx->vault, NULL, 0);
  for (int i = 0; i < 50; i++)
    rename_person (fx->vault, g_ptr_array_index (ids, g_rand_int_range (rand, 0, ids->len)),
                   random_lasts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_lasts))],
                   g_rand_boolean (rand) ? random_firsts[g_rand_int_range (rand, 0, G_N_ELEMENTS (random_firsts))]
                                         : NULL);
  assert_index_sound (fx->vault);

  for (int i = 0; i < 400; i++)
    {
      g_autofree char *query = random_query (rand);

      for (guint l = 0; l < G_N_ELEMENTS (limits); l++)
        {
          g_autoptr(GPtrArray) found = search (fx->vault, query, limits[l]);
        }
    }

  /* A vault of the version before the index: the upgrade indexes
   * everyone. */
  db = relais_vault_get_db (fx->vault);
  g_assert_cmpint (sqlite3_exec (db,
                                 "DROP TABLE person_search;"
                                 "ALTER TABLE person DROP COLUMN search_rowid;"
                                 "PRAGMA user_version = 2;",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  g_clear_pointer (&fx->vault, relais_vault_close);
  fx->vault = open_vault (fx->dir);
  assert_index_sound (fx->vault);
  for (int i = 0; i < 100; i++)
    {
      g_autofree char *query = random_query (rand);
      g_autoptr(GPtrArray) found = search (fx->vault, query, 50);
    }
}

/* Everything stays in the vault: no temporary file, sorting in memory. */
static void
test_stays_inside (Fixture       *fx,
                   gconstpointer  data)
{
  sqlite3 *db = relais_vault_get_db (fx->vault);
  sqlite3_stmt *stmt = NULL;
  g_autoptr(GDir) dir = NULL;
  const char *name;

  for (int i = 0; i < 200; i++)
    {
      g_autofree char *last = g_strdup_printf ("Durand%03d", i);
      g_autofree char *id = add_person (fx->vault, last, "Émile", "1950-01-01");
    }
  g_assert_cmpuint (count (fx->vault, "duran"), ==, 200);
  g_assert_cmpuint (count (fx->vault, "mile"), ==, 200);
  g_assert_cmpuint (count (fx->vault, "d0"), ==, 100);

  g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA temp_store", -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 2);   /* MEMORY */
  sqlite3_finalize (stmt);

  dir = g_dir_open (fx->dir, 0, NULL);
  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      if (strcmp (name, "vault.key") != 0 && !g_str_has_prefix (name, RELAIS_VAULT_DB_NAME))
        g_test_message ("unexpected file %s", name);
      g_assert_true (strcmp (name, "vault.key") == 0 ||
                     strcmp (name, RELAIS_VAULT_DB_NAME) == 0 ||
                     strcmp (name, RELAIS_VAULT_DB_NAME "-wal") == 0);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("/search/lengths", test_lengths);
  ADD ("/search/accents-and-case", test_accents_and_case);
  ADD ("/search/across-names", test_across_names);
  ADD ("/search/order-and-limit", test_order_and_limit);
  ADD ("/search/rename", test_rename);
  ADD ("/search/synced-names", test_synced_names);
  ADD ("/search/metacharacters", test_metacharacters);
  ADD ("/search/hostile", test_hostile);
  ADD ("/search/cli-invalid-utf8", test_cli_invalid_utf8);
  ADD ("/search/against-scan", test_against_scan);
  ADD ("/search/stays-inside", test_stays_inside);

#undef ADD

  return g_test_run ();
}
