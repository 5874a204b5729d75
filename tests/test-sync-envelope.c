#include "config.h"

#include <string.h>
#include <sodium.h>

#include "relais-bundle.h"
#include "relais-changeset.h"
#include "relais-keys.h"
#include "relais-keyfile.h"
#include "relais-vault.h"
#include "relais-test-util.h"

#define DOSSIER "018f2b6c-7d1e-7a00-8000-000000000001"
#define KAT_LEN 492
#define KAT_HASH "43708ab78760a8aca584468f191452504571f05a9a0752d06fb9bac78dfc599d"

static guint8 *
dup_bytes (GBytes *b, gsize *len)
{
  return g_bytes_unref_to_data (g_bytes_ref (b), len);
}

typedef struct {
  RelaisUserKeys *author;
  guint8         *key;       /* epoch 1 */
  guint8         *key2;      /* epoch 2 */
} Fixture;

static const guint8 *
key_func (const char *dossier, guint32 epoch, gpointer user_data)
{
  Fixture *f = user_data;

  if (strcmp (dossier, DOSSIER) != 0)
    return NULL;
  return epoch == 1 ? f->key : epoch == 2 ? f->key2 : NULL;
}

static const char *
author_func (const char *dossier, const guint8 *pk, gpointer user_data)
{
  Fixture *f = user_data;

  return memcmp (pk, f->author->sign_pk, 32) == 0 ? "alice" : NULL;
}

static GPtrArray *
make_ops (const char *dossier, guint n)
{
  GPtrArray *ops = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_op_free);

  for (guint i = 0; i < n; i++)
    {
      RelaisOp *op = g_new0 (RelaisOp, 1);

      op->id = g_strdup_printf ("018f2b6c-7d1e-7a00-8000-%012u", i);
      op->dossier = g_strdup (dossier);
      op->entity = g_strdup (i % 2 ? "note" : "person");
      op->entity_id = g_strdup (dossier);
      op->field = g_strdup_printf ("field_%u", i % 7);
      op->value = i % 5 == 4 ? NULL : g_strdup_printf ("valeur n° %u", i);
      op->hlc = G_GUINT64_CONSTANT (0x0001900000000000) + i;
      op->author = g_strdup ("alice");
      op->device = g_strdup ("laptop-1");
      op->parents = i % 3 == 0 ? NULL : g_strdup ("018f2b6c-7d1e-7a00-8000-000000000000");
      g_ptr_array_add (ops, op);
    }
  return ops;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  f->author = relais_user_keys_generate ();
  f->key = relais_dossier_key_new ();
  f->key2 = relais_dossier_key_new ();
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  relais_user_keys_free (f->author);
  relais_dossier_key_free (f->key);
  relais_dossier_key_free (f->key2);
}

static GBytes *
seal (Fixture *f, guint n)
{
  g_autoptr(GPtrArray) ops = make_ops (DOSSIER, n);
  g_autoptr(GError) error = NULL;
  GBytes *env = relais_changeset_seal (DOSSIER, 1, f->key, "alice", "laptop-1",
                                       f->author->sign_sk, ops, &error);

  g_assert_no_error (error);
  return env;
}

static RelaisChangeset *
open_env (Fixture *f, const guint8 *d, gsize len, GError **error)
{
  return relais_changeset_open (d, len, DOSSIER, key_func, author_func, f, error);
}

static void
test_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) ops = make_ops (DOSSIER, 20);
  g_autoptr(GBytes) env = seal (f, 20);
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisChangeset) cs = NULL;
  g_auto(RelaisChangesetHeader) head = { 0 };
  gsize len;
  const guint8 *d = g_bytes_get_data (env, &len);

  g_assert_true (relais_changeset_peek (d, len, &head, &error));
  g_assert_cmpstr (head.dossier, ==, DOSSIER);
  g_assert_cmpuint (head.epoch, ==, 1);
  g_assert_true (relais_changeset_verify (d, len, &error));
  cs = open_env (f, d, len, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (cs->author, ==, "alice");
  g_assert_cmpstr (cs->device, ==, "laptop-1");
  g_assert_cmpuint (cs->ops->len, ==, 20);
  for (guint i = 0; i < 20; i++)
    {
      RelaisOp *a = g_ptr_array_index (ops, i), *b = g_ptr_array_index (cs->ops, i);

      g_assert_cmpstr (a->id, ==, b->id);
      g_assert_cmpstr (a->dossier, ==, b->dossier);
      g_assert_cmpstr (a->entity, ==, b->entity);
      g_assert_cmpstr (a->entity_id, ==, b->entity_id);
      g_assert_cmpstr (a->field, ==, b->field);
      g_assert_cmpstr (a->value, ==, b->value);
      g_assert_cmpuint (a->hlc, ==, b->hlc);
      g_assert_cmpstr (a->author, ==, b->author);
      g_assert_cmpstr (a->device, ==, b->device);
      g_assert_cmpstr (a->parents, ==, b->parents);
    }
  g_test_message ("20 ops: %" G_GSIZE_FORMAT " bytes", len);
}

