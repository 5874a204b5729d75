#define G_LOG_DOMAIN "relais-keyfile"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "relais-error.h"
#include "relais-keyfile.h"

/*
 * vault.key, 256 bytes, integers little-endian:
 *
 *    0  magic "RELAISKF"
 *    8  format version (1)
 *   12  database id (16)              associated data of every page
 *   28  KDF algorithm (Argon2id13)
 *   32  opslimit (u64)
 *   40  memlimit (u64)
 *   48  salt (16)
 *   64  passphrase slot: nonce (24), wrapped data key (32 + 16)
 *  136  recovery slot:   nonce (24), wrapped data key (32 + 16)
 *  208  BLAKE2b MAC of bytes 0–207, keyed by a subkey of the data key
 *  240  BLAKE2b-128 checksum of bytes 0–239, unkeyed
 *
 * The passphrase slot binds bytes 0–63 (so the parameters and salt cannot
 * be swapped); the recovery slot binds bytes 0–27 only, so that changing
 * the passphrase leaves it untouched.  The MAC catches a change anywhere,
 * including in the slot that was not used to unlock.  The unkeyed checksum
 * tells a damaged file from a wrong passphrase before any unwrapping, so a
 * person is not sent to retype a passphrase that was right.
 */

#define MAGIC            "RELAISKF"
#define FORMAT_VERSION   1
#define SALT_BYTES       crypto_pwhash_SALTBYTES
#define SLOT_NONCE       crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SLOT_CT          (RELAIS_KEY_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define OFF_DB_ID        12
#define OFF_ALG          28
#define OFF_OPS          32
#define OFF_MEM          40
#define OFF_SALT         48
#define OFF_PASS_SLOT    64
#define OFF_RECOVERY     (OFF_PASS_SLOT + SLOT_NONCE + SLOT_CT)
#define OFF_MAC          (OFF_RECOVERY + SLOT_NONCE + SLOT_CT)
#define MAC_BYTES        32
#define OFF_CHECK        (OFF_MAC + MAC_BYTES)
#define CHECK_BYTES      16
#define KEYFILE_SIZE     (OFF_CHECK + CHECK_BYTES)
#define RECOVERY_CHECK   2
#define RECOVERY_BYTES   (RELAIS_KEY_BYTES + RECOVERY_CHECK)

G_STATIC_ASSERT (SALT_BYTES == 16);
G_STATIC_ASSERT (KEYFILE_SIZE == 256);

struct _RelaisKeyfile
{
  char   *dir;
  guint8  image[KEYFILE_SIZE];
  /* sodium_malloc */
  guint8 *data_key;
};

void
relais_kdf_params_default (RelaisKdfParams *params)
{
  params->opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
  params->memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
}

void
relais_kdf_params_insecure_for_tests (RelaisKdfParams *params)
{
  params->opslimit = crypto_pwhash_OPSLIMIT_MIN;
  params->memlimit = crypto_pwhash_MEMLIMIT_MIN;
}

static void
put_le32 (guint8 *p, guint32 v)
{
  for (guint i = 0; i < 4; i++)
    p[i] = (guint8) (v >> (8 * i));
}

static void
put_le64 (guint8 *p, guint64 v)
{
  for (guint i = 0; i < 8; i++)
    p[i] = (guint8) (v >> (8 * i));
}

static guint32
get_le32 (const guint8 *p)
{
  guint32 v = 0;
  for (guint i = 0; i < 4; i++)
    v |= (guint32) p[i] << (8 * i);
  return v;
}

static guint64
get_le64 (const guint8 *p)
{
  guint64 v = 0;
  for (guint i = 0; i < 8; i++)
    v |= (guint64) p[i] << (8 * i);
  return v;
}

static RelaisKeyfile *
keyfile_new (const char *dir)
{
  RelaisKeyfile *self = g_new0 (RelaisKeyfile, 1);

  self->dir = g_strdup (dir);
  self->data_key = sodium_malloc (RELAIS_KEY_BYTES);
  g_assert (self->data_key != NULL);
  return self;
}

void
relais_keyfile_free (RelaisKeyfile *self)
{
  if (self == NULL)
    return;

  sodium_free (self->data_key);
  sodium_memzero (self->image, sizeof self->image);
  g_free (self->dir);
  g_free (self);
}

const guint8 *
relais_keyfile_get_db_id (RelaisKeyfile *self)
{
  return self->image + OFF_DB_ID;
}

