#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <stdio.h>
#include <string.h>

#include "relais-dossier.h"
#include "relais-dossier-pages.h"
#include "relais-person-object.h"
#include "relais-sync-indicator.h"
#include "relais-vault-view.h"

struct _RelaisVaultView
{
  AdwBin              parent_instance;

  RelaisVault        *vault;  /* not owned: see relais_vault_view_new() */
  RelaisDossierList  *list;
  GtkSingleSelection *selection;
  char               *dossier_id;
  RelaisPagesContext *pages;
  GPtrArray          *glance_rows;
  /* Pages to build again, once the write that changed them has returned. */
  GHashTable         *stale_pages;
  /* Pages left empty since the dossier changed, built when first shown:
   * moving through the list with the arrow keys builds one page a row,
   * not six. */
  GHashTable         *unbuilt_pages;
  guint               rebuild_source;

  /* Template widgets */
  AdwLeaflet         *leaflet;
  GtkWidget          *list_pane;
  AdwWindowTitle     *list_title;
  GtkMenuButton      *menu_button;
  GtkSearchEntry     *search_entry;
  GtkDropDown        *filter_drop_down;
  GtkStack           *list_stack;
  GtkListView        *list_view;
  AdwStatusPage      *empty_page;
  RelaisSyncIndicator *sync_indicator;
  GtkButton          *back_button;
  GtkButton          *edit_button;
  GtkButton          *print_button;
  GtkButton          *team_button;
  gboolean            can_share;
  AdwViewSwitcherTitle *switcher_title;
  GtkStack           *dossier_stack;
  AdwViewStack       *view_stack;
  AdwViewSwitcherBar *switcher_bar;
  AdwPreferencesPage *overview_page;
  AdwPreferencesGroup *glance_group;
  AdwBin             *diagnostic_bin;
  AdwBin             *plan_bin;
  AdwBin             *journal_bin;
  AdwBin             *appointments_bin;
  AdwBin             *situation_bin;
  GtkLabel           *last_name_label;
  GtkLabel           *first_name_label;
  AdwActionRow       *birth_date_row;
  GtkLabel           *birth_date_label;
  GtkLabel           *phone_label;
  GtkLabel           *email_label;
  GtkLabel           *postal_code_label;
  GtkLabel           *city_label;
};

G_DEFINE_FINAL_TYPE (RelaisVaultView, relais_vault_view, ADW_TYPE_BIN)

enum {
  PROP_0,
  PROP_DOSSIER_ID,
  N_PROPS
};