static void
test_bit_flips (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) env = seal (f, 3);
  gsize len;
  g_autofree guint8 *d = dup_bytes (env, &len);

  for (gsize i = 0; i < len; i++)
    for (int bit = 0; bit < 8; bit += 3)
      {
        g_autoptr(GError) error = NULL;
        g_autoptr(RelaisChangeset) cs = NULL;

        d[i] ^= 1 << bit;
        cs = open_env (f, d, len, &error);
        g_assert_null (cs);
        g_assert_error (error, RELAIS_SYNC_ERROR, error->code);
        d[i] ^= 1 << bit;
      }
}

static void
test_wrong_key (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) env = seal (f, 3);
  g_autoptr(GError) error = NULL;
  gsize len;
  const guint8 *d = g_bytes_get_data (env, &len);
  guint8 *saved = f->key;
  RelaisChangeset *cs;

  f->key = f->key2;
  cs = open_env (f, d, len, &error);
  f->key = saved;
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SEAL);
}

static void
test_moved (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) ops = make_ops ("other-dossier", 3);
  g_autoptr(GBytes) env = NULL;
  g_autoptr(GError) error = NULL;
  RelaisChangeset *cs;
  gsize len;
  g_autofree guint8 *d = NULL;

  /* Another dossier's change set offered as this one's. */
  env = relais_changeset_seal ("other-dossier", 1, f->key, "alice", "laptop-1",
                               f->author->sign_sk, ops, &error);
  g_assert_no_error (error);
  cs = open_env (f, g_bytes_get_data (env, NULL), g_bytes_get_size (env), &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_DOSSIER_MISMATCH);
  g_clear_error (&error);

  /* Epoch rewritten to 2 (known) then to 9 (unknown): the signature
   * covers it, and so does the seal once re-signed by the author. */
  g_clear_pointer (&env, g_bytes_unref);
  env = seal (f, 3);
  d = dup_bytes (env, &len);
  d[24] = 2;
  cs = open_env (f, d, len, &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SIGNATURE);
  g_clear_error (&error);
  crypto_sign_detached (d + len - 64, NULL, d, len - 64, f->author->sign_sk);
  cs = open_env (f, d, len, &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SEAL);
  g_clear_error (&error);
  d[24] = 9;
  crypto_sign_detached (d + len - 64, NULL, d, len - 64, f->author->sign_sk);
  cs = open_env (f, d, len, &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_EPOCH_UNKNOWN);
}

static void
test_forged (Fixture *f, gconstpointer data)
{
  g_autoptr(RelaisUserKeys) mallory = relais_user_keys_generate ();
  g_autoptr(GPtrArray) ops = make_ops (DOSSIER, 3);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) env = NULL;
  RelaisChangeset *cs;
  gsize len;
  g_autofree guint8 *d = NULL;

  /* Signed by a stranger's key that claims to be alice. */
  env = relais_changeset_seal (DOSSIER, 1, f->key, "alice", "laptop-1",
                               mallory->sign_sk, ops, &error);
  g_assert_no_error (error);
  cs = open_env (f, g_bytes_get_data (env, NULL), g_bytes_get_size (env), &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN);
  g_clear_error (&error);

  /* Alice's key in the header, mallory's signature. */
  d = dup_bytes (env, &len);
  memcpy (d + 28, f->author->sign_pk, 32);
  cs = open_env (f, d, len, &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SIGNATURE);
}