const guint8 *
relais_keyfile_get_data_key (RelaisKeyfile *self)
{
  return self->data_key;
}

void
relais_keyfile_get_kdf_params (RelaisKeyfile   *self,
                               RelaisKdfParams *params)
{
  params->opslimit = get_le64 (self->image + OFF_OPS);
  params->memlimit = (gsize) get_le64 (self->image + OFF_MEM);
}

static void
compute_check (const guint8 *image,
               guint8        check[CHECK_BYTES])
{
  crypto_generichash (check, CHECK_BYTES, image, OFF_CHECK, NULL, 0);
}

static void
compute_mac (const guint8 *image,
             const guint8 *data_key,
             guint8        mac[MAC_BYTES])
{
  guint8 *mac_key = sodium_malloc (RELAIS_KEY_BYTES);

  g_assert (mac_key != NULL);
  crypto_kdf_derive_from_key (mac_key, RELAIS_KEY_BYTES, 3, "RelaisKf", data_key);
  crypto_generichash (mac, MAC_BYTES, image, OFF_MAC, mac_key, RELAIS_KEY_BYTES);
  sodium_free (mac_key);
}

/* Wraps or unwraps the data key in the slot at @offset with @kek. */
static void
slot_wrap (guint8       *image,
           gsize         offset,
           gsize         ad_len,
           const guint8 *kek,
           const guint8 *data_key)
{
  guint8 *nonce = image + offset;

  randombytes_buf (nonce, SLOT_NONCE);
  crypto_aead_xchacha20poly1305_ietf_encrypt (image + offset + SLOT_NONCE, NULL,
                                              data_key, RELAIS_KEY_BYTES,
                                              image, ad_len, NULL, nonce, kek);
}

G_GNUC_WARN_UNUSED_RESULT
static gboolean
slot_unwrap (const guint8 *image,
             gsize         offset,
             gsize         ad_len,
             const guint8 *kek,
             guint8       *data_key)
{
  return crypto_aead_xchacha20poly1305_ietf_decrypt (data_key, NULL, NULL,
                                                     image + offset + SLOT_NONCE, SLOT_CT,
                                                     image, ad_len,
                                                     image + offset, kek) == 0;
}

static gboolean
derive_passphrase_kek (const guint8  *image,
                       const char    *passphrase,
                       guint8        *kek,
                       GError       **error)
{
  if (crypto_pwhash (kek, RELAIS_KEY_BYTES, passphrase, strlen (passphrase),
                     image + OFF_SALT,
                     get_le64 (image + OFF_OPS),
                     (size_t) get_le64 (image + OFF_MEM),
                     (int) get_le32 (image + OFF_ALG)) != 0)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                           _("Not enough memory to derive the key from the passphrase"));
      return FALSE;
    }
  return TRUE;
}

static void
derive_recovery_kek (const guint8 *recovery,
                     guint8       *kek)
{
  crypto_kdf_derive_from_key (kek, RELAIS_KEY_BYTES, 1, "RelaisRc", recovery);
}

static gboolean
fsync_dir (const char  *dir,
           GError     **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int saved;

  if (fd < 0)
    goto fail;
  if (fsync (fd) != 0 && errno != EINVAL)
    {
      saved = errno;
      close (fd);
      errno = saved;
      goto fail;
    }
  close (fd);
  return TRUE;

fail:
  g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_IO,
               _("Could not sync the vault directory: %s"), g_strerror (errno));
  return FALSE;
}

/* The test suite kills the process at these points to check that a
 * passphrase change is atomic (tests/test-cli.c). */
static gboolean
crash_point (const char *name)
{
  return g_strcmp0 (g_getenv ("RELAIS_TEST_CRASH_POINT"), name) == 0;
}

/* Replaces @dir/vault.key with @image: a new file, synced, renamed over
 * the old one, then the directory synced.  A crash at any instant leaves
 * the old file or the new one, never a mix. */
