#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <string.h>

#include "relais-changeset.h"
#include "relais-keys.h"

/* Wrapped dossier key: crypto_box_seal of
 *   "RLDK" | version 1 | D | dossier id padded with zeros to 64 | epoch u32 LE | key 32
 * The fixed padding keeps every wrapped key the same size. */
#define DK_MAGIC "RLDK"
#define DK_PLAIN (4 + 1 + 1 + 64 + 4 + 32)
G_STATIC_ASSERT (RELAIS_WRAPPED_DOSSIER_KEY_SIZE == crypto_box_SEALBYTES + DK_PLAIN);

/* Wrapped user keys (PROTOCOL.md, "The user's key pair on the server"):
 *    0  4  "RLUK"
 *    4  1  version 1
 *    5  1  algorithm (crypto_pwhash_ALG_ARGON2ID13)
 *    6  2  reserved 0
 *    8  8  opslimit u64 LE
 *   16  8  memlimit u64 LE
 *   24 16  salt
 *   40 32  X25519 public key
 *   72 32  Ed25519 public key
 *  104 24  nonce
 *  128 80  XChaCha20-Poly1305 of (X25519 secret 32 | Ed25519 seed 32), AD bytes [0, 128)
 */
#define UK_MAGIC "RLUK"
#define UK_HEAD  128
#define UK_SIZE  (UK_HEAD + 64 + crypto_aead_xchacha20poly1305_ietf_ABYTES)
/* A hostile server must not make a device spend minutes or gigabytes. */
#define UK_MAX_OPSLIMIT 32
#define UK_MAX_MEMLIMIT ((guint64) 2 << 30)

static void
put_u64 (guint8 *p, guint64 v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (guint8) (v >> (8 * i));
}

static guint64
get_u64 (const guint8 *p)
{
  guint64 v = 0;

  for (int i = 0; i < 8; i++)
    v |= (guint64) p[i] << (8 * i);
  return v;
}

static gpointer
guarded_new (gsize size)
{
  gpointer p = sodium_malloc (size);

  if (p == NULL)
    g_error ("Out of guarded memory");
  return p;
}

RelaisUserKeys *
relais_user_keys_generate (void)
{
  RelaisUserKeys *keys = guarded_new (sizeof *keys);

  crypto_box_keypair (keys->box_pk, keys->box_sk);
  crypto_sign_keypair (keys->sign_pk, keys->sign_sk);
  return keys;
}

void
relais_user_keys_free (RelaisUserKeys *keys)
{
  /* sodium_free wipes before it releases. */
  if (keys != NULL)
    sodium_free (keys);
}

RelaisDeviceKey *
relais_device_key_generate (void)
{
  RelaisDeviceKey *key = guarded_new (sizeof *key);

  crypto_sign_keypair (key->pk, key->sk);
  return key;
}

void
relais_device_key_free (RelaisDeviceKey *key)
{
  if (key != NULL)
    sodium_free (key);
}

/* Dossier keys come from guarded slabs of DK_SLAB_KEYS keys rather than a
 * sodium_malloc() each: a fresh device's first pull unwraps and reads back
 * a key per dossier, and a guarded allocation costs three mappings, a lock
 * of memory and as many system calls to undo, which made a tenth of the
 * pull.  The slabs are guarded and locked the same way; a freed key is
 * wiped at once and its slot reused.  Slabs stay for the process's life:
 * as many as the most keys ever held at once. */
#define DK_SLAB_KEYS 128

G_LOCK_DEFINE_STATIC (dk_slabs);
static GPtrArray *dk_free_slots;   /* guint8 * of RELAIS_DOSSIER_KEY_SIZE bytes */

static guint8 *
dk_alloc (void)
{
  guint8 *key;

  G_LOCK (dk_slabs);
  if (dk_free_slots == NULL)
    dk_free_slots = g_ptr_array_new ();
  if (dk_free_slots->len == 0)
    {
      guint8 *slab = guarded_new (DK_SLAB_KEYS * RELAIS_DOSSIER_KEY_SIZE);

      for (guint i = DK_SLAB_KEYS; i > 0; i--)
        g_ptr_array_add (dk_free_slots, slab + (i - 1) * RELAIS_DOSSIER_KEY_SIZE);
    }
  key = g_ptr_array_steal_index_fast (dk_free_slots, dk_free_slots->len - 1);
  G_UNLOCK (dk_slabs);
  return key;
}