static void
test_hostile (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) env = seal (f, 5);
  gsize len;
  const guint8 *orig = g_bytes_get_data (env, &len);
  g_autofree guint8 *big = g_malloc0 (RELAIS_CHANGESET_MAX_SIZE + 1);
  GRand *rand = g_rand_new_with_seed (42);
  g_autoptr(GError) error = NULL;
  RelaisChangeset *cs;

  /* Every truncation. */
  for (gsize l = 0; l < len; l++)
    {
      g_autofree guint8 *d = g_memdup2 (orig, MAX (l, 1));

      cs = open_env (f, d, l, &error);
      g_assert_null (cs);
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
  memcpy (big, orig, len);
  cs = open_env (f, big, RELAIS_CHANGESET_MAX_SIZE + 1, &error);
  g_assert_null (cs);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE);
  g_clear_error (&error);
  cs = open_env (f, NULL, 0, &error);
  g_assert_null (cs);
  g_clear_error (&error);

  /* Random mutations: bytes changed, inserted, removed, garbage. */
  for (int round = 0; round < 5000; round++)
    {
      gsize l = len + g_rand_int_range (rand, -8, 9);
      g_autofree guint8 *d = g_malloc (MAX (l, 1));
      int n = g_rand_int_range (rand, 1, 6);

      memcpy (d, orig, MIN (l, len));
      for (gsize i = len; i < l; i++)
        d[i] = g_rand_int (rand);
      if (round % 10 == 0)
        for (gsize i = 0; i < l; i++)
          d[i] = g_rand_int (rand);
      for (int k = 0; k < n && l > 0; k++)
        d[g_rand_int_range (rand, 0, l)] = g_rand_int (rand);
      cs = open_env (f, d, l, &error);
      if (cs != NULL)
        {
          /* Only an unchanged envelope may open. */
          g_assert_cmpmem (d, l, orig, len);
          relais_changeset_free (cs);
        }
      else
        g_assert_nonnull (error);
      g_clear_error (&error);
    }
  g_rand_free (rand);
}

/* A member's hostile client: any plaintext, properly sealed and signed.
 * Only the decoder of the operations stands between it and the vault. */
static GBytes *
reseal_plain (Fixture *f, const guint8 *env, gsize env_len, const guint8 *plain, gsize plen)
{
  gsize dlen = env[84], head = 85 + dlen + 4;
  gsize total = head + plen + 16 + 64;
  guint8 *out = g_malloc (total);

  memcpy (out, env, head);
  out[85 + dlen] = (plen + 16) & 0xff;
  out[86 + dlen] = ((plen + 16) >> 8) & 0xff;
  out[87 + dlen] = ((plen + 16) >> 16) & 0xff;
  out[88 + dlen] = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt (out + head, NULL, plain, plen, out, head,
                                              NULL, out + 60, f->key);
  crypto_sign_detached (out + head + plen + 16, NULL, out, head + plen + 16,
                        f->author->sign_sk);
  return g_bytes_new_take (out, total);
}

static void
test_hostile_member (Fixture *f, gconstpointer data)
{
  g_autoptr(GBytes) env = seal (f, 6);
  gsize len, dlen, head, plen;
  const guint8 *d = g_bytes_get_data (env, &len);
  g_autofree guint8 *plain = NULL;
  GRand *rand = g_rand_new_with_seed (1234);
  g_autoptr(GError) error = NULL;
  guint opened = 0;

  dlen = d[84];
  head = 85 + dlen + 4;
  plen = len - head - 64 - 16;
  plain = g_malloc (plen);
  g_assert_cmpint (crypto_aead_xchacha20poly1305_ietf_decrypt (plain, NULL, NULL, d + head,
                                                               plen + 16, d, head, d + 60,
                                                               f->key), ==, 0);
  /* Resealed as it was, it opens: the helper is right. */
  {
    g_autoptr(GBytes) same = reseal_plain (f, d, len, plain, plen);
    g_autoptr(RelaisChangeset) cs = open_env (f, g_bytes_get_data (same, NULL),
                                              g_bytes_get_size (same), &error);

    g_assert_no_error (error);
    g_assert_cmpuint (cs->ops->len, ==, 6);
  }
  /* Another author's name under alice's signature. */
  {
    g_autofree guint8 *p = g_memdup2 (plain, plen);
    g_autoptr(GBytes) other = NULL;
    RelaisChangeset *cs;

    g_assert_cmpuint (p[0], ==, 5);
    memcpy (p + 1, "mallo", 5);
    other = reseal_plain (f, d, len, p, plen);
    cs = open_env (f, g_bytes_get_data (other, NULL), g_bytes_get_size (other), &error);
    g_assert_null (cs);
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
    g_clear_error (&error);
  }
  for (int round = 0; round < 3000; round++)
    {
      gsize l = plen + g_rand_int_range (rand, -12, 13);
      g_autofree guint8 *p = g_malloc (MAX (l, 1));
      g_autoptr(GBytes) bad = NULL;
      RelaisChangeset *cs;

      memcpy (p, plain, MIN (l, plen));
      for (gsize i = plen; i < l; i++)
        p[i] = g_rand_int (rand);
      for (int k = g_rand_int_range (rand, 0, 4); k > 0 && l > 0; k--)
        p[g_rand_int_range (rand, 0, l)] = g_rand_int (rand);
      bad = reseal_plain (f, d, len, p, l);
      cs = open_env (f, g_bytes_get_data (bad, NULL), g_bytes_get_size (bad), &error);
      if (cs != NULL)
        {
          opened++;
          relais_changeset_free (cs);
        }
      else
        g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
      g_clear_error (&error);
    }
  g_test_message ("%u of 3000 mutated plaintexts still decoded", opened);
  g_rand_free (rand);
}