enum {
  TOAST,
  WRITTEN,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void
build_page (RelaisVaultView *self,
            const char      *name)
{
  if (g_str_equal (name, "overview"))
    relais_pages_fill_glance (self->pages, self->glance_group, self->glance_rows);
  else if (g_str_equal (name, "diagnostic"))
    adw_bin_set_child (self->diagnostic_bin, relais_pages_build_diagnostic (self->pages));
  else if (g_str_equal (name, "plan"))
    adw_bin_set_child (self->plan_bin, relais_pages_build_plan (self->pages));
  else if (g_str_equal (name, "journal"))
    adw_bin_set_child (self->journal_bin, relais_pages_build_journal (self->pages));
  else if (g_str_equal (name, "appointments"))
    adw_bin_set_child (self->appointments_bin, relais_pages_build_appointments (self->pages));
  else if (g_str_equal (name, "situation"))
    adw_bin_set_child (self->situation_bin, relais_pages_build_situation (self->pages));
}

static const char * const page_names[] = {
  "overview", "diagnostic", "plan", "journal", "appointments", "situation",
};

static void
clear_page (RelaisVaultView *self,
            const char      *name)
{
  AdwBin *bins[] = {
    self->diagnostic_bin, self->plan_bin, self->journal_bin,
    self->appointments_bin, self->situation_bin,
  };
  const char *names[] = { "diagnostic", "plan", "journal", "appointments", "situation" };

  for (guint i = 0; i < G_N_ELEMENTS (bins); i++)
    if (g_str_equal (name, names[i]))
      adw_bin_set_child (bins[i], NULL);
}

/* Builds @name now if it is shown (the overview always: it is small),
 * or empties it until it is. */
static void
invalidate_page (RelaisVaultView *self,
                 const char      *name)
{
  const char *visible = adw_view_stack_get_visible_child_name (self->view_stack);

  if (g_str_equal (name, "overview") || g_strcmp0 (name, visible) == 0)
    {
      g_hash_table_remove (self->unbuilt_pages, name);
      build_page (self, name);
    }
  else
    {
      clear_page (self, name);
      g_hash_table_add (self->unbuilt_pages, (gpointer) name);
    }
}

static void
build_all_pages (RelaisVaultView *self)
{
  for (guint i = 0; i < G_N_ELEMENTS (page_names); i++)
    invalidate_page (self, page_names[i]);
}

static void
on_visible_page_changed (RelaisVaultView *self)
{
  const char *visible = adw_view_stack_get_visible_child_name (self->view_stack);

  if (visible != NULL && g_hash_table_remove (self->unbuilt_pages, visible))
    build_page (self, visible);
}

static gboolean
rebuild_stale_pages (gpointer user_data)
{
  RelaisVaultView *self = user_data;
  GHashTableIter iter;
  gpointer name;

  self->rebuild_source = 0;
  g_hash_table_iter_init (&iter, self->stale_pages);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    invalidate_page (self, name);
  g_hash_table_remove_all (self->stale_pages);

  return G_SOURCE_REMOVE;
}

/* Takes @toast. */
static void
emit_toast (RelaisVaultView *self,
            AdwToast        *toast)
{
  g_signal_emit (self, signals[TOAST], 0, toast);
  g_object_unref (toast);
}

typedef struct {
  RelaisVaultView *view;  /* weak */
  char            *entity;
  char            *id;
  char            *page;
} Removal;

static void
removal_free (gpointer data)
{
  Removal *removal = data;

  g_clear_weak_pointer (&removal->view);
  g_free (removal->entity);
  g_free (removal->id);
  g_free (removal->page);
  g_free (removal);
}

static void on_pages_changed (const char *page, const char *error_message, gpointer user_data);

static void
on_undo_clicked (AdwToast *toast,
                 Removal  *removal)
{
  RelaisVaultView *self = removal->view;
  g_autoptr(GError) error = NULL;

  /* Locked since, or another vault: nothing to undo here. */
  if (self == NULL || self->vault == NULL)
    return;
  if (!relais_record_restore (self->vault, removal->entity, removal->id, &error))
    {
      emit_toast (self, adw_toast_new (error->message));
      return;
    }
  on_pages_changed (removal->page, NULL, self);
}

static void
on_pages_removed (const char *entity,
                  const char *id,
                  const char *page,
                  gpointer    user_data)
{
  RelaisVaultView *self = user_data;
  Removal *removal = g_new0 (Removal, 1);
  const char *title;
  AdwToast *toast;

  if (g_str_equal (entity, RELAIS_ENTITY_ACTION))
    title = _("Action removed");
  else if (g_str_equal (entity, RELAIS_ENTITY_APPOINTMENT))
    title = _("Appointment removed");
  else if (g_str_equal (entity, RELAIS_ENTITY_CONTRACT))
    title = _("Contract removed");
  else if (g_str_equal (entity, RELAIS_ENTITY_PROJECT))
    title = _("Project removed");
  else if (g_str_equal (entity, RELAIS_ENTITY_ORIENTATION))
    title = _("Orientation removed");
  else
    title = _("Removed");

  g_set_weak_pointer (&removal->view, self);
  removal->entity = g_strdup (entity);
  removal->id = g_strdup (id);
  removal->page = g_strdup (page);

  toast = adw_toast_new (title);
  adw_toast_set_button_label (toast, _("_Undo"));
  adw_toast_set_priority (toast, ADW_TOAST_PRIORITY_HIGH);
  g_object_set_data_full (G_OBJECT (toast), "removal", removal, removal_free);
  g_signal_connect (toast, "button-clicked", G_CALLBACK (on_undo_clicked), removal);
  emit_toast (self, toast);
}

static void
on_pages_changed (const char *page,
                  const char *error_message,
                  gpointer    user_data)
{
  RelaisVaultView *self = user_data;

  if (error_message != NULL)
    {
      emit_toast (self, adw_toast_new (error_message));
      return;
    }

  g_signal_emit (self, signals[WRITTEN], 0);

  /* The page that wrote is rebuilt when it added a row; the diagnostic
   * changes in place, where the person is typing. */
  g_hash_table_add (self->stale_pages, "overview");
  if (page != NULL && !g_str_equal (page, "diagnostic"))
    g_hash_table_add (self->stale_pages, (gpointer) page);
  if (self->rebuild_source == 0)
    /* As soon as the handler that wrote has returned, before redrawing. */
    self->rebuild_source = g_idle_add_full (G_PRIORITY_DEFAULT, rebuild_stale_pages, self, NULL);
}

static void
update_list_state (RelaisVaultView *self)
{
  guint n = self->list != NULL ? g_list_model_get_n_items (G_LIST_MODEL (self->list)) : 0;
  const char *query = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));
  g_autofree char *count = NULL;

  if (query != NULL && *query != '\0')
    count = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%'u match", "%'u matches", n), n);
  else
    count = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%'u dossier", "%'u dossiers", n), n);
  adw_window_title_set_subtitle (self->list_title, count);

  if (n > 0)
    {
      gtk_stack_set_visible_child_name (self->list_stack, "list");
      return;
    }

  if (gtk_drop_down_get_selected (self->filter_drop_down) != 0)
    {
      adw_status_page_set_title (self->empty_page, _("No Dossiers Here"));
      adw_status_page_set_description (self->empty_page,
                                       _("No dossier matches this choice. Choose “All Dossiers” to see them all."));
    }
  else if (query != NULL && *query != '\0')
    {
      adw_status_page_set_title (self->empty_page, _("No Results"));
      adw_status_page_set_description (self->empty_page,
                                       _("No name contains this text. Try part of the last or first name."));
    }
  else
    {
      adw_status_page_set_title (self->empty_page, _("No Dossiers Yet"));
      adw_status_page_set_description (self->empty_page,
                                       _("Create the first one with the + button."));
    }
  gtk_stack_set_visible_child_name (self->list_stack, "empty");
}

