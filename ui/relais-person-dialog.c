#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <stdio.h>

#include "relais-accessible.h"
#include "relais-person.h"
#include "relais-person-dialog.h"
#include "relais-person-object.h"

struct _RelaisPersonDialog
{
  AdwWindow      parent_instance;

  RelaisVault   *vault;  /* not owned: see relais_person_dialog_new() */
  char          *id;     /* NULL: a new dossier */
  RelaisPerson  *stored; /* what @id holds, to write only what changed */
  char          *existing_id;
  /* Once the person tried to save, fields are checked as they type. */
  gboolean       tried;

  /* Template widgets */
  AdwWindowTitle *window_title;
  GtkButton      *save_button;
  GtkRevealer    *duplicate_revealer;
  GtkLabel       *duplicate_label;
  GtkButton      *open_existing_button;
  GtkButton      *create_anyway_button;
  AdwEntryRow    *last_name_row;
  AdwEntryRow    *first_name_row;
  AdwEntryRow    *birth_date_row;
  AdwEntryRow    *phone_row;
  AdwEntryRow    *email_row;
  AdwEntryRow    *postal_code_row;
  AdwEntryRow    *city_row;
  GtkLabel       *identity_error;
  GtkLabel       *contact_error;
};

G_DEFINE_FINAL_TYPE (RelaisPersonDialog, relais_person_dialog, ADW_TYPE_WINDOW)

enum {
  SAVED,
  OPEN_DOSSIER,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

#define N_IDENTITY_FIELDS 3

static AdwEntryRow *
field_row (RelaisPersonDialog *self,
           guint               i)
{
  AdwEntryRow *rows[RELAIS_PERSON_N_FIELDS] = {
    self->last_name_row, self->first_name_row, self->birth_date_row,
    self->phone_row, self->email_row, self->postal_code_row, self->city_row,
  };

  g_assert (i < RELAIS_PERSON_N_FIELDS);

  return rows[i];
}

static const char *
field_text (RelaisPersonDialog *self,
            guint               i)
{
  return gtk_editable_get_text (GTK_EDITABLE (field_row (self, i)));
}

/* The message of the core's validation for field @i alone, or NULL when it
 * is valid.  Identity fields are checked with valid stand-ins for the other
 * two, so that the message is about @i. */
static char *
check_field (RelaisPersonDialog *self,
             guint               i)
{
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(GError) error = NULL;
  gboolean identity = i < N_IDENTITY_FIELDS;

  if (identity)
    {
      person->last_name = g_strdup ("x");
      person->first_name = g_strdup ("x");
      person->birth_date = g_strdup ("2000-01-01");
    }
  g_free (*relais_person_field_ptr (person, i));
  *relais_person_field_ptr (person, i) = g_strdup (field_text (self, i));

  if (relais_person_validate (person, identity, &error))
    return NULL;

  return g_strdup (error->message);
}

static void
show_errors (GtkLabel *label,
             GString  *messages)
{
  gtk_label_set_label (label, messages->str);
  gtk_widget_set_visible (GTK_WIDGET (label), messages->len > 0);
}

/* Marks every invalid field and lists the messages under its group.
 * Returns whether every field is valid. */
static gboolean
validate (RelaisPersonDialog *self)
{
  g_autoptr(GString) identity = g_string_new (NULL);
  g_autoptr(GString) contact = g_string_new (NULL);
  gboolean valid = TRUE;

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      g_autofree char *message = check_field (self, i);
      GtkWidget *row = GTK_WIDGET (field_row (self, i));
      GString *messages = i < N_IDENTITY_FIELDS ? identity : contact;

      if (message != NULL)
        {
          valid = FALSE;
          gtk_widget_add_css_class (row, "error");
          if (messages->len > 0)
            g_string_append_c (messages, '\n');
          g_string_append (messages, message);
          gtk_accessible_update_state (GTK_ACCESSIBLE (row),
                                       GTK_ACCESSIBLE_STATE_INVALID, GTK_ACCESSIBLE_INVALID_TRUE,
                                       -1);
          gtk_accessible_update_property (GTK_ACCESSIBLE (row),
                                          GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, message,
                                          -1);
        }
      else
        {
          gtk_widget_remove_css_class (row, "error");
          gtk_accessible_reset_state (GTK_ACCESSIBLE (row), GTK_ACCESSIBLE_STATE_INVALID);
          gtk_accessible_reset_property (GTK_ACCESSIBLE (row), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION);
        }
    }

  show_errors (self->identity_error, identity);
  show_errors (self->contact_error, contact);

  return valid;
}

static void
focus_first_invalid (RelaisPersonDialog *self)
{
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      GtkWidget *row = GTK_WIDGET (field_row (self, i));

      if (gtk_widget_has_css_class (row, "error"))
        {
          gtk_widget_grab_focus (row);
          return;
        }
    }
}

