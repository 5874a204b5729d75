#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "relais-client.h"
#include "relais-keyfile.h"
#include "relais-person.h"
#include "relais-person-object.h"
#include "relais-spool.h"
#include "relais-sync-dialogs.h"
#include "relais-sync-engine.h"
#include "relais-sync-error.h"

static void
wipe_string (char **s)
{
  if (*s != NULL)
    {
      explicit_bzero (*s, strlen (*s));
      g_clear_pointer (s, g_free);
    }
}

/* ---- Using the vault from a worker thread -------------------------------- */

/* The vault's connection is the main thread's: a worker may use it only
 * while nothing else does.  The controller is held (no seal, apply or
 * exchange starts) and the other windows of @parent (a person's dialog)
 * are made insensitive; the exchange under way, cancelled by the hold,
 * ends first (its end runs on the main thread). */
typedef void (*ReadyFunc) (gpointer dialog);

typedef struct {
  GtkWindow            *dialog;   /* owned */
  RelaisSyncController *sync;     /* owned */
  ReadyFunc             ready;
} HoldWait;

static void
set_others_sensitive (GtkWindow *dialog,
                      gboolean   sensitive)
{
  GtkWindow *parent = gtk_window_get_transient_for (dialog);
  GListModel *toplevels = gtk_window_get_toplevels ();

  /* Modality is the window manager's to enforce, and without one (or
   * with one that ignores it) the main window would take clicks that
   * read the vault: insensitive, it takes none. */
  if (parent != NULL && !sensitive)
    {
      /* GTK 4.8 warns when the focused text of a window becomes
       * insensitive: the focus goes, and comes back after. */
      GtkWidget *focus = gtk_window_get_focus (parent);

      g_object_set_data_full (G_OBJECT (dialog), "parent-focus",
                              focus != NULL ? g_object_ref (focus) : NULL, g_object_unref);
      gtk_window_set_focus (parent, NULL);
      gtk_widget_set_sensitive (GTK_WIDGET (parent), FALSE);
    }
  else if (parent != NULL)
    {
      GtkWidget *focus = g_object_get_data (G_OBJECT (dialog), "parent-focus");

      gtk_widget_set_sensitive (GTK_WIDGET (parent), TRUE);
      if (focus != NULL && gtk_widget_get_root (focus) == GTK_ROOT (parent))
        gtk_window_set_focus (parent, focus);
      g_object_set_data (G_OBJECT (dialog), "parent-focus", NULL);
    }
  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr(GtkWindow) window = g_list_model_get_item (toplevels, i);

      if (window != dialog && parent != NULL && gtk_window_get_transient_for (window) == parent)
        gtk_widget_set_sensitive (GTK_WIDGET (window), sensitive);
    }
}

static gboolean
hold_wait_poll (gpointer user_data)
{
  HoldWait *wait = user_data;

  if (relais_sync_controller_is_busy (wait->sync))
    return G_SOURCE_CONTINUE;
  wait->ready (wait->dialog);
  g_object_unref (wait->dialog);
  g_object_unref (wait->sync);
  g_free (wait);
  return G_SOURCE_REMOVE;
}

static void
hold_vault (GtkWindow            *dialog,
            RelaisSyncController *sync,
            ReadyFunc             ready)
{
  HoldWait *wait;

  relais_sync_controller_hold (sync);
  set_others_sensitive (dialog, FALSE);
  if (!relais_sync_controller_is_busy (sync))
    {
      ready (dialog);
      return;
    }
  wait = g_new0 (HoldWait, 1);
  wait->dialog = g_object_ref (dialog);
  wait->sync = g_object_ref (sync);
  wait->ready = ready;
  g_timeout_add (50, hold_wait_poll, wait);
}

static void
release_vault (GtkWindow            *dialog,
               RelaisSyncController *sync)
{
  set_others_sensitive (dialog, TRUE);
  relais_sync_controller_release (sync);
}

static GtkWidget *
new_error_label (void)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_add_css_class (label, "error");
  gtk_widget_set_visible (label, FALSE);
  return label;
}

/* ---- Connecting to a server ---------------------------------------------- */

struct _RelaisEnrolDialog
{
  AdwWindow             parent_instance;

  RelaisVault          *vault;   /* not owned: the window's, open while the dialog is */
  RelaisSyncController *sync;
  gboolean              busy;
  char                 *cacert;
  /* The person confirmed that the passphrase typed, which does not open
   * this vault, is the first computer's. */
  gboolean              other_passphrase;

  GtkWidget            *cancel_button;
  GtkWidget            *connect_button;
  GtkWidget            *spinner;
  GtkWidget            *server_row;
  GtkWidget            *code_row;
  GtkWidget            *cacert_row;
  GtkWidget            *advanced_row;
  GtkWidget            *cacert_clear;
  GtkWidget            *cacert_choose;
  GtkWidget            *passphrase_row;
  GtkWidget            *error_label;
  GtkFileChooserNative *chooser;
};

G_DEFINE_FINAL_TYPE (RelaisEnrolDialog, relais_enrol_dialog, ADW_TYPE_WINDOW)

enum {
  ENROLLED,
  N_ENROL_SIGNALS
};

static guint enrol_signals[N_ENROL_SIGNALS];

/* The passphrase typed opens neither this vault nor, maybe, anything:
 * enrolment waits for the person to say it is the first computer's. */
#define ENROL_OTHER_PASSPHRASE 1

typedef struct {
  RelaisVault *vault;
  gboolean     check_passphrase;
  char        *server;
  char        *cacert;
  char        *code;
  char        *passphrase;
} EnrolData;

static void
enrol_data_free (EnrolData *data)
{
  g_free (data->server);
  g_free (data->cacert);
  wipe_string (&data->code);
  wipe_string (&data->passphrase);
  g_free (data);
}

