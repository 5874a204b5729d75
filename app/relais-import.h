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
 * never duplicated: the contact fields the file gives replace the stored
 * ones, an empty cell keeps what is stored, and the stored spelling of the
 * names is kept.  The whole file is one transaction: if any row is bad,
 * nothing is stored and @error (RELAIS_VAULT_ERROR_INVALID) lists every bad
 * row as "line N: reason", one per line (the header is line 1; at most 20
 * rows, then "… and N more bad rows"), with no personal data.  A file that
 * cannot be read as CSV fails with a RELAIS_CSV_ERROR. */
gboolean relais_import_csv (RelaisVault        *vault,
                            const char         *data,
                            gsize               length,
                            RelaisImportStats  *out_stats,
                            GError            **error);

G_END_DECLS
