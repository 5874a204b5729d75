#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "relais-conflicts-page.h"
#include "relais-dossier.h"
#include "relais-oplog.h"
#include "relais-person.h"
#include "relais-person-object.h"
#include "relais-sync-engine.h"

struct _RelaisConflictsPage
{
  AdwBin               parent_instance;

  RelaisVault         *vault;   /* not owned: see relais_conflicts_page_set_vault() */
  char                *user_id; /* this vault's user on the server, or NULL */
  GHashTable          *directory;  /* user id → name, or NULL */
  GPtrArray           *groups;  /* the AdwPreferencesGroups of the conflicts shown */
  guint                n_conflicts;
  guint                refresh_source;

  /* Template widgets */
  AdwWindowTitle      *title;
  GtkButton           *back_button;
  GtkStack            *stack;
  AdwPreferencesPage  *list_page;
  AdwStatusPage       *empty_page;
};

G_DEFINE_FINAL_TYPE (RelaisConflictsPage, relais_conflicts_page, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_N_CONFLICTS,
  N_PROPS
};

enum {
  BACK,
  OPEN_DOSSIER,
  RESOLVED,
  TOAST,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

/* ------------------------------------------------------------------------
 * Fields and values, as the dossier's pages name and show them
 * ------------------------------------------------------------------------ */

typedef enum {
  SHOW_TEXT,
  SHOW_PHONE,         /* 10 digits, shown in pairs as on the overview */
  SHOW_DATE,          /* YYYY-MM-DD */
  SHOW_DATETIME,      /* YYYY-MM-DD HH:MM */
  SHOW_CHOICE,        /* a key of .choices */
  SHOW_CHOICE_SET,    /* space-separated keys of .choices */
  SHOW_SITUATIONS,    /* space-separated keys of the diagnostic theme's situations */
  SHOW_FLAG,          /* "1" or nothing */
  SHOW_REMOVED,       /* "1" or nothing */
  SHOW_KM,
  SHOW_WRITTEN_AT,    /* ISO 8601 UTC */
} ShowKind;

typedef struct {
  const char         *entity;   /* NULL: any entity */
  const char         *field;
  ShowKind            kind;
  const RelaisChoice *choices;
  const char         *label;    /* N_() */
} FieldInfo;

static const FieldInfo fields[] = {
  { "person", "last_name", SHOW_TEXT, NULL, N_("Last Name") },
  { "person", "first_name", SHOW_TEXT, NULL, N_("First Name") },
  { "person", "birth_date", SHOW_DATE, NULL, N_("Birth Date") },
  { "person", "phone", SHOW_PHONE, NULL, N_("Phone") },
  { "person", "email", SHOW_TEXT, NULL, N_("Email") },
  { "person", "postal_code", SHOW_TEXT, NULL, N_("Postal Code") },
  { "person", "city", SHOW_TEXT, NULL, N_("City") },
  { "situation", "education_level", SHOW_CHOICE, relais_education_levels, N_("Education Level") },
  { "situation", "work_situation", SHOW_CHOICE, relais_work_situations, N_("Work Situation") },
  { "situation", "sharing_informed_on", SHOW_DATE, NULL, N_("Informed of How the Data Is Shared") },
  { "diagnostic", "level", SHOW_CHOICE, relais_diagnostic_levels, N_("Level") },
  { "diagnostic", "situations", SHOW_SITUATIONS, NULL, N_("Situations") },
  { "diagnostic", "comment", SHOW_TEXT, NULL, N_("Comment") },
  { "project", "job_label", SHOW_TEXT, NULL, N_("Job Sought") },
  { "project", "rome_code", SHOW_TEXT, NULL, N_("ROME Code") },
  { "project", "mobility_km", SHOW_KM, NULL, N_("Mobility") },
  { "project", "contract_types", SHOW_CHOICE_SET, relais_contract_types, N_("Contract Types") },
  { "project", "working_time", SHOW_CHOICE, relais_working_times, N_("Working Time") },
  { "objective", "theme", SHOW_CHOICE, relais_themes, N_("Theme") },
  { "objective", "text", SHOW_TEXT, NULL, N_("Objective") },
  { "objective", "status", SHOW_CHOICE, relais_objective_statuses, N_("Status") },
  { "action", "objective", SHOW_TEXT, NULL, N_("Objective") },
  { "action", "text", SHOW_TEXT, NULL, N_("Action") },
  { "action", "status", SHOW_CHOICE, relais_action_statuses, N_("Status") },
  { "action", "due", SHOW_DATE, NULL, N_("Due Date") },
  { "action", "carrier", SHOW_TEXT, NULL, N_("Carried By") },
  { "contract", "kind", SHOW_CHOICE, relais_contract_kinds, N_("Kind") },
  { "contract", "signed_on", SHOW_DATE, NULL, N_("Signed On") },
  { "contract", "starts_on", SHOW_DATE, NULL, N_("Starts On") },
  { "contract", "ends_on", SHOW_DATE, NULL, N_("Ends On") },
  { "appointment", "at", SHOW_DATETIME, NULL, N_("Date and Time") },
  { "appointment", "with_whom", SHOW_TEXT, NULL, N_("With Whom") },
  { "appointment", "place", SHOW_TEXT, NULL, N_("Place") },
  { "appointment", "status", SHOW_CHOICE, relais_appointment_statuses, N_("Status") },
  { "note", "text", SHOW_TEXT, NULL, N_("Note") },
  { "note", "written_at", SHOW_WRITTEN_AT, NULL, N_("Written On") },
  { "orientation", "structure", SHOW_TEXT, NULL, N_("Structure or Service") },
  { "orientation", "reason", SHOW_TEXT, NULL, N_("Reason") },
  { "orientation", "status", SHOW_CHOICE, relais_orientation_statuses, N_("Status") },
  { "orientation", "oriented_on", SHOW_DATE, NULL, N_("Oriented On") },
  { NULL, "removed", SHOW_REMOVED, NULL, N_("Removed") },
};

/* What a record of each entity is called, and the field that names it. */
typedef struct {
  const char *entity;
  const char *kind;        /* N_() */
  const char *name_field;  /* NULL: the record has no name of its own */
} EntityInfo;

static const EntityInfo entities[] = {
  { "person", N_("Identity"), NULL },
  { "situation", N_("Situation"), NULL },
  { "diagnostic", N_("Diagnostic"), NULL },
  { "project", N_("Professional Project"), "job_label" },
  { "objective", N_("Objective"), "text" },
  { "action", N_("Action"), "text" },
  { "contract", N_("Contract"), "kind" },
  { "appointment", N_("Appointment"), "at" },
  { "note", N_("Note"), "text" },
  { "orientation", N_("Orientation"), "structure" },
};

/* Names shown in a description are cut: a note can be pages long. */
#define NAME_MAX_CHARS 40

static const FieldInfo *
find_field (const char *entity,
            const char *field)
{
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    if ((fields[i].entity == NULL || g_strcmp0 (fields[i].entity, entity) == 0)
        && g_strcmp0 (fields[i].field, field) == 0)
      return &fields[i];
  return NULL;
}

static const EntityInfo *
find_entity (const char *entity)
{
  for (guint i = 0; i < G_N_ELEMENTS (entities); i++)
    if (g_strcmp0 (entities[i].entity, entity) == 0)
      return &entities[i];
  return NULL;
}

/* A key this version does not know (written by a newer one) shows as
 * itself. */
static const char *
choice_or_key (const RelaisChoice *choices,
               const char         *key)
{
  const char *label = choices != NULL ? relais_choice_label (choices, key) : NULL;

  return label != NULL ? label : key;
}

static char *
join_choices (const RelaisChoice *choices,
              const char         *keys)
{
  g_auto(GStrv) split = g_strsplit (keys, " ", -1);
  g_autoptr(GString) shown = g_string_new (NULL);

  for (guint i = 0; split[i] != NULL; i++)
    {
      if (*split[i] == '\0')
        continue;
      if (shown->len > 0)
        /* Translators: between the items of a list of choices. */
        g_string_append (shown, _(", "));
      g_string_append (shown, choice_or_key (choices, split[i]));
    }
  return g_string_free (g_steal_pointer (&shown), FALSE);
}

static char *
format_date_time (GDateTime *local)
{
  g_autofree char *day = g_date_time_format (local, "%Y-%m-%d");
  g_autofree char *hhmm = g_date_time_format (local, "%H:%M");
  g_autofree char *date = relais_format_date (day);

  /* Translators: an appointment's date, then its time. */
  return g_strdup_printf (_("%s at %s"), date != NULL ? date : day, hhmm);
}

static char *
ellipsize (const char *text)
{
  g_autofree char *line = g_strdup (text);
  char *newline = strchr (line, '\n');

  if (newline != NULL)
    *newline = '\0';
  g_strstrip (line);
  if (g_utf8_strlen (line, -1) <= NAME_MAX_CHARS && newline == NULL)
    return g_steal_pointer (&line);
  {
    g_autofree char *cut = g_utf8_substring (line, 0, MIN (g_utf8_strlen (line, -1), NAME_MAX_CHARS));

    return g_strconcat (cut, "…", NULL);
  }
}

/**
 * relais_conflicts_format_value:
 * @value: (nullable): a value of the op log, %NULL when the field was
 *   cleared
 *
 * Returns: (transfer full): @value as the dossier's pages show it
 */
char *
relais_conflicts_format_value (const char *entity,
                               const char *field,
                               const char *value)
{
  const FieldInfo *info = find_field (entity, field);
  gboolean flag_field = g_str_has_prefix (field, "right_");

  if (info != NULL && info->kind == SHOW_REMOVED)
    return g_strdup (g_strcmp0 (value, "1") == 0 ? _("Removed") : _("Kept"));
  if (flag_field)
    return g_strdup (g_strcmp0 (value, "1") == 0 ? _("Yes") : _("No"));
  if (value == NULL || *value == '\0')
    return g_strdup (_("Empty"));
  if (info == NULL)
    return g_strdup (value);

  switch (info->kind)
    {
    case SHOW_DATE:
      {
        char *date = relais_format_date (value);

        return date != NULL ? date : g_strdup (value);
      }

    case SHOW_DATETIME:
      if (strlen (value) >= 16)
        {
          g_autofree char *day = g_strndup (value, 10);
          g_autofree char *date = relais_format_date (day);
          g_autofree char *hhmm = g_strndup (value + 11, 5);

          return g_strdup_printf (_("%s at %s"), date != NULL ? date : day, hhmm);
        }
      return g_strdup (value);

    case SHOW_WRITTEN_AT:
      {
        g_autoptr(GDateTime) utc = g_date_time_new_from_iso8601 (value, NULL);
        g_autoptr(GDateTime) local = NULL;

        if (utc == NULL)
          return g_strdup (value);
        local = g_date_time_to_local (utc);
        return format_date_time (local);
      }

    case SHOW_PHONE:
      if (strlen (value) == 10 && value[0] == '0')
        return g_strdup_printf ("%.2s %.2s %.2s %.2s %.2s",
                                value, value + 2, value + 4, value + 6, value + 8);
      return g_strdup (value);

    case SHOW_CHOICE:
      return g_strdup (choice_or_key (info->choices, value));

    case SHOW_CHOICE_SET:
      return join_choices (info->choices, value);

    case SHOW_SITUATIONS:
      {
        /* Every theme's situations: the value alone does not say which
         * theme it belongs to, and their keys do not overlap. */
        g_auto(GStrv) split = g_strsplit (value, " ", -1);
        g_autoptr(GString) shown = g_string_new (NULL);

        for (guint i = 0; split[i] != NULL; i++)
          {
            const char *label = NULL;

            if (*split[i] == '\0')
              continue;
            for (guint t = 0; relais_themes[t].key != NULL && label == NULL; t++)
              label = relais_choice_label (relais_theme_situations (relais_themes[t].key), split[i]);
            if (shown->len > 0)
              g_string_append (shown, _(", "));
            g_string_append (shown, label != NULL ? label : split[i]);
          }
        return g_string_free (g_steal_pointer (&shown), FALSE);
      }

    case SHOW_KM:
      {
        gint64 km = g_ascii_strtoll (value, NULL, 10);

        return g_strdup_printf (_("%d km"), (int) km);
      }

    case SHOW_TEXT:
    case SHOW_FLAG:
    case SHOW_REMOVED:
    default:
      return g_strdup (value);
    }
}

/* The name a record has now (its winning value of @name_field), or NULL. */
static char *
record_name (RelaisVault *vault,
             const char  *entity,
             const char  *entity_id,
             const char  *name_field)
{
  g_autoptr(GPtrArray) history = NULL;
  const RelaisOp *last;

  history = relais_oplog_history (vault, entity, entity_id, name_field, NULL);
  if (history == NULL || history->len == 0)
    return NULL;
  /* In (hlc, device) order: the last one is the value that wins. */
  last = g_ptr_array_index (history, history->len - 1);
  if (last->value == NULL || *last->value == '\0')
    return NULL;
  {
    g_autofree char *shown = relais_conflicts_format_value (entity, name_field, last->value);

    return ellipsize (shown);
  }
}

/**
 * relais_conflicts_describe_field:
 *
 * Returns: (transfer full): where the field is in the dossier and what it
 *   is called there: "Identity · Phone", "Action “Atelier CV” · Status"
 */
char *
relais_conflicts_describe_field (RelaisVault *vault,
                                 const char  *entity,
                                 const char  *entity_id,
                                 const char  *field)
{
  const EntityInfo *einfo = find_entity (entity);
  const FieldInfo *finfo = find_field (entity, field);
  g_autofree char *where = NULL;
  g_autofree char *field_label = NULL;

  if (finfo != NULL)
    field_label = g_strdup (_(finfo->label));
  else if (g_str_has_prefix (field, "right_"))
    field_label = g_strdup (choice_or_key (relais_rights, field + strlen ("right_")));
  else
    field_label = g_strdup (field);

  if (einfo == NULL)
    where = g_strdup (entity);
  else if (g_str_equal (entity, RELAIS_ENTITY_DIAGNOSTIC))
    {
      const char *colon = entity_id != NULL ? strrchr (entity_id, ':') : NULL;

      if (colon != NULL)
        /* Translators: a kind of record and which one: Diagnostic “Housing”. */
        where = g_strdup_printf (_("%s “%s”"), _(einfo->kind), choice_or_key (relais_themes, colon + 1));
      else
        where = g_strdup (_(einfo->kind));
    }
  else
    {
      g_autofree char *name = NULL;

      if (einfo->name_field != NULL && vault != NULL && entity_id != NULL)
        name = record_name (vault, entity, entity_id, einfo->name_field);
      if (name != NULL)
        where = g_strdup_printf (_("%s “%s”"), _(einfo->kind), name);
      else
        where = g_strdup (_(einfo->kind));
    }

  /* Translators: where a field is in the dossier, then the field:
   * Identity · Phone. */
  return g_strdup_printf (_("%s · %s"), where, field_label);
}

/* ------------------------------------------------------------------------
 * The page
 * ------------------------------------------------------------------------ */

typedef struct {
  RelaisConflictsPage *page;   /* weak */
  char                *dossier;
  char                *entity;
  char                *entity_id;
  char                *field;
  char                *value;  /* NULL: keep the field cleared */
} Choice;

static void
choice_free (gpointer data)
{
  Choice *choice = data;

  g_clear_weak_pointer (&choice->page);
  g_free (choice->dossier);
  g_free (choice->entity);
  g_free (choice->entity_id);
  g_free (choice->field);
  /* A value of a dossier: not left in freed memory. */
  if (choice->value != NULL)
    explicit_bzero (choice->value, strlen (choice->value));
  g_free (choice->value);
  g_free (choice);
}

static void
emit_toast (RelaisConflictsPage *self,
            AdwToast            *toast)
{
  g_signal_emit (self, signals[TOAST], 0, toast);
  g_object_unref (toast);
}

static gboolean
refresh_idle (gpointer user_data)
{
  RelaisConflictsPage *self = user_data;

  self->refresh_source = 0;
  relais_conflicts_page_refresh (self);
  return G_SOURCE_REMOVE;
}

static void
on_keep_clicked (GtkButton *button,
                 Choice    *choice)
{
  RelaisConflictsPage *self = choice->page;
  g_autoptr(GError) error = NULL;
  g_autofree char *dossier = NULL;

  if (self == NULL || self->vault == NULL)
    return;

  if (!relais_oplog_resolve (self->vault, choice->entity, choice->entity_id, choice->field,
                             choice->value, &error))
    {
      emit_toast (self, adw_toast_new (error->message));
      return;
    }

  dossier = g_strdup (choice->dossier);
  /* Honest about where it stands: recorded here, sent at the next sync. */
  emit_toast (self, adw_toast_new (_("Value kept. Other devices follow at their next sync.")));
  /* The rows go away once this handler has returned, not under it. */
  if (self->refresh_source == 0)
    self->refresh_source = g_idle_add_full (G_PRIORITY_DEFAULT, refresh_idle, self, NULL);
  g_signal_emit (self, signals[RESOLVED], 0, dossier);
}

static void
on_open_clicked (GtkButton           *button,
                 RelaisConflictsPage *self)
{
  const char *dossier = g_object_get_data (G_OBJECT (button), "dossier");

  g_signal_emit (self, signals[OPEN_DOSSIER], 0, dossier);
}

/* A button beside the person's name, to see the field in its dossier. */
static GtkWidget *
open_button (RelaisConflictsPage *self,
             const char          *dossier,
             const char          *name)
{
  GtkWidget *button = gtk_button_new_from_icon_name ("go-next-symbolic");
  g_autofree char *label = g_strdup_printf (_("Open the dossier of %s"), name);

  gtk_widget_add_css_class (button, "flat");
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (button, _("Open the Dossier"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (button),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, label,
                                  -1);
  g_object_set_data_full (G_OBJECT (button), "dossier", g_strdup (dossier), g_free);
  g_signal_connect_object (button, "clicked", G_CALLBACK (on_open_clicked), self, 0);
  return button;
}

static char *
describe_author (RelaisConflictsPage *self,
                 const RelaisOp      *op)
{
  g_autoptr(GDateTime) when = relais_hlc_to_date_time (op->hlc);
  g_autofree char *time = format_date_time (when);
  const char *device = self->vault != NULL ? relais_vault_get_device_id (self->vault) : NULL;

  gboolean mine = self->user_id != NULL && g_strcmp0 (op->author, self->user_id) == 0;
  const char *author;

  /* Synced operations name their author by user id: the server's
   * directory has the names. */
  if (mine)
    author = _("You");
  else if (op->author == NULL || *op->author == '\0')
    author = _("Unknown author");
  else if (self->directory != NULL && g_hash_table_contains (self->directory, op->author))
    author = g_hash_table_lookup (self->directory, op->author);
  else
    author = op->author;

  if (g_strcmp0 (op->device, device) == 0)
    /* Translators: who wrote a value, and when: "jdupont, on this computer, 25/11/2026 at 10:12". */
    return g_strdup_printf (_("%s, on this computer, %s"), author, time);
  if (mine)
    /* Translators: "You, on another of your devices, 25/11/2026 at 10:12". */
    return g_strdup_printf (_("%s, on another of your devices, %s"), author, time);
  /* Translators: who wrote a value, and when: "jdupont, 25/11/2026 at 10:12". */
  return g_strdup_printf (_("%s, %s"), author, time);
}

static GtkWidget *
value_row (RelaisConflictsPage  *self,
           const RelaisConflict *conflict,
           const RelaisOp       *op,
           gboolean              winner)
{
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *button;
  g_autofree char *shown = relais_conflicts_format_value (conflict->entity, conflict->field, op->value);
  g_autofree char *author = describe_author (self, op);
  g_autofree char *keep = NULL;
  Choice *choice;

  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), shown);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), author);
  if (op->value == NULL || *op->value == '\0')
    gtk_widget_add_css_class (row, "conflict-empty");

  if (winner)
    {
      GtkWidget *tag = gtk_label_new (_("Shown now"));

      gtk_widget_set_valign (tag, GTK_ALIGN_CENTER);
      gtk_widget_add_css_class (tag, "conflict-shown");
      gtk_widget_add_css_class (tag, "caption-heading");
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), tag);
    }

  /* Alike on every row: the page does not suggest which value is right. */
  button = gtk_button_new_with_label (_("Keep"));
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  /* Every row has a Keep button: say which value it keeps. */
  keep = g_strdup_printf (_("Keep “%s”"), shown);
  gtk_widget_set_tooltip_text (button, keep);
  gtk_accessible_update_property (GTK_ACCESSIBLE (button),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, keep,
                                  -1);

  choice = g_new0 (Choice, 1);
  g_set_weak_pointer (&choice->page, self);
  choice->dossier = g_strdup (conflict->dossier);
  choice->entity = g_strdup (conflict->entity);
  choice->entity_id = g_strdup (conflict->entity_id);
  choice->field = g_strdup (conflict->field);
  choice->value = g_strdup (op->value);
  g_object_set_data_full (G_OBJECT (button), "choice", choice, choice_free);
  g_signal_connect (button, "clicked", G_CALLBACK (on_keep_clicked), choice);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);

  return row;
}

