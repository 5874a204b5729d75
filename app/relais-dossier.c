#define G_LOG_DOMAIN "relais-dossier"

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <glib/gi18n.h>

#include "relais-dossier.h"
#include "relais-json.h"
#include "relais-oplog.h"

/* The dossier's records.  Writes go through relais_oplog_write_fields();
 * reads come from the projection tables the op log keeps (relais-oplog.c
 * lists their columns, relais-schema.c creates them).  This file only
 * knows what a valid value is and how to read the tables back. */

/* ------------------------------------------------------------------------
 * Fields and their validation
 * ------------------------------------------------------------------------ */

typedef enum {
  VALUE_TEXT,          /* one line, at most 500 characters */
  VALUE_LONG_TEXT,     /* several lines, at most 20,000 characters */
  VALUE_DATE,          /* YYYY-MM-DD */
  VALUE_DATETIME,      /* YYYY-MM-DD HH:MM */
  VALUE_CHOICE,        /* a key of .choices */
  VALUE_CHOICE_SET,    /* keys of .choices, stored space-separated in table order */
  VALUE_FLAG,          /* "1" or nothing */
  VALUE_KM,            /* 0 to 1000 */
  VALUE_ROME,          /* a letter and four digits */
  VALUE_OBJECTIVE,     /* id of an objective of the same dossier */
  VALUE_FIXED,         /* set by the core at creation, never edited */
} ValueKind;

typedef struct {
  const char         *field;
  ValueKind           kind;
  const RelaisChoice *choices;
  gboolean            required;
  const char         *label;   /* N_(): how messages name the field */
} FieldSpec;

typedef struct {
  const char      *entity;
  const FieldSpec *fields;
  guint            n_fields;
} EntitySpec;

static const FieldSpec situation_fields[] = {
  { "right_rsa", VALUE_FLAG, NULL, FALSE, N_("RSA right") },
  { "right_are", VALUE_FLAG, NULL, FALSE, N_("ARE right") },
  { "right_ass", VALUE_FLAG, NULL, FALSE, N_("ASS right") },
  { "right_aah", VALUE_FLAG, NULL, FALSE, N_("AAH right") },
  { "right_rqth", VALUE_FLAG, NULL, FALSE, N_("RQTH recognition") },
  { "education_level", VALUE_CHOICE, relais_education_levels, FALSE, N_("education level") },
  { "work_situation", VALUE_CHOICE, relais_work_situations, FALSE, N_("work situation") },
  { "sharing_informed_on", VALUE_DATE, NULL, FALSE, N_("date the person was informed of data sharing") },
};

