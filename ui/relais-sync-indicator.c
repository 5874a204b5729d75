#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "relais-person-object.h"
#include "relais-sync-indicator.h"

/* The relative time ("5 minutes ago") is written again this often. */
#define TICK_SECONDS 30

struct _RelaisSyncIndicator
{
  GtkBox           parent_instance;

  RelaisSyncState  state;
  guint            pending;
  gint64           last_success;
  char            *error_message;
  guint            conflicts;
  char            *text;
  guint            tick_source;

  GtkWidget       *icon;
  GtkWidget       *spinner;
  GtkWidget       *label;
  GtkWidget       *conflicts_button;
  GtkWidget       *conflicts_label;
  GtkWidget       *sync_button;
  GtkWidget       *connect_button;
};

G_DEFINE_FINAL_TYPE (RelaisSyncIndicator, relais_sync_indicator, GTK_TYPE_BOX)

static char *
describe_last_success (gint64 last_success,
                       gint64 now)
{
  gint64 ago = now - last_success;

  if (last_success <= 0)
    return g_strdup (_("Never synced"));
  if (ago < 60)
    return g_strdup (_("Synced just now"));
  if (ago < 3600)
    {
      guint minutes = (guint) (ago / 60);

      return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                           "Synced %u minute ago",
                                           "Synced %u minutes ago", minutes),
                              minutes);
    }
  if (ago < 24 * 3600)
    {
      guint hours = (guint) (ago / 3600);

      return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                           "Synced %u hour ago",
                                           "Synced %u hours ago", hours),
                              hours);
    }
  {
    g_autoptr(GDateTime) when = g_date_time_new_from_unix_local (last_success);
    g_autofree char *day = when != NULL ? g_date_time_format (when, "%Y-%m-%d") : NULL;
    g_autofree char *date = day != NULL ? relais_format_date (day) : NULL;

    /* Translators: the date of the last complete sync, 25/11/2026. */
    return g_strdup_printf (_("Last synced on %s"), date != NULL ? date : "?");
  }
}

/**
 * relais_sync_describe:
 *
 * Returns: (transfer full): the indicator's line for @state
 */
char *
relais_sync_describe (RelaisSyncState  state,
                      guint            pending,
                      gint64           last_success,
                      const char      *error_message,
                      gint64           now)
{
  switch (state)
    {
    case RELAIS_SYNC_STATE_NOT_ENROLLED:
      return g_strdup (_("Not connected to a server"));

    case RELAIS_SYNC_STATE_SYNCING:
      return g_strdup (_("Syncing…"));

    case RELAIS_SYNC_STATE_OFFLINE:
      if (pending > 0)
        return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                             "Offline: %u change waiting to be sent",
                                             "Offline: %u changes waiting to be sent", pending),
                                pending);
      return g_strdup (_("Offline"));

    case RELAIS_SYNC_STATE_ERROR:
      /* Translators: the reason comes from the sync layer, one sentence. */
      return g_strdup_printf (_("Not synced: %s"),
                              error_message != NULL ? error_message : _("the exchange did not complete"));

    case RELAIS_SYNC_STATE_IDLE:
    default:
      if (pending > 0)
        return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                             "%u change waiting to be sent",
                                             "%u changes waiting to be sent", pending),
                                pending);
      return describe_last_success (last_success, now);
    }
}