static void
clear_groups (RelaisConflictsPage *self)
{
  for (guint i = 0; i < self->groups->len; i++)
    adw_preferences_page_remove (self->list_page, g_ptr_array_index (self->groups, i));
  g_ptr_array_set_size (self->groups, 0);
}

typedef struct {
  RelaisConflict *conflict;
  char           *name;
} Item;

static int
compare_items (gconstpointer a,
               gconstpointer b)
{
  const Item *x = a;
  const Item *y = b;
  int c = g_utf8_collate (x->name, y->name);

  if (c != 0)
    return c;
  c = g_strcmp0 (x->conflict->entity_id, y->conflict->entity_id);
  if (c != 0)
    return c;
  return g_strcmp0 (x->conflict->field, y->conflict->field);
}

static void
set_n_conflicts (RelaisConflictsPage *self,
                 guint                n)
{
  g_autofree char *subtitle = NULL;

  if (n > 0)
    subtitle = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u to review", "%u to review", n), n);
  adw_window_title_set_subtitle (self->title, subtitle != NULL ? subtitle : "");

  if (self->n_conflicts == n)
    return;
  self->n_conflicts = n;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_CONFLICTS]);
}

static void
relais_conflicts_page_dispose (GObject *object)
{
  RelaisConflictsPage *self = (RelaisConflictsPage *)object;

  g_clear_handle_id (&self->refresh_source, g_source_remove);
  self->vault = NULL;
  adw_bin_set_child (ADW_BIN (self), NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), RELAIS_TYPE_CONFLICTS_PAGE);

  G_OBJECT_CLASS (relais_conflicts_page_parent_class)->dispose (object);
}

