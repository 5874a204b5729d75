#define G_LOG_DOMAIN "relais-store"

#include "config.h"

#include <string.h>

#include "relais-store-private.h"

/* The public calls of the store: argument checks, then the implementation
 * chosen by the URI's scheme (relais-store-sqlite.c, relais-store-pg.c). */

G_DEFINE_QUARK (relais-store-error-quark, relais_store_error)

RelaisStore *
relais_store_open (const char  *uri,
                   GError     **error)
{
  g_return_val_if_fail (uri != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* Only the scheme is named in errors: the rest may hold a password. */
  if (g_str_has_prefix (uri, "sqlite:"))
    {
      if (uri[strlen ("sqlite:")] == '\0')
        {
          g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_URI,
                               "The store URI 'sqlite:' names no file (sqlite:PATH)");
          return NULL;
        }
      return relais_store_sqlite_open (uri, error);
    }
  if (g_str_has_prefix (uri, "postgresql://") || g_str_has_prefix (uri, "postgres://"))
    return relais_store_pg_open (uri, error);

  g_set_error_literal (error, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_URI,
                       "The store URI is neither sqlite:PATH nor postgresql://…");
  return NULL;
}

void
relais_store_close (RelaisStore *store)
{
  if (store == NULL)
    return;
  store->vtable->close (store);
}

gboolean
relais_store_get_secret (RelaisStore  *store,
                         guint8        out_secret[32],
                         GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (out_secret != NULL, FALSE);
  return store->vtable->get_secret (store, out_secret, error);
}

/* ---- Users ---------------------------------------------------------- */

void
relais_store_user_free (RelaisStoreUser *user)
{
  if (user == NULL)
    return;
  g_free (user->user_id);
  g_free (user->name);
  g_free (user->org);
  g_clear_pointer (&user->wrapped_keys, g_bytes_unref);
  g_free (user);
}

gboolean
relais_store_user_add (RelaisStore  *store,
                       const char   *user_id,
                       const char   *name,
                       const char   *org,
                       gboolean      admin,
                       gint64        now,
                       GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (user_id != NULL && name != NULL && org != NULL, FALSE);
  return store->vtable->user_add (store, user_id, name, org, admin, now, error);
}

RelaisStoreUser *
relais_store_user_get (RelaisStore  *store,
                       const char   *user_id,
                       GError      **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (user_id != NULL, NULL);
  return store->vtable->user_get (store, user_id, error);
}

GPtrArray *
relais_store_user_list (RelaisStore  *store,
                        const char   *org,
                        GError      **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  return store->vtable->user_list (store, org, error);
}

gboolean
relais_store_user_set_keys (RelaisStore   *store,
                            const char    *user_id,
                            const guint8  *box_pk,
                            const guint8  *sign_pk,
                            GBytes        *wrapped_keys,
                            GError       **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (user_id != NULL && box_pk != NULL && sign_pk != NULL, FALSE);
  g_return_val_if_fail (wrapped_keys != NULL, FALSE);
  return store->vtable->user_set_keys (store, user_id, box_pk, sign_pk, wrapped_keys, error);
}

/* ---- Enrolment codes ------------------------------------------------- */

gboolean
relais_store_code_add (RelaisStore   *store,
                       const guint8  *code_hash,
                       const char    *user_id,
                       gint64         expires,
                       GError       **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (code_hash != NULL && user_id != NULL, FALSE);
  return store->vtable->code_add (store, code_hash, user_id, expires, error);
}

char *
relais_store_code_use (RelaisStore   *store,
                       const guint8  *code_hash,
                       gint64         now,
                       GError       **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (code_hash != NULL, NULL);
  return store->vtable->code_use (store, code_hash, now, error);
}

/* ---- Devices --------------------------------------------------------- */

void
relais_store_device_free (RelaisStoreDevice *device)
{
  if (device == NULL)
    return;
  g_free (device->device_id);
  g_free (device->user_id);
  g_free (device->name);
  g_free (device);
}