/* The format frozen: fixed keys, id and nonce give these bytes.  Ed25519
 * and XChaCha20-Poly1305 are deterministic, so a change here is a change
 * of the wire format, which needs a new version number. */
static void
test_known_answer (void)
{
  guint8 seed[32], sign_pk[32], sign_sk[64], key[32], id[16], nonce[24], hash[32];
  g_autoptr(GPtrArray) ops = make_ops (DOSSIER, 2);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) env = NULL;
  g_autofree char *hex = NULL;
  gsize len;
  const guint8 *d;

  for (int i = 0; i < 32; i++)
    {
      seed[i] = i;
      key[i] = 0x80 + i;
    }
  for (int i = 0; i < 16; i++)
    id[i] = 0xa0 + i;
  for (int i = 0; i < 24; i++)
    nonce[i] = 0x40 + i;
  crypto_sign_seed_keypair (sign_pk, sign_sk, seed);
  env = relais_changeset_seal_with_nonce (DOSSIER, 7, key, "alice", "laptop-1", sign_sk,
                                          ops, id, nonce, &error);
  g_assert_no_error (error);
  d = g_bytes_get_data (env, &len);
  g_assert_cmpmem (d, 8, "RLCS\1\0\0\0", 8);
  g_assert_cmpmem (d + 8, 16, id, 16);
  g_assert_cmpmem (d + 24, 4, "\7\0\0\0", 4);
  g_assert_cmpmem (d + 28, 32, sign_pk, 32);
  g_assert_cmpmem (d + 60, 24, nonce, 24);
  g_assert_cmpuint (d[84], ==, strlen (DOSSIER));
  crypto_generichash (hash, 32, d, len, NULL, 0);
  hex = g_malloc (65);
  sodium_bin2hex (hex, 65, hash, 32);
  g_test_message ("envelope %" G_GSIZE_FORMAT " bytes, BLAKE2b %s", len, hex);
  g_assert_cmpuint (len, ==, KAT_LEN);
  g_assert_cmpstr (hex, ==, KAT_HASH);
}

static void
test_key_wrap (void)
{
  g_autoptr(RelaisUserKeys) bob = relais_user_keys_generate ();
  g_autoptr(RelaisUserKeys) eve = relais_user_keys_generate ();
  g_autoptr(GError) error = NULL;
  guint8 *key = relais_dossier_key_new ();
  g_autoptr(GBytes) w = relais_dossier_key_wrap (key, DOSSIER, 3, bob->box_pk);
  gsize len;
  g_autofree guint8 *d = dup_bytes (w, &len);
  guint8 *out;

  g_assert_cmpuint (len, ==, 154);   /* PROTOCOL.md, 2.1 */
  out = relais_dossier_key_unwrap (d, len, DOSSIER, 3, bob->box_pk, bob->box_sk, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (out, 32, key, 32);
  relais_dossier_key_free (out);

  out = relais_dossier_key_unwrap (d, len, DOSSIER, 4, bob->box_pk, bob->box_sk, &error);
  g_assert_null (out);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_DOSSIER_MISMATCH);
  g_clear_error (&error);
  out = relais_dossier_key_unwrap (d, len, "another", 3, bob->box_pk, bob->box_sk, &error);
  g_assert_null (out);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_DOSSIER_MISMATCH);
  g_clear_error (&error);
  out = relais_dossier_key_unwrap (d, len, DOSSIER, 3, eve->box_pk, eve->box_sk, &error);
  g_assert_null (out);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_SEAL);
  g_clear_error (&error);
  for (gsize i = 0; i < len; i++)
    {
      d[i] ^= 0x10;
      out = relais_dossier_key_unwrap (d, len, DOSSIER, 3, bob->box_pk, bob->box_sk, &error);
      g_assert_null (out);
      g_clear_error (&error);
      d[i] ^= 0x10;
    }
  out = relais_dossier_key_unwrap (d, len - 1, DOSSIER, 3, bob->box_pk, bob->box_sk, &error);
  g_assert_null (out);
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
  g_clear_error (&error);
  relais_dossier_key_free (key);
}

