#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "relais-vault.h"

G_BEGIN_DECLS

/* The dossier beyond identity: situation, diagnostic, professional
 * projects, plan (objectives → actions), contracts, appointments, journal
 * notes and orientations.  Every write is an operation of the op log
 * (relais-oplog.h); the tables read here are its projections.  Records of a
 * list (notes, actions…) have their own ids, so concurrent additions are
 * all kept; each record's fields merge one by one.
 *
 * Values are stable keys (ASCII, never translated) and plain text; dates
 * are "YYYY-MM-DD", appointment times "YYYY-MM-DD HH:MM" (local time of the
 * territory).  Every write function opens its own transaction when none is
 * open, and refuses bad keys, dates and ids with RELAIS_VAULT_ERROR_INVALID
 * or RELAIS_VAULT_ERROR_NOT_FOUND and a message that never quotes personal
 * data.  What was read may still hold a key this version does not know (a
 * newer version wrote it on another device): relais_choice_label() then
 * returns NULL, and the key itself is the fallback to show. */

/* ------------------------------------------------------------------------
 * Reference lists
 * ------------------------------------------------------------------------ */

/* A stable key and its label.  Labels are marked N_(): show them with
 * relais_choice_label(), which translates them.  They are French msgids on
 * purpose: these are the national nomenclatures (levels of education,
 * rights, diagnostic situations), whose wording is the institution's. */
typedef struct {
  const char *key;
  const char *label;
} RelaisChoice;

/* Each table ends with { NULL, NULL }. */
extern const RelaisChoice relais_themes[];              /* logement, emploi, … numerique (10) */
extern const RelaisChoice relais_diagnostic_levels[];   /* non-aborde, sans-impact, moyen, fort */
extern const RelaisChoice relais_rights[];              /* rsa, are, ass, aah, rqth */
extern const RelaisChoice relais_education_levels[];    /* infra-3, niveau-3 … niveau-8 */
extern const RelaisChoice relais_work_situations[];
extern const RelaisChoice relais_contract_types[];      /* wanted in a project: cdi, cdd… */
extern const RelaisChoice relais_working_times[];       /* temps-plein, temps-partiel, indifferent */
extern const RelaisChoice relais_objective_statuses[];  /* en-cours, realise, abandonne */
extern const RelaisChoice relais_action_statuses[];     /* planifiee, en-cours, realisee, abandonnee, annulee */
extern const RelaisChoice relais_contract_kinds[];      /* cer, ppae, cej, pacea */
extern const RelaisChoice relais_appointment_statuses[];/* planned, seen, excused, no-show, cancelled */
extern const RelaisChoice relais_orientation_statuses[];/* proposee, acceptee, en-cours, terminee, refusee */

/* The situations that can be ticked for @theme, or NULL for an unknown
 * theme. */
const RelaisChoice *relais_theme_situations (const char *theme);

gboolean     relais_choice_has    (const RelaisChoice *choices,
                                   const char         *key);
/* The translated label of @key, or NULL when @key is not in @choices. */
const char  *relais_choice_label  (const RelaisChoice *choices,
                                   const char         *key);

/* When an operation was made: its hybrid logical clock's milliseconds, as
 * a local GDateTime. */
GDateTime   *relais_hlc_to_date_time (guint64 hlc);

/* ------------------------------------------------------------------------
 * Generic records
 *
 * Entities (op-log entity names and projection tables) and their fields.
 * relais_record_set() changes one field of one record with the same
 * validation as the typed functions below: the UI binds rows to it.
 * ------------------------------------------------------------------------ */

#define RELAIS_ENTITY_SITUATION   "situation"    /* id: the dossier id */
#define RELAIS_ENTITY_DIAGNOSTIC  "diagnostic"   /* id: "DOSSIER:THEME" */
#define RELAIS_ENTITY_PROJECT     "project"
#define RELAIS_ENTITY_OBJECTIVE   "objective"
#define RELAIS_ENTITY_ACTION      "action"
#define RELAIS_ENTITY_CONTRACT    "contract"
#define RELAIS_ENTITY_APPOINTMENT "appointment"
#define RELAIS_ENTITY_NOTE        "note"
#define RELAIS_ENTITY_ORIENTATION "orientation"