/* The pages' switcher goes to the bottom when the header is too narrow for
 * it, and only while a dossier is shown. */
static void
update_switcher_bar (RelaisVaultView *self)
{
  gboolean shown = g_strcmp0 (gtk_stack_get_visible_child_name (self->dossier_stack), "dossier") == 0;
  gboolean reveal = shown && adw_view_switcher_title_get_title_visible (self->switcher_title);

  adw_view_switcher_bar_set_reveal (self->switcher_bar, reveal);
  /* Hidden as well as unrevealed: libadwaita 1.2 allocates the switcher
   * of an unrevealed bar 0 wide and -1 high on every relayout, a GTK
   * warning (fatal in the tests) each time the window is laid out again. */
  gtk_widget_set_visible (GTK_WIDGET (self->switcher_bar), reveal);
}

static void
set_value (GtkLabel   *label,
           const char *value)
{
  gboolean empty = value == NULL || *value == '\0';

  gtk_label_set_label (label, empty ? _("Not given") : value);
  if (empty)
    gtk_widget_add_css_class (GTK_WIDGET (label), "dim-label");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (label), "dim-label");
}

/* French numbers as people write them: 06 12 34 56 78. */
static char *
format_phone (const char *phone)
{
  g_autoptr(GString) shown = NULL;

  if (phone == NULL || strlen (phone) != 10 || phone[0] != '0')
    return g_strdup (phone);

  shown = g_string_new (NULL);
  for (guint i = 0; i < 10; i += 2)
    {
      if (i > 0)
        g_string_append_c (shown, ' ');
      g_string_append_len (shown, phone + i, 2);
    }
  return g_string_free (g_steal_pointer (&shown), FALSE);
}

