#pragma once

#include <glib.h>
#include <sodium.h>

#include "relais-keyfile.h"
#include "relais-sync-error.h"

G_BEGIN_DECLS

/* Keys of the sync layer (PROTOCOL.md, "Identities and keys").  Secret
 * halves live in sodium_malloc memory and are wiped when freed. */

typedef struct {
  guint8 box_pk[crypto_box_PUBLICKEYBYTES];    /* X25519, dossier keys are wrapped to it */
  guint8 box_sk[crypto_box_SECRETKEYBYTES];
  guint8 sign_pk[crypto_sign_PUBLICKEYBYTES];  /* Ed25519, signs change sets */
  guint8 sign_sk[crypto_sign_SECRETKEYBYTES];
} RelaisUserKeys;

RelaisUserKeys *relais_user_keys_generate (void);
void            relais_user_keys_free     (RelaisUserKeys *keys);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisUserKeys, relais_user_keys_free)

/* The device's own Ed25519 key: it signs requests, never change sets. */
typedef struct {
  guint8 pk[crypto_sign_PUBLICKEYBYTES];
  guint8 sk[crypto_sign_SECRETKEYBYTES];
} RelaisDeviceKey;

RelaisDeviceKey *relais_device_key_generate (void);
void             relais_device_key_free     (RelaisDeviceKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisDeviceKey, relais_device_key_free)

/* A new random dossier key (32 bytes of guarded memory); free it with
 * relais_dossier_key_free(). */
guint8  *relais_dossier_key_new    (void);
void     relais_dossier_key_free   (guint8 *key);

#define RELAIS_WRAPPED_DOSSIER_KEY_SIZE (crypto_box_SEALBYTES + 4 + 1 + 1 + 64 + 4 + 32)

/* Seals @key (of @dossier at @epoch) to the X25519 public key @box_pk of a
 * member or of the organisation's recovery key.  The dossier id and epoch
 * are sealed with it, so a wrapped key cannot be passed off as another
 * dossier's. */
GBytes  *relais_dossier_key_wrap   (const guint8 *key,
                                    const char   *dossier,
                                    guint32       epoch,
                                    const guint8 *box_pk);
/* Opens a wrapped key with the member's pair; checks it is @dossier's at
 * @epoch.  Returns guarded memory (relais_dossier_key_free()). */
G_GNUC_WARN_UNUSED_RESULT
guint8  *relais_dossier_key_unwrap (const guint8 *wrapped,
                                    gsize         len,
                                    const char   *dossier,
                                    guint32       epoch,
                                    const guint8 *box_pk,
                                    const guint8 *box_sk,
                                    GError      **error);

/* The user's key pair wrapped by a key derived from their passphrase with
 * Argon2id, the parameters and salt stored with it: what the server keeps
 * so that a new laptop finds the user's identity again. */
GBytes  *relais_user_keys_wrap     (const RelaisUserKeys   *keys,
                                    const char             *passphrase,
                                    const RelaisKdfParams  *params,
                                    GError                **error);
G_GNUC_WARN_UNUSED_RESULT
RelaisUserKeys *relais_user_keys_unwrap (const guint8 *wrapped,
                                         gsize         len,
                                         const char   *passphrase,
                                         GError      **error);

G_END_DECLS
