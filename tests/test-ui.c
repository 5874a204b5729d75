/* The desktop window under Xvfb: a real window, driven the way a person
 * would (text typed into its fields, its actions activated), checked on
 * screen and then through the core. */

#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <string.h>

#include "relais-import.h"

#include "relais-changeset.h"
#include "relais-keys.h"

#include "relais-conflicts-page.h"
#include "relais-dossier.h"
#include "relais-dossier-list.h"
#include "relais-keyfile.h"
#include "relais-oplog.h"
#include "relais-person.h"
#include "relais-person-dialog.h"
#include "relais-person-object.h"
#include "relais-preferences-window.h"
#include "relais-strength.h"
#include "relais-spool.h"
#include "relais-summary.h"
#include "relais-sync-dialogs.h"
#include "relais-sync-engine.h"
#include "relais-sync-indicator.h"
#include "relais-test-util.h"
#include "relais-ui.h"
#include "relais-vault-view.h"
#include "relais-window.h"

#define PASSPHRASE "lanterne verger cobalt 42 marée"

/* Long enough for Argon2id at 256 MiB under AddressSanitizer. */
#define WAIT_SECONDS 60

typedef gboolean (*Condition) (gpointer data);

static gboolean
tick (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop (GTask callbacks, redraws) until @condition holds. */
static gboolean
wait_until (Condition condition,
            gpointer  data)
{
  gint64 end = g_get_monotonic_time () + WAIT_SECONDS * G_USEC_PER_SEC;
  guint source = g_timeout_add (20, tick, NULL);
  gboolean ok;

  while (!(ok = condition (data)) && g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, TRUE);

  g_source_remove (source);
  return ok;
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

/* Lets the window lay out and draw for about @ms milliseconds. */
static void
settle (guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;
  guint source = g_timeout_add (10, tick, NULL);

  /* At least a few turns: one turn may lay out a whole page. */
  for (guint n = 0; n < 5 || g_get_monotonic_time () < end; n++)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (source);
  (void) never;
}

/* With RELAIS_UI_SCREENSHOTS=DIR, saves what @window shows as DIR/NAME.png:
 * how the states of the window were looked at during development. */
static void
screenshot (GtkWidget  *window,
            const char *name)
{
  const char *dir = g_getenv ("RELAIS_UI_SCREENSHOTS");
  g_autoptr(GdkPaintable) paintable = NULL;
  g_autoptr(GtkSnapshot) snapshot = NULL;
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  g_autofree char *path = NULL;
  int width, height;

  if (dir == NULL)
    return;

  settle (400);
  width = gtk_widget_get_width (window);
  height = gtk_widget_get_height (window);
  paintable = gtk_widget_paintable_new (window);
  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snapshot, width, height);
  node = gtk_snapshot_to_node (snapshot);
  if (node == NULL)
    return;
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (window)), node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  path = g_strdup_printf ("%s/%s.png", dir, name);
  gdk_texture_save_to_png (texture, path);
}

static gpointer
child (gpointer    widget,
       GType       type,
       const char *name)
{
  GObject *object = gtk_widget_get_template_child (GTK_WIDGET (widget), type, name);

  g_assert_nonnull (object);
  return object;
}

static void
type_text (gpointer    widget,
           GType       type,
           const char *name,
           const char *text)
{
  gtk_editable_set_text (GTK_EDITABLE (child (widget, type, name)), text);
}

/* The first widget of @type under @root (itself included) whose row title
 * is @title; any widget of @type when @title is NULL. */
static GtkWidget *
find_widget (GtkWidget  *root,
             GType       type,
             const char *title)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (root, type))
    {
      if (title == NULL)
        return root;
      if (ADW_IS_PREFERENCES_ROW (root)
          && g_strcmp0 (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (root)), title) == 0)
        return root;
      if (GTK_IS_BUTTON (root)
          && g_strcmp0 (gtk_button_get_label (GTK_BUTTON (root)), title) == 0)
        return root;
    }

  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_widget (c, type, title);

      if (found != NULL)
        return found;
    }
  return NULL;
}

static GtkWidget *
must_find (GtkWidget  *root,
           GType       type,
           const char *title)
{
  GtkWidget *found = find_widget (root, type, title);

  if (found == NULL)
    g_error ("No %s titled “%s”", g_type_name (type), title != NULL ? title : "(any)");
  return found;
}

static GtkWidget *
find_button_with_icon (GtkWidget  *root,
                       const char *icon_name)
{
  if (GTK_IS_BUTTON (root) && g_strcmp0 (gtk_button_get_icon_name (GTK_BUTTON (root)), icon_name) == 0)
    return root;
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_button_with_icon (c, icon_name);

      if (found != NULL)
        return found;
    }
  return NULL;
}

/* The inline message under @root, when one is shown. */
static GtkWidget *
find_error_label (GtkWidget *root)
{
  if (GTK_IS_LABEL (root) && gtk_widget_has_css_class (root, "error") && gtk_widget_get_visible (root))
    return root;
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_error_label (c);

      if (found != NULL)
        return found;
    }
  return NULL;
}

/* Ticks the contract type @key in the project row @project. */
static void
tick_contract_type (GtkWidget  *project,
                    const char *key)
{
  GtkWidget *row = must_find (project, ADW_TYPE_ACTION_ROW, relais_choice_label (relais_contract_types, key));
  GtkWidget *check = must_find (row, GTK_TYPE_CHECK_BUTTON, NULL);

  gtk_test_accessible_assert_property (check, GTK_ACCESSIBLE_PROPERTY_LABEL,
                                       relais_choice_label (relais_contract_types, key));
  gtk_check_button_set_active (GTK_CHECK_BUTTON (check), TRUE);
}

static void
catch_toast (GtkWidget *view,
             AdwToast  *toast,
             AdwToast **out)
{
  g_set_object (out, toast);
}

static guint
n_actions (RelaisWindow *window,
           const char   *dossier)
{
  g_autoptr(GPtrArray) actions = relais_action_list (relais_window_get_vault (window), dossier, NULL, NULL);

  return actions->len;
}

static guint
choice_position (const RelaisChoice *choices,
                 const char         *key)
{
  for (guint i = 0; choices[i].key != NULL; i++)
    if (g_str_equal (choices[i].key, key))
      return i;
  g_assert_not_reached ();
}

typedef struct {
  GtkWidget  *root;
  GType       type;
  const char *title;
} Lookup;

static gboolean
widget_found (gpointer data)
{
  Lookup *lookup = data;

  return find_widget (lookup->root, lookup->type, lookup->title) != NULL;
}

/* Pages are built again after the write that changed them has returned. */
static GtkWidget *
wait_for_widget (GtkWidget  *root,
                 GType       type,
                 const char *title)
{
  Lookup lookup = { root, type, title };

  if (!wait_until (widget_found, &lookup))
    g_error ("No %s titled “%s” appeared", g_type_name (type), title != NULL ? title : "(any)");
  return find_widget (root, type, title);
}

static GtkWidget *
view_page (RelaisVaultView *view,
           const char      *name)
{
  g_autofree char *bin = g_strconcat (name, "_bin", NULL);

  adw_view_stack_set_visible_child_name (child (view, RELAIS_TYPE_VAULT_VIEW, "view_stack"), name);
  if (g_str_equal (name, "overview"))
    return child (view, RELAIS_TYPE_VAULT_VIEW, "overview_page");
  return child (view, RELAIS_TYPE_VAULT_VIEW, bin);
}

/* Assesses @theme at @level through its row of the diagnostic page, and
 * ticks its first situation. */
static void
assess_theme (RelaisVaultView *view,
              const char      *theme,
              const char      *level)
{
  GtkWidget *page = view_page (view, "diagnostic");
  GtkWidget *expander = must_find (page, ADW_TYPE_EXPANDER_ROW, relais_choice_label (relais_themes, theme));
  GtkWidget *combo = must_find (expander, ADW_TYPE_COMBO_ROW, "Level");
  const RelaisChoice *situations = relais_theme_situations (theme);
  GtkWidget *check;

  adw_combo_row_set_selected (ADW_COMBO_ROW (combo), choice_position (relais_diagnostic_levels, level));
  check = must_find (must_find (expander, ADW_TYPE_ACTION_ROW,
                                relais_choice_label (situations, situations[0].key)),
                     GTK_TYPE_CHECK_BUTTON, NULL);
  g_assert_true (gtk_widget_get_sensitive (check));
  gtk_check_button_set_active (GTK_CHECK_BUTTON (check), TRUE);
}

static gboolean
window_state_is (gpointer data)
{
  RelaisWindow *window = ((gpointer *) data)[0];
  const char *state = ((gpointer *) data)[1];

  return g_strcmp0 (relais_window_get_state (window), state) == 0;
}

static void
wait_for_state (RelaisWindow *window,
                const char   *state)
{
  gpointer data[2] = { window, (gpointer) state };

  if (!wait_until (window_state_is, data))
    g_error ("The window shows “%s”, not “%s”", relais_window_get_state (window), state);
}

static gboolean
pointer_is_null (gpointer data)
{
  return *(gpointer *) data == NULL;
}

static gboolean
widget_is_visible (gpointer widget)
{
  return gtk_widget_get_visible (GTK_WIDGET (widget));
}

static RelaisPersonDialog *
find_person_dialog (void)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr(GObject) window = g_list_model_get_item (toplevels, i);

      if (RELAIS_IS_PERSON_DIALOG (window))
        return RELAIS_PERSON_DIALOG (window);
    }
  return NULL;
}

static gboolean
no_person_dialog (gpointer data)
{
  return find_person_dialog () == NULL;
}

static RelaisPersonDialog *
open_new_dossier_dialog (RelaisWindow *window)
{
  RelaisPersonDialog *dialog;

  g_assert_null (find_person_dialog ());
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "dossier.new", NULL));
  dialog = find_person_dialog ();
  g_assert_nonnull (dialog);
  return dialog;
}

static void
fill_person (RelaisPersonDialog *dialog,
             const char         *birth_date)
{
  GType type = RELAIS_TYPE_PERSON_DIALOG;

  type_text (dialog, type, "last_name_row", "Quenouillère");
  type_text (dialog, type, "first_name_row", "Hélène");
  type_text (dialog, type, "birth_date_row", birth_date);
  type_text (dialog, type, "phone_row", "06 12 34 56 78");
  type_text (dialog, type, "city_row", "Saint-Flour");
}

/* Runs a poppler-utils @tool (pdftotext, pdfinfo) on @pdf and returns what
 * it printed; NULL, and the test skipped, when it is not installed. */
static char *
poppler (const char *tool,
         const char *pdf)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *program = g_find_program_in_path (tool);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = 0;
  gboolean text = g_str_equal (tool, "pdftotext");

  if (program == NULL)
    {
      g_test_skip ("poppler-utils is not installed");
      return NULL;
    }
  {
    const char *text_argv[] = { program, "-enc", "UTF-8", pdf, "-", NULL };
    const char *info_argv[] = { program, pdf, NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) (text ? text_argv : info_argv), NULL,
                                 G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error));
  }
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_test_message ("%s: %s", tool, err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return g_steal_pointer (&out);
}

/* The "Page size:" line of pdfinfo's output for @pdf. */
static char *
page_size (const char *pdf)
{
  g_autofree char *info = poppler ("pdfinfo", pdf);
  g_auto(GStrv) lines = NULL;

  if (info == NULL)
    return NULL;
  lines = g_strsplit (info, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "Page size:"))
      return g_strdup (lines[i]);
  g_assert_not_reached ();
  return NULL;
}

/* Prints the open dossier through the window's GtkPrintOperation (to a
 * file, without the dialog), reads the PDF back, and checks its pages are
 * the size of the one `relaisctl summary --pdf` writes. */