static void
relais_conflicts_page_finalize (GObject *object)
{
  RelaisConflictsPage *self = (RelaisConflictsPage *)object;

  g_clear_pointer (&self->groups, g_ptr_array_unref);
  g_clear_pointer (&self->user_id, g_free);
  g_clear_pointer (&self->directory, g_hash_table_unref);

  G_OBJECT_CLASS (relais_conflicts_page_parent_class)->finalize (object);
}

static void
on_back_clicked (RelaisConflictsPage *self)
{
  g_signal_emit (self, signals[BACK], 0);
}

static void
relais_conflicts_page_get_property (GObject    *object,
                                    guint       prop_id,
                                    GValue     *value,
                                    GParamSpec *pspec)
{
  RelaisConflictsPage *self = RELAIS_CONFLICTS_PAGE (object);

  switch (prop_id)
    {
    case PROP_N_CONFLICTS:
      g_value_set_uint (value, self->n_conflicts);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
relais_conflicts_page_class_init (RelaisConflictsPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->get_property = relais_conflicts_page_get_property;
  object_class->dispose = relais_conflicts_page_dispose;
  object_class->finalize = relais_conflicts_page_finalize;

  /**
   * RelaisConflictsPage:n-conflicts:
   *
   * How many fields hold competing values, as last read.
   */
  properties[PROP_N_CONFLICTS] =
    g_param_spec_uint ("n-conflicts", NULL, NULL,
                       0, G_MAXUINT, 0,
                       (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY));

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RelaisConflictsPage::back:
   *
   * The person asked to go back to the dossiers.
   */
  signals[BACK] =
    g_signal_new ("back",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * RelaisConflictsPage::open-dossier:
   * @dossier: the dossier to show
   */
  signals[OPEN_DOSSIER] =
    g_signal_new ("open-dossier",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * RelaisConflictsPage::resolved:
   * @dossier: the dossier whose field was resolved
   */
  signals[RESOLVED] =
    g_signal_new ("resolved",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * RelaisConflictsPage::toast:
   * @toast: what to tell the person
   */
  signals[TOAST] =
    g_signal_new ("toast",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, ADW_TYPE_TOAST);

  gtk_widget_class_set_template_from_resource (widget_class, "/fr/spie/Relais/relais-conflicts-page.ui");
  gtk_widget_class_bind_template_child (widget_class, RelaisConflictsPage, title);
  gtk_widget_class_bind_template_child (widget_class, RelaisConflictsPage, back_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisConflictsPage, stack);
  gtk_widget_class_bind_template_child (widget_class, RelaisConflictsPage, list_page);
  gtk_widget_class_bind_template_child (widget_class, RelaisConflictsPage, empty_page);
  gtk_widget_class_bind_template_callback (widget_class, on_back_clicked);
}

static void
relais_conflicts_page_init (RelaisConflictsPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  self->groups = g_ptr_array_new ();
  gtk_stack_set_visible_child_name (self->stack, "empty");
}

RelaisConflictsPage *
relais_conflicts_page_new (void)
{
  return g_object_new (RELAIS_TYPE_CONFLICTS_PAGE, NULL);
}

void
relais_conflicts_page_set_vault (RelaisConflictsPage *self,
                                 RelaisVault         *vault)
{
  g_return_if_fail (RELAIS_IS_CONFLICTS_PAGE (self));

  self->vault = vault;
  g_clear_pointer (&self->user_id, g_free);
  if (vault != NULL)
    self->user_id = relais_sync_get_user_id (vault);
  relais_conflicts_page_refresh (self);
}

void
relais_conflicts_page_set_directory (RelaisConflictsPage *self,
                                     GHashTable          *directory)
{
  g_return_if_fail (RELAIS_IS_CONFLICTS_PAGE (self));

  if (self->directory == directory)
    return;
  g_clear_pointer (&self->directory, g_hash_table_unref);
  if (directory != NULL)
    self->directory = g_hash_table_ref (directory);
  if (self->vault != NULL)
    relais_conflicts_page_refresh (self);
}

void
relais_conflicts_page_refresh (RelaisConflictsPage *self)
{
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autoptr(GHashTable) names = NULL;
  g_autoptr(GArray) items = NULL;
  g_autoptr(GError) error = NULL;

  g_return_if_fail (RELAIS_IS_CONFLICTS_PAGE (self));

  g_clear_handle_id (&self->refresh_source, g_source_remove);
  clear_groups (self);

  if (self->vault == NULL)
    {
      set_n_conflicts (self, 0);
      gtk_stack_set_visible_child_name (self->stack, "empty");
      return;
    }

  conflicts = relais_oplog_conflicts (self->vault, NULL, &error);
  if (conflicts == NULL)
    {
      g_warning ("Could not read the conflicts: %s", error->message);
      adw_status_page_set_title (self->empty_page, _("Could Not Read the Conflicts"));
      adw_status_page_set_description (self->empty_page, error->message);
      set_n_conflicts (self, 0);
      gtk_stack_set_visible_child_name (self->stack, "empty");
      return;
    }
  adw_status_page_set_title (self->empty_page, _("No Conflicts"));
  adw_status_page_set_description (self->empty_page,
                                   _("Every change made on your devices and by your colleagues agrees."));

  /* By person, as the list of dossiers is. */
  names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  items = g_array_sized_new (FALSE, FALSE, sizeof (Item), conflicts->len);
  for (guint i = 0; i < conflicts->len; i++)
    {
      RelaisConflict *conflict = g_ptr_array_index (conflicts, i);
      Item item = { conflict, NULL };

      if (conflict->values == NULL || conflict->values->len < 2)
        continue;
      item.name = g_hash_table_lookup (names, conflict->dossier);
      if (item.name == NULL)
        {
          g_autoptr(RelaisPerson) person = relais_person_get (self->vault, conflict->dossier, NULL);

          item.name = person != NULL ? relais_person_format_name (person) : g_strdup (_("Unknown Dossier"));
          g_hash_table_insert (names, g_strdup (conflict->dossier), item.name);
        }
      g_array_append_val (items, item);
    }
  g_array_sort (items, compare_items);

  for (guint i = 0; i < items->len; i++)
    {
      const Item *item = &g_array_index (items, Item, i);
      const RelaisConflict *conflict = item->conflict;
      GtkWidget *group = adw_preferences_group_new ();
      g_autofree char *where = relais_conflicts_describe_field (self->vault, conflict->entity,
                                                                conflict->entity_id, conflict->field);
      /* The group's title and description are Pango markup. */
      g_autofree char *title = g_markup_escape_text (item->name, -1);
      g_autofree char *description = g_markup_escape_text (where, -1);

      adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (group), title);
      adw_preferences_group_set_description (ADW_PREFERENCES_GROUP (group), description);
      adw_preferences_group_set_header_suffix (ADW_PREFERENCES_GROUP (group),
                                               open_button (self, conflict->dossier, item->name));
      for (guint v = 0; v < conflict->values->len; v++)
        adw_preferences_group_add (ADW_PREFERENCES_GROUP (group),
                                   value_row (self, conflict, g_ptr_array_index (conflict->values, v), v == 0));
      adw_preferences_page_add (self->list_page, ADW_PREFERENCES_GROUP (group));
      g_ptr_array_add (self->groups, group);
    }

  set_n_conflicts (self, items->len);
  gtk_stack_set_visible_child_name (self->stack, items->len > 0 ? "list" : "empty");
}

guint
relais_conflicts_page_get_n_conflicts (RelaisConflictsPage *self)
{
  g_return_val_if_fail (RELAIS_IS_CONFLICTS_PAGE (self), 0);

  return self->n_conflicts;
}
