#pragma once

#include <glib.h>

#include "relais-store.h"

G_BEGIN_DECLS

/* The endpoints of PROTOCOL.md §5: request-signature checks, the JSON
 * bodies in and out, and the pull cursor.  Nothing here knows HTTP
 * framing: relais-server-http.c hands a whole request in and sends the
 * answer back.  The body parsers are public so that tests can feed them
 * hostile input directly. */

#define RELAIS_SERVER_ERROR (relais_server_error_quark ())

/* One code per error of PROTOCOL.md §5.3; each has one HTTP status and one
 * wire code (relais_server_error_status(), relais_server_error_code()). */
typedef enum {
  RELAIS_SERVER_ERROR_MALFORMED,        /* 400 malformed */
  RELAIS_SERVER_ERROR_BAD_BASE64,       /* 400 bad_base64 */
  RELAIS_SERVER_ERROR_BAD_SIGNATURE,    /* 401 bad_signature */
  RELAIS_SERVER_ERROR_STALE_REQUEST,    /* 401 stale_request */
  RELAIS_SERVER_ERROR_UNKNOWN_DEVICE,   /* 401 unknown_device */
  RELAIS_SERVER_ERROR_DEVICE_REVOKED,   /* 403 device_revoked */
  RELAIS_SERVER_ERROR_NOT_MEMBER,       /* 403 not_member */
  RELAIS_SERVER_ERROR_NOT_ADMIN,        /* 403 not_admin */
  RELAIS_SERVER_ERROR_AUTHOR_MISMATCH,  /* 403 author_mismatch */
  RELAIS_SERVER_ERROR_NOT_FOUND,        /* 404 not_found */
  RELAIS_SERVER_ERROR_METHOD,           /* 405 not_found: a known path, another method */
  RELAIS_SERVER_ERROR_REPLAYED,         /* 409 replayed */
  RELAIS_SERVER_ERROR_ID_CONFLICT,      /* 409 id_conflict (also: user keys already set) */
  RELAIS_SERVER_ERROR_EPOCH_RETIRED,    /* 409 epoch_retired */
  RELAIS_SERVER_ERROR_CODE_USED,        /* 409 code_used */
  RELAIS_SERVER_ERROR_CODE_EXPIRED,     /* 410 code_expired */
  RELAIS_SERVER_ERROR_TOO_LARGE,        /* 413 too_large */
  RELAIS_SERVER_ERROR_SLOW_DOWN,        /* 429 slow_down */
  RELAIS_SERVER_ERROR_INTERNAL,         /* 500 internal */
  RELAIS_SERVER_ERROR_UNAVAILABLE,      /* 503 unavailable */
} RelaisServerError;

GQuark      relais_server_error_quark  (void);
guint       relais_server_error_status (RelaisServerError code);
const char *relais_server_error_code   (RelaisServerError code);

#define RELAIS_SERVER_MAX_BODY        (110 * 1024 * 1024)  /* a push of 100 envelopes of 1 MiB */
#define RELAIS_SERVER_MAX_PUSH        100
#define RELAIS_SERVER_MAX_PULL        500
#define RELAIS_SERVER_MAX_ANSWER      (8 * 1024 * 1024)
#define RELAIS_SERVER_CLOCK_WINDOW    300                  /* seconds either side */
#define RELAIS_SERVER_NONCE_LIFETIME  600
#define RELAIS_SERVER_CODE_LIFETIME   (24 * 3600)
#define RELAIS_SERVER_NONCE_SIZE      16
#define RELAIS_SERVER_CURSOR_MAC_SIZE 16
#define RELAIS_SERVER_CODE_LENGTH     20                   /* Crockford base32 characters: 100 bits */

/* ---- Enrolment codes ------------------------------------------------- */

/* A new random code, "XXXXX-XXXXX-XXXXX-XXXXX" in Crockford base32. */
char     *relais_server_code_new       (void);
/* The canonical form of a code typed by a person: case and dashes or
 * spaces do not matter, nor O/0 and I/L/1.  NULL when it cannot be one. */
char     *relais_server_code_normalize (const char *code);
/* The hash stored for a code (any form relais_server_code_normalize()
 * accepts); FALSE when @code is not one. */
gboolean  relais_server_code_hash      (const char *code,
                                        guint8      out_hash[RELAIS_STORE_HASH_SIZE]);

/* Whether @id is a user, device or dossier id of PROTOCOL.md:
 * [0-9A-Za-z_-]{1,64}. */
gboolean  relais_server_id_is_valid    (const char *id);

/* ---- Pull cursors ---------------------------------------------------- */

/* base64url (u64 vis | u64 seq | 16-byte BLAKE2b MAC keyed with @secret). */
char     *relais_server_cursor_encode (const guint8             *secret,
                                       const RelaisStoreCursor  *cursor);
/* MALFORMED unless @text is a cursor this server (or one on the same
 * store) made. */
gboolean  relais_server_cursor_decode (const guint8             *secret,
                                       const char               *text,
                                       RelaisStoreCursor        *out_cursor,
                                       GError                  **error);

/* ---- Request bodies ---------------------------------------------------
 * Each parser takes the raw body (not NUL-terminated, may hold anything)
 * and returns a struct, or NULL with RELAIS_SERVER_ERROR MALFORMED,
 * BAD_BASE64 or TOO_LARGE.  Unknown members are ignored.  Wrapped keys come
 * back as RelaisStoreWrappedKey elements, ready for the store. */

typedef struct {
  char   *code;            /* normalized */
  char   *device_name;
  guint8  device_key[RELAIS_STORE_KEY_SIZE];
} RelaisEnrolRequest;

void                relais_enrol_request_free (RelaisEnrolRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisEnrolRequest, relais_enrol_request_free)
RelaisEnrolRequest *relais_server_parse_enrol (const char  *body,
                                               gsize        len,
                                               GError     **error);