static void
assert_prints (RelaisWindow *window,
               const char   *tmp,
               const char   *id)
{
  g_autofree char *printed = g_build_filename (tmp, "printed.pdf", NULL);
  g_autofree char *written = g_build_filename (tmp, "written.pdf", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSummary) summary = NULL;
  g_autofree char *text = NULL;
  g_autofree char *printed_size = NULL;
  g_autofree char *written_size = NULL;

  g_assert_true (relais_window_print_to_file (window, printed, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_test (printed, G_FILE_TEST_IS_REGULAR));

  text = poppler ("pdftotext", printed);
  if (text == NULL)
    return;
  g_assert_true (g_utf8_validate (text, -1, NULL));
  if (strstr (text, "QUENOUILLÈRE") == NULL || strstr (text, "Hélène") == NULL ||
      strstr (text, "restitution") == NULL)
    g_error ("the printed summary lacks the name or “restitution”:\n%s", text);

  /* The same renderer, as relaisctl runs it. */
  summary = relais_summary_new (relais_window_get_vault (window), id, &error);
  g_assert_no_error (error);
  g_assert_true (relais_summary_write_pdf (summary, written, &error));
  g_assert_no_error (error);
  printed_size = page_size (printed);
  written_size = page_size (written);
  g_assert_nonnull (strstr (written_size, "(A4)"));
  g_assert_cmpstr (printed_size, ==, written_size);

  g_unlink (printed);
  g_unlink (written);
}

/* The whole first day: create a vault, a dossier, lock, unlock. */
static void
test_ui_first_run (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-ui-XXXXXX");
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autoptr(GError) error = NULL;
  RelaisWindow *window;
  RelaisPersonDialog *dialog;
  RelaisVaultView *view;
  RelaisDossierList *list;
  GtkWidget *widget;
  GType wtype = RELAIS_TYPE_WINDOW;
  GType dtype = RELAIS_TYPE_PERSON_DIALOG;
  g_autofree char *recovery = NULL;
  g_autofree char *id = NULL;
  RelaisVault *vault;
  g_autoptr(GPtrArray) found = NULL;
  RelaisPerson *person;

  window = g_object_new (RELAIS_TYPE_WINDOW,
                         "vault-dir", dir,
                         "default-width", 1000,
                         "default-height", 700,
                         NULL);
  g_object_ref_sink (window);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_cmpstr (relais_window_get_state (window), ==, "create");
  screenshot (GTK_WIDGET (window), "1-create");

  /* Accessible names of the first controls a person meets. */
  widget = child (window, wtype, "new_passphrase_row");
  gtk_test_accessible_assert_property (widget, GTK_ACCESSIBLE_PROPERTY_LABEL, "Passphrase");
  widget = child (window, wtype, "confirm_passphrase_row");
  gtk_test_accessible_assert_property (widget, GTK_ACCESSIBLE_PROPERTY_LABEL, "Confirm Passphrase");
  widget = child (window, wtype, "strength_bar");
  gtk_test_accessible_assert_role (widget, GTK_ACCESSIBLE_ROLE_METER);
  gtk_test_accessible_assert_property (widget, GTK_ACCESSIBLE_PROPERTY_LABEL, "Passphrase strength");

  /* Too weak: refused, inline, nothing created. */
  type_text (window, wtype, "new_passphrase_row", "soleil");
  type_text (window, wtype, "confirm_passphrase_row", "soleil");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "vault.create", NULL));
  g_assert_true (gtk_widget_get_visible (child (window, wtype, "create_error")));
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  screenshot (GTK_WIDGET (window), "2-create-weak");

  /* Two different ones: refused too. */
  type_text (window, wtype, "new_passphrase_row", PASSPHRASE);
  type_text (window, wtype, "confirm_passphrase_row", PASSPHRASE "x");
  g_assert_cmpfloat (gtk_level_bar_get_value (child (window, wtype, "strength_bar")), ==,
                     RELAIS_STRENGTH_STRONG);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "vault.create", NULL));
  g_assert_true (gtk_widget_get_visible (child (window, wtype, "create_error")));
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));

  /* Enter in the confirmation field creates it, in a thread, with a
   * spinner. */
  type_text (window, wtype, "confirm_passphrase_row", PASSPHRASE);
  g_signal_emit_by_name (child (window, wtype, "confirm_passphrase_row"), "entry-activated");
  g_assert_true (gtk_widget_get_visible (child (window, wtype, "create_spinner")));
  screenshot (GTK_WIDGET (window), "3-creating");
  wait_for_state (window, "recovery");
  g_assert_nonnull (relais_window_get_vault (window));

  /* The recovery key, once; Continue only once it is written down. */
  recovery = g_strdup (gtk_label_get_label (child (window, wtype, "recovery_key_label")));
  g_assert_cmpuint (strlen (recovery), >=, 50);
  g_assert_true (gtk_label_get_selectable (child (window, wtype, "recovery_key_label")));
  screenshot (GTK_WIDGET (window), "4-recovery");
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (window), "recovery.continue", NULL)
                  && g_strcmp0 (relais_window_get_state (window), "vault") == 0);
  g_assert_cmpstr (relais_window_get_state (window), ==, "recovery");
  gtk_check_button_set_active (child (window, wtype, "written_check"), TRUE);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "recovery.continue", NULL));
  g_assert_cmpstr (relais_window_get_state (window), ==, "vault");
  g_assert_cmpstr (gtk_label_get_label (child (window, wtype, "recovery_key_label")), ==, "");

  view = RELAIS_VAULT_VIEW (relais_window_get_view (window));
  list = relais_vault_view_get_list (view);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 0);
  widget = child (view, RELAIS_TYPE_VAULT_VIEW, "list_view");
  gtk_test_accessible_assert_property (widget, GTK_ACCESSIBLE_PROPERTY_LABEL, "Dossiers");
  /* single-click-activate selects the row under the pointer as it moves:
   * the list would open every dossier the mouse passes over. */
  g_assert_false (gtk_list_view_get_single_click_activate (GTK_LIST_VIEW (widget)));
  widget = child (view, RELAIS_TYPE_VAULT_VIEW, "search_entry");
  gtk_test_accessible_assert_role (widget, GTK_ACCESSIBLE_ROLE_SEARCH_BOX);
  gtk_test_accessible_assert_property (widget, GTK_ACCESSIBLE_PROPERTY_LABEL, "Search dossiers by name");
  screenshot (GTK_WIDGET (window), "5-empty-vault");

  /* A new dossier with an impossible birth date: the field is marked and
   * says why, and nothing is written. */
  dialog = open_new_dossier_dialog (window);
  fill_person (dialog, "31/02/1985");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (dialog), "person.save", NULL));
  g_assert_true (find_person_dialog () == dialog);
  widget = child (dialog, dtype, "birth_date_row");
  g_assert_true (gtk_widget_has_css_class (widget, "error"));
  gtk_test_accessible_assert_state (widget, GTK_ACCESSIBLE_STATE_INVALID, GTK_ACCESSIBLE_INVALID_TRUE);
  g_assert_false (gtk_widget_has_css_class (child (dialog, dtype, "last_name_row"), "error"));
  g_assert_true (gtk_widget_get_visible (child (dialog, dtype, "identity_error")));
  g_assert_nonnull (strstr (gtk_label_get_label (child (dialog, dtype, "identity_error")), "birth date"));
  gtk_test_accessible_assert_property (child (dialog, dtype, "last_name_row"),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "Last Name");
  screenshot (GTK_WIDGET (dialog), "6-dialog-invalid");
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 0);

  /* Corrected as the person types; saved. */
  type_text (dialog, dtype, "birth_date_row", "12/03/1985");
  g_assert_false (gtk_widget_has_css_class (child (dialog, dtype, "birth_date_row"), "error"));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (dialog), "person.save", NULL));
  g_assert_true (wait_until (no_person_dialog, NULL));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);
  id = g_strdup (relais_vault_view_get_dossier_id (view));
  g_assert_nonnull (id);
  g_assert_true (gtk_widget_get_visible (child (view, RELAIS_TYPE_VAULT_VIEW, "print_button")));
  gtk_test_accessible_assert_property (child (view, RELAIS_TYPE_VAULT_VIEW, "print_button"),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "Print the Summary");
  gtk_test_accessible_assert_property (child (view, RELAIS_TYPE_VAULT_VIEW, "filter_drop_down"),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "Which dossiers to list");
  screenshot (GTK_WIDGET (window), "7-dossier");
  assert_prints (window, tmp, id);

  /* The dossier's pages: two themes of the diagnostic, an objective and a
   * late action of the plan, a note, an appointment. */
  assess_theme (view, "logement", "fort");
  assess_theme (view, "mobilite", "moyen");
  adw_expander_row_set_expanded (ADW_EXPANDER_ROW (must_find (view_page (view, "diagnostic"), ADW_TYPE_EXPANDER_ROW,
                                                              relais_choice_label (relais_themes, "logement"))),
                                 TRUE);
  screenshot (GTK_WIDGET (window), "7a-diagnostic");
  {
    GtkWidget *page = view_page (view, "plan");
    GtkWidget *entry;

    adw_combo_row_set_selected (ADW_COMBO_ROW (must_find (page, ADW_TYPE_COMBO_ROW, "Theme")),
                                choice_position (relais_themes, "emploi"));
    entry = must_find (page, ADW_TYPE_ENTRY_ROW, "Objective");
    gtk_editable_set_text (GTK_EDITABLE (entry), "Trouver un emploi de cuisinier");
    g_signal_emit_by_name (entry, "apply");
    page = view_page (view, "plan");
    entry = wait_for_widget (page, ADW_TYPE_ENTRY_ROW, "New Action");
    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW,
                                                    "Due Date (DD/MM/YYYY, optional)")),
                           "02/01/2020");
    gtk_editable_set_text (GTK_EDITABLE (entry), "S’inscrire à l’atelier CV");
    g_signal_emit_by_name (entry, "apply");
    wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "S’inscrire à l’atelier CV");
    screenshot (GTK_WIDGET (window), "7b-plan");

    /* The action's due date and carrier, edited after its creation: a bad
     * date is refused inline and writes nothing. */
    {
      GtkWidget *action = must_find (page, ADW_TYPE_EXPANDER_ROW, "S’inscrire à l’atelier CV");
      GtkWidget *due = must_find (action, ADW_TYPE_ENTRY_ROW, "Due Date (DD/MM/YYYY)");
      g_autoptr(GPtrArray) actions = NULL;
      RelaisAction *a;

      adw_expander_row_set_expanded (ADW_EXPANDER_ROW (action), TRUE);
      g_autofree char *shown = relais_format_date ("2020-01-02");

      g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (due)), ==, shown);
      gtk_test_accessible_assert_property (due, GTK_ACCESSIBLE_PROPERTY_LABEL, "Due Date (DD/MM/YYYY)");
      gtk_editable_set_text (GTK_EDITABLE (due), "31/02/2020");
      g_signal_emit_by_name (due, "apply");
      g_assert_nonnull (find_error_label (action));
      g_assert_nonnull (strstr (gtk_label_get_label (GTK_LABEL (find_error_label (action))), "due date"));
      actions = relais_action_list (relais_window_get_vault (window), id, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (((RelaisAction *) g_ptr_array_index (actions, 0))->due, ==, "2020-01-02");
      g_clear_pointer (&actions, g_ptr_array_unref);

      gtk_editable_set_text (GTK_EDITABLE (due), "03/01/2020");
      g_signal_emit_by_name (due, "apply");
      settle (100);
      page = view_page (view, "plan");
      action = wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "S’inscrire à l’atelier CV");
      g_assert_null (find_error_label (action));
      entry = must_find (action, ADW_TYPE_ENTRY_ROW, "Carried By");
      gtk_test_accessible_assert_property (entry, GTK_ACCESSIBLE_PROPERTY_LABEL, "Carried By");
      gtk_editable_set_text (GTK_EDITABLE (entry), " Mission locale ");
      g_signal_emit_by_name (entry, "apply");
      settle (100);
      page = view_page (view, "plan");
      wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "S’inscrire à l’atelier CV");

      actions = relais_action_list (relais_window_get_vault (window), id, NULL, &error);
      g_assert_no_error (error);
      a = g_ptr_array_index (actions, 0);
      g_assert_cmpstr (a->due, ==, "2020-01-03");
      g_assert_cmpstr (a->carrier, ==, "Mission locale");
    }

    /* Removed, then brought back by the toast's Undo. */
    {
      AdwToast *toast = NULL;
      gulong handler = g_signal_connect (view, "toast", G_CALLBACK (catch_toast), &toast);
      GtkWidget *remove = find_button_with_icon (page, "user-trash-symbolic");

      g_assert_nonnull (remove);
      gtk_test_accessible_assert_property (remove, GTK_ACCESSIBLE_PROPERTY_LABEL, "Remove");
      g_signal_emit_by_name (remove, "clicked");
      g_assert_cmpuint (n_actions (window, id), ==, 0);
      g_assert_nonnull (toast);
      g_assert_cmpstr (adw_toast_get_title (toast), ==, "Action removed");
      g_signal_emit_by_name (toast, "button-clicked");
      g_assert_cmpuint (n_actions (window, id), ==, 1);
      g_signal_handler_disconnect (view, handler);
      g_clear_object (&toast);
      wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "S’inscrire à l’atelier CV");
    }
  }
  {
    GtkWidget *page = view_page (view, "plan");

    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "Structure or Service")),
                           "Mission locale de Saint-Flour");
    g_signal_emit_by_name (must_find (page, GTK_TYPE_BUTTON, "_Add the Orientation"), "clicked");
    wait_for_widget (page, ADW_TYPE_ACTION_ROW, "Mission locale de Saint-Flour");
  }
  {
    GtkWidget *page = view_page (view, "journal");
    GtkTextView *text = GTK_TEXT_VIEW (must_find (page, GTK_TYPE_TEXT_VIEW, NULL));

    gtk_text_buffer_set_text (gtk_text_view_get_buffer (text), "Premier entretien : motivée, sans permis.", -1);
    g_signal_emit_by_name (must_find (page, GTK_TYPE_BUTTON, "_Add the Note"), "clicked");
    wait_for_widget (page, ADW_TYPE_ACTION_ROW, "Premier entretien : motivée, sans permis.");
  }
  {
    GtkWidget *page = view_page (view, "appointments");

    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "Date (DD/MM/YYYY)")), "15/12/2099");
    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "Time (HH:MM)")), "14:30");
    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "With Whom")), "Mme Vidal, conseillère");
    g_signal_emit_by_name (must_find (page, GTK_TYPE_BUTTON, "_Add the Appointment"), "clicked");
    wait_for_widget (page, GTK_TYPE_DROP_DOWN, NULL);
  }
  {
    GtkWidget *page = view_page (view, "situation");

    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "Job Sought")), "Commis de cuisine");
    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "ROME Code (optional)")), "g1602");
    gtk_editable_set_text (GTK_EDITABLE (must_find (page, ADW_TYPE_ENTRY_ROW, "Mobility in km (optional)")), "30");
    g_signal_emit_by_name (must_find (page, GTK_TYPE_BUTTON, "_Add the Project"), "clicked");
    /* Contract types, ticked in the project once it exists. */
    tick_contract_type (wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "Commis de cuisine"), "cdi");
    settle (100);
    page = view_page (view, "situation");
    tick_contract_type (wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "Commis de cuisine"), "saisonnier");
    settle (100);
    page = view_page (view, "situation");
    wait_for_widget (page, ADW_TYPE_EXPANDER_ROW, "Commis de cuisine");
    screenshot (GTK_WIDGET (window), "7d-situation");
  }
  view_page (view, "overview");
  screenshot (GTK_WIDGET (window), "7c-overview");

  /* The same person again: a warning, and the existing dossier opens. */
  dialog = open_new_dossier_dialog (window);
  fill_person (dialog, "1985-03-12");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (dialog), "person.save", NULL));
  g_assert_true (gtk_revealer_get_reveal_child (child (dialog, dtype, "duplicate_revealer")));
  screenshot (GTK_WIDGET (dialog), "8-dialog-duplicate");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (dialog), "person.open-existing", NULL));
  g_assert_true (wait_until (no_person_dialog, NULL));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);
  g_assert_cmpstr (relais_vault_view_get_dossier_id (view), ==, id);

  /* Lock: keys wiped, views gone, the passphrase asked again.  The view
   * and the list model are not just hidden: they are finalized. */
  g_object_add_weak_pointer (G_OBJECT (view), (gpointer *) &view);
  g_object_add_weak_pointer (G_OBJECT (list), (gpointer *) &list);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "vault.lock", NULL));
  g_assert_cmpstr (relais_window_get_state (window), ==, "unlock");
  g_assert_null (relais_window_get_vault (window));
  g_assert_null (relais_window_get_view (window));
  g_assert_true (wait_until (pointer_is_null, &view));
  g_assert_true (wait_until (pointer_is_null, &list));
  g_assert_true (gtk_widget_has_focus (gtk_root_get_focus (GTK_ROOT (window)))
                 && gtk_widget_is_ancestor (gtk_root_get_focus (GTK_ROOT (window)),
                                            child (window, wtype, "passphrase_row")));

  /* A wrong passphrase: an inline message, the field ready for retyping. */
  type_text (window, wtype, "passphrase_row", "lanterne verger cobalt 43 marée");
  g_signal_emit_by_name (child (window, wtype, "passphrase_row"), "entry-activated");
  g_assert_true (wait_until (widget_is_visible, child (window, wtype, "unlock_error")));
  g_assert_cmpstr (relais_window_get_state (window), ==, "unlock");
  g_assert_null (relais_window_get_vault (window));
  g_assert_true (gtk_widget_is_ancestor (gtk_root_get_focus (GTK_ROOT (window)),
                                         child (window, wtype, "passphrase_row")));
  screenshot (GTK_WIDGET (window), "9-unlock-wrong");

  /* The right one. */
  type_text (window, wtype, "passphrase_row", PASSPHRASE);
  g_signal_emit_by_name (child (window, wtype, "passphrase_row"), "entry-activated");
  wait_for_state (window, "vault");
  view = RELAIS_VAULT_VIEW (relais_window_get_view (window));
  list = relais_vault_view_get_list (view);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);

  /* Enter right after typing opens the first match of what was typed,
   * before the search entry's delay has run out. */
  {
    GtkWidget *search = child (view, RELAIS_TYPE_VAULT_VIEW, "search_entry");
    g_autoptr(RelaisPerson) other = relais_person_new ();
    g_autofree char *other_id = NULL;

    /* First in the list, so that opening "the first one" shows which. */
    other->last_name = g_strdup ("Abadie");
    other->first_name = g_strdup ("Marc");
    other->birth_date = g_strdup ("1970-01-01");
    other_id = relais_person_add (relais_window_get_vault (window), other, &error);
    g_assert_no_error (error);
    relais_vault_view_refresh (view);
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 2);

    relais_vault_view_show_dossier (view, NULL);
    gtk_editable_set_text (GTK_EDITABLE (search), "quenouil");
    g_signal_emit_by_name (search, "activate");
    g_assert_cmpstr (relais_vault_view_get_dossier_id (view), ==, id);
    gtk_editable_set_text (GTK_EDITABLE (search), "");
  }

  /* Search, without case or accents. */
  g_assert_true (relais_dossier_list_set_query (list, "QUENOUILLERE", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);
  g_assert_true (relais_dossier_list_set_query (list, "dupont", &error));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 0);

  gtk_window_destroy (GTK_WINDOW (window));
  g_assert_finalize_object (window);

  /* What the window wrote, read back through the core. */
  vault = relais_vault_open (dir, PASSPHRASE, NULL, &error);
  g_assert_no_error (error);
  found = relais_person_search (vault, "helene", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (found->len, ==, 1);
  person = g_ptr_array_index (found, 0);
  g_assert_cmpstr (person->id, ==, id);
  g_assert_cmpstr (person->last_name, ==, "Quenouillère");
  g_assert_cmpstr (person->birth_date, ==, "1985-03-12");
  g_assert_cmpstr (person->phone, ==, "0612345678");
  g_assert_cmpstr (person->city, ==, "Saint-Flour");

  /* The rest of the dossier, as the pages wrote it. */
  {
    g_autoptr(RelaisDiagnostic) housing = relais_diagnostic_get (vault, id, "logement", &error);
    g_autoptr(RelaisDiagnostic) mobility = relais_diagnostic_get (vault, id, "mobilite", &error);
    g_autoptr(GPtrArray) objectives = relais_objective_list (vault, id, &error);
    g_autoptr(GPtrArray) actions = relais_action_list (vault, id, NULL, &error);
    g_autoptr(GPtrArray) notes = relais_note_list (vault, id, 0, &error);
    g_autoptr(RelaisAppointment) next = relais_appointment_next (vault, id, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (housing->level, ==, "fort");
    g_assert_cmpuint (g_strv_length (housing->situations), ==, 1);
    g_assert_cmpstr (mobility->level, ==, "moyen");
    g_assert_cmpuint (objectives->len, ==, 1);
    g_assert_cmpstr (((RelaisObjective *) g_ptr_array_index (objectives, 0))->theme, ==, "emploi");
    g_assert_cmpuint (actions->len, ==, 1);
    g_assert_cmpstr (((RelaisAction *) g_ptr_array_index (actions, 0))->due, ==, "2020-01-03");
    g_assert_cmpstr (((RelaisAction *) g_ptr_array_index (actions, 0))->carrier, ==, "Mission locale");
    g_assert_true (((RelaisAction *) g_ptr_array_index (actions, 0))->late);
    g_assert_cmpuint (notes->len, ==, 1);
    {
      g_autoptr(GPtrArray) orientations = relais_orientation_list (vault, id, &error);

      g_assert_no_error (error);
      g_assert_cmpuint (orientations->len, ==, 1);
      g_assert_cmpstr (((RelaisOrientation *) g_ptr_array_index (orientations, 0))->status, ==, "proposee");
    }
    {
      g_autoptr(GPtrArray) projects = relais_project_list (vault, id, &error);
      RelaisProject *project;

      g_assert_no_error (error);
      g_assert_cmpuint (projects->len, ==, 1);
      project = g_ptr_array_index (projects, 0);
      g_assert_cmpstr (project->rome_code, ==, "G1602");
      g_assert_cmpint (project->mobility_km, ==, 30);
      g_assert_cmpuint (g_strv_length (project->contract_types), ==, 2);
      g_assert_cmpstr (project->contract_types[0], ==, "cdi");
      g_assert_cmpstr (project->contract_types[1], ==, "saisonnier");
    }
    g_assert_nonnull (next);
    g_assert_cmpstr (next->at, ==, "2099-12-15 14:30");
  }
  relais_vault_close (vault);

  relais_test_rm_rf (tmp);
}

/* The preferences group titled @title under @root, or NULL. */
static GtkWidget *
find_group (GtkWidget  *root,
            const char *title)
{
  if (ADW_IS_PREFERENCES_GROUP (root)
      && g_strcmp0 (adw_preferences_group_get_title (ADW_PREFERENCES_GROUP (root)), title) == 0)
    return root;
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_group (c, title);

      if (found != NULL)
        return found;
    }
  return NULL;
}

