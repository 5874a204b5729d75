#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "relais-keyfile.h"
#include "relais-accessible.h"
#include "relais-conflicts-page.h"
#include "relais-oplog.h"
#include "relais-person-object.h"
#include "relais-person-dialog.h"
#include "relais-preferences-window.h"
#include "relais-strength.h"
#include "relais-summary.h"
#include "relais-sync-controller.h"
#include "relais-sync-dialogs.h"
#include "relais-sync-engine.h"
#include "relais-ui.h"
#include "relais-vault-view.h"
#include "relais-window.h"

/* How often the window checks whether it has been idle long enough. */
#define IDLE_CHECK_SECONDS 10

struct _RelaisWindow
{
  AdwApplicationWindow  parent_instance;

  GSettings            *settings;
  char                 *vault_dir;
  RelaisVault          *vault;
  GCancellable         *cancellable;
  RelaisVaultView      *view;
  RelaisSyncController *sync;
  AdwToast             *sync_toast;  /* weak: the last sync's, replaced by the next */
  char                 *sync_notice; /* what it said */
  guint                 n_conflicts;
  guint                 sync_frames;
  /* The recovery fill (after a sync) uses the vault in a worker: the
   * window takes no input, and a lock or a close asked meanwhile waits
   * for its end (cancelled, a second at most). */
  gboolean              fill_shown;
  GtkWidget            *fill_focus;   /* owned: the focus to give back */
  gboolean              lock_after_fill;
  gboolean              lock_after_fill_idle;
  gboolean              close_after_fill;
  guint                 after_fill_source;
  gint64                last_activity;
  /* When Unlock was pressed, until the first rows are on screen
   * (G_MESSAGES_DEBUG=relais-ui prints the time it took). */
  gint64                unlock_started;
  guint                 unlock_frames;
  guint                 idle_source;
  gboolean              busy;

  /* Template widgets */
  AdwToastOverlay      *toast_overlay;
  GtkStack             *stack;
  AdwPasswordEntryRow  *new_passphrase_row;
  AdwPasswordEntryRow  *confirm_passphrase_row;
  AdwActionRow         *strength_row;
  GtkLevelBar          *strength_bar;
  GtkLabel             *create_error;
  GtkButton            *create_button;
  GtkSpinner           *create_spinner;
  GtkLabel             *recovery_key_label;
  GtkCheckButton       *written_check;
  GtkButton            *continue_button;
  GtkLabel             *create_notice;
  AdwStatusPage        *unlock_page;
  AdwPasswordEntryRow  *passphrase_row;
  GtkLabel             *unlock_error;
  GtkButton            *unlock_button;
  GtkSpinner           *unlock_spinner;
  AdwBin               *vault_bin;
  RelaisConflictsPage  *conflicts_page;
  GMenuModel           *primary_menu;
};

G_DEFINE_FINAL_TYPE (RelaisWindow, relais_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_SETTINGS,
  PROP_VAULT_DIR,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void update_actions (RelaisWindow *self);
static void update_sync_indicator (RelaisWindow *self);
static void count_conflicts (RelaisWindow *self);
static void on_view_written (RelaisWindow *self);

/* Vault creation and opening, in a thread: Argon2id takes most of a
 * second and a quarter of a gigabyte, and the window must stay alive. */
typedef struct {
  char     *dir;
  char     *passphrase;
  gboolean  create;
  char     *recovery_key;
} OpenData;

static void
wipe_string (char **s)
{
  if (*s != NULL)
    {
      explicit_bzero (*s, strlen (*s));
      g_clear_pointer (s, g_free);
    }
}

static void
open_data_free (OpenData *data)
{
  g_free (data->dir);
  wipe_string (&data->passphrase);
  wipe_string (&data->recovery_key);
  g_free (data);
}

static void
open_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  OpenData *data = task_data;
  GError *error = NULL;
  RelaisVault *vault;

  if (data->create)
    vault = relais_vault_create (data->dir, data->passphrase, NULL, &data->recovery_key, &error);
  else
    vault = relais_vault_open (data->dir, data->passphrase, NULL, &error);
  wipe_string (&data->passphrase);

  if (vault == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, vault, (GDestroyNotify) relais_vault_close);
}

static void
open_async (RelaisWindow        *self,
            const char          *passphrase,
            gboolean             create,
            GAsyncReadyCallback  callback)
{
  g_autoptr(GTask) task = NULL;
  OpenData *data = g_new0 (OpenData, 1);

  data->dir = g_strdup (self->vault_dir);
  data->passphrase = g_strdup (passphrase);
  data->create = create;

  task = g_task_new (self, self->cancellable, callback, NULL);
  g_task_set_source_tag (task, open_async);
  g_task_set_task_data (task, data, (GDestroyNotify) open_data_free);
  g_task_run_in_thread (task, open_thread);
}

static void
note_activity (RelaisWindow *self)
{
  self->last_activity = g_get_monotonic_time ();
}

static gboolean
on_any_event (GtkEventControllerLegacy *controller,
              GdkEvent                 *event,
              RelaisWindow             *self)
{
  switch (gdk_event_get_event_type (event))
    {
    case GDK_MOTION_NOTIFY:
    case GDK_BUTTON_PRESS:
    case GDK_BUTTON_RELEASE:
    case GDK_KEY_PRESS:
    case GDK_KEY_RELEASE:
    case GDK_SCROLL:
    case GDK_TOUCH_BEGIN:
    case GDK_TOUCH_UPDATE:
    case GDK_TOUCHPAD_SWIPE:
    case GDK_TOUCHPAD_PINCH:
      note_activity (self);
      break;

    default:
      break;
    }

  return GDK_EVENT_PROPAGATE;
}

/* Any input in @window, the main one or a dialog of it, keeps the vault
 * open. */
static void
watch_activity (RelaisWindow *self,
                GtkWindow    *window)
{
  GtkEventController *controller = gtk_event_controller_legacy_new ();

  gtk_event_controller_set_propagation_phase (controller, GTK_PHASE_CAPTURE);
  g_signal_connect_object (controller, "event", G_CALLBACK (on_any_event), self, 0);
  gtk_widget_add_controller (GTK_WIDGET (window), controller);
}

static guint
auto_lock_minutes (RelaisWindow *self)
{
  if (self->settings == NULL)
    return 5;
  return MAX (1, g_settings_get_uint (self->settings, "auto-lock-minutes"));
}

