#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Field validation shared by the command line, the importer and the app.
 * Each returns a newly allocated normalised value, or NULL when the input
 * is not valid.  They never log their input. */

/* "DD/MM/YYYY", "D/M/YYYY" or "YYYY-MM-DD" (surrounding spaces allowed) →
 * "YYYY-MM-DD".  The date must exist in the calendar. */
char *relais_normalize_date        (const char *text);
/* A birth date: a valid date, not in the future, not before 1900. */
char *relais_normalize_birth_date  (const char *text);
/* Phone numbers with or without spaces, dots, dashes or parentheses;
 * French national (10 digits starting with 0; 9 digits not starting with 0
 * or 8 get back the 0 a spreadsheet dropped) or international (+ or 00,
 * then 8 to 15 digits; +33 numbers are kept as given, but a "(0)" after the
 * country code is dropped).  Returns the digits (and a leading +) without
 * separators. */
char *relais_normalize_phone       (const char *text);
/* A plausible address: one @, a dot in the domain, no spaces. Lowercases the
 * domain. */
char *relais_normalize_email       (const char *text);
/* Five digits, not starting with 00; four digits get their leading zero
 * back (spreadsheets drop it: 1000 → 01000). */
char *relais_normalize_postal_code (const char *text);
/* Trims and collapses inner white space, composes (NFC); NULL if empty,
 * over 200 bytes, not valid UTF-8 or holding control characters. */
char *relais_normalize_name        (const char *text);

G_END_DECLS