/* How many widgets of @type are under @root. */
static guint
count_widgets (GtkWidget *root,
               GType      type)
{
  guint n = G_TYPE_CHECK_INSTANCE_TYPE (root, type) ? 1 : 0;

  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    n += count_widgets (c, type);
  return n;
}

static gboolean
label_shown (GtkWidget  *root,
             const char *text)
{
  if (GTK_IS_LABEL (root) && gtk_widget_is_visible (root)
      && g_strcmp0 (gtk_label_get_label (GTK_LABEL (root)), text) == 0)
    return TRUE;
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    if (label_shown (c, text))
      return TRUE;
  return FALSE;
}

static RelaisVault *
make_test_vault (const char *dir,
                 const char *author)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *recovery = NULL;
  RelaisKdfParams kdf;
  RelaisVaultOptions options = { .kdf = &kdf };
  RelaisVault *vault;

  relais_kdf_params_insecure_for_tests (&kdf);
  vault = relais_vault_create (dir, PASSPHRASE, &options, &recovery, &error);
  g_assert_no_error (error);
  relais_vault_set_author (vault, author);
  return vault;
}

static void
unlock_window (RelaisWindow *window)
{
  type_text (window, RELAIS_TYPE_WINDOW, "passphrase_row", PASSPHRASE);
  g_signal_emit_by_name (child (window, RELAIS_TYPE_WINDOW, "passphrase_row"), "entry-activated");
  wait_for_state (window, "vault");
}

static void
edit_phone (RelaisVault *vault,
            const char  *id,
            const char  *phone)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) changes = relais_person_new ();

  changes->phone = g_strdup (phone);
  g_assert_true (relais_person_edit (vault, id, changes, &error));
  g_assert_no_error (error);
}

/* Two devices change the same fields before they see each other's change:
 * the conflicts page shows both values with their authors, the person
 * keeps the one that is not shown, and every trace of the conflict goes:
 * in the core, on the page, in the sidebar, in the dossier. */
static void
test_ui_conflicts (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-ui-XXXXXX");
  g_autofree char *dir_a = g_build_filename (tmp, "alice", NULL);
  g_autofree char *dir_b = g_build_filename (tmp, "bruno", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autofree char *id = NULL;
  g_autofree char *objective = NULL;
  g_autofree char *action = NULL;
  g_autofree char *winner_phone = NULL;
  g_autofree char *loser_phone = NULL;
  g_autofree char *winner_shown = NULL;
  g_autofree char *loser_shown = NULL;
  RelaisVault *alice = make_test_vault (dir_a, "alice");
  RelaisVault *bruno = make_test_vault (dir_b, "bruno");
  RelaisWindow *window;
  RelaisVaultView *view;
  RelaisSyncIndicator *indicator;
  RelaisConflictsPage *page;
  GtkWidget *group;
  GtkWidget *row;
  GtkWidget *button;

  person->last_name = g_strdup ("Quenouillère");
  person->first_name = g_strdup ("Hélène");
  person->birth_date = g_strdup ("1985-03-12");
  id = relais_person_add (alice, person, &error);
  g_assert_no_error (error);
  objective = relais_objective_add (alice, id, "emploi", "Trouver un emploi", &error);
  g_assert_no_error (error);
  action = relais_action_add (alice, objective, "Atelier CV", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (relais_test_send_ops (alice, bruno), >, 0);

  /* Offline, each on their own laptop. */
  edit_phone (alice, id, "0611111111");
  edit_phone (bruno, id, "0622222222");
  g_assert_true (relais_plan_set_status (alice, action, "realisee", &error));
  g_assert_true (relais_plan_set_status (bruno, action, "abandonnee", &error));
  g_assert_no_error (error);
  relais_test_send_ops (alice, bruno);
  relais_test_send_ops (bruno, alice);

  conflicts = relais_oplog_conflicts (alice, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (conflicts->len, ==, 2);
  for (guint i = 0; i < conflicts->len; i++)
    {
      RelaisConflict *conflict = g_ptr_array_index (conflicts, i);

      if (g_str_equal (conflict->field, "phone"))
        {
          winner_phone = g_strdup (((RelaisOp *) g_ptr_array_index (conflict->values, 0))->value);
          loser_phone = g_strdup (((RelaisOp *) g_ptr_array_index (conflict->values, 1))->value);
        }
    }
  g_assert_nonnull (loser_phone);
  g_clear_pointer (&conflicts, g_ptr_array_unref);

  /* How fields and values are named: as the dossier's pages do. */
  {
    g_autofree char *where = relais_conflicts_describe_field (alice, "person", id, "phone");
    g_autofree char *plan = relais_conflicts_describe_field (alice, "action", action, "status");
    g_autofree char *status = relais_conflicts_format_value ("action", "status", "realisee");
    g_autofree char *due = relais_conflicts_format_value ("action", "due", "2026-11-25");
    g_autofree char *empty = relais_conflicts_format_value ("person", "email", NULL);
    g_autofree char *unknown = relais_conflicts_format_value ("action", "status", "from-a-newer-version");
    g_autofree char *date = relais_format_date ("2026-11-25");

    g_assert_cmpstr (where, ==, "Identity · Phone");
    g_assert_cmpstr (plan, ==, "Action “Atelier CV” · Status");
    g_assert_cmpstr (status, ==, relais_choice_label (relais_action_statuses, "realisee"));
    g_assert_cmpstr (due, ==, date);
    g_assert_cmpstr (empty, ==, "Empty");
    g_assert_cmpstr (unknown, ==, "from-a-newer-version");
  }
  relais_vault_close (alice);
  relais_vault_close (bruno);

  window = g_object_new (RELAIS_TYPE_WINDOW,
                         "vault-dir", dir_a,
                         "default-width", 1000,
                         "default-height", 700,
                         NULL);
  g_object_ref_sink (window);
  gtk_window_present (GTK_WINDOW (window));
  unlock_window (window);
  view = RELAIS_VAULT_VIEW (relais_window_get_view (window));
  relais_vault_view_show_dossier (view, id);

  /* The sidebar: no server for this vault, two conflicts to review. */
  indicator = relais_vault_view_get_sync_indicator (view);
  screenshot (GTK_WIDGET (window), "10-conflicts-sidebar");
  g_assert_cmpint (relais_sync_indicator_get_state (indicator), ==, RELAIS_SYNC_STATE_NOT_ENROLLED);
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Not connected to a server");
  gtk_test_accessible_assert_role (indicator, GTK_ACCESSIBLE_ROLE_STATUS);
  gtk_test_accessible_assert_property (indicator, GTK_ACCESSIBLE_PROPERTY_LABEL,
                                       "Sync: Not connected to a server. 2 conflicts to review");
  button = find_button_with_icon (GTK_WIDGET (indicator), "view-refresh-symbolic");
  g_assert_nonnull (button);
  g_assert_false (gtk_widget_get_visible (button));
  g_assert_true (label_shown (GTK_WIDGET (indicator), "2"));
  g_assert_true (gtk_widget_has_css_class (must_find (GTK_WIDGET (indicator), GTK_TYPE_BUTTON, NULL), "conflicts-button"));

  /* The page: each conflict under the person's name, every value with
   * its author, the one shown now marked. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.conflicts", NULL));
  g_assert_cmpstr (relais_window_get_state (window), ==, "conflicts");
  page = child (window, RELAIS_TYPE_WINDOW, "conflicts_page");
  screenshot (GTK_WIDGET (window), "11-conflicts");
  g_assert_cmpuint (relais_conflicts_page_get_n_conflicts (page), ==, 2);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (child (page, RELAIS_TYPE_CONFLICTS_PAGE, "stack")),
                   ==, "list");
  group = find_group (GTK_WIDGET (page), "QUENOUILLÈRE Hélène");
  g_assert_nonnull (group);
  /* Identity first: the person's own fields before those of records. */
  g_assert_cmpstr (adw_preferences_group_get_description (ADW_PREFERENCES_GROUP (group)), ==,
                   "Identity · Phone");
  group = gtk_widget_get_next_sibling (group);
  g_assert_true (ADW_IS_PREFERENCES_GROUP (group));
  g_assert_cmpstr (adw_preferences_group_get_title (ADW_PREFERENCES_GROUP (group)), ==,
                   "QUENOUILLÈRE Hélène");
  g_assert_cmpstr (adw_preferences_group_get_description (ADW_PREFERENCES_GROUP (group)), ==,
                   "Action “Atelier CV” · Status");
  g_assert_cmpuint (count_widgets (GTK_WIDGET (page), ADW_TYPE_PREFERENCES_GROUP), ==, 3);

  winner_shown = relais_conflicts_format_value ("person", "phone", winner_phone);
  loser_shown = relais_conflicts_format_value ("person", "phone", loser_phone);
  /* As the overview shows phone numbers. */
  g_assert_cmpuint (strlen (loser_shown), ==, 14);
  row = must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW, winner_shown);
  g_assert_true (label_shown (row, "Shown now"));
  g_assert_true (strstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)),
                         g_str_equal (winner_phone, "0611111111") ? "alice" : "bruno") != NULL);
  row = must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW, loser_shown);
  g_assert_false (label_shown (row, "Shown now"));
  g_assert_true (strstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)),
                         g_str_equal (loser_phone, "0611111111") ? "alice" : "bruno") != NULL);
  /* This vault is Alice's: her value is hers, on this computer. */
  must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW,
             relais_choice_label (relais_action_statuses, "realisee"));
  must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW,
             relais_choice_label (relais_action_statuses, "abandonnee"));

  /* Keep the value that is not shown. */
  button = must_find (row, GTK_TYPE_BUTTON, "Keep");
  {
    g_autofree char *name = g_strdup_printf ("Keep “%s”", loser_shown);

    gtk_test_accessible_assert_property (button, GTK_ACCESSIBLE_PROPERTY_LABEL, name);
  }
  g_signal_emit_by_name (button, "clicked");
  settle (100);
  g_assert_cmpuint (relais_conflicts_page_get_n_conflicts (page), ==, 1);
  g_assert_null (find_widget (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW, loser_shown));
  conflicts = relais_oplog_conflicts (relais_window_get_vault (window), NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (conflicts->len, ==, 1);
  g_assert_cmpstr (((RelaisConflict *) g_ptr_array_index (conflicts, 0))->field, ==, "status");
  g_clear_pointer (&conflicts, g_ptr_array_unref);
  {
    g_autoptr(RelaisPerson) now = relais_person_get (relais_window_get_vault (window), id, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (now->phone, ==, loser_phone);
  }
  g_assert_true (label_shown (GTK_WIDGET (indicator), "1"));

  /* The other one, keeping the value that is shown: closed as well. */
  row = must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW,
                   relais_choice_label (relais_action_statuses, "abandonnee"));
  g_signal_emit_by_name (must_find (row, GTK_TYPE_BUTTON, "Keep"), "clicked");
  settle (100);

  /* Nothing left: the empty state, here and in the sidebar. */
  g_assert_cmpuint (relais_conflicts_page_get_n_conflicts (page), ==, 0);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (child (page, RELAIS_TYPE_CONFLICTS_PAGE, "stack")),
                   ==, "empty");
  g_assert_cmpstr (adw_status_page_get_title (child (page, RELAIS_TYPE_CONFLICTS_PAGE, "empty_page")),
                   ==, "No Conflicts");
  conflicts = relais_oplog_conflicts (relais_window_get_vault (window), NULL, &error);
  g_assert_cmpuint (conflicts->len, ==, 0);
  g_clear_pointer (&conflicts, g_ptr_array_unref);
  g_assert_false (label_shown (GTK_WIDGET (indicator), "1"));
  gtk_test_accessible_assert_property (indicator, GTK_ACCESSIBLE_PROPERTY_LABEL,
                                       "Sync: Not connected to a server");
  screenshot (GTK_WIDGET (window), "12-conflicts-empty");

  /* Back in the dossier, the value kept. */
  g_signal_emit_by_name (child (page, RELAIS_TYPE_CONFLICTS_PAGE, "back_button"), "clicked");
  g_assert_cmpstr (relais_window_get_state (window), ==, "vault");
  g_assert_cmpstr (relais_vault_view_get_dossier_id (view), ==, id);
  {
    g_assert_cmpstr (gtk_label_get_label (child (view, RELAIS_TYPE_VAULT_VIEW, "phone_label")), ==,
                     loser_shown);
  }

  /* From a conflict to its dossier. */
  relais_vault_view_show_dossier (view, NULL);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.conflicts", NULL));
  {
    g_autoptr(GPtrArray) unresolved = NULL;
    g_autoptr(GError) local = NULL;
    g_autofree char *name = NULL;
    RelaisVault *vault = relais_window_get_vault (window);

    /* A new one: Bruno's laptop clears the city while this vault sets it. */
    {
      g_autoptr(RelaisPerson) changes = relais_person_new ();

      changes->city = g_strdup ("Murat");
      g_assert_true (relais_person_edit (vault, id, changes, &local));
      g_assert_no_error (local);
    }
    {
      RelaisOp op = { 0 };
      gboolean is_new = FALSE;
      g_autoptr(GPtrArray) history = relais_oplog_history (vault, "person", id, "city", &local);

      g_assert_no_error (local);
      op.id = relais_oplog_new_id ();
      op.dossier = id;
      op.entity = "person";
      op.entity_id = id;
      op.field = "city";
      op.value = "Allanche";
      op.hlc = ((RelaisOp *) g_ptr_array_index (history, 0))->hlc + 1;
      op.author = "bruno";
      op.device = "bruno-laptop";
      op.parents = NULL;
      g_assert_true (relais_vault_begin (vault, &local));
      g_assert_true (relais_oplog_apply (vault, &op, &is_new, &local));
      g_assert_true (relais_vault_commit (vault, &local));
      g_assert_no_error (local);
      g_assert_true (is_new);
      g_free (op.id);
    }
    unresolved = relais_oplog_conflicts (vault, NULL, &local);
    g_assert_cmpuint (unresolved->len, ==, 1);
    relais_conflicts_page_refresh (page);
    name = g_strdup ("Open the dossier of QUENOUILLÈRE Hélène");
    button = find_button_with_icon (GTK_WIDGET (page), "go-next-symbolic");
    g_assert_nonnull (button);
    gtk_test_accessible_assert_property (button, GTK_ACCESSIBLE_PROPERTY_LABEL, name);
    g_signal_emit_by_name (button, "clicked");
    g_assert_cmpstr (relais_window_get_state (window), ==, "vault");
    g_assert_cmpstr (relais_vault_view_get_dossier_id (view), ==, id);
  }

  /* Locking empties the page even when it is shown. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.conflicts", NULL));
  relais_window_lock (window);
  g_assert_cmpstr (relais_window_get_state (window), ==, "unlock");
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (window), "sync.conflicts", NULL)
                  && g_strcmp0 (relais_window_get_state (window), "conflicts") == 0);

  gtk_window_destroy (GTK_WINDOW (window));
  g_assert_finalize_object (window);
  relais_test_rm_rf (tmp);
}

/* ---- A real relais-server on loopback ---------------------------------- */