static void
enrol_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  EnrolData *data = task_data;
  GError *error = NULL;
  gboolean ok;

  /* On the first computer the passphrase wraps the identity the server
   * keeps: a typo there would lock every other computer out.  What opens
   * this vault is safe; anything else is asked about first. */
  if (data->check_passphrase)
    {
      g_autoptr(RelaisKeyfile) keyfile = relais_keyfile_unlock (relais_vault_get_dir (data->vault),
                                                                data->passphrase, NULL);

      if (keyfile == NULL)
        {
          wipe_string (&data->passphrase);
          wipe_string (&data->code);
          g_task_return_int (task, ENROL_OTHER_PASSPHRASE);
          return;
        }
    }

  ok = relais_sync_enroll (data->vault, data->server, data->cacert, data->code,
                           data->passphrase, NULL, cancellable, &error);
  /* Not a moment longer than needed. */
  wipe_string (&data->passphrase);
  wipe_string (&data->code);
  if (ok)
    g_task_return_int (task, 0);
  else
    g_task_return_error (task, error);
}

/* A server address as people type it: "relais.example.org" is meant as
 * https://. */
static char *
normalize_server (const char *text)
{
  g_autofree char *server = g_strstrip (g_strdup (text));
  gsize len = strlen (server);

  while (len > 0 && server[len - 1] == '/')
    server[--len] = '\0';
  if (len > 0 && strstr (server, "://") == NULL)
    return g_strconcat ("https://", server, NULL);
  return g_steal_pointer (&server);
}

/* The code without the spaces and dashes people add to read it out. */
static char *
normalize_code (const char *text)
{
  GString *code = g_string_new (NULL);

  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isspace (*p) && *p != '-')
      g_string_append_c (code, *p);
  return g_string_free (code, FALSE);
}

/* Whether @message was made from @format (translated like it): its text
 * up to the first %s. */
static gboolean
has_format_prefix (const char *message,
                   const char *format)
{
  const char *end = strstr (format, "%s");

  return end != NULL && strncmp (message, format, (gsize) (end - format)) == 0;
}

/* A network failure in words for the person: unreachable, or a
 * certificate this computer does not trust.  The client's detail
 * (libcurl's, in English) goes to the log.  NULL for other errors. */
static char *
describe_network_error (const GError *error,
                        gboolean     *out_certificate)
{
  *out_certificate = FALSE;
  if (!g_error_matches (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK))
    return NULL;
  if (has_format_prefix (error->message, _("The server's certificate could not be verified: %s.")))
    {
      *out_certificate = TRUE;
      return g_strdup (_("This computer does not trust the server’s certificate. If your organisation issued it, choose its certificate authority under Advanced; otherwise check the server address."));
    }
  return g_strdup (_("The server cannot be reached. Check its address and this computer’s connection to the network, then try again."));
}

/* What went wrong, for the person, and which field to look at again. */
static char *
describe_enrol_error (RelaisEnrolDialog  *self,
                      const GError       *error,
                      GtkWidget         **focus)
{
  *focus = self->server_row;

  if (error->domain == RELAIS_CLIENT_ERROR)
    switch ((RelaisClientError) error->code)
      {
      case RELAIS_CLIENT_ERROR_NOT_FOUND:
      case RELAIS_CLIENT_ERROR_MALFORMED:
        *focus = self->code_row;
        return g_strdup (_("The server does not know this enrolment code. Check it against the one your administrator gave you."));
      case RELAIS_CLIENT_ERROR_CODE_USED:
        *focus = self->code_row;
        return g_strdup (_("This enrolment code has been used already. Ask your administrator for a new one."));
      case RELAIS_CLIENT_ERROR_CODE_EXPIRED:
        *focus = self->code_row;
        return g_strdup (_("This enrolment code has expired. Ask your administrator for a new one."));
      case RELAIS_CLIENT_ERROR_INVALID:
        /* http:// to another computer, or no address at all: the
         * client's sentence says which. */
        return g_strdup (error->message);
      case RELAIS_CLIENT_ERROR_NETWORK:
        {
          /* Unreachable, or a certificate not trusted: the way out
           * differs. */
          gboolean certificate;
          char *message = describe_network_error (error, &certificate);

          if (certificate)
            {
              *focus = self->cacert_choose;
              adw_expander_row_set_expanded (ADW_EXPANDER_ROW (self->advanced_row), TRUE);
            }
          return message;
        }
      case RELAIS_CLIENT_ERROR_PROTOCOL:
        return g_strdup_printf (_("This address does not answer as a Relais server: %s"), error->message);
      default:
        return g_strdup (error->message);
      }

  if (g_error_matches (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_BAD_PASSPHRASE))
    {
      *focus = self->passphrase_row;
      return g_strdup (_("This passphrase does not open your identity on the server. Type the passphrase of the vault on the first computer you connected. This code is now used: ask your administrator for a new one."));
    }
  if (g_error_matches (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID) && self->cacert != NULL)
    *focus = self->cacert_choose;
  return g_strdup (error->message);
}

static void
update_enrol_buttons (RelaisEnrolDialog *self)
{
  const char *server = gtk_editable_get_text (GTK_EDITABLE (self->server_row));
  const char *code = gtk_editable_get_text (GTK_EDITABLE (self->code_row));
  const char *passphrase = gtk_editable_get_text (GTK_EDITABLE (self->passphrase_row));

  gtk_widget_set_sensitive (self->connect_button,
                            !self->busy && *server != '\0' && *code != '\0' && *passphrase != '\0');
  gtk_widget_set_sensitive (self->cancel_button, !self->busy);
  gtk_widget_set_sensitive (self->cacert_choose, !self->busy);
  gtk_widget_set_sensitive (self->cacert_clear, !self->busy);
  gtk_widget_set_visible (self->cacert_clear, self->cacert != NULL);
}

static void
set_enrol_busy (RelaisEnrolDialog *self,
                gboolean           busy)
{
  self->busy = busy;
  gtk_widget_set_visible (self->spinner, busy);
  gtk_spinner_set_spinning (GTK_SPINNER (self->spinner), busy);
  /* Not insensitive: the focused field keeps the focus. */
  gtk_editable_set_editable (GTK_EDITABLE (self->server_row), !busy);
  gtk_editable_set_editable (GTK_EDITABLE (self->code_row), !busy);
  gtk_editable_set_editable (GTK_EDITABLE (self->passphrase_row), !busy);
  gtk_window_set_deletable (GTK_WINDOW (self), !busy);
  update_enrol_buttons (self);
}

