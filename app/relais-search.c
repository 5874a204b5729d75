#define G_LOG_DOMAIN "relais-search"

#include "config.h"

#include <string.h>
#include <glib/gi18n.h>

#include "relais-search.h"
#include "relais-oplog.h"

/* The list searches "any part of the name": the folded query must be a
 * substring of "last first" or "first last" (relais_person_search()).  At
 * 100,000 dossiers, testing every row in list order costs ~45 ms when
 * nothing matches, and sorting every trigram candidate costs as much for
 * the common names.  So the index is made of:
 *
 *  - one FTS5 row per person, tokenized into trigrams (detail=none: the
 *    row ids of each trigram and nothing else, a few bytes per person).
 *    Its text holds every trigram of "last first" and "first last"
 *    (index_text()), with every character that is not a-z, 0-9, space, '
 *    or - written '*': a query of three characters or more is the AND of
 *    its trigrams; a query of two is the OR of every trigram that holds it
 *    ("?ab", "ab?"), which the small alphabet and the \1 at both ends keep
 *    short and exact.  A query of one character matches most rows: the
 *    list-order scan finds its first ones at once (relais-person.c).  The
 *    row also holds the folded names themselves, on which every candidate
 *    is checked with the same instr() test as the plain scan: the index
 *    only ever narrows.
 *
 *  - a rowid that follows the list order: the top 45 bits encode the first
 *    9 bytes of the last name, an end mark, then the first name (5 bits
 *    each, through a map that never inverts two bytes), the low 18 bits
 *    tell apart the people who share them.  A search walks its matches in
 *    rowid order and stops at the end of the group that holds its
 *    @limit-th match: the first @limit in list order are among those read.
 *    That last group can be large (everyone named Rousseau): the names the
 *    index holds rank it, so that the caller reads and sorts only the
 *    first @limit and those of the same name as the last of them.
 *
 * The person row keeps the rowid of its entry (search_rowid), so that a
 * rename finds the entry to drop. */

#define SLOT_BITS   18
#define SLOT_MASK   ((G_GINT64_CONSTANT (1) << SLOT_BITS) - 1)
#define ORDER_CODES 9    /* of 5 bits: 45 + SLOT_BITS = 63, a positive rowid */

/* At most this many trigrams of a long query go to the index: the check on
 * the names is exact whatever the index returns. */
#define MAX_QUERY_TRIGRAMS 16

/* The FTS5 table's own content table: a plain lookup by its key, where a
 * lookup through the virtual table costs ten times as much. */
#define SQL_TAKEN  "SELECT 1 FROM person_search_content WHERE id = ?1"
#define SQL_REMOVE "DELETE FROM person_search WHERE rowid = ?1"
#define SQL_INSERT "INSERT INTO person_search (rowid, name, last, first, person)" \
                   " VALUES (?1, ?2, ?3, ?4, ?5)"
#define SQL_LINK   "UPDATE person SET search_rowid = ?1 WHERE rowid = ?2"

/* A byte of a folded name as 5 bits, never inverting two bytes (b1 < b2
 * gives code (b1) <= code (b2)), so that comparing codes never contradicts
 * comparing names as SQLite does (BINARY: memcmp).  0 pads the end, 1 ends
 * the last name (before any byte: "le" comes before "le goff"). */
static guint
order_code (guchar b)
{
  if (b <= ' ')
    return 2;
  if (b <= '\'')
    return 3;
  if (b < 'a')
    return 4;     /* - . digits */
  if (b <= 'z')
    return 5 + (b - 'a');
  return 31;      /* the bytes of other letters (ø, ı, ł…) */
}

/* The group of the list order that (last, first) falls in.  A NULL last
 * name (a record whose names have not arrived yet) sorts before everything,
 * as in SQLite. */
static gint64
order_group (const char *fold_last,
             const char *fold_first)
{
  guint64 key = 0;
  guint n = 0;

  if (fold_last != NULL)
    {
      for (const char *p = fold_last; *p != '\0' && n < ORDER_CODES; p++, n++)
        key = key << 5 | order_code ((guchar) *p);
      if (n < ORDER_CODES)
        {
          key = key << 5 | 1;
          n++;
        }
      if (fold_first != NULL)
        for (const char *p = fold_first; *p != '\0' && n < ORDER_CODES; p++, n++)
          key = key << 5 | order_code ((guchar) *p);
    }
  for (; n < ORDER_CODES; n++)
    key <<= 5;
  return (gint64) key;
}