/* RELAIS_SERVER, or the one built beside this test. */
static char *
find_server (void)
{
  const char *env = g_getenv ("RELAIS_SERVER");
  const char *build = g_getenv ("G_TEST_BUILDDIR");
  g_autofree char *path = NULL;

  if (env != NULL && *env != '\0')
    path = g_strdup (env);
  else if (build != NULL)
    path = g_build_filename (build, "..", "sync", "server", "relais-server", NULL);
  if (path == NULL || !g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
    return NULL;
  return g_steal_pointer (&path);
}

/* Runs relais-server ARGS... and returns its stdout's first line. */
static char *
server_admin (const char *server,
              ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  va_list args;
  const char *arg;

  g_ptr_array_add (argv, (char *) server);
  va_start (args, server);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (process, NULL, NULL, &out, &err, &error));
  g_assert_no_error (error);
  if (!g_subprocess_get_successful (process))
    g_error ("relais-server %s failed: %s", (char *) argv->pdata[1], err);
  return g_strstrip (g_strdup (out));
}

typedef struct {
  GSubprocess *process;
  char        *url;
} TestServer;

/* @listen: "127.0.0.1:0" for a free port; @cert and @key: HTTPS, or NULL. */
static TestServer *
server_start_full (const char *server,
                   const char *store,
                   const char *listen,
                   const char *cert,
                   const char *key)
{
  const char *argv[] = { server, "serve", "--store", store, "--listen", listen,
                         cert != NULL ? "--tls-cert" : NULL, cert, "--tls-key", key, NULL };
  TestServer *test_server = g_new0 (TestServer, 1);

  test_server->process = relais_test_server_spawn (argv, &test_server->url);
  return test_server;
}

static TestServer *
server_start (const char *server,
              const char *store,
              const char *listen)
{
  return server_start_full (server, store, listen, NULL, NULL);
}

static void
server_stop (TestServer *test_server)
{
  relais_test_server_stop (test_server->process);
  g_free (test_server->url);
  g_free (test_server);
}

static gboolean
indicator_not_syncing (gpointer data)
{
  return relais_sync_indicator_get_state (data) != RELAIS_SYNC_STATE_SYNCING;
}

/* The network as the system would report it, which a test cannot switch
 * off and on: a GNetworkMonitor whose state the test sets, watched by the
 * real window as it watches the system's. */
typedef struct {
  GObject  parent_instance;
  gboolean available;
  gboolean metered;
} TestNetwork;

typedef GObjectClass TestNetworkClass;

enum { NET_PROP_0, NET_PROP_AVAILABLE, NET_PROP_METERED, NET_PROP_CONNECTIVITY };

static void test_network_iface_init (GNetworkMonitorInterface *iface) { }

static gboolean
test_network_initable_init (GInitable     *initable,
                            GCancellable  *cancellable,
                            GError       **error)
{
  return TRUE;
}

static void
test_network_initable_iface_init (GInitableIface *iface)
{
  iface->init = test_network_initable_init;
}

G_DEFINE_TYPE_WITH_CODE (TestNetwork, test_network, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, test_network_initable_iface_init)
                         G_IMPLEMENT_INTERFACE (G_TYPE_NETWORK_MONITOR, test_network_iface_init))
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestNetwork, g_object_unref)

