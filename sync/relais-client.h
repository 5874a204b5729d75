#pragma once

#include <gio/gio.h>
#include <sodium.h>

G_BEGIN_DECLS

/* The HTTP client of PROTOCOL.md §5 (libcurl): one call per endpoint, each
 * request signed by the device key (§5.1), each answer parsed and checked
 * before anything is returned.  Blocking: call it from a worker thread in
 * the app.  Nothing here touches the vault; the spool (relais-spool.h) and
 * the engine (relais-sync-engine.h) use it. */

#define RELAIS_CLIENT_ERROR (relais_client_error_quark ())

/* One code per answer a caller may act on.  The message is one English
 * sentence for the person (the server's own message for refusals). */
typedef enum {
  RELAIS_CLIENT_ERROR_FAILED,
  RELAIS_CLIENT_ERROR_INVALID,        /* bad arguments: a URL that is not https:// (or http:// to loopback) */
  RELAIS_CLIENT_ERROR_NETWORK,        /* no connection, cut, timeout, TLS failure: retry later */
  RELAIS_CLIENT_ERROR_UNAVAILABLE,    /* 500, 503, 429: retry with backoff */
  RELAIS_CLIENT_ERROR_PROTOCOL,       /* an answer that is not what PROTOCOL.md says */
  RELAIS_CLIENT_ERROR_MALFORMED,      /* 400: the server refused our request as malformed */
  RELAIS_CLIENT_ERROR_BAD_SIGNATURE,  /* 401 bad_signature / unknown_device */
  RELAIS_CLIENT_ERROR_CLOCK,          /* 401 stale_request: this device's clock is wrong */
  RELAIS_CLIENT_ERROR_REVOKED,        /* 403 device_revoked: wipe the vault and the spool */
  RELAIS_CLIENT_ERROR_FORBIDDEN,      /* 403 not_member, not_admin, author_mismatch */
  RELAIS_CLIENT_ERROR_NOT_FOUND,      /* 404 */
  RELAIS_CLIENT_ERROR_REPLAYED,       /* 409 replayed */
  RELAIS_CLIENT_ERROR_CONFLICT,       /* 409 id_conflict, epoch_retired, keys already set */
  RELAIS_CLIENT_ERROR_CODE_USED,      /* 409 code_used */
  RELAIS_CLIENT_ERROR_CODE_EXPIRED,   /* 410 code_expired */
  RELAIS_CLIENT_ERROR_TOO_LARGE,      /* 413 */
} RelaisClientError;

GQuark relais_client_error_quark (void);

/* Whether a failed exchange may succeed when tried again unchanged:
 * NETWORK, UNAVAILABLE and REPLAYED (a retry signs with a new nonce).
 * Cancellation (G_IO_ERROR_CANCELLED) is not. */
gboolean relais_client_error_is_transient (const GError *error);

typedef struct _RelaisClient RelaisClient;

/* @server_url: "https://host[:port]" or "http://" to a loopback address
 * only (127.0.0.0/8, ::1, localhost): anything else fails with INVALID
 * before connecting.  @cacert: a PEM file to verify the server against
 * instead of the system's CAs, or NULL. */
RelaisClient *relais_client_new  (const char    *server_url,
                                  const char    *cacert,
                                  GError       **error);
void          relais_client_free (RelaisClient  *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisClient, relais_client_free)

/* The device that signs every request but health and enrol.  @device_sk
 * (Ed25519, 64 bytes) is copied into guarded memory. */
void relais_client_set_device (RelaisClient *client,
                               const char   *device_id,
                               const guint8 *device_sk);

/* Total time allowed for one request, in seconds (default 60). */
void relais_client_set_timeout (RelaisClient *client,
                                guint         seconds);

gboolean relais_client_health (RelaisClient  *client,
                               GCancellable  *cancellable,
                               GError       **error);

typedef struct {
  char    *user_id;
  char    *device_id;
  char    *name;          /* the user's name and organisation */
  char    *org;
  gboolean admin;
  GBytes  *wrapped_user_keys;   /* NULL for the user's first device */
  gboolean has_recovery_key;
  guint8   recovery_key[crypto_box_PUBLICKEYBYTES];
} RelaisEnrolment;

void relais_enrolment_free (RelaisEnrolment *enrolment);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisEnrolment, relais_enrolment_free)

