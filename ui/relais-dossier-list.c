#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "relais-dossier.h"
#include "relais-dossier-list.h"
#include "relais-fold.h"
#include "relais-person-object.h"

/* Rows fetched by one query: a screen or two of the list. */
#define PAGE_SIZE 100
/* Pages kept; beyond, the cache starts again from the page asked for.  A
 * list view asks for the rows around what it shows, so this bounds memory
 * whatever the scrolling. */
#define MAX_PAGES 16

struct _RelaisDossierList
{
  GObject      parent_instance;

  RelaisVault *vault;  /* not owned */
  char        *query;
  guint        n_items;
  /* page number → GPtrArray of RelaisPersonObject */
  GHashTable  *pages;
  RelaisDossierFilter filter;
  /* With a filter: every matching row, in order. */
  GPtrArray   *filtered;
};

/* Dossiers changed this many days back count as recent. */
#define RECENT_DAYS 7
/* The most a "recently changed" list holds. */
#define RECENT_LIMIT 500

static void relais_dossier_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (RelaisDossierList, relais_dossier_list, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      relais_dossier_list_model_init))

enum {
  PROP_0,
  PROP_QUERY,
  PROP_N_ITEMS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static GType
relais_dossier_list_get_item_type (GListModel *model)
{
  return RELAIS_TYPE_PERSON_OBJECT;
}

static guint
relais_dossier_list_get_n_items (GListModel *model)
{
  return RELAIS_DOSSIER_LIST (model)->n_items;
}

static GPtrArray *
fetch_page (RelaisDossierList *self,
            guint              page)
{
  g_autoptr(GPtrArray) people = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *rows;

  people = relais_person_search_page (self->vault, self->query,
                                      page * PAGE_SIZE, PAGE_SIZE, &error);
  if (people == NULL)
    {
      /* A damaged vault: the row stays empty; the count said it was there. */
      g_warning ("Could not read dossiers %u to %u: %s",
                 page * PAGE_SIZE, page * PAGE_SIZE + PAGE_SIZE - 1, error->message);
      return NULL;
    }

  /* The objects take the people over. */
  g_ptr_array_set_free_func (people, NULL);
  rows = g_ptr_array_new_full (people->len, g_object_unref);
  for (guint i = 0; i < people->len; i++)
    g_ptr_array_add (rows, relais_person_object_new (g_ptr_array_index (people, i)));

  return rows;
}

static gpointer
relais_dossier_list_get_item (GListModel *model,
                              guint       position)
{
  RelaisDossierList *self = RELAIS_DOSSIER_LIST (model);
  guint page = position / PAGE_SIZE;
  GPtrArray *rows;

  if (position >= self->n_items || self->vault == NULL)
    return NULL;

  if (self->filtered != NULL)
    return position < self->filtered->len
      ? g_object_ref (g_ptr_array_index (self->filtered, position)) : NULL;

  rows = g_hash_table_lookup (self->pages, GUINT_TO_POINTER (page));
  if (rows == NULL)
    {
      rows = fetch_page (self, page);
      if (rows == NULL)
        return NULL;
      if (g_hash_table_size (self->pages) >= MAX_PAGES)
        g_hash_table_remove_all (self->pages);
      g_hash_table_insert (self->pages, GUINT_TO_POINTER (page), rows);
    }

  if (position % PAGE_SIZE >= rows->len)
    return NULL;

  return g_object_ref (g_ptr_array_index (rows, position % PAGE_SIZE));
}

static void
relais_dossier_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = relais_dossier_list_get_item_type;
  iface->get_n_items = relais_dossier_list_get_n_items;
  iface->get_item = relais_dossier_list_get_item;
}

/* Replaces the whole contents by @n_items rows, forgetting every page but
 * @first (nullable, taken), the first page of the new contents. */
static void
reset (RelaisDossierList *self,
       guint              n_items,
       GPtrArray         *first)
{
  guint removed = self->n_items;

  g_hash_table_remove_all (self->pages);
  if (first != NULL)
    g_hash_table_insert (self->pages, GUINT_TO_POINTER (0), first);
  self->n_items = n_items;

  if (removed > 0 || n_items > 0)
    g_list_model_items_changed (G_LIST_MODEL (self), 0, removed, n_items);
  if (removed != n_items)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
}