static void lock (RelaisWindow *self, gboolean idle);

static gboolean
check_idle (gpointer user_data)
{
  RelaisWindow *self = user_data;
  gint64 limit = (gint64) auto_lock_minutes (self) * 60 * G_USEC_PER_SEC;

  /* Not while the recovery key is shown: locking would take it off the
   * screen before the person has written it down, for good. */
  /* Nor while a worker thread uses the vault (enrolment, sharing):
   * closing it under the thread would lose the person's work or worse. */
  if (self->vault != NULL && self->view != NULL
      && !relais_sync_controller_is_held (self->sync)
      && g_get_monotonic_time () - self->last_activity >= limit)
    lock (self, TRUE);

  return G_SOURCE_CONTINUE;
}

static void
set_page (RelaisWindow *self,
          const char   *name)
{
  gtk_stack_set_visible_child_name (self->stack, name);

  if (g_str_equal (name, "create"))
    gtk_widget_grab_focus (GTK_WIDGET (self->new_passphrase_row));
  else if (g_str_equal (name, "recovery"))
    gtk_widget_grab_focus (GTK_WIDGET (self->written_check));
  else if (g_str_equal (name, "unlock"))
    gtk_widget_grab_focus (GTK_WIDGET (self->passphrase_row));
  else if (g_str_equal (name, "conflicts"))
    gtk_widget_child_focus (GTK_WIDGET (self->conflicts_page), GTK_DIR_TAB_FORWARD);
  else if (self->view != NULL)
    relais_vault_view_focus_search (self->view);

  update_actions (self);
}

static void
on_dossier_shown (RelaisWindow *self)
{
  update_actions (self);
}

static void
on_view_toast (RelaisWindow *self,
               AdwToast     *toast)
{
  adw_toast_overlay_add_toast (self->toast_overlay, g_object_ref (toast));
}

static gboolean
report_first_rows (GtkWidget     *widget,
                   GdkFrameClock *clock,
                   gpointer       user_data)
{
  RelaisWindow *self = user_data;

  /* The frame whose tick comes second has painted the first one, which
   * held the vault page and its first rows. */
  if (++self->unlock_frames < 2)
    return G_SOURCE_CONTINUE;

  g_debug ("unlock: first rows on screen %" G_GINT64_FORMAT " ms after Unlock",
           (g_get_monotonic_time () - self->unlock_started) / 1000);
  self->unlock_started = 0;
  return G_SOURCE_REMOVE;
}

/* The first frame with the unlocked vault is painted once the second
 * one starts, and the crossfade from the unlock page is over: then the
 * sync may hold the main thread (seconds, the first time after enrolment)
 * without freezing a half-drawn window. */
static gboolean
begin_sync_when_drawn (GtkWidget     *widget,
                       GdkFrameClock *clock,
                       gpointer       user_data)
{
  RelaisWindow *self = user_data;

  if (++self->sync_frames < 2 || gtk_stack_get_transition_running (self->stack))
    return G_SOURCE_CONTINUE;
  relais_sync_controller_begin (self->sync);
  return G_SOURCE_REMOVE;
}

static void
show_vault (RelaisWindow *self)
{
  g_assert (self->vault != NULL);
  g_assert (self->view == NULL);

  self->view = relais_vault_view_new (self->vault, self->primary_menu);
  g_signal_connect_object (self->view, "notify::dossier-id",
                           G_CALLBACK (on_dossier_shown), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->view, "toast",
                           G_CALLBACK (on_view_toast), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->view, "written",
                           G_CALLBACK (on_view_written), self, G_CONNECT_SWAPPED);
  adw_bin_set_child (self->vault_bin, GTK_WIDGET (self->view));
  note_activity (self);
  count_conflicts (self);
  relais_sync_controller_set_vault (self->sync, self->vault);
  update_sync_indicator (self);
  set_page (self, "vault");
  /* Applies what the background service pulled, then syncs if the
   * network allows, once the list is on screen. */
  self->sync_frames = 0;
  gtk_widget_add_tick_callback (GTK_WIDGET (self->view), begin_sync_when_drawn, self, NULL);

  if (self->unlock_started != 0)
    {
      self->unlock_frames = 0;
      gtk_widget_add_tick_callback (GTK_WIDGET (self->view), report_first_rows, self, NULL);
    }
}

/* The dialogs of the window, which may hold what a vault holds. */
static void
close_dialogs (RelaisWindow *self)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = g_list_model_get_n_items (toplevels); i > 0; i--)
    {
      g_autoptr(GtkWindow) window = g_list_model_get_item (toplevels, i - 1);

      if (gtk_window_get_transient_for (window) == GTK_WINDOW (self)
          && (RELAIS_IS_PERSON_DIALOG (window) || RELAIS_IS_PREFERENCES_WINDOW (window)
              || RELAIS_IS_ENROL_DIALOG (window) || RELAIS_IS_TEAM_DIALOG (window)))
        gtk_window_destroy (window);
    }
}

static void
lock (RelaisWindow *self,
      gboolean      idle)
{
  if (self->vault == NULL)
    return;
  /* A worker thread uses the vault: its end comes first. */
  if (relais_sync_controller_is_held (self->sync))
    return;
  /* The recovery fill's worker: cut, and the lock follows its end
   * (on_sync_changed ()), without waiting on the network here. */
  if (relais_sync_controller_is_filling (self->sync))
    {
      /* The person's own lock speaks louder than the idle one. */
      self->lock_after_fill_idle = self->lock_after_fill ? self->lock_after_fill_idle && idle : idle;
      self->lock_after_fill = TRUE;
      relais_sync_controller_cancel_fill (self->sync);
      return;
    }

  close_dialogs (self);
  relais_conflicts_page_set_vault (self->conflicts_page, NULL);
  relais_conflicts_page_set_directory (self->conflicts_page, NULL);
  /* Seals what was written, and cancels the exchange under way. */
  relais_sync_controller_set_vault (self->sync, NULL);

  if (self->view != NULL)
    {
      relais_vault_view_detach (self->view);
      adw_bin_set_child (self->vault_bin, NULL);
      self->view = NULL;
    }
  g_clear_pointer (&self->vault, relais_vault_close);
  gtk_label_set_label (self->recovery_key_label, "");

  gtk_editable_set_text (GTK_EDITABLE (self->passphrase_row), "");
  gtk_widget_set_visible (GTK_WIDGET (self->unlock_error), FALSE);
  if (idle)
    {
      guint minutes = auto_lock_minutes (self);
      g_autofree char *description =
        g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                      "Your vault locked itself after %u minute without use",
                                      "Your vault locked itself after %u minutes without use",
                                      minutes),
                         minutes);

      adw_status_page_set_description (self->unlock_page, description);
    }
  else
    adw_status_page_set_description (self->unlock_page, _("Your vault is locked"));

  set_page (self, "unlock");
}