/* Sets @field of record @id of @entity to @value (NULL or "" clears an
 * optional field).  Fields: those of the structs below, by the same names
 * (lists as space-separated keys, numbers in decimal); "removed" ("1" or
 * NULL) hides a list record, and clearing it again is Undo.  Not for
 * "diagnostic" (use relais_diagnostic_set()), nor a note's author and
 * date. */
gboolean  relais_record_set       (RelaisVault  *vault,
                                   const char   *entity,
                                   const char   *id,
                                   const char   *field,
                                   const char   *value,
                                   GError      **error);
/* Hides a list record (project, objective, action, contract, appointment,
 * note, orientation); relais_record_restore() brings it back. */
gboolean  relais_record_remove    (RelaisVault  *vault,
                                   const char   *entity,
                                   const char   *id,
                                   GError      **error);
gboolean  relais_record_restore   (RelaisVault  *vault,
                                   const char   *entity,
                                   const char   *id,
                                   GError      **error);

/* ------------------------------------------------------------------------
 * Situation
 * ------------------------------------------------------------------------ */

typedef struct {
  char  *dossier;
  char **rights;               /* keys of relais_rights; never NULL */
  char  *education_level;      /* key of relais_education_levels, or NULL */
  char  *work_situation;       /* key of relais_work_situations, or NULL */
  char  *sharing_informed_on;  /* the date the person was told how their data is shared; NULL: not yet */
} RelaisSituation;

void             relais_situation_free (RelaisSituation *situation);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisSituation, relais_situation_free)

/* Never NULL on success: every member NULL (rights empty) when never set. */
RelaisSituation *relais_situation_get  (RelaisVault            *vault,
                                        const char             *dossier,
                                        GError                **error);
/* Sets every non-NULL member of @changes ("" clears); @changes->rights,
 * when not NULL, is the whole new set. */
gboolean         relais_situation_edit (RelaisVault            *vault,
                                        const char             *dossier,
                                        const RelaisSituation  *changes,
                                        GError                **error);

/* ------------------------------------------------------------------------
 * Diagnostic
 * ------------------------------------------------------------------------ */

typedef struct {
  char      *dossier;
  char      *theme;
  char      *level;        /* key of relais_diagnostic_levels; NULL: never assessed */
  char     **situations;   /* keys of relais_theme_situations (theme); never NULL */
  char      *comment;
  char      *author;       /* who signed it (the author of its last change) */
  GDateTime *changed_at;   /* when; NULL when never assessed */
  gboolean   conflict;     /* a field holds concurrent values (relais_oplog_conflicts()) */
} RelaisDiagnostic;

void              relais_diagnostic_free (RelaisDiagnostic *diagnostic);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisDiagnostic, relais_diagnostic_free)

/* Assesses one theme: @level required; @situations NULL leaves them
 * unchanged (an empty array clears them); @comment NULL leaves it, ""
 * clears it.  Signed by the vault's author and dated now; does nothing
 * when nothing changes. */
gboolean          relais_diagnostic_set  (RelaisVault         *vault,
                                          const char          *dossier,
                                          const char          *theme,
                                          const char          *level,
                                          const char * const  *situations,
                                          const char          *comment,
                                          GError             **error);
/* The current assessment of @theme (level NULL when never assessed). */
RelaisDiagnostic *relais_diagnostic_get  (RelaisVault         *vault,
                                          const char          *dossier,
                                          const char          *theme,
                                          GError             **error);
/* The current diagnostic: one RelaisDiagnostic per theme, in the order of
 * relais_themes. */
GPtrArray        *relais_diagnostic_list (RelaisVault         *vault,
                                          const char          *dossier,
                                          GError             **error);
/* Every assessment of @theme, oldest first: the state after each signed
 * change (one relais_diagnostic_set() on one device), with its author and
 * date.  Element type RelaisDiagnostic. */
GPtrArray        *relais_diagnostic_history (RelaisVault      *vault,
                                          const char          *dossier,
                                          const char          *theme,
                                          GError             **error);

