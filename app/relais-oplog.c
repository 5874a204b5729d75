#define G_LOG_DOMAIN "relais-oplog"

#include "config.h"

#include <string.h>
#include <glib/gi18n.h>

#include "relais-oplog.h"
#include "relais-fold.h"
#include "relais-search.h"

/* ------------------------------------------------------------------------
 * Statement cache
 *
 * An import stores hundreds of thousands of operations, each a handful of
 * statements; preparing them every time would cost more than running them.
 * RelaisVault is opaque, so the cache is keyed by its connection and dropped
 * by relais_oplog_forget_db() when the vault closes.
 * ------------------------------------------------------------------------ */

G_LOCK_DEFINE_STATIC (stmt_caches);
static GHashTable *stmt_caches;   /* sqlite3 * → GHashTable (char *sql → sqlite3_stmt *) */

static void
stmt_finalize (gpointer stmt)
{
  sqlite3_finalize (stmt);
}

sqlite3_stmt *
relais_oplog_prepare (RelaisVault  *vault,
                      const char   *sql,
                      GError      **error)
{
  sqlite3 *db;
  GHashTable *cache;
  sqlite3_stmt *stmt;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (sql != NULL, NULL);

  db = relais_vault_get_db (vault);

  G_LOCK (stmt_caches);
  if (stmt_caches == NULL)
    stmt_caches = g_hash_table_new_full (NULL, NULL, NULL,
                                         (GDestroyNotify) g_hash_table_unref);
  cache = g_hash_table_lookup (stmt_caches, db);
  if (cache == NULL)
    {
      cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                     stmt_finalize);
      g_hash_table_insert (stmt_caches, db, cache);
    }
  G_UNLOCK (stmt_caches);

  /* A connection is used by one thread at a time, so its own table needs
   * no lock. */
  stmt = g_hash_table_lookup (cache, sql);
  if (stmt != NULL)
    {
      /* In case a caller forgot to release it. */
      sqlite3_reset (stmt);
      return stmt;
    }

  rc = sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      sqlite3_finalize (stmt);
      return NULL;
    }

  g_hash_table_insert (cache, g_strdup (sql), stmt);
  return stmt;
}

void
relais_oplog_forget_db (sqlite3 *db)
{
  G_LOCK (stmt_caches);
  if (stmt_caches != NULL)
    g_hash_table_remove (stmt_caches, db);
  G_UNLOCK (stmt_caches);
}

void
relais_stmt_release (sqlite3_stmt *stmt)
{
  if (stmt == NULL)
    return;
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}

/* ------------------------------------------------------------------------
 * Operations and conflicts
 * ------------------------------------------------------------------------ */

G_LOCK_DEFINE_STATIC (last_id);

char *
relais_oplog_new_id (void)
{
  static const char hex[] = "0123456789abcdef";
  static guint64 last_ms;
  static guint32 rand_a;    /* 12 random bits, drawn once per millisecond */
  static guint64 rand_b;    /* 62 bits: random, then counting up within one millisecond */
  guint64 ms = (guint64) (g_get_real_time () / 1000);
  guint32 a;
  guint64 counter;
  guint8 b[16];
  char *out = g_malloc (37);
  char *p = out;

  /* UUID version 7 (RFC 9562): 48 bits of milliseconds, then 74 random
   * bits (from the same generator as g_uuid_string_random()).  Ids made
   * one after the other sort together, so the indexes on op ids and dossier
   * ids grow at their end instead of touching a random page per insert:
   * an import of 100,000 dossiers then stays in the page cache instead of
   * reading (and decrypting) a page per operation.
   *
   * Within one millisecond (or if the clock steps back) the random part
   * counts up from a random start (RFC 9562, method 3), so the ids of one
   * process always sort in the order they were made: two notes written in
   * the same millisecond still list newest first. */
  G_LOCK (last_id);
  if (ms > last_ms)
    {
      last_ms = ms;
      rand_a = g_random_int () & 0x0fff;
      /* Top bit clear: room for 2^61 ids in one millisecond. */
      rand_b = (((guint64) g_random_int () << 32) | g_random_int ()) & G_GUINT64_CONSTANT (0x1fffffffffffffff);
    }
  else
    {
      ms = last_ms;
      rand_b++;
    }
  a = rand_a;
  counter = rand_b;
  G_UNLOCK (last_id);

  b[0] = (guint8) (ms >> 40);
  b[1] = (guint8) (ms >> 32);
  b[2] = (guint8) (ms >> 24);
  b[3] = (guint8) (ms >> 16);
  b[4] = (guint8) (ms >> 8);
  b[5] = (guint8) ms;
  b[6] = (guint8) (0x70 | (a >> 8));
  b[7] = (guint8) a;
  b[8] = (guint8) (0x80 | ((counter >> 56) & 0x3f));
  for (guint i = 0; i < 7; i++)
    b[9 + i] = (guint8) (counter >> (8 * (6 - i)));

  for (guint i = 0; i < 16; i++)
    {
      if (i == 4 || i == 6 || i == 8 || i == 10)
        *p++ = '-';
      *p++ = hex[b[i] >> 4];
      *p++ = hex[b[i] & 0x0f];
    }
  *p = '\0';
  return out;
}

void
relais_op_free (RelaisOp *op)
{
  if (op == NULL)
    return;
  g_free (op->id);
  g_free (op->dossier);
  g_free (op->entity);
  g_free (op->entity_id);
  g_free (op->field);
  g_free (op->value);
  g_free (op->author);
  g_free (op->device);
  g_free (op->parents);
  g_free (op);
}

RelaisOp *
relais_op_copy (const RelaisOp *op)
{
  RelaisOp *copy;

  g_return_val_if_fail (op != NULL, NULL);

  copy = g_new0 (RelaisOp, 1);
  copy->id = g_strdup (op->id);
  copy->dossier = g_strdup (op->dossier);
  copy->entity = g_strdup (op->entity);
  copy->entity_id = g_strdup (op->entity_id);
  copy->field = g_strdup (op->field);
  copy->value = g_strdup (op->value);
  copy->hlc = op->hlc;
  copy->author = g_strdup (op->author);
  copy->device = g_strdup (op->device);
  copy->parents = g_strdup (op->parents);
  return copy;
}