static void
test_network_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  TestNetwork *self = (TestNetwork *) object;

  switch (prop_id)
    {
    case NET_PROP_AVAILABLE:
      g_value_set_boolean (value, self->available);
      break;
    case NET_PROP_METERED:
      g_value_set_boolean (value, self->metered);
      break;
    case NET_PROP_CONNECTIVITY:
      g_value_set_enum (value, self->available ? G_NETWORK_CONNECTIVITY_FULL
                                               : G_NETWORK_CONNECTIVITY_LOCAL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
test_network_class_init (TestNetworkClass *klass)
{
  klass->get_property = test_network_get_property;
  g_object_class_override_property (klass, NET_PROP_AVAILABLE, "network-available");
  g_object_class_override_property (klass, NET_PROP_METERED, "network-metered");
  g_object_class_override_property (klass, NET_PROP_CONNECTIVITY, "connectivity");
}

static void
test_network_init (TestNetwork *self)
{
}

static TestNetwork *
test_network_new (void)
{
  return g_object_new (test_network_get_type (), NULL);
}

static void
test_network_set (TestNetwork *self,
                  gboolean     available,
                  gboolean     metered)
{
  self->available = available;
  self->metered = metered;
  g_object_notify (G_OBJECT (self), "network-metered");
  g_object_notify (G_OBJECT (self), "connectivity");
  g_signal_emit_by_name (self, "network-changed", available);
}

static gboolean
indicator_syncing (gpointer data)
{
  return relais_sync_indicator_get_state (data) == RELAIS_SYNC_STATE_SYNCING;
}

static gboolean
indicator_pending (gpointer data)
{
  return g_str_has_suffix (relais_sync_indicator_get_text (data), "waiting to be sent");
}

static gboolean
spool_in_empty (gpointer spool)
{
  g_autoptr(GPtrArray) in = relais_spool_list_in (spool, NULL);

  return in != NULL && in->len == 0;
}

/* Runs the window's Sync Now and waits until it has ended. */
static void
sync_now (RelaisWindow        *window,
          RelaisSyncIndicator *indicator)
{
  /* One that started by itself (unlock, the network) ends first. */
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.now", NULL));
  g_assert_cmpint (relais_sync_indicator_get_state (indicator), ==, RELAIS_SYNC_STATE_SYNCING);
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Syncing…");
  g_assert_true (wait_until (indicator_not_syncing, indicator));
}

/* An enrolled vault in the window, against a real relais-server: the
 * indicator through its states (synced, a change waiting, synced again),
 * a colleague's change applied to the dossier shown, and a revoked
 * device that wipes its vault. */
static void
test_ui_sync (void)
{
  g_autofree char *server = find_server ();
  g_autofree char *tmp = NULL;
  g_autofree char *store = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *dir2 = NULL;
  g_autofree char *code = NULL;
  g_autofree char *user_line = NULL;
  g_autofree char *user_id = NULL;
  g_autofree char *code2 = NULL;
  g_autofree char *id = NULL;
  g_autofree char *device_id = NULL;
  g_autofree char *dir_bruno = NULL;
  g_autofree char *code_bruno = NULL;
  RelaisVault *bruno;
  GtkWidget *journal;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  TestServer *test_server;
  RelaisVault *vault;
  RelaisVault *laptop;
  RelaisWindow *window;
  RelaisVaultView *view;
  RelaisSyncIndicator *indicator;
  RelaisSyncReport report;
  g_autoptr(TestNetwork) network = NULL;

  if (server == NULL)
    {
      g_test_skip ("relais-server is not built");
      return;
    }
  g_setenv ("RELAIS_TEST_FAST_KDF", "1", TRUE);

  tmp = relais_test_make_tmpdir ("relais-ui-sync-XXXXXX");
  store = g_strconcat ("sqlite:", tmp, "/server.db", NULL);
  dir = g_build_filename (tmp, "vault", NULL);
  dir2 = g_build_filename (tmp, "laptop", NULL);
  dir_bruno = g_build_filename (tmp, "bruno", NULL);
  test_server = server_start (server, store, "127.0.0.1:0");
  code = server_admin (server, "user", "add", "--store", store, "--name", "Alice Martin",
                       "--org", "CCAS Saint-Flour", NULL);

  /* This computer: a dossier written before enrolling. */
  vault = make_test_vault (dir, "alice");
  person->last_name = g_strdup ("Quenouillère");
  person->first_name = g_strdup ("Hélène");
  person->birth_date = g_strdup ("1985-03-12");
  person->city = g_strdup ("Saint-Flour");
  id = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_true (relais_sync_enroll (vault, test_server->url, NULL, code, PASSPHRASE, "desk",
                                     NULL, &error));
  g_assert_no_error (error);

  /* A colleague of another organisation follows the person too. */
  code_bruno = server_admin (server, "user", "add", "--store", store, "--name", "Bruno Caylus",
                             "--org", "CCAS Mende", NULL);
  bruno = make_test_vault (dir_bruno, "bruno");
  g_assert_true (relais_sync_enroll (bruno, test_server->url, NULL, code_bruno, PASSPHRASE, "bruno",
                                     NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_run (vault, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_share (vault, id, "Bruno Caylus", NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (vault);

  window = g_object_new (RELAIS_TYPE_WINDOW,
                         "vault-dir", dir,
                         "default-width", 1000,
                         "default-height", 700,
                         NULL);
  g_object_ref_sink (window);
  gtk_window_present (GTK_WINDOW (window));
  unlock_window (window);
  view = RELAIS_VAULT_VIEW (relais_window_get_view (window));
  indicator = relais_vault_view_get_sync_indicator (view);
  relais_vault_view_show_dossier (view, id);
  g_assert_true (gtk_widget_get_visible (find_button_with_icon (GTK_WIDGET (indicator),
                                                                "view-refresh-symbolic")));

  /* Sync Now: the dossier goes up, the indicator says so. */
  sync_now (window, indicator);
  screenshot (GTK_WIDGET (window), "13-synced");
  g_assert_cmpint (relais_sync_indicator_get_state (indicator), ==, RELAIS_SYNC_STATE_IDLE);
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  gtk_test_accessible_assert_property (indicator, GTK_ACCESSIBLE_PROPERTY_LABEL, "Sync: Synced just now");

  /* A second laptop of the same user gets it: the exchange was real. */
  user_line = server_admin (server, "user", "list", "--store", store, "--json", NULL);
  {
    g_autoptr(JsonParser) parser = json_parser_new ();
    JsonArray *users;

    g_assert_true (json_parser_load_from_data (parser, user_line, -1, &error));
    users = json_node_get_array (json_parser_get_root (parser));
    g_assert_cmpuint (json_array_get_length (users), ==, 2);
    for (guint i = 0; i < json_array_get_length (users); i++)
      {
        JsonObject *user = json_array_get_object_element (users, i);

        if (g_strcmp0 (json_object_get_string_member (user, "name"), "Alice Martin") == 0)
          user_id = g_strdup (json_object_get_string_member (user, "user_id"));
      }
    g_assert_nonnull (user_id);
  }
  code2 = server_admin (server, "user", "code", "--store", store, user_id, NULL);
  laptop = make_test_vault (dir2, "alice");
  g_assert_true (relais_sync_enroll (laptop, test_server->url, NULL, code2, PASSPHRASE, "laptop",
                                     NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_run (laptop, &report, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(RelaisPerson) pulled = relais_person_get (laptop, id, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (pulled->city, ==, "Saint-Flour");
  }

  /* Offline from here on: a network monitor with no network.  A change
   * here waits, counted, until the next sync. */
  network = test_network_new ();
  relais_sync_controller_set_network_monitor (relais_window_get_sync_controller (window),
                                              G_NETWORK_MONITOR (network));
  edit_phone (relais_window_get_vault (window), id, "0611111111");
  g_signal_emit_by_name (view, "written");
  g_assert_true (wait_until (indicator_pending, indicator));
  screenshot (GTK_WIDGET (window), "14-pending");
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==,
                   "Offline: 1 change waiting to be sent");

  /* The laptop changes the city, and Bruno, meanwhile, the phone number;
   * Sync Now brings both into the dossier shown, takes this computer's
   * phone number up, and the two numbers are a conflict. */
  {
    g_autoptr(RelaisPerson) changes = relais_person_new ();

    changes->city = g_strdup ("Mende");
    g_assert_true (relais_person_edit (laptop, id, changes, &error));
    g_assert_no_error (error);
    g_free (relais_note_add (laptop, id, "Appel de la CAF : dossier complet", &error));
    g_assert_no_error (error);
    g_assert_true (relais_sync_run (laptop, &report, NULL, &error));
    g_assert_no_error (error);

    g_assert_true (relais_sync_run (bruno, &report, NULL, &error));
    g_assert_no_error (error);
    edit_phone (bruno, id, "0633333333");
    g_assert_true (relais_sync_run (bruno, &report, NULL, &error));
    g_assert_no_error (error);
  }
  /* The person reads the journal meanwhile. */
  journal = view_page (view, "journal");
  g_assert_null (find_widget (journal, ADW_TYPE_ACTION_ROW, "Appel de la CAF : dossier complet"));
  /* The network comes back (GIO's own monitor, whose networks the test
   * sets): the window syncs by itself, with nobody pressing Sync Now. */
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  g_assert_true (g_str_has_suffix (relais_sync_indicator_get_text (indicator), "waiting to be sent"));
  /* A metered link (a phone's connection) is no reason to sync… */
  test_network_set (network, TRUE, TRUE);
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  g_assert_true (g_str_has_suffix (relais_sync_indicator_get_text (indicator), "waiting to be sent"));
  test_network_set (network, FALSE, FALSE);
  /* …the office's network is. */
  test_network_set (network, TRUE, FALSE);
  g_assert_true (wait_until (indicator_syncing, indicator));
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  g_assert_cmpstr (gtk_label_get_label (child (view, RELAIS_TYPE_VAULT_VIEW, "city_label")), ==, "Mende");
  /* The page shown is read again: the colleague's note is there. */
  wait_for_widget (journal, ADW_TYPE_ACTION_ROW, "Appel de la CAF : dossier complet");
  gtk_test_accessible_assert_property (indicator, GTK_ACCESSIBLE_PROPERTY_LABEL,
                                       "Sync: Synced just now. 1 conflict to review");
  g_assert_true (relais_sync_run (laptop, &report, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(GPtrArray) conflicts = relais_oplog_conflicts (laptop, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (conflicts->len, ==, 1);
  }
  relais_vault_close (laptop);
  relais_vault_close (bruno);

  /* Authors by name, from the server's directory: the colleague with
   * the organisation, and this computer's user as “You”. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.conflicts", NULL));
  {
    RelaisConflictsPage *page = child (window, RELAIS_TYPE_WINDOW, "conflicts_page");
    GtkWidget *row;

    screenshot (GTK_WIDGET (window), "15-synced-conflict");
    row = must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW, "06 33 33 33 33");
    g_assert_true (g_str_has_prefix (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)),
                                     "Bruno Caylus (CCAS Mende), "));
    row = must_find (GTK_WIDGET (page), ADW_TYPE_ACTION_ROW, "06 11 11 11 11");
    g_assert_true (g_str_has_prefix (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)),
                                     "You, on this computer, "));
    g_signal_emit_by_name (child (page, RELAIS_TYPE_CONFLICTS_PAGE, "back_button"), "clicked");
  }

  /* Locked, the background service (relaisctl sync --background: the
   * spool's exchange, without the vault) pulls a change; unlocking
   * applies it at once. */
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  relais_window_lock (window);
  laptop = relais_vault_open (dir2, PASSPHRASE, NULL, &error);
  g_assert_no_error (error);
  {
    g_autoptr(RelaisPerson) changes = relais_person_new ();

    changes->city = g_strdup ("Marvejols");
    g_assert_true (relais_person_edit (laptop, id, changes, &error));
    g_assert_no_error (error);
    g_assert_true (relais_sync_run (laptop, &report, NULL, &error));
    g_assert_no_error (error);
  }
  relais_vault_close (laptop);
  {
    g_autoptr(RelaisSpool) spool = relais_spool_open (dir, &error);
    g_autoptr(GPtrArray) in = NULL;
    RelaisExchangeReport exchanged = { 0 };

    g_assert_no_error (error);
    g_assert_true (relais_spool_exchange (spool, &exchanged, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (exchanged.pulled, >=, 1);
    /* And something that is no change set at all, as a damaged disk or a
     * hostile process could leave: refused, said, and gone. */
    {
      g_autofree char *hostile = g_build_filename (relais_spool_get_dir (spool), "in",
                                                   "99999999999999999999-ffffffffffffffffffffffffffffffff.rlcs",
                                                   NULL);

      g_assert_true (g_file_set_contents (hostile, "RLCS\x01 not a change set", -1, &error));
      g_assert_no_error (error);
    }
    unlock_window (window);
    /* Applied once the window has drawn the list. */
    g_assert_true (wait_until (spool_in_empty, spool));
    g_assert_nonnull (relais_window_get_sync_notice (window));
    g_assert_true (g_str_has_prefix (relais_window_get_sync_notice (window),
                                     "A change received for a dossier was refused: "));
    in = relais_spool_list_in (spool, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (in->len, ==, 0);
  }
  {
    g_autoptr(RelaisPerson) now = relais_person_get (relais_window_get_vault (window), id, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (now->city, ==, "Marvejols");
  }
  view = RELAIS_VAULT_VIEW (relais_window_get_view (window));
  indicator = relais_vault_view_get_sync_indicator (view);

  /* The server goes away: the indicator says the sync did not happen,
   * never that it did. */
  {
    g_autofree char *listen = g_strdup (test_server->url + strlen ("http://"));

    server_stop (test_server);
    sync_now (window, indicator);
    g_assert_cmpint (relais_sync_indicator_get_state (indicator), ==, RELAIS_SYNC_STATE_ERROR);
    g_assert_true (g_str_has_prefix (relais_sync_indicator_get_text (indicator), "Not synced: "));
    screenshot (GTK_WIDGET (window), "16-server-gone");
    test_server = server_start (server, store, listen);
    sync_now (window, indicator);
    g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  }

  /* The administrator revokes this computer: at its next sync the vault
   * is erased and the window starts over, saying why. */
  {
    g_autoptr(RelaisSpool) spool = relais_spool_open (dir, &error);
    g_autoptr(RelaisSpoolIdentity) identity = NULL;
    g_autofree char *revoked = NULL;

    g_assert_no_error (error);
    identity = relais_spool_get_identity (spool, &error);
    g_assert_no_error (error);
    device_id = g_strdup (identity->device_id);
    revoked = server_admin (server, "device", "revoke", "--store", store, device_id, NULL);
  }
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.now", NULL));
  wait_for_state (window, "create");
  g_assert_null (relais_window_get_vault (window));
  g_assert_true (gtk_widget_get_visible (child (window, RELAIS_TYPE_WINDOW, "create_notice")));
  {
    g_autofree char *key = g_build_filename (dir, RELAIS_KEYFILE_NAME, NULL);
    g_autofree char *db = g_build_filename (dir, RELAIS_VAULT_DB_NAME, NULL);

    g_assert_false (g_file_test (key, G_FILE_TEST_EXISTS));
    g_assert_false (g_file_test (db, G_FILE_TEST_EXISTS));
  }
  screenshot (GTK_WIDGET (window), "17-revoked");

  gtk_window_destroy (GTK_WINDOW (window));
  g_assert_finalize_object (window);
  server_stop (test_server);
  relais_test_rm_rf (tmp);
}

/* ---- Connecting and sharing from the window ------------------------------- */

static gpointer
find_toplevel (GType type)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr(GObject) window = g_list_model_get_item (toplevels, i);

      if (G_TYPE_CHECK_INSTANCE_TYPE (window, type))
        return window;
    }
  return NULL;
}

static gboolean
enrol_dialog_idle (gpointer dialog)
{
  return !relais_enrol_dialog_is_busy (dialog);
}

static gboolean
team_dialog_idle (gpointer dialog)
{
  return !relais_team_dialog_is_busy (dialog);
}

static gboolean
indicator_synced (gpointer indicator)
{
  return g_strcmp0 (relais_sync_indicator_get_text (indicator), "Synced just now") == 0;
}

/* Fills the enrolment dialog as a person would (unless @url is NULL: as
 * it is) and presses Connect (or Connect Anyway); returns the message it
 * shows, or NULL once it closed (enrolled). */
static char *
enrol_from_dialog (RelaisWindow *window,
                   const char   *url,
                   const char   *code,
                   const char   *passphrase)
{
  RelaisEnrolDialog *dialog = find_toplevel (RELAIS_TYPE_ENROL_DIALOG);
  GtkWidget *error_label;
  char *message = NULL;

  if (dialog == NULL)
    {
      g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.connect", NULL));
      dialog = find_toplevel (RELAIS_TYPE_ENROL_DIALOG);
    }
  g_assert_nonnull (dialog);
  g_assert_true (gtk_window_get_modal (GTK_WINDOW (dialog)));
  g_object_ref (dialog);
  if (url != NULL)
    {
      gtk_editable_set_text (GTK_EDITABLE (must_find (GTK_WIDGET (dialog), ADW_TYPE_ENTRY_ROW, "Server Address")), url);
      gtk_editable_set_text (GTK_EDITABLE (must_find (GTK_WIDGET (dialog), ADW_TYPE_ENTRY_ROW, "Enrolment Code")), code);
      gtk_editable_set_text (GTK_EDITABLE (must_find (GTK_WIDGET (dialog), ADW_TYPE_PASSWORD_ENTRY_ROW,
                                                      "Vault Passphrase")), passphrase);
    }
  {
    GtkWidget *button = find_widget (GTK_WIDGET (dialog), GTK_TYPE_BUTTON, "C_onnect");

    if (button == NULL)
      button = must_find (GTK_WIDGET (dialog), GTK_TYPE_BUTTON, "Connect _Anyway");
    g_signal_emit_by_name (button, "clicked");
  }
  g_assert_true (relais_enrol_dialog_is_busy (dialog));
  /* The vault is the worker's: the window takes no click, and neither
   * locks nor closes. */
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (window)));
  relais_window_lock (window);
  gtk_window_close (GTK_WINDOW (window));
  g_assert_cmpstr (relais_window_get_state (window), ==, "vault");
  g_assert_true (gtk_widget_get_visible (GTK_WIDGET (window)));
  g_assert_true (relais_window_is_vault_in_use (window));
  g_assert_true (wait_until (enrol_dialog_idle, dialog));
  settle (50);
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (window)));
  g_assert_false (relais_window_is_vault_in_use (window));
  if (find_toplevel (RELAIS_TYPE_ENROL_DIALOG) == dialog)
    {
      error_label = find_error_label (GTK_WIDGET (dialog));
      g_assert_nonnull (error_label);
      message = g_strdup (gtk_label_get_label (GTK_LABEL (error_label)));
    }
  g_object_unref (dialog);
  return message;
}

static gint64
dossier_epoch (RelaisVault *vault,
               const char  *id)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  gint64 epoch = -1;

  g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault),
                                       "SELECT epoch FROM sync_dossier WHERE dossier = ?1",
                                       -1, &stmt, NULL), ==, SQLITE_OK);
  sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step (stmt) == SQLITE_ROW)
    epoch = sqlite3_column_int64 (stmt, 0);
  return epoch;
}

static GtkWidget *
new_window (const char *dir)
{
  RelaisWindow *window = g_object_new (RELAIS_TYPE_WINDOW,
                                       "vault-dir", dir,
                                       "default-width", 1000,
                                       "default-height", 700,
                                       NULL);

  g_object_ref_sink (window);
  gtk_window_present (GTK_WINDOW (window));
  unlock_window (window);
  return GTK_WIDGET (window);
}

static void
close_window (RelaisWindow *window)
{
  RelaisSyncIndicator *indicator =
    relais_vault_view_get_sync_indicator (RELAIS_VAULT_VIEW (relais_window_get_view (window)));

  g_assert_true (wait_until (indicator_not_syncing, indicator));
  gtk_window_destroy (GTK_WINDOW (window));
  g_assert_finalize_object (window);
}

/* The whole journey of a new user in the window: connect this computer
 * with the code the administrator gave (after a wrong code and a refused
 * address), connect a second laptop that brings the dossier back, share
 * the dossier with a colleague of another organisation, then remove them:
 * they keep what they had and receive nothing new. */
static void
test_ui_enrol_share (void)
{
  g_autofree char *server = find_server ();
  g_autofree char *tmp = NULL;
  g_autofree char *store = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *dir_laptop = NULL;
  g_autofree char *dir_bruno = NULL;
  g_autofree char *code = NULL;
  g_autofree char *code_bruno = NULL;
  g_autofree char *id = NULL;
  g_autofree char *user_id = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  TestServer *test_server;
  RelaisVault *vault;
  RelaisVault *bruno;
  RelaisWindow *window;
  RelaisVaultView *view;
  RelaisSyncIndicator *indicator;
  RelaisTeamDialog *team;
  RelaisSyncReport report;
  GtkWidget *connect;
  char *message;

  if (server == NULL)
    {
      g_test_skip ("relais-server is not built");
      return;
    }
  g_setenv ("RELAIS_TEST_FAST_KDF", "1", TRUE);

  tmp = relais_test_make_tmpdir ("relais-ui-enrol-XXXXXX");
  store = g_strconcat ("sqlite:", tmp, "/server.db", NULL);
  dir = g_build_filename (tmp, "vault", NULL);
  dir_laptop = g_build_filename (tmp, "laptop", NULL);
  dir_bruno = g_build_filename (tmp, "bruno", NULL);
  test_server = server_start (server, store, "127.0.0.1:0");
  code = server_admin (server, "user", "add", "--store", store, "--name", "Alice Martin",
                       "--org", "CCAS Saint-Flour", NULL);

  vault = make_test_vault (dir, "alice");
  person->last_name = g_strdup ("Quenouillère");
  person->first_name = g_strdup ("Hélène");
  person->birth_date = g_strdup ("1985-03-12");
  person->city = g_strdup ("Saint-Flour");
  person->phone = g_strdup ("0600000000");
  id = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  relais_vault_close (vault);

  window = RELAIS_WINDOW (new_window (dir));
  view = RELAIS_VAULT_VIEW (relais_window_get_view (window));
  indicator = relais_vault_view_get_sync_indicator (view);
  relais_vault_view_show_dossier (view, id);

  /* Not connected: the sidebar says so and offers to; no team yet. */
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Not connected to a server");
  connect = must_find (GTK_WIDGET (indicator), GTK_TYPE_BUTTON, "Connect…");
  g_assert_true (gtk_widget_get_visible (connect));
  g_assert_cmpstr (gtk_actionable_get_action_name (GTK_ACTIONABLE (connect)), ==, "sync.connect");
  g_assert_false (gtk_widget_get_visible (find_button_with_icon (GTK_WIDGET (view), "system-users-symbolic")));
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (window), "dossier.team", NULL)
                  && find_toplevel (RELAIS_TYPE_TEAM_DIALOG) != NULL);

  /* A typo in the passphrase: asked about before anything is sent, and
   * the code is not used (it serves below). */
  message = enrol_from_dialog (window, test_server->url, code, "lanterne verger cobalt 42 marre");
  g_assert_true (g_str_has_prefix (message, "This is not the passphrase of this vault."));
  g_free (message);
  g_assert_nonnull (find_widget (find_toplevel (RELAIS_TYPE_ENROL_DIALOG), GTK_TYPE_BUTTON, "Connect _Anyway"));
  g_assert_false (relais_sync_is_enrolled (relais_window_get_vault (window)));

  /* A code the server never gave: said, and nothing enrolled. */
  message = enrol_from_dialog (window, test_server->url, "AAAAABBBBBCCCCCDDDDD", PASSPHRASE);
  screenshot (find_toplevel (RELAIS_TYPE_ENROL_DIALOG), "20-enrol-wrong-code");
  g_assert_cmpstr (message, ==, "The server does not know this enrolment code. Check it against the one your administrator gave you.");
  g_free (message);
  g_assert_false (relais_sync_is_enrolled (relais_window_get_vault (window)));
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Not connected to a server");

  /* Plain http:// to another computer is refused before connecting. */
  message = enrol_from_dialog (window, "http://192.0.2.1:8080", code, PASSPHRASE);
  g_assert_true (g_str_has_prefix (message, "Plain http:// is accepted only to this computer"));
  g_free (message);
  g_assert_false (relais_sync_is_enrolled (relais_window_get_vault (window)));

  /* The right code: connected, and the first sync says it is done. */
  message = enrol_from_dialog (window, test_server->url, code, PASSPHRASE);
  g_assert_null (message);
  g_assert_null (find_toplevel (RELAIS_TYPE_ENROL_DIALOG));
  g_assert_true (relais_sync_is_enrolled (relais_window_get_vault (window)));
  g_assert_true (wait_until (indicator_synced, indicator));
  g_assert_false (gtk_widget_get_visible (connect));
  g_assert_true (gtk_widget_get_visible (find_button_with_icon (GTK_WIDGET (indicator), "view-refresh-symbolic")));
  g_assert_false (gtk_widget_activate_action (GTK_WIDGET (window), "sync.connect", NULL)
                  && find_toplevel (RELAIS_TYPE_ENROL_DIALOG) != NULL);
  user_id = relais_sync_get_user_id (relais_window_get_vault (window));
  g_assert_nonnull (user_id);
  screenshot (GTK_WIDGET (window), "21-enrolled");

  /* A second laptop of the same person, in its own window: a wrong
   * passphrase is said (and uses the code), a used code is said, and a
   * new code with the first computer's passphrase brings the dossier. */
  {
    g_autofree char *code2 = server_admin (server, "user", "code", "--store", store, user_id, NULL);
    g_autofree char *code3 = server_admin (server, "user", "code", "--store", store, user_id, NULL);
    RelaisWindow *laptop;
    RelaisSyncIndicator *laptop_indicator;

    relais_vault_close (make_test_vault (dir_laptop, "alice"));
    laptop = RELAIS_WINDOW (new_window (dir_laptop));
    laptop_indicator = relais_vault_view_get_sync_indicator (RELAIS_VAULT_VIEW (relais_window_get_view (laptop)));
    message = enrol_from_dialog (laptop, test_server->url, code2, "not the first computer's passphrase");
    g_assert_true (g_str_has_prefix (message, "This is not the passphrase of this vault."));
    g_free (message);
    /* The person says it is the first computer's: the server's copy of
     * the identity does not open with it. */
    message = enrol_from_dialog (laptop, NULL, NULL, NULL);
    g_assert_true (g_str_has_prefix (message, "This passphrase does not open your identity on the server."));
    g_free (message);
    /* Wiped after use. */
    g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (must_find (find_toplevel (RELAIS_TYPE_ENROL_DIALOG),
                                                                     ADW_TYPE_PASSWORD_ENTRY_ROW,
                                                                     "Vault Passphrase"))), ==, "");
    g_assert_false (relais_sync_is_enrolled (relais_window_get_vault (laptop)));
    message = enrol_from_dialog (laptop, test_server->url, code2, PASSPHRASE);
    g_assert_cmpstr (message, ==, "This enrolment code has been used already. Ask your administrator for a new one.");
    g_free (message);
    g_assert_null (enrol_from_dialog (laptop, test_server->url, code3, PASSPHRASE));
    g_assert_true (wait_until (indicator_synced, laptop_indicator));
    {
      g_autoptr(RelaisPerson) pulled = relais_person_get (relais_window_get_vault (laptop), id, &error);

      g_assert_no_error (error);
      g_assert_cmpstr (pulled->city, ==, "Saint-Flour");
    }
    close_window (laptop);
  }

  /* A colleague of another organisation, enrolled elsewhere. */
  code_bruno = server_admin (server, "user", "add", "--store", store, "--name", "Bruno Caylus",
                             "--org", "CCAS Mende", NULL);
  g_free (server_admin (server, "user", "add", "--store", store, "--name", "Chantal Delmas",
                        "--org", "Mission locale", NULL));
  bruno = make_test_vault (dir_bruno, "bruno");
  g_assert_true (relais_sync_enroll (bruno, test_server->url, NULL, code_bruno, PASSPHRASE, "bruno",
                                     NULL, &error));
  g_assert_no_error (error);

  /* Closed before the directory came: it comes to nobody. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "dossier.team", NULL));
  team = find_toplevel (RELAIS_TYPE_TEAM_DIALOG);
  g_assert_true (relais_team_dialog_is_busy (team));
  gtk_window_destroy (GTK_WINDOW (team));
  settle (300);
  g_assert_null (find_toplevel (RELAIS_TYPE_TEAM_DIALOG));

  /* The team: this person alone, and the directory to add from. */
  g_assert_true (gtk_widget_get_visible (find_button_with_icon (GTK_WIDGET (view), "system-users-symbolic")));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "dossier.team", NULL));
  team = find_toplevel (RELAIS_TYPE_TEAM_DIALOG);
  g_assert_nonnull (team);
  g_assert_true (wait_until (team_dialog_idle, team));
  {
    GtkWidget *me = must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Alice Martin");
    GtkWidget *row = must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Bruno Caylus");
    GtkWidget *chantal = must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Chantal Delmas");
    GtkWidget *search = must_find (GTK_WIDGET (team), GTK_TYPE_SEARCH_ENTRY, NULL);
    GtkWidget *add = must_find (row, GTK_TYPE_BUTTON, "_Add");

    g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (me)), ==, "You, CCAS Saint-Flour");
    g_assert_null (find_widget (me, GTK_TYPE_BUTTON, "_Remove"));
    g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)), ==, "CCAS Mende");
    gtk_test_accessible_assert_property (add, GTK_ACCESSIBLE_PROPERTY_LABEL, "Add Bruno Caylus to the team");
    /* Not enrolled yet: nothing to wrap a key for. */
    g_assert_false (gtk_widget_get_sensitive (must_find (chantal, GTK_TYPE_BUTTON, "_Add")));

    /* The search filters by organisation, without case or accents. */
    /* GtkSearchEntry tells a moment after the last key. */
    gtk_editable_set_text (GTK_EDITABLE (search), "mende");
    settle (500);
    g_assert_true (gtk_widget_get_child_visible (row));
    g_assert_false (gtk_widget_get_child_visible (chantal));
    gtk_editable_set_text (GTK_EDITABLE (search), "");
    settle (500);
    g_assert_true (gtk_widget_get_child_visible (chantal));
    screenshot (GTK_WIDGET (team), "22-team");

    /* A sync under way gives way to the share, and runs again after. */
    g_assert_true (wait_until (indicator_not_syncing, indicator));
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "sync.now", NULL));
    settle (100);
    g_signal_emit_by_name (add, "clicked");
    g_assert_true (relais_team_dialog_is_busy (team));
    g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (window)));
    g_assert_true (wait_until (team_dialog_idle, team));
    g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (window)));
    g_assert_true (wait_until (indicator_not_syncing, indicator));
    g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  }
  g_assert_cmpstr (relais_team_dialog_get_status (team), ==, "Bruno Caylus now receives this dossier.");
  g_assert_nonnull (find_widget (must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Bruno Caylus"),
                                 GTK_TYPE_BUTTON, "_Remove"));
  screenshot (GTK_WIDGET (team), "23-team-shared");

  /* Bruno receives it. */
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  g_assert_true (relais_sync_run (bruno, &report, NULL, &error));
  g_assert_no_error (error);
  {
    g_autoptr(RelaisPerson) received = relais_person_get (bruno, id, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (received->last_name, ==, "Quenouillère");
    g_assert_cmpstr (received->phone, ==, "0600000000");
  }
  g_assert_cmpint (dossier_epoch (relais_window_get_vault (window), id), ==, 1);

  /* Removed, after a confirmation that says what it means. */
  {
    GtkWidget *remove = must_find (must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Bruno Caylus"),
                                   GTK_TYPE_BUTTON, "_Remove");
    AdwMessageDialog *confirm;

    gtk_test_accessible_assert_property (remove, GTK_ACCESSIBLE_PROPERTY_LABEL, "Remove Bruno Caylus from the team");
    g_signal_emit_by_name (remove, "clicked");
    confirm = find_toplevel (ADW_TYPE_MESSAGE_DIALOG);
    g_assert_nonnull (confirm);
    g_assert_cmpstr (adw_message_dialog_get_heading (confirm), ==, "Remove Bruno Caylus from the Team?");
    g_assert_nonnull (strstr (adw_message_dialog_get_body (confirm), "keeps what they have received"));
    screenshot (GTK_WIDGET (confirm), "24-team-remove");
    adw_message_dialog_response (confirm, "remove");
    gtk_window_destroy (GTK_WINDOW (confirm));
    g_assert_true (wait_until (team_dialog_idle, team));
  }
  g_assert_cmpstr (relais_team_dialog_get_status (team), ==,
                   "Bruno Caylus no longer receives what is written in this dossier.");
  g_assert_null (find_widget (GTK_WIDGET (team), GTK_TYPE_BUTTON, "_Remove"));
  /* Back in the directory, to add again. */
  g_assert_nonnull (find_widget (must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Bruno Caylus"),
                                 GTK_TYPE_BUTTON, "_Add"));
  /* The key was renewed for what follows. */
  g_assert_cmpint (dossier_epoch (relais_window_get_vault (window), id), ==, 2);
  gtk_window_close (GTK_WINDOW (team));
  g_assert_null (find_toplevel (RELAIS_TYPE_TEAM_DIALOG));

  /* What is written now does not reach Bruno; what he had, he keeps. */
  edit_phone (relais_window_get_vault (window), id, "0622222222");
  sync_now (window, indicator);
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  g_assert_true (relais_sync_run (bruno, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (report.applied, ==, 0);
  {
    g_autoptr(RelaisPerson) kept = relais_person_get (bruno, id, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (kept->phone, ==, "0600000000");
  }
  relais_vault_close (bruno);

  /* The server gone, the dialog says so in words, and adds nobody. */
  {
    g_autofree char *listen = g_strdup (test_server->url + strlen ("http://"));
    GtkWidget *add;

    g_assert_true (wait_until (indicator_not_syncing, indicator));
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "dossier.team", NULL));
    team = find_toplevel (RELAIS_TYPE_TEAM_DIALOG);
    g_assert_true (wait_until (team_dialog_idle, team));
    add = must_find (must_find (GTK_WIDGET (team), ADW_TYPE_ACTION_ROW, "Bruno Caylus"), GTK_TYPE_BUTTON, "_Add");
    server_stop (test_server);
    g_signal_emit_by_name (add, "clicked");
    g_assert_true (wait_until (team_dialog_idle, team));
    g_assert_cmpstr (relais_team_dialog_get_status (team), ==,
                     "The dossier could not be shared with Bruno Caylus: The server cannot be reached. "
                     "Check its address and this computer’s connection to the network, then try again.");
    g_assert_true (gtk_widget_get_visible (find_error_label (GTK_WIDGET (team))));
    g_assert_null (find_widget (GTK_WIDGET (team), GTK_TYPE_BUTTON, "_Remove"));
    g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (window)));
    gtk_window_close (GTK_WINDOW (team));
    test_server = server_start (server, store, listen);
  }

  close_window (window);
  server_stop (test_server);
  relais_test_rm_rf (tmp);
}