/* ------------------------------------------------------------------------
 * Professional projects
 * ------------------------------------------------------------------------ */

typedef struct {
  char  *id;
  char  *dossier;
  char  *job_label;        /* required */
  char  *rome_code;        /* "K2204": a letter and 4 digits, or NULL */
  int    mobility_km;      /* -1: not said */
  char **contract_types;   /* keys of relais_contract_types; never NULL */
  char  *working_time;     /* key of relais_working_times, or NULL */
} RelaisProject;

void           relais_project_free (RelaisProject *project);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisProject, relais_project_free)

/* Returns the new project's id.  @project->id and ->dossier are ignored. */
char          *relais_project_add  (RelaisVault          *vault,
                                    const char           *dossier,
                                    const RelaisProject  *project,
                                    GError              **error);
GPtrArray     *relais_project_list (RelaisVault          *vault,
                                    const char           *dossier,
                                    GError              **error);

/* ------------------------------------------------------------------------
 * Plan: objectives per theme, actions per objective
 * ------------------------------------------------------------------------ */

typedef struct {
  char *id;
  char *dossier;
  char *theme;      /* key of relais_themes */
  char *text;
  char *status;     /* key of relais_objective_statuses */
} RelaisObjective;

typedef struct {
  char    *id;
  char    *dossier;
  char    *objective;   /* id of its objective */
  char    *text;
  char    *status;      /* key of relais_action_statuses */
  char    *due;         /* YYYY-MM-DD or NULL */
  char    *carrier;     /* the organisation that carries it, or NULL */
  gboolean late;        /* open (planifiee, en-cours) and due before the day asked about */
} RelaisAction;

void          relais_objective_free (RelaisObjective *objective);
void          relais_action_free    (RelaisAction    *action);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisObjective, relais_objective_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisAction, relais_action_free)

/* Status en-cours.  Returns the new id. */
char         *relais_objective_add  (RelaisVault  *vault,
                                     const char   *dossier,
                                     const char   *theme,
                                     const char   *text,
                                     GError      **error);
/* Status planifiee.  @due and @carrier may be NULL.  Returns the new id. */
char         *relais_action_add     (RelaisVault  *vault,
                                     const char   *objective,
                                     const char   *text,
                                     const char   *due,
                                     const char   *carrier,
                                     GError      **error);
/* @id is an objective or an action; @status a key of its status list. */
gboolean      relais_plan_set_status (RelaisVault *vault,
                                     const char   *id,
                                     const char   *status,
                                     GError      **error);
/* Objectives in theme order, then by creation. */
GPtrArray    *relais_objective_list (RelaisVault  *vault,
                                     const char   *dossier,
                                     GError      **error);
/* Every action of the dossier (group them by ->objective), by due date
 * (none last).  ->late is computed against @today (YYYY-MM-DD; NULL: the
 * local date). */
GPtrArray    *relais_action_list    (RelaisVault  *vault,
                                     const char   *dossier,
                                     const char   *today,
                                     GError      **error);
/* Only the open ones (planifiee, en-cours), late ones first. */
GPtrArray    *relais_action_list_open (RelaisVault *vault,
                                     const char   *dossier,
                                     const char   *today,
                                     GError      **error);

/* ------------------------------------------------------------------------
 * Contracts
 * ------------------------------------------------------------------------ */

typedef struct {
  char *id;
  char *dossier;
  char *kind;        /* key of relais_contract_kinds */
  char *signed_on;   /* dates, each may be NULL */
  char *starts_on;
  char *ends_on;
} RelaisContract;

void        relais_contract_free (RelaisContract *contract);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisContract, relais_contract_free)

char       *relais_contract_add  (RelaisVault           *vault,
                                  const char            *dossier,
                                  const RelaisContract  *contract,
                                  GError               **error);
GPtrArray  *relais_contract_list (RelaisVault           *vault,
                                  const char            *dossier,
                                  GError               **error);

/* ------------------------------------------------------------------------
 * Appointments
 * ------------------------------------------------------------------------ */