static gboolean
write_image (const char    *dir,
             const guint8  *image,
             GError       **error)
{
  g_autofree char *path = g_build_filename (dir, RELAIS_KEYFILE_NAME, NULL);
  g_autofree char *tmp = g_strconcat (path, ".new", NULL);
  gsize done = 0;
  int fd;

  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    goto fail;

  if (G_UNLIKELY (crash_point ("keyfile-partial")))
    {
      if (write (fd, image, KEYFILE_SIZE / 2) > 0)
        fsync (fd);
      raise (SIGKILL);
    }

  while (done < KEYFILE_SIZE)
    {
      ssize_t n = write (fd, image + done, KEYFILE_SIZE - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int saved = errno ? errno : ENOSPC;
          close (fd);
          g_unlink (tmp);
          errno = saved;
          goto fail;
        }
      done += (gsize) n;
    }
  if (fsync (fd) != 0)
    {
      int saved = errno;
      close (fd);
      g_unlink (tmp);
      errno = saved;
      goto fail;
    }
  close (fd);

  if (G_UNLIKELY (crash_point ("keyfile-synced")))
    raise (SIGKILL);

  if (rename (tmp, path) != 0)
    {
      int saved = errno;
      g_unlink (tmp);
      errno = saved;
      goto fail;
    }

  if (G_UNLIKELY (crash_point ("keyfile-renamed")))
    raise (SIGKILL);

  return fsync_dir (dir, error);

fail:
  g_set_error (error, RELAIS_VAULT_ERROR,
               errno == ENOSPC ? RELAIS_VAULT_ERROR_FULL : RELAIS_VAULT_ERROR_IO,
               errno == ENOSPC ? _("The disk is full: the vault's key file could not be written")
                               : _("Could not write the vault's key file: %s"),
               g_strerror (errno));
  return FALSE;
}

static char *
format_recovery_key (const guint8 key[RELAIS_KEY_BYTES])
{
  static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  guint8 raw[RECOVERY_BYTES];
  GString *out = g_string_new (NULL);
  guint bits = 0, value = 0, n = 0;

  memcpy (raw, key, RELAIS_KEY_BYTES);
  crypto_generichash (raw + RELAIS_KEY_BYTES, RECOVERY_CHECK, key, RELAIS_KEY_BYTES, NULL, 0);

  for (gsize i = 0; i < RECOVERY_BYTES; i++)
    {
      value = (value << 8) | raw[i];
      bits += 8;
      while (bits >= 5)
        {
          if (n > 0 && n % 5 == 0)
            g_string_append_c (out, '-');
          g_string_append_c (out, alphabet[(value >> (bits - 5)) & 31]);
          bits -= 5;
          n++;
        }
    }
  if (bits > 0)
    {
      if (n % 5 == 0)
        g_string_append_c (out, '-');
      g_string_append_c (out, alphabet[(value << (5 - bits)) & 31]);
    }
  sodium_memzero (raw, sizeof raw);
  return g_string_free (out, FALSE);
}

/* Reads a recovery key as a person may type it: any case, with or without
 * dashes and spaces, O for 0 and I or L for 1. */
