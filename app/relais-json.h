#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Adds member @name to the object being built: @value, or null when
 * @value is NULL (exports keep every field, set or not). */
static inline void
relais_json_add_nullable_string (JsonBuilder *builder,
                                 const char  *name,
                                 const char  *value)
{
  json_builder_set_member_name (builder, name);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

G_END_DECLS
