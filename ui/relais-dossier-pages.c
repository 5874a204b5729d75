#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <stdio.h>
#include <string.h>

#include "relais-dossier.h"
#include "relais-dossier-pages.h"
#include "relais-person-object.h"
#include "relais-validate.h"

struct _RelaisPagesContext
{
  RelaisVault        *vault;  /* not owned; NULL once locked */
  char               *dossier;
  RelaisPagesChanged  changed;
  RelaisPagesRemoved  removed;
  gpointer            user_data;
};

RelaisPagesContext *
relais_pages_context_new (RelaisPagesChanged changed,
                          RelaisPagesRemoved removed,
                          gpointer           user_data)
{
  RelaisPagesContext *context = g_new0 (RelaisPagesContext, 1);

  context->changed = changed;
  context->removed = removed;
  context->user_data = user_data;
  return context;
}

void
relais_pages_context_free (RelaisPagesContext *context)
{
  if (context == NULL)
    return;
  g_free (context->dossier);
  g_free (context);
}

void
relais_pages_context_set (RelaisPagesContext *context,
                          RelaisVault        *vault,
                          const char         *dossier)
{
  context->vault = vault;
  g_free (context->dossier);
  context->dossier = g_strdup (dossier);
}

static gboolean
ready (RelaisPagesContext *context)
{
  return context->vault != NULL && context->dossier != NULL;
}

static void
written (RelaisPagesContext *context,
         const char         *page)
{
  context->changed (page, NULL, context->user_data);
}

static void
failed (RelaisPagesContext *context,
        const GError       *error)
{
  context->changed (NULL, error->message, context->user_data);
}

/* Helpers */

static GtkStringList *
choice_model (const RelaisChoice *choices,
              const char         *none)
{
  GtkStringList *list = gtk_string_list_new (NULL);

  if (none != NULL)
    gtk_string_list_append (list, none);
  for (guint i = 0; choices[i].key != NULL; i++)
    gtk_string_list_append (list, relais_choice_label (choices, choices[i].key));
  return list;
}

static guint
choice_index (const RelaisChoice *choices,
              const char         *key)
{
  for (guint i = 0; key != NULL && choices[i].key != NULL; i++)
    if (strcmp (choices[i].key, key) == 0)
      return i;
  return GTK_INVALID_LIST_POSITION;
}

static const char *
choice_key_at (const RelaisChoice *choices,
               guint               index)
{
  for (guint i = 0; choices[i].key != NULL; i++)
    if (i == index)
      return choices[i].key;
  return NULL;
}

static const char *
label_of (const RelaisChoice *choices,
          const char         *key)
{
  const char *label = key != NULL ? relais_choice_label (choices, key) : NULL;

  return label != NULL ? label : "";
}

/* A row showing what people typed: never read as Pango markup. */
static GtkWidget *
text_row (const char *title,
          const char *subtitle)
{
  GtkWidget *row = adw_action_row_new ();

  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title != NULL ? title : "");
  if (subtitle != NULL && *subtitle != '\0')
    adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  return row;
}

static GtkWidget *
entry_row (const char *title)
{
  GtkWidget *row = adw_entry_row_new ();

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
  /* libadwaita 1.2 leaves the text field unnamed. */
  gtk_accessible_update_property (GTK_ACCESSIBLE (row), GTK_ACCESSIBLE_PROPERTY_LABEL, title, -1);
  gtk_accessible_update_property (GTK_ACCESSIBLE (gtk_editable_get_delegate (GTK_EDITABLE (row))),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, title, -1);
  return row;
}

static GtkWidget *
status_drop_down (const RelaisChoice *choices,
                  const char         *key,
                  const char         *accessible_name)
{
  g_autoptr(GtkStringList) model = choice_model (choices, NULL);
  GtkWidget *drop_down = gtk_drop_down_new (G_LIST_MODEL (g_steal_pointer (&model)), NULL);
  guint index = choice_index (choices, key);

  gtk_widget_set_valign (drop_down, GTK_ALIGN_CENTER);
  if (index != GTK_INVALID_LIST_POSITION)
    gtk_drop_down_set_selected (GTK_DROP_DOWN (drop_down), index);
  gtk_accessible_update_property (GTK_ACCESSIBLE (drop_down),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, accessible_name, -1);
  return drop_down;
}

static GtkWidget *
new_page (void)
{
  return adw_preferences_page_new ();
}

static GtkWidget *
new_group (GtkWidget  *page,
           const char *title,
           const char *description)
{
  GtkWidget *group = adw_preferences_group_new ();

  if (title != NULL)
    adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (group), title);
  if (description != NULL)
    adw_preferences_group_set_description (ADW_PREFERENCES_GROUP (group), description);
  if (page != NULL)
    adw_preferences_page_add (ADW_PREFERENCES_PAGE (page), ADW_PREFERENCES_GROUP (group));
  return group;
}

static GtkWidget *
add_button (const char *label)
{
  GtkWidget *button = gtk_button_new_with_mnemonic (label);

  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (button, "suggested-action");
  return button;
}

static GtkWidget *
error_label (void)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_set_margin_top (label, 6);
  gtk_widget_add_css_class (label, "error");
  gtk_widget_set_visible (label, FALSE);
  return label;
}

static void
show_error (GtkWidget    *label,
            const GError *error)
{
  gtk_label_set_label (GTK_LABEL (label), error->message);
  gtk_widget_set_visible (label, TRUE);
}

static GtkWidget *
show_load_error (GtkWidget    *page,
                 const GError *error)
{
  new_group (page, NULL, error->message);
  return page;
}

/* An entry that sets one field of a record through relais_record_set(),
 * with the same validation as at creation, its message shown inline. */
typedef struct {
  RelaisPagesContext *context;
  const char         *entity;  /* static */
  const char         *field;   /* static */
  const char         *page;    /* static */
  char               *id;
  GtkWidget          *error;
} FieldRow;

static void
field_row_free (FieldRow *row)
{
  g_free (row->id);
  g_free (row);
}

static FieldRow *
field_row_new (RelaisPagesContext *context,
               const char         *entity,
               const char         *id,
               const char         *field,
               const char         *page,
               GtkWidget          *error)
{
  FieldRow *row = g_new0 (FieldRow, 1);

  row->context = context;
  row->entity = entity;
  row->id = g_strdup (id);
  row->field = field;
  row->page = page;
  row->error = error;
  return row;
}

static void
field_row_write (FieldRow   *row,
                 const char *value)
{
  g_autoptr(GError) error = NULL;

  if (!ready (row->context))
    return;
  if (!relais_record_set (row->context->vault, row->entity, row->id, row->field, value, &error))
    {
      show_error (row->error, error);
      return;
    }
  gtk_widget_set_visible (row->error, FALSE);
  written (row->context, row->page);
}

/* "2026-11-25 14:30" → "25/11/2026 at 14:30" */
static char *
format_at (const char *at)
{
  g_autofree char *day = NULL;
  const char *time;

  if (at == NULL || strlen (at) < 16)
    return g_strdup (at);
  day = g_strndup (at, 10);
  time = at + 11;
  {
    g_autofree char *shown = relais_format_date (day);
    g_autofree char *hhmm = g_strndup (time, 5);

    /* Translators: an appointment's date, then its time. */
    return g_strdup_printf (_("%s at %s"), shown != NULL ? shown : day, hhmm);
  }
}

