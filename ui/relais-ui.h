#pragma once

/* The desktop program's entry point.  This header has no GTK type so that
 * app/main.c stays free of GTK. */
int relais_ui_run (int argc, char **argv);