void
relais_conflict_free (RelaisConflict *conflict)
{
  if (conflict == NULL)
    return;
  g_free (conflict->entity);
  g_free (conflict->entity_id);
  g_free (conflict->dossier);
  g_free (conflict->field);
  g_clear_pointer (&conflict->values, g_ptr_array_unref);
  g_free (conflict);
}

#define OP_COLUMNS "id, dossier, entity, entity_id, field, value, hlc, author, device, parents"

static char *
column_dup (sqlite3_stmt *stmt,
            int           col)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, col));
}

/* Reads OP_COLUMNS starting at column @first. */
static RelaisOp *
op_from_row (sqlite3_stmt *stmt,
             int           first)
{
  RelaisOp *op = g_new0 (RelaisOp, 1);

  op->id = column_dup (stmt, first + 0);
  op->dossier = column_dup (stmt, first + 1);
  op->entity = column_dup (stmt, first + 2);
  op->entity_id = column_dup (stmt, first + 3);
  op->field = column_dup (stmt, first + 4);
  op->value = column_dup (stmt, first + 5);
  op->hlc = (guint64) sqlite3_column_int64 (stmt, first + 6);
  op->author = column_dup (stmt, first + 7);
  op->device = column_dup (stmt, first + 8);
  op->parents = column_dup (stmt, first + 9);
  return op;
}

/* The merge order: the greatest (hlc, device) wins.  The id breaks the tie
 * two ops could only share if a device reused a clock value, so the winner
 * stays a function of the set of ops even then. */
static int
op_order (guint64     hlc_a,
          const char *device_a,
          const char *id_a,
          guint64     hlc_b,
          const char *device_b,
          const char *id_b)
{
  int c;

  if (hlc_a != hlc_b)
    return hlc_a < hlc_b ? -1 : 1;
  c = strcmp (device_a, device_b);
  if (c != 0)
    return c;
  return strcmp (id_a, id_b);
}

static int
op_compare_winner_first (gconstpointer a,
                         gconstpointer b)
{
  const RelaisOp *op_a = *(RelaisOp * const *) a;
  const RelaisOp *op_b = *(RelaisOp * const *) b;

  return -op_order (op_a->hlc, op_a->device, op_a->id,
                    op_b->hlc, op_b->device, op_b->id);
}

static gboolean
step_failed (RelaisVault  *vault,
             int           rc,
             GError      **error)
{
  relais_vault_set_sqlite_error (vault, rc, _("Could not update the vault"), error);
  return FALSE;
}

/* Every head of a field as RelaisOp, the winner first. */
static GPtrArray *
load_heads (RelaisVault  *vault,
            const char   *entity,
            const char   *entity_id,
            const char   *field,
            GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(GPtrArray) heads = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT " OP_COLUMNS " FROM op"
                               " WHERE entity = ?1 AND entity_id = ?2 AND field = ?3 AND head",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, entity, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, entity_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, field, -1, SQLITE_STATIC);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (heads, op_from_row (stmt, 0));
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }

  g_ptr_array_sort (heads, op_compare_winner_first);
  return g_steal_pointer (&heads);
}

/* ------------------------------------------------------------------------
 * Projections
 *
 * A projection is a table with one row per entity id and one column per
 * field; the value of a column is the winner of its field.  Adding an
 * entity (notes, actions, appointments…) is a table in relais-schema.c and
 * an entry here, not new merge code.  Ops of entities or fields this version
 * does not know are kept in the log (and synced) but not projected, so a
 * newer version's changes survive a trip through an older one.
 * ------------------------------------------------------------------------ */

typedef struct {
  const char *field;        /* op field name, also the column name */
  const char *fold_column;  /* receives relais_fold (value), or NULL */
} ProjectionColumn;

typedef struct {
  const char             *entity;
  const char             *table;
  const ProjectionColumn *columns;
  guint                   n_columns;   /* at most 32: columns are a bit mask */
  gboolean                dossier_column;  /* the table has a "dossier" column, set from the ops */
} Projection;

static const ProjectionColumn person_columns[] = {
  { "last_name",   "fold_last" },
  { "first_name",  "fold_first" },
  { "birth_date",  NULL },
  { "phone",       NULL },
  { "email",       NULL },
  { "postal_code", NULL },
  { "city",        NULL },
};

/* The dossier's other records (relais-dossier.c, tables in relais-schema.c). */
static const ProjectionColumn situation_columns[] = {
  { "right_rsa", NULL }, { "right_are", NULL }, { "right_ass", NULL },
  { "right_aah", NULL }, { "right_rqth", NULL },
  { "education_level", NULL }, { "work_situation", NULL }, { "sharing_informed_on", NULL },
};
static const ProjectionColumn diagnostic_columns[] = {
  { "level", NULL }, { "situations", NULL }, { "comment", NULL },
};
static const ProjectionColumn project_columns[] = {
  { "job_label", NULL }, { "rome_code", NULL }, { "mobility_km", NULL },
  { "contract_types", NULL }, { "working_time", NULL }, { "removed", NULL },
};
static const ProjectionColumn objective_columns[] = {
  { "theme", NULL }, { "text", NULL }, { "status", NULL }, { "removed", NULL },
};
static const ProjectionColumn action_columns[] = {
  { "objective", NULL }, { "text", NULL }, { "status", NULL }, { "due", NULL },
  { "carrier", NULL }, { "removed", NULL },
};
static const ProjectionColumn contract_columns[] = {
  { "kind", NULL }, { "signed_on", NULL }, { "starts_on", NULL }, { "ends_on", NULL },
  { "removed", NULL },
};
static const ProjectionColumn appointment_columns[] = {
  { "at", NULL }, { "with_whom", NULL }, { "place", NULL }, { "status", NULL },
  { "removed", NULL },
};
static const ProjectionColumn note_columns[] = {
  { "text", NULL }, { "author", NULL }, { "written_at", NULL }, { "removed", NULL },
};
static const ProjectionColumn orientation_columns[] = {
  { "structure", NULL }, { "reason", NULL }, { "status", NULL }, { "oriented_on", NULL },
  { "removed", NULL },
};