/* "2026-11-25T09:30:00Z" → local date and time */
static char *
format_written_at (const char *iso)
{
  g_autoptr(GDateTime) utc = iso != NULL ? g_date_time_new_from_iso8601 (iso, NULL) : NULL;
  g_autoptr(GDateTime) local = NULL;
  g_autofree char *day = NULL;
  g_autofree char *hhmm = NULL;
  g_autofree char *date = NULL;

  if (utc == NULL)
    return g_strdup (iso);
  local = g_date_time_to_local (utc);
  day = g_date_time_format (local, "%Y-%m-%d");
  hhmm = g_date_time_format (local, "%H:%M");
  date = relais_format_date (day);
  return g_strdup_printf (_("%s at %s"), date, hhmm);
}

static char *
today_iso (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();

  return g_date_time_format (now, "%Y-%m-%d");
}

/* "DD/MM/YYYY" or "YYYY-MM-DD" → "YYYY-MM-DD"; "" → NULL with no error. */
static gboolean
parse_optional_date (const char  *text,
                     const char  *what,
                     char       **out,
                     GError     **error)
{
  g_autofree char *trimmed = g_strstrip (g_strdup (text != NULL ? text : ""));

  *out = NULL;
  if (*trimmed == '\0')
    return TRUE;
  *out = relais_normalize_date (text);
  if (*out == NULL)
    {
      /* Translators: %s names a date field, e.g. "The start date". */
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                   _("%s is not a valid date: write it as DD/MM/YYYY."), what);
      return FALSE;
    }
  return TRUE;
}

typedef struct {
  RelaisPagesContext *context;
  const char         *entity;  /* static */
  const char         *page;    /* static */
  char               *id;
} RemoveData;

static void
remove_data_free (RemoveData *data)
{
  g_free (data->id);
  g_free (data);
}

static void
on_remove_clicked (GtkButton  *button,
                   RemoveData *data)
{
  RelaisPagesContext *context = data->context;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = g_strdup (data->id);

  if (!ready (context))
    return;
  if (!relais_record_remove (context->vault, data->entity, id, &error))
    {
      failed (context, error);
      return;
    }
  context->removed (data->entity, id, data->page, context->user_data);
  written (context, data->page);
}

/* A button that removes a record; the toast that follows offers Undo. */
static GtkWidget *
remove_button (RelaisPagesContext *context,
               const char         *entity,
               const char         *id,
               const char         *page)
{
  GtkWidget *button = gtk_button_new_from_icon_name ("user-trash-symbolic");
  RemoveData *data = g_new0 (RemoveData, 1);

  data->context = context;
  data->entity = entity;
  data->page = page;
  data->id = g_strdup (id);
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (button, "flat");
  gtk_widget_set_tooltip_text (button, _("Remove"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (button), GTK_ACCESSIBLE_PROPERTY_LABEL, _("Remove"), -1);
  g_object_set_data_full (G_OBJECT (button), "remove-data", data, (GDestroyNotify) remove_data_free);
  g_signal_connect (button, "clicked", G_CALLBACK (on_remove_clicked), data);
  return button;
}

/* ------------------------------------------------------------------------
 * At a glance
 * ------------------------------------------------------------------------ */

static void
glance_add (AdwPreferencesGroup *group,
            GPtrArray           *rows,
            GtkWidget           *row)
{
  adw_preferences_group_add (group, row);
  g_ptr_array_add (rows, row);
}

void
relais_pages_fill_glance (RelaisPagesContext  *context,
                          AdwPreferencesGroup *group,
                          GPtrArray           *rows)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisAppointment) next = NULL;
  g_autoptr(GPtrArray) actions = NULL;
  g_autoptr(GPtrArray) notes = NULL;
  g_autoptr(GPtrArray) diagnostics = NULL;
  g_autoptr(GString) themes = g_string_new (NULL);
  gboolean assessed = FALSE;
  guint late = 0;

  for (guint i = 0; i < rows->len; i++)
    adw_preferences_group_remove (group, g_ptr_array_index (rows, i));
  g_ptr_array_set_size (rows, 0);

  if (!ready (context))
    return;

  next = relais_appointment_next (context->vault, context->dossier, NULL, &error);
  if (error == NULL)
    {
      g_autofree char *when = next != NULL ? format_at (next->at) : NULL;
      g_autofree char *line = NULL;

      if (next != NULL)
        line = g_strdup_printf ("%s · %s", when, next->with_whom != NULL ? next->with_whom : "");
      glance_add (group, rows, text_row (_("Next Appointment"),
                                         line != NULL ? line : _("None planned")));
    }
  g_clear_error (&error);

  diagnostics = relais_diagnostic_list (context->vault, context->dossier, &error);
  for (guint i = 0; diagnostics != NULL && i < diagnostics->len; i++)
    {
      RelaisDiagnostic *d = g_ptr_array_index (diagnostics, i);

      if (d->level == NULL)
        continue;
      assessed = TRUE;
      if (strcmp (d->level, "moyen") != 0 && strcmp (d->level, "fort") != 0)
        continue;
      if (themes->len > 0)
        g_string_append (themes, ", ");
      /* Translators: a diagnostic theme and its level, e.g. "Logement (Frein fort)". */
      g_string_append_printf (themes, _("%s (%s)"),
                              label_of (relais_themes, d->theme),
                              label_of (relais_diagnostic_levels, d->level));
    }
  g_clear_error (&error);
  glance_add (group, rows,
              text_row (_("Obstacles"),
                        themes->len > 0 ? themes->str
                        : assessed ? _("No obstacle recorded in the diagnostic")
                        : _("The diagnostic has not been started")));

  actions = relais_action_list_open (context->vault, context->dossier, NULL, &error);
  if (actions != NULL)
    {
      g_autofree char *count = NULL;

      for (guint i = 0; i < actions->len; i++)
        if (((RelaisAction *) g_ptr_array_index (actions, i))->late)
          late++;
      if (actions->len == 0)
        count = g_strdup (_("No open action"));
      else if (late > 0)
        /* Translators: "3 open actions, 1 late". */
        count = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u open, %u late", "%u open, %u late", actions->len),
                                 actions->len, late);
      else
        count = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u open action", "%u open actions", actions->len),
                                 actions->len);
      glance_add (group, rows, text_row (_("Plan"), count));

      for (guint i = 0; i < MIN (actions->len, 3); i++)
        {
          RelaisAction *a = g_ptr_array_index (actions, i);
          g_autofree char *due = relais_format_date (a->due);
          g_autofree char *line = NULL;
          GtkWidget *row;

          if (due != NULL)
            line = g_strdup_printf (a->late ? _("Late: was due on %s") : _("Due on %s"), due);
          row = text_row (a->text, line);
          if (a->late)
            gtk_widget_add_css_class (row, "error");
          glance_add (group, rows, row);
        }
    }
  g_clear_error (&error);

  notes = relais_note_list (context->vault, context->dossier, 2, &error);
  for (guint i = 0; notes != NULL && i < notes->len; i++)
    {
      RelaisNote *n = g_ptr_array_index (notes, i);
      g_autofree char *when = format_written_at (n->written_at);
      g_autofree char *line = g_strdup_printf ("%s · %s", when, n->author != NULL ? n->author : "");
      GtkWidget *row = text_row (n->text, line);

      adw_action_row_set_title_lines (ADW_ACTION_ROW (row), 3);
      glance_add (group, rows, row);
    }
}

/* ------------------------------------------------------------------------
 * Diagnostic
 * ------------------------------------------------------------------------ */

typedef struct {
  RelaisPagesContext *context;
  char               *theme;
  GtkWidget          *expander;
  AdwComboRow        *level;
  AdwEntryRow        *comment;
  GPtrArray          *checks;  /* GtkCheckButton, key in "key" */
} ThemeRow;

static void
theme_row_free (ThemeRow *row)
{
  g_free (row->theme);
  g_ptr_array_unref (row->checks);
  g_free (row);
}