static void
on_field_changed (RelaisPersonDialog *self)
{
  /* What was found the same is no longer what is typed. */
  gtk_revealer_set_reveal_child (self->duplicate_revealer, FALSE);
  g_clear_pointer (&self->existing_id, g_free);

  if (self->tried)
    validate (self);
}

/* The person as typed, validated and normalised by the core. */
static RelaisPerson *
typed_person (RelaisPersonDialog  *self,
              GError             **error)
{
  g_autoptr(RelaisPerson) person = relais_person_new ();

  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    *relais_person_field_ptr (person, i) = g_strdup (field_text (self, i));

  if (!relais_person_validate (person, TRUE, error))
    return NULL;

  return g_steal_pointer (&person);
}

static void
show_error_toast (RelaisPersonDialog *self,
                  const char         *message)
{
  /* A write that failed (disk full, damaged vault): the fields are fine,
   * so the message goes above them, where the duplicate warning goes. */
  gtk_label_set_label (self->duplicate_label, message);
  gtk_widget_set_visible (GTK_WIDGET (self->open_existing_button), FALSE);
  gtk_widget_set_visible (GTK_WIDGET (self->create_anyway_button), FALSE);
  gtk_revealer_set_reveal_child (self->duplicate_revealer, TRUE);
}

static gboolean
identity_changed (RelaisPersonDialog *self,
                  const RelaisPerson *person)
{
  if (self->stored == NULL)
    return TRUE;

  for (guint i = 0; i < N_IDENTITY_FIELDS; i++)
    {
      g_autofree char *a = g_utf8_casefold (*relais_person_field_ptr (self->stored, i) ?: "", -1);
      g_autofree char *b = g_utf8_casefold (*relais_person_field_ptr ((RelaisPerson *) person, i) ?: "", -1);

      if (g_strcmp0 (a, b) != 0)
        return TRUE;
    }
  return FALSE;
}

