#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <string.h>

#include "relais-changeset.h"
#include "relais-changeset-private.h"

G_DEFINE_QUARK (relais-sync-error-quark, relais_sync_error)

/* Envelope, version 1 (PROTOCOL.md): integers little-endian.
 *
 *    0   4  magic "RLCS"
 *    4   1  version
 *    5   1  flags (0)
 *    6   2  reserved (0)
 *    8  16  change-set id
 *   24   4  key epoch
 *   28  32  author's Ed25519 public key
 *   60  24  nonce
 *   84   1  D, length of the dossier id (1..64)
 *   85   D  dossier id
 *  85+D  4  C, length of the ciphertext (tag included)
 *  89+D  C  ciphertext; associated data: bytes [0, 89+D)
 *   …   64  Ed25519 signature over bytes [0, 89+D+C)
 */
#define MAGIC "RLCS"
#define OFF_ID      8
#define OFF_EPOCH   24
#define OFF_AUTHOR  28
#define OFF_NONCE   60
#define OFF_DLEN    84
#define OFF_DOSSIER 85
#define FIXED_SIZE  (85 + 4 + crypto_sign_BYTES)
#define TAG_SIZE    crypto_aead_xchacha20poly1305_ietf_ABYTES
#define NONCE_SIZE  crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define NULL_LEN    G_MAXUINT32

static inline void
put_u32 (guint8 *p, guint32 v)
{
  p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static inline guint32
get_u32 (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

static gboolean
id_is_valid (const char *id, gsize len)
{
  if (len == 0 || len > RELAIS_CHANGESET_MAX_ID_LEN)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (id[i]) && id[i] != '-' && id[i] != '_')
      return FALSE;
  return TRUE;
}

void
relais_changeset_header_clear (RelaisChangesetHeader *header)
{
  g_clear_pointer (&header->dossier, g_free);
}

void
relais_changeset_free (RelaisChangeset *changeset)
{
  if (changeset == NULL)
    return;
  relais_changeset_header_clear (&changeset->header);
  g_free (changeset->author);
  g_free (changeset->device);
  g_clear_pointer (&changeset->ops, g_ptr_array_unref);
  g_free (changeset);
}

/* Layout only: sets the offsets of the ciphertext.  Every length is checked
 * against @len before it is used. */
static gboolean
parse_layout (const guint8 *data,
              gsize         len,
              gsize        *out_dlen,
              gsize        *out_clen,
              GError      **error)
{
  gsize dlen, clen;

  if (len > RELAIS_CHANGESET_MAX_SIZE)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                   "The change set is larger than %u bytes.", RELAIS_CHANGESET_MAX_SIZE);
      return FALSE;
    }
  if (data == NULL || len < FIXED_SIZE || memcmp (data, MAGIC, 4) != 0)
    goto malformed;
  if (data[4] != RELAIS_CHANGESET_VERSION)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                   "The change set has version %u, which this program does not read.", data[4]);
      return FALSE;
    }
  if (data[5] != 0 || data[6] != 0 || data[7] != 0)
    goto malformed;
  dlen = data[OFF_DLEN];
  if (len < FIXED_SIZE + dlen || !id_is_valid ((const char *) data + OFF_DOSSIER, dlen))
    goto malformed;
  clen = get_u32 (data + OFF_DOSSIER + dlen);
  if (clen < TAG_SIZE || clen != len - FIXED_SIZE - dlen)
    goto malformed;
  *out_dlen = dlen;
  *out_clen = clen;
  return TRUE;

malformed:
  g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                       "The change set is not well formed.");
  return FALSE;
}

gboolean
relais_changeset_peek (const guint8          *data,
                       gsize                  len,
                       RelaisChangesetHeader *out_header,
                       GError               **error)
{
  gsize dlen, clen;

  g_return_val_if_fail (out_header != NULL, FALSE);
  memset (out_header, 0, sizeof *out_header);
  if (!parse_layout (data, len, &dlen, &clen, error))
    return FALSE;
  memcpy (out_header->id, data + OFF_ID, RELAIS_CHANGESET_ID_SIZE);
  out_header->epoch = get_u32 (data + OFF_EPOCH);
  memcpy (out_header->author_key, data + OFF_AUTHOR, crypto_sign_PUBLICKEYBYTES);
  out_header->dossier = g_strndup ((const char *) data + OFF_DOSSIER, dlen);
  return TRUE;
}