guint8 *
relais_dossier_key_new (void)
{
  guint8 *key = dk_alloc ();

  crypto_aead_xchacha20poly1305_ietf_keygen (key);
  return key;
}

void
relais_dossier_key_free (guint8 *key)
{
  if (key == NULL)
    return;
  sodium_memzero (key, RELAIS_DOSSIER_KEY_SIZE);
  G_LOCK (dk_slabs);
  g_ptr_array_add (dk_free_slots, key);
  G_UNLOCK (dk_slabs);
}

/* The unwrapped plaintext, in a guarded buffer of each thread's own
 * (freed when the thread ends), wiped after every use. */
static GPrivate dk_scratch = G_PRIVATE_INIT (sodium_free);

static guint8 *
dk_scratch_get (void)
{
  guint8 *plain = g_private_get (&dk_scratch);

  if (plain == NULL)
    {
      plain = guarded_new (DK_PLAIN);
      g_private_set (&dk_scratch, plain);
    }
  return plain;
}

static void
dk_plain (guint8 *p, const char *dossier, guint32 epoch, const guint8 *key)
{
  gsize dlen = strlen (dossier);

  memset (p, 0, DK_PLAIN);
  memcpy (p, DK_MAGIC, 4);
  p[4] = 1;
  p[5] = (guint8) dlen;
  memcpy (p + 6, dossier, dlen);
  p[70] = epoch; p[71] = epoch >> 8; p[72] = epoch >> 16; p[73] = epoch >> 24;
  if (key != NULL)
    memcpy (p + 74, key, 32);
}

GBytes *
relais_dossier_key_wrap (const guint8 *key,
                         const char   *dossier,
                         guint32       epoch,
                         const guint8 *box_pk)
{
  guint8 *plain;
  guint8 *out;

  g_return_val_if_fail (key != NULL && dossier != NULL && box_pk != NULL, NULL);
  g_return_val_if_fail (strlen (dossier) > 0 && strlen (dossier) <= 64, NULL);

  plain = dk_scratch_get ();
  dk_plain (plain, dossier, epoch, key);
  out = g_malloc (RELAIS_WRAPPED_DOSSIER_KEY_SIZE);
  crypto_box_seal (out, plain, DK_PLAIN, box_pk);
  sodium_memzero (plain, DK_PLAIN);
  return g_bytes_new_take (out, RELAIS_WRAPPED_DOSSIER_KEY_SIZE);
}

guint8 *
relais_dossier_key_unwrap (const guint8 *wrapped,
                           gsize         len,
                           const char   *dossier,
                           guint32       epoch,
                           const guint8 *box_pk,
                           const guint8 *box_sk,
                           GError      **error)
{
  guint8 *plain;
  guint8 expect[DK_PLAIN];
  guint8 *key;

  g_return_val_if_fail (dossier != NULL && box_pk != NULL && box_sk != NULL, NULL);

  if (wrapped == NULL || len != RELAIS_WRAPPED_DOSSIER_KEY_SIZE || strlen (dossier) > 64)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                           "The wrapped dossier key is not well formed.");
      return NULL;
    }
  plain = dk_scratch_get ();
  if (crypto_box_seal_open (plain, wrapped, len, box_pk, box_sk) != 0)
    {
      sodium_memzero (plain, DK_PLAIN);
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SEAL,
                           "The dossier key is not wrapped for this user.");
      return NULL;
    }
  dk_plain (expect, dossier, epoch, NULL);
  if (sodium_memcmp (plain, expect, 74) != 0)
    {
      sodium_memzero (plain, DK_PLAIN);
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_DOSSIER_MISMATCH,
                           "The wrapped key belongs to another dossier or key epoch.");
      return NULL;
    }
  key = dk_alloc ();
  memcpy (key, plain + 74, RELAIS_DOSSIER_KEY_SIZE);
  sodium_memzero (plain, DK_PLAIN);
  return key;
}

static gboolean
derive (guint8 *out, const char *passphrase, const guint8 *salt,
        guint64 opslimit, guint64 memlimit, GError **error)
{
  if (crypto_pwhash (out, 32, passphrase, strlen (passphrase), salt,
                     opslimit, (size_t) memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_FAILED,
                           "Not enough memory to derive the key from the passphrase.");
      return FALSE;
    }
  return TRUE;
}

