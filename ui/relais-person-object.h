#pragma once

#include <glib-object.h>

#include "relais-person.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_PERSON_OBJECT (relais_person_object_get_type ())

G_DECLARE_FINAL_TYPE (RelaisPersonObject, relais_person_object, RELAIS, PERSON_OBJECT, GObject)

/* Takes @person. */
RelaisPersonObject *relais_person_object_new        (RelaisPerson       *person);
const RelaisPerson *relais_person_object_get_person (RelaisPersonObject *self);
const char         *relais_person_object_get_id     (RelaisPersonObject *self);

/* "DUPONT Marie": how lists and titles name a person. */
char               *relais_person_format_name       (const RelaisPerson *person);
/* A stored YYYY-MM-DD date in the locale's short format (25/11/2026 in
 * French), or NULL. */
char               *relais_format_date              (const char         *iso_date);

G_END_DECLS