static void
show (RelaisSyncIndicator *self)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gboolean syncing = self->state == RELAIS_SYNC_STATE_SYNCING;
  g_autofree char *tooltip = NULL;
  g_autofree char *accessible = NULL;
  const char *icon;

  g_free (self->text);
  self->text = relais_sync_describe (self->state, self->pending, self->last_success,
                                     self->error_message, now);
  gtk_label_set_label (GTK_LABEL (self->label), self->text);

  /* The line is cut in a narrow sidebar: the tooltip has it whole, with
   * the last sync when the line says something else. */
  if (self->state != RELAIS_SYNC_STATE_NOT_ENROLLED
      && (self->pending > 0 || self->state != RELAIS_SYNC_STATE_IDLE))
    {
      g_autofree char *last = describe_last_success (self->last_success, now);

      tooltip = g_strdup_printf ("%s\n%s", self->text, last);
    }
  gtk_widget_set_tooltip_text (self->label, tooltip != NULL ? tooltip : self->text);

  switch (self->state)
    {
    case RELAIS_SYNC_STATE_NOT_ENROLLED:
      icon = "network-server-symbolic";
      break;
    case RELAIS_SYNC_STATE_OFFLINE:
      icon = "network-offline-symbolic";
      break;
    case RELAIS_SYNC_STATE_ERROR:
      icon = "network-error-symbolic";
      break;
    case RELAIS_SYNC_STATE_IDLE:
    case RELAIS_SYNC_STATE_SYNCING:
    default:
      icon = self->pending > 0 ? "document-send-symbolic" : "emblem-ok-symbolic";
      break;
    }
  gtk_image_set_from_icon_name (GTK_IMAGE (self->icon), icon);
  gtk_widget_set_visible (self->icon, !syncing);
  gtk_widget_set_visible (self->spinner, syncing);
  gtk_spinner_set_spinning (GTK_SPINNER (self->spinner), syncing);
  /* Quiet while all is well; an error stands out. */
  if (self->state == RELAIS_SYNC_STATE_ERROR)
    {
      gtk_widget_add_css_class (self->label, "error");
      gtk_widget_remove_css_class (self->label, "dim-label");
    }
  else
    {
      gtk_widget_remove_css_class (self->label, "error");
      gtk_widget_add_css_class (self->label, "dim-label");
    }

  gtk_widget_set_visible (self->sync_button, self->state != RELAIS_SYNC_STATE_NOT_ENROLLED);
  gtk_widget_set_visible (self->connect_button, self->state == RELAIS_SYNC_STATE_NOT_ENROLLED);

  gtk_widget_set_visible (self->conflicts_button, self->conflicts > 0);
  if (self->conflicts > 0)
    {
      g_autofree char *count = g_strdup_printf ("%u", self->conflicts);
      g_autofree char *name = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                                            "%u conflict to review",
                                                            "%u conflicts to review",
                                                            self->conflicts),
                                               self->conflicts);

      gtk_label_set_label (GTK_LABEL (self->conflicts_label), count);
      gtk_widget_set_tooltip_text (self->conflicts_button, name);
      gtk_accessible_update_property (GTK_ACCESSIBLE (self->conflicts_button),
                                      GTK_ACCESSIBLE_PROPERTY_LABEL, name,
                                      -1);
    }

  accessible = relais_sync_indicator_get_accessible_text (self);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, accessible,
                                  -1);
}

static gboolean
tick (gpointer user_data)
{
  RelaisSyncIndicator *self = user_data;

  if (self->state == RELAIS_SYNC_STATE_IDLE && self->pending == 0)
    show (self);
  return G_SOURCE_CONTINUE;
}

static void
relais_sync_indicator_dispose (GObject *object)
{
  RelaisSyncIndicator *self = (RelaisSyncIndicator *)object;

  g_clear_handle_id (&self->tick_source, g_source_remove);

  G_OBJECT_CLASS (relais_sync_indicator_parent_class)->dispose (object);
}

static void
relais_sync_indicator_finalize (GObject *object)
{
  RelaisSyncIndicator *self = (RelaisSyncIndicator *)object;

  g_clear_pointer (&self->error_message, g_free);
  g_clear_pointer (&self->text, g_free);

  G_OBJECT_CLASS (relais_sync_indicator_parent_class)->finalize (object);
}

static void
relais_sync_indicator_class_init (RelaisSyncIndicatorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = relais_sync_indicator_dispose;
  object_class->finalize = relais_sync_indicator_finalize;

  /* A screen reader announces its changes without taking the focus. */
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_STATUS);
  gtk_widget_class_set_css_name (widget_class, "syncindicator");
}