#define PROJECTION(entity, columns, dossier_column) \
  { entity, entity, columns, G_N_ELEMENTS (columns), dossier_column }

static const Projection projections[] = {
  PROJECTION ("person", person_columns, FALSE),
  PROJECTION ("situation", situation_columns, TRUE),
  PROJECTION ("diagnostic", diagnostic_columns, TRUE),
  PROJECTION ("project", project_columns, TRUE),
  PROJECTION ("objective", objective_columns, TRUE),
  PROJECTION ("action", action_columns, TRUE),
  PROJECTION ("contract", contract_columns, TRUE),
  PROJECTION ("appointment", appointment_columns, TRUE),
  PROJECTION ("note", note_columns, TRUE),
  PROJECTION ("orientation", orientation_columns, TRUE),
};

G_STATIC_ASSERT (G_N_ELEMENTS (person_columns) <= 32);
G_STATIC_ASSERT (G_N_ELEMENTS (situation_columns) <= 32);

/* The columns of person_columns the search index is made from. */
static const guint32 person_fold_mask = (1u << 0) | (1u << 1);

static const Projection *
find_projection (const char *entity)
{
  for (guint p = 0; p < G_N_ELEMENTS (projections); p++)
    if (strcmp (projections[p].entity, entity) == 0)
      return &projections[p];
  return NULL;
}

static int
find_column (const Projection *proj,
             const char       *field)
{
  for (guint c = 0; c < proj->n_columns; c++)
    if (strcmp (proj->columns[c].field, field) == 0)
      return (int) c;
  return -1;
}

G_LOCK_DEFINE_STATIC (upsert_sql);
static GHashTable *upsert_sql;   /* (projection index << 32 | column mask) → SQL */

/* The upsert that sets the columns of @mask: built once per set of
 * columns, so its text (the statement cache's key) is stable. */
static const char *
get_upsert_sql (const Projection *proj,
                guint32           mask)
{
  gint64 key = ((gint64) (proj - projections) << 32) | mask;
  GString *sql;
  const char *text;
  guint n_params = 1;

  G_LOCK (upsert_sql);
  if (upsert_sql == NULL)
    upsert_sql = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  text = g_hash_table_lookup (upsert_sql, &key);
  if (text != NULL)
    {
      G_UNLOCK (upsert_sql);
      return text;
    }

  /* Inserting creates the row on the entity's first op, whatever field it
   * carries; updated_hlc only grows, so it too depends on the set of ops
   * and not on their order. */
  sql = g_string_new (NULL);
  g_string_append_printf (sql, "INSERT INTO %s (id", proj->table);
  /* The dossier is set when the row is made and never changes (a
   * resolution, which does not name it, leaves it). */
  if (proj->dossier_column)
    {
      g_string_append (sql, ", dossier");
      n_params++;
    }
  for (guint c = 0; c < proj->n_columns; c++)
    {
      if (!(mask & (1u << c)))
        continue;
      g_string_append_printf (sql, ", %s", proj->columns[c].field);
      if (proj->columns[c].fold_column != NULL)
        g_string_append_printf (sql, ", %s", proj->columns[c].fold_column);
    }
  g_string_append (sql, ", updated_hlc) VALUES (?1");
  if (proj->dossier_column)
    g_string_append (sql, ", ?2");
  for (guint c = 0; c < proj->n_columns; c++)
    {
      if (!(mask & (1u << c)))
        continue;
      g_string_append_printf (sql, ", ?%u", ++n_params);
      if (proj->columns[c].fold_column != NULL)
        g_string_append_printf (sql, ", ?%u", ++n_params);
    }
  g_string_append_printf (sql, ", ?%u) ON CONFLICT (id) DO UPDATE SET ", ++n_params);
  for (guint c = 0; c < proj->n_columns; c++)
    {
      const ProjectionColumn *col = &proj->columns[c];

      if (!(mask & (1u << c)))
        continue;
      g_string_append_printf (sql, "%s = excluded.%s, ", col->field, col->field);
      if (col->fold_column != NULL)
        g_string_append_printf (sql, "%s = excluded.%s, ", col->fold_column, col->fold_column);
    }
  g_string_append (sql, "updated_hlc = max (updated_hlc, excluded.updated_hlc)");

  text = sql->str;
  g_hash_table_insert (upsert_sql, g_memdup2 (&key, sizeof key), g_string_free (sql, FALSE));
  G_UNLOCK (upsert_sql);
  return text;
}

/* Writes @values[c] (the winners) to the columns c of @mask of the
 * projection's row @entity_id. */
static gboolean
project_values (RelaisVault       *vault,
                const Projection  *proj,
                const char        *dossier,
                const char        *entity_id,
                guint32            mask,
                const char *const *values,
                guint64            hlc,
                GError           **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  char *folded[32] = { NULL, };
  int param = 1;
  int rc;

  if (mask == 0)
    return TRUE;

  stmt = relais_oplog_prepare (vault, get_upsert_sql (proj, mask), error);
  if (stmt == NULL)
    return FALSE;

  sqlite3_bind_text (stmt, param++, entity_id, -1, SQLITE_STATIC);
  if (proj->dossier_column)
    sqlite3_bind_text (stmt, param++, dossier, -1, SQLITE_STATIC);
  for (guint c = 0; c < proj->n_columns; c++)
    {
      if (!(mask & (1u << c)))
        continue;
      sqlite3_bind_text (stmt, param++, values[c], -1, SQLITE_STATIC);
      if (proj->columns[c].fold_column != NULL)
        {
          if (values[c] != NULL)
            folded[c] = relais_fold (values[c]);
          sqlite3_bind_text (stmt, param++, folded[c], -1, SQLITE_STATIC);
        }
    }
  sqlite3_bind_int64 (stmt, param, (sqlite3_int64) hlc);

  rc = sqlite3_step (stmt);
  for (guint c = 0; c < proj->n_columns; c++)
    g_free (folded[c]);
  if (rc != SQLITE_DONE)
    return step_failed (vault, rc, error);
  relais_stmt_release (g_steal_pointer (&stmt));

  /* The list's search index follows the folded names (relais-search.c). */
  if (strcmp (proj->table, "person") == 0 && (mask & person_fold_mask) != 0 &&
      !relais_search_index_person (vault, entity_id, error))
    return FALSE;

  /* The list's "recently changed" filter reads this, whichever record of
   * the dossier changed.  A resolution does not name its dossier: it
   * changes no value anyone has not seen. */
  if (dossier == NULL)
    return TRUE;
  stmt = relais_oplog_prepare (vault,
                               "INSERT INTO dossier_activity (dossier, hlc) VALUES (?1, ?2)"
                               " ON CONFLICT (dossier) DO UPDATE SET hlc = max (hlc, excluded.hlc)",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, (sqlite3_int64) hlc);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return step_failed (vault, rc, error);
  return TRUE;
}

