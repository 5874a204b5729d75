#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "relais-ui.h"
#include "relais-window.h"

struct _RelaisWindow
{
  AdwApplicationWindow  parent_instance;

  GSettings            *settings;

  /* Template widgets */
  AdwPasswordEntryRow  *passphrase_row;
};

G_DEFINE_FINAL_TYPE (RelaisWindow, relais_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_SETTINGS,
  N_PROPS
};

enum {
  UNLOCK_REQUESTED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static gboolean
has_passphrase (RelaisWindow *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->passphrase_row));

  return text != NULL && text[0] != '\0';
}

static void
on_passphrase_changed (RelaisWindow *self)
{
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "vault.unlock", has_passphrase (self));
}

static void
on_passphrase_activated (RelaisWindow *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "vault.unlock", NULL);
}

static void
relais_window_unlock (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  if (!has_passphrase (self))
    return;

  g_signal_emit (self, signals[UNLOCK_REQUESTED], 0,
                 gtk_editable_get_text (GTK_EDITABLE (self->passphrase_row)));
}

static void
relais_window_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  RelaisWindow *self = RELAIS_WINDOW (object);

  switch (prop_id)
    {
    case PROP_SETTINGS:
      g_value_set_object (value, self->settings);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
relais_window_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  RelaisWindow *self = RELAIS_WINDOW (object);

  switch (prop_id)
    {
    case PROP_SETTINGS:
      /* Construct-only: constructed () binds it once. */
      self->settings = g_value_dup_object (value);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
relais_window_constructed (GObject *object)
{
  RelaisWindow *self = (RelaisWindow *)object;

  G_OBJECT_CLASS (relais_window_parent_class)->constructed (object);

  if (self->settings != NULL)
    {
      g_settings_bind (self->settings, "window-width", self, "default-width",
                       G_SETTINGS_BIND_DEFAULT);
      g_settings_bind (self->settings, "window-height", self, "default-height",
                       G_SETTINGS_BIND_DEFAULT);
      g_settings_bind (self->settings, "window-maximized", self, "maximized",
                       G_SETTINGS_BIND_DEFAULT);
    }
}

static void
relais_window_dispose (GObject *object)
{
  RelaisWindow *self = (RelaisWindow *)object;

  gtk_widget_dispose_template (GTK_WIDGET (self), RELAIS_TYPE_WINDOW);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (relais_window_parent_class)->dispose (object);
}

static void
relais_window_class_init (RelaisWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = relais_window_constructed;
  object_class->get_property = relais_window_get_property;
  object_class->set_property = relais_window_set_property;
  object_class->dispose = relais_window_dispose;

  /**
   * RelaisWindow:settings:
   *
   * Where the window keeps its size: the settings of fr.spie.Relais, or
   * %NULL to keep nothing (tests).
   */
  properties[PROP_SETTINGS] =
    g_param_spec_object ("settings", NULL, NULL,
                         G_TYPE_SETTINGS,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                          G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RelaisWindow::unlock-requested:
   * @self: the window
   * @passphrase: the passphrase typed, valid only during the emission
   *
   * Emitted when the person asks to unlock the vault with a non-empty
   * passphrase.  The string is not copied for the handlers, so that the
   * passphrase lives in as few places as possible.
   */
  signals[UNLOCK_REQUESTED] =
    g_signal_new ("unlock-requested",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);

  relais_ui_register_resources ();
  gtk_widget_class_set_template_from_resource (widget_class, "/fr/spie/Relais/relais-window.ui");
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, passphrase_row);
  gtk_widget_class_bind_template_callback (widget_class, on_passphrase_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_passphrase_activated);

  gtk_widget_class_install_action (widget_class, "vault.unlock", NULL, relais_window_unlock);
}

static void
relais_window_init (RelaisWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "vault.unlock", FALSE);
}

/**
 * relais_window_new:
 * @application: the application the window belongs to
 *
 * Returns: (transfer none): a new window, locked; GTK holds the reference
 *   to a toplevel
 */
RelaisWindow *
relais_window_new (RelaisApplication *application)
{
  g_return_val_if_fail (RELAIS_IS_APPLICATION (application), NULL);

  return g_object_new (RELAIS_TYPE_WINDOW,
                       "application", application,
                       "settings", relais_application_get_settings (application),
                       NULL);
}