static char *
diagnostic_subtitle (const RelaisDiagnostic *d)
{
  g_autofree char *date = NULL;
  g_autofree char *day = NULL;

  if (d->level == NULL)
    return g_strdup (_("Not assessed"));
  if (d->changed_at != NULL)
    {
      day = g_date_time_format (d->changed_at, "%Y-%m-%d");
      date = relais_format_date (day);
    }
  if (date != NULL && d->author != NULL)
    /* Translators: a theme's level, then who assessed it and when. */
    return g_strdup_printf (_("%s — by %s on %s"), label_of (relais_diagnostic_levels, d->level),
                            d->author, date);
  return g_strdup (label_of (relais_diagnostic_levels, d->level));
}

static void
theme_write (ThemeRow *row,
             gboolean  with_situations,
             gboolean  with_comment)
{
  RelaisPagesContext *context = row->context;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) situations = g_ptr_array_new ();
  g_autoptr(RelaisDiagnostic) now = NULL;
  g_autofree char *subtitle = NULL;
  const char *level;

  if (!ready (context))
    return;
  level = choice_key_at (relais_diagnostic_levels, adw_combo_row_get_selected (row->level));
  if (level == NULL)
    return;

  for (guint i = 0; i < row->checks->len; i++)
    {
      GtkCheckButton *check = g_ptr_array_index (row->checks, i);

      if (gtk_check_button_get_active (check))
        g_ptr_array_add (situations, g_object_get_data (G_OBJECT (check), "key"));
    }
  g_ptr_array_add (situations, NULL);

  if (!relais_diagnostic_set (context->vault, context->dossier, row->theme, level,
                              with_situations ? (const char * const *) situations->pdata : NULL,
                              with_comment ? gtk_editable_get_text (GTK_EDITABLE (row->comment)) : NULL,
                              &error))
    {
      failed (context, error);
      return;
    }

  for (guint i = 0; i < row->checks->len; i++)
    gtk_widget_set_sensitive (g_ptr_array_index (row->checks, i), TRUE);
  gtk_widget_set_sensitive (GTK_WIDGET (row->comment), TRUE);

  now = relais_diagnostic_get (context->vault, context->dossier, row->theme, NULL);
  if (now != NULL)
    {
      subtitle = diagnostic_subtitle (now);
      adw_expander_row_set_subtitle (ADW_EXPANDER_ROW (row->expander), subtitle);
    }
  written (context, "diagnostic");
}

static void
on_theme_level (AdwComboRow *combo,
                GParamSpec  *pspec,
                ThemeRow    *row)
{
  theme_write (row, FALSE, FALSE);
}

static void
on_theme_situation (GtkCheckButton *check,
                    ThemeRow       *row)
{
  theme_write (row, TRUE, FALSE);
}

static void
on_theme_comment (AdwEntryRow *entry,
                  ThemeRow    *row)
{
  theme_write (row, FALSE, TRUE);
}

GtkWidget *
relais_pages_build_diagnostic (RelaisPagesContext *context)
{
  GtkWidget *page = new_page ();
  GtkWidget *group;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) diagnostics = NULL;

  if (!ready (context))
    return page;

  diagnostics = relais_diagnostic_list (context->vault, context->dossier, &error);
  if (diagnostics == NULL)
    return show_load_error (page, error);

  group = new_group (page, _("Diagnostic"),
                     _("For each theme: how much it holds the person back, the situations that apply, and a comment. Each change is signed with your name and dated; earlier assessments stay below."));

  for (guint i = 0; i < diagnostics->len; i++)
    {
      RelaisDiagnostic *d = g_ptr_array_index (diagnostics, i);
      const RelaisChoice *situations = relais_theme_situations (d->theme);
      g_autoptr(GtkStringList) levels = choice_model (relais_diagnostic_levels, NULL);
      g_autoptr(GPtrArray) history = NULL;
      g_autofree char *subtitle = diagnostic_subtitle (d);
      ThemeRow *row = g_new0 (ThemeRow, 1);

      row->context = context;
      row->theme = g_strdup (d->theme);
      row->checks = g_ptr_array_new ();

      row->expander = adw_expander_row_new ();
      adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row->expander), FALSE);
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row->expander), label_of (relais_themes, d->theme));
      adw_expander_row_set_subtitle (ADW_EXPANDER_ROW (row->expander), subtitle);
      g_object_set_data_full (G_OBJECT (row->expander), "theme-row", row, (GDestroyNotify) theme_row_free);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row->expander);

      row->level = ADW_COMBO_ROW (adw_combo_row_new ());
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row->level), _("Level"));
      adw_combo_row_set_model (row->level, G_LIST_MODEL (levels));
      adw_combo_row_set_selected (row->level, choice_index (relais_diagnostic_levels, d->level));
      adw_expander_row_add_row (ADW_EXPANDER_ROW (row->expander), GTK_WIDGET (row->level));

      for (guint j = 0; situations != NULL && situations[j].key != NULL; j++)
        {
          GtkWidget *check = gtk_check_button_new ();
          GtkWidget *srow = text_row (relais_choice_label (situations, situations[j].key), NULL);

          gtk_check_button_set_active (GTK_CHECK_BUTTON (check),
                                       d->situations != NULL && g_strv_contains ((const char * const *) d->situations,
                                                                                 situations[j].key));
          /* A situation belongs to an assessment: choose the level first. */
          gtk_widget_set_sensitive (check, d->level != NULL);
          gtk_widget_set_valign (check, GTK_ALIGN_CENTER);
          g_object_set_data (G_OBJECT (check), "key", (gpointer) situations[j].key);
          gtk_accessible_update_property (GTK_ACCESSIBLE (check), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                          relais_choice_label (situations, situations[j].key), -1);
          adw_action_row_add_prefix (ADW_ACTION_ROW (srow), check);
          adw_action_row_set_activatable_widget (ADW_ACTION_ROW (srow), check);
          adw_expander_row_add_row (ADW_EXPANDER_ROW (row->expander), srow);
          g_ptr_array_add (row->checks, check);
          g_signal_connect (check, "toggled", G_CALLBACK (on_theme_situation), row);
        }

      row->comment = ADW_ENTRY_ROW (entry_row (_("Comment")));
      adw_entry_row_set_show_apply_button (row->comment, TRUE);
      gtk_editable_set_text (GTK_EDITABLE (row->comment), d->comment != NULL ? d->comment : "");
      gtk_widget_set_sensitive (GTK_WIDGET (row->comment), d->level != NULL);
      adw_expander_row_add_row (ADW_EXPANDER_ROW (row->expander), GTK_WIDGET (row->comment));
      g_signal_connect (row->comment, "apply", G_CALLBACK (on_theme_comment), row);

      history = relais_diagnostic_history (context->vault, context->dossier, d->theme, NULL);
      /* The last one is the current assessment, above. */
      for (guint j = history != NULL && history->len > 0 ? history->len - 1 : 0; j > 0 && j + 5 > history->len; j--)
        {
          RelaisDiagnostic *h = g_ptr_array_index (history, j - 1);
          g_autofree char *title = diagnostic_subtitle (h);
          GtkWidget *hrow = text_row (title, h->comment);

          gtk_widget_add_css_class (hrow, "dim-label");
          adw_expander_row_add_row (ADW_EXPANDER_ROW (row->expander), hrow);
        }

      /* Connected last: setting the stored level is not a change. */
      g_signal_connect (row->level, "notify::selected", G_CALLBACK (on_theme_level), row);
    }

  return page;
}

/* ------------------------------------------------------------------------
 * Plan
 * ------------------------------------------------------------------------ */