/* Create page */

static void
update_create_page (RelaisWindow *self)
{
  const char *passphrase = gtk_editable_get_text (GTK_EDITABLE (self->new_passphrase_row));
  RelaisStrength strength = relais_strength_estimate (passphrase, NULL);

  gtk_level_bar_set_value (self->strength_bar, (double) strength);
  adw_action_row_set_subtitle (self->strength_row, relais_strength_describe (strength));
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->strength_bar),
                                  GTK_ACCESSIBLE_PROPERTY_VALUE_TEXT,
                                  relais_strength_describe (strength),
                                  -1);
}

static void
on_new_passphrase_changed (RelaisWindow *self)
{
  update_create_page (self);
  gtk_widget_set_visible (GTK_WIDGET (self->create_error), FALSE);
  update_actions (self);
}

static void
on_new_passphrase_activated (RelaisWindow *self)
{
  gtk_widget_grab_focus (GTK_WIDGET (self->confirm_passphrase_row));
}

static void
on_confirm_passphrase_activated (RelaisWindow *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "vault.create", NULL);
}

static void
show_create_error (RelaisWindow *self,
                   const char   *message,
                   GtkWidget    *focus)
{
  gtk_label_set_label (self->create_error, message);
  gtk_widget_set_visible (GTK_WIDGET (self->create_error), TRUE);
  gtk_widget_grab_focus (focus);
  gtk_editable_select_region (GTK_EDITABLE (focus), 0, -1);
}

static void
set_busy (RelaisWindow *self,
          gboolean      busy)
{
  self->busy = busy;
  gtk_widget_set_visible (GTK_WIDGET (self->create_spinner), busy);
  gtk_spinner_set_spinning (self->create_spinner, busy);
  gtk_widget_set_visible (GTK_WIDGET (self->unlock_spinner), busy);
  gtk_spinner_set_spinning (self->unlock_spinner, busy);
  /* Not insensitive: the field keeps the focus, and GTK 4.8 warns when a
   * focused text becomes insensitive. */
  gtk_editable_set_editable (GTK_EDITABLE (self->new_passphrase_row), !busy);
  gtk_editable_set_editable (GTK_EDITABLE (self->confirm_passphrase_row), !busy);
  gtk_editable_set_editable (GTK_EDITABLE (self->passphrase_row), !busy);
  update_actions (self);
}

static void
create_done (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  RelaisWindow *self = RELAIS_WINDOW (object);
  OpenData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  RelaisVault *vault;

  vault = g_task_propagate_pointer (G_TASK (result), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  set_busy (self, FALSE);

  if (vault == NULL)
    {
      show_create_error (self, error->message, GTK_WIDGET (self->new_passphrase_row));
      return;
    }

  self->vault = vault;
  gtk_editable_set_text (GTK_EDITABLE (self->new_passphrase_row), "");
  gtk_editable_set_text (GTK_EDITABLE (self->confirm_passphrase_row), "");
  gtk_label_set_label (self->recovery_key_label, data->recovery_key);
  gtk_check_button_set_active (self->written_check, FALSE);
  note_activity (self);
  set_page (self, "recovery");
}

static void
relais_window_create (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);
  const char *passphrase = gtk_editable_get_text (GTK_EDITABLE (self->new_passphrase_row));
  const char *confirm = gtk_editable_get_text (GTK_EDITABLE (self->confirm_passphrase_row));

  if (self->busy)
    return;

  if (relais_strength_estimate (passphrase, NULL) < RELAIS_STRENGTH_FAIR)
    {
      show_create_error (self,
                         _("This passphrase is too easy to guess. Make it longer: several unrelated words are easy to remember and hard to guess."),
                         GTK_WIDGET (self->new_passphrase_row));
      return;
    }
  if (g_strcmp0 (passphrase, confirm) != 0)
    {
      show_create_error (self, _("The two passphrases differ. Type the same one twice."),
                         GTK_WIDGET (self->confirm_passphrase_row));
      return;
    }

  set_busy (self, TRUE);
  open_async (self, passphrase, TRUE, create_done);
}

/* Recovery page */

static void
on_written_toggled (RelaisWindow *self)
{
  update_actions (self);
}

static void
relais_window_copy_recovery_key (GtkWidget  *widget,
                                 const char *action_name,
                                 GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget),
                          gtk_label_get_label (self->recovery_key_label));
  adw_toast_overlay_add_toast (self->toast_overlay,
                               adw_toast_new (_("Recovery key copied. Paste it where you keep it, then clear the clipboard.")));
}

static void
relais_window_continue (GtkWidget  *widget,
                        const char *action_name,
                        GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  if (!gtk_check_button_get_active (self->written_check) || self->vault == NULL)
    return;

  /* Shown once: nothing keeps it once the person has moved on. */
  gtk_label_set_label (self->recovery_key_label, "");
  gtk_check_button_set_active (self->written_check, FALSE);
  show_vault (self);
}

/* Unlock page */

static gboolean
has_passphrase (RelaisWindow *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->passphrase_row));

  return text != NULL && text[0] != '\0';
}

static void
on_passphrase_changed (RelaisWindow *self)
{
  update_actions (self);
}

static void
on_passphrase_activated (RelaisWindow *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "vault.unlock", NULL);
}