static void
show_enrol_error (RelaisEnrolDialog *self,
                  const char        *message,
                  GtkWidget         *focus)
{
  gtk_label_set_label (GTK_LABEL (self->error_label), message);
  gtk_widget_set_visible (self->error_label, message != NULL);
  if (focus != NULL)
    {
      gtk_accessible_update_property (GTK_ACCESSIBLE (focus),
                                      GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, message, -1);
      gtk_widget_grab_focus (focus);
      if (GTK_IS_EDITABLE (focus))
        gtk_editable_select_region (GTK_EDITABLE (focus), 0, -1);
    }
}

static void
enrol_done (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  RelaisEnrolDialog *self = RELAIS_ENROL_DIALOG (object);
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  GtkWidget *focus = NULL;
  gssize status;

  release_vault (GTK_WINDOW (self), self->sync);
  set_enrol_busy (self, FALSE);

  status = g_task_propagate_int (G_TASK (result), &error);
  if (status == ENROL_OTHER_PASSPHRASE)
    {
      show_enrol_error (self,
                        _("This is not the passphrase of this vault. Connecting another computer than your first one? Then it is the passphrase of the first computer’s vault: press Connect Anyway. Otherwise, type this vault’s passphrase."),
                        self->passphrase_row);
      self->other_passphrase = TRUE;
      gtk_button_set_label (GTK_BUTTON (self->connect_button), _("Connect _Anyway"));
      return;
    }
  if (status < 0)
    {
      /* No value: the server's address, the code's fate, never the
       * passphrase. */
      g_message ("enrolment failed: %s", error->message);
      message = describe_enrol_error (self, error, &focus);
      if (focus == self->passphrase_row)
        gtk_editable_set_text (GTK_EDITABLE (self->passphrase_row), "");
      show_enrol_error (self, message, focus);
      return;
    }

  gtk_editable_set_text (GTK_EDITABLE (self->passphrase_row), "");
  gtk_editable_set_text (GTK_EDITABLE (self->code_row), "");
  g_signal_emit (self, enrol_signals[ENROLLED], 0);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
enrol_start (gpointer dialog)
{
  RelaisEnrolDialog *self = dialog;
  g_autoptr(GTask) task = NULL;
  EnrolData *data = g_new0 (EnrolData, 1);
  GtkEditable *passphrase = GTK_EDITABLE (self->passphrase_row);

  data->vault = self->vault;
  data->check_passphrase = !self->other_passphrase;
  data->server = normalize_server (gtk_editable_get_text (GTK_EDITABLE (self->server_row)));
  data->code = normalize_code (gtk_editable_get_text (GTK_EDITABLE (self->code_row)));
  data->cacert = g_strdup (self->cacert);
  data->passphrase = g_strdup (gtk_editable_get_text (passphrase));

  task = g_task_new (self, NULL, enrol_done, NULL);
  g_task_set_source_tag (task, enrol_start);
  g_task_set_task_data (task, data, (GDestroyNotify) enrol_data_free);
  g_task_run_in_thread (task, enrol_thread);
}

static void
on_connect (RelaisEnrolDialog *self)
{
  if (self->busy || !gtk_widget_get_sensitive (self->connect_button))
    return;

  show_enrol_error (self, NULL, NULL);
  set_enrol_busy (self, TRUE);
  hold_vault (GTK_WINDOW (self), self->sync, enrol_start);
}

static void
on_enrol_field_changed (RelaisEnrolDialog *self)
{
  update_enrol_buttons (self);
}

static void
on_passphrase_changed (RelaisEnrolDialog *self)
{
  /* Another passphrase: checked against this vault again. */
  if (self->other_passphrase && !self->busy)
    {
      self->other_passphrase = FALSE;
      gtk_button_set_label (GTK_BUTTON (self->connect_button), _("C_onnect"));
    }
  update_enrol_buttons (self);
}

static void
on_cacert_chosen (RelaisEnrolDialog *self,
                  int                response)
{
  g_autoptr(GFile) file = NULL;

  if (response == GTK_RESPONSE_ACCEPT)
    file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (self->chooser));
  g_clear_object (&self->chooser);
  if (file == NULL || g_file_peek_path (file) == NULL)
    return;
  relais_enrol_dialog_set_cacert (self, g_file_peek_path (file));
}

/* For the test too: the file the Advanced row shows. */
void
relais_enrol_dialog_set_cacert (RelaisEnrolDialog *self,
                                const char        *path)
{
  g_free (self->cacert);
  self->cacert = g_strdup (path);
  if (path != NULL)
    {
      g_autofree char *base = g_path_get_basename (path);

      adw_action_row_set_subtitle (ADW_ACTION_ROW (self->cacert_row), base);
      gtk_widget_set_tooltip_text (self->cacert_row, path);
    }
  else
    {
      adw_action_row_set_subtitle (ADW_ACTION_ROW (self->cacert_row),
                                   _("Your computer’s certificate authorities"));
      gtk_widget_set_tooltip_text (self->cacert_row, NULL);
    }
  update_enrol_buttons (self);
}

static void
on_cacert_choose (RelaisEnrolDialog *self)
{
  g_autoptr(GtkFileFilter) filter = gtk_file_filter_new ();

  self->chooser = gtk_file_chooser_native_new (_("Certificate Authority"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_OPEN, _("_Choose"), NULL);
  gtk_file_filter_set_name (filter, _("Certificates (PEM)"));
  gtk_file_filter_add_suffix (filter, "pem");
  gtk_file_filter_add_suffix (filter, "crt");
  gtk_file_filter_add_suffix (filter, "cer");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), filter);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect_object (self->chooser, "response", G_CALLBACK (on_cacert_chosen), self,
                           G_CONNECT_SWAPPED);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
on_cacert_clear (RelaisEnrolDialog *self)
{
  relais_enrol_dialog_set_cacert (self, NULL);
}

static gboolean
on_enrol_close_request (GtkWindow *window)
{
  RelaisEnrolDialog *self = RELAIS_ENROL_DIALOG (window);

  /* The worker uses the vault: the answer comes to this dialog. */
  if (self->busy)
    return TRUE;
  gtk_editable_set_text (GTK_EDITABLE (self->passphrase_row), "");
  return FALSE;
}

static void
relais_enrol_dialog_dispose (GObject *object)
{
  RelaisEnrolDialog *self = RELAIS_ENROL_DIALOG (object);

  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  g_clear_object (&self->sync);
  g_clear_pointer (&self->cacert, g_free);

  G_OBJECT_CLASS (relais_enrol_dialog_parent_class)->dispose (object);
}