typedef struct {
  RelaisPagesContext *context;
  char               *id;
  const RelaisChoice *statuses;
} StatusRow;

static void
status_row_free (StatusRow *row)
{
  g_free (row->id);
  g_free (row);
}

static void
on_plan_status (GtkDropDown *drop_down,
                GParamSpec  *pspec,
                StatusRow   *row)
{
  g_autoptr(GError) error = NULL;
  const char *key = choice_key_at (row->statuses, gtk_drop_down_get_selected (drop_down));

  if (!ready (row->context) || key == NULL)
    return;
  if (!relais_plan_set_status (row->context->vault, row->id, key, &error))
    failed (row->context, error);
  else
    written (row->context, NULL);
}

static GtkWidget *
plan_status (RelaisPagesContext *context,
             const RelaisChoice *statuses,
             const char         *id,
             const char         *status)
{
  GtkWidget *drop_down = status_drop_down (statuses, status, _("Status"));
  StatusRow *row = g_new0 (StatusRow, 1);

  row->context = context;
  row->id = g_strdup (id);
  row->statuses = statuses;
  g_object_set_data_full (G_OBJECT (drop_down), "status-row", row, (GDestroyNotify) status_row_free);
  g_signal_connect (drop_down, "notify::selected", G_CALLBACK (on_plan_status), row);
  return drop_down;
}

static void
on_objective_apply (AdwEntryRow *entry,
                    gpointer     user_data)
{
  RelaisPagesContext *context = user_data;
  AdwComboRow *theme = g_object_get_data (G_OBJECT (entry), "theme");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (entry), "error");
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  const char *key = choice_key_at (relais_themes, adw_combo_row_get_selected (theme));

  if (!ready (context))
    return;
  id = relais_objective_add (context->vault, context->dossier, key,
                             gtk_editable_get_text (GTK_EDITABLE (entry)), &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "plan");
}

static void
on_action_apply (AdwEntryRow *entry,
                 gpointer     user_data)
{
  RelaisPagesContext *context = user_data;
  const char *objective = g_object_get_data (G_OBJECT (entry), "objective");
  AdwEntryRow *due_row = g_object_get_data (G_OBJECT (entry), "due");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (entry), "error");
  g_autoptr(GError) error = NULL;
  g_autofree char *due = NULL;
  g_autofree char *id = NULL;

  if (!ready (context))
    return;
  if (!parse_optional_date (gtk_editable_get_text (GTK_EDITABLE (due_row)), _("The due date"),
                            &due, &error))
    {
      show_error (error_widget, error);
      return;
    }
  id = relais_action_add (context->vault, objective, gtk_editable_get_text (GTK_EDITABLE (entry)),
                          due, NULL, &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "plan");
}

static void
on_action_due_apply (AdwEntryRow *entry,
                     FieldRow    *row)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *due = NULL;

  if (!parse_optional_date (gtk_editable_get_text (GTK_EDITABLE (entry)), _("The due date"),
                            &due, &error))
    {
      show_error (row->error, error);
      return;
    }
  field_row_write (row, due);
}

static void
on_action_carrier_apply (AdwEntryRow *entry,
                         FieldRow    *row)
{
  g_autofree char *carrier = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (entry))));

  field_row_write (row, carrier);
}

/* An action of the plan: its status and removal at hand, its due date and
 * the organisation that carries it editable when it is expanded. */
static GtkWidget *
action_row (RelaisPagesContext *context,
            const RelaisAction *action,
            const char         *subtitle)
{
  GtkWidget *row = adw_expander_row_new ();
  GtkWidget *error_widget = error_label ();
  GtkWidget *due = entry_row (_("Due Date (DD/MM/YYYY)"));
  GtkWidget *carrier = entry_row (_("Carried By"));
  g_autofree char *date = relais_format_date (action->due);
  FieldRow *field;

  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), action->text);
  if (subtitle != NULL)
    adw_expander_row_set_subtitle (ADW_EXPANDER_ROW (row), subtitle);
  if (action->late)
    gtk_widget_add_css_class (row, "error");
  adw_expander_row_add_action (ADW_EXPANDER_ROW (row),
                               plan_status (context, relais_action_statuses, action->id, action->status));
  adw_expander_row_add_action (ADW_EXPANDER_ROW (row),
                               remove_button (context, RELAIS_ENTITY_ACTION, action->id, "plan"));

  gtk_editable_set_text (GTK_EDITABLE (due), date != NULL ? date : "");
  adw_entry_row_set_show_apply_button (ADW_ENTRY_ROW (due), TRUE);
  field = field_row_new (context, RELAIS_ENTITY_ACTION, action->id, "due", "plan", error_widget);
  g_object_set_data_full (G_OBJECT (due), "field-row", field, (GDestroyNotify) field_row_free);
  g_signal_connect (due, "apply", G_CALLBACK (on_action_due_apply), field);

  gtk_editable_set_text (GTK_EDITABLE (carrier), action->carrier != NULL ? action->carrier : "");
  adw_entry_row_set_show_apply_button (ADW_ENTRY_ROW (carrier), TRUE);
  field = field_row_new (context, RELAIS_ENTITY_ACTION, action->id, "carrier", "plan", error_widget);
  g_object_set_data_full (G_OBJECT (carrier), "field-row", field, (GDestroyNotify) field_row_free);
  g_signal_connect (carrier, "apply", G_CALLBACK (on_action_carrier_apply), field);

  adw_expander_row_add_row (ADW_EXPANDER_ROW (row), due);
  adw_expander_row_add_row (ADW_EXPANDER_ROW (row), carrier);
  adw_expander_row_add_row (ADW_EXPANDER_ROW (row), error_widget);
  return row;
}

static void add_orientations (RelaisPagesContext *context,
                              GtkWidget          *page);

GtkWidget *
relais_pages_build_plan (RelaisPagesContext *context)
{
  GtkWidget *page = new_page ();
  GtkWidget *group;
  GtkWidget *theme;
  GtkWidget *text;
  GtkWidget *error_widget;
  g_autoptr(GtkStringList) themes = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) objectives = NULL;
  g_autoptr(GPtrArray) actions = NULL;

  if (!ready (context))
    return page;

  objectives = relais_objective_list (context->vault, context->dossier, &error);
  if (objectives == NULL)
    return show_load_error (page, error);
  actions = relais_action_list (context->vault, context->dossier, NULL, &error);
  if (actions == NULL)
    return show_load_error (page, error);

  for (guint i = 0; i < objectives->len; i++)
    {
      RelaisObjective *o = g_ptr_array_index (objectives, i);
      GtkWidget *action_text;
      GtkWidget *due;
      GtkWidget *action_error;

      group = new_group (page, label_of (relais_themes, o->theme), NULL);
      {
        GtkWidget *orow = text_row (o->text, _("Objective"));

        adw_action_row_add_suffix (ADW_ACTION_ROW (orow),
                                   plan_status (context, relais_objective_statuses, o->id, o->status));
        gtk_widget_add_css_class (orow, "heading");
        adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), orow);
      }

      for (guint j = 0; j < actions->len; j++)
        {
          RelaisAction *a = g_ptr_array_index (actions, j);
          g_autofree char *date = NULL;
          g_autofree char *line = NULL;
          GtkWidget *arow;

          if (g_strcmp0 (a->objective, o->id) != 0)
            continue;
          date = relais_format_date (a->due);
          if (date != NULL)
            line = g_strdup_printf (a->late ? _("Late: was due on %s") : _("Due on %s"), date);
          if (a->carrier != NULL && *a->carrier != '\0')
            {
              g_autofree char *with = line != NULL ? g_strdup_printf ("%s · %s", line, a->carrier)
                                                   : g_strdup (a->carrier);
              g_free (line);
              line = g_steal_pointer (&with);
            }
          arow = action_row (context, a, line);
          adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), arow);
        }

      action_text = entry_row (_("New Action"));
      due = entry_row (_("Due Date (DD/MM/YYYY, optional)"));
      action_error = error_label ();
      adw_entry_row_set_show_apply_button (ADW_ENTRY_ROW (action_text), TRUE);
      g_object_set_data_full (G_OBJECT (action_text), "objective", g_strdup (o->id), g_free);
      g_object_set_data (G_OBJECT (action_text), "due", due);
      g_object_set_data (G_OBJECT (action_text), "error", action_error);
      g_signal_connect (action_text, "apply", G_CALLBACK (on_action_apply), context);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), action_text);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), due);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), action_error);
    }

  group = new_group (page, _("New Objective"),
                     objectives->len == 0 ? _("The plan has no objective yet. An objective belongs to a theme of the diagnostic; its actions come next.") : NULL);
  themes = choice_model (relais_themes, NULL);
  theme = adw_combo_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (theme), _("Theme"));
  adw_combo_row_set_model (ADW_COMBO_ROW (theme), G_LIST_MODEL (themes));
  text = entry_row (_("Objective"));
  adw_entry_row_set_show_apply_button (ADW_ENTRY_ROW (text), TRUE);
  error_widget = error_label ();
  g_object_set_data (G_OBJECT (text), "theme", theme);
  g_object_set_data (G_OBJECT (text), "error", error_widget);
  g_signal_connect (text, "apply", G_CALLBACK (on_objective_apply), context);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), theme);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), text);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), error_widget);

  add_orientations (context, page);

  return page;
}