static char *
format_age (const char *iso_date)
{
  int y, m, d;
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  int age;

  if (iso_date == NULL || sscanf (iso_date, "%4d-%2d-%2d", &y, &m, &d) != 3)
    return NULL;

  age = g_date_time_get_year (now) - y;
  if (g_date_time_get_month (now) < m
      || (g_date_time_get_month (now) == m && g_date_time_get_day_of_month (now) < d))
    age--;
  if (age < 0)
    return NULL;

  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d year old", "%d years old", age), age);
}

static void
show_person (RelaisVaultView    *self,
             const RelaisPerson *person)
{
  g_autofree char *name = relais_person_format_name (person);
  g_autofree char *birth = relais_format_date (person->birth_date);
  g_autofree char *age = format_age (person->birth_date);
  g_autofree char *phone = format_phone (person->phone);

  adw_view_switcher_title_set_title (self->switcher_title, name);
  set_value (self->last_name_label, person->last_name);
  set_value (self->first_name_label, person->first_name);
  set_value (self->birth_date_label, birth);
  adw_action_row_set_subtitle (self->birth_date_row, age != NULL ? age : "");
  set_value (self->phone_label, phone);
  set_value (self->email_label, person->email);
  set_value (self->postal_code_label, person->postal_code);
  set_value (self->city_label, person->city);
  gtk_stack_set_visible_child_name (self->dossier_stack, "dossier");
  update_switcher_bar (self);
}

static void
clear_dossier (RelaisVaultView *self)
{
  GtkLabel *labels[] = {
    self->last_name_label, self->first_name_label, self->birth_date_label,
    self->phone_label, self->email_label, self->postal_code_label, self->city_label,
  };

  /* Nothing of the person stays in a widget once it is not shown. */
  for (guint i = 0; i < G_N_ELEMENTS (labels); i++)
    gtk_label_set_label (labels[i], "");
  adw_action_row_set_subtitle (self->birth_date_row, "");
  adw_view_switcher_title_set_title (self->switcher_title, "");
  gtk_stack_set_visible_child_name (self->dossier_stack, "none");
  update_switcher_bar (self);
  relais_pages_context_set (self->pages, NULL, NULL);
  build_all_pages (self);
  gtk_widget_set_visible (GTK_WIDGET (self->edit_button), FALSE);

  if (self->dossier_id != NULL)
    {
      g_clear_pointer (&self->dossier_id, g_free);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DOSSIER_ID]);
    }
}

static void
on_search_changed (RelaisVaultView *self)
{
  g_autoptr(GError) error = NULL;

  if (self->list == NULL)
    return;

  if (!relais_dossier_list_set_query (self->list,
                                      gtk_editable_get_text (GTK_EDITABLE (self->search_entry)),
                                      &error))
    g_warning ("Could not search the dossiers: %s", error->message);
  update_list_state (self);
}

static void
on_filter_changed (RelaisVaultView *self)
{
  /* In the order of the drop-down's items. */
  static const RelaisDossierFilter filters[] = {
    RELAIS_DOSSIER_FILTER_ALL,
    RELAIS_DOSSIER_FILTER_APPOINTMENT_TODAY,
    RELAIS_DOSSIER_FILTER_LATE_ACTIONS,
    RELAIS_DOSSIER_FILTER_RECENTLY_CHANGED,
  };
  guint selected = gtk_drop_down_get_selected (self->filter_drop_down);
  g_autoptr(GError) error = NULL;

  if (self->list == NULL || selected >= G_N_ELEMENTS (filters))
    return;

  if (!relais_dossier_list_set_filter (self->list, filters[selected], &error))
    emit_toast (self, adw_toast_new (error->message));
  update_list_state (self);
}

static void
on_search_activated (RelaisVaultView *self)
{
  g_autoptr(RelaisPersonObject) first = NULL;

  /* Enter in the search field opens the first match: of what is typed,
   * even when Enter came before the search's delay ran out. */
  if (self->list == NULL)
    return;
  on_search_changed (self);
  first = g_list_model_get_item (G_LIST_MODEL (self->list), 0);
  if (first == NULL)
    return;

  gtk_single_selection_set_selected (self->selection, 0);
  relais_vault_view_show_dossier (self, relais_person_object_get_id (first));
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD);
}

static void
on_search_stopped (RelaisVaultView *self)
{
  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
}