static void
test_user_keys_wrap (void)
{
  g_autoptr(RelaisUserKeys) keys = relais_user_keys_generate ();
  g_autoptr(RelaisUserKeys) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) w = NULL;
  RelaisKdfParams params;
  gsize len;
  g_autofree guint8 *d = NULL;

  relais_kdf_params_insecure_for_tests (&params);
  w = relais_user_keys_wrap (keys, "correct horse", &params, &error);
  g_assert_no_error (error);
  d = dup_bytes (w, &len);
  g_assert_cmpuint (len, ==, 208);   /* PROTOCOL.md, 2.2 */
  back = relais_user_keys_unwrap (d, len, "correct horse", &error);
  g_assert_no_error (error);
  g_assert_cmpmem (back, sizeof *back, keys, sizeof *keys);

  g_assert_null (relais_user_keys_unwrap (d, len, "wrong horse", &error));
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_BAD_PASSPHRASE);
  g_clear_error (&error);
  /* Each region: header, salt, public keys, nonce, ciphertext. */
  for (gsize i = 0; i < len; i += 7)
    {
      RelaisUserKeys *k;

      d[i] ^= 1;
      k = relais_user_keys_unwrap (d, len, "correct horse", &error);
      g_assert_null (k);
      g_assert_nonnull (error);
      g_clear_error (&error);
      d[i] ^= 1;
    }
  /* A hostile server asking for 1 TiB of memory. */
  d[16 + 5] = 1;
  g_assert_null (relais_user_keys_unwrap (d, len, "correct horse", &error));
  g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE);
}

static void
test_bundle (Fixture *f, gconstpointer data)
{
  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) back = NULL;
  g_autoptr(GBytes) bundle = NULL;
  g_autoptr(GError) error = NULL;
  GRand *rand = g_rand_new_with_seed (7);
  gsize len;
  g_autofree guint8 *d = NULL;

  for (int i = 0; i < 5; i++)
    g_ptr_array_add (list, seal (f, i + 1));
  bundle = relais_bundle_build (list, &error);
  g_assert_no_error (error);
  d = dup_bytes (bundle, &len);
  back = relais_bundle_parse (d, len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->len, ==, 5);
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr(RelaisChangeset) cs = NULL;

      g_assert_true (g_bytes_equal (g_ptr_array_index (list, i), g_ptr_array_index (back, i)));
      cs = open_env (f, g_bytes_get_data (g_ptr_array_index (back, i), NULL),
                     g_bytes_get_size (g_ptr_array_index (back, i)), &error);
      g_assert_no_error (error);
      g_assert_cmpuint (cs->ops->len, ==, i + 1);
    }
  g_clear_pointer (&back, g_ptr_array_unref);

  for (gsize l = 0; l < len; l++)
    {
      g_assert_null (relais_bundle_parse (d, l, &error));
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
  for (int round = 0; round < 2000; round++)
    {
      gsize i = g_rand_int_range (rand, 0, len);
      guint8 was = d[i];

      d[i] ^= 1 + g_rand_int_range (rand, 0, 255);
      g_assert_null (relais_bundle_parse (d, len, &error));
      /* The magic and version are read before the checksum. */
      g_assert_error (error, RELAIS_SYNC_ERROR,
                      (i < 12 ? error->code : RELAIS_SYNC_ERROR_CHECKSUM));
      g_clear_error (&error);
      d[i] = was;
    }

  /* Lying counts and lengths behind a valid checksum. */
  {
    guint8 h[16 + 4 + 32] = "RLBUNDLE\1\0\0\0\377\377\377\377";

    crypto_generichash (h + 16, 32, h, 16, NULL, 0);
    g_assert_null (relais_bundle_parse (h, 48, &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
    g_clear_error (&error);
    memcpy (h + 12, "\1\0\0\0\377\377\377\177", 8);
    crypto_generichash (h + 20, 32, h, 20, NULL, 0);
    g_assert_null (relais_bundle_parse (h, 52, &error));
    g_assert_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED);
  }
  g_rand_free (rand);
}

static void
test_throughput (Fixture *f, gconstpointer data)
{
  const guint n = 10000;   /* the sync benchmark's initial pull */
  g_autoptr(GPtrArray) envs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gint64 t0, t1, t2;
  guint ops = 0;

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (envs, seal (f, 20));
  t1 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(RelaisChangeset) cs = NULL;
      GBytes *e = g_ptr_array_index (envs, i);

      cs = open_env (f, g_bytes_get_data (e, NULL), g_bytes_get_size (e), &error);
      g_assert_no_error (error);
      ops += cs->ops->len;
    }
  t2 = g_get_monotonic_time ();
  g_test_message ("seal %u change sets x 20 ops: %.0f ops/s", n, ops / ((t1 - t0) / 1e6));
  g_test_message ("verify+open %u change sets x 20 ops: %.0f ops/s (%.1f us per change set)",
                  n, ops / ((t2 - t1) / 1e6), (double) (t2 - t1) / n);
}