static void on_record_status (GtkDropDown *drop_down,
                                   GParamSpec  *pspec,
                                   StatusRow   *row);

static void
on_orientation_add (GtkButton *button,
                    gpointer   user_data)
{
  RelaisPagesContext *context = user_data;
  GtkEditable *structure = g_object_get_data (G_OBJECT (button), "structure");
  GtkEditable *reason = g_object_get_data (G_OBJECT (button), "reason");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (button), "error");
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  const char *why = gtk_editable_get_text (reason);

  if (!ready (context))
    return;
  id = relais_orientation_add (context->vault, context->dossier, gtk_editable_get_text (structure),
                               *why != '\0' ? why : NULL, &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "plan");
}

/* Orientations to a structure or service belong with the plan: they are
 * how its actions get carried. */
static void
add_orientations (RelaisPagesContext *context,
                  GtkWidget          *page)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) orientations = relais_orientation_list (context->vault, context->dossier, &error);
  GtkWidget *group, *structure, *reason, *button, *error_widget;

  if (orientations == NULL)
    {
      new_group (page, _("Orientations"), error->message);
      return;
    }

  group = new_group (page, _("Orientations"),
                     orientations->len == 0 ? _("No orientation yet: the structures or services the person is sent to.") : NULL);
  for (guint i = 0; i < orientations->len; i++)
    {
      RelaisOrientation *o = g_ptr_array_index (orientations, i);
      g_autofree char *date = relais_format_date (o->oriented_on);
      g_autofree char *line = NULL;
      GtkWidget *row;
      GtkWidget *drop_down = status_drop_down (relais_orientation_statuses, o->status, _("Status"));
      StatusRow *status = g_new0 (StatusRow, 1);

      if (o->reason != NULL && *o->reason != '\0')
        line = g_strdup_printf ("%s · %s", date != NULL ? date : "", o->reason);
      else
        line = g_strdup (date);
      row = text_row (o->structure, line);
      status->context = context;
      status->id = g_strdup (o->id);
      status->statuses = relais_orientation_statuses;
      g_object_set_data_full (G_OBJECT (drop_down), "status-row", status, (GDestroyNotify) status_row_free);
      g_object_set_data (G_OBJECT (drop_down), "entity", (gpointer) RELAIS_ENTITY_ORIENTATION);
      g_signal_connect (drop_down, "notify::selected", G_CALLBACK (on_record_status), status);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), drop_down);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row),
                                 remove_button (context, RELAIS_ENTITY_ORIENTATION, o->id, "plan"));
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
    }

  group = new_group (page, _("New Orientation"), NULL);
  structure = entry_row (_("Structure or Service"));
  reason = entry_row (_("Reason (optional)"));
  error_widget = error_label ();
  button = add_button (_("_Add the Orientation"));
  gtk_widget_set_halign (button, GTK_ALIGN_END);
  gtk_widget_set_margin_top (button, 12);
  g_object_set_data (G_OBJECT (button), "structure", structure);
  g_object_set_data (G_OBJECT (button), "reason", reason);
  g_object_set_data (G_OBJECT (button), "error", error_widget);
  g_signal_connect (button, "clicked", G_CALLBACK (on_orientation_add), context);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), structure);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), reason);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), error_widget);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), button);
}

/* ------------------------------------------------------------------------
 * Journal
 * ------------------------------------------------------------------------ */

static void
on_note_add (GtkButton *button,
             gpointer   user_data)
{
  RelaisPagesContext *context = user_data;
  GtkTextView *view = g_object_get_data (G_OBJECT (button), "view");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (button), "error");
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (view);
  GtkTextIter start, end;
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;

  if (!ready (context))
    return;
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  text = g_strstrip (gtk_text_buffer_get_text (buffer, &start, &end, FALSE));
  if (*text == '\0')
    {
      gtk_widget_grab_focus (GTK_WIDGET (view));
      return;
    }
  id = relais_note_add (context->vault, context->dossier, text, &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "journal");
}

GtkWidget *
relais_pages_build_journal (RelaisPagesContext *context)
{
  GtkWidget *page = new_page ();
  GtkWidget *group;
  GtkWidget *frame;
  GtkWidget *view;
  GtkWidget *button;
  GtkWidget *error_widget;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) notes = NULL;

  if (!ready (context))
    return page;

  notes = relais_note_list (context->vault, context->dossier, 0, &error);
  if (notes == NULL)
    return show_load_error (page, error);

  group = new_group (page, _("New Note"), _("What happened, what was said, what comes next. Notes are signed and dated, and cannot be changed afterwards."));
  view = gtk_text_view_new ();
  gtk_text_view_set_wrap_mode (GTK_TEXT_VIEW (view), GTK_WRAP_WORD_CHAR);
  gtk_text_view_set_top_margin (GTK_TEXT_VIEW (view), 12);
  gtk_text_view_set_bottom_margin (GTK_TEXT_VIEW (view), 12);
  gtk_text_view_set_left_margin (GTK_TEXT_VIEW (view), 12);
  gtk_text_view_set_right_margin (GTK_TEXT_VIEW (view), 12);
  gtk_widget_set_size_request (view, -1, 100);
  gtk_accessible_update_property (GTK_ACCESSIBLE (view), GTK_ACCESSIBLE_PROPERTY_LABEL, _("New note"), -1);
  frame = gtk_frame_new (NULL);
  gtk_frame_set_child (GTK_FRAME (frame), view);
  gtk_widget_add_css_class (frame, "view");
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), frame);
  button = add_button (_("_Add the Note"));
  gtk_widget_set_halign (button, GTK_ALIGN_END);
  gtk_widget_set_margin_top (button, 12);
  error_widget = error_label ();
  g_object_set_data (G_OBJECT (button), "view", view);
  g_object_set_data (G_OBJECT (button), "error", error_widget);
  g_signal_connect (button, "clicked", G_CALLBACK (on_note_add), context);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), error_widget);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), button);

  group = new_group (page, _("Journal"), notes->len == 0 ? _("No note yet.") : NULL);
  for (guint i = 0; i < notes->len; i++)
    {
      RelaisNote *n = g_ptr_array_index (notes, i);
      g_autofree char *when = format_written_at (n->written_at);
      g_autofree char *line = g_strdup_printf ("%s · %s", when, n->author != NULL ? n->author : "");
      GtkWidget *row = text_row (n->text, line);

      adw_action_row_set_title_lines (ADW_ACTION_ROW (row), 0);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
    }

  return page;
}

