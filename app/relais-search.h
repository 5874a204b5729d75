#pragma once

#include <glib.h>
#include <sqlite3.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* The index behind the dossier list's search: an FTS5 table of trigrams of
 * the folded names (person_search, relais-schema.c), whose rowids follow the
 * list order, so that a search reads its first matches and stops instead of
 * sorting every candidate.  Part of the vault, so encrypted like the rest.
 * See relais-search.c.  Code that ever deletes a person row must delete
 * its entry too (DELETE FROM person_search WHERE rowid = its search_rowid). */

/* Brings @person_id's entry of the index up to date with its projection
 * row (fold_last, fold_first).  Called by the op log's projection whenever
 * it writes a person's names, in the same transaction. */
gboolean  relais_search_index_person (RelaisVault  *vault,
                                      const char   *person_id,
                                      GError      **error);

/* While @defer, new person rows wait out of the index (a rename still
 * updates it at once) until relais_search_index_deferred() adds them all
 * in the index's order: the importer's way, one row at a time would cost
 * it about a third more.  Inside the one transaction. */
void      relais_search_defer        (RelaisVault  *vault,
                                      gboolean      defer);
/* Indexes the rows that wait and stops deferring. */
gboolean  relais_search_index_deferred (RelaisVault *vault,
                                      GError      **error);

/* Indexes every person of the database: the migration step that creates
 * the index (no vault yet, only its connection, inside its transaction). */
gboolean  relais_search_backfill     (sqlite3      *db,
                                      GError      **error);

/* The rowids of the person table of dossiers whose "last first" or "first
 * last" folded names contain @folded (already folded, at least two
 * characters), in no particular order.  They include the first @limit of
 * them in list order (all of them when @limit is 0), and few more. */
GArray   *relais_search_candidates   (RelaisVault  *vault,
                                      const char   *folded,
                                      guint         limit,
                                      GError      **error);

/* How many dossiers match @folded (at least two characters), as above. */
gboolean  relais_search_count        (RelaisVault  *vault,
                                      const char   *folded,
                                      guint        *out_count,
                                      GError      **error);

G_END_DECLS