/* What a pull does with each change set: verify, open, apply in one
 * transaction per page of 100 change sets.  Printed, not asserted: the
 * sync benchmark owns the goal (50,000 ops/s). */
static void
test_apply_throughput (Fixture *f, gconstpointer data)
{
  const guint n = 10000;
  g_autoptr(GPtrArray) envs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = g_dir_make_tmp ("relais-sync-XXXXXX", &error);
  g_autofree char *dir = g_build_filename (parent, "vault", NULL);
  RelaisKdfParams params;
  RelaisVault *vault;
  gint64 t0, t1;
  guint ops = 0;

  relais_kdf_params_insecure_for_tests (&params);
  vault = relais_vault_create (dir, "pass", &(RelaisVaultOptions) { .kdf = &params },
                               NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (envs, seal (f, 20));

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(RelaisChangeset) cs = NULL;
      GBytes *e = g_ptr_array_index (envs, i);

      if (i % 100 == 0)
        g_assert_true (relais_vault_begin (vault, &error));
      cs = open_env (f, g_bytes_get_data (e, NULL), g_bytes_get_size (e), &error);
      g_assert_no_error (error);
      for (guint k = 0; k < cs->ops->len; k++)
        {
          RelaisOp *op = g_ptr_array_index (cs->ops, k);
          gboolean is_new;

          /* Ten thousand dossiers: give each change set its own. */
          g_free (op->id);
          op->id = g_strdup_printf ("018f2b6c-7d1e-7a00-%04x-%012x", k, i);
          g_free (op->dossier);
          op->dossier = g_strdup_printf ("018f2b6c-7d1e-7a00-8000-%012x", i);
          g_free (op->entity_id);
          op->entity_id = g_strdup (op->dossier);
          g_assert_true (relais_oplog_apply (vault, op, &is_new, &error));
          g_assert_no_error (error);
          ops++;
        }
      if (i % 100 == 99)
        g_assert_true (relais_vault_commit (vault, &error));
    }
  t1 = g_get_monotonic_time ();
  g_test_message ("verify+open+apply %u change sets x 20 ops: %.0f ops/s",
                  n, ops / ((t1 - t0) / 1e6));
  relais_vault_close (vault);
  relais_test_rm_rf (parent);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/sync/envelope/round-trip", test_round_trip);
  ADD ("/sync/envelope/bit-flips", test_bit_flips);
  ADD ("/sync/envelope/wrong-key", test_wrong_key);
  ADD ("/sync/envelope/moved", test_moved);
  ADD ("/sync/envelope/forged", test_forged);
  ADD ("/sync/envelope/hostile", test_hostile);
  ADD ("/sync/envelope/hostile-member", test_hostile_member);
  g_test_add_func ("/sync/envelope/known-answer", test_known_answer);
  g_test_add_func ("/sync/keys/dossier-key-wrap", test_key_wrap);
  g_test_add_func ("/sync/keys/user-keys-wrap", test_user_keys_wrap);
  ADD ("/sync/bundle/round-trip-and-hostile", test_bundle);
  ADD ("/sync/envelope/throughput", test_throughput);
  ADD ("/sync/envelope/apply-throughput", test_apply_throughput);
  return g_test_run ();
}