/* One character of a folded name as the index writes it. */
static char
index_char (gunichar c)
{
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ' || c == '\'' || c == '-')
    return (char) c;
  return '*';
}

static void
append_index_text (GString    *out,
                   const char *text)
{
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    g_string_append_c (out, index_char (g_utf8_get_char (p)));
}

/* Every character the index text can hold: the neighbours a two-letter
 * query is looked up with. */
static const char index_alphabet[] = "\1 '*-0123456789abcdefghijklmnopqrstuvwxyz";

/* "\1last first\1" holds every trigram of "last first" and of each name;
 * what "first last" adds is around its space: the end of the first name,
 * the space and the start of the last name. */
static char *
index_text (const char *last,
            const char *first)
{
  GString *out = g_string_new ("\1");
  glong first_length = g_utf8_strlen (first, -1);
  const char *first_tail = g_utf8_offset_to_pointer (first, MAX (first_length - 2, 0));
  const char *last_head_end = last;

  append_index_text (out, last);
  g_string_append_c (out, ' ');
  append_index_text (out, first);
  g_string_append_c (out, '\1');
  append_index_text (out, first_tail);
  g_string_append_c (out, ' ');
  for (int i = 0; i < 2 && *last_head_end != '\0'; i++)
    last_head_end = g_utf8_next_char (last_head_end);
  for (const char *p = last; p < last_head_end; p = g_utf8_next_char (p))
    g_string_append_c (out, index_char (g_utf8_get_char (p)));
  g_string_append_c (out, '\1');
  return g_string_free (out, FALSE);
}