/* ------------------------------------------------------------------------
 * Appointments
 * ------------------------------------------------------------------------ */

static void
on_record_status (GtkDropDown *drop_down,
                       GParamSpec  *pspec,
                       StatusRow   *row)
{
  g_autoptr(GError) error = NULL;
  const char *key = choice_key_at (row->statuses, gtk_drop_down_get_selected (drop_down));
  const char *entity = g_object_get_data (G_OBJECT (drop_down), "entity");

  if (!ready (row->context) || key == NULL)
    return;
  if (!relais_record_set (row->context->vault, entity != NULL ? entity : RELAIS_ENTITY_APPOINTMENT,
                          row->id, "status", key, &error))
    failed (row->context, error);
  else
    written (row->context, NULL);
}

static void
on_appointment_add (GtkButton *button,
                    gpointer   user_data)
{
  RelaisPagesContext *context = user_data;
  GtkEditable *date = g_object_get_data (G_OBJECT (button), "date");
  GtkEditable *time = g_object_get_data (G_OBJECT (button), "time");
  GtkEditable *with = g_object_get_data (G_OBJECT (button), "with");
  GtkEditable *place = g_object_get_data (G_OBJECT (button), "place");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (button), "error");
  g_autoptr(GError) error = NULL;
  g_autofree char *day = NULL;
  g_autofree char *at = NULL;
  g_autofree char *id = NULL;
  int hours, minutes;
  char extra;

  if (!ready (context))
    return;
  day = relais_normalize_date (gtk_editable_get_text (date));
  if (day == NULL)
    {
      g_set_error_literal (&error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                           _("The date is not valid: write it as DD/MM/YYYY."));
      show_error (error_widget, error);
      gtk_widget_grab_focus (GTK_WIDGET (date));
      return;
    }
  if (sscanf (gtk_editable_get_text (time), "%d:%d%c", &hours, &minutes, &extra) != 2
      && sscanf (gtk_editable_get_text (time), "%dh%d%c", &hours, &minutes, &extra) != 2)
    hours = -1;
  if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59)
    {
      g_set_error_literal (&error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                           _("The time is not valid: write it as HH:MM, for example 14:30."));
      show_error (error_widget, error);
      gtk_widget_grab_focus (GTK_WIDGET (time));
      return;
    }
  at = g_strdup_printf ("%s %02d:%02d", day, hours, minutes);
  id = relais_appointment_add (context->vault, context->dossier, at,
                               gtk_editable_get_text (with),
                               *gtk_editable_get_text (place) != '\0' ? gtk_editable_get_text (place) : NULL,
                               &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "appointments");
}

GtkWidget *
relais_pages_build_appointments (RelaisPagesContext *context)
{
  GtkWidget *page = new_page ();
  GtkWidget *group;
  GtkWidget *date, *time, *with, *place, *button, *error_widget;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) appointments = NULL;

  if (!ready (context))
    return page;

  appointments = relais_appointment_list (context->vault, context->dossier, &error);
  if (appointments == NULL)
    return show_load_error (page, error);

  group = new_group (page, _("Appointments"), appointments->len == 0 ? _("No appointment yet.") : NULL);
  for (guint i = 0; i < appointments->len; i++)
    {
      RelaisAppointment *a = g_ptr_array_index (appointments, i);
      g_autofree char *when = format_at (a->at);
      g_autofree char *title = g_strdup_printf ("%s · %s", when, a->with_whom != NULL ? a->with_whom : "");
      GtkWidget *row = text_row (title, a->place);
      GtkWidget *drop_down = status_drop_down (relais_appointment_statuses, a->status, _("Status"));
      StatusRow *status = g_new0 (StatusRow, 1);

      status->context = context;
      status->id = g_strdup (a->id);
      status->statuses = relais_appointment_statuses;
      g_object_set_data_full (G_OBJECT (drop_down), "status-row", status, (GDestroyNotify) status_row_free);
      g_signal_connect (drop_down, "notify::selected", G_CALLBACK (on_record_status), status);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), drop_down);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row),
                                 remove_button (context, RELAIS_ENTITY_APPOINTMENT, a->id, "appointments"));
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
    }

  group = new_group (page, _("New Appointment"), NULL);
  date = entry_row (_("Date (DD/MM/YYYY)"));
  time = entry_row (_("Time (HH:MM)"));
  with = entry_row (_("With Whom"));
  place = entry_row (_("Place (optional)"));
  error_widget = error_label ();
  button = add_button (_("_Add the Appointment"));
  gtk_widget_set_halign (button, GTK_ALIGN_END);
  gtk_widget_set_margin_top (button, 12);
  g_object_set_data (G_OBJECT (button), "date", date);
  g_object_set_data (G_OBJECT (button), "time", time);
  g_object_set_data (G_OBJECT (button), "with", with);
  g_object_set_data (G_OBJECT (button), "place", place);
  g_object_set_data (G_OBJECT (button), "error", error_widget);
  g_signal_connect (button, "clicked", G_CALLBACK (on_appointment_add), context);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), date);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), time);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), with);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), place);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), error_widget);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), button);

  return page;
}

/* ------------------------------------------------------------------------
 * Situation and contracts
 * ------------------------------------------------------------------------ */

static void
situation_write (RelaisPagesContext    *context,
                 const RelaisSituation *changes)
{
  g_autoptr(GError) error = NULL;

  if (!ready (context))
    return;
  if (!relais_situation_edit (context->vault, context->dossier, changes, &error))
    failed (context, error);
  else
    written (context, NULL);
}

static void
on_right_toggled (GtkCheckButton *check,
                  gpointer        user_data)
{
  RelaisPagesContext *context = user_data;
  GPtrArray *checks = g_object_get_data (G_OBJECT (check), "checks");
  g_autoptr(GPtrArray) rights = g_ptr_array_new ();
  RelaisSituation changes = { 0 };

  for (guint i = 0; i < checks->len; i++)
    if (gtk_check_button_get_active (g_ptr_array_index (checks, i)))
      g_ptr_array_add (rights, g_object_get_data (G_OBJECT (g_ptr_array_index (checks, i)), "key"));
  g_ptr_array_add (rights, NULL);
  changes.rights = (char **) rights->pdata;
  situation_write (context, &changes);
}

static void
on_situation_choice (AdwComboRow *combo,
                     GParamSpec  *pspec,
                     gpointer     user_data)
{
  RelaisPagesContext *context = user_data;
  const RelaisChoice *choices = g_object_get_data (G_OBJECT (combo), "choices");
  const char *field = g_object_get_data (G_OBJECT (combo), "field");
  guint selected = adw_combo_row_get_selected (combo);
  /* Position 0 is "Not given". */
  const char *key = selected == 0 ? "" : choice_key_at (choices, selected - 1);
  RelaisSituation changes = { 0 };

  if (key == NULL)
    return;
  if (g_str_equal (field, "education_level"))
    changes.education_level = (char *) key;
  else
    changes.work_situation = (char *) key;
  situation_write (context, &changes);
}

