#pragma once

#include <glib.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* The operation log.  Every write through the core is an operation, stored
 * in the same transaction as its effect on the projections (the tables that
 * queries read).  Merge is per field: among the operations of one field that
 * no other operation has superseded (the "heads"), the one with the highest
 * (hlc, device) wins; the other heads are conflicts, kept until a person
 * resolves them.  An operation supersedes the heads its author saw when
 * writing (its parents), so the outcome depends only on the set of
 * operations, never on the order they arrived in. */

typedef struct {
  char    *id;          /* random UUID, made by the author's device */
  char    *dossier;     /* the dossier (person id) the operation belongs to */
  char    *entity;      /* "person", later "note", "action"… */
  char    *entity_id;
  char    *field;
  char    *value;       /* NULL clears the field */
  guint64  hlc;
  char    *author;
  char    *device;
  char    *parents;     /* op ids the author saw for this field, space-separated; NULL if none */
} RelaisOp;

void      relais_op_free          (RelaisOp *op);
RelaisOp *relais_op_copy          (const RelaisOp *op);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisOp, relais_op_free)

/* A new id for an operation or a record (a dossier, a note…): a random
 * UUID whose leading bits are the time (version 7), so that ids made in a
 * row are neighbours in the indexes. */
char     *relais_oplog_new_id     (void);

/* Records a local write.  Inside a transaction (relais_vault_begin()).
 * Does nothing and returns TRUE when @value equals the current winning value
 * and there is no conflict on the field. */
gboolean  relais_oplog_write      (RelaisVault  *vault,
                                   const char   *dossier,
                                   const char   *entity,
                                   const char   *entity_id,
                                   const char   *field,
                                   const char   *value,
                                   GError      **error);

/* Records several fields of one record at once, skipping those whose value
 * would not change, and updates the record's projection row once.
 * @new_record: @entity_id was just made with relais_oplog_new_id() and
 * has no operation yet (NULL values are then left out).  Inside a
 * transaction. */
gboolean  relais_oplog_write_fields (RelaisVault        *vault,
                                     const char         *dossier,
                                     const char         *entity,
                                     const char         *entity_id,
                                     gboolean            new_record,
                                     guint               n_fields,
                                     const char * const *fields,
                                     const char * const *values,
                                     GError            **error);

/* Applies an operation made elsewhere.  Idempotent: applying an operation
 * that is already in the log changes nothing and sets *@out_new to FALSE.
 * Inside a transaction. */
gboolean  relais_oplog_apply      (RelaisVault     *vault,
                                   const RelaisOp  *op,
                                   gboolean        *out_new,
                                   GError         **error);

/* Applies @ops (element type RelaisOp), in order, with the outcome of
 * relais_oplog_apply() on each, but the projections of the records they
 * touch written once (see relais-oplog.c): a pull's change set at a time.
 * Sets *@out_n_new to how many were new.  Checks every op before storing
 * any: RELAIS_VAULT_ERROR_INVALID then changes nothing.  Any other error
 * may leave part of the batch: run it in a savepoint.  Inside a
 * transaction. */
gboolean  relais_oplog_apply_batch (RelaisVault  *vault,
                                    GPtrArray    *ops,
                                    guint        *out_n_new,
                                    GError      **error);

/* Operations in local order (the order this vault stored them), after local
 * sequence @after_seq.  Sets *@out_last_seq to the last one returned.
 * Element type RelaisOp. */
GPtrArray *relais_oplog_list      (RelaisVault  *vault,
                                   gint64        after_seq,
                                   guint         limit,
                                   gint64       *out_last_seq,
                                   GError      **error);

typedef struct {
  char      *entity;
  char      *entity_id;
  char      *dossier;
  char      *field;
  GPtrArray *values;   /* RelaisOp, the winner first */
} RelaisConflict;

void      relais_conflict_free    (RelaisConflict *conflict);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisConflict, relais_conflict_free)

/* Every field with more than one head. Element type RelaisConflict. */
GPtrArray *relais_oplog_conflicts (RelaisVault  *vault,
                                   const char   *dossier,
                                   GError      **error);

/* Records a person's choice: a new operation with @value whose parents are
 * every head of the field, so the conflict is closed everywhere.  Opens its
 * own transaction when none is open.  Fails with NOT_FOUND when the field
 * has never been written. */
gboolean  relais_oplog_resolve    (RelaisVault  *vault,
                                   const char   *entity,
                                   const char   *entity_id,
                                   const char   *field,
                                   const char   *value,
                                   GError      **error);

/* The history of one field: every operation ever written to it (not only
 * the heads), oldest first in (hlc, device) order, each with its author and
 * clock.  Indexed for every entity but "person" (whose ops an import writes
 * by the hundred thousand); for "person" it scans the log.
 * Element type RelaisOp. */
GPtrArray *relais_oplog_history   (RelaisVault  *vault,
                                   const char   *entity,
                                   const char   *entity_id,
                                   const char   *field,
                                   GError      **error);

/* Statement cache of the core, one per connection: returns a prepared
 * statement for @sql, ready to bind (reset, no bindings).  The cache owns
 * it: never finalize it; reset it when done (g_auto(RelaisStmt) does), or a
 * SELECT left mid-way keeps its read snapshot open.  Do not use the same
 * SQL text in two places at once (nested loops): they share one statement. */
sqlite3_stmt *relais_oplog_prepare (RelaisVault  *vault,
                                    const char   *sql,
                                    GError      **error);

/* Finalizes every statement cached for @db and forgets it.  The vault calls
 * it in relais_vault_close() before it finalizes any remaining statement and
 * closes the connection: afterwards the cache holds nothing for @db, even
 * if a later connection gets the same address. */
void      relais_oplog_forget_db  (sqlite3      *db);

/* A cached statement that resets itself (and drops its bindings, which may
 * hold personal data) when it goes out of scope. */
typedef sqlite3_stmt *RelaisStmt;
void      relais_stmt_release     (sqlite3_stmt *stmt);
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (RelaisStmt, relais_stmt_release, NULL)

G_END_DECLS