gboolean
relais_changeset_verify (const guint8 *data,
                         gsize         len,
                         GError      **error)
{
  gsize dlen, clen, signed_len;

  if (!parse_layout (data, len, &dlen, &clen, error))
    return FALSE;
  signed_len = len - crypto_sign_BYTES;
  if (crypto_sign_verify_detached (data + signed_len, data, signed_len,
                                   data + OFF_AUTHOR) != 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SIGNATURE,
                           "The change set's signature does not match its author.");
      return FALSE;
    }
  return TRUE;
}

/* ---- signatures checked ahead (relais-changeset-private.h) ---- */

#define DIGEST_SIZE crypto_generichash_BYTES

G_LOCK_DEFINE_STATIC (verified);
static GHashTable *verified;   /* digest (DIGEST_SIZE bytes, as GBytes) → itself */

static GBytes *
envelope_digest (const guint8 *data,
                 gsize         len)
{
  guint8 *digest = g_malloc (DIGEST_SIZE);

  crypto_generichash (digest, DIGEST_SIZE, data, len, NULL, 0);
  return g_bytes_new_take (digest, DIGEST_SIZE);
}

void
relais_changeset_verify_ahead (const guint8 *data,
                               gsize         len)
{
  GBytes *digest;

  if (!relais_changeset_verify (data, len, NULL))
    return;   /* opening it says why */
  digest = envelope_digest (data, len);
  G_LOCK (verified);
  if (verified == NULL)
    verified = g_hash_table_new_full (g_bytes_hash, g_bytes_equal,
                                      (GDestroyNotify) g_bytes_unref, NULL);
  g_hash_table_add (verified, digest);
  G_UNLOCK (verified);
}

void
relais_changeset_forget_verified (void)
{
  G_LOCK (verified);
  g_clear_pointer (&verified, g_hash_table_unref);
  G_UNLOCK (verified);
}

/* Whether @data was verified ahead; forgets it (each is opened once). */
static gboolean
take_verified (const guint8 *data,
               gsize         len)
{
  g_autoptr(GBytes) digest = NULL;
  gboolean found;

  G_LOCK (verified);
  found = verified != NULL && g_hash_table_size (verified) > 0;
  G_UNLOCK (verified);
  if (!found)
    return FALSE;

  digest = envelope_digest (data, len);
  G_LOCK (verified);
  found = verified != NULL && g_hash_table_remove (verified, digest);
  G_UNLOCK (verified);
  return found;
}

/* ---- the plaintext: the operations ---- */

static void
put_short (GByteArray *out, const char *s)
{
  guint8 l = (guint8) strlen (s);

  g_byte_array_append (out, &l, 1);
  g_byte_array_append (out, (const guint8 *) s, l);
}

static void
put_long (GByteArray *out, const char *s)
{
  guint8 l[4];
  gsize n = s != NULL ? strlen (s) : 0;

  put_u32 (l, s != NULL ? (guint32) n : NULL_LEN);
  g_byte_array_append (out, l, 4);
  if (n > 0)
    g_byte_array_append (out, (const guint8 *) s, n);
}

static gboolean
short_ok (const char *s)
{
  gsize n;

  if (s == NULL)
    return FALSE;
  n = strlen (s);
  return n > 0 && n <= 255 && g_utf8_validate (s, n, NULL);
}

