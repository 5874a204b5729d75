#define G_LOG_DOMAIN "relais-schema"

#include "config.h"

#include <glib/gi18n.h>

#include "relais-schema.h"
#include "relais-error.h"
#include "relais-vault.h"   /* sqlite3_stmt autoptr */
#include "relais-search.h"

/* The migration ladder: entry N brings a database from user_version N to
 * N + 1.  Entries are never edited once released; a change is a new entry,
 * so every vault in the field climbs the same steps. */
static const char * const migrations[] = {
  /* 0 → 1 */
  /* Small key/value settings of the vault itself (device_id, author, hlc). */
  "CREATE TABLE meta ("
  "  key   TEXT PRIMARY KEY NOT NULL,"
  "  value"
  ") WITHOUT ROWID;"

  /* The op log.  seq is this vault's storage order (what sync pages
   * through); id is the author's UUID, the same on every replica.  head is
   * a cache of "no stored op lists me as a parent", kept so the winner of a
   * field is one indexed lookup. */
  "CREATE TABLE op ("
  "  seq       INTEGER PRIMARY KEY,"
  "  id        TEXT NOT NULL UNIQUE,"
  "  dossier   TEXT NOT NULL,"
  "  entity    TEXT NOT NULL,"
  "  entity_id TEXT NOT NULL,"
  "  field     TEXT NOT NULL,"
  "  value     TEXT,"
  "  hlc       INTEGER NOT NULL,"
  "  author    TEXT NOT NULL,"
  "  device    TEXT NOT NULL,"
  "  parents   TEXT,"
  "  head      INTEGER NOT NULL"
  ");"
  "CREATE INDEX op_head ON op (entity, entity_id, field, hlc DESC, device DESC)"
  "  WHERE head;"

  /* Every id some op names as a parent, known or not yet arrived: an op
   * that arrives after its child must not become a head. */
  "CREATE TABLE superseded ("
  "  op_id TEXT PRIMARY KEY NOT NULL"
  ") WITHOUT ROWID;"

  /* Fields that have more than one head right now; derived from the op log
   * like the projections, so listing a dossier's conflicts is a lookup. */
  "CREATE TABLE conflict ("
  "  entity    TEXT NOT NULL,"
  "  entity_id TEXT NOT NULL,"
  "  field     TEXT NOT NULL,"
  "  dossier   TEXT NOT NULL,"
  "  PRIMARY KEY (entity, entity_id, field)"
  ") WITHOUT ROWID;"
  "CREATE INDEX conflict_dossier ON conflict (dossier);"

  /* Projection of entity "person".  The fold_* columns are computed in C
   * (relais_fold() is not an SQL function, so that the database stays
   * readable by any connection); identity_key is derived from them in SQL so
   * it can never disagree with them. */
  "CREATE TABLE person ("
  "  id          TEXT PRIMARY KEY NOT NULL,"
  "  last_name   TEXT,"
  "  first_name  TEXT,"
  "  birth_date  TEXT,"
  "  phone       TEXT,"
  "  email       TEXT,"
  "  postal_code TEXT,"
  "  city        TEXT,"
  "  fold_last   TEXT,"
  "  fold_first  TEXT,"
  "  identity_key TEXT GENERATED ALWAYS AS"
  "    (fold_last || '|' || fold_first || '|' || birth_date) VIRTUAL,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX person_identity ON person (identity_key);"
  "CREATE INDEX person_order ON person (fold_last, fold_first, birth_date, id);",

  /* 1 → 2 */
  /* The dossier beyond identity (relais-dossier.h).  Projections of the op
   * log like person: one column per op field, plus the op's dossier.
   * Indexes serve the per-dossier pages and the list's filters at 100,000
   * dossiers; partial ones only hold what their filter reads. */
  "CREATE TABLE situation ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  right_rsa TEXT, right_are TEXT, right_ass TEXT, right_aah TEXT, right_rqth TEXT,"
  "  education_level TEXT, work_situation TEXT, sharing_informed_on TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  /* id is "DOSSIER:THEME" (a dossier id never holds ':'), so that two
   * devices assessing the same theme write to the same record. */
  "CREATE TABLE diagnostic ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  theme TEXT GENERATED ALWAYS AS (substr (id, instr (id, ':') + 1)) VIRTUAL,"
  "  level TEXT, situations TEXT, comment TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX diagnostic_dossier ON diagnostic (dossier);"
  "CREATE TABLE project ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  job_label TEXT, rome_code TEXT, mobility_km TEXT, contract_types TEXT,"
  "  working_time TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX project_dossier ON project (dossier);"
  "CREATE TABLE objective ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  theme TEXT, text TEXT, status TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX objective_dossier ON objective (dossier);"
  "CREATE TABLE action ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  objective TEXT, text TEXT, status TEXT, due TEXT, carrier TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX action_dossier ON action (dossier);"
  "CREATE INDEX action_late ON action (due, dossier)"
  "  WHERE removed IS NULL AND status IN ('planifiee', 'en-cours');"
  "CREATE TABLE contract ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  kind TEXT, signed_on TEXT, starts_on TEXT, ends_on TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX contract_dossier ON contract (dossier);"
  "CREATE TABLE appointment ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  at TEXT, with_whom TEXT, place TEXT, status TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX appointment_dossier ON appointment (dossier, at);"
  "CREATE INDEX appointment_day ON appointment (at, dossier)"
  "  WHERE removed IS NULL AND status IS NOT 'cancelled';"
  "CREATE TABLE note ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  text TEXT, author TEXT, written_at TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX note_dossier ON note (dossier, written_at);"
  "CREATE TABLE orientation ("
  "  id TEXT PRIMARY KEY NOT NULL, dossier TEXT,"
  "  structure TEXT, reason TEXT, status TEXT, oriented_on TEXT, removed TEXT,"
  "  updated_hlc INTEGER NOT NULL DEFAULT 0"
  ");"
  "CREATE INDEX orientation_dossier ON orientation (dossier);"
  /* The last change of each dossier, whatever the record: the list's
   * "recently changed" filter.  Filled from the op log by the projections,
   * and here from what is already there. */
  "CREATE TABLE dossier_activity ("
  "  dossier TEXT PRIMARY KEY NOT NULL,"
  "  hlc     INTEGER NOT NULL"
  ") WITHOUT ROWID;"
  "CREATE INDEX dossier_activity_hlc ON dossier_activity (hlc);"
  "INSERT INTO dossier_activity (dossier, hlc)"
  "  SELECT dossier, max (hlc) FROM op GROUP BY dossier;"
  /* The history of a field (relais_oplog_history()): every op of it, not
   * only its heads.  Person ops are left out, so an import of 100,000
   * dossiers pays nothing for it. */
  "CREATE INDEX op_history ON op (entity, entity_id, field, hlc)"
  "  WHERE entity <> 'person';",

  /* 2 → 3 */
  /* The index of the list's search (relais-search.c): the trigrams of the
   * folded names, in rows whose rowid follows the list order.  Filled for
   * the people already there by relais_search_backfill() (migration_code). */
  "ALTER TABLE person ADD COLUMN search_rowid INTEGER;"
  "CREATE VIRTUAL TABLE person_search USING fts5 ("
  "  name, last UNINDEXED, first UNINDEXED, person UNINDEXED,"
  "  tokenize = 'trigram case_sensitive 1', detail = 'none', columnsize = 0"
  ");",

  /* 3 → 4 */
  /* IF NOT EXISTS: a test winds user_version back to replay an older
   * step, and this one must then be a no-op.
   * Sync (sync/relais-sync-engine.c, PROTOCOL.md).  Secrets sit here in
   * clear columns because the whole database is encrypted at rest; the
   * engine copies them into guarded memory while it uses them.
   * sync_identity has one row once the vault is enrolled: the server, this
   * device's id and request-signing key, the user's key pairs, and the
   * organisation's recovery public key (NULL when it has none). */
  "CREATE TABLE IF NOT EXISTS sync_identity ("
  "  id          INTEGER PRIMARY KEY CHECK (id = 1),"
  "  server      TEXT NOT NULL,"
  "  cacert      TEXT,"
  "  user_id     TEXT NOT NULL,"
  "  org         TEXT NOT NULL,"
  "  device_id   TEXT NOT NULL,"
  "  device_sk   BLOB NOT NULL,"
  "  box_pk      BLOB NOT NULL,"
  "  box_sk      BLOB NOT NULL,"
  "  sign_pk     BLOB NOT NULL,"
  "  sign_sk     BLOB NOT NULL,"
  "  recovery_pk BLOB,"
  "  admin       INTEGER NOT NULL DEFAULT 0"
  ");"
  /* Each dossier this vault holds a key of: its current epoch, and where
   * it stands on the server (registered: 0 made here, its registration not
   * queued yet; 1 queued in the spool; 2 the server has it). */
  "CREATE TABLE IF NOT EXISTS sync_dossier ("
  "  dossier    TEXT PRIMARY KEY NOT NULL,"
  "  epoch      INTEGER NOT NULL,"
  "  registered INTEGER NOT NULL DEFAULT 0"
  ") WITHOUT ROWID;"
  /* Every epoch's key: old epochs stay readable (rotation protects what
   * follows, not the past). */
  "CREATE TABLE IF NOT EXISTS sync_key ("
  "  dossier TEXT NOT NULL,"
  "  epoch   INTEGER NOT NULL,"
  "  key     BLOB NOT NULL,"
  "  PRIMARY KEY (dossier, epoch)"
  ") WITHOUT ROWID;"
  /* Members past and present (until_epoch 0 while a member), so that
   * change sets written before a removal still verify. */
  "CREATE TABLE IF NOT EXISTS sync_member ("
  "  dossier     TEXT NOT NULL,"
  "  user_id     TEXT NOT NULL,"
  "  sign_pk     BLOB NOT NULL,"
  "  since_epoch INTEGER NOT NULL,"
  "  until_epoch INTEGER NOT NULL DEFAULT 0,"
  "  PRIMARY KEY (dossier, user_id)"
  ") WITHOUT ROWID;"
  /* Small values of the engine: sealed_seq, the op-log seq up to which
   * this device's own operations are sealed into the spool. */
  "CREATE TABLE IF NOT EXISTS sync_state ("
  "  name  TEXT PRIMARY KEY NOT NULL,"
  "  value"
  ") WITHOUT ROWID;",
};