static void
on_selection_changed (RelaisVaultView *self)
{
  RelaisPersonObject *item = gtk_single_selection_get_selected_item (self->selection);

  /* An emptied selection (the list was read again) keeps what is shown. */
  if (item != NULL)
    relais_vault_view_show_dossier (self, relais_person_object_get_id (item));
}

/* A click selects, which shows the dossier; on a narrow window it also
 * slides the list away, as activating does.  (single-click-activate would
 * do both, but it also selects whatever row the pointer passes over, so
 * that moving the mouse opened dossiers.) */
static void
on_list_clicked (GtkGestureClick *gesture,
                 int              n_press,
                 double           x,
                 double           y,
                 RelaisVaultView *self)
{
  if (n_press == 1
      && adw_leaflet_get_folded (self->leaflet)
      && gtk_single_selection_get_selected_item (self->selection) != NULL)
    adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD);
}

static void
on_list_activated (RelaisVaultView *self,
                   guint            position)
{
  g_autoptr(RelaisPersonObject) item = NULL;

  item = g_list_model_get_item (G_LIST_MODEL (self->list), position);
  if (item == NULL)
    return;

  relais_vault_view_show_dossier (self, relais_person_object_get_id (item));
  /* On a narrow window the list slides away: the keyboard follows. */
  if (adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD))
    gtk_widget_child_focus (GTK_WIDGET (self->dossier_stack), GTK_DIR_TAB_FORWARD);
}

static void
on_back_clicked (RelaisVaultView *self)
{
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
  gtk_widget_grab_focus (GTK_WIDGET (self->list_view));
}

static void
setup_row (GtkSignalListItemFactory *factory,
           GtkListItem              *list_item,
           gpointer                  user_data)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *name = gtk_label_new (NULL);
  GtkWidget *detail = gtk_label_new (NULL);

  gtk_widget_set_margin_top (box, 6);
  gtk_widget_set_margin_bottom (box, 6);
  gtk_label_set_xalign (GTK_LABEL (name), 0);
  gtk_label_set_ellipsize (GTK_LABEL (name), PANGO_ELLIPSIZE_END);
  gtk_widget_add_css_class (name, "heading");
  gtk_label_set_xalign (GTK_LABEL (detail), 0);
  gtk_label_set_ellipsize (GTK_LABEL (detail), PANGO_ELLIPSIZE_END);
  gtk_widget_add_css_class (detail, "caption");
  gtk_widget_add_css_class (detail, "dim-label");
  gtk_box_append (GTK_BOX (box), name);
  gtk_box_append (GTK_BOX (box), detail);
  gtk_list_item_set_child (list_item, box);
}

static void
bind_row (GtkSignalListItemFactory *factory,
          GtkListItem              *list_item,
          gpointer                  user_data)
{
  RelaisPersonObject *item = gtk_list_item_get_item (list_item);
  GtkWidget *box = gtk_list_item_get_child (list_item);
  GtkWidget *name = gtk_widget_get_first_child (box);
  GtkWidget *detail = gtk_widget_get_next_sibling (name);
  const RelaisPerson *person;
  g_autofree char *full_name = NULL;
  g_autofree char *birth = NULL;
  g_autofree char *line = NULL;
  g_autofree char *accessible = NULL;

  if (item == NULL)
    return;

  person = relais_person_object_get_person (item);
  full_name = relais_person_format_name (person);
  birth = relais_format_date (person->birth_date);

  if (birth != NULL && person->city != NULL && *person->city != '\0')
    /* Translators: under a name in the list: birth date · city. */
    line = g_strdup_printf (_("%s · %s"), birth, person->city);
  else if (birth != NULL)
    line = g_strdup (birth);
  else
    line = g_strdup (person->city != NULL ? person->city : "");

  gtk_label_set_label (GTK_LABEL (name), full_name);
  gtk_label_set_label (GTK_LABEL (detail), line);

  /* Screen readers read the row as one sentence. */
  accessible = *line != '\0' ? g_strdup_printf ("%s, %s", full_name, line) : g_strdup (full_name);
  gtk_accessible_update_property (GTK_ACCESSIBLE (box),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, accessible,
                                  -1);
}