static void
on_informed_today (GtkButton *button,
                   gpointer   user_data)
{
  RelaisPagesContext *context = user_data;
  AdwActionRow *row = g_object_get_data (G_OBJECT (button), "row");
  g_autofree char *today = today_iso ();
  g_autofree char *shown = relais_format_date (today);
  RelaisSituation changes = { 0 };

  changes.sharing_informed_on = today;
  situation_write (context, &changes);
  adw_action_row_set_subtitle (row, shown);
}

static GtkWidget *
situation_combo (RelaisPagesContext *context,
                 const char         *title,
                 const RelaisChoice *choices,
                 const char         *field,
                 const char         *key)
{
  g_autoptr(GtkStringList) model = choice_model (choices, _("Not given"));
  GtkWidget *combo = adw_combo_row_new ();
  guint index = choice_index (choices, key);

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (combo), title);
  adw_combo_row_set_model (ADW_COMBO_ROW (combo), G_LIST_MODEL (model));
  adw_combo_row_set_selected (ADW_COMBO_ROW (combo), index == GTK_INVALID_LIST_POSITION ? 0 : index + 1);
  g_object_set_data (G_OBJECT (combo), "choices", (gpointer) choices);
  g_object_set_data (G_OBJECT (combo), "field", (gpointer) field);
  g_signal_connect (combo, "notify::selected", G_CALLBACK (on_situation_choice), context);
  return combo;
}

static void
on_contract_add (GtkButton *button,
                 gpointer   user_data)
{
  RelaisPagesContext *context = user_data;
  AdwComboRow *kind = g_object_get_data (G_OBJECT (button), "kind");
  GtkEditable *signed_on = g_object_get_data (G_OBJECT (button), "signed");
  GtkEditable *starts_on = g_object_get_data (G_OBJECT (button), "starts");
  GtkEditable *ends_on = g_object_get_data (G_OBJECT (button), "ends");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (button), "error");
  g_autoptr(GError) error = NULL;
  g_autofree char *s = NULL, *b = NULL, *e = NULL, *id = NULL;
  RelaisContract contract = { 0 };

  if (!ready (context))
    return;
  if (!parse_optional_date (gtk_editable_get_text (signed_on), _("The signature date"), &s, &error)
      || !parse_optional_date (gtk_editable_get_text (starts_on), _("The start date"), &b, &error)
      || !parse_optional_date (gtk_editable_get_text (ends_on), _("The end date"), &e, &error))
    {
      show_error (error_widget, error);
      return;
    }
  contract.kind = (char *) choice_key_at (relais_contract_kinds, adw_combo_row_get_selected (kind));
  contract.signed_on = s;
  contract.starts_on = b;
  contract.ends_on = e;
  id = relais_contract_add (context->vault, context->dossier, &contract, &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "situation");
}

static void
on_project_add (GtkButton *button,
                gpointer   user_data)
{
  RelaisPagesContext *context = user_data;
  GtkEditable *job = g_object_get_data (G_OBJECT (button), "job");
  GtkEditable *rome = g_object_get_data (G_OBJECT (button), "rome");
  GtkEditable *mobility = g_object_get_data (G_OBJECT (button), "mobility");
  AdwComboRow *time = g_object_get_data (G_OBJECT (button), "time");
  GtkWidget *error_widget = g_object_get_data (G_OBJECT (button), "error");
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *rome_code = g_strstrip (g_ascii_strup (gtk_editable_get_text (rome), -1));
  const char *km = gtk_editable_get_text (mobility);
  char *contract_types[] = { NULL };
  RelaisProject project = { 0 };
  guint selected = adw_combo_row_get_selected (time);
  guint64 kilometres = 0;

  if (!ready (context))
    return;
  if (*km != '\0' && (!g_ascii_string_to_unsigned (km, 10, 0, 1000, &kilometres, NULL)))
    {
      g_set_error_literal (&error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_INVALID,
                           _("The mobility is not valid: write a number of kilometres, for example 30."));
      show_error (error_widget, error);
      return;
    }
  project.job_label = (char *) gtk_editable_get_text (job);
  project.rome_code = *rome_code != '\0' ? rome_code : NULL;
  project.mobility_km = *km != '\0' ? (int) kilometres : -1;
  project.contract_types = contract_types;
  /* Position 0 is "Not given". */
  project.working_time = selected == 0 ? NULL : (char *) choice_key_at (relais_working_times, selected - 1);
  id = relais_project_add (context->vault, context->dossier, &project, &error);
  if (id == NULL)
    {
      show_error (error_widget, error);
      return;
    }
  written (context, "situation");
}

/* Every contract type ticked in the project, as relais_record_set()
 * takes a list: keys separated by spaces. */
static void
on_contract_type_toggled (GtkCheckButton *check,
                          GParamSpec     *pspec,
                          FieldRow       *row)
{
  GPtrArray *checks = g_object_get_data (G_OBJECT (check), "checks");
  g_autoptr(GString) keys = g_string_new (NULL);

  for (guint i = 0; i < checks->len; i++)
    if (gtk_check_button_get_active (g_ptr_array_index (checks, i)))
      {
        if (keys->len > 0)
          g_string_append_c (keys, ' ');
        g_string_append (keys, relais_contract_types[i].key);
      }
  field_row_write (row, keys->str);
}

/* A professional project, with the contract types wanted ticked in place
 * when it is expanded. */
static GtkWidget *
project_row (RelaisPagesContext  *context,
             const RelaisProject *project,
             const char          *subtitle)
{
  GtkWidget *row = adw_expander_row_new ();
  GtkWidget *error_widget = error_label ();
  GPtrArray *checks = g_ptr_array_new ();
  FieldRow *field = field_row_new (context, RELAIS_ENTITY_PROJECT, project->id,
                                   "contract_types", "situation", error_widget);

  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), project->job_label);
  if (subtitle != NULL && *subtitle != '\0')
    adw_expander_row_set_subtitle (ADW_EXPANDER_ROW (row), subtitle);
  adw_expander_row_add_action (ADW_EXPANDER_ROW (row),
                               remove_button (context, RELAIS_ENTITY_PROJECT, project->id, "situation"));
  g_object_set_data_full (G_OBJECT (row), "field-row", field, (GDestroyNotify) field_row_free);
  g_object_set_data_full (G_OBJECT (row), "checks", checks, (GDestroyNotify) g_ptr_array_unref);

  for (guint i = 0; relais_contract_types[i].key != NULL; i++)
    {
      const char *label = relais_choice_label (relais_contract_types, relais_contract_types[i].key);
      GtkWidget *check_row = text_row (label, NULL);
      GtkWidget *check = gtk_check_button_new ();

      gtk_check_button_set_active (GTK_CHECK_BUTTON (check),
                                   project->contract_types != NULL &&
                                   g_strv_contains ((const char * const *) project->contract_types,
                                                    relais_contract_types[i].key));
      gtk_widget_set_valign (check, GTK_ALIGN_CENTER);
      gtk_accessible_update_property (GTK_ACCESSIBLE (check), GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
      adw_action_row_add_prefix (ADW_ACTION_ROW (check_row), check);
      adw_action_row_set_activatable_widget (ADW_ACTION_ROW (check_row), check);
      g_ptr_array_add (checks, check);
      g_object_set_data (G_OBJECT (check), "checks", checks);
      g_signal_connect (check, "notify::active", G_CALLBACK (on_contract_type_toggled), field);
      adw_expander_row_add_row (ADW_EXPANDER_ROW (row), check_row);
    }
  adw_expander_row_add_row (ADW_EXPANDER_ROW (row), error_widget);
  return row;
}

