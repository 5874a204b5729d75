#define G_LOG_DOMAIN "relais-person"

#include "config.h"

#include <string.h>
#include <glib/gi18n.h>

#include "relais-person.h"
#include "relais-json.h"
#include "relais-dossier.h"
#include "relais-fold.h"
#include "relais-oplog.h"
#include "relais-search.h"
#include "relais-validate.h"

/* The op-log field names are the projection's column names
 * (relais-oplog.c, person_columns). */
const char * const relais_person_fields[RELAIS_PERSON_N_FIELDS] = {
  "last_name",
  "first_name",
  "birth_date",
  "phone",
  "email",
  "postal_code",
  "city",
};

enum {
  FIELD_LAST_NAME,
  FIELD_FIRST_NAME,
  FIELD_BIRTH_DATE,
  FIELD_PHONE,
  FIELD_EMAIL,
  FIELD_POSTAL_CODE,
  FIELD_CITY,
};

/* The identity fields: required at creation, never cleared afterwards. */
#define FIELD_IS_IDENTITY(i) ((i) <= FIELD_BIRTH_DATE)

#define PERSON_COLUMNS "id, last_name, first_name, birth_date, phone, email, postal_code, city"

char **
relais_person_field_ptr (RelaisPerson *person,
                         guint         i)
{
  g_return_val_if_fail (person != NULL, NULL);
  g_return_val_if_fail (i < RELAIS_PERSON_N_FIELDS, NULL);

  switch (i)
    {
    case FIELD_LAST_NAME:   return &person->last_name;
    case FIELD_FIRST_NAME:  return &person->first_name;
    case FIELD_BIRTH_DATE:  return &person->birth_date;
    case FIELD_PHONE:       return &person->phone;
    case FIELD_EMAIL:       return &person->email;
    case FIELD_POSTAL_CODE: return &person->postal_code;
    case FIELD_CITY:        return &person->city;
    default:                g_assert_not_reached ();
    }
}

static const char *
field_get (const RelaisPerson *person,
           guint               i)
{
  return *relais_person_field_ptr ((RelaisPerson *) person, i);
}

RelaisPerson *
relais_person_new (void)
{
  return g_new0 (RelaisPerson, 1);
}

void
relais_person_free (RelaisPerson *person)
{
  if (person == NULL)
    return;
  g_free (person->id);
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    g_free (*relais_person_field_ptr (person, i));
  g_free (person);
}

static RelaisPerson *
person_copy (const RelaisPerson *person)
{
  RelaisPerson *copy = relais_person_new ();

  copy->id = g_strdup (person->id);
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    *relais_person_field_ptr (copy, i) = g_strdup (field_get (person, i));
  return copy;
}

/* Messages name the field, never its value.  Whole sentences, so that
 * translators can make each one agree with its noun. */
static const char *
field_required_message (guint i)
{
  switch (i)
    {
    case FIELD_LAST_NAME:   return _("The last name is required.");
    case FIELD_FIRST_NAME:  return _("The first name is required.");
    case FIELD_BIRTH_DATE:  return _("The birth date is required.");
    default:                g_assert_not_reached ();
    }
}

static const char *
field_cleared_message (guint i)
{
  switch (i)
    {
    case FIELD_LAST_NAME:   return _("The last name cannot be removed.");
    case FIELD_FIRST_NAME:  return _("The first name cannot be removed.");
    case FIELD_BIRTH_DATE:  return _("The birth date cannot be removed.");
    default:                g_assert_not_reached ();
    }
}

static const char *
field_invalid_message (guint i)
{
  switch (i)
    {
    case FIELD_LAST_NAME:   return _("The last name is not valid: at most 200 characters, no control characters.");
    case FIELD_FIRST_NAME:  return _("The first name is not valid: at most 200 characters, no control characters.");
    case FIELD_BIRTH_DATE:  return _("The birth date is not valid: write it as DD/MM/YYYY, between 1900 and today.");
    case FIELD_PHONE:       return _("The phone number is not valid: write 10 digits, or + and the country code.");
    case FIELD_EMAIL:       return _("The e-mail address is not valid: write it as name@example.fr.");
    case FIELD_POSTAL_CODE: return _("The postal code is not valid: write 5 digits.");
    case FIELD_CITY:        return _("The city is not valid: at most 200 characters, no control characters.");
    default:                g_assert_not_reached ();
    }
}