/* The same match as relais_person_search(): any part of "last first" or
 * "first last", folded. */
static gboolean
matches (const RelaisPerson *person,
         const char         *folded_query)
{
  g_autofree char *last = relais_fold (person->last_name != NULL ? person->last_name : "");
  g_autofree char *first = relais_fold (person->first_name != NULL ? person->first_name : "");
  g_autofree char *a = g_strconcat (last, " ", first, NULL);
  g_autofree char *b = g_strconcat (first, " ", last, NULL);

  return strstr (a, folded_query) != NULL || strstr (b, folded_query) != NULL;
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  const RelaisPerson *x = relais_person_object_get_person (*(RelaisPersonObject **) a);
  const RelaisPerson *y = relais_person_object_get_person (*(RelaisPersonObject **) b);
  g_autofree char *xl = relais_fold (x->last_name != NULL ? x->last_name : "");
  g_autofree char *yl = relais_fold (y->last_name != NULL ? y->last_name : "");
  g_autofree char *xf = relais_fold (x->first_name != NULL ? x->first_name : "");
  g_autofree char *yf = relais_fold (y->first_name != NULL ? y->first_name : "");
  int cmp = strcmp (xl, yl);

  if (cmp == 0)
    cmp = strcmp (xf, yf);
  if (cmp == 0)
    cmp = g_strcmp0 (x->birth_date, y->birth_date);
  return cmp;
}

static GPtrArray *
load_filtered (RelaisDossierList  *self,
               GError            **error)
{
  g_autoptr(GPtrArray) ids = NULL;
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree char *folded = self->query != NULL ? relais_fold (self->query) : NULL;

  switch (self->filter)
    {
    case RELAIS_DOSSIER_FILTER_APPOINTMENT_TODAY:
      ids = relais_dossier_ids_with_appointment_on (self->vault, NULL, error);
      break;

    case RELAIS_DOSSIER_FILTER_LATE_ACTIONS:
      ids = relais_dossier_ids_with_late_actions (self->vault, NULL, error);
      break;

    case RELAIS_DOSSIER_FILTER_RECENTLY_CHANGED:
      {
        g_autoptr(GDateTime) now = g_date_time_new_now_local ();
        g_autoptr(GDateTime) since = g_date_time_add_days (now, -RECENT_DAYS);

        ids = relais_dossier_ids_changed_since (self->vault, since, RECENT_LIMIT, error);
      }
      break;

    case RELAIS_DOSSIER_FILTER_ALL:
    default:
      g_return_val_if_reached (NULL);
    }
  if (ids == NULL)
    return NULL;

  for (guint i = 0; i < ids->len; i++)
    {
      g_autoptr(GError) local_error = NULL;
      RelaisPerson *person = relais_person_get (self->vault, g_ptr_array_index (ids, i), &local_error);

      /* A record of a dossier whose identity has not arrived yet (sync). */
      if (person == NULL)
        continue;
      if (folded != NULL && *folded != '\0' && !matches (person, folded))
        {
          relais_person_free (person);
          continue;
        }
      g_ptr_array_add (rows, relais_person_object_new (person));
    }

  /* Recent ones stay most recent first; the others in list order. */
  if (self->filter != RELAIS_DOSSIER_FILTER_RECENTLY_CHANGED)
    g_ptr_array_sort (rows, compare_names);

  return g_steal_pointer (&rows);
}