/* A server this computer cannot reach, and one whose certificate it does
 * not trust until the person chooses the authority under Advanced. */
static void
test_ui_enrol_tls (void)
{
  g_autofree char *server = find_server ();
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *tmp = NULL;
  g_autofree char *store = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *code = NULL;
  g_autoptr(GError) error = NULL;
  TestServer *test_server;
  RelaisWindow *window;
  RelaisEnrolDialog *dialog;
  RelaisSyncIndicator *indicator;
  char *message;

  if (server == NULL || openssl == NULL)
    {
      g_test_skip ("relais-server is not built, or openssl is not installed");
      return;
    }
  g_setenv ("RELAIS_TEST_FAST_KDF", "1", TRUE);

  tmp = relais_test_make_tmpdir ("relais-ui-tls-XXXXXX");
  store = g_strconcat ("sqlite:", tmp, "/server.db", NULL);
  dir = g_build_filename (tmp, "vault", NULL);
  cert = g_build_filename (tmp, "cert.pem", NULL);
  key = g_build_filename (tmp, "key.pem", NULL);
  {
    const char *argv[] = { openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                           "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", NULL };
    g_autoptr(GSubprocess) process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                        | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error);

    g_assert_no_error (error);
    g_assert_true (g_subprocess_wait_check (process, NULL, &error));
    g_assert_no_error (error);
  }
  test_server = server_start_full (server, store, "127.0.0.1:0", cert, key);
  g_assert_true (g_str_has_prefix (test_server->url, "https://"));
  code = server_admin (server, "user", "add", "--store", store, "--name", "Alice Martin",
                       "--org", "CCAS Saint-Flour", NULL);
  relais_vault_close (make_test_vault (dir, "alice"));
  window = RELAIS_WINDOW (new_window (dir));
  indicator = relais_vault_view_get_sync_indicator (RELAIS_VAULT_VIEW (relais_window_get_view (window)));

  /* Nothing listens on port 1 of this computer. */
  message = enrol_from_dialog (window, "http://127.0.0.1:1", code, PASSPHRASE);
  g_assert_cmpstr (message, ==, "The server cannot be reached. Check its address and this computer’s connection to the network, then try again.");
  g_free (message);

  /* A certificate of the organisation's own: refused until chosen. */
  message = enrol_from_dialog (window, test_server->url, code, PASSPHRASE);
  g_assert_true (g_str_has_prefix (message, "This computer does not trust the server’s certificate."));
  g_free (message);
  dialog = find_toplevel (RELAIS_TYPE_ENROL_DIALOG);
  g_assert_true (adw_expander_row_get_expanded (ADW_EXPANDER_ROW (must_find (GTK_WIDGET (dialog),
                                                                             ADW_TYPE_EXPANDER_ROW,
                                                                             "Advanced"))));
  screenshot (GTK_WIDGET (dialog), "25-enrol-certificate");
  g_assert_false (relais_sync_is_enrolled (relais_window_get_vault (window)));
  /* What the file chooser does with the file picked. */
  relais_enrol_dialog_set_cacert (dialog, cert);
  g_assert_cmpstr (adw_action_row_get_subtitle (ADW_ACTION_ROW (must_find (GTK_WIDGET (dialog),
                                                                           ADW_TYPE_ACTION_ROW,
                                                                           "Certificate Authority"))),
                   ==, "cert.pem");
  g_assert_null (enrol_from_dialog (window, test_server->url, code, PASSPHRASE));
  g_assert_true (relais_sync_is_enrolled (relais_window_get_vault (window)));
  g_assert_true (wait_until (indicator_synced, indicator));

  close_window (window);
  server_stop (test_server);
  relais_test_rm_rf (tmp);
}