static void
unbind_row (GtkSignalListItemFactory *factory,
            GtkListItem              *list_item,
            gpointer                  user_data)
{
  GtkWidget *box = gtk_list_item_get_child (list_item);
  GtkWidget *name = gtk_widget_get_first_child (box);

  gtk_label_set_label (GTK_LABEL (name), "");
  gtk_label_set_label (GTK_LABEL (gtk_widget_get_next_sibling (name)), "");
  gtk_accessible_reset_property (GTK_ACCESSIBLE (box), GTK_ACCESSIBLE_PROPERTY_LABEL);
}

static void
relais_vault_view_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  RelaisVaultView *self = RELAIS_VAULT_VIEW (object);

  switch (prop_id)
    {
    case PROP_DOSSIER_ID:
      g_value_set_string (value, self->dossier_id);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
relais_vault_view_dispose (GObject *object)
{
  RelaisVaultView *self = (RelaisVaultView *)object;

  g_clear_handle_id (&self->rebuild_source, g_source_remove);
  if (self->pages != NULL)
    relais_pages_context_set (self->pages, NULL, NULL);
  if (self->list != NULL)
    relais_dossier_list_detach (self->list);
  if (self->list_view != NULL)
    gtk_list_view_set_model (self->list_view, NULL);
  /* AdwBin unparents its child in its own dispose: let go of it first, so
   * that the template's dispose and AdwBin's do not both unparent it. */
  adw_bin_set_child (ADW_BIN (self), NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), RELAIS_TYPE_VAULT_VIEW);
  g_clear_object (&self->selection);
  g_clear_object (&self->list);
  self->vault = NULL;

  G_OBJECT_CLASS (relais_vault_view_parent_class)->dispose (object);
}

static void
relais_vault_view_finalize (GObject *object)
{
  RelaisVaultView *self = (RelaisVaultView *)object;

  g_clear_pointer (&self->dossier_id, g_free);
  g_clear_pointer (&self->pages, relais_pages_context_free);
  g_clear_pointer (&self->glance_rows, g_ptr_array_unref);
  g_clear_pointer (&self->stale_pages, g_hash_table_unref);
  g_clear_pointer (&self->unbuilt_pages, g_hash_table_unref);

  G_OBJECT_CLASS (relais_vault_view_parent_class)->finalize (object);
}

static void
relais_vault_view_class_init (RelaisVaultViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->get_property = relais_vault_view_get_property;
  object_class->dispose = relais_vault_view_dispose;
  object_class->finalize = relais_vault_view_finalize;

  /**
   * RelaisVaultView:dossier-id:
   *
   * The id of the dossier shown, or %NULL.
   */
  properties[PROP_DOSSIER_ID] =
    g_param_spec_string ("dossier-id", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY));

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RelaisVaultView::toast:
   * @self: the view
   * @toast: what to tell the person: a write that
   *   failed, or a removal to undo
   */
  signals[TOAST] =
    g_signal_new ("toast",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, ADW_TYPE_TOAST);

  g_type_ensure (RELAIS_TYPE_SYNC_INDICATOR);
  /**
   * RelaisVaultView::written:
   * @self: the view
   *
   * A page wrote to the vault (sync seals it soon after).
   */
  signals[WRITTEN] =
    g_signal_new ("written",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  gtk_widget_class_set_template_from_resource (widget_class, "/fr/spie/Relais/relais-vault-view.ui");
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, leaflet);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, list_pane);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, list_title);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, menu_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, search_entry);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, filter_drop_down);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, list_stack);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, list_view);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, empty_page);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, sync_indicator);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, back_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, edit_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, print_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, team_button);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, switcher_title);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, dossier_stack);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, view_stack);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, switcher_bar);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, overview_page);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, glance_group);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, diagnostic_bin);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, plan_bin);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, journal_bin);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, appointments_bin);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, situation_bin);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, last_name_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, first_name_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, birth_date_row);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, birth_date_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, phone_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, email_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, postal_code_label);
  gtk_widget_class_bind_template_child (widget_class, RelaisVaultView, city_label);
  gtk_widget_class_bind_template_callback (widget_class, on_search_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_filter_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_search_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_search_stopped);
  gtk_widget_class_bind_template_callback (widget_class, on_list_activated);
  gtk_widget_class_bind_template_callback (widget_class, on_back_clicked);
}