static void
relais_dossier_list_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  RelaisDossierList *self = RELAIS_DOSSIER_LIST (object);

  switch (prop_id)
    {
    case PROP_QUERY:
      g_value_set_string (value, self->query);
      break;

    case PROP_N_ITEMS:
      g_value_set_uint (value, self->n_items);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
relais_dossier_list_finalize (GObject *object)
{
  RelaisDossierList *self = (RelaisDossierList *)object;

  g_clear_pointer (&self->pages, g_hash_table_unref);
  g_clear_pointer (&self->filtered, g_ptr_array_unref);
  g_clear_pointer (&self->query, g_free);

  G_OBJECT_CLASS (relais_dossier_list_parent_class)->finalize (object);
}

static void
relais_dossier_list_class_init (RelaisDossierListClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = relais_dossier_list_get_property;
  object_class->finalize = relais_dossier_list_finalize;

  properties[PROP_QUERY] =
    g_param_spec_string ("query", NULL, NULL,
                         NULL,
                         (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY));

  /* GListModel:n-items only arrived in GLib 2.76. */
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL,
                       0, G_MAXUINT, 0,
                       (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY));

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
relais_dossier_list_init (RelaisDossierList *self)
{
  self->pages = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_ptr_array_unref);
}

RelaisDossierList *
relais_dossier_list_new (RelaisVault *vault)
{
  RelaisDossierList *self;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (vault != NULL, NULL);

  self = g_object_new (RELAIS_TYPE_DOSSIER_LIST, NULL);
  self->vault = vault;

  if (!relais_dossier_list_refresh (self, &error))
    g_warning ("Could not count the dossiers: %s", error->message);

  return self;
}

const char *
relais_dossier_list_get_query (RelaisDossierList *self)
{
  g_return_val_if_fail (RELAIS_IS_DOSSIER_LIST (self), NULL);

  return self->query;
}

gboolean
relais_dossier_list_set_query (RelaisDossierList  *self,
                               const char         *query,
                               GError            **error)
{
  g_return_val_if_fail (RELAIS_IS_DOSSIER_LIST (self), FALSE);

  if (query != NULL && *query == '\0')
    query = NULL;

  if (g_strcmp0 (query, self->query) == 0)
    return TRUE;

  g_free (self->query);
  self->query = g_strdup (query);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_QUERY]);

  return relais_dossier_list_refresh (self, error);
}

gboolean
relais_dossier_list_set_filter (RelaisDossierList   *self,
                                RelaisDossierFilter  filter,
                                GError             **error)
{
  g_return_val_if_fail (RELAIS_IS_DOSSIER_LIST (self), FALSE);

  if (filter == self->filter)
    return TRUE;
  self->filter = filter;

  return relais_dossier_list_refresh (self, error);
}

gboolean
relais_dossier_list_refresh (RelaisDossierList  *self,
                             GError            **error)
{
  guint n_items = 0;
  gboolean ok = TRUE;

  g_return_val_if_fail (RELAIS_IS_DOSSIER_LIST (self), FALSE);

  g_clear_pointer (&self->filtered, g_ptr_array_unref);
  if (self->vault != NULL && self->filter != RELAIS_DOSSIER_FILTER_ALL)
    {
      self->filtered = load_filtered (self, error);
      ok = self->filtered != NULL;
      n_items = ok ? self->filtered->len : 0;
    }
  else if (self->vault != NULL)
    {
      g_autoptr(GPtrArray) first = NULL;

      /* A name being typed soon matches less than a page: then the first
       * page is the whole list, and counting would scan the table again. */
      if (self->query != NULL)
        first = fetch_page (self, 0);
      if (first != NULL && first->len < PAGE_SIZE)
        n_items = first->len;
      else
        ok = relais_person_count (self->vault, self->query, &n_items, error);

      reset (self, n_items, ok ? g_steal_pointer (&first) : NULL);
      return ok;
    }

  reset (self, n_items, NULL);

  return ok;
}

void
relais_dossier_list_detach (RelaisDossierList *self)
{
  g_return_if_fail (RELAIS_IS_DOSSIER_LIST (self));

  self->vault = NULL;
  g_clear_pointer (&self->filtered, g_ptr_array_unref);
  reset (self, 0, NULL);
}

guint
relais_dossier_list_get_n_cached (RelaisDossierList *self)
{
  GHashTableIter iter;
  gpointer rows;
  guint n = 0;

  g_return_val_if_fail (RELAIS_IS_DOSSIER_LIST (self), 0);

  g_hash_table_iter_init (&iter, self->pages);
  while (g_hash_table_iter_next (&iter, NULL, &rows))
    n += ((GPtrArray *) rows)->len;
  if (self->filtered != NULL)
    n += self->filtered->len;

  return n;
}