/* The list over many dossiers holds only what is looked at. */
static void
test_ui_dossier_list_pages (void)
{
  g_autofree char *tmp = relais_test_make_tmpdir ("relais-ui-XXXXXX");
  g_autofree char *dir = g_build_filename (tmp, "vault", NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *recovery = NULL;
  g_autoptr(GString) csv = g_string_new ("Nom;Prénom;Date de naissance\n");
  RelaisImportStats stats;
  RelaisKdfParams kdf;
  RelaisVaultOptions options = { .kdf = &kdf };
  RelaisVault *vault;
  RelaisDossierList *list;
  g_autoptr(RelaisPersonObject) first = NULL;
  g_autoptr(RelaisPersonObject) last = NULL;
  g_autoptr(RelaisPersonObject) again = NULL;
  guint n = 2500;

  relais_kdf_params_insecure_for_tests (&kdf);
  vault = relais_vault_create (dir, "pass", &options, &recovery, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < n; i++)
    g_string_append_printf (csv, "Nom%05u;%s;01/01/1980\n", i, i % 10 == 0 ? "Élodie" : "Jean");
  g_assert_true (relais_import_csv (vault, csv->str, csv->len, &stats, &error));
  g_assert_no_error (error);

  list = relais_dossier_list_new (vault);
  g_assert_true (g_list_model_get_item_type (G_LIST_MODEL (list)) == RELAIS_TYPE_PERSON_OBJECT);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, n);
  g_assert_cmpuint (relais_dossier_list_get_n_cached (list), ==, 0);

  first = g_list_model_get_item (G_LIST_MODEL (list), 0);
  g_assert_cmpstr (relais_person_object_get_person (first)->last_name, ==, "Nom00000");
  last = g_list_model_get_item (G_LIST_MODEL (list), n - 1);
  g_assert_cmpstr (relais_person_object_get_person (last)->last_name, ==, "Nom02499");
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (list), n));
  /* Two pages, not 2,500 rows. */
  g_assert_cmpuint (relais_dossier_list_get_n_cached (list), <=, 200);

  /* Reading every row keeps memory bounded. */
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(RelaisPersonObject) item = g_list_model_get_item (G_LIST_MODEL (list), i);
      g_autofree char *expected = g_strdup_printf ("Nom%05u", i);

      g_assert_cmpstr (relais_person_object_get_person (item)->last_name, ==, expected);
    }
  g_assert_cmpuint (relais_dossier_list_get_n_cached (list), <=, 1600);

  /* Search: accents and case do not matter. */
  g_assert_true (relais_dossier_list_set_query (list, "ELODIE", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, n / 10);
  again = g_list_model_get_item (G_LIST_MODEL (list), n / 10 - 1);
  g_assert_cmpstr (relais_person_object_get_person (again)->last_name, ==, "Nom02490");

  /* Filters: from the store's indexes, still narrowed by the query. */
  {
    g_autoptr(GPtrArray) people = relais_person_search (vault, NULL, 3, &error);
    g_autoptr(GDateTime) now = g_date_time_new_now_local ();
    g_autofree char *today = g_date_time_format (now, "%Y-%m-%d 10:00");
    g_autofree char *objective = NULL;
    g_autofree char *action = NULL;
    g_autofree char *appointment = NULL;
    const RelaisPerson *nom0 = g_ptr_array_index (people, 0);  /* Nom00000 Élodie */
    const RelaisPerson *nom1 = g_ptr_array_index (people, 1);  /* Nom00001 Jean */

    appointment = relais_appointment_add (vault, nom1->id, today, "Mme Vidal", NULL, &error);
    g_assert_no_error (error);
    objective = relais_objective_add (vault, nom0->id, "emploi", "Trouver un emploi", &error);
    g_assert_no_error (error);
    action = relais_action_add (vault, objective, "Atelier CV", "2020-01-02", NULL, &error);
    g_assert_no_error (error);

    g_assert_true (relais_dossier_list_set_query (list, NULL, &error));
    g_assert_true (relais_dossier_list_set_filter (list, RELAIS_DOSSIER_FILTER_APPOINTMENT_TODAY, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);
    again = g_list_model_get_item (G_LIST_MODEL (list), 0);
    g_assert_cmpstr (relais_person_object_get_id (again), ==, nom1->id);
    g_clear_object (&again);

    g_assert_true (relais_dossier_list_set_filter (list, RELAIS_DOSSIER_FILTER_LATE_ACTIONS, &error));
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);
    g_assert_true (relais_dossier_list_set_query (list, "jean", &error));
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 0);
    g_assert_true (relais_dossier_list_set_query (list, "elodie", &error));
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 1);

    /* Every dossier was just made: the most recent ones, at most 500. */
    g_assert_true (relais_dossier_list_set_query (list, NULL, &error));
    g_assert_true (relais_dossier_list_set_filter (list, RELAIS_DOSSIER_FILTER_RECENTLY_CHANGED, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 500);

    g_assert_true (relais_dossier_list_set_filter (list, RELAIS_DOSSIER_FILTER_ALL, &error));
    g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, n);
  }

  relais_dossier_list_detach (list);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (list)), ==, 0);
  g_assert_finalize_object (list);
  relais_vault_close (vault);
  relais_test_rm_rf (tmp);
}

/* The auto-lock delay is the setting itself, both ways. */
static void
test_ui_preferences (void)
{
  g_autoptr(GSettings) settings = g_settings_new ("fr.spie.Relais");
  RelaisPreferencesWindow *window;
  GtkAdjustment *adjustment;
  GtkWidget *spin;

  g_settings_set_uint (settings, "auto-lock-minutes", 5);
  window = relais_preferences_window_new (NULL, settings);
  g_object_ref_sink (window);
  gtk_window_present (GTK_WINDOW (window));

  adjustment = child (window, RELAIS_TYPE_PREFERENCES_WINDOW, "auto_lock_adjustment");
  g_assert_cmpfloat (gtk_adjustment_get_value (adjustment), ==, 5);
  gtk_adjustment_set_value (adjustment, 12);
  g_assert_cmpuint (g_settings_get_uint (settings, "auto-lock-minutes"), ==, 12);
  g_settings_set_uint (settings, "auto-lock-minutes", 30);
  g_assert_cmpfloat (gtk_adjustment_get_value (adjustment), ==, 30);

  spin = child (window, RELAIS_TYPE_PREFERENCES_WINDOW, "auto_lock_spin");
  gtk_test_accessible_assert_role (spin, GTK_ACCESSIBLE_ROLE_SPIN_BUTTON);
  gtk_test_accessible_assert_relation (spin, GTK_ACCESSIBLE_RELATION_LABELLED_BY,
                                       child (window, RELAIS_TYPE_PREFERENCES_WINDOW, "auto_lock_row"), NULL);

  gtk_window_destroy (GTK_WINDOW (window));
  g_assert_finalize_object (window);
}

/* What the sync indicator says in each state, and what it shows. */
static void
test_ui_sync_indicator (void)
{
  gint64 now = 1764000000;  /* 2025-11-24, 16:00 UTC */
  struct {
    RelaisSyncState  state;
    guint            pending;
    gint64           ago;     /* -1: never synced */
    const char      *error;
    const char      *expected;
  } cases[] = {
    { RELAIS_SYNC_STATE_NOT_ENROLLED, 0, -1, NULL, "Not connected to a server" },
    { RELAIS_SYNC_STATE_IDLE, 0, -1, NULL, "Never synced" },
    { RELAIS_SYNC_STATE_IDLE, 0, 30, NULL, "Synced just now" },
    { RELAIS_SYNC_STATE_IDLE, 0, 60, NULL, "Synced 1 minute ago" },
    { RELAIS_SYNC_STATE_IDLE, 0, 150, NULL, "Synced 2 minutes ago" },
    { RELAIS_SYNC_STATE_IDLE, 0, 3600, NULL, "Synced 1 hour ago" },
    { RELAIS_SYNC_STATE_IDLE, 0, 7 * 3600 + 59, NULL, "Synced 7 hours ago" },
    { RELAIS_SYNC_STATE_IDLE, 1, 30, NULL, "1 change waiting to be sent" },
    { RELAIS_SYNC_STATE_IDLE, 12, 30, NULL, "12 changes waiting to be sent" },
    { RELAIS_SYNC_STATE_OFFLINE, 0, 30, NULL, "Offline" },
    { RELAIS_SYNC_STATE_OFFLINE, 3, 30, NULL, "Offline: 3 changes waiting to be sent" },
    { RELAIS_SYNC_STATE_SYNCING, 3, 30, NULL, "Syncing…" },
    { RELAIS_SYNC_STATE_ERROR, 3, 30, "The server could not be reached.", "Not synced: The server could not be reached." },
    { RELAIS_SYNC_STATE_ERROR, 0, 30, NULL, "Not synced: the exchange did not complete" },
  };
  GtkWidget *window;
  RelaisSyncIndicator *indicator;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = relais_sync_describe (cases[i].state, cases[i].pending,
                                                    cases[i].ago < 0 ? 0 : now - cases[i].ago,
                                                    cases[i].error, now);

      g_assert_cmpstr (text, ==, cases[i].expected);
    }
  /* Days ago: the date, in the locale's format. */
  {
    g_autoptr(GDateTime) when = g_date_time_new_from_unix_local (now - 3 * 24 * 3600);
    g_autofree char *day = g_date_time_format (when, "%Y-%m-%d");
    g_autofree char *date = relais_format_date (day);
    g_autofree char *expected = g_strdup_printf ("Last synced on %s", date);
    g_autofree char *text = relais_sync_describe (RELAIS_SYNC_STATE_IDLE, 0, now - 3 * 24 * 3600, NULL, now);

    g_assert_cmpstr (text, ==, expected);
  }

  window = gtk_window_new ();
  indicator = RELAIS_SYNC_INDICATOR (relais_sync_indicator_new ());
  gtk_window_set_child (GTK_WINDOW (window), GTK_WIDGET (indicator));
  gtk_window_present (GTK_WINDOW (window));

  /* Not enrolled: nothing to sync, no button for it. */
  g_assert_false (gtk_widget_get_visible (find_button_with_icon (GTK_WIDGET (indicator), "view-refresh-symbolic")));
  gtk_test_accessible_assert_role (indicator, GTK_ACCESSIBLE_ROLE_STATUS);
  gtk_test_accessible_assert_property (indicator, GTK_ACCESSIBLE_PROPERTY_LABEL, "Sync: Not connected to a server");

  /* Syncing: a spinner instead of the icon. */
  relais_sync_indicator_update (indicator, RELAIS_SYNC_STATE_SYNCING, 0, 0, NULL, 0);
  g_assert_true (gtk_widget_get_visible (find_button_with_icon (GTK_WIDGET (indicator), "view-refresh-symbolic")));
  g_assert_true (gtk_widget_get_visible (must_find (GTK_WIDGET (indicator), GTK_TYPE_SPINNER, NULL)));
  g_assert_false (gtk_widget_get_visible (must_find (GTK_WIDGET (indicator), GTK_TYPE_IMAGE, NULL)));

  /* An error stands out, and the whole message is in the tooltip. */
  relais_sync_indicator_update (indicator, RELAIS_SYNC_STATE_ERROR, 2, 0, "The server could not be reached.", 3);
  g_assert_false (gtk_widget_get_visible (must_find (GTK_WIDGET (indicator), GTK_TYPE_SPINNER, NULL)));
  {
    GtkWidget *label = must_find (GTK_WIDGET (indicator), GTK_TYPE_LABEL, NULL);

    g_assert_true (gtk_widget_has_css_class (label, "error"));
    g_assert_nonnull (strstr (gtk_widget_get_tooltip_text (label), "The server could not be reached."));
  }
  g_assert_true (label_shown (GTK_WIDGET (indicator), "3"));
  gtk_test_accessible_assert_property (indicator, GTK_ACCESSIBLE_PROPERTY_LABEL,
                                       "Sync: Not synced: The server could not be reached. 3 conflicts to review");
  gtk_test_accessible_assert_property (must_find (GTK_WIDGET (indicator), GTK_TYPE_BUTTON, NULL),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "3 conflicts to review");
  gtk_test_accessible_assert_property (find_button_with_icon (GTK_WIDGET (indicator), "view-refresh-symbolic"),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "Sync Now");

  gtk_window_destroy (GTK_WINDOW (window));
}