typedef struct {
  char *id;
  char *dossier;
  char *at;          /* YYYY-MM-DD HH:MM, local time */
  char *with_whom;
  char *place;       /* or NULL */
  char *status;      /* key of relais_appointment_statuses */
} RelaisAppointment;

void               relais_appointment_free (RelaisAppointment *appointment);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisAppointment, relais_appointment_free)

/* Status planned.  Returns the new id. */
char              *relais_appointment_add  (RelaisVault  *vault,
                                            const char   *dossier,
                                            const char   *at,
                                            const char   *with_whom,
                                            const char   *place,
                                            GError      **error);
/* Every appointment, by time. */
GPtrArray         *relais_appointment_list (RelaisVault  *vault,
                                            const char   *dossier,
                                            GError      **error);
/* The first planned appointment at or after @now ("YYYY-MM-DD HH:MM";
 * NULL: the local time), or NULL with no error when there is none. */
RelaisAppointment *relais_appointment_next (RelaisVault  *vault,
                                            const char   *dossier,
                                            const char   *now,
                                            GError      **error);

/* ------------------------------------------------------------------------
 * Journal
 * ------------------------------------------------------------------------ */

typedef struct {
  char      *id;
  char      *dossier;
  char      *text;
  char      *author;
  char      *written_at;   /* ISO 8601 UTC, "2026-11-25T09:30:00Z" */
} RelaisNote;

void        relais_note_free (RelaisNote *note);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisNote, relais_note_free)

/* Signed by the vault's author, dated now.  Returns the new id. */
char       *relais_note_add  (RelaisVault  *vault,
                              const char   *dossier,
                              const char   *text,
                              GError      **error);
/* Newest first; @limit 0: all. */
GPtrArray  *relais_note_list (RelaisVault  *vault,
                              const char   *dossier,
                              guint         limit,
                              GError      **error);

/* ------------------------------------------------------------------------
 * Orientations
 * ------------------------------------------------------------------------ */

typedef struct {
  char *id;
  char *dossier;
  char *structure;     /* structure or service, free text until the catalogue */
  char *reason;        /* or NULL */
  char *status;        /* key of relais_orientation_statuses */
  char *oriented_on;   /* YYYY-MM-DD */
} RelaisOrientation;

void        relais_orientation_free (RelaisOrientation *orientation);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisOrientation, relais_orientation_free)

/* Status proposee, dated today.  Returns the new id. */
char       *relais_orientation_add  (RelaisVault  *vault,
                                     const char   *dossier,
                                     const char   *structure,
                                     const char   *reason,
                                     GError      **error);
GPtrArray  *relais_orientation_list (RelaisVault  *vault,
                                     const char   *dossier,
                                     GError      **error);

/* ------------------------------------------------------------------------
 * Across dossiers: the list's filters.  Each returns dossier ids (char *),
 * each once, from an index.
 * ------------------------------------------------------------------------ */

/* Dossiers with an appointment (not cancelled) on @day (YYYY-MM-DD; NULL:
 * today). */
GPtrArray  *relais_dossier_ids_with_appointment_on (RelaisVault  *vault,
                                                    const char   *day,
                                                    GError      **error);
/* Dossiers with an open action due before @today (NULL: today). */
GPtrArray  *relais_dossier_ids_with_late_actions   (RelaisVault  *vault,
                                                    const char   *today,
                                                    GError      **error);
/* Dossiers changed (any field of any record, here or on another device)
 * since @since, most recent first; @limit 0: all. */
GPtrArray  *relais_dossier_ids_changed_since       (RelaisVault  *vault,
                                                    GDateTime    *since,
                                                    guint         limit,
                                                    GError      **error);

/* Adds to the object being built in @builder every member of the dossier
 * beyond identity ("situation", "diagnostic" with its history, "projects",
 * "objectives", "actions", "contracts", "appointments", "notes",
 * "orientations"), removed records included: the person's right of
 * access covers them. */
gboolean    relais_dossier_build_json (RelaisVault  *vault,
                                       JsonBuilder  *builder,
                                       const char   *dossier,
                                       GError      **error);

G_END_DECLS
