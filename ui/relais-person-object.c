#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>
#include <stdio.h>

#include "relais-person-object.h"

/* One row of the dossier list: a person as the list shows it.  Immutable:
 * the list makes new objects when the store changes. */
struct _RelaisPersonObject
{
  GObject       parent_instance;

  RelaisPerson *person;
};

G_DEFINE_FINAL_TYPE (RelaisPersonObject, relais_person_object, G_TYPE_OBJECT)

static void
relais_person_object_finalize (GObject *object)
{
  RelaisPersonObject *self = (RelaisPersonObject *)object;

  g_clear_pointer (&self->person, relais_person_free);

  G_OBJECT_CLASS (relais_person_object_parent_class)->finalize (object);
}

static void
relais_person_object_class_init (RelaisPersonObjectClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = relais_person_object_finalize;
}

static void
relais_person_object_init (RelaisPersonObject *self)
{
}

RelaisPersonObject *
relais_person_object_new (RelaisPerson *person)
{
  RelaisPersonObject *self;

  g_return_val_if_fail (person != NULL, NULL);

  self = g_object_new (RELAIS_TYPE_PERSON_OBJECT, NULL);
  self->person = person;

  return self;
}

const RelaisPerson *
relais_person_object_get_person (RelaisPersonObject *self)
{
  g_return_val_if_fail (RELAIS_IS_PERSON_OBJECT (self), NULL);

  return self->person;
}

const char *
relais_person_object_get_id (RelaisPersonObject *self)
{
  g_return_val_if_fail (RELAIS_IS_PERSON_OBJECT (self), NULL);

  return self->person->id;
}

char *
relais_person_format_name (const RelaisPerson *person)
{
  g_autofree char *last = NULL;

  g_return_val_if_fail (person != NULL, NULL);

  last = g_utf8_strup (person->last_name != NULL ? person->last_name : "", -1);

  if (person->first_name == NULL || *person->first_name == '\0')
    return g_steal_pointer (&last);

  /* Translators: how a person is named in lists and titles: %1$s is the
   * last name in capitals, %2$s the first name. */
  return g_strdup_printf (C_("person name", "%1$s %2$s"), last, person->first_name);
}

char *
relais_format_date (const char *iso_date)
{
  int year, month, day;
  g_autoptr(GDateTime) date = NULL;

  if (iso_date == NULL || sscanf (iso_date, "%4d-%2d-%2d", &year, &month, &day) != 3)
    return NULL;

  date = g_date_time_new_local (year, month, day, 12, 0, 0);
  if (date == NULL)
    return NULL;

  /* Translators: a date in a list or a form, as strftime() takes it;
   * French: %d/%m/%Y.  Keep a four-digit year: these are birth dates. */
  return g_date_time_format (date, C_("date format", "%Y-%m-%d"));
}
