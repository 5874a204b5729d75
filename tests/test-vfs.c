#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "relais-vault.h"
#include "relais-vfs.h"

#define CONTENT (RELAIS_PAGE_SIZE - RELAIS_RESERVE_BYTES)

static void
from_hex (const char *hex,
          guint8     *out,
          gsize       len)
{
  gsize bin_len = 0;

  g_assert_cmpint (sodium_hex2bin (out, len, hex, strlen (hex), NULL, &bin_len, NULL), ==, 0);
  g_assert_cmpuint (bin_len, ==, len);
}

static char *
to_hex (const guint8 *bin,
        gsize         len)
{
  char *hex = g_malloc (len * 2 + 1);

  sodium_bin2hex (hex, len * 2 + 1, bin, len);
  return hex;
}

/* The AEAD itself, against the published vector of
 * draft-irtf-cfrg-xchacha-03, section A.3.1. */
static void
test_xchacha_vector (void)
{
  static const char plaintext[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    "the future, sunscreen would be it.";
  static const char expected_ct[] =
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644"
    "0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e"
    "3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e";
  guint8 key[32], nonce[24], ad[12], ct[sizeof plaintext], tag[16];
  g_autofree char *ct_hex = NULL;
  g_autofree char *tag_hex = NULL;

  from_hex ("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", key, sizeof key);
  from_hex ("404142434445464748494a4b4c4d4e4f5051525354555657", nonce, sizeof nonce);
  from_hex ("50515253c0c1c2c3c4c5c6c7", ad, sizeof ad);

  crypto_aead_xchacha20poly1305_ietf_encrypt_detached (ct, tag, NULL,
                                                       (const guint8 *) plaintext, strlen (plaintext),
                                                       ad, sizeof ad, NULL, nonce, key);
  ct_hex = to_hex (ct, strlen (plaintext));
  tag_hex = to_hex (tag, sizeof tag);
  g_assert_cmpstr (ct_hex, ==, expected_ct);
  g_assert_cmpstr (tag_hex, ==, "c0875924c1c7987947deafd8780acf49");
}

typedef struct {
  guint8 key[RELAIS_KEY_BYTES];
  guint8 db_id[RELAIS_DB_ID_BYTES];
  guint8 nonce[RELAIS_NONCE_BYTES];
  guint8 page[RELAIS_PAGE_SIZE];
} KatInput;

static void
kat_input (KatInput *in)
{
  for (guint i = 0; i < sizeof in->key; i++)
    in->key[i] = (guint8) i;
  for (guint i = 0; i < sizeof in->db_id; i++)
    in->db_id[i] = (guint8) (0x10 + i);
  for (guint i = 0; i < sizeof in->nonce; i++)
    in->nonce[i] = (guint8) (0x40 + i);
  memset (in->page, 0, sizeof in->page);
  for (guint i = 0; i < CONTENT; i++)
    in->page[i] = (guint8) (i * 7 + 3);
}

/* Our page format, frozen: a change of layout, associated data or key
 * derivation would make existing vaults unreadable, and fails here. */
static void
test_page_known_answer (void)
{
  KatInput in;
  guint8 out[RELAIS_PAGE_SIZE];
  guint8 back[RELAIS_PAGE_SIZE];
  guint8 digest[32];
  guint8 page_key[RELAIS_KEY_BYTES];
  g_autofree char *digest_hex = NULL;
  g_autofree char *head_hex = NULL;
  g_autofree char *tag_hex = NULL;
  g_autofree char *key_hex = NULL;

  kat_input (&in);
  relais_page_encrypt (in.key, in.db_id, 7, in.nonce, in.page, out);

  crypto_generichash (digest, sizeof digest, out, sizeof out, NULL, 0);
  digest_hex = to_hex (digest, sizeof digest);
  head_hex = to_hex (out, 16);
  tag_hex = to_hex (out + RELAIS_PAGE_SIZE - RELAIS_TAG_BYTES, RELAIS_TAG_BYTES);
  g_assert_cmpstr (head_hex, ==, "d7331468cfc65422b4b6ceeef8c200fe");
  g_assert_cmpstr (tag_hex, ==, "3fa0280ab52c806d8cfd4df084e1dba7");
  g_assert_cmpstr (digest_hex, ==, "1f5abf553284117a1585cdc79feece8005eae03a229614ae6c52790e6cc15471");
  /* The nonce is stored in clear right after the ciphertext. */
  g_assert_cmpmem (out + CONTENT, RELAIS_NONCE_BYTES, in.nonce, RELAIS_NONCE_BYTES);

  g_assert_true (relais_page_decrypt (in.key, in.db_id, 7, out, back));
  g_assert_cmpmem (back, sizeof back, in.page, sizeof in.page);

  relais_vfs_derive_page_key (in.key, page_key);
  key_hex = to_hex (page_key, sizeof page_key);
  g_assert_cmpstr (key_hex, ==, "a5754eda3544d4d65a2c6e7893b83f88189390a6233dd52a5a27e7c628abeffb");
}

static void
test_page_round_trip (void)
{
  KatInput in;
  guint8 a[RELAIS_PAGE_SIZE], b[RELAIS_PAGE_SIZE], back[RELAIS_PAGE_SIZE];

  kat_input (&in);
  randombytes_buf (in.page, CONTENT);

  /* A fresh nonce each time: the same page never encrypts the same way. */
  relais_page_encrypt (in.key, in.db_id, 3, NULL, in.page, a);
  relais_page_encrypt (in.key, in.db_id, 3, NULL, in.page, b);
  g_assert_true (memcmp (a, b, RELAIS_PAGE_SIZE) != 0);
  g_assert_true (memcmp (a + CONTENT, b + CONTENT, RELAIS_NONCE_BYTES) != 0);

  g_assert_true (relais_page_decrypt (in.key, in.db_id, 3, a, back));
  g_assert_cmpmem (back, sizeof back, in.page, sizeof in.page);

  /* In place, as the VFS does it. */
  g_assert_true (relais_page_decrypt (in.key, in.db_id, 3, b, b));
  g_assert_cmpmem (b, sizeof b, in.page, sizeof in.page);
}

static void
test_page_tamper (void)
{
  KatInput in;
  guint8 disk[RELAIS_PAGE_SIZE], copy[RELAIS_PAGE_SIZE], out[RELAIS_PAGE_SIZE];
  guint8 other_id[RELAIS_DB_ID_BYTES];
  guint8 other_key[RELAIS_KEY_BYTES];

  kat_input (&in);
  relais_page_encrypt (in.key, in.db_id, 5, NULL, in.page, disk);

  /* Every single bit of the stored page is covered. */
  for (guint bit = 0; bit < RELAIS_PAGE_SIZE * 8; bit += 13)
    {
      memcpy (copy, disk, sizeof copy);
      copy[bit / 8] ^= (guint8) (1u << (bit % 8));
      g_assert_false (relais_page_decrypt (in.key, in.db_id, 5, copy, out));
      /* Nothing of the forged page comes out. */
      for (guint i = 0; i < RELAIS_PAGE_SIZE; i++)
        g_assert_cmpuint (out[i], ==, 0);
    }

  /* Bound to its page number, its database and its key. */
  g_assert_false (relais_page_decrypt (in.key, in.db_id, 6, disk, out));
  memcpy (other_id, in.db_id, sizeof other_id);
  other_id[0] ^= 1;
  g_assert_false (relais_page_decrypt (in.key, other_id, 5, disk, out));
  memcpy (other_key, in.key, sizeof other_key);
  other_key[31] ^= 0x80;
  g_assert_false (relais_page_decrypt (other_key, in.db_id, 5, disk, out));
}

/* The VFS under SQLite: partial reads of page 1, and a WAL whose frame
 * headers carry no plaintext fingerprint. */
typedef struct {
  char *dir;
  RelaisVault *vault;
} Fixture;

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  RelaisKdfParams kdf;
  RelaisVaultOptions options = { .kdf = &kdf };

  relais_kdf_params_insecure_for_tests (&kdf);
  fx->dir = g_dir_make_tmp ("relais-vfs-XXXXXX", &error);
  g_assert_no_error (error);
  fx->vault = relais_vault_create (fx->dir, "pass", &options, NULL, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  g_clear_pointer (&fx->vault, relais_vault_close);
  dir = g_dir_open (fx->dir, 0, NULL);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fx->dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (fx->dir);
  g_free (fx->dir);
}

static void
test_partial_reads (Fixture       *fx,
                    gconstpointer  data)
{
  sqlite3_file *file = NULL;
  guint8 whole[RELAIS_PAGE_SIZE];
  guint8 part[100];
  sqlite3 *db = relais_vault_get_db (fx->vault);

  g_assert_cmpint (sqlite3_file_control (db, "main", SQLITE_FCNTL_FILE_POINTER, &file), ==, SQLITE_OK);
  g_assert_nonnull (file);

  g_assert_cmpint (file->pMethods->xRead (file, whole, RELAIS_PAGE_SIZE, 0), ==, SQLITE_OK);
  g_assert_cmpmem (whole, 16, "SQLite format 3", 16);
  /* Byte 20 of the header: the reserved bytes per page. */
  g_assert_cmpuint (whole[20], ==, RELAIS_RESERVE_BYTES);
  for (guint i = CONTENT; i < RELAIS_PAGE_SIZE; i++)
    g_assert_cmpuint (whole[i], ==, 0);

  g_assert_cmpint (file->pMethods->xRead (file, part, 100, 0), ==, SQLITE_OK);
  g_assert_cmpmem (part, 100, whole, 100);
  g_assert_cmpint (file->pMethods->xRead (file, part, 16, 24), ==, SQLITE_OK);
  g_assert_cmpmem (part, 16, whole + 24, 16);

  /* Past the end: zeros and a short read, as SQLite expects. */
  memset (part, 0xaa, sizeof part);
  g_assert_cmpint (file->pMethods->xRead (file, part, 100, 1 << 30), ==, SQLITE_IOERR_SHORT_READ);
  for (guint i = 0; i < sizeof part; i++)
    g_assert_cmpuint (part[i], ==, 0);
}

static void
test_wal_headers_masked (Fixture       *fx,
                         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *wal_path = g_build_filename (fx->dir, "vault.db-wal", NULL);
  g_autofree char *wal = NULL;
  gsize len = 0;
  guint frames = 0, small_pgno = 0;
  sqlite3 *db = relais_vault_get_db (fx->vault);

  g_assert_true (relais_vault_exec (fx->vault,
                                    "PRAGMA wal_autocheckpoint = 0;"
                                    "CREATE TABLE t (v TEXT);"
                                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
                                    "  INSERT INTO t SELECT printf('row %d', i) FROM n;",
                                    &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (wal_path, &wal, &len, NULL));
  g_assert_cmpuint (len, >, 32);

  /* In clear, bytes 0-3 of a frame header are a small page number; masked,
   * they are uniformly random. */
  for (gsize off = 32; off + 24 + RELAIS_PAGE_SIZE <= len; off += 24 + RELAIS_PAGE_SIZE)
    {
      guint32 pgno = ((guint32) (guint8) wal[off] << 24) | ((guint32) (guint8) wal[off + 1] << 16) |
                     ((guint32) (guint8) wal[off + 2] << 8) | (guint8) wal[off + 3];
      frames++;
      if (pgno < 100000)
        small_pgno++;
    }
  g_assert_cmpuint (frames, >=, 5);
  g_assert_cmpuint (small_pgno, ==, 0);

  /* And SQLite still reads it all back through the VFS. */
  {
    g_autoptr(sqlite3_stmt) stmt = NULL;
    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*) FROM t", -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 3000);
  }
}

static void
test_temp_files_refused (Fixture       *fx,
                         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  /* A sort bigger than the cache still works: it stays in memory. */
  g_assert_true (relais_vault_exec (fx->vault,
                                    "CREATE TABLE big (v TEXT);"
                                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
                                    "  INSERT INTO big SELECT randomblob(200) FROM n;"
                                    "CREATE TEMP TABLE tt AS SELECT v FROM big ORDER BY v;",
                                    &error));
  g_assert_no_error (error);
}

/* A transaction bigger than the page cache spills pages into the WAL and
 * then overwrites them there; at commit SQLite reads back the checksums of
 * the frame before the first overwritten one (a partial read of a frame
 * header) and rewrites the frame headers after it. */
static void
test_wal_overwrite_in_transaction (Fixture       *fx,
                                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(sqlite3_stmt) stmt = NULL;
  sqlite3 *db = relais_vault_get_db (fx->vault);

  g_assert_true (relais_vault_exec (fx->vault,
                                    "PRAGMA cache_size = 10;"
                                    "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);"
                                    "INSERT INTO t VALUES (0, 'first');",
                                    &error));
  g_assert_no_error (error);
  g_assert_true (relais_vault_begin (fx->vault, &error));
  g_assert_true (relais_vault_exec (fx->vault,
                                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
                                    "  INSERT INTO t SELECT i, printf('%0200d', i) FROM n;"
                                    "UPDATE t SET v = printf('%0190d', k + 1);"
                                    "UPDATE t SET v = printf('%0180d', k + 2) WHERE k % 3 = 0;",
                                    &error));
  g_assert_no_error (error);
  g_assert_true (relais_vault_commit (fx->vault, &error));
  g_assert_no_error (error);

  g_assert_true (relais_vault_verify (fx->vault, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*), sum(length(v)) FROM t", -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 5001);
  g_assert_cmpint (sqlite3_column_int (stmt, 1), ==, 1667 * 180 + 3334 * 190);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

  g_test_add_func ("/vfs/xchacha20poly1305-vector", test_xchacha_vector);
  g_test_add_func ("/vfs/page/known-answer", test_page_known_answer);
  g_test_add_func ("/vfs/page/round-trip", test_page_round_trip);
  g_test_add_func ("/vfs/page/tamper", test_page_tamper);
  g_test_add ("/vfs/partial-reads", Fixture, NULL, fixture_setup, test_partial_reads, fixture_teardown);
  g_test_add ("/vfs/wal-headers-masked", Fixture, NULL, fixture_setup, test_wal_headers_masked, fixture_teardown);
  g_test_add ("/vfs/wal-overwrite-in-transaction", Fixture, NULL, fixture_setup, test_wal_overwrite_in_transaction, fixture_teardown);
  g_test_add ("/vfs/temp-in-memory", Fixture, NULL, fixture_setup, test_temp_files_refused, fixture_teardown);

  return g_test_run ();
}
