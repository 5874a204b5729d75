#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define RELAIS_TYPE_PREFERENCES_WINDOW (relais_preferences_window_get_type ())

G_DECLARE_FINAL_TYPE (RelaisPreferencesWindow, relais_preferences_window, RELAIS, PREFERENCES_WINDOW, AdwPreferencesWindow)

/* @settings: the settings of fr.spie.Relais, bound to the controls. */
RelaisPreferencesWindow *relais_preferences_window_new (GtkWindow *parent,
                                                        GSettings *settings);

G_END_DECLS