static gboolean
project_value (RelaisVault  *vault,
               const char   *dossier,
               const char   *entity,
               const char   *entity_id,
               const char   *field,
               const char   *value,
               guint64       hlc,
               GError      **error)
{
  const Projection *proj = find_projection (entity);
  const char *values[32] = { NULL, };
  int c;

  if (proj == NULL)
    return TRUE;
  c = find_column (proj, field);
  if (c < 0)
    return TRUE;
  values[c] = value;
  return project_values (vault, proj, dossier, entity_id, 1u << c, values, hlc, error);
}

/* ------------------------------------------------------------------------
 * Apply
 * ------------------------------------------------------------------------ */

static gboolean
set_conflict (RelaisVault  *vault,
              const char   *dossier,
              const char   *entity,
              const char   *entity_id,
              const char   *field,
              gboolean      in_conflict,
              GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  if (in_conflict)
    stmt = relais_oplog_prepare (vault,
                                 "INSERT OR IGNORE INTO conflict (entity, entity_id, field, dossier)"
                                 " VALUES (?1, ?2, ?3, ?4)",
                                 error);
  else
    stmt = relais_oplog_prepare (vault,
                                 "DELETE FROM conflict"
                                 " WHERE entity = ?1 AND entity_id = ?2 AND field = ?3",
                                 error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, entity, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, entity_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, field, -1, SQLITE_STATIC);
  if (in_conflict)
    sqlite3_bind_text (stmt, 4, dossier, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return step_failed (vault, rc, error);
  return TRUE;
}

/* Recomputes the winner and the conflict state of one field from its heads
 * and writes them to the projection.  @may_have_conflict_row: a head of the
 * field was superseded just now, so a conflict row may have to go. */
static gboolean
recompute_field (RelaisVault  *vault,
                 const char   *dossier,
                 const char   *entity,
                 const char   *entity_id,
                 const char   *field,
                 guint64       hlc,
                 gboolean      may_have_conflict_row,
                 GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *best_id = NULL;
  g_autofree char *best_device = NULL;
  g_autofree char *best_value = NULL;
  guint64 best_hlc = 0;
  guint n_heads = 0;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, value, hlc, device FROM op"
                               " WHERE entity = ?1 AND entity_id = ?2 AND field = ?3 AND head"
                               " ORDER BY hlc DESC, device DESC",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, entity, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, entity_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, field, -1, SQLITE_STATIC);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *id = (const char *) sqlite3_column_text (stmt, 0);
      guint64 head_hlc = (guint64) sqlite3_column_int64 (stmt, 2);
      const char *device = (const char *) sqlite3_column_text (stmt, 3);

      if (n_heads == 0 ||
          op_order (head_hlc, device, id, best_hlc, best_device, best_id) > 0)
        {
          g_free (best_id);
          g_free (best_device);
          g_free (best_value);
          best_id = g_strdup (id);
          best_device = g_strdup (device);
          best_value = column_dup (stmt, 1);
          best_hlc = head_hlc;
        }
      n_heads++;
    }
  if (rc != SQLITE_DONE)
    return step_failed (vault, rc, error);
  relais_stmt_release (g_steal_pointer (&stmt));

  if ((n_heads > 1 || may_have_conflict_row) &&
      !set_conflict (vault, dossier, entity, entity_id, field, n_heads > 1, error))
    return FALSE;

  /* No head at all only happens when ops name each other as parents in a
   * cycle, which honest devices cannot produce: the field reads as empty. */
  return project_value (vault, dossier, entity, entity_id, field, best_value, hlc, error);
}

typedef struct {
  char *dossier;
  char *entity;
  char *entity_id;
  char *field;
} FieldRef;

static void
field_ref_free (FieldRef *ref)
{
  g_free (ref->dossier);
  g_free (ref->entity);
  g_free (ref->entity_id);
  g_free (ref->field);
  g_free (ref);
}

static gboolean
valid_string (const char *s,
              gboolean    allow_space)
{
  if (s == NULL || *s == '\0')
    return FALSE;
  if (!g_utf8_validate (s, -1, NULL))
    return FALSE;
  if (!allow_space && strpbrk (s, " \t\r\n") != NULL)
    return FALSE;
  return TRUE;
}

static gboolean
op_is_valid (const RelaisOp *op)
{
  if (!valid_string (op->id, FALSE) ||
      !valid_string (op->dossier, FALSE) ||
      !valid_string (op->entity, FALSE) ||
      !valid_string (op->entity_id, FALSE) ||
      !valid_string (op->field, FALSE) ||
      !valid_string (op->author, TRUE) ||
      !valid_string (op->device, FALSE))
    return FALSE;
  if (op->value != NULL && !g_utf8_validate (op->value, -1, NULL))
    return FALSE;
  if (op->parents != NULL && !g_utf8_validate (op->parents, -1, NULL))
    return FALSE;
  /* Stored as SQLite's signed 64-bit integer; ordering must agree with
   * the unsigned comparison in op_order(). */
  if (op->hlc > (guint64) G_MAXINT64)
    return FALSE;
  return TRUE;
}