static GByteArray *
encode_ops (const char  *author,
            const char  *device,
            const char  *dossier,
            GPtrArray   *ops,
            GError     **error)
{
  g_autoptr(GByteArray) out = g_byte_array_sized_new (64 + ops->len * 160);
  guint8 n[4];

  put_short (out, author);
  put_short (out, device);
  put_u32 (n, ops->len);
  g_byte_array_append (out, n, 4);
  for (guint i = 0; i < ops->len; i++)
    {
      const RelaisOp *op = g_ptr_array_index (ops, i);
      guint8 hlc[8];

      if (!short_ok (op->id) || !short_ok (op->entity) || !short_ok (op->entity_id)
          || !short_ok (op->field)
          || g_strcmp0 (op->dossier, dossier) != 0
          || (op->author != NULL && strcmp (op->author, author) != 0)
          || (op->device != NULL && strcmp (op->device, device) != 0)
          || (op->value != NULL && !g_utf8_validate (op->value, -1, NULL))
          || (op->parents != NULL && !g_utf8_validate (op->parents, -1, NULL)))
        {
          g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                       "Operation %u cannot go in this change set.", i);
          return NULL;
        }
      put_short (out, op->id);
      put_short (out, op->entity);
      put_short (out, op->entity_id);
      put_short (out, op->field);
      for (int b = 0; b < 8; b++)
        hlc[b] = (guint8) (op->hlc >> (8 * b));
      g_byte_array_append (out, hlc, 8);
      put_long (out, op->value);
      put_long (out, op->parents);
      if (out->len > RELAIS_CHANGESET_MAX_SIZE)
        break;
    }
  return g_steal_pointer (&out);
}

typedef struct {
  const guint8 *p;
  gsize         left;
} Reader;

static gboolean
read_short (Reader *r, char **out)
{
  gsize l;

  if (r->left < 1)
    return FALSE;
  l = r->p[0];
  if (l == 0 || r->left - 1 < l || !g_utf8_validate ((const char *) r->p + 1, l, NULL))
    return FALSE;
  *out = g_strndup ((const char *) r->p + 1, l);
  r->p += 1 + l;
  r->left -= 1 + l;
  return TRUE;
}

static gboolean
read_long (Reader *r, char **out)
{
  guint32 l;

  if (r->left < 4)
    return FALSE;
  l = get_u32 (r->p);
  r->p += 4;
  r->left -= 4;
  if (l == NULL_LEN)
    {
      *out = NULL;
      return TRUE;
    }
  if (r->left < l || !g_utf8_validate ((const char *) r->p, l, NULL))
    return FALSE;
  *out = g_strndup ((const char *) r->p, l);
  r->p += l;
  r->left -= l;
  return TRUE;
}

static gboolean
decode_ops (const guint8    *data,
            gsize            len,
            const char      *dossier,
            RelaisChangeset *cs)
{
  Reader r = { data, len };
  guint32 n;

  if (!read_short (&r, &cs->author) || !read_short (&r, &cs->device) || r.left < 4)
    return FALSE;
  n = get_u32 (r.p);
  r.p += 4;
  r.left -= 4;
  /* The smallest operation takes 4 + 4 + 8 + 4 + 4 bytes: a count that
   * cannot fit is refused before anything is allocated for it. */
  if (n == 0 || n > RELAIS_CHANGESET_MAX_OPS || n > r.left / 24)
    return FALSE;
  cs->ops = g_ptr_array_new_full (n, (GDestroyNotify) relais_op_free);
  for (guint32 i = 0; i < n; i++)
    {
      RelaisOp *op = g_new0 (RelaisOp, 1);

      g_ptr_array_add (cs->ops, op);
      if (!read_short (&r, &op->id) || !read_short (&r, &op->entity)
          || !read_short (&r, &op->entity_id) || !read_short (&r, &op->field)
          || r.left < 8)
        return FALSE;
      op->hlc = 0;
      for (int b = 0; b < 8; b++)
        op->hlc |= (guint64) r.p[b] << (8 * b);
      r.p += 8;
      r.left -= 8;
      if (!read_long (&r, &op->value) || !read_long (&r, &op->parents))
        return FALSE;
      op->dossier = g_strdup (dossier);
      op->author = g_strdup (cs->author);
      op->device = g_strdup (cs->device);
    }
  return r.left == 0;
}

/* ---- sealing ---- */