static void
relais_sync_indicator_init (RelaisSyncIndicator *self)
{
  GtkBox *box = GTK_BOX (self);
  GtkWidget *content;

  gtk_orientable_set_orientation (GTK_ORIENTABLE (self), GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (box, 6);

  /* The line says it all: the icon is decoration for screen readers. */
  self->icon = g_object_new (GTK_TYPE_IMAGE,
                             "accessible-role", GTK_ACCESSIBLE_ROLE_PRESENTATION,
                             NULL);
  gtk_widget_add_css_class (self->icon, "dim-label");
  gtk_box_append (box, self->icon);

  self->spinner = gtk_spinner_new ();
  gtk_widget_set_visible (self->spinner, FALSE);
  gtk_box_append (box, self->spinner);

  self->label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (self->label), 0);
  gtk_label_set_ellipsize (GTK_LABEL (self->label), PANGO_ELLIPSIZE_END);
  /* A long error must not widen the sidebar: it is cut, and whole in the
   * tooltip. */
  gtk_label_set_max_width_chars (GTK_LABEL (self->label), 20);
  gtk_widget_set_hexpand (self->label, TRUE);
  gtk_widget_add_css_class (self->label, "caption");
  gtk_box_append (box, self->label);

  self->conflicts_button = gtk_button_new ();
  content = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  gtk_box_append (GTK_BOX (content), gtk_image_new_from_icon_name ("dialog-warning-symbolic"));
  self->conflicts_label = gtk_label_new (NULL);
  gtk_box_append (GTK_BOX (content), self->conflicts_label);
  gtk_button_set_child (GTK_BUTTON (self->conflicts_button), content);
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->conflicts_button), "sync.conflicts");
  gtk_widget_add_css_class (self->conflicts_button, "flat");
  gtk_widget_add_css_class (self->conflicts_button, "conflicts-button");
  gtk_widget_set_valign (self->conflicts_button, GTK_ALIGN_CENTER);
  gtk_box_append (box, self->conflicts_button);

  self->sync_button = gtk_button_new_from_icon_name ("view-refresh-symbolic");
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->sync_button), "sync.now");
  gtk_widget_add_css_class (self->sync_button, "flat");
  gtk_widget_set_valign (self->sync_button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (self->sync_button, _("Sync Now"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->sync_button),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Sync Now"),
                                  -1);
  gtk_box_append (box, self->sync_button);

  /* Where "Not connected to a server" is read, the way to connect. */
  self->connect_button = gtk_button_new_with_label (_("Connect…"));
  gtk_actionable_set_action_name (GTK_ACTIONABLE (self->connect_button), "sync.connect");
  gtk_widget_add_css_class (self->connect_button, "flat");
  gtk_widget_add_css_class (self->connect_button, "caption");
  gtk_widget_set_valign (self->connect_button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (self->connect_button, _("Connect this computer to your organisation’s server"));
  gtk_box_append (box, self->connect_button);

  self->state = RELAIS_SYNC_STATE_NOT_ENROLLED;
  self->tick_source = g_timeout_add_seconds (TICK_SECONDS, tick, self);
  show (self);
}

GtkWidget *
relais_sync_indicator_new (void)
{
  return g_object_new (RELAIS_TYPE_SYNC_INDICATOR, NULL);
}

void
relais_sync_indicator_update (RelaisSyncIndicator *self,
                              RelaisSyncState      state,
                              guint                pending,
                              gint64               last_success,
                              const char          *error_message,
                              guint                conflicts)
{
  g_return_if_fail (RELAIS_IS_SYNC_INDICATOR (self));

  self->state = state;
  self->pending = pending;
  self->last_success = last_success;
  g_free (self->error_message);
  self->error_message = g_strdup (error_message);
  self->conflicts = conflicts;
  show (self);
}

RelaisSyncState
relais_sync_indicator_get_state (RelaisSyncIndicator *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_INDICATOR (self), RELAIS_SYNC_STATE_NOT_ENROLLED);

  return self->state;
}

const char *
relais_sync_indicator_get_text (RelaisSyncIndicator *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_INDICATOR (self), NULL);

  return self->text;
}

char *
relais_sync_indicator_get_accessible_text (RelaisSyncIndicator *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_INDICATOR (self), NULL);

  if (self->conflicts == 0)
    /* Translators: read by screen readers: "Sync: Synced 5 minutes ago". */
    return g_strdup_printf (_("Sync: %s"), self->text);
  {
    /* An error message ends its own sentence. */
    g_autofree char *sentence = g_strdup (self->text);
    gsize len = strlen (sentence);

    if (len > 0 && sentence[len - 1] == '.')
      sentence[len - 1] = '\0';
    /* Translators: read by screen readers: "Sync: Synced 5 minutes ago. 2 conflicts to review". */
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                         "Sync: %s. %u conflict to review",
                                         "Sync: %s. %u conflicts to review",
                                         self->conflicts),
                            sentence, self->conflicts);
  }
}