RelaisEnrolment *relais_client_enrol (RelaisClient  *client,
                                      const char    *code,
                                      const char    *device_name,
                                      const guint8  *device_pk,
                                      GCancellable  *cancellable,
                                      GError       **error);

gboolean relais_client_put_keys (RelaisClient  *client,
                                 const guint8  *box_pk,
                                 const guint8  *sign_pk,
                                 GBytes        *wrapped_user_keys,
                                 GCancellable  *cancellable,
                                 GError       **error);

typedef struct {
  char   *user_id;
  char   *name;
  char   *org;
  gboolean has_keys;
  guint8  box_pk[crypto_box_PUBLICKEYBYTES];
  guint8  sign_pk[crypto_sign_PUBLICKEYBYTES];
} RelaisDirectoryUser;

void relais_directory_user_free (RelaisDirectoryUser *user);

/* The directory, of @org or of everyone when NULL.  Element type
 * RelaisDirectoryUser. */
GPtrArray *relais_client_users (RelaisClient  *client,
                                const char    *org,
                                GCancellable  *cancellable,
                                GError       **error);

typedef struct {
  char    *user_id;       /* NULL for the recovery key */
  guint32  epoch;
  GBytes  *wrapped_key;
} RelaisWrappedKey;

RelaisWrappedKey *relais_wrapped_key_new  (const char *user_id,
                                           guint32     epoch,
                                           GBytes     *wrapped_key);
void              relais_wrapped_key_free (RelaisWrappedKey *key);

typedef struct {
  char    *user_id;
  guint8   sign_pk[crypto_sign_PUBLICKEYBYTES];
  guint32  since_epoch;
  guint32  until_epoch;   /* 0 while a member */
} RelaisDossierMember;

void relais_dossier_member_free (RelaisDossierMember *member);

/* The caller's wrapped keys for every epoch and every member past and
 * present, as GET /v1/dossiers/{id}/keys and pulls give them. */
typedef struct {
  char      *dossier_id;
  guint32    epoch;       /* the current epoch */
  GPtrArray *keys;        /* RelaisWrappedKey, user_id NULL (they are the caller's) */
  GPtrArray *members;     /* RelaisDossierMember */
} RelaisDossierKeys;

void relais_dossier_keys_free (RelaisDossierKeys *keys);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisDossierKeys, relais_dossier_keys_free)

/* Registers a dossier at epoch 1.  @members: RelaisWrappedKey for each
 * member (usually the creator alone); @recovery_wrapped_key may be NULL
 * when the organisation has no recovery key.  A retried creation by a
 * member succeeds. */
gboolean relais_client_dossier_create  (RelaisClient  *client,
                                        const char    *dossier_id,
                                        GPtrArray     *members,
                                        GBytes        *recovery_wrapped_key,
                                        GCancellable  *cancellable,
                                        GError       **error);
RelaisDossierKeys *relais_client_dossier_keys (RelaisClient  *client,
                                               const char    *dossier_id,
                                               GCancellable  *cancellable,
                                               GError       **error);
/* @keys: RelaisWrappedKey for @user_id, one per epoch. */
gboolean relais_client_dossier_share   (RelaisClient  *client,
                                        const char    *dossier_id,
                                        const char    *user_id,
                                        GPtrArray     *keys,
                                        GCancellable  *cancellable,
                                        GError       **error);
/* @members: RelaisWrappedKey of every remaining member at @new_epoch. */
gboolean relais_client_dossier_unshare (RelaisClient  *client,
                                        const char    *dossier_id,
                                        const char    *user_id,
                                        guint32        new_epoch,
                                        GPtrArray     *members,
                                        GBytes        *recovery_wrapped_key,
                                        GCancellable  *cancellable,
                                        GError       **error);

typedef enum {
  RELAIS_PUSH_STORED,
  RELAIS_PUSH_DUPLICATE,
  RELAIS_PUSH_REFUSED,
} RelaisPushStatus;

typedef struct {
  guint8            id[16];
  RelaisPushStatus  status;
  char             *error;   /* the server's code when refused ("epoch_retired"…) */
  guint64           seq;
} RelaisPushResult;

void relais_push_result_free (RelaisPushResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisPushResult, relais_push_result_free)

/* Pushes at most 100 envelopes (GBytes).  Returns one RelaisPushResult per
 * envelope, in the same order; fails as a whole only when the exchange
 * did (then nothing can be assumed stored or not: push again). */