GBytes *
relais_changeset_seal_with_nonce (const char    *dossier,
                                  guint32        epoch,
                                  const guint8  *dossier_key,
                                  const char    *author,
                                  const char    *device,
                                  const guint8  *sign_sk,
                                  GPtrArray     *ops,
                                  const guint8  *id,
                                  const guint8  *nonce,
                                  GError       **error)
{
  g_autoptr(GByteArray) plain = NULL;
  gsize dlen, head_len, total;
  unsigned long long clen;
  guint8 *env;

  g_return_val_if_fail (dossier != NULL && dossier_key != NULL && sign_sk != NULL, NULL);
  g_return_val_if_fail (author != NULL && device != NULL && ops != NULL, NULL);
  g_return_val_if_fail (id != NULL && nonce != NULL, NULL);

  dlen = strlen (dossier);
  if (!id_is_valid (dossier, dlen) || !id_is_valid (author, strlen (author))
      || !id_is_valid (device, strlen (device)))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           "A dossier, user or device id is not valid for a change set.");
      return NULL;
    }
  if (ops->len == 0 || ops->len > RELAIS_CHANGESET_MAX_OPS)
    {
      g_set_error (error, RELAIS_SYNC_ERROR,
                   ops->len == 0 ? RELAIS_SYNC_ERROR_INVALID : RELAIS_SYNC_ERROR_TOO_LARGE,
                   "A change set holds 1 to %u operations.", RELAIS_CHANGESET_MAX_OPS);
      return NULL;
    }
  plain = encode_ops (author, device, dossier, ops, error);
  if (plain == NULL)
    return NULL;

  head_len = OFF_DOSSIER + dlen + 4;
  total = head_len + plain->len + TAG_SIZE + crypto_sign_BYTES;
  if (total > RELAIS_CHANGESET_MAX_SIZE)
    {
      sodium_memzero (plain->data, plain->len);
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                   "The operations take more than %u bytes: split them.",
                   RELAIS_CHANGESET_MAX_SIZE);
      return NULL;
    }

  env = g_malloc (total);
  memcpy (env, MAGIC, 4);
  env[4] = RELAIS_CHANGESET_VERSION;
  env[5] = env[6] = env[7] = 0;
  memcpy (env + OFF_ID, id, RELAIS_CHANGESET_ID_SIZE);
  put_u32 (env + OFF_EPOCH, epoch);
  /* The public half of an Ed25519 secret key is its last 32 bytes. */
  memcpy (env + OFF_AUTHOR, sign_sk + 32, crypto_sign_PUBLICKEYBYTES);
  memcpy (env + OFF_NONCE, nonce, NONCE_SIZE);
  env[OFF_DLEN] = (guint8) dlen;
  memcpy (env + OFF_DOSSIER, dossier, dlen);
  put_u32 (env + OFF_DOSSIER + dlen, plain->len + TAG_SIZE);

  crypto_aead_xchacha20poly1305_ietf_encrypt (env + head_len, &clen,
                                              plain->data, plain->len,
                                              env, head_len, NULL,
                                              nonce, dossier_key);
  sodium_memzero (plain->data, plain->len);
  crypto_sign_detached (env + head_len + clen, NULL, env, head_len + clen, sign_sk);
  return g_bytes_new_take (env, total);
}

GBytes *
relais_changeset_seal (const char    *dossier,
                       guint32        epoch,
                       const guint8  *dossier_key,
                       const char    *author,
                       const char    *device,
                       const guint8  *sign_sk,
                       GPtrArray     *ops,
                       GError       **error)
{
  guint8 id[RELAIS_CHANGESET_ID_SIZE];
  guint8 nonce[NONCE_SIZE];

  /* 192 random bits of nonce: no counter to keep across devices. */
  randombytes_buf (id, sizeof id);
  randombytes_buf (nonce, sizeof nonce);
  return relais_changeset_seal_with_nonce (dossier, epoch, dossier_key, author, device,
                                           sign_sk, ops, id, nonce, error);
}

/* The opened plaintext: in a guarded buffer of each thread's own, grown
 * as needed and freed when the thread ends, wiped after every change set.
 * A guarded allocation per change set (three mappings and a lock of memory,
 * undone after) cost a pull of 10,000 change sets a fifth of its opening. */
typedef struct {
  guint8 *data;
  gsize   size;
} PlainBuffer;

static void
plain_buffer_free (gpointer p)
{
  PlainBuffer *buf = p;

  sodium_free (buf->data);
  g_free (buf);
}

static GPrivate plain_private = G_PRIVATE_INIT (plain_buffer_free);