static void
relais_enrol_dialog_class_init (RelaisEnrolDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = relais_enrol_dialog_dispose;
  window_class->close_request = on_enrol_close_request;

  enrol_signals[ENROLLED] =
    g_signal_new ("enrolled", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static GtkWidget *
new_hint (const char *text)
{
  GtkWidget *label = gtk_label_new (text);

  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_add_css_class (label, "dim-label");
  gtk_widget_add_css_class (label, "caption");
  gtk_widget_set_margin_start (label, 6);
  gtk_widget_set_margin_end (label, 6);
  return label;
}

static GtkWidget *
new_icon_button (const char *icon,
                 const char *label)
{
  GtkWidget *button = gtk_button_new_from_icon_name (icon);

  gtk_widget_add_css_class (button, "flat");
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (button, label);
  gtk_accessible_update_property (GTK_ACCESSIBLE (button),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
  return button;
}

static void
relais_enrol_dialog_init (RelaisEnrolDialog *self)
{
  GtkWidget *toolbar = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *header = adw_header_bar_new ();
  GtkWidget *scrolled = gtk_scrolled_window_new ();
  GtkWidget *clamp = adw_clamp_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  GtkWidget *server_group = adw_preferences_group_new ();
  GtkWidget *passphrase_group = adw_preferences_group_new ();
  GtkWidget *advanced = adw_expander_row_new ();

  self->advanced_row = advanced;

  gtk_window_set_title (GTK_WINDOW (self), _("Connect to a Server"));
  gtk_window_set_default_size (GTK_WINDOW (self), 480, 560);
  gtk_window_set_modal (GTK_WINDOW (self), TRUE);
  gtk_window_set_destroy_with_parent (GTK_WINDOW (self), TRUE);

  adw_header_bar_set_show_end_title_buttons (ADW_HEADER_BAR (header), FALSE);
  adw_header_bar_set_show_start_title_buttons (ADW_HEADER_BAR (header), FALSE);
  self->cancel_button = gtk_button_new_with_mnemonic (_("_Cancel"));
  g_signal_connect_swapped (self->cancel_button, "clicked", G_CALLBACK (gtk_window_close), self);
  adw_header_bar_pack_start (ADW_HEADER_BAR (header), self->cancel_button);
  self->connect_button = gtk_button_new_with_mnemonic (_("C_onnect"));
  gtk_widget_add_css_class (self->connect_button, "suggested-action");
  g_signal_connect_swapped (self->connect_button, "clicked", G_CALLBACK (on_connect), self);
  adw_header_bar_pack_end (ADW_HEADER_BAR (header), self->connect_button);
  self->spinner = gtk_spinner_new ();
  gtk_widget_set_visible (self->spinner, FALSE);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->spinner),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Connecting"), -1);
  adw_header_bar_pack_end (ADW_HEADER_BAR (header), self->spinner);
  gtk_box_append (GTK_BOX (toolbar), header);

  adw_preferences_group_set_description (ADW_PREFERENCES_GROUP (server_group),
                                         _("Your administrator gives you the server’s address and a one-time enrolment code. Connected, this computer sends your dossiers, encrypted, to your colleagues and your other computers."));
  self->server_row = adw_entry_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->server_row), _("Server Address"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->server_row),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Server Address"), -1);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (server_group), self->server_row);
  self->code_row = adw_entry_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->code_row), _("Enrolment Code"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->code_row),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Enrolment Code"), -1);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (server_group), self->code_row);

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (advanced), _("Advanced"));
  adw_expander_row_set_subtitle (ADW_EXPANDER_ROW (advanced),
                                 _("For a server whose certificate your organisation issued"));
  self->cacert_row = adw_action_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->cacert_row), _("Certificate Authority"));
  self->cacert_clear = new_icon_button ("edit-clear-symbolic", _("Use Your Computer’s Certificate Authorities"));
  g_signal_connect_swapped (self->cacert_clear, "clicked", G_CALLBACK (on_cacert_clear), self);
  adw_action_row_add_suffix (ADW_ACTION_ROW (self->cacert_row), self->cacert_clear);
  self->cacert_choose = new_icon_button ("document-open-symbolic", _("Choose a Certificate File"));
  g_signal_connect_swapped (self->cacert_choose, "clicked", G_CALLBACK (on_cacert_choose), self);
  adw_action_row_add_suffix (ADW_ACTION_ROW (self->cacert_row), self->cacert_choose);
  adw_action_row_set_activatable_widget (ADW_ACTION_ROW (self->cacert_row), self->cacert_choose);
  adw_expander_row_add_row (ADW_EXPANDER_ROW (advanced), self->cacert_row);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (server_group), advanced);
  gtk_box_append (GTK_BOX (box), server_group);

  self->passphrase_row = adw_password_entry_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->passphrase_row), _("Vault Passphrase"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->passphrase_row),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Vault Passphrase"), -1);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (passphrase_group), self->passphrase_row);
  gtk_box_append (GTK_BOX (box), passphrase_group);
  gtk_box_append (GTK_BOX (box),
                  new_hint (_("It protects your identity on the server. On the first computer you connect, type this vault’s passphrase. On another computer, type the passphrase of the vault on the first one.")));

  self->error_label = new_error_label ();
  gtk_box_append (GTK_BOX (box), self->error_label);

  gtk_widget_set_margin_top (box, 18);
  gtk_widget_set_margin_bottom (box, 18);
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  adw_clamp_set_maximum_size (ADW_CLAMP (clamp), 520);
  adw_clamp_set_child (ADW_CLAMP (clamp), box);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scrolled), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scrolled), clamp);
  gtk_widget_set_vexpand (scrolled, TRUE);
  gtk_box_append (GTK_BOX (toolbar), scrolled);
  adw_window_set_content (ADW_WINDOW (self), toolbar);

  g_signal_connect_swapped (self->server_row, "changed", G_CALLBACK (on_enrol_field_changed), self);
  g_signal_connect_swapped (self->code_row, "changed", G_CALLBACK (on_enrol_field_changed), self);
  g_signal_connect_swapped (self->passphrase_row, "changed", G_CALLBACK (on_passphrase_changed), self);
  adw_entry_row_set_activates_default (ADW_ENTRY_ROW (self->passphrase_row), TRUE);
  gtk_window_set_default_widget (GTK_WINDOW (self), self->connect_button);
  relais_enrol_dialog_set_cacert (self, NULL);
}