gboolean
relais_store_device_add (RelaisStore   *store,
                         const char    *device_id,
                         const char    *user_id,
                         const char    *name,
                         const guint8  *pk,
                         gint64         now,
                         GError       **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (device_id != NULL && user_id != NULL && name != NULL, FALSE);
  g_return_val_if_fail (pk != NULL, FALSE);
  return store->vtable->device_add (store, device_id, user_id, name, pk, now, error);
}

RelaisStoreDevice *
relais_store_device_get (RelaisStore  *store,
                         const char   *device_id,
                         GError      **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (device_id != NULL, NULL);
  return store->vtable->device_get (store, device_id, error);
}

GPtrArray *
relais_store_device_list (RelaisStore  *store,
                          const char   *user_id,
                          GError      **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  return store->vtable->device_list (store, user_id, error);
}

gboolean
relais_store_device_revoke (RelaisStore  *store,
                            const char   *device_id,
                            GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  return store->vtable->device_revoke (store, device_id, error);
}

gboolean
relais_store_device_seen (RelaisStore  *store,
                          const char   *device_id,
                          gint64        now,
                          GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  return store->vtable->device_seen (store, device_id, now, error);
}

/* ---- Request nonces -------------------------------------------------- */

gboolean
relais_store_nonce_use (RelaisStore   *store,
                        const char    *device_id,
                        const guint8  *nonce,
                        gsize          nonce_len,
                        gint64         expires,
                        gint64         now,
                        GError       **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (device_id != NULL, FALSE);
  g_return_val_if_fail (nonce != NULL && nonce_len > 0, FALSE);
  return store->vtable->nonce_use (store, device_id, nonce, nonce_len, expires, now, error);
}

/* ---- Organisations' recovery public keys ----------------------------- */

gboolean
relais_store_recovery_key_set (RelaisStore   *store,
                               const char    *org,
                               const guint8  *box_pk,
                               GError       **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (org != NULL && box_pk != NULL, FALSE);
  return store->vtable->recovery_key_set (store, org, box_pk, error);
}

gboolean
relais_store_recovery_key_get (RelaisStore  *store,
                               const char   *org,
                               guint8        out_box_pk[RELAIS_STORE_KEY_SIZE],
                               GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (org != NULL && out_box_pk != NULL, FALSE);
  return store->vtable->recovery_key_get (store, org, out_box_pk, error);
}

/* ---- Dossiers, members and wrapped keys ------------------------------ */

RelaisStoreWrappedKey *
relais_store_wrapped_key_new (const char  *user_id,
                              const char  *org,
                              guint32      epoch,
                              const void  *data,
                              gsize        len)
{
  RelaisStoreWrappedKey *key = g_new0 (RelaisStoreWrappedKey, 1);

  key->user_id = g_strdup (user_id);
  key->org = g_strdup (org);
  key->epoch = epoch;
  key->wrapped_key = g_bytes_new (data, len);
  return key;
}

void
relais_store_wrapped_key_free (RelaisStoreWrappedKey *key)
{
  if (key == NULL)
    return;
  g_free (key->user_id);
  g_free (key->org);
  g_clear_pointer (&key->wrapped_key, g_bytes_unref);
  g_free (key);
}

RelaisStoreMember *
relais_store_member_new (const char   *user_id,
                         const guint8 *sign_pk,
                         guint32       since_epoch,
                         guint32       until_epoch)
{
  RelaisStoreMember *member = g_new0 (RelaisStoreMember, 1);

  member->user_id = g_strdup (user_id);
  if (sign_pk != NULL)
    memcpy (member->sign_pk, sign_pk, RELAIS_STORE_KEY_SIZE);
  member->since_epoch = since_epoch;
  member->until_epoch = until_epoch;
  return member;
}

void
relais_store_member_free (RelaisStoreMember *member)
{
  if (member == NULL)
    return;
  g_free (member->user_id);
  g_free (member);
}