static void
add_projects (RelaisPagesContext *context,
              GtkWidget          *page)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) projects = relais_project_list (context->vault, context->dossier, &error);
  g_autoptr(GtkStringList) times = choice_model (relais_working_times, _("Not given"));
  GtkWidget *group;
  GtkWidget *job, *rome, *mobility, *time, *button, *error_widget;

  if (projects == NULL)
    {
      new_group (page, _("Professional Projects"), error->message);
      return;
    }

  group = new_group (page, _("Professional Projects"), projects->len == 0 ? _("No project yet.") : NULL);
  for (guint i = 0; i < projects->len; i++)
    {
      RelaisProject *p = g_ptr_array_index (projects, i);
      g_autoptr(GString) line = g_string_new (NULL);
      GtkWidget *row;

      if (p->rome_code != NULL)
        /* Translators: the job's code in the national list of trades. */
        g_string_append_printf (line, _("ROME %s"), p->rome_code);
      if (p->mobility_km >= 0)
        {
          if (line->len > 0)
            g_string_append (line, " · ");
          /* Translators: how far the person can travel for work. */
          g_string_append_printf (line, _("%d km"), p->mobility_km);
        }
      for (guint j = 0; p->contract_types != NULL && p->contract_types[j] != NULL; j++)
        {
          g_string_append (line, line->len > 0 ? (j == 0 ? " · " : ", ") : "");
          g_string_append (line, label_of (relais_contract_types, p->contract_types[j]));
        }
      if (p->working_time != NULL)
        {
          if (line->len > 0)
            g_string_append (line, " · ");
          g_string_append (line, label_of (relais_working_times, p->working_time));
        }
      row = project_row (context, p, line->str);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
    }

  group = new_group (page, _("New Project"), NULL);
  job = entry_row (_("Job Sought"));
  rome = entry_row (_("ROME Code (optional)"));
  mobility = entry_row (_("Mobility in km (optional)"));
  time = adw_combo_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (time), _("Working Time"));
  adw_combo_row_set_model (ADW_COMBO_ROW (time), G_LIST_MODEL (times));
  error_widget = error_label ();
  button = add_button (_("_Add the Project"));
  gtk_widget_set_halign (button, GTK_ALIGN_END);
  gtk_widget_set_margin_top (button, 12);
  g_object_set_data (G_OBJECT (button), "job", job);
  g_object_set_data (G_OBJECT (button), "rome", rome);
  g_object_set_data (G_OBJECT (button), "mobility", mobility);
  g_object_set_data (G_OBJECT (button), "time", time);
  g_object_set_data (G_OBJECT (button), "error", error_widget);
  g_signal_connect (button, "clicked", G_CALLBACK (on_project_add), context);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), job);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), rome);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), mobility);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), time);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), error_widget);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), button);
}

GtkWidget *
relais_pages_build_situation (RelaisPagesContext *context)
{
  GtkWidget *page = new_page ();
  GtkWidget *group;
  GtkWidget *row;
  GtkWidget *button;
  GtkWidget *kind, *signed_on, *starts_on, *ends_on, *error_widget;
  g_autoptr(GtkStringList) kinds = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSituation) situation = NULL;
  g_autoptr(GPtrArray) contracts = NULL;
  GPtrArray *checks;

  if (!ready (context))
    return page;

  situation = relais_situation_get (context->vault, context->dossier, &error);
  if (situation == NULL)
    return show_load_error (page, error);
  contracts = relais_contract_list (context->vault, context->dossier, &error);
  if (contracts == NULL)
    return show_load_error (page, error);

  group = new_group (page, _("Rights"), NULL);
  checks = g_ptr_array_new ();
  g_object_set_data_full (G_OBJECT (group), "checks", checks, (GDestroyNotify) g_ptr_array_unref);
  for (guint i = 0; relais_rights[i].key != NULL; i++)
    {
      GtkWidget *check = gtk_check_button_new ();
      const char *label = relais_choice_label (relais_rights, relais_rights[i].key);

      row = text_row (label, NULL);
      gtk_check_button_set_active (GTK_CHECK_BUTTON (check),
                                   g_strv_contains ((const char * const *) situation->rights, relais_rights[i].key));
      gtk_widget_set_valign (check, GTK_ALIGN_CENTER);
      gtk_accessible_update_property (GTK_ACCESSIBLE (check), GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
      g_object_set_data (G_OBJECT (check), "key", (gpointer) relais_rights[i].key);
      g_object_set_data (G_OBJECT (check), "checks", checks);
      g_ptr_array_add (checks, check);
      adw_action_row_add_prefix (ADW_ACTION_ROW (row), check);
      adw_action_row_set_activatable_widget (ADW_ACTION_ROW (row), check);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
      g_signal_connect (check, "toggled", G_CALLBACK (on_right_toggled), context);
    }

  group = new_group (page, _("Situation"), NULL);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group),
                             situation_combo (context, _("Education Level"), relais_education_levels,
                                              "education_level", situation->education_level));
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group),
                             situation_combo (context, _("Work Situation"), relais_work_situations,
                                              "work_situation", situation->work_situation));
  {
    g_autofree char *informed = relais_format_date (situation->sharing_informed_on);

    row = text_row (_("Informed of How the Data Is Shared"), informed != NULL ? informed : _("Not yet"));
    button = gtk_button_new_with_mnemonic (_("Informed _Today"));
    gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
    g_object_set_data (G_OBJECT (button), "row", row);
    g_signal_connect (button, "clicked", G_CALLBACK (on_informed_today), context);
    adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
    adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
  }

  add_projects (context, page);

  group = new_group (page, _("Contracts"), contracts->len == 0 ? _("No contract yet.") : NULL);
  for (guint i = 0; i < contracts->len; i++)
    {
      RelaisContract *c = g_ptr_array_index (contracts, i);
      g_autofree char *s = relais_format_date (c->signed_on);
      g_autofree char *b = relais_format_date (c->starts_on);
      g_autofree char *e = relais_format_date (c->ends_on);
      g_autofree char *line = NULL;

      /* Translators: a contract's signature date, then its start and end
       * dates; "–" where one is not known. */
      line = g_strdup_printf (_("Signed %s · from %s to %s"), s != NULL ? s : "–",
                              b != NULL ? b : "–", e != NULL ? e : "–");
      row = text_row (label_of (relais_contract_kinds, c->kind), line);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row),
                                 remove_button (context, RELAIS_ENTITY_CONTRACT, c->id, "situation"));
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), row);
    }

  group = new_group (page, _("New Contract"), NULL);
  kinds = choice_model (relais_contract_kinds, NULL);
  kind = adw_combo_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (kind), _("Kind"));
  adw_combo_row_set_model (ADW_COMBO_ROW (kind), G_LIST_MODEL (kinds));
  signed_on = entry_row (_("Signed On (DD/MM/YYYY)"));
  starts_on = entry_row (_("Starts On (DD/MM/YYYY)"));
  ends_on = entry_row (_("Ends On (DD/MM/YYYY)"));
  error_widget = error_label ();
  button = add_button (_("_Add the Contract"));
  gtk_widget_set_halign (button, GTK_ALIGN_END);
  gtk_widget_set_margin_top (button, 12);
  g_object_set_data (G_OBJECT (button), "kind", kind);
  g_object_set_data (G_OBJECT (button), "signed", signed_on);
  g_object_set_data (G_OBJECT (button), "starts", starts_on);
  g_object_set_data (G_OBJECT (button), "ends", ends_on);
  g_object_set_data (G_OBJECT (button), "error", error_widget);
  g_signal_connect (button, "clicked", G_CALLBACK (on_contract_add), context);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), kind);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), signed_on);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), starts_on);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), ends_on);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), error_widget);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (group), button);

  return page;
}