static char *
normalize_field (guint       i,
                 const char *text)
{
  switch (i)
    {
    case FIELD_LAST_NAME:
    case FIELD_FIRST_NAME:
    case FIELD_CITY:        return relais_normalize_name (text);
    case FIELD_BIRTH_DATE:  return relais_normalize_birth_date (text);
    case FIELD_PHONE:       return relais_normalize_phone (text);
    case FIELD_EMAIL:       return relais_normalize_email (text);
    case FIELD_POSTAL_CODE: return relais_normalize_postal_code (text);
    default:                g_assert_not_reached ();
    }
}

static gboolean
is_blank (const char *text)
{
  for (; *text != '\0'; text++)
    if (!g_ascii_isspace (*text))
      return FALSE;
  return TRUE;
}

gboolean
relais_person_validate (RelaisPerson  *person,
                        gboolean       require_identity,
                        GError       **error)
{
  g_return_val_if_fail (person != NULL, FALSE);

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      char **ptr = relais_person_field_ptr (person, i);
      char *normalized;

      /* Blank means "empty": kept as "" so that an edit can clear the
       * field. */
      if (*ptr != NULL && is_blank (*ptr))
        {
          g_free (*ptr);
          *ptr = g_strdup ("");
        }

      if (*ptr == NULL || **ptr == '\0')
        {
          if (require_identity && FIELD_IS_IDENTITY (i))
            {
              g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                                   field_required_message (i));
              return FALSE;
            }
          continue;
        }

      normalized = normalize_field (i, *ptr);
      if (normalized == NULL)
        {
          g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                               field_invalid_message (i));
          return FALSE;
        }
      g_free (*ptr);
      *ptr = normalized;
    }

  return TRUE;
}

char *
relais_person_add_in_transaction (RelaisVault         *vault,
                                  const RelaisPerson  *person,
                                  GError             **error)
{
  g_autoptr(RelaisPerson) valid = NULL;
  g_autofree char *id = NULL;
  const char *values[RELAIS_PERSON_N_FIELDS];

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (person != NULL, NULL);

  valid = person_copy (person);
  if (!relais_person_validate (valid, TRUE, error))
    return NULL;

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      const char *value = field_get (valid, i);

      values[i] = value != NULL && *value != '\0' ? value : NULL;
    }

  id = relais_oplog_new_id ();
  if (!relais_oplog_write_fields (vault, id, "person", id, TRUE,
                                  RELAIS_PERSON_N_FIELDS, relais_person_fields, values, error))
    return NULL;
  return g_steal_pointer (&id);
}

char *
relais_person_add (RelaisVault         *vault,
                   const RelaisPerson  *person,
                   GError             **error)
{
  g_autofree char *id = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (person != NULL, NULL);

  if (!relais_vault_begin (vault, error))
    return NULL;
  id = relais_person_add_in_transaction (vault, person, error);
  if (id == NULL)
    {
      relais_vault_rollback (vault);
      return NULL;
    }
  if (!relais_vault_commit (vault, error))
    return NULL;
  return g_steal_pointer (&id);
}

static gboolean
person_exists (RelaisVault  *vault,
               const char   *id,
               GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault, "SELECT 1 FROM person WHERE id = ?1", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    return TRUE;
  if (rc == SQLITE_DONE)
    g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND,
                 _("No dossier with id %s."), id);
  else
    relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
  return FALSE;
}

gboolean
relais_person_edit_in_transaction (RelaisVault         *vault,
                                   const char          *id,
                                   const RelaisPerson  *changes,
                                   GError             **error)
{
  g_autoptr(RelaisPerson) valid = NULL;
  const char *fields[RELAIS_PERSON_N_FIELDS];
  const char *values[RELAIS_PERSON_N_FIELDS];
  guint n = 0;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (id != NULL, FALSE);
  g_return_val_if_fail (changes != NULL, FALSE);

  if (!person_exists (vault, id, error))
    return FALSE;

  valid = person_copy (changes);
  if (!relais_person_validate (valid, FALSE, error))
    return FALSE;

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      const char *value = field_get (valid, i);

      if (value != NULL && *value == '\0' && FIELD_IS_IDENTITY (i))
        {
          g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                               field_cleared_message (i));
          return FALSE;
        }
    }

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      const char *value = field_get (valid, i);

      if (value == NULL)
        continue;
      fields[n] = relais_person_fields[i];
      values[n] = *value == '\0' ? NULL : value;
      n++;
    }

  return relais_oplog_write_fields (vault, id, "person", id, FALSE, n, fields, values, error);
}