static gboolean
parse_recovery_key (const char *text,
                    guint8      key[RELAIS_KEY_BYTES])
{
  guint8 raw[RECOVERY_BYTES] = { 0 };
  guint8 check[RECOVERY_CHECK];
  guint bits = 0, value = 0;
  gsize len = 0;
  gboolean ok;

  for (const char *p = text; *p != '\0'; p++)
    {
      char c = g_ascii_toupper (*p);
      const char *alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
      const char *pos;

      if (c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
        continue;
      if (c == 'O')
        c = '0';
      else if (c == 'I' || c == 'L')
        c = '1';
      pos = strchr (alphabet, c);
      if (pos == NULL || c == '\0')
        return FALSE;
      value = (value << 5) | (guint) (pos - alphabet);
      bits += 5;
      if (bits >= 8)
        {
          if (len >= RECOVERY_BYTES)
            return FALSE;
          raw[len++] = (guint8) (value >> (bits - 8));
          bits -= 8;
        }
      value &= 0xff;
    }
  if (len != RECOVERY_BYTES)
    return FALSE;

  crypto_generichash (check, sizeof check, raw, RELAIS_KEY_BYTES, NULL, 0);
  ok = sodium_memcmp (check, raw + RELAIS_KEY_BYTES, RECOVERY_CHECK) == 0;
  if (ok)
    memcpy (key, raw, RELAIS_KEY_BYTES);
  sodium_memzero (raw, sizeof raw);
  return ok;
}

RelaisKeyfile *
relais_keyfile_create (const char             *dir,
                       const char             *passphrase,
                       const RelaisKdfParams  *params,
                       char                  **out_recovery_key,
                       GError                **error)
{
  g_autoptr(RelaisKeyfile) self = NULL;
  g_autofree char *path = NULL;
  RelaisKdfParams defaults;
  guint8 *kek;
  guint8 *recovery;

  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (passphrase != NULL, NULL);

  if (sodium_init () < 0)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                           _("The cryptography library could not start"));
      return NULL;
    }

  if (params == NULL)
    {
      relais_kdf_params_default (&defaults);
      params = &defaults;
    }

  path = g_build_filename (dir, RELAIS_KEYFILE_NAME, NULL);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_EXISTS,
                   _("A vault already exists in %s"), dir);
      return NULL;
    }

  self = keyfile_new (dir);
  randombytes_buf (self->data_key, RELAIS_KEY_BYTES);

  memcpy (self->image, MAGIC, 8);
  put_le32 (self->image + 8, FORMAT_VERSION);
  randombytes_buf (self->image + OFF_DB_ID, RELAIS_DB_ID_BYTES);
  put_le32 (self->image + OFF_ALG, crypto_pwhash_ALG_ARGON2ID13);
  put_le64 (self->image + OFF_OPS, params->opslimit);
  put_le64 (self->image + OFF_MEM, params->memlimit);
  randombytes_buf (self->image + OFF_SALT, SALT_BYTES);

  kek = sodium_malloc (RELAIS_KEY_BYTES);
  recovery = sodium_malloc (RELAIS_KEY_BYTES);
  g_assert (kek != NULL && recovery != NULL);

  if (!derive_passphrase_kek (self->image, passphrase, kek, error))
    {
      sodium_free (kek);
      sodium_free (recovery);
      return NULL;
    }
  slot_wrap (self->image, OFF_PASS_SLOT, OFF_PASS_SLOT, kek, self->data_key);

  randombytes_buf (recovery, RELAIS_KEY_BYTES);
  derive_recovery_kek (recovery, kek);
  slot_wrap (self->image, OFF_RECOVERY, OFF_ALG, kek, self->data_key);
  compute_mac (self->image, self->data_key, self->image + OFF_MAC);
  compute_check (self->image, self->image + OFF_CHECK);
  sodium_free (kek);

  if (!write_image (dir, self->image, error))
    {
      sodium_free (recovery);
      return NULL;
    }

  if (out_recovery_key != NULL)
    *out_recovery_key = format_recovery_key (recovery);
  sodium_free (recovery);

  return g_steal_pointer (&self);
}

static RelaisKeyfile *
keyfile_load (const char  *dir,
              GError     **error)
{
  g_autoptr(RelaisKeyfile) self = NULL;
  g_autofree char *path = NULL;
  g_autofree char *tmp = NULL;
  g_autofree guint8 *contents = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize length = 0;
  guint64 ops, mem;

  if (sodium_init () < 0)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_FAILED,
                           _("The cryptography library could not start"));
      return NULL;
    }

  path = g_build_filename (dir, RELAIS_KEYFILE_NAME, NULL);
  if (!g_file_get_contents (path, (char **) &contents, &length, &local_error))
    {
      if (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NO_VAULT,
                     _("No vault in %s: create one with 'relaisctl init'"), dir);
      else
        g_set_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_IO,
                     _("Could not read the vault's key file: %s"), local_error->message);
      return NULL;
    }

  /* A passphrase change killed before its rename leaves this behind; the
   * key file in place is complete, so the leftover goes. */
  tmp = g_strconcat (path, ".new", NULL);
  g_unlink (tmp);

  if (length != KEYFILE_SIZE || memcmp (contents, MAGIC, 8) != 0)
    goto damaged;
  {
    guint8 check[CHECK_BYTES];

    compute_check (contents, check);
    if (memcmp (check, contents + OFF_CHECK, CHECK_BYTES) != 0)
      goto damaged;
  }
  if (get_le32 (contents + 8) > FORMAT_VERSION)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("The vault was made by a newer version of Relais"));
      return NULL;
    }
  if (get_le32 (contents + 8) != FORMAT_VERSION)
    goto damaged;

  /* Bounds, so that a damaged file cannot make us spend hours or all the
   * memory before the MAC has a chance to reject it. */
  ops = get_le64 (contents + OFF_OPS);
  mem = get_le64 (contents + OFF_MEM);
  if (get_le32 (contents + OFF_ALG) != crypto_pwhash_ALG_ARGON2ID13 ||
      ops < crypto_pwhash_OPSLIMIT_MIN || ops > 64 ||
      mem < crypto_pwhash_MEMLIMIT_MIN || mem > (G_GUINT64_CONSTANT (4) << 30))
    goto damaged;

  self = keyfile_new (dir);
  memcpy (self->image, contents, KEYFILE_SIZE);
  return g_steal_pointer (&self);

