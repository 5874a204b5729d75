#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A CSV reader for what French offices' spreadsheets export: ';' or ','
 * separated (detected from the header line; tab too, for "Unicode text"),
 * UTF-8 with or without BOM or Windows-1252 (UTF-16 with a BOM too), CRLF,
 * LF or CR, quoted fields holding separators, quotes ("") and line breaks
 * (returned as "\n"). */

#define RELAIS_CSV_ERROR (relais_csv_error_quark ())

typedef enum {
  RELAIS_CSV_ERROR_ENCODING,   /* neither UTF-8 nor Windows-1252, both mixed, or binary */
  RELAIS_CSV_ERROR_SYNTAX,     /* unterminated quote, text after a closing quote */
  RELAIS_CSV_ERROR_EMPTY,      /* no header line */
  RELAIS_CSV_ERROR_TOO_LARGE,  /* a field or a row beyond the limits */
} RelaisCsvError;

GQuark relais_csv_error_quark (void);

typedef struct {
  /* Line number of the record as a spreadsheet shows it: the header is
   * line 1, and a record whose quoted field spans several physical lines
   * is still one line. */
  guint      line;
  GPtrArray *fields;   /* char *, UTF-8, element-type utf8 */
} RelaisCsvRecord;

void relais_csv_record_free (RelaisCsvRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisCsvRecord, relais_csv_record_free)

/* Parses a whole file held in memory.  Returns every record including the
 * header (records[0]); blank records are kept (with zero fields) so line
 * numbers stay right; a final line break opens no record.  A file with no
 * record, or whose first line is blank, is RELAIS_CSV_ERROR_EMPTY.  On a
 * syntax error, the message gives the line number.  Limits: 1 MiB a
 * field, 1,000 fields a record.  Messages never quote the file's text. */
GPtrArray *relais_csv_parse (const char *data,
                             gsize       length,
                             GError    **error);
/* The same with the separator given (';', ',' or '\t'); 0 detects it.  The
 * importer uses it when the detected one leaves required headers unfound. */
GPtrArray *relais_csv_parse_with_separator (const char *data,
                                            gsize       length,
                                            char        separator,
                                            GError    **error);

G_END_DECLS