static void
unlock_done (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  RelaisWindow *self = RELAIS_WINDOW (object);
  g_autoptr(GError) error = NULL;
  RelaisVault *vault;

  vault = g_task_propagate_pointer (G_TASK (result), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  set_busy (self, FALSE);

  if (vault == NULL)
    {
      const char *message = error->message;

      if (g_error_matches (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE))
        message = _("This passphrase does not open the vault. Check the keyboard layout and Caps Lock, then try again.");

      gtk_label_set_label (self->unlock_error, message);
      gtk_widget_set_visible (GTK_WIDGET (self->unlock_error), TRUE);
      gtk_accessible_update_property (GTK_ACCESSIBLE (self->passphrase_row),
                                      GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, message,
                                      -1);
      gtk_widget_grab_focus (GTK_WIDGET (self->passphrase_row));
      gtk_editable_select_region (GTK_EDITABLE (self->passphrase_row), 0, -1);
      return;
    }

  self->vault = vault;
  gtk_editable_set_text (GTK_EDITABLE (self->passphrase_row), "");
  gtk_widget_set_visible (GTK_WIDGET (self->unlock_error), FALSE);
  gtk_accessible_reset_property (GTK_ACCESSIBLE (self->passphrase_row),
                                 GTK_ACCESSIBLE_PROPERTY_DESCRIPTION);
  show_vault (self);
}

static void
relais_window_unlock (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  if (!has_passphrase (self) || self->busy || self->vault != NULL)
    return;

  gtk_widget_set_visible (GTK_WIDGET (self->unlock_error), FALSE);
  set_busy (self, TRUE);
  self->unlock_started = g_get_monotonic_time ();
  open_async (self, gtk_editable_get_text (GTK_EDITABLE (self->passphrase_row)), FALSE,
              unlock_done);
}

static void
relais_window_lock_action (GtkWidget  *widget,
                           const char *action_name,
                           GVariant   *parameter)
{
  lock (RELAIS_WINDOW (widget), FALSE);
}

/* Sync and conflicts */

static void
count_conflicts (RelaisWindow *self)
{
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autoptr(GError) error = NULL;

  self->n_conflicts = 0;
  if (self->vault == NULL)
    return;
  conflicts = relais_oplog_conflicts (self->vault, NULL, &error);
  if (conflicts != NULL)
    self->n_conflicts = conflicts->len;
  else
    g_warning ("Could not count the conflicts: %s", error->message);
}

static void
update_sync_indicator (RelaisWindow *self)
{
  if (self->vault == NULL || self->view == NULL)
    return;

  relais_sync_indicator_update (relais_vault_view_get_sync_indicator (self->view),
                                relais_sync_controller_get_state (self->sync),
                                relais_sync_controller_get_pending (self->sync),
                                relais_sync_controller_get_last_success (self->sync),
                                relais_sync_controller_get_error (self->sync),
                                self->n_conflicts);
  relais_vault_view_set_can_share (self->view, relais_sync_controller_is_enrolled (self->sync));
  update_actions (self);
}

/* The window and its dialogs take no input while the fill's worker uses
 * the vault: every click, key or timer they answer may read it. */
static void
show_filling (RelaisWindow *self,
              gboolean      filling)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  if (self->fill_shown == filling)
    return;
  self->fill_shown = filling;
  if (filling)
    {
      /* GTK 4.8 warns when the focused text of a window becomes
       * insensitive: the focus goes, and comes back after. */
      GtkWidget *focus = gtk_window_get_focus (GTK_WINDOW (self));

      g_set_object (&self->fill_focus, focus);
      gtk_window_set_focus (GTK_WINDOW (self), NULL);
    }
  gtk_widget_set_sensitive (GTK_WIDGET (self), !filling);
  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr(GtkWindow) window = g_list_model_get_item (toplevels, i);

      if (gtk_window_get_transient_for (window) == GTK_WINDOW (self))
        gtk_widget_set_sensitive (GTK_WIDGET (window), !filling);
    }
  if (!filling)
    {
      if (self->fill_focus != NULL && gtk_widget_get_root (self->fill_focus) == GTK_ROOT (self))
        gtk_window_set_focus (GTK_WINDOW (self), self->fill_focus);
      g_clear_object (&self->fill_focus);
    }
}

static gboolean
after_fill_idle (gpointer user_data)
{
  RelaisWindow *self = user_data;

  self->after_fill_source = 0;
  if (self->close_after_fill)
    {
      self->close_after_fill = FALSE;
      self->lock_after_fill = FALSE;
      gtk_window_close (GTK_WINDOW (self));
    }
  else if (self->lock_after_fill)
    {
      /* Asked once: lock () asks again if another fill runs by now. */
      self->lock_after_fill = FALSE;
      lock (self, self->lock_after_fill_idle);
    }
  return G_SOURCE_REMOVE;
}

static void
on_sync_changed (RelaisWindow *self)
{
  gboolean filling = relais_sync_controller_is_filling (self->sync);

  show_filling (self, filling);
  /* Not inside the controller's emission: it goes on after it. */
  if (!filling && (self->lock_after_fill || self->close_after_fill) && self->after_fill_source == 0)
    self->after_fill_source = g_idle_add (after_fill_idle, self);
  update_sync_indicator (self);
}

static void
on_sync_applied (RelaisWindow *self,
                 guint         n_ops)
{
  if (self->view == NULL)
    return;

  /* Operations from elsewhere: new dossiers, any page of the open one
   * changed, new conflicts. */
  relais_vault_view_reload (self->view);
  count_conflicts (self);
  if (g_strcmp0 (relais_window_get_state (self), "conflicts") == 0)
    {
      relais_conflicts_page_set_directory (self->conflicts_page,
                                           relais_sync_controller_get_directory (self->sync));
      relais_conflicts_page_refresh (self->conflicts_page);
    }
  update_sync_indicator (self);
}

/* Only the last word on sync is shown: an older one would contradict it. */
static void
show_sync_toast (RelaisWindow *self,
                 AdwToast     *toast)
{
  if (self->sync_toast != NULL)
    adw_toast_dismiss (self->sync_toast);
  g_clear_weak_pointer (&self->sync_toast);
  g_set_weak_pointer (&self->sync_toast, toast);
  g_free (self->sync_notice);
  self->sync_notice = g_strdup (adw_toast_get_title (toast));
  adw_toast_set_timeout (toast, 8);
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

static void
on_sync_finished (RelaisWindow *self,
                  gboolean      manual,
                  const char   *failure)
{
  g_autofree char *message = NULL;
  AdwToast *toast;

  /* Automatic syncs speak through the indicator only. */
  if (!manual || self->view == NULL)
    return;

  if (failure != NULL)
    message = g_strdup_printf (_("Not synced: %s"), failure);
  else if (self->n_conflicts > 0)
    message = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                            "Synced. %u conflict to review",
                                            "Synced. %u conflicts to review",
                                            self->n_conflicts),
                               self->n_conflicts);
  else
    message = g_strdup (_("Synced"));
  toast = adw_toast_new (message);
  if (failure == NULL && self->n_conflicts > 0)
    {
      adw_toast_set_button_label (toast, _("_Review"));
      adw_toast_set_action_name (toast, "sync.conflicts");
    }
  show_sync_toast (self, toast);
}