static void
test_ui_strength (void)
{
  g_assert_cmpint (relais_strength_estimate ("", NULL), ==, RELAIS_STRENGTH_EMPTY);
  g_assert_cmpint (relais_strength_estimate ("soleil", NULL), ==, RELAIS_STRENGTH_WEAK);
  g_assert_cmpint (relais_strength_estimate ("password", NULL), ==, RELAIS_STRENGTH_WEAK);
  g_assert_cmpint (relais_strength_estimate ("aaaaaaaaaaaaaaaaaaaaaaaa", NULL), ==, RELAIS_STRENGTH_WEAK);
  g_assert_cmpint (relais_strength_estimate ("Soleil2024!", NULL), ==, RELAIS_STRENGTH_FAIR);
  g_assert_cmpint (relais_strength_estimate (PASSPHRASE, NULL), ==, RELAIS_STRENGTH_STRONG);
}


/* The recovery wrap org B's administrator has of @dossier at epoch 1,
 * opened with B's recovery key pair, or NULL when the server has none. */
static guint8 *
recovered_key (const char   *admin_dir,
               const char   *user_id,
               const char   *dossier,
               const guint8 *recovery_pk,
               const guint8 *recovery_sk)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = relais_spool_open (admin_dir, &error);
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GPtrArray) dossiers = NULL;

  g_assert_no_error (error);
  client = relais_spool_make_client (spool, &error);
  g_assert_no_error (error);
  dossiers = relais_client_admin_recovery (client, user_id, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < dossiers->len; i++)
    {
      RelaisDossierKeys *keys = g_ptr_array_index (dossiers, i);

      if (g_strcmp0 (keys->dossier_id, dossier) != 0)
        continue;
      for (guint j = 0; j < keys->keys->len; j++)
        {
          RelaisWrappedKey *wrap = g_ptr_array_index (keys->keys, j);
          gsize len;
          const guint8 *bytes;
          guint8 *key;

          if (wrap->user_id != NULL || wrap->epoch != 1)
            continue;
          bytes = g_bytes_get_data (wrap->wrapped_key, &len);
          key = relais_dossier_key_unwrap (bytes, len, dossier, 1, recovery_pk, recovery_sk, &error);
          g_assert_no_error (error);
          return key;
        }
    }
  return NULL;
}

typedef struct {
  RelaisWindow *window;
  guint         seen;      /* times the window took no input: a fill with the vault */
  gboolean      lock;      /* lock as soon as it does */
  gboolean      deferred;  /* the lock waited for the fill's end */
  gboolean      destroy;   /* destroy the window as soon as it does */
} FillWatch;

static void
on_window_sensitive (GtkWidget  *widget,
                     GParamSpec *pspec,
                     FillWatch  *watch)
{
  if (gtk_widget_get_sensitive (widget))
    return;
  watch->seen++;
  if (watch->destroy)
    {
      /* What quitting does: the vault closes once the worker stopped. */
      watch->destroy = FALSE;
      gtk_window_destroy (GTK_WINDOW (watch->window));
      return;
    }
  if (!watch->lock)
    return;
  watch->lock = FALSE;
  /* The fill's worker uses the vault this very moment: the lock waits. */
  relais_window_lock (watch->window);
  watch->deferred = relais_window_get_vault (watch->window) != NULL
                    && g_strcmp0 (relais_window_get_state (watch->window), "vault") == 0;
}

static gboolean
flag_is_false (gpointer flag)
{
  return !*(gboolean *) flag;
}

static gboolean
window_sensitive (gpointer window)
{
  return gtk_widget_get_sensitive (window);
}

typedef struct {
  const char   *admin_dir;
  const char   *user_id;
  const char   *dossier;
  const guint8 *pk;
  const guint8 *sk;
  guint8       *key;
} WrapWait;

static gboolean
wrap_on_server (gpointer data)
{
  WrapWait *wait = data;

  if (wait->key == NULL)
    wait->key = recovered_key (wait->admin_dir, wait->user_id, wait->dossier, wait->pk, wait->sk);
  return wait->key != NULL;
}

/* @key is the dossier's key at epoch 1 in @vault. */
static void
assert_dossier_key (RelaisVault  *vault,
                    const char   *dossier,
                    const guint8 *key)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault),
                                       "SELECT key FROM sync_key WHERE dossier = ?1 AND epoch = 1",
                                       -1, &stmt, NULL), ==, SQLITE_OK);
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpmem (sqlite3_column_blob (stmt, 0), sqlite3_column_bytes (stmt, 0),
                   key, RELAIS_DOSSIER_KEY_SIZE);
}

/* A dossier of organisation A shared with Bruno of organisation B, whose
 * recovery key is set only afterwards: the window's sync fills B's wrap,
 * as relaisctl sync does, so that B's administrator can recover Bruno's
 * dossiers.  A lock while the fill's worker uses the vault waits for its
 * end, then closes the vault cleanly; the indicator says "Synced" all
 * along. */
static void
test_ui_recovery_fill (void)
{
  g_autofree char *server = find_server ();
  g_autofree char *tmp = NULL;
  g_autofree char *store = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *dir_bruno = NULL;
  g_autofree char *dir_admin = NULL;
  g_autofree char *code = NULL;
  g_autofree char *code_bruno = NULL;
  g_autofree char *code_admin = NULL;
  g_autofree char *id = NULL;
  g_autofree char *id2 = NULL;
  g_autofree char *id3 = NULL;
  g_autofree char *bruno_id = NULL;
  g_autofree char *public_key = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = relais_person_new ();
  g_autoptr(RelaisSpool) bruno_spool = NULL;
  g_autoptr(RelaisSpoolIdentity) identity = NULL;
  guint8 recovery_pk[crypto_box_PUBLICKEYBYTES];
  guint8 *recovery_sk;
  char encoded[sodium_base64_ENCODED_LEN (crypto_box_PUBLICKEYBYTES,
                                          sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  FillWatch watch = { 0 };
  WrapWait wait = { 0 };
  WrapWait wait2;
  TestServer *test_server;
  RelaisVault *vault;
  RelaisVault *bruno;
  RelaisVault *admin;
  RelaisWindow *window;
  RelaisSyncIndicator *indicator;
  RelaisSyncReport report;

  if (server == NULL)
    {
      g_test_skip ("relais-server is not built");
      return;
    }
  g_setenv ("RELAIS_TEST_FAST_KDF", "1", TRUE);

  g_assert_cmpint (sodium_init (), >=, 0);
  recovery_sk = sodium_malloc (crypto_box_SECRETKEYBYTES);
  tmp = relais_test_make_tmpdir ("relais-ui-fill-XXXXXX");
  store = g_strconcat ("sqlite:", tmp, "/server.db", NULL);
  dir = g_build_filename (tmp, "alice", NULL);
  dir_bruno = g_build_filename (tmp, "bruno", NULL);
  dir_admin = g_build_filename (tmp, "admin-b", NULL);
  test_server = server_start (server, store, "127.0.0.1:0");
  code = server_admin (server, "user", "add", "--store", store, "--name", "Alice Martin",
                       "--org", "CCAS Saint-Flour", NULL);
  code_bruno = server_admin (server, "user", "add", "--store", store, "--name", "Bruno Caylus",
                             "--org", "CCAS Mende", NULL);
  code_admin = server_admin (server, "user", "add", "--store", store, "--name", "Claire Admin",
                             "--org", "CCAS Mende", "--admin", NULL);

  vault = make_test_vault (dir, "alice");
  person->last_name = g_strdup ("Quenouillère");
  person->first_name = g_strdup ("Hélène");
  person->birth_date = g_strdup ("1985-03-12");
  id = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_true (relais_sync_enroll (vault, test_server->url, NULL, code, PASSPHRASE, "desk",
                                     NULL, &error));
  g_assert_no_error (error);
  bruno = make_test_vault (dir_bruno, "bruno");
  g_assert_true (relais_sync_enroll (bruno, test_server->url, NULL, code_bruno, PASSPHRASE, "bruno",
                                     NULL, &error));
  g_assert_no_error (error);
  admin = make_test_vault (dir_admin, "claire");
  g_assert_true (relais_sync_enroll (admin, test_server->url, NULL, code_admin, PASSPHRASE, "admin",
                                     NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (admin);
  g_assert_true (relais_sync_run (vault, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_share (vault, id, "Bruno Caylus", NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (vault);
  g_assert_true (relais_sync_run (bruno, &report, NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (bruno);
  bruno_spool = relais_spool_open (dir_bruno, &error);
  g_assert_no_error (error);
  identity = relais_spool_get_identity (bruno_spool, &error);
  g_assert_no_error (error);
  bruno_id = g_strdup (identity->user_id);

  /* Organisation B gets its recovery key only after Bruno enrolled. */
  crypto_box_keypair (recovery_pk, recovery_sk);
  sodium_bin2base64 (encoded, sizeof encoded, recovery_pk, sizeof recovery_pk,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  public_key = server_admin (server, "org", "set-recovery-key", "--store", store,
                             "--org", "CCAS Mende", "--key", encoded, NULL);
  wait.admin_dir = dir_admin;
  wait.user_id = bruno_id;
  wait.dossier = id;
  wait.pk = recovery_pk;
  wait.sk = recovery_sk;
  g_assert_false (wrap_on_server (&wait));

  window = RELAIS_WINDOW (new_window (dir));
  indicator = relais_vault_view_get_sync_indicator (RELAIS_VAULT_VIEW (relais_window_get_view (window)));
  watch.window = window;
  g_signal_connect (window, "notify::sensitive", G_CALLBACK (on_window_sensitive), &watch);

  /* A lock the moment the fill's worker starts: it waits for its end
   * (the worker finishes or is cancelled), then the vault closes. */
  g_assert_true (wait_until (window_sensitive, window));
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  watch.lock = TRUE;
  sync_now (window, indicator);
  g_assert_cmpint (relais_sync_indicator_get_state (indicator), ==, RELAIS_SYNC_STATE_IDLE);
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  wait_for_state (window, "unlock");
  g_assert_cmpuint (watch.seen, >=, 1);
  g_assert_true (watch.deferred);
  g_assert_null (relais_window_get_vault (window));
  g_assert_null (relais_window_get_view (window));
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (window)));

  /* Whether the cut fill got its wraps through or not, a second dossier
   * shared while the window is locked lacks B's wrap: only the window's
   * fill can add it. */
  vault = relais_vault_open (dir, PASSPHRASE, NULL, &error);
  g_assert_no_error (error);
  relais_vault_set_author (vault, "alice");
  g_free (person->last_name);
  person->last_name = g_strdup ("Vabre");
  id2 = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_true (relais_sync_run (vault, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_share (vault, id2, "Bruno Caylus", NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (vault);
  wait2 = wait;
  wait2.dossier = id2;
  g_assert_false (wrap_on_server (&wait2));

  /* Unlocked again, Sync Now fills B's wraps: B's administrator opens
   * them with B's recovery key, and they are the dossiers' keys. */
  unlock_window (window);
  indicator = relais_vault_view_get_sync_indicator (RELAIS_VAULT_VIEW (relais_window_get_view (window)));
  g_assert_true (wait_until (window_sensitive, window));
  watch.seen = 0;
  sync_now (window, indicator);
  g_assert_true (wait_until (wrap_on_server, &wait2));
  g_assert_true (wrap_on_server (&wait));
  g_assert_true (wait_until (window_sensitive, window));
  g_assert_cmpuint (watch.seen, >=, 1);
  g_assert_cmpint (relais_sync_indicator_get_state (indicator), ==, RELAIS_SYNC_STATE_IDLE);
  g_assert_cmpstr (relais_sync_indicator_get_text (indicator), ==, "Synced just now");
  g_assert_cmpstr (relais_window_get_state (window), ==, "vault");
  assert_dossier_key (relais_window_get_vault (window), id, wait.key);
  assert_dossier_key (relais_window_get_vault (window), id2, wait2.key);
  relais_dossier_key_free (wait.key);
  relais_dossier_key_free (wait2.key);

  /* Nothing is left to fill: the next sync does not take the window's
   * input again. */
  watch.seen = 0;
  sync_now (window, indicator);
  settle (300);
  g_assert_cmpuint (watch.seen, ==, 0);

  /* Destroyed while the fill's worker uses the vault (quitting): the
   * window waits for the cut worker before the vault closes. */
  g_assert_true (wait_until (indicator_not_syncing, indicator));
  relais_window_lock (window);
  wait_for_state (window, "unlock");
  vault = relais_vault_open (dir, PASSPHRASE, NULL, &error);
  g_assert_no_error (error);
  relais_vault_set_author (vault, "alice");
  g_free (person->last_name);
  person->last_name = g_strdup ("Rouquette");
  id3 = relais_person_add (vault, person, &error);
  g_assert_no_error (error);
  g_assert_true (relais_sync_run (vault, &report, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (relais_sync_share (vault, id3, "Bruno Caylus", NULL, &error));
  g_assert_no_error (error);
  relais_vault_close (vault);
  unlock_window (window);
  indicator = relais_vault_view_get_sync_indicator (RELAIS_VAULT_VIEW (relais_window_get_view (window)));
  g_assert_true (wait_until (window_sensitive, window));
  watch.seen = 0;
  watch.destroy = TRUE;
  sync_now (window, indicator);
  g_assert_true (wait_until (flag_is_false, &watch.destroy));
  g_assert_cmpuint (watch.seen, ==, 1);
  g_assert_finalize_object (window);
  /* The vault closed cleanly: it opens, and has the dossiers. */
  vault = relais_vault_open (dir, PASSPHRASE, NULL, &error);
  g_assert_no_error (error);
  {
    g_autoptr(RelaisPerson) third = relais_person_get (vault, id3, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (third->last_name, ==, "Rouquette");
  }
  relais_vault_close (vault);

  server_stop (test_server);
  sodium_free (recovery_sk);
  relais_test_rm_rf (tmp);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  relais_ui_init_i18n ();

  if (!gtk_init_check ())
    {
      /* meson test outside Xvfb: './dev test' runs it under xvfb-run. */
      g_print ("1..0 # SKIP no display\n");
      return 0;
    }
  adw_init ();
  relais_ui_register_resources ();
  /* What GtkApplication does for the program: its icons. */
  gtk_icon_theme_add_resource_path (gtk_icon_theme_get_for_display (gdk_display_get_default ()),
                                    "/fr/spie/Relais/icons");
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);

  g_test_add_func ("/ui/strength", test_ui_strength);
  g_test_add_func ("/ui/preferences", test_ui_preferences);
  g_test_add_func ("/ui/sync-indicator", test_ui_sync_indicator);
  g_test_add_func ("/ui/dossier-list/pages", test_ui_dossier_list_pages);
  g_test_add_func ("/ui/window/first-run", test_ui_first_run);
  g_test_add_func ("/ui/window/conflicts", test_ui_conflicts);
  g_test_add_func ("/ui/window/sync", test_ui_sync);
  g_test_add_func ("/ui/window/enrol-share", test_ui_enrol_share);
  g_test_add_func ("/ui/window/enrol-tls", test_ui_enrol_tls);
  g_test_add_func ("/ui/window/recovery-fill", test_ui_recovery_fill);

  return g_test_run ();
}
