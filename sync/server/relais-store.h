#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The server's storage interface (PROTOCOL.md §6), with two
 * implementations: SQLite ("sqlite:PATH", relais-store-sqlite.c) and
 * PostgreSQL ("postgresql://…" or "postgres://…", relais-store-pg.c).
 *
 * Rules every implementation keeps:
 * - open() creates the schema, or migrates an older one, itself;
 * - every table that grows with dossiers has the dossier id first in its
 *   primary key, so that PostgreSQL can partition it by dossier;
 * - nothing is cached between calls that another process could change:
 *   two servers on one PostgreSQL serve the same devices correctly;
 * - each call is one transaction: it happens entirely or not at all;
 * - change-set sequence numbers become visible in increasing order: once a
 *   pull has returned seq S, no change set with seq <= S is committed
 *   later (PostgreSQL: serialize the allocation and the commit, e.g. with
 *   a transaction-level advisory lock);
 * - a store is used by several threads at once (libmicrohttpd's pool):
 *   each implementation keeps one connection per thread, or a pool;
 * - binary values (keys, envelopes) are stored as BLOB / bytea.
 *
 * Errors are RELAIS_STORE_ERROR with the codes below; the server maps each
 * to one HTTP error of PROTOCOL.md §5.3. */

#define RELAIS_STORE_ERROR (relais_store_error_quark ())

typedef enum {
  RELAIS_STORE_ERROR_FAILED,        /* the database failed: HTTP 500/503 */
  RELAIS_STORE_ERROR_NOT_FOUND,
  RELAIS_STORE_ERROR_EXISTS,        /* a user, device, dossier id already taken */
  RELAIS_STORE_ERROR_CODE_USED,
  RELAIS_STORE_ERROR_CODE_EXPIRED,
  RELAIS_STORE_ERROR_REPLAYED,      /* a (device, nonce) already seen */
  RELAIS_STORE_ERROR_KEYS_SET,      /* user keys already set to other public keys */
  RELAIS_STORE_ERROR_NOT_MEMBER,
  RELAIS_STORE_ERROR_EPOCH_RETIRED, /* push or rotation at an epoch that is not the current one */
  RELAIS_STORE_ERROR_ID_CONFLICT,   /* another envelope under a stored change-set id */
  RELAIS_STORE_ERROR_URI,           /* the --store URI is not understood */
} RelaisStoreError;

GQuark relais_store_error_quark (void);

typedef struct _RelaisStore RelaisStore;

#define RELAIS_STORE_KEY_SIZE  32  /* X25519 and Ed25519 public keys */
#define RELAIS_STORE_HASH_SIZE 32  /* enrolment code hashes */

/* "sqlite:PATH" or "postgresql://…" / "postgres://…".  Creates or migrates
 * the schema.  The URI may hold a password: never log it. */
RelaisStore *relais_store_open  (const char   *uri,
                                 GError      **error);
void         relais_store_close (RelaisStore  *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisStore, relais_store_close)

/* A server-wide secret (32 bytes, made at random by the first open and
 * stored): MACs pull cursors, so that every server on one database accepts
 * the cursors of the others. */
gboolean relais_store_get_secret (RelaisStore *store,
                                  guint8       out_secret[32],
                                  GError     **error);

/* ---- Users ---------------------------------------------------------- */

typedef struct {
  char    *user_id;
  char    *name;
  char    *org;
  gboolean admin;
  gboolean has_keys;
  guint8   box_pk[RELAIS_STORE_KEY_SIZE];   /* valid when has_keys */
  guint8   sign_pk[RELAIS_STORE_KEY_SIZE];
  GBytes  *wrapped_keys;                    /* NULL unless has_keys */
  gint64   created;
} RelaisStoreUser;

void relais_store_user_free (RelaisStoreUser *user);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisStoreUser, relais_store_user_free)

/* EXISTS when @user_id is taken. */
gboolean         relais_store_user_add  (RelaisStore  *store,
                                         const char   *user_id,
                                         const char   *name,
                                         const char   *org,
                                         gboolean      admin,
                                         gint64        now,
                                         GError      **error);
/* NOT_FOUND when unknown. */
RelaisStoreUser *relais_store_user_get  (RelaisStore  *store,
                                         const char   *user_id,
                                         GError      **error);
