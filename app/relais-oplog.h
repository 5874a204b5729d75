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

/* Applies an operation made elsewhere.  Idempotent: applying an operation
 * that is already in the log changes nothing and sets *@out_new to FALSE.
 * Inside a transaction. */
gboolean  relais_oplog_apply      (RelaisVault     *vault,
                                   const RelaisOp  *op,
                                   gboolean        *out_new,
                                   GError         **error);

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
 * every head of the field, so the conflict is closed everywhere. */
gboolean  relais_oplog_resolve    (RelaisVault  *vault,
                                   const char   *entity,
                                   const char   *entity_id,
                                   const char   *field,
                                   const char   *value,
                                   GError      **error);

G_END_DECLS
