#pragma once

#include <glib.h>

#include "relais-vault.h"

G_BEGIN_DECLS

typedef struct {
  guint rows;      /* data rows read */
  guint created;   /* new dossiers */
  guint updated;   /* existing dossiers with at least one field changed */
  guint unchanged;
} RelaisImportStats;

/* Imports people from a CSV file (see relais-csv.h).  Columns are found by
 * their header, French or English, in any order; last name, first name and
 * birth date are required.  A person already in the vault (same last name,
 * first name, compared without case and accents, and birth date) is updated,
 * never duplicated.  The whole file is one transaction: if any row is bad,
 * nothing is stored and @error lists every bad row as "line N: reason", one
 * per line (the header is line 1), with no personal data. */
gboolean relais_import_csv (RelaisVault        *vault,
                            const char         *data,
                            gsize               length,
                            RelaisImportStats  *out_stats,
                            GError            **error);

G_END_DECLS