gboolean
relais_person_edit (RelaisVault         *vault,
                    const char          *id,
                    const RelaisPerson  *changes,
                    GError             **error)
{
  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (id != NULL, FALSE);
  g_return_val_if_fail (changes != NULL, FALSE);

  if (!relais_vault_begin (vault, error))
    return FALSE;
  if (!relais_person_edit_in_transaction (vault, id, changes, error))
    {
      relais_vault_rollback (vault);
      return FALSE;
    }
  return relais_vault_commit (vault, error);
}

static RelaisPerson *
person_from_row (sqlite3_stmt *stmt)
{
  RelaisPerson *person = relais_person_new ();

  person->id = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    *relais_person_field_ptr (person, i) =
      g_strdup ((const char *) sqlite3_column_text (stmt, 1 + i));
  return person;
}

RelaisPerson *
relais_person_get (RelaisVault  *vault,
                   const char   *id,
                   GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  stmt = relais_oplog_prepare (vault, "SELECT " PERSON_COLUMNS " FROM person WHERE id = ?1", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    return person_from_row (stmt);
  if (rc == SQLITE_DONE)
    g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND,
                 _("No dossier with id %s."), id);
  else
    relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
  return NULL;
}

char *
relais_person_find_identity (RelaisVault  *vault,
                             const char   *last_name,
                             const char   *first_name,
                             const char   *birth_date,
                             GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *fold_last = NULL;
  g_autofree char *fold_first = NULL;
  g_autofree char *date = NULL;
  g_autofree char *key = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);

  if (last_name == NULL || first_name == NULL || birth_date == NULL)
    return NULL;

  /* The same normalisation as the projection (relais_person_validate() then
   * relais_fold()), so "  DUPONT " finds "Dupont". */
  {
    g_autofree char *last = relais_normalize_name (last_name);
    g_autofree char *first = relais_normalize_name (first_name);

    fold_last = relais_fold (last != NULL ? last : last_name);
    fold_first = relais_fold (first != NULL ? first : first_name);
  }
  date = relais_normalize_birth_date (birth_date);
  if (fold_last == NULL || fold_first == NULL)
    return NULL;
  key = g_strconcat (fold_last, "|", fold_first, "|", date != NULL ? date : birth_date, NULL);

  /* The oldest id wins if a merge ever made two dossiers for one person,
   * so every caller picks the same one. */
  stmt = relais_oplog_prepare (vault,
                               "SELECT id FROM person WHERE identity_key = ?1 ORDER BY id LIMIT 1",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    return g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  if (rc != SQLITE_DONE)
    relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
  return NULL;
}

/* NULL first, then bytes: SQLite's order for the BINARY collation (memcmp,
 * which strcmp matches on text without NUL). */
static int
compare_nullable (const char *a,
                  const char *b)
{
  if (a == NULL || b == NULL)
    return (a != NULL) - (b != NULL);
  return strcmp (a, b);
}

typedef struct {
  RelaisPerson *person;
  char         *fold_last;
  char         *fold_first;
} ListRow;

static void
list_row_clear (ListRow *row)
{
  g_clear_pointer (&row->person, relais_person_free);
  g_clear_pointer (&row->fold_last, g_free);
  g_clear_pointer (&row->fold_first, g_free);
}

/* The list order: ORDER BY fold_last, fold_first, birth_date, id. */
static int
compare_list_rows (gconstpointer a,
                   gconstpointer b)
{
  const ListRow *x = a, *y = b;
  int cmp;

  if ((cmp = compare_nullable (x->fold_last, y->fold_last)) != 0 ||
      (cmp = compare_nullable (x->fold_first, y->fold_first)) != 0 ||
      (cmp = compare_nullable (x->person->birth_date, y->person->birth_date)) != 0)
    return cmp;
  return compare_nullable (x->person->id, y->person->id);
}