/* Every wrapped key handed in must say whose it is and carry bytes: a
 * recovery wrap (user_id NULL) names its organisation. */
static gboolean
wrapped_keys_valid (GPtrArray *wrapped_keys)
{
  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      if (key == NULL || key->wrapped_key == NULL || key->epoch == 0)
        return FALSE;
      if (key->user_id == NULL && key->org == NULL)
        return FALSE;
    }
  return TRUE;
}

gboolean
relais_store_dossier_create (RelaisStore  *store,
                             const char   *dossier_id,
                             GPtrArray    *wrapped_keys,
                             gint64        now,
                             GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && wrapped_keys != NULL, FALSE);
  g_return_val_if_fail (wrapped_keys_valid (wrapped_keys), FALSE);
  return store->vtable->dossier_create (store, dossier_id, wrapped_keys, now, error);
}

gboolean
relais_store_dossier_epoch (RelaisStore  *store,
                            const char   *dossier_id,
                            guint32      *out_epoch,
                            GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && out_epoch != NULL, FALSE);
  return store->vtable->dossier_epoch (store, dossier_id, out_epoch, error);
}

gboolean
relais_store_is_member (RelaisStore  *store,
                        const char   *dossier_id,
                        const char   *user_id,
                        gboolean     *out_member,
                        GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && user_id != NULL && out_member != NULL, FALSE);
  return store->vtable->is_member (store, dossier_id, user_id, out_member, error);
}

gboolean
relais_store_dossier_keys (RelaisStore  *store,
                           const char   *dossier_id,
                           const char   *user_id,
                           GPtrArray   **out_keys,
                           GPtrArray   **out_members,
                           GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && user_id != NULL, FALSE);
  g_return_val_if_fail (out_keys != NULL && out_members != NULL, FALSE);
  return store->vtable->dossier_keys (store, dossier_id, user_id, out_keys, out_members, error);
}

gboolean
relais_store_dossier_share (RelaisStore  *store,
                            const char   *dossier_id,
                            const char   *user_id,
                            GPtrArray    *wrapped_keys,
                            GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && user_id != NULL && wrapped_keys != NULL, FALSE);
  g_return_val_if_fail (wrapped_keys_valid (wrapped_keys), FALSE);
  return store->vtable->dossier_share (store, dossier_id, user_id, wrapped_keys, error);
}

gboolean
relais_store_dossier_unshare (RelaisStore  *store,
                              const char   *dossier_id,
                              const char   *user_id,
                              guint32       new_epoch,
                              GPtrArray    *wrapped_keys,
                              GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && user_id != NULL && wrapped_keys != NULL, FALSE);
  g_return_val_if_fail (wrapped_keys_valid (wrapped_keys), FALSE);
  return store->vtable->dossier_unshare (store, dossier_id, user_id, new_epoch, wrapped_keys, error);
}

gboolean
relais_store_recovery_wraps (RelaisStore  *store,
                             const char   *user_id,
                             const char   *org,
                             GPtrArray   **out_keys,
                             GPtrArray   **out_dossiers,
                             GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (user_id != NULL && org != NULL, FALSE);
  g_return_val_if_fail (out_keys != NULL && out_dossiers != NULL, FALSE);
  return store->vtable->recovery_wraps (store, user_id, org, out_keys, out_dossiers, error);
}

RelaisStoreRecoveryMissing *
relais_store_recovery_missing_new (const char   *dossier_id,
                                   const char   *org,
                                   const guint8 *recovery_key)
{
  RelaisStoreRecoveryMissing *missing = g_new0 (RelaisStoreRecoveryMissing, 1);

  missing->dossier_id = g_strdup (dossier_id);
  missing->org = g_strdup (org);
  memcpy (missing->recovery_key, recovery_key, RELAIS_STORE_KEY_SIZE);
  missing->epochs = g_array_new (FALSE, FALSE, sizeof (guint32));
  return missing;
}