static void
on_sync_refused (RelaisWindow *self,
                 guint         n,
                 const char   *dossier,
                 const char   *reason)
{
  g_autoptr(RelaisPerson) person = NULL;
  g_autofree char *name = NULL;
  g_autofree char *message = NULL;

  if (self->vault == NULL)
    return;

  if (g_strcmp0 (dossier, "?") != 0)
    person = relais_person_get (self->vault, dossier, NULL);
  if (person != NULL)
    name = relais_person_format_name (person);

  if (n == 1 && name != NULL)
    /* Translators: a person's name, then why: "the signature does not match its author". */
    message = g_strdup_printf (_("A change to the dossier of %s was refused: %s."), name, reason);
  else if (n == 1)
    message = g_strdup_printf (_("A change received for a dossier was refused: %s."), reason);
  else
    message = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                            "%u change received was refused: %s.",
                                            "%u changes received were refused; the first: %s.",
                                            n),
                               n, reason);
  show_sync_toast (self, adw_toast_new (message));
}

/* The server refused this device for good (an administrator revoked it:
 * a lost or stolen laptop).  Its spool is wiped already; the vault goes
 * too, and the window starts over. */
static void
on_sync_revoked (RelaisWindow *self)
{
  g_autoptr(GError) error = NULL;

  g_message ("This device was revoked: wiping its vault");
  lock (self, FALSE);
  if (!relais_sync_wipe (self->vault_dir, &error))
    g_warning ("Could not wipe the revoked vault: %s", error->message);

  gtk_label_set_label (self->create_notice,
                       _("Your organisation’s server no longer accepts this computer, so the vault it held has been erased. If this is a mistake, ask your administrator for a new enrolment code."));
  gtk_widget_set_visible (GTK_WIDGET (self->create_notice), TRUE);
  set_page (self, "create");
}

static void
on_view_written (RelaisWindow *self)
{
  relais_sync_controller_note_write (self->sync);
}

static void
relais_window_sync_now (GtkWidget  *widget,
                        const char *action_name,
                        GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  relais_sync_controller_sync (self->sync, TRUE);
}

static void
on_enrolled (RelaisWindow *self)
{
  if (self->vault == NULL)
    return;

  /* The first sync sends every dossier of this vault; on another
   * computer of the same person, it brings every dossier back. */
  relais_sync_controller_reload (self->sync);
  update_sync_indicator (self);
  adw_toast_overlay_add_toast (self->toast_overlay,
                               adw_toast_new (_("This computer is connected to the server")));
  relais_sync_controller_sync (self->sync, TRUE);
}

static void
relais_window_connect (GtkWidget  *widget,
                       const char *action_name,
                       GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);
  RelaisEnrolDialog *dialog;

  if (self->vault == NULL || self->view == NULL || relais_sync_controller_is_enrolled (self->sync))
    return;

  dialog = relais_enrol_dialog_new (GTK_WINDOW (self), self->vault, self->sync);
  g_signal_connect_object (dialog, "enrolled", G_CALLBACK (on_enrolled), self, G_CONNECT_SWAPPED);
  watch_activity (self, GTK_WINDOW (dialog));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
relais_window_show_team (GtkWidget  *widget,
                         const char *action_name,
                         GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);
  RelaisTeamDialog *dialog;
  const char *id;

  if (self->vault == NULL || self->view == NULL || !relais_sync_controller_is_enrolled (self->sync))
    return;
  id = relais_vault_view_get_dossier_id (self->view);
  if (id == NULL)
    return;

  dialog = relais_team_dialog_new (GTK_WINDOW (self), self->vault, self->sync, id);
  watch_activity (self, GTK_WINDOW (dialog));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
relais_window_show_conflicts (GtkWidget  *widget,
                              const char *action_name,
                              GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  if (self->vault == NULL || self->view == NULL)
    return;

  relais_conflicts_page_set_directory (self->conflicts_page,
                                       relais_sync_controller_get_directory (self->sync));
  relais_conflicts_page_set_vault (self->conflicts_page, self->vault);
  set_page (self, "conflicts");
}

static void
on_conflicts_back (RelaisWindow *self)
{
  /* Nothing of a dossier stays in a page that is not shown. */
  relais_conflicts_page_set_vault (self->conflicts_page, NULL);
  relais_conflicts_page_set_directory (self->conflicts_page, NULL);
  if (self->vault != NULL)
    set_page (self, "vault");
}

static void
on_conflict_open_dossier (RelaisWindow *self,
                          const char   *dossier)
{
  if (self->view == NULL)
    return;

  on_conflicts_back (self);
  relais_vault_view_show_dossier (self->view, dossier);
  relais_vault_view_open_dossier_pane (self->view);
}

static void
on_conflict_resolved (RelaisWindow *self,
                      const char   *dossier)
{
  if (self->view == NULL)
    return;

  /* The dossier shown may be the one that changed. */
  relais_vault_view_refresh (self->view);
  count_conflicts (self);
  relais_sync_controller_note_write (self->sync);
  update_sync_indicator (self);
}

/* Dossiers */

static void
on_dossier_saved (RelaisWindow *self,
                  const char   *id,
                  RelaisPersonDialog *dialog)
{
  if (self->view == NULL)
    return;

  relais_vault_view_refresh (self->view);
  relais_vault_view_show_dossier (self->view, id);
  relais_sync_controller_note_write (self->sync);
}

static void
on_dossier_created (RelaisWindow *self,
                    const char   *id)
{
  on_dossier_saved (self, id, NULL);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (_("Dossier created")));
}

static void
on_dossier_edited (RelaisWindow *self,
                   const char   *id)
{
  on_dossier_saved (self, id, NULL);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (_("Changes saved")));
}

static void
on_open_dossier (RelaisWindow *self,
                 const char   *id)
{
  if (self->view != NULL)
    relais_vault_view_show_dossier (self->view, id);
}