/* Every user, or those of @org when not NULL, ordered by org then name.
 * Element type RelaisStoreUser (wrapped_keys left NULL). */
GPtrArray       *relais_store_user_list (RelaisStore  *store,
                                         const char   *org,
                                         GError      **error);
/* Sets the user's public keys and wrapped key pair.  Allowed once, or again
 * with the same public keys (a passphrase change re-wraps); KEYS_SET when
 * the public keys differ from those stored. */
gboolean         relais_store_user_set_keys (RelaisStore  *store,
                                             const char   *user_id,
                                             const guint8 *box_pk,
                                             const guint8 *sign_pk,
                                             GBytes       *wrapped_keys,
                                             GError      **error);

/* ---- Enrolment codes (only their hash is stored) --------------------- */

gboolean relais_store_code_add (RelaisStore  *store,
                                const guint8 *code_hash,
                                const char   *user_id,
                                gint64        expires,
                                GError      **error);
/* Marks the code used and returns its user, in one transaction: NOT_FOUND,
 * CODE_USED (even when also expired), or CODE_EXPIRED (expires <= now). */
char    *relais_store_code_use (RelaisStore  *store,
                                const guint8 *code_hash,
                                gint64        now,
                                GError      **error);

/* ---- Devices --------------------------------------------------------- */

typedef struct {
  char    *device_id;
  char    *user_id;
  char    *name;
  guint8   pk[RELAIS_STORE_KEY_SIZE];       /* Ed25519, signs requests */
  gboolean revoked;
  gint64   created;
  gint64   last_seen;                       /* 0 when never */
} RelaisStoreDevice;

void relais_store_device_free (RelaisStoreDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisStoreDevice, relais_store_device_free)

gboolean           relais_store_device_add    (RelaisStore  *store,
                                               const char   *device_id,
                                               const char   *user_id,
                                               const char   *name,
                                               const guint8 *pk,
                                               gint64        now,
                                               GError      **error);
RelaisStoreDevice *relais_store_device_get    (RelaisStore  *store,
                                               const char   *device_id,
                                               GError      **error);
/* Every device, or those of @user_id; element type RelaisStoreDevice. */
GPtrArray         *relais_store_device_list   (RelaisStore  *store,
                                               const char   *user_id,
                                               GError      **error);
/* NOT_FOUND when unknown; revoking twice is not an error. */
gboolean           relais_store_device_revoke (RelaisStore  *store,
                                               const char   *device_id,
                                               GError      **error);
/* Best effort: records the time of the device's last signed request. */
gboolean           relais_store_device_seen   (RelaisStore  *store,
                                               const char   *device_id,
                                               gint64        now,
                                               GError      **error);

/* ---- Request nonces (replay protection, PROTOCOL.md §5.1) ------------ */

/* Records (@device_id, @nonce) until @expires; REPLAYED when it is already
 * recorded and not expired.  Also deletes this device's expired nonces
 * (now >= expires). */
gboolean relais_store_nonce_use (RelaisStore  *store,
                                 const char   *device_id,
                                 const guint8 *nonce,
                                 gsize         nonce_len,
                                 gint64        expires,
                                 gint64        now,
                                 GError      **error);

/* ---- Organisations' recovery public keys ----------------------------- */

gboolean relais_store_recovery_key_set (RelaisStore  *store,
                                        const char   *org,
                                        const guint8 *box_pk,
                                        GError      **error);
/* NOT_FOUND when the organisation has none. */
gboolean relais_store_recovery_key_get (RelaisStore  *store,
                                        const char   *org,
                                        guint8        out_box_pk[RELAIS_STORE_KEY_SIZE],
                                        GError      **error);

/* ---- Dossiers, members and wrapped keys ------------------------------ */

typedef struct {
  char   *user_id;  /* NULL for the organisation's recovery key */
  char   *org;      /* for the recovery key: its organisation; else NULL */
  guint32 epoch;
  GBytes *wrapped_key;
} RelaisStoreWrappedKey;

void relais_store_wrapped_key_free (RelaisStoreWrappedKey *key);