/* Stores @op and marks its parents superseded.  Sets *@out_new to whether
 * it was new, *@out_field_lost_head to whether a head of its own field
 * stopped being one, and adds to *@out_others the other fields that lost a
 * head (only ops that name parents in other fields, which honest devices
 * never make, cause that).
 * @local: @op was just made here with a fresh id, which no op can name as
 * a parent yet: it is a head. */
static gboolean
store_op (RelaisVault     *vault,
          const RelaisOp  *op,
          gboolean         local,
          gboolean        *out_new,
          gboolean        *out_field_lost_head,
          GPtrArray      **out_others,
          GError         **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  *out_new = FALSE;
  *out_field_lost_head = FALSE;

  if (local)
    stmt = relais_oplog_prepare (vault,
                                 "INSERT INTO op"
                                 " (id, dossier, entity, entity_id, field, value, hlc, author, device, parents, head)"
                                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)",
                                 error);
  else
    stmt = relais_oplog_prepare (vault,
                                 "INSERT OR IGNORE INTO op"
                                 " (id, dossier, entity, entity_id, field, value, hlc, author, device, parents, head)"
                                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
                                 "  NOT EXISTS (SELECT 1 FROM superseded WHERE op_id = ?1))",
                                 error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, op->id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, op->dossier, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, op->entity, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, op->entity_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 5, op->field, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 6, op->value, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 7, (sqlite3_int64) op->hlc);
  sqlite3_bind_text (stmt, 8, op->author, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 9, op->device, -1, SQLITE_STATIC);
  if (op->parents != NULL && *op->parents != '\0')
    sqlite3_bind_text (stmt, 10, op->parents, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    return step_failed (vault, rc, error);
  if (sqlite3_changes (relais_vault_get_db (vault)) == 0)
    return TRUE;   /* already known */
  relais_stmt_release (g_steal_pointer (&stmt));

  *out_new = TRUE;
  relais_vault_hlc_observe (vault, op->hlc);

  if (op->parents != NULL && *op->parents != '\0')
    {
      g_auto(GStrv) parents = g_strsplit (op->parents, " ", -1);

      for (guint i = 0; parents[i] != NULL; i++)
        {
          if (*parents[i] == '\0')
            continue;

          /* Remembered even when the parent is not here yet: it must not
           * become a head when it arrives. */
          stmt = relais_oplog_prepare (vault,
                                       "INSERT OR IGNORE INTO superseded (op_id) VALUES (?1)",
                                       error);
          if (stmt == NULL)
            return FALSE;
          sqlite3_bind_text (stmt, 1, parents[i], -1, SQLITE_STATIC);
          rc = sqlite3_step (stmt);
          if (rc != SQLITE_DONE)
            return step_failed (vault, rc, error);
          relais_stmt_release (g_steal_pointer (&stmt));

          stmt = relais_oplog_prepare (vault,
                                       "UPDATE op SET head = 0 WHERE id = ?1 AND head"
                                       " RETURNING dossier, entity, entity_id, field",
                                       error);
          if (stmt == NULL)
            return FALSE;
          sqlite3_bind_text (stmt, 1, parents[i], -1, SQLITE_STATIC);
          while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
            {
              const char *entity = (const char *) sqlite3_column_text (stmt, 1);
              const char *entity_id = (const char *) sqlite3_column_text (stmt, 2);
              const char *field = (const char *) sqlite3_column_text (stmt, 3);
              FieldRef *ref;

              if (strcmp (entity, op->entity) == 0 &&
                  strcmp (entity_id, op->entity_id) == 0 &&
                  strcmp (field, op->field) == 0)
                {
                  *out_field_lost_head = TRUE;
                  continue;
                }

              /* That field must be recomputed too, or its outcome would
               * depend on the order ops arrived in. */
              if (*out_others == NULL)
                *out_others = g_ptr_array_new_with_free_func ((GDestroyNotify) field_ref_free);
              ref = g_new0 (FieldRef, 1);
              ref->dossier = column_dup (stmt, 0);
              ref->entity = g_strdup (entity);
              ref->entity_id = g_strdup (entity_id);
              ref->field = g_strdup (field);
              g_ptr_array_add (*out_others, ref);
            }
          if (rc != SQLITE_DONE)
            return step_failed (vault, rc, error);
          relais_stmt_release (g_steal_pointer (&stmt));
        }
    }

  return TRUE;
}