static void
relais_window_new_dossier (GtkWidget  *widget,
                           const char *action_name,
                           GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);
  RelaisPersonDialog *dialog;

  if (self->vault == NULL)
    return;

  dialog = relais_person_dialog_new (GTK_WINDOW (self), self->vault, NULL);
  g_signal_connect_object (dialog, "saved", G_CALLBACK (on_dossier_created), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (dialog, "open-dossier", G_CALLBACK (on_open_dossier), self, G_CONNECT_SWAPPED);
  watch_activity (self, GTK_WINDOW (dialog));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
relais_window_edit_dossier (GtkWidget  *widget,
                            const char *action_name,
                            GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);
  RelaisPersonDialog *dialog;
  const char *id;

  if (self->vault == NULL || self->view == NULL)
    return;
  id = relais_vault_view_get_dossier_id (self->view);
  if (id == NULL)
    return;

  dialog = relais_person_dialog_new (GTK_WINDOW (self), self->vault, id);
  g_signal_connect_object (dialog, "saved", G_CALLBACK (on_dossier_edited), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (dialog, "open-dossier", G_CALLBACK (on_open_dossier), self, G_CONNECT_SWAPPED);
  watch_activity (self, GTK_WINDOW (dialog));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
on_begin_print (GtkPrintOperation *operation,
                GtkPrintContext   *context,
                RelaisSummary     *summary)
{
  guint n_pages = relais_summary_paginate (summary,
                                           gtk_print_context_get_cairo_context (context),
                                           gtk_print_context_get_width (context),
                                           gtk_print_context_get_height (context));

  gtk_print_operation_set_n_pages (operation, (int) n_pages);
}

static void
on_draw_page (GtkPrintOperation *operation,
              GtkPrintContext   *context,
              int                page,
              RelaisSummary     *summary)
{
  relais_summary_draw_page (summary, gtk_print_context_get_cairo_context (context), (guint) page);
}

static void
on_print_done (GtkPrintOperation       *operation,
               GtkPrintOperationResult  result,
               RelaisWindow            *self)
{
  g_autoptr(GError) error = NULL;

  if (result == GTK_PRINT_OPERATION_RESULT_ERROR)
    {
      gtk_print_operation_get_error (operation, &error);
      adw_toast_overlay_add_toast (self->toast_overlay,
                                   adw_toast_new (error != NULL ? error->message : _("Printing failed")));
    }
}

/* The print operation for the open dossier's summary, set up the same way
 * for the printer and for a file: A4 by default, like `relaisctl summary
 * --pdf`, and the renderer draws its own margins from the paper's edge, in
 * points.  NULL with @error set when the summary cannot be read. */
static GtkPrintOperation *
new_print_operation (RelaisWindow  *self,
                     GError       **error)
{
  g_autoptr(GtkPrintOperation) operation = NULL;
  g_autoptr(GtkPageSetup) page_setup = NULL;
  g_autoptr(GtkPaperSize) a4 = NULL;
  RelaisSummary *summary;
  const char *id = NULL;

  if (self->vault != NULL && self->view != NULL)
    id = relais_vault_view_get_dossier_id (self->view);
  if (id == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("No dossier is open"));
      return NULL;
    }

  /* Read now, whole: the vault may lock while the print dialog is open. */
  summary = relais_summary_new (self->vault, id, error);
  if (summary == NULL)
    return NULL;

  operation = gtk_print_operation_new ();
  gtk_print_operation_set_unit (operation, GTK_UNIT_POINTS);
  gtk_print_operation_set_use_full_page (operation, TRUE);
  a4 = gtk_paper_size_new (GTK_PAPER_NAME_A4);
  page_setup = gtk_page_setup_new ();
  gtk_page_setup_set_paper_size_and_default_margins (page_setup, a4);
  gtk_print_operation_set_default_page_setup (operation, page_setup);
  /* No name in the job: print queues are visible to others. */
  gtk_print_operation_set_job_name (operation, _("Summary"));
  g_object_set_data_full (G_OBJECT (operation), "summary", summary,
                          (GDestroyNotify) relais_summary_free);
  g_signal_connect (operation, "begin-print", G_CALLBACK (on_begin_print), summary);
  g_signal_connect (operation, "draw-page", G_CALLBACK (on_draw_page), summary);
  return g_steal_pointer (&operation);
}

static void
relais_window_print_dossier (GtkWidget  *widget,
                             const char *action_name,
                             GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);
  g_autoptr(GtkPrintOperation) operation = NULL;
  g_autoptr(GError) error = NULL;

  if (self->vault == NULL || self->view == NULL ||
      relais_vault_view_get_dossier_id (self->view) == NULL)
    return;

  operation = new_print_operation (self, &error);
  if (operation == NULL)
    {
      adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (error->message));
      return;
    }
  gtk_print_operation_set_allow_async (operation, TRUE);
  g_signal_connect_object (operation, "done", G_CALLBACK (on_print_done), self, 0);

  if (gtk_print_operation_run (operation, GTK_PRINT_OPERATION_ACTION_PRINT_DIALOG,
                               GTK_WINDOW (self), &error) == GTK_PRINT_OPERATION_RESULT_ERROR)
    adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (error->message));
}

static void
relais_window_search (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  RelaisWindow *self = RELAIS_WINDOW (widget);

  if (self->view != NULL)
    relais_vault_view_focus_search (self->view);
}