void
relais_store_recovery_missing_free (RelaisStoreRecoveryMissing *missing)
{
  if (missing == NULL)
    return;
  g_free (missing->dossier_id);
  g_free (missing->org);
  g_clear_pointer (&missing->epochs, g_array_unref);
  g_free (missing);
}

GPtrArray *
relais_store_recovery_missing (RelaisStore  *store,
                               const char   *user_id,
                               const char   *after_dossier,
                               const char   *after_org,
                               guint         limit,
                               GError      **error)
{
  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (user_id != NULL, NULL);
  g_return_val_if_fail ((after_dossier == NULL) == (after_org == NULL), NULL);
  g_return_val_if_fail (limit > 0, NULL);
  return store->vtable->recovery_missing (store, user_id, after_dossier, after_org, limit, error);
}

gboolean
relais_store_recovery_add (RelaisStore  *store,
                           const char   *dossier_id,
                           const char   *user_id,
                           const char   *org,
                           GPtrArray    *wrapped_keys,
                           GError      **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (dossier_id != NULL && user_id != NULL && org != NULL, FALSE);
  g_return_val_if_fail (wrapped_keys != NULL, FALSE);
  for (guint i = 0; i < wrapped_keys->len; i++)
    {
      const RelaisStoreWrappedKey *key = g_ptr_array_index (wrapped_keys, i);

      g_return_val_if_fail (key->user_id == NULL && key->wrapped_key != NULL, FALSE);
    }
  return store->vtable->recovery_add (store, dossier_id, user_id, org, wrapped_keys, error);
}

/* ---- Change sets ----------------------------------------------------- */

gboolean
relais_store_changeset_put (RelaisStore                 *store,
                            const RelaisStoreChangeset  *changeset,
                            gint64                       now,
                            guint64                     *out_seq,
                            gboolean                    *out_duplicate,
                            GError                     **error)
{
  g_return_val_if_fail (store != NULL, FALSE);
  g_return_val_if_fail (changeset != NULL, FALSE);
  g_return_val_if_fail (changeset->dossier_id != NULL && changeset->id != NULL, FALSE);
  g_return_val_if_fail (changeset->author_user != NULL && changeset->device_id != NULL, FALSE);
  g_return_val_if_fail (changeset->envelope != NULL, FALSE);
  g_return_val_if_fail (out_seq != NULL && out_duplicate != NULL, FALSE);
  return store->vtable->changeset_put (store, changeset, now, out_seq, out_duplicate, error);
}

RelaisStorePulled *
relais_store_pulled_new (guint64      vis,
                         guint64      seq,
                         const char  *dossier_id,
                         const void  *envelope,
                         gsize        len)
{
  RelaisStorePulled *pulled = g_new0 (RelaisStorePulled, 1);

  pulled->position.vis = vis;
  pulled->position.seq = seq;
  pulled->dossier_id = g_strdup (dossier_id);
  pulled->envelope = g_bytes_new (envelope, len);
  return pulled;
}

void
relais_store_pulled_free (RelaisStorePulled *pulled)
{
  if (pulled == NULL)
    return;
  g_free (pulled->dossier_id);
  g_clear_pointer (&pulled->envelope, g_bytes_unref);
  g_free (pulled);
}

GPtrArray *
relais_store_changeset_pull (RelaisStore              *store,
                             const char               *user_id,
                             const char               *exclude_device,
                             const RelaisStoreCursor  *after,
                             guint                     limit,
                             gsize                     max_bytes,
                             gboolean                 *out_more,
                             GError                  **error)
{
  static const RelaisStoreCursor start = { 0, 0 };

  g_return_val_if_fail (store != NULL, NULL);
  g_return_val_if_fail (user_id != NULL && out_more != NULL, NULL);
  g_return_val_if_fail (limit > 0, NULL);
  return store->vtable->changeset_pull (store, user_id, exclude_device,
                                        after != NULL ? after : &start,
                                        limit, max_bytes, out_more, error);
}