/* The rows of @rowids (person's rowids), in list order, at most @limit. */
static GPtrArray *
people_in_list_order (RelaisVault  *vault,
                      GArray       *rowids,
                      guint         limit,
                      GError      **error)
{
  g_autoptr(GArray) rows = g_array_sized_new (FALSE, FALSE, sizeof (ListRow), rowids->len);
  g_autoptr(GPtrArray) people = NULL;
  g_auto(RelaisStmt) stmt = NULL;

  g_array_set_clear_func (rows, (GDestroyNotify) list_row_clear);
  stmt = relais_oplog_prepare (vault,
                               "SELECT " PERSON_COLUMNS ", fold_last, fold_first"
                               " FROM person WHERE rowid = ?1",
                               error);
  if (stmt == NULL)
    return NULL;

  for (guint i = 0; i < rowids->len; i++)
    {
      ListRow row;
      int rc;

      sqlite3_bind_int64 (stmt, 1, g_array_index (rowids, gint64, i));
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          row.person = person_from_row (stmt);
          row.fold_last = g_strdup ((const char *) sqlite3_column_text (stmt, 1 + RELAIS_PERSON_N_FIELDS));
          row.fold_first = g_strdup ((const char *) sqlite3_column_text (stmt, 2 + RELAIS_PERSON_N_FIELDS));
          g_array_append_val (rows, row);
          rc = sqlite3_step (stmt);
        }
      sqlite3_reset (stmt);
      if (rc != SQLITE_DONE)
        {
          relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
          return NULL;
        }
    }

  g_array_sort (rows, compare_list_rows);
  if (limit > 0 && rows->len > limit)
    g_array_set_size (rows, limit);

  people = g_ptr_array_new_full (rows->len, (GDestroyNotify) relais_person_free);
  for (guint i = 0; i < rows->len; i++)
    g_ptr_array_add (people, g_steal_pointer (&g_array_index (rows, ListRow, i).person));
  return g_steal_pointer (&people);
}

GPtrArray *
relais_person_search_page (RelaisVault  *vault,
                           const char   *query,
                           guint         offset,
                           guint         limit,
                           GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autoptr(GPtrArray) people = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_person_free);
  g_autofree char *folded = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);

  if (query != NULL)
    folded = relais_fold (query);

  /* Two characters or more: the trigram index (relais-search.c) finds the
   * few rows that can match, among them the first @limit in list order.
   * Both name orders match, so "helene quen" and "quenouillere h" both
   * find Hélène Quenouillère. */
  if (folded != NULL && g_utf8_strlen (folded, -1) >= 2)
    {
      guint end = limit == 0 || limit > G_MAXUINT - offset ? 0 : offset + limit;
      g_autoptr(GArray) rowids = relais_search_candidates (vault, folded, end, error);
      GPtrArray *page;

      if (rowids == NULL)
        return NULL;
      page = people_in_list_order (vault, rowids, end, error);
      if (page != NULL)
        g_ptr_array_remove_range (page, 0, MIN (offset, page->len));
      return page;
    }

  /* One letter matches most rows: in list order (an index), the scan stops
   * at @limit after a few rows.  instr() rather than LIKE, so that % and _
   * typed by a person are plain characters; the same test as the index's. */
  if (folded != NULL && *folded != '\0')
    {
      stmt = relais_oplog_prepare (vault,
                                   "SELECT " PERSON_COLUMNS " FROM person"
                                   " WHERE instr (coalesce (fold_last, '') || ' ' || coalesce (fold_first, ''), ?1) > 0"
                                   "    OR instr (coalesce (fold_first, '') || ' ' || coalesce (fold_last, ''), ?1) > 0"
                                   " ORDER BY fold_last, fold_first, birth_date, id LIMIT ?2 OFFSET ?3",
                                   error);
      if (stmt == NULL)
        return NULL;
      sqlite3_bind_text (stmt, 1, folded, -1, SQLITE_STATIC);
    }
  else
    {
      stmt = relais_oplog_prepare (vault,
                                   "SELECT " PERSON_COLUMNS " FROM person"
                                   " ORDER BY fold_last, fold_first, birth_date, id LIMIT ?2 OFFSET ?3",
                                   error);
      if (stmt == NULL)
        return NULL;
    }
  sqlite3_bind_int64 (stmt, 2, limit == 0 ? -1 : (sqlite3_int64) limit);
  sqlite3_bind_int64 (stmt, 3, (sqlite3_int64) offset);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (people, person_from_row (stmt));
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }

  return g_steal_pointer (&people);
}

GPtrArray *
relais_person_search (RelaisVault  *vault,
                      const char   *query,
                      guint         limit,
                      GError      **error)
{
  return relais_person_search_page (vault, query, 0, limit, error);
}