typedef struct {
  guint8  box_pk[RELAIS_STORE_KEY_SIZE];
  guint8  sign_pk[RELAIS_STORE_KEY_SIZE];
  GBytes *wrapped_user_keys;
} RelaisKeysRequest;

void               relais_keys_request_free (RelaisKeysRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisKeysRequest, relais_keys_request_free)
RelaisKeysRequest *relais_server_parse_keys (const char  *body,
                                             gsize        len,
                                             GError     **error);

/* POST /v1/dossiers and POST /v1/dossiers/{id}/unshare. */
typedef struct {
  char      *dossier_id;   /* create only */
  char      *user_id;      /* unshare only: the member removed */
  guint32    epoch;        /* 1 for create; E+1 for unshare */
  GPtrArray *keys;         /* RelaisStoreWrappedKey at @epoch: one per member (user_id
                            * set), and the recovery wrap last (user_id and org NULL) */
} RelaisDossierRequest;

void                  relais_dossier_request_free  (RelaisDossierRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisDossierRequest, relais_dossier_request_free)
RelaisDossierRequest *relais_server_parse_dossier  (const char  *body,
                                                    gsize        len,
                                                    GError     **error);
RelaisDossierRequest *relais_server_parse_unshare  (const char  *body,
                                                    gsize        len,
                                                    GError     **error);

/* POST /v1/dossiers/{id}/share and /v1/admin/dossiers/{id}/grant. */
typedef struct {
  char      *user_id;
  GPtrArray *keys;         /* RelaisStoreWrappedKey, user_id = @user_id, distinct epochs */
} RelaisShareRequest;

void                relais_share_request_free (RelaisShareRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisShareRequest, relais_share_request_free)
RelaisShareRequest *relais_server_parse_share (const char  *body,
                                               gsize        len,
                                               GError     **error);

typedef struct {
  GPtrArray *envelopes;    /* GBytes, or NULL for an element that is not base64url */
} RelaisPushRequest;

void               relais_push_request_free (RelaisPushRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisPushRequest, relais_push_request_free)
RelaisPushRequest *relais_server_parse_push (const char  *body,
                                             gsize        len,
                                             GError     **error);

typedef struct {
  char   *org;
  guint8  box_pk[RELAIS_STORE_KEY_SIZE];
} RelaisRecoveryKeyRequest;

void                      relais_recovery_key_request_free (RelaisRecoveryKeyRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisRecoveryKeyRequest, relais_recovery_key_request_free)
RelaisRecoveryKeyRequest *relais_server_parse_recovery_key (const char  *body,
                                                            gsize        len,
                                                            GError     **error);

/* POST /v1/dossiers/{id}/recovery: an organisation's missing recovery
 * wraps (PROTOCOL.md §5.2). */
typedef struct {
  char      *org;
  GPtrArray *keys;         /* RelaisStoreWrappedKey, user_id NULL, org = @org, distinct
                            * epochs, each wrap 154 bytes */
} RelaisRecoveryAddRequest;

void                      relais_recovery_add_request_free (RelaisRecoveryAddRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisRecoveryAddRequest, relais_recovery_add_request_free)
RelaisRecoveryAddRequest *relais_server_parse_recovery_add (const char  *body,
                                                            gsize        len,
                                                            GError     **error);

/* At most this many entries answer GET /v1/recovery/missing. */
#define RELAIS_SERVER_MISSING_MAX 500

/* The query string of a URI (after '?', percent-encoded): name → value,
 * both decoded.  MALFORMED on bad escapes, NUL bytes, repeated names or
 * more than a few parameters. */
GHashTable *relais_server_parse_query (const char  *query,
                                       GError     **error);

/* ---- Requests and answers -------------------------------------------- */

typedef struct {
  const char   *method;
  const char   *uri;          /* path and query exactly as sent: it is signed */
  const char   *device;       /* the Relais-* headers, NULL when absent */
  const char   *time;
  const char   *nonce;
  const char   *signature;
  const guint8 *body;
  gsize         body_len;
} RelaisServerRequest;

typedef struct {
  guint       status;
  const char *route;         /* the route's pattern, for the log: never an id */
  const char *error_code;    /* the wire code of an error, else NULL */
  const char *allow;         /* the methods of a 405 */
  guint       retry_after;   /* seconds, 0 for none */
  char       *body;          /* JSON, NULL for none (204) */
  gsize       body_len;
} RelaisServerResponse;

void relais_server_response_clear (RelaisServerResponse *response);
/* Fills @response with the error answer of @error (a RELAIS_SERVER_ERROR;
 * anything else is 500 internal). */
void relais_server_response_set_error (RelaisServerResponse *response,
                                       const GError         *error);

/* The pattern of the route @uri falls in ("/v1/dossiers/{id}/keys"), or
 * "other": what the log shows. */
const char *relais_server_api_route_name (const char *uri);

typedef struct _RelaisServerApi RelaisServerApi;

/* @store stays owned by the caller and must outlive the API. */
RelaisServerApi *relais_server_api_new    (RelaisStore      *store,
                                           GError          **error);
void             relais_server_api_free   (RelaisServerApi  *api);
/* Makes the store calls that write wait for each other in this process:
 * for SQLite, whose own wait for its one writer sleeps too long. */
void             relais_server_api_set_serialize_writes (RelaisServerApi *api,
                                                         gboolean         serialize);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisServerApi, relais_server_api_free)

/* Answers one whole request.  Safe to call from several threads at once. */
void             relais_server_api_handle (RelaisServerApi            *api,
                                           const RelaisServerRequest  *request,
                                           RelaisServerResponse       *response);

G_END_DECLS
