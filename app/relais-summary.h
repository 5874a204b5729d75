#pragma once

#include <glib.h>
#include <cairo.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* The person's summary (restitution): identity, situation, diagnostic,
 * plan, professional project and next appointment, dated and signed by the
 * référent, on paper or in a PDF.  It is the person's document, so it is
 * always in French, whatever language the program runs in.
 *
 * One renderer for both outputs: relais_summary_new() reads the dossier
 * once (the vault may be locked afterwards), relais_summary_paginate()
 * lays it out for a page size, relais_summary_draw_page() draws one page
 * on any cairo context.  No GTK here; from a GtkPrintOperation:
 *
 *   gtk_print_operation_set_unit (op, GTK_UNIT_POINTS);
 *   // the renderer draws its own 50 pt margins from the paper's edge
 *   gtk_print_operation_set_use_full_page (op, TRUE);
 *
 *   static void
 *   begin_print (GtkPrintOperation *op, GtkPrintContext *context, gpointer data)
 *   {
 *     RelaisSummary *summary = data;
 *     guint n = relais_summary_paginate (summary,
 *                                        gtk_print_context_get_cairo_context (context),
 *                                        gtk_print_context_get_width (context),
 *                                        gtk_print_context_get_height (context));
 *     gtk_print_operation_set_n_pages (op, n);
 *   }
 *
 *   static void
 *   draw_page (GtkPrintOperation *op, GtkPrintContext *context, int page, gpointer data)
 *   {
 *     relais_summary_draw_page (data, gtk_print_context_get_cairo_context (context), page);
 *   }
 *
 * Nothing of the dossier is logged, and errors never quote it. */

typedef struct _RelaisSummary RelaisSummary;

/* Reads everything the summary shows from @vault.  Fails with
 * RELAIS_VAULT_ERROR_NOT_FOUND when @dossier does not exist. */
RelaisSummary *relais_summary_new       (RelaisVault    *vault,
                                         const char     *dossier,
                                         GError        **error);
void           relais_summary_free      (RelaisSummary  *summary);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisSummary, relais_summary_free)

/* Lays the summary out on pages of @width × @height points, measuring text
 * with @cr's target (its current transformation maps points to the page).
 * Returns the number of pages, at least 1.  Call it again for another
 * page size. */
guint          relais_summary_paginate  (RelaisSummary  *summary,
                                         cairo_t        *cr,
                                         double          width,
                                         double          height);
/* Draws page @page (from 0) of the last pagination on @cr, whose origin is
 * the top left corner of the paper. */
void           relais_summary_draw_page (RelaisSummary  *summary,
                                         cairo_t        *cr,
                                         guint           page);
guint          relais_summary_get_n_pages (RelaisSummary *summary);

/* Writes the summary as an A4 PDF to @path (mode 0600: it is personal
 * data), and only there: no temporary file.  A half-written file is
 * removed. */
gboolean       relais_summary_write_pdf (RelaisSummary  *summary,
                                         const char     *path,
                                         GError        **error);

/* "25 novembre 2026", "1er décembre 2026" from "YYYY-MM-DD"; with
 * @weekday, "mardi 1er décembre 2026".  NULL for a bad date.  French
 * whatever the process's locale. */
char          *relais_summary_format_date (const char   *date,
                                           gboolean      weekday);

G_END_DECLS