RelaisEnrolDialog *
relais_enrol_dialog_new (GtkWindow            *parent,
                         RelaisVault          *vault,
                         RelaisSyncController *sync)
{
  RelaisEnrolDialog *self;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (sync), NULL);

  self = g_object_new (RELAIS_TYPE_ENROL_DIALOG, "transient-for", parent, NULL);
  self->vault = vault;
  self->sync = g_object_ref (sync);
  gtk_widget_grab_focus (self->server_row);
  return self;
}

gboolean
relais_enrol_dialog_is_busy (RelaisEnrolDialog *self)
{
  g_return_val_if_fail (RELAIS_IS_ENROL_DIALOG (self), FALSE);

  return self->busy;
}

/* ---- The team of a dossier ----------------------------------------------- */

struct _RelaisTeamDialog
{
  AdwWindow             parent_instance;

  RelaisVault          *vault;    /* not owned: the window's */
  RelaisSyncController *sync;
  char                 *dossier_id;
  char                 *vault_dir;
  char                 *self_id;  /* this vault's user */
  GPtrArray            *members;  /* char *, user ids, this user first */
  GPtrArray            *users;    /* RelaisDirectoryUser, NULL until fetched */
  guint                 busy;     /* worker threads running */
  gboolean              holding;
  gboolean              disposed; /* the directory may come after the dialog closed */
  char                 *status;

  AdwWindowTitle       *title;
  GtkWidget            *spinner;
  GtkWidget            *status_label;
  GtkWidget            *error_label;
  GtkWidget            *members_group;
  GPtrArray            *member_rows;
  GtkWidget            *search_entry;
  GtkWidget            *directory_list;
  GtkWidget            *directory_stack;
  GtkWidget            *directory_message;
  /* The operation waiting for the vault: share or unshare of user. */
  gboolean              pending_share;
  char                 *pending_user;
};

G_DEFINE_FINAL_TYPE (RelaisTeamDialog, relais_team_dialog, ADW_TYPE_WINDOW)

static const RelaisDirectoryUser *
find_user (RelaisTeamDialog *self,
           const char       *user_id)
{
  if (self->users == NULL)
    return NULL;
  for (guint i = 0; i < self->users->len; i++)
    {
      const RelaisDirectoryUser *user = g_ptr_array_index (self->users, i);

      if (g_strcmp0 (user->user_id, user_id) == 0)
        return user;
    }
  return NULL;
}

/* A person's name as the directory has it, or the id until it came. */
static const char *
user_name (RelaisTeamDialog *self,
           const char       *user_id)
{
  const RelaisDirectoryUser *user = find_user (self, user_id);

  return user != NULL && user->name != NULL ? user->name : user_id;
}

static void
set_team_status (RelaisTeamDialog *self,
                 const char       *message,
                 gboolean          is_error)
{
  g_free (self->status);
  self->status = g_strdup (message);
  gtk_label_set_label (GTK_LABEL (self->error_label), is_error ? message : "");
  gtk_widget_set_visible (self->error_label, is_error && message != NULL);
  gtk_label_set_label (GTK_LABEL (self->status_label), !is_error ? message : "");
  gtk_widget_set_visible (self->status_label, !is_error && message != NULL);
}

static void
update_team_busy (RelaisTeamDialog *self)
{
  gboolean busy = self->busy > 0;

  gtk_widget_set_visible (self->spinner, busy);
  gtk_spinner_set_spinning (GTK_SPINNER (self->spinner), busy);
  gtk_window_set_deletable (GTK_WINDOW (self), !self->holding);
  gtk_widget_set_sensitive (self->members_group, !self->holding);
  gtk_widget_set_sensitive (self->directory_list, !self->holding);
}