typedef struct {
  char   *user_id;
  guint8  sign_pk[RELAIS_STORE_KEY_SIZE];
  guint32 since_epoch;
  guint32 until_epoch;  /* 0 while a member; else the epoch that retired them */
} RelaisStoreMember;

void relais_store_member_free (RelaisStoreMember *member);

/* Creates @dossier_id at epoch 1, with one member per element of
 * @wrapped_keys whose user_id is set and the recovery wraps of those whose
 * user_id is NULL (element type RelaisStoreWrappedKey, all at epoch 1).
 * EXISTS when the dossier exists (the server then answers as if created
 * when the caller is already a member: a retried creation), or when a
 * member is listed twice; NOT_FOUND when a member is not a user;
 * EPOCH_RETIRED when a key is not at epoch 1.  Nothing is created then. */
gboolean  relais_store_dossier_create (RelaisStore  *store,
                                       const char   *dossier_id,
                                       GPtrArray    *wrapped_keys,
                                       gint64        now,
                                       GError      **error);
/* The current epoch; NOT_FOUND when unknown. */
gboolean  relais_store_dossier_epoch  (RelaisStore  *store,
                                       const char   *dossier_id,
                                       guint32      *out_epoch,
                                       GError      **error);
/* Whether @user_id is a current member (until_epoch 0). */
gboolean  relais_store_is_member      (RelaisStore  *store,
                                       const char   *dossier_id,
                                       const char   *user_id,
                                       gboolean     *out_member,
                                       GError      **error);
/* The wrapped keys of @user_id for @dossier_id, every epoch (element type
 * RelaisStoreWrappedKey, by epoch), and every member past and present with
 * their signing keys (element type RelaisStoreMember).  NOT_MEMBER when
 * @user_id is not a current member. */
gboolean  relais_store_dossier_keys   (RelaisStore  *store,
                                       const char   *dossier_id,
                                       const char   *user_id,
                                       GPtrArray   **out_keys,
                                       GPtrArray   **out_members,
                                       GError      **error);
/* Makes @user_id a member (again), since the current epoch, with its
 * wrapped keys for the epochs in @wrapped_keys (element type
 * RelaisStoreWrappedKey, user_id = @user_id).  The member becomes visible
 * to pulls at a fresh sequence number (see _changeset_pull).  A member
 * shared with again (a retried share) only gets the keys replaced.
 * NOT_FOUND for an unknown dossier or user; NOT_MEMBER when a key names
 * another user; EPOCH_RETIRED for a key beyond the current epoch.  A
 * member removed and shared with again keeps both periods in the member
 * list of _dossier_keys. */
gboolean  relais_store_dossier_share  (RelaisStore  *store,
                                       const char   *dossier_id,
                                       const char   *user_id,
                                       GPtrArray    *wrapped_keys,
                                       GError      **error);
/* In one transaction: retires @user_id (until_epoch = @new_epoch), moves
 * the dossier to @new_epoch, which must be the current one + 1
 * (EPOCH_RETIRED otherwise), and stores @wrapped_keys (every remaining
 * member's and the recovery key's at @new_epoch).  NOT_MEMBER when
 * @user_id is not a current member, or when a key is wrapped for someone
 * who is not a remaining member; EPOCH_RETIRED when a key is not at
 * @new_epoch; NOT_FOUND for an unknown dossier. */
gboolean  relais_store_dossier_unshare (RelaisStore  *store,
                                        const char   *dossier_id,
                                        const char   *user_id,
                                        guint32       new_epoch,
                                        GPtrArray    *wrapped_keys,
                                        GError      **error);
/* For recovery: every dossier @user_id is a current member of, with the
 * recovery wraps of @org for every epoch (element type
 * RelaisStoreWrappedKey, user_id NULL, ordered by dossier then epoch; the
 * dossier id is given in *@out_dossiers at the same index). */
gboolean  relais_store_recovery_wraps (RelaisStore  *store,
                                       const char   *user_id,
                                       const char   *org,
                                       GPtrArray   **out_keys,
                                       GPtrArray   **out_dossiers,
                                       GError      **error);

