#pragma once

/* Between relais-store.c and the implementations of the store: each
 * implementation embeds RelaisStore first in its own struct and fills a
 * RelaisStoreVTable with one function per public call.  relais-store.c
 * checks the arguments once, so the implementations may trust them. */

#include "relais-store.h"

G_BEGIN_DECLS

typedef struct {
  void              (*close)            (RelaisStore *store);
  gboolean          (*get_secret)       (RelaisStore *store, guint8 out_secret[32], GError **error);

  gboolean          (*user_add)         (RelaisStore *store, const char *user_id, const char *name,
                                         const char *org, gboolean admin, gint64 now, GError **error);
  RelaisStoreUser  *(*user_get)         (RelaisStore *store, const char *user_id, GError **error);
  GPtrArray        *(*user_list)        (RelaisStore *store, const char *org, GError **error);
  gboolean          (*user_set_keys)    (RelaisStore *store, const char *user_id, const guint8 *box_pk,
                                         const guint8 *sign_pk, GBytes *wrapped_keys, GError **error);

  gboolean          (*code_add)         (RelaisStore *store, const guint8 *code_hash, const char *user_id,
                                         gint64 expires, GError **error);
  char             *(*code_use)         (RelaisStore *store, const guint8 *code_hash, gint64 now,
                                         GError **error);

  gboolean          (*device_add)       (RelaisStore *store, const char *device_id, const char *user_id,
                                         const char *name, const guint8 *pk, gint64 now, GError **error);
  RelaisStoreDevice*(*device_get)       (RelaisStore *store, const char *device_id, GError **error);
  GPtrArray        *(*device_list)      (RelaisStore *store, const char *user_id, GError **error);
  gboolean          (*device_revoke)    (RelaisStore *store, const char *device_id, GError **error);
  gboolean          (*device_seen)      (RelaisStore *store, const char *device_id, gint64 now,
                                         GError **error);

  gboolean          (*nonce_use)        (RelaisStore *store, const char *device_id, const guint8 *nonce,
                                         gsize nonce_len, gint64 expires, gint64 now, GError **error);

  gboolean          (*recovery_key_set) (RelaisStore *store, const char *org, const guint8 *box_pk,
                                         GError **error);
  gboolean          (*recovery_key_get) (RelaisStore *store, const char *org,
                                         guint8 out_box_pk[RELAIS_STORE_KEY_SIZE], GError **error);

  gboolean          (*dossier_create)   (RelaisStore *store, const char *dossier_id,
                                         GPtrArray *wrapped_keys, gint64 now, GError **error);
  gboolean          (*dossier_epoch)    (RelaisStore *store, const char *dossier_id,
                                         guint32 *out_epoch, GError **error);
  gboolean          (*is_member)        (RelaisStore *store, const char *dossier_id, const char *user_id,
                                         gboolean *out_member, GError **error);
  gboolean          (*dossier_keys)     (RelaisStore *store, const char *dossier_id, const char *user_id,
                                         GPtrArray **out_keys, GPtrArray **out_members, GError **error);
  gboolean          (*dossier_share)    (RelaisStore *store, const char *dossier_id, const char *user_id,
                                         GPtrArray *wrapped_keys, GError **error);
  gboolean          (*dossier_unshare)  (RelaisStore *store, const char *dossier_id, const char *user_id,
                                         guint32 new_epoch, GPtrArray *wrapped_keys, GError **error);
  gboolean          (*recovery_wraps)   (RelaisStore *store, const char *user_id, const char *org,
                                         GPtrArray **out_keys, GPtrArray **out_dossiers, GError **error);
  GPtrArray        *(*recovery_missing) (RelaisStore *store, const char *user_id,
                                         const char *after_dossier, const char *after_org,
                                         guint limit, GError **error);
  gboolean          (*recovery_add)     (RelaisStore *store, const char *dossier_id,
                                         const char *user_id, const char *org,
                                         GPtrArray *wrapped_keys, GError **error);

  gboolean          (*changeset_put)    (RelaisStore *store, const RelaisStoreChangeset *changeset,
                                         gint64 now, guint64 *out_seq, gboolean *out_duplicate,
                                         GError **error);
  GPtrArray        *(*changeset_pull)   (RelaisStore *store, const char *user_id,
                                         const char *exclude_device, const RelaisStoreCursor *after,
                                         guint limit, gsize max_bytes, gboolean *out_more,
                                         GError **error);
} RelaisStoreVTable;

struct _RelaisStore {
  const RelaisStoreVTable *vtable;
};

/* A pull scans every change set pushed since its cursor, in seq order,
 * when there are fewer than this many; otherwise it scans each dossier of
 * the user (relais-store-sqlite.c, relais-store-pg.c).  Small enough that
 * such a scan costs little more than a page; large enough that the
 * incremental pulls of a busy server take it. */
#define RELAIS_STORE_PULL_SCAN_BUDGET(limit) (4 * (gint64) (limit) + 256)

/* The implementations' open functions, given the URI whole. */
RelaisStore *relais_store_sqlite_open (const char *uri, GError **error);
RelaisStore *relais_store_pg_open     (const char *uri, GError **error);

/* Constructors of the result elements, shared by the implementations. */
RelaisStoreWrappedKey *relais_store_wrapped_key_new (const char   *user_id,
                                                     const char   *org,
                                                     guint32       epoch,
                                                     const void   *data,
                                                     gsize         len);
RelaisStoreMember     *relais_store_member_new      (const char   *user_id,
                                                     const guint8 *sign_pk,
                                                     guint32       since_epoch,
                                                     guint32       until_epoch);
RelaisStoreRecoveryMissing *relais_store_recovery_missing_new (const char   *dossier_id,
                                                              const char   *org,
                                                              const guint8 *recovery_key);
RelaisStorePulled     *relais_store_pulled_new      (guint64       vis,
                                                     guint64       seq,
                                                     const char   *dossier_id,
                                                     const void   *envelope,
                                                     gsize         len);

G_END_DECLS