static const FieldSpec project_fields[] = {
  { "job_label", VALUE_TEXT, NULL, TRUE, N_("job sought") },
  { "rome_code", VALUE_ROME, NULL, FALSE, N_("ROME code") },
  { "mobility_km", VALUE_KM, NULL, FALSE, N_("mobility radius") },
  { "contract_types", VALUE_CHOICE_SET, relais_contract_types, FALSE, N_("contract types") },
  { "working_time", VALUE_CHOICE, relais_working_times, FALSE, N_("working time") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

static const FieldSpec objective_fields[] = {
  { "theme", VALUE_CHOICE, relais_themes, TRUE, N_("theme") },
  { "text", VALUE_TEXT, NULL, TRUE, N_("text") },
  { "status", VALUE_CHOICE, relais_objective_statuses, TRUE, N_("status") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

static const FieldSpec action_fields[] = {
  { "objective", VALUE_OBJECTIVE, NULL, TRUE, N_("objective") },
  { "text", VALUE_TEXT, NULL, TRUE, N_("text") },
  { "status", VALUE_CHOICE, relais_action_statuses, TRUE, N_("status") },
  { "due", VALUE_DATE, NULL, FALSE, N_("due date") },
  { "carrier", VALUE_TEXT, NULL, FALSE, N_("carrying organisation") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

static const FieldSpec contract_fields[] = {
  { "kind", VALUE_CHOICE, relais_contract_kinds, TRUE, N_("kind of contract") },
  { "signed_on", VALUE_DATE, NULL, FALSE, N_("signature date") },
  { "starts_on", VALUE_DATE, NULL, FALSE, N_("start date") },
  { "ends_on", VALUE_DATE, NULL, FALSE, N_("end date") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

static const FieldSpec appointment_fields[] = {
  { "at", VALUE_DATETIME, NULL, TRUE, N_("date and time") },
  { "with_whom", VALUE_TEXT, NULL, TRUE, N_("with whom") },
  { "place", VALUE_TEXT, NULL, FALSE, N_("place") },
  { "status", VALUE_CHOICE, relais_appointment_statuses, TRUE, N_("status") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

static const FieldSpec note_fields[] = {
  { "text", VALUE_LONG_TEXT, NULL, TRUE, N_("text") },
  { "author", VALUE_FIXED, NULL, TRUE, N_("author") },
  { "written_at", VALUE_FIXED, NULL, TRUE, N_("date written") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

static const FieldSpec orientation_fields[] = {
  { "structure", VALUE_TEXT, NULL, TRUE, N_("structure or service") },
  { "reason", VALUE_LONG_TEXT, NULL, FALSE, N_("reason") },
  { "status", VALUE_CHOICE, relais_orientation_statuses, TRUE, N_("status") },
  { "oriented_on", VALUE_DATE, NULL, TRUE, N_("date of orientation") },
  { "removed", VALUE_FLAG, NULL, FALSE, N_("removed") },
};

#define ENTITY(name, fields) { name, fields, G_N_ELEMENTS (fields) }

/* Every entity relais_record_set() edits; "diagnostic" has its own writer. */
static const EntitySpec entities[] = {
  ENTITY (RELAIS_ENTITY_SITUATION, situation_fields),
  ENTITY (RELAIS_ENTITY_PROJECT, project_fields),
  ENTITY (RELAIS_ENTITY_OBJECTIVE, objective_fields),
  ENTITY (RELAIS_ENTITY_ACTION, action_fields),
  ENTITY (RELAIS_ENTITY_CONTRACT, contract_fields),
  ENTITY (RELAIS_ENTITY_APPOINTMENT, appointment_fields),
  ENTITY (RELAIS_ENTITY_NOTE, note_fields),
  ENTITY (RELAIS_ENTITY_ORIENTATION, orientation_fields),
};

#define TEXT_MAX       500
#define LONG_TEXT_MAX  20000
#define KM_MAX         1000

static const EntitySpec *
find_entity (const char *entity)
{
  for (guint i = 0; i < G_N_ELEMENTS (entities); i++)
    if (g_strcmp0 (entities[i].entity, entity) == 0)
      return &entities[i];
  return NULL;
}

static const FieldSpec *
find_field (const EntitySpec *spec,
            const char       *field)
{
  for (guint i = 0; i < spec->n_fields; i++)
    if (g_strcmp0 (spec->fields[i].field, field) == 0)
      return &spec->fields[i];
  return NULL;
}

static char *
choice_keys (const RelaisChoice *choices)
{
  GString *keys = g_string_new (NULL);

  for (; choices->key != NULL; choices++)
    {
      if (keys->len > 0)
        g_string_append (keys, ", ");
      g_string_append (keys, choices->key);
    }
  return g_string_free (keys, FALSE);
}

static gboolean
invalid (GError    **error,
         const char *format,
         ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError    **error,
         const char *format,
         ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID, message);
  return FALSE;
}

static gboolean
invalid_choice (const char          *field,
                const RelaisChoice  *choices,
                GError             **error)
{
  g_autofree char *keys = choice_keys (choices);

  /* The value is not quoted: it may be anything a person typed. */
  return invalid (error, _("The field “%s” must be one of: %s."), field, keys);
}

static gboolean
parse_date (const char *text,
            GDateYear  *out_year,
            GDateMonth *out_month,
            GDateDay   *out_day)
{
  guint y, m, d;
  char tail;

  if (strlen (text) != 10 || text[4] != '-' || text[7] != '-')
    return FALSE;
  for (guint i = 0; i < 10; i++)
    if (i != 4 && i != 7 && !g_ascii_isdigit (text[i]))
      return FALSE;
  if (sscanf (text, "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3)
    return FALSE;
  if (y < 1900 || y > 2200 || !g_date_valid_dmy (d, m, y))
    return FALSE;
  if (out_year != NULL)
    {
      *out_year = y;
      *out_month = m;
      *out_day = d;
    }
  return TRUE;
}

static gboolean
is_valid_date (const char *text)
{
  return parse_date (text, NULL, NULL, NULL);
}

/* "YYYY-MM-DD HH:MM" (a 'T' is taken for the space); returns it normalised
 * or NULL. */
static char *
normalize_datetime (const char *text)
{
  g_autofree char *date = NULL;
  guint h, min;

  if (strlen (text) != 16 || (text[10] != ' ' && text[10] != 'T') || text[13] != ':')
    return NULL;
  date = g_strndup (text, 10);
  if (!is_valid_date (date))
    return NULL;
  if (!g_ascii_isdigit (text[11]) || !g_ascii_isdigit (text[12]) ||
      !g_ascii_isdigit (text[14]) || !g_ascii_isdigit (text[15]))
    return NULL;
  h = (text[11] - '0') * 10 + (text[12] - '0');
  min = (text[14] - '0') * 10 + (text[15] - '0');
  if (h > 23 || min > 59)
    return NULL;
  return g_strdup_printf ("%s %02u:%02u", date, h, min);
}

static gboolean
text_is_clean (const char *text,
               gboolean    multi_line)
{
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (multi_line && (c == '\n' || c == '\t'))
        continue;
      if (g_unichar_iscntrl (c))
        return FALSE;
    }
  return TRUE;
}

/* Space-separated (or comma-separated) keys of @choices → the same keys,
 * each once, in table order; NULL when empty. */
static gboolean
normalize_choice_set (const char          *text,
                      const RelaisChoice  *choices,
                      char               **out_value)
{
  g_auto(GStrv) keys = g_strsplit_set (text, " ,\t\n", -1);
  GString *value = g_string_new (NULL);

  for (guint i = 0; keys[i] != NULL; i++)
    if (*keys[i] != '\0' && !relais_choice_has (choices, keys[i]))
      {
        g_string_free (value, TRUE);
        return FALSE;
      }
  for (const RelaisChoice *c = choices; c->key != NULL; c++)
    if (g_strv_contains ((const char * const *) keys, c->key))
      {
        if (value->len > 0)
          g_string_append_c (value, ' ');
        g_string_append (value, c->key);
      }
  if (value->len == 0)
    {
      g_string_free (value, TRUE);
      *out_value = NULL;
    }
  else
    *out_value = g_string_free (value, FALSE);
  return TRUE;
}

/* Validates @value for @spec and returns in *@out_value what to store
 * (NULL: clear).  Messages name the field, never the value. */
static gboolean
normalize_value (const FieldSpec  *spec,
                 const char       *value,
                 char            **out_value,
                 GError          **error)
{
  g_autofree char *text = NULL;

  *out_value = NULL;

  if (value != NULL && !g_utf8_validate (value, -1, NULL))
    return invalid (error, _("The field “%s” is not valid text."), _(spec->label));
  if (value != NULL)
    text = g_strstrip (g_strdup (value));

  if (text == NULL || *text == '\0')
    {
      if (spec->required)
        return invalid (error, _("The field “%s” is required."), _(spec->label));
      return TRUE;
    }

  switch (spec->kind)
    {
    case VALUE_TEXT:
      if (g_utf8_strlen (text, -1) > TEXT_MAX || !text_is_clean (text, FALSE))
        return invalid (error, _("The field “%s” must be one line of at most %d characters."),
                        _(spec->label), TEXT_MAX);
      break;
    case VALUE_LONG_TEXT:
      if (g_utf8_strlen (text, -1) > LONG_TEXT_MAX || !text_is_clean (text, TRUE))
        return invalid (error, _("The field “%s” must be text of at most %d characters."),
                        _(spec->label), LONG_TEXT_MAX);
      break;
    case VALUE_DATE:
      if (!is_valid_date (text))
        return invalid (error, _("The field “%s” is not a valid date: write it as YYYY-MM-DD."),
                        _(spec->label));
      break;
    case VALUE_DATETIME:
      {
        char *normalized = normalize_datetime (text);

        if (normalized == NULL)
          return invalid (error, _("The field “%s” is not a valid date and time: write it as YYYY-MM-DD HH:MM."),
                          _(spec->label));
        g_free (text);
        text = normalized;
      }
      break;
    case VALUE_CHOICE:
      if (!relais_choice_has (spec->choices, text))
        return invalid_choice (_(spec->label), spec->choices, error);
      break;
    case VALUE_CHOICE_SET:
      {
        char *normalized = NULL;

        if (!normalize_choice_set (text, spec->choices, &normalized))
          return invalid_choice (_(spec->label), spec->choices, error);
        g_free (text);
        text = normalized;
      }
      break;
    case VALUE_FLAG:
      if (strcmp (text, "1") != 0)
        return invalid (error, _("The field “%s” is either 1 or empty."), _(spec->label));
      break;
    case VALUE_KM:
      {
        guint64 km = 0;

        if (!g_ascii_string_to_unsigned (text, 10, 0, KM_MAX, &km, NULL))
          return invalid (error, _("The field “%s” must be a whole number of kilometres from 0 to %d."),
                          _(spec->label), KM_MAX);
        g_free (text);
        text = g_strdup_printf ("%" G_GUINT64_FORMAT, km);
      }
      break;
    case VALUE_ROME:
      if (strlen (text) != 5 || !g_ascii_isalpha (text[0]) ||
          !g_ascii_isdigit (text[1]) || !g_ascii_isdigit (text[2]) ||
          !g_ascii_isdigit (text[3]) || !g_ascii_isdigit (text[4]))
        return invalid (error, _("The field “%s” must be a ROME code: a letter and four digits, as K2204."),
                        _(spec->label));
      text[0] = g_ascii_toupper (text[0]);
      break;
    case VALUE_OBJECTIVE:
      if (strpbrk (text, " \t\r\n") != NULL)
        return invalid (error, _("The field “%s” must be the id of an objective."), _(spec->label));
      break;
    case VALUE_FIXED:
      break;
    default:
      g_assert_not_reached ();
    }

  *out_value = g_steal_pointer (&text);
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Storage helpers
 * ------------------------------------------------------------------------ */

static char *
column_dup (sqlite3_stmt *stmt,
            int           col)
{
  return g_strdup ((const char *) sqlite3_column_text (stmt, col));
}

static char **
column_keys (sqlite3_stmt *stmt,
             int           col)
{
  const char *text = (const char *) sqlite3_column_text (stmt, col);

  if (text == NULL || *text == '\0')
    return g_new0 (char *, 1);
  return g_strsplit (text, " ", -1);
}

static gboolean
read_failed (RelaisVault  *vault,
             int           rc,
             GError      **error)
{
  relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
  return FALSE;
}

static gboolean
begin (RelaisVault  *vault,
       gboolean     *out_own,
       GError      **error)
{
  *out_own = sqlite3_get_autocommit (relais_vault_get_db (vault));
  if (*out_own)
    return relais_vault_begin (vault, error);
  return TRUE;
}

/* Ends what begin() started: commits on success, rolls back on failure. */
static gboolean
end (RelaisVault  *vault,
     gboolean      own,
     gboolean      ok,
     GError      **error)
{
  if (!own)
    return ok;
  if (!ok)
    {
      relais_vault_rollback (vault);
      return FALSE;
    }
  return relais_vault_commit (vault, error);
}

static gboolean
dossier_exists (RelaisVault  *vault,
                const char   *dossier,
                GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault, "SELECT 1 FROM person WHERE id = ?1", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    return TRUE;
  if (rc != SQLITE_DONE)
    return read_failed (vault, rc, error);
  g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND,
               _("No dossier with id %s."), dossier);
  return FALSE;
}

/* Whole sentences, so that translators can make each agree with its
 * noun. */
static void
set_not_found (GError     **error,
               const char  *entity,
               const char  *id)
{
  const int code = RELAIS_VAULT_ERROR_NOT_FOUND;

  if (strcmp (entity, RELAIS_ENTITY_PROJECT) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No professional project with id %s."), id);
  else if (strcmp (entity, RELAIS_ENTITY_OBJECTIVE) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No objective with id %s."), id);
  else if (strcmp (entity, RELAIS_ENTITY_ACTION) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No action with id %s."), id);
  else if (strcmp (entity, RELAIS_ENTITY_CONTRACT) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No contract with id %s."), id);
  else if (strcmp (entity, RELAIS_ENTITY_APPOINTMENT) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No appointment with id %s."), id);
  else if (strcmp (entity, RELAIS_ENTITY_NOTE) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No note with id %s."), id);
  else if (strcmp (entity, RELAIS_ENTITY_ORIENTATION) == 0)
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No orientation with id %s."), id);
  else
    g_set_error (error, RELAIS_VAULT_ERROR, code, _("No record with id %s."), id);
}

/* The dossier of record @id of @entity, or NULL with NOT_FOUND. */
static char *
record_dossier (RelaisVault  *vault,
                const char   *entity,
                const char   *id,
                GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *sql = NULL;
  int rc;

  /* @entity is one of ours (find_entity()), never input. */
  sql = g_strdup_printf ("SELECT dossier FROM %s WHERE id = ?1", entity);
  stmt = relais_oplog_prepare (vault, sql, error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW && sqlite3_column_type (stmt, 0) != SQLITE_NULL)
    return column_dup (stmt, 0);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      read_failed (vault, rc, error);
      return NULL;
    }
  set_not_found (error, entity, id);
  return NULL;
}

/* Checks the cross-record fields of a value about to be written. */
static gboolean
check_reference (RelaisVault      *vault,
                 const FieldSpec  *spec,
                 const char       *dossier,
                 const char       *value,
                 GError          **error)
{
  g_autofree char *objective_dossier = NULL;

  if (spec->kind != VALUE_OBJECTIVE || value == NULL)
    return TRUE;
  objective_dossier = record_dossier (vault, RELAIS_ENTITY_OBJECTIVE, value, error);
  if (objective_dossier == NULL)
    return FALSE;
  if (strcmp (objective_dossier, dossier) != 0)
    return invalid (error, _("The objective %s belongs to another dossier."), value);
  return TRUE;
}

/* Creates a record of @spec in @dossier from @values (one per field of
 * @spec, in its order; NULL for none).  Returns its id. */
static char *
record_add (RelaisVault        *vault,
            const EntitySpec   *spec,
            const char         *dossier,
            const char * const *values,
            GError            **error)
{
  g_autofree char *id = NULL;
  g_autoptr(GPtrArray) normalized = g_ptr_array_new_with_free_func (g_free);
  const char *fields[32];
  gboolean own;
  gboolean ok;

  g_assert (spec->n_fields <= G_N_ELEMENTS (fields));

  for (guint i = 0; i < spec->n_fields; i++)
    {
      char *value = NULL;

      if (!normalize_value (&spec->fields[i], values[i], &value, error))
        return NULL;
      g_ptr_array_add (normalized, value);
      fields[i] = spec->fields[i].field;
    }

  if (!begin (vault, &own, error))
    return NULL;
  ok = dossier_exists (vault, dossier, error);
  for (guint i = 0; ok && i < spec->n_fields; i++)
    ok = check_reference (vault, &spec->fields[i], dossier,
                          g_ptr_array_index (normalized, i), error);
  if (ok)
    {
      id = relais_oplog_new_id ();
      ok = relais_oplog_write_fields (vault, dossier, spec->entity, id, TRUE,
                                      spec->n_fields, fields,
                                      (const char * const *) normalized->pdata, error);
    }
  if (!end (vault, own, ok, error))
    return NULL;
  return g_steal_pointer (&id);
}

gboolean
relais_record_set (RelaisVault  *vault,
                   const char   *entity,
                   const char   *id,
                   const char   *field,
                   const char   *value,
                   GError      **error)
{
  const EntitySpec *spec;
  const FieldSpec *field_spec;
  g_autofree char *normalized = NULL;
  g_autofree char *dossier = NULL;
  gboolean own;
  gboolean ok;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (entity != NULL, FALSE);
  g_return_val_if_fail (id != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);

  spec = find_entity (entity);
  if (spec == NULL)
    return invalid (error, _("This kind of record cannot be edited here."));
  field_spec = find_field (spec, field);
  if (field_spec == NULL || field_spec->kind == VALUE_FIXED)
    return invalid (error, _("The field “%s” does not exist or cannot be edited."), field);
  if (!normalize_value (field_spec, value, &normalized, error))
    return FALSE;

  if (!begin (vault, &own, error))
    return FALSE;
  /* The situation record is the dossier itself: its id is the dossier's,
   * and its row appears with its first field. */
  if (strcmp (entity, RELAIS_ENTITY_SITUATION) == 0)
    {
      ok = dossier_exists (vault, id, error);
      dossier = g_strdup (id);
    }
  else
    {
      dossier = record_dossier (vault, entity, id, error);
      ok = dossier != NULL;
    }
  if (ok)
    ok = check_reference (vault, field_spec, dossier, normalized, error);
  if (ok)
    ok = relais_oplog_write (vault, dossier, entity, id, field, normalized, error);
  return end (vault, own, ok, error);
}

gboolean
relais_record_remove (RelaisVault  *vault,
                      const char   *entity,
                      const char   *id,
                      GError      **error)
{
  return relais_record_set (vault, entity, id, "removed", "1", error);
}

gboolean
relais_record_restore (RelaisVault  *vault,
                       const char   *entity,
                       const char   *id,
                       GError      **error)
{
  return relais_record_set (vault, entity, id, "removed", NULL, error);
}

static char *
local_today (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();

  return g_date_time_format (now, "%Y-%m-%d");
}

static char *
utc_now_iso (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

  return g_date_time_format (now, "%Y-%m-%dT%H:%M:%SZ");
}

/* Runs @stmt (bound) and adds one record per row with @from_row. */
static GPtrArray *
collect (RelaisVault     *vault,
         sqlite3_stmt    *stmt,
         gpointer       (*from_row) (sqlite3_stmt *stmt),
         GDestroyNotify   free_func,
         GError         **error)
{
  g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func (free_func);
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (records, from_row (stmt));
  if (rc != SQLITE_DONE)
    {
      read_failed (vault, rc, error);
      return NULL;
    }
  return g_steal_pointer (&records);
}

/* ------------------------------------------------------------------------
 * Situation
 * ------------------------------------------------------------------------ */

void
relais_situation_free (RelaisSituation *situation)
{
  if (situation == NULL)
    return;
  g_free (situation->dossier);
  g_strfreev (situation->rights);
  g_free (situation->education_level);
  g_free (situation->work_situation);
  g_free (situation->sharing_informed_on);
  g_free (situation);
}

RelaisSituation *
relais_situation_get (RelaisVault  *vault,
                      const char   *dossier,
                      GError      **error)
{
  g_autoptr(RelaisSituation) situation = g_new0 (RelaisSituation, 1);
  g_autoptr(GPtrArray) rights = g_ptr_array_new_with_free_func (g_free);
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  if (!dossier_exists (vault, dossier, error))
    return NULL;

  situation->dossier = g_strdup (dossier);
  stmt = relais_oplog_prepare (vault,
                               "SELECT right_rsa, right_are, right_ass, right_aah, right_rqth,"
                               " education_level, work_situation, sharing_informed_on"
                               " FROM situation WHERE id = ?1",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      /* The columns are in the order of relais_rights. */
      for (guint i = 0; i < 5; i++)
        if (sqlite3_column_type (stmt, i) != SQLITE_NULL)
          g_ptr_array_add (rights, g_strdup (relais_rights[i].key));
      situation->education_level = column_dup (stmt, 5);
      situation->work_situation = column_dup (stmt, 6);
      situation->sharing_informed_on = column_dup (stmt, 7);
    }
  else if (rc != SQLITE_DONE)
    {
      read_failed (vault, rc, error);
      return NULL;
    }
  g_ptr_array_add (rights, NULL);
  situation->rights = (char **) g_ptr_array_free (g_steal_pointer (&rights), FALSE);
  return g_steal_pointer (&situation);
}

gboolean
relais_situation_edit (RelaisVault            *vault,
                       const char             *dossier,
                       const RelaisSituation  *changes,
                       GError                **error)
{
  const char *fields[8];
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
  guint n = 0;
  gboolean own;
  gboolean ok;
  const char *plain[3] = { changes->education_level, changes->work_situation,
                           changes->sharing_informed_on };

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (dossier != NULL, FALSE);
  g_return_val_if_fail (changes != NULL, FALSE);

  if (changes->rights != NULL)
    {
      for (guint i = 0; changes->rights[i] != NULL; i++)
        if (!relais_choice_has (relais_rights, changes->rights[i]))
          return invalid_choice (_("rights"), relais_rights, error);
      for (guint i = 0; i < 5; i++)
        {
          fields[n++] = situation_fields[i].field;
          g_ptr_array_add (values,
                           g_strv_contains ((const char * const *) changes->rights,
                                            relais_rights[i].key) ? g_strdup ("1") : NULL);
        }
    }
  for (guint i = 0; i < G_N_ELEMENTS (plain); i++)
    {
      char *value = NULL;

      if (plain[i] == NULL)
        continue;
      if (!normalize_value (&situation_fields[5 + i], plain[i], &value, error))
        return FALSE;
      fields[n++] = situation_fields[5 + i].field;
      g_ptr_array_add (values, value);
    }

  if (!begin (vault, &own, error))
    return FALSE;
  ok = dossier_exists (vault, dossier, error) &&
       relais_oplog_write_fields (vault, dossier, RELAIS_ENTITY_SITUATION, dossier, FALSE,
                                  n, fields, (const char * const *) values->pdata, error);
  return end (vault, own, ok, error);
}

/* ------------------------------------------------------------------------
 * Diagnostic
 * ------------------------------------------------------------------------ */

static const FieldSpec comment_spec = { "comment", VALUE_LONG_TEXT, NULL, FALSE, N_("comment") };

void
relais_diagnostic_free (RelaisDiagnostic *diagnostic)
{
  if (diagnostic == NULL)
    return;
  g_free (diagnostic->dossier);
  g_free (diagnostic->theme);
  g_free (diagnostic->level);
  g_strfreev (diagnostic->situations);
  g_free (diagnostic->comment);
  g_free (diagnostic->author);
  g_clear_pointer (&diagnostic->changed_at, g_date_time_unref);
  g_free (diagnostic);
}

static char *
diagnostic_id (const char *dossier,
               const char *theme)
{
  return g_strconcat (dossier, ":", theme, NULL);
}

static gboolean
check_theme (const char  *theme,
             GError     **error)
{
  if (!relais_choice_has (relais_themes, theme))
    return invalid_choice (_("theme"), relais_themes, error);
  return TRUE;
}

/* The author and clock of the latest winning value of the record's fields:
 * who signed the assessment as it reads now, and when. */
static gboolean
diagnostic_signature (RelaisVault  *vault,
                      const char   *id,
                      char        **out_author,
                      guint64      *out_hlc,
                      GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT author, hlc FROM op"
                               " WHERE entity = 'diagnostic' AND entity_id = ?1 AND head"
                               " ORDER BY hlc DESC LIMIT 1",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      *out_author = column_dup (stmt, 0);
      *out_hlc = (guint64) sqlite3_column_int64 (stmt, 1);
      return TRUE;
    }
  if (rc != SQLITE_DONE)
    return read_failed (vault, rc, error);
  *out_author = NULL;
  *out_hlc = 0;
  return TRUE;
}

static gboolean
diagnostic_in_conflict (RelaisVault  *vault,
                        const char   *id,
                        gboolean     *out_conflict,
                        GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  stmt = relais_oplog_prepare (vault,
                               "SELECT 1 FROM conflict"
                               " WHERE entity = 'diagnostic' AND entity_id = ?1 LIMIT 1",
                               error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return read_failed (vault, rc, error);
  *out_conflict = rc == SQLITE_ROW;
  return TRUE;
}

/* Without checking that the dossier exists (the callers have). */
static RelaisDiagnostic *
diagnostic_read (RelaisVault  *vault,
                 const char   *dossier,
                 const char   *theme,
                 GError      **error)
{
  g_autoptr(RelaisDiagnostic) diagnostic = g_new0 (RelaisDiagnostic, 1);
  g_autofree char *id = diagnostic_id (dossier, theme);
  g_auto(RelaisStmt) stmt = NULL;
  guint64 hlc = 0;
  int rc;

  diagnostic->dossier = g_strdup (dossier);
  diagnostic->theme = g_strdup (theme);

  stmt = relais_oplog_prepare (vault,
                               "SELECT level, situations, comment FROM diagnostic WHERE id = ?1",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      diagnostic->level = column_dup (stmt, 0);
      diagnostic->situations = column_keys (stmt, 1);
      diagnostic->comment = column_dup (stmt, 2);
    }
  else if (rc == SQLITE_DONE)
    diagnostic->situations = g_new0 (char *, 1);
  else
    {
      read_failed (vault, rc, error);
      return NULL;
    }
  relais_stmt_release (g_steal_pointer (&stmt));

  if (rc == SQLITE_ROW)
    {
      if (!diagnostic_signature (vault, id, &diagnostic->author, &hlc, error) ||
          !diagnostic_in_conflict (vault, id, &diagnostic->conflict, error))
        return NULL;
      if (hlc != 0)
        diagnostic->changed_at = relais_hlc_to_date_time (hlc);
    }
  return g_steal_pointer (&diagnostic);
}

gboolean
relais_diagnostic_set (RelaisVault         *vault,
                       const char          *dossier,
                       const char          *theme,
                       const char          *level,
                       const char * const  *situations,
                       const char          *comment,
                       GError             **error)
{
  static const char * const all_fields[] = { "level", "situations", "comment" };
  g_autoptr(RelaisDiagnostic) current = NULL;
  g_autofree char *id = NULL;
  g_autofree char *situation_value = NULL;
  g_autofree char *comment_value = NULL;
  const char *fields[3];
  const char *values[3];
  guint n = 0;
  gboolean own;
  gboolean ok;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (dossier != NULL, FALSE);

  if (!check_theme (theme, error))
    return FALSE;
  if (!relais_choice_has (relais_diagnostic_levels, level))
    return invalid_choice (_("level"), relais_diagnostic_levels, error);
  if (situations != NULL)
    {
      const RelaisChoice *choices = relais_theme_situations (theme);
      g_autofree char *joined = g_strjoinv (" ", (char **) situations);

      for (guint i = 0; situations[i] != NULL; i++)
        if (strpbrk (situations[i], " ,\t\n") != NULL ||
            !relais_choice_has (choices, situations[i]))
          return invalid_choice (_("situations"), choices, error);
      if (!normalize_choice_set (joined, choices, &situation_value))
        return invalid_choice (_("situations"), choices, error);
    }
  if (comment != NULL && !normalize_value (&comment_spec, comment, &comment_value, error))
    return FALSE;

  if (!begin (vault, &own, error))
    return FALSE;
  ok = dossier_exists (vault, dossier, error);
  if (ok)
    {
      id = diagnostic_id (dossier, theme);
      current = diagnostic_read (vault, dossier, theme, error);
      ok = current != NULL;
    }
  if (ok)
    {
      g_autofree char *current_situations = g_strjoinv (" ", current->situations);

      /* Every field the person confirmed is written when anything changed,
       * so the assessment is signed as a whole.  write_fields() skips the
       * values that would not change, except while in conflict. */
      if (g_strcmp0 (current->level, level) != 0 ||
          (situations != NULL &&
           g_strcmp0 (*current_situations ? current_situations : NULL, situation_value) != 0) ||
          (comment != NULL && g_strcmp0 (current->comment, comment_value) != 0) ||
          current->conflict)
        {
          fields[n] = all_fields[0];
          values[n++] = level;
          if (situations != NULL)
            {
              fields[n] = all_fields[1];
              values[n++] = situation_value;
            }
          if (comment != NULL)
            {
              fields[n] = all_fields[2];
              values[n++] = comment_value;
            }
          ok = relais_oplog_write_fields (vault, dossier, RELAIS_ENTITY_DIAGNOSTIC, id, FALSE,
                                          n, fields, values, error);
        }
    }
  return end (vault, own, ok, error);
}

RelaisDiagnostic *
relais_diagnostic_get (RelaisVault  *vault,
                       const char   *dossier,
                       const char   *theme,
                       GError      **error)
{
  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  if (!check_theme (theme, error) || !dossier_exists (vault, dossier, error))
    return NULL;
  return diagnostic_read (vault, dossier, theme, error);
}

GPtrArray *
relais_diagnostic_list (RelaisVault  *vault,
                        const char   *dossier,
                        GError      **error)
{
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_diagnostic_free);

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  if (!dossier_exists (vault, dossier, error))
    return NULL;
  for (const RelaisChoice *theme = relais_themes; theme->key != NULL; theme++)
    {
      RelaisDiagnostic *diagnostic = diagnostic_read (vault, dossier, theme->key, error);

      if (diagnostic == NULL)
        return NULL;
      g_ptr_array_add (list, diagnostic);
    }
  return g_steal_pointer (&list);
}

static RelaisDiagnostic *
diagnostic_snapshot (const char *dossier,
                     const char *theme,
                     const char *state[3],
                     const char *author,
                     guint64     hlc)
{
  RelaisDiagnostic *diagnostic = g_new0 (RelaisDiagnostic, 1);

  diagnostic->dossier = g_strdup (dossier);
  diagnostic->theme = g_strdup (theme);
  diagnostic->level = g_strdup (state[0]);
  diagnostic->situations = state[1] != NULL && *state[1] != '\0'
                           ? g_strsplit (state[1], " ", -1) : g_new0 (char *, 1);
  diagnostic->comment = g_strdup (state[2]);
  diagnostic->author = g_strdup (author);
  diagnostic->changed_at = relais_hlc_to_date_time (hlc);
  return diagnostic;
}

GPtrArray *
relais_diagnostic_history (RelaisVault  *vault,
                           const char   *dossier,
                           const char   *theme,
                           GError      **error)
{
  static const char * const fields[] = { "level", "situations", "comment" };
  g_autoptr(GPtrArray) history = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_diagnostic_free);
  g_autoptr(GPtrArray) ops = NULL;
  g_autofree char *id = NULL;
  const char *state[3] = { NULL, NULL, NULL };
  const RelaisOp *first = NULL;   /* first op of the change being read */
  const RelaisOp *last = NULL;
  guint seen = 0;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  if (!check_theme (theme, error) || !dossier_exists (vault, dossier, error))
    return NULL;

  id = diagnostic_id (dossier, theme);
  ops = relais_oplog_history (vault, RELAIS_ENTITY_DIAGNOSTIC, id, NULL, error);
  if (ops == NULL)
    return NULL;

  /* One relais_diagnostic_set() writes its fields one after the other on
   * one device: a run of ops of one device and author, each field at most
   * once, is one signed assessment.  Replaying them in clock order gives
   * the diagnostic as it read after each. */
  for (guint i = 0; i < ops->len; i++)
    {
      const RelaisOp *op = g_ptr_array_index (ops, i);
      guint bit = 0;

      for (guint f = 0; f < G_N_ELEMENTS (fields); f++)
        if (strcmp (op->field, fields[f]) == 0)
          bit = 1u << f;
      if (bit == 0)
        continue;   /* a field of a newer version */

      if (first != NULL &&
          (strcmp (op->device, first->device) != 0 ||
           strcmp (op->author, first->author) != 0 ||
           (seen & bit) != 0))
        {
          g_ptr_array_add (history, diagnostic_snapshot (dossier, theme, state,
                                                         last->author, last->hlc));
          first = NULL;
          seen = 0;
        }
      if (first == NULL)
        first = op;
      last = op;
      seen |= bit;
      state[g_bit_nth_lsf (bit, -1)] = op->value;
    }
  if (first != NULL)
    g_ptr_array_add (history, diagnostic_snapshot (dossier, theme, state,
                                                   last->author, last->hlc));
  return g_steal_pointer (&history);
}

/* ------------------------------------------------------------------------
 * Professional projects
 * ------------------------------------------------------------------------ */

void
relais_project_free (RelaisProject *project)
{
  if (project == NULL)
    return;
  g_free (project->id);
  g_free (project->dossier);
  g_free (project->job_label);
  g_free (project->rome_code);
  g_strfreev (project->contract_types);
  g_free (project->working_time);
  g_free (project);
}

char *
relais_project_add (RelaisVault          *vault,
                    const char           *dossier,
                    const RelaisProject  *project,
                    GError              **error)
{
  g_autofree char *km = NULL;
  g_autofree char *types = NULL;
  const char *values[G_N_ELEMENTS (project_fields)] = { NULL, };

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);
  g_return_val_if_fail (project != NULL, NULL);

  if (project->mobility_km >= 0)
    km = g_strdup_printf ("%d", project->mobility_km);
  else if (project->mobility_km != -1)
    {
      invalid (error, _("The field “%s” must be a whole number of kilometres from 0 to %d."),
               _("mobility radius"), KM_MAX);
      return NULL;
    }
  if (project->contract_types != NULL)
    types = g_strjoinv (" ", project->contract_types);

  values[0] = project->job_label;
  values[1] = project->rome_code;
  values[2] = km;
  values[3] = types;
  values[4] = project->working_time;
  return record_add (vault, find_entity (RELAIS_ENTITY_PROJECT), dossier, values, error);
}

static gpointer
project_from_row (sqlite3_stmt *stmt)
{
  RelaisProject *project = g_new0 (RelaisProject, 1);
  guint64 km = 0;

  project->id = column_dup (stmt, 0);
  project->dossier = column_dup (stmt, 1);
  project->job_label = column_dup (stmt, 2);
  project->rome_code = column_dup (stmt, 3);
  project->mobility_km = -1;
  if (sqlite3_column_text (stmt, 4) != NULL &&
      g_ascii_string_to_unsigned ((const char *) sqlite3_column_text (stmt, 4), 10, 0, KM_MAX, &km, NULL))
    project->mobility_km = (int) km;
  project->contract_types = column_keys (stmt, 5);
  project->working_time = column_dup (stmt, 6);
  return project;
}

GPtrArray *
relais_project_list (RelaisVault  *vault,
                     const char   *dossier,
                     GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, job_label, rome_code, mobility_km, contract_types,"
                               " working_time FROM project"
                               " WHERE dossier = ?1 AND removed IS NULL ORDER BY id",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  return collect (vault, stmt, project_from_row, (GDestroyNotify) relais_project_free, error);
}

/* ------------------------------------------------------------------------
 * Plan
 * ------------------------------------------------------------------------ */

void
relais_objective_free (RelaisObjective *objective)
{
  if (objective == NULL)
    return;
  g_free (objective->id);
  g_free (objective->dossier);
  g_free (objective->theme);
  g_free (objective->text);
  g_free (objective->status);
  g_free (objective);
}

void
relais_action_free (RelaisAction *action)
{
  if (action == NULL)
    return;
  g_free (action->id);
  g_free (action->dossier);
  g_free (action->objective);
  g_free (action->text);
  g_free (action->status);
  g_free (action->due);
  g_free (action->carrier);
  g_free (action);
}

char *
relais_objective_add (RelaisVault  *vault,
                      const char   *dossier,
                      const char   *theme,
                      const char   *text,
                      GError      **error)
{
  const char *values[] = { theme, text, "en-cours", NULL };

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  G_STATIC_ASSERT (G_N_ELEMENTS (values) == G_N_ELEMENTS (objective_fields));
  return record_add (vault, find_entity (RELAIS_ENTITY_OBJECTIVE), dossier, values, error);
}

char *
relais_action_add (RelaisVault  *vault,
                   const char   *objective,
                   const char   *text,
                   const char   *due,
                   const char   *carrier,
                   GError      **error)
{
  const char *values[] = { objective, text, "planifiee", due, carrier, NULL };
  g_autofree char *dossier = NULL;
  gboolean own;
  char *id;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (objective != NULL, NULL);

  G_STATIC_ASSERT (G_N_ELEMENTS (values) == G_N_ELEMENTS (action_fields));
  if (!begin (vault, &own, error))
    return NULL;
  dossier = record_dossier (vault, RELAIS_ENTITY_OBJECTIVE, objective, error);
  id = dossier != NULL
       ? record_add (vault, find_entity (RELAIS_ENTITY_ACTION), dossier, values, error)
       : NULL;
  if (!end (vault, own, id != NULL, error))
    g_clear_pointer (&id, g_free);
  return id;
}

gboolean
relais_plan_set_status (RelaisVault  *vault,
                        const char   *id,
                        const char   *status,
                        GError      **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *dossier = NULL;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (id != NULL, FALSE);

  dossier = record_dossier (vault, RELAIS_ENTITY_OBJECTIVE, id, &local_error);
  if (dossier != NULL)
    return relais_record_set (vault, RELAIS_ENTITY_OBJECTIVE, id, "status", status, error);
  if (!g_error_matches (local_error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  g_clear_error (&local_error);

  dossier = record_dossier (vault, RELAIS_ENTITY_ACTION, id, &local_error);
  if (dossier != NULL)
    return relais_record_set (vault, RELAIS_ENTITY_ACTION, id, "status", status, error);
  if (g_error_matches (local_error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND))
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NOT_FOUND,
                   _("No objective or action with id %s."), id);
      return FALSE;
    }
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static gpointer
objective_from_row (sqlite3_stmt *stmt)
{
  RelaisObjective *objective = g_new0 (RelaisObjective, 1);

  objective->id = column_dup (stmt, 0);
  objective->dossier = column_dup (stmt, 1);
  objective->theme = column_dup (stmt, 2);
  objective->text = column_dup (stmt, 3);
  objective->status = column_dup (stmt, 4);
  return objective;
}

static int
theme_index (const char *theme)
{
  for (int i = 0; relais_themes[i].key != NULL; i++)
    if (g_strcmp0 (relais_themes[i].key, theme) == 0)
      return i;
  return G_MAXINT;
}

static int
objective_compare (gconstpointer a,
                   gconstpointer b)
{
  const RelaisObjective *oa = *(RelaisObjective * const *) a;
  const RelaisObjective *ob = *(RelaisObjective * const *) b;
  int ta = theme_index (oa->theme);
  int tb = theme_index (ob->theme);

  if (ta != tb)
    return ta < tb ? -1 : 1;
  return g_strcmp0 (oa->id, ob->id);
}

GPtrArray *
relais_objective_list (RelaisVault  *vault,
                       const char   *dossier,
                       GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  GPtrArray *list;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, theme, text, status FROM objective"
                               " WHERE dossier = ?1 AND removed IS NULL",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  list = collect (vault, stmt, objective_from_row, (GDestroyNotify) relais_objective_free, error);
  if (list != NULL)
    g_ptr_array_sort (list, objective_compare);
  return list;
}

static gboolean
status_is_open (const char *status)
{
  return g_strcmp0 (status, "planifiee") == 0 || g_strcmp0 (status, "en-cours") == 0;
}

static gpointer
action_from_row (sqlite3_stmt *stmt)
{
  RelaisAction *action = g_new0 (RelaisAction, 1);

  action->id = column_dup (stmt, 0);
  action->dossier = column_dup (stmt, 1);
  action->objective = column_dup (stmt, 2);
  action->text = column_dup (stmt, 3);
  action->status = column_dup (stmt, 4);
  action->due = column_dup (stmt, 5);
  action->carrier = column_dup (stmt, 6);
  return action;
}

static GPtrArray *
action_list (RelaisVault  *vault,
             const char   *dossier,
             const char   *today,
             gboolean      open_only,
             GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *local = NULL;
  GPtrArray *list;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  if (today == NULL)
    today = local = local_today ();
  else if (!is_valid_date (today))
    {
      invalid (error, _("The day is not a valid date: write it as YYYY-MM-DD."));
      return NULL;
    }

  if (open_only)
    stmt = relais_oplog_prepare (vault,
                                 "SELECT id, dossier, objective, text, status, due, carrier FROM action"
                                 " WHERE dossier = ?1 AND removed IS NULL"
                                 "   AND status IN ('planifiee', 'en-cours')"
                                 " ORDER BY due IS NULL, due, id",
                                 error);
  else
    stmt = relais_oplog_prepare (vault,
                                 "SELECT id, dossier, objective, text, status, due, carrier FROM action"
                                 " WHERE dossier = ?1 AND removed IS NULL"
                                 " ORDER BY due IS NULL, due, id",
                                 error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  list = collect (vault, stmt, action_from_row, (GDestroyNotify) relais_action_free, error);
  for (guint i = 0; list != NULL && i < list->len; i++)
    {
      RelaisAction *action = g_ptr_array_index (list, i);

      action->late = status_is_open (action->status) && action->due != NULL &&
                     strcmp (action->due, today) < 0;
    }
  return list;
}

GPtrArray *
relais_action_list (RelaisVault  *vault,
                    const char   *dossier,
                    const char   *today,
                    GError      **error)
{
  return action_list (vault, dossier, today, FALSE, error);
}

GPtrArray *
relais_action_list_open (RelaisVault  *vault,
                         const char   *dossier,
                         const char   *today,
                         GError      **error)
{
  /* By due date, so the late ones come first. */
  return action_list (vault, dossier, today, TRUE, error);
}

/* ------------------------------------------------------------------------
 * Contracts
 * ------------------------------------------------------------------------ */

void
relais_contract_free (RelaisContract *contract)
{
  if (contract == NULL)
    return;
  g_free (contract->id);
  g_free (contract->dossier);
  g_free (contract->kind);
  g_free (contract->signed_on);
  g_free (contract->starts_on);
  g_free (contract->ends_on);
  g_free (contract);
}

char *
relais_contract_add (RelaisVault           *vault,
                     const char            *dossier,
                     const RelaisContract  *contract,
                     GError               **error)
{
  const char *values[G_N_ELEMENTS (contract_fields)] = { NULL, };

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);
  g_return_val_if_fail (contract != NULL, NULL);

  values[0] = contract->kind;
  values[1] = contract->signed_on;
  values[2] = contract->starts_on;
  values[3] = contract->ends_on;
  if (contract->starts_on != NULL && contract->ends_on != NULL &&
      is_valid_date (contract->starts_on) && is_valid_date (contract->ends_on) &&
      strcmp (contract->ends_on, contract->starts_on) < 0)
    {
      invalid (error, _("The contract cannot end before it starts."));
      return NULL;
    }
  return record_add (vault, find_entity (RELAIS_ENTITY_CONTRACT), dossier, values, error);
}

static gpointer
contract_from_row (sqlite3_stmt *stmt)
{
  RelaisContract *contract = g_new0 (RelaisContract, 1);

  contract->id = column_dup (stmt, 0);
  contract->dossier = column_dup (stmt, 1);
  contract->kind = column_dup (stmt, 2);
  contract->signed_on = column_dup (stmt, 3);
  contract->starts_on = column_dup (stmt, 4);
  contract->ends_on = column_dup (stmt, 5);
  return contract;
}

GPtrArray *
relais_contract_list (RelaisVault  *vault,
                      const char   *dossier,
                      GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, kind, signed_on, starts_on, ends_on FROM contract"
                               " WHERE dossier = ?1 AND removed IS NULL"
                               " ORDER BY coalesce (starts_on, signed_on), id",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  return collect (vault, stmt, contract_from_row, (GDestroyNotify) relais_contract_free, error);
}

/* ------------------------------------------------------------------------
 * Appointments
 * ------------------------------------------------------------------------ */

void
relais_appointment_free (RelaisAppointment *appointment)
{
  if (appointment == NULL)
    return;
  g_free (appointment->id);
  g_free (appointment->dossier);
  g_free (appointment->at);
  g_free (appointment->with_whom);
  g_free (appointment->place);
  g_free (appointment->status);
  g_free (appointment);
}

char *
relais_appointment_add (RelaisVault  *vault,
                        const char   *dossier,
                        const char   *at,
                        const char   *with_whom,
                        const char   *place,
                        GError      **error)
{
  const char *values[] = { at, with_whom, place, "planned", NULL };

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  G_STATIC_ASSERT (G_N_ELEMENTS (values) == G_N_ELEMENTS (appointment_fields));
  return record_add (vault, find_entity (RELAIS_ENTITY_APPOINTMENT), dossier, values, error);
}

static gpointer
appointment_from_row (sqlite3_stmt *stmt)
{
  RelaisAppointment *appointment = g_new0 (RelaisAppointment, 1);

  appointment->id = column_dup (stmt, 0);
  appointment->dossier = column_dup (stmt, 1);
  appointment->at = column_dup (stmt, 2);
  appointment->with_whom = column_dup (stmt, 3);
  appointment->place = column_dup (stmt, 4);
  appointment->status = column_dup (stmt, 5);
  return appointment;
}

GPtrArray *
relais_appointment_list (RelaisVault  *vault,
                         const char   *dossier,
                         GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, at, with_whom, place, status FROM appointment"
                               " WHERE dossier = ?1 AND removed IS NULL ORDER BY at, id",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  return collect (vault, stmt, appointment_from_row, (GDestroyNotify) relais_appointment_free, error);
}

RelaisAppointment *
relais_appointment_next (RelaisVault  *vault,
                         const char   *dossier,
                         const char   *now,
                         GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *normalized = NULL;
  int rc;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  if (now == NULL)
    {
      g_autoptr(GDateTime) local = g_date_time_new_now_local ();

      normalized = g_date_time_format (local, "%Y-%m-%d %H:%M");
    }
  else
    {
      normalized = normalize_datetime (now);
      if (normalized == NULL)
        {
          invalid (error, _("The time is not valid: write it as YYYY-MM-DD HH:MM."));
          return NULL;
        }
    }

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, at, with_whom, place, status FROM appointment"
                               " WHERE dossier = ?1 AND at >= ?2"
                               "   AND removed IS NULL AND status = 'planned'"
                               " ORDER BY at, id LIMIT 1",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, normalized, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    return appointment_from_row (stmt);
  if (rc != SQLITE_DONE)
    read_failed (vault, rc, error);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Journal
 * ------------------------------------------------------------------------ */

void
relais_note_free (RelaisNote *note)
{
  if (note == NULL)
    return;
  g_free (note->id);
  g_free (note->dossier);
  g_free (note->text);
  g_free (note->author);
  g_free (note->written_at);
  g_free (note);
}

char *
relais_note_add (RelaisVault  *vault,
                 const char   *dossier,
                 const char   *text,
                 GError      **error)
{
  g_autofree char *written_at = utc_now_iso ();
  const char *values[] = { text, relais_vault_get_author (vault), written_at, NULL };

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  G_STATIC_ASSERT (G_N_ELEMENTS (values) == G_N_ELEMENTS (note_fields));
  return record_add (vault, find_entity (RELAIS_ENTITY_NOTE), dossier, values, error);
}

static gpointer
note_from_row (sqlite3_stmt *stmt)
{
  RelaisNote *note = g_new0 (RelaisNote, 1);

  note->id = column_dup (stmt, 0);
  note->dossier = column_dup (stmt, 1);
  note->text = column_dup (stmt, 2);
  note->author = column_dup (stmt, 3);
  note->written_at = column_dup (stmt, 4);
  return note;
}

GPtrArray *
relais_note_list (RelaisVault  *vault,
                  const char   *dossier,
                  guint         limit,
                  GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, text, author, written_at FROM note"
                               " WHERE dossier = ?1 AND removed IS NULL"
                               " ORDER BY written_at DESC, id DESC LIMIT ?2",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, limit == 0 ? -1 : (sqlite3_int64) limit);
  return collect (vault, stmt, note_from_row, (GDestroyNotify) relais_note_free, error);
}

/* ------------------------------------------------------------------------
 * Orientations
 * ------------------------------------------------------------------------ */

void
relais_orientation_free (RelaisOrientation *orientation)
{
  if (orientation == NULL)
    return;
  g_free (orientation->id);
  g_free (orientation->dossier);
  g_free (orientation->structure);
  g_free (orientation->reason);
  g_free (orientation->status);
  g_free (orientation->oriented_on);
  g_free (orientation);
}

char *
relais_orientation_add (RelaisVault  *vault,
                        const char   *dossier,
                        const char   *structure,
                        const char   *reason,
                        GError      **error)
{
  g_autofree char *today = local_today ();
  const char *values[] = { structure, reason, "proposee", today, NULL };

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  G_STATIC_ASSERT (G_N_ELEMENTS (values) == G_N_ELEMENTS (orientation_fields));
  return record_add (vault, find_entity (RELAIS_ENTITY_ORIENTATION), dossier, values, error);
}

static gpointer
orientation_from_row (sqlite3_stmt *stmt)
{
  RelaisOrientation *orientation = g_new0 (RelaisOrientation, 1);

  orientation->id = column_dup (stmt, 0);
  orientation->dossier = column_dup (stmt, 1);
  orientation->structure = column_dup (stmt, 2);
  orientation->reason = column_dup (stmt, 3);
  orientation->status = column_dup (stmt, 4);
  orientation->oriented_on = column_dup (stmt, 5);
  return orientation;
}

GPtrArray *
relais_orientation_list (RelaisVault  *vault,
                         const char   *dossier,
                         GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);

  stmt = relais_oplog_prepare (vault,
                               "SELECT id, dossier, structure, reason, status, oriented_on FROM orientation"
                               " WHERE dossier = ?1 AND removed IS NULL ORDER BY oriented_on, id",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  return collect (vault, stmt, orientation_from_row, (GDestroyNotify) relais_orientation_free, error);
}

/* ------------------------------------------------------------------------
 * Across dossiers
 * ------------------------------------------------------------------------ */

static gpointer
id_from_row (sqlite3_stmt *stmt)
{
  return column_dup (stmt, 0);
}

/* Dossier ids from @stmt, each once.  Deduplicated here rather than with
 * DISTINCT, which makes SQLite walk a per-dossier index over every row
 * instead of the filter's own range. */
static GPtrArray *
collect_ids (RelaisVault   *vault,
             sqlite3_stmt  *stmt,
             GError       **error)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *id = (const char *) sqlite3_column_text (stmt, 0);
      char *copy;

      if (id == NULL || g_hash_table_contains (seen, id))
        continue;
      copy = g_strdup (id);
      g_ptr_array_add (ids, copy);
      g_hash_table_add (seen, copy);
    }
  if (rc != SQLITE_DONE)
    {
      read_failed (vault, rc, error);
      return NULL;
    }
  return g_steal_pointer (&ids);
}

GPtrArray *
relais_dossier_ids_with_appointment_on (RelaisVault  *vault,
                                        const char   *day,
                                        GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *local = NULL;
  g_autofree char *from = NULL;
  g_autofree char *to = NULL;

  g_return_val_if_fail (vault != NULL, NULL);

  if (day == NULL)
    day = local = local_today ();
  else if (!is_valid_date (day))
    {
      invalid (error, _("The day is not a valid date: write it as YYYY-MM-DD."));
      return NULL;
    }

  /* A range on the partial index appointment_day ("YYYY-MM-DD HH:MM"
   * sorts as text); its WHERE terms are repeated so SQLite may use it. */
  from = g_strconcat (day, " 00:00", NULL);
  to = g_strconcat (day, " 23:59", NULL);
  stmt = relais_oplog_prepare (vault,
                               "SELECT dossier FROM appointment"
                               " WHERE removed IS NULL AND status IS NOT 'cancelled'"
                               "   AND at BETWEEN ?1 AND ?2",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, from, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, to, -1, SQLITE_STATIC);
  return collect_ids (vault, stmt, error);
}

GPtrArray *
relais_dossier_ids_with_late_actions (RelaisVault  *vault,
                                      const char   *today,
                                      GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *local = NULL;

  g_return_val_if_fail (vault != NULL, NULL);

  if (today == NULL)
    today = local = local_today ();
  else if (!is_valid_date (today))
    {
      invalid (error, _("The day is not a valid date: write it as YYYY-MM-DD."));
      return NULL;
    }

  /* The partial index action_late holds only open actions with their due
   * date: the scan stops at @today. */
  stmt = relais_oplog_prepare (vault,
                               "SELECT dossier FROM action"
                               " WHERE removed IS NULL AND status IN ('planifiee', 'en-cours')"
                               "   AND due < ?1",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, today, -1, SQLITE_STATIC);
  return collect_ids (vault, stmt, error);
}

GPtrArray *
relais_dossier_ids_changed_since (RelaisVault  *vault,
                                  GDateTime    *since,
                                  guint         limit,
                                  GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  gint64 ms;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (since != NULL, NULL);

  ms = g_date_time_to_unix (since) * 1000 + g_date_time_get_microsecond (since) / 1000;
  if (ms < 0)
    ms = 0;

  /* Only dossiers that still exist here (a record may arrive before its
   * dossier's identity). */
  stmt = relais_oplog_prepare (vault,
                               "SELECT a.dossier FROM dossier_activity AS a"
                               " WHERE a.hlc >= ?1"
                               "   AND EXISTS (SELECT 1 FROM person WHERE id = a.dossier)"
                               " ORDER BY a.hlc DESC LIMIT ?2",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, ms << 16);
  sqlite3_bind_int64 (stmt, 2, limit == 0 ? -1 : (sqlite3_int64) limit);
  return collect (vault, stmt, id_from_row, g_free, error);
}

/* ------------------------------------------------------------------------
 * Export
 * ------------------------------------------------------------------------ */

/* Every row of @table for @dossier, removed ones included, every column
 * but the bookkeeping ones. */
static gboolean
build_table_json (RelaisVault  *vault,
                  JsonBuilder  *builder,
                  const char   *member,
                  const char   *table,
                  const char   *dossier,
                  GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  g_autofree char *sql = NULL;
  int rc;

  sql = g_strdup_printf ("SELECT * FROM %s WHERE dossier = ?1 ORDER BY id", table);
  stmt = relais_oplog_prepare (vault, sql, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);

  json_builder_set_member_name (builder, member);
  json_builder_begin_array (builder);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      json_builder_begin_object (builder);
      for (int c = 0; c < sqlite3_column_count (stmt); c++)
        {
          const char *name = sqlite3_column_name (stmt, c);
          const char *value = (const char *) sqlite3_column_text (stmt, c);

          if (strcmp (name, "dossier") == 0 || strcmp (name, "updated_hlc") == 0)
            continue;
          json_builder_set_member_name (builder, name);
          if (strcmp (name, "removed") == 0)
            json_builder_add_boolean_value (builder, value != NULL);
          else if (value != NULL)
            json_builder_add_string_value (builder, value);
          else
            json_builder_add_null_value (builder);
        }
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  if (rc != SQLITE_DONE)
    return read_failed (vault, rc, error);
  return TRUE;
}

static void
add_strv (JsonBuilder *builder,
          const char  *name,
          char       **values)
{
  json_builder_set_member_name (builder, name);
  json_builder_begin_array (builder);
  for (guint i = 0; values != NULL && values[i] != NULL; i++)
    json_builder_add_string_value (builder, values[i]);
  json_builder_end_array (builder);
}

static void
add_diagnostic_json (JsonBuilder      *builder,
                     RelaisDiagnostic *diagnostic)
{
  g_autofree char *when = NULL;

  if (diagnostic->changed_at != NULL)
    when = g_date_time_format_iso8601 (diagnostic->changed_at);
  json_builder_begin_object (builder);
  relais_json_add_nullable_string (builder, "level", diagnostic->level);
  add_strv (builder, "situations", diagnostic->situations);
  relais_json_add_nullable_string (builder, "comment", diagnostic->comment);
  relais_json_add_nullable_string (builder, "author", diagnostic->author);
  relais_json_add_nullable_string (builder, "date", when);
  json_builder_end_object (builder);
}

gboolean
relais_dossier_build_json (RelaisVault  *vault,
                           JsonBuilder  *builder,
                           const char   *dossier,
                           GError      **error)
{
  static const struct { const char *member; const char *table; } lists[] = {
    { "projects", "project" },
    { "objectives", "objective" },
    { "actions", "action" },
    { "contracts", "contract" },
    { "appointments", "appointment" },
    { "notes", "note" },
    { "orientations", "orientation" },
  };
  g_autoptr(RelaisSituation) situation = NULL;
  g_autoptr(GPtrArray) diagnostic = NULL;

  g_return_val_if_fail (vault != NULL, FALSE);
  g_return_val_if_fail (builder != NULL, FALSE);
  g_return_val_if_fail (dossier != NULL, FALSE);

  situation = relais_situation_get (vault, dossier, error);
  if (situation == NULL)
    return FALSE;
  json_builder_set_member_name (builder, "situation");
  json_builder_begin_object (builder);
  add_strv (builder, "rights", situation->rights);
  relais_json_add_nullable_string (builder, "education_level", situation->education_level);
  relais_json_add_nullable_string (builder, "work_situation", situation->work_situation);
  relais_json_add_nullable_string (builder, "sharing_informed_on", situation->sharing_informed_on);
  json_builder_end_object (builder);

  diagnostic = relais_diagnostic_list (vault, dossier, error);
  if (diagnostic == NULL)
    return FALSE;
  json_builder_set_member_name (builder, "diagnostic");
  json_builder_begin_object (builder);
  for (guint i = 0; i < diagnostic->len; i++)
    {
      RelaisDiagnostic *current = g_ptr_array_index (diagnostic, i);
      g_autoptr(GPtrArray) history = NULL;

      if (current->level == NULL && current->comment == NULL && current->situations[0] == NULL)
        continue;
      history = relais_diagnostic_history (vault, dossier, current->theme, error);
      if (history == NULL)
        return FALSE;

      json_builder_set_member_name (builder, current->theme);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "current");
      add_diagnostic_json (builder, current);
      json_builder_set_member_name (builder, "history");
      json_builder_begin_array (builder);
      for (guint h = 0; h < history->len; h++)
        add_diagnostic_json (builder, g_ptr_array_index (history, h));
      json_builder_end_array (builder);
      json_builder_end_object (builder);
    }
  json_builder_end_object (builder);

  for (guint i = 0; i < G_N_ELEMENTS (lists); i++)
    if (!build_table_json (vault, builder, lists[i].member, lists[i].table, dossier, error))
      return FALSE;
  return TRUE;
}
