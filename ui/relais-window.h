#pragma once

#include <adwaita.h>

#include "relais-application.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_WINDOW (relais_window_get_type ())

G_DECLARE_FINAL_TYPE (RelaisWindow, relais_window, RELAIS, WINDOW, AdwApplicationWindow)

RelaisWindow *relais_window_new (RelaisApplication *application);

G_END_DECLS