static gboolean
recompute_others (RelaisVault  *vault,
                  GPtrArray    *others,
                  guint64       hlc,
                  GError      **error)
{
  for (guint i = 0; others != NULL && i < others->len; i++)
    {
      FieldRef *ref = g_ptr_array_index (others, i);

      if (!recompute_field (vault, ref->dossier, ref->entity, ref->entity_id, ref->field,
                            hlc, TRUE, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
relais_oplog_apply (RelaisVault     *vault,
                    const RelaisOp  *op,
                    gboolean        *out_new,
                    GError         **error)
{
  g_autoptr(GPtrArray) others = NULL;
  gboolean is_new = FALSE;
  gboolean field_lost_head = FALSE;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (op != NULL, FALSE);

  if (out_new != NULL)
    *out_new = FALSE;

  /* Ops come from other devices (and from files on USB sticks): check
   * what the merge relies on rather than trust it. */
  if (!op_is_valid (op))
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                   _("A received change is malformed (operation %s)."),
                   op->id != NULL && g_utf8_validate (op->id, -1, NULL) ? op->id : "?");
      return FALSE;
    }

  if (!store_op (vault, op, FALSE, &is_new, &field_lost_head, &others, error))
    return FALSE;
  if (!is_new)
    return TRUE;

  if (!recompute_field (vault, op->dossier, op->entity, op->entity_id, op->field,
                        op->hlc, field_lost_head, error) ||
      !recompute_others (vault, others, op->hlc, error))
    return FALSE;

  if (out_new != NULL)
    *out_new = TRUE;
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Batched apply
 *
 * A fresh device's first pull applies hundreds of thousands of ops, nearly
 * all of them the first ones of their records.  Applied one by one, each
 * op costs its insert, a query of its field's heads, an upsert of its
 * record's row, of its dossier's activity and, for names, of the search
 * index.  relais_oplog_apply_batch() stores each op as relais_oplog_apply()
 * does, but recomputes the fields it touched once per record: one query of
 * the record's heads, one upsert of its row with every touched column, one
 * activity upsert, one index update.
 *
 * The result is the one of applying the ops in order: the winner and the
 * conflict state of a field are functions of its final heads, updated_hlc
 * and the activity take the max of the ops' clocks, and the rows that take
 * their dossier when they are made (projection rows, conflict rows) get it
 * in the same order, because the pending records are written before an op
 * of another dossier, and before a field another op's parents reach
 * (recompute_others(), which honest devices never cause).  Fields without a
 * projection column are recomputed at once, as before: they touch only
 * their own conflict row.
 * ------------------------------------------------------------------------ */

typedef struct {
  const Projection *proj;
  const char       *entity_id;   /* borrowed from the batch's ops */
  guint32           mask;        /* columns touched */
  guint32           lost_head;   /* columns a head of which was superseded */
  guint64           hlc;         /* the greatest clock of the ops */
} PendingRecord;

typedef struct {
  const char  *dossier;    /* of every pending record; borrowed */
  GHashTable  *by_id;      /* entity_id → PendingRecord (owned by records) */
  GPtrArray   *records;    /* PendingRecord, in the order first touched */
} Pending;

/* Recomputes the columns @rec->mask of one record from its heads and
 * writes them, like recompute_field() once per column. */
static gboolean
flush_record (RelaisVault    *vault,
              const char     *dossier,
              PendingRecord  *rec,
              GError        **error)
{
  const Projection *proj = rec->proj;
  g_auto(RelaisStmt) stmt = NULL;
  char *best_id[32] = { NULL, };
  char *best_device[32] = { NULL, };
  char *best_value[32] = { NULL, };
  guint64 best_hlc[32] = { 0, };
  guint n_heads[32] = { 0, };
  gboolean ok = FALSE;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT field, id, value, hlc, device FROM op"
                               " WHERE entity = ?1 AND entity_id = ?2 AND head",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, proj->entity, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, rec->entity_id, -1, SQLITE_STATIC);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      int c = find_column (proj, (const char *) sqlite3_column_text (stmt, 0));
      const char *id = (const char *) sqlite3_column_text (stmt, 1);
      guint64 head_hlc = (guint64) sqlite3_column_int64 (stmt, 3);
      const char *device = (const char *) sqlite3_column_text (stmt, 4);

      if (c < 0 || !(rec->mask & (1u << c)))
        continue;
      if (n_heads[c] == 0 ||
          op_order (head_hlc, device, id, best_hlc[c], best_device[c], best_id[c]) > 0)
        {
          g_free (best_id[c]);
          g_free (best_device[c]);
          g_free (best_value[c]);
          best_id[c] = g_strdup (id);
          best_device[c] = g_strdup (device);
          best_value[c] = column_dup (stmt, 2);
          best_hlc[c] = head_hlc;
        }
      n_heads[c]++;
    }
  if (rc != SQLITE_DONE)
    {
      step_failed (vault, rc, error);
      goto out;
    }
  relais_stmt_release (g_steal_pointer (&stmt));

  for (guint c = 0; c < proj->n_columns; c++)
    {
      if (!(rec->mask & (1u << c)))
        continue;
      if ((n_heads[c] > 1 || (rec->lost_head & (1u << c))) &&
          !set_conflict (vault, dossier, proj->entity, rec->entity_id, proj->columns[c].field,
                         n_heads[c] > 1, error))
        goto out;
    }

  ok = project_values (vault, proj, dossier, rec->entity_id, rec->mask,
                       (const char *const *) best_value, rec->hlc, error);

out:
  for (guint c = 0; c < 32; c++)
    {
      g_free (best_id[c]);
      g_free (best_device[c]);
      g_free (best_value[c]);
    }
  return ok;
}

static gboolean
pending_flush (RelaisVault  *vault,
               Pending      *pending,
               GError      **error)
{
  gboolean ok = TRUE;

  for (guint i = 0; ok && i < pending->records->len; i++)
    ok = flush_record (vault, pending->dossier, g_ptr_array_index (pending->records, i), error);
  g_hash_table_remove_all (pending->by_id);
  g_ptr_array_set_size (pending->records, 0);
  pending->dossier = NULL;
  return ok;
}

gboolean
relais_oplog_apply_batch (RelaisVault  *vault,
                          GPtrArray    *ops,
                          guint        *out_n_new,
                          GError      **error)
{
  Pending pending = { NULL, };
  gboolean ok = FALSE;
  guint n_new = 0;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (ops != NULL, FALSE);

  if (out_n_new != NULL)
    *out_n_new = 0;

  /* All checked before any is stored, so a malformed op leaves the vault
   * as it was (relais_oplog_apply() leaves the ops before it). */
  for (guint i = 0; i < ops->len; i++)
    {
      const RelaisOp *op = g_ptr_array_index (ops, i);

      if (!op_is_valid (op))
        {
          g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                       _("A received change is malformed (operation %s)."),
                       op->id != NULL && g_utf8_validate (op->id, -1, NULL) ? op->id : "?");
          return FALSE;
        }
    }

  pending.by_id = g_hash_table_new (g_str_hash, g_str_equal);
  pending.records = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < ops->len; i++)
    {
      const RelaisOp *op = g_ptr_array_index (ops, i);
      g_autoptr(GPtrArray) others = NULL;
      gboolean is_new = FALSE;
      gboolean field_lost_head = FALSE;
      const Projection *proj;
      PendingRecord *rec;
      int c;

      if (!store_op (vault, op, FALSE, &is_new, &field_lost_head, &others, error))
        goto out;
      if (!is_new)
        continue;
      n_new++;

      proj = find_projection (op->entity);
      c = proj != NULL ? find_column (proj, op->field) : -1;
      rec = g_hash_table_lookup (pending.by_id, op->entity_id);

      /* What would be written out of order if it waited: the pending
       * records go first. */
      if (others != NULL ||
          (pending.dossier != NULL && strcmp (pending.dossier, op->dossier) != 0) ||
          (rec != NULL && rec->proj != proj))
        {
          if (!pending_flush (vault, &pending, error))
            goto out;
          rec = NULL;
        }

      if (c < 0 || others != NULL)
        {
          /* No column: only its conflict row, now.  With others: in the
           * order relais_oplog_apply() writes them. */
          if (!recompute_field (vault, op->dossier, op->entity, op->entity_id, op->field,
                                op->hlc, field_lost_head, error))
            goto out;
        }
      else
        {
          if (rec == NULL)
            {
              rec = g_new0 (PendingRecord, 1);
              rec->proj = proj;
              rec->entity_id = op->entity_id;
              g_hash_table_insert (pending.by_id, (gpointer) rec->entity_id, rec);
              g_ptr_array_add (pending.records, rec);
              pending.dossier = op->dossier;
            }
          rec->mask |= 1u << c;
          if (field_lost_head)
            rec->lost_head |= 1u << c;
          rec->hlc = MAX (rec->hlc, op->hlc);
        }

      if (!recompute_others (vault, others, op->hlc, error))
        goto out;
    }

  if (!pending_flush (vault, &pending, error))
    goto out;
  ok = TRUE;
  if (out_n_new != NULL)
    *out_n_new = n_new;