static void
update_actions (RelaisWindow *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  gboolean open = self->vault != NULL && self->view != NULL;
  const char *create_text = gtk_editable_get_text (GTK_EDITABLE (self->new_passphrase_row));
  const char *confirm_text = gtk_editable_get_text (GTK_EDITABLE (self->confirm_passphrase_row));

  gtk_widget_action_set_enabled (widget, "vault.create",
                                 !self->busy && self->vault == NULL
                                 && *create_text != '\0' && *confirm_text != '\0');
  gtk_widget_action_set_enabled (widget, "vault.unlock",
                                 !self->busy && self->vault == NULL && has_passphrase (self));
  gtk_widget_action_set_enabled (widget, "vault.lock", self->vault != NULL);
  gtk_widget_action_set_enabled (widget, "recovery.copy", self->vault != NULL && self->view == NULL);
  gtk_widget_action_set_enabled (widget, "recovery.continue",
                                 self->vault != NULL && self->view == NULL
                                 && gtk_check_button_get_active (self->written_check));
  gtk_widget_action_set_enabled (widget, "dossier.new", open);
  gtk_widget_action_set_enabled (widget, "dossier.search", open);
  gtk_widget_action_set_enabled (widget, "dossier.edit",
                                 open && relais_vault_view_get_dossier_id (self->view) != NULL);
  gtk_widget_action_set_enabled (widget, "dossier.print",
                                 open && relais_vault_view_get_dossier_id (self->view) != NULL);
  gtk_widget_action_set_enabled (widget, "sync.conflicts", open);
  gtk_widget_action_set_enabled (widget, "sync.connect",
                                 open && self->sync != NULL
                                 && !relais_sync_controller_is_enrolled (self->sync));
  gtk_widget_action_set_enabled (widget, "dossier.team",
                                 open && self->sync != NULL
                                 && relais_sync_controller_is_enrolled (self->sync)
                                 && relais_vault_view_get_dossier_id (self->view) != NULL);
  gtk_widget_action_set_enabled (widget, "sync.now",
                                 open && self->sync != NULL
                                 && relais_sync_controller_is_enrolled (self->sync)
                                 && !relais_sync_controller_is_busy (self->sync));
}

RelaisSyncController *
relais_window_get_sync_controller (RelaisWindow *self)
{
  g_return_val_if_fail (RELAIS_IS_WINDOW (self), NULL);

  return self->sync;
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

    case PROP_VAULT_DIR:
      g_value_set_string (value, self->vault_dir);
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

    case PROP_VAULT_DIR:
      self->vault_dir = g_value_dup_string (value);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
relais_window_constructed (GObject *object)
{
  RelaisWindow *self = (RelaisWindow *)object;
  g_autofree char *key_path = NULL;

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

  if (self->vault_dir == NULL)
    self->vault_dir = relais_vault_default_dir ();

  key_path = g_build_filename (self->vault_dir, RELAIS_KEYFILE_NAME, NULL);
  if (g_file_test (key_path, G_FILE_TEST_EXISTS))
    set_page (self, "unlock");
  else
    set_page (self, "create");
}

/* A worker thread uses the vault (enrolment, sharing): closing would
 * close the vault under it.  Its dialog is modal and ends soon. */
static gboolean
relais_window_close_request (GtkWindow *window)
{
  RelaisWindow *self = RELAIS_WINDOW (window);

  if (self->sync != NULL && relais_sync_controller_is_held (self->sync))
    return TRUE;
  /* The recovery fill's worker: cut, and the close follows its end. */
  if (self->sync != NULL && relais_sync_controller_is_filling (self->sync))
    {
      self->close_after_fill = TRUE;
      relais_sync_controller_cancel_fill (self->sync);
      return TRUE;
    }
  return GTK_WINDOW_CLASS (relais_window_parent_class)->close_request (window);
}

static void
relais_window_dispose (GObject *object)
{
  RelaisWindow *self = (RelaisWindow *)object;

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->idle_source, g_source_remove);
  g_clear_handle_id (&self->after_fill_source, g_source_remove);
  /* Waits for the recovery fill's worker, cancelled, if one still uses
   * the vault (quitting does not ask the window to close first). */
  if (self->sync != NULL)
    relais_sync_controller_set_vault (self->sync, NULL);
  g_clear_object (&self->sync);
  g_clear_object (&self->fill_focus);
  g_clear_weak_pointer (&self->sync_toast);
  if (self->view != NULL)
    {
      relais_vault_view_detach (self->view);
      self->view = NULL;
    }
  gtk_widget_dispose_template (GTK_WIDGET (self), RELAIS_TYPE_WINDOW);
  g_clear_pointer (&self->vault, relais_vault_close);
  g_clear_object (&self->settings);
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (relais_window_parent_class)->dispose (object);
}

static void
relais_window_finalize (GObject *object)
{
  RelaisWindow *self = (RelaisWindow *)object;

  g_clear_pointer (&self->vault_dir, g_free);
  g_clear_pointer (&self->sync_notice, g_free);

  G_OBJECT_CLASS (relais_window_parent_class)->finalize (object);
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
  object_class->finalize = relais_window_finalize;
  GTK_WINDOW_CLASS (klass)->close_request = relais_window_close_request;

  /**
   * RelaisWindow:settings:
   *
   * The settings of fr.spie.Relais (window size, auto-lock delay), or
   * %NULL to keep nothing and lock after 5 minutes (tests).
   */
  properties[PROP_SETTINGS] =
    g_param_spec_object ("settings", NULL, NULL,
                         G_TYPE_SETTINGS,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                          G_PARAM_STATIC_STRINGS));

  /**
   * RelaisWindow:vault-dir:
   *
   * The directory of the vault; %NULL for the default one.
   */
  properties[PROP_VAULT_DIR] =
    g_param_spec_string ("vault-dir", NULL, NULL,
                         NULL,
                         (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                          G_PARAM_STATIC_STRINGS));

  g_object_class_install_properties (object_class, N_PROPS, properties);

  relais_ui_register_resources ();
  g_type_ensure (RELAIS_TYPE_VAULT_VIEW);
  g_type_ensure (RELAIS_TYPE_CONFLICTS_PAGE);
  gtk_widget_class_set_template_from_resource (widget_class, "/fr/spie/Relais/relais-window.ui");
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, new_passphrase_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, confirm_passphrase_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, strength_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, strength_bar);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, create_error);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, create_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, create_spinner);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, recovery_key_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, written_check);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, continue_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, create_notice);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, unlock_page);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, passphrase_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, unlock_error);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, unlock_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, unlock_spinner);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, vault_bin);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, conflicts_page);
  gtk_widget_class_bind_template_child (widget_class, RelaisWindow, primary_menu);
  gtk_widget_class_bind_template_callback (widget_class, on_new_passphrase_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_new_passphrase_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_confirm_passphrase_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_written_toggled);
  gtk_widget_class_bind_template_callback (widget_class, on_passphrase_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_passphrase_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_view_toast);
  gtk_widget_class_bind_template_callback (widget_class, on_conflicts_back);
  gtk_widget_class_bind_template_callback (widget_class, on_conflict_open_dossier);
  gtk_widget_class_bind_template_callback (widget_class, on_conflict_resolved);

  gtk_widget_class_install_action (widget_class, "vault.create", NULL, relais_window_create);
  gtk_widget_class_install_action (widget_class, "vault.unlock", NULL, relais_window_unlock);
  gtk_widget_class_install_action (widget_class, "vault.lock", NULL, relais_window_lock_action);
  gtk_widget_class_install_action (widget_class, "recovery.copy", NULL, relais_window_copy_recovery_key);
  gtk_widget_class_install_action (widget_class, "recovery.continue", NULL, relais_window_continue);
  gtk_widget_class_install_action (widget_class, "dossier.new", NULL, relais_window_new_dossier);
  gtk_widget_class_install_action (widget_class, "dossier.edit", NULL, relais_window_edit_dossier);
  gtk_widget_class_install_action (widget_class, "dossier.search", NULL, relais_window_search);
  gtk_widget_class_install_action (widget_class, "dossier.print", NULL, relais_window_print_dossier);
  gtk_widget_class_install_action (widget_class, "sync.conflicts", NULL, relais_window_show_conflicts);
  gtk_widget_class_install_action (widget_class, "sync.now", NULL, relais_window_sync_now);
  gtk_widget_class_install_action (widget_class, "sync.connect", NULL, relais_window_connect);
  gtk_widget_class_install_action (widget_class, "dossier.team", NULL, relais_window_show_team);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_l, GDK_CONTROL_MASK, "vault.lock", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_n, GDK_CONTROL_MASK, "dossier.new", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_f, GDK_CONTROL_MASK, "dossier.search", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_e, GDK_CONTROL_MASK, "dossier.edit", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_p, GDK_CONTROL_MASK, "dossier.print", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_r, GDK_CONTROL_MASK, "sync.now", NULL);
}