/* One organisation's missing recovery wraps of one dossier. */
typedef struct {
  char   *dossier_id;
  char   *org;
  guint8  recovery_key[RELAIS_STORE_KEY_SIZE];  /* the organisation's box_pk */
  GArray *epochs;                               /* guint32, ascending */
} RelaisStoreRecoveryMissing;

void relais_store_recovery_missing_free (RelaisStoreRecoveryMissing *missing);

/* At most this many missing epochs are listed per entry: the rest come
 * once these are filled. */
#define RELAIS_STORE_MISSING_EPOCHS_MAX 1000

/* For every dossier @user_id is a current member of, every organisation
 * that has a recovery key and a current member in that dossier, the epochs
 * 1..current with no recovery wrap for that organisation (PROTOCOL.md
 * §5.2, GET /v1/recovery/missing).  Ordered by dossier id then
 * organisation (bytewise), after the pair (@after_dossier, @after_org)
 * when @after_dossier is not NULL (@after_org then not NULL either), at
 * most @limit entries (> 0).  Element type RelaisStoreRecoveryMissing. */
GPtrArray *relais_store_recovery_missing (RelaisStore  *store,
                                          const char   *user_id,
                                          const char   *after_dossier,
                                          const char   *after_org,
                                          guint         limit,
                                          GError      **error);
/* Adds @org's recovery wraps of @dossier_id (element type
 * RelaisStoreWrappedKey, user_id NULL; org ignored), in one transaction;
 * a wrap already stored for (dossier, org, epoch) is left as it is, so a
 * retry changes nothing.  NOT_FOUND for an unknown dossier or an
 * organisation without a recovery key; NOT_MEMBER when @user_id is not a
 * current member, or @org has no current member in the dossier;
 * EPOCH_RETIRED for an epoch beyond the current one.  Nothing is stored
 * then. */
gboolean   relais_store_recovery_add     (RelaisStore  *store,
                                          const char   *dossier_id,
                                          const char   *user_id,
                                          const char   *org,
                                          GPtrArray    *wrapped_keys,
                                          GError      **error);

/* ---- Change sets ----------------------------------------------------- */

typedef struct {
  const char   *dossier_id;
  const guint8 *id;            /* 16 bytes, made by the client */
  guint32       epoch;
  const char   *author_user;   /* the pushing device's user */
  const char   *device_id;     /* the pushing device */
  GBytes       *envelope;
} RelaisStoreChangeset;

/* Stores a change set with the next sequence number, in one transaction
 * that also checks the author is a current member (NOT_MEMBER, also for
 * an unknown dossier, so that ids cannot be probed) and the epoch is the
 * dossier's current one (EPOCH_RETIRED).  When the id is already stored
 * in that dossier with the same bytes, sets *@out_duplicate and returns
 * its seq, even after a rotation; with other bytes, ID_CONFLICT. */
gboolean  relais_store_changeset_put  (RelaisStore                *store,
                                       const RelaisStoreChangeset *changeset,
                                       gint64                      now,
                                       guint64                    *out_seq,
                                       gboolean                   *out_duplicate,
                                       GError                    **error);

typedef struct {
  guint64 vis;  /* max (seq, the seq at which the user joined the dossier) */
  guint64 seq;
} RelaisStoreCursor;

typedef struct {
  RelaisStoreCursor position;
  char             *dossier_id;
  GBytes           *envelope;
} RelaisStorePulled;

void relais_store_pulled_free (RelaisStorePulled *pulled);

/* The change sets of every dossier @user_id is a current member of, not
 * pushed by @exclude_device, after @after in (vis, seq) order, where vis =
 * max (seq, member.joined_seq): a dossier shared with the user becomes
 * visible at once, whole, after what the user has already pulled, so the
 * cursor needs no per-dossier state.  At most @limit change sets (> 0),
 * and at most @max_bytes of envelopes but for the first, which always
 * comes.  Sets *@out_more when more follow.  Element type RelaisStorePulled.  @after may be NULL: from the
 * start. */
GPtrArray *relais_store_changeset_pull (RelaisStore             *store,
                                        const char              *user_id,
                                        const char              *exclude_device,
                                        const RelaisStoreCursor *after,
                                        guint                    limit,
                                        gsize                    max_bytes,
                                        gboolean                *out_more,
                                        GError                 **error);

G_END_DECLS
