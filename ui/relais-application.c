#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "relais-application.h"
#include "relais-preferences-window.h"
#include "relais-ui.h"
#include "relais-window.h"

struct _RelaisApplication
{
  AdwApplication  parent_instance;

  /* NULL when the schema is missing: the program still runs, it only
   * forgets its settings. */
  GSettings      *settings;
  /* --vault DIR, or NULL for the default directory. */
  char           *vault_dir;
};

G_DEFINE_FINAL_TYPE (RelaisApplication, relais_application, ADW_TYPE_APPLICATION)

static GSettings *
create_settings (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchemaSource) build_source = NULL;
  g_autoptr(GSettingsSchema) schema = NULL;
  const char *build_dir = relais_ui_get_build_dir ();

  /* Uninstalled, the schema compiled in the build tree wins over an
   * installed one, which may be older. */
  if (build_dir != NULL)
    {
      g_autofree char *schema_dir = g_build_filename (build_dir, "data", NULL);
      g_autoptr(GError) error = NULL;

      build_source = g_settings_schema_source_new_from_directory (schema_dir, source,
                                                                  FALSE, &error);
      if (build_source != NULL)
        source = build_source;
      else
        g_debug ("No compiled schema in %s: %s", schema_dir, error->message);
    }

  if (source != NULL)
    schema = g_settings_schema_source_lookup (source, APPLICATION_ID, TRUE);

  if (schema == NULL)
    {
      g_warning ("The GSettings schema %s is not installed: settings will not be kept",
                 APPLICATION_ID);
      return NULL;
    }

  return g_settings_new_full (schema, NULL, NULL);
}

static void
relais_application_about (GSimpleAction *action,
                          GVariant      *parameter,
                          gpointer       user_data)
{
  RelaisApplication *self = user_data;

  adw_show_about_window (gtk_application_get_active_window (GTK_APPLICATION (self)),
                         "application-name", _("Relais"),
                         "application-icon", APPLICATION_ID,
                         "developer-name", "Service public de l’insertion et de l’emploi",
                         "version", PACKAGE_VERSION,
                         "comments", _("Follow the people you support, even without a network"),
                         "license-type", GTK_LICENSE_CUSTOM,
                         "license", _("Relais is free software, under the European Union Public Licence, version 1.2 (EUPL-1.2)."),
                         /* Translators: your names, one per line. */
                         "translator-credits", _("translator-credits"),
                         NULL);
}

static void
relais_application_preferences (GSimpleAction *action,
                                GVariant      *parameter,
                                gpointer       user_data)
{
  RelaisApplication *self = user_data;
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));

  if (self->settings == NULL)
    return;

  gtk_window_present (GTK_WINDOW (relais_preferences_window_new (parent, self->settings)));
}

static void
relais_application_quit (GSimpleAction *action,
                         GVariant      *parameter,
                         gpointer       user_data)
{
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (user_data));

  /* Quitting closes the vault: not under a worker thread using it
   * (enrolment, sharing: seconds at most); the person tries again. */
  for (GList *l = windows; l != NULL; l = l->next)
    if (RELAIS_IS_WINDOW (l->data) && relais_window_is_vault_in_use (l->data))
      {
        gtk_widget_error_bell (GTK_WIDGET (l->data));
        return;
      }
  g_application_quit (G_APPLICATION (user_data));
}

static const GActionEntry app_actions[] = {
  { .name = "about", .activate = relais_application_about },
  { .name = "preferences", .activate = relais_application_preferences },
  { .name = "quit", .activate = relais_application_quit },
};

static void
relais_application_startup (GApplication *application)
{
  RelaisApplication *self = RELAIS_APPLICATION (application);
  static const char *quit_accels[] = { "<Control>q", NULL };
  static const char *close_accels[] = { "<Control>w", NULL };
  static const char *preferences_accels[] = { "<Control>comma", NULL };

  G_APPLICATION_CLASS (relais_application_parent_class)->startup (application);

  self->settings = create_settings ();

  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions,
                                   G_N_ELEMENTS (app_actions), self);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.quit", quit_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "window.close", close_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.preferences",
                                         preferences_accels);

  gtk_window_set_default_icon_name (APPLICATION_ID);
}

static void
relais_application_activate (GApplication *application)
{
  RelaisApplication *self = RELAIS_APPLICATION (application);
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));

  if (window == NULL)
    window = GTK_WINDOW (relais_window_new (self, self->vault_dir));

  gtk_window_present (window);
}

static void
relais_application_dispose (GObject *object)
{
  RelaisApplication *self = (RelaisApplication *)object;

  g_clear_object (&self->settings);

  G_OBJECT_CLASS (relais_application_parent_class)->dispose (object);
}

static void
relais_application_finalize (GObject *object)
{
  RelaisApplication *self = (RelaisApplication *)object;

  g_clear_pointer (&self->vault_dir, g_free);

  G_OBJECT_CLASS (relais_application_parent_class)->finalize (object);
}

static int
relais_application_handle_local_options (GApplication *application,
                                         GVariantDict *options)
{
  RelaisApplication *self = RELAIS_APPLICATION (application);
  g_autofree char *vault_dir = NULL;

  if (g_variant_dict_lookup (options, "vault", "^ay", &vault_dir))
    {
      g_free (self->vault_dir);
      /* Relative to where the program was started, not to where it runs. */
      self->vault_dir = g_canonicalize_filename (vault_dir, NULL);
    }

  return -1;
}

static void
relais_application_class_init (RelaisApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->dispose = relais_application_dispose;
  object_class->finalize = relais_application_finalize;

  app_class->startup = relais_application_startup;
  app_class->activate = relais_application_activate;
  app_class->handle_local_options = relais_application_handle_local_options;
}

static void
relais_application_init (RelaisApplication *self)
{
  static const GOptionEntry options[] = {
    { "vault", 0, 0, G_OPTION_ARG_FILENAME, NULL,
      N_("The vault’s directory (default: ~/.local/share/relais)"), N_("DIR") },
    { NULL }
  };

  /* Before startup, which reads the help overlay and icons from it. */
  relais_ui_register_resources ();

  g_application_add_main_option_entries (G_APPLICATION (self), options);
}

RelaisApplication *
relais_application_new (void)
{
  return g_object_new (RELAIS_TYPE_APPLICATION,
                       "application-id", APPLICATION_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       "resource-base-path", "/fr/spie/Relais",
                       NULL);
}

/**
 * relais_application_get_settings:
 *
 * Returns: (transfer none) (nullable): the settings of fr.spie.Relais, or
 *   %NULL before startup or when the schema is not installed
 */
GSettings *
relais_application_get_settings (RelaisApplication *self)
{
  g_return_val_if_fail (RELAIS_IS_APPLICATION (self), NULL);

  return self->settings;
}