static void
save (RelaisPersonDialog *self,
      gboolean            even_if_duplicate)
{
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;

  self->tried = TRUE;
  if (!validate (self))
    {
      focus_first_invalid (self);
      return;
    }

  person = typed_person (self, &error);
  if (person == NULL)
    {
      show_error_toast (self, error->message);
      return;
    }

  if (!even_if_duplicate && identity_changed (self, person))
    {
      g_autofree char *existing = NULL;

      existing = relais_person_find_identity (self->vault, person->last_name,
                                              person->first_name, person->birth_date,
                                              &error);
      if (error != NULL)
        {
          show_error_toast (self, error->message);
          return;
        }
      if (existing != NULL && g_strcmp0 (existing, self->id) != 0)
        {
          g_free (self->existing_id);
          self->existing_id = g_steal_pointer (&existing);
          gtk_label_set_label (self->duplicate_label,
                               _("A dossier already exists for a person with this name and birth date."));
          gtk_widget_set_visible (GTK_WIDGET (self->open_existing_button), TRUE);
          gtk_widget_set_visible (GTK_WIDGET (self->create_anyway_button), self->id == NULL);
          gtk_revealer_set_reveal_child (self->duplicate_revealer, TRUE);
          gtk_widget_grab_focus (GTK_WIDGET (self->open_existing_button));
          return;
        }
    }

  if (self->id == NULL)
    {
      id = relais_person_add (self->vault, person, &error);
    }
  else
    {
      g_autoptr(RelaisPerson) changes = relais_person_new ();
      gboolean any = FALSE;

      /* Only what changed becomes an operation: an unchanged field must not
       * win a merge against someone else's real change. */
      for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
        {
          const char *now = *relais_person_field_ptr (person, i) ?: "";
          const char *before = *relais_person_field_ptr (self->stored, i) ?: "";

          if (g_strcmp0 (now, before) != 0)
            {
              *relais_person_field_ptr (changes, i) = g_strdup (now);
              any = TRUE;
            }
        }
      if (!any || relais_person_edit (self->vault, self->id, changes, &error))
        id = g_strdup (self->id);
    }

  if (id == NULL)
    {
      show_error_toast (self, error->message);
      return;
    }

  g_signal_emit (self, signals[SAVED], 0, id);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
relais_person_dialog_save (GtkWidget  *widget,
                           const char *action_name,
                           GVariant   *parameter)
{
  save (RELAIS_PERSON_DIALOG (widget), FALSE);
}

static void
relais_person_dialog_create_anyway (GtkWidget  *widget,
                                    const char *action_name,
                                    GVariant   *parameter)
{
  save (RELAIS_PERSON_DIALOG (widget), TRUE);
}

static void
relais_person_dialog_open_existing (GtkWidget  *widget,
                                    const char *action_name,
                                    GVariant   *parameter)
{
  RelaisPersonDialog *self = RELAIS_PERSON_DIALOG (widget);
  g_autofree char *id = g_strdup (self->existing_id);

  if (id == NULL)
    return;

  g_signal_emit (self, signals[OPEN_DOSSIER], 0, id);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
relais_person_dialog_dispose (GObject *object)
{
  RelaisPersonDialog *self = (RelaisPersonDialog *)object;

  gtk_widget_dispose_template (GTK_WIDGET (self), RELAIS_TYPE_PERSON_DIALOG);

  G_OBJECT_CLASS (relais_person_dialog_parent_class)->dispose (object);
}

static void
relais_person_dialog_finalize (GObject *object)
{
  RelaisPersonDialog *self = (RelaisPersonDialog *)object;

  g_clear_pointer (&self->id, g_free);
  g_clear_pointer (&self->existing_id, g_free);
  g_clear_pointer (&self->stored, relais_person_free);

  G_OBJECT_CLASS (relais_person_dialog_parent_class)->finalize (object);
}

static void
relais_person_dialog_class_init (RelaisPersonDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = relais_person_dialog_dispose;
  object_class->finalize = relais_person_dialog_finalize;

  /**
   * RelaisPersonDialog::saved:
   * @self: the dialog
   * @id: the dossier written
   */
  signals[SAVED] =
    g_signal_new ("saved",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  /**
   * RelaisPersonDialog::open-dossier:
   * @self: the dialog
   * @id: the dossier the person chose to open instead of a duplicate
   */
  signals[OPEN_DOSSIER] =
    g_signal_new ("open-dossier",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);

  gtk_widget_class_set_template_from_resource (widget_class, "/fr/spie/Relais/relais-person-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, window_title);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, save_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, duplicate_revealer);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, duplicate_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, open_existing_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, create_anyway_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, last_name_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, first_name_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, birth_date_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, phone_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, email_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, postal_code_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, city_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, identity_error);
  gtk_widget_class_bind_template_child (widget_class, RelaisPersonDialog, contact_error);
  gtk_widget_class_bind_template_callback (widget_class, on_field_changed);

  gtk_widget_class_install_action (widget_class, "person.save", NULL, relais_person_dialog_save);
  gtk_widget_class_install_action (widget_class, "person.create-anyway", NULL,
                                   relais_person_dialog_create_anyway);
  gtk_widget_class_install_action (widget_class, "person.open-existing", NULL,
                                   relais_person_dialog_open_existing);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
relais_person_dialog_init (RelaisPersonDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  relais_accessible_name_entry_rows (GTK_WIDGET (self));
}

static void
fill (RelaisPersonDialog *self)
{
  for (guint i = 0; i < RELAIS_PERSON_N_FIELDS; i++)
    {
      const char *value = *relais_person_field_ptr (self->stored, i);
      g_autofree char *shown = NULL;

      /* The birth date as it is typed: DD/MM/YYYY. */
      if (i == 2 && value != NULL)
        {
          int y, m, d;

          if (sscanf (value, "%4d-%2d-%2d", &y, &m, &d) == 3)
            shown = g_strdup_printf ("%02d/%02d/%04d", d, m, y);
        }
      gtk_editable_set_text (GTK_EDITABLE (field_row (self, i)),
                             shown != NULL ? shown : value != NULL ? value : "");
    }
}

RelaisPersonDialog *
relais_person_dialog_new (GtkWindow   *parent,
                          RelaisVault *vault,
                          const char  *id)
{
  RelaisPersonDialog *self;

  g_return_val_if_fail (parent == NULL || GTK_IS_WINDOW (parent), NULL);
  g_return_val_if_fail (vault != NULL, NULL);

  self = g_object_new (RELAIS_TYPE_PERSON_DIALOG,
                       "transient-for", parent,
                       NULL);
  self->vault = vault;
  self->id = g_strdup (id);

  if (id != NULL)
    {
      g_autoptr(GError) error = NULL;

      self->stored = relais_person_get (vault, id, &error);
      if (self->stored == NULL)
        {
          g_warning ("Could not read dossier %s: %s", id, error->message);
          self->stored = relais_person_new ();
        }
      fill (self);
      adw_window_title_set_title (self->window_title, _("Edit Identity"));
      gtk_button_set_label (self->save_button, _("_Save"));
    }
  else
    {
      adw_window_title_set_title (self->window_title, _("New Dossier"));
      gtk_button_set_label (self->save_button, _("C_reate"));
    }
  gtk_window_set_title (GTK_WINDOW (self), adw_window_title_get_title (self->window_title));
  gtk_widget_grab_focus (GTK_WIDGET (self->last_name_row));

  return self;
}
