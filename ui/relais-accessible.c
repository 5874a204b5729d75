#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <adwaita.h>

#include "relais-accessible.h"

void
relais_accessible_name_entry_rows (GtkWidget *widget)
{
  g_return_if_fail (GTK_IS_WIDGET (widget));

  if (ADW_IS_ENTRY_ROW (widget))
    {
      const char *title = adw_preferences_row_get_title (ADW_PREFERENCES_ROW (widget));
      GtkEditable *text = gtk_editable_get_delegate (GTK_EDITABLE (widget));
      g_autofree char *name = NULL;

      /* Titles carry mnemonics ("_Passphrase") when use-underline is set. */
      if (adw_preferences_row_get_use_underline (ADW_PREFERENCES_ROW (widget)))
        {
          g_autoptr(GString) plain = g_string_new (NULL);

          for (const char *p = title; p != NULL && *p != '\0'; p++)
            if (*p != '_' || p[1] == '_')
              g_string_append_c (plain, *p == '_' ? *++p : *p);
          name = g_string_free (g_steal_pointer (&plain), FALSE);
        }
      else
        name = g_strdup (title);

      gtk_accessible_update_property (GTK_ACCESSIBLE (widget),
                                      GTK_ACCESSIBLE_PROPERTY_LABEL, name,
                                      -1);
      if (text != NULL)
        gtk_accessible_update_property (GTK_ACCESSIBLE (text),
                                        GTK_ACCESSIBLE_PROPERTY_LABEL, name,
                                        -1);
      return;
    }

  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL; c = gtk_widget_get_next_sibling (c))
    relais_accessible_name_entry_rows (c);
}