static void
relais_window_init (RelaisWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));

  self->cancellable = g_cancellable_new ();
  self->sync = relais_sync_controller_new ();
  g_signal_connect_object (self->sync, "changed", G_CALLBACK (on_sync_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->sync, "applied", G_CALLBACK (on_sync_applied), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->sync, "finished", G_CALLBACK (on_sync_finished), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->sync, "revoked", G_CALLBACK (on_sync_revoked), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->sync, "refused", G_CALLBACK (on_sync_refused), self, G_CONNECT_SWAPPED);
  note_activity (self);
  watch_activity (self, GTK_WINDOW (self));
  self->idle_source = g_timeout_add_seconds (IDLE_CHECK_SECONDS, check_idle, self);

  gtk_accessible_update_property (GTK_ACCESSIBLE (self->strength_bar),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Passphrase strength"),
                                  -1);
  /* Weak, fair, strong: Adwaita's warning, accent and success colours. */
  gtk_level_bar_add_offset_value (self->strength_bar, GTK_LEVEL_BAR_OFFSET_LOW, 1.0);
  gtk_level_bar_add_offset_value (self->strength_bar, GTK_LEVEL_BAR_OFFSET_HIGH, 2.0);
  gtk_level_bar_add_offset_value (self->strength_bar, GTK_LEVEL_BAR_OFFSET_FULL, 3.0);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->recovery_key_label),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Recovery key"),
                                  -1);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->create_spinner),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Creating the vault"),
                                  -1);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->unlock_spinner),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Unlocking"),
                                  -1);
  update_create_page (self);
  relais_accessible_name_entry_rows (GTK_WIDGET (self));
}

/**
 * relais_window_new:
 * @application: the application the window belongs to
 * @vault_dir: (nullable): the vault's directory, %NULL for the default
 *
 * Returns: (transfer none): a new window, locked; GTK holds the reference
 *   to a toplevel
 */
RelaisWindow *
relais_window_new (RelaisApplication *application,
                   const char        *vault_dir)
{
  g_return_val_if_fail (RELAIS_IS_APPLICATION (application), NULL);

  return g_object_new (RELAIS_TYPE_WINDOW,
                       "application", application,
                       "settings", relais_application_get_settings (application),
                       "vault-dir", vault_dir,
                       NULL);
}

const char *
relais_window_get_state (RelaisWindow *self)
{
  g_return_val_if_fail (RELAIS_IS_WINDOW (self), NULL);

  return gtk_stack_get_visible_child_name (self->stack);
}

RelaisVault *
relais_window_get_vault (RelaisWindow *self)
{
  g_return_val_if_fail (RELAIS_IS_WINDOW (self), NULL);

  return self->vault;
}

GtkWidget *
relais_window_get_view (RelaisWindow *self)
{
  g_return_val_if_fail (RELAIS_IS_WINDOW (self), NULL);

  return (GtkWidget *) self->view;
}

/**
 * relais_window_get_sync_notice:
 *
 * Returns: (nullable): the last thing the window said about sync in a
 *   toast ("Synced", "Not synced: …", a refused change), or %NULL
 */
const char *
relais_window_get_sync_notice (RelaisWindow *self)
{
  g_return_val_if_fail (RELAIS_IS_WINDOW (self), NULL);

  return self->sync_notice;
}

gboolean
relais_window_is_vault_in_use (RelaisWindow *self)
{
  g_return_val_if_fail (RELAIS_IS_WINDOW (self), FALSE);

  return self->sync != NULL && relais_sync_controller_is_held (self->sync);
}

void
relais_window_lock (RelaisWindow *self)
{
  g_return_if_fail (RELAIS_IS_WINDOW (self));

  lock (self, FALSE);
}

/**
 * relais_window_print_to_file:
 * @path: where to write the PDF
 *
 * Runs the print path of the "dossier.print" action for the open dossier,
 * without the dialog, exporting to a PDF at @path.  For tests: the
 * summary goes through GtkPrintOperation exactly as it does to a printer.
 */
gboolean
relais_window_print_to_file (RelaisWindow  *self,
                             const char    *path,
                             GError       **error)
{
  g_autoptr(GtkPrintOperation) operation = NULL;
  GtkPrintOperationResult result;

  g_return_val_if_fail (RELAIS_IS_WINDOW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  operation = new_print_operation (self, error);
  if (operation == NULL)
    return FALSE;
  gtk_print_operation_set_export_filename (operation, path);
  result = gtk_print_operation_run (operation, GTK_PRINT_OPERATION_ACTION_EXPORT,
                                    GTK_WINDOW (self), error);
  return result != GTK_PRINT_OPERATION_RESULT_ERROR;
}