GBytes *
relais_user_keys_wrap (const RelaisUserKeys   *keys,
                       const char             *passphrase,
                       const RelaisKdfParams  *params,
                       GError                **error)
{
  guint8 *out, *kek, *secret;

  g_return_val_if_fail (keys != NULL && passphrase != NULL && params != NULL, NULL);

  out = g_malloc0 (UK_SIZE);
  kek = guarded_new (32);
  secret = guarded_new (64);

  memcpy (out, UK_MAGIC, 4);
  out[4] = 1;
  out[5] = crypto_pwhash_ALG_ARGON2ID13;
  put_u64 (out + 8, params->opslimit);
  put_u64 (out + 16, params->memlimit);
  randombytes_buf (out + 24, 16);
  memcpy (out + 40, keys->box_pk, 32);
  memcpy (out + 72, keys->sign_pk, 32);
  randombytes_buf (out + 104, 24);

  if (!derive (kek, passphrase, out + 24, params->opslimit, params->memlimit, error))
    {
      sodium_free (kek);
      sodium_free (secret);
      g_free (out);
      return NULL;
    }
  memcpy (secret, keys->box_sk, 32);
  /* libsodium's Ed25519 secret key is seed | public key. */
  memcpy (secret + 32, keys->sign_sk, 32);
  crypto_aead_xchacha20poly1305_ietf_encrypt (out + UK_HEAD, NULL, secret, 64,
                                              out, UK_HEAD, NULL, out + 104, kek);
  sodium_free (kek);
  sodium_free (secret);
  return g_bytes_new_take (out, UK_SIZE);
}

RelaisUserKeys *
relais_user_keys_unwrap (const guint8 *wrapped,
                         gsize         len,
                         const char   *passphrase,
                         GError      **error)
{
  guint64 opslimit, memlimit;
  guint8 *kek;
  guint8 *secret;
  RelaisUserKeys *keys;
  guint8 check_pk[32];
  int rc;

  g_return_val_if_fail (passphrase != NULL, NULL);

  if (wrapped == NULL || len != UK_SIZE || memcmp (wrapped, UK_MAGIC, 4) != 0
      || wrapped[4] != 1 || wrapped[5] != crypto_pwhash_ALG_ARGON2ID13
      || wrapped[6] != 0 || wrapped[7] != 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                           "The wrapped user keys are not well formed.");
      return NULL;
    }
  opslimit = get_u64 (wrapped + 8);
  memlimit = get_u64 (wrapped + 16);
  if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > UK_MAX_OPSLIMIT
      || memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > UK_MAX_MEMLIMIT)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                           "The wrapped user keys ask for key derivation parameters out of bounds.");
      return NULL;
    }
  kek = guarded_new (32);
  if (!derive (kek, passphrase, wrapped + 24, opslimit, memlimit, error))
    {
      sodium_free (kek);
      return NULL;
    }
  secret = guarded_new (64);
  rc = crypto_aead_xchacha20poly1305_ietf_decrypt (secret, NULL, NULL,
                                                   wrapped + UK_HEAD, len - UK_HEAD,
                                                   wrapped, UK_HEAD, wrapped + 104, kek);
  sodium_free (kek);
  if (rc != 0)
    {
      sodium_free (secret);
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_BAD_PASSPHRASE,
                           "The passphrase is not the right one.");
      return NULL;
    }
  keys = guarded_new (sizeof *keys);
  memcpy (keys->box_sk, secret, 32);
  crypto_sign_seed_keypair (keys->sign_pk, keys->sign_sk, secret + 32);
  sodium_free (secret);
  crypto_scalarmult_base (keys->box_pk, keys->box_sk);
  /* The public keys in clear are bound as associated data; checking them
   * against the secrets too catches a wrapper that was built wrong. */
  memcpy (check_pk, wrapped + 40, 32);
  if (sodium_memcmp (check_pk, keys->box_pk, 32) != 0
      || sodium_memcmp (wrapped + 72, keys->sign_pk, 32) != 0)
    {
      relais_user_keys_free (keys);
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                           "The wrapped user keys do not match their public keys.");
      return NULL;
    }
  return keys;
}