/* The members from the vault: who holds the dossier's current key. */
static gboolean
read_members (RelaisTeamDialog  *self,
              GError           **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  sqlite3 *db = relais_vault_get_db (self->vault);
  int rc;

  g_ptr_array_set_size (self->members, 0);
  if (self->self_id != NULL)
    g_ptr_array_add (self->members, g_strdup (self->self_id));
  if (sqlite3_prepare_v2 (db,
                          "SELECT user_id FROM sync_member WHERE dossier = ?1 AND until_epoch = 0"
                          " ORDER BY since_epoch, user_id",
                          -1, &stmt, NULL) != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (self->vault, sqlite3_errcode (db), _("Could not read the team"), error);
      return FALSE;
    }
  sqlite3_bind_text (stmt, 1, self->dossier_id, -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *user_id = (const char *) sqlite3_column_text (stmt, 0);

      if (user_id != NULL && g_strcmp0 (user_id, self->self_id) != 0)
        g_ptr_array_add (self->members, g_strdup (user_id));
    }
  if (rc != SQLITE_DONE)
    {
      relais_vault_set_sqlite_error (self->vault, rc, _("Could not read the team"), error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
is_member (RelaisTeamDialog *self,
           const char       *user_id)
{
  for (guint i = 0; i < self->members->len; i++)
    if (g_strcmp0 (g_ptr_array_index (self->members, i), user_id) == 0)
      return TRUE;
  return FALSE;
}

static void on_remove_clicked (GtkButton *button, RelaisTeamDialog *self);
static void on_add_clicked (GtkButton *button, RelaisTeamDialog *self);

static void
fill_members (RelaisTeamDialog *self)
{
  for (guint i = 0; i < self->member_rows->len; i++)
    adw_preferences_group_remove (ADW_PREFERENCES_GROUP (self->members_group),
                                  g_ptr_array_index (self->member_rows, i));
  g_ptr_array_set_size (self->member_rows, 0);

  for (guint i = 0; i < self->members->len; i++)
    {
      const char *user_id = g_ptr_array_index (self->members, i);
      const RelaisDirectoryUser *user = find_user (self, user_id);
      GtkWidget *row = adw_action_row_new ();
      const char *name = user_name (self, user_id);

      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
      if (g_strcmp0 (user_id, self->self_id) == 0)
        {
          g_autofree char *you = user != NULL && user->org != NULL
                                 ? g_strdup_printf (_("You, %s"), user->org)
                                 : g_strdup (_("You"));

          adw_action_row_set_subtitle (ADW_ACTION_ROW (row), you);
        }
      else
        {
          GtkWidget *remove = gtk_button_new_with_mnemonic (_("_Remove"));
          g_autofree char *label = g_strdup_printf (_("Remove %s from the team"), name);

          if (user != NULL && user->org != NULL)
            adw_action_row_set_subtitle (ADW_ACTION_ROW (row), user->org);
          gtk_widget_set_valign (remove, GTK_ALIGN_CENTER);
          gtk_widget_add_css_class (remove, "flat");
          gtk_widget_set_tooltip_text (remove, label);
          gtk_accessible_update_property (GTK_ACCESSIBLE (remove),
                                          GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
          g_object_set_data_full (G_OBJECT (remove), "user-id", g_strdup (user_id), g_free);
          g_signal_connect (remove, "clicked", G_CALLBACK (on_remove_clicked), self);
          adw_action_row_add_suffix (ADW_ACTION_ROW (row), remove);
        }
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (self->members_group), row);
      g_ptr_array_add (self->member_rows, row);
    }
}

static gboolean
directory_filter (GtkListBoxRow *row,
                  gpointer       user_data)
{
  RelaisTeamDialog *self = user_data;
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));
  const char *key = g_object_get_data (G_OBJECT (row), "search-key");
  g_autofree char *folded = NULL;
  g_autofree char *normalized = NULL;

  if (text == NULL || *text == '\0')
    return TRUE;
  normalized = g_utf8_normalize (text, -1, G_NORMALIZE_ALL);
  folded = g_utf8_casefold (normalized, -1);
  return key != NULL && strstr (key, folded) != NULL;
}

static void
fill_directory (RelaisTeamDialog *self)
{
  GtkWidget *c;
  guint shown = 0;

  while ((c = gtk_widget_get_first_child (self->directory_list)) != NULL)
    gtk_list_box_remove (GTK_LIST_BOX (self->directory_list), c);

  if (self->users == NULL)
    return;
  for (guint i = 0; i < self->users->len; i++)
    {
      const RelaisDirectoryUser *user = g_ptr_array_index (self->users, i);
      GtkWidget *row;
      GtkWidget *add;
      g_autofree char *label = NULL;
      g_autofree char *key = NULL;
      g_autofree char *normalized = NULL;

      if (user->user_id == NULL || is_member (self, user->user_id))
        continue;
      row = adw_action_row_new ();
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row),
                                     user->name != NULL ? user->name : user->user_id);
      add = gtk_button_new_with_mnemonic (_("_Add"));
      label = g_strdup_printf (_("Add %s to the team"), user->name != NULL ? user->name : user->user_id);
      gtk_widget_set_tooltip_text (add, label);
      gtk_accessible_update_property (GTK_ACCESSIBLE (add),
                                      GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
      gtk_widget_set_valign (add, GTK_ALIGN_CENTER);
      g_object_set_data_full (G_OBJECT (add), "user-id", g_strdup (user->user_id), g_free);
      g_signal_connect (add, "clicked", G_CALLBACK (on_add_clicked), self);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), add);
      if (user->has_keys)
        adw_action_row_set_subtitle (ADW_ACTION_ROW (row), user->org != NULL ? user->org : "");
      else
        {
          g_autofree char *subtitle =
            g_strdup_printf (_("%s · has not connected a computer yet"),
                             user->org != NULL ? user->org : "");

          adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
          gtk_widget_set_sensitive (add, FALSE);
        }
      key = g_strdup_printf ("%s\n%s", user->name != NULL ? user->name : "",
                             user->org != NULL ? user->org : "");
      normalized = g_utf8_normalize (key, -1, G_NORMALIZE_ALL);
      g_object_set_data_full (G_OBJECT (row), "search-key", g_utf8_casefold (normalized, -1), g_free);
      gtk_list_box_append (GTK_LIST_BOX (self->directory_list), row);
      shown++;
    }
  gtk_stack_set_visible_child_name (GTK_STACK (self->directory_stack), shown > 0 ? "list" : "message");
  if (shown == 0)
    gtk_label_set_label (GTK_LABEL (self->directory_message),
                         _("Everyone in the directory receives this dossier already."));
}

static void
refresh_team (RelaisTeamDialog *self)
{
  g_autoptr(GError) error = NULL;

  if (!read_members (self, &error))
    set_team_status (self, error->message, TRUE);
  fill_members (self);
  fill_directory (self);
}

/* The directory, from the server, without the vault. */
static void
directory_thread (GTask        *task,
                  gpointer      source_object,
                  gpointer      task_data,
                  GCancellable *cancellable)
{
  const char *vault_dir = task_data;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(RelaisClient) client = NULL;
  GError *error = NULL;
  GPtrArray *users = NULL;

  spool = relais_spool_open (vault_dir, &error);
  if (spool != NULL)
    client = relais_spool_make_client (spool, &error);
  if (client != NULL)
    users = relais_client_users (client, NULL, cancellable, &error);
  if (users == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, users, (GDestroyNotify) g_ptr_array_unref);
}

static int
compare_users (gconstpointer a,
               gconstpointer b)
{
  const RelaisDirectoryUser *x = *(RelaisDirectoryUser * const *) a;
  const RelaisDirectoryUser *y = *(RelaisDirectoryUser * const *) b;

  return g_utf8_collate (x->name != NULL ? x->name : "", y->name != NULL ? y->name : "");
}

static void
directory_done (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  RelaisTeamDialog *self = RELAIS_TEAM_DIALOG (object);
  g_autoptr(GError) error = NULL;
  GPtrArray *users;

  users = g_task_propagate_pointer (G_TASK (result), &error);
  if (self->disposed)
    {
      g_clear_pointer (&users, g_ptr_array_unref);
      return;
    }
  self->busy--;
  update_team_busy (self);
  if (users == NULL)
    {
      gboolean certificate;
      g_autofree char *network = describe_network_error (error, &certificate);
      g_autofree char *message = g_strdup_printf (_("The directory of colleagues could not be read: %s"),
                                                  network != NULL ? network : error->message);

      g_message ("directory: %s", error->message);

      gtk_label_set_label (GTK_LABEL (self->directory_message), message);
      gtk_stack_set_visible_child_name (GTK_STACK (self->directory_stack), "message");
      return;
    }
  g_ptr_array_sort (users, compare_users);
  g_clear_pointer (&self->users, g_ptr_array_unref);
  self->users = users;
  fill_members (self);
  fill_directory (self);
}

