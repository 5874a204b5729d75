#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* A person's identity and contact: the head of a dossier.  The dossier id
 * is the person's id. */
typedef struct {
  char *id;
  char *last_name;
  char *first_name;
  char *birth_date;   /* YYYY-MM-DD */
  char *phone;        /* normalised, see relais_normalize_phone() */
  char *email;
  char *postal_code;
  char *city;
} RelaisPerson;

/* Fields of RelaisPerson in order, with their op-log field names. */
#define RELAIS_PERSON_N_FIELDS 7
extern const char * const relais_person_fields[RELAIS_PERSON_N_FIELDS];
char    **relais_person_field_ptr   (RelaisPerson *person, guint i);

RelaisPerson *relais_person_new     (void);
void      relais_person_free        (RelaisPerson *person);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisPerson, relais_person_free)

/* Validates and normalises every non-NULL field in place (dates, phone,
 * e-mail, postal code; trims names).  When @require_identity, last name,
 * first name and birth date must be present.  The message names the field,
 * never its value. */
gboolean  relais_person_validate    (RelaisPerson *person,
                                     gboolean      require_identity,
                                     GError      **error);

/* Adds a dossier: validates, then writes one operation per non-empty field
 * in one transaction.  Returns the new id. */
char     *relais_person_add         (RelaisVault        *vault,
                                     const RelaisPerson *person,
                                     GError            **error);
/* Sets every non-NULL field of @changes ("" clears an optional field). */
gboolean  relais_person_edit        (RelaisVault        *vault,
                                     const char         *id,
                                     const RelaisPerson *changes,
                                     GError            **error);
/* The two above without their own transaction, for the importer. */
char     *relais_person_add_in_transaction  (RelaisVault        *vault,
                                     const RelaisPerson *person,
                                     GError            **error);
gboolean  relais_person_edit_in_transaction (RelaisVault        *vault,
                                     const char         *id,
                                     const RelaisPerson *changes,
                                     GError            **error);

RelaisPerson *relais_person_get     (RelaisVault        *vault,
                                     const char         *id,
                                     GError            **error);
/* The id of the person with the same last name, first name (compared
 * without case and accents) and birth date, or NULL. */
char     *relais_person_find_identity (RelaisVault      *vault,
                                     const char         *last_name,
                                     const char         *first_name,
                                     const char         *birth_date,
                                     GError            **error);
/* Dossiers in list order (last name, first name, birth date).  @query NULL
 * or empty lists all; otherwise matches any part of the last or first name,
 * ignoring case and accents.  @limit 0 means no limit.
 * Element type RelaisPerson. */
GPtrArray *relais_person_search     (RelaisVault        *vault,
                                     const char         *query,
                                     guint               limit,
                                     GError            **error);
/* The same list from its @offset-th dossier: what a list view fetches
 * page by page. */
GPtrArray *relais_person_search_page (RelaisVault       *vault,
                                     const char         *query,
                                     guint               offset,
                                     guint               limit,
                                     GError            **error);
/* How many dossiers relais_person_search() lists for @query without a
 * limit. */
gboolean  relais_person_count       (RelaisVault        *vault,
                                     const char         *query,
                                     guint              *out_count,
                                     GError            **error);

/* One dossier as JSON: identity, every other record (relais-dossier.h),
 * removed ones included, and every conflict. */
JsonNode *relais_person_to_json     (RelaisVault        *vault,
                                     const char         *id,
                                     GError            **error);
/* Every dossier as one JSON document. */
JsonNode *relais_vault_export_json  (RelaisVault        *vault,
                                     GError            **error);

G_END_DECLS