static int
step_done (sqlite3_stmt *stmt)
{
  int rc = sqlite3_step (stmt);

  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

typedef struct {
  sqlite3_stmt *taken;
  sqlite3_stmt *remove;
  sqlite3_stmt *insert;
  sqlite3_stmt *link;
} IndexStatements;

static int
is_taken (IndexStatements *stmts,
          gint64           rowid,
          gboolean        *out_taken)
{
  int rc;

  sqlite3_bind_int64 (stmts->taken, 1, rowid);
  rc = sqlite3_step (stmts->taken);
  sqlite3_reset (stmts->taken);
  sqlite3_clear_bindings (stmts->taken);
  *out_taken = rc == SQLITE_ROW;
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A free rowid of @group, from slot @slot on. */
static int
choose_rowid (IndexStatements *stmts,
              gint64           group,
              gint64           slot,
              gint64          *out_rowid)
{
  for (gint64 i = 0; i <= SLOT_MASK; i++)
    {
      gint64 rowid = group << SLOT_BITS | ((slot + i) & SLOT_MASK);
      gboolean taken;
      int rc = is_taken (stmts, rowid, &taken);

      if (rc != SQLITE_OK)
        return rc;
      if (!taken)
        {
          *out_rowid = rowid;
          return SQLITE_OK;
        }
    }
  /* 262,144 people whose names begin with the same 9 bytes. */
  return SQLITE_FULL;
}

/* Writes the entry @rowid of the person row @person_rowid, and when @link
 * records it in the row. */
static int
write_entry (IndexStatements *stmts,
             gint64           rowid,
             gint64           person_rowid,
             const char      *fold_last,
             const char      *fold_first,
             gboolean         link)
{
  g_autofree char *text = index_text (fold_last != NULL ? fold_last : "",
                                      fold_first != NULL ? fold_first : "");
  int rc;

  /* The names as the person row has them, NULL included: they sort the
   * matches as the list does (relais_search_candidates()). */
  sqlite3_bind_int64 (stmts->insert, 1, rowid);
  sqlite3_bind_text (stmts->insert, 2, text, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmts->insert, 3, fold_last, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmts->insert, 4, fold_first, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmts->insert, 5, person_rowid);
  rc = step_done (stmts->insert);
  if (rc != SQLITE_OK || !link)
    return rc;

  sqlite3_bind_int64 (stmts->link, 1, rowid);
  sqlite3_bind_int64 (stmts->link, 2, person_rowid);
  return step_done (stmts->link);
}

/* (Re)writes the entry of the person row @person_rowid.  @old_rowid is its
 * current entry, 0 if none.  People sharing the first bytes of their names
 * rarely share the low bits of their rowid too: the person's rowid is
 * where the search for a free slot starts. */
static int
index_one (IndexStatements *stmts,
           gint64           person_rowid,
           const char      *fold_last,
           const char      *fold_first,
           gint64           old_rowid)
{
  gint64 group = order_group (fold_last, fold_first);
  gint64 rowid;
  int rc;

  if (old_rowid != 0)
    {
      sqlite3_bind_int64 (stmts->remove, 1, old_rowid);
      rc = step_done (stmts->remove);
      if (rc != SQLITE_OK)
        return rc;
    }

  if (old_rowid != 0 && old_rowid >> SLOT_BITS == group)
    rowid = old_rowid;
  else if ((rc = choose_rowid (stmts, group, person_rowid, &rowid)) != SQLITE_OK)
    return rc;

  return write_entry (stmts, rowid, person_rowid, fold_last, fold_first, rowid != old_rowid);
}

typedef struct {
  gint64  rowid;    /* wanted, then the one written */
  gint64  person;
  char   *fold_last;
  char   *fold_first;
} Pending;

static void
pending_clear (Pending *pending)
{
  g_free (pending->fold_last);
  g_free (pending->fold_first);
}

static int
compare_pending (gconstpointer a,
                 gconstpointer b)
{
  const Pending *x = a, *y = b;

  if (x->rowid != y->rowid)
    return x->rowid < y->rowid ? -1 : 1;
  return (x->person > y->person) - (x->person < y->person);
}

static int
compare_pending_person (gconstpointer a,
                        gconstpointer b)
{
  const Pending *x = a, *y = b;

  return (x->person > y->person) - (x->person < y->person);
}

/* Indexes every row that @rows (rowid, fold_last, fold_first) returns, in
 * increasing rowids of the index: FTS5 gathers a run of increasing rowids
 * in memory and writes it as one segment, but writes out what it holds at
 * every step back, which one row at a time in the order of an import
 * would do at almost every row. */
static int
index_rows (sqlite3_stmt    *rows,
            IndexStatements *stmts)
{
  g_autoptr(GArray) pending = g_array_new (FALSE, FALSE, sizeof (Pending));
  gint64 previous = -1;
  int rc;

  g_array_set_clear_func (pending, (GDestroyNotify) pending_clear);
  while ((rc = sqlite3_step (rows)) == SQLITE_ROW)
    {
      const char *fold_last = (const char *) sqlite3_column_text (rows, 1);
      const char *fold_first = (const char *) sqlite3_column_text (rows, 2);
      Pending entry;

      entry.person = sqlite3_column_int64 (rows, 0);
      entry.rowid = order_group (fold_last, fold_first) << SLOT_BITS | (entry.person & SLOT_MASK);
      entry.fold_last = g_strdup (fold_last);
      entry.fold_first = g_strdup (fold_first);
      g_array_append_val (pending, entry);
    }
  sqlite3_reset (rows);
  if (rc != SQLITE_DONE)
    return rc;

  g_array_sort (pending, compare_pending);
  for (guint i = 0; i < pending->len; i++)
    {
      const Pending *entry = &g_array_index (pending, Pending, i);
      gint64 rowid = entry->rowid;
      gboolean taken = TRUE;

      rc = SQLITE_OK;

      /* Past the slots taken already, still in the group. */
      if (previous >= rowid && previous >> SLOT_BITS == rowid >> SLOT_BITS)
        rowid = previous + 1;
      while (rowid >> SLOT_BITS == entry->rowid >> SLOT_BITS &&
             (rc = is_taken (stmts, rowid, &taken)) == SQLITE_OK && taken)
        rowid++;
      if (rc != SQLITE_OK)
        return rc;
      if (taken &&
          (rc = choose_rowid (stmts, entry->rowid >> SLOT_BITS, 0, &rowid)) != SQLITE_OK)
        return rc;

      rc = write_entry (stmts, rowid, entry->person, entry->fold_last, entry->fold_first, FALSE);
      if (rc != SQLITE_OK)
        return rc;
      g_array_index (pending, Pending, i).rowid = rowid;
      previous = rowid;
    }

  /* Then the person rows, in their own order. */
  g_array_sort (pending, compare_pending_person);
  for (guint i = 0; i < pending->len; i++)
    {
      const Pending *entry = &g_array_index (pending, Pending, i);

      sqlite3_bind_int64 (stmts->link, 1, entry->rowid);
      sqlite3_bind_int64 (stmts->link, 2, entry->person);
      rc = step_done (stmts->link);
      if (rc != SQLITE_OK)
        return rc;
    }
  return SQLITE_OK;
}

G_LOCK_DEFINE_STATIC (deferring);
static GHashTable *deferring;   /* the sqlite3 connections that defer */

static gboolean
is_deferring (sqlite3 *db)
{
  gboolean found;

  G_LOCK (deferring);
  found = deferring != NULL && g_hash_table_contains (deferring, db);
  G_UNLOCK (deferring);
  return found;
}

void
relais_search_defer (RelaisVault *vault,
                     gboolean     defer)
{
  sqlite3 *db;

  g_return_if_fail (vault != NULL);

  db = relais_vault_get_db (vault);
  G_LOCK (deferring);
  if (deferring == NULL)
    deferring = g_hash_table_new (NULL, NULL);
  if (defer)
    g_hash_table_add (deferring, db);
  else
    g_hash_table_remove (deferring, db);
  G_UNLOCK (deferring);
}

static gboolean
prepare_index_statements (RelaisVault      *vault,
                          IndexStatements  *stmts,
                          GError          **error)
{
  return (stmts->taken = relais_oplog_prepare (vault, SQL_TAKEN, error)) != NULL &&
         (stmts->remove = relais_oplog_prepare (vault, SQL_REMOVE, error)) != NULL &&
         (stmts->insert = relais_oplog_prepare (vault, SQL_INSERT, error)) != NULL &&
         (stmts->link = relais_oplog_prepare (vault, SQL_LINK, error)) != NULL;
}

gboolean
relais_search_index_deferred (RelaisVault  *vault,
                              GError      **error)
{
  g_auto(RelaisStmt) rows = NULL;
  IndexStatements stmts;
  int rc;

  g_return_val_if_fail (vault != NULL, FALSE);

  relais_search_defer (vault, FALSE);
  rows = relais_oplog_prepare (vault,
                               "SELECT rowid, fold_last, fold_first FROM person"
                               " WHERE search_rowid IS NULL",
                               error);
  if (rows == NULL || !prepare_index_statements (vault, &stmts, error))
    return FALSE;

  rc = index_rows (rows, &stmts);
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not update the vault"), error);
      return FALSE;
    }
  return TRUE;
}

gboolean
relais_search_index_person (RelaisVault  *vault,
                            const char   *person_id,
                            GError      **error)
{
  g_auto(RelaisStmt) row = NULL;
  IndexStatements stmts;
  int rc;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (person_id != NULL, FALSE);

  row = relais_oplog_prepare (vault,
                              "SELECT rowid, fold_last, fold_first, search_rowid"
                              " FROM person WHERE id = ?1",
                              error);
  if (row == NULL || !prepare_index_statements (vault, &stmts, error))
    return FALSE;

  sqlite3_bind_text (row, 1, person_id, -1, SQLITE_STATIC);
  rc = sqlite3_step (row);
  if (rc == SQLITE_ROW)
    {
      /* A new row waits for relais_search_index_deferred(); an entry that
       * is there must follow the names now. */
      if (sqlite3_column_type (row, 3) == SQLITE_NULL && is_deferring (relais_vault_get_db (vault)))
        rc = SQLITE_OK;
      else
        rc = index_one (&stmts, sqlite3_column_int64 (row, 0),
                        (const char *) sqlite3_column_text (row, 1),
                        (const char *) sqlite3_column_text (row, 2),
                        sqlite3_column_int64 (row, 3));
    }
  else if (rc == SQLITE_DONE)
    rc = SQLITE_OK;   /* nothing projected: nothing to index */

  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not update the vault"), error);
      return FALSE;
    }
  return TRUE;
}