static void
fetch_directory (RelaisTeamDialog *self)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, directory_done, NULL);

  self->busy++;
  update_team_busy (self);
  g_task_set_source_tag (task, fetch_directory);
  g_task_set_task_data (task, g_strdup (self->vault_dir), g_free);
  g_task_run_in_thread (task, directory_thread);
}

typedef struct {
  RelaisVault *vault;
  char        *dossier_id;
  char        *user_id;
  gboolean     share;
} ShareData;

static void
share_data_free (ShareData *data)
{
  g_free (data->dossier_id);
  g_free (data->user_id);
  g_free (data);
}

static void
share_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  ShareData *data = task_data;
  GError *error = NULL;
  gboolean ok;

  if (data->share)
    ok = relais_sync_share (data->vault, data->dossier_id, data->user_id, cancellable, &error);
  else
    ok = relais_sync_unshare (data->vault, data->dossier_id, data->user_id, cancellable, &error);
  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
share_done (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  RelaisTeamDialog *self = RELAIS_TEAM_DIALOG (object);
  ShareData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  const char *name = user_name (self, data->user_id);
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  /* Read while the vault is still this dialog's. */
  refresh_team (self);
  self->busy--;
  self->holding = FALSE;
  release_vault (GTK_WINDOW (self), self->sync);
  update_team_busy (self);

  if (!ok)
    {
      gboolean certificate;
      g_autofree char *network = describe_network_error (error, &certificate);
      const char *why = network != NULL ? network : error->message;

      g_message ("%s failed: %s", data->share ? "share" : "unshare", error->message);
      if (data->share)
        message = g_strdup_printf (_("The dossier could not be shared with %s: %s"), name, why);
      else
        message = g_strdup_printf (_("%s could not be removed from the team: %s"), name, why);
      set_team_status (self, message, TRUE);
      return;
    }

  if (data->share)
    message = g_strdup_printf (_("%s now receives this dossier."), name);
  else
    message = g_strdup_printf (_("%s no longer receives what is written in this dossier."), name);
  set_team_status (self, message, FALSE);
  /* What waits to be sent reaches the team now. */
  relais_sync_controller_sync (self->sync, FALSE);
}

static void
share_start (gpointer dialog)
{
  RelaisTeamDialog *self = dialog;
  g_autoptr(GTask) task = NULL;
  ShareData *data = g_new0 (ShareData, 1);

  data->vault = self->vault;
  data->dossier_id = g_strdup (self->dossier_id);
  data->user_id = g_steal_pointer (&self->pending_user);
  data->share = self->pending_share;

  task = g_task_new (self, NULL, share_done, NULL);
  g_task_set_source_tag (task, share_start);
  g_task_set_task_data (task, data, (GDestroyNotify) share_data_free);
  g_task_run_in_thread (task, share_thread);
}

static void
start_share (RelaisTeamDialog *self,
             const char       *user_id,
             gboolean          share)
{
  if (self->holding)
    return;
  set_team_status (self, NULL, FALSE);
  g_free (self->pending_user);
  self->pending_user = g_strdup (user_id);
  self->pending_share = share;
  self->holding = TRUE;
  self->busy++;
  update_team_busy (self);
  hold_vault (GTK_WINDOW (self), self->sync, share_start);
}

static void
on_add_clicked (GtkButton        *button,
                RelaisTeamDialog *self)
{
  start_share (self, g_object_get_data (G_OBJECT (button), "user-id"), TRUE);
}

static void
on_remove_response (AdwMessageDialog *dialog,
                    const char       *response,
                    RelaisTeamDialog *self)
{
  if (g_strcmp0 (response, "remove") == 0)
    start_share (self, g_object_get_data (G_OBJECT (dialog), "user-id"), FALSE);
}

