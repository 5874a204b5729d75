#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* libadwaita 1.2's entry rows do not name their text field for assistive
 * technologies: a screen reader on the focused field reads nothing.  Names
 * every AdwEntryRow (and AdwPasswordEntryRow) under @widget, and the text
 * field inside it, after the row's title.  Call it after the template is
 * built and whenever a title changes. */
void relais_accessible_name_entry_rows (GtkWidget *widget);

G_END_DECLS