/* The team of a dossier only means something on a server. */
static void
update_team_button (RelaisVaultView *self)
{
  gtk_widget_set_visible (GTK_WIDGET (self->team_button),
                          self->can_share && gtk_widget_get_visible (GTK_WIDGET (self->edit_button)));
}

static void
relais_vault_view_init (RelaisVaultView *self)
{
  g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();

  gtk_widget_init_template (GTK_WIDGET (self));

  {
    GtkGesture *click = gtk_gesture_click_new ();

    /* Bubble phase: the list view has selected the row by then. */
    gtk_event_controller_set_propagation_phase (GTK_EVENT_CONTROLLER (click), GTK_PHASE_BUBBLE);
    g_signal_connect_object (click, "released", G_CALLBACK (on_list_clicked), self, 0);
    gtk_widget_add_controller (GTK_WIDGET (self->list_view), GTK_EVENT_CONTROLLER (click));
  }

  g_object_bind_property (self->edit_button, "visible", self->print_button, "visible",
                          G_BINDING_SYNC_CREATE);
  g_signal_connect_object (self->edit_button, "notify::visible",
                           G_CALLBACK (update_team_button), self, G_CONNECT_SWAPPED);
  self->pages = relais_pages_context_new (on_pages_changed, on_pages_removed, self);
  self->glance_rows = g_ptr_array_new ();
  self->stale_pages = g_hash_table_new (g_str_hash, g_str_equal);
  self->unbuilt_pages = g_hash_table_new (g_str_hash, g_str_equal);
  g_signal_connect_object (self->view_stack, "notify::visible-child-name",
                           G_CALLBACK (on_visible_page_changed), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->switcher_title, "notify::title-visible",
                           G_CALLBACK (update_switcher_bar), self, G_CONNECT_SWAPPED);

  g_signal_connect (factory, "setup", G_CALLBACK (setup_row), NULL);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_row), NULL);
  g_signal_connect (factory, "unbind", G_CALLBACK (unbind_row), NULL);
  gtk_list_view_set_factory (self->list_view, factory);

  gtk_accessible_update_property (GTK_ACCESSIBLE (self->list_view),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Dossiers"),
                                  -1);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->search_entry),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Search dossiers by name"),
                                  -1);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->filter_drop_down),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Which dossiers to list"),
                                  -1);
  /* Typing in the list searches. */
  gtk_search_entry_set_key_capture_widget (self->search_entry, GTK_WIDGET (self->list_view));
  gtk_widget_set_visible (GTK_WIDGET (self->edit_button), FALSE);
}

/**
 * relais_vault_view_new:
 * @vault: the open vault
 * @menu: (nullable): the main menu
 */
RelaisVaultView *
relais_vault_view_new (RelaisVault *vault,
                       GMenuModel  *menu)
{
  RelaisVaultView *self;

  g_return_val_if_fail (vault != NULL, NULL);

  self = g_object_new (RELAIS_TYPE_VAULT_VIEW, NULL);
  self->vault = vault;
  self->list = relais_dossier_list_new (vault);
  self->selection = gtk_single_selection_new (g_object_ref (G_LIST_MODEL (self->list)));
  gtk_single_selection_set_autoselect (self->selection, FALSE);
  gtk_single_selection_set_can_unselect (self->selection, TRUE);
  gtk_single_selection_set_selected (self->selection, GTK_INVALID_LIST_POSITION);
  g_signal_connect_swapped (self->selection, "notify::selected",
                            G_CALLBACK (on_selection_changed), self);
  gtk_list_view_set_model (self->list_view, GTK_SELECTION_MODEL (self->selection));
  gtk_menu_button_set_menu_model (self->menu_button, menu);
  update_list_state (self);

  return self;
}