damaged:
  g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                       _("The vault's key file is damaged: unlock it with a backup of vault.key"));
  return NULL;
}

static gboolean
check_mac (RelaisKeyfile  *self,
           GError        **error)
{
  guint8 mac[MAC_BYTES];

  compute_mac (self->image, self->data_key, mac);
  if (sodium_memcmp (mac, self->image + OFF_MAC, MAC_BYTES) != 0)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("The vault's key file is damaged: unlock it with a backup of vault.key"));
      return FALSE;
    }
  return TRUE;
}

RelaisKeyfile *
relais_keyfile_unlock (const char  *dir,
                       const char  *passphrase,
                       GError     **error)
{
  g_autoptr(RelaisKeyfile) self = NULL;
  guint8 *kek;
  gboolean ok;

  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (passphrase != NULL, NULL);

  self = keyfile_load (dir, error);
  if (self == NULL)
    return NULL;

  kek = sodium_malloc (RELAIS_KEY_BYTES);
  g_assert (kek != NULL);
  if (!derive_passphrase_kek (self->image, passphrase, kek, error))
    {
      sodium_free (kek);
      return NULL;
    }
  ok = slot_unwrap (self->image, OFF_PASS_SLOT, OFF_PASS_SLOT, kek, self->data_key);
  sodium_free (kek);

  if (!ok)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE,
                           _("Wrong passphrase"));
      return NULL;
    }
  if (!check_mac (self, error))
    return NULL;

  return g_steal_pointer (&self);
}

RelaisKeyfile *
relais_keyfile_unlock_recovery (const char  *dir,
                                const char  *recovery_key,
                                GError     **error)
{
  g_autoptr(RelaisKeyfile) self = NULL;
  guint8 *kek;
  guint8 *recovery;
  gboolean ok;

  g_return_val_if_fail (dir != NULL, NULL);
  g_return_val_if_fail (recovery_key != NULL, NULL);

  self = keyfile_load (dir, error);
  if (self == NULL)
    return NULL;

  kek = sodium_malloc (RELAIS_KEY_BYTES);
  recovery = sodium_malloc (RELAIS_KEY_BYTES);
  g_assert (kek != NULL && recovery != NULL);

  ok = parse_recovery_key (recovery_key, recovery);
  if (ok)
    {
      derive_recovery_kek (recovery, kek);
      ok = slot_unwrap (self->image, OFF_RECOVERY, OFF_ALG, kek, self->data_key);
    }
  sodium_free (recovery);
  sodium_free (kek);

  if (!ok)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE,
                           _("Wrong recovery key"));
      return NULL;
    }
  if (!check_mac (self, error))
    return NULL;

  return g_steal_pointer (&self);
}

gboolean
relais_keyfile_rewrap (RelaisKeyfile          *self,
                       const char             *new_passphrase,
                       const RelaisKdfParams  *params,
                       GError                **error)
{
  guint8 image[KEYFILE_SIZE];
  RelaisKdfParams current;
  guint8 *kek;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (new_passphrase != NULL, FALSE);

  if (params == NULL)
    {
      relais_keyfile_get_kdf_params (self, &current);
      params = &current;
    }

  memcpy (image, self->image, KEYFILE_SIZE);
  put_le64 (image + OFF_OPS, params->opslimit);
  put_le64 (image + OFF_MEM, params->memlimit);
  randombytes_buf (image + OFF_SALT, SALT_BYTES);

  kek = sodium_malloc (RELAIS_KEY_BYTES);
  g_assert (kek != NULL);
  if (!derive_passphrase_kek (image, new_passphrase, kek, error))
    {
      sodium_free (kek);
      return FALSE;
    }
  slot_wrap (image, OFF_PASS_SLOT, OFF_PASS_SLOT, kek, self->data_key);
  sodium_free (kek);
  compute_mac (image, self->data_key, image + OFF_MAC);
  compute_check (image, image + OFF_CHECK);

  if (!write_image (self->dir, image, error))
    return FALSE;

  memcpy (self->image, image, KEYFILE_SIZE);
  return TRUE;
}
