#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "relais-preferences-window.h"

struct _RelaisPreferencesWindow
{
  AdwPreferencesWindow  parent_instance;

  /* Template widgets */
  AdwActionRow         *auto_lock_row;
  GtkSpinButton        *auto_lock_spin;
  GtkAdjustment        *auto_lock_adjustment;
};

G_DEFINE_FINAL_TYPE (RelaisPreferencesWindow, relais_preferences_window, ADW_TYPE_PREFERENCES_WINDOW)

static void
relais_preferences_window_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), RELAIS_TYPE_PREFERENCES_WINDOW);

  G_OBJECT_CLASS (relais_preferences_window_parent_class)->dispose (object);
}

static void
relais_preferences_window_class_init (RelaisPreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = relais_preferences_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/fr/spie/Relais/relais-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, RelaisPreferencesWindow, auto_lock_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisPreferencesWindow, auto_lock_spin);
  gtk_widget_class_bind_template_child (widget_class, RelaisPreferencesWindow, auto_lock_adjustment);
}

static void
relais_preferences_window_init (RelaisPreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  /* The spin button is read as "Lock after, 5", not as a bare number. */
  gtk_accessible_update_relation (GTK_ACCESSIBLE (self->auto_lock_spin),
                                  GTK_ACCESSIBLE_RELATION_LABELLED_BY, self->auto_lock_row, NULL,
                                  -1);
}

RelaisPreferencesWindow *
relais_preferences_window_new (GtkWindow *parent,
                               GSettings *settings)
{
  RelaisPreferencesWindow *self;

  g_return_val_if_fail (parent == NULL || GTK_IS_WINDOW (parent), NULL);
  g_return_val_if_fail (G_IS_SETTINGS (settings), NULL);

  self = g_object_new (RELAIS_TYPE_PREFERENCES_WINDOW,
                       "transient-for", parent,
                       NULL);
  g_settings_bind (settings, "auto-lock-minutes",
                   self->auto_lock_adjustment, "value",
                   G_SETTINGS_BIND_DEFAULT);

  return self;
}