gboolean
relais_search_backfill (sqlite3  *db,
                        GError  **error)
{
  g_autoptr(sqlite3_stmt) rows = NULL;
  g_autoptr(sqlite3_stmt) taken = NULL;
  g_autoptr(sqlite3_stmt) remove = NULL;
  g_autoptr(sqlite3_stmt) insert = NULL;
  g_autoptr(sqlite3_stmt) link = NULL;
  IndexStatements stmts;
  int rc;

  g_return_val_if_fail (db != NULL, FALSE);

  rc = sqlite3_prepare_v2 (db, "SELECT rowid, fold_last, fold_first FROM person", -1, &rows, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2 (db, SQL_TAKEN, -1, &taken, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2 (db, SQL_REMOVE, -1, &remove, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2 (db, SQL_INSERT, -1, &insert, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2 (db, SQL_LINK, -1, &link, NULL);
  stmts = (IndexStatements) { taken, remove, insert, link };
  if (rc == SQLITE_OK)
    rc = index_rows (rows, &stmts);
  if (rc != SQLITE_OK)
    {
      /* Like the other migration errors: names tables, never data. */
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                   "%s: %s", _("Could not upgrade the vault"), sqlite3_errmsg (db));
      return FALSE;
    }
  return TRUE;
}

static void
append_term (GString    *match,
             const char *trigram)
{
  if (match->len > 0)
    g_string_append (match, " OR ");
  g_string_append_c (match, '"');
  g_string_append_len (match, trigram, 3);
  g_string_append_c (match, '"');
}

/* The FTS5 query for @folded (at least two characters): NULL if it cannot
 * match anything.  No character of the index text is '"': nothing to
 * quote. */
static char *
match_expression (const char *folded)
{
  g_autoptr(GString) mapped = g_string_new (NULL);
  g_autoptr(GString) match = g_string_new (NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint n_trigrams;
  guint n_used;

  append_index_text (mapped, folded);
  if (mapped->len < 2)
    return NULL;

  if (mapped->len == 2)
    {
      for (const char *c = index_alphabet; *c != '\0'; c++)
        {
          char before[3] = { *c, mapped->str[0], mapped->str[1] };
          char after[3] = { mapped->str[0], mapped->str[1], *c };

          append_term (match, before);
          if (memcmp (before, after, 3) != 0)
            append_term (match, after);
        }
      return g_strdup (match->str);
    }

  /* A long query sends trigrams spread over its whole length, its first
   * and last included. */
  n_trigrams = mapped->len - 2;
  n_used = MIN (n_trigrams, MAX_QUERY_TRIGRAMS);
  for (guint i = 0; i < n_used; i++)
    {
      guint at = n_used > 1 ? i * (n_trigrams - 1) / (n_used - 1) : 0;
      char *trigram = g_strndup (mapped->str + at, 3);

      if (!g_hash_table_add (seen, trigram))
        continue;
      if (match->len > 0)
        g_string_append (match, " AND ");
      g_string_append_printf (match, "\"%s\"", trigram);
    }
  return g_strdup (match->str);
}

typedef struct {
  gint64  person;
  char   *fold_last;
  char   *fold_first;
} Hit;

static void
hit_clear (Hit *hit)
{
  g_free (hit->fold_last);
  g_free (hit->fold_first);
}

/* NULL first, then bytes: SQLite's order for the BINARY collation. */
static int
compare_nullable (const char *a,
                  const char *b)
{
  if (a == NULL || b == NULL)
    return (a != NULL) - (b != NULL);
  return strcmp (a, b);
}

static int
compare_hit_names (gconstpointer a,
                   gconstpointer b)
{
  const Hit *x = a, *y = b;
  int cmp = compare_nullable (x->fold_last, y->fold_last);

  return cmp != 0 ? cmp : compare_nullable (x->fold_first, y->fold_first);
}

GArray *
relais_search_candidates (RelaisVault  *vault,
                          const char   *folded,
                          guint         limit,
                          GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(GArray) hits = g_array_new (FALSE, FALSE, sizeof (Hit));
  g_autoptr(GArray) rowids = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autofree char *match = NULL;
  gint64 last_group = -1;
  guint keep;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (folded != NULL, NULL);

  g_array_set_clear_func (hits, (GDestroyNotify) hit_clear);
  match = match_expression (folded);
  if (match == NULL)
    return g_steal_pointer (&rowids);

  /* The same test as the plain scan, on the same strings: the index only
   * narrows which rows it runs on. */
  stmt = relais_oplog_prepare (vault,
                               "SELECT rowid, person, last, first FROM person_search"
                               " WHERE person_search MATCH ?1"
                               "   AND (instr (coalesce (last, '') || ' ' || coalesce (first, ''), ?2) > 0"
                               "        OR instr (coalesce (first, '') || ' ' || coalesce (last, ''), ?2) > 0)"
                               " ORDER BY rowid",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, match, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, folded, -1, SQLITE_STATIC);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64 rowid = sqlite3_column_int64 (stmt, 0);
      Hit hit;

      /* Past the group of the @limit-th match, every row comes after it in
       * the list. */
      if (last_group >= 0 && rowid >> SLOT_BITS != last_group)
        break;
      hit.person = sqlite3_column_int64 (stmt, 1);
      hit.fold_last = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
      hit.fold_first = g_strdup ((const char *) sqlite3_column_text (stmt, 3));
      g_array_append_val (hits, hit);
      if (limit > 0 && hits->len == limit)
        last_group = rowid >> SLOT_BITS;
    }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }

  /* The last group read can be large (everyone named Rousseau): the names
   * the index holds already rank it, so that only the first @limit, and
   * those of the same name as the last of them, are left for the caller
   * to read and sort by birth date and id. */
  keep = hits->len;
  if (limit > 0 && hits->len > limit)
    {
      g_array_sort (hits, compare_hit_names);
      for (keep = limit;
           keep < hits->len && compare_hit_names (&g_array_index (hits, Hit, keep),
                                                  &g_array_index (hits, Hit, limit - 1)) == 0;
           keep++)
        ;
    }
  for (guint i = 0; i < keep; i++)
    g_array_append_val (rowids, g_array_index (hits, Hit, i).person);
  return g_steal_pointer (&rowids);
}

/* Two or three characters, each one the index writes as itself. */
static gboolean
is_spelt_as_is (const char *folded)
{
  guint n = 0;

  for (const char *p = folded; *p != '\0'; p = g_utf8_next_char (p), n++)
    {
      gunichar c = g_utf8_get_char (p);

      if (n == 3 || c == '*' || index_char (c) != (char) c || c > 0x7F)
        return FALSE;
    }
  return n >= 2;
}

gboolean
relais_search_count (RelaisVault  *vault,
                     const char   *folded,
                     guint        *out_count,
                     GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *match = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (folded != NULL, FALSE);
  g_return_val_if_fail (out_count != NULL, FALSE);

  *out_count = 0;
  match = match_expression (folded);
  if (match == NULL)
    return TRUE;

  /* A different SQL text from relais_search_candidates()'s: the statement
   * cache holds one statement per text.  Two or three characters that the
   * index spells as they are match exactly where their trigrams do (the
   * text holds no other join than those of "last first" and "first last"):
   * no need to read every row's names, which costs five times the count. */
  if (is_spelt_as_is (folded))
    stmt = relais_oplog_prepare (vault,
                                 "SELECT count (*) FROM person_search WHERE person_search MATCH ?1",
                                 error);
  else
    stmt = relais_oplog_prepare (vault,
                                 "SELECT count (*) FROM person_search"
                                 " WHERE person_search MATCH ?1"
                                 "   AND (instr (coalesce (last, '') || ' ' || coalesce (first, ''), ?2) > 0"
                                 "        OR instr (coalesce (first, '') || ' ' || coalesce (last, ''), ?2) > 0)",
                                 error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, match, -1, SQLITE_STATIC);
  if (!is_spelt_as_is (folded))
    sqlite3_bind_text (stmt, 2, folded, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return FALSE;
    }
  *out_count = (guint) MIN (sqlite3_column_int64 (stmt, 0), G_MAXUINT);
  return TRUE;
}