GPtrArray *relais_client_push (RelaisClient  *client,
                               GPtrArray     *envelopes,
                               GCancellable  *cancellable,
                               GError       **error);

typedef struct {
  GPtrArray *changesets;  /* GBytes envelopes, in server order */
  GPtrArray *keys;        /* RelaisDossierKeys of every dossier in this page */
  char      *cursor;      /* pass it to the next pull; NULL never */
  gboolean   more;
} RelaisPullPage;

void relais_pull_page_free (RelaisPullPage *page);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisPullPage, relais_pull_page_free)

/* One page after @cursor (NULL: from the start), at most @limit (≤ 500). */
RelaisPullPage *relais_client_pull (RelaisClient  *client,
                                    const char    *cursor,
                                    guint          limit,
                                    GCancellable  *cancellable,
                                    GError       **error);

/* Administrators' devices only (FORBIDDEN otherwise). */
gboolean relais_client_admin_set_recovery_key (RelaisClient  *client,
                                               const char    *org,
                                               const guint8  *box_pk,
                                               GCancellable  *cancellable,
                                               GError       **error);
gboolean relais_client_admin_revoke (RelaisClient  *client,
                                     const char    *device_id,
                                     GCancellable  *cancellable,
                                     GError       **error);
/* Every dossier @user_id is a member of, with the recovery wraps of the
 * administrator's organisation: element type RelaisDossierKeys, whose keys
 * are the recovery wraps (user_id NULL) and members as in _dossier_keys. */
GPtrArray *relais_client_admin_recovery (RelaisClient  *client,
                                         const char    *user_id,
                                         GCancellable  *cancellable,
                                         GError       **error);
/* Makes @user_id a member of @dossier_id with @keys (one per epoch), as
 * share does, on the administrator's authority (after recovery). */
gboolean relais_client_admin_grant (RelaisClient  *client,
                                    const char    *dossier_id,
                                    const char    *user_id,
                                    GPtrArray     *keys,
                                    GCancellable  *cancellable,
                                    GError       **error);

/* One organisation's missing recovery wraps of one dossier (PROTOCOL.md
 * §5.2, GET /v1/recovery/missing). */
typedef struct {
  char   *dossier_id;
  char   *org;
  guint8  recovery_key[crypto_box_PUBLICKEYBYTES];  /* the organisation's */
  GArray *epochs;                                   /* guint32, ascending, >= 1 */
} RelaisRecoveryMissing;

void relais_recovery_missing_free (RelaisRecoveryMissing *missing);

/* The recovery wraps this device's user could add, one page (at most 500
 * entries) after the entry (@after_dossier, @after_org), or from the start
 * when both are NULL; entries come in order of dossier then organisation.
 * An empty array: nothing more.  Element type RelaisRecoveryMissing. */
GPtrArray *relais_client_recovery_missing (RelaisClient  *client,
                                           const char    *after_dossier,
                                           const char    *after_org,
                                           GCancellable  *cancellable,
                                           GError       **error);
/* Adds @org's recovery wraps of @dossier_id: @keys, RelaisWrappedKey
 * (user_id NULL), one per epoch.  Wraps the server already has stay as
 * they are. */
gboolean   relais_client_recovery_add     (RelaisClient  *client,
                                           const char    *dossier_id,
                                           const char    *org,
                                           GPtrArray     *keys,
                                           GCancellable  *cancellable,
                                           GError       **error);

/* A dossier's keys as JSON, in the form of an entry of a pull's "keys"
 * (what the spool keeps in keys/), and back with every check a pull's
 * answer gets (PROTOCOL on anything else). */
char              *relais_dossier_keys_to_json   (const RelaisDossierKeys  *keys);
RelaisDossierKeys *relais_dossier_keys_from_json (const char               *text,
                                                  gsize                     len,
                                                  GError                  **error);

/* Parses an answer body of the endpoint @what ("enrol", "users", "keys",
 * "push", "pull", "recovery", "missing", "error"): what each call above does with
 * what the server sent, exposed for the fuzz test.  Returns FALSE with
 * PROTOCOL for anything that is not a valid answer; never crashes. */
gboolean relais_client_parse_answer (const char    *what,
                                     const char    *body,
                                     gsize          len,
                                     GError       **error);

G_END_DECLS