out:
  g_hash_table_unref (pending.by_id);
  g_ptr_array_unref (pending.records);
  return ok;
}

/* ------------------------------------------------------------------------
 * Local writes
 * ------------------------------------------------------------------------ */

/* Writes one field, unless it would change nothing.  @new_record: nothing
 * was ever written to @entity_id, no need to look for heads.  @dossier NULL:
 * the dossier of the field's current heads (resolving a conflict).  Sets
 * *@out_hlc to the new op's clock, or leaves it when nothing was written. */
static gboolean
write_field (RelaisVault  *vault,
             const char   *dossier,
             const char   *entity,
             const char   *entity_id,
             const char   *field,
             const char   *value,
             gboolean      new_record,
             gboolean     *out_written,
             guint64      *out_hlc,
             GError      **error)
{
  g_autoptr(GString) parents = NULL;
  g_autoptr(GPtrArray) others = NULL;
  g_autofree char *head_value = NULL;
  g_autofree char *head_dossier = NULL;
  g_autofree char *id = NULL;
  gboolean is_new;
  gboolean field_lost_head;
  guint n_heads = 0;
  RelaisOp op = { 0, };

  *out_written = FALSE;

  if (!new_record)
    {
      g_auto(RelaisStmt) stmt = NULL;
      int rc;

      stmt = relais_oplog_prepare (vault,
                                   "SELECT id, value, dossier FROM op"
                                   " WHERE entity = ?1 AND entity_id = ?2 AND field = ?3 AND head",
                                   error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, entity, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, entity_id, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 3, field, -1, SQLITE_STATIC);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          if (parents == NULL)
            parents = g_string_new (NULL);
          else
            g_string_append_c (parents, ' ');
          g_string_append (parents, (const char *) sqlite3_column_text (stmt, 0));
          if (n_heads == 0)
            {
              head_value = column_dup (stmt, 1);
              head_dossier = column_dup (stmt, 2);
            }
          n_heads++;
        }
      if (rc != SQLITE_DONE)
        {
          relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
          return FALSE;
        }
    }

  if (dossier == NULL)
    {
      if (head_dossier == NULL)
        {
          g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND,
                       _("No value to choose for field “%s” of %s %s."),
                       field, entity, entity_id);
          return FALSE;
        }
      dossier = head_dossier;
    }

  /* Writing what every replica already shows would only grow the log (and
   * a CSV re-import rewrites every field).  With several heads, even the
   * winner's value is written: that is how a person closes a conflict. */
  if (n_heads <= 1 && g_strcmp0 (head_value, value) == 0)
    return TRUE;

  id = relais_oplog_new_id ();
  op.id = id;
  op.dossier = (char *) dossier;
  op.entity = (char *) entity;
  op.entity_id = (char *) entity_id;
  op.field = (char *) field;
  op.value = (char *) value;
  op.hlc = relais_vault_hlc_tick (vault);
  op.author = (char *) relais_vault_get_author (vault);
  op.device = (char *) relais_vault_get_device_id (vault);
  op.parents = parents != NULL ? parents->str : NULL;

  if (!store_op (vault, &op, TRUE, &is_new, &field_lost_head, &others, error))
    return FALSE;
  g_assert (is_new);

  /* Its parents were every head, and nothing can name its fresh id: it is
   * the field's only head, so the winner, and the field has no conflict. */
  if (n_heads > 1 &&
      !set_conflict (vault, dossier, entity, entity_id, field, FALSE, error))
    return FALSE;
  if (!recompute_others (vault, others, op.hlc, error))
    return FALSE;

  *out_written = TRUE;
  *out_hlc = op.hlc;
  return TRUE;
}

/* Writes @n_fields fields of one record, then updates its projection row
 * once (an import writes seven fields per dossier). */
static gboolean
write_fields (RelaisVault        *vault,
              const char         *dossier,
              const char         *entity,
              const char         *entity_id,
              gboolean            new_record,
              guint               n_fields,
              const char * const *fields,
              const char * const *values,
              GError            **error)
{
  const Projection *proj = find_projection (entity);
  const char *projected[32] = { NULL, };
  guint32 mask = 0;
  guint64 hlc = 0;
  gboolean any = FALSE;

  for (guint i = 0; i < n_fields; i++)
    {
      gboolean written;
      int c;

      if (!write_field (vault, dossier, entity, entity_id, fields[i], values[i],
                        new_record, &written, &hlc, error))
        return FALSE;
      if (!written)
        continue;
      any = TRUE;
      if (proj == NULL)
        continue;
      c = find_column (proj, fields[i]);
      if (c < 0)
        continue;
      mask |= 1u << c;
      projected[c] = values[i];
    }

  if (proj == NULL || !any)
    return TRUE;

  /* A new row gets every column, written or NULL: one statement for every
   * new record whatever fields it has. */
  if (new_record)
    mask = proj->n_columns == 32 ? G_MAXUINT32 : (1u << proj->n_columns) - 1;

  return project_values (vault, proj, dossier, entity_id, mask, projected, hlc, error);
}