static void
on_remove_clicked (GtkButton        *button,
                   RelaisTeamDialog *self)
{
  const char *user_id = g_object_get_data (G_OBJECT (button), "user-id");
  const char *name = user_name (self, user_id);
  g_autofree char *heading = g_strdup_printf (_("Remove %s from the Team?"), name);
  g_autofree char *body =
    g_strdup_printf (_("%s keeps what they have received of this dossier already, but nothing written from now on: the dossier’s key is renewed for the rest of the team."),
                     name);
  GtkWidget *dialog = adw_message_dialog_new (GTK_WINDOW (self), heading, body);

  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "remove", _("_Remove"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "remove",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_object_set_data_full (G_OBJECT (dialog), "user-id", g_strdup (user_id), g_free);
  g_signal_connect_object (dialog, "response", G_CALLBACK (on_remove_response), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
on_search_changed (RelaisTeamDialog *self)
{
  gtk_list_box_invalidate_filter (GTK_LIST_BOX (self->directory_list));
}

static gboolean
on_team_close_request (GtkWindow *window)
{
  /* A share or an unshare uses the vault: its answer comes here. */
  return RELAIS_TEAM_DIALOG (window)->holding;
}

static void
relais_team_dialog_dispose (GObject *object)
{
  RelaisTeamDialog *self = RELAIS_TEAM_DIALOG (object);

  self->disposed = TRUE;
  g_clear_object (&self->sync);
  g_clear_pointer (&self->users, g_ptr_array_unref);
  g_clear_pointer (&self->members, g_ptr_array_unref);
  g_clear_pointer (&self->member_rows, g_ptr_array_unref);

  G_OBJECT_CLASS (relais_team_dialog_parent_class)->dispose (object);
}

static void
relais_team_dialog_finalize (GObject *object)
{
  RelaisTeamDialog *self = RELAIS_TEAM_DIALOG (object);

  g_free (self->dossier_id);
  g_free (self->vault_dir);
  g_free (self->self_id);
  g_free (self->status);
  g_free (self->pending_user);

  G_OBJECT_CLASS (relais_team_dialog_parent_class)->finalize (object);
}

static void
relais_team_dialog_class_init (RelaisTeamDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = relais_team_dialog_dispose;
  object_class->finalize = relais_team_dialog_finalize;
  window_class->close_request = on_team_close_request;
}

static void
relais_team_dialog_init (RelaisTeamDialog *self)
{
  GtkWidget *toolbar = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *header = adw_header_bar_new ();
  GtkWidget *scrolled = gtk_scrolled_window_new ();
  GtkWidget *clamp = adw_clamp_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 18);
  GtkWidget *add_group = adw_preferences_group_new ();
  GtkWidget *placeholder_box;

  self->members = g_ptr_array_new_with_free_func (g_free);
  self->member_rows = g_ptr_array_new ();

  gtk_window_set_title (GTK_WINDOW (self), _("Team of the Dossier"));
  gtk_window_set_default_size (GTK_WINDOW (self), 480, 620);
  gtk_window_set_modal (GTK_WINDOW (self), TRUE);
  gtk_window_set_destroy_with_parent (GTK_WINDOW (self), TRUE);

  self->spinner = gtk_spinner_new ();
  gtk_widget_set_visible (self->spinner, FALSE);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->spinner),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Talking to the server"), -1);
  adw_header_bar_pack_start (ADW_HEADER_BAR (header), self->spinner);
  /* The person's name under the title: "of" would need an elision in
   * French before a vowel. */
  self->title = ADW_WINDOW_TITLE (adw_window_title_new (_("Team of the Dossier"), NULL));
  adw_header_bar_set_title_widget (ADW_HEADER_BAR (header), GTK_WIDGET (self->title));
  gtk_box_append (GTK_BOX (toolbar), header);

  self->error_label = new_error_label ();
  gtk_box_append (GTK_BOX (box), self->error_label);
  self->status_label = gtk_label_new (NULL);
  gtk_label_set_wrap (GTK_LABEL (self->status_label), TRUE);
  gtk_label_set_xalign (GTK_LABEL (self->status_label), 0);
  gtk_widget_add_css_class (self->status_label, "success");
  gtk_widget_set_visible (self->status_label, FALSE);
  gtk_box_append (GTK_BOX (box), self->status_label);

  self->members_group = adw_preferences_group_new ();
  adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (self->members_group),
                                   _("People Who Receive This Dossier"));
  adw_preferences_group_set_description (ADW_PREFERENCES_GROUP (self->members_group),
                                         _("Each of them reads and writes it on their own computers, encrypted end to end."));
  gtk_box_append (GTK_BOX (box), self->members_group);

  adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (add_group), _("Add a Colleague"));
  self->search_entry = gtk_search_entry_new ();
  g_object_set (self->search_entry, "placeholder-text", _("Search by name or organisation"), NULL);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->search_entry),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Search colleagues by name or organisation"),
                                  -1);
  gtk_widget_set_margin_bottom (self->search_entry, 12);
  g_signal_connect_swapped (self->search_entry, "search-changed", G_CALLBACK (on_search_changed), self);
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (add_group), self->search_entry);

  self->directory_stack = gtk_stack_new ();
  self->directory_list = gtk_list_box_new ();
  gtk_list_box_set_selection_mode (GTK_LIST_BOX (self->directory_list), GTK_SELECTION_NONE);
  gtk_widget_add_css_class (self->directory_list, "boxed-list");
  gtk_list_box_set_filter_func (GTK_LIST_BOX (self->directory_list), directory_filter, self, NULL);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->directory_list),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Colleagues"), -1);
  placeholder_box = gtk_label_new (_("No colleague matches this search."));
  gtk_widget_add_css_class (placeholder_box, "dim-label");
  gtk_widget_set_margin_top (placeholder_box, 12);
  gtk_widget_set_margin_bottom (placeholder_box, 12);
  gtk_list_box_set_placeholder (GTK_LIST_BOX (self->directory_list), placeholder_box);
  gtk_stack_add_named (GTK_STACK (self->directory_stack), self->directory_list, "list");
  self->directory_message = gtk_label_new (_("Reading the directory…"));
  gtk_label_set_wrap (GTK_LABEL (self->directory_message), TRUE);
  gtk_widget_add_css_class (self->directory_message, "dim-label");
  gtk_stack_add_named (GTK_STACK (self->directory_stack), self->directory_message, "message");
  gtk_stack_set_visible_child_name (GTK_STACK (self->directory_stack), "message");
  adw_preferences_group_add (ADW_PREFERENCES_GROUP (add_group), self->directory_stack);
  gtk_box_append (GTK_BOX (box), add_group);

  gtk_widget_set_margin_top (box, 18);
  gtk_widget_set_margin_bottom (box, 18);
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  adw_clamp_set_maximum_size (ADW_CLAMP (clamp), 520);
  adw_clamp_set_child (ADW_CLAMP (clamp), box);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scrolled), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (scrolled), clamp);
  gtk_widget_set_vexpand (scrolled, TRUE);
  gtk_box_append (GTK_BOX (toolbar), scrolled);
  adw_window_set_content (ADW_WINDOW (self), toolbar);
}

RelaisTeamDialog *
relais_team_dialog_new (GtkWindow            *parent,
                        RelaisVault          *vault,
                        RelaisSyncController *sync,
                        const char           *dossier_id)
{
  RelaisTeamDialog *self;
  g_autoptr(RelaisPerson) person = NULL;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (sync), NULL);
  g_return_val_if_fail (dossier_id != NULL, NULL);

  self = g_object_new (RELAIS_TYPE_TEAM_DIALOG, "transient-for", parent, NULL);
  self->vault = vault;
  self->sync = g_object_ref (sync);
  self->dossier_id = g_strdup (dossier_id);
  self->vault_dir = g_strdup (relais_vault_get_dir (vault));
  self->self_id = relais_sync_get_user_id (vault);

  /* The window's title says whose dossier, for the person; nothing of it
   * is logged. */
  person = relais_person_get (vault, dossier_id, NULL);
  if (person != NULL)
    {
      g_autofree char *name = relais_person_format_name (person);

      adw_window_title_set_subtitle (self->title, name);
    }

  refresh_team (self);
  fetch_directory (self);
  return self;
}

gboolean
relais_team_dialog_is_busy (RelaisTeamDialog *self)
{
  g_return_val_if_fail (RELAIS_IS_TEAM_DIALOG (self), FALSE);

  return self->busy > 0;
}

const char *
relais_team_dialog_get_status (RelaisTeamDialog *self)
{
  g_return_val_if_fail (RELAIS_IS_TEAM_DIALOG (self), NULL);

  return self->status;
}