/* Entries of the ladder that C completes after their SQL, for what SQL
 * cannot compute. */
static gboolean (* const migration_code[]) (sqlite3 *db, GError **error) = {
  [2] = relais_search_backfill,
};

#define RELAIS_SCHEMA_VERSION ((int) G_N_ELEMENTS (migrations))

static gboolean
set_error_from_db (sqlite3     *db,
                   const char  *what,
                   GError     **error)
{
  /* The vault turns SQLite codes into messages for people; here the
   * connection has no vault yet, and schema errors mean a broken build or a
   * damaged file, so the SQLite message (never personal data: it names
   * tables and columns) is what helps. */
  g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
               /* Translators: what failed, then why (“Could not read the vault: the disk is full”). */
               _("%s: %s"), what, sqlite3_errmsg (db));
  return FALSE;
}

gboolean
relais_schema_migrate (sqlite3  *db,
                       GError  **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  int version;

  g_return_val_if_fail (db != NULL, FALSE);

  if (sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK)
    return set_error_from_db (db, _("Could not read the vault's version"), error);
  if (sqlite3_step (stmt) != SQLITE_ROW)
    return set_error_from_db (db, _("Could not read the vault's version"), error);
  version = sqlite3_column_int (stmt, 0);
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (version > RELAIS_SCHEMA_VERSION)
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                   _("This vault was made by a newer version of Relais (data version %d); "
                     "update Relais to open it."),
                   version);
      return FALSE;
    }

  for (; version < RELAIS_SCHEMA_VERSION; version++)
    {
      g_autofree char *bump = NULL;

      if (sqlite3_exec (db, migrations[version], NULL, NULL, NULL) != SQLITE_OK)
        return set_error_from_db (db, _("Could not upgrade the vault"), error);
      if (version < (int) G_N_ELEMENTS (migration_code) && migration_code[version] != NULL &&
          !migration_code[version] (db, error))
        return FALSE;

      /* PRAGMA takes no bound parameters; the number is ours. */
      bump = g_strdup_printf ("PRAGMA user_version = %d", version + 1);
      if (sqlite3_exec (db, bump, NULL, NULL, NULL) != SQLITE_OK)
        return set_error_from_db (db, _("Could not upgrade the vault"), error);

      g_debug ("Vault schema upgraded to version %d", version + 1);
    }

  return TRUE;
}