void
relais_vault_view_detach (RelaisVaultView *self)
{
  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  clear_dossier (self);
  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
  if (self->list != NULL)
    relais_dossier_list_detach (self->list);
  gtk_list_view_set_model (self->list_view, NULL);
  self->vault = NULL;
}

RelaisDossierList *
relais_vault_view_get_list (RelaisVaultView *self)
{
  g_return_val_if_fail (RELAIS_IS_VAULT_VIEW (self), NULL);

  return self->list;
}

const char *
relais_vault_view_get_dossier_id (RelaisVaultView *self)
{
  g_return_val_if_fail (RELAIS_IS_VAULT_VIEW (self), NULL);

  return self->dossier_id;
}

void
relais_vault_view_show_dossier (RelaisVaultView *self,
                                const char      *id)
{
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(GError) error = NULL;

  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  if (id == NULL || self->vault == NULL)
    {
      clear_dossier (self);
      return;
    }

  person = relais_person_get (self->vault, id, &error);
  if (person == NULL)
    {
      g_warning ("Could not read dossier %s: %s", id, error->message);
      clear_dossier (self);
      return;
    }

  show_person (self, person);
  gtk_widget_set_visible (GTK_WIDGET (self->edit_button), TRUE);

  if (g_strcmp0 (id, self->dossier_id) != 0)
    {
      g_free (self->dossier_id);
      self->dossier_id = g_strdup (id);
      relais_pages_context_set (self->pages, self->vault, id);
      /* Another person, the same page: the référent going through
       * diagnostics one after the other stays on the diagnostic. */
      build_all_pages (self);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DOSSIER_ID]);
    }
  else
    build_page (self, "overview");
}

void
relais_vault_view_refresh (RelaisVaultView *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;

  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  if (self->list == NULL || self->vault == NULL)
    return;

  if (!relais_dossier_list_refresh (self->list, &error))
    g_warning ("Could not count the dossiers: %s", error->message);
  update_list_state (self);

  id = g_strdup (self->dossier_id);
  relais_vault_view_show_dossier (self, id);
}

RelaisSyncIndicator *
relais_vault_view_get_sync_indicator (RelaisVaultView *self)
{
  g_return_val_if_fail (RELAIS_IS_VAULT_VIEW (self), NULL);

  return self->sync_indicator;
}

/* Whether the keyboard focus is in a text field under @page: the person
 * is typing there. */
static gboolean
typing_in (RelaisVaultView *self,
           GtkWidget       *page)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  GtkWidget *focus = root != NULL ? gtk_root_get_focus (root) : NULL;

  return focus != NULL && page != NULL
         && (GTK_IS_TEXT (focus) || GTK_IS_TEXT_VIEW (focus))
         && gtk_widget_is_ancestor (focus, page);
}

void
relais_vault_view_reload (RelaisVaultView *self)
{
  const char *visible;

  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  relais_vault_view_refresh (self);
  if (self->dossier_id == NULL)
    return;

  /* Every page may have changed.  The one shown is built again unless
   * the person is typing in it: their text would go. */
  visible = adw_view_stack_get_visible_child_name (self->view_stack);
  for (guint i = 0; i < G_N_ELEMENTS (page_names); i++)
    {
      if (g_strcmp0 (page_names[i], visible) == 0
          && typing_in (self, adw_view_stack_get_child_by_name (self->view_stack, visible)))
        continue;
      invalidate_page (self, page_names[i]);
    }
}

void
relais_vault_view_open_dossier_pane (RelaisVaultView *self)
{
  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  /* On a narrow window the list slides away; the keyboard goes to the
   * dossier either way. */
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD);
  gtk_widget_child_focus (GTK_WIDGET (self->dossier_stack), GTK_DIR_TAB_FORWARD);
}

void
relais_vault_view_focus_search (RelaisVaultView *self)
{
  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
  gtk_editable_select_region (GTK_EDITABLE (self->search_entry), 0, -1);
}

/* Whether the vault is enrolled, so that a dossier shown has a team. */
void
relais_vault_view_set_can_share (RelaisVaultView *self,
                                 gboolean         can_share)
{
  g_return_if_fail (RELAIS_IS_VAULT_VIEW (self));

  self->can_share = can_share;
  update_team_button (self);
}