gboolean
relais_oplog_write (RelaisVault  *vault,
                    const char   *dossier,
                    const char   *entity,
                    const char   *entity_id,
                    const char   *field,
                    const char   *value,
                    GError      **error)
{
  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (dossier != NULL, FALSE);
  g_return_val_if_fail (entity != NULL, FALSE);
  g_return_val_if_fail (entity_id != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);
  g_return_val_if_fail (!sqlite3_get_autocommit (relais_vault_get_db (vault)), FALSE);

  return write_fields (vault, dossier, entity, entity_id, FALSE, 1, &field, &value, error);
}

gboolean
relais_oplog_write_fields (RelaisVault        *vault,
                           const char         *dossier,
                           const char         *entity,
                           const char         *entity_id,
                           gboolean            new_record,
                           guint               n_fields,
                           const char * const *fields,
                           const char * const *values,
                           GError            **error)
{
  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (dossier != NULL, FALSE);
  g_return_val_if_fail (entity != NULL, FALSE);
  g_return_val_if_fail (entity_id != NULL, FALSE);
  g_return_val_if_fail (n_fields == 0 || (fields != NULL && values != NULL), FALSE);
  g_return_val_if_fail (!sqlite3_get_autocommit (relais_vault_get_db (vault)), FALSE);

  return write_fields (vault, dossier, entity, entity_id, new_record,
                       n_fields, fields, values, error);
}

gboolean
relais_oplog_resolve (RelaisVault  *vault,
                      const char   *entity,
                      const char   *entity_id,
                      const char   *field,
                      const char   *value,
                      GError      **error)
{
  gboolean own_transaction;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (entity != NULL, FALSE);
  g_return_val_if_fail (entity_id != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);

  own_transaction = sqlite3_get_autocommit (relais_vault_get_db (vault));
  if (own_transaction && !relais_vault_begin (vault, error))
    return FALSE;

  if (!write_fields (vault, NULL, entity, entity_id, FALSE, 1, &field, &value, error))
    {
      if (own_transaction)
        relais_vault_rollback (vault);
      return FALSE;
    }

  if (own_transaction && !relais_vault_commit (vault, error))
    return FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Reading the log
 * ------------------------------------------------------------------------ */

GPtrArray *
relais_oplog_list (RelaisVault  *vault,
                   gint64        after_seq,
                   guint         limit,
                   gint64       *out_last_seq,
                   GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  gint64 last_seq = after_seq;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT seq, " OP_COLUMNS " FROM op"
                               " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, after_seq);
  sqlite3_bind_int64 (stmt, 2, limit == 0 ? -1 : (sqlite3_int64) limit);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      last_seq = sqlite3_column_int64 (stmt, 0);
      g_ptr_array_add (ops, op_from_row (stmt, 1));
    }
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }

  if (out_last_seq != NULL)
    *out_last_seq = last_seq;
  return g_steal_pointer (&ops);
}

GPtrArray *
relais_oplog_history (RelaisVault  *vault,
                      const char   *entity,
                      const char   *entity_id,
                      const char   *field,
                      GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (entity != NULL, NULL);
  g_return_val_if_fail (entity_id != NULL, NULL);

  /* The "entity <> 'person'" term lets SQLite use the partial index
   * op_history; @field NULL: every field of the record. */
  if (g_strcmp0 (entity, "person") != 0)
    stmt = relais_oplog_prepare (vault,
                                 "SELECT " OP_COLUMNS " FROM op"
                                 " WHERE entity <> 'person' AND entity = ?1 AND entity_id = ?2"
                                 "   AND (?3 IS NULL OR field = ?3)"
                                 " ORDER BY hlc, device, id",
                                 error);
  else
    stmt = relais_oplog_prepare (vault,
                                 "SELECT " OP_COLUMNS " FROM op"
                                 " WHERE entity = ?1 AND entity_id = ?2"
                                 "   AND (?3 IS NULL OR field = ?3)"
                                 " ORDER BY hlc, device, id",
                                 error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, entity, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, entity_id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, field, -1, SQLITE_STATIC);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (ops, op_from_row (stmt, 0));
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }
  return g_steal_pointer (&ops);
}

GPtrArray *
relais_oplog_conflicts (RelaisVault  *vault,
                        const char   *dossier,
                        GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);

  if (dossier != NULL)
    {
      stmt = relais_oplog_prepare (vault,
                                   "SELECT entity, entity_id, field, dossier FROM conflict"
                                   " WHERE dossier = ?1 ORDER BY entity, entity_id, field",
                                   error);
      if (stmt == NULL)
        return NULL;
      sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
    }
  else
    {
      stmt = relais_oplog_prepare (vault,
                                   "SELECT entity, entity_id, field, dossier FROM conflict"
                                   " ORDER BY dossier, entity, entity_id, field",
                                   error);
      if (stmt == NULL)
        return NULL;
    }

  conflicts = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_conflict_free);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      g_autoptr(RelaisConflict) conflict = g_new0 (RelaisConflict, 1);

      conflict->entity = column_dup (stmt, 0);
      conflict->entity_id = column_dup (stmt, 1);
      conflict->field = column_dup (stmt, 2);
      conflict->dossier = column_dup (stmt, 3);
      conflict->values = load_heads (vault, conflict->entity, conflict->entity_id,
                                     conflict->field, error);
      if (conflict->values == NULL)
        return NULL;
      g_ptr_array_add (conflicts, g_steal_pointer (&conflict));
    }
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }

  return g_steal_pointer (&conflicts);
}