static guint8 *
plain_buffer (gsize size)
{
  PlainBuffer *buf = g_private_get (&plain_private);

  if (buf == NULL)
    {
      buf = g_new0 (PlainBuffer, 1);
      g_private_set (&plain_private, buf);
    }
  if (buf->size < size)
    {
      gsize want = MAX (size, 64 * 1024);

      sodium_free (buf->data);
      buf->size = 0;
      buf->data = sodium_malloc (want);
      if (buf->data == NULL)
        return NULL;
      buf->size = want;
    }
  return buf->data;
}

RelaisChangeset *
relais_changeset_open (const guint8         *data,
                       gsize                 len,
                       const char           *expected_dossier,
                       RelaisDossierKeyFunc  key_func,
                       RelaisAuthorFunc      author_func,
                       gpointer              user_data,
                       GError              **error)
{
  g_autoptr(RelaisChangeset) cs = g_new0 (RelaisChangeset, 1);
  const char *owner;
  const guint8 *key;
  gsize dlen, clen, head_len;
  guint8 *plain;
  unsigned long long plen;
  gboolean ok;

  g_return_val_if_fail (key_func != NULL && author_func != NULL, NULL);

  if (!relais_changeset_peek (data, len, &cs->header, error))
    return NULL;
  dlen = strlen (cs->header.dossier);
  head_len = OFF_DOSSIER + dlen + 4;
  clen = len - head_len - crypto_sign_BYTES;

  if (expected_dossier != NULL && strcmp (expected_dossier, cs->header.dossier) != 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_DOSSIER_MISMATCH,
                           "The change set belongs to another dossier.");
      return NULL;
    }
  /* A valid signature by a stranger's key proves nothing: the key must be
   * a member's before the signature means anything. */
  owner = author_func (cs->header.dossier, cs->header.author_key, user_data);
  if (owner == NULL)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN,
                           "The change set is signed by someone who is not in the dossier's team.");
      return NULL;
    }
  if (!take_verified (data, len) && !relais_changeset_verify (data, len, error))
    return NULL;
  key = key_func (cs->header.dossier, cs->header.epoch, user_data);
  if (key == NULL)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_EPOCH_UNKNOWN,
                   "The change set is sealed with key epoch %u, which this device does not hold.",
                   cs->header.epoch);
      return NULL;
    }

  plain = plain_buffer (clen);
  if (plain == NULL)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_FAILED,
                           "Out of guarded memory.");
      return NULL;
    }
  if (crypto_aead_xchacha20poly1305_ietf_decrypt (plain, &plen, NULL,
                                                  data + head_len, clen,
                                                  data, head_len,
                                                  data + OFF_NONCE, key) != 0)
    {
      sodium_memzero (plain, clen);
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SEAL,
                           "The change set does not open with the dossier's key.");
      return NULL;
    }
  ok = decode_ops (plain, plen, cs->header.dossier, cs);
  sodium_memzero (plain, clen);
  /* Signed and sealed yet badly formed, or claiming another author than
   * the key's owner: a member's faulty or hostile client. */
  if (!ok || strcmp (cs->author, owner) != 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                           ok ? "The change set names another author than its signer."
                              : "The operations inside the change set are not well formed.");
      return NULL;
    }
  return g_steal_pointer (&cs);
}

char *
relais_sync_base64_encode (const guint8 *data,
                           gsize         len)
{
  gsize size = sodium_base64_ENCODED_LEN (len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *out = g_malloc (size);

  sodium_bin2base64 (out, size, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

guint8 *
relais_sync_base64_decode (const char  *text,
                           gsize        max_len,
                           gsize       *out_len,
                           GError     **error)
{
  gsize tlen = strlen (text);
  g_autofree guint8 *out = g_malloc (tlen * 3 / 4 + 1);
  size_t bin_len;
  const char *end;

  if (tlen * 3 / 4 > max_len
      || sodium_base642bin (out, tlen * 3 / 4 + 1, text, tlen, NULL, &bin_len, &end,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0
      || end != text + tlen || bin_len > max_len)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                           "A binary field is not valid base64url.");
      return NULL;
    }
  *out_len = bin_len;
  return g_steal_pointer (&out);
}