gboolean
relais_person_count (RelaisVault  *vault,
                     const char   *query,
                     guint        *out_count,
                     GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *folded = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (out_count != NULL, FALSE);

  if (query != NULL)
    folded = relais_fold (query);

  /* The same condition as relais_person_search_page(), so that the count
   * and the pages always agree: through the index from two characters. */
  if (folded != NULL && g_utf8_strlen (folded, -1) >= 2)
    return relais_search_count (vault, folded, out_count, error);
  if (folded != NULL && *folded != '\0')
    {
      stmt = relais_oplog_prepare (vault,
                                   "SELECT count (*) FROM person"
                                   " WHERE instr (coalesce (fold_last, '') || ' ' || coalesce (fold_first, ''), ?1) > 0"
                                   "    OR instr (coalesce (fold_first, '') || ' ' || coalesce (fold_last, ''), ?1) > 0",
                                   error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, folded, -1, SQLITE_STATIC);
    }
  else
    {
      stmt = relais_oplog_prepare (vault, "SELECT count (*) FROM person", error);
      if (stmt == NULL)
        return FALSE;
    }

  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return FALSE;
    }
  *out_count = (guint) MIN (sqlite3_column_int64 (stmt, 0), G_MAXUINT);
  return TRUE;
}

static gboolean
build_person (RelaisVault  *vault,
              JsonBuilder  *builder,
              const char   *id,
              GError      **error)
{
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;

  person = relais_person_get (vault, id, error);
  if (person == NULL)
    return FALSE;
  conflicts = relais_oplog_conflicts (vault, id, error);
  if (conflicts == NULL)
    return FALSE;

  json_builder_begin_object (builder);
  relais_json_add_nullable_string (builder, "id", person->id);
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    relais_json_add_nullable_string (builder, relais_person_fields[i], field_get (person, i));

  /* Every value still in conflict belongs to the person as much as the
   * winning one: access and portability cover them too. */
  json_builder_set_member_name (builder, "conflicts");
  json_builder_begin_array (builder);
  for (guint i = 0; i < conflicts->len; i++)
    {
      RelaisConflict *conflict = g_ptr_array_index (conflicts, i);

      /* Every record of the dossier, not only its identity. */
      json_builder_begin_object (builder);
      relais_json_add_nullable_string (builder, "entity", conflict->entity);
      relais_json_add_nullable_string (builder, "entity_id", conflict->entity_id);
      relais_json_add_nullable_string (builder, "field", conflict->field);
      json_builder_set_member_name (builder, "values");
      json_builder_begin_array (builder);
      for (guint j = 0; j < conflict->values->len; j++)
        {
          RelaisOp *op = g_ptr_array_index (conflict->values, j);

          json_builder_begin_object (builder);
          relais_json_add_nullable_string (builder, "value", op->value);
          relais_json_add_nullable_string (builder, "author", op->author);
          relais_json_add_nullable_string (builder, "device", op->device);
          json_builder_set_member_name (builder, "hlc");
          json_builder_add_int_value (builder, (gint64) op->hlc);
          relais_json_add_nullable_string (builder, "op", op->id);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);

  /* The rest of the dossier: the right of access covers all of it. */
  if (!relais_dossier_build_json (vault, builder, id, error))
    return FALSE;

  json_builder_end_object (builder);
  return TRUE;
}

JsonNode *
relais_person_to_json (RelaisVault  *vault,
                       const char   *id,
                       GError      **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  if (!build_person (vault, builder, id, error))
    return NULL;
  return json_builder_get_root (builder);
}

JsonNode *
relais_vault_export_json (RelaisVault  *vault,
                          GError      **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *exported_at = g_date_time_format_iso8601 (now);
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "format");
  json_builder_add_string_value (builder, "relais-export");
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, 1);
  json_builder_set_member_name (builder, "exported_at");
  json_builder_add_string_value (builder, exported_at);
  json_builder_set_member_name (builder, "dossiers");
  json_builder_begin_array (builder);

  /* A different SQL text from relais_person_search()'s, so build_person()
   * can use the cache while this one is stepping. */
  stmt = relais_oplog_prepare (vault,
                               "SELECT id FROM person ORDER BY fold_last, fold_first, birth_date, id",
                               error);
  if (stmt == NULL)
    return NULL;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      if (!build_person (vault, builder, (const char *) sqlite3_column_text (stmt, 0), error))
        return NULL;
    }
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }

  json_builder_end_array (builder);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}
